"""A one-line gauge: a label, a bar filled to a fraction, and the value as text.

The bar's colour moves from the theme's success colour to warning to error as the value
crosses ``warn`` and ``alarm``; all colours come from the stylesheet's component classes.
"""

from __future__ import annotations

from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from squad.ui.render import bar


class Gauge(Widget):
    """``CPU ▕████▌     ▏ 42%``: how full something is, at a glance."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "gauge--label", "gauge--low", "gauge--mid", "gauge--high", "gauge--value",
    }

    fraction: reactive[float] = reactive(0.0)
    """How full, from 0 to 1 (values outside are clamped)."""
    value: reactive[str] = reactive("")
    """The value as the user reads it (``42%``, ``1.2G``)."""

    def __init__(self, label: str, *, warn: float = 0.6, alarm: float = 0.85,
                 value_width: int = 6, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.label = label
        self.warn = warn
        self.alarm = alarm
        self.value_width = value_width

    def update(self, fraction: float, value: str) -> None:
        """Show a new value; repainted only when the bar or the text changes (the bar has
        a few hundred steps at most, so finer changes are rounded away)."""
        self.fraction = round(fraction, 3)
        self.value = value

    def render(self) -> Text:
        level = ("gauge--high" if self.fraction >= self.alarm else
                 "gauge--mid" if self.fraction >= self.warn else "gauge--low")
        width = self.content_size.width
        label = f"{self.label} " if self.label else ""
        text = Text(label, style=self.get_component_rich_style("gauge--label"), no_wrap=True,
                    end="")
        room = width - len(label) - self.value_width - 1
        if room >= 3:
            fill = self.get_component_rich_style(level, partial=True)
            # The empty part: the background, a little toward the text colour, so that it
            # shows in light and dark themes alike.
            _, background = self.background_colors
            track = Style(bgcolor=background.blend(self.styles.color, 0.12).rich_color)
            text.append_text(bar(self.fraction, room, fill, track))
            text.append(" ")
        text.append(self.value.rjust(self.value_width),
                    style=self.get_component_rich_style("gauge--value"))
        return text
