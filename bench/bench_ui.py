"""UI responsiveness with 50 agents: how long from a keypress to its effect.

Keys are sent the way the terminal driver sends them, while snapshots of 50 agents arrive
from a thread (like the supervisor's worker) and the selected agent's 1000 lines of
output are re-sent every 150 ms (like the capture worker). The latency is the time from
sending the key to the tree's cursor having moved (the action ran); it includes waiting
behind whatever the event loop was doing.

Frozen data by default; ``--live`` runs the real app on a real squad of 50 demo agents on
a private tmux socket (supervisor tick, captures and all), then removes it, and also
measures how soon text an agent received shows in the output panel.

Run: python bench/bench_ui.py [--agents 50] [--presses 200] [--live]
"""

from __future__ import annotations

import argparse
import asyncio
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


def report(name: str, latencies: list[float], what: str = "keypresses") -> None:
    ms = sorted(x * 1000 for x in latencies)
    p95 = ms[min(len(ms) - 1, int(round(0.95 * len(ms))) - 1)]
    print(f"{name}: {len(ms)} {what}, median {statistics.median(ms):.1f} ms, "
          f"p95 {p95:.1f} ms, max {ms[-1]:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--presses", type=int, default=200)
    parser.add_argument("--live", action="store_true", help="a real squad of demo agents")
    args = parser.parse_args()
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
