"""The UI's newer keys and the rough edges a new user hit, each on a real squad (real tmux,
processes and git on a private socket) driven by Pilot, or on frozen data where the look is
the point. Waits poll conditions; nothing here measures time."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from squad import control, procs, records, review
from squad.live import Live
from squad.ui.app import SquadApp
from squad.ui.dialogs import (
    AddAgentDialog,
    ChoiceDialog,
    ConfirmDialog,
    DispatchDialog,
    FeedbackDialog,
    MergeDialog,
    SendDialog,
)
from squad.ui.diffview import DiffScreen, PatchView
from squad.ui.output import OutputView
from squad.ui.sample import sample
from tests.conftest import PY, demo_cmd, have_tmux
from tests.test_ui import (
    SIZE,
    layout_text,
    notes,
    pilot_test,
    ready,
    screen_of,
    type_text,
    until,
    up_live,
)

pytestmark = pytest.mark.skipif(not have_tmux(), reason="needs tmux")


def screen_text(app: SquadApp) -> str:
    """What the terminal shows, as text."""
    strips = app.screen._compositor.render_strips()
    return "\n".join("".join(seg.text for seg in strip) for strip in strips)


def git(path: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(path), *args], capture_output=True, text=True)
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
    return proc.stdout.strip()


@pytest.fixture
def live(socket: str, tmp_path: Path) -> Live:
    return up_live(socket, tmp_path)


def frozen_app() -> SquadApp:
    snap, hist = sample()
    return SquadApp(frozen=snap, history=hist)


# -- the footer, the palette, small terminals ----------------------------------------------------


@pytest.mark.parametrize("width", [80, 120, 160, 200])
@pilot_test
async def test_the_footer_keeps_quit_at_every_width(width: int) -> None:
    app = frozen_app()
    async with app.run_test(size=(width, 30)) as pilot:
        await pilot.pause()
        footer = screen_text(app).splitlines()[-1]
        assert "q Quit" in footer and "? Help" in footer, footer
        assert "Teamq" not in footer and "Team q" not in footer
        if width >= 120:
            assert "Q Quit+stop" in footer, footer
        keys = [k.key for k in app.query("FooterKey")]
        assert len(keys) == len(set(keys))  # each key once


@pilot_test
async def test_the_palette_lists_each_action_once(live: Live) -> None:
    from textual.command import CommandList, CommandPalette

    app = SquadApp(live)
    async with app.run_test(size=(120, 50)) as pilot:
        await ready(pilot, app, "alpha/pm")

        async def listed(query: str) -> list[str]:
            palette = app.screen
            assert isinstance(palette, CommandPalette)
            field = palette.query_one("CommandInput")
            field.value = query
            options = palette.query_one(CommandList)
            await until(pilot, lambda: options.option_count > 0, what=f"hits for {query!r}")
            await pilot.pause(0.3)  # every provider answered
            return [str(options.get_option_at_index(i).prompt).split("\n")[0]
                    for i in range(options.option_count)]

        await pilot.press("ctrl+p")
        await until(pilot, lambda: isinstance(app.screen, CommandPalette), what="palette")
        everything = await listed("")
        assert len(everything) == len(set(everything)), everything
        assert [t for t in everything if t.startswith("Quit")] == ["Quit (q)",
                                                                   "Quit+stop (Q)"]
        assert "Pause alpha/pm (p)" in everything  # the selected agent's actions, with keys
        pauses = await listed("pause")
        assert len(pauses) == len(set(pauses)), pauses
        assert sum(t.startswith("Pause beta/qa") for t in pauses) == 1
        assert not any(t.startswith("Pause (") for t in pauses)
        await pilot.press("escape")
        await app.action_quit()


@pilot_test
async def test_the_dispatch_form_fits_a_small_terminal() -> None:
    app = frozen_app()
    async with app.run_test(size=(60, 15)) as pilot:
        await pilot.pause()
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, DispatchDialog), what="the form")
        await pilot.pause()
        shown = screen_text(app)
        for part in ("Dispatch a task", "Priority", "Tags", "Target", "Dispatch (ctrl+s)"):
            assert part in shown, shown


# -- output after a stop, quitting, dialog wording ----------------------------------------------


@pilot_test
async def test_a_stopped_agent_shows_its_last_lines(live: Live) -> None:
    """tmux leaves the agent's last screen and, once it has reaped the process, ``Pane is
    dead`` on its last row, with the empty rows between them: the panel shows the wrapper's
    line (how the agent ended) at the bottom, right above tmux's note when there is one."""
    app = SquadApp(live)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app, "beta/qa")
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="confirm")
        await pilot.press("y")
        output = app.query_one("#output", OutputView)
        await until(pilot, lambda: "[squad] qa was killed" in output.plain(), timeout=15,
                    what="the wrapper's line in the output panel")
        await until(pilot, lambda: app.snapshot.agent("beta/qa").status == "exited",
                    what="exited")
        lines = [t.plain for t in output.lines]
        if lines[-1].startswith("Pane is dead"):
            lines.pop()
        assert lines[-1].startswith("[squad] qa was killed"), lines[-6:]
        await app.action_quit()


