"""Cost of one sampling tick for 1, 10, 50 and 100 agents of ~5 processes each.

squad's way: one scan of the process table per tick, every agent's tree from one
parent -> children map. Baseline, measured in the same run: psutil's
``children(recursive=True)`` plus per-process CPU and memory calls for every agent, the
naive way. Prints milliseconds per tick and the ratio. Run: python bench/bench_sample.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil  # noqa: E402

from squad import procs  # noqa: E402

TREE = "sh -c 'sleep 600 & sleep 600 & sleep 600 & sleep 600 & wait' & wait"


def spawn(n: int) -> list[subprocess.Popen]:
    agents = [subprocess.Popen(["sh", "-c", TREE], start_new_session=True) for _ in range(n)]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        table = procs.scan()
        if all(len(table.tree(a.pid)) >= 5 for a in agents):
            return agents
        time.sleep(0.05)
    raise SystemExit("agents did not start")


def squad_tick(sampler: procs.Sampler, roots: list[int]) -> None:
    sampler.sample()
    for r in roots:
        sampler.usage(r)
    sampler.system()


def naive_tick(roots: list[int]) -> None:
    for r in roots:
        try:
            tree = psutil.Process(r).children(recursive=True)
        except psutil.Error:
            continue
        for p in tree:
            try:
                p.cpu_percent(None)
                p.memory_info()
                p.status()
            except psutil.Error:
                pass
    psutil.cpu_percent(None)
    psutil.virtual_memory()


def timed(fn, runs: int) -> tuple[float, float]:
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]


def main() -> None:
    print(f"{'agents':>6} {'procs':>6} {'squad ms (p95)':>16} {'naive ms (p95)':>16} {'ratio':>7}")
    for n in (1, 10, 50, 100):
        agents = spawn(n)
        try:
            roots = [a.pid for a in agents]
            sampler = procs.Sampler()
            sampler.sample()
            total = sum(len(procs.scan().tree(r)) for r in roots)
            s_med, s_p95 = timed(lambda s=sampler, r=roots: squad_tick(s, r), 20)
            n_med, n_p95 = timed(lambda r=roots: naive_tick(r), 5 if n >= 50 else 10)
            print(f"{n:>6} {total:>6} {s_med:>9.1f} ({s_p95:>4.1f}) {n_med:>9.1f} ({n_p95:>5.1f})"
                  f" {n_med / s_med:>6.1f}x")
        finally:
            procs.terminate_trees([a.pid for a in agents], grace=2)
            for a in agents:
                a.kill()
                a.wait()
    print("target: under 25 ms per tick for 100 agents")


if __name__ == "__main__":
    main()
