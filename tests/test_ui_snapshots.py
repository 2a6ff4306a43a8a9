"""Screens of the UI on frozen data (no squad, no timers, no clock, no blinking cursor),
compared with the SVGs under tests/__snapshots__/. After a deliberate change of the look:
python -m pytest tests/test_ui_snapshots.py --snapshot-update, and review the new SVGs.
The main screen's SVG is the README's screenshot."""

from __future__ import annotations

from squad.ui.app import SquadApp
from squad.ui.sample import SAMPLE_EVENTS, SAMPLE_POLICY, SAMPLE_TASKS, sample, sample_diff
from squad.ui.task_queue import StaticTasks


def frozen_app() -> SquadApp:
    snap, history = sample()
    return SquadApp(frozen=snap, history=history, frozen_events=SAMPLE_EVENTS,
                    tasks=StaticTasks(SAMPLE_TASKS))


def test_main_screen(snap_compare) -> None:
    """Teams and agents with status, usage and task; the selected agent's output (brackets
    shown literally); system gauges; the details panel with sparklines; every key."""
    assert snap_compare(frozen_app(), terminal_size=(120, 36))


def test_main_screen_small_terminal(snap_compare) -> None:
    """80x24 stays readable: roles and buttons give way, names, usage and output stay."""
    assert snap_compare(frozen_app(), terminal_size=(80, 24))


def test_main_screen_light_theme(snap_compare) -> None:
    def light(pilot) -> None:
        pilot.app.theme = "textual-light"

    assert snap_compare(frozen_app(), terminal_size=(120, 36), run_before=light)


def test_help_screen(snap_compare) -> None:
    assert snap_compare(frozen_app(), terminal_size=(120, 36), press=["question_mark"])


def test_dispatch_form(snap_compare) -> None:
    assert snap_compare(frozen_app(), terminal_size=(120, 36), press=["d"])


def test_task_and_event_panels_and_filter(snap_compare) -> None:
    assert snap_compare(frozen_app(), terminal_size=(120, 36),
                        press=["t", "e", "slash", "d", "e", "v"])


def test_grid_view(snap_compare) -> None:
    assert snap_compare(frozen_app(), terminal_size=(160, 44), press=["g"])


def test_diff_view(snap_compare) -> None:
    """Files with +/- counts, commits ahead, the diff with syntax colours; its own keys."""
    app = frozen_app()
    app.diffs["frontend/pm"] = sample_diff("frontend/pm")
    assert snap_compare(app, terminal_size=(120, 36), press=["D"])


def test_policy_panel(snap_compare) -> None:
    """Pressure now, what the governor holds and did, limits, failed notifications; the
    header says the governor holds an agent."""
    app = frozen_app()
    app.policy = SAMPLE_POLICY
    assert snap_compare(app, terminal_size=(120, 36), press=["o"])


def test_input_dialog(snap_compare) -> None:
    """A line of text, or keys by name, or a key button."""
    from squad.ui.dialogs import SendDialog

    async def open_it(pilot) -> None:
        pilot.app.push_screen(SendDialog("frontend/pm", blink=False))
        await pilot.pause()

    assert snap_compare(frozen_app(), terminal_size=(120, 36), run_before=open_it)


def test_dispatch_form_small_terminal(snap_compare) -> None:
    """60x15: every field of the form shows."""
    assert snap_compare(frozen_app(), terminal_size=(60, 15), press=["d"])


def test_footer_at_200_columns(snap_compare) -> None:
    assert snap_compare(frozen_app(), terminal_size=(200, 30))
