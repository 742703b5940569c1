"""Unit tests of haflow.config: precedence, secrets, error messages, masking, default file."""

from __future__ import annotations

import dataclasses
import re
import time
import typing
from pathlib import Path

import pytest

from haflow.config import SCHEMA, Settings, default_home, load_settings, render_default_config
from haflow.config.loader import run_command
from haflow.config.schema import coerce, section_specs
from haflow.config.settings import SECTION_CLASSES
from haflow.errors import ConfigError

PY_TYPES = {"str": str, "int": int, "float": float, "bool": bool, "path": Path}


def write_cfg(home: Path, text: str) -> Path:
    path = home / "haflow.cfg"
    path.write_text(text, encoding="utf-8")
    return path


def write_secret(path: Path, content: str) -> str:
    path.write_text(content + "\n", encoding="utf-8")
    return str(path)


def load(home: Path, environ: dict[str, str] | None = None, cfg: str | None = None) -> Settings:
    if cfg is not None:
        write_cfg(home, cfg)
    return load_settings(home=home, environ=environ or {})


# --- defaults and home ---------------------------------------------------------------------


def test_defaults_without_file_or_environment(tmp_path: Path) -> None:
    settings = load(tmp_path)
    assert settings.home == tmp_path
    assert settings.config_file == tmp_path / "haflow.cfg"
    assert settings.core.dags_folder == tmp_path / "dags"
    assert settings.core.sql_alchemy_conn == f"sqlite:///{tmp_path}/haflow.db"
    assert settings.core.executor == "local"
    assert settings.core.parallelism == 8
    assert settings.worker.reclaim_consumes_retry is False
    assert settings.core.dag_dir_list_interval == 10.0
    assert settings.scheduler.loop_interval == 0.2
    assert settings.scheduler.cluster == "default"
    assert settings.worker.max_log_bytes == 1048576
    assert settings.worker.reclaim_consumes_retry is False
    assert settings.election.mode == "auto"
    assert settings.webserver.port == 8080
    assert settings.logging.level == "INFO"


def test_every_default_is_valid_and_typed(tmp_path: Path) -> None:
    settings = load(tmp_path)
    for spec in SCHEMA:
        value = settings.get(spec.section, spec.key)
        assert isinstance(value, PY_TYPES.get(spec.type, str)), spec.name


def test_dataclasses_match_the_schema() -> None:
    for section, cls in SECTION_CLASSES.items():
        fields = [f.name for f in dataclasses.fields(cls)]
        assert fields == [s.key for s in section_specs(section)], section
        hints = typing.get_type_hints(cls)
        for spec in section_specs(section):
            if spec.type == "choice":
                assert typing.get_args(hints[spec.key]) == spec.choices, spec.name
            else:
                assert hints[spec.key] is PY_TYPES[spec.type], spec.name
    assert [f.name for f in dataclasses.fields(Settings)][2:] == list(SECTION_CLASSES)


def test_default_home_from_environment(tmp_path: Path) -> None:
    assert default_home({"HAFLOW_HOME": str(tmp_path)}) == tmp_path
    assert default_home({}) == Path("~/haflow").expanduser().absolute()
    assert default_home({"HAFLOW_HOME": ""}) == Path("~/haflow").expanduser().absolute()


def test_load_uses_haflow_home_from_environ(tmp_path: Path) -> None:
    write_cfg(tmp_path, "[core]\nparallelism = 3\n")
    settings = load_settings(environ={"HAFLOW_HOME": str(tmp_path)})
    assert settings.home == tmp_path
    assert settings.core.parallelism == 3


def test_explicit_config_file(tmp_path: Path) -> None:
    other = tmp_path / "other.cfg"
    other.write_text("[core]\nparallelism = 5\n", encoding="utf-8")
    settings = load_settings(home=tmp_path, environ={}, config_file=other)
    assert settings.config_file == other
    assert settings.core.parallelism == 5


def test_explicit_config_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.cfg does not exist"):
        load_settings(home=tmp_path, environ={}, config_file=tmp_path / "missing.cfg")


# --- precedence ----------------------------------------------------------------------------

ENV = "HAFLOW__CORE__SQL_ALCHEMY_CONN"


