"""Users, sessions, API tokens, the one-time setup code and the login rate limit.

Everything secret is stored hashed in its own SQLite file (``data_dir/auth.db``), apart
from the site's policy store, so an access-log export or a policy backup never carries a
login secret:

- passwords: scrypt (``hashlib.scrypt``, a random 16-byte salt per password); a verifying
  hash is recomputed and compared in constant time;
- session ids, API tokens and the setup code: random values with 128+ bits of entropy,
  stored as SHA-256 only (a slow hash adds nothing to a value that cannot be guessed);
- the setup code is single-use: creating the first admin consumes it, and no new code
  can be made once an admin exists.

The store is synchronous (SQLite under a lock) and small. The expensive methods (those
that hash a password) run on the store's own small `HashPool`, never on the loop's default
executor: a flood of logins then queues behind one or two scrypt threads while token and
session lookups, presentations and everything else go on (issue 9, finding 7).
The login rate limiter is a separate in-memory object with an injected clock
(edge/loginlimit.py); an attempt is counted (`LoginLimiter.reserve`) *before* its
password is hashed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import hmac
import os
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Self

from doorkeep.errors import AuthError, Conflict, NotFound
from edge.readers.tokens import ReaderTokens
from edge.store import SchemaTooNewError

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar

    T = TypeVar("T")

# Module-level so tests can shrink them (scrypt cost, timeouts); see docs/security.md.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
MIN_PASSWORD_LEN = 12
SESSION_IDLE_S = 30 * 60
SESSION_MAX_S = 12 * 60 * 60
# Touching last_seen on every request would be a write per request; a minute is plenty.
SESSION_TOUCH_S = 60
# One scrypt at a time (~50 ms, 16 MiB each): a gateway has few cores and the event loop
# needs one; more waiting than HASH_QUEUE_MAX is answered 429 at once.
HASH_WORKERS = 1
HASH_QUEUE_MAX = 16
# The hashing thread's niceness (Linux: per thread): the loop, whose presentations wait
# for milliseconds, always wins the CPU over a password check that takes ~50 ms anyway.
HASH_NICENESS = 19

_USERNAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._-")
_SETUP_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud, typed on a phone


class Role(StrEnum):
    """Who may do what; the order of the members is the order of privilege."""

    VIEWER = "viewer"
    INSTALLER = "installer"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        """0 for viewer, 1 for installer, 2 for admin."""
        return list(Role).index(self)

    def allows(self, needed: Role) -> bool:
        """True when this role may do what ``needed`` may do."""
        return self.rank >= needed.rank


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: a logged-in user or an API token."""

    kind: str  # "user" | "token"
    name: str
    role: Role
    session_hash: str | None = None
    csrf_token: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in {"user", "token"}:
            raise ValueError(f"principal kind must be user or token, not {self.kind!r}")

    @property
    def actor(self) -> str:
        """The audit-log name: ``admin:alice``, ``installer:bob`` or ``token:ci``."""
        if self.kind == "token":
            return f"token:{self.name}"
        return f"{self.role.value}:{self.name}"


@dataclass(frozen=True, slots=True)
class NewSession:
    """A session just made at login: the cookie value is shown once, stored hashed."""

    session_id: str
    csrf_token: str
    principal: Principal


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def hash_password(password: str) -> str:
    """Return ``scrypt$n$r$p$salt$hash`` (hex) for ``password``."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32
    )
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


@functools.cache
def _dummy_hash(n: int, r: int, p: int) -> str:
    """A hash of nobody's password at the given cost, made once per process: an unknown
    user name is checked against it, one scrypt run like a real check. (Hashing a fresh
    one each time made it two: twice the work per made-up name in a flood.)"""
    del n, r, p  # only the cache key: tests change the module's cost
    return hash_password(secrets.token_urlsafe(16))


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` matches ``stored`` (as made by `hash_password`)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    computed = hashlib.scrypt(
        password.encode(),
        salt=bytes.fromhex(salt),
        n=int(n),
        r=int(r),
        p=int(p),
        dklen=len(digest) // 2,
    )
    return hmac.compare_digest(computed.hex(), digest)


def check_username(username: str) -> str:
    """Return the username or raise ValueError naming what to change."""
    if not 1 <= len(username) <= 64 or not set(username) <= _USERNAME_CHARS:
        raise ValueError(
            "username must be 1-64 characters of lower-case letters, digits, '.', '_' or '-'"
        )
    return username


def check_password(password: str) -> str:
    """Return the password or raise ValueError when it is too short."""
    if len(password) < MIN_PASSWORD_LEN:
        raise ValueError(f"password must be at least {MIN_PASSWORD_LEN} characters long")
    return password


# The auth database's schema version (PRAGMA user_version). A change to its tables bumps
# it and adds the step from the version before to ``open``, as edge/store/_schema.py does.
AUTH_SCHEMA = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    username TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    password TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    id_hash TEXT PRIMARY KEY,
    username TEXT NOT NULL REFERENCES users(username) ON DELETE CASCADE,
    csrf TEXT NOT NULL,
    created REAL NOT NULL,
    last_seen REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS setup_code (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    code_hash TEXT NOT NULL,
    created REAL NOT NULL
);
"""


