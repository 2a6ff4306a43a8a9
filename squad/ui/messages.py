"""Messages that carry results from thread workers back to the event loop.

Each is small, immutable plain data. A newer result replaces an older one still waiting in
the queue (``can_replace``), so a slow event loop never works through stale updates.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.text import Text
from textual.message import Message

from squad.control import Outcome
from squad.snapshot import Snapshot

History = dict[str, list[tuple[float, float, int]]]  # target -> (wall time, cpu %, rss)


@dataclass
class SnapshotReady(Message):
    """A supervisor tick finished."""

    snapshot: Snapshot
    history: History
    observing: str | None = None  # why another supervisor dispatches, when one does
    link: str | None = None  # why output is polled: the control connection is not ready
    policy: dict | None = None  # the governor's state (see squad.ui.feeds.TickFeed._policy)
    failures: list[str] = field(default_factory=list)  # notifications that failed just now
    summaries: dict | None = None  # target -> DiffSummary | None (worktree agents)

    def can_replace(self, message: Message) -> bool:
        # A waiting snapshot is dropped for a newer one, unless it says something once.
        return isinstance(message, SnapshotReady) and not message.failures


@dataclass
class TickFailed(Message):
    """A supervisor tick failed; ``error`` says why in one line."""

    error: str


@dataclass
class PaneOutput(Message):
    """A pane on screen printed (posted from the control connection's event thread; one
    waits at a time, so a flood of output is one message)."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, PaneOutput)


@dataclass
class OutputReady(Message):
    """The selected agent's screen and scrollback, decoded; ``lines`` is None when unchanged."""

    target: str | None
    lines: list[Text] | None
    width: int = 0
    error: str | None = None

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, OutputReady)


@dataclass
class GridReady(Message):
    """The screens of the agents in the grid view, decoded."""

    screens: dict[str, list[Text]]

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, GridReady)


@dataclass
class ActionsDone(Message):
    """A control action finished: one outcome per agent, or an error for the whole action."""

    action: str
    outcomes: list[Outcome] = field(default_factory=list)
    error: str | None = None
    message: str | None = None  # a one-line result that is not per agent (dispatch)
    then_exit: bool = False


@dataclass
class TasksReady(Message):
    tasks: list[dict]
    error: str | None = None

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, TasksReady)


@dataclass
class EventsReady(Message):
    events: list[dict]
    error: str | None = None

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, EventsReady)
