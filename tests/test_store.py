"""The SQLite task store, for real: lifecycle, validation, dependencies, review, retries,
breakers, several connections and a second process writing at the same time."""

from __future__ import annotations

import os
import random
import sqlite3
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from squad.dispatch import Breaker
from squad.store import SCHEMA_VERSION, TaskStore
from squad.task_model import Priority, TaskError, TaskStatus

ROOT = Path(__file__).resolve().parent.parent
NOW = 1_800_000_000.0
S = TaskStatus


@pytest.fixture
def events() -> list[dict]:
    return []


@pytest.fixture
def store(tmp_path: Path, events: list[dict]):
    s = TaskStore(tmp_path / "tasks.db", on_event=events.append)
    yield s
    s.close()


def rows(store: TaskStore) -> tuple[int, int]:
    deps = store._read("SELECT count(*) FROM task_deps")[0][0]
    return store.count(), deps


def test_add_get_list_round_trip(store: TaskStore) -> None:
    t = store.add("Fix the login button overlap on mobile\n\nDetails...", priority="High",
                  due="2h", tags=["web", "css", "web"], team="frontend", target="frontend/dev",
                  timeout="10m", max_attempts=5, review_by="frontend/qa", now=NOW)
    assert t.id == 1 and t.status is S.QUEUED and t.priority is Priority.HIGH
    assert t.title == "Fix the login button overlap on mobile"
    assert t.due == NOW + 7200 and t.tags == ("css", "web") and t.timeout == 600
    assert (t.team, t.target, t.review_by, t.max_attempts) == (
        "frontend", "frontend/dev", "frontend/qa", 5)
    assert t.created == t.queued_at == t.updated == NOW
    assert store.get(1) == t and store.get("#1") == t
    assert store.list() == [t] and store.list("queued") == [t] and store.list(["done"]) == []
    with pytest.raises(TaskError, match="no task #99"):
        store.get(99)


def test_list_groups_by_status_in_queue_order(store: TaskStore) -> None:
    low = store.add("low", priority="low", now=NOW)
    crit = store.add("crit", priority="critical", now=NOW + 1)
    due = store.add("due", due=NOW + 50, now=NOW + 2)
    plain = store.add("plain", now=NOW + 3)
    store.assign(low.id, "t/a", now=NOW + 4)
    assert [t.id for t in store.list()] == [crit.id, due.id, plain.id, low.id]
    assert [t.id for t in store.queued_ready(NOW + 5)] == [crit.id, due.id, plain.id]


@pytest.mark.parametrize("kwargs,message", [
    (dict(prompt="   "), "prompt is empty"),
    (dict(priority="urgent"), "use one of critical, high, medium, low"),
    (dict(due="someday"), "not a date"),
    (dict(depends_on=[1, 42]), "unknown dependency #42"),
    (dict(timeout="-3"), "more than zero"),
    (dict(max_attempts=0), "1 to 100"),
    (dict(target="nobody"), "TEAM/AGENT"),
    (dict(team="fe", target="be/dev"), "not in team fe"),
    (dict(review_by="x"), "reviewer"),
    (dict(tags=["two words"]), "without spaces"),
])
def test_bad_input_writes_nothing(store: TaskStore, events: list[dict], kwargs: dict,
                                  message: str) -> None:
    store.add("first", now=NOW)
    before, n_events = rows(store), len(events)
    kwargs.setdefault("prompt", "second")
    with pytest.raises(TaskError, match=message):
        store.add(kwargs.pop("prompt"), now=NOW, **kwargs)
    assert rows(store) == before and len(events) == n_events


def test_dependency_on_failed_task_is_refused(store: TaskStore) -> None:
    a = store.add("a", now=NOW)
    store.fail(a.id, "broken", now=NOW)
    before = rows(store)
    with pytest.raises(TaskError, match="dependency #1 is failed; retry it first"):
        store.add("b", depends_on=[a.id], now=NOW)
    assert rows(store) == before


def test_dependency_cycle_is_refused_and_writes_nothing(store: TaskStore) -> None:
    a = store.add("a", now=NOW)
    b = store.add("b", depends_on=[a.id], now=NOW)
    c = store.add("c", depends_on=[b.id], now=NOW)
    before = rows(store)
    with pytest.raises(TaskError, match="dependency cycle: #1 -> #3 -> #2 -> #1"):
        store.depend(a.id, [c.id])
    with pytest.raises(TaskError, match="cannot depend on itself"):
        store.depend(a.id, [a.id])
    assert rows(store) == before and store.get(a.id).depends_on == ()
    d = store.add("d", now=NOW)
    assert store.depend(a.id, [d.id]).depends_on == (d.id,)


