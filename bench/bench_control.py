"""What watching agents costs: forked tmux against one persistent control-mode connection.

For 10, 50 and 100 idle panes (teams of 10: one tmux session per 10 panes) on a private tmux
server, each mode captures every pane every 500 ms for ``--seconds`` (default 20):

  (0) nothing at all: the tmux server's own idle CPU, the floor the others are compared to
  (a) one forked ``tmux capture-pane`` per pane (how per-pane polling peers work)
  (b) one forked ``tmux`` per round capturing every pane (squad.tmux.Tmux.capture today)
  (c) squad.tmux_control: every capture of a round as one request over the persistent
      connection (one control client per session, opened before the clock starts)

CPU is counted in seconds of one core and shown as % of one core over the run:
  squad   this process (user + system, all threads: pacing, forking, parsing, readers)
  forks   the tmux processes it forked and reaped during the run (RUSAGE_CHILDREN)
  ctl     the control-mode tmux client processes (/proc/PID/stat; they stay alive)
  server  the tmux server's CPU during the run (/proc/PID/stat), and "+server" its extra
          over mode (0)
  total   squad + forks + ctl + extra server: what watching costs the machine

Then, with the connection open on the same panes plus one that prints a timestamped line
every 50 ms, the latency from ``write()`` in the pane to the ``%output`` notification: at the
reader thread (``Output.at``) and at a listener (what the UI's thread would see).

Then ``--busy`` panes (default 50) each printing a line every 100 ms, for the same time:
(0) no monitor, (b) batched forked capture every 500 ms, (c-stream) the control connection
receiving every pane's output (activity counters, no capture), (c-muted) ``stream_all=False``
with nobody followed: every pane is muted when it first prints (tmux sends no bytes;
activity comes from a once-a-second subscription to tmux's window activity time).

Last, the cost of single commands: a forked ``tmux display-message`` against the same over
the connection (wall time and CPU of everyone involved, per command).

Run: python bench/bench_control.py [--seconds S] [--sizes 10,50,100] [--busy 50]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from squad.tmux import Tmux  # noqa: E402
from squad.tmux_control import Output, TmuxControl  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
INTERVAL = 0.5
IDLE = "for i in $(seq 1 40); do echo line $i of some agent output; done; exec sleep 100000"
BUSY = "while :; do echo \"working: step $i of the plan, reading files\"; sleep 0.1; done"
LATENCY = r"""
import os, sys, time
sys.stdin.readline()
while True:
    os.write(1, b"LAT %d\n" % time.monotonic_ns())
    time.sleep(0.05)
"""


def self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def proc_cpu(pid: int | None) -> float:
    if not pid:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


@dataclass
class Cost:
    """CPU seconds each party spent during one mode, and the wall time it ran."""

    wall: float
    squad: float
    forks: float
    ctl: float
    server: float

    def pct(self, seconds: float) -> float:
        return 100 * seconds / self.wall


class Server:
    """A private tmux server with panes in sessions of 10."""

    def __init__(self, panes: int, command: str, prefix: str) -> None:
        self.socket = f"squad-bench-ctl-{uuid.uuid4().hex[:6]}"
        self.tmux = Tmux(self.socket)
        self.sessions = [f"{prefix}{i}" for i in range((panes + 9) // 10)]
        env = dict(os.environ)
        env.pop("TMUX", None)
        first = self.sessions[0]
        subprocess.run(["tmux", "-L", self.socket, "-f", "/dev/null", "new-session", "-d",
                        "-s", first, "-x", "160", "-y", "48", "sh", "-c", command],
                       check=True, env=env)
        units = []
        for n in range(1, panes):
            session = self.sessions[n // 10]
            if n % 10 == 0:
                units.append([["new-session", "-d", "-s", session, "-x", "160", "-y", "48",
                               "sh", "-c", command]])
            else:
                units.append([["new-window", "-d", "-t", f"={session}:", "sh", "-c", command]])
        self.tmux.run_units(units)
        self.panes = [p.pane_id for p in self.tmux.panes()]
        assert len(self.panes) == panes, (len(self.panes), panes)
        self.pid = int(self.tmux.run(["display-message", "-p", "#{pid}"]).strip())

    def close(self) -> None:
        self.tmux.kill_server()


def measure(server: Server, seconds: float, round_fn: Callable[[], object] | None,
            ctl: TmuxControl | None = None) -> Cost:
    """Run ``round_fn`` every 500 ms for ``seconds`` (or nothing) and count everyone's CPU."""
    ctl_pids = [c.pid for c in ctl.clients().values()] if ctl else []
    s0, f0, v0 = self_cpu(), children_cpu(), proc_cpu(server.pid)
    k0 = sum(proc_cpu(p) for p in ctl_pids)
    t0 = time.monotonic()
    n = 0
    while True:
        now = time.monotonic()
        if now - t0 >= seconds:
            break
        if round_fn is not None:
            round_fn()
        n += 1
        time.sleep(max(0.0, t0 + n * INTERVAL - time.monotonic()))
    wall = time.monotonic() - t0
    return Cost(wall, self_cpu() - s0, children_cpu() - f0,
                sum(proc_cpu(p) for p in ctl_pids) - k0, proc_cpu(server.pid) - v0)