def _all_levels(tmp_path: Path) -> list[tuple[str, str, str]]:
    """(where, name, raw) for every level, highest first; each yields the value == its label."""
    return [
        ("env", ENV, "env-value"),
        ("env", ENV + "_CMD", "echo env-cmd"),
        ("env", ENV + "_SECRET", write_secret(tmp_path / "env.secret", "env-secret")),
        ("file", "sql_alchemy_conn", "file-value"),
        ("file", "sql_alchemy_conn_cmd", "echo file-cmd"),
        ("file", "sql_alchemy_conn_secret", write_secret(tmp_path / "f.secret", "file-secret")),
    ]


EXPECTED = ["env-value", "env-cmd", "env-secret", "file-value", "file-cmd", "file-secret"]


@pytest.mark.parametrize("top", range(len(EXPECTED) + 1))
def test_each_level_beats_the_ones_below(tmp_path: Path, top: int) -> None:
    levels = _all_levels(tmp_path)[top:]
    environ = {name: raw for where, name, raw in levels if where == "env"}
    lines = [f"{name} = {raw}" for where, name, raw in levels if where == "file"]
    settings = load(tmp_path, environ, "[core]\n" + "\n".join(lines) + "\n")
    expected = EXPECTED[top] if top < len(EXPECTED) else f"sqlite:///{tmp_path}/haflow.db"
    assert settings.core.sql_alchemy_conn == expected


def test_lower_sources_are_not_evaluated(tmp_path: Path) -> None:
    environ = {ENV: "wins", ENV + "_CMD": "exit 3", ENV + "_SECRET": str(tmp_path / "none")}
    cfg = "[core]\nsql_alchemy_conn_cmd = exit 4\n"
    assert load(tmp_path, environ, cfg).core.sql_alchemy_conn == "wins"


def test_env_beats_file_beats_default_for_plain_keys(tmp_path: Path) -> None:
    cfg = "[core]\nparallelism = 3\nexecutor = celery\n"
    settings = load(tmp_path, {"HAFLOW__CORE__PARALLELISM": "5"}, cfg)
    assert settings.core.parallelism == 5
    assert settings.core.executor == "celery"
    assert settings.worker.reclaim_consumes_retry is False


def test_env_names_are_case_insensitive_on_section_and_key(tmp_path: Path) -> None:
    settings = load(tmp_path, {"HAFLOW__Scheduler__loop_INTERVAL": "0.5"})
    assert settings.scheduler.loop_interval == 0.5


def test_same_setting_twice_in_environment_is_refused(tmp_path: Path) -> None:
    environ = {"HAFLOW__CORE__PARALLELISM": "2", "HAFLOW__core__parallelism": "3"}
    with pytest.raises(ConfigError, match="set twice"):
        load(tmp_path, environ)


# --- {HAFLOW_HOME} -------------------------------------------------------------------------


def test_home_placeholder_in_file_env_secret_and_cmd(tmp_path: Path) -> None:
    write_secret(tmp_path / "broker.secret", "amqp://{HAFLOW_HOME}/b")
    environ = {
        "HAFLOW__CORE__DAGS_FOLDER": "{HAFLOW_HOME}/my_dags",
        "HAFLOW__CELERY__BROKER_URL_SECRET": "{HAFLOW_HOME}/broker.secret",
        "HAFLOW__CELERY__RESULT_BACKEND_CMD": "echo db+sqlite:///{HAFLOW_HOME}/r.db",
    }
    cfg = "[core]\nsql_alchemy_conn = sqlite:///{HAFLOW_HOME}/other.db\n"
    settings = load(tmp_path, environ, cfg)
    assert settings.core.dags_folder == tmp_path / "my_dags"
    assert settings.core.sql_alchemy_conn == f"sqlite:///{tmp_path}/other.db"
    assert settings.celery.broker_url == f"amqp://{tmp_path}/b"
    assert settings.celery.result_backend == f"db+sqlite:///{tmp_path}/r.db"


# --- _cmd and _secret ----------------------------------------------------------------------


def test_cmd_output_is_stripped(tmp_path: Path) -> None:
    environ = {"HAFLOW__WEBSERVER__SECRET_KEY_CMD": "printf '  s3cret \\n\\n'"}
    assert load(tmp_path, environ).webserver.secret_key == "s3cret"


def test_failing_cmd_names_the_variable_and_stderr(tmp_path: Path) -> None:
    environ = {"HAFLOW__CORE__FERNET_KEY_CMD": "echo vault sealed >&2; exit 2"}
    with pytest.raises(ConfigError) as info:
        load(tmp_path, environ)
    message = str(info.value)
    assert "HAFLOW__CORE__FERNET_KEY_CMD" in message
    assert "status 2" in message
    assert "vault sealed" in message


