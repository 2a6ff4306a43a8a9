"""Repaint only what changed: set a widget's text or border titles only when they differ.

Textual repaints a widget whenever its border title is set or a ``Static`` is updated, even
to what it already shows. Snapshots arrive every second with mostly the same facts, so the
widgets go through these helpers, and an idle squad's UI repaints next to nothing.
"""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget
from textual.widgets import Static

_TITLE = "_squad_title"
_SUBTITLE = "_squad_subtitle"
_CONTENT = "_squad_content"


def same(a: Text | str | None, b: Text | str | None) -> bool:
    """Whether two texts look the same (``Text.__eq__`` ignores the base style)."""
    if isinstance(a, Text) and isinstance(b, Text):
        return a.plain == b.plain and a.spans == b.spans and a.style == b.style
    return a == b


def set_title(widget: Widget, title: Text | str) -> bool:
    """Set the border title unless it is already that; True when it changed."""
    if same(getattr(widget, _TITLE, None), title):
        return False
    setattr(widget, _TITLE, title)
    widget.border_title = title
    return True


def set_subtitle(widget: Widget, subtitle: Text | str) -> bool:
    """Set the border subtitle unless it is already that; True when it changed."""
    if same(getattr(widget, _SUBTITLE, None), subtitle):
        return False
    setattr(widget, _SUBTITLE, subtitle)
    widget.border_subtitle = subtitle
    return True


def update(static: Static, content: Text | str, *, layout: bool = True) -> bool:
    """``static.update(content)`` unless it shows that already; True when it changed.
    ``layout=False`` for a widget of fixed size: a layout repaints every container on
    screen, a repaint only this widget."""
    if same(getattr(static, _CONTENT, None), content):
        return False
    setattr(static, _CONTENT, content)
    static.update(content, layout=layout)
    return True
