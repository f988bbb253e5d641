"""The bottom layer of the store: connections, transactions and threads for one engine.

A :class:`Database` owns every connection to one database, SQLite (the embedded default)
or PostgreSQL, and runs *interactions* — plain functions ``fn(txn, *args)`` holding the
SQL, named ``*_txn`` in the store modules above — off the reactor thread:

* **Writes** (:meth:`Database.run_interaction`) go to ONE writer thread with its own
  connection. It takes everything waiting (up to ``max_batch``), runs each interaction in
  its own ``SAVEPOINT`` inside one transaction and commits once, so a burst of uploads
  costs one fsync instead of one each (group commit). An interaction that raises is rolled
  back to its savepoint and only its caller sees the error; the others commit. A failure
  of the transaction itself (``BEGIN``/``COMMIT``, a lost connection) fails every caller
  of the batch, and nothing of the batch is stored — except a kept connection found
  lost at ``BEGIN`` (PostgreSQL restarted, or ended the backend, while it was idle):
  nothing was done on it yet, so it is replaced once and the batch runs on the new one.
  Reads do the same.
* **Writes run together** (:meth:`Database.run_together`): the jobs of one batch that share
  a *batch function* run as one call of it, in one savepoint, so that they cost a few
  statements for the whole batch (look-ups in one query, one statement over every row of
  a table: :meth:`Transaction.insert_values`, one ``INSERT`` for many rows on SQLite, or
  :meth:`Transaction.insert_rows`, a ``COPY`` on PostgreSQL) instead of a few per job.
  The batch function may leave a job to run alone, after it, in a savepoint of its own;
  if it raises, its savepoint is rolled back and every job of the group runs alone, so a
  failing job still fails only its own caller (when the error means the database cannot
  be used now, every job of the group gets it instead).
* **Reads** (:meth:`Database.run_read`) run on a small Twisted thread pool, one
  connection per thread, each in a transaction of its own (a consistent snapshot). SQLite
  in WAL mode lets them run beside the writer.

Every result is handed back on the reactor thread (``reactor.callFromThread``, once per
batch of writes); the reactor is passed in, never imported.

The SQL is shared between the engines: :class:`Transaction` takes ``?`` placeholders and
translates them for psycopg, and adapts timestamps (UTC ISO-8601 text on SQLite,
``timestamptz`` on PostgreSQL; :func:`decode_timestamp` reads either back as an aware UTC
``datetime``). Engine errors that mean "the database cannot be used now" (locked, disk
full, connection refused or lost) become :class:`~gateway.ports.messages.StoreUnavailableError`
here, exactly once; any other engine error becomes a plain
:class:`~gateway.ports.messages.StoreError`. Error texts carry the interaction's name and the
engine's message, never row values.

Several gateway processes may share one PostgreSQL database: the store modules let unique
constraints decide races (``INSERT … ON CONFLICT DO NOTHING``), claim work with
``SELECT … FOR UPDATE SKIP LOCKED``, and run a job one process at a time under a lease
(``adapters.storage.leases``). On SQLite one process writes at a time; another
waits up to ``busy_timeout`` for the lock and then gets ``StoreUnavailableError``.

Call :meth:`Database.run_interaction`, :meth:`Database.run_read` and
:meth:`Database.close` from the reactor thread; :meth:`Database.close` lets the writes
already queued finish.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import queue
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol, TypeVar, TypeVarTuple

import psycopg
from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IReactorFromThreads
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from gateway.ports.messages import StoreError, StoreUnavailableError

__all__ = [
    "ALONE",
    "Database",
    "Transaction",
    "decode_timestamp",
    "encode_timestamp",
]

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

log = Logger()

SQLITE = "sqlite"
POSTGRES = "postgres"

DEFAULT_MAX_BATCH: Final = 256
DEFAULT_BUSY_TIMEOUT: Final = 5.0  # seconds a SQLite connection waits for another's lock
DEFAULT_CONNECT_TIMEOUT: Final = 10  # seconds to reach a PostgreSQL server
# MiB of SQLite page cache per connection (the writer's and each reader's), filled only as
# pages are used; measured in docs/benchmarks.md ("the national year a sixth time").
DEFAULT_CACHE_MIB: Final = 64

UNSAFE_NO_FSYNC_ENV: Final = "IGO_TEST_ONLY_SQLITE_SYNCHRONOUS_OFF"
"""TEST-ONLY: set to ``1`` to run SQLite with ``synchronous=OFF`` (no fsync: acknowledged
uploads can be lost in a power cut). It exists so that the power-loss suite
(``tests/crash/test_powerloss.py``) can prove it detects lost uploads. It is honoured only
in a process under that suite's fault-injection shim (``tests/crash/faultfs``, loaded with
``LD_PRELOAD``); anywhere else the store refuses to open while it is set."""

# SQLite primary result codes that mean the database cannot be used right now.
_SQLITE_UNAVAILABLE: Final = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_NOMEM,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_CORRUPT,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_PROTOCOL,
        sqlite3.SQLITE_NOTADB,
    }
)

# --- timestamps ------------------------------------------------------------------------------


def encode_timestamp(value: datetime) -> str:
    """The fixed-width UTC ISO-8601 text SQLite stores: it sorts like the instants."""
    return _utc(value).isoformat(timespec="microseconds")


def decode_timestamp(value: object) -> datetime:
    """A stored timestamp (SQLite text or a PostgreSQL ``timestamptz``) as an aware UTC
    ``datetime``."""
    if isinstance(value, datetime):
        return _utc(value)
    if isinstance(value, str):
        return _utc(datetime.fromisoformat(value))
    raise TypeError(f"not a stored timestamp: {type(value).__name__}")


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamps must be timezone-aware")
    return value.astimezone(UTC)


# --- the transaction wrapper ---------------------------------------------------------------


class _Cursor(Protocol):
    """What the wrapper needs of a DB-API cursor (sqlite3 and psycopg both fit)."""

    @property
    def rowcount(self) -> int: ...

    def execute(self, query: str, params: Sequence[Any], /) -> object: ...

    def executemany(self, query: str, params_seq: Iterable[Sequence[Any]], /) -> object: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def close(self) -> None: ...


class _Connection(Protocol):
    def cursor(self) -> Any: ...

    def close(self) -> None: ...


@functools.lru_cache(maxsize=512)
def _to_pyformat(sql: str) -> str:
    # Lexical: the shared SQL must not use ``?`` or ``%`` inside string literals.
    return sql.replace("%", "%%").replace("?", "%s")


class Transaction:
    """The cursor an interaction gets: ``?`` placeholders on every engine.

    ``engine`` is ``"sqlite"`` or ``"postgres"``, for the rare statement that differs.
    ``audit_key`` is the key of the audit log's chain (:attr:`Database.audit_key`).
    """

    __slots__ = ("_cursor", "audit_key", "engine")

    def __init__(self, cursor: _Cursor, engine: str, audit_key: bytes | None = None) -> None:
        self._cursor = cursor
        self.engine = engine
        self.audit_key = audit_key

    def execute(self, sql: str, params: Iterable[object] = ()) -> None:
        if self.engine == POSTGRES:
            self._cursor.execute(_to_pyformat(sql), tuple(_adapt_postgres(p) for p in params))
        else:
            self._cursor.execute(sql, tuple(_adapt_sqlite(p) for p in params))

    def executemany(
        self, sql: str, rows: Iterable[Iterable[object]], *, adapted: bool = False
    ) -> None:
        """One statement for many rows (one prepared statement; psycopg pipelines them).
        ``adapted``: the rows already hold values the engine takes as they are (no
        ``datetime``), and are passed without looking at each value again."""
        if self.engine == POSTGRES:
            if adapted:
                self._cursor.executemany(_to_pyformat(sql), rows)  # type: ignore[arg-type]
                return
            converted = [tuple(_adapt_postgres(p) for p in row) for row in rows]
            self._cursor.executemany(_to_pyformat(sql), converted)
        elif adapted:
            self._cursor.executemany(sql, rows)  # type: ignore[arg-type]
        else:
            self._cursor.executemany(sql, [tuple(_adapt_sqlite(p) for p in row) for row in rows])

    def insert_values(
        self,
        head: str,
        group: str,
        rows: Sequence[Sequence[object]],
        tail: str = "",
        *,
        adapted: bool = False,
    ) -> int:
        """``head`` (``INSERT INTO t (a, b)``) with one ``VALUES`` ``group`` (``(?, ?)``)
        per row of ``rows``, then ``tail`` (``ON CONFLICT ...``); how many rows it
        inserted. On SQLite the rows go in one statement per chunk (:func:`_chunks`), where
        ``executemany`` would run its statement once per row (bind, give the interpreter
        lock back, step, take the lock again); measured in docs/benchmarks.md. psycopg
        pipelines an ``executemany`` on PostgreSQL. ``adapted`` as for
        :meth:`executemany`."""
        if not rows:
            return 0
        if self.engine == POSTGRES:
            self.executemany(f"{head} VALUES {group} {tail}", rows, adapted=adapted)
            return int(self._cursor.rowcount)
        inserted = 0
        for chunk in _chunks(rows, group.count("?")):
            params = (
                [value for row in chunk for value in row]
                if adapted
                else [_adapt_sqlite(value) for row in chunk for value in row]
            )
            values = ", ".join([group] * len(chunk))
            self._cursor.execute(f"{head} VALUES {values} {tail}", params)
            inserted += int(self._cursor.rowcount)
        return inserted

    def update_values(
        self,
        sql: str,
        rows: Sequence[Sequence[object]],
        key: slice,
        *,
        adapted: bool = False,
    ) -> int:
        """``sql`` (``UPDATE t SET ... WHERE ...`` of one row, with ``?`` parameters and no
        other `` WHERE `` nor ``?`` in a literal) for every row of ``rows``; how many rows
        it changed. ``key``: the parameters of a row that name the row of ``t`` it
        changes. On SQLite, when every row names another one, the rows go in one
        statement per chunk, as a table joined to ``t`` (``UPDATE t SET ... FROM (VALUES
        ...) AS _v WHERE ...``, each ``?`` read from its column of ``_v``), for the reason
        :meth:`insert_values` gives; else, and on PostgreSQL, as :meth:`executemany` (one
        row after the other)."""
        if not rows:
            return 0
        if self.engine == POSTGRES or len({tuple(row[key]) for row in rows}) != len(rows):
            self.executemany(sql, rows, adapted=adapted)
            return int(self._cursor.rowcount)
        width = sql.count("?")
        columns = iter(range(1, width + 1))  # SQLite's names: column1, column2, ...
        named = _PARAMETER.sub(lambda _: f"_v.column{next(columns)}", sql)
        update, where = named.split(" WHERE ", 1)
        group = "(" + ", ".join("?" * width) + ")"
        changed = 0
        for chunk in _chunks(rows, width):
            params = (
                [value for row in chunk for value in row]
                if adapted
                else [_adapt_sqlite(value) for row in chunk for value in row]
            )
            values = ", ".join([group] * len(chunk))
            self._cursor.execute(
                f"{update} FROM (VALUES {values}) AS _v WHERE {where}",
                params,
            )
            changed += int(self._cursor.rowcount)
        return changed

    def insert_rows(self, table: str, columns: str, rows: Sequence[Sequence[object]]) -> None:
        """Insert ``rows`` (values of ``columns``, a comma-separated list; no
        ``datetime``) into ``table``: one ``COPY`` on PostgreSQL, which the server takes
        much faster than one ``INSERT`` per row; on SQLite as :meth:`insert_values` does.
        For plain inserts only (no ``ON CONFLICT``): a row that breaks a constraint fails
        the whole call."""
        if not rows:
            return
        if self.engine == POSTGRES:
            copy = self._cursor.copy  # type: ignore[attr-defined]
            with copy(f"COPY {table} ({columns}) FROM STDIN") as stream:
                for row in rows:
                    stream.write_row(row)
            return
        group = "(" + ", ".join("?" * len(rows[0])) + ")"
        self.insert_values(f"INSERT INTO {table} ({columns})", group, rows, adapted=True)

    def fetchone(self) -> tuple[Any, ...] | None:
        row = self._cursor.fetchone()
        return None if row is None else tuple(row)

    def fetchall(self) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self._cursor.fetchall()]

    @property
    def rowcount(self) -> int:
        """Rows changed by the last INSERT, UPDATE or DELETE."""
        return self._cursor.rowcount


_PARAMETER: Final = re.compile(r"\?")


@functools.cache
def sqlite_variable_limit() -> int:
    """The most ``?`` parameters one statement takes in the SQLite library this process
    runs on (a compile-time setting: 32,766 by default since SQLite 3.32, 999 before)."""
    probe = sqlite3.connect(":memory:")
    try:
        return int(probe.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))
    finally:
        probe.close()


# The most rows one statement of Transaction.insert_values or update_values takes.
_MOST_ROWS: Final = 1024


def _chunks(rows: Sequence[Sequence[object]], width: int) -> Iterator[Sequence[Sequence[object]]]:
    """``rows`` (of ``width`` parameters each) in chunks of :data:`_MOST_ROWS` rows (fewer
    when SQLite's limit of parameters says so), the rest in chunks of a power of two. So a
    kind of statement has a few texts only: the sqlite3 module keeps the compiled
    statement of each of the last texts it ran (128), and a compiled statement grows with
    its parameters."""
    most = max(1, min(_MOST_ROWS, sqlite_variable_limit() // max(1, width)))
    start = 0
    while start < len(rows):
        size = min(most, 1 << ((len(rows) - start).bit_length() - 1))
        yield rows[start : start + size]
        start += size


def _adapt_sqlite(value: object) -> object:
    return encode_timestamp(value) if isinstance(value, datetime) else value


def _adapt_postgres(value: object) -> object:
    return _utc(value) if isinstance(value, datetime) else value


# --- engines ---------------------------------------------------------------------------------


class _Engine(Protocol):
    name: str
    begin_write: str
    begin_read: str

    def connect(self) -> _Connection: ...

    def unavailable(self, exc: BaseException) -> bool: ...

    def lost(self, conn: _Connection) -> bool: ...

    def is_error(self, exc: BaseException) -> bool: ...

    def describe(self, exc: BaseException) -> str: ...


class _Sqlite:
    name = SQLITE
    # Take the write lock at BEGIN, so a busy database fails before any work is done.
    begin_write = "BEGIN IMMEDIATE"
    begin_read = "BEGIN"

    def __init__(self, path: str, busy_timeout: float, cache_mib: int = DEFAULT_CACHE_MIB) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self.cache_mib = cache_mib
        self.synchronous = "OFF" if _unsafe_no_fsync() else "FULL"

    def connect(self) -> sqlite3.Connection:
        # isolation_level=None: the Database issues BEGIN/COMMIT itself.
        # check_same_thread=False: a connection is used by one thread at a time, but
        # closed by the thread that shuts the Database down.
        conn = sqlite3.connect(
            self.path,
            timeout=self.busy_timeout,
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            # Freed pages can be given back to the file system (prune, then
            # incremental_vacuum). Set on a new, empty database only: it must come before
            # the first table, and needs no lock then.
            if conn.execute("PRAGMA page_count").fetchone()[0] == 0:
                conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal" and self.path != ":memory:":
                raise StoreUnavailableError(f"SQLite refused WAL mode (journal_mode={mode})")
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            conn.execute("PRAGMA foreign_keys = ON")
            # Negative: a size in KiB, not in pages. SQLite's 2 MiB default is too small
            # for a write transaction of a batch of uploads or a bundling run: it spills
            # dirty pages to the WAL before its commit, and writes a page again each time
            # it changes after that.
            conn.execute(f"PRAGMA cache_size = {-1024 * int(self.cache_mib)}")
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        except BaseException:
            conn.close()
            raise
        return conn

    def unavailable(self, exc: BaseException) -> bool:
        return (
            isinstance(exc, sqlite3.Error)
            and (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in _SQLITE_UNAVAILABLE
        )

    def lost(self, conn: _Connection) -> bool:
        return False  # a file: nothing to lose between two transactions

    def is_error(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.Error)

    def describe(self, exc: BaseException) -> str:
        return f"{type(exc).__name__}: {exc}"


def _unsafe_no_fsync() -> bool:
    """Whether the test-only :data:`UNSAFE_NO_FSYNC_ENV` applies (see there)."""
    if os.environ.get(UNSAFE_NO_FSYNC_ENV, "") in ("", "0"):
        return False
    shim = getattr(ctypes.CDLL(None), "igo_faultfs_active", None)
    if shim is None or not shim():  # refused at start-up, in one line
        raise StoreUnavailableError(
            f"{UNSAFE_NO_FSYNC_ENV} is set: that test-only setting turns off SQLite's fsync "
            "and works only under the power-loss tests' fault injection; unset it"
        )
    log.warn(
        "TEST ONLY: SQLite runs with synchronous=OFF ({env}); acknowledged uploads are NOT durable",
        env=UNSAFE_NO_FSYNC_ENV,
    )
    return True


class _Postgres:
    name = POSTGRES
    begin_write = "BEGIN"
    begin_read = "BEGIN"

    def __init__(self, dsn: str, connect_timeout: int) -> None:
        self.dsn = dsn
        self.connect_timeout = connect_timeout

    def connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        return psycopg.connect(self.dsn, autocommit=True, connect_timeout=self.connect_timeout)

    def unavailable(self, exc: BaseException) -> bool:
        # Connection refused or lost, server shutting down, disk full, lock or statement
        # timeouts, serialization failures: all psycopg.OperationalError.
        return isinstance(exc, psycopg.OperationalError)

    def lost(self, conn: _Connection) -> bool:
        # Interrupted: the server restarted, or terminated this backend, while idle.
        return bool(getattr(conn, "broken", False))

    def is_error(self, exc: BaseException) -> bool:
        return isinstance(exc, psycopg.Error)

    def describe(self, exc: BaseException) -> str:
        # The primary message only: DETAIL lines may quote row values.
        primary = None
        if isinstance(exc, psycopg.Error) and exc.diag is not None:
            primary = exc.diag.message_primary
        text = primary or (str(exc).strip().splitlines() or [""])[0]
        state = getattr(exc, "sqlstate", None)
        return f"{type(exc).__name__}{f' [{state}]' if state else ''}: {text}"


# --- the database ----------------------------------------------------------------------------


class _Alone:
    __slots__ = ()

    def __repr__(self) -> str:
        return "ALONE"


ALONE: Final = _Alone()
"""What a batch function (:meth:`Database.run_together`) returns for a job it leaves to
run alone, after it, in a savepoint of its own."""

BatchFunction = Callable[[Transaction, list[tuple[Any, ...]]], Sequence[Any]]


@dataclass(slots=True)
class _Job:
    desc: str
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    deferred: Deferred[Any]
    together: BatchFunction | None = None


_STOP: Final = object()


class Database:
    """All connections to one database, and the threads that use them.

    Build one with :meth:`sqlite` or :meth:`postgres`. ``reactor`` only needs
    ``callFromThread``. ``readers`` is the size of the read pool; 0 sends reads through
    the writer too (needed for a private ``:memory:`` SQLite database).
    """

    def __init__(
        self,
        engine: _Engine,
        reactor: IReactorFromThreads,
        *,
        readers: int = 2,
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._engine = engine
        self._reactor = reactor
        self._max_batch = max_batch
        self._closed = False
        self._close_waiters: list[Deferred[None]] = []
        self._queue: queue.SimpleQueue[_Job | object] = queue.SimpleQueue()
        self._writer_conn: _Connection | None = None
        self._local = threading.local()
        self._reader_conns: list[_Connection] = []
        self._reader_lock = threading.Lock()
        self._reads: set[Deferred[Any]] = set()  # reads not answered yet (reactor thread)
        self.commits = 0
        """Write transactions committed so far (one per batch): fewer than the writes
        when group commit works."""
        self.observe: Callable[[str, float], None] | None = None
        """Called (on the store's threads) with ``("write", seconds)`` per committed batch
        and ``("read", seconds)`` per read: the gateway feeds its latency histogram."""
        self.audit_key: bytes | None = None
        """The audit chain's key (from the key file; None without one): a transaction that
        appends to the audit log keys its entries with it."""
        self._pool: ThreadPool | None = None
        if readers > 0:
            self._pool = ThreadPool(minthreads=0, maxthreads=readers, name="store-read")
            self._pool.start()
        self._writer = threading.Thread(target=self._write_loop, name="store-write", daemon=True)
        self._writer.start()

    @classmethod
    def sqlite(
        cls,
        path: str,
        reactor: IReactorFromThreads,
        *,
        readers: int = 2,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        max_batch: int = DEFAULT_MAX_BATCH,
        cache_mib: int = DEFAULT_CACHE_MIB,
    ) -> Database:
        """A SQLite database file (WAL mode, ``synchronous=FULL``, foreign keys on, a
        page cache of up to ``cache_mib`` MiB per connection, filled only as pages are
        used). ``":memory:"`` gives a private in-memory database, read through the
        writer."""
        if path == ":memory:":
            readers = 0
        return cls(
            _Sqlite(path, busy_timeout, cache_mib), reactor, readers=readers, max_batch=max_batch
        )

    @classmethod
    def postgres(
        cls,
        dsn: str,
        reactor: IReactorFromThreads,
        *,
        readers: int = 4,
        connect_timeout: int = DEFAULT_CONNECT_TIMEOUT,
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> Database:
        """A PostgreSQL database, by libpq DSN or ``postgresql://`` URL."""
        return cls(_Postgres(dsn, connect_timeout), reactor, readers=readers, max_batch=max_batch)

    @property
    def engine(self) -> str:
        """``"sqlite"`` or ``"postgres"``."""
        return self._engine.name

    # --- running interactions --------------------------------------------------------

    def run_interaction(
        self, desc: str, fn: Callable[[Transaction, *Ts], T], *args: *Ts
    ) -> Deferred[T]:
        """Run ``fn(txn, *args)`` on the writer thread, in its own savepoint of the next
        group-committed transaction. The Deferred fires once the batch is durable."""
        if self._closed:
            return fail(StoreUnavailableError(f"{desc}: the store is closed"))
        d: Deferred[T] = Deferred()
        self._queue.put(_Job(desc, fn, tuple(args), d))
        return d

    def run_together(
        self,
        desc: str,
        together: BatchFunction,
        fn: Callable[[Transaction, *Ts], T],
        *args: *Ts,
    ) -> Deferred[T]:
        """Like :meth:`run_interaction`, but the writer runs every job of a batch that
        has the same ``together`` function in one call, ``together(txn, [args, ...])``, in
        one savepoint: it returns one result per job, in order, or :data:`ALONE` for a job
        that is then run as ``fn(txn, *args)`` in a savepoint of its own. When
        ``together`` raises, its savepoint is rolled back and every one of those jobs runs
        as ``fn`` alone, so the outcome of each is what :meth:`run_interaction` would
        give — except for an error that means the database cannot be used now
        (:class:`~gateway.store.StoreUnavailableError`), which every one of them gets. The
        Deferred fires once the batch is durable."""
        if self._closed:
            return fail(StoreUnavailableError(f"{desc}: the store is closed"))
        d: Deferred[T] = Deferred()
        self._queue.put(_Job(desc, fn, tuple(args), d, together))
        return d

    def run_read(self, desc: str, fn: Callable[[Transaction, *Ts], T], *args: *Ts) -> Deferred[T]:
        """Run ``fn(txn, *args)`` in a transaction of its own on the read pool. It must
        not write."""
        if self._closed:
            return fail(StoreUnavailableError(f"{desc}: the store is closed"))
        if self._pool is None:
            return self.run_interaction(desc, fn, *args)
        d = deferToThreadPool(self._reactor, self._pool, self._read, desc, fn, args)
        self._reads.add(d)
        return d.addBoth(self._read_done, d)

    def close(self) -> Deferred[None]:
        """Finish the writes already queued, stop the threads, close every connection."""
        d: Deferred[None] = Deferred()
        if self._closed and not self._writer.is_alive() and not self._close_waiters:
            d.callback(None)
            return d
        self._close_waiters.append(d)
        if not self._closed:
            self._closed = True
            threading.Thread(target=self._shut_down, name="store-close", daemon=True).start()
        return d

    # --- the writer thread -----------------------------------------------------------

    def _write_loop(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                break
            assert isinstance(first, _Job)
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is _STOP:
                    stopping = True
                    break
                assert isinstance(job, _Job)
                batch.append(job)
            self._run_batch(batch)
        if self._writer_conn is not None:
            _close_quietly(self._writer_conn)
            self._writer_conn = None

    def _run_batch(self, batch: list[_Job]) -> None:
        outcomes: list[tuple[bool, Any]] = [(False, None)] * len(batch)
        started = time.monotonic()
        try:
            cursor = self._begin_write()
            try:
                txn = Transaction(cursor, self._engine.name, self.audit_key)
                groups: dict[BatchFunction, list[int]] = {}
                for at, job in enumerate(batch):
                    if job.together is not None:
                        groups.setdefault(job.together, []).append(at)
                for at, job in enumerate(batch):
                    if job.together is None:
                        outcomes[at] = self._run_alone(cursor, txn, job)
                    elif at == groups[job.together][0]:  # the group runs at its first job
                        members = groups[job.together]
                        ran = self._run_group(cursor, txn, [batch[m] for m in members])
                        for member, outcome in zip(members, ran, strict=True):
                            outcomes[member] = outcome
                cursor.execute("COMMIT")
            finally:
                _close_quietly(cursor)
            self.commits += 1
            if self.observe is not None:
                self.observe("write", time.monotonic() - started)
        except Exception as exc:  # the batch's transaction failed as a whole
            self._abandon_writer()
            descs = ", ".join(sorted({job.desc for job in batch}))
            error = self._translate(exc, descs)
            outcomes = [(False, error)] * len(batch)
        # One hand-over to the reactor for the whole batch.
        answers = [
            (job.deferred, ok, value) for job, (ok, value) in zip(batch, outcomes, strict=True)
        ]
        self._reactor.callFromThread(_answer, answers)

    def _run_alone(self, cursor: _Cursor, txn: Transaction, job: _Job) -> tuple[bool, Any]:
        """``job`` in a savepoint of its own: its result, or its error (rolled back)."""
        cursor.execute("SAVEPOINT interaction", ())
        try:
            result = job.fn(txn, *job.args)
        except Exception as exc:  # handed to that caller only
            self._roll_back_interaction(cursor, exc)
            return (False, self._translate(exc, job.desc))
        cursor.execute("RELEASE SAVEPOINT interaction", ())
        return (True, result)

    def _run_group(
        self, cursor: _Cursor, txn: Transaction, jobs: list[_Job]
    ) -> list[tuple[bool, Any]]:
        """Jobs sharing a batch function: one call of it in one savepoint, then each job
        it left (or all, when it raised) alone."""
        together = jobs[0].together
        assert together is not None
        cursor.execute("SAVEPOINT interaction", ())
        try:
            results = list(together(txn, [job.args for job in jobs]))
            if len(results) != len(jobs):
                raise RuntimeError(f"{jobs[0].desc}: {len(results)} results for {len(jobs)} jobs")
        except Exception as exc:
            self._roll_back_interaction(cursor, exc)
            if self._engine.unavailable(exc):  # it would fail each of them again
                return [(False, self._translate(exc, job.desc)) for job in jobs]
            results = [ALONE] * len(jobs)  # every job runs alone instead
        else:
            cursor.execute("RELEASE SAVEPOINT interaction", ())
        return [
            self._run_alone(cursor, txn, job) if result is ALONE else (True, result)
            for job, result in zip(jobs, results, strict=True)
        ]

    def _begin_write(self) -> Any:
        """A cursor in a new write transaction. A kept connection found lost at ``BEGIN``
        (the server restarted or ended it while it was idle) is replaced once: nothing
        was done on it, so the batch need not fail for it."""
        kept = self._writer_conn is not None
        if self._writer_conn is None:
            self._writer_conn = self._engine.connect()
        try:
            return _begun(self._writer_conn, self._engine.begin_write)
        except Exception:
            if not (kept and self._engine.lost(self._writer_conn)):
                raise
        _close_quietly(self._writer_conn)
        self._writer_conn = None
        self._writer_conn = self._engine.connect()
        return _begun(self._writer_conn, self._engine.begin_write)

    def _roll_back_interaction(self, cursor: _Cursor, exc: Exception) -> None:
        try:
            cursor.execute("ROLLBACK TO SAVEPOINT interaction", ())
            cursor.execute("RELEASE SAVEPOINT interaction", ())
        except Exception as lost:
            # The transaction went with the savepoint (SQLite rolls back by itself on a
            # full disk; a connection may be gone): the whole batch fails, named by the
            # interaction's own error when that says why.
            raise (exc if self._engine.unavailable(exc) else lost) from None

    def _abandon_writer(self) -> None:
        """Roll back what the batch did, or drop the connection if even that fails."""
        conn = self._writer_conn
        if conn is None:
            return
        try:
            cursor = conn.cursor()
            try:
                cursor.execute("ROLLBACK")
            finally:
                _close_quietly(cursor)
        except Exception:  # the connection is unusable; reconnect next batch
            self._writer_conn = None
            _close_quietly(conn)

    # --- the read pool ---------------------------------------------------------------

    def _read_done(self, result: T, d: Deferred[T]) -> T:
        self._reads.discard(d)
        return result

    def _read(self, desc: str, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        started = time.monotonic()
        try:
            conn, cursor = self._begin_read()
        except Exception as exc:
            translated = self._translate(exc, desc)
            if translated is exc:
                raise
            raise translated from exc
        try:
            result = fn(Transaction(cursor, self._engine.name, self.audit_key), *args)
            cursor.execute("COMMIT")
        except Exception as exc:
            try:
                cursor.execute("ROLLBACK")
            except Exception:  # unusable: this thread reconnects next time
                self._drop_reader(conn)
            translated = self._translate(exc, desc)
            if translated is exc:
                raise
            raise translated from exc
        finally:
            _close_quietly(cursor)
        if self.observe is not None:
            self.observe("read", time.monotonic() - started)
        return result

    def _begin_read(self) -> tuple[_Connection, Any]:
        """This thread's connection and a cursor in a new read transaction; a kept
        connection found lost at ``BEGIN`` is replaced once (as for the writer)."""
        kept = getattr(self._local, "conn", None) is not None
        conn = self._reader_connection()
        try:
            return conn, _begun(conn, self._engine.begin_read)
        except Exception:
            lost = kept and self._engine.lost(conn)
            self._drop_reader(conn)
            if not lost:
                raise
        conn = self._reader_connection()
        try:
            return conn, _begun(conn, self._engine.begin_read)
        except Exception:
            self._drop_reader(conn)
            raise

    def _reader_connection(self) -> _Connection:
        conn: _Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._engine.connect()
            self._local.conn = conn
            with self._reader_lock:
                self._reader_conns.append(conn)
        return conn

    def _drop_reader(self, conn: _Connection) -> None:
        self._local.conn = None
        with self._reader_lock:
            if conn in self._reader_conns:
                self._reader_conns.remove(conn)
        _close_quietly(conn)

    # --- errors and shutdown ---------------------------------------------------------

    def _translate(self, exc: Exception, desc: str) -> Exception:
        """The store's error for an engine's (other errors pass unchanged)."""
        if isinstance(exc, StoreError):
            return exc
        if self._engine.unavailable(exc):
            error: StoreError = StoreUnavailableError(
                f"{desc}: {self._engine.name} database unavailable: {self._engine.describe(exc)}"
            )
        elif self._engine.is_error(exc):
            error = StoreError(f"{desc}: {self._engine.describe(exc)}")
        else:
            return exc
        error.__cause__ = exc
        return error

    def _shut_down(self) -> None:
        self._queue.put(_STOP)
        self._writer.join()
        if self._pool is not None:
            self._pool.stop()
        with self._reader_lock:
            conns, self._reader_conns = self._reader_conns, []
        for conn in conns:
            _close_quietly(conn)
        self._reactor.callFromThread(self._closed_now)

    def _closed_now(self) -> None:
        # Reads still queued when the pool stopped never ran: answer them.
        unanswered, self._reads = self._reads, set()
        for read in unanswered:
            read.errback(StoreUnavailableError("the store was closed before this read ran"))
        waiters, self._close_waiters = self._close_waiters, []
        for d in waiters:
            d.callback(None)


def _answer(answers: list[tuple[Deferred[Any], bool, Any]]) -> None:
    """Fire each job's Deferred (on the reactor thread) with its result or error."""
    for deferred, ok, value in answers:
        if ok:
            deferred.callback(value)
        else:
            deferred.errback(value)


def _begun(conn: _Connection, begin: str) -> Any:
    """A cursor of ``conn`` that has run ``begin``."""
    cursor = conn.cursor()
    try:
        cursor.execute(begin)
    except BaseException:
        _close_quietly(cursor)
        raise
    return cursor


def _close_quietly(closable: _Connection | _Cursor) -> None:
    with contextlib.suppress(Exception):  # closing what is already broken
        closable.close()
