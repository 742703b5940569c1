"""`haflow cluster up|status|logs|down` and `haflow chaos kill|pause|resume|partition|heal|
restart|run|scenarios`: a real multi-node cluster in Docker, and faults injected into it.

NODE is a node name (`master1`, `worker2`, `zk3`, `postgres` or `pg1`, `broker` or `mq1`, `lb`)
or `leader`, the master whose scheduler leads now (read from the metastore). With `--compose
FILE` the faults act on that running docker-compose deployment instead, NODE being a service
name or `leader`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from haflow.chaos.cluster import Cluster, down_by_name
from haflow.chaos.compose import ComposeTarget
from haflow.chaos.faults import Faults, FaultTarget
from haflow.chaos.spec import DEFAULT_STATE_ROOT, RUNTIMES, ClusterSpec, default_runtime

F = TypeVar("F", bound=Callable[..., Any])


def cluster_options(fn: F) -> F:
    fn = click.option(
        "--state-root",
        type=click.Path(path_type=Path, file_okay=False),
        default=DEFAULT_STATE_ROOT,
        show_default=True,
        help="Folder holding each cluster's state (configuration, fault log, task records).",
    )(fn)
    return click.option("--name", default="chaos", show_default=True, help="Cluster name.")(fn)


def _load(name: str, state_root: Path) -> Cluster:
    return Cluster.load(name, state_root)


# -- cluster --------------------------------------------------------------------------------


@click.group()
def cluster() -> None:
    """A multi-node haflow cluster in Docker containers, for chaos testing."""


@cluster.command()
@cluster_options
@click.option("--masters", default=2, show_default=True, help="Master nodes.")
@click.option("--workers", default=2, show_default=True, help="Worker nodes.")
@click.option(
    "--webserver/--no-webserver",
    default=None,
    help="Run a webserver on each master behind haproxy (default: when available).",
)
@click.option(
    "--set",
    "settings",
    multiple=True,
    metavar="SECTION__KEY=VALUE",
    help="A haflow setting for masters and workers, e.g. --set ELECTION__ZK_SESSION_TIMEOUT=4.",
)
@click.option(
    "--runtime",
    type=click.Choice(RUNTIMES),
    default=None,
    help="images: the deployed images, built here (default in a checkout; "
    "$HAFLOW_CHAOS_RUNTIME); host: bind-mount this host's system and virtualenv.",
)
@click.option(
    "--ha-metastore",
    is_flag=True,
    help="The metastore as two PostgreSQL members under Patroni (pg1, pg2: a synchronous "
    "standby, the primary elected in the cluster's ZooKeeper) instead of one `postgres`.",
)
@click.option(
    "--ha-broker",
    is_flag=True,
    help="The broker as a three-node RabbitMQ cluster with quorum queues (mq1, mq2, mq3) "
    "instead of one Redis `broker`.",
)
def up(
    name: str,
    state_root: Path,
    masters: int,
    workers: int,
    webserver: bool | None,
    settings: tuple[str, ...],
    runtime: str | None,
    ha_metastore: bool,
    ha_broker: bool,
) -> None:
    """Start the cluster and wait until it serves (a leader, live workers)."""
    try:
        spec = ClusterSpec(
            name=name,
            masters=masters,
            workers=workers,
            webserver=webserver,
            settings=_settings(settings),
            state_root=state_root,
            runtime=runtime or default_runtime(),
            ha_metastore=ha_metastore,
            ha_broker=ha_broker,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    Cluster(spec).up(lambda m: click.echo(m, err=True))
    click.echo(f"cluster {name} is up; `haflow cluster status --name {name}`")


def _settings(pairs: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or "__" not in key:
            raise click.BadParameter(f"{pair!r} is not SECTION__KEY=VALUE", param_hint="--set")
        out[f"HAFLOW__{key.upper().removeprefix('HAFLOW__')}"] = value
    return out


@cluster.command()
@cluster_options
@click.option("--output", "-o", type=click.Choice(["table", "json"]), default="table")
def status(name: str, state_root: Path, output: str) -> None:
    """Each node, its role and state; the leader and its epoch."""
    st = _load(name, state_root).status()
    if output == "json":
        click.echo(json.dumps(st.as_dict(), indent=2, default=str))
        return
    click.echo(
        f"cluster {st.name}: leader {st.leader or '-'}, epoch {st.epoch or '-'}, "
        f"elector {st.elector_mode or '-'}"
    )
    click.echo(f"{'node':<10} {'role':<10} {'state':<9} {'address':<14} detail")
    for n in st.nodes:
        click.echo(f"{n.node:<10} {n.role:<10} {n.state:<9} {n.address:<14} {n.detail}".rstrip())
    for note in st.notes:
        click.echo(f"note: {note}")


@cluster.command()
@cluster_options
@click.argument("node")
@click.option("--tail", default=200, show_default=True, help="Lines from the end.")
def logs(name: str, state_root: Path, node: str, tail: int) -> None:
    """The output of NODE's daemons."""
    click.echo(_load(name, state_root).logs(node, tail), nl=False)


