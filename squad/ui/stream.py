"""The output on screen, streamed: the selected agent's screen and scrollback, or the grid's.

Nothing is polled while tmux's control connection works. The panes on screen are
*followed* on the connection (tmux streams their output to squad; every other pane stays
muted), and a listener on the connection's event thread turns output of those panes into
one :class:`~squad.ui.messages.PaneOutput` message; while that message waits, more output
posts nothing. The message asks for a capture, which runs in a thread worker, one at a
time and at most :data:`MAX_RATE` times a second, and re-reads only the panes that printed
since the last capture (their stream buffers say so, and a gap in one means output was lost
to flow control: the capture catches up, as it always re-reads the whole screen). A pane is
captured whole rather than its stream applied, because tmux has already drawn the screen:
cursor movement, redraws and colours come out right.

A slow safety capture runs every :data:`SAFETY` seconds of silence in case an event was
missed. When the connection is not ready the feed polls every :data:`FALLBACK` seconds
instead, and the header says so.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.text import Text

from squad.errors import SquadError
from squad.live import Live
from squad.ui.feeds import Feed
from squad.ui.messages import GridReady, OutputReady, PaneOutput
from squad.ui.render import AnsiLines, trim_screen
from squad.ui.workers import reported

if TYPE_CHECKING:
    from textual.app import App
    from textual.timer import Timer

    from squad.tmux_control import Event, TmuxControl

OUTPUT_HISTORY = 1000  # scrollback lines shown for the selected agent at first
MAX_HISTORY = 50000  # ... and at most, loaded as the user scrolls to the top
DECODERS_KEPT = 24  # agents whose decoded lines are cached (a grid's worth)
MAX_RATE = 30.0  # captures a second at most, however fast the panes print
SAFETY = 3.0  # seconds of silence before a capture anyway (an event missed, say)
FALLBACK = 0.25  # seconds between captures while the control connection is not ready
LONG_HISTORY_POLL = 1.0  # a long scrollback is for reading back: refreshed less often
BEAT = 0.25  # seconds between checks whether a safety (or fallback) capture is due: one
# repeating timer rather than a one-shot timer made and stopped for every capture


@dataclass(frozen=True)
class Plan:
    """What one capture reads: the selected agent (``target``, with ``history`` lines of
    scrollback) or the grid's agents, and whether to re-read panes that did not print."""

    target: str | None
    grid: tuple[str, ...] | None
    history: int
    forced: bool


