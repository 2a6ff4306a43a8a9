"""How a thread worker fails: one line for the user, a traceback in the log for a bug.

Every worker of the UI (the supervisor tick, captures, actions, the task and event feeds)
reports its result as a message to the event loop. When it fails, the user gets the same
kind of message with an error: a :class:`~squad.errors.SquadError` as it is (the user can do
something about it), anything else as ``internal error: ... (details in squad.log)`` with
the traceback written to the log by :func:`squad.state.log_bug`. Nothing escapes a worker,
so a failing refresh never takes the UI down.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from textual import work
from textual.message import Message

from squad.errors import SquadError
from squad.state import log_bug

F = TypeVar("F", bound=Callable[..., Any])


def reported(what: str, failed: Callable[..., Message]) -> Callable[[F], F]:
    """Wrap a worker method so that an error becomes the message ``failed(error, *args)``
    posted with ``self.post_message``; ``what`` names the work in the log (it may use the
    method's arguments: ``"{0} {1}"``)."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def run(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return fn(self, *args, **kwargs)
            except SquadError as exc:
                self.post_message(failed(str(exc), *args, **kwargs))
            except Exception as exc:  # noqa: BLE001 - a bug: logged, shown in one line
                where = log_bug(what.format(*args, **kwargs))
                self.post_message(failed(f"internal error: {exc} (details in {where})",
                                         *args, **kwargs))
            return None

        return run  # type: ignore[return-value]

    return decorate


def thread_worker(group: str, what: str, failed: Callable[..., Message], *,
                  exclusive: bool = False) -> Callable[[F], F]:
    """A method of the app that runs in a thread worker of ``group`` (see :func:`reported`
    for ``what`` and ``failed``): tmux, psutil and git never run on the event loop."""

    def decorate(fn: F) -> F:
        return work(thread=True, group=group, exclusive=exclusive,  # type: ignore[return-value]
                    exit_on_error=False)(reported(what, failed)(fn))

    return decorate
