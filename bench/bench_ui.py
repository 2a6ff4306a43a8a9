"""The UI's responsiveness and cost, in process and in a real terminal.

In process (frozen data, no squad): how long from a keypress to its effect while snapshots
of ``--agents`` agents arrive from a thread and the selected agent's 1000 lines of output
are re-sent every 150 ms (the keypress latency is the time from sending the key to the
tree's cursor having moved; it includes waiting behind whatever the event loop was doing).
``--live`` runs the real app on a real squad of demo agents in process and also measures
how soon text sent to an agent shows in the output panel.

``--terminal`` measures what issue 10 asks of the UI, from outside, with the real ``squad``
command running in a real terminal (a pane of a tmux server of this benchmark's own, read
with ``capture-pane`` over a control connection), on a real squad on a private socket;
each figure for this checkout ("new") and, in the same run, for the UI of ``--baseline``
(default: the polling UI, the commit before streaming; extracted with ``git archive``):

  (a) print -> screen: a line written to an agent's terminal (what the agent printing it
      does) until it is on the UI's screen; p50/p95 with 10 and with 100 agents.
  (b) pause key -> stopped: ``p`` reaching the UI's terminal until every process of the
      selected agent's tree is stopped (/proc), with 100 agents of which 50 print a line
      every 100 ms (the selected one among them); p95. ``r`` resumes between samples.
  (c) CPU of the UI process (its threads and the tmux processes it forked and reaped) over
      ``--seconds`` (default 60) with 10/50/100/200 idle demo agents and with 50 agents
      printing every 100 ms, the agents' tmux server's CPU meanwhile, and the UI's RSS.

Run: python bench/bench_ui.py [--agents 50] [--presses 200] [--live]
     python bench/bench_ui.py --terminal [--seconds 60] [--sizes 10,50,100,200]
                              [--baseline REV | --no-baseline] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from textual import events  # noqa: E402

from squad.ui.app import SquadApp  # noqa: E402
from squad.ui.messages import OutputReady, SnapshotReady  # noqa: E402
from squad.ui.render import AnsiLines  # noqa: E402
from squad.ui.sample import SCREEN, sample  # noqa: E402


def _feeder(app: SquadApp, agents: int, interval: float, stop: threading.Event) -> None:
    """Post a fresh 50-agent snapshot every ``interval`` s and the selected agent's output
    every 150 ms, from a thread, as the workers do."""
    decoder = AnsiLines()
    output = "\n".join(SCREEN.format(seed=i, task=f"task {i}") for i in range(125))
    tick = 0
    next_snap = 0.0
    while not stop.is_set():
        now = time.monotonic()
        if now >= next_snap:
            tick += 1
            snap, hist = sample(agents, tick)
            app.post_message(SnapshotReady(snap, hist))
            next_snap = now + interval
        target = app.selected_agent
        if target:
            text = output + f"\nline {tick} {now:.3f}"
            lines = decoder.decode(text)
            app.post_message(OutputReady(target, lines, max(t.cell_len for t in lines)))
        stop.wait(0.15)


async def _measure(app: SquadApp, presses: int, give_up: float = 5.0) -> list[float]:
    latencies = []
    driver = app._driver
    assert driver is not None
    rng = random.Random(1)
    for i in range(presses):
        tree = app.tree
        before = tree.cursor_line
        key = "down" if (i // 8) % 2 == 0 else "up"
        t0 = time.perf_counter()
        driver.send_message(events.Key(key, None))
        deadline = t0 + give_up
        while tree.cursor_line == before:
            if time.perf_counter() > deadline:
                raise SystemExit(f"key {key!r} was not acted on within {give_up:g} s")
            await asyncio.sleep(0.0005)
        latencies.append(time.perf_counter() - t0)
        await asyncio.sleep(rng.uniform(0.02, 0.12))  # land at every phase of the ticks
    return latencies


async def _output_latencies(app: SquadApp, live, n: int) -> list[float]:
    """Seconds from sending text to an agent (paste and Enter through tmux) to the output
    panel showing the agent's echo of it: an upper bound of print-to-screen latency."""
    from squad import control
    from squad.ui.output import OutputView

    target = app.selected_agent
    assert target is not None
    (agent,) = live.resolve(target)
    output = app.query_one("#output", OutputView)
    out = []
    rng = random.Random(2)
    for i in range(n):
        word = f"marker{i:03d}"
        t0 = time.perf_counter()
        await asyncio.to_thread(control.send, live, agent, word.encode())
        while word not in output.plain():
            if time.perf_counter() - t0 > 5:
                raise SystemExit(f"{word} did not show within 5 s")
            await asyncio.sleep(0.002)
        out.append(time.perf_counter() - t0)
        await asyncio.sleep(rng.uniform(0.2, 0.5))  # every phase of the 150 ms capture
    return out