def test_failing_cmd_in_file_names_the_file_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[core\] fernet_key_cmd: the command exited"):
        load(tmp_path, cfg="[core]\nfernet_key_cmd = false\n")


def test_cmd_timeout_kills_the_command_and_its_children() -> None:
    started = time.monotonic()
    with pytest.raises(ConfigError, match=r"VAR: the command did not finish within 0\.2 s"):
        run_command("sleep 30 | cat", "VAR", timeout=0.2)
    assert time.monotonic() - started < 10


def test_secret_file_content_is_stripped(tmp_path: Path) -> None:
    path = write_secret(tmp_path / "key", "  abc  ")
    settings = load(tmp_path, cfg=f"[celery]\nbroker_url_secret = {path}\n")
    assert settings.celery.broker_url == "abc"


def test_unreadable_secret_file(tmp_path: Path) -> None:
    environ = {"HAFLOW__CELERY__BROKER_URL_SECRET": str(tmp_path / "absent")}
    with pytest.raises(
        ConfigError, match=r"HAFLOW__CELERY__BROKER_URL_SECRET: cannot read .*absent"
    ):
        load(tmp_path, environ)


@pytest.mark.parametrize("suffix", ["_CMD", "_SECRET"])
def test_cmd_and_secret_refused_for_non_sensitive_env(tmp_path: Path, suffix: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, {"HAFLOW__CORE__PARALLELISM" + suffix: "echo 3"})
    message = str(info.value)
    assert "HAFLOW__CORE__PARALLELISM" + suffix in message
    assert "[core] parallelism is not sensitive" in message
    assert "[core] sql_alchemy_conn" in message


def test_cmd_refused_for_non_sensitive_file_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[worker\] timeout is not sensitive"):
        load(tmp_path, cfg="[worker]\ntimeout_cmd = echo 3\n")


# --- error messages ------------------------------------------------------------------------


def test_unknown_section_in_file_lists_known_sections(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, cfg="[schedular]\nloop_interval = 1\n")
    message = str(info.value)
    assert "haflow.cfg: unknown section [schedular]" in message
    assert "did you mean 'scheduler'?" in message
    known = "core, scheduler, worker, election, celery, webserver, notifications, retention"
    known += ", logging"
    assert f"known sections: {known}" in message


def test_default_section_is_not_special(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown section \[default\]"):
        load(tmp_path, cfg="[DEFAULT]\nparallelism = 1\n")


def test_unknown_key_in_file_suggests_the_closest(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, cfg="[core]\nparalelism = 4\n")
    message = str(info.value)
    assert "unknown key 'paralelism' in [core] (did you mean 'parallelism'?)" in message
    assert "known keys: dags_folder, sql_alchemy_conn, executor, parallelism" in message


def test_unknown_env_variable_suggests_the_closest(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, {"HAFLOW__WORKER__CONCURENCY": "4"})
    message = str(info.value)
    assert message.startswith("environment variable HAFLOW__WORKER__CONCURENCY: unknown key")
    assert "(did you mean 'concurrency'?)" in message


def test_unknown_env_section(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"HAFLOW__CELRY__BROKER_URL: unknown section \[celry\]"):
        load(tmp_path, {"HAFLOW__CELRY__BROKER_URL": "x"})


@pytest.mark.parametrize("name", ["HAFLOW__CORE", "HAFLOW__CORE__", "HAFLOW__CORE__A__B"])
def test_malformed_env_variable(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError, match="expected the form HAFLOW__SECTION__KEY"):
        load(tmp_path, {name: "1"})


def test_unrelated_environment_is_ignored(tmp_path: Path) -> None:
    assert load(tmp_path, {"HAFLOW_HOME_X": "1", "PATH": "/bin", "HAFLOW_FOO": "x"})


@pytest.mark.parametrize(
    ("section", "key", "raw", "expected"),
    [
        ("scheduler", "loop_interval", "abc", "[scheduler] loop_interval = 'abc' is not a float"),
        ("core", "parallelism", "8.5", "[core] parallelism = '8.5' is not an int"),
        (
            "worker",
            "reclaim_consumes_retry",
            "maybe",
            "[worker] reclaim_consumes_retry = 'maybe' is not a bool",
        ),
        ("worker", "timeout", "inf", "[worker] timeout = 'inf' is not a float"),
        ("core", "dags_folder", " ", "[core] dags_folder = ' ' is empty, but a path is required"),
    ],
)
def test_bad_values_name_the_setting(
    tmp_path: Path, section: str, key: str, raw: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, {f"HAFLOW__{section.upper()}__{key.upper()}": raw})
    assert str(info.value).startswith(expected)
    assert f"HAFLOW__{section.upper()}__{key.upper()}" in str(info.value)


def test_bad_value_in_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"is not an int \(from .*haflow.cfg \[webserver\] port\)"
    ):
        load(tmp_path, cfg="[webserver]\nport = http\n")