class OutputFeed(Feed):
    """Captures what is on screen when it changes (see the module's docstring)."""

    def __init__(self, app: App, live: Live, *, safety: float = SAFETY,
                 fallback: float = FALLBACK, enabled: bool = True) -> None:
        super().__init__(app)
        self.live = live
        self.safety = safety
        self.fallback = fallback
        self.enabled = enabled
        self.target: str | None = None
        """The agent whose output the view shows (None: a team or nothing)."""
        self.grid: tuple[str, ...] | None = None
        """The agents of the grid's tiles while the grid shows, else None."""
        self.history = OUTPUT_HISTORY
        """Scrollback lines captured for the selected agent (grows as the user reads back)."""
        self.more_history = False
        """Whether the last capture filled ``history``: there may be more above."""
        self.streaming = False
        """Whether output comes from the control connection (else the feed polls)."""
        self.counts = {"pokes": 0, "captures": 0, "panes": 0, "unchanged": 0}
        """Output notifications acted on, captures run, panes read, and captures that
        found nothing new: what tests and the benchmark look at."""
        # The event loop's scheduling state.
        self.busy = False
        self.held_until = 0.0
        """No capture starts before this ``time.monotonic()`` (a key's action runs)."""
        self._again = False
        self._forced = False
        self._last_start = 0.0
        self._timer: Timer | None = None  # a capture delayed by the rate limit
        self._timer_due = 0.0
        self._due: float | None = None  # when the safety (or fallback) capture is due
        self._beat: Timer | None = None  # checks ``_due`` (see done())
        # Shared with the connection's event thread: the panes whose output matters, and
        # whether a PaneOutput is on its way already.
        self._watching: frozenset[str] = frozenset()
        self._pending = threading.Event()
        # Worker-thread state.
        self._control: TmuxControl | None = None
        self._remove_listener: Callable[[], None] | None = None
        self._followed: set[str] = set()
        self._decoders: dict[str, AnsiLines] = {}
        self._raw: dict[str, str] = {}  # pane id -> the capture last shown

    # -- what is on screen (event loop) ---------------------------------------------------

    def show(self, target: str | None, grid: list[str] | None) -> None:
        """What is on screen from now on: captured at once."""
        if target != self.target:
            self.history = OUTPUT_HISTORY
        self.target, self.grid = target, tuple(grid) if grid is not None else None
        self.forget()
        self.request(forced=True, now=True)

    def forget(self) -> None:
        """The next capture is shown even if it did not change (the view was cleared)."""
        self._raw = {}

    def more(self) -> bool:
        """Load more scrollback of the selected agent; False when there is no more."""
        if not self.more_history or self.history >= MAX_HISTORY:
            return False
        self.history = min(MAX_HISTORY, self.history * 5)
        self.forget()
        self.request(forced=True, now=True)
        return True

    # -- scheduling (event loop) ----------------------------------------------------------

    def poked(self) -> None:
        """A followed pane printed (a :class:`PaneOutput` arrived)."""
        self._pending.clear()
        self.counts["pokes"] += 1
        self.request()

    def request(self, *, forced: bool = False, now: bool = False) -> None:
        """A capture as soon as the rate limit allows (``now``: at once). ``forced``
        re-reads every pane on screen, printed or not."""
        if not self.enabled:
            return
        self._forced = self._forced or forced
        if self.busy:
            self._again = True
            return
        clock = time.monotonic()
        wait = max(self._last_start + self._min_gap() - clock, self.held_until - clock)
        if wait > 0 and (not now or self.held_until > clock):
            if self._timer is None:
                self._timer = self.app.set_timer(wait, self._delayed, name="output-rate")
                self._timer_due = clock + wait
            return
        self._start()

    def hold(self, seconds: float) -> None:
        """Start no capture for ``seconds``: a key's action runs and gets the CPU first."""
        self.held_until = time.monotonic() + seconds

    def release(self) -> None:
        """End a hold early (the action is done)."""
        self.held_until = 0.0

    def _min_gap(self) -> float:
        """Seconds between the starts of two captures: a long scrollback (the user reads
        back) costs more to capture and is refreshed at most once a second."""
        return LONG_HISTORY_POLL if self.history > OUTPUT_HISTORY else 1.0 / MAX_RATE

    def _delayed(self) -> None:
        self._timer = None
        self.request()

    def _start(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._timer = self._due = None
        plan = Plan(self.target, self.grid, self.history, self._forced)
        self._forced = False
        self.busy = True
        self._last_start = time.monotonic()
        self.counts["captures"] += 1
        self.run(lambda: self._work(plan), "output")

    def done(self, lines: int | None, following: bool) -> None:
        """A capture's result was shown (``lines``: how many lines of the selected agent,
        None when nothing new; ``following``: the view is at the bottom); the next one
        waits for output, or for the safety interval."""
        self.busy = False
        if self._beat is None and self.enabled:
            self._beat = self.app.set_interval(BEAT, self._heartbeat, name="output-beat")
        if lines is not None:
            self.more_history = lines >= self.history
        if following and self.history > OUTPUT_HISTORY:
            self.history = OUTPUT_HISTORY
        if not self.enabled:
            return
        if self._again:
            self._again = False
            self.request()
            return
        wait = self.safety if self.streaming else max(self.fallback, self._min_gap())
        self._due = time.monotonic() + wait

    def _heartbeat(self) -> None:
        clock = time.monotonic()
        if self._timer is not None and clock > self._timer_due + BEAT:
            # A delayed capture whose timer never fired: never let the output stop.
            self._timer.stop()
            self._delayed()
        if self._due is not None and clock >= self._due and not self.busy:
            self._due = None
            self.request(forced=True)

    def stop(self) -> None:
        self.enabled = False
        for timer in (self._timer, self._beat):
            if timer is not None:
                timer.stop()
        remove, self._remove_listener = self._remove_listener, None
        if remove is not None:
            remove()

    # -- the connection's event thread ------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        """Runs for every event of the connection: output of a pane on screen (or a pause
        of it: output lost) posts one PaneOutput unless one is on its way."""
        pane = getattr(event, "pane", None)
        if pane is None or pane not in self._watching:
            return
        from squad.tmux_control import Output, Pause

        if isinstance(event, (Output, Pause)) and not self._pending.is_set():
            self._pending.set()
            self.post_message(PaneOutput())

    # -- the worker -------------------------------------------------------------------------

    def _link(self) -> TmuxControl | None:
        """The control connection if it can stream, with this feed listening to it."""
        control = self.live.tmux.control
        if control is not self._control:
            if self._remove_listener is not None:
                self._remove_listener()
            self._control, self._remove_listener, self._followed = control, None, set()
            if control is not None:
                self._remove_listener = control.add_listener(self._on_event)
        if control is None or not control.connected:
            return None
        return control

    @reported("output capture", lambda error, plan: OutputReady(plan.target, None, error=error))
    def _work(self, plan: Plan) -> None:
        live = self.live
        wanted: dict[str, tuple[str, int]] = {}  # pane id -> (target, scrollback lines)
        if plan.grid is not None:
            for t in plan.grid:
                if (p := live.panes.get(t)) is not None:
                    wanted[p.pane_id] = (t, 0)
        elif plan.target is not None:
            pane = live.panes.get(plan.target)
            if pane is None:
                self._follow(set())
                raise SquadError(f"{plan.target} has no window: run `squad up` to create it")
            wanted[pane.pane_id] = (plan.target, plan.history)
        printed = self._follow(set(wanted))
        self.streaming = printed is not None
        ids = [p for p in wanted if plan.forced or printed is None or p in printed
               or p not in self._raw]
        screens: dict[str, str] = {}
        for history in sorted({wanted[p][1] for p in ids}):
            same = [p for p in ids if wanted[p][1] == history]
            screens.update(live.tmux.capture(same, history=history, ansi=True))
        self.counts["panes"] += len(ids)
        changed: dict[str, list[Text]] = {}
        for pane_id, raw in screens.items():
            if self._raw.get(pane_id) == raw:
                continue
            self._raw[pane_id] = raw
            changed[wanted[pane_id][0]] = self._decode(wanted[pane_id][0], raw)
        if not changed:
            self.counts["unchanged"] += 1
        if plan.grid is not None:
            self.post_message(GridReady(changed))
            return
        if plan.target is None:
            self.post_message(OutputReady(None, None))
            return
        if ids and not screens:
            raise SquadError(f"{plan.target}: window gone")
        lines = changed.get(plan.target)
        self.post_message(OutputReady(plan.target, lines, max(
            (t.cell_len for t in lines), default=0) if lines is not None else 0))

    def _follow(self, panes: set[str]) -> set[str] | None:
        """Follow exactly these panes on the connection; return those that printed since
        the last capture (None: no connection, so nobody knows)."""
        control = self._link()
        self._watching = frozenset(panes)
        if control is None:
            self._followed = set()
            return None
        for pane in panes - self._followed:
            control.follow(pane)
        for pane in self._followed - panes:
            control.unfollow(pane)
        self._followed = set(panes)
        printed = set()
        for pane in panes:
            chunk = control.read(pane)
            if chunk.text or chunk.gap:
                printed.add(pane)
        return printed

    def _decode(self, target: str, raw: str) -> list[Text]:
        if target not in self._decoders and len(self._decoders) > DECODERS_KEPT:
            self._decoders.clear()  # bound the caches of agents looked at before
        return self._decoders.setdefault(target, AnsiLines()).decode(trim_screen(raw))
