"""Users, roles, trust and rate limits, and the facts only curators may change.

Everything lives in SQLite, in the workspace's ``ledger.sqlite`` (WAL), in two tables of its own:
``users`` and ``protected_facts``. The ledger's ``edits`` and ``meta`` tables are never touched.

* **Roles**, lowest to highest: ``viewer`` (reads), ``editor`` (edits), ``curator`` (edits and
  reviews), ``admin`` (everything, including managing users). :func:`require_role` raises
  :class:`PermissionDenied` naming the role an action needs.
* **Tokens**: ``add`` and ``rotate_token`` return a random API token (``oe_…``) once; only its
  SHA-256 hash is stored. :meth:`UserStore.authenticate` compares hashes with
  ``hmac.compare_digest`` over every user, so its time does not depend on which hash matched.
* **Trust** in [minimum, maximum] moves with the outcome of each edit (:class:`TrustPolicy`);
  an editor whose trust falls below ``review_below`` has their edits held for review.
* **Rate limits** per role (:class:`RateLimit`, edits per minute, 0 = unlimited); the caller
  counts the user's ledger entries of the last 60 s and calls :meth:`UserStore.check_rate`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path

from oneedit.core import (
    PermissionDenied,
    PolicyError,
    ProtectedFactError,
    RateLimitError,
    Triple,
    UserError,
    UserExistsError,
)
from oneedit.core.sqlite import LockedConnection

ROLES: tuple[str, ...] = ("viewer", "editor", "curator", "admin")
OUTCOMES: tuple[str, ...] = ("accepted", "rejected", "rolled_back")
TOKEN_PREFIX = "oe_"
#: days an API token works after it is issued or rotated (``policy.token_days``; 0: forever)
DEFAULT_TOKEN_DAYS = 90
NAME_PATTERN = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")

_DDL = """
CREATE TABLE IF NOT EXISTS users (
    name       TEXT PRIMARY KEY,
    role       TEXT NOT NULL CHECK (role IN ('viewer','editor','curator','admin')),
    trust      REAL NOT NULL,
    created    TEXT NOT NULL,
    active     INTEGER NOT NULL DEFAULT 1,
    token_hash TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS protected_facts (
    subject  TEXT NOT NULL,
    relation TEXT NOT NULL,
    object   TEXT NOT NULL,
    by       TEXT NOT NULL,
    time     TEXT NOT NULL,
    reason   TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (subject, relation, object)
);
"""


# -- roles -----------------------------------------------------------------------------------

def check_role(role: str) -> str:
    """``role`` if it is one of :data:`ROLES`, else a :class:`UserError` listing them."""
    if role not in ROLES:
        raise UserError(f"Unknown role {role!r}.", hint=f"Use one of: {', '.join(ROLES)}.",
                        details={"role": role, "roles": list(ROLES)})
    return role


def role_rank(role: str) -> int:
    """0 for viewer … 3 for admin."""
    return ROLES.index(check_role(role))


def can_edit(role: str) -> bool:
    return role_rank(role) >= ROLES.index("editor")


def can_review(role: str) -> bool:
    """Curators and admins review held edits and change protected facts."""
    return role_rank(role) >= ROLES.index("curator")


def can_admin(role: str) -> bool:
    return role == "admin"


def require_role(user: User, needed: str, action: str) -> None:
    """Raise :class:`PermissionDenied` unless ``user`` is active and has ``needed`` or a higher role."""
    if not user.active:
        raise PermissionDenied(f"User {user.name!r} is deactivated and cannot {action}.",
                               hint="Ask an admin to add a user for you (`oneedit users add NAME --role ROLE`).",
                               details={"user": user.name, "needed": needed, "action": action})
    if role_rank(user.role) < role_rank(needed):
        higher = [r for r in ROLES if ROLES.index(r) > ROLES.index(needed)]
        roles = " or ".join([needed, *higher])
        raise PermissionDenied(
            f"To {action} you need the role {roles}; user {user.name!r} has the role {user.role!r}.",
            hint=f"Ask an admin: `oneedit users set-role {user.name} {needed}`.",
            details={"user": user.name, "role": user.role, "needed": needed, "action": action})


#: What each action needs: the lowest role allowed (``rollback`` and ``see`` also allow the
#: edit's own author, see :func:`may`). One table, used by the CLI, the service and the tools.
PERMISSIONS: dict[str, tuple[str, str]] = {
    "read": ("viewer", "read the KG and the ledger"),
    "ask": ("viewer", "ask questions"),
    "edit": ("editor", "editing"),
    "import": ("editor", "importing"),
    "rollback": ("curator", "rolling back other users' edits"),
    "see": ("curator", "seeing other users' edits"),
    "review": ("curator", "reviewing"),
    "protect": ("curator", "protecting facts"),
    "rollback_to": ("curator", "`rollback --to`"),
    "manage_users": ("admin", "managing users"),
}
#: Permissions an edit's own author has on it whatever their role (an editor rolls back their own).
OWN: dict[str, str] = {"rollback": "editor", "see": "viewer"}
_OWN_VERB = {"rollback": "roll back", "see": "see"}


def may(user: User, permission: str, author: str | None = None) -> bool:
    """Whether ``user`` may do ``permission`` (on an edit by ``author``, for ``rollback``/``see``)."""
    needed, _ = PERMISSIONS[permission]
    if not user.active:
        return False
    if author is not None and author == user.name and permission in OWN:
        needed = OWN[permission]
    return role_rank(user.role) >= role_rank(needed)


def require(user: User, permission: str, author: str | None = None, *, what: str | None = None) -> None:
    """Raise :class:`PermissionDenied` unless :func:`may`; ``what`` names the resource in the message."""
    if may(user, permission, author):
        return
    needed, action = PERMISSIONS[permission]
    if not user.active:
        raise PermissionDenied(f"User {user.name!r} is deactivated; {action} needs an active user.",
                               hint="Ask an admin to add a user for you (`oneedit users add NAME --role ROLE`).",
                               details={"user": user.name, "permission": permission})
    if permission in OWN and author is not None:
        raise PermissionDenied(f"{what or 'It'} is {author}'s; {user.name} ({user.role}) may {_OWN_VERB[permission]} "
                               f"only their own edits. {action[0].upper() + action[1:]} needs the {needed} role.",
                               hint="Curators and admins can act on anyone's edits.",
                               details={"user": user.name, "role": user.role, "permission": permission})
    raise PermissionDenied(f"{user.name} is a {user.role}; {action} needs the {needed} role or higher.",
                           hint=f"Ask an admin: `oneedit users set-role {user.name} {needed}`.",
                           details={"user": user.name, "role": user.role, "needed": needed, "permission": permission})


# -- records and policies --------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: str
    trust: float
    created: str
    active: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


def _check_keys(kind: str, d: Mapping, known: Iterable[str]) -> None:
    if not isinstance(d, Mapping):
        raise PolicyError(f"The {kind} settings must be a mapping, not {type(d).__name__}.",
                          hint=f"Write them as `key: value` pairs; keys: {', '.join(known)}.")
    unknown = sorted(str(k) for k in d if k not in set(known))
    if unknown:
        raise PolicyError(f"Unknown {kind} setting(s): {', '.join(unknown)}.",
                          hint=f"Known {kind} settings: {', '.join(known)}. Fix the workspace's config.yaml.",
                          details={"unknown": unknown, "known": list(known)})


@dataclass(frozen=True, slots=True)
class TrustPolicy:
    """Where trust starts, how each outcome moves it, and below which value edits are reviewed."""

    initial: float = 0.5
    review_below: float = 0.3
    accepted: float = 0.02
    rejected: float = -0.05
    rolled_back: float = -0.1
    minimum: float = 0.0
    maximum: float = 1.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise PolicyError(f"The trust setting {f.name!r} must be a number, not {value!r}.",
                                  hint="Fix the trust settings in the workspace's config.yaml.")
        if not self.minimum <= self.initial <= self.maximum or self.minimum >= self.maximum:
            raise PolicyError(f"Trust settings need minimum < maximum and minimum <= initial <= maximum; "
                              f"got minimum={self.minimum}, initial={self.initial}, maximum={self.maximum}.",
                              hint="Fix the trust settings in the workspace's config.yaml.")

    @classmethod
    def from_dict(cls, d: Mapping) -> TrustPolicy:
        known = [f.name for f in fields(cls)]
        _check_keys("trust", d, known)
        return cls(**dict(d))

    def delta(self, outcome: str) -> float:
        if outcome not in OUTCOMES:
            raise UserError(f"Unknown edit outcome {outcome!r}.", hint=f"Use one of: {', '.join(OUTCOMES)}.")
        return float(getattr(self, outcome))

    def to_dict(self) -> dict:
        return asdict(self)


DEFAULT_RATES: dict[str, int] = {"viewer": 0, "editor": 30, "curator": 0, "admin": 0}


@dataclass(frozen=True, slots=True)
class RateLimit:
    """Edits per minute for each role; 0 means unlimited."""

    per_minute: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_RATES))

    def __post_init__(self) -> None:
        _check_keys("rate limit", self.per_minute, ROLES)
        for role, n in self.per_minute.items():
            if isinstance(n, bool) or not isinstance(n, int) or n < 0:
                raise PolicyError(f"The rate limit for {role!r} must be a whole number >= 0 "
                                  f"(edits per minute, 0 = unlimited), not {n!r}.",
                                  hint="Fix the rate limits in the workspace's config.yaml.")

    @classmethod
    def from_dict(cls, d: Mapping) -> RateLimit:
        """Roles -> edits per minute, over the defaults (``{"editor": 10}`` changes only editors)."""
        _check_keys("rate limit", d, ROLES)
        return cls({**DEFAULT_RATES, **dict(d)})

    def limit(self, role: str) -> int:
        return int(self.per_minute.get(check_role(role), 0))

    def to_dict(self) -> dict:
        return dict(self.per_minute)


# -- storage ---------------------------------------------------------------------------------

def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


class _Db:
    """One WAL connection to the workspace's SQLite file, shared by threads (every statement
    under its lock; writes that read first hold it around both)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._db = LockedConnection(self.path)
        self._lock = self._db.lock
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_DDL)

    def close(self) -> None:
        self._db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class UserStore(_Db):
    """The workspace's users (``users`` table of ``ledger.sqlite``)."""

    _COLS = "name, role, trust, created, active"

    def __init__(self, path: str | Path, trust: TrustPolicy = TrustPolicy(), *, owner: str | None = None,
                 token_days: float = DEFAULT_TOKEN_DAYS):
        super().__init__(path)
        self.trust = trust
        #: the workspace's own user (who runs the CLI on its files): never deactivated or demoted
        self.owner = owner
        #: days a token works after it is issued (0: forever)
        self.token_days = token_days
        self._local: str | None = None
        cols = {r[1] for r in self._db.execute("PRAGMA table_info(users)")}
        if "token_expires" not in cols:  # ledgers before tokens expired: theirs run from now
            with self._lock:
                self._db.execute("ALTER TABLE users ADD COLUMN token_expires TEXT")
                self._db.execute("UPDATE users SET token_expires = ?", (self._expiry(),))

    def _expiry(self) -> str | None:
        if not self.token_days:
            return None
        return (datetime.now(UTC) + timedelta(days=self.token_days)).isoformat(timespec="seconds")

    # -- reading -----------------------------------------------------------------------------
    @staticmethod
    def _user(row) -> User:
        return User(row[0], row[1], float(row[2]), row[3], bool(row[4]))

    def find(self, name: str) -> User | None:
        row = self._db.execute(f"SELECT {self._COLS} FROM users WHERE name = ?", (name,)).fetchone()
        return None if row is None else self._user(row)

    def get(self, name: str) -> User:
        user = self.find(name)
        if user is None:
            raise UserError(f"No user named {name!r}.",
                            hint=f"Add one with `oneedit users add {name} --role ROLE` "
                                 "(`oneedit users list` shows who exists).",
                            details={"user": name})
        return user

    def list(self) -> list[User]:
        return [self._user(r) for r in self._db.execute(f"SELECT {self._COLS} FROM users ORDER BY name")]

    # -- managing ----------------------------------------------------------------------------
    @staticmethod
    def check_name(name: str) -> str:
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise UserError(f"Invalid user name {name!r}.",
                            hint="Use 1-64 characters: letters, digits and . _ - @ (no spaces).",
                            details={"user": name})
        return name

    def add(self, name: str, role: str) -> tuple[User, str]:
        """Create a user; returns it and its API token (shown this once, stored only hashed)."""
        self.check_name(name)
        check_role(role)
        token = _new_token()
        try:
            with self._lock:
                self._db.execute("INSERT INTO users (name, role, trust, created, active, token_hash, token_expires) "
                                 "VALUES (?, ?, ?, ?, 1, ?, ?)",
                                 (name, role, float(self.trust.initial), _now(), _hash(token), self._expiry()))
        except sqlite3.IntegrityError:
            existing = self.get(name)
            state = "" if existing.active else " (deactivated)"
            raise UserExistsError(
                f"A user named {name!r} already exists{state}, with the role {existing.role!r}.",
                hint="Pick another name (names are never reused: the ledger records authors by name); "
                     "`oneedit users list` shows every user.",
                details={"user": name}) from None
        return self.get(name), token

    def ensure(self, name: str, role: str) -> User:
        """The user ``name``, created with ``role`` if missing (its token is not shown; rotate it to get one)."""
        user = self.find(name)
        if user is not None:
            return user
        try:
            return self.add(name, role)[0]
        except UserExistsError:  # created by another process in between
            return self.get(name)

    def _active_admins(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM users WHERE role = 'admin' AND active = 1")
                   .fetchone()[0])

    def _keep_an_admin(self, user: User, action: str) -> None:
        if user.name == self.owner:
            raise UserError(f"Cannot {action} {user.name!r}: it is this workspace's own user (the CLI acts as it).",
                            hint="Its access is the workspace's files; to hand the workspace over, set `user:` "
                                 "in the workspace's config.yaml.", details={"user": user.name})
        if user.role == "admin" and user.active and self._active_admins() <= 1:
            raise UserError(f"Cannot {action} {user.name!r}: it is the only active admin.",
                            hint="Make another user admin first: `oneedit users set-role NAME admin`.",
                            details={"user": user.name})

    def set_role(self, name: str, role: str) -> User:
        check_role(role)
        with self._lock:
            user = self.get(name)
            if role != "admin":
                self._keep_an_admin(user, "change the role of")
            self._db.execute("UPDATE users SET role = ? WHERE name = ?", (role, name))
        return self.get(name)

    def deactivate(self, name: str) -> User:
        """Deactivate (the record stays, so the ledger's authors stay resolvable); idempotent."""
        with self._lock:
            user = self.get(name)
            self._keep_an_admin(user, "remove")
            self._db.execute("UPDATE users SET active = 0 WHERE name = ?", (name,))
        return self.get(name)

    def activate(self, name: str) -> User:
        with self._lock:
            self.get(name)
            self._db.execute("UPDATE users SET active = 1 WHERE name = ?", (name,))
        return self.get(name)

    def rotate_token(self, name: str) -> str:
        """A new API token for ``name`` (the old one stops working at once)."""
        token = _new_token()
        with self._lock:
            user = self.get(name)
            if not user.active:
                raise UserError(f"User {name!r} is deactivated; it gets no new token.",
                                hint="Add a new user instead: `oneedit users add NAME --role ROLE`.",
                                details={"user": name})
            self._db.execute("UPDATE users SET token_hash = ?, token_expires = ? WHERE name = ?",
                             (_hash(token), self._expiry(), name))
        return token

    def token_expires(self, name: str) -> str | None:
        row = self._db.execute("SELECT token_expires FROM users WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def authenticate(self, token: str) -> User | None:
        """The active user whose token this is, else None.

        Every stored hash is compared with ``hmac.compare_digest`` (no early exit), so the time
        taken does not say which hash, or how much of one, matched.
        """
        return self.check_token(token)[0]

    def local_token(self) -> str:
        """The token of this process's local clients: the CLI on this machine asking a running
        server (``oneedit history``, ``oneedit ask``). It stands for the workspace's owner, lives in
        memory only (never in the table), and is handed out in the workspace's ``writer.json``
        (mode 0600): whoever can read that file can read the workspace's ledger anyway."""
        if self._local is None:
            self._local = _new_token()
        return self._local

    def check_token(self, token: str) -> tuple[User | None, str]:
        """``(user, "")`` for a good token, else ``(None, why)``: ``"unknown"``, ``"inactive"`` or
        ``"expired"`` (compared in constant time, as :meth:`authenticate` says)."""
        if not isinstance(token, str) or not token.startswith(TOKEN_PREFIX):
            return None, "unknown"
        if self._local is not None and self.owner and hmac.compare_digest(token, self._local):
            return self.find(self.owner), ""
        digest = _hash(token)
        found = None
        for name, stored, active, expires in self._db.execute(
                "SELECT name, token_hash, active, token_expires FROM users"):
            if hmac.compare_digest(stored, digest):
                found = (name, active, expires)
        if found is None:
            return None, "unknown"
        name, active, expires = found
        if not active:
            return None, "inactive"
        if expires and datetime.fromisoformat(expires) <= datetime.now(UTC):
            return None, "expired"
        return self.find(name), ""

    # -- trust and limits --------------------------------------------------------------------
    def adjust_trust(self, name: str, outcome: str) -> float:
        """Move ``name``'s trust by the policy's delta for ``outcome``, clamped; the new trust."""
        delta = self.trust.delta(outcome)
        with self._lock:
            self.get(name)
            self._db.execute("UPDATE users SET trust = ROUND(MIN(MAX(trust + ?, ?), ?), 6) WHERE name = ?",
                             (delta, self.trust.minimum, self.trust.maximum, name))
        return self.get(name).trust

    def needs_review(self, user: User) -> bool:
        """True when ``user``'s edits should wait for a curator: trust below ``review_below``.

        Curators and admins are never held.
        """
        return not can_review(user.role) and user.trust < self.trust.review_below

    def check_rate(self, name: str, role: str, recent_count: int, limits: RateLimit) -> None:
        """Raise :class:`RateLimitError` when ``recent_count`` edits in the last minute reach the role's limit."""
        limit = limits.limit(role)
        if limit and recent_count >= limit:
            raise RateLimitError(
                f"User {name!r} has made {recent_count} edits in the last minute; "
                f"the role {role!r} allows {limit} per minute.",
                hint=f"Wait a minute and try again (at most {limit} edits per minute for {role}s), "
                     "or ask an admin to raise the limit.",
                details={"user": name, "role": role, "recent": recent_count, "limit": limit, "window_s": 60})


class ProtectedFacts(_Db):
    """Facts only curators and admins may change (``protected_facts`` table of ``ledger.sqlite``)."""

    _CHUNK = 300  # triples per query (3 parameters each, under SQLite's oldest limit of 999)

    def protect(self, triple: Triple, by: str, reason: str = "") -> bool:
        """Protect ``triple``; False when it already was (the first protection's record is kept)."""
        with self._lock:
            cur = self._db.execute("INSERT OR IGNORE INTO protected_facts VALUES (?, ?, ?, ?, ?, ?)",
                                   (*triple.as_tuple(), by, _now(), reason))
        return cur.rowcount == 1

    def unprotect(self, triple: Triple) -> None:
        with self._lock:
            cur = self._db.execute("DELETE FROM protected_facts WHERE subject = ? AND relation = ? AND object = ?",
                                   triple.as_tuple())
        if cur.rowcount == 0:
            raise ProtectedFactError(f"The fact {triple} is not protected.",
                                     hint="List the protected facts to check the ids.",
                                     details={"triple": list(triple.as_tuple())})

    def is_protected(self, triple: Triple) -> bool:
        return self._db.execute("SELECT 1 FROM protected_facts WHERE subject = ? AND relation = ? AND object = ?",
                                triple.as_tuple()).fetchone() is not None

    def which(self, triples: Iterable[Triple]) -> set[Triple]:
        """The protected ones among ``triples`` (one query per 300)."""
        todo = list(set(triples))
        out: set[Triple] = set()
        for i in range(0, len(todo), self._CHUNK):
            chunk = todo[i:i + self._CHUNK]
            values = ", ".join(["(?, ?, ?)"] * len(chunk))
            params = [v for t in chunk for v in t.as_tuple()]
            rows = self._db.execute(f"SELECT subject, relation, object FROM protected_facts "
                                    f"WHERE (subject, relation, object) IN (VALUES {values})", params)
            out.update(Triple(*r) for r in rows)
        return out

    def list(self) -> list[dict]:
        rows = self._db.execute("SELECT subject, relation, object, by, time, reason FROM protected_facts "
                                "ORDER BY subject, relation, object")
        return [dict(zip(("subject", "relation", "object", "by", "time", "reason"), r)) for r in rows]