class HashPoolBusy(Exception):
    """More password checks are waiting than `HASH_QUEUE_MAX`: try again shortly."""


class HashPool:
    """Password hashing off the loop, at most `HASH_WORKERS` at a time, bounded waiting.

    Not the loop's default executor: that one serves token and session lookups and the
    rest of ``asyncio.to_thread``, which must not wait behind a flood of scrypt work.
    Each check runs on a short-lived thread of its own (``doorkeep-scrypt``; starting one
    costs far less than the 50 ms of scrypt), so no idle worker outlives the store. The
    thread runs at the lowest CPU priority (`HASH_NICENESS`): scrypt releases the GIL, so
    on a two-core gateway it competes with the event loop for a core, and the loop must
    win (docs/performance.md, "Login flood").
    """

    def __init__(self, workers: int | None = None, queue_max: int | None = None) -> None:
        self.workers = workers or HASH_WORKERS
        self.queue_max = queue_max or HASH_QUEUE_MAX
        self.pending = 0
        self._slots: asyncio.Semaphore | None = None
        self._threads: set[threading.Thread] = set()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on a hashing thread; HashPoolBusy when too many already wait."""
        if self.pending >= self.queue_max:
            raise HashPoolBusy("too many password checks at once")
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.workers)
        self.pending += 1
        try:
            async with self._slots:
                return await self._on_thread(fn, *args)
        finally:
            self.pending -= 1

    async def _on_thread(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[T] = loop.create_future()

        def settle(result: T | None, err: BaseException | None) -> None:
            if done.cancelled():
                return
            if err is not None:
                done.set_exception(err)
            else:
                done.set_result(result)  # type: ignore[arg-type]

        def work() -> None:
            _lowest_priority()
            try:
                result = fn(*args)
            except BaseException as err:
                loop.call_soon_threadsafe(settle, None, err)
            else:
                loop.call_soon_threadsafe(settle, result, None)
            finally:
                self._threads.discard(threading.current_thread())

        thread = threading.Thread(target=work, name="doorkeep-scrypt", daemon=True)
        self._threads.add(thread)
        thread.start()
        return await done

    def close(self) -> None:
        """Wait for a check that is still running (a few tens of ms)."""
        for thread in list(self._threads):
            thread.join(5)


def _lowest_priority() -> None:
    """Give the calling thread alone `HASH_NICENESS` (on Linux a thread id is a valid
    PRIO_PROCESS target and niceness is per thread); a no-op where that is refused."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASH_NICENESS)


