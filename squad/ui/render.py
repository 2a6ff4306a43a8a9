"""Pure rendering: snapshot data to Rich ``Text`` (labels, gauges, sizes, ages, ANSI screens).

Nothing here touches Textual, tmux or the clock, so every function can be tested on plain
data. Agent output is decoded from ANSI escapes and never parsed as markup.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from rich.ansi import AnsiDecoder
from rich.style import Style
from rich.text import Text

from squad.snapshot import AgentRow
from squad.style import ATTENTION, STATUS_GLYPH, STATUS_STYLE, human_bytes

if TYPE_CHECKING:
    from squad.review import DiffSummary

STATUS_WORD = {
    "starting": "starting",
    "working": "working",
    "idle": "idle",
    "needs-input": "needs input",
    "stalled": "stalled",
    "paused": "paused",
    "exited": "exited",
    "hibernated": "hibernated",
    "down": "no window",
}

MEMORY_STYLE = {"warn": "bold yellow", "limit": "bold red"}
"""How an agent's memory figure looks past its ``memory_warn_mb`` and ``memory_limit_mb``."""

# C0 controls (but ESC, which starts the colour codes) and DEL would move the real cursor.
_CONTROLS = {c: None for c in (*range(0, 27), *range(28, 32), 127)}


def human_age(seconds: float) -> str:
    """A duration the way people say it: ``45s``, ``3m``, ``2h05m``, ``3d``."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s" if s < 600 else f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d"


def status_text(row: AgentRow, now: float | None = None) -> Text:
    """``● working 2m13s`` (or ``✖ exited (1)``) in the status colour."""
    style = STATUS_STYLE.get(row.status, "")
    word = STATUS_WORD.get(row.status, row.status)
    if row.status == "exited" and row.exit_code is not None:
        word = f"exited ({row.exit_code})"
    text = Text(f"{STATUS_GLYPH.get(row.status, '?')} {word}", style=style)
    if now is not None and row.since and row.status != "down":
        text.append(f" {human_age(now - row.since)}", style="dim")
    return text


def fit(text: str, width: int) -> str:
    """``text`` cut (with an ellipsis) or padded to exactly ``width`` cells."""
    if width <= 0:
        return ""
    if len(text) > width:
        return text[: width - 1] + "…"
    return text.ljust(width)


class Columns:
    """Widths of the agent tree's columns, chosen from the names and the space there is."""

    def __init__(self, rows: Iterable[AgentRow], width: int) -> None:
        rows = list(rows)
        self.name = min(18, max([len(r.agent) for r in rows] + [4]))
        self.role = min(12, max([len(r.role) for r in rows] + [0]))
        fixed = 2 + self.name + 1 + 5 + 1 + 5  # glyph, name, cpu, memory
        self.show_role = self.role > 0 and width >= fixed + self.role + 1 + 4
        used = fixed + (self.role + 1 if self.show_role else 0)
        self.task = max(0, width - used - 1)


def memory_level(rss: int, warn_mb: int | None, limit_mb: int | None) -> str | None:
    """``"limit"`` past the agent's memory limit, ``"warn"`` past its warning, else None."""
    if limit_mb and rss > limit_mb * 1024 * 1024:
        return "limit"
    if warn_mb and rss > warn_mb * 1024 * 1024:
        return "warn"
    return None


def diff_badge(summary: DiffSummary | None) -> Text:
    """``±3 ↑2``: files the agent's worktree changed, commits it is ahead of its base."""
    text = Text(end="")
    if summary is None:
        return text
    if summary.files:
        text.append(f"±{summary.files}", style="yellow")
    if summary.ahead:
        if text:
            text.append(" ")
        text.append(f"↑{summary.ahead}", style="cyan")
    return text


def agent_label(row: AgentRow, cols: Columns, *, memory: str | None = None,
                summary: DiffSummary | None = None) -> Text:
    """One agent's line in the tree: glyph, name, role, CPU %, memory (coloured past its
    warning or limit: ``memory``), breaker, what its worktree changed, task."""
    status_style = STATUS_STYLE.get(row.status, "")
    attention = row.status in ATTENTION
    text = Text(no_wrap=True, overflow="ellipsis", end="")
    text.append(STATUS_GLYPH.get(row.status, "?"), style=status_style)
    text.append(" ")
    name = fit(row.agent, cols.name)
    text.append(name, style=Style.parse(status_style) + Style(reverse=True, bold=True)
                if attention else "bold")
    if cols.show_role:
        text.append(" ")
        text.append(fit(row.role, cols.role), style="italic")
    text.append(" ")
    if row.status in ("exited", "down"):
        code = "" if row.exit_code is None else str(row.exit_code)
        text.append(f"{('exit ' + code) if code else '-':>11}", style="dim")
    else:
        text.append(f"{row.cpu:4.0f}%", style="bold" if row.cpu >= 50 else "")
        text.append(" ")
        text.append(f"{human_bytes(row.rss) if row.rss else '-':>5}",
                    style=MEMORY_STYLE.get(memory or "", ""))
    extra = Text(end="")
    if attention:
        extra.append(STATUS_WORD[row.status].upper(), style=status_style)
        extra.append(" ")
    if row.breaker and row.breaker != "closed":
        extra.append(f"⚡{row.breaker}", style="bold red")
        extra.append(" ")
    if badge := diff_badge(summary):
        extra.append_text(badge)
        extra.append(" ")
    if row.task:
        extra.append(row.task)
    if extra.plain and cols.task > 0:
        text.append(" ")
        extra.truncate(cols.task, overflow="ellipsis")
        text.append_text(extra)
    return text


