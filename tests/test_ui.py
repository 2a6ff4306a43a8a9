"""The UI on a real squad: Pilot presses the real keys, the tests check real processes,
panes and screens on a private tmux socket. Every wait polls a condition with a deadline."""

from __future__ import annotations

import asyncio
import functools
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from squad import control, layout, procs
from squad.errors import SquadError
from squad.live import Live
from squad.tmux import Tmux
from squad.ui.app import SquadApp, run_ui
from squad.ui.dialogs import ConfirmDialog, DispatchDialog, HelpScreen, SendDialog
from squad.ui.output import OutputView
from squad.ui.sample import sample
from squad.ui.task_queue import QueueTasks
from tests.conftest import ROOT, demo_cmd, have_tmux, write_layout

pytestmark = pytest.mark.skipif(not have_tmux(), reason="needs tmux")

SIZE = (120, 40)


def pilot_test(fn):
    """Run an async Pilot scenario as a plain test (no async plugin needed)."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        return asyncio.run(fn(*args, **kwargs))

    return run


def layout_text(name: str = "uit", *extra: str) -> str:
    return f"""
name = "{name}"

[defaults]
command = {demo_cmd(*extra)}
worktree = false
grace = 2.0

[[teams]]
name = "alpha"

[[teams.agents]]
name = "pm"
role = "PM"

[[teams.agents]]
name = "dev"
role = "Dev"

[[teams]]
name = "beta"

[[teams.agents]]
name = "qa"
role = "QA"
"""


def up_live(socket: str, tmp_path: Path, text: str | None = None) -> Live:
    """The three-agent demo squad (or the layout ``text``) up on the test's socket."""
    squad = layout.load(write_layout(tmp_path / "ui.toml", text or layout_text()))
    tmux = Tmux(socket)
    control.up(squad, tmux)
    return Live.open(tmux, squad.name)


@pytest.fixture
def live(socket: str, tmp_path: Path) -> Live:
    return up_live(socket, tmp_path)


