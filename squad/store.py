"""The persistent task queue: one SQLite file per squad, shared by the supervisor, the CLI
and agents running ``squad task ...`` in their windows.

Crash safety: the file is in WAL mode and every change is one short ``BEGIN IMMEDIATE``
transaction, so concurrent writers queue up (``busy_timeout``) instead of failing, and a
process killed at any moment leaves either the whole change or none of it. ``synchronous =
NORMAL`` keeps every committed transaction across a crash of any process; only a power cut
may lose the last few (and takes the agents with it).

Every transition is checked against :data:`squad.task_model.TRANSITIONS`, and reported to
``on_event`` after its commit, so the audit trail never shows a change the database lost.

Delivery is two-phase: :meth:`TaskStore.assign` commits the assignment and a fresh
``delivery_token`` before anything is sent; the caller sends ``task.delivery_text()`` (which
ends with ``task.marker``) and then calls :meth:`TaskStore.mark_delivered`. After a crash,
:meth:`TaskStore.in_delivery` lists what may or may not have arrived: if the holder's screen
shows the marker, call ``mark_delivered``, else ``unassign`` (no attempt is counted).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from squad.dispatch import CLOSED, OPEN, Breaker, backoff
from squad.errors import StorageError
from squad.task_model import (
    MAX_REJECTIONS,
    Priority,
    Task,
    TaskError,
    TaskStatus,
    blocked_reason,
    check_agent,
    check_tags,
    check_team,
    check_transition,
    default_title,
    describe_repeat,
    find_cycle,
    next_slot,
    parse_attempts,
    parse_clock,
    parse_due,
    parse_duration,
    trim_result,
)

log = logging.getLogger(__name__)

S = TaskStatus
EventSink = Callable[[dict[str, Any]], None]

BUSY_TIMEOUT_MS = 10_000

# Each entry upgrades the schema by one version (PRAGMA user_version = its position + 1),
# inside one transaction. Never edit an entry that has shipped; append a new one. A v2 that
# adds a column would be:
#     ("ALTER TABLE tasks ADD COLUMN recurrence TEXT",),
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (  # v1
        """CREATE TABLE tasks (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            prompt TEXT NOT NULL,
            title TEXT NOT NULL,
            priority INTEGER NOT NULL CHECK (priority BETWEEN 0 AND 3),  -- 0 = critical
            due REAL,
            created REAL NOT NULL,
            tags TEXT NOT NULL DEFAULT '[]',         -- JSON array, sorted
            team TEXT,
            target TEXT,
            depends_on TEXT NOT NULL DEFAULT '[]',   -- JSON array; task_deps is the index
            timeout REAL,
            max_attempts INTEGER NOT NULL DEFAULT 3,
            attempts INTEGER NOT NULL DEFAULT 0,
            failures INTEGER NOT NULL DEFAULT 0,
            status TEXT NOT NULL CHECK (status IN ('queued', 'assigned', 'in_progress',
                                                   'review', 'done', 'failed', 'cancelled')),
            agent TEXT,
            review_by TEXT,
            rejections INTEGER NOT NULL DEFAULT 0,
            not_before REAL NOT NULL DEFAULT 0,
            queued_at REAL,
            assigned_at REAL,
            started_at REAL,
            review_at REAL,
            review_assigned_at REAL,
            review_started_at REAL,
            finished_at REAL,
            result TEXT,
            error TEXT,
            feedback TEXT NOT NULL DEFAULT '[]',     -- JSON array, oldest first
            delivery_token TEXT,
            updated REAL NOT NULL,
            rev INTEGER NOT NULL DEFAULT 0           -- bumped by every update (read cache)
        )""",
        "CREATE INDEX tasks_order ON tasks (status, priority, due IS NULL, due, created, id,"
        " not_before, rev)",  # covers the (id, rev) scan of the queue
        # any writer that forgets to bump rev still invalidates readers' caches
        """CREATE TRIGGER tasks_rev AFTER UPDATE ON tasks WHEN NEW.rev = OLD.rev
           BEGIN UPDATE tasks SET rev = OLD.rev + 1 WHERE id = NEW.id; END""",
        "CREATE INDEX tasks_agent ON tasks (agent) WHERE agent IS NOT NULL",
        "CREATE INDEX tasks_reviewer ON tasks (review_by) WHERE review_by IS NOT NULL",
        """CREATE TABLE task_deps (
            task INTEGER NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
            dep INTEGER NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
            PRIMARY KEY (task, dep)
        ) WITHOUT ROWID""",
        "CREATE INDEX task_deps_dep ON task_deps (dep, task)",
        """CREATE TABLE breakers (
            agent TEXT PRIMARY KEY,
            state TEXT NOT NULL,                     -- JSON of Breaker.to_dict()
            updated REAL NOT NULL
        )""",
        """CREATE TABLE kv (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL                      -- JSON
        )""",
    ),
    (  # v2: the phases of one delivery (see Desk in squad/delivery.py)
        "ALTER TABLE tasks ADD COLUMN holder_id TEXT",       # the holder's process identity
        "ALTER TABLE tasks ADD COLUMN sent_at REAL",         # when the text went out
        "ALTER TABLE tasks ADD COLUMN sent_screen TEXT",     # screen hash just before that
        "ALTER TABLE tasks ADD COLUMN enters INTEGER NOT NULL DEFAULT 0",  # Enter presses
        "ALTER TABLE tasks ADD COLUMN taken_screen TEXT",    # screen hash once taken up
    ),
    (  # v3: recurring work (squad dispatch --every / --at)
        """CREATE TABLE repeats (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            template TEXT NOT NULL,          -- JSON: the keyword arguments of TaskStore.add
            every REAL,                      -- seconds between runs
            at TEXT,                         -- HH:MM local time (daily, or the anchor)
            next_at REAL NOT NULL,           -- when the next task is due
            last_task INTEGER,               -- the latest task of the series
            skipped INTEGER NOT NULL DEFAULT 0,  -- slots passed while one was still open
            active INTEGER NOT NULL DEFAULT 1,
            created REAL NOT NULL
        )""",
        "ALTER TABLE tasks ADD COLUMN repeat INTEGER",     # the series it belongs to
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)

COLUMNS = tuple(f.name for f in fields(Task) if f.init)
_COLUMN_LIST = ", ".join(COLUMNS)
_SELECT = f"SELECT {_COLUMN_LIST} FROM tasks"
_ORDER = " ORDER BY priority, due IS NULL, due, created, id"
_I_PRIORITY, _I_STATUS = COLUMNS.index("priority"), COLUMNS.index("status")
_I_JSON = tuple(COLUMNS.index(n) for n in ("tags", "depends_on", "feedback"))
_BY_RANK = tuple(Priority)
_STATUS = {s.value: s for s in TaskStatus}
NO_DELIVERY: dict[str, Any] = dict(holder_id=None, sent_at=None, sent_screen=None, enters=0,
                                   taken_screen=None)
_LIFECYCLE = {s.value: i for i, s in enumerate(TaskStatus)}


def _task(row: tuple) -> Task:
    r = list(row)
    r[_I_PRIORITY] = _BY_RANK[r[_I_PRIORITY]]
    r[_I_STATUS] = _STATUS[r[_I_STATUS]]
    for i in _I_JSON:
        r[i] = tuple(json.loads(r[i])) if r[i] != "[]" else ()
    return Task(*r)


def _db_value(name: str, value: Any) -> Any:
    if name == "priority":
        return Priority.parse(value).rank
    if name in ("tags", "depends_on", "feedback"):
        return json.dumps(list(value))
    if isinstance(value, TaskStatus):
        return value.value
    return value


def db_path(squad: str) -> Path:
    """Where a squad's task database lives (inside its private state directory)."""
    from squad.state import squad_dir

    return squad_dir(squad) / "tasks.db"


