"""The resource governor and CPU limits: every decision on plain data, then on real processes
(memory that grows step by step, real memory pressure, CPU spinners held to their limit by a
cgroup and by duty-cycling)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from squad import cpulimit, procs
from squad.cpulimit import DUTY, CpuLimiter, Holds, find_cpu_cgroup
from squad.governor import (
    LIMIT_ACTIONS,
    MIB,
    Action,
    Executor,
    Governor,
    GovernorConfig,
    Pressure,
    Sample,
    read_pressure,
)
from tests.conftest import ROOT, wait_for

WRAPPER = str(ROOT / "squad" / "wrapper.py")


def S(target: str, status: str = "idle", rss_mb: float = 100, cpu: float = 0.0,
      **kw: object) -> Sample:
    """A sample with memory in MiB."""
    return Sample(target, status, cpu=cpu, rss=int(rss_mb * MIB), **kw)  # type: ignore[arg-type]


def mem(available_mb: float) -> Pressure:
    return Pressure(available_mb=available_mb, total_mb=16_000)


class Clock:
    """Ticks of one second each, for deterministic hysteresis timers."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self, step: float = 1.0) -> float:
        self.now += step
        return self.now


def run(gov: Governor, rows: list[Sample], p: Pressure | None, clock: Clock,
        ticks: int = 1) -> list[Action]:
    out: list[Action] = []
    for _ in range(ticks):
        out += gov.step(rows, p, clock())
    return out


def drive(gov: Governor, rows: list[Sample], p: Pressure | None, clock: Clock,
          ticks: int) -> tuple[list[Action], list[Sample]]:
    """Several ticks, each seeing the statuses the previous one's actions left."""
    out: list[Action] = []
    for _ in range(ticks):
        acts = gov.step(rows, p, clock())
        rows = apply_status(rows, acts)
        out += acts
    return out, rows


def kinds(actions: list[Action]) -> list[tuple[str, str, str]]:
    return [(a.kind, a.target, a.rule) for a in actions]


def apply_status(rows: list[Sample], actions: list[Action]) -> list[Sample]:
    """What the next tick sees after the actions were carried out."""
    status = {"pause": "paused", "hibernate": "hibernated", "resume": "working",
              "wake": "starting"}
    changed = {a.target: status[a.kind] for a in actions if a.kind in status}
    return [replace(r, status=changed.get(r.target, r.status)) for r in rows]


# -- per-agent memory: warn, then the limit action ------------------------------------------


def test_warn_after_samples_consecutive_samples_and_once_per_crossing() -> None:
    gov, clock = Governor(GovernorConfig(samples=3)), Clock()
    over = [S("t/a", rss_mb=600, memory_warn_mb=500)]
    assert run(gov, over, None, clock, 2) == []
    (warn,) = run(gov, over, None, clock)
    assert (warn.kind, warn.rule, warn.figures["rss_mb"], warn.figures["memory_warn_mb"]) == (
        "warn", "memory_warn", 600.0, 500)
    assert warn.event == "memory.warn" and warn.event_fields()["by"] == "policy"
    assert "600 MiB is over memory_warn_mb 500 for 3 samples" in warn.reason
    assert run(gov, over, None, clock, 5) == []  # once, not every tick
    near = [S("t/a", rss_mb=480, memory_warn_mb=500)]  # under, but within 10%: not re-armed
    run(gov, near, None, clock)
    assert run(gov, over, None, clock, 3) == []
    run(gov, [S("t/a", rss_mb=300, memory_warn_mb=500)], None, clock)  # well under: re-armed
    assert kinds(run(gov, over, None, clock, 3)) == [("warn", "t/a", "memory_warn")]


def test_a_spike_shorter_than_samples_does_nothing() -> None:
    gov, clock = Governor(GovernorConfig(samples=3)), Clock()
    for rss in (900, 900, 700, 900, 900, 700, 900):
        row = [S("t/a", "working", rss, memory_limit_mb=800, on_memory_limit="stop",
                 memory_warn_mb=850)]
        assert run(gov, row, None, clock) == []


@pytest.mark.parametrize("action", LIMIT_ACTIONS)
def test_limit_action_after_samples(action: str) -> None:
    gov, clock = Governor(GovernorConfig(samples=2)), Clock()
    row = [S("t/a", "working", 900, memory_warn_mb=500, memory_limit_mb=800,
             on_memory_limit=action)]
    assert run(gov, row, None, clock) == []
    acts = run(gov, row, None, clock)
    # The warning crossed at the same time comes first.
    assert kinds(acts) == [("warn", "t/a", "memory_warn"), (action, "t/a", "memory_limit")]
    limit = acts[1]
    assert limit.figures == {"rss_mb": 900.0, "memory_limit_mb": 800, "samples": 2}
    assert f"on_memory_limit = {action!r}" in limit.reason
    results = Executor().run([limit], row)
    # Pause acts here; restart, hibernate and stop go to the supervisor (squad.control).
    assert results[0].deferred == (action in ("restart", "hibernate", "stop"))
    if action == "warn":
        assert limit.event == "memory.warn"
    # Once per crossing: the same agent over its limit does not trigger it again.
    after = apply_status(row, acts)
    assert run(gov, after, None, clock, 5) == []


