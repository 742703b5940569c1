"""The scheduler daemon's leadership life cycle over fakes: elect, lead, step down, get fenced."""

from __future__ import annotations

from datetime import UTC, datetime

from haflow.election.memory import MemoryElection, MemoryElector
from haflow.scheduler.service import SchedulerService, ServiceConfig
from tests.fakes import FakeExecutor, FakeLoop, FakeSchedulerRepo

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def service(name: str = "s1", election: MemoryElection | None = None):  # type: ignore[no-untyped-def]
    repo = FakeSchedulerRepo()
    election = election or MemoryElection()
    elector = MemoryElector(election, name)
    elector.start()
    loop = FakeLoop(repo)
    svc = SchedulerService(
        repo,  # type: ignore[arg-type]
        elector,
        FakeExecutor(),  # type: ignore[arg-type]
        loop,  # type: ignore[arg-type]
        ServiceConfig(),
        sid=name,
        clock=lambda: NOW,
        sleep=lambda _s: None,
    )
    return svc, repo, loop, election


def test_leads_under_a_new_epoch_and_takes_over_first() -> None:
    svc, _repo, loop, _ = service()
    svc.step()
    svc.step()
    assert svc.epoch == 1
    assert loop.took_over == [1]
    assert loop.ticks == [1, 1]


def test_losing_the_election_steps_down_with_a_resignation() -> None:
    svc, repo, loop, election = service()
    svc.step()
    election.disconnect("s1", at=0.0)
    svc.step()
    assert svc.epoch is None
    assert ("leader.resigned", 1) in repo.events
    assert loop.ticks == [1]


def test_a_deposed_leader_is_fenced_when_it_steps_down() -> None:
    svc, repo, _loop, election = service()
    svc.step()
    repo.epoch = 2  # another scheduler took over while this one could not see it
    election.disconnect("s1", at=0.0)
    svc.step()
    assert ("leader.fenced_out", 1) in repo.events
    assert ("leader.resigned", 1) not in repo.events


def test_a_fenced_write_steps_down_and_releases() -> None:
    svc, repo, loop, election = service()
    svc.step()
    repo.epoch = 5
    svc.step()  # its tick is rejected
    assert svc.epoch is None
    assert ("leader.fenced_out", 1) in repo.events
    assert election.leader() is None or election.leader() == "s1"
    assert loop.ticks == [1]


def test_no_leadership_without_the_metastore() -> None:
    svc, repo, loop, _ = service()
    repo.down = True
    assert svc.step() is False
    assert svc.epoch is None and loop.ticks == []
    repo.down = False
    svc.step()
    assert svc.epoch == 1