@cluster.command()
@cluster_options
def down(name: str, state_root: Path) -> None:
    """Remove the cluster's containers, data volumes and network (its state folder stays)."""
    removed = down_by_name(name)
    click.echo(f"removed {removed} containers of cluster {name}")


# -- chaos ----------------------------------------------------------------------------------


@click.group()
def chaos() -> None:
    """Inject faults into a cluster's nodes; run chaos scenarios."""


def compose_options(fn: F) -> F:
    """--compose FILE (repeatable) and --project: an operator's running deployment."""
    fn = click.option(
        "--project",
        default="",
        help="The compose project name (default: as docker-compose chooses it, "
        "$COMPOSE_PROJECT_NAME or the first file's folder name).",
    )(fn)
    return click.option(
        "--compose",
        "compose_files",
        multiple=True,
        type=click.Path(path_type=Path, dir_okay=False),
        help="Act on this running docker-compose deployment's services instead of a harness "
        "cluster (repeat for override files, as with docker-compose -f).",
    )(fn)


def target_options(fn: F) -> F:
    """The harness cluster's options, and --compose/--project for an operator's deployment."""
    return cluster_options(compose_options(fn))


def _faults(
    name: str, state_root: Path, compose_files: tuple[Path, ...], project: str
) -> tuple[Faults, FaultTarget]:
    target: FaultTarget
    if compose_files:
        target = ComposeTarget.open(compose_files, project, state_root)
    else:
        target = _load(name, state_root)
    return Faults(target), target


def _done(action: str, node: str, target: FaultTarget) -> None:
    click.echo(f"{action} {node} (logged in {target.fault_log})")


@chaos.command()
@target_options
@click.argument("node")
@click.option("--signal", "-s", default="KILL", show_default=True, help="KILL, TERM, ...")
def kill(
    name: str,
    state_root: Path,
    compose_files: tuple[Path, ...],
    project: str,
    node: str,
    signal: str,
) -> None:
    """Send a signal to NODE (SIGKILL: the whole node dies at once)."""
    faults, t = _faults(name, state_root, compose_files, project)
    node = t.known(node)
    faults.kill(node, signal)
    _done(f"SIG{signal.upper().removeprefix('SIG')}", node, t)


@chaos.command()
@target_options
@click.argument("node")
@click.option(
    "--from",
    "peers",
    multiple=True,
    metavar="NODE",
    help="Cut NODE off this node only (repeatable); default: off every node.",
)
def partition(
    name: str,
    state_root: Path,
    compose_files: tuple[Path, ...],
    project: str,
    node: str,
    peers: tuple[str, ...],
) -> None:
    """Cut NODE off the network (all peers, or --from the ones named)."""
    faults, t = _faults(name, state_root, compose_files, project)
    node = t.known(node)
    faults.partition(node, [t.known(p) for p in peers])
    _done("partitioned", f"{node} from {', '.join(peers) if peers else 'every node'}", t)