def test_dependencies_wait_then_release(store: TaskStore) -> None:
    a = store.add("a", now=NOW)
    b = store.add("b", depends_on=[a.id], priority="critical", now=NOW)
    assert [t.id for t in store.queued_ready(NOW)] == [a.id]
    assert store.blocked_reason(b.id, NOW) == "waits for #1 (queued)"
    with pytest.raises(TaskError, match="waits for #1"):
        store.assign(b.id, "t/a", now=NOW)
    store.assign(a.id, "t/a", now=NOW)
    store.mark_delivered(a.id, now=NOW)
    store.complete(a.id, "ok", now=NOW)
    assert [t.id for t in store.queued_ready(NOW)] == [b.id]
    assert store.blocked_reason(b.id, NOW) is None


def test_failure_propagates_to_dependents_with_the_reason(store: TaskStore,
                                                          events: list[dict]) -> None:
    a = store.add("a", now=NOW)
    b = store.add("b", depends_on=[a.id], now=NOW)
    c = store.add("c", depends_on=[b.id], now=NOW)
    free = store.add("free", now=NOW)
    store.cancel(a.id, "not needed", now=NOW + 1)
    assert store.get(b.id).status is S.FAILED
    assert store.get(b.id).error == "dependency #1 cancelled: not needed"
    assert store.get(c.id).error.startswith("dependency #2 failed: dependency #1 cancelled")
    assert [t.id for t in store.queued_ready(NOW + 2)] == [free.id]
    failed = [e["task"] for e in events if e["action"] == "task.failed"]
    assert failed == [b.id, c.id]


def test_fail_orphans_catches_leftovers(store: TaskStore) -> None:
    a = store.add("a", now=NOW)
    b = store.add("b", depends_on=[a.id], now=NOW)
    # another writer failed #1 without cascading (say an older squad): queued_ready cleans up
    store._conn.execute("UPDATE tasks SET status = 'failed', error = 'x' WHERE id = 1")
    assert store.queued_ready(NOW) == []
    assert store.get(b.id).status is S.FAILED and "dependency #1 failed" in store.get(b.id).error


def test_assign_deliver_complete(store: TaskStore, events: list[dict], tmp_path: Path) -> None:
    t = store.add("Fix it", tags=["css"], now=NOW)
    seen_by_other: list[str] = []
    other = TaskStore(tmp_path / "tasks.db")
    store.on_event = lambda e: (events.append(e), seen_by_other.append(
        other.get(e["task"]).status.value))
    t = store.assign(t.id, "frontend/dev", now=NOW + 1)
    assert t.status is S.ASSIGNED and t.agent == "frontend/dev" and t.attempts == 1
    assert len(t.delivery_token) == 8 and t.delivery_text().endswith(t.marker)
    assert store.in_delivery() == [t] and store.active_counts() == {"frontend/dev": 1}
    assert store.current_task("frontend/dev") == t
    t = store.mark_delivered(t.id, now=NOW + 2, token=t.delivery_token)
    assert t.status is S.IN_PROGRESS and t.started_at == NOW + 2 and store.in_delivery() == []
    t = store.complete(t.id, "line\n" * 3000, now=NOW + 3)
    assert t.status is S.DONE and t.finished_at == NOW + 3 and len(t.result) <= 2000
    assert store.active_counts() == {} and store.current_task("frontend/dev") is None
    assert [e["action"] for e in events[-3:]] == ["task.assigned", "task.delivered", "task.done"]
    assert events[-3]["target"] == "frontend/dev" and events[-3]["attempt"] == 1
    # every event is emitted after its commit: another connection already sees the change
    assert seen_by_other == ["assigned", "in_progress", "done"]
    other.close()