def test_limit_acts_again_after_a_restart_or_a_dip_below() -> None:
    gov, clock = Governor(GovernorConfig(samples=2)), Clock()
    row = S("t/a", "working", 900, memory_limit_mb=800, on_memory_limit="restart",
            identity="p:1:1")
    assert kinds(run(gov, [row], None, clock, 2)) == [("restart", "t/a", "memory_limit")]
    assert run(gov, [row], None, clock, 3) == []
    restarted = replace(row, identity="p:2:7")  # another process: counted afresh
    assert run(gov, [restarted], None, clock) == []
    assert kinds(run(gov, [restarted], None, clock)) == [("restart", "t/a", "memory_limit")]
    run(gov, [replace(restarted, rss=700 * MIB)], None, clock)  # below: the crossing ends
    assert kinds(run(gov, [restarted], None, clock, 2)) == [("restart", "t/a", "memory_limit")]


def test_limit_waits_while_a_person_is_attached() -> None:
    gov, clock = Governor(GovernorConfig(samples=2)), Clock()
    row = S("t/a", "working", 900, memory_limit_mb=800, on_memory_limit="hibernate",
            attached=True)
    (said,) = run(gov, [row], None, clock, 2)
    assert (said.kind, said.rule, said.figures["deferred"]) == ("warn", "memory_limit",
                                                                "hibernate")
    assert "waits while a person is attached" in said.reason
    assert run(gov, [row], None, clock, 3) == []  # said once
    assert kinds(run(gov, [replace(row, attached=False)], None, clock)) == [
        ("hibernate", "t/a", "memory_limit")]


def test_a_limit_pause_is_never_resumed_by_recovery() -> None:
    gov = Governor(GovernorConfig(samples=1, memory_low_mb=1000, recover_after=0))
    clock = Clock()
    rows = [S("t/a", "working", 900, memory_limit_mb=800, on_memory_limit="pause")]
    acts = run(gov, rows, mem(5000), clock)
    assert kinds(acts) == [("pause", "t/a", "memory_limit")]
    rows = apply_status(rows, acts)
    assert run(gov, rows, mem(5000), clock, 10) == []
    assert gov.held() == {"t/a": {"kind": "pause", "rule": "memory_limit",
                                  "since": clock.now - 10, "dry_run": False}}


# -- pressure: order, debounce, hysteresis, recovery -----------------------------------------


def squad_rows() -> list[Sample]:
    return [
        S("t/work", "working", 300, priority=0),
        S("t/idle-small", "idle", 100, priority=0),
        S("t/idle-big", "idle", 500, priority=0),
        S("t/low", "working", 50, priority=-1),
        S("t/pinned", "idle", 900, priority=-1, pinned=True),
        S("t/watched", "idle", 900, priority=-5, attached=True),
        S("t/mine", "paused", 900, priority=-9),  # a person paused it
        S("t/gone", "exited", 0, priority=-9),
        S("t/vip", "idle", 800, priority=3),
    ]


def test_pressure_order_priority_then_idle_then_most_freed() -> None:
    gov = Governor(GovernorConfig(memory_low_mb=1000))
    assert [s.target for s in gov.order(squad_rows(), "memory_low")] == [
        "t/low", "t/idle-big", "t/idle-small", "t/work", "t/vip"]
    # Under CPU pressure, the most CPU freed decides among equals.
    rows = [S("t/a", "idle", 900, cpu=5), S("t/b", "idle", 100, cpu=80)]
    assert [s.target for s in gov.order(rows, "cpu_psi")] == ["t/b", "t/a"]
    assert [s.target for s in gov.order(rows, "memory_low")] == ["t/a", "t/b"]


def test_pressure_pauses_one_agent_per_samples_in_order_and_never_pinned_or_attached() -> None:
    gov, clock = Governor(GovernorConfig(memory_low_mb=1000, samples=2)), Clock()
    rows, paused = squad_rows(), []
    for _ in range(12):
        acts = run(gov, rows, mem(800), clock)
        paused += [a.target for a in acts]
        for a in acts:
            assert (a.kind, a.rule) == ("pause", "memory_low")
            assert a.figures["reading"] == 800 and a.figures["threshold"] == 1000
            assert "available memory 800 MiB is below 1000 MiB for 2 samples" in a.reason
        rows = apply_status(rows, acts)
    assert paused == ["t/low", "t/idle-big", "t/idle-small", "t/work", "t/vip"]
    assert gov.note is not None and "no agent may be paused" in gov.note


def test_hysteresis_and_recover_after_then_reverse_order() -> None:
    cfg = GovernorConfig(memory_low_mb=1000, samples=2, recover_after=10)  # ok: 1250
    gov, clock = Governor(cfg), Clock()
    rows = [S("t/a", "idle", 100), S("t/b", "idle", 200), S("t/c", "idle", 300)]
    acts, rows = drive(gov, rows, mem(900), clock, 4)
    assert [a.target for a in acts] == ["t/c", "t/b"]
    assert not gov.may_start(rows)
    # Between the thresholds (1000..1250): neither more pauses nor resumes, however long.
    assert run(gov, rows, mem(1100), clock, 30) == []
    assert gov.level == "between"
    assert gov.why_held(rows) == "recovering from pressure: 2 agents still held by policy"
    # Above memory_ok_mb: the first resume only after recover_after seconds of calm.
    assert run(gov, rows, mem(1300), clock, 10) == []
    (first,) = run(gov, rows, mem(1300), clock)
    assert (first.kind, first.target, first.rule, first.figures["cause"]) == (
        "resume", "t/b", "recovered", "memory_low")  # the last paused first
    rows = apply_status(rows, [first])
    # A dip below memory_ok_mb restarts the count; the next one needs samples calm ticks.
    assert run(gov, rows, mem(1200), clock) == []
    assert run(gov, rows, mem(1300), clock) == []
    assert run(gov, rows, mem(1300), clock, 9) == []  # a dip: recover_after again
    (second,) = run(gov, rows, mem(1300), clock)
    assert (second.kind, second.target) == ("resume", "t/c")
    rows = apply_status(rows, [second])
    assert gov.held() == {} and gov.may_start(rows)


