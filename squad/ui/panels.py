"""The task panel (key ``t``) and the events panel (key ``e``): tables under the output."""

from __future__ import annotations

import time
from collections import deque
from datetime import datetime

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
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
    """Tasks from the task provider: id, title, status, priority, agent, attempts, age."""

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