class _Connection:
    """One SQLite connection per database file per process, shared by every TaskStore that
    opens the file (the supervisor, the UI's task panel and dispatch form all do).

    squad never opens the database file itself: on POSIX, closing *any* descriptor of a file
    drops every lock the process holds on it, so a stray ``open``/``close`` next to a live
    connection makes SQLite in other processes believe this one is gone, and the last one to
    close deletes the write-ahead log under it: later writes go to a deleted file and are
    lost. SQLite creates the file; squad only changes its mode, by path.
    """

    _open: dict[str, _Connection] = {}
    _guard = threading.Lock()

    def __init__(self, key: str, conn: sqlite3.Connection) -> None:
        self.key = key
        self.conn = conn
        self.lock = threading.RLock()
        self.users = 0

    @classmethod
    def get(cls, path: Path) -> _Connection:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = os.path.realpath(path)
        with cls._guard:
            shared = cls._open.get(key)
            if shared is None:
                shared = cls(key, _connect(path))
                cls._open[key] = shared
            shared.users += 1
            return shared

    def release(self) -> None:
        with self._guard:
            self.users -= 1
            if self.users > 0:
                return
            self._open.pop(self.key, None)
        with self.lock:
            self.conn.close()


def _connect(path: Path) -> sqlite3.Connection:
    if path.is_symlink():
        raise StorageError(f"task database {path} is a symbolic link, which squad never "
                           "follows for its own files: remove it")
    try:
        # autocommit mode: transactions are explicit (BEGIN IMMEDIATE ... COMMIT)
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                               timeout=BUSY_TIMEOUT_MS / 1000)
    except sqlite3.Error as e:
        raise _storage(path, e) from None
    try:
        for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            try:  # by path, never through a descriptor (see _Connection)
                if p.stat().st_mode & 0o077:
                    p.chmod(0o600)
            except FileNotFoundError:
                pass
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode = WAL")  # -wal and -shm copy the file's mode
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as e:
        conn.close()
        if _is_storage(e):
            raise _storage(path, e) from None
        raise TaskError(f"{path}: not a usable task database ({e}); move it aside "
                        "to start an empty queue") from None
    except BaseException:
        conn.close()
        raise
    return conn


_STORAGE_WORDS = ("disk is full", "readonly database", "read-only", "disk i/o error",
                  "unable to open database", "no such file")


def _is_storage(e: sqlite3.Error) -> bool:
    text = str(e).lower()
    return any(w in text for w in _STORAGE_WORDS)


def _storage(path: Path, e: sqlite3.Error) -> StorageError:
    text = str(e).lower()
    if "disk is full" in text:
        why = "the disk is full; free some space (nothing was changed)"
    elif "readonly" in text or "read-only" in text:
        why = ("it is read-only; make the state directory writable or point SQUAD_HOME "
               "elsewhere (nothing was changed)")
    else:
        why = f"{e} (nothing was changed)"
    return StorageError(f"task database {path}: {why}")


