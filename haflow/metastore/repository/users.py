"""What the web server keeps in the metastore: users, API tokens, failed logins.

Webservers hold no state of their own; everything two of them must agree on (who may log in,
how many logins failed from an address, which secret key each signs cookies with) lives here.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, func, insert, select, update

from haflow.errors import Conflict, InvalidRequest, NotFound
from haflow.metastore import models as m
from haflow.metastore.records import UserRow
from haflow.metastore.repository._base import _Base, _pick

ROLES = ("Admin", "Op", "Viewer")
_FAILURES_KEPT = timedelta(days=1)


def _user(r: object) -> UserRow:
    return UserRow(**_pick(r, UserRow))


class UserQueries(_Base):
    def create(self, username: str, password_hash: str, role: str, now: datetime) -> UserRow:
        if role not in ROLES:
            raise InvalidRequest(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
        with self._tx() as conn:
            taken = conn.execute(select(m.WebUser.id).where(m.WebUser.username == username)).first()
            if taken:
                raise Conflict(f"user {username!r} already exists")
            conn.execute(
                insert(m.WebUser).values(
                    username=username, password_hash=password_hash, role=role, created_at=now
                )
            )
        return self.get(username)

    def get(self, username: str) -> UserRow:
        with self._tx() as conn:
            row = conn.execute(select(m.WebUser).where(m.WebUser.username == username)).first()
        if row is None:
            raise NotFound(f"no user {username!r} (see `haflow users list`)")
        return _user(row)

    def all(self) -> list[UserRow]:
        with self._tx() as conn:
            rows = conn.execute(select(m.WebUser).order_by(m.WebUser.username)).all()
        return [_user(r) for r in rows]

    def count(self) -> int:
        with self._tx() as conn:
            return int(conn.execute(select(func.count()).select_from(m.WebUser)).scalar_one())

    def set(
        self, username: str, *, password_hash: str | None = None, role: str | None = None
    ) -> None:
        values: dict[str, str] = {}
        if password_hash is not None:
            values["password_hash"] = password_hash
        if role is not None:
            if role not in ROLES:
                raise InvalidRequest(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
            values["role"] = role
        self.get(username)
        with self._tx() as conn:
            conn.execute(update(m.WebUser).where(m.WebUser.username == username).values(**values))

    def delete(self, username: str) -> None:
        user = self.get(username)
        with self._tx() as conn:
            conn.execute(delete(m.ApiToken).where(m.ApiToken.user_id == user.id))
            conn.execute(delete(m.WebUser).where(m.WebUser.id == user.id))

    def add_token(self, username: str, token_sha256: str, name: str, now: datetime) -> None:
        user = self.get(username)
        with self._tx() as conn:
            conn.execute(
                insert(m.ApiToken).values(
                    user_id=user.id, token_sha256=token_sha256, name=name, created_at=now
                )
            )

    def by_token(self, token_sha256: str) -> UserRow | None:
        with self._tx() as conn:
            row = conn.execute(
                select(m.WebUser)
                .join(m.ApiToken, m.ApiToken.user_id == m.WebUser.id)
                .where(m.ApiToken.token_sha256 == token_sha256)
            ).first()
        return None if row is None else _user(row)

    def reserve_login(
        self, address: str, username: str, now: datetime, since: datetime
    ) -> tuple[int, int, int]:
        """Record a login attempt as a failure *before* its password is checked, then count:
        (its row id, failures since `since` from `address`, failures for `username`), this one
        included. The insert commits first, so of simultaneous attempts each sees every one
        committed before it: no more than the limit can pass. `forget_login` takes a row back
        (the password was right, or the attempt was refused by the limit unchecked)."""
        f = m.LoginFailure
        name = username[:100]
        with self._tx() as conn:
            conn.execute(delete(f).where(f.ts < now - _FAILURES_KEPT))
            res = conn.execute(insert(f).values(address=address, username=name, ts=now))
            row_id = int(res.inserted_primary_key[0])  # type: ignore[index]
        with self._tx() as conn:
            by_address = conn.execute(
                select(func.count()).where(f.address == address, f.ts >= since)
            ).scalar_one()
            by_user = conn.execute(
                select(func.count()).where(f.username == name, f.ts >= since)
            ).scalar_one()
        return row_id, int(by_address), int(by_user)

    def forget_login(self, row_id: int) -> None:
        with self._tx() as conn:
            conn.execute(delete(m.LoginFailure).where(m.LoginFailure.id == row_id))

    def login_failures_since(self, address: str, since: datetime) -> int:
        f = m.LoginFailure
        with self._tx() as conn:
            return int(
                conn.execute(
                    select(func.count()).where(f.address == address, f.ts >= since)
                ).scalar_one()
            )