def fork_per_pane(server: Server) -> Callable[[], None]:
    env = dict(os.environ)
    env.pop("TMUX", None)

    def run() -> None:
        for pane in server.panes:
            subprocess.run(["tmux", "-L", server.socket, "capture-pane", "-p", "-J", "-t", pane],
                           capture_output=True, env=env, check=True)

    return run


def fork_batched(server: Server) -> Callable[[], None]:
    def run() -> None:
        shots = server.tmux.capture(server.panes)
        assert len(shots) == len(server.panes)

    return run


def over_control(server: Server, ctl: TmuxControl) -> Callable[[], None]:
    def run() -> None:
        shots = ctl.capture(server.panes)
        assert len(shots) == len(server.panes)

    return run


def row(label: str, cost: Cost, floor: Cost | None, baselines: dict[str, float]) -> str:
    extra = max(0.0, cost.server / cost.wall - floor.server / floor.wall) * cost.wall \
        if floor else 0.0
    total = cost.squad + cost.forks + cost.ctl + extra
    ratios = "  ".join(f"{baselines[k] / max(total / cost.wall * 100, 1e-9):6.1f}x"
                       if k in baselines else "       " for k in ("a", "b"))
    return (f"  {label:<28} {cost.pct(cost.squad):6.2f} {cost.pct(cost.forks):6.2f} "
            f"{cost.pct(cost.ctl):5.2f} {cost.pct(cost.server):7.2f} {cost.pct(extra):7.2f} "
            f"{cost.pct(total):7.2f}   {ratios}")


HEADER = (f"  {'mode':<28} {'squad':>6} {'forks':>6} {'ctl':>5} {'server':>7} {'+server':>7} "
          f"{'total':>7}   {'(a)/this':>7} {'(b)/this':>7}")


def capture_modes(size: int, seconds: float) -> None:
    server = Server(size, IDLE, "team")
    try:
        wait_screens(server)
        print(f"\n{size} idle panes in {len(server.sessions)} sessions, every pane captured "
              f"every {INTERVAL * 1000:.0f} ms for {seconds:g} s; CPU in % of one core")
        print(HEADER)
        floor = measure(server, seconds, None)
        print(row("(0) nothing", floor, None, {}))
        a = measure(server, seconds, fork_per_pane(server))
        base: dict[str, float] = {}
        base["a"] = total_pct(a, floor)
        print(row("(a) fork per pane", a, floor, base))
        b = measure(server, seconds, fork_batched(server))
        base["b"] = total_pct(b, floor)
        print(row("(b) one batched fork", b, floor, base))
        t = time.perf_counter()
        with TmuxControl(server.socket, server.sessions) as ctl:
            opened = time.perf_counter() - t
            assert ctl.state == "ready", ctl.reason
            c = measure(server, seconds, over_control(server, ctl), ctl)
            print(row("(c) control connection", c, floor, base))
            assert ctl.fallbacks == 0
        print(f"  opening the connection ({len(server.sessions)} clients) took "
              f"{opened * 1000:.0f} ms wall")
        latency(server, seconds)
    finally:
        server.close()


def total_pct(cost: Cost, floor: Cost) -> float:
    extra = max(0.0, cost.server / cost.wall - floor.server / floor.wall) * cost.wall
    return 100 * (cost.squad + cost.forks + cost.ctl + extra) / cost.wall


def wait_screens(server: Server) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        shots = server.tmux.capture(server.panes)
        if all("line 40" in s for s in shots.values()):
            return
        time.sleep(0.1)
    raise SystemExit("panes never printed their screens")


