"""Bringing up 10 teams x 10 agents: `squad up` against `tmuxp load -d` of the same
workspace, and taking them down: `squad down` against `tmux kill-server`.

Both are run as a user runs them (a fresh command each time, Python start-up included) on
private tmux sockets, several rounds each, alternating; the servers are killed between
rounds. Like is compared with like: two commands. `squad down` does more than the baseline
(it ends every agent's whole process tree, checks nothing survived, records the event):
the baseline shows what tmux alone costs. Needs tmuxp (`pip install '.[bench]'`).
Run: python bench/bench_up.py [--teams 10] [--agents 10] [--rounds 3]
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TEAMS, AGENTS, ROUNDS = 10, 10, 3
ROLES = ["PM", "Dev", "Server"]
COMMAND = "sleep 600"


def kill(socket: str) -> None:
    from squad import procs

    out = subprocess.run(["tmux", "-L", socket, "list-panes", "-a", "-F", "#{pane_pid}"],
                         capture_output=True, text=True).stdout
    roots = [int(x) for x in out.split() if x.isdigit()]
    if roots:
        procs.terminate_trees(roots, grace=1)
    from squad.tmux import Tmux

    Tmux(socket).kill_server()


def write_squad_layout(d: Path) -> Path:
    lines = ['name = "bench"', "", "[defaults]", f'command = "{COMMAND}"', ""]
    for t in range(TEAMS):
        lines += ["[[teams]]", f'name = "team{t}"', ""]
        for a in range(AGENTS):
            lines += ["[[teams.agents]]", f'name = "a{a}"', f'role = "{ROLES[a % 3]}"', ""]
    path = d / "bench.toml"
    path.write_text("\n".join(lines))
    return path


def write_tmuxp(d: Path) -> list[Path]:
    files = []
    for t in range(TEAMS):
        ws = {"session_name": f"team{t}",
              "windows": [{"window_name": ROLES[a % 3], "panes": [COMMAND]}
                          for a in range(AGENTS)]}
        path = d / f"team{t}.json"
        path.write_text(json.dumps(ws))
        files.append(path)
    return files


def wait_panes(socket: str, n: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(["tmux", "-L", socket, "list-panes", "-a", "-F", "x"],
                             capture_output=True, text=True).stdout
        if out.count("x") >= n:
            return
        time.sleep(0.01)
    raise SystemExit(f"{socket}: panes did not appear")


def main() -> None:
    import argparse

    global TEAMS, AGENTS, ROUNDS
    ap = argparse.ArgumentParser()
    ap.add_argument("--teams", type=int, default=TEAMS)
    ap.add_argument("--agents", type=int, default=AGENTS)
    ap.add_argument("--rounds", type=int, default=ROUNDS)
    args = ap.parse_args()
    TEAMS, AGENTS, ROUNDS = args.teams, args.agents, args.rounds
    tmuxp = shutil.which("tmuxp")
    if not tmuxp:
        raise SystemExit("tmuxp is not installed: pip install '.[bench]'")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        env = dict(os.environ, SQUAD_HOME=str(d / "state"), SHELL="/bin/sh",
                   PYTHONPATH=str(ROOT), SQUAD_NOTIFY="0")
        env.pop("TMUX", None)
        layout = write_squad_layout(d)
        files = write_tmuxp(d)
        squad_t, tmuxp_t, down_t, kill_t = [], [], [], []
        n = TEAMS * AGENTS
        for _ in range(ROUNDS):
            sock = f"bench-squad-{uuid.uuid4().hex[:6]}"
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "squad", "-L", sock, "up", str(layout)],
                           env=env, check=True, capture_output=True)
            squad_t.append(time.perf_counter() - t0)
            wait_panes(sock, n)
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "squad", "-L", sock, "down", "--grace", "3"],
                           env=env, check=True, capture_output=True)
            down_t.append(time.perf_counter() - t0)
            kill(sock)

            sock = f"bench-tmuxp-{uuid.uuid4().hex[:6]}"
            t0 = time.perf_counter()
            subprocess.run([tmuxp, "load", "-d", "-y", "-L", sock, *map(str, files)],
                           env=env, check=True, capture_output=True)
            tmuxp_t.append(time.perf_counter() - t0)
            wait_panes(sock, n)
            t0 = time.perf_counter()
            subprocess.run(["tmux", "-L", sock, "kill-server"], env=env, capture_output=True)
            kill_t.append(time.perf_counter() - t0)
            kill(sock)
        s, x, dn, k = (statistics.median(v) * 1000 for v in (squad_t, tmuxp_t, down_t, kill_t))
        print(f"{TEAMS} teams x {AGENTS} agents, median of {ROUNDS} rounds, as commands")
        print(f"  tmuxp load -d:      {x:7.0f} ms")
        print(f"  squad up:           {s:7.0f} ms   {x / s:5.1f}x faster than tmuxp")
        print(f"  tmux kill-server:   {k:7.0f} ms   (tmux alone; agents' children may survive)")
        print(f"  squad down:         {dn:7.0f} ms   (every tree ended and checked)")


if __name__ == "__main__":
    main()
