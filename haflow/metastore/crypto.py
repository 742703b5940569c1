"""Encryption of the secrets kept in the metastore (variable values, connection passwords and
extras) with Fernet from `cryptography` (AES-128-CBC with an HMAC-SHA256, the scheme and key
format Airflow uses, so an Airflow team's `fernet_key` works as it is).

`[core] fernet_key` lists one or more keys, comma-separated: the first encrypts, every one
decrypts (MultiFernet). To rotate: put a new key first, keep the old after it on every node,
run `haflow rotate-fernet-key` (re-encrypts every value under the first), then drop the old.
Nothing is ever stored or read as plaintext: without a key, or with keys that cannot decrypt a
value, the call fails with SecretKeyError saying so.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from haflow.errors import SecretKeyError

NO_KEY = (
    "[core] fernet_key is empty: variables and connections are kept encrypted and need a key. "
    "Make one (`python -c 'from cryptography.fernet import Fernet; "
    "print(Fernet.generate_key().decode())'`) and set the same value on every node "
    "(`haflow standalone` makes its own)"
)


class Crypto:
    """The keys of `[core] fernet_key`; `Crypto("")` has none and refuses every use."""

    def __init__(self, setting: str) -> None:
        keys = [k.strip() for k in (setting or "").split(",") if k.strip()]
        fernets = []
        for n, key in enumerate(keys, 1):
            try:
                fernets.append(Fernet(key.encode("ascii")))
            except (ValueError, UnicodeEncodeError):
                raise SecretKeyError(
                    f"[core] fernet_key: key {n} of {len(keys)} is not a Fernet key "
                    "(32 random bytes, url-safe base64: 44 characters ending in '=')"
                ) from None
        self.keys = len(fernets)
        self._fernet = MultiFernet(fernets) if fernets else None

    def _keys(self) -> MultiFernet:
        if self._fernet is None:
            raise SecretKeyError(NO_KEY)
        return self._fernet

    def encrypt(self, value: str) -> str:
        return self._keys().encrypt(value.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str, what: str) -> str:
        """The plaintext of `token`; SecretKeyError naming `what` if no key opens it."""
        try:
            return self._keys().decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError):
            raise self.cannot_decrypt(what) from None

    def cannot_decrypt(self, what: str) -> SecretKeyError:
        """The error for values (`what`) that no key of this node opens."""
        if self._fernet is None:
            return SecretKeyError(f"{NO_KEY}; the metastore holds {what}")
        return SecretKeyError(
            f"{what} cannot be decrypted with [core] fernet_key ({self.keys} key(s)): written "
            "with a key this node does not have. Set the key it was written with (while "
            "rotating, list the new key first and the old one after it)"
        )

    def rotate(self, token: str, what: str) -> str:
        """`token` re-encrypted under the first key."""
        try:
            return self._keys().rotate(token.encode("ascii")).decode("ascii")
        except InvalidToken:
            raise self.cannot_decrypt(what) from None