def team_label(team: str, rows: list[AgentRow]) -> Text:
    """A team's line: its name, how many agents, and counts of the statuses that matter."""
    text = Text(no_wrap=True, overflow="ellipsis", end="")
    text.append(team, style="bold")
    text.append(f" {len(rows)}", style="dim")
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.status] = counts.get(r.status, 0) + 1
    for status in ("needs-input", "stalled", "working", "idle", "paused", "starting",
                   "hibernated", "exited", "down"):
        if counts.get(status):
            text.append(f" {STATUS_GLYPH.get(status, '?')}{counts[status]}",
                        style=STATUS_STYLE.get(status, ""))
    cpu = sum(r.cpu for r in rows)
    rss = sum(r.rss for r in rows)
    text.append(f"  {cpu:.0f}% {human_bytes(rss)}", style="dim")
    return text


BLOCKS = " ▏▎▍▌▋▊▉█"


def bar(fraction: float, width: int, fill: Style, track: Style) -> Text:
    """A horizontal bar ``width`` cells wide, filled to ``fraction`` in eighths of a cell."""
    text = Text(end="", no_wrap=True)
    if width <= 0:
        return text
    fraction = 0.0 if math.isnan(fraction) else min(1.0, max(0.0, fraction))
    cells = fraction * width
    full = int(cells)
    part = int((cells - full) * 8)
    text.append("█" * full, style=fill)
    if full < width:
        if part:
            text.append(BLOCKS[part], style=track + Style(color=fill.color))
        text.append(" " * (width - full - (1 if part else 0)), style=track)
    return text


def matches(row: AgentRow, query: str) -> bool:
    """Whether an agent matches the filter: every word in its target, role, status, task
    or tags (case-insensitive)."""
    hay = " ".join([row.target, row.role, row.status, STATUS_WORD.get(row.status, ""),
                    row.task or "", *row.tags]).lower()
    return all(word in hay for word in query.lower().split())


class AnsiLines:
    """Decodes captured screens to ``Text`` lines, reusing lines it decoded last time.

    tmux carries colours across lines, so a line is reused only when it starts in the same
    style as before. One instance per agent, used from one thread at a time.
    """

    def __init__(self) -> None:
        self._cache: dict[tuple[Style, str], tuple[Text, Style]] = {}

    def decode(self, screen: str) -> list[Text]:
        decoder = AnsiDecoder()
        seen: dict[tuple[Style, str], tuple[Text, Style]] = {}
        lines: list[Text] = []
        for raw in screen.split("\n"):
            key = (decoder.style, raw)
            hit = self._cache.get(key) or seen.get(key)
            if hit is None:
                text = decoder.decode_line(raw.translate(_CONTROLS))
                text.no_wrap = True
                text.end = ""
                hit = (text, decoder.style)
            else:
                decoder.style = hit[1]
            seen[key] = hit
            lines.append(hit[0])
        self._cache = seen
        return lines


_ESCAPES = re.compile(r"\x1b\[[0-9;:?]*[A-Za-z]")
_DEAD = "Pane is dead"


def _blank(line: str) -> bool:
    return not _ESCAPES.sub("", line).strip()


def trim_screen(screen: str) -> str:
    """The captured screen without the empty rows below the last output. A pane whose
    program ended shows tmux's ``Pane is dead (status ...)`` on its last row, below the
    screen the program left; the empty rows between them go too, so that the program's last
    lines (the wrapper's note of how it ended) stay in view just above it."""
    lines = screen.split("\n")
    while lines and _blank(lines[-1]):
        lines.pop()
    if lines and _ESCAPES.sub("", lines[-1]).startswith(_DEAD):
        dead = lines.pop()
        while lines and _blank(lines[-1]):
            lines.pop()
        lines.append(dead)
    return "\n".join(lines)