def test_quit_and_stop_counts_agents_not_outcomes(socket: str, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    """A program that ignores SIGTERM is killed after the grace period; down then adds a
    summary line, which is not an agent."""
    import asyncio

    stubborn = f'["{PY}", "-c", "import signal, time; signal.signal(signal.SIGTERM, ' \
               'signal.SIG_IGN); print(\'stubborn\', flush=True); time.sleep(600)"]'
    live = up_live(socket, tmp_path, f"""
name = "one"
[[teams]]
name = "t"
[[teams.agents]]
name = "a"
command = {stubborn}
grace = 0.5
""")

    async def scenario() -> None:
        app = SquadApp(live)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.snapshot is not None, what="a snapshot")
            await pilot.press("Q")
            await until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="confirm")
            assert "Stop all 1 agent of squad one" in str(app.screen.title_text)
            await pilot.press("y")
            await until(pilot, lambda: not app.is_running, timeout=20, what="exit")
        said = capsys.readouterr()
        assert "stopped 1 agent" in said.err and "stopped 2" not in said.err, said

    asyncio.run(scenario())


@pilot_test
async def test_restarting_a_team_says_its_agents_are_stopped(live: Live) -> None:
    app = SquadApp(live)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app, "alpha/pm")
        app.act_on("alpha", None)
        await pilot.press("R")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="confirm")
        body = app.screen.body
        assert "The agent is stopped" not in body and "Each of its agents" in body
        assert "team alpha (2 agents)" in app.screen.title_text
        await pilot.press("n")
        await app.action_quit()


# -- hibernate, wake, keys, add, remove, up ------------------------------------------------------


@pilot_test
async def test_hibernate_and_wake_keys(live: Live) -> None:
    app = SquadApp(live)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app, "alpha/dev")
        pid = app.snapshot.agent("alpha/dev").pid
        await pilot.press("h")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="confirm")
        await pilot.press("y")
        await until(pilot, lambda: app.snapshot.agent("alpha/dev").status == "hibernated",
                    timeout=15, what="hibernated")
        assert not procs.scan().tree(live.panes["alpha/dev"].pid or -1)
        assert records.get(live.squad.name, "alpha/dev").hibernated
        label = app.tree._labels["alpha/dev"].plain
        assert label.startswith("☾"), label
        await pilot.press("w")
        await until(pilot, lambda: (row := app.snapshot.agent("alpha/dev")).state == "running"
                    and row.pid not in (None, pid), timeout=15, what="woken")
        await until(pilot, lambda: "woken" in notes(app), what="a wake notification")
        await app.action_quit()


