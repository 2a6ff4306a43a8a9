"""How statuses look, shared by `squad ls` (rich) and the UI: glyph and colour per status."""

from __future__ import annotations

STATUS_GLYPH = {
    "starting": "◌",
    "working": "●",
    "idle": "○",
    "needs-input": "◆",
    "stalled": "▲",
    "paused": "⏸",
    "exited": "✖",
    "down": "·",
}

STATUS_STYLE = {
    "starting": "cyan",
    "working": "green",
    "idle": "blue",
    "needs-input": "bold yellow",
    "stalled": "bold red",
    "paused": "magenta",
    "exited": "dim red",
    "down": "dim",
}

ATTENTION = frozenset({"needs-input", "stalled"})
