"""What the web server keeps in the metastore: users, their sessions and API tokens, failed
logins.

Webservers hold no state of their own; everything two of them must agree on (who may log in,
which sessions are open, how many logins failed from an address) lives here. Session ids and
tokens are stored as SHA-256 digests only: a leaked table opens no session.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, func, insert, or_, select, update

from haflow.errors import Conflict, InvalidRequest, NotFound
from haflow.metastore import models as m
from haflow.metastore.records import TokenRow, UserRow
from haflow.metastore.repository._base import _Base, _pick

ROLES = ("Admin", "Op", "Viewer")
_KEPT = timedelta(days=1)  # failed logins and ended sessions, for the record


def _user(r: object) -> UserRow:
    return UserRow(**_pick(r, UserRow))


def _end_sessions(conn: Connection, which: Any, now: datetime, reason: str) -> None:
    s = m.WebSession
    conn.execute(
        update(s).where(which, s.ended_at.is_(None)).values(ended_at=now, end_reason=reason)
    )


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
        self,
        username: str,
        now: datetime,
        *,
        password_hash: str | None = None,
        role: str | None = None,
    ) -> None:
        """Change a password or a role. Either ends the user's sessions (they log in again,
        under the new role); a new password also revokes their API tokens."""
        values: dict[str, str] = {}
        if password_hash is not None:
            values["password_hash"] = password_hash
        if role is not None:
            if role not in ROLES:
                raise InvalidRequest(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
            values["role"] = role
        user = self.get(username)
        with self._tx() as conn:
            conn.execute(update(m.WebUser).where(m.WebUser.id == user.id).values(**values))
            reason = "password changed" if password_hash is not None else "role changed"
            _end_sessions(conn, m.WebSession.user_id == user.id, now, reason)
            if password_hash is not None:
                conn.execute(
                    update(m.ApiToken)
                    .where(m.ApiToken.user_id == user.id, m.ApiToken.revoked_at.is_(None))
                    .values(revoked_at=now)
                )

    def delete(self, username: str) -> None:
        user = self.get(username)
        with self._tx() as conn:
            conn.execute(delete(m.ApiToken).where(m.ApiToken.user_id == user.id))
            conn.execute(delete(m.WebSession).where(m.WebSession.user_id == user.id))
            conn.execute(delete(m.WebUser).where(m.WebUser.id == user.id))

    def add_token(
        self,
        username: str,
        token_sha256: str,
        name: str,
        now: datetime,
        expires_at: datetime | None = None,
    ) -> int:
        """Store a token's digest for `username`; its id (to list and revoke it by)."""
        user = self.get(username)
        with self._tx() as conn:
            res = conn.execute(
                insert(m.ApiToken).values(
                    user_id=user.id,
                    token_sha256=token_sha256,
                    name=name[:100],
                    created_at=now,
                    expires_at=expires_at,
                )
            )
            return int(res.inserted_primary_key[0])  # type: ignore[index]

    def by_token(self, token_sha256: str, now: datetime) -> UserRow | None:
        """The user of a token that is neither revoked nor expired."""
        t = m.ApiToken
        with self._tx() as conn:
            row = conn.execute(
                select(m.WebUser)
                .join(t, t.user_id == m.WebUser.id)
                .where(t.token_sha256 == token_sha256, t.revoked_at.is_(None))
                .where(or_(t.expires_at.is_(None), t.expires_at > now))
            ).first()
        return None if row is None else _user(row)

    def tokens(self, username: str | None = None) -> list[TokenRow]:
        t = m.ApiToken
        stmt = (
            select(t.id, m.WebUser.username, t.name, t.created_at, t.expires_at, t.revoked_at)
            .join(m.WebUser, m.WebUser.id == t.user_id)
            .order_by(t.id)
        )
        if username is not None:
            self.get(username)  # NotFound for an unknown user, rather than an empty list
            stmt = stmt.where(m.WebUser.username == username)
        with self._tx() as conn:
            return [TokenRow(**_pick(r, TokenRow)) for r in conn.execute(stmt)]

    def revoke_token(self, token_id: int, now: datetime) -> None:
        with self._tx() as conn:
            res = conn.execute(
                update(m.ApiToken)
                .where(m.ApiToken.id == token_id, m.ApiToken.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            if res.rowcount == 0:
                found = conn.execute(select(m.ApiToken.id).where(m.ApiToken.id == token_id))
                if found.first() is None:
                    raise NotFound(f"no API token {token_id} (see `haflow users tokens list`)")

    def open_session(
        self, username: str, sid_sha256: str, now: datetime, lifetime: timedelta
    ) -> None:
        """Record a login; sessions ended or expired a day ago are purged on the way."""
        user = self.get(username)
        s = m.WebSession
        with self._tx() as conn:
            conn.execute(delete(s).where(or_(s.expires_at < now - _KEPT, s.ended_at < now - _KEPT)))
            conn.execute(
                insert(s).values(
                    sid_sha256=sid_sha256,
                    user_id=user.id,
                    created_at=now,
                    expires_at=now + lifetime,
                )
            )

    def session_user(self, sid_sha256: str, now: datetime) -> UserRow | None:
        """The user of a session that is neither ended nor expired."""
        s = m.WebSession
        with self._tx() as conn:
            row = conn.execute(
                select(m.WebUser)
                .join(s, s.user_id == m.WebUser.id)
                .where(s.sid_sha256 == sid_sha256, s.ended_at.is_(None), s.expires_at > now)
            ).first()
        return None if row is None else _user(row)

    def end_session(self, sid_sha256: str, now: datetime, reason: str) -> None:
        with self._tx() as conn:
            _end_sessions(conn, m.WebSession.sid_sha256 == sid_sha256, now, reason)

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
            conn.execute(delete(f).where(f.ts < now - _KEPT))
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
