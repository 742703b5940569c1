"""Telling network failures apart: name not resolved, port refused, timeout, reset, bad login.

Every probe answers with a `Finding` whose `problem` says which of these happened, so the
doctor can print what to do about it; nothing here raises for an unreachable server.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from enum import Enum


class Problem(Enum):
    """What went wrong, with the exit code `haflow doctor` returns for it."""

    OK = 0
    DNS = 10  # the host name does not resolve
    REFUSED = 11  # nothing listens on that port
    TIMEOUT = 12  # no answer at all (firewall, partition, wrong address)
    RESET = 13  # connected, then dropped
    AUTH = 14  # the server refused the credentials
    LOOPBACK = 15  # the URL names this node itself, where no such server listens
    SCHEMA = 20  # the metastore is reachable but not migrated to this haflow's revision
    CLOCK = 21  # this node's clock is off from the metastore's
    DAGS = 22  # this node's DAG files differ from what the leader parsed
    ZOOKEEPER = 23  # no ZooKeeper session could be opened
    KEYS = 24  # live webservers sign session cookies with different secret keys
    REPLICATION = 25  # an HA metastore (several servers in its URL) with no synchronous standby
    SECURITY = 30  # running as root, an empty secret
    CONFIG = 31  # the configuration itself is wrong


@dataclass(frozen=True)
class Finding:
    problem: Problem
    detail: str


LOOPBACK_NAMES = ("localhost", "ip6-localhost", "ip6-loopback")


def is_loopback(host: str) -> bool:
    """Whether `host` means this node itself: a loopback name or address, or a name that
    resolves only to loopback addresses (Debian maps a host's own name to 127.0.1.1)."""
    if host.lower() in LOOPBACK_NAMES or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return False
    addresses = {ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos}
    return bool(addresses) and all(a.is_loopback for a in addresses)


def tcp(host: str, port: int, timeout_s: float = 3.0) -> Finding:
    """Resolve and connect; which step failed is the finding."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return Finding(Problem.DNS, f"the name {host!r} does not resolve ({exc.strerror})")
    address = infos[0][4]
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return Finding(Problem.OK, f"{host}:{port} ({address[0]}) accepts connections")
    except ConnectionRefusedError:
        return Finding(
            Problem.REFUSED,
            f"{host}:{port} refuses connections (is the server running, on that port?)",
        )
    except TimeoutError:
        return Finding(
            Problem.TIMEOUT,
            f"{host}:{port} did not answer within {timeout_s:g} s "
            "(firewall, wrong address or network partition)",
        )
    except ConnectionResetError:
        return Finding(Problem.RESET, f"{host}:{port} reset the connection")
    except OSError as exc:
        return Finding(Problem.REFUSED, f"{host}:{port}: {exc}")
