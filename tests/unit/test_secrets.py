"""Connections' URI form, what is secret, masking (in text and in a log streamed in chunks),
and the Fernet keys: several keys, rotation, and clear errors instead of plaintext."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from haflow.core.secrets import MASK, Connection, Masker, env_name, is_sensitive, mask_extra
from haflow.dag.secrets import ATTEMPT_ENV, SOCKET_ENV, SecretsUnavailable, Variable
from haflow.dag.secrets import Connection as SecretConnection
from haflow.errors import ConfigError, HaflowError, InvalidRequest, NotFound, SecretKeyError
from haflow.metastore.crypto import Crypto
from haflow.worker.process import LogSink
from haflow.worker.secrets import SecretServer, SecretSource


def test_a_uri_reads_every_field_percent_decoded_and_writes_back_the_same() -> None:
    uri = "postgresql://us%40r:p%40ss%3Aword@db.example:5432/app%2Fdb?sslmode=require&x=1"
    c = Connection.from_uri("db", uri)
    assert (c.conn_type, c.host, c.login, c.password) == (
        "postgresql", "db.example", "us@r", "p@ss:word",
    )  # fmt: skip
    assert (c.port, c.schema, c.extra) == (5432, "app/db", {"sslmode": "require", "x": "1"})
    assert Connection.from_uri("db", c.get_uri()) == c


def test_an_extra_that_is_not_all_strings_travels_as_json_in_the_uri() -> None:
    c = Connection("api", "http", host="h", extra={"retries": 3, "token": "abcdef"})
    assert "__extra__" in c.get_uri()
    assert Connection.from_uri("api", c.get_uri()).extra == {"retries": 3, "token": "abcdef"}


@pytest.mark.parametrize(
    "uri, said",
    [
        ("no-scheme-here", "'://'"),
        ("pg://h:99999/db", "bad URI"),
        ("pg://h/db?__extra__=[1]", "JSON object"),
    ],
)
def test_a_bad_uri_is_refused_saying_why(uri: str, said: str) -> None:
    with pytest.raises(InvalidRequest, match=said):
        Connection.from_uri("c", uri)


def test_fields_are_checked_and_named() -> None:
    with pytest.raises(InvalidRequest, match="conn_type is required"):
        Connection.from_fields("c", {"host": "h"})
    with pytest.raises(InvalidRequest, match="port must be"):
        Connection.from_fields("c", {"conn_type": "pg", "port": "5432"})
    with pytest.raises(InvalidRequest, match="unknown field"):
        Connection.from_fields("c", {"conn_type": "pg", "hots": "h"})
    c = Connection.from_fields("c", {"conn_type": "pg", "extra": '{"a": "b"}', "port": 1})
    assert c.extra == {"a": "b"} and c.port == 1


def test_sensitive_names_and_what_a_connection_masks() -> None:
    assert is_sensitive("DB_PASSWORD") and is_sensitive("api_token") and not is_sensitive("env")
    c = Connection("c", "http", password="hunter22", extra={"auth": {"api_key": "k-12345"}})
    assert sorted(c.secrets()) == ["hunter22", "k-12345"]
    assert c.masked().password == MASK
    assert mask_extra(c.extra) == {"auth": {"api_key": MASK}}
    assert env_name("HAFLOW_CONN_", "my-db.main") == "HAFLOW_CONN_MY_DB_MAIN"


def test_the_masker_hides_each_value_and_its_uri_and_json_forms_but_not_tiny_ones() -> None:
    m = Masker(["p@ss word", "abc"])
    assert m.mask("a p@ss word b p%40ss%20word c") == "a *** b *** c"
    assert m.mask("abc stays: too short to mask") == "abc stays: too short to mask"
    quoted = Masker(['pa"ss-word'])
    assert quoted.mask('{"pw": "pa\\"ss-word"} pa"ss-word') == '{"pw": "***"} ***'  # JSON form
    assert not Masker() and Masker().mask("x") == "x"


def test_a_log_masks_a_secret_split_across_two_reads() -> None:
    sink = LogSink(1 << 20)
    sink.mask(["supersecret"])
    sink.feed(b"first line\nvalue: super")
    assert sink.take() == "first line\n"  # the unfinished line waits for its end
    sink.feed(b"secret done\n")
    assert sink.take() == "value: *** done\n"
    sink.feed(b"tail supersecret")
    assert sink.take(final=True) == "tail ***"


def test_a_log_without_secrets_is_handed_out_as_it_comes() -> None:
    sink = LogSink(1 << 20)
    sink.feed(b"no newline yet")
    assert sink.take() == "no newline yet"


def test_several_keys_decrypt_the_first_encrypts_and_rotation_moves_to_it() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    token = Crypto(old).encrypt("value")
    both = Crypto(f"{new}, {old}")
    assert both.decrypt(token, "v") == "value"
    rotated = both.rotate(token, "v")
    assert Crypto(new).decrypt(rotated, "v") == "value"
    with pytest.raises(SecretKeyError, match="variable 'v' cannot be decrypted"):
        Crypto(old).decrypt(rotated, "variable 'v'")


def test_a_missing_or_malformed_key_is_a_clear_error_never_plaintext() -> None:
    with pytest.raises(SecretKeyError, match="fernet_key is empty"):
        Crypto("").encrypt("value")
    with pytest.raises(SecretKeyError, match="key 2 of 2 is not a Fernet key"):
        Crypto(Fernet.generate_key().decode() + ",k3y")
    assert "value" not in Crypto(Fernet.generate_key().decode()).encrypt("value")


def test_the_worker_answers_its_attempts_alone_and_masks_before_it_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = Connection("db", "postgresql", "h", "u", "pw-123456")
    values = {"api_token": "tok-abcdef", "plain": "shown"}

    def variable(key: str) -> str:
        if key not in values:
            raise NotFound(f"no variable {key!r}")
        return values[key]

    server = SecretServer(tmp_path, SecretSource(variable, lambda _c: conn, environ={}))
    sink = LogSink(1 << 20)
    attempt = str(tmp_path / "1-1")
    monkeypatch.setenv(SOCKET_ENV, str(server.path))
    monkeypatch.setenv(ATTEMPT_ENV, attempt)
    try:
        with pytest.raises(HaflowError, match="not an attempt this worker runs now"):
            Variable.get("plain")
        server.admit(attempt, sink)
        assert Variable.get("plain") == "shown"
        assert Variable.get("nope", default_var=None) is None
        with pytest.raises(KeyError):
            Variable.get("nope")
        assert Variable.get("api_token") == "tok-abcdef"
        assert SecretConnection.get("db").password == "pw-123456"
        monkeypatch.setenv("HAFLOW_VAR_PLAIN", "from the task's environment")
        assert Variable.get("plain") == "from the task's environment"
        sink.feed(b"tok-abcdef pw-123456 shown\n")
        assert sink.take() == "*** *** shown\n"
        server.forget(attempt)
        with pytest.raises(HaflowError, match="not an attempt"):
            Variable.get("api_token")
    finally:
        server.close()


def test_a_socket_path_too_long_is_a_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / ("x" * 120)
    folder.mkdir()
    with pytest.raises(ConfigError, match="point TMPDIR at a shorter folder"):
        SecretServer(folder, SecretSource(lambda _k: "", lambda c: Connection(c)))


def test_outside_a_task_there_is_no_worker_to_ask(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SOCKET_ENV, raising=False)
    with pytest.raises(SecretsUnavailable, match="set HAFLOW_VAR_SOME_KEY"):
        Variable.get("some.key")