def test_bad_choice_lists_allowed_values(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, cfg="[election]\nmode = etcd\n")
    message = str(info.value)
    assert "[election] mode = 'etcd' is not one of the allowed values" in message
    assert "auto, zookeeper, database, none" in message


def test_choices_are_case_insensitive(tmp_path: Path) -> None:
    settings = load(
        tmp_path, {"HAFLOW__LOGGING__LEVEL": "debug", "HAFLOW__CORE__EXECUTOR": "Celery"}
    )
    assert settings.logging.level == "DEBUG"
    assert settings.core.executor == "celery"


@pytest.mark.parametrize(
    ("section", "key", "raw", "problem"),
    [
        ("scheduler", "loop_interval", "0", "must be positive (> 0)"),
        ("core", "parallelism", "0", "must be >= 1"),
        ("scheduler", "metrics_port", "-1", "must be >= 0"),
        ("webserver", "port", "70000", "must be <= 65535"),
        ("worker", "self_fence_margin", "-0.5", "must be positive (> 0)"),
    ],
)
def test_out_of_range_values(
    tmp_path: Path, section: str, key: str, raw: str, problem: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"[{section}] {key} = '{raw}' {problem}")):
        load(tmp_path, cfg=f"[{section}]\n{key} = {raw}\n")


def test_zero_metrics_port_means_off_and_is_allowed(tmp_path: Path) -> None:
    assert load(tmp_path, cfg="[scheduler]\nmetrics_port = 0\n").scheduler.metrics_port == 0


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("true", True),
        ("FALSE", False),
        ("1", True),
        ("0", False),
        ("Yes", True),
        ("no", False),
        ("ON", True),
        ("off", False),
        (" true ", True),
    ],
)
def test_bool_spellings(tmp_path: Path, raw: str, expected: bool) -> None:
    settings = load(tmp_path, {"HAFLOW__WORKER__RECLAIM_CONSUMES_RETRY": raw})
    assert settings.worker.reclaim_consumes_retry is expected


def test_malformed_ini_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"haflow\.cfg: cannot be read as an INI file"):
        load(tmp_path, cfg="parallelism = 4\n")


def test_sensitive_values_are_not_echoed_in_errors(tmp_path: Path) -> None:
    spec = next(s for s in SCHEMA if s.key == "sql_alchemy_conn")
    with pytest.raises(ConfigError) as info:
        coerce(spec, 42, "test", tmp_path)
    assert "'***' is not a string" in str(info.value)
    assert "42" not in str(info.value)


# --- Settings object -----------------------------------------------------------------------


def test_as_dict_masks_non_empty_secrets(tmp_path: Path) -> None:
    settings = load(tmp_path, {"HAFLOW__CELERY__BROKER_URL": "redis://:pw@host"})
    masked = settings.as_dict()
    assert masked["celery"]["broker_url"] == "***"
    assert masked["core"]["sql_alchemy_conn"] == "***"
    assert masked["core"]["fernet_key"] == ""
    assert masked["core"]["parallelism"] == 8
    sections = [
        "core",
        "scheduler",
        "worker",
        "election",
        "celery",
        "webserver",
        "notifications",
        "retention",
        "logging",
    ]
    assert list(masked) == sections
    assert settings.as_dict(mask_secrets=False)["celery"]["broker_url"] == "redis://:pw@host"


def test_repr_leaves_out_secrets(tmp_path: Path) -> None:
    settings = load(tmp_path, {"HAFLOW__WEBSERVER__SECRET_KEY": "hunter2"})
    assert "hunter2" not in repr(settings)
    assert "port=8080" in repr(settings)


