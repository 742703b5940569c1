"""Passwords, API tokens and key fingerprints: the only place secrets are hashed or made."""

from __future__ import annotations

import functools
import hashlib
import secrets

from werkzeug.security import check_password_hash, generate_password_hash

TOKEN_PREFIX = "hft_"


def hash_password(password: str) -> str:
    if len(password) < 8:
        from haflow.errors import InvalidRequest

        raise InvalidRequest("a password needs at least 8 characters")
    return generate_password_hash(password)


def check_password(password_hash: str, password: str) -> bool:
    return check_password_hash(password_hash, password)


@functools.cache
def dummy_hash() -> str:
    """A hash of a random password, made once per process with the same method as users'
    hashes: checking a login against it costs what checking a real user's costs, so the time
    of a refused login does not tell whether the user exists."""
    return generate_password_hash(secrets.token_urlsafe(16))


def new_password() -> str:
    return secrets.token_urlsafe(12)


def new_token() -> str:
    """A bearer token for the API; only its digest is stored."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def fingerprint(secret: str) -> str:
    """Tells two keys apart without revealing either (webservers must share one)."""
    return hashlib.sha256(b"haflow-secret-key:" + secret.encode("utf-8")).hexdigest()