@pilot_test
async def test_input_sends_keys_by_name(live: Live) -> None:
    app = SquadApp(live)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app, "alpha/pm")
        await pilot.press("i")
        await until(pilot, lambda: isinstance(app.screen, SendDialog), what="the dialog")
        app.screen.query_one("#send-keys").focus()
        await type_text(pilot, "h i Enter")
        await pilot.press("enter")
        await until(pilot, lambda: "Working on: hi" in screen_of(live, "alpha/pm"),
                    what="the keys typed into the agent")
        await until(pilot, lambda: "pressed h i Enter" in notes(app), what="a notification")
        # A key name tmux does not know is refused in the dialog, before anything is sent.
        await pilot.press("i")
        await until(pilot, lambda: isinstance(app.screen, SendDialog), what="the dialog")
        app.screen.query_one("#send-keys").focus()
        await type_text(pilot, "Hyper-x")
        await pilot.press("enter")
        await until(pilot, lambda: "unknown key" in notes(app), what="the refusal")
        assert isinstance(app.screen, SendDialog)
        # A key button sends at once.
        (button,) = [b for b in app.screen.query(".key-button") if str(b.label) == "C-c"]
        button.press()
        await until(pilot, lambda: "pressed C-c" in notes(app), what="C-c sent")
        await app.action_quit()


@pilot_test
async def test_add_then_remove_an_agent(live: Live) -> None:
    app = SquadApp(live)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app, "alpha/pm")
        await pilot.press("A")
        await until(pilot, lambda: isinstance(app.screen, AddAgentDialog), what="the form")
        form = app.screen
        form.query_one("#add-target").value = "gamma/helper"
        form.query_one("#add-command").value = " ".join(
            [PY, "-m", "squad.demo_agent", "--work", "0.5"])
        form.query_one("#add-role").value = "Helper"
        form.query_one("#add-tags").value = "docs, tests"
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.snapshot.agent("gamma/helper") is not None
                    and app.snapshot.agent("gamma/helper").pid, timeout=20,
                    what="the new agent running")
        assert live.squad.agent("gamma/helper").tags == ("docs", "tests")
        app.act_on("gamma/helper", None)
        await pilot.press("X")
        await until(pilot, lambda: isinstance(app.screen, ChoiceDialog), what="confirm")
        assert "worktree" not in app.screen.body  # it has none
        await pilot.press("enter")  # the first choice: remove
        await until(pilot, lambda: app.snapshot.agent("gamma/helper") is None, timeout=20,
                    what="the agent gone from the tree")
        live.refresh()
        assert "gamma/helper" not in live.panes
        await app.action_quit()


@pilot_test
async def test_restart_of_an_agent_without_a_window_offers_up(live: Live) -> None:
    app = SquadApp(live)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app, "beta/qa")
        pane = live.panes["beta/qa"]
        procs.terminate_trees([pane.pid], grace=1.0)
        live.tmux.run(["kill-window", "-t", pane.window_id])
        await until(pilot, lambda: app.snapshot.agent("beta/qa").status == "down",
                    what="no window")
        await pilot.press("R")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="the offer")
        assert "bring the squad up" in app.screen.title_text
        await pilot.press("y")
        await until(pilot, lambda: (row := app.snapshot.agent("beta/qa")).status != "down"
                    and row.pid, timeout=20, what="beta/qa running again")
        await app.action_quit()


# -- tasks ----------------------------------------------------------------------------------------


@pilot_test
async def test_task_panel_cancels_retries_and_raises(live: Live) -> None:
    app = SquadApp(live)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, app, "alpha/pm")
        # Tags no agent has: the task waits in the queue for us to act on.
        app.tasks.dispatch("write the release notes", "low", ["nobody-has-this"], None)
        await pilot.press("t")
        table = app.query_one("#task-table")
        await until(pilot, lambda: table.row_count == 1, what="the task listed")

        def cell(column: int) -> str:
            return str(table.get_row_at(0)[column])

        await pilot.press("plus")
        from squad.store import TaskStore

        if hasattr(TaskStore, "set_priority"):
            await until(pilot, lambda: cell(3) == "medium", what="priority raised")
        else:
            await until(pilot, lambda: "cannot change a task's priority" in notes(app),
                        what="the missing store method said")
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="confirm")
        await pilot.press("y")
        await until(pilot, lambda: cell(2) == "cancelled", what="cancelled")
        await pilot.press("r")
        await until(pilot, lambda: cell(2) == "queued", what="queued again")
        await app.action_quit()


