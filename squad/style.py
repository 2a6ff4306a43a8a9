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
    "hibernated": "☾",
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
    "hibernated": "dim magenta",
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


def fit_columns(widths: list[int], priorities: list[int], room: int | None,
                gap: int = 1) -> list[int]:
    """Which columns of a table to show in ``room`` characters: all of them when they fit
    (or when ``room`` is None: piped output is never cut); otherwise the least important
    ones go first (the highest ``priorities`` number), never the most important (0).
    ``widths`` are each column's widest cell, header included. Returns column indexes."""
    keep = list(range(len(widths)))
    if room is None:
        return keep

    def total(cols: list[int]) -> int:
        return sum(widths[i] for i in cols) + gap * 2 * len(cols)

    for i in sorted(keep, key=lambda i: (-priorities[i], -i)):
        if total(keep) <= room:
            break
        if priorities[i] > 0:
            keep.remove(i)
    return keep


def print_table(title: str, headers: list[str], rows: list[list[object]],
                priorities: list[int], *, right: frozenset[str] = frozenset()) -> None:
    """A plain table for the CLI: columns dropped by importance to fit the terminal, every
    column whole when piped (scripts and logs get whole rows). Cells may be rich Text."""
    import shutil
    import sys

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    tty = sys.stdout.isatty()
    room = shutil.get_terminal_size((120, 24)).columns if tty else None
    cells = [[c if isinstance(c, Text) else Text(str(c)) for c in row] for row in rows]
    widths = [max([len(h), *(cells[r][i].cell_len for r in range(len(cells)))])
              for i, h in enumerate(headers)]
    keep = fit_columns(widths, priorities, room)
    table = Table(title=title, title_justify="left", expand=False, box=None,
                  padding=(0, 1))
    for i in keep:
        table.add_column(headers[i], no_wrap=True, overflow="fold",
                         justify="right" if headers[i] in right else "left")
    for row in cells:
        table.add_row(*(row[i] for i in keep))
    Console(highlight=False, soft_wrap=False,
            width=room if room is not None else 100_000).print(table)
