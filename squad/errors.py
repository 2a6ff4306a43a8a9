"""Typed errors a user can cause and fix. The CLI prints them as one line and exits 2."""

from __future__ import annotations


class SquadError(Exception):
    """A problem the user can fix: bad input, a missing program, a squad that is not running."""


class LayoutError(SquadError):
    """A layout file that cannot be read or does not validate.

    ``file`` is the layout's path, ``where`` the key path (``teams[1].agents[0].capacity``)
    or ``line N`` for TOML syntax errors, for the first problem; ``problems`` lists them all
    (the message shows them all, one per line, so a file is fixed in one go).
    """

    def __init__(self, file: str, where: str, message: str,
                 more: list[tuple[str, str]] | None = None) -> None:
        self.file = file
        self.where = where
        self.message = message
        self.problems = [(where, message), *(more or [])]
        """Every problem found in the file, in order: all are shown at once."""
        super().__init__("\n".join(f"{file}: {w}: {m}" if w else f"{file}: {m}"
                                   for w, m in self.problems))


class TargetError(SquadError):
    """An agent or team that does not exist in the squad the command acts on."""


class TmuxError(SquadError):
    """tmux is missing, too old, or refused a command."""


class ControlError(SquadError):
    """A pause, resume or stop that did not take effect on every process."""


class StorageError(SquadError):
    """squad's own files cannot be written or read: a full disk, a read-only or missing state
    directory, a file replaced by something squad will not follow (a symlink)."""


def storage_error(path: object, exc: OSError) -> StorageError:
    """One line for an OSError on one of squad's own files, saying what to do about it."""
    import errno

    code = exc.errno
    if code == errno.ENOSPC or code == errno.EDQUOT:
        why = "the disk is full; free some space"
    elif code == errno.EROFS:
        why = "the file system is read-only; point SQUAD_HOME at a writable directory"
    elif code in (errno.EACCES, errno.EPERM):
        why = "permission denied; make it writable by you or point SQUAD_HOME elsewhere"
    elif code == errno.ELOOP:
        why = "it is a symbolic link, which squad never follows for its own files; remove it"
    else:
        why = exc.strerror or str(exc)
    return StorageError(f"cannot write {path}: {why}")