def test_later_resumes_need_only_samples_of_calm() -> None:
    gov = Governor(GovernorConfig(memory_low_mb=1000, samples=2, recover_after=5))
    clock = Clock()
    rows = [S(f"t/{n}", "idle", 100 * i) for i, n in enumerate("abcd", 1)]
    acts, rows = drive(gov, rows, mem(900), clock, 6)
    assert [a.target for a in acts] == ["t/d", "t/c", "t/b"]
    acts, rows = drive(gov, rows, mem(2000), clock, 10)
    calm = [a.target for a in acts]
    assert calm == ["t/b", "t/c", "t/d"]  # after 5 s, then one every 2 samples


def test_dispatch_holds_while_under_pressure() -> None:
    gov, clock = Governor(GovernorConfig(memory_low_mb=1000, samples=3)), Clock()
    rows = [S("t/a", "idle")]
    run(gov, rows, mem(900), clock)
    assert not gov.may_start(rows)  # over the threshold holds dispatch at once
    assert "under pressure: memory_low 900" in (gov.why_held(rows) or "")
    run(gov, rows, mem(2000), clock)
    assert gov.may_start(rows)


def test_a_person_resuming_an_agent_is_not_fought() -> None:
    gov = Governor(GovernorConfig(memory_low_mb=1000, samples=1, recover_after=0))
    clock = Clock()
    rows = [S("t/a", "idle", 500), S("t/b", "idle", 100)]
    acts = run(gov, rows, mem(900), clock)
    assert [a.target for a in acts] == ["t/a"]
    rows = apply_status(rows, acts)
    resumed = [replace(rows[0], status="working"), rows[1]]  # a person resumed t/a
    acts = run(gov, resumed, mem(900), clock)
    assert [a.target for a in acts] == ["t/b"]  # t/a looked resumed once: not yet judged
    rows = apply_status(resumed, acts)
    assert run(gov, rows, mem(900), clock, 5) == []  # t/a is the person's now
    assert gov.held() == {"t/b": gov.held()["t/b"]}
    # Pressure ends, t/b comes back, the episode ends: t/a is a candidate again.
    acts = run(gov, rows, mem(2000), clock)
    assert kinds(acts) == [("resume", "t/b", "recovered")]
    rows = apply_status(rows, acts)
    run(gov, rows, mem(2000), clock)
    assert [a.target for a in run(gov, rows, mem(900), clock)] == ["t/a"]


def test_cpu_pressure_from_psi_and_load() -> None:
    gov, clock = Governor(GovernorConfig(cpu_psi_high=50, load_high=2, samples=1)), Clock()
    rows = [S("t/a", "working", 100, cpu=10), S("t/b", "working", 100, cpu=90)]
    (act,) = run(gov, rows, Pressure(cpu_psi=70, load1=1, cores=2), clock)
    assert (act.target, act.rule, act.figures["reading"]) == ("t/b", "cpu_psi", 70)
    gov = Governor(GovernorConfig(cpu_psi_high=50, load_high=2, samples=1))
    (act,) = run(gov, rows, Pressure(cpu_psi=10, load1=5, cores=2), clock)
    assert (act.rule, act.figures["reading"]) == ("load", 2.5)
    assert gov.assess(Pressure(cpu_psi=30, load1=3.8, cores=2))[0] == "between"  # ok: 25, 1.6
    assert gov.assess(Pressure(cpu_psi=20, load1=3, cores=2))[0] == "ok"


def test_readings_this_machine_lacks_never_fire(tmp_path: Path) -> None:
    empty = read_pressure(tmp_path)  # no meminfo, no PSI, no loadavg
    assert (empty.memory_psi, empty.cpu_psi) == (None, None)
    (tmp_path / "pressure").mkdir()
    (tmp_path / "pressure" / "memory").write_text("garbage\n")
    (tmp_path / "meminfo").write_text("MemTotal: x kB\n")
    (tmp_path / "loadavg").write_text("\n")
    garbled = read_pressure(tmp_path)
    assert garbled.memory_psi is None and garbled.total_mb is None
    gov = Governor(GovernorConfig(memory_psi_high=10, cpu_psi_high=10))
    assert gov.assess(Pressure())[0] == "ok"
    (tmp_path / "meminfo").write_text("MemTotal: 2048000 kB\nMemAvailable: 1024000 kB\n")
    (tmp_path / "pressure" / "memory").write_text(
        "some avg10=12.50 avg60=3.00 avg300=1.00 total=5\n"
        "full avg10=1.00 avg60=0.00 avg300=0.00 total=1\n")
    (tmp_path / "loadavg").write_text("3.50 1.00 0.50 2/300 1234\n")
    p = read_pressure(tmp_path)
    assert (p.available_mb, p.total_mb, p.memory_psi, p.cpu_psi, p.load1) == (
        1000.0, 2000.0, 12.5, None, 3.5)
    assert gov.assess(p)[:2] == ("high", "memory_psi")


