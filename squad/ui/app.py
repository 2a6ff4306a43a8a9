"""The squad application: the screen's layout, its keys, and how results are shown.

Data flows one way. The feeds (:mod:`squad.ui.feeds`: the supervisor tick, tasks, events;
:mod:`squad.ui.stream`: the output on screen) read in thread workers and post messages;
the handlers here show them. Keys become calls into :mod:`squad.control`
(:mod:`squad.ui.actions`) whose outcomes come back as notifications. Nothing on the event
loop waits for tmux, psutil or git.

``SquadApp(frozen=snapshot)`` shows a fixed snapshot with no live squad, no timers and no
blinking cursor: the snapshot tests and the benchmark use it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Input, Tree

from squad import control
from squad.live import Live
from squad.snapshot import AgentRow, Snapshot
from squad.style import ATTENTION
from squad.ui.actions import AgentActions
from squad.ui.agents import AgentTree
from squad.ui.commands import AGENT_ACTION_NAMES, AgentCommands
from squad.ui.details import AgentDetails
from squad.ui.dialogs import HelpScreen
from squad.ui.diffview import Rendered
from squad.ui.feeds import EventFeed, TaskFeed, TickFeed
from squad.ui.header import SquadHeader, pressure_note
from squad.ui.keybar import KeyBar
from squad.ui.messages import (
    EventsReady,
    GridReady,
    History,
    OutputReady,
    PaneOutput,
    SnapshotReady,
    TasksReady,
    TickFailed,
)
from squad.ui.output import OutputGrid, OutputView, Tile
from squad.ui.paint import set_title
from squad.ui.panels import EventsPanel, PolicyPanel, TaskPanel
from squad.ui.render import STATUS_WORD, AnsiLines, status_text, trim_screen
from squad.ui.stream import SAFETY, OutputFeed
from squad.ui.task_queue import QueueTasks, StaticTasks, TaskProvider


class SquadApp(AgentActions, App[None]):
    """Teams and agents on the left, the selected agent's output and usage on the right."""

    CSS_PATH = "squad.tcss"
    TITLE = "squad"
    COMMANDS = App.COMMANDS | {AgentCommands}
    HORIZONTAL_BREAKPOINTS: ClassVar[list[tuple[int, str]]] = [
        (0, "-narrow"), (100, "-normal"), (160, "-wide"),
    ]
    VERTICAL_BREAKPOINTS: ClassVar[list[tuple[int, str]]] = [(0, "-short"), (24, "-tall")]
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("question_mark", "help", "Help", key_display="?",
                tooltip="Every key, what the glyphs mean"),
        Binding("p", "pause", "Pause", tooltip="Pause the selected agent (SIGSTOP its tree)"),
        Binding("r", "resume", "Resume", tooltip="Resume the selected agent"),
        Binding("s", "stop", "Stop", tooltip="Stop the selected agent (asks first)"),
        Binding("R", "restart", "Restart",
                tooltip="Restart the selected agent (asks first); with no window: squad up"),
        Binding("h", "hibernate", "Hibernate",
                tooltip="Hibernate: stop its tree to free memory, keep its conversation"),
        Binding("w", "wake", "Wake", tooltip="Wake a hibernated agent in its conversation"),
        Binding("a", "attach", "Attach",
                tooltip="Attach the terminal to the agent's window (detach: C-b d)"),
        Binding("i", "send_input", "Input",
                tooltip="Send the agent a line of text, or keys (Escape, C-c, Up, Enter)"),
        Binding("d", "dispatch", "Dispatch", tooltip="Dispatch a task (a form)"),
        Binding("D", "diff", "Diff",
                tooltip="What the agent's worktree changed; merge it, send feedback"),
        Binding("g", "toggle_grid", "Grid", tooltip="Several agents' output side by side"),
        Binding("t", "toggle_tasks", "Tasks",
                tooltip="Show or hide the task panel (c cancels, r retries, + raises)"),
        Binding("e", "toggle_events", "Events", tooltip="Show or hide the events panel"),
        Binding("o", "toggle_policy", "Policy",
                tooltip="Resource policy: pressure now, limits, what the governor did"),
        Binding("slash", "filter", "Filter", key_display="/",
                tooltip="Filter agents by name, role, status, task or tag"),
        Binding("A", "add_agent", "Add", tooltip="Add an agent to the running squad (a form)"),
        Binding("X", "remove_agent", "Remove",
                tooltip="Remove the selected agent from the squad (asks first)"),
        Binding("P", "pause_team", "Pause team",
                tooltip="Pause every agent of the selected agent's team"),
        Binding("U", "resume_team", "Resume team",
                tooltip="Resume every agent of the selected agent's team"),
        Binding("q", "quit", "Quit", tooltip="Quit; the agents keep running"),
        Binding("Q", "quit_and_stop", "Quit+stop",
                tooltip="Stop every agent of the squad, then quit (asks first)"),
        Binding("escape", "back", "Back", show=False),
    ]
    FOOTER_RANKS: ClassVar[list[str]] = [
        "help", "quit", "pause", "resume", "attach", "send_input", "dispatch", "stop",
        "restart", "quit_and_stop", "diff", "toggle_tasks", "toggle_grid", "hibernate",
        "wake", "toggle_events", "filter", "toggle_policy", "add_agent", "remove_agent",
        "pause_team", "resume_team",
    ]
    """Which keys the footer keeps when they do not all fit, most important first."""
    EXTRA_KEYS: ClassVar[list[tuple[str, str]]] = [
        ("↑ ↓ · click", "select a team or agent (team: p r s R h w act on the whole team)"),
        ("Tab", "move focus: agents, output, panels"),
        ("PgUp PgDn · wheel", "scroll the output (focus it with Tab)"),
        ("End", "follow new output again"),
        ("c r +", "in the task panel: cancel, retry, raise the priority of the task"),
        ("m f r n N", "in the diff view: merge, feedback, reload, next and previous file"),
        ("Esc", "clear the filter, close the grid, the panels or the diff view"),
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
        safety: float = SAFETY,
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
        self.snapshot: Snapshot | None = None
        self.history: History = {}
        self.selected: str | None = None
        """The target under the cursor: ``team/agent`` or ``team``."""
        self.statuses: dict[str, str] = {}
        self.observing: str | None = None
        self.problem: str | None = None
        self.link: str | None = None
        """Why output is polled rather than streamed (None: it streams)."""
        if tasks is None:
            tasks = QueueTasks(live) if live is not None else StaticTasks()
        self.tasks = tasks
        if mem_total is None:
            import psutil

            mem_total = 16 * 1024**3 if frozen is not None else psutil.virtual_memory().total
        self.mem_total = mem_total
        self.ticks: TickFeed | None = None
        self.stream: OutputFeed | None = None
        self.task_feed: TaskFeed | None = None
        self.event_feed: EventFeed | None = None
        if live is not None:
            self.ticks = TickFeed(self, live, interval)
            self.stream = OutputFeed(self, live, safety=safety)
            self.task_feed = TaskFeed(self, tasks,
                                      lambda: bool(self.task_panel.display))
            self.event_feed = EventFeed(self, live,
                                        lambda: bool(self.events_panel.display),
                                        EventsPanel.LIMIT)
        self.policy: dict | None = None
        """The governor's state as the last tick saw it (see TickFeed._policy)."""
        self.summaries: dict = {}
        """target -> what its worktree changed (DiffSummary or None)."""
        self.diffs: dict[str, Rendered] = {}
        """The diff view's last rendering per agent: it opens at once and refreshes."""

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
                    yield PolicyPanel(id="policy")
                yield AgentDetails(id="details")
        ranks = {action: i for i, action in enumerate(self.FOOTER_RANKS)}
        yield KeyBar(ranks, compact=True)

    def on_mount(self) -> None:
        # Kept once: handlers use them without a query (also while the app shuts down).
        self.output_view = self.query_one("#output", OutputView)
        self.grid_view = self.query_one("#grid", OutputGrid)
        self.details_view = self.query_one("#details", AgentDetails)
        self.header_bar = self.query_one("#header", SquadHeader)
        self.task_panel = self.query_one("#tasks", TaskPanel)
        self.events_panel = self.query_one("#events", EventsPanel)
        self.policy_panel = self.query_one("#policy", PolicyPanel)
        self.agent_tree = self.query_one("#agents", AgentTree)
        self.agent_tree.border_title = "Agents"
        self.output_view.border_title = "Output"
        self.grid_view.border_title = "Grid"
        self.task_panel.border_title = Text(f"Tasks · {self.tasks.name}")
        self.events_panel.border_title = "Events"
        self.policy_panel.border_title = "Policy"
        self.details_view.border_title = "Details"
        for button in self.query("#buttons Button"):
            button.can_focus = False
        self.tree.focus()
        name = self.live.squad.name if self.live else self.frozen.squad if self.frozen else ""
        self.title = f"squad {name}"  # the terminal's window title
        if self.frozen is not None:
            self.apply_snapshot(self.frozen, self.frozen_history)
        else:
            if self.note:
                self.notify(self.note, title="squad", markup=False)
            self.ticks_now()

    def on_unmount(self) -> None:
        if self.stream is not None:
            self.stream.stop()
        for feed in (self.task_feed, self.event_feed):
            if feed is not None:
                feed.poll.stop()
        if self.ticks is not None:
            self.ticks.close()

    # -- what the app knows --------------------------------------------------------------

    @property
    def tree(self) -> AgentTree:  # type: ignore[override] - App.tree shows the DOM
        return self.agent_tree

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

    # -- refreshing ----------------------------------------------------------------------

    def ticks_now(self) -> None:
        """A supervisor tick as soon as possible."""
        if self.ticks is not None:
            self.ticks.poll.now()

    def hold_refreshes(self, seconds: float) -> None:
        """Start no capture and no tick for ``seconds`` (an action that must be quick)."""
        if self.stream is not None:
            self.stream.hold(seconds)
        if self.ticks is not None:
            self.ticks.poll.hold(seconds)

    def release_refreshes(self) -> None:
        if self.stream is not None:
            self.stream.release()
        if self.ticks is not None:
            self.ticks.poll.release()

    def refresh_all(self) -> None:
        """After an action: everything shown is read again at once."""
        self.ticks_now()
        if self.stream is not None:
            self.stream.forget()
            self.stream.request(forced=True, now=True)
        if self.task_feed is not None and self.task_panel.display:
            self.task_feed.poll.now()
        if self.event_feed is not None and self.events_panel.display:
            self.event_feed.poll.now()

    # -- the supervisor tick ---------------------------------------------------------------

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
        self.link = message.link
        if message.policy is not None or self.observing:
            self.policy = message.policy
        if message.summaries is not None:
            self.summaries = message.summaries
        for line in message.failures[-3:]:
            self.notify(line, title="notification failed", severity="warning", timeout=8,
                        markup=False)
        self.apply_snapshot(message.snapshot, message.history)
        if self.policy_panel.display:
            self.policy_panel.show(self.policy)
        if self.ticks is not None:
            self.ticks.poll.done()

    def on_tick_failed(self, message: TickFailed) -> None:
        if message.error != self.problem:
            self.notify(message.error, title="refresh failed", severity="error",
                        markup=False)
        self.problem = message.error
        if self.snapshot is not None:
            self._show_header()
        if self.ticks is not None:
            self.ticks.poll.done()

    def apply_snapshot(self, snap: Snapshot, history: History) -> None:
        """Show a snapshot everywhere; ring the bell for agents that now need attention."""
        entered = [r for r in snap.agents if r.status in ATTENTION
                   and self.statuses.get(r.target) not in (None, *ATTENTION)]
        self.statuses = {r.target: r.status for r in snap.agents}
        self.snapshot = snap
        self.history = history
        self._show_header()
        self.tree.show(snap, limits=self._memory_limits(), summaries=self.summaries)
        self._sync_selection()
        self._show_selected()
        if self.grid_view.display:
            self._arrange_grid(capture=False)
        if entered:
            self.bell()
            for row in entered:
                self.notify(f"{row.target} {STATUS_WORD[row.status]}", title="attention",
                            severity="warning", markup=False)

    def _memory_limits(self) -> dict[str, tuple[int | None, int | None]]:
        """target -> (memory_warn_mb, memory_limit_mb): the tree colours memory past them."""
        if self.live is None:
            return {}
        return {a.target: (a.memory_warn_mb, a.memory_limit_mb)
                for a in self.live.squad.agents() if a.memory_warn_mb or a.memory_limit_mb}

    def _show_header(self) -> None:
        if self.snapshot is None:
            return
        if self.frozen is not None:
            note = "frozen"
        elif self.observing:
            note = "observing: another supervisor dispatches"
        else:
            note = "supervising"
        self.header_bar.show(self.snapshot, note, self.problem, self.link,
                             pressure=pressure_note(self.policy))

    # -- selection -----------------------------------------------------------------------

    @on(Tree.NodeHighlighted, "#agents")
    def _highlighted(self, event: Tree.NodeHighlighted) -> None:
        self._sync_selection()

    def _sync_selection(self) -> None:
        target = self.tree.selected
        if target == self.selected:
            return
        self.selected = target
        self._show_selected()
        output = self.output_view
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
        if self.grid_view.display:
            self._arrange_grid(capture=False)
        self._want_output()

    def _show_selected(self) -> None:
        """Output title and details for the selected agent or team."""
        rows = self.selected_rows()
        output = self.output_view
        title = Text(no_wrap=True, overflow="ellipsis")
        now = self.snapshot.at if self.snapshot else time.time()
        if self.selected_agent and rows:
            row = rows[0]
            title.append(row.target, style="bold")
            if row.role:
                title.append(f" · {row.role}")
            title.append(" · ")
            title.append_text(status_text(row))  # no age: it would repaint the view each second
        elif self.selected:
            title.append(f"team {self.selected}", style="bold")
        else:
            title.append("Output")
        set_title(output, title)
        hist = self._selected_history(rows)
        limit = None
        if self.live is not None and self.selected_agent:
            agent = self.live.squad.agent(self.selected_agent)
            mb = getattr(agent, "memory_limit_mb", None) if agent is not None else None
            limit = int(mb) * 1024 * 1024 if mb else None
        self.details_view.show(
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

    def _want_output(self) -> None:
        """Tell the output feed what is on screen now: the selected agent, or the grid."""
        if self.stream is None:
            return
        grid = self.grid_view
        self.stream.show(self.selected_agent, list(grid.targets) if grid.display else None)

    def on_output_ready(self, message: OutputReady) -> None:
        output = self.output_view
        lines = None
        if message.target == self.selected_agent and message.target is not None:
            if message.lines is not None:
                output.show_lines(message.target, message.lines, message.width)
                lines = len(message.lines)
            elif message.error:
                output.show_message(message.target, message.error)
                if self.stream is not None:
                    self.stream.forget()
        if self.stream is not None:
            self.stream.done(lines, output.follow)

    @on(OutputView.WantsHistory)
    def _more_scrollback(self, event: OutputView.WantsHistory) -> None:
        if (event.target == self.selected_agent and self.stream is not None
                and self.stream.more()):
            self.notify(f"loading up to {self.stream.history} lines of scrollback",
                        timeout=2, markup=False)

    def on_pane_output(self, message: PaneOutput) -> None:
        if self.stream is not None:
            self.stream.poked()

    def on_grid_ready(self, message: GridReady) -> None:
        self._fill_grid(message.screens)
        if self.stream is not None:
            self.stream.done(None, True)

    # -- grid ----------------------------------------------------------------------------

    def action_toggle_grid(self) -> None:
        grid = self.grid_view
        output = self.output_view
        grid.display = not grid.display
        output.display = not grid.display
        self.details_view.display = not grid.display
        if grid.display:
            self.call_after_refresh(self._arrange_grid)
        else:
            self._want_output()

    @on(OutputGrid.Resized)
    def _grid_resized(self) -> None:
        if self.grid_view.display:
            self._arrange_grid(capture=False)

    def _arrange_grid(self, capture: bool = True) -> None:
        grid = self.grid_view
        targets = [r.target for r in self.tree.visible_rows()]
        sel = self.selected_agent
        if sel in targets:  # the selected agent always has a tile, first if need be
            cols, rows = grid.capacity()
            if targets.index(sel) >= cols * rows:
                targets.remove(sel)
                targets.insert(0, sel)
        shown = grid.layout_tiles(targets)
        more = f" · {grid.hidden} more: filter with /" if grid.hidden else ""
        set_title(grid, Text(f"Grid · {len(shown)} agents{more}"))
        if self.frozen is not None and self.snapshot is not None:
            self._fill_grid({t: AnsiLines().decode(trim_screen(s))
                             for t, s in self.snapshot.screens.items() if t in shown})
        else:
            self._fill_grid({})
            if capture:
                self._want_output()

    def _fill_grid(self, screens: dict[str, list[Text]]) -> None:
        snap = self.snapshot
        for target, tile in self.grid_view.tiles().items():
            row = snap.agent(target) if snap else None
            tile.show(row, screens.get(target), target == self.selected,
                      snap.at if snap else None)

    @on(Tile.Clicked)
    def _tile_clicked(self, event: Tile.Clicked) -> None:
        self.act_on(event.target, None)

    # -- panels --------------------------------------------------------------------------

    def _toggle_panel(self, panel_id: str) -> bool:
        panel = self.query_one(panel_id)
        panel.display = not panel.display
        drawer = self.query_one("#drawer")
        drawer.display = any(p.display for p in drawer.children)
        if panel.display:
            tables = panel.query("DataTable")
            (tables.first() if tables else panel).focus()
        else:
            self.tree.focus()
        return bool(panel.display)

    def action_toggle_tasks(self) -> None:
        if self._toggle_panel("#tasks"):
            if self.task_feed is None:
                self.task_panel.show(self.tasks.list_tasks())
            else:
                self.task_feed.poll.now()

    def action_toggle_events(self) -> None:
        if self._toggle_panel("#events"):
            if self.event_feed is None:
                self.events_panel.show(self.frozen_events)
            else:
                self.event_feed.poll.now()

    def action_toggle_policy(self) -> None:
        shown = self._toggle_panel("#policy")
        if self.ticks is not None:
            self.ticks.want_policy = shown
            if shown:
                self.ticks_now()
        if shown:
            self.policy_panel.show(self.policy)

    def on_tasks_ready(self, message: TasksReady) -> None:
        panel = self.task_panel
        panel.show(message.tasks, message.error)
        if self.task_feed is not None:
            self.task_feed.poll.done(schedule=bool(panel.display))

    def on_events_ready(self, message: EventsReady) -> None:
        panel = self.events_panel
        if message.error:
            self.notify(message.error, title="Events", severity="error", markup=False)
        else:
            panel.show(message.events)
        if self.event_feed is not None:
            self.event_feed.poll.done(schedule=bool(panel.display))

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
        if self.grid_view.display:
            self._arrange_grid()

    def action_back(self) -> None:
        field = self.query_one("#filter", Input)
        if field.display:
            self._set_filter("")
            self.tree.focus()
        elif self.grid_view.display:
            self.action_toggle_grid()
        elif self.query_one("#drawer").display:
            for panel_id in ("#tasks", "#events", "#policy"):
                self.query_one(panel_id).display = False
            if self.ticks is not None:
                self.ticks.want_policy = False
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
        """Textual's own (theme, keys, screenshot; not its quit: ours says the agents keep
        running), and every action that is not on one agent: those are listed per agent
        by :class:`AgentCommands`, so that each shows once."""
        for command in super().get_system_commands(screen):
            if command.title != "Quit":
                yield command
        for binding in self.BINDINGS:
            assert isinstance(binding, Binding)
            if not binding.show or binding.action in AGENT_ACTION_NAMES:
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
