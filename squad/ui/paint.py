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


def _set_border(widget: Widget, kept: str, attribute: str, text: Text | str) -> bool:
    if same(getattr(widget, kept, None), text):
        return False
    setattr(widget, kept, text)
    setattr(widget, attribute, text)
    return True


def set_title(widget: Widget, title: Text | str) -> bool:
    """Set the border title unless it is already that; True when it changed."""
    return _set_border(widget, _TITLE, "border_title", title)


def set_subtitle(widget: Widget, subtitle: Text | str) -> bool:
    """Set the border subtitle unless it is already that; True when it changed."""
    return _set_border(widget, _SUBTITLE, "border_subtitle", subtitle)


def update(static: Static, content: Text | str, *, layout: bool = True) -> bool:
    """``static.update(content)`` unless it shows that already; True when it changed.
    ``layout=False`` for a widget of fixed size: a layout repaints every container on
    screen, a repaint only this widget."""
    if same(getattr(static, _CONTENT, None), content):
        return False
    setattr(static, _CONTENT, content)
    static.update(content, layout=layout)
    return True
