"""The task queue end to end: real squad, real supervisor, real agents, real store."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from squad.live import Live
from squad.store import TaskStore
from squad.supervisor import Supervisor
from squad.tmux import Tmux
from tests.conftest import ROOT, agent_cmd, run_squad, wait_for, write_layout

COUNTER = {"ready_pattern": "^ready> ?$", "busy_pattern": "working"}


def counter_agent(name: str, log: Path, work: float = 0.3, **extra: object) -> str:
    lines = ["[[teams.agents]]", f'name = "{name}"',
             f"command = {agent_cmd('counter_agent.py', str(log), str(work))}"]
    for key, value in {**COUNTER, **extra}.items():
        lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


def received(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def tasks(socket: str) -> dict[int, dict]:
    proc = run_squad("-L", socket, "tasks", "--json")
    assert proc.returncode == 0, proc.stderr
    return {t["id"]: t for t in json.loads(proc.stdout)}


def dispatch(socket: str, *args: str) -> int:
    proc = run_squad("-L", socket, "dispatch", "--json", *args)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["id"]


@pytest.fixture
def supervise(socket: str) -> Iterator[Callable[..., Supervisor]]:
    made: list[Supervisor] = []

    def make(backoff: float = 0.2) -> Supervisor:
        sup = Supervisor(Live.open(Tmux(socket)), interval=0.2)
        sup.start()
        sup.desk.backoff_base = backoff
        sup.desk.backoff_cap = backoff * 4
        made.append(sup)
        return sup

    yield make
    for sup in made:
        sup.close()


def tick_until(sup: Supervisor, check: Callable[[], object], timeout: float = 30,
               what: str = "condition") -> object:
    def step() -> object:
        sup.tick()
        return check()

    return wait_for(step, timeout, what)


def test_dispatch_fits_tags_and_targets_and_notices_completion(
        socket: str, tmp_path: Path, supervise) -> None:
    logs = {n: tmp_path / f"{n}.log" for n in ("w1", "w2", "srv")}
    layout = write_layout(tmp_path / "q.toml", 'name = "q"\n[[teams]]\nname = "web"\n'
                          + counter_agent("w1", logs["w1"], tags=["py"])
                          + counter_agent("w2", logs["w2"], tags=["py", "css"])
                          + counter_agent("srv", logs["srv"], dispatch=False, tags=["py", "css"]))
    assert run_squad("-L", socket, "up", str(layout)).returncode == 0
    css = dispatch(socket, "Fix the header overlap", "--tag", "css", "--priority", "high")
    to_w1 = dispatch(socket, "Rename the helper", "--to", "web/w1")
    any_py = dispatch(socket, "Add a test", "--tag", "py")
    sup = supervise()
    tick_until(sup, lambda: all(t["status"] == "done" for t in tasks(socket).values()),
               what="all tasks done")
    got = {n: received(log) for n, log in logs.items()}
    assert got["srv"] == []  # dispatch = false: never receives tasks
    assert any(f"#{css} " in m for m in got["w2"])  # only w2 carries css
    assert any(f"#{to_w1} " in m for m in got["w1"])
    everything = got["w1"] + got["w2"]
    assert sorted(m.split()[2] for m in everything) == sorted(f"#{i}" for i in (css, to_w1, any_py))
    done = tasks(socket)
    for t in done.values():
        assert {"id", "title", "status", "priority", "agent", "attempts", "tags"} <= set(t)
        assert t["attempts"] == 1 and "finished" in (t["result"] or "")
        assert "ready>" not in t["result"]
    assert done[css]["agent"] == "web/w2" and done[css]["tags"] == ["css"]
    ev = run_squad("-L", socket, "events", "--json")
    actions = [json.loads(line)["action"] for line in ev.stdout.splitlines()]
    for action in ("task.queued", "task.assigned", "task.delivered", "task.done"):
        assert action in actions


def test_priority_due_fifo_and_dependencies(socket: str, tmp_path: Path, supervise) -> None:
    log = tmp_path / "one.log"
    layout = write_layout(tmp_path / "p.toml", 'name = "p"\n[[teams]]\nname = "t"\n'
                          + counter_agent("one", log, work=0.1))
    assert run_squad("-L", socket, "up", str(layout)).returncode == 0
    low = dispatch(socket, "low one", "--priority", "low")
    first = dispatch(socket, "after the low one", "--priority", "critical", "--after", str(low))
    med_a = dispatch(socket, "medium a")
    med_due = dispatch(socket, "medium with a due date", "--due", "2h")
    high = dispatch(socket, "high one", "--priority", "HIGH")
    crit = dispatch(socket, "critical one", "--priority", "critical")
    sup = supervise()
    tick_until(sup, lambda: len(received(log)) == 6, what="6 deliveries")
    order = [int(m.split()[2].lstrip("#")) for m in received(log)]
    # priority first; due dates before none; first in, first out; dependencies wait
    assert order == [crit, high, med_due, med_a, low, first]


def test_crash_requeues_with_backoff_then_fails_and_breaker_opens(
        socket: str, tmp_path: Path, supervise) -> None:
    logs = {n: tmp_path / f"{n}.log" for n in ("a", "b")}
    layout = write_layout(tmp_path / "c.toml", 'name = "c"\n[[teams]]\nname = "t"\n'
                          + counter_agent("a", logs["a"]) + counter_agent("b", logs["b"]))
    assert run_squad("-L", socket, "up", str(layout)).returncode == 0
    doomed = dispatch(socket, "please crash now", "--attempts", "2")
    sup = supervise()
    final = tick_until(sup, lambda: (t := tasks(socket)[doomed])["status"] == "failed" and t,
                       what="the task to fail")
    assert final["attempts"] == 2 and "exited" in final["error"]
    # Requeued after the first crash: it went to the other agent.
    assert len(received(logs["a"])) == 1 and len(received(logs["b"])) == 1
    events = [json.loads(line) for line in run_squad("-L", socket, "events", "--json").stdout
              .splitlines()]
    requeued = [e for e in events if e["action"] == "task.requeued"]
    assert requeued and requeued[0]["backoff"] > 0

    # Three failures in a row open an agent's breaker; it then receives nothing.
    store = TaskStore.for_squad("c")
    for _ in range(2):
        store.record_outcome("t/a", False)
    store.close()
    assert run_squad("-L", socket, "restart", "--all").returncode == 0
    rows = tick_until(sup, lambda: (r := {x.target: x for x in sup.last.agents})
                      and r["t/a"].status == "idle" and r["t/b"].status == "idle" and r)
    assert rows["t/a"].breaker == "open"
    ls = json.loads(run_squad("-L", socket, "ls", "--json").stdout)
    assert {r["agent"]: r["breaker"] for r in ls}["a"] == "open"
    waiting = dispatch(socket, "only a may do this", "--to", "t/a")
    for _ in range(5):
        sup.tick()
    show = json.loads(run_squad("-L", socket, "task", "show", str(waiting), "--json").stdout)
    assert show["status"] == "queued"
    assert any("breaker open" in why for why in show["waiting_because"])


def test_stall_and_timeout_fail_the_attempt(socket: str, tmp_path: Path, supervise) -> None:
    logs = {n: tmp_path / f"{n}.log" for n in ("h", "s")}
    layout = write_layout(tmp_path / "s.toml", 'name = "s"\n[[teams]]\nname = "t"\n'
                          + counter_agent("h", logs["h"], stall_after=1.0, tags=["hang"])
                          + counter_agent("s", logs["s"], work=30.0, tags=["slow"]))
    assert run_squad("-L", socket, "up", str(layout)).returncode == 0
    hang = dispatch(socket, "hang forever", "--tag", "hang", "--attempts", "1")
    slow = dispatch(socket, "slow work", "--tag", "slow", "--attempts", "1", "--timeout", "1")
    sup = supervise()
    tick_until(sup, lambda: {t["status"] for t in tasks(socket).values()} == {"failed"},
               what="both to fail")
    got = tasks(socket)
    assert "stalled" in got[hang]["error"]
    assert "timed out" in got[slow]["error"]


def test_agents_drive_the_queue_from_their_windows(socket: str, tmp_path: Path,
                                                    supervise) -> None:
    log = tmp_path / "dev.log"
    out = tmp_path / "pm-dispatch.json"
    layout = write_layout(tmp_path / "a.toml", f"""
