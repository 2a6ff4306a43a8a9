"""Capturing 50 panes: one `tmux capture-pane` process per pane against squad's batched capture.

Both run in the same process on the same private tmux server; prints wall time and the CPU
time of the tmux client processes per round, and the ratios. Run: python bench/bench_capture.py
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from squad.tmux import Tmux  # noqa: E402

PANES = 50
ROUNDS = 20


def child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def measure(fn) -> tuple[float, float]:
    walls, cpus = [], []
    for _ in range(ROUNDS):
        c0, t0 = child_cpu(), time.perf_counter()
        fn()
        walls.append((time.perf_counter() - t0) * 1000)
        cpus.append((child_cpu() - c0) * 1000)
    return statistics.median(walls), statistics.mean(cpus)


def main() -> None:
    socket = f"squad-bench-{uuid.uuid4().hex[:6]}"
    tmux = Tmux(socket)
    script = "for i in $(seq 1 40); do echo line $i of some agent output; done; sleep 600"
    cmds = [["start-server"], ["new-session", "-d", "-s", "b", "-x", "160", "-y", "48",
                                "--", "sh", "-c", script]]
    cmds += [["new-window", "-d", "-t", "=b:", "--", "sh", "-c", script]] * (PANES - 1)
    try:
        tmux.run(*cmds)
        ids = [p.pane_id for p in tmux.panes()]
        assert len(ids) == PANES, ids
        env = dict(os.environ)
        env.pop("TMUX", None)

        def one_per_pane() -> None:
            for pid in ids:
                subprocess.run(["tmux", "-L", socket, "capture-pane", "-p", "-J", "-t", pid],
                               capture_output=True, env=env, check=True)

        def batched() -> None:
            shots = tmux.capture(ids)
            assert len(shots) == PANES

        naive_wall, naive_cpu = measure(one_per_pane)
        squad_wall, squad_cpu = measure(batched)
        print(f"capturing {PANES} panes, median of {ROUNDS} rounds")
        print(f"  one capture-pane process per pane: {naive_wall:7.1f} ms wall, "
              f"{naive_cpu:6.1f} ms CPU in tmux clients")
        print(f"  squad, one batched invocation:     {squad_wall:7.1f} ms wall, "
              f"{squad_cpu:6.1f} ms CPU in tmux clients")
        print(f"  ratio: {naive_wall / squad_wall:.1f}x faster (wall), "
              f"{naive_cpu / max(squad_cpu, 0.01):.1f}x less client CPU")
    finally:
        tmux.kill_server()


if __name__ == "__main__":
    main()
