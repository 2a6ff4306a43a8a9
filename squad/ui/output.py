"""Agent output: the selected agent's screen and scrollback, and a grid of several screens.

Lines arrive already decoded from ANSI (in a thread worker); these widgets only crop and
paint the visible ones, so a long history costs nothing per frame.
"""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.containers import Grid
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widget import Widget

from squad.snapshot import AgentRow
from squad.style import ATTENTION
from squad.ui.paint import set_subtitle, set_title
from squad.ui.render import status_text

ANCHOR_LINES = 3  # lines compared to find where the reader was in a new capture


def find_lines(lines: list[Text], near: int, wanted: list[str]) -> int | None:
    """The index nearest to ``near`` where ``lines`` continue with the texts ``wanted``."""
    if not wanted:
        return None
    last = len(lines) - len(wanted)
    for distance in range(max(near, last - near, 0) + 1):
        for i in (near - distance, near + distance) if distance else (near,):
            if 0 <= i <= last and all(lines[i + k].plain == w for k, w in enumerate(wanted)):
                return i
    return None


class OutputView(ScrollView, can_focus=True):
    """Scrollable agent output that follows new lines while the view is at the bottom."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.target: str | None = None
        self.follow = True
        """Whether new output scrolls into view (off once the user scrolls up)."""
        self._lines: list[Text] = []
        # Painted lines by the identity of their Text: a new capture reuses the Text of
        # every line that did not change (AnsiLines), so scrolling output repaints only the
        # new lines. Entry: (text, its strip, (scroll_x, width, style), the strip cropped).
        self._strips: dict[int, tuple[Text, Strip, tuple, Strip]] = {}
        self._placeholder: Text | None = Text("no agent selected", style="dim italic")
        self._keep_following_off = False

    class WantsHistory(Message):
        """The user scrolled to the top of the output: load more scrollback if there is."""

        def __init__(self, target: str | None) -> None:
            super().__init__()
            self.target = target

    @property
    def lines(self) -> list[Text]:
        return self._lines

    def plain(self) -> str:
        """The text shown, without colours (for tests and copying)."""
        return "\n".join(t.plain for t in self._lines)

    def show_lines(self, target: str | None, lines: list[Text], width: int) -> None:
        """Replace the content; a new target starts at its newest output.

        While the user reads back (not following), the view stays on the same text even
        though the captured window slid (new output pushed old lines out of it) or grew
        (more history was loaded above)."""
        anchor = None
        if target != self.target:
            self.target = target
            self.follow = True
        elif not self.follow and self._lines:
            top = round(self.scroll_y)
            anchor = (top, [t.plain for t in self._lines[top:top + ANCHOR_LINES]])
        self._placeholder = None
        self._lines = lines
        if len(self._strips) > 2 * len(lines) + 200:
            self._strips = {id(t): e for t in lines if (e := self._strips.get(id(t)))
                            and e[0] is t}
        self._set_virtual_size(Size(width, len(lines)))
        if self.follow:
            self.scroll_to(y=self.max_scroll_y, animate=False, immediate=True, force=True)
        elif anchor is not None:
            found = find_lines(lines, *anchor)
            if found is not None and found != round(self.scroll_y):
                self._keep_following_off = True
                self.scroll_to(y=found, animate=False, immediate=True, force=True)
                self._keep_following_off = False
        self.refresh()
        self._update_subtitle()

    def show_message(self, target: str | None, message: str) -> None:
        """No output to show: say why (no window, nothing selected)."""
        self.target = target
        self.follow = True
        self._lines = []
        self._strips.clear()
        self._placeholder = Text(message, style="dim italic")
        self._set_virtual_size(Size(len(message), 1))
        self.scroll_to(0, 0, animate=False, immediate=True, force=True)
        self.refresh()
        self._update_subtitle()

    def _set_virtual_size(self, size: Size) -> None:
        """Set how large the content is, without a layout of the whole screen.

        Textual takes a new virtual size for a layout change: every container on screen is
        repainted (with a printing agent selected that was three quarters of the UI's CPU).
        Only this widget and its scrollbars depend on it; a scrollbar that appears or goes
        away still brings a layout (its ``display`` changes)."""
        if size == self.virtual_size:
            return
        if not self.container_size:
            self.virtual_size = size
            return
        self.set_reactive(OutputView.virtual_size, size)
        self._scroll_update(size)  # Textual's own update of the scrollbars and offsets

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if self._keep_following_off:
            return
        follow = round(new_value) >= self.max_scroll_y
        if follow != self.follow:
            self.follow = follow
            self._update_subtitle()
        if round(new_value) == 0 and round(old_value) > 0 and self._lines:
            self.post_message(self.WantsHistory(self.target))

    def _update_subtitle(self) -> None:
        if self._placeholder is not None:
            set_subtitle(self, "")
        elif self.follow:
            set_subtitle(self, "following")
        else:
            set_subtitle(self, "scrolled back · End follows")

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index = scroll_y + y
        width = self.scrollable_content_region.width
        style = self.rich_style
        if self._placeholder is not None:
            if index != 0:
                return Strip.blank(width, style)
            text = self._placeholder
            strip = Strip(text.render(self.app.console), text.cell_len)
        elif index >= len(self._lines):
            return Strip.blank(width, style)
        else:
            text = self._lines[index]
            key = (scroll_x, width, style)
            entry = self._strips.get(id(text))
            if entry is None or entry[0] is not text:
                strip = Strip(text.render(self.app.console), text.cell_len)
            elif entry[2] == key:
                return entry[3]
            else:
                strip = entry[1]
            final = strip.apply_style(style).crop_extend(scroll_x, scroll_x + width, style)
            self._strips[id(text)] = (text, strip, key, final)
            return final
        return strip.apply_style(style).crop_extend(scroll_x, scroll_x + width, style)

    def on_resize(self, event: events.Resize) -> None:
        if self.follow and self._lines:
            self.scroll_to(y=self.max_scroll_y, animate=False, immediate=True, force=True)


class Tile(Widget):
    """One agent's screen in the grid: its newest lines, cropped to the tile."""

    class Clicked(Message):
        def __init__(self, target: str) -> None:
            super().__init__()
            self.target = target

    def __init__(self, target: str) -> None:
        super().__init__(classes="tile")
        self.target = target
        self.lines: list[Text] = []

    def show(self, row: AgentRow | None, lines: list[Text] | None, selected: bool,
             now: float | None) -> None:
        title = Text(no_wrap=True, end="")
        title.append(self.target, style="bold")
        if row is not None:
            title.append(" ")
            title.append_text(status_text(row, now))
            self.set_class(row.status in ATTENTION, "-attention")
        set_title(self, title)
        self.set_class(selected, "-selected")
        if lines is not None:
            while lines and not lines[-1].plain.strip():
                lines = lines[:-1]
            if lines != self.lines:
                self.lines = lines
                self.refresh()

    def render(self) -> Text:
        height = self.content_size.height
        lines = self.lines[-height:] if height > 0 else []
        if not lines:
            return Text("(no output)", style="dim italic")
        text = Text("\n", no_wrap=True, overflow="crop", end="").join(lines)
        return text

    def on_click(self, event: events.Click) -> None:
        self.post_message(self.Clicked(self.target))


class OutputGrid(Grid):
    """Several agents' screens side by side (key ``g``)."""

    MIN_TILE = (30, 6)

    class Resized(Message):
        """The grid changed size: the number of tiles that fit may have changed."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.targets: list[str] = []
        self.hidden = 0

    def capacity(self) -> tuple[int, int]:
        """How many tiles fit: (columns, rows)."""
        width, height = self.size
        cols = max(1, width // self.MIN_TILE[0])
        rows = max(1, height // self.MIN_TILE[1])
        return cols, rows

    def layout_tiles(self, targets: list[str]) -> list[str]:
        """Show tiles for the first targets that fit; return the ones shown."""
        cols, rows = self.capacity()
        shown = targets[: cols * rows]
        self.hidden = len(targets) - len(shown)
        n = max(1, len(shown))
        use_cols = min(cols, n)
        self.styles.grid_size_columns = use_cols
        self.styles.grid_size_rows = max(1, -(-n // use_cols))
        if shown != self.targets:
            self.targets = shown
            self.remove_children()
            self.mount_all([Tile(t) for t in shown])
        return shown

    def tiles(self) -> dict[str, Tile]:
        return {t.target: t for t in self.query(Tile)}

    def on_resize(self, event: events.Resize) -> None:
        self.post_message(self.Resized())