# -- resource policy and notifications ------------------------------------------------------------


def test_policy_panel_and_memory_warning(socket: str, tmp_path: Path) -> None:
    import asyncio

    live = up_live(socket, tmp_path, layout_text().replace(
        "grace = 2.0", "grace = 2.0\nmemory_warn_mb = 1"))

    async def scenario() -> None:
        app = SquadApp(live)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot, app, "alpha/pm")
            await until(pilot, lambda: app.snapshot.agent("alpha/pm").rss > 2**20,
                        what="memory measured")
            label = app.tree._labels["alpha/pm"]
            memory = [s for s in label.spans if "yellow" in str(s.style)]
            assert memory, label.spans  # past memory_warn_mb: coloured
            await pilot.press("o")
            text = app.query_one("#policy-text")
            await until(pilot, lambda: "pressure now" in str(text.render()),
                        what="the policy panel")
            shown = str(text.render())
            assert "governor" in shown and "memory warn 1 MiB" in shown, shown
            await app.action_quit()

    asyncio.run(scenario())


def test_failed_notifications_are_shown(socket: str, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    monkeypatch.delenv("SQUAD_NOTIFY", raising=False)
    live = up_live(socket, tmp_path, layout_text() + """
[notify]
desktop = false
needs_input = ["sh", "-c", "echo no route to the pager >&2; exit 3"]
""")

    async def scenario() -> None:
        app = SquadApp(live)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot, app, "alpha/dev")
            (agent,) = live.resolve("alpha/dev")
            control.send(live, agent, b"please confirm the plan")
            await until(pilot, lambda: "notification failed" in notes(app), timeout=20,
                        what="the failure shown")
            await pilot.press("o")
            text = app.query_one("#policy-text")
            await until(pilot, lambda: "notifications that failed" in str(text.render()),
                        what="the failure in the policy panel")
            await app.action_quit()

    asyncio.run(scenario())


# -- review: the diff view, merge, feedback ----------------------------------------------------


def review_layout(repo: Path) -> str:
    return f"""
name = "rev"
repo = "{repo}"

[defaults]
command = {demo_cmd()}
grace = 2.0

[[teams]]
name = "t"

[[teams.agents]]
name = "dev"
worktree = true

[[teams.agents]]
name = "pm"
"""


