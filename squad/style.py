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


def human_bytes(n: float) -> str:
    """Memory in at most five characters: ``812K``, ``45.2M``, ``1.3G``."""
    for unit in ("B", "K", "M", "G", "T"):
        if n < 1024 or unit == "T":
            if unit in ("B", "K") or n >= 100:
                return f"{n:.0f}{unit}"
            return f"{n:.1f}{unit}"
        n /= 1024
    return f"{n:.0f}"
