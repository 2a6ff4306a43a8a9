"""The output on screen: the selected agent's screen and scrollback, or the grid's screens.

Captured in a thread worker (one at a time) and decoded from ANSI there; the widgets only
paint the lines they are given.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from squad.errors import SquadError
from squad.live import Live
from squad.ui.feeds import Feed, Poll
from squad.ui.messages import GridReady, OutputReady
from squad.ui.render import AnsiLines, trim_screen
from squad.ui.workers import reported

if TYPE_CHECKING:
    from textual.app import App

OUTPUT_HISTORY = 1000  # scrollback lines shown for the selected agent at first
MAX_HISTORY = 50000  # ... and at most, loaded as the user scrolls to the top
DECODERS_KEPT = 8  # agents whose decoded lines are cached


class OutputFeed(Feed):
    """Captures what is on screen: the selected agent (with ``history`` lines of
    scrollback) or, while the grid shows, the screens of its tiles."""

    def __init__(self, app: App, live: Live, interval: float, enabled: bool = True) -> None:
        super().__init__(app)
        self.live = live
        self.interval = interval
        self.poll = Poll(app, interval, self._start, enabled)
        self.target: str | None = None
        """The agent whose output the view shows (None: a team or nothing)."""
        self.grid: list[str] | None = None
        """The agents of the grid's tiles while the grid shows, else None."""
        self.history = OUTPUT_HISTORY
        """Scrollback lines captured for the selected agent (grows as the user reads back)."""
        self.more_history = False
        """Whether the last capture filled ``history``: there may be more above."""
        # Worker-thread state.
        self._decoders: dict[str, AnsiLines] = {}
        self._last: tuple[str | None, str] | None = None

    def show(self, target: str | None, grid: list[str] | None) -> None:
        """What to capture from now on; captured at once."""
        if target != self.target:
            self.history = OUTPUT_HISTORY
        self.target, self.grid = target, grid
        self.forget()
        self.poll.now()

    def forget(self) -> None:
        """The next capture is shown even if it did not change (the view was cleared)."""
        self._last = None

    def more(self) -> bool:
        """Load more scrollback of the selected agent; False when there is no more."""
        if not self.more_history or self.history >= MAX_HISTORY:
            return False
        self.history = min(MAX_HISTORY, self.history * 5)
        self.forget()
        self.poll.now()
        return True

    def done(self, lines: int | None, following: bool) -> None:
        """A capture was shown (``lines``: how many lines of the selected agent, None when
        nothing new; ``following``: the view is at the bottom); schedule the next. Back at
        the bottom, the light capture again; a long scrollback is for reading back, so it is
        refreshed less often."""
        if lines is not None:
            self.more_history = lines >= self.history
        if following and self.history > OUTPUT_HISTORY:
            self.history = OUTPUT_HISTORY
        self.poll.interval = 1.0 if self.history > OUTPUT_HISTORY else self.interval
        self.poll.done()

    def _start(self) -> None:
        grid = list(self.grid) if self.grid is not None else None
        self.run(lambda: self._work(self.target, grid, self.history), "output")

    @reported("output capture", lambda error, target, grid, history: OutputReady(
        target, None, error=error))
    def _work(self, target: str | None, grid: list[str] | None, history: int) -> None:
        live = self.live
        if grid is not None:
            ids = {p.pane_id: t for t in grid if (p := live.panes.get(t)) is not None}
            screens = live.tmux.capture(ids, ansi=True)
            self.post_message(GridReady({
                ids[pane_id]: self._decode(ids[pane_id], text)
                for pane_id, text in screens.items()}))
            return
        if target is None:
            self.post_message(OutputReady(None, None))
            return
        pane = live.panes.get(target)
        if pane is None:
            raise SquadError(f"{target} has no window: run `squad up` to create it")
        raw = live.tmux.capture([pane.pane_id], history=history, ansi=True).get(pane.pane_id)
        if raw is None:
            raise SquadError(f"{target}: window gone")
        if self._last == (target, raw):
            self.post_message(OutputReady(target, None))
            return
        self._last = (target, raw)
        lines = self._decode(target, raw)
        self.post_message(OutputReady(target, lines, max((t.cell_len for t in lines),
                                                         default=0)))

    def _decode(self, target: str, raw: str) -> list:
        if target not in self._decoders and len(self._decoders) > DECODERS_KEPT:
            self._decoders.clear()  # bound the caches of agents looked at before
        return self._decoders.setdefault(target, AnsiLines()).decode(trim_screen(raw))