async def until(pilot, check: Callable[[], object], timeout: float = 10.0,
                what: str = "condition"):
    """Let the app run until ``check()`` is truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await pilot.pause(0.05)


def tree_states(live: Live, target: str) -> list[str]:
    """The /proc states of every process of an agent (not its wrapper)."""
    live.refresh()
    pane = live.panes[target]
    table = procs.scan()
    return [table.procs[p].state for p in table.tree(pane.pid)
            if table.procs[p].state not in procs.GONE_STATES]


def all_stopped(live: Live, target: str) -> bool:
    states = tree_states(live, target)
    return bool(states) and all(s in procs.STOPPED_STATES for s in states)


def none_stopped(live: Live, target: str) -> bool:
    states = tree_states(live, target)
    return bool(states) and not any(s in procs.STOPPED_STATES for s in states)


def screen_of(live: Live, target: str) -> str:
    (agent,) = live.resolve(target)
    return control.capture(live, agent, lines=200)


def notes(app: SquadApp) -> str:
    return "\n".join(f"{n.title}: {n.message}" for n in app._notifications)


async def ready(pilot, app: SquadApp, target: str = "alpha/pm") -> None:
    """Wait for the first snapshot and the demo prompt in the output, then select target."""
    await until(pilot, lambda: app.snapshot is not None, what="first snapshot")
    await until(pilot, lambda: all(r.pid for r in app.snapshot.agents), what="agents running")
    app.act_on(target, None)
    output = app.query_one("#output", OutputView)
    await until(pilot, lambda: output.target == target and "demo>" in output.plain(),
                what=f"{target}'s prompt in the output panel")


async def type_text(pilot, text: str) -> None:
    for ch in text:
        await pilot.press(ch)


@pilot_test
async def test_output_panel_shows_output_literally(live: Live) -> None:
    """What an agent prints reaches the output panel (how fast: bench/bench_ui.py --live)."""
    app = SquadApp(live)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app, "alpha/dev")
        output = app.query_one("#output", OutputView)
        (agent,) = live.resolve("alpha/dev")
        control.send(live, agent, b"say [bold]loud[/] and [/] plain")
        await until(pilot, lambda: "Working on: say [bold]loud[/] and [/] plain"
                    in output.plain(), timeout=10, what="the task line in the output")
        # Painted literally: the brackets are on screen, not turned into styles.
        svg = app.export_screenshot()
        assert "[bold]loud[/]" in svg.replace("&#160;", " ")
        await app.action_quit()


@pilot_test
async def test_pause_stops_every_process_and_resume_runs_them(live: Live) -> None:
    app = SquadApp(live)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app, "alpha/dev")
        await pilot.press("p")
        await until(pilot, lambda: all_stopped(live, "alpha/dev"), what="alpha/dev stopped")
        await until(pilot, lambda: "paused" in notes(app), what="a pause notification")
        await until(pilot, lambda: app.snapshot.agent("alpha/dev").status == "paused",
                    what="status paused")
        assert none_stopped(live, "alpha/pm")  # only the selected agent
        await pilot.press("r")
        await until(pilot, lambda: none_stopped(live, "alpha/dev"), what="alpha/dev running")
        await until(pilot, lambda: "resumed" in notes(app), what="a resume notification")
        await app.action_quit()


@pilot_test
async def test_team_pause_and_resume(live: Live) -> None:
    app = SquadApp(live)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app, "alpha/pm")
        await pilot.press("P")
        await until(pilot, lambda: all_stopped(live, "alpha/pm") and all_stopped(
            live, "alpha/dev"), what="team alpha stopped")
        assert none_stopped(live, "beta/qa")
        await pilot.press("U")
        await until(pilot, lambda: none_stopped(live, "alpha/pm") and none_stopped(
            live, "alpha/dev"), what="team alpha running")
        await app.action_quit()


@pilot_test
async def test_stop_asks_then_the_agent_is_gone(live: Live) -> None:
    app = SquadApp(live)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app, "beta/qa")
        pid = live.panes["beta/qa"].pid
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="confirm")
        await pilot.press("n")  # cancelling changes nothing
        await until(pilot, lambda: not isinstance(app.screen, ConfirmDialog), what="closed")
        assert none_stopped(live, "beta/qa")
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="confirm")
        await pilot.press("y")

        def dead() -> bool:
            live.refresh()
            pane = live.panes.get("beta/qa")
            return pane is not None and pane.dead

        await until(pilot, dead, what="beta/qa's pane dead")
        assert not procs.scan().tree(pid)
        await until(pilot, lambda: "stopped" in notes(app), what="a stop notification")
        await until(pilot, lambda: app.snapshot.agent("beta/qa").status == "exited",
                    what="status exited")
        await app.action_quit()


@pilot_test
async def test_restart_asks_then_starts_a_new_agent(live: Live) -> None:
    app = SquadApp(live)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app, "alpha/pm")
        old = app.snapshot.agent("alpha/pm").pid
        await pilot.press("R")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="confirm")
        await pilot.press("y")
        await until(pilot, lambda: "restarted" in notes(app), what="a restart notification")
        await until(pilot, lambda: (row := app.snapshot.agent("alpha/pm")).pid not in (
            None, old) and row.state == "running", what="a new agent process")
        await app.action_quit()


@pilot_test
async def test_input_line_reaches_the_agent(live: Live) -> None:
    app = SquadApp(live)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app, "alpha/pm")
        await pilot.press("i")
        await until(pilot, lambda: isinstance(app.screen, SendDialog), what="send dialog")
        await type_text(pilot, "hello from the ui")
        await pilot.press("enter")
        await until(pilot, lambda: "Working on: hello from the ui" in screen_of(
            live, "alpha/pm"), what="the line on the agent's screen")
        await until(pilot, lambda: "sent" in notes(app), what="a send notification")
        output = app.query_one("#output", OutputView)
        await until(pilot, lambda: "hello from the ui" in output.plain(), timeout=3,
                    what="the line in the output panel")
        await app.action_quit()


@pilot_test
async def test_dispatch_form_queues_a_task_that_the_ui_dispatches(live: Live) -> None:
    app = SquadApp(live)
    assert isinstance(app.tasks, QueueTasks)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app, "beta/qa")
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, DispatchDialog), what="form")
        await type_text(pilot, "write the tests")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: "queued task #1" in notes(app), what="a notification")
        # The UI holds the supervisor lock, so its ticks hand the task to an idle agent.
        await until(pilot, lambda: any("write the tests" in screen_of(live, t)
                                       for t in ("alpha/pm", "alpha/dev", "beta/qa")),
                    timeout=20, what="the task on an agent's screen")
        await pilot.press("t")
        table = app.query_one("#task-table")
        await until(pilot, lambda: table.row_count == 1, what="the task in the task panel")
        status = str(table.get_row_at(0)[2])
        assert status in ("assigned", "in_progress", "review", "done"), status
        await app.action_quit()


@pilot_test
async def test_failed_action_says_why(live: Live) -> None:
    app = SquadApp(live)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app, "beta/qa")
        (agent,) = live.resolve("beta/qa")
        control.stop(live, [agent], grace=1)
        await until(pilot, lambda: app.snapshot.agent("beta/qa").status == "exited",
                    what="beta/qa exited")
        await pilot.press("p")
        await until(pilot, lambda: any(n.severity == "error" and "exited" in n.message
                                       for n in app._notifications), what="an error")
        await pilot.press("a")  # no terminal to hand over in a headless test
        await until(pilot, lambda: "attach needs a real terminal" in notes(app),
                    what="the attach error")
        await app.action_quit()


@pilot_test
async def test_filter_help_events_and_grid(live: Live) -> None:
    app = SquadApp(live)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app, "alpha/pm")
        tree = app.tree
        await pilot.press("slash")
        await type_text(pilot, "qa")
        await until(pilot, lambda: [r.target for r in tree.visible_rows()] == ["beta/qa"],
                    what="only beta/qa")
        assert app.selected == "beta/qa"
        await pilot.press("enter")
        await pilot.press("escape")
        await until(pilot, lambda: len(tree.visible_rows()) == 3, what="filter cleared")

        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
        shown = app.screen.keys
        for binding in app.BINDINGS:
            if binding.show:
                assert any(binding.description.split()[0].lower() in what.lower()
                           or app.get_key_display(binding) == key for key, what in shown)
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, HelpScreen), what="help closed")

        await pilot.press("p")  # something for the events panel
        await until(pilot, lambda: all_stopped(live, "beta/qa"), what="paused")
        await pilot.press("e")
        table = app.query_one("#event-table")

        def has_pause() -> bool:
            return any("pause" in str(table.get_row_at(i)[2]) for i in range(table.row_count))

        await until(pilot, has_pause, what="the pause in the events panel")
        await pilot.press("e")
        await until(pilot, lambda: not table.parent.display, what="events closed")

        await pilot.press("g")
        grid = app.query_one("#grid")
        await until(pilot, lambda: len(grid.tiles()) == 3 and all(
            t.lines for t in grid.tiles().values()), what="three tiles with output")
        await pilot.press("escape")
        await until(pilot, lambda: not grid.display, what="grid closed")
        await app.action_quit()


@pilot_test
async def test_needs_input_rings_the_bell_once(live: Live) -> None:
    app = SquadApp(live)
    rung: list[float] = []
    app.bell = lambda: rung.append(time.monotonic())  # type: ignore[method-assign]
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app, "alpha/dev")
        (agent,) = live.resolve("alpha/dev")
        control.send(live, agent, b"please confirm the plan")
        await until(pilot, lambda: app.snapshot.agent("alpha/dev").status == "needs-input",
                    what="needs-input")
        await until(pilot, lambda: rung, what="the bell")
        label = app.tree._labels["alpha/dev"].plain
        assert "NEEDS INPUT" in label
        for _ in range(3):  # staying in the state does not ring again
            ticks = app.ticks.poll
            await until(pilot, lambda t=ticks: not t.busy, what="a tick")
            await pilot.pause(0.3)
        assert len(rung) == 1
        await app.action_quit()


@pilot_test
async def test_quit_leaves_agents_running(live: Live) -> None:
    app = SquadApp(live)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        await pilot.press("q")
    live.refresh()
    assert len(live.panes) == 3 and not any(p.dead for p in live.panes.values())
    # The UI held the supervisor lock and let it go.
    from squad.supervisor import Lock

    lock = Lock(live.squad.name)
    lock.acquire("test")
    lock.release()


@pilot_test
async def test_quit_and_stop_asks_then_stops_everything(live: Live) -> None:
    app = SquadApp(live)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        pids = [p.pid for p in live.panes.values()]
        await pilot.press("Q")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="confirm")
        await pilot.press("y")
        await until(pilot, lambda: not app.is_running, timeout=20, what="the app to exit")
    assert not live.tmux.panes()
    table = procs.scan()
    assert not any(table.tree(pid) for pid in pids)


@pilot_test
async def test_a_second_supervisor_makes_the_ui_observe(live: Live) -> None:
    from squad.supervisor import Supervisor

    headless = Supervisor(live, by="test")
    headless.start()
    try:
        app = SquadApp(live, interval=0.2)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot, app)
            assert app.observing and "test" in app.observing
            await until(pilot, lambda: "another supervisor" in notes(app), what="a note")
            assert "observing" in str(app.query_one("#title").render())
            await pilot.press("p")  # control still works
            await until(pilot, lambda: all_stopped(live, "alpha/pm"), what="paused")
            headless.close()  # the UI takes over within a few ticks
            await until(pilot, lambda: app.observing is None and "supervises the squad now"
                        in notes(app), what="the UI supervising")
            await app.action_quit()
    finally:
        headless.close()


@pilot_test
async def test_palette_commands_cover_every_key(live: Live) -> None:
    from squad.ui.commands import AGENT_ACTION_NAMES

    app = SquadApp(live)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for binding in app.BINDINGS:
            if binding.show and binding.action not in AGENT_ACTION_NAMES:
                assert sum(t.startswith(f"{binding.description} (") for t in titles) == 1, \
                    binding
        # An agent named in the palette: pause it without moving the cursor first.
        app.act_on("beta/qa", "pause")
        await until(pilot, lambda: all_stopped(live, "beta/qa"), what="beta/qa paused")
        # Through the palette itself, as a user types it.
        from textual.command import CommandPalette

        await pilot.press("ctrl+p")
        await until(pilot, lambda: isinstance(app.screen, CommandPalette), what="palette")
        await type_text(pilot, "Resume beta/qa")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await until(pilot, lambda: none_stopped(live, "beta/qa"), what="beta/qa resumed")
        await app.action_quit()


def test_run_ui_brings_up_the_demo_when_nothing_runs(socket: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    demo = write_layout(tmp_path / "demo.toml", layout_text("demo"))
    opened: list[SquadApp] = []
    monkeypatch.setattr(SquadApp, "run", lambda self, **kw: opened.append(self))

    class Args:
        socket = None
        squad_name = None
        layout = None

    assert run_ui(Args(), demo) == 0
    assert opened and opened[0].live.squad.name == "demo" and "started" in opened[0].note
    assert len(Tmux(socket).panes()) == 3
    # Running again finds it instead of starting another.
    assert run_ui(Args(), demo) == 0
    assert opened[1].live.squad.name == "demo" and opened[1].note is None

    other = write_layout(tmp_path / "other.toml", layout_text("other").replace(
        'name = "alpha"', 'name = "gamma"').replace('name = "beta"', 'name = "delta"'))
    Args.layout = str(other)
    assert run_ui(Args(), demo) == 0
    assert opened[2].live.squad.name == "other"
    Args.layout = None
    with pytest.raises(SquadError, match="--squad"):
        run_ui(Args(), demo)


def test_core_never_imports_textual() -> None:
    code = ("import sys, squad.cli, squad.control, squad.supervisor, squad.snapshot, "
            "squad.layout, squad.status, squad.events, squad.live, squad.tmux, squad.procs, "
            "squad.store, squad.task_model, squad.dispatch, squad.style, squad.demo_agent, "
            "squad.review, squad.notify, squad.cli_review, squad.proof, squad.hooks; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual',)); "
            "print(bad); sys.exit(1 if bad else 0)")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pilot_test
async def test_every_key_is_acted_on_while_snapshots_flood_in() -> None:
    """50 agents, a new snapshot from a thread every 100 ms (ten times the real rate), keys
    sent as the terminal sends them: every press moves the selection. How fast is measured by
    bench/bench_ui.py, not here (timings fail on a loaded machine)."""
    from bench.bench_ui import key_latencies

    latencies = await key_latencies(agents=50, presses=30, feed_interval=0.1, give_up=120)
    assert len(latencies) == 30


@pilot_test
async def test_output_follows_new_lines_until_scrolled_back() -> None:
    from rich.text import Text

    snap, hist = sample()
    app = SquadApp(frozen=snap, history=hist)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        output = app.query_one("#output", OutputView)
        target = app.selected_agent

        def lines(n: int) -> list[Text]:
            return [Text(f"line {i}") for i in range(n)]

        output.show_lines(target, lines(200), 10)
        await pilot.pause()
        assert output.follow and output.scroll_y == output.max_scroll_y > 0
        output.show_lines(target, lines(300), 10)
        await pilot.pause()
        assert output.scroll_y == output.max_scroll_y  # followed the new lines
        output.focus()
        await pilot.press("pageup")
        await until(pilot, lambda: not output.follow, what="follow off")
        where = output.scroll_y
        output.show_lines(target, lines(400), 10)
        await pilot.pause()
        assert output.scroll_y == where  # reading history is not disturbed
        assert "scrolled back" in str(output.border_subtitle)
        await pilot.press("end")
        await until(pilot, lambda: output.follow, what="follow on again")
        output.show_lines(target, lines(500), 10)
        await pilot.pause()
        assert output.scroll_y == output.max_scroll_y


def test_attach_in_a_real_terminal_and_come_back(live: Live) -> None:
    """The real `squad` in a real terminal (a pane of a second tmux server, 120x40): `a`
    hands the terminal to the agent's window, C-b d comes back to the UI, `q` quits. The
    agent's window is 160x48 before and after the attach, although the client was smaller,
    and the terminal was told which keys detach from inside another tmux."""
    import uuid

    from tests.conftest import PY, SOCKET_PREFIX, kill_socket, wait_for

    outer = Tmux(SOCKET_PREFIX + "term-" + uuid.uuid4().hex[:6])
    cmd = (f"{PY} -m squad -L {live.tmux.socket}; echo SQUAD-EXIT=$?; sleep 60")
    window = live.panes["alpha/pm"].window_id

    def size() -> str:
        return live.tmux.run(["display-message", "-p", "-t", window,
                              "#{window_width}x#{window_height}"]).strip()

    assert size() == "160x48"
    try:
        outer.run(["new-session", "-d", "-x", "120", "-y", "40", "-e", f"PYTHONPATH={ROOT}",
                   "-e", "TERM=xterm-256color", "sh", "-c", cmd])
        pane = outer.panes()[0].pane_id

        def screen() -> str:
            return outer.capture([pane]).get(pane, "")

        wait_for(lambda: "Agents" in screen() and "alpha/pm" in screen(), 20, "the UI")
        outer.run(["send-keys", "-t", pane, "a"])
        wait_for(lambda: "Agents" not in screen() and "demo>" in screen(), 10,
                 "the agent's window in the terminal")
        wait_for(lambda: size() != "160x48", 5, "tmux fitting the window to the client")
        outer.run(["send-keys", "-t", pane, "C-b", "d"])
        wait_for(lambda: "Agents" in screen() and "detached from alpha/pm" in screen(), 10,
                 "the UI back after detaching")
        assert size() == "160x48"
        # What was printed before the attach is on the terminal's normal screen (the UI
        # draws on the alternate one): the terminal is inside tmux (the outer server).
        normal = outer.run(["capture-pane", "-p", "-a", "-t", pane], check=False)
        assert "detach with C-b C-b d" in normal, normal
        outer.run(["send-keys", "-t", pane, "q"])
        wait_for(lambda: "SQUAD-EXIT=0" in screen(), 10, "squad to exit")
        assert "keeps running" in screen()
        live.refresh()
        assert len(live.panes) == 3 and not any(p.dead for p in live.panes.values())
        # The next client still gets a window that fits it.
        assert live.tmux.run(["show-options", "-w", "-t", window, "-v",
                              "window-size"], check=False).strip() in ("", "latest")
    finally:
        kill_socket(outer.socket)


@pilot_test
async def test_reading_back_keeps_its_place_while_output_slides() -> None:
    from rich.text import Text

    snap, hist = sample()
    app = SquadApp(frozen=snap, history=hist)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        output = app.query_one("#output", OutputView)
        target = app.selected_agent

        def window(first: int, n: int = 200) -> list[Text]:
            return [Text(f"line {i}") for i in range(first, first + n)]

        output.show_lines(target, window(0), 10)
        await pilot.pause()
        output.scroll_to(y=50, animate=False, immediate=True)
        await until(pilot, lambda: not output.follow, what="reading back")
        output.show_lines(target, window(20), 10)  # 20 new lines pushed 20 old ones out
        await pilot.pause()
        assert output.scroll_y == 30 and output.lines[30].plain == "line 50"
        assert not output.follow


def test_more_scrollback_at_the_top_and_colours_kept(socket: str, tmp_path: Path) -> None:
    squad = layout.load(write_layout(tmp_path / "long.toml", r"""