def test_illegal_transitions_raise_and_write_nothing(store: TaskStore) -> None:
    t = store.add("x", now=NOW)
    store.assign(t.id, "t/a", now=NOW)
    store.mark_delivered(t.id, now=NOW)
    store.complete(t.id, "ok", now=NOW)
    before = store.get(t.id)
    with pytest.raises(TaskError, match="done and cannot become in_progress"):
        store.mark_delivered(t.id, now=NOW)
    with pytest.raises(TaskError, match="done and cannot become assigned"):
        store.assign(t.id, "t/a", now=NOW)
    with pytest.raises(TaskError, match="done is final"):
        store.cancel(t.id, now=NOW)
    with pytest.raises(TaskError, match="only failed or cancelled"):
        store.retry(t.id, now=NOW)
    with pytest.raises(TaskError, match="only an assigned or running"):
        store.fail_attempt(t.id, "x", now=NOW)
    assert store.get(t.id) == before


def test_stale_delivery_token_is_refused(store: TaskStore) -> None:
    t = store.add("x", now=NOW)
    first = store.assign(t.id, "t/a", now=NOW)
    store.unassign(t.id, "not on screen", now=NOW)
    second = store.assign(t.id, "t/b", now=NOW)
    with pytest.raises(TaskError, match="stale"):
        store.mark_delivered(t.id, now=NOW, token=first.delivery_token)
    assert store.mark_delivered(t.id, now=NOW, token=second.delivery_token).agent == "t/b"


def test_unassign_counts_no_attempt(store: TaskStore, events: list[dict]) -> None:
    t = store.add("x", now=NOW)
    store.assign(t.id, "t/a", now=NOW)
    t = store.unassign(t.id, "marker not on screen after restart", now=NOW + 1)
    assert t.status is S.QUEUED and t.attempts == 0 and t.agent is None
    assert t.delivery_token is None and t.failures == 0
    assert events[-1]["action"] == "task.unassigned" and events[-1]["target"] == "t/a"
    with pytest.raises(TaskError, match="only an assigned task"):
        store.unassign(t.id, "again", now=NOW)


def test_review_approve(store: TaskStore) -> None:
    t = store.add("Build it", review_by="qa/rev", now=NOW)
    store.assign(t.id, "dev/a", now=NOW)
    store.mark_delivered(t.id, now=NOW)
    t = store.complete(t.id, "built", now=NOW + 1)
    assert t.status is S.REVIEW and t.result == "built"
    assert store.reviews_waiting() == [t] and store.active_counts() == {}
    with pytest.raises(TaskError, match="waits for review by qa/rev"):
        store.complete(t.id, "again", now=NOW)
    t = store.assign_review(t.id, now=NOW + 2)
    assert t.holder == "qa/rev" and store.active_counts() == {"qa/rev": 1}
    assert store.in_delivery() == [t] and store.reviews_waiting() == []
    assert store.current_task("qa/rev") == t
    t = store.mark_delivered(t.id, now=NOW + 3)
    assert t.review_started_at == NOW + 3 and store.in_delivery() == []
    t = store.review_verdict(t.id, True, now=NOW + 4)
    assert t.status is S.DONE and t.finished_at == NOW + 4


def test_three_rejections_fail_and_feedback_reaches_the_next_agent(store: TaskStore) -> None:
    t = store.add("Make the button blue", review_by="qa/rev", max_attempts=5, now=NOW)
    reasons = ["still red", "wrong shade", "now it is green"]
    for i, reason in enumerate(reasons):
        t = store.assign(t.id, f"dev/a{i}", now=NOW)
        for line in reasons[:i]:
            assert f"- {line}" in t.delivery_text()
        store.mark_delivered(t.id, now=NOW)
        store.complete(t.id, "done it", now=NOW)
        store.assign_review(t.id, now=NOW)
        t = store.review_verdict(t.id, False, reason, now=NOW + i)
        if i < 2:
            assert t.status is S.QUEUED and t.rejections == i + 1 and t.agent is None
            assert t.not_before == 0.0 and t.result is None
    assert t.status is S.FAILED and t.rejections == 3
    assert t.feedback == tuple(reasons)
    assert t.error == "rejected 3 times by qa/rev; last: now it is green"


def test_fail_attempt_backs_off_then_fails(store: TaskStore, events: list[dict]) -> None:
    t = store.add("flaky", max_attempts=3, now=NOW)
    rng = random.Random(1)
    now = NOW
    for n in (1, 2):
        store.assign(t.id, "t/a", now=now)
        store.mark_delivered(t.id, now=now)
        t = store.fail_attempt(t.id, "agent exited with 1", now=now, rng=rng)
        ceiling = 5.0 * 2 ** (n - 1)
        assert t.status is S.QUEUED and t.failures == n and t.agent is None
        assert now + ceiling / 2 <= t.not_before <= now + ceiling
        assert store.queued_ready(now) == []  # backing off
        assert "backs off until" in store.blocked_reason(t.id, now)
        assert events[-1]["action"] == "task.requeued" and events[-1]["retry_at"]
        now = t.not_before
        assert [x.id for x in store.queued_ready(now)] == [t.id]
    store.assign(t.id, "t/a", now=now)
    t = store.fail_attempt(t.id, "timed out", now=now)
    assert t.status is S.FAILED and t.attempts == 3 and t.failures == 3
    assert t.error == "timed out (failed 3 of 3 attempts)"


