"""The squad application: the screen's layout, its keys, and the thread workers that feed it.

Data flows one way. A supervisor tick runs in a thread worker once a second (the next one
is scheduled only when the last one was shown) and posts a :class:`SnapshotReady`; the
selected agent's output is captured every 150 ms by another worker. Keys become calls into
:mod:`squad.control` in thread workers whose outcomes come back as notifications. Nothing
on the event loop waits for tmux, psutil or git.

``SquadApp(frozen=snapshot)`` shows a fixed snapshot with no live squad, no timers and no
blinking cursor: the snapshot tests and the benchmark use it.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections import deque
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult, SuspendNotSupported, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Input, Tree

from squad import control, events
from squad.errors import SquadError
from squad.live import Live
from squad.snapshot import AgentRow, Snapshot, merge_live, read_published
from squad.state import log_bug
from squad.style import ATTENTION
from squad.supervisor import Supervisor, SupervisorBusy
from squad.ui.agents import AgentTree
from squad.ui.commands import AgentCommands
from squad.ui.details import AgentDetails
from squad.ui.dialogs import (
    ConfirmDialog,
    DispatchDialog,
    DispatchRequest,
    HelpScreen,
    SendDialog,
)
from squad.ui.header import SquadHeader
from squad.ui.messages import (
    ActionsDone,
    EventsReady,
    GridReady,
    History,
    OutputReady,
    SnapshotReady,
    TasksReady,
    TickFailed,
)
from squad.ui.output import OutputGrid, OutputView, Tile
from squad.ui.panels import EventsPanel, TaskPanel
from squad.ui.render import STATUS_WORD, AnsiLines, status_text, trim_screen
from squad.ui.tasks import DirectSend, StaticTasks, TaskProvider, provider_for

OUTPUT_HISTORY = 1000  # scrollback lines shown for the selected agent at first
MAX_HISTORY = 50000  # ... and at most, loaded as the user scrolls to the top
HISTORY_POINTS = 300  # samples per sparkline (about five minutes at one tick a second)
RETRY_LOCK_TICKS = 15  # an observing UI tries to become the supervisor this often


class Poll:
    """A refresh that runs in a thread worker one at a time: the next run is scheduled
    ``interval`` seconds after the last one's result was shown, so runs never overlap and
    a slow one never stacks up. ``now()`` asks for a run as soon as possible."""

    def __init__(self, app: App, interval: float, start: Callable[[], object],
                 enabled: bool = True) -> None:
        self.app = app
        self.interval = interval
        self.start = start
        self.enabled = enabled
        self.busy = False
        self.again = False
        self.timer: Timer | None = None

    def now(self) -> None:
        if not self.enabled:
            return
        if self.timer is not None:
            self.timer.stop()
            self.timer = None
        if self.busy:
            self.again = True
            return
        self.busy = True
        self.start()

    def done(self, schedule: bool = True) -> None:
        self.busy = False
        if not self.enabled:
            return
        if self.again:
            self.again = False
            self.now()
        elif schedule and self.timer is None:
            self.timer = self.app.set_timer(self.interval, self.now, name="poll")

    def stop(self) -> None:
        self.enabled = False
        if self.timer is not None:
            self.timer.stop()
            self.timer = None


TEAM = Binding.Group("Team")


class SquadApp(App[None]):
    """Teams and agents on the left, the selected agent's output and usage on the right."""

    CSS_PATH = "squad.tcss"
    TITLE = "squad"
    COMMANDS = App.COMMANDS | {AgentCommands}
    HORIZONTAL_BREAKPOINTS: ClassVar[list[tuple[int, str]]] = [
        (0, "-narrow"), (100, "-normal"), (160, "-wide"),
    ]
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("question_mark", "help", "Help", key_display="?",
                tooltip="Every key, what the glyphs mean"),
        Binding("p", "pause", "Pause", tooltip="Pause the selected agent (SIGSTOP its tree)"),
        Binding("r", "resume", "Resume", tooltip="Resume the selected agent"),
        Binding("s", "stop", "Stop", tooltip="Stop the selected agent (asks first)"),
        Binding("R", "restart", "Restart", tooltip="Restart the selected agent (asks first)"),
        Binding("a", "attach", "Attach",
                tooltip="Attach the terminal to the agent's window (detach: C-b d)"),
        Binding("i", "send_input", "Input", tooltip="Send a line of input to the agent"),
        Binding("d", "dispatch", "Dispatch", tooltip="Dispatch a task (a form)"),
        Binding("g", "toggle_grid", "Grid", tooltip="Several agents' output side by side"),
        Binding("t", "toggle_tasks", "Tasks", tooltip="Show or hide the task panel"),
        Binding("e", "toggle_events", "Events", tooltip="Show or hide the events panel"),
        Binding("slash", "filter", "Filter", key_display="/",
                tooltip="Filter agents by name, role, status, task or tag"),
        Binding("P", "pause_team", "Pause team", group=TEAM,
                tooltip="Pause every agent of the selected agent's team"),
        Binding("U", "resume_team", "Resume team", group=TEAM,
                tooltip="Resume every agent of the selected agent's team"),
        Binding("q", "quit", "Quit", tooltip="Quit; the agents keep running"),
        Binding("Q", "quit_and_stop", "Quit+stop",
                tooltip="Stop every agent of the squad, then quit (asks first)"),
        Binding("escape", "back", "Back", show=False),
    ]
    EXTRA_KEYS: ClassVar[list[tuple[str, str]]] = [
        ("↑ ↓ · click", "select a team or agent (team: p r s R act on the whole team)"),
        ("Tab", "move focus: agents, output, panels"),
        ("PgUp PgDn · wheel", "scroll the output (focus it with Tab)"),
        ("End", "follow new output again"),
        ("Esc", "clear the filter, close the grid or the panels"),
        ("ctrl+p", "command palette: every action, and each agent by name"),
        ("ctrl+q", "quit (same as q)"),
    ]

    def __init__(
        self,
        live: Live | None = None,
        *,
        frozen: Snapshot | None = None,
        history: History | None = None,
        frozen_events: list[dict] | None = None,
        tasks: TaskProvider | None = None,
        interval: float = 1.0,
        output_interval: float = 0.15,
        mem_total: int | None = None,
        note: str | None = None,
    ) -> None:
        super().__init__()
        if (live is None) == (frozen is None):
            raise ValueError("SquadApp needs a live squad or a frozen snapshot")
        self.live = live
        self.frozen = frozen
        self.frozen_history = history or {}
        self.frozen_events = frozen_events or []
        self.note = note
        self.supervisor = Supervisor(live, by="ui") if live is not None else None
        self.snapshot: Snapshot | None = None
        self.history: History = {}
        self.selected: str | None = None
        """The target under the cursor: ``team/agent`` or ``team``."""
        self.statuses: dict[str, str] = {}
        self.observing: str | None = None
        self.problem: str | None = None
        if tasks is None:
            tasks = (provider_for(live, lambda: self.selected_agent) if live is not None
                     else StaticTasks())
        self.tasks = tasks
        if mem_total is None:
            import psutil

            mem_total = 16 * 1024**3 if frozen is not None else psutil.virtual_memory().total
        self.mem_total = mem_total
        running = frozen is None
        self.tick_poll = Poll(self, interval, self._start_tick, running)
        self.output_interval = output_interval
        self.output_poll = Poll(self, output_interval, self._start_output, running)
        self.tasks_poll = Poll(self, 2.0, self._start_tasks, running)
        self.events_poll = Poll(self, 1.0, self._start_events, running)
        # Worker-thread state (touched only inside the worker of its group).
        self._event_tail: events.Tail | None = None
        self._event_seq = 0
        self._event_window: deque[dict] = deque(maxlen=EventsPanel.LIMIT)
        self._started = False
        self._ticks = 0
        self._decoders: dict[str, AnsiLines] = {}
        self._last_capture: tuple[str | None, str] | None = None
        self.history_lines = OUTPUT_HISTORY
        """Scrollback lines captured for the selected agent (grows as the user reads back)."""
        self._more_history = False
        self._observing_reason: str | None = None

    # -- layout ------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield SquadHeader(id="header")
        with Horizontal(id="main"):
            with Vertical(id="sidebar"):
                filt = Input(placeholder="filter: name, role, status, task, tag", id="filter",
                             compact=True)
                filt.cursor_blink = self.frozen is None
                yield filt
                yield AgentTree(id="agents")
            with Vertical(id="right"):
                yield OutputView(id="output")
                yield OutputGrid(id="grid")
                with Vertical(id="drawer"):
                    yield TaskPanel(id="tasks")
                    yield EventsPanel(id="events")
                yield AgentDetails(id="details")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#agents", AgentTree).border_title = "Agents"
        self.query_one("#output", OutputView).border_title = "Output"
        self.query_one("#grid", OutputGrid).border_title = "Grid"
        self.query_one("#tasks", TaskPanel).border_title = Text(f"Tasks · {self.tasks.name}")
        self.query_one("#events", EventsPanel).border_title = "Events"
        self.query_one("#details", AgentDetails).border_title = "Details"
        for button in self.query("#buttons Button"):
            button.can_focus = False
        self.query_one("#agents", AgentTree).focus()
        name = self.live.squad.name if self.live else self.frozen.squad if self.frozen else ""
        self.title = f"squad {name}"  # the terminal's window title
        if self.frozen is not None:
            self.apply_snapshot(self.frozen, self.frozen_history)
        else:
            if self.note:
                self.notify(self.note, title="squad", markup=False)
            self.tick_poll.now()

    def on_unmount(self) -> None:
        for poll in (self.tick_poll, self.output_poll, self.tasks_poll, self.events_poll):
            poll.stop()
        if self.supervisor is not None:
            self.supervisor.close()

    # -- what the app knows --------------------------------------------------------------

    @property
    def tree(self) -> AgentTree:
        return self.query_one("#agents", AgentTree)

    @property
    def selected_agent(self) -> str | None:
        """The selected agent's target, or None when a team (or nothing) is selected."""
        return self.selected if self.selected and "/" in self.selected else None

    def targets(self) -> list[str]:
        """Every agent's target, in tree order."""
        return [r.target for r in self.snapshot.agents] if self.snapshot else []

    def selected_rows(self) -> list[AgentRow]:
        snap, sel = self.snapshot, self.selected
        if snap is None or not sel:
            return []
        if "/" in sel:
            row = snap.agent(sel)
            return [row] if row else []
        return [r for r in snap.agents if r.team == sel]

    # -- the supervisor tick ---------------------------------------------------------------

    def _start_tick(self) -> None:
        self._tick_worker()

    @work(thread=True, exclusive=True, group="tick", exit_on_error=False)
    def _tick_worker(self) -> None:
        sup = self.supervisor
        assert sup is not None
        try:
            self._ticks += 1
            if not self._started or (self._observing_reason and
                                     self._ticks % RETRY_LOCK_TICKS == 0):
                self._started = True
                try:
                    sup.start()
                    self._observing_reason = None
                except SupervisorBusy as exc:
                    self._observing_reason = str(exc)
            if self._observing_reason:
                snap = sup.observer.tick()
                published = read_published(snap.squad)
                if published is not None:
                    snap = merge_live(published, snap)
            else:
                snap = sup.tick()
            hist = {t: list(h)[-HISTORY_POINTS:] for t, h in sup.observer.history.items()}
            self.post_message(SnapshotReady(snap, hist, self._observing_reason))
        except SquadError as exc:
            self.post_message(TickFailed(str(exc)))
        except Exception as exc:  # noqa: BLE001 - a bug: logged, shown in one line
            where = log_bug("supervisor tick")
            self.post_message(TickFailed(f"internal error: {exc} (details in {where})"))

    def on_snapshot_ready(self, message: SnapshotReady) -> None:
        if self.problem:
            self.notify("the squad answers again", title="squad", markup=False)
        self.problem = None
        if message.observing != self.observing:
            was, self.observing = self.observing, message.observing
            if message.observing:
                self.notify(f"{message.observing}. This UI observes and controls, but does "
                            "not dispatch.", title="another supervisor runs",
                            severity="warning", timeout=10, markup=False)
            elif was:
                self.notify("the other supervisor stopped: this UI supervises the squad now",
                            title="supervising", markup=False)
        first = self.snapshot is None
        self.apply_snapshot(message.snapshot, message.history)
        self.tick_poll.done()
        if first:
            self.output_poll.now()

    def on_tick_failed(self, message: TickFailed) -> None:
        if message.error != self.problem:
            self.notify(message.error, title="refresh failed", severity="error",
                        markup=False)
        self.problem = message.error
        if self.snapshot is not None:
            self._show_header()
        self.tick_poll.done()

    def apply_snapshot(self, snap: Snapshot, history: History) -> None:
        """Show a snapshot everywhere; ring the bell for agents that now need attention."""
        entered = [r for r in snap.agents if r.status in ATTENTION
                   and self.statuses.get(r.target) not in (None, *ATTENTION)]
        self.statuses = {r.target: r.status for r in snap.agents}
        self.snapshot = snap
        self.history = history
        self._show_header()
        self.tree.show(snap)
        self._sync_selection()
        self._show_selected()
        if self.query_one("#grid", OutputGrid).display:
            self._arrange_grid(capture=False)
        if entered:
            self.bell()
            for row in entered:
                self.notify(f"{row.target} {STATUS_WORD[row.status]}", title="attention",
                            severity="warning", markup=False)

    def _show_header(self) -> None:
        if self.snapshot is None:
            return
        if self.frozen is not None:
            note = "frozen"
        elif self.observing:
            note = "observing: another supervisor dispatches"
        else:
            note = "supervising"
        self.query_one("#header", SquadHeader).show(self.snapshot, note, self.problem)

    # -- selection -----------------------------------------------------------------------

    @on(Tree.NodeHighlighted, "#agents")
    def _highlighted(self, event: Tree.NodeHighlighted) -> None:
        self._sync_selection()

    def _sync_selection(self) -> None:
        target = self.tree.selected
        if target == self.selected:
            return
        self.selected = target
        self._last_capture = None
        self.history_lines = OUTPUT_HISTORY
        self._show_selected()
        output = self.query_one("#output", OutputView)
        # Until the first capture arrives, show the snapshot's plain tail of the screen.
        if target and "/" in target and self.snapshot is not None:
            tail = self.snapshot.screens.get(target)
            if tail is not None:
                lines = AnsiLines().decode(trim_screen(tail))
                output.show_lines(target, lines, max((t.cell_len for t in lines), default=0))
            elif self.frozen is not None:
                output.show_message(target, "no output captured")
        elif target:
            output.show_message(target, f"team {target}: select an agent to see its output")
        else:
            output.show_message(None, "no agent selected")
        if self.query_one("#grid", OutputGrid).display:
            self._arrange_grid(capture=False)
        self.output_poll.now()

    def _show_selected(self) -> None:
        """Output title and details for the selected agent or team."""
        rows = self.selected_rows()
        output = self.query_one("#output", OutputView)
        title = Text(no_wrap=True, overflow="ellipsis")
        now = self.snapshot.at if self.snapshot else time.time()
        if self.selected_agent and rows:
            row = rows[0]
            title.append(row.target, style="bold")
            if row.role:
                title.append(f" · {row.role}")
            title.append(" · ")
            title.append_text(status_text(row, now))
        elif self.selected:
            title.append(f"team {self.selected}", style="bold")
        else:
            title.append("Output")
        output.border_title = title
        hist = self._selected_history(rows)
        limit = None
        if self.live is not None and self.selected_agent:
            agent = self.live.squad.agent(self.selected_agent)
            mb = getattr(agent, "memory_limit_mb", None) if agent is not None else None
            limit = int(mb) * 1024 * 1024 if mb else None
        self.query_one("#details", AgentDetails).show(
            self.selected, rows, hist, now, self.mem_total, limit)

    def _selected_history(self, rows: list[AgentRow]) -> list[tuple]:
        series = [self.history.get(r.target, []) for r in rows]
        series = [s for s in series if s]
        if not series:
            return []
        if len(series) == 1:
            return list(series[0])
        n = min(len(s) for s in series)
        out = []
        for i in range(-n, 0):
            out.append((series[0][i][0], sum(s[i][1] for s in series),
                        sum(s[i][2] for s in series)))
        return out

    def act_on(self, target: str, action: str | None) -> None:
        """Select ``target`` (clearing a filter that hides it), then run ``action``."""
        tree = self.tree
        if not tree.select_target(target):
            self._set_filter("")
            tree.select_target(target)
        self._sync_selection()
        if action:
            getattr(self, f"action_{action}")()

    # -- output --------------------------------------------------------------------------

    def _start_output(self) -> None:
        grid = self.query_one("#grid", OutputGrid)
        if grid.display:
            self._capture_worker(None, list(grid.targets), 0)
        else:
            self._capture_worker(self.selected_agent, None, self.history_lines)

    @work(thread=True, exclusive=True, group="output", exit_on_error=False)
    def _capture_worker(self, target: str | None, grid: list[str] | None,
                        history: int) -> None:
        live = self.live
        assert live is not None
        try:
            if grid is not None:
                ids = {p.pane_id: t for t in grid if (p := live.panes.get(t)) is not None}
                screens = live.tmux.capture(ids, ansi=True)
                decoded = {}
                for pane_id, text in screens.items():
                    t = ids[pane_id]
                    decoded[t] = self._decoders.setdefault(t, AnsiLines()).decode(
                        trim_screen(text))
                self.post_message(GridReady(decoded))
                return
            if target is None:
                self.post_message(OutputReady(None, None))
                return
            pane = live.panes.get(target)
            if pane is None:
                self.post_message(OutputReady(target, None, error=(
                    f"{target} has no window: run `squad up` to create it")))
                return
            raw = live.tmux.capture([pane.pane_id], history=history, ansi=True).get(
                pane.pane_id)
            if raw is None:
                self.post_message(OutputReady(target, None, error=f"{target}: window gone"))
                return
            if self._last_capture == (target, raw):
                self.post_message(OutputReady(target, None))
                return
            self._last_capture = (target, raw)
            if target not in self._decoders and len(self._decoders) > 8:
                self._decoders.clear()  # bound the caches of agents looked at before
            lines = self._decoders.setdefault(target, AnsiLines()).decode(trim_screen(raw))
            width = max((t.cell_len for t in lines), default=0)
            self.post_message(OutputReady(target, lines, width))
        except SquadError as exc:
            self.post_message(OutputReady(target, None, error=str(exc)))
        except Exception as exc:  # noqa: BLE001
            where = log_bug("output capture")
            self.post_message(OutputReady(target, None, error=(
                f"internal error: {exc} (details in {where})")))

    def on_output_ready(self, message: OutputReady) -> None:
        output = self.query_one("#output", OutputView)
        if message.target == self.selected_agent and message.target is not None:
            if message.lines is not None:
                output.show_lines(message.target, message.lines, message.width)
                # Fewer lines than asked for: the whole scrollback is shown already.
                self._more_history = len(message.lines) >= self.history_lines
            elif message.error:
                self._last_capture = None
                output.show_message(message.target, message.error)
        if output.follow and self.history_lines > OUTPUT_HISTORY:
            self.history_lines = OUTPUT_HISTORY  # back at the bottom: the light capture
        # A long scrollback is for reading back: refresh it less often.
        long = self.history_lines > OUTPUT_HISTORY
        self.output_poll.interval = 1.0 if long else self.output_interval
        self.output_poll.done()

    @on(OutputView.WantsHistory)
    def _more_scrollback(self, event: OutputView.WantsHistory) -> None:
        if (event.target != self.selected_agent or not self._more_history
                or self.history_lines >= MAX_HISTORY):
            return
        self.history_lines = min(MAX_HISTORY, self.history_lines * 5)
        self._last_capture = None
        self.notify(f"loading up to {self.history_lines} lines of scrollback", timeout=2,
                    markup=False)
        self.output_poll.now()

    def on_grid_ready(self, message: GridReady) -> None:
        self._fill_grid(message.screens)
        self.output_poll.done()

    # -- grid ----------------------------------------------------------------------------

    def action_toggle_grid(self) -> None:
        grid = self.query_one("#grid", OutputGrid)
        output = self.query_one("#output", OutputView)
        grid.display = not grid.display
        output.display = not grid.display
        self.query_one("#details", AgentDetails).display = not grid.display
        if grid.display:
            self.call_after_refresh(self._arrange_grid)
        else:
            self._last_capture = None
            self.output_poll.now()

    @on(OutputGrid.Resized)
    def _grid_resized(self) -> None:
        if self.query_one("#grid", OutputGrid).display:
            self._arrange_grid(capture=False)

    def _arrange_grid(self, capture: bool = True) -> None:
        grid = self.query_one("#grid", OutputGrid)
        targets = [r.target for r in self.tree.visible_rows()]
        sel = self.selected_agent
        if sel in targets:  # the selected agent always has a tile, first if need be
            cols, rows = grid.capacity()
            if targets.index(sel) >= cols * rows:
                targets.remove(sel)
                targets.insert(0, sel)
        shown = grid.layout_tiles(targets)
        more = f" · {grid.hidden} more: filter with /" if grid.hidden else ""
        grid.border_title = Text(f"Grid · {len(shown)} agents{more}")
        if self.frozen is not None and self.snapshot is not None:
            self._fill_grid({t: AnsiLines().decode(trim_screen(s))
                             for t, s in self.snapshot.screens.items() if t in shown})
        else:
            self._fill_grid({})
            if capture:
                self.output_poll.now()

    def _fill_grid(self, screens: dict[str, list[Text]]) -> None:
        snap = self.snapshot
        for target, tile in self.query_one("#grid", OutputGrid).tiles().items():
            row = snap.agent(target) if snap else None
            tile.show(row, screens.get(target), target == self.selected,
                      snap.at if snap else None)

    @on(Tile.Clicked)
    def _tile_clicked(self, event: Tile.Clicked) -> None:
        self.act_on(event.target, None)

    # -- actions on agents ------------------------------------------------------------------

    def _need_live(self) -> Live | None:
        if self.live is None:
            self.notify("this screen shows frozen data: there is no squad to act on",
                        severity="error", markup=False)
        return self.live

    def _need_target(self, *, agent: bool = False, team: bool = False) -> str | None:
        sel = self.selected
        if not sel:
            self.notify("select an agent first", severity="warning", markup=False)
            return None
        if team:
            return sel.split("/")[0]
        if agent and "/" not in sel:
            self.notify(f"{sel} is a team: select one of its agents", severity="warning",
                        markup=False)
            return None
        return sel

    def _what(self, target: str) -> str:
        if "/" in target:
            return target
        n = sum(1 for r in self.snapshot.agents if r.team == target) if self.snapshot else 0
        return f"team {target} ({n} agent{'s' if n != 1 else ''})"

    def action_pause(self) -> None:
        if (target := self._need_target()) and self._need_live():
            self.run_control("pause", target)

    def action_resume(self) -> None:
        if (target := self._need_target()) and self._need_live():
            self.run_control("resume", target)

    def action_pause_team(self) -> None:
        if (target := self._need_target(team=True)) and self._need_live():
            self.run_control("pause", target)

    def action_resume_team(self) -> None:
        if (target := self._need_target(team=True)) and self._need_live():
            self.run_control("resume", target)

    def action_stop(self) -> None:
        target = self._need_target()
        if not target or not self._need_live():
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.notify(f"stopping {self._what(target)}…", markup=False, timeout=2)
                self.run_control("stop", target)

        self.push_screen(ConfirmDialog(
            f"Stop {self._what(target)}?",
            "Its whole process tree gets SIGTERM, then SIGKILL after the grace period. "
            "The window stays, showing the last screen; R restarts it.", "Stop"), answered)

    def action_restart(self) -> None:
        target = self._need_target()
        if not target or not self._need_live():
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.notify(f"restarting {self._what(target)}…", markup=False, timeout=2)
                self.run_control("restart", target)

        self.push_screen(ConfirmDialog(
            f"Restart {self._what(target)}?",
            "The agent is stopped (its work in progress is lost) and started again with "
            "the command, directory and environment of the layout.", "Restart"), answered)

    @work(thread=True, group="actions", exit_on_error=False)
    def run_control(self, verb: str, target: str) -> None:
        """Run ``squad.control.<verb>`` on a target in a thread; post the outcomes."""
        live = self.live
        assert live is not None
        try:
            agents = live.resolve(target)
            outcomes = getattr(control, verb)(live, agents, by="ui")
            self.post_message(ActionsDone(verb, outcomes))
        except SquadError as exc:
            self.post_message(ActionsDone(verb, error=str(exc)))
        except Exception as exc:  # noqa: BLE001
            where = log_bug(f"{verb} {target}")
            self.post_message(ActionsDone(verb, error=f"internal error: {exc} (see {where})"))

    def on_actions_done(self, message: ActionsDone) -> None:
        title = message.action.capitalize()
        if message.error:
            self.notify(message.error, title=f"{title} failed", severity="error",
                        markup=False)
        ok = [o for o in message.outcomes if o.ok]
        bad = [o for o in message.outcomes if not o.ok]
        if ok:
            self.notify("\n".join(f"{o.target}: {o.message}" for o in ok), title=title,
                        markup=False)
        if bad:
            self.notify("\n".join(f"{o.target}: {o.message}" for o in bad),
                        title=f"{title} failed", severity="error", markup=False)
        if message.message:
            self.notify(message.message, title=title, markup=False)
        if message.then_exit:
            squad = self.live.squad.name if self.live else "squad"
            lines = [f"squad {squad}: stopped {len(ok)} agent{'s' if len(ok) != 1 else ''}"]
            lines += [f"  {o.target}: {o.message}" for o in bad]
            self.exit(return_code=1 if bad else 0, message=Text("\n".join(lines)))
            return
        self.tick_poll.now()
        self._last_capture = None
        self.output_poll.now()
        if self.query_one("#tasks", TaskPanel).display:
            self.tasks_poll.now()
        if self.query_one("#events", EventsPanel).display:
            self.events_poll.now()

    def action_attach(self) -> None:
        target = self._need_target(agent=True)
        live = self._need_live()
        if not target or live is None:
            return
        try:
            (agent,) = live.resolve(target)
            argv = control.attach_argv(live, agent)
        except SquadError as exc:
            self.notify(str(exc), title="Attach failed", severity="error", markup=False)
            return
        env = dict(os.environ)
        env.pop("TMUX", None)
        try:
            with self.suspend():
                print(f"squad: attaching to {target}; detach with C-b d to come back",
                      flush=True)
                code = subprocess.run(argv, env=env, check=False).returncode
        except SuspendNotSupported:
            self.notify(f"attach needs a real terminal: run `squad attach {target}` in "
                        "another one", title="Attach", severity="error", markup=False)
            return
        except OSError as exc:
            self.notify(f"could not run tmux: {exc}", title="Attach failed",
                        severity="error", markup=False)
            return
        if code == 0:
            self.notify(f"detached from {target}", title="Attach", markup=False)
        else:
            self.notify(f"tmux attach exited with status {code}", title="Attach failed",
                        severity="error", markup=False)
        self.refresh(layout=True)
        self.tick_poll.now()

    def action_send_input(self) -> None:
        target = self._need_target(agent=True)
        if not target or not self._need_live():
            return

        def answered(text: str | None) -> None:
            if text is not None:
                self._send(target, text)

        self.push_screen(SendDialog(target, blink=self.frozen is None), answered)

    @work(thread=True, group="actions", exit_on_error=False)
    def _send(self, target: str, text: str) -> None:
        live = self.live
        assert live is not None
        try:
            (agent,) = live.resolve(target)
            outcome = control.send(live, agent, text.encode(), by="ui")
            self.post_message(ActionsDone("send", [outcome]))
        except SquadError as exc:
            self.post_message(ActionsDone("send", error=str(exc)))
        except Exception as exc:  # noqa: BLE001
            where = log_bug(f"send {target}")
            self.post_message(ActionsDone("send", error=f"internal error: {exc} (see {where})"))

    def action_dispatch(self) -> None:
        def answered(request: DispatchRequest | None) -> None:
            if request is not None:
                if self._need_live():
                    self._dispatch(request)

        self.push_screen(DispatchDialog(
            self.targets(), self.selected_agent, queue=not isinstance(self.tasks, DirectSend),
            blink=self.frozen is None), answered)

    @work(thread=True, group="actions", exit_on_error=False)
    def _dispatch(self, request: DispatchRequest) -> None:
        try:
            message = self.tasks.dispatch(request.prompt, request.priority, request.tags,
                                          request.target)
            self.post_message(ActionsDone("dispatch", message=message))
        except SquadError as exc:
            self.post_message(ActionsDone("dispatch", error=str(exc)))
        except Exception as exc:  # noqa: BLE001
            where = log_bug("dispatch")
            self.post_message(ActionsDone("dispatch",
                                          error=f"internal error: {exc} (see {where})"))

    def action_quit_and_stop(self) -> None:
        live = self._need_live()
        if live is None:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.notify(f"stopping every agent of squad {live.squad.name}…",
                            markup=False)
                self._down()

        n = len(self.snapshot.agents) if self.snapshot else 0
        self.push_screen(ConfirmDialog(
            f"Stop all {n} agents of squad {live.squad.name} and quit?",
            "Every agent's process tree is stopped and the squad's tmux sessions are "
            "removed. Worktrees are kept.", "Stop all and quit"), answered)

    @work(thread=True, group="actions", exit_on_error=False)
    def _down(self) -> None:
        live = self.live
        assert live is not None
        try:
            outcomes = control.down(live, by="ui")
            self.post_message(ActionsDone("down", outcomes, then_exit=True))
        except SquadError as exc:
            self.post_message(ActionsDone("down", error=str(exc)))
        except Exception as exc:  # noqa: BLE001
            where = log_bug("down")
            self.post_message(ActionsDone("down", error=f"internal error: {exc} (see {where})"))

    # -- panels --------------------------------------------------------------------------

    def _toggle_panel(self, panel_id: str) -> bool:
        panel = self.query_one(panel_id)
        panel.display = not panel.display
        drawer = self.query_one("#drawer")
        drawer.display = any(p.display for p in drawer.children)
        if panel.display:
            panel.query_one("DataTable").focus()
        else:
            self.tree.focus()
        return bool(panel.display)

    def action_toggle_tasks(self) -> None:
        if self._toggle_panel("#tasks"):
            if self.frozen is not None:
                self.query_one("#tasks", TaskPanel).show(self.tasks.list_tasks())
            else:
                self.tasks_poll.now()

    def action_toggle_events(self) -> None:
        if self._toggle_panel("#events"):
            if self.frozen is not None:
                self.query_one("#events", EventsPanel).show(self.frozen_events)
            else:
                self.events_poll.now()

    def _start_tasks(self) -> None:
        if self.query_one("#tasks", TaskPanel).display:
            self._tasks_worker()
        else:
            self.tasks_poll.busy = False

    def _start_events(self) -> None:
        if self.query_one("#events", EventsPanel).display:
            self._events_worker()
        else:
            self.events_poll.busy = False

    @work(thread=True, exclusive=True, group="tasks", exit_on_error=False)
    def _tasks_worker(self) -> None:
        try:
            self.post_message(TasksReady(self.tasks.list_tasks()))
        except SquadError as exc:
            self.post_message(TasksReady([], error=str(exc)))
        except Exception as exc:  # noqa: BLE001
            where = log_bug("task list")
            self.post_message(TasksReady([], error=f"internal error: {exc} (see {where})"))

    def on_tasks_ready(self, message: TasksReady) -> None:
        panel = self.query_one("#tasks", TaskPanel)
        panel.show(message.tasks, message.error)
        self.tasks_poll.done(schedule=bool(panel.display))

    @work(thread=True, exclusive=True, group="events", exit_on_error=False)
    def _events_worker(self) -> None:
        live = self.live
        assert live is not None
        try:
            # Only what was appended since the last read is parsed (the trail can be long);
            # the window of the newest events goes to the panel, each numbered once.
            if self._event_tail is None:
                self._event_tail = events.Tail(live.squad.name, history=False)
            for ev in self._event_tail.read():
                self._event_seq += 1
                self._event_window.append(dict(ev, _seq=self._event_seq))
            self.post_message(EventsReady(list(self._event_window)))
        except Exception as exc:  # noqa: BLE001
            where = log_bug("events")
            self.post_message(EventsReady([], error=f"internal error: {exc} (see {where})"))

    def on_events_ready(self, message: EventsReady) -> None:
        panel = self.query_one("#events", EventsPanel)
        if message.error:
            self.notify(message.error, title="Events", severity="error", markup=False)
        else:
            panel.show(message.events)
        self.events_poll.done(schedule=bool(panel.display))

    # -- filter, help, back ------------------------------------------------------------------

    def action_filter(self) -> None:
        field = self.query_one("#filter", Input)
        field.display = True
        field.focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self._apply_filter(event.value)

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        if not event.value.strip():
            self.query_one("#filter", Input).display = False
        self.tree.focus()

    def _set_filter(self, text: str) -> None:
        field = self.query_one("#filter", Input)
        field.value = text
        field.display = bool(text)
        self._apply_filter(text)

    def _apply_filter(self, text: str) -> None:
        tree = self.tree
        tree.show(filter=text)
        shown = len(tree.visible_rows())
        total = len(self.snapshot.agents) if self.snapshot else 0
        tree.border_subtitle = Text(f"{shown}/{total} match “{text.strip()}”") if text.strip() \
            else ""
        self._sync_selection()
        if self.query_one("#grid", OutputGrid).display:
            self._arrange_grid()

    def action_back(self) -> None:
        field = self.query_one("#filter", Input)
        if field.display:
            self._set_filter("")
            self.tree.focus()
        elif self.query_one("#grid", OutputGrid).display:
            self.action_toggle_grid()
        elif self.query_one("#drawer").display:
            for panel_id in ("#tasks", "#events"):
                self.query_one(panel_id).display = False
            self.query_one("#drawer").display = False
            self.tree.focus()

    def key_list(self) -> list[tuple[str, str]]:
        """Every key with what it does, for the help screen."""
        keys = []
        for binding in self.BINDINGS:
            assert isinstance(binding, Binding)
            if not binding.show:
                continue
            keys.append((self.get_key_display(binding), binding.tooltip or binding.description))
        return keys + list(self.EXTRA_KEYS)

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.key_list()))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for binding in self.BINDINGS:
            assert isinstance(binding, Binding)
            if not binding.show:
                continue
            key = self.get_key_display(binding)
            yield SystemCommand(f"{binding.description} ({key})",
                                binding.tooltip or binding.description,
                                partial(self.run_action, binding.action))


