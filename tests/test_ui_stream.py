"""The UI's output streams over tmux's control connection and an idle squad repaints nothing.

Pilot tests on real squads (real tmux, real processes, a private socket each). They count
events (output notifications, captures, widget repaints, layouts), never time: how fast is
measured by bench/bench_ui.py --terminal.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from textual.screen import Screen
from textual.widget import Widget

from squad import control
from squad.live import Live
from squad.ui.app import SquadApp
from squad.ui.messages import SnapshotReady
from squad.ui.output import OutputView
from squad.ui.sample import sample
from tests.conftest import have_tmux
from tests.test_ui import SIZE, pilot_test, ready, until, up_live

pytestmark = pytest.mark.skipif(not have_tmux(), reason="needs tmux")


@pytest.fixture
def live(socket: str, tmp_path: Path) -> Live:
    return up_live(socket, tmp_path)


@contextmanager
def repaints() -> Iterator[collections.Counter]:
    """Count repaints (``Widget.refresh``) per widget class, and whole-screen layouts."""
    seen: collections.Counter = collections.Counter()
    refresh, layout = Widget.refresh, Screen._refresh_layout

    def counting_refresh(self, *regions, **kwargs):  # noqa: ANN001, ANN002, ANN003
        seen[type(self).__name__] += 1
        if kwargs.get("layout"):
            seen["layout requested"] += 1
        return refresh(self, *regions, **kwargs)

    def counting_layout(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        seen["layout"] += 1
        return layout(self, *args, **kwargs)

    Widget.refresh = counting_refresh  # type: ignore[method-assign]
    Screen._refresh_layout = counting_layout  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        Widget.refresh = refresh  # type: ignore[method-assign]
        Screen._refresh_layout = layout  # type: ignore[method-assign]


async def streaming(pilot, app: SquadApp) -> None:
    """Wait until output streams (the connection may attach a moment after the UI starts;
    until then the feed polls) and no capture is under way."""
    await until(pilot, lambda: app.stream.streaming and not app.stream.busy,
                what="output streaming")


async def ticks(pilot, app: SquadApp, n: int) -> None:
    """Let ``n`` supervisor ticks be shown."""
    for _ in range(n):
        shown = app.snapshot
        await until(pilot, lambda s=shown: app.snapshot is not s, what="a tick")


@pilot_test
async def test_output_streams_without_polling(live: Live) -> None:
    """With the safety capture an hour away, what an agent prints reaches the output panel
    only through the control connection's notifications."""
    app = SquadApp(live, safety=3600)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app, "alpha/dev")
        await streaming(pilot, app)
        assert app.link is None
        pokes = app.stream.counts["pokes"]
        (agent,) = live.resolve("alpha/dev")
        control.send(live, agent, b"stream this line")
        output = app.query_one("#output", OutputView)
        await until(pilot, lambda: "Working on: stream this line" in output.plain(),
                    what="the streamed line in the output panel")
        assert app.stream.counts["pokes"] > pokes
        # The other agents' output is not followed: only the selected pane streams.
        pane = live.panes["alpha/dev"].pane_id
        assert app.stream._followed == {pane}
        # Selecting another agent follows it instead.
        app.act_on("beta/qa", None)
        await until(pilot, lambda: app.stream._followed == {live.panes["beta/qa"].pane_id},
                    what="beta/qa followed instead")
        (qa,) = live.resolve("beta/qa")
        control.send(live, qa, b"and this one")
        await until(pilot, lambda: "Working on: and this one" in output.plain(),
                    what="beta/qa's line")
        await app.action_quit()