def test_timed_out_lists_overdue_deliveries(store: TaskStore) -> None:
    t = store.add("slow", timeout=60, now=NOW)
    quick = store.add("no timeout", now=NOW)
    for x in (t, quick):
        store.assign(x.id, "t/a", now=NOW)
        store.mark_delivered(x.id, now=NOW)
    assert store.timed_out(NOW + 60) == []
    assert [x.id for x in store.timed_out(NOW + 61)] == [t.id]


def test_cancel_fail_and_retry(store: TaskStore) -> None:
    t = store.add("x", max_attempts=1, now=NOW)
    store.assign(t.id, "t/a", now=NOW)
    t = store.fail_attempt(t.id, "boom", now=NOW)
    assert t.status is S.FAILED
    t = store.retry(t.id, now=NOW + 5)
    assert (t.status, t.attempts, t.failures, t.error, t.agent) == (S.QUEUED, 0, 0, None, None)
    assert t.queued_at == NOW + 5
    t = store.cancel(t.id, "changed my mind", now=NOW + 6)
    assert t.status is S.CANCELLED and t.error == "changed my mind"
    with pytest.raises(TaskError, match="cancelled already"):
        store.cancel(t.id, now=NOW)
    assert store.retry(t.id, now=NOW + 7).status is S.QUEUED
    assert store.fail(t.id, "by hand", now=NOW + 8).status is S.FAILED


def test_retry_needs_dependencies_retried_first(store: TaskStore) -> None:
    a = store.add("a", now=NOW)
    b = store.add("b", depends_on=[a.id], now=NOW)
    store.fail(a.id, "x", now=NOW)
    with pytest.raises(TaskError, match="dependency #1 is failed"):
        store.retry(b.id, now=NOW)
    store.retry(a.id, now=NOW)
    assert store.retry(b.id, now=NOW).status is S.QUEUED


def test_agent_reports_done_before_delivery_was_confirmed(store: TaskStore) -> None:
    t = store.add("x", now=NOW)
    store.assign(t.id, "t/a", now=NOW)
    t = store.complete(t.id, "did it", now=NOW + 2)
    assert t.status is S.DONE and t.started_at == NOW + 2


def test_breakers_persist_and_report_changes(store: TaskStore, events: list[dict]) -> None:
    for i in range(3):
        b = store.record_outcome("t/a", False, now=NOW + i, threshold=3, cooldown=60)
    assert b.state(NOW + 3) == "open"
    assert events[-1]["action"] == "breaker.opened" and events[-1]["target"] == "t/a"
    assert store.breaker("t/a") == b and store.breakers() == {"t/a": b}
    assert store.breaker("t/zz") == Breaker()
    b = store.record_outcome("t/a", True, now=NOW + 100)
    assert b.state(NOW + 100) == "closed" and events[-1]["action"] == "breaker.closed"
    store.save_breaker("t/b", Breaker(failures=1), now=NOW)
    assert store.breaker("t/b").failures == 1


def test_kv_values(store: TaskStore) -> None:
    assert store.get_value("rr", {}) == {}
    store.set_value("rr", {"last": "t/a"})
    store.set_value("rr", {"last": "t/b"})
    assert store.get_value("rr") == {"last": "t/b"}


