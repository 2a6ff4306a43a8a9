"""How fast squad's commands answer, as a user runs them (a fresh process each time, Python
start-up included), on a squad of 10 idle agents with no supervisor running:

- ``squad --version``: the floor (Python start-up and squad's entry point);
- ``tmux list-panes -a``: what asking tmux alone costs;
- ``squad ls --json``: from invocation to exit;
- ``squad pause TEAM/AGENT``: from invocation to every process of the agent's tree stopped,
  watched from outside in /proc (the command's own exit comes after that);
- ``kill -STOP`` of the same processes by a shell: the baseline for a pause.

Median and worst of ``--rounds`` runs each. squad's modules are byte-compiled first, as
pip does when it installs squad (so a ``PYTHONDONTWRITEBYTECODE`` in the environment does
not turn every run into a compile). Run: python bench/bench_commands.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from squad import procs  # noqa: E402


def timed(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, env=env, check=True, capture_output=True)
    return time.perf_counter() - t0


def tree_of(socket: str, target: str, env: dict[str, str]) -> list[int]:
    out = subprocess.run(["tmux", "-L", socket, "list-panes", "-a", "-F",
                          "#{@squad_team}/#{@squad_agent} #{pane_pid}"],
                         capture_output=True, text=True, env=env).stdout
    for line in out.splitlines():
        name, pid = line.split()
        if name == target:
            return procs.scan().tree(int(pid))
    raise SystemExit(f"{target} not found")


def until_stopped(pids: list[int], argv: list[str], env: dict[str, str]) -> float:
    """Seconds from starting ``argv`` to every pid being in the stopped state."""
    done = threading.Event()
    stopped_at: list[float] = []

    def watch() -> None:
        while not done.is_set():
            if all(procs.proc_state(p) in procs.STOPPED_STATES for p in pids):
                stopped_at.append(time.perf_counter())
                return
    watcher = threading.Thread(target=watch, daemon=True)
    t0 = time.perf_counter()
    watcher.start()
    subprocess.run(argv, env=env, check=True, capture_output=True)
    watcher.join(10)
    done.set()
    return (stopped_at[0] if stopped_at else time.perf_counter()) - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "squad")], check=True)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        socket = f"bench-cmd-{uuid.uuid4().hex[:6]}"
        env = dict(os.environ, SQUAD_HOME=str(d / "state"), PYTHONPATH=str(ROOT),
                   SQUAD_NOTIFY="0", SQUAD_SOCKET=socket)
        env.pop("TMUX", None)
        lines = ['name = "cmds"', "[defaults]", 'command = ["sleep", "100000"]',
                 'ready_pattern = "."']
        for t in range(2):
            lines += ["[[teams]]", f'name = "t{t}"']
            for a in range(5):
                lines += ["[[teams.agents]]", f'name = "a{a}"']
        (d / "cmds.toml").write_text("\n".join(lines) + "\n")
        squad = [sys.executable, "-m", "squad"]
        subprocess.run([*squad, "up", str(d / "cmds.toml")], env=env, check=True,
                       capture_output=True)
        try:
            results: dict[str, list[float]] = {k: [] for k in (
                "squad --version", "tmux list-panes -a", "squad ls --json",
                "squad pause (to stopped)", "kill -STOP (to stopped)")}
            for _ in range(args.rounds):
                results["squad --version"].append(timed([*squad, "--version"], env))
                results["tmux list-panes -a"].append(
                    timed(["tmux", "-L", socket, "list-panes", "-a"], env))
                results["squad ls --json"].append(timed([*squad, "ls", "--json"], env))
                pids = tree_of(socket, "t0/a0", env)
                results["squad pause (to stopped)"].append(
                    until_stopped(pids, [*squad, "pause", "t0/a0"], env))
                subprocess.run([*squad, "resume", "t0/a0"], env=env, check=True,
                               capture_output=True)
                results["kill -STOP (to stopped)"].append(until_stopped(
                    pids, ["sh", "-c", "kill -STOP " + " ".join(map(str, pids))], env))
                subprocess.run(["kill", "-CONT", *map(str, pids)], check=True)
            print(f"10 idle agents, no supervisor; {args.rounds} runs each, as commands")
            for name, values in results.items():
                med, worst = statistics.median(values) * 1000, max(values) * 1000
                print(f"  {name:28} median {med:6.0f} ms   worst {worst:6.0f} ms")
        finally:
            subprocess.run([*squad, "down", "--grace", "1"], env=env, capture_output=True)
            subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True)


if __name__ == "__main__":
    main()