def test_diff_view_merge_and_feedback(socket: str, tmp_path: Path, git_repo: Path) -> None:
    import asyncio

    (git_repo / "app.py").write_text("def hello():\n    return 'hi'\n")
    git(git_repo, "add", "-A")
    git(git_repo, "commit", "-qm", "app")
    review.clear_cache()
    live = up_live(socket, tmp_path, review_layout(git_repo))
    wt = live.squad.worktree_dir(live.squad.agent("t/dev"))
    (wt / "app.py").write_text("def hello():\n    return '[bold]hello[/]'\n")
    git(wt, "commit", "-qam", "say hello")
    (wt / "notes.md").write_text("todo\n")  # uncommitted

    async def scenario() -> None:
        app = SquadApp(live)
        async with app.run_test(size=(140, 44)) as pilot:
            await ready(pilot, app, "t/dev")
            # The tree says what the worktree changed: 2 files, 1 commit ahead.
            await until(pilot, lambda: "±2 ↑1" in app.tree._labels["t/dev"].plain,
                        what="the change counts in the tree")
            await pilot.press("D")
            await until(pilot, lambda: isinstance(app.screen, DiffScreen), what="the view")
            patch = app.screen.query_one(PatchView)
            await until(pilot, lambda: "'[bold]hello[/]'" in patch.plain(), what="the diff")
            shown = screen_text(app)
            assert "app.py" in shown and "notes.md" in shown and "say hello" in shown
            assert "1 commit ahead" in shown and "1 uncommitted" in shown
            # Feedback as input.
            await pilot.press("f")
            await until(pilot, lambda: isinstance(app.screen, FeedbackDialog), what="form")
            await type_text(pilot, "rename hello to greet")
            await pilot.press("ctrl+s")
            await until(pilot, lambda: "Working on: rename hello to greet" in screen_of(
                live, "t/dev"), what="the feedback at the agent")
            # A merge the main repository refuses (it has uncommitted changes).
            (git_repo / "README.md").write_text("dirty\n")
            await pilot.press("m")
            await until(pilot, lambda: isinstance(app.screen, MergeDialog), what="ask")
            await type_text(pilot, "notes")
            await pilot.press("enter")
            await until(pilot, lambda: "uncommitted changes" in notes(app), timeout=20,
                        what="the refusal")
            assert "Merge refused" in notes(app)
            assert git(git_repo, "log", "-1", "--format=%s") == "app"  # nothing merged
            # Clean again: the merge goes through, committing the notes first.
            git(git_repo, "checkout", "--", "README.md")
            await pilot.press("m")
            await until(pilot, lambda: isinstance(app.screen, MergeDialog), what="ask")
            await type_text(pilot, "notes")
            await pilot.press("enter")
            await until(pilot, lambda: "merged squad/t/dev into main" in notes(app),
                        timeout=20, what="the merge")
            assert (git_repo / "notes.md").exists()
            await pilot.press("escape")
            await until(pilot, lambda: not isinstance(app.screen, DiffScreen), what="back")
            await app.action_quit()

    asyncio.run(scenario())


def test_diff_of_an_agent_without_a_worktree_says_so(live: Live) -> None:
    import asyncio

    async def scenario() -> None:
        app = SquadApp(live)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot, app, "alpha/pm")
            await pilot.press("D")
            await until(pilot, lambda: "no branch of its own" in notes(app), what="why not")
            assert not isinstance(app.screen, DiffScreen)
            await app.action_quit()

    asyncio.run(scenario())


def test_patch_lines_colour_code_and_keep_brackets() -> None:
    from squad.ui.diffview import ADDED, REMOVED, patch_lines

    lines, starts = patch_lines(
        "diff --git a/src/app.py b/src/app.py\nindex 1..2 100644\n--- a/src/app.py\n"
        "+++ b/src/app.py\n@@ -1,2 +1,2 @@\n import os\n-x = '[red]'\n+x = '[/]'\n"
        "diff --git a/logo.png b/logo.png\nBinary files a/logo.png and b/logo.png differ\n")
    plain = [t.plain for t in lines]
    assert plain[0] == " src/app.py " and starts == {"src/app.py": 0, "logo.png": 8}
    assert "-x = '[red]'" in plain and "+x = '[/]'" in plain
    added = lines[plain.index("+x = '[/]'")]
    removed = lines[plain.index("-x = '[red]'")]
    assert added.spans and any(ADDED.bgcolor == s.style.bgcolor for s in added.spans
                               if hasattr(s.style, "bgcolor"))
    assert any(REMOVED.bgcolor == s.style.bgcolor for s in removed.spans
               if hasattr(s.style, "bgcolor"))
    assert len({s.style for s in added.spans}) > 2  # syntax colours, not one colour


def test_dead_panes_lose_the_empty_rows_above_tmux_note() -> None:
    from squad.ui.render import trim_screen

    screen = "demo> \n[squad] exited with status 143\n" + "\n" * 20 + \
        "Pane is dead (status 143, Wed Dec  2 05:00:00 2026)\n\n"
    assert trim_screen(screen).split("\n") == [
        "demo> ", "[squad] exited with status 143",
        "Pane is dead (status 143, Wed Dec  2 05:00:00 2026)"]
    assert trim_screen("a\n\n b\n\n\n") == "a\n\n b"