name = "agents"
[[teams]]
name = "backend"
{counter_agent("dev", log, work=5.0)}
[[teams.agents]]
name = "pm"
command = "/bin/sh"
dispatch = false
""")
    assert run_squad("-L", socket, "up", str(layout)).returncode == 0
    # The PM (a shell here) hands work to the Dev with `squad dispatch` in its own window.
    line = (f"{sys.executable} -m squad dispatch --to backend/dev --json "
            f"'selfdone: write the migration' > {out}")
    assert run_squad("-L", socket, "send", "backend/pm", line).returncode == 0
    task = json.loads(wait_for(lambda: out.exists() and out.read_text().strip().endswith("}")
                               and out.read_text(), what="the PM's dispatch"))
    sup = supervise()
    done = tick_until(sup, lambda: (t := tasks(socket)[task["id"]])["status"] == "done" and t,
                      what="the dev to mark its task done")
    assert done["result"] == "did it myself"  # the agent ran `squad task done --result ...`
    events = [json.loads(x) for x in run_squad("-L", socket, "events", "--json").stdout
              .splitlines()]
    assert any(e["action"] == "task.done" and e["by"] == "agent" for e in events)
    assert any(e["action"] == "task.queued" and e["by"] == "agent" for e in events)


def test_bad_input_writes_nothing(socket: str, tmp_path: Path) -> None:
    layout = write_layout(tmp_path / "b.toml", 'name = "b"\n[[teams]]\nname = "t"\n'
                          + counter_agent("x", tmp_path / "x.log"))
    assert run_squad("-L", socket, "up", str(layout)).returncode == 0
    one = dispatch(socket, "first")
    two = dispatch(socket, "second", "--after", str(one))

    def task_events() -> list[str]:
        out = run_squad("-L", socket, "events", "--json").stdout.splitlines()
        return [line for line in out if json.loads(line)["action"].startswith("task.")]

    before = task_events()
    for args, fragment in [
        (["dispatch", "x", "--priority", "urgent"], "critical, high, medium, low"),
        (["dispatch", "x", "--due", "someday"], "due"),
        (["dispatch", "x", "--to", "t/nobody"], "no such agent"),
        (["dispatch", "x", "--review-by", "nope/x"], "no such agent"),
        (["dispatch", "x", "--team", "ghosts"], "no such team"),
        (["dispatch", "   "], "empty"),
        (["dispatch", "x", "--after", "99"], "99"),
        (["dispatch", "x", "--timeout", "soon"], "timeout"),
        (["dispatch", "x", "--attempts", "0"], "attempts"),
        (["task", "after", str(one), str(two)], "cycle"),
        (["task", "show", "12345"], "no task #12345"),
        (["task", "done"], "give a task id"),
        (["tasks", "--status", "sleeping"], "sleeping"),
    ]:
        proc = run_squad("-L", socket, *args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
        assert fragment in proc.stderr.lower() or fragment in proc.stderr, (args, proc.stderr)
    assert sorted(tasks(socket)) == [one, two]
    assert task_events() == before  # no transition was written either


def headless(socket: str, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "squad", "-L", socket, "run", "--headless",
                             "--interval", "0.2", *extra], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_one_supervisor_per_squad(socket: str, tmp_path: Path) -> None:
    layout = write_layout(tmp_path / "l.toml", 'name = "l"\n[[teams]]\nname = "t"\n'
                          + counter_agent("x", tmp_path / "x.log"))
    assert run_squad("-L", socket, "up", str(layout)).returncode == 0
    first = headless(socket)
    try:
        assert "supervising squad l" in first.stdout.readline()
        second = run_squad("-L", socket, "run", "--headless")
        assert second.returncode == 2
        assert f"pid {first.pid}" in second.stderr and "already runs" in second.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(10)


def test_kill_9_supervisor_loses_nothing_and_delivers_nothing_twice(
        socket: str, tmp_path: Path) -> None:
    logs = [tmp_path / f"w{i}.log" for i in range(3)]
    layout = write_layout(tmp_path / "k.toml", 'name = "k"\n[[teams]]\nname = "t"\n'
                          + "".join(counter_agent(f"w{i}", log, work=0.15)
                                    for i, log in enumerate(logs)))
    assert run_squad("-L", socket, "up", str(layout)).returncode == 0
    ids = [dispatch(socket, f"task number {n}", "--priority",
                    random.choice(["low", "medium", "high"])) for n in range(24)]
    rng = random.Random(7)
    kills = 0
    deadline = time.monotonic() + 150
    proc = headless(socket)
    try:
        while time.monotonic() < deadline:
            time.sleep(rng.uniform(0.1, 0.9))
            if all(t["status"] == "done" for t in tasks(socket).values()):
                break
            proc.kill()  # kill -9, at any moment of its tick
            proc.wait(10)
            kills += 1
            proc = headless(socket)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    final = tasks(socket)
    assert kills >= 5
    assert sorted(final) == sorted(ids), "a task was lost"
    assert {t["status"] for t in final.values()} == {"done"}
    delivered = Counter(int(m.split()[2].lstrip("#")) for log in logs for m in received(log))
    twice = {i: n for i, n in delivered.items() if n != 1}
    assert not twice, f"delivered more than once: {twice}"
    assert set(delivered) == set(ids)


def test_review_gate_approves_or_sends_back_with_feedback(socket: str, tmp_path: Path,
                                                          supervise) -> None:
    demo = (f'["{sys.executable}", "-m", "squad.demo_agent", "--work", "0.3", "--ask", "0", '
            '"--mem", "4"]')
    layout = write_layout(tmp_path / "r.toml", f"""
