"""Connections' URI form, what is secret, masking (in text and in a log streamed in chunks),
and the Fernet keys: several keys, rotation, and clear errors instead of plaintext."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from haflow.core.secrets import MASK, Connection, Masker, env_name, is_sensitive, mask_extra
from haflow.errors import InvalidRequest, SecretKeyError
from haflow.metastore.crypto import Crypto
from haflow.worker.process import LogSink


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