async def key_latencies(agents: int = 50, presses: int = 100, feed_interval: float = 1.0,
                        size: tuple[int, int] = (160, 50), give_up: float = 5.0
                        ) -> list[float]:
    """Key-to-action latencies (seconds) on frozen data updated from a thread."""
    snap, hist = sample(agents)
    app = SquadApp(frozen=snap, history=hist)
    stop = threading.Event()
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        feeder = threading.Thread(target=_feeder, args=(app, agents, feed_interval, stop),
                                  daemon=True)
        feeder.start()
        try:
            await asyncio.sleep(0.5)
            return await _measure(app, presses, give_up)
        finally:
            stop.set()
            feeder.join(5)


async def live_latencies(agents: int, presses: int, size: tuple[int, int] = (160, 50)
                         ) -> tuple[list[float], list[float]]:
    """The same on a real squad of demo agents (the app's own workers feed it); also how
    soon the output panel shows what an agent printed."""
    from squad import control, layout, procs
    from squad.live import Live
    from squad.tmux import Tmux

    socket = f"squad-bench-{uuid.uuid4().hex[:8]}"
    home = tempfile.mkdtemp(prefix="squad-bench-")
    os.environ["SQUAD_HOME"] = home
    per_team = 5
    lines = ['name = "bench"', "[defaults]",
             f'command = ["{sys.executable}", "-m", "squad.demo_agent", "--work", "2"]',
             "worktree = false", "grace = 1.0"]
    for t in range(agents // per_team):
        lines += ["[[teams]]", f'name = "team{t:02d}"']
        for a in range(per_team):
            lines += ["[[teams.agents]]", f'name = "agent{a}"']
    path = Path(home) / "bench.toml"
    tmux = Tmux(socket)
    # One team at a time: `squad up` of 50 agents at once exceeds tmux's command size
    # (reported; up is idempotent, so each call only adds the new team).
    per_call = 2 + 2 * per_team
    header = 5
    try:
        for t in range(1, agents // per_team + 1):
            path.write_text("\n".join(lines[: header + t * per_call]) + "\n")
            squad = layout.load(path)
            control.up(squad, tmux)
        live = Live.open(tmux, squad.name)
        app = SquadApp(live)
        async with app.run_test(size=size) as pilot:
            deadline = time.monotonic() + 30
            while app.snapshot is None or not all(r.pid for r in app.snapshot.agents):
                if time.monotonic() > deadline:
                    raise SystemExit(f"the squad did not come up: {app.problem}")
                await pilot.pause(0.1)
            # Keep some agents busy so that the screens change and the tick has work.
            for agent in live.squad.agents()[::3]:
                control.send(live, agent, b"build the thing")
            await asyncio.sleep(1.0)
            keys = await _measure(app, presses)
            return keys, await _output_latencies(app, live, 40)
    finally:
        procs.terminate_trees([p.pid for p in tmux.panes() if p.pid], grace=2.0)
        tmux.run(["kill-server"], check=False)
        tmpdir = os.environ.get("TMUX_TMPDIR", "/tmp")
        Path(tmpdir, f"tmux-{os.getuid()}", socket).unlink(missing_ok=True)
        shutil.rmtree(home, ignore_errors=True)


# -- in a real terminal ---------------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
BASELINE = "59a56c8"  # the polling UI: the house split, behaviour as before streaming
PRINTER = ("import itertools, sys, time\n"
           "for i in itertools.count():\n"
           "    print(f'working: step {i} of the plan, reading files', flush=True)\n"
           "    time.sleep(0.1)\n")


def pct(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def proc_stat(pid: int) -> tuple[float, float, int]:
    """(CPU seconds of the process, CPU seconds of its reaped children, RSS bytes)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    own = (int(fields[11]) + int(fields[12])) / TICK
    kids = (int(fields[13]) + int(fields[14])) / TICK
    return own, kids, int(fields[21]) * PAGE


def tree_states(root: int) -> list[str]:
    """/proc states of every process below ``root`` (the agent's tree under its wrapper)."""
    from squad import procs

    table = procs.scan()
    out = []
    for pid in table.tree(root):
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                out.append(f.read().rsplit(b")", 1)[1].split()[0].decode())
        except OSError:
            pass
    return out


class Failed(Exception):
    """A measurement that could not be made (the UI never showed its agents, say)."""


class Terminal:
    """A terminal of the benchmark's own: one pane of a private tmux server, read with
    ``capture-pane`` over a control connection and typed into with ``send-keys``."""

    def __init__(self, argv: list[str], env: dict[str, str], size: tuple[int, int]) -> None:
        from squad.tmux import Tmux
        from squad.tmux_control import TmuxControl

        self.socket = f"squad-bench-term-{uuid.uuid4().hex[:6]}"
        self.tmux = Tmux(self.socket)
        # Started in an empty directory: `python -m` puts the current directory first on
        # sys.path, and the checkout's squad must not shadow the code under test.
        self.cwd = tempfile.mkdtemp(prefix="squad-bench-cwd-")
        args = ["new-session", "-d", "-s", "term", "-c", self.cwd, "-x", str(size[0]),
                "-y", str(size[1])]
        for key, value in env.items():
            args += ["-e", f"{key}={value}"]
        clean = dict(os.environ)
        clean.pop("TMUX", None)
        import subprocess

        subprocess.run(["tmux", "-L", self.socket, "-f", "/dev/null", *args, "--", *argv],
                       check=True, env=clean)
        pane = self.tmux.panes()[0]
        self.pane = pane.pane_id
        self.pid = pane.pid
        self.control = TmuxControl(self.socket, ["term"], stream_all=False)
        self.control.open(wait=5.0)

    def screen(self) -> str:
        return self.control.capture([self.pane]).get(self.pane, "")

    def keys(self, *keys: str) -> None:
        self.control.run(["send-keys", "-t", self.pane, *keys])

    def wait(self, check, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                screen = self.screen().strip().splitlines()
                raise Failed(f"no {what} within {timeout:g} s; the terminal's first line: "
                             f"{screen[0].strip() if screen else '(empty)'}")
            time.sleep(0.01)

    def close(self) -> None:
        self.control.close()
        self.tmux.kill_server()
        shutil.rmtree(self.cwd, ignore_errors=True)


class Squad:
    """A squad on a private socket: ``printers`` agents printing a line every 100 ms first,
    then idle demo agents, in teams of ten."""

    def __init__(self, home: Path, idle: int, printers: int = 0) -> None:
        from squad import control, layout
        from squad.live import Live
        from squad.tmux import Tmux

        self.socket = f"squad-bench-ui-{uuid.uuid4().hex[:6]}"
        self.tmux = Tmux(self.socket)
        demo = json.dumps([sys.executable, "-m", "squad.demo_agent", "--work", "1",
                           "--ask", "0"])
        printer = json.dumps([sys.executable, "-c", PRINTER])
        lines = ['name = "bench"', "[defaults]", f"command = {demo}", "worktree = false",
                 "grace = 1.0"]
        total = idle + printers
        for t in range((total + 9) // 10):
            lines += ["[[teams]]", f'name = "team{t:02d}"']
            for a in range(t * 10, min(total, t * 10 + 10)):
                lines += ["[[teams.agents]]", f'name = "a{a:03d}"']
                if a < printers:
                    lines.append(f"command = {printer}")
        path = home / f"bench-{self.socket}.toml"
        path.write_text("\n".join(lines) + "\n")
        squad = layout.load(path)
        control.up(squad, self.tmux)
        self.live = Live.open(self.tmux, squad.name)
        self.server_pid = int(self.tmux.run(["display-message", "-p", "#{pid}"]).strip())
        first = squad.agents()[0]
        self.first = first.target
        deadline = time.monotonic() + 60
        while True:
            self.live.refresh()
            pane = self.live.panes.get(self.first)
            if pane is not None and pane.pid and tree_states(pane.pid):
                break
            if time.monotonic() > deadline:
                raise SystemExit("the squad's first agent did not start")
            time.sleep(0.1)
        self.first_pane = pane

    def tty(self) -> str:
        return self.tmux.run(["display-message", "-p", "-t", self.first_pane.pane_id,
                              "#{pane_tty}"]).strip()

    def close(self) -> None:
        from squad import procs

        procs.terminate_trees([p.pid for p in self.tmux.panes() if p.pid], grace=2.0)
        self.tmux.kill_server()


def ui_env(code: Path, home: Path) -> dict[str, str]:
    return {"PYTHONPATH": str(code), "SQUAD_HOME": str(home), "SQUAD_NOTIFY": "0",
            "TERM": "xterm-256color", "HOME": os.environ.get("HOME", str(home))}


class UI:
    """The real ``squad`` command on a squad, in a terminal of its own."""

    def __init__(self, squad: Squad, code: Path, home: Path, size=(160, 50)) -> None:
        t0 = time.monotonic()
        self.term = Terminal([sys.executable, "-m", "squad", "-L", squad.socket],
                             ui_env(code, home), size)
        self.pid = self.term.pid
        try:
            self.term.wait(lambda: "Agents" in (s := self.term.screen()) and "team00" in s,
                           120, "agents on screen")
        except Failed:
            self.close()
            raise
        self.started = time.monotonic() - t0
        """Seconds from starting `squad` to its agents on screen."""

    def close(self) -> None:
        try:
            self.term.keys("q")
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and os.path.exists(f"/proc/{self.pid}"):
                try:
                    with open(f"/proc/{self.pid}/stat", "rb") as f:
                        if f.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                            break
                except OSError:
                    break
                time.sleep(0.05)
        finally:
            self.term.close()


def print_latency(ui: UI, squad: Squad, samples: int, timeout: float = 10) -> list[float]:
    """(a): seconds from a line written to the first agent's terminal to the line on the
    UI's screen."""
    rng = random.Random(3)
    run = uuid.uuid4().hex[:6]  # the agent's screen still shows the markers of other runs
    fd = os.open(squad.tty(), os.O_WRONLY | os.O_NOCTTY)
    out = []
    try:
        for i in range(samples):
            mark = f"MARK{run}x{i:04d}"
            assert mark not in ui.term.screen()
            t0 = time.perf_counter()
            os.write(fd, f"{mark}\r\n".encode())
            deadline = t0 + timeout
            while mark not in ui.term.screen():
                if time.perf_counter() > deadline:
                    raise Failed(f"{mark} did not show within {timeout:g} s")
                time.sleep(0.001)
            out.append(time.perf_counter() - t0)
            time.sleep(rng.uniform(0.15, 0.45))  # land at every phase of ticks and polls
    finally:
        os.close(fd)
    return out


def pause_latency(ui: UI, squad: Squad, samples: int) -> list[float]:
    """(b): seconds from ``p`` sent to the UI's terminal to every process of the selected
    agent's tree stopped; ``r`` resumes it before the next sample."""
    root = squad.first_pane.pid
    rng = random.Random(4)
    out = []
    for _ in range(samples):
        t0 = time.perf_counter()
        ui.term.keys("p")
        deadline = t0 + 10
        while not (states := tree_states(root)) or any(s != "T" for s in states):
            if time.perf_counter() > deadline:
                raise Failed("the pause did not take effect within 10 s")
            time.sleep(0.0005)
        out.append(time.perf_counter() - t0)
        time.sleep(0.2)
        ui.term.keys("r")
        deadline = time.monotonic() + 10
        while any(s == "T" for s in tree_states(root)):
            if time.monotonic() > deadline:
                raise Failed("the resume did not take effect within 10 s")
            time.sleep(0.005)
        time.sleep(rng.uniform(0.2, 0.5))
    return out


def cpu_usage(ui: UI, squad: Squad, seconds: float) -> tuple[float, float, int]:
    """(c): % of one core used by the UI (itself and its reaped children) and by the
    agents' tmux server over ``seconds``, and the UI's RSS at the end."""
    own0, kids0, _ = proc_stat(ui.pid)
    server0, _, _ = proc_stat(squad.server_pid)
    t0 = time.monotonic()
    time.sleep(seconds)
    wall = time.monotonic() - t0
    own1, kids1, rss = proc_stat(ui.pid)
    server1, _, _ = proc_stat(squad.server_pid)
    return (100 * ((own1 - own0) + (kids1 - kids0)) / wall, 100 * (server1 - server0) / wall,
            rss)


def baseline_code(rev: str, into: Path) -> Path:
    """The squad package as it was at ``rev``, extracted (nothing in the work tree moves)."""
    import subprocess

    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "squad"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def terminal_suite(args: argparse.Namespace) -> None:
    import signal

    def interrupted(*_: object) -> None:
        raise KeyboardInterrupt  # so that every squad and terminal is cleaned up

    signal.signal(signal.SIGTERM, interrupted)
    home = Path(tempfile.mkdtemp(prefix="squad-bench-ui-"))
    os.environ["SQUAD_HOME"] = str(home)
    os.environ["SQUAD_NOTIFY"] = "0"
    modes: dict[str, Path] = {"new": ROOT}
    base_dir = None
    if not args.no_baseline:
        base_dir = Path(tempfile.mkdtemp(prefix="squad-bench-base-"))
        modes = {"baseline": baseline_code(args.baseline, base_dir), "new": ROOT}
    sizes = [int(x) for x in args.sizes.split(",")]
    samples = 12 if args.quick else 40
    seconds = min(args.seconds, 10.0) if args.quick else args.seconds
    settle = 5.0 if args.quick else 10.0
    results: dict[str, dict[str, object]] = {m: {} for m in modes}
    print(f"UI in a real terminal (160x50), {os.cpu_count()} cores, load "
          f"{os.getloadavg()[0]:.2f}; modes: " + ", ".join(
              f"{m} = {'this checkout' if m == 'new' else args.baseline}" for m in modes),
          flush=True)
    def run(mode: str, code: Path, squad: Squad, key: str, measure) -> object:  # noqa: ANN001
        """One measurement of one mode, or None (said) when it could not be made."""
        try:
            ui = UI(squad, code, home)
        except Failed as exc:
            print(f"  {key} {mode:8}: {exc}", flush=True)
            return None
        try:
            results[mode].setdefault("started", []).append(ui.started)
            return measure(ui)
        except Failed as exc:
            print(f"  {key} {mode:8}: {exc}", flush=True)
            return None
        finally:
            ui.close()

    def a(ui: UI, squad: Squad) -> list[float]:
        print_latency(ui, squad, 1, timeout=30)  # the first agent's output is on screen
        time.sleep(2.0)
        return print_latency(ui, squad, samples)

    def b(ui: UI, squad: Squad) -> list[float]:
        time.sleep(3.0)
        return pause_latency(ui, squad, samples)

    def c(ui: UI, squad: Squad) -> tuple[float, float, int]:
        time.sleep(settle)
        return cpu_usage(ui, squad, seconds)

    try:
        for n in (10, 100):
            squad = Squad(home, idle=n)
            try:
                for mode, code in modes.items():
                    lat = run(mode, code, squad, "(a)", lambda ui, s=squad: a(ui, s))
                    results[mode][f"a{n}"] = lat
                    if lat:
                        print(f"  (a) {mode:8} {n:3} agents: print -> screen p50 "
                              f"{pct(lat, 50) * 1000:6.1f} ms, p95 "
                              f"{pct(lat, 95) * 1000:6.1f} ms", flush=True)
            finally:
                squad.close()
        squad = Squad(home, idle=50, printers=50)
        try:
            for mode, code in modes.items():
                lat = run(mode, code, squad, "(b)", lambda ui, s=squad: b(ui, s))
                results[mode]["b"] = lat
                if lat:
                    print(f"  (b) {mode:8} 100 agents, 50 printing: pause key -> stopped p50 "
                          f"{pct(lat, 50) * 1000:6.1f} ms, p95 {pct(lat, 95) * 1000:6.1f} ms",
                          flush=True)
        finally:
            squad.close()
        configs = [(f"{n} idle", n, 0) for n in sizes] + [("50 printing", 0, 50)]
        for label, idle, printers in configs:
            squad = Squad(home, idle=idle, printers=printers)
            try:
                for mode, code in modes.items():
                    got = run(mode, code, squad, "(c)", lambda ui, s=squad: c(ui, s))
                    results[mode][f"c {label}"] = got
                    if got:
                        cpu, server, rss = got
                        print(f"  (c) {mode:8} {label:12}: UI {cpu:5.2f}% of a core, tmux "
                              f"server {server:5.2f}%, UI RSS {rss / 2**20:5.1f} MB over "
                              f"{seconds:g} s", flush=True)
            finally:
                squad.close()
    finally:
        shutil.rmtree(home, ignore_errors=True)
        if base_dir is not None:
            shutil.rmtree(base_dir, ignore_errors=True)
    summary(results, modes)


def summary(results: dict[str, dict[str, object]], modes: dict[str, Path]) -> None:
    """The figures side by side, with baseline/new ratios (higher is better for new)."""
    new = results["new"]
    base = results.get("baseline")

    def cell(value: float | None, unit: str) -> str:
        return f"{value:8.1f} {unit}" if value is not None else "  failed  "

    def ratio(b: float | None, n: float | None) -> str:
        return f"{b / n:6.1f}x" if b is not None and n else "     -"

    def pick(data: dict | None, key: str, q: float | None = None) -> float | None:
        value = (data or {}).get(key)
        if value is None:
            return None
        return pct(value, q) * 1000 if q is not None else value  # type: ignore[arg-type]

    print("\nfigure                                   " + (
        "baseline        new   baseline/new" if base else "     new"))
    rows = [(f"(a) print->screen {n:3} agents p{q}", f"a{n}", q)
            for n in (10, 100) for q in (50, 95)]
    rows += [(f"(b) pause key->stopped 100/50 p{q}", "b", q) for q in (50, 95)]
    for label, key, q in rows:
        nv = pick(new, key, q)
        line = f"{label:39}"
        if base is not None:
            bv = pick(base, key, q)
            line += f"{cell(bv, 'ms')} {cell(nv, 'ms')}   {ratio(bv, nv)}"
        else:
            line += cell(nv, "ms")
        print(line)
    for key in [k for k in new if k.startswith("c ")]:
        got, bgot = new.get(key), (base or {}).get(key)
        label = f"(c) {key[2:]:12} UI CPU, % of a core"
        cpu = got[0] if got else None  # type: ignore[index]
        bcpu = bgot[0] if bgot else None  # type: ignore[index]
        extra = ""
        if got:
            extra = f"   RSS {got[2] / 2**20:.0f} MB, tmux server {got[1]:.2f}%"  # type: ignore[index]
            if bgot:
                extra = (f"   RSS {bgot[2] / 2**20:.0f} -> {got[2] / 2**20:.0f} MB, tmux server "
                         f"{bgot[1]:.2f}% -> {got[1]:.2f}%")  # type: ignore[index]
        if base is not None:
            print(f"{label:39}{cell(bcpu, '% ')} {cell(cpu, '% ')}   {ratio(bcpu, cpu)}{extra}")
        else:
            print(f"{label:39}{cell(cpu, '% ')}{extra}")
    for mode, data in results.items():
        started = data.get("started") or []
        if started:
            print(f"{mode}: `squad` to agents on screen: median "
                  f"{statistics.median(started):.1f} s over {len(started)} starts")


def report(name: str, latencies: list[float], what: str = "keypresses") -> None:
    ms = sorted(x * 1000 for x in latencies)
    print(f"{name}: {len(ms)} {what}, median {statistics.median(ms):.1f} ms, "
          f"p95 {pct(ms, 95):.1f} ms, max {ms[-1]:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--presses", type=int, default=200)
    parser.add_argument("--live", action="store_true", help="a real squad of demo agents")
    parser.add_argument("--terminal", action="store_true",
                        help="issue 10's figures from outside, in a real terminal")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--sizes", default="10,50,100,200")
    parser.add_argument("--baseline", default=BASELINE)
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--quick", action="store_true", help="fewer samples, 10 s windows")
    args = parser.parse_args()
    if args.terminal:
        terminal_suite(args)
        return
    report(f"frozen data, {args.agents} agents, snapshot every 1 s",
           asyncio.run(key_latencies(args.agents, args.presses, 1.0)))
    report(f"frozen data, {args.agents} agents, snapshot every 100 ms",
           asyncio.run(key_latencies(args.agents, args.presses, 0.1)))
    if args.live:
        keys, output = asyncio.run(live_latencies(args.agents, args.presses))
        report(f"live squad, {args.agents} demo agents", keys)
        report("live squad, text sent to an agent -> in the output panel", output, "samples")


if __name__ == "__main__":
    main()
