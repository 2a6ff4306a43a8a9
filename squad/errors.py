"""Typed errors a user can cause and fix. The CLI prints them as one line and exits 2."""

from __future__ import annotations


class SquadError(Exception):
    """A problem the user can fix: bad input, a missing program, a squad that is not running."""


class LayoutError(SquadError):
    """A layout file that cannot be read or does not validate.

    ``file`` is the layout's path, ``where`` the key path (``teams[1].agents[0].capacity``)
    or ``line N`` for TOML syntax errors.
    """

    def __init__(self, file: str, where: str, message: str) -> None:
        self.file = file
        self.where = where
        self.message = message
        super().__init__(f"{file}: {where}: {message}" if where else f"{file}: {message}")


class TargetError(SquadError):
    """An agent or team that does not exist in the squad the command acts on."""


class TmuxError(SquadError):
    """tmux is missing, too old, or refused a command."""


class ControlError(SquadError):
    """A pause, resume or stop that did not take effect on every process."""
