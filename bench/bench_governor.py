"""The resource governor's cost per tick with 100 agents, and how fast it reacts.

1. Cost per tick, 100 agents of ~5 processes each. squad's way reuses the tick's one
   process-table scan (``procs.Sampler``) for every agent's CPU and memory, reads the
   machine's pressure (a few small /proc files) and runs ``Governor.step``. Baseline,
   measured in the same run: the naive way, psutil ``children(recursive=True)`` and
   per-process memory and CPU calls for every agent, plus ``psutil.virtual_memory()``, then
   the same ``Governor.step``. Prints milliseconds per tick and the ratio.
2. Reaction time: a real agent (squad's wrapper, a Python process allocating memory) crosses
   its ``memory_limit_mb`` at a random moment between ticks; the supervisor-like loop ticks
   every ``interval`` seconds and the governor pauses the tree after ``samples``
   consecutive samples over the limit. Measured from the allocation being resident (the
   agent's own CLOCK_MONOTONIC timestamp) to the pause verified on every process. By design
   it is between (samples - 1) and samples intervals, plus the pause itself.
3. The duty cycle's own cost: the CPU time the limiter's thread spends holding one spinning
   tree to 30% (the cgroup mechanism costs squad nothing: the scheduler enforces it).

Run: python bench/bench_governor.py [--trials N]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil  # noqa: E402

from squad import procs  # noqa: E402
from squad.cpulimit import CpuLimiter  # noqa: E402
from squad.governor import (  # noqa: E402
    MIB,
    Executor,
    Governor,
    GovernorConfig,
    Pressure,
    Sample,
    read_pressure,
)

ROOT = Path(__file__).resolve().parent.parent
WRAPPER = str(ROOT / "squad" / "wrapper.py")
TREE = "sh -c 'sleep 600 & sleep 600 & sleep 600 & sleep 600 & wait' & wait"

ALLOCATOR = r'''
import os, signal, sys, time
step = int(sys.argv[1]) * 1024 * 1024
ack = sys.argv[2]
chunks = []

def say():
    with open(ack + ".tmp", "w") as f:
        f.write(f"{len(chunks)} {time.monotonic()}")
    os.replace(ack + ".tmp", ack)

def grow(*_):
    chunks.append(b"\x01" * step)
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

SPIN = "import os\nos.fork()\nwhile True:\n    pass\n"


def wait_until(check, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.01)
    raise SystemExit(f"timed out waiting for {what}")


# -- 1. cost per tick ------------------------------------------------------------------------


def spawn_trees(n: int) -> list[subprocess.Popen]:
    agents = [subprocess.Popen(["sh", "-c", TREE], start_new_session=True) for _ in range(n)]
    wait_until(lambda: all(len(procs.scan().tree(a.pid)) >= 5 for a in agents), 30,
               "agent trees")
    return agents


def config() -> GovernorConfig:
    return GovernorConfig(max_active=50, memory_low_mb=64, memory_psi_high=50,
                          cpu_psi_high=90, load_high=8, samples=3)


def squad_tick(gov: Governor, sampler: procs.Sampler, roots: list[int], now: float) -> None:
    sampler.sample()
    rows = []
    for i, root in enumerate(roots):
        u = sampler.usage(root)
        rows.append(Sample(f"t/a{i}", "working" if i % 3 else "idle", u.cpu, u.rss,
                           priority=i % 4, memory_warn_mb=1 if i % 10 == 0 else 512,
                           memory_limit_mb=1024, root=root))
    gov.step(rows, read_pressure(), now)
    gov.may_start(rows)


def naive_tick(gov: Governor, roots: list[int], cache: dict[int, psutil.Process],
               now: float) -> None:
    rows = []
    for i, root in enumerate(roots):
        cpu = rss = 0.0
        try:
            tree = psutil.Process(root).children(recursive=True)
        except psutil.Error:
            tree = []
        for p in tree:
            proc = cache.setdefault(p.pid, p)  # cpu_percent needs the same object twice
            try:
                cpu += proc.cpu_percent(None)
                rss += proc.memory_info().rss
            except psutil.Error:
                pass
        rows.append(Sample(f"t/a{i}", "working" if i % 3 else "idle", cpu, int(rss),
                           priority=i % 4, memory_warn_mb=1 if i % 10 == 0 else 512,
                           memory_limit_mb=1024, root=root))
    vm = psutil.virtual_memory()
    gov.step(rows, Pressure(available_mb=vm.available / MIB, total_mb=vm.total / MIB), now)
    gov.may_start(rows)


def timed(fn, runs: int) -> tuple[float, float]:
    samples = []
    for i in range(runs):
        t0 = time.perf_counter()
        fn(float(i))
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return statistics.median(samples), samples[max(0, int(len(samples) * 0.95) - 1)]


def cost_per_tick() -> None:
    print("1. cost per tick (ms: median, p95)")
    print(f"{'agents':>6} {'procs':>6} {'squad':>16} {'naive psutil':>16} {'ratio':>7}"
          f" {'step only':>10} {'pressure read':>14}")
    for n in (10, 100):
        agents = spawn_trees(n)
        try:
            roots = [a.pid for a in agents]
            total = sum(len(procs.scan().tree(r)) for r in roots)
            gov, sampler = Governor(config()), procs.Sampler()
            sampler.sample()
            s_med, s_p95 = timed(lambda t, g=gov, s=sampler, r=roots: squad_tick(g, s, r, t), 20)
            cache: dict[int, psutil.Process] = {}
            gov2 = Governor(config())
            n_med, n_p95 = timed(lambda t, g=gov2, r=roots, c=cache: naive_tick(g, r, c, t),
                                 5 if n >= 50 else 10)
            rows = [Sample(f"t/a{i}", "working", 1.0, 10 * MIB, priority=i % 4,
                           memory_warn_mb=5, memory_limit_mb=1024) for i in range(n)]
            gov3, p = Governor(config()), read_pressure()
            step_med, _ = timed(lambda t, g=gov3, r=rows, q=p: g.step(r, q, t), 200)
            read_med, _ = timed(lambda t: read_pressure(), 200)
            print(f"{n:>6} {total:>6} {s_med:>8.2f} ({s_p95:>5.2f}) {n_med:>8.1f} ({n_p95:>5.1f})"
                  f" {n_med / s_med:>6.1f}x {step_med:>10.3f} {read_med:>14.3f}")
        finally:
            procs.terminate_trees([a.pid for a in agents], grace=2)
            for a in agents:
                a.kill()
                a.wait()
    print("  squad = the tick's one scan + usage per agent + pressure read + Governor.step;")
    print("  the supervisor pays for the scan already: the governor adds step + pressure read")


# -- 2. reaction time ------------------------------------------------------------------------


def reaction(trials: int, interval: float, samples: int) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        script, ack = Path(tmp) / "alloc.py", Path(tmp) / "ack"
        script.write_text(ALLOCATOR)
        wrapper = subprocess.Popen([sys.executable, "-S", WRAPPER, "--", sys.executable,
                                    str(script), "64", str(ack)], stdout=subprocess.DEVNULL,
                                   start_new_session=True)
        try:
            wait_until(lambda: ack.exists(), what="allocator")
            agent = procs.scan().children[wrapper.pid][0]
            start = procs.scan().procs[wrapper.pid].start
            base = procs.Sampler()
            base.sample()
            limit = int(base.usage(wrapper.pid).rss / MIB + 40)  # one 64 MiB chunk crosses
            out = []
            for _ in range(trials):
                gov = Governor(GovernorConfig(samples=samples))
                ex, sampler = Executor(governor=gov), procs.Sampler()
                next_tick = time.monotonic()
                grow_at = next_tick + interval + random.uniform(0, interval)
                grown, acted = False, None
                while acted is None:
                    now = time.monotonic()
                    if not grown and now >= grow_at:
                        os.kill(agent, signal.SIGUSR1)
                        grown = True
                    if now >= next_tick:
                        sampler.sample()
                        u = sampler.usage(wrapper.pid)
                        row = Sample("t/hog", "paused" if u.stopped else "working", u.cpu,
                                     u.rss, memory_limit_mb=limit, on_memory_limit="pause",
                                     root=wrapper.pid, root_start=start)
                        results = ex.run(gov.step([row], None, now), [row])
                        if any(r.ok and r.action.kind == "pause" for r in results):
                            acted = time.monotonic()
                        next_tick += interval
                    wake = next_tick if grown else min(next_tick, grow_at)
                    time.sleep(max(0.0, wake - time.monotonic()))
                crossed = float(ack.read_text().split()[1])
                out.append(acted - crossed)
                procs.resume_tree(wrapper.pid)
                os.kill(agent, signal.SIGUSR2)
                wait_until(lambda: ack.read_text().split()[0] == "0", what="memory freed")
            return out
        finally:
            procs.terminate_trees([wrapper.pid], grace=2)
            wrapper.kill()
            wrapper.wait()


def reaction_times(trials: int) -> None:
    print("\n2. reaction: limit crossed -> tree paused (verified)")
    print(f"{'interval':>8} {'samples':>7} {'p50 ms':>8} {'max ms':>8} {'p50 ticks':>9}"
          f" {'bound (samples x interval)':>27}")
    for interval, samples in ((1.0, 3), (0.25, 2)):
        times = reaction(trials, interval, samples)
        p50, worst = statistics.median(times), max(times)
        print(f"{interval:>8.2f} {samples:>7} {p50 * 1000:>8.0f} {worst * 1000:>8.0f}"
              f" {p50 / interval:>9.2f} {samples * interval * 1000:>24.0f} ms")


# -- 3. the duty cycle's own cost --------------------------------------------------------------


def duty_cost(seconds: float = 5.0) -> None:
    print("\n3. CPU limit upkeep for one spinning tree held to 30%")
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "spin.py"
        script.write_text(SPIN)
        for prefer in ("duty", "cgroup"):
            wrapper = subprocess.Popen([sys.executable, "-S", WRAPPER, "--", sys.executable,
                                        str(script)], stdout=subprocess.DEVNULL,
                                       start_new_session=True)
            limiter = CpuLimiter(f"bench-{prefer}", prefer=prefer)
            try:
                wait_until(lambda w=wrapper: len(procs.scan().tree(w.pid)) >= 2, what="spinner")
                if prefer == "cgroup" and limiter.cgroup is None:
                    print(f"  cgroup: not usable here ({limiter.cgroup_problem})")
                    continue
                mechanism = limiter.apply("t/spin", wrapper.pid, 30)
                me = psutil.Process()
                c0, t0 = sum(me.cpu_times()[:2]), time.monotonic()
                tree0 = sum(procs.scan().procs[p].cpu_time
                            for p in procs.scan().tree(wrapper.pid))
                time.sleep(seconds)
                wall = time.monotonic() - t0
                tree1 = sum(procs.scan().procs[p].cpu_time
                            for p in procs.scan().tree(wrapper.pid))
                ours = 100 * (sum(me.cpu_times()[:2]) - c0) / wall
                print(f"  {mechanism:<10} tree {100 * (tree1 - tree0) / wall:5.1f}% of a core;"
                      f" this process (limiter and all) {ours:4.2f}% of a core")
            finally:
                limiter.close()
                procs.terminate_trees([wrapper.pid], grace=2)
                wrapper.kill()
                wrapper.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=10)
    args = parser.parse_args()
    cost_per_tick()
    reaction_times(args.trials)
    duty_cost()


if __name__ == "__main__":
    main()