def test_this_machines_pressure_reads() -> None:
    p = read_pressure()
    assert p.available_mb is not None and 0 < p.available_mb <= (p.total_mb or 0)
    assert p.load1 is not None and p.cores >= 1


def test_hibernate_under_pressure_then_wake() -> None:
    cfg = GovernorConfig(memory_low_mb=1000, samples=1, recover_after=3,
                         pressure_action="hibernate")
    gov, clock = Governor(cfg), Clock()
    rows = [S("t/a", "idle", 500, identity="p:1:1")]
    acts = run(gov, rows, mem(900), clock)
    assert kinds(acts) == [("hibernate", "t/a", "memory_low")]
    assert Executor().run(acts, rows)[0].deferred
    # Hibernated: its window's process may change or vanish; the hold stays.
    rows = [S("t/a", "hibernated", 0, identity=None)]
    assert run(gov, rows, mem(900), clock, 3) == []
    assert run(gov, rows, mem(2000), clock, 3) == []
    (wake,) = run(gov, rows, mem(2000), clock)
    assert (wake.kind, wake.rule) == ("wake", "recovered")
    assert Executor().run([wake], rows)[0].deferred


def test_dry_run_says_what_it_would_do_and_does_nothing() -> None:
    cfg = GovernorConfig(memory_low_mb=1000, samples=1, recover_after=0, dry_run=True,
                         max_active=1)
    gov, clock = Governor(cfg), Clock()
    rows = [S("t/a", "working", 500, root=os.getpid()), S("t/b", "working", 100),
            S("t/c", "idle", 100, memory_limit_mb=50, on_memory_limit="stop")]
    recorded: list[tuple[str, dict]] = []
    ex = Executor(governor=gov, record=lambda event, **kw: recorded.append((event, kw)))
    acts = run(gov, rows, mem(900), clock)
    assert kinds(acts) == [("stop", "t/c", "memory_limit"), ("pause", "t/c", "memory_low")]
    assert all(a.dry_run for a in acts)
    results = ex.run(acts, rows)
    assert [r.message for r in results] == ["dry run: would stop t/c",
                                            "dry run: would pause t/c"]
    assert not any(r.deferred for r in results)  # nothing for the supervisor to do either
    assert [(e, kw["would"], kw["by"]) for e, kw in recorded] == [
        ("policy.dry_run", "stop", "policy"), ("policy.dry_run", "pause", "policy")]
    # Statuses stay as they are; the governor goes on as if it had acted, one agent each time.
    assert [a.target for a in run(gov, rows, mem(900), clock)] == ["t/a"]
    assert [a.target for a in run(gov, rows, mem(900), clock)] == ["t/b"]
    assert gov.may_start(rows)  # a dry run never holds dispatch
    assert gov.why_held(rows) is not None  # but says why it would
    assert [a.kind for a in run(gov, rows, mem(2000), clock, 3)] == ["resume"] * 3


# -- max_active ----------------------------------------------------------------------------------


def test_max_active_holds_back_dispatch() -> None:
    gov, clock = Governor(GovernorConfig(max_active=2)), Clock()
    one = [S("t/a", "working"), S("t/b", "idle"), S("t/c", "idle")]
    run(gov, one, None, clock)
    assert gov.may_start(one) and gov.free_slots(one) == 1
    two = [S("t/a", "working"), S("t/b", "working"), S("t/c", "idle")]
    assert run(gov, two, None, clock) == []  # without pause_excess nothing is paused
    assert not gov.may_start(two) and gov.free_slots(two) == 0
    assert gov.why_held(two) == "max_active 2: that many agents are working"
    assert Governor(GovernorConfig()).free_slots(two) is None


def test_pause_excess_lowest_priority_first_then_resume_as_slots_free() -> None:
    cfg = GovernorConfig(max_active=1, pause_excess=True, samples=2)
    gov, clock = Governor(cfg), Clock()
    rows = [S("t/p0", "working", priority=0), S("t/p1", "working", priority=1),
            S("t/p2", "working", priority=2), S("t/pin", "idle", pinned=True)]
    assert run(gov, rows, None, clock) == []
    acts = run(gov, rows, None, clock)
    assert kinds(acts) == [("pause", "t/p0", "max_active"), ("pause", "t/p1", "max_active")]
    assert acts[0].figures == {"working": 3, "max_active": 1, "priority": 0}
    rows = apply_status(rows, acts)
    assert run(gov, rows, None, clock, 3) == []
    assert gov.free_slots(rows) == 0  # the paused ones wait for the free slot, not new work
    rows = [replace(r, status="idle") if r.target == "t/p2" else r for r in rows]
    acts = run(gov, rows, None, clock)
    assert kinds(acts) == [("resume", "t/p1", "max_active")]  # highest priority first
    rows = apply_status(rows, acts)
    assert run(gov, rows, None, clock, 3) == []
    rows = [replace(r, status="idle") if r.target == "t/p1" else r for r in rows]
    assert kinds(run(gov, rows, None, clock)) == [("resume", "t/p0", "max_active")]


