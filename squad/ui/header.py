"""The top bar: which squad, who supervises it, whether output streams, system CPU and
memory, and status counts. Repainted only where what it says changed."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

from squad.snapshot import Snapshot
from squad.style import ATTENTION, STATUS_GLYPH, STATUS_STYLE
from squad.ui.gauge import Gauge
from squad.ui.paint import update

COUNTED = ("needs-input", "stalled", "working", "idle", "starting", "paused", "hibernated",
           "exited", "down")


class SquadHeader(Horizontal):
    """One line across the top of the screen."""

    def compose(self) -> ComposeResult:
        yield Static(id="title")
        yield Gauge("CPU", id="sys-cpu", classes="sys-gauge")
        yield Gauge("MEM", id="sys-mem", classes="sys-gauge")
        yield Static(id="counts")

    def show(self, snap: Snapshot, note: str | None, problem: str | None,
             link: str | None = None, pressure: Text | None = None) -> None:
        """Render a snapshot; ``note`` says who supervises, ``problem`` a failing tick,
        ``link`` why output is polled instead of streamed, ``pressure`` what the resource
        governor does (see :func:`pressure_note`)."""
        title = Text(no_wrap=True, overflow="ellipsis")
        title.append("squad ", style="bold")
        title.append(snap.squad, style="bold")
        title.append(f" · socket {snap.socket}", style="dim")
        if problem:
            title.append(f" · {problem}", style="bold red")
        elif note:
            title.append(f" · {note}", style="italic")
        if link and not problem:
            title.append(f" · polling: {link}", style="yellow")
        if pressure:
            title.append(" · ")
            title.append_text(pressure)
        update(self.query_one("#title", Static), title, layout=False)
        self.query_one("#sys-cpu", Gauge).update(snap.cpu / 100, f"{snap.cpu:.0f}%")
        self.query_one("#sys-mem", Gauge).update(snap.mem / 100, f"{snap.mem:.0f}%")
        counts: dict[str, int] = {}
        for row in snap.agents:
            counts[row.status] = counts.get(row.status, 0) + 1
        text = Text(no_wrap=True, justify="right")
        for status in COUNTED:
            n = counts.get(status)
            if n:
                style = STATUS_STYLE.get(status, "")
                if status in ATTENTION:
                    style += " reverse"
                text.append(f" {STATUS_GLYPH.get(status, '?')}{n} ", style=style)
        update(self.query_one("#counts", Static), text)


def pressure_note(policy: dict | None) -> Text | None:
    """A few words for the header when the resource governor matters: memory or CPU
    pressure over its thresholds, agents it holds (paused or hibernated for room)."""
    gov = (policy or {}).get("governor") or {}
    level, held = gov.get("level"), gov.get("held") or {}
    if level in (None, "ok") and not held:
        return None
    text = Text(no_wrap=True)
    if level == "high":
        text.append("pressure high", style="bold red")
    elif level and level != "ok":
        text.append("pressure rising", style="yellow")
    if held:
        if text:
            text.append(" · ")
        text.append(f"holding {len(held)}", style="magenta")
    return text