def test_file_is_private_and_schema_versioned(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "tasks.db"
    with TaskStore(path) as s:
        s.add("x", now=NOW)
        assert s.schema_version == SCHEMA_VERSION >= 1
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for extra in (path.with_name("tasks.db-wal"), path.with_name("tasks.db-shm")):
        if extra.exists():
            assert stat.S_IMODE(extra.stat().st_mode) == 0o600
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()


def test_loose_file_mode_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "tasks.db"
    path.touch(mode=0o644)
    os.chmod(path, 0o644)
    TaskStore(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tasks.db"
    TaskStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(TaskError, match="newer than this squad understands"):
        TaskStore(path)


def test_reopen_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "tasks.db"
    with TaskStore(path) as s:
        a = s.add("a", tags=["x"], now=NOW)
        b = s.add("b", depends_on=[a.id], review_by="q/r", now=NOW)
        s.assign(a.id, "t/a", now=NOW)
        s.record_outcome("t/a", False, now=NOW)
        s.set_value("k", [1, 2])
        before = s.list()
    with TaskStore(path) as s:
        assert s.list() == before and s.get(b.id).depends_on == (a.id,)
        assert s.breaker("t/a").failures == 1 and s.get_value("k") == [1, 2]
        assert s.add("c", now=NOW).id == 3


def test_two_stores_on_one_file_see_each_other(tmp_path: Path) -> None:
    path = tmp_path / "tasks.db"
    cli, supervisor = TaskStore(path), TaskStore(path)
    t = cli.add("from the cli", now=NOW)
    assert supervisor.get(t.id) == t
    assert supervisor.queued_ready(NOW) == [t] and cli.list() == [t]
    supervisor.assign(t.id, "t/a", now=NOW)
    assert cli.get(t.id).status is S.ASSIGNED
    # the listing cache notices changes made through another connection
    assert [x.status for x in cli.list()] == [S.ASSIGNED]
    assert supervisor.queued_ready(NOW) == []
    cli.cancel(t.id, "stop", now=NOW)
    with pytest.raises(TaskError, match="cancelled and cannot become in_progress"):
        supervisor.mark_delivered(t.id, now=NOW)
    cli.close()
    supervisor.close()


def test_a_second_process_writing_concurrently_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "tasks.db"
    n = 150
    store = TaskStore(path)
    script = textwrap.dedent(f"""
        import sys
        from squad.store import TaskStore
        s = TaskStore({str(path)!r})
        print("ready", flush=True)
        sys.stdin.readline()
        for i in range({n}):
            t = s.add(f"child {{i}}", tags=["child"])
            if i % 3 == 0:
                s.assign(t.id, "child/a")
        print("done", flush=True)
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, env=env)
    assert child.stdout.readline().strip() == "ready"
    child.stdin.write("go\n")
    child.stdin.flush()
    for i in range(n):
        t = store.add(f"parent {i}")
        if i % 2 == 0:
            store.assign(t.id, "parent/a")
    assert child.stdout.readline().strip() == "done"
    assert child.wait(timeout=30) == 0
    tasks = store.list()
    prompts = {t.prompt for t in tasks}
    assert len(tasks) == 2 * n
    assert prompts == {f"parent {i}" for i in range(n)} | {f"child {i}" for i in range(n)}
    assert len({t.id for t in tasks}) == 2 * n
    assert store.active_counts() == {"parent/a": n // 2, "child/a": n // 3}
    store.close()


def test_kill_9_in_the_middle_of_writes_leaves_a_consistent_store(tmp_path: Path) -> None:
    import signal

    path = tmp_path / "tasks.db"
    TaskStore(path).close()
    script = textwrap.dedent(f"""
        from squad.store import TaskStore
        s = TaskStore({str(path)!r})
        i = 0
        while True:
            t = s.add(f"task {{i}}", tags=["x"])
            s.assign(t.id, "t/a")
            s.mark_delivered(t.id)
            if i % 2:
                s.complete(t.id, "ok")
            print(t.id, flush=True)
            i += 1
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                             env=env)
    last = 0
    while last < 60:
        last = int(child.stdout.readline())
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=10)
    child.stdout.close()
    with TaskStore(path) as store:
        assert store._read("PRAGMA integrity_check") == [("ok",)]
        tasks = store.list()
        assert len(tasks) >= last  # everything reported as written is there
        for t in tasks:
            assert t.status in (S.QUEUED, S.ASSIGNED, S.IN_PROGRESS, S.DONE)
            if t.status is S.ASSIGNED:
                assert t.delivery_token and t.attempts == 1 and t.agent == "t/a"
            if t.status in (S.IN_PROGRESS, S.DONE):
                assert t.started_at is not None
        # what the killed writer left mid-delivery is listed for reconciliation
        assert {t.id for t in store.in_delivery()} == {
            t.id for t in tasks if t.status is S.ASSIGNED}


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "tasks.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(TaskError, match="not a usable task database"):
        TaskStore(path)
