"""What watching a squad costs: the headless supervisor against the ways a user could watch
it without squad, side by side in one run.

For N idle agents (10, 50, 100, 200 by default) and for 50 agents each printing a line every
100 ms, each mode runs for ``--seconds`` (default 20; the issue's figure is for 60) and the
bench reports, as % of one core:

- the watcher's own CPU (its process and every process it forked: tmux clients included),
- the tmux server's extra CPU over the same squad running with no watcher at all,
- their sum, and the per-agent slope between the smallest and largest N.

Modes:

- ``squad run --headless`` (what a user runs; it keeps one control-mode connection),
- the same with forked tmux commands (``--no-control``: the way before the connection),
- per-pane polling, one ``tmux capture-pane`` per pane every 500 ms (how the best-known peer
  tool watches its agents), as a shell loop a user could write,
- the floor: one control-mode client per session that captures every pane every 500 ms
  over the connection (bench/bench_control.py measures that path in detail).

Agents are tiny programs (idle: a prompt and a long sleep; busy: a Python loop printing),
so what is measured is the watching, not the agents. Run: python bench/bench_supervise.py
[--seconds S] [--sizes 10,50,100]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from squad import procs  # noqa: E402

IDLE = "printf 'ready> '; exec sleep 100000"
BUSY = [sys.executable, "-c",
        "import time\nwhile True:\n    print('line', time.time(), flush=True)\n"
        "    time.sleep(0.1)"]
HZ = os.sysconf("SC_CLK_TCK")


def layout(d: Path, n: int, busy: bool) -> Path:
    per_team = 10
    lines = ['name = "bench"', "[defaults]", "worktree = false", "grace = 0.5",
             "dispatch = false"]
    cmd = json.dumps(BUSY) if busy else json.dumps(["sh", "-c", IDLE])
    lines.append(f"command = {cmd}")
    lines.append('ready_pattern = "ready> ?$"')
    for t in range((n + per_team - 1) // per_team):
        lines += ["[[teams]]", f'name = "t{t:02d}"']
        for a in range(min(per_team, n - t * per_team)):
            lines += ["[[teams.agents]]", f'name = "a{a}"']
    path = d / f"bench-{n}-{int(busy)}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def cpu_seconds(pid: int) -> float:
    """CPU time of a process and all its (waited-for and live) descendants."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            rest = f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return 0.0
    own = (int(rest[11]) + int(rest[12]) + int(rest[13]) + int(rest[14])) / HZ
    table = procs.scan()
    live = sum(table.procs[p].cpu_time for p in table.tree(pid) if p in table.procs)
    return own + live


def server_pid(socket: str) -> int:
    out = subprocess.run(["tmux", "-L", socket, "display-message", "-p", "#{pid}"],
                         capture_output=True, text=True).stdout.strip()
    return int(out)


def server_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat", "rb") as f:
        rest = f.read().rsplit(b")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / HZ


def measure(socket: str, start_watcher, seconds: float) -> tuple[float, float]:
    """(watcher CPU %, tmux server CPU %) of one core over ``seconds``."""
    server = server_pid(socket)
    proc = start_watcher() if start_watcher else None
    time.sleep(min(3.0, seconds / 5))  # start-up is not what this measures
    s0, w0, t0 = server_cpu(server), cpu_seconds(proc.pid) if proc else 0.0, time.monotonic()
    time.sleep(seconds)
    s1, w1, t1 = server_cpu(server), cpu_seconds(proc.pid) if proc else 0.0, time.monotonic()
    if proc is not None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return 100 * (w1 - w0) / (t1 - t0), 100 * (s1 - s0) / (t1 - t0)


def polling_loop(socket: str) -> list[str]:
    script = (f'while :; do for p in $(tmux -L {socket} list-panes -a -F "#{{pane_id}}"); '
              f'do tmux -L {socket} capture-pane -p -t "$p" > /dev/null; done; sleep 0.5; '
              "done")
    return ["sh", "-c", script]


FLOOR = r'''
import sys, time
sys.path.insert(0, sys.argv[2])
from squad.tmux_control import TmuxControl
from squad.tmux import Tmux
socket = sys.argv[1]
sessions = sorted({p.session for p in Tmux(socket).panes()})
ctl = TmuxControl(socket, sessions, stream_all=False).open()
panes = [p.pane_id for p in Tmux(socket).panes()]
while True:
    ctl.capture(panes)
    time.sleep(0.5)
'''


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--sizes", default="10,50,100,200")
    ap.add_argument("--busy", type=int, default=50, help="agents in the busy case (0: skip)")
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",") if x]
    cases = [(n, False) for n in sizes] + ([(args.busy, True)] if args.busy else [])
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        env = dict(os.environ, SQUAD_HOME=str(d / "state"), PYTHONPATH=str(ROOT),
                   SQUAD_NOTIFY="0")
        env.pop("TMUX", None)
        results: dict[tuple[int, bool], dict[str, tuple[float, float]]] = {}
        for n, busy in cases:
            socket = f"bench-sup-{uuid.uuid4().hex[:6]}"
            path = layout(d, n, busy)
            subprocess.run([sys.executable, "-m", "squad", "-L", socket, "up", str(path)],
                           env=env, check=True, capture_output=True)
            squad = [sys.executable, "-m", "squad", "-L", socket, "run", "--headless"]

            def run(argv: list[str]):
                return lambda: subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,
                                                stderr=subprocess.DEVNULL)

            modes = {
                "no watcher": None,
                "squad run --headless": run(squad),
                "  the same, forked tmux": run([*squad, "--no-control"]),
                "per-pane polling (peer)": run(polling_loop(socket)),
                "control-mode floor": run([sys.executable, "-c", FLOOR, socket, str(ROOT)]),
            }
            got = {}
            try:
                for name, start in modes.items():
                    got[name] = measure(socket, start, args.seconds)
            finally:
                subprocess.run([sys.executable, "-m", "squad", "-L", socket, "down",
                                "--grace", "0.5"], env=env, capture_output=True)
                subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True)
            results[(n, busy)] = got
            base = got["no watcher"][1]
            label = f"{n} agents, {'each printing every 100 ms' if busy else 'idle'}"
            print(f"\n{label} ({args.seconds:g} s each; % of one core)")
            print(f"  {'mode':28} {'own':>7} {'server+':>8} {'total':>7}")
            for name, (own, server) in got.items():
                if name == "no watcher":
                    print(f"  {name:28} {'-':>7} {server:7.2f}  (the server's own cost)")
                    continue
                extra = server - base
                print(f"  {name:28} {own:7.2f} {extra:8.2f} {own + extra:7.2f}")
            sq = got["squad run --headless"]
            total = sq[0] + sq[1] - base
            for name in ("per-pane polling (peer)", "  the same, forked tmux"):
                other = got[name][0] + got[name][1] - base
                if total > 0:
                    print(f"  headless vs {name.strip()}: {other / total:5.1f}x less CPU")
        idle = sorted(k for k in results if not k[1])
        if len(idle) >= 2:
            (n0, _), (n1, _) = idle[0], idle[-1]

            def cost(k):
                own, server = results[k]["squad run --headless"]
                return own + server - results[k]["no watcher"][1]

            slope = (cost(idle[-1]) - cost(idle[0])) / (n1 - n0)
            print(f"\nheadless per-agent slope between {n0} and {n1} idle agents: "
                  f"{slope * 1000:.1f} thousandths of a core per agent")


if __name__ == "__main__":
    main()