class TaskStore:
    """The task queue in one SQLite file; safe to open from several processes at once.

    Methods taking ``now`` default to the current time; tests and the supervisor pass their
    own clock. Methods raise :class:`TaskError` for unknown ids, bad input and illegal
    transitions, and then have written nothing.
    """

    def __init__(self, path: Path | str, on_event: EventSink | None = None) -> None:
        self.path = Path(path)
        self.on_event = on_event
        self._cache: dict[int, tuple[int, Task]] = {}  # id -> (rev, Task), see _cached_tasks
        self._shared = _Connection.get(self.path)
        self._conn = self._shared.conn
        self._lock = self._shared.lock
        self._closed = False
        try:
            with self._lock:
                self._migrate()
        except sqlite3.OperationalError as e:
            self.close()
            if _is_storage(e):
                raise _storage(self.path, e) from None
            raise
        except BaseException:
            self.close()
            raise

    @classmethod
    def for_squad(cls, squad: str, on_event: EventSink | None = None) -> TaskStore:
        return cls(db_path(squad), on_event)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._shared.release()

    def __enter__(self) -> TaskStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing --------------------------------------------------------------------------

    def _migrate(self) -> None:
        c = self._conn
        if c.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
            return
        c.execute("BEGIN IMMEDIATE")
        try:
            version = c.execute("PRAGMA user_version").fetchone()[0]  # another process may
            if version > SCHEMA_VERSION:                               # have migrated first
                raise TaskError(
                    f"{self.path}: the task database has schema v{version}, newer than this "
                    f"squad understands (v{SCHEMA_VERSION}); upgrade squad")
            for statements in MIGRATIONS[version:]:
                for sql in statements:
                    c.execute(sql)
            c.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        c.execute("COMMIT")

    @property
    def schema_version(self) -> int:
        with self._lock:
            return self._conn.execute("PRAGMA user_version").fetchone()[0]

    @contextmanager
    def _write(self) -> Iterator[tuple[sqlite3.Connection, list[dict[str, Any]]]]:
        """One write transaction; the events it collects are emitted after the commit."""
        events: list[dict[str, Any]] = []
        with self._lock:
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn, events
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.OperationalError as e:
                if _is_storage(e):
                    raise _storage(self.path, e) from None
                raise
        for event in events:
            self._emit(event)

    def _emit(self, event: dict[str, Any]) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(event)
        except Exception:  # the change is committed; a broken audit sink must not undo flow
            log.exception("task event sink failed for %s", event.get("action"))

    def _read(self, sql: str, args: Iterable[Any] = ()) -> list[tuple]:
        with self._lock:
            try:
                return self._conn.execute(sql, tuple(args)).fetchall()
            except sqlite3.OperationalError as e:
                if _is_storage(e):
                    raise _storage(self.path, e) from None
                raise

    def _tasks(self, where: str, args: Iterable[Any] = (), order: str = _ORDER) -> list[Task]:
        return [_task(r) for r in self._read(f"{_SELECT} WHERE {where}{order}", args)]

    def _cached_tasks(self, where: str, args: Iterable[Any] = (), order: str = _ORDER
                      ) -> list[Task]:
        """Like :meth:`_tasks` for long lists: selects only ``(id, rev)`` and builds Task
        objects just for rows that are new or changed since the last call (every update
        bumps ``rev``, whichever process made it). 10,000 queued tasks cost a few ms instead
        of ~100 ms. Both queries run in one read transaction, so they see the same data."""
        cache = self._cache
        with self._lock:
            c = self._conn
            c.execute("BEGIN")
            try:
                keys = c.execute(f"SELECT id, rev FROM tasks WHERE {where}{order}",
                                 tuple(args)).fetchall()
                stale = [i for i, rev in keys if (hit := cache.get(i)) is None or hit[0] != rev]
                for start in range(0, len(stale), 500):
                    chunk = stale[start:start + 500]
                    sql = (f"SELECT rev, {_COLUMN_LIST} FROM tasks"
                           f" WHERE id IN ({','.join('?' * len(chunk))})")
                    for row in c.execute(sql, chunk):
                        cache[row[1]] = (row[0], _task(row[1:]))
            finally:
                c.execute("COMMIT")
            out = [cache[i][1] for i, _ in keys]
            if len(cache) > 2 * len(keys) + 1000:  # forget tasks that left the lists
                live = {i for i, _ in keys}
                for i in [i for i in cache if i not in live]:
                    del cache[i]
        return out

    @staticmethod
    def _load(conn: sqlite3.Connection, task_id: int) -> Task:
        row = conn.execute(f"{_SELECT} WHERE id = ?", (_id(task_id),)).fetchone()
        if row is None:
            raise TaskError(f"no task #{task_id}")
        return _task(row)

    @staticmethod
    def _update(conn: sqlite3.Connection, events: list[dict[str, Any]], task: Task,
                action: str, now: float, *, reason: str | None = None,
                target: str | None = None, extra: dict[str, Any] | None = None,
                **changes: Any) -> Task:
        """Write ``changes`` (checking a status change against the table) and queue an event."""
        if "status" in changes:
            check_transition(task.status, changes["status"], task.id)
        changes["updated"] = now
        sets = ", ".join(f"{name} = ?" for name in changes) + ", rev = rev + 1"
        values = [_db_value(name, value) for name, value in changes.items()]
        conn.execute(f"UPDATE tasks SET {sets} WHERE id = ?", (*values, task.id))
        new = replace(task, **changes)
        event: dict[str, Any] = {"action": action, "task": task.id, "title": task.title,
                                 "target": target if target is not None else new.holder or
                                 new.agent, "status": new.status.value, "reason": reason}
        if extra:
            event.update(extra)
        events.append(event)
        return new

    # -- adding ----------------------------------------------------------------------------

    def add(
        self,
        prompt: str,
        *,
        title: str | None = None,
        priority: str | Priority = Priority.MEDIUM,
        due: str | float | None = None,
        tags: Iterable[str] = (),
        team: str | None = None,
        target: str | None = None,
        depends_on: Iterable[int] = (),
        timeout: str | float | None = None,
        max_attempts: int | str = 3,
        review_by: str | None = None,
        now: float | None = None,
        repeat: int | None = None,
    ) -> Task:
        """Queue a new task. Everything is validated before anything is written."""
        now = time.time() if now is None else now
        if not isinstance(prompt, str) or not prompt.strip():
            raise TaskError("the prompt is empty; say what the agent should do")
        prompt = prompt.strip("\n")
        title = " ".join((title or "").split()) or default_title(prompt)
        prio = Priority.parse(priority)
        due_at = parse_due(due, now)
        tag_tuple = check_tags(tags)
        team = check_team(team) if team else None
        target = check_agent(target, "target") if target else None
        if team and target and not target.startswith(team + "/"):
            raise TaskError(f"target {target} is not in team {team}")
        review_by = check_agent(review_by, "reviewer") if review_by else None
        seconds = parse_duration(timeout, "timeout")
        attempts = parse_attempts(max_attempts)
        deps = tuple(sorted({_id(d) for d in depends_on}))
        with self._write() as (conn, events):
            self._check_deps(conn, deps)
            cur = conn.execute(
                "INSERT INTO tasks (prompt, title, priority, due, created, tags, team, target,"
                " depends_on, timeout, max_attempts, status, review_by, queued_at, updated,"
                " repeat) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?)",
                (prompt, title, prio.rank, due_at, now, json.dumps(list(tag_tuple)), team,
                 target, json.dumps(list(deps)), seconds, attempts, review_by, now, now,
                 repeat))
            task_id = cur.lastrowid
            conn.executemany("INSERT INTO task_deps (task, dep) VALUES (?, ?)",
                             [(task_id, d) for d in deps])
            self._check_cycle(conn, task_id)
            task = self._load(conn, task_id)
            events.append({"action": "task.queued", "task": task_id, "title": title,
                           "target": target, "status": "queued", "reason": None,
                           "priority": prio.value, "tags": list(tag_tuple) or None,
                           "team": team, "depends_on": list(deps) or None,
                           "review_by": review_by, "repeat": repeat})
        return task

    def depend(self, task_id: int, on: Iterable[int], now: float | None = None) -> Task:
        """Make a queued task also wait for ``on``; refuses unknown ids and cycles."""
        now = time.time() if now is None else now
        more = {_id(d) for d in on}
        with self._write() as (conn, events):
            task = self._load(conn, task_id)
            if task.status is not S.QUEUED:
                raise TaskError(f"task #{task.id} is {task.status}; only a queued task can get "
                                "new dependencies")
            if task.id in more:
                raise TaskError(f"task #{task.id} cannot depend on itself")
            new = tuple(sorted(more - set(task.depends_on)))
            self._check_deps(conn, new)
            conn.executemany("INSERT INTO task_deps (task, dep) VALUES (?, ?)",
                             [(task.id, d) for d in new])
            self._check_cycle(conn, task.id)
            task = self._update(conn, events, task, "task.depends", now,
                                depends_on=tuple(sorted({*task.depends_on, *new})),
                                reason="waits for " + ", ".join(f"#{d}" for d in new))
        return task

    @staticmethod
    def _check_deps(conn: sqlite3.Connection, deps: tuple[int, ...]) -> None:
        if not deps:
            return
        marks = ",".join("?" * len(deps))
        found = dict(conn.execute(
            f"SELECT id, status FROM tasks WHERE id IN ({marks})", deps).fetchall())
        missing = [d for d in deps if d not in found]
        if missing:
            raise TaskError("unknown dependenc" + ("y " if len(missing) == 1 else "ies ")
                            + ", ".join(f"#{d}" for d in missing) + ": no such task")
        for d in deps:
            if found[d] in ("failed", "cancelled"):
                raise TaskError(f"dependency #{d} is {found[d]}; retry it first "
                                f"(squad task retry {d}) or leave it out")

    @staticmethod
    def _check_cycle(conn: sqlite3.Connection, task_id: int) -> None:
        rows = conn.execute(
            """WITH RECURSIVE up(id) AS (
                   SELECT dep FROM task_deps WHERE task = ?
                   UNION SELECT d.dep FROM task_deps d JOIN up ON d.task = up.id)
               SELECT d.task, d.dep FROM task_deps d
               WHERE d.task = ? OR d.task IN (SELECT id FROM up)""",
            (task_id, task_id)).fetchall()
        edges: dict[int, list[int]] = {}
        for t, d in rows:
            edges.setdefault(t, []).append(d)
        cycle = find_cycle(edges, task_id)
        if cycle:
            raise TaskError("dependency cycle: " + " -> ".join(f"#{i}" for i in cycle)
                            + " (a task would wait for itself)")

    # -- reading ---------------------------------------------------------------------------

    def get(self, task_id: int) -> Task:
        with self._lock:
            return self._load(self._conn, task_id)

    def list(self, status: str | TaskStatus | Iterable[str | TaskStatus] | None = None
             ) -> list[Task]:
        """Tasks grouped by lifecycle status (queued, assigned, in_progress, review, done,
        failed, cancelled), each group in queue order."""
        if status is None:
            tasks = self._cached_tasks("1")
        else:
            wanted = [status] if isinstance(status, str) else list(status)
            words = sorted({TaskStatus.parse(s).value for s in wanted})
            tasks = self._cached_tasks(f"status IN ({','.join('?' * len(words))})", words)
        tasks.sort(key=lambda t: _LIFECYCLE[t.status])  # stable: keeps queue order inside
        return tasks

    def data_version(self) -> int:
        """SQLite's commit counter as this connection sees it: it changes whenever another
        connection (any process) commits. A cheap "did anything change?"."""
        return self._read("PRAGMA data_version")[0][0]

    def count(self) -> int:
        return self._read("SELECT count(*) FROM tasks")[0][0]

    def counts(self) -> dict[str, int]:
        """How many tasks are in each status (every status present, zero or not)."""
        found = dict(self._read("SELECT status, count(*) FROM tasks GROUP BY status"))
        return {s.value: found.get(s.value, 0) for s in TaskStatus}

    def queued_ready(self, now: float | None = None) -> list[Task]:
        """Queued tasks that may be dispatched now, in dispatch order: every dependency done
        and the backoff passed. First fails queued tasks whose dependency failed or was
        cancelled (with the reason)."""
        now = time.time() if now is None else now
        self.fail_orphans(now)
        return self._cached_tasks(
            "status = 'queued' AND not_before <= ? AND NOT EXISTS (SELECT 1 FROM task_deps d"
            " JOIN tasks x ON x.id = d.dep WHERE d.task = tasks.id AND x.status != 'done')",
            (now,))

    def fail_orphans(self, now: float | None = None) -> list[Task]:
        """Fail queued tasks whose dependency failed or was cancelled. Normally that happens
        at the moment the dependency fails; this catches anything left over."""
        sql = ("SELECT DISTINCT d.task FROM tasks x JOIN task_deps d ON d.dep = x.id"
               " JOIN tasks t ON t.id = d.task"
               " WHERE x.status IN ('failed', 'cancelled') AND t.status = 'queued'")
        if not self._read(sql):
            return []
        now = time.time() if now is None else now
        failed: list[Task] = []
        with self._write() as (conn, events):
            for (task_id,) in conn.execute(sql).fetchall():
                task = self._load(conn, task_id)
                if task.status is S.QUEUED:
                    failed += self._cascade_one(conn, events, task, now)
        return failed

    def dep_statuses(self, task_id: int) -> dict[int, TaskStatus]:
        rows = self._read("SELECT d.dep, x.status FROM task_deps d JOIN tasks x ON x.id = d.dep"
                          " WHERE d.task = ?", (_id(task_id),))
        return {dep: _STATUS[status] for dep, status in rows}

    def blocked_reason(self, task_id: int, now: float | None = None) -> str | None:
        """Why a queued task waits, apart from agents: dependencies or backoff (or None)."""
        task = self.get(task_id)
        if task.status is not S.QUEUED:
            return None
        now = time.time() if now is None else now
        return blocked_reason(task, self.dep_statuses(task.id), now)

    def active_for(self, agent: str) -> list[Task]:
        """Tasks the agent holds: assigned or in progress as worker, or a review handed to it."""
        return self._tasks(
            "(status IN ('assigned', 'in_progress') AND agent = ?) OR (status = 'review'"
            " AND review_by = ? AND review_assigned_at IS NOT NULL)", (agent, agent),
            " ORDER BY coalesce(review_assigned_at, assigned_at), id")

    def current_task(self, agent: str) -> Task | None:
        """The task an agent works on: in progress first, then assigned (oldest first), then
        a review handed to it. What ``squad task done`` without an id refers to."""
        rank = {S.IN_PROGRESS: 0, S.ASSIGNED: 1, S.REVIEW: 2}
        held = sorted(self.active_for(agent), key=lambda t: rank[t.status])
        return held[0] if held else None

    def current_tasks(self) -> dict[str, Task]:
        """:meth:`current_task` of every agent holding something, in one query."""
        held = self._tasks(
            "status IN ('assigned', 'in_progress') OR (status = 'review' AND"
            " review_assigned_at IS NOT NULL)",
            order=" ORDER BY coalesce(review_assigned_at, assigned_at), id")
        rank = {S.IN_PROGRESS: 0, S.ASSIGNED: 1, S.REVIEW: 2}
        out: dict[str, Task] = {}
        for task in sorted(held, key=lambda t: rank[t.status]):
            if task.holder:
                out.setdefault(task.holder, task)
        return out

    def active_counts(self) -> dict[str, int]:
        """``{"team/agent": tasks held}`` for every agent holding at least one."""
        rows = self._read(
            "SELECT agent, count(*) FROM tasks WHERE status IN ('assigned', 'in_progress')"
            " GROUP BY agent UNION ALL SELECT review_by, count(*) FROM tasks WHERE status ="
            " 'review' AND review_assigned_at IS NOT NULL GROUP BY review_by")
        counts: dict[str, int] = {}
        for agent, n in rows:
            counts[agent] = counts.get(agent, 0) + n
        return counts

    def in_delivery(self) -> list[Task]:
        """Tasks committed to an agent whose delivery is not confirmed: after a crash the
        supervisor looks for ``task.marker`` on ``task.holder``'s screen and calls
        :meth:`mark_delivered` or :meth:`unassign`."""
        return self._tasks(
            "status = 'assigned' OR (status = 'review' AND review_assigned_at IS NOT NULL"
            " AND review_started_at IS NULL)")

    def reviews_waiting(self) -> list[Task]:
        """Tasks in review whose review has not been handed to the reviewer yet."""
        return self._tasks("status = 'review' AND review_assigned_at IS NULL")

    def timed_out(self, now: float | None = None) -> list[Task]:
        """Delivered tasks past their timeout (call :meth:`fail_attempt` on each)."""
        now = time.time() if now is None else now
        return self._tasks("status = 'in_progress' AND timeout IS NOT NULL"
                           " AND started_at + timeout < ?", (now,))

    # -- the lifecycle ---------------------------------------------------------------------

    def assign(self, task_id: int, agent: str, now: float | None = None) -> Task:
        """Commit a queued task to ``agent`` with a fresh delivery token, before sending it.
        Counts one attempt. Raises :class:`TaskError` if the task is no longer queued (say a
        person cancelled it since the plan) or still waits for a dependency."""
        now = time.time() if now is None else now
        agent = check_agent(agent, "agent")
        with self._write() as (conn, events):
            task = self._load(conn, task_id)
            check_transition(task.status, S.ASSIGNED, task.id)
            pending = conn.execute(
                "SELECT d.dep, x.status FROM task_deps d JOIN tasks x ON x.id = d.dep"
                " WHERE d.task = ? AND x.status != 'done'", (task.id,)).fetchall()
            if pending:
                raise TaskError(f"task #{task.id} waits for " + ", ".join(
                    f"#{d} ({s})" for d, s in pending))
            token = secrets.token_hex(4)
            task = self._update(conn, events, task, "task.assigned", now, target=agent,
                                extra={"attempt": task.attempts + 1, "token": token},
                                status=S.ASSIGNED, agent=agent, attempts=task.attempts + 1,
                                assigned_at=now, started_at=None, delivery_token=token,
                                **NO_DELIVERY)
        return task

    def mark_sending(self, task_id: int, token: str, holder_id: str | None,
                     screen_hash: str | None) -> Task:
        """Record, just before the text goes out, who receives it and what its screen looked
        like (later changes are measured against that). Refuses a stale token (the task was
        cancelled or reassigned meanwhile)."""
        with self._write() as (conn, _):
            task = self._current(conn, task_id, token)
            conn.execute("UPDATE tasks SET sent_at = NULL, sent_screen = ?, holder_id = ?,"
                         " enters = 0, rev = rev + 1 WHERE id = ?",
                         (screen_hash, holder_id, task.id))
            return replace(task, sent_at=None, sent_screen=screen_hash, holder_id=holder_id,
                           enters=0)

    def mark_pasted(self, task_id: int, token: str, now: float | None = None) -> Task:
        """The text is in the holder's input (its Enter may still be missing): after a crash
        the supervisor knows it must finish this delivery rather than send it again."""
        now = time.time() if now is None else now
        with self._write() as (conn, _):
            task = self._current(conn, task_id, token)
            conn.execute("UPDATE tasks SET sent_at = ?, rev = rev + 1 WHERE id = ?",
                         (now, task.id))
            return replace(task, sent_at=now)

    def count_enter(self, task_id: int, token: str) -> Task:
        """One more Enter was pressed to submit the current delivery."""
        with self._write() as (conn, _):
            task = self._current(conn, task_id, token)
            conn.execute("UPDATE tasks SET enters = enters + 1, rev = rev + 1 WHERE id = ?",
                         (task.id,))
            return replace(task, enters=task.enters + 1)

    def _current(self, conn: sqlite3.Connection, task_id: int, token: str) -> Task:
        task = self._load(conn, task_id)
        if token != task.delivery_token or task.holder is None:
            raise TaskError(f"task #{task.id}: delivery {token} is stale (now "
                            f"{task.delivery_token or 'none'})")
        return task

    def mark_delivered(self, task_id: int, now: float | None = None,
                       token: str | None = None, screen_hash: str | None = None) -> Task:
        """The holder took the text up: an assigned task becomes in_progress; a review handed
        to its reviewer is marked started. ``screen_hash`` is the holder's screen at that
        moment (later output is measured against it). With ``token``, refuses a stale
        delivery."""
        now = time.time() if now is None else now
        with self._write() as (conn, events):
            task = self._load(conn, task_id)
            if token is not None and token != task.delivery_token:
                raise TaskError(f"task #{task.id}: delivery {token} is stale (now "
                                f"{task.delivery_token or 'none'})")
            if task.status is S.REVIEW:
                if task.review_assigned_at is None:
                    raise TaskError(f"task #{task.id} is waiting for review and was not handed"
                                    " to its reviewer")
                return self._update(conn, events, task, "task.review_delivered", now,
                                    review_started_at=now, taken_screen=screen_hash)
            task = self._update(conn, events, task, "task.delivered", now,
                                status=S.IN_PROGRESS, started_at=now, taken_screen=screen_hash)
        return task

    PARKED = "hibernated"  # holder_id of a task whose holder was hibernated while on it

    def park(self, task_id: int, now: float | None = None) -> Task:
        """The holder of this task in progress is being hibernated: it keeps the task, and
        :meth:`redeliver` gives it back once the agent is awake again."""
        now = time.time() if now is None else now
        with self._write() as (conn, events):
            task = self._load(conn, task_id)
            if task.status is not S.IN_PROGRESS:
                raise TaskError(f"task #{task.id} is {task.status}, not in progress")
            return self._update(conn, events, task, "task.parked", now,
                                reason="its agent was hibernated; it keeps the task",
                                holder_id=self.PARKED)

    def redeliver(self, task_id: int, now: float | None = None) -> Task:
        """Hand a parked task to its (woken) holder again: a new delivery (fresh token) of
        the same attempt, confirmed like any other."""
        now = time.time() if now is None else now
        with self._write() as (conn, events):
            task = self._load(conn, task_id)
            if task.status is not S.IN_PROGRESS or task.holder_id != self.PARKED:
                raise TaskError(f"task #{task.id} is not waiting for its woken agent")
            token = secrets.token_hex(4)
            return self._update(conn, events, task, "task.redelivered", now,
                                target=task.agent, extra={"token": token},
                                status=S.ASSIGNED, assigned_at=now, started_at=None,
                                delivery_token=token, **NO_DELIVERY)

    def unassign(self, task_id: int, reason: str, now: float | None = None) -> Task:
        """Undo an assignment whose text never arrived: back to queued (or, for a review, back
        to waiting for the reviewer) without counting an attempt or a failure."""
        now = time.time() if now is None else now
        with self._write() as (conn, events):
            task = self._load(conn, task_id)
            if task.status is S.REVIEW and task.review_assigned_at is not None:
                return self._update(conn, events, task, "task.unassigned", now, reason=reason,
                                    target=task.review_by, review_assigned_at=None,
                                    review_started_at=None, delivery_token=None,
                                    **NO_DELIVERY)
            if task.status is not S.ASSIGNED:
                raise TaskError(f"task #{task.id} is {task.status}; only an assigned task "
                                "(not yet delivered) can be unassigned")
            task = self._update(conn, events, task, "task.unassigned", now, reason=reason,
                                target=task.agent, status=S.QUEUED, agent=None,
                                attempts=max(task.attempts - 1, 0), assigned_at=None,
                                delivery_token=None, queued_at=now, **NO_DELIVERY)
        return task

    def complete(self, task_id: int, result: str | None = None, now: float | None = None
                 ) -> Task:
        """The worker finished: ``done``, or ``review`` when the task names a reviewer.
        ``result`` is trimmed to an excerpt (the end of the output)."""
        now = time.time() if now is None else now
        with self._write() as (conn, events):
            task = self._load(conn, task_id)
            if task.status is S.REVIEW:
                raise TaskError(f"task #{task.id} waits for review by {task.review_by}; record "
                                "the reviewer's verdict instead")
            excerpt = trim_result(result)
            started = task.started_at
            if started is None and task.status is S.ASSIGNED:
                started = now  # the agent finished before its delivery was confirmed
            if task.review_by:
                task = self._update(conn, events, task, "task.review", now,
                                    target=task.review_by, reason=f"for {task.review_by}",
                                    status=S.REVIEW, result=excerpt, started_at=started,
                                    review_at=now, review_assigned_at=None,
                                    review_started_at=None, delivery_token=None)
            else:
                task = self._update(conn, events, task, "task.done", now, target=task.agent,
                                    status=S.DONE, result=excerpt, started_at=started,
                                    finished_at=now, delivery_token=None)
        return task

    def assign_review(self, task_id: int, now: float | None = None) -> Task:
        """Commit a task in review to its reviewer with a fresh token, before sending
        ``task.review_text()``; then :meth:`mark_delivered`."""
        now = time.time() if now is None else now
        with self._write() as (conn, events):
            task = self._load(conn, task_id)
            if task.status is not S.REVIEW or task.review_assigned_at is not None:
                state = "already with its reviewer" if task.status is S.REVIEW else task.status
                raise TaskError(f"task #{task.id} is {state}; only a task waiting for review "
                                "can be handed to its reviewer")
            token = secrets.token_hex(4)
            task = self._update(conn, events, task, "task.review_assigned", now,
                                target=task.review_by, extra={"token": token},
                                review_assigned_at=now, delivery_token=token, **NO_DELIVERY)
        return task

    def review_verdict(self, task_id: int, approved: bool, feedback: str | None = None,
                       now: float | None = None) -> Task:
        """Approved: done. Rejected: back to the queue with ``feedback`` added to the prompt
        the next worker sees (``delivery_text``); the third rejection fails the task."""
        now = time.time() if now is None else now
        with self._write() as (conn, events):
            task = self._load(conn, task_id)
            if task.status is not S.REVIEW:
                raise TaskError(f"task #{task.id} is {task.status}, not in review")
            reviewer = task.review_by
            if approved:
                return self._update(conn, events, task, "task.done", now, target=reviewer,
                                    reason=f"approved by {reviewer}"
                                    + (f": {feedback}" if feedback else ""),
                                    status=S.DONE, finished_at=now, delivery_token=None)
            why = (feedback or "").strip() or "rejected without a reason"
            count = task.rejections + 1
            common = dict(rejections=count, feedback=(*task.feedback, why),
                          delivery_token=None, review_assigned_at=None,
                          review_started_at=None)
            if count >= MAX_REJECTIONS:
                task = self._update(conn, events, task, "task.failed", now, target=reviewer,
                                    reason=f"rejected {count} times; last: {why}",
                                    status=S.FAILED, finished_at=now,
                                    error=f"rejected {count} times by {reviewer}; last: {why}",
                                    **common)
                self._cascade(conn, events, task, now)
            else:
                task = self._update(conn, events, task, "task.rejected", now, target=reviewer,
                                    reason=why, extra={"rejections": count},
                                    status=S.QUEUED, agent=None, result=None, not_before=0.0,
                                    queued_at=now, assigned_at=None, started_at=None,
                                    review_at=None, **common)
        return task

    def fail_attempt(self, task_id: int, error: str, now: float | None = None,
                     rng: Any = None, *, base: float = 5.0, cap: float = 300.0) -> Task:
        """An attempt failed (agent exited, stalled, timed out, reported failure): requeue
        with backoff (``not_before``), or fail the task once ``max_attempts`` attempts failed."""
        now = time.time() if now is None else now
        error = (error or "").strip() or "the attempt failed"
        with self._write() as (conn, events):
            task = self._load(conn, task_id)
            if task.status not in (S.ASSIGNED, S.IN_PROGRESS):
                raise TaskError(f"task #{task.id} is {task.status}; only an assigned or running "
                                "task can fail an attempt")
            n = task.failures + 1
            if n >= task.max_attempts:
                task = self._update(
                    conn, events, task, "task.failed", now, target=task.agent,
                    reason=f"{error} (attempt {n} of {task.max_attempts}, none left)",
                    status=S.FAILED, failures=n, finished_at=now, delivery_token=None,
                    error=f"{error} (failed {n} of {task.max_attempts} attempts)")
                self._cascade(conn, events, task, now)
            else:
                wait = backoff(n, base, cap, rng)
                task = self._update(
                    conn, events, task, "task.requeued", now, target=task.agent,
                    reason=f"{error} (attempt {n} of {task.max_attempts} failed)",
                    extra={"retry_at": round(now + wait, 3), "backoff": round(wait, 3)},
                    status=S.QUEUED, failures=n, error=error, not_before=now + wait,
                    agent=None, delivery_token=None, queued_at=now, assigned_at=None,
                    started_at=None)
        return task

    def fail(self, task_id: int, error: str | None = None, now: float | None = None) -> Task:
        """Fail a live task now, whatever its attempts (``squad task fail``)."""
        now = time.time() if now is None else now
        error = (error or "").strip() or "marked failed"
        with self._write() as (conn, events):
            task = self._load(conn, task_id)
            task = self._update(conn, events, task, "task.failed", now, reason=error,
                                target=task.holder or task.agent, status=S.FAILED, error=error,
                                finished_at=now, delivery_token=None)
            self._cascade(conn, events, task, now)
        return task

    def cancel(self, task_id: int, reason: str | None = None, now: float | None = None
               ) -> Task:
        """Cancel a live task; tasks waiting for it fail. A held task's agent keeps whatever
        it was doing: the caller decides whether to interrupt it."""
        now = time.time() if now is None else now
        reason = (reason or "").strip() or "cancelled"
        with self._write() as (conn, events):
            task = self._load(conn, task_id)
            task = self._update(conn, events, task, "task.cancelled", now, reason=reason,
                                target=task.holder or task.agent, status=S.CANCELLED,
                                error=reason, finished_at=now, delivery_token=None)
            self._cascade(conn, events, task, now)
        return task

    def retry(self, task_id: int, now: float | None = None) -> Task:
        """Queue a failed or cancelled task again as new: attempts, failures and rejections
        restart from zero, times and result are cleared; the reviewers' feedback is kept (the
        next worker still sees it). Its own failed dependencies must be retried first."""
        now = time.time() if now is None else now
        with self._write() as (conn, events):
            task = self._load(conn, task_id)
            if task.status not in (S.FAILED, S.CANCELLED):
                raise TaskError(f"task #{task.id} is {task.status}; only failed or cancelled "
                                "tasks can be retried")
            self._check_deps(conn, task.depends_on)
            task = self._update(conn, events, task, "task.retried", now, target=None,
                                status=S.QUEUED, attempts=0, failures=0, rejections=0,
                                not_before=0.0, agent=None, error=None, result=None,
                                delivery_token=None, queued_at=now, assigned_at=None,
                                started_at=None, review_at=None, review_assigned_at=None,
                                review_started_at=None, finished_at=None)
        return task

    def _cascade(self, conn: sqlite3.Connection, events: list[dict[str, Any]], task: Task,
                 now: float) -> list[Task]:
        """Fail every queued task that waits (directly or not) for ``task``, which just
        failed or was cancelled."""
        failed: list[Task] = []
        todo = [task]
        while todo:
            dep = todo.pop()
            rows = conn.execute(
                f"{_SELECT} WHERE status = 'queued' AND id IN"
                " (SELECT task FROM task_deps WHERE dep = ?)", (dep.id,)).fetchall()
            for row in rows:
                child = self._fail_for(conn, events, _task(row), dep, now)
                failed.append(child)
                todo.append(child)
        return failed

    def _cascade_one(self, conn: sqlite3.Connection, events: list[dict[str, Any]],
                     task: Task, now: float) -> list[Task]:
        bad = conn.execute(
            f"{_SELECT} WHERE status IN ('failed', 'cancelled') AND id IN"
            " (SELECT dep FROM task_deps WHERE task = ?) ORDER BY id", (task.id,)).fetchone()
        if bad is None:
            return []
        task = self._fail_for(conn, events, task, _task(bad), now)
        return [task, *self._cascade(conn, events, task, now)]

    def _fail_for(self, conn: sqlite3.Connection, events: list[dict[str, Any]], task: Task,
                  dep: Task, now: float) -> Task:
        why = f"dependency #{dep.id} {dep.status}" + (f": {dep.error}" if dep.error else "")
        return self._update(conn, events, task, "task.failed", now, reason=why,
                            status=S.FAILED, error=why, finished_at=now)

    # -- recurring work ----------------------------------------------------------------------

    def add_repeat(self, prompt: str, *, every: str | float | None = None,
                   at: str | None = None, now: float | None = None,
                   **task: Any) -> tuple[Repeat, Task | None]:
        """A task that comes back: every ``every`` (a duration), daily at ``at`` (HH:MM,
        local time), or from ``at`` on every ``every``. The task keywords are validated as
        by :meth:`add`. With ``every`` alone the first task is queued now; with ``at`` it
        waits for that time. Returns the series and the task queued now, if any."""
        now = time.time() if now is None else now
        seconds = parse_duration(every, "every") if every is not None else None
        clock_at = parse_clock(at) if at is not None else None
        if seconds is None and clock_at is None:
            raise TaskError("a repeat needs --every (like 15m, 2h) or --at (like 09:30)")
        if task.get("depends_on"):
            raise TaskError("a repeating task cannot wait for other tasks (--after)")
        # Validate the template by building a task from it (nothing is written).
        check = dict(task, title=task.get("title"))
        self._validate(prompt, check, now)
        template = json.dumps({"prompt": prompt, **{k: (list(v) if isinstance(v, tuple)
                                                       else v) for k, v in task.items()}})
        first = now if clock_at is None else next_slot(None, clock_at, now - 1, now)
        with self._write() as (conn, events):
            cur = conn.execute("INSERT INTO repeats (template, every, at, next_at, created)"
                               " VALUES (?, ?, ?, ?, ?)", (template, seconds, clock_at,
                                                            first, now))
            rid = cur.lastrowid
            events.append({"action": "repeat.added", "task": None, "target": task.get("target"),
                           "status": "active", "reason": describe_repeat(seconds, clock_at),
                           "repeat": rid})
        queued = self.run_repeats(now)
        return self.repeat(rid), next((t for t in queued if t.repeat == rid), None)

    def _validate(self, prompt: str, task: dict[str, Any], now: float) -> None:
        if not isinstance(prompt, str) or not prompt.strip():
            raise TaskError("the prompt is empty; say what the agent should do")
        Priority.parse(task.get("priority") or Priority.MEDIUM)
        check_tags(task.get("tags") or ())
        if task.get("team"):
            check_team(task["team"])
        for key in ("target", "review_by"):
            if task.get(key):
                check_agent(task[key], key)
        parse_duration(task.get("timeout"), "timeout")
        parse_attempts(task.get("max_attempts", 3))

    def repeat(self, repeat_id: int) -> Repeat:
        rows = self._read(f"SELECT {_REPEAT_COLUMNS} FROM repeats WHERE id = ?",
                          (_id(repeat_id),))
        if not rows:
            raise TaskError(f"no repeat #{repeat_id}")
        return Repeat.from_row(rows[0])

    def repeats(self, *, active_only: bool = False) -> list[Repeat]:
        where = " WHERE active = 1" if active_only else ""
        return [Repeat.from_row(r) for r in
                self._read(f"SELECT {_REPEAT_COLUMNS} FROM repeats{where} ORDER BY id")]

    def stop_repeat(self, repeat_id: int, now: float | None = None) -> Repeat:
        """No more tasks from this series (the open one, if any, goes on)."""
        with self._write() as (conn, events):
            row = conn.execute(f"SELECT {_REPEAT_COLUMNS} FROM repeats WHERE id = ?",
                               (_id(repeat_id),)).fetchone()
            if row is None:
                raise TaskError(f"no repeat #{repeat_id}")
            conn.execute("UPDATE repeats SET active = 0 WHERE id = ?", (row[0],))
            events.append({"action": "repeat.stopped", "task": None, "target": None,
                           "status": "stopped", "reason": None, "repeat": row[0]})
        return self.repeat(repeat_id)

    def run_repeats(self, now: float | None = None) -> list[Task]:
        """Queue what recurring series are due. A series whose previous task is still open
        queues nothing for that slot (work never piles up): the slot is skipped and
        counted. Safe to call from any process at any time: each slot is taken once."""
        now = time.time() if now is None else now
        if not self._read("SELECT 1 FROM repeats WHERE active = 1 AND next_at <= ? LIMIT 1",
                          (now,)):
            return []
        queued: list[Task] = []
        for rep in self.repeats(active_only=True):
            if rep.next_at > now:
                continue
            with self._write() as (conn, events):
                row = conn.execute(f"SELECT {_REPEAT_COLUMNS} FROM repeats WHERE id = ?",
                                   (rep.id,)).fetchone()
                rep = Repeat.from_row(row)
                if not rep.active or rep.next_at > now:
                    continue  # another process took this slot
                following = next_slot(rep.every, rep.at, rep.next_at, now)
                last = conn.execute("SELECT status FROM tasks WHERE id = ?",
                                    (rep.last_task or -1,)).fetchone()
                if last is not None and last[0] not in ("done", "failed", "cancelled"):
                    conn.execute("UPDATE repeats SET next_at = ?, skipped = skipped + 1"
                                 " WHERE id = ?", (following, rep.id))
                    events.append({"action": "repeat.skipped", "task": rep.last_task,
                                   "target": None, "status": last[0], "repeat": rep.id,
                                   "reason": f"task #{rep.last_task} is still {last[0]}"})
                    continue
                conn.execute("UPDATE repeats SET next_at = ? WHERE id = ?",
                             (following, rep.id))
            template = json.loads(rep.template)
            prompt = template.pop("prompt")
            try:
                task = self.add(prompt, now=now, repeat=rep.id, **template)
            except TaskError as exc:  # e.g. a target dropped from the layout since
                log.warning("repeat #%s could not queue a task: %s", rep.id, exc)
                continue
            with self._write() as (conn, _):
                conn.execute("UPDATE repeats SET last_task = ? WHERE id = ?", (task.id, rep.id))
            queued.append(task)
        return queued

    # -- breakers and small state ----------------------------------------------------------

    def breakers(self) -> dict[str, Breaker]:
        """Every stored breaker by agent (agents never failing have none: closed)."""
        return {agent: Breaker.from_dict(json.loads(state))
                for agent, state in self._read("SELECT agent, state FROM breakers")}

    def breaker(self, agent: str) -> Breaker:
        rows = self._read("SELECT state FROM breakers WHERE agent = ?", (agent,))
        return Breaker.from_dict(json.loads(rows[0][0])) if rows else Breaker()

    def save_breaker(self, agent: str, breaker: Breaker, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self._write() as (conn, _):
            conn.execute("INSERT INTO breakers (agent, state, updated) VALUES (?, ?, ?)"
                         " ON CONFLICT (agent) DO UPDATE SET state = excluded.state,"
                         " updated = excluded.updated",
                         (agent, json.dumps(breaker.to_dict()), now))

    def record_outcome(self, agent: str, ok: bool, now: float | None = None, *,
                       threshold: int | None = None, cooldown: float | None = None) -> Breaker:
        """Count a finished (``ok``) or failed task against the agent's breaker, in one
        transaction; emits ``breaker.opened`` / ``breaker.closed`` when its state changes.
        ``threshold`` and ``cooldown`` (from the layout) replace the stored ones."""
        now = time.time() if now is None else now
        if ok:
            b = self.breaker(agent)
            if b.failures == 0 and b.opened_at is None:
                return b  # the common case: a healthy agent stays healthy, nothing to write
        with self._write() as (conn, events):
            row = conn.execute("SELECT state FROM breakers WHERE agent = ?", (agent,)).fetchone()
            b = Breaker.from_dict(json.loads(row[0])) if row else Breaker()
            if threshold is not None:
                b.threshold = threshold
            if cooldown is not None:
                b.cooldown = cooldown
            before = b.state(now)
            after = b.record_success(now) if ok else b.record_failure(now)
            conn.execute("INSERT INTO breakers (agent, state, updated) VALUES (?, ?, ?)"
                         " ON CONFLICT (agent) DO UPDATE SET state = excluded.state,"
                         " updated = excluded.updated",
                         (agent, json.dumps(b.to_dict()), now))
            if after == OPEN and before != OPEN:
                events.append({"action": "breaker.opened", "task": None, "target": agent,
                               "status": OPEN, "until": b.until,
                               "reason": f"{b.failures} consecutive failures; no tasks for "
                                         f"{b.cooldown:g} s"})
            elif after == CLOSED and before != CLOSED:
                events.append({"action": "breaker.closed", "task": None, "target": agent,
                               "status": CLOSED, "reason": "a task succeeded"})
        return b

    def get_value(self, key: str, default: Any = None) -> Any:
        rows = self._read("SELECT value FROM kv WHERE key = ?", (key,))
        return json.loads(rows[0][0]) if rows else default

    def set_value(self, key: str, value: Any) -> None:
        with self._write() as (conn, _):
            conn.execute("INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT (key)"
                         " DO UPDATE SET value = excluded.value", (key, json.dumps(value)))


_REPEAT_COLUMNS = "id, template, every, at, next_at, last_task, skipped, active, created"


@dataclass(frozen=True)
class Repeat:
    """A recurring series of tasks (``squad dispatch --every`` / ``--at``)."""

    id: int
    template: str  # JSON of the task it queues
    every: float | None
    at: str | None
    next_at: float
    last_task: int | None
    skipped: int
    active: bool
    created: float

    @classmethod
    def from_row(cls, row: tuple) -> Repeat:
        return cls(row[0], row[1], row[2], row[3], row[4], row[5], row[6], bool(row[7]),
                   row[8])

    @property
    def title(self) -> str:
        data = json.loads(self.template)
        return data.get("title") or default_title(data.get("prompt", ""))

    def to_dict(self) -> dict[str, Any]:
        data = json.loads(self.template)
        return {"id": self.id, "title": self.title, "schedule": describe_repeat(
            self.every, self.at), "every": self.every, "at": self.at, "next_at": self.next_at,
            "last_task": self.last_task, "skipped": self.skipped, "active": self.active,
            "prompt": data.get("prompt"), "target": data.get("target"),
            "tags": data.get("tags") or []}


def _id(value: Any) -> int:
    """A task id from an int or a string like "12" or "#12"."""
    if isinstance(value, bool):
        raise TaskError(f"task id {value!r}: not a number")
    if isinstance(value, int):
        return value
    text = str(value).strip().lstrip("#")
    if not text.isdigit():
        raise TaskError(f"task id {value!r}: not a number")
    return int(text)