def test_pause_excess_never_pauses_pinned_or_attached() -> None:
    gov = Governor(GovernorConfig(max_active=1, pause_excess=True, samples=1))
    rows = [S("t/a", "working", pinned=True), S("t/b", "working", attached=True),
            S("t/c", "working", priority=5)]
    assert kinds(gov.step(rows, None, 1.0)) == [("pause", "t/c", "max_active")]


# -- the executor ----------------------------------------------------------------------------


def test_a_failed_action_is_undone_so_the_rule_fires_again() -> None:
    gov, clock = Governor(GovernorConfig(samples=1)), Clock()
    row = S("t/a", "working", 900, memory_limit_mb=800, on_memory_limit="pause",
            root=os.getpid(), root_start=-1.0)  # not the process that runs there: refused
    recorded: list[str] = []
    ex = Executor(governor=gov, record=lambda event, **kw: recorded.append(event))
    (result,) = ex.run(run(gov, [row], None, clock), [row])
    assert not result.ok and "restarted meanwhile" in result.message
    assert recorded == ["pause.failed"] and gov.held() == {}
    assert kinds(run(gov, [row], None, clock)) == [("pause", "t/a", "memory_limit")]


def test_sample_from_a_snapshot_row_and_its_agent() -> None:
    row = SimpleNamespace(target="t/a", status="idle", cpu=12.5, rss=5 * MIB, since=77.0,
                          identity="%1:10:20", wrapper_pid=10, wrapper_start=20.0)
    agent = SimpleNamespace(priority=3, pinned=True, memory_warn_mb=1, memory_limit_mb=2,
                            on_memory_limit="stop")
    s = Sample.of(row, agent, attached=True)
    assert s == Sample("t/a", "idle", 12.5, 5 * MIB, 3, True, True, 77.0, "%1:10:20", 1, 2,
                       "stop", 10, 20.0)


def test_the_governor_modules_never_import_textual() -> None:
    code = ("import sys, squad.governor, squad.cpulimit; "
            "sys.exit(1 if any(m.split('.')[0] == 'textual' for m in sys.modules) else 0)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=False)
    assert proc.returncode == 0


# -- real processes --------------------------------------------------------------------------

ALLOCATOR = r'''
import os, signal, sys
step = int(sys.argv[1]) * 1024 * 1024
ack = sys.argv[2]
chunks = []

def say():
    tmp = ack + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(len(chunks)))
    os.replace(tmp, ack)

def grow(*_):
    chunks.append(b"\x01" * step)  # written, so it is resident, not a lazy zero page
    say()

def free(*_):
    chunks.clear()
    say()

signal.signal(signal.SIGUSR1, grow)
signal.signal(signal.SIGUSR2, free)
say()
while True:
    signal.pause()
'''

SPINNER = r'''
import os, signal

def fork_spinner(*_):
    if os.fork() == 0:
        while True:
            pass

signal.signal(signal.SIGUSR1, fork_spinner)
fork_spinner()  # the tree spins on two processes: the limit is for the whole tree
while True:
    pass
'''


@dataclass
class Agent:
    """A real agent tree: squad's wrapper, with a script as the agent below it."""

    wrapper: subprocess.Popen
    start: float
    dir: Path

    @property
    def root(self) -> int:
        return self.wrapper.pid

    def agent_pid(self) -> int:
        return procs.scan().children[self.root][0]

    def pids(self) -> list[int]:
        return procs.scan().tree(self.root)

    def states(self) -> list[str | None]:
        return [procs.proc_state(p) for p in self.pids()]

    def stopped(self) -> bool:
        states = self.states()
        return bool(states) and all(s in procs.STOPPED_STATES for s in states)

    def running(self) -> bool:
        states = self.states()
        return bool(states) and not any(s in procs.STOPPED_STATES for s in states)


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., Agent]]:
    """Start agent trees under the real wrapper; every one is ended at teardown (stopped
    processes included)."""
    started: list[Agent] = []

    def start(script: str, *args: str, name: str = "agent", procs_: int = 1) -> Agent:
        home = tmp_path / name
        home.mkdir()
        (home / "agent.py").write_text(script)
        wrapper = subprocess.Popen(
            [sys.executable, "-S", WRAPPER, "--", sys.executable, str(home / "agent.py"),
             *args], cwd=home, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
            start_new_session=True)
        agent = Agent(wrapper, 0.0, home)
        started.append(agent)
        wait_for(lambda: len(procs.scan().tree(wrapper.pid)) >= procs_, what=f"{name} tree")
        agent.start = procs.scan().procs[wrapper.pid].start
        return agent

    yield start
    for agent in started:
        try:
            procs.terminate_trees([agent.root], grace=2)
        finally:
            agent.wrapper.kill()
            agent.wrapper.wait(5)


def allocator(spawn: Callable[..., Agent], name: str, step_mb: int) -> Agent:
    agent = spawn(ALLOCATOR, str(step_mb), "ack", name=name)
    wait_for(lambda: chunks(agent) == 0, what="allocator ready")
    return agent


def chunks(agent: Agent) -> int | None:
    try:
        return int((agent.dir / "ack").read_text())
    except (OSError, ValueError):
        return None