def _bring_up(path: Path, tmux: Any) -> tuple[str, str]:
    from squad import layout

    squad = layout.load(path)
    outcomes = control.up(squad, tmux, by="ui")
    started = sum(o.data.get("state") in ("created", "restarted") for o in outcomes)
    kept = len(outcomes) - started
    return squad.name, f"squad {squad.name}: {started} started, {kept} already running"


def run_ui(args: Any, demo_layout: Path) -> int:
    """``squad [LAYOUT]``: bring the layout (or, with nothing running, the demo) up, open
    the UI on it, and leave the agents running when the user quits."""
    from squad.live import running_squads, socket_name
    from squad.tmux import Tmux

    tmux = Tmux(socket_name(getattr(args, "socket", None)))
    name = getattr(args, "squad_name", None)
    note = None
    if getattr(args, "layout", None):
        name, note = _bring_up(Path(args.layout), tmux)
    elif not (name or os.environ.get("SQUAD_NAME")) and not running_squads(tmux):
        name, note = _bring_up(demo_layout, tmux)
        note += " (the demo: quit with q, stop it with Q or `squad down`)"
    live = Live.open(tmux, name)
    app = SquadApp(live, note=note)
    app.run()
    if app.return_code not in (None, 0):
        return app.return_code
    if live.tmux.alive() and running_squads(live.tmux).get(live.squad.name):
        print(f"squad {live.squad.name} keeps running on socket {live.tmux.socket}: `squad` "
              "opens it again, `squad down` stops it")
    return 0
