"""The servers a metastore URL names, and the libpq connection string made from it."""

from __future__ import annotations

import psycopg
import pytest

from haflow.errors import ConfigError
from haflow.metastore.engine import libpq_conninfo, servers

MULTI = "postgresql://u:pw@/haflow?host=pg1:5433&host=pg2&target_session_attrs=read-write"


def test_one_host_and_its_default_port() -> None:
    assert servers("postgresql://u@db/haflow") == [("db", 5432)]
    assert servers("mysql://u@db:3307/haflow") == [("db", 3307)]
    assert servers("postgresql:///haflow") == [("localhost", 5432)]
    assert servers("sqlite:////tmp/h.db") == []


def test_every_host_of_a_multi_host_url_in_order() -> None:
    assert servers(MULTI) == [("pg1", 5433), ("pg2", 5432)]


def test_conninfo_keeps_every_host_and_the_session_attrs() -> None:
    info = psycopg.conninfo.conninfo_to_dict(libpq_conninfo(MULTI, application_name="x"))
    assert info["host"] == "pg1,pg2"
    assert str(info["port"]).split(",") == ["5433", ""]  # empty: libpq's default, 5432
    assert info["target_session_attrs"] == "read-write"
    assert (info["user"], info["password"], info["dbname"]) == ("u", "pw", "haflow")
    assert info["application_name"] == "x"


def test_a_url_that_is_not_one_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        servers("not a url")