def grow(agent: Agent, to: int) -> None:
    """Allocate chunk by chunk until ``to`` are held (one signal per step: they coalesce)."""
    while (have := chunks(agent) or 0) < to:
        os.kill(agent.agent_pid(), signal.SIGUSR1)
        wait_for(lambda h=have: (chunks(agent) or 0) > h, what="a chunk allocated")


def free(agent: Agent) -> None:
    os.kill(agent.agent_pid(), signal.SIGUSR2)
    wait_for(lambda: chunks(agent) == 0, what="memory freed")


class Loop:
    """The supervisor's part, played by the test: one scan per tick, samples, the governor's
    step, and the executor acting on the real trees."""

    def __init__(self, gov: Governor, agents: dict[str, tuple[Agent, dict]],
                 pressure: Callable[[], Pressure | None] = lambda: None,
                 limiter: CpuLimiter | None = None) -> None:
        self.gov = gov
        self.agents = agents
        self.pressure = pressure
        self.sampler = procs.Sampler()
        self.events: list[tuple[str, dict]] = []
        self.executor = Executor(governor=gov, limiter=limiter,
                                 record=lambda event, **kw: self.events.append((event, kw)))
        self.results: list = []

    def samples(self) -> list[Sample]:
        self.sampler.sample()
        out = []
        for target, (agent, settings) in self.agents.items():
            usage = self.sampler.usage(agent.root)
            status = "paused" if usage.stopped else settings.get("status", "idle")
            rest = {k: v for k, v in settings.items() if k != "status"}
            out.append(Sample(target, status, usage.cpu, usage.rss, root=agent.root,
                              root_start=agent.start, identity=str(agent.start), **rest))
        return out

    def tick(self) -> list[Action]:
        rows = self.samples()
        actions = self.gov.step(rows, self.pressure(), time.monotonic())
        self.results += self.executor.run(actions, rows)
        return actions


def test_growing_memory_warns_then_the_limit_pauses_the_real_tree(spawn) -> None:
    hog = allocator(spawn, "hog", 64)
    base = procs.Sampler()
    base.sample()
    base_mb = base.usage(hog.root).rss / MIB
    warn, limit = int(base_mb + 100), int(base_mb + 230)
    loop = Loop(Governor(GovernorConfig(samples=2)), {"t/hog": (hog, dict(
        status="working", memory_warn_mb=warn, memory_limit_mb=limit,
        on_memory_limit="pause"))})
    grow(hog, 1)  # base + 64: under both
    assert [loop.tick() for _ in range(3)] == [[], [], []]
    grow(hog, 2)  # base + 128: over the warning
    assert loop.tick() == []
    assert kinds(loop.tick()) == [("warn", "t/hog", "memory_warn")]
    assert hog.running()
    grow(hog, 4)  # base + 256: over the limit
    assert loop.tick() == []
    assert kinds(loop.tick()) == [("pause", "t/hog", "memory_limit")]
    assert loop.results[-1].ok, loop.results[-1].message
    assert hog.stopped()  # every process of the tree, really stopped
    assert procs.proc_state(hog.root) not in procs.STOPPED_STATES  # never the wrapper
    event, fields = loop.events[-1]
    assert (event, fields["by"], fields["rule"], fields["memory_limit_mb"]) == (
        "pause", "policy", "memory_limit", limit)
    assert fields["rss_mb"] > limit and fields["result"].startswith("paused")
    assert [loop.tick() for _ in range(3)] == [[], [], []]  # seen paused: nothing more
    assert hog.stopped()