class AuthStore:
    """The login database of one site. Open with `AuthStore.open(path)`; close when done.

    ``hashing`` is the pool the web layer runs `authenticate`, `create_user` and
    `complete_setup` on.
    """

    def __init__(self, conn: sqlite3.Connection, clock: Callable[[], float] = time.time) -> None:
        self._db = conn
        self._lock = threading.Lock()
        self._clock = clock
        self.hashing = HashPool()
        self.readers = ReaderTokens(conn, self._lock, clock)  # edge/readers/tokens.py

    @classmethod
    def open(cls, path: Path | str, *, clock: Callable[[], float] = time.time) -> Self:
        """Open (and create, with mode 0600) the auth database at ``path``."""
        path = Path(path)
        if str(path) != ":memory:":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600, exist_ok=True)
        conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > AUTH_SCHEMA:  # a newer doorkeep wrote it: refuse rather than corrupt
            conn.close()
            raise SchemaTooNewError(
                f"{path}: auth schema version {version} is newer than this doorkeep "
                f"supports ({AUTH_SCHEMA}); upgrade doorkeep or restore an older backup"
            )
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.executescript(_SCHEMA)  # version 0 (before it was counted) has these tables
        conn.execute(f"PRAGMA user_version = {AUTH_SCHEMA}")
        return cls(conn, clock)

    def close(self) -> None:
        """Close the database and the hash pool."""
        self.hashing.close()
        with self._lock:
            self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- users ---------------------------------------------------------------------------

    def has_admin(self) -> bool:
        """True once at least one admin account exists."""
        with self._lock:
            row = self._db.execute("SELECT 1 FROM users WHERE role = 'admin' LIMIT 1").fetchone()
        return row is not None

    def create_user(self, username: str, password: str, role: Role | str) -> dict[str, str]:
        """Create a user (slow: hashes the password). Conflict if the name is taken."""
        role = Role(role)
        check_username(username)
        hashed = hash_password(check_password(password))
        with self._lock:
            try:
                self._db.execute(
                    "INSERT INTO users (username, role, password, created) VALUES (?, ?, ?, ?)",
                    (username, role.value, hashed, self._clock()),
                )
            except sqlite3.IntegrityError as err:
                raise Conflict(f"user {username!r} already exists") from err
        return {"username": username, "role": role.value}

    def list_users(self) -> list[dict[str, str]]:
        """Every user with their role (never a password hash)."""
        with self._lock:
            rows = self._db.execute("SELECT username, role FROM users ORDER BY username").fetchall()
        return [{"username": u, "role": r} for u, r in rows]

    def delete_user(self, username: str) -> None:
        """Delete a user and their sessions; refuses to remove the last admin."""
        with self._lock:
            row = self._db.execute(
                "SELECT role FROM users WHERE username = ?", (username,)
            ).fetchone()
            if row is None:
                raise NotFound(f"no user {username!r}")
            admins = self._db.execute("SELECT COUNT(*) FROM users WHERE role='admin'").fetchone()
            if row[0] == Role.ADMIN and admins[0] <= 1:
                raise Conflict("the last admin cannot be deleted; create another admin first")
            self._db.execute("DELETE FROM sessions WHERE username = ?", (username,))
            self._db.execute("DELETE FROM users WHERE username = ?", (username,))

    def authenticate(self, username: str, password: str) -> Principal | None:
        """The user when the password is right, else None (slow: runs scrypt)."""
        with self._lock:
            row = self._db.execute(
                "SELECT role, password FROM users WHERE username = ?", (username,)
            ).fetchone()
        if row is None:
            # Spend the same time as a real check (one scrypt run against a stand-in
            # hash), so timing does not reveal user names.
            verify_password(password, _dummy_hash(SCRYPT_N, SCRYPT_R, SCRYPT_P))
            return None
        if not verify_password(password, row[1]):
            return None
        return Principal("user", username, Role(row[0]))

    # -- sessions ------------------------------------------------------------------------

    def create_session(self, username: str, *, replaces: str | None = None) -> NewSession:
        """A fresh session for ``username``; the session ``replaces`` (a cookie) ends."""
        session_id = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        now = self._clock()
        with self._lock:
            row = self._db.execute(
                "SELECT role FROM users WHERE username = ?", (username,)
            ).fetchone()
            if row is None:
                raise NotFound(f"no user {username!r}")
            if replaces:
                self._db.execute("DELETE FROM sessions WHERE id_hash = ?", (_sha256(replaces),))
            self._db.execute(
                "INSERT INTO sessions (id_hash, username, csrf, created, last_seen)"
                " VALUES (?, ?, ?, ?, ?)",
                (_sha256(session_id), username, csrf, now, now),
            )
        principal = Principal("user", username, Role(row[0]), _sha256(session_id), csrf)
        return NewSession(session_id, csrf, principal)

    def session(self, session_id: str) -> Principal | None:
        """The user of a live session, or None when unknown, idle too long or too old."""
        id_hash = _sha256(session_id)
        now = self._clock()
        with self._lock:
            row = self._db.execute(
                "SELECT s.username, u.role, s.csrf, s.created, s.last_seen FROM sessions s"
                " JOIN users u ON u.username = s.username WHERE s.id_hash = ?",
                (id_hash,),
            ).fetchone()
            if row is None:
                return None
            username, role, csrf, created, last_seen = row
            if now - last_seen > SESSION_IDLE_S or now - created > SESSION_MAX_S:
                self._db.execute("DELETE FROM sessions WHERE id_hash = ?", (id_hash,))
                return None
            if now - last_seen > SESSION_TOUCH_S:
                self._db.execute(
                    "UPDATE sessions SET last_seen = ? WHERE id_hash = ?", (now, id_hash)
                )
        return Principal("user", username, Role(role), id_hash, csrf)

    def end_session(self, session_id: str) -> None:
        """Log out: forget the session."""
        self.end_session_by_hash(_sha256(session_id))

    def end_session_by_hash(self, id_hash: str) -> None:
        """Forget the session whose id hashes to ``id_hash`` (see `Principal.session_hash`)."""
        with self._lock:
            self._db.execute("DELETE FROM sessions WHERE id_hash = ?", (id_hash,))

    # -- API tokens ----------------------------------------------------------------------

    def create_token(self, role: Role | str, name: str) -> str:
        """Make an API token; the return value is the only time it is ever seen."""
        role = Role(role)
        check_username(name)
        token = "dk_" + secrets.token_urlsafe(32)
        with self._lock:
            try:
                self._db.execute(
                    "INSERT INTO tokens (name, role, token_hash, created) VALUES (?, ?, ?, ?)",
                    (name, role.value, _sha256(token), self._clock()),
                )
            except sqlite3.IntegrityError as err:
                raise Conflict(f"a token named {name!r} already exists") from err
        return token

    def token(self, token: str) -> Principal | None:
        """The principal of a bearer token, or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT name, role FROM tokens WHERE token_hash = ?", (_sha256(token),)
            ).fetchone()
        return None if row is None else Principal("token", row[0], Role(row[1]))

    def list_tokens(self) -> list[dict[str, object]]:
        """Every token's name, role and creation time (never the token)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT name, role, created FROM tokens ORDER BY name"
            ).fetchall()
        return [{"name": n, "role": r, "created": c} for n, r, c in rows]

    def delete_token(self, name: str) -> None:
        """Revoke a token by name."""
        with self._lock:
            cur = self._db.execute("DELETE FROM tokens WHERE name = ?", (name,))
        if cur.rowcount == 0:
            raise NotFound(f"no token {name!r}")

    # -- setup code ----------------------------------------------------------------------

    def new_setup_code(self) -> str:
        """A new one-time setup code (replacing any earlier one); Conflict once an admin exists."""
        if self.has_admin():
            raise Conflict("an admin already exists; log in instead of using a setup code")
        raw = "".join(secrets.choice(_SETUP_ALPHABET) for _ in range(16))  # 80 bits
        code = "-".join(raw[i : i + 4] for i in range(0, 16, 4))
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO setup_code (one, code_hash, created) VALUES (1, ?, ?)",
                (_sha256(_normalise_code(code)), self._clock()),
            )
        return code

    def setup_required(self) -> bool:
        """True while nobody can log in yet (no admin)."""
        return not self.has_admin()

    def complete_setup(self, code: str, username: str, password: str) -> Principal:
        """Create the first admin with the setup code; the code is dead afterwards."""
        check_username(username)
        check_password(password)
        hashed = hash_password(password)
        with self._lock:
            row = self._db.execute("SELECT code_hash FROM setup_code WHERE one = 1").fetchone()
            if row is None or not hmac.compare_digest(row[0], _sha256(_normalise_code(code))):
                raise AuthError("the setup code is wrong or has been used")
            # One transaction: consume the code and create the admin, or neither.
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("DELETE FROM setup_code")
                self._db.execute(
                    "INSERT INTO users (username, role, password, created) VALUES (?, ?, ?, ?)",
                    (username, Role.ADMIN.value, hashed, self._clock()),
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        return Principal("user", username, Role.ADMIN)


def _normalise_code(code: str) -> str:
    return "".join(ch for ch in code.upper() if ch.isalnum())