name = "long"

[[teams]]
name = "t"

[[teams.agents]]
name = "printer"
worktree = false
command = ["sh", "-c", "seq 1 4000; exec sleep 600"]

[[teams.agents]]
name = "colours"
worktree = false
command = ['sh', '-c', 'printf "\033[31mred\033[0m [bold]plain[/]\n"; exec sleep 600']
"""))
    tmux = Tmux(socket)
    control.up(squad, tmux)
    live = Live.open(tmux, squad.name)

    async def scenario() -> None:
        app = SquadApp(live)
        async with app.run_test(size=SIZE) as pilot:
            output = app.query_one("#output", OutputView)
            # The light capture first (not the snapshot's short tail shown meanwhile).
            await until(pilot, lambda: 1000 < len(output.lines) < 1100
                        and output.lines[-1].plain == "4000", what="the end of the output")
            output.focus()
            await pilot.press("home")
            await until(pilot, lambda: output.lines and output.lines[0].plain == "1",
                        what="the whole scrollback")
            assert not output.follow
            await pilot.press("end")
            await until(pilot, lambda: len(output.lines) < 1100, what="the light capture")
            # Colours are kept, brackets are text.
            app.act_on("t/colours", None)
            await until(pilot, lambda: "red [bold]plain[/]" in output.plain() and any(
                span.style.color.number == 1 for t in output.lines for span in t.spans
                if span.style.color), what="red (ANSI colour 1) in the output panel")
            await app.action_quit()

    asyncio.run(scenario())


def test_rendering_helpers_on_plain_data() -> None:
    from dataclasses import replace

    from rich.style import Style

    from squad.ui.render import (
        AnsiLines,
        Columns,
        agent_label,
        bar,
        human_age,
        human_bytes,
        matches,
    )

    assert [human_bytes(n) for n in (512, 812 * 1024, 45.2 * 1024**2, 1.3 * 1024**3)] == [
        "512B", "812K", "45.2M", "1.3G"]
    assert [human_age(s) for s in (45, 125, 900, 7500, 3 * 86400)] == [
        "45s", "2m05s", "15m", "2h05m", "3d"]
    snap, _ = sample()
    row = replace(snap.agents[0], breaker="open", task="#3 [bold]fix[/]")
    wide = Columns(snap.agents, 60)
    narrow = Columns(snap.agents, 28)
    assert wide.show_role and not narrow.show_role
    label = agent_label(row, wide).plain
    assert "⚡open" in label and "[bold]fix[/]" in label and row.role in label
    assert row.role not in agent_label(row, narrow).plain
    assert matches(row, "FRONT pm") and not matches(row, "backend")
    text = bar(0.5, 10, Style(color="green"), Style(bgcolor="black"))
    assert text.cell_len == 10 and text.plain.count("█") == 5
    decoder = AnsiLines()
    first = decoder.decode("\x1b[1mbold\x1b[0m [/] \x07beep\nplain")
    assert [t.plain for t in first] == ["bold [/] beep", "plain"]
    assert first[0].spans and first[0].spans[0].style
    again = decoder.decode("\x1b[1mbold\x1b[0m [/] \x07beep\nplain\nmore")
    assert again[0] is first[0] and again[1] is first[1]  # unchanged lines are reused