def test_real_memory_pressure_pauses_the_lowest_priority_agent_then_resumes_it(spawn) -> None:
    before = read_pressure().available_mb
    if before is None or before < 1024:
        pytest.skip(f"needs 1 GiB of available memory to make pressure, has {before} MiB")
    total = int(min(2048, before // 4))
    step = total // 4
    # Thresholds relative to this machine now: act once `total` is taken, recover when freed;
    # a quarter of it is left as margin for whatever else runs here meanwhile.
    low, ok = int(before - total / 2), int(before - total / 4)
    sleeper = "import signal\nwhile True:\n    signal.pause()\n"
    agents = {
        "t/low": (spawn(sleeper, name="low"), dict(priority=-1)),
        "t/mid": (spawn(sleeper, name="mid"), dict(priority=0)),
        "t/hog": (allocator(spawn, "hog", step), dict(priority=5, status="working")),
    }
    gov = Governor(GovernorConfig(memory_low_mb=low, memory_ok_mb=ok, samples=2,
                                  recover_after=0.5))
    loop = Loop(gov, agents, pressure=read_pressure)
    assert [loop.tick() for _ in range(3)] == [[], [], []], gov.describe()
    grow(agents["t/hog"][0], 4)
    acts = wait_for(loop.tick, 30, "a pause under memory pressure")
    assert kinds(acts) == [("pause", "t/low", "memory_low")]
    assert acts[0].figures["reading"] < low
    assert agents["t/low"][0].stopped()
    assert agents["t/mid"][0].running() and agents["t/hog"][0].running()
    assert not gov.may_start(loop.samples())
    free(agents["t/hog"][0])
    acts = wait_for(loop.tick, 30, "a resume once memory is back")
    assert kinds(acts) == [("resume", "t/low", "recovered")]
    assert loop.results[-1].ok, loop.results[-1].message
    assert agents["t/low"][0].running()
    assert [e for e, _ in loop.events] == ["pause", "resume"]  # t/mid was never touched
    assert gov.held() == {}


# -- CPU limits ---------------------------------------------------------------------------------

WINDOW = 10.0  # seconds of measurement: long enough for a steady share on a loaded machine


def tree_cpu(root: int) -> float:
    table = procs.scan()
    return sum(table.procs[p].cpu_time for p in table.tree(root))


def measured_share(root: int, window: float = WINDOW) -> float:
    """Percent of one core the tree used over ``window`` seconds, from /proc."""
    c0, t0 = tree_cpu(root), time.monotonic()
    time.sleep(window)  # a measurement window, not a wait for something to happen
    return 100.0 * (tree_cpu(root) - c0) / (time.monotonic() - t0)


def cpu_group(pid: int) -> str | None:
    try:
        for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if "cpu" in controllers.split(",") or controllers == "":
                return path
    except OSError:
        return None
    return None


@pytest.fixture
def limiter_name(request: pytest.FixtureRequest) -> Iterator[str]:
    """A squad name of this test alone; no cgroup of it may survive the test."""
    name = f"t{os.getpid()}-{request.node.name[-40:]}".replace("[", "-").replace("]", "")
    yield name
    fs = find_cpu_cgroup()
    if fs is not None:
        leftover = fs.mount / "squad" / cpulimit._group_name(name)
        assert not leftover.exists(), f"cgroup {leftover} left behind"


def cgroup_limiter(name: str) -> CpuLimiter:
    limiter = CpuLimiter(name, prefer="cgroup")
    if limiter.cgroup is None:
        limiter.close()
        pytest.skip(f"no usable cgroup here: {limiter.cgroup_problem}")
    return limiter


@pytest.mark.parametrize("prefer", ["cgroup", "duty"])
def test_a_spinning_tree_is_held_to_its_cpu_limit(prefer: str, spawn, limiter_name) -> None:
    limiter = (cgroup_limiter(limiter_name) if prefer == "cgroup"
               else CpuLimiter(limiter_name, prefer="duty"))
    try:
        spinner = spawn(SPINNER, name="spin", procs_=2)
        homes = {p: cpu_group(p) for p in spinner.pids()}
        mechanism = limiter.apply("t/spin", spinner.root, 30, root_start=spinner.start)
        assert mechanism == limiter.mechanism("t/spin")
        assert mechanism == (limiter.cgroup.mechanism if limiter.cgroup else DUTY)
        share = measured_share(spinner.root)
        assert 25.0 <= share <= 35.0, f"{mechanism}: {share:.1f}% of a core, wanted 30 ± 5"
        limiter.release("t/spin")
        assert limiter.mechanism("t/spin") is None
        wait_for(spinner.running, 2, "the tree running after release")
        assert {p: cpu_group(p) for p in spinner.pids()} == homes  # back where it was
    finally:
        limiter.close()


def test_children_forked_later_are_in_the_agents_cgroup(spawn, limiter_name) -> None:
    limiter = cgroup_limiter(limiter_name)
    try:
        spinner = spawn(SPINNER, name="spin", procs_=2)
        limiter.apply("t/spin", spinner.root, 20, root_start=spinner.start)
        group = limiter.describe()["t/spin"]["group"]
        before = set(spinner.pids())
        os.kill(spinner.agent_pid(), signal.SIGUSR1)
        new = wait_for(lambda: set(spinner.pids()) - before, what="a new child")
        for pid in new:
            assert limiter.cgroup is not None
            assert limiter.cgroup.path_of(pid) == Path(str(group))
        # The agent ends: the next sync removes its group.
        procs.terminate_trees([spinner.root], grace=2)
        limiter.sync({})
        assert not Path(str(group)).exists()
    finally:
        limiter.close()


def test_sync_follows_limits_and_leftover_groups_are_swept(spawn, limiter_name) -> None:
    limiter = cgroup_limiter(limiter_name)
    try:
        a = spawn(SPINNER, name="a", procs_=2)
        table = procs.scan()
        assert limiter.sync({"t/a": (a.root, a.start, 40)}, table) == {
            "t/a": limiter.cgroup.mechanism}  # type: ignore[union-attr]
        group = Path(str(limiter.describe()["t/a"]["group"]))

        def quota() -> str:
            if (group / "cpu.max").exists():
                return (group / "cpu.max").read_text().split()[0]
            return (group / "cpu.cfs_quota_us").read_text().strip()

        assert quota() == "40000"  # 40% of each 100 ms period
        limiter.sync({"t/a": (a.root, a.start, 50)})  # a new limit: the quota changes
        assert quota() == "50000"
        # A supervisor that died leaves its group; the next one sweeps it.
        successor = CpuLimiter(limiter_name, prefer="cgroup")
        assert successor.sweep() == [group.name]
        assert not group.exists()
        assert cpu_group(a.agent_pid()) == cpu_group(a.root)
        successor.close()
    finally:
        limiter.close()


def test_duty_cycle_never_undoes_a_persons_pause(spawn, limiter_name, tmp_path) -> None:
    holds = Holds(tmp_path / "holds")
    limiter = CpuLimiter(limiter_name, prefer="duty", held=holds.__contains__, period=0.1)
    try:
        spinner = spawn(SPINNER, name="spin", procs_=2)
        limiter.apply("t/spin", spinner.root, 30, root_start=spinner.start)
        wait_for(lambda: any(s in procs.STOPPED_STATES for s in spinner.states()),
                 what="the duty cycle stopping the tree")
        assert limiter.cycling("t/spin")  # a stopped tree now is no pause
        # squad pause from another process: the marker first, then the tree stopped.
        holds.add("t/spin")
        assert not limiter.cycling("t/spin")
        procs.pause_tree(spinner.root)
        deadline = time.monotonic() + 1.0  # ten periods: the cycle would have resumed it
        while time.monotonic() < deadline:
            assert spinner.stopped()
            time.sleep(0.02)
        holds.discard("t/spin")
        procs.resume_tree(spinner.root)
        c0 = tree_cpu(spinner.root)
        wait_for(lambda: tree_cpu(spinner.root) > c0 + 0.1, what="the tree running again")
        wait_for(lambda: any(s in procs.STOPPED_STATES for s in spinner.states()),
                 what="the duty cycle at work again")
    finally:
        limiter.close()
    assert spinner.running()


def test_a_governor_pause_of_a_duty_cycled_tree_holds(spawn, limiter_name) -> None:
    limiter = CpuLimiter(limiter_name, prefer="duty", period=0.1)
    try:
        spinner = spawn(SPINNER, name="spin", procs_=2)
        limiter.apply("t/spin", spinner.root, 30, root_start=spinner.start)
        row = Sample("t/spin", "working", root=spinner.root, root_start=spinner.start)
        ex = Executor(limiter=limiter)
        (paused,) = ex.run([Action("pause", "t/spin", "memory_low", "test")], [row])
        assert paused.ok, paused.message
        assert not limiter.cycling("t/spin")
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            assert spinner.stopped()
            time.sleep(0.02)
        (resumed,) = ex.run([Action("resume", "t/spin", "recovered", "test")], [row])
        assert resumed.ok, resumed.message
        assert limiter.cycling("t/spin")
        wait_for(lambda: any(s in procs.STOPPED_STATES for s in spinner.states()),
                 what="the duty cycle at work again")
    finally:
        limiter.close()
    assert spinner.running()


def test_closing_a_duty_cycle_never_leaves_the_tree_stopped(spawn, limiter_name) -> None:
    spinner = spawn(SPINNER, name="spin", procs_=2)
    for _ in range(3):
        limiter = CpuLimiter(limiter_name, prefer="duty", period=0.1)
        limiter.apply("t/spin", spinner.root, 20, root_start=spinner.start)
        wait_for(lambda: any(s in procs.STOPPED_STATES for s in spinner.states()),
                 what="the duty cycle stopping the tree")
        limiter.close()
        assert spinner.running()


CRASHER = r'''
import os, signal, sys, time
sys.path.insert(0, sys.argv[3])
from squad import procs
from squad.cpulimit import CpuLimiter
root = int(sys.argv[1])
limiter = CpuLimiter("crash", prefer="duty", journal=sys.argv[2], period=0.1)
limiter.apply("t/spin", root, 10)
while True:
    pids = procs.scan().tree(root)
    if pids and all(procs.proc_state(p) in procs.STOPPED_STATES for p in pids):
        os.kill(os.getpid(), signal.SIGKILL)  # dies in the middle of an off phase
    time.sleep(0.005)
'''


def test_after_a_crash_mid_cycle_recover_continues_the_tree(spawn, tmp_path) -> None:
    spinner = spawn(SPINNER, name="spin", procs_=2)
    journal = tmp_path / "cpulimit.json"
    (tmp_path / "crasher.py").write_text(CRASHER)
    proc = subprocess.run([sys.executable, str(tmp_path / "crasher.py"), str(spinner.root),
                           str(journal), str(ROOT)], timeout=60, check=False)
    assert proc.returncode == -signal.SIGKILL
    assert spinner.stopped()  # left stopped: what recover() is for
    successor = CpuLimiter("crash", prefer="duty", journal=journal)
    woken = successor.recover()
    assert set(woken) == set(spinner.pids())
    assert spinner.running() and not journal.exists()
    successor.close()


def test_mountinfo_parsing(tmp_path: Path) -> None:
    v1 = tmp_path / "v1"
    v1.write_text(
        "30 25 0:26 / /sys/fs/cgroup/unified rw,relatime shared:5 - cgroup2 cgroup2 rw\n"
        "31 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw shared:6 - cgroup cgroup rw,cpu,cpuacct\n"
        "32 25 0:28 / /sys/fs/cgroup/cpuset rw shared:7 - cgroup cgroup rw,cpuset\n")
    fs = find_cpu_cgroup(v1)
    assert fs is not None and (fs.version, fs.mount) == (1, Path("/sys/fs/cgroup/cpu,cpuacct"))
    mount = tmp_path / "my cgroup"
    mount.mkdir()
    (mount / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    v2 = tmp_path / "v2"
    v2.write_text(f"30 25 0:26 / {str(mount).replace(' ', chr(92) + '040')} rw - cgroup2 "
                  "cgroup2 rw,nsdelegate\n")
    fs = find_cpu_cgroup(v2)
    assert fs is not None and (fs.version, fs.mount, fs.mechanism) == (2, mount, "cgroup-v2")
    assert find_cpu_cgroup(tmp_path / "missing") is None
