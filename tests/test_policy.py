"""Resource policies through a real squad and its supervisor (issue 11): a memory limit that
acts on the real tree, CPU limits applied and shown, `max_active` holding the queue back,
pins, and `squad policy`. The decisions themselves are tested on plain data in
tests/test_governor.py."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

from squad import events, procs
from squad.live import Live
from squad.supervisor import Supervisor
from squad.tmux import Tmux
from tests.conftest import demo_cmd, run_squad, wait_for, write_layout
from tests.test_governor import ALLOCATOR
from tests.test_queue import dispatch, tasks


def supervisor(socket: str) -> Supervisor:
    sup = Supervisor(Live.open(Tmux(socket)), interval=0.2)
    sup.start()
    return sup


def tick_until(sup: Supervisor, check, timeout: float = 30, what: str = "condition"):
    return wait_for(lambda: (sup.tick(), check())[1], timeout, what)


def test_a_memory_limit_warns_then_pauses_the_real_tree(socket: str, tmp_path: Path) -> None:
    script = tmp_path / "alloc.py"
    script.write_text(ALLOCATOR)
    ack = tmp_path / "ack"
    layout = write_layout(tmp_path / "mem.toml", f"""
name = "mem"
[[teams]]
name = "t"
[[teams.agents]]
name = "hog"
command = ["{sys.executable}", "{script}", "40", "{ack}"]
memory_warn_mb = 60
memory_limit_mb = 100
on_memory_limit = "pause"
dispatch = false
""")
    assert run_squad("-L", socket, "up", str(layout)).returncode == 0
    wait_for(lambda: ack.exists(), 15, "the allocator to start")
    sup = supervisor(socket)
    try:
        pid = Live.open(Tmux(socket)).panes["t/hog"].pid
        agent = procs.scan().tree(pid)[0]
        for n in (1, 2):  # 40 MiB at a time: 80 MiB passes the warning
            os.kill(agent, signal.SIGUSR1)
            wait_for(lambda n=n: ack.read_text() == str(n), 15, f"{n} chunks")
        tick_until(sup, lambda: any(e["action"] == "memory.warn" for e in events.read("mem")),
                   30, "the warning")
        assert sup.last.agent("t/hog").status != "paused"
        os.kill(agent, signal.SIGUSR1)  # 120 MiB: over the limit
        wait_for(lambda: ack.read_text() == "3", 15, "3 chunks")
        tick_until(sup, lambda: sup.last.agent("t/hog").status == "paused", 30, "the pause")
        pause = [e for e in events.read("mem") if e["action"] == "pause"][-1]
        assert pause["by"] == "policy" and "memory" in (pause.get("rule") or "")
        tree = procs.scan().tree(pid)
        assert tree and all(procs.proc_state(p) in procs.STOPPED_STATES for p in tree)
    finally:
        sup.close()
    assert run_squad("-L", socket, "resume", "t/hog").returncode == 0


def test_cpu_limits_are_applied_and_shown(socket: str, tmp_path: Path) -> None:
    layout = write_layout(tmp_path / "cpu.toml", f"""
name = "cpu"
[[teams]]
name = "t"
[[teams.agents]]
name = "spin"
command = ["{sys.executable}", "-c", "while True: pass"]
cpu_limit = 30
dispatch = false
""")
    assert run_squad("-L", socket, "up", str(layout)).returncode == 0
    sup = supervisor(socket)
    try:
        tick_until(sup, lambda: sup.policies.limiter is not None
                   and sup.policies.limiter.mechanism("t/spin"), 15, "the limit applied")
        mechanism = sup.policies.limiter.mechanism("t/spin")
        assert mechanism in ("cgroup-v1", "cgroup-v2", "duty-cycle")
        shown = json.loads(run_squad("-L", socket, "policy", "--json").stdout)
        row = next(a for a in shown["agents"] if a["target"] == "t/spin")
        assert row["cpu_limit"] == 30 and row["cpu_mechanism"] == mechanism
        listed = json.loads(run_squad("-L", socket, "ls", "--json").stdout)[0]
        assert listed["cpu_limit"] == 30 and listed["cpu_limit_mechanism"] == mechanism
        for _ in range(10):  # a duty cycle's stopped phases are never reported as paused
            assert sup.tick().agent("t/spin").status != "paused"
    finally:
        sup.close()


def test_max_active_holds_the_queue_back(socket: str, tmp_path: Path) -> None:
    layout = write_layout(tmp_path / "max.toml", f"""
name = "max"
[governor]
max_active = 1
[defaults]
command = {demo_cmd("--work", "1.5")}
[[teams]]
name = "t"
[[teams.agents]]
name = "a"
[[teams.agents]]
name = "b"
""")
    assert run_squad("-L", socket, "up", str(layout)).returncode == 0
    ids = [dispatch(socket, f"job {n}") for n in range(3)]
    sup = supervisor(socket)
    try:
        def one_at_a_time() -> bool:
            got = tasks(socket)
            assert sum(got[i]["status"] in ("assigned", "in_progress") for i in ids) <= 1
            return all(got[i]["status"] == "done" for i in ids)

        tick_until(sup, one_at_a_time, 90, "all three jobs, one at a time")
    finally:
        sup.close()


def test_pins_and_the_policy_report(socket: str, tmp_path: Path) -> None:
    layout = write_layout(tmp_path / "pin.toml", f"""
name = "pin"
[governor]
memory_low_mb = 1
pressure_action = "hibernate"
[[teams]]
name = "t"
[[teams.agents]]
name = "a"
command = {demo_cmd()}
""")
    assert run_squad("-L", socket, "up", str(layout)).returncode == 0
    assert run_squad("-L", socket, "pin", "t/a").returncode == 0
    shown = json.loads(run_squad("-L", socket, "policy", "--json").stdout)
    assert shown["agents"][0]["pinned"] is True
    assert shown["governor"]["pressure_action"] == "hibernate"
    assert shown["pressure"]["available_mb"] > 0
    text = run_squad("-L", socket, "policy")
    assert text.returncode == 0 and "pinned" in text.stdout
    assert run_squad("-L", socket, "unpin", "t/a").returncode == 0
    assert json.loads(run_squad("-L", socket, "policy", "--json").stdout)["agents"][0][
        "pinned"] is False