def latency(server: Server, seconds: float) -> None:
    script = Path(f"/tmp/{server.socket}-lat.py")
    script.write_text(LATENCY)
    try:
        server.tmux.run(["new-session", "-d", "-s", "lat", "-x", "160", "-y", "48",
                         sys.executable, str(script)])
        pane = server.tmux.run(["display-message", "-p", "-t", "=lat:", "#{pane_id}"]).strip()
        at_reader: list[float] = []
        at_listener: list[float] = []
        pending = b""
        lock = threading.Lock()

        def listen(event: object) -> None:
            nonlocal pending
            if not isinstance(event, Output) or event.pane != pane:
                return
            now = time.monotonic_ns()
            with lock:
                pending += event.data
                lines = pending.split(b"\n")
                pending = lines.pop()
                for line in lines:
                    m = re.search(rb"LAT (\d+)", line)
                    if m:
                        sent = int(m.group(1))
                        at_reader.append((event.at * 1e9 - sent) / 1e6)
                        at_listener.append((now - sent) / 1e6)

        with TmuxControl(server.socket, [*server.sessions, "lat"]) as ctl:
            ctl.add_listener(listen)
            ctl.run(["send-keys", "-t", pane, "go", "Enter"])
            time.sleep(seconds)  # the pane prints every 50 ms by its own clock meanwhile
        with lock:
            reader, listener = list(at_reader), list(at_listener)
        print(f"  latency, pane write() to %output, {len(reader)} lines over {seconds:g} s "
              f"(+{len(server.panes)} idle panes watched): "
              f"reader p50 {pct(reader, 50):.2f} ms p95 {pct(reader, 95):.2f} ms, "
              f"listener p50 {pct(listener, 50):.2f} ms p95 {pct(listener, 95):.2f} ms")
    finally:
        script.unlink(missing_ok=True)


def pct(values: list[float], q: int) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def busy_modes(size: int, seconds: float) -> None:
    server = Server(size, BUSY, "busy")
    try:
        print(f"\n{size} panes each printing a line every 100 ms, for {seconds:g} s; "
              f"CPU in % of one core")
        print(HEADER)
        floor = measure(server, seconds, None)
        print(row("(0) no monitor", floor, None, {}))
        b = measure(server, seconds, fork_batched(server))
        base = {"b": total_pct(b, floor)}
        print(row("(b) batched fork capture", b, floor, base))
        with TmuxControl(server.socket, server.sessions) as ctl:
            c = measure(server, seconds, None, ctl)
            changes = ctl.changes().panes.values()
            streamed = sum(a.bytes for a in changes)
            notes = sum(a.notifications for a in changes)
            print(row("(c-stream) all output", c, floor, base))
        with TmuxControl(server.socket, server.sessions, stream_all=False) as ctl:
            mark = ctl.changes().mark
            m = measure(server, seconds, None, ctl)
            active = len(ctl.changes(mark).panes)
            print(row("(c-muted) activity only", m, floor, base))
        print(f"  c-stream received {streamed / 1e3:.0f} KB in {notes} notifications, "
              f"{c.squad / max(notes, 1) * 1e6:.0f} us of squad CPU each; muted "
              f"(stream_all=False, nobody followed), activity was still seen for {active} of "
              f"{size} panes")
    finally:
        server.close()


def per_command(count: int = 2000) -> None:
    server = Server(1, IDLE, "one")
    try:
        env = dict(os.environ)
        env.pop("TMUX", None)
        cmd = ["display-message", "-p", "hello"]
        n = count // 10
        s0, f0, v0, t0 = self_cpu(), children_cpu(), proc_cpu(server.pid), time.perf_counter()
        for _ in range(n):
            subprocess.run(["tmux", "-L", server.socket, *cmd], capture_output=True, env=env,
                           check=True)
        forked = ((time.perf_counter() - t0) / n, (self_cpu() - s0) / n,
                  (children_cpu() - f0) / n, (proc_cpu(server.pid) - v0) / n)
        with TmuxControl(server.socket, server.sessions) as ctl:
            s0, v0, t0 = self_cpu(), proc_cpu(server.pid), time.perf_counter()
            for _ in range(count):
                ctl.run(cmd)
            one = ((time.perf_counter() - t0) / count, (self_cpu() - s0) / count, 0.0,
                   (proc_cpu(server.pid) - v0) / count)
        print("\nper command (display-message -p), wall and CPU per command in ms:")
        print(f"  {'':<24} {'wall':>7} {'squad':>7} {'forks':>7} {'server':>7} {'total CPU':>9}")
        for label, (wall, me, kids, srv) in (("forked tmux", forked), ("control connection", one)):
            print(f"  {label:<24} {wall * 1e3:7.3f} {me * 1e3:7.3f} {kids * 1e3:7.3f} "
                  f"{srv * 1e3:7.3f} {(me + kids + srv) * 1e3:9.3f}")
        print(f"  (control: each request also carries one display-message sync token; "
              f"{count} requests)")
    finally:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="per mode (default 20)")
    parser.add_argument("--sizes", default="10,50,100", help="pane counts (default 10,50,100)")
    parser.add_argument("--busy", type=int, default=50, help="busy panes (0: skip)")
    args = parser.parse_args()
    print(f"{subprocess.run(['tmux', '-V'], capture_output=True, text=True).stdout.strip()}"
          f", {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    for size in (int(x) for x in args.sizes.split(",") if x):
        capture_modes(size, args.seconds)
    if args.busy:
        busy_modes(args.busy, args.seconds)
    per_command()


if __name__ == "__main__":
    main()