@pilot_test
async def test_the_grid_streams_every_tile(live: Live) -> None:
    app = SquadApp(live, safety=3600)
    async with app.run_test(size=(160, 44)) as pilot:
        await ready(pilot, app, "alpha/pm")
        await streaming(pilot, app)
        await pilot.press("g")
        grid = app.query_one("#grid")
        panes = {live.panes[t].pane_id for t in ("alpha/pm", "alpha/dev", "beta/qa")}
        await until(pilot, lambda: app.stream._followed == panes, what="every tile followed")
        (agent,) = live.resolve("beta/qa")
        control.send(live, agent, b"grid line")
        tile = grid.tiles()["beta/qa"]
        await until(pilot, lambda: any("grid line" in t.plain for t in tile.lines),
                    what="the line in beta/qa's tile")
        await pilot.press("g")
        await until(pilot, lambda: app.stream._followed == {live.panes["alpha/pm"].pane_id},
                    what="back to following the selected agent only")
        await app.action_quit()


@pilot_test
async def test_an_idle_squad_repaints_nothing_but_its_clock(live: Live) -> None:
    """Idle agents print nothing: between ticks there is no capture, and a tick repaints
    neither the output, nor the agent tree, nor anything that needs a layout."""
    app = SquadApp(live, safety=3600)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app, "alpha/pm")
        await until(pilot, lambda: all(r.status == "idle" for r in app.snapshot.agents),
                    timeout=20, what="every agent idle")
        await streaming(pilot, app)
        await ticks(pilot, app, 2)  # settled: labels and titles show idle
        captures = app.stream.counts["captures"]
        with repaints() as seen:
            await ticks(pilot, app, 3)
        assert app.stream.counts["captures"] == captures
        assert seen["OutputView"] == 0 and seen["AgentTree"] == 0, seen
        assert seen["layout"] == 0 and seen["layout requested"] == 0, seen
        await app.action_quit()


@pilot_test
async def test_the_same_snapshot_again_repaints_nothing() -> None:
    snap, hist = sample()
    app = SquadApp(frozen=snap, history=hist)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.post_message(SnapshotReady(snap, hist))
        await pilot.pause()
        with repaints() as seen:
            app.post_message(SnapshotReady(snap, hist))
            await pilot.pause()
            await pilot.pause()
        assert not seen, seen


@pilot_test
async def test_the_header_says_when_output_is_polled(live: Live) -> None:
    """A control connection that cannot attach (here: told to watch a session that does not
    exist) makes the UI poll, and say so; output still arrives."""
    app = SquadApp(live)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app, "alpha/dev")
        title = app.query_one("#title")
        assert "polling" not in str(title.render())
        live.tmux.control.watch(["no-such-team"], wait=5)
        await until(pilot, lambda: "polling: no-such-team" in str(title.render()),
                    what="the header saying output is polled")
        (agent,) = live.resolve("alpha/dev")
        control.send(live, agent, b"polled line")
        output = app.query_one("#output", OutputView)
        await until(pilot, lambda: "Working on: polled line" in output.plain(),
                    what="the line, polled")
        assert not app.stream.streaming
        await app.action_quit()


def test_frozen_apps_post_nothing_from_threads() -> None:
    """No squad, no workers: the frozen screen starts no feed."""
    snap, hist = sample()
    app = SquadApp(frozen=snap, history=hist)
    assert app.stream is None and app.ticks is None

    async def scenario() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            assert not app.workers

    asyncio.run(scenario())


@pilot_test
async def test_an_observing_ui_streams_too(live: Live) -> None:
    """Another supervisor holds the squad's lock: the UI opens the control connection
    itself, and output still streams."""
    from squad.supervisor import Supervisor
    from squad.tmux import Tmux

    headless = Supervisor(Live.open(Tmux(live.tmux.socket), live.squad.name), by="test")
    headless.start()
    try:
        app = SquadApp(live, safety=3600)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot, app, "alpha/dev")
            assert app.observing
            await streaming(pilot, app)
            assert app.link is None
            (agent,) = live.resolve("alpha/dev")
            control.send(live, agent, b"observed line")
            output = app.query_one("#output", OutputView)
            await until(pilot, lambda: "Working on: observed line" in output.plain(),
                        what="the line, streamed while observing")
            await app.action_quit()
    finally:
        headless.close()