def test_get_and_its_unknown_key_error(tmp_path: Path) -> None:
    settings = load(tmp_path)
    assert settings.get("worker", "timeout") == 8.0
    with pytest.raises(ConfigError, match=r"unknown key 'timout' in \[worker\] \(did you mean"):
        settings.get("worker", "timout")


def test_settings_are_frozen(tmp_path: Path) -> None:
    settings = load(tmp_path)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.core.parallelism = 3  # type: ignore[misc]


def test_with_overrides_returns_a_validated_copy(tmp_path: Path) -> None:
    settings = load(tmp_path)
    changed = settings.with_overrides(
        core__parallelism=2,
        scheduler__loop_interval="0.05",
        worker__timeout=3,
        core__dags_folder="{HAFLOW_HOME}/elsewhere",
        logging__level="warning",
    )
    assert changed.core.parallelism == 2
    assert changed.scheduler.loop_interval == 0.05
    assert changed.worker.timeout == 3.0 and isinstance(changed.worker.timeout, float)
    assert changed.core.dags_folder == tmp_path / "elsewhere"
    assert changed.logging.level == "WARNING"
    assert settings.core.parallelism == 8
    assert changed.home == settings.home and changed.config_file == settings.config_file


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"core__parallelism": 0}, r"\[core\] parallelism = 0 must be >= 1"),
        ({"core__parallelism": True}, "is not an int"),
        ({"worker__reclaim_consumes_retry": 1}, "is not a bool"),
        ({"core__executor": "k8s"}, "local, celery"),
        ({"core__paralelism": 1}, "did you mean 'parallelism'"),
        ({"parallelism": 1}, "expected the form section__key"),
    ],
)
def test_with_overrides_refuses_bad_values(
    tmp_path: Path, overrides: dict[str, object], match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        load(tmp_path).with_overrides(**overrides)


def test_hostname_empty_means_fqdn(tmp_path: Path) -> None:
    settings = load(tmp_path)
    assert settings.core.effective_hostname()
    assert settings.with_overrides(core__hostname="node-1").core.effective_hostname() == "node-1"


# --- default config file -------------------------------------------------------------------


def test_rendered_config_lists_every_setting(tmp_path: Path) -> None:
    text = render_default_config(tmp_path)
    assert str(tmp_path) in text
    for spec in SCHEMA:
        assert f"[{spec.section}]" in text
        assert f"# {spec.key} =" in text
        assert spec.description in text


def test_rendered_config_round_trips_to_the_defaults(tmp_path: Path) -> None:
    defaults = load(tmp_path)
    text = render_default_config(tmp_path)
    assert load(tmp_path, cfg=text) == defaults
    uncommented = re.sub(r"^# ([a-z_]+ =)", r"\1", text, flags=re.MULTILINE)
    assert "\nparallelism = 8\n" in uncommented
    assert load(tmp_path, cfg=uncommented) == defaults


def test_worker_margins_keep_the_reclaim_after_the_self_fence(tmp_path: Path) -> None:
    env = {"HAFLOW__WORKER__TIMEOUT": "2", "HAFLOW__WORKER__SELF_FENCE_MARGIN": "0.5"}
    s = load_settings(home=tmp_path, environ=env)
    assert s.worker.self_fence_s == 1.5
    assert s.worker.reclaim_margin_s == 0.5  # the default 1 s, capped at the margin
    with pytest.raises(ConfigError, match=r"self_fence_margin \(2\) < timeout \(2\)"):
        load_settings(home=tmp_path, environ={**env, "HAFLOW__WORKER__SELF_FENCE_MARGIN": "2"})


def test_task_env_allowlist_takes_blanks_or_commas(tmp_path: Path) -> None:
    environ = {"HAFLOW__WORKER__TASK_ENV_ALLOWLIST": "PATH, LC_*\n  AWS_PROFILE,,"}
    assert load(tmp_path, environ).worker.task_env == ("PATH", "LC_*", "AWS_PROFILE")
    assert "PATH" in load(tmp_path, {}).worker.task_env  # the default


def test_a_short_or_empty_secret_key_is_named_once_for_webserver_and_doctor() -> None:
    from haflow.config.settings import secret_key_problem

    assert "is empty" in (secret_key_problem("") or "")
    assert "shorter than 32 bytes" in (secret_key_problem("k" * 31) or "")
    assert secret_key_problem("k" * 32) is None
    assert secret_key_problem("k", min_bytes=1) is None