def _node_fault(verb: str, done: str, about: str) -> None:
    """`haflow chaos VERB NODE`: one fault without options, by the Faults method `verb`."""

    @chaos.command(verb, help=about)
    @target_options
    @click.argument("node")
    def command(
        name: str, state_root: Path, compose_files: tuple[Path, ...], project: str, node: str
    ) -> None:
        faults, t = _faults(name, state_root, compose_files, project)
        node = t.known(node)
        getattr(faults, verb)(node)
        _done(done, node, t)


_node_fault("pause", "paused", "Freeze every process of NODE (docker pause).")
_node_fault("resume", "resumed", "Thaw a paused NODE.")
_node_fault("heal", "healed", "Undo a partition of NODE.")
_node_fault("restart", "restarted", "Start NODE again (or stop it gracefully and start it).")


def _scenario_folder(folder: Path | None) -> Path:
    """`--scenarios DIR`, else the checkout's chaos/scenarios (an installed haflow has none)."""
    from haflow.chaos.scenario import SCENARIO_DIR

    chosen = folder or SCENARIO_DIR
    if not chosen.is_dir():
        raise click.UsageError(
            f"no scenario folder at {chosen}: pass --scenarios DIR (or set "
            "HAFLOW_CHAOS_SCENARIOS), e.g. the chaos/scenarios folder of a haflow checkout"
        )
    return chosen


scenarios_option = click.option(
    "--scenarios",
    "folder",
    envvar="HAFLOW_CHAOS_SCENARIOS",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Folder of scenario files (default: chaos/scenarios of this checkout).",
)


@chaos.command("scenarios")
@scenarios_option
def scenarios(folder: Path | None) -> None:
    """List the scenarios of the scenario folder."""
    from haflow.chaos.scenario import load_scenario, scenario_names

    where = _scenario_folder(folder)
    for n in scenario_names(where):
        sc = load_scenario(n, where)
        click.echo(f"{sc.name:<20} {','.join(sc.properties):<16} {sc.description}")


@chaos.command()
@click.argument("scenario")
@click.option("--repeat", default=1, show_default=True, help="Rounds of faults.")
@click.option("--seed", default=0, show_default=True, help="Seed of the random choices.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object as the last line.")
@click.option("--state-root", type=click.Path(path_type=Path), default=DEFAULT_STATE_ROOT)
@compose_options
@scenarios_option
def run(
    scenario: str,
    repeat: int,
    seed: int,
    as_json: bool,
    state_root: Path,
    compose_files: tuple[Path, ...],
    project: str,
    folder: Path | None,
) -> None:
    """Run SCENARIO on a fresh cluster: workload, faults, then judge the properties from the
    recorded history. With --compose, drill that running deployment instead (started with the
    deploy/compose.chaos.yml override; nothing is created or removed) and judge what happened
    from the drill's start. Exit 1 when a property fails."""
    from haflow.chaos.deployment import ComposeCluster
    from haflow.chaos.report import as_json as report_json
    from haflow.chaos.report import as_table
    from haflow.chaos.scenario import load_scenario, run_on_deployment, run_scenario

    sc = load_scenario(scenario, _scenario_folder(folder))
    say = lambda m: click.echo(m, err=True)  # noqa: E731
    if compose_files:
        deployment = ComposeCluster.open(compose_files, project, state_root)
        out = run_on_deployment(sc, deployment, repeat=repeat, seed=seed, progress=say)
    else:
        out = run_scenario(sc, repeat=repeat, seed=seed, state_root=state_root, progress=say)
    click.echo(as_table(sc.name, out.verdicts))
    for line in out.aborted:
        click.echo(f"ABORTED {line}")
    for prop in out.unexercised:
        click.echo(f"UNEXERCISED {prop}: {sc.name} claims it, but no fault put it to the test")
    if as_json:
        extra = {
            "repeats": repeat,
            "seed": seed,
            "seconds": round(out.seconds, 1),
            "aborted": out.aborted,
            "unexercised": out.unexercised,
        }
        click.echo(report_json(sc.name, out.verdicts, out.ok, extra))
    if not out.ok:
        raise SystemExit(1)
