"""The panels under the output: tasks (key ``t``: cancel, retry, raise a priority), events
(key ``e``) and resource policy (key ``o``: pressure, limits, what the governor did)."""

from __future__ import annotations

import time
from collections import deque
from datetime import datetime

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.widgets import DataTable, Static

from squad.style import STATUS_GLYPH, STATUS_STYLE
from squad.ui.paint import update

TASK_STYLE = {
    "queued": "cyan", "assigned": "blue", "in_progress": "green", "review": "yellow",
    "done": "dim green", "failed": "bold red", "cancelled": "dim", "rejected": "magenta",
    "sent": "green",
}
PRIORITY_STYLE = {"critical": "bold red", "high": "yellow", "medium": "", "low": "dim"}


def _when(value: object) -> str:
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value).strftime("%H:%M:%S")
    return str(value or "")[:19]


class TaskPanel(Vertical):
    """Tasks from the task provider: id, title, status, priority, agent, attempts, age.
    Keys act on the task under the cursor while the panel has the focus."""

    BINDINGS = [
        Binding("c", "app.cancel_task", "Cancel task",
                tooltip="Cancel the task under the cursor (asks first)"),
        Binding("r", "app.retry_task", "Retry task",
                tooltip="Queue a failed or cancelled task again"),
        Binding("plus", "app.raise_priority", "Raise priority", key_display="+",
                tooltip="Raise the task's priority one step (low → medium → high → critical)"),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._tasks: list[dict] | None = None
        self._note: str | None = None

    def compose(self) -> ComposeResult:
        table: DataTable = DataTable(id="task-table", cursor_type="row", zebra_stripes=True)
        table.add_columns("#", "title", "status", "priority", "agent", "tries", "created")
        yield table
        yield Static(id="task-note")

    def selected_task(self) -> dict | None:
        """The task under the cursor, as listed."""
        table = self.query_one(DataTable)
        if not self._tasks or table.row_count == 0:
            return None
        row = table.cursor_row
        return self._tasks[row] if 0 <= row < len(self._tasks) else None

    def show(self, tasks: list[dict], note: str | None = None) -> None:
        """List the tasks (unchanged lists are not redrawn); the cursor stays on the same
        task as rows come and go."""
        if tasks == self._tasks and note == self._note:
            return
        table = self.query_one(DataTable)
        keep = self.selected_task()
        self._tasks, self._note = list(tasks), note
        table.clear()
        for t in tasks:
            status = str(t.get("status", ""))
            prio = str(t.get("priority", ""))
            table.add_row(
                Text(str(t.get("id", ""))), Text(str(t.get("title", ""))),
                Text(status, style=TASK_STYLE.get(status, "")),
                Text(prio, style=PRIORITY_STYLE.get(prio, "")),
                Text(str(t.get("agent") or "-")), Text(str(t.get("attempts", ""))),
                Text(_when(t.get("created"))),
            )
        if tasks:
            ids = [t.get("id") for t in tasks]
            row = ids.index(keep.get("id")) if keep and keep.get("id") in ids else 0
            table.move_cursor(row=row)
        update(self.query_one("#task-note", Static),
               Text(note or ("no tasks yet: press d to dispatch one" if not tasks else ""),
                    style="dim italic"))


def event_details(ev: dict) -> Text:
    text = Text(no_wrap=True, overflow="ellipsis")
    status = ev.get("status")
    if isinstance(status, str) and status in STATUS_GLYPH:
        text.append(f"{STATUS_GLYPH[status]} ", style=STATUS_STYLE.get(status, ""))
    parts = []
    for key in ("reason", "result", "error", "preview"):
        if ev.get(key):
            parts.append(f"{key}={ev[key]}")
    text.append("  ".join(parts).replace("\n", "⏎"),
                style="red" if ev.get("error") else "")
    return text


class EventsPanel(Vertical):
    """The squad's audit trail, newest last; follows new events while at the bottom."""

    LIMIT = 500

    def compose(self) -> ComposeResult:
        table: DataTable = DataTable(id="event-table", cursor_type="row", zebra_stripes=True)
        table.add_columns("time", "by", "action", "target", "details")
        yield table

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._seq = 0  # the newest event shown (events from the app carry "_seq")
        self._keys: deque[str] = deque()

    def show(self, events: list[dict]) -> None:
        """Show the newest :data:`LIMIT` events. Events numbered by the app's reader
        (``_seq``) are added as they come and the oldest rows dropped, so a long trail is
        never redrawn whole; a plain list (a frozen snapshot) replaces what is shown."""
        events = events[-self.LIMIT:]
        table = self.query_one(DataTable)
        if events and "_seq" in events[-1]:
            new = [ev for ev in events if ev["_seq"] > self._seq]
            if not new:
                return
        else:
            table.clear()
            self._keys.clear()
            self._seq = 0
            new = events
        at_end = table.scroll_y >= table.max_scroll_y
        for i, ev in enumerate(new):
            action = str(ev.get("action", ""))
            key = f"e{ev['_seq']}" if "_seq" in ev else f"f{i}"
            table.add_row(
                Text(_when(ev.get("ts") or time.time())), Text(str(ev.get("by") or "")),
                Text(action, style="red" if action.endswith(".failed") else "bold"),
                Text(str(ev.get("target") or "-")), event_details(ev), key=key,
            )
            self._keys.append(key)
            self._seq = max(self._seq, int(ev.get("_seq", 0)))
        while len(self._keys) > self.LIMIT:
            table.remove_row(self._keys.popleft())
        if at_end or len(new) == len(self._keys):
            table.move_cursor(row=table.row_count - 1, animate=False)
            table.scroll_end(animate=False)


def policy_text(state: dict | None) -> Text:
    """The policy panel's content: pressure now against the governor's thresholds, what it
    holds and did last, CPU limits and their mechanisms, each agent's limits, and
    notifications that failed. ``state`` is what the tick feed gathered."""
    text = Text()
    if not state:
        text.append("reading…", style="dim italic")
        return text
    gov = state.get("governor") or {}
    config = gov.get("config") or {}
    who = "this UI supervises" if state.get("supervising") else "another supervisor acts"
    text.append("governor ", style="bold")
    text.append(", ".join(f"{k}={v}" for k, v in config.items()) or "off (no [governor] table)",
                style="" if config else "dim")
    text.append(f"  ({who})\n", style="dim")
    p = state.get("pressure_now") or gov.get("pressure") or {}
    if p:
        text.append("pressure now ", style="bold")
        bits = []
        if p.get("available_mb") is not None and p.get("total_mb"):
            bits.append(f"available {p['available_mb']:.0f} of {p['total_mb']:.0f} MiB")
        if p.get("memory_psi") is not None:
            bits.append(f"memory PSI {p['memory_psi']:.1f}%")
        if p.get("cpu_psi") is not None:
            bits.append(f"CPU PSI {p['cpu_psi']:.1f}%")
        if p.get("load1") is not None:
            bits.append(f"load {p['load1']:.2f} on {p.get('cores', 1)} cores")
        text.append(" · ".join(bits))
        level = gov.get("level")
        if level and level != "ok":
            text.append(f"  {level}", style="bold red" if level == "high" else "yellow")
        text.append("\n")
    if gov.get("note"):
        text.append(f"{gov['note']}\n", style="yellow")
    for target, held in (gov.get("held") or {}).items():
        text.append("holding ", style="bold")
        text.append(f"{target}: {held.get('kind')} by {held.get('rule')}"
                    + (" (dry run)" if held.get("dry_run") else "") + "\n")
    limits = state.get("cpu_limits") or {}
    for target, lim in limits.items():
        text.append("cpu limit ", style="bold")
        text.append(f"{target}: {lim.get('cpu_limit')}% by {lim.get('mechanism')}"
                    + (f" ({lim['why']})" if lim.get("why") else "") + "\n")
    for a in state.get("agents") or []:
        bits = []
        if a.get("memory_warn_mb") or a.get("memory_limit_mb"):
            bits.append(f"memory warn {a.get('memory_warn_mb') or '-'} MiB, limit "
                        f"{a.get('memory_limit_mb') or '-'} MiB → {a.get('on_memory_limit')}")
        if a.get("cpu_limit"):
            bits.append(f"cpu {a['cpu_limit']:g}%")
        if a.get("pinned"):
            bits.append("pinned")
        if bits:
            text.append(f"{a['target']}", style="bold")
            text.append(f" (priority {a.get('priority', 0)}): " + "; ".join(bits) + "\n")
    recent = (state.get("actions") or gov.get("recent") or [])[-5:]
    if recent:
        text.append("last actions\n", style="bold")
        for act in recent:
            text.append(f"  {act.get('kind')} {act.get('target')} ({act.get('rule')}: "
                        f"{act.get('reason')})" + (" [dry run]" if act.get("dry_run") else "")
                        + "\n")
    else:
        text.append("the governor has done nothing yet\n", style="dim")
    failures = state.get("failures") or []
    if failures:
        text.append("notifications that failed\n", style="bold red")
        for line in failures[-5:]:
            text.append(f"  {line}\n", style="red")
    text.rstrip()
    return text


class PolicyPanel(VerticalScroll):
    """Resource policy at a glance (see :func:`policy_text`)."""

    def compose(self) -> ComposeResult:
        yield Static(id="policy-text")

    def show(self, state: dict | None) -> None:
        update(self.query_one("#policy-text", Static), policy_text(state))