name = "r"
[defaults]
command = {demo}
[[teams]]
name = "t"
[[teams.agents]]
name = "dev"
[[teams.agents]]
name = "rev"
dispatch = false
""")
    assert run_squad("-L", socket, "up", str(layout)).returncode == 0
    good = dispatch(socket, "Tidy the README", "--review-by", "t/rev")
    # The demo reviewer rejects work whose task mentions "reject".
    bad = dispatch(socket, "Make the reviewer reject this", "--review-by", "t/rev")
    sup = supervise()
    tick_until(sup, lambda: {t["status"] for t in tasks(socket).values()} <= {"done", "failed"}
               and len(tasks(socket)) == 2, timeout=90, what="both reviews to end")
    got = tasks(socket)
    assert got[good]["status"] == "done" and got[good]["rejections"] == 0
    assert got[bad]["status"] == "failed" and got[bad]["rejections"] == 3
    assert len(got[bad]["feedback"]) == 3 and "rejected 3 times" in got[bad]["error"]
    # The feedback went back to the worker in the prompt of its next attempt.
    screen = run_squad("-L", socket, "capture", "t/dev", "--lines", "3000").stdout
    assert "A reviewer rejected" in screen
    reviewer = run_squad("-L", socket, "capture", "t/rev", "--lines", "3000").stdout
    assert "VERDICT: APPROVED" in reviewer and "VERDICT: REJECTED" in reviewer


def test_an_agent_restarted_mid_task_has_lost_it(socket: str, tmp_path: Path,
                                                  supervise) -> None:
    """Restarted between two ticks, the agent is idle again but never did the task."""
    log = tmp_path / "w.log"
    layout = write_layout(tmp_path / "rs.toml", 'name = "rs"\n[[teams]]\nname = "t"\n'
                          + counter_agent("w", log, work=4.0))
    assert run_squad("-L", socket, "up", str(layout)).returncode == 0
    task = dispatch(socket, "long work", "--attempts", "1")
    sup = supervise()
    tick_until(sup, lambda: received(log), what="the delivery")
    assert run_squad("-L", socket, "restart", "t/w", "--grace", "1").returncode == 0
    final = tick_until(sup, lambda: (t := tasks(socket)[task])["status"] != "in_progress" and t,
                       what="the task to be settled")
    assert final["status"] == "failed", final
    assert "lost" in final["error"] or "exited" in final["error"]


def test_a_running_supervisor_picks_up_layout_changes(socket: str, tmp_path: Path,
                                                      supervise) -> None:
    logs = {n: tmp_path / f"{n}.log" for n in ("old", "new")}
    base = 'name = "grow"\n[[teams]]\nname = "t"\n' + counter_agent("old", logs["old"])
    layout = write_layout(tmp_path / "g.toml", base)
    assert run_squad("-L", socket, "up", str(layout)).returncode == 0
    sup = supervise()
    sup.tick()
    write_layout(layout, base + counter_agent("new", logs["new"], tags=["fresh"]))
    assert run_squad("-L", socket, "up", str(layout)).returncode == 0
    task = dispatch(socket, "only the new agent fits", "--tag", "fresh")
    tick_until(sup, lambda: tasks(socket)[task]["status"] == "done", what="the new agent's work")
    assert received(logs["new"]) and not received(logs["old"])
    assert {r.agent for r in sup.last.agents} == {"old", "new"}
