"""Where squad keeps its own files: a private state directory per user (mode 0700)."""

from __future__ import annotations

import fcntl
import os
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from squad.errors import StorageError, storage_error


def state_home() -> Path:
    """The state directory: ``$SQUAD_HOME``, else the platform's per-user state directory."""
    if env := os.environ.get("SQUAD_HOME"):
        path = Path(env).expanduser()
    elif sys.platform == "darwin":
        path = Path.home() / "Library" / "Application Support" / "squad"
    else:
        base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        path = Path(base) / "squad"
    return ensure_private_dir(path)


def squad_dir(name: str) -> Path:
    """The directory holding one squad's database, audit log, snapshot and lock."""
    return ensure_private_dir(state_home() / "squads" / name)


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) if needed and make it readable by its owner only."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        if path.stat().st_mode & 0o077:
            path.chmod(0o700)
    except OSError as exc:
        raise storage_error(path, exc) from None
    return path


NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # squad's own files are never symbolic links
MIN_FREE = 256 * 1024  # bytes a command needs free in the state directory to act


def write_private(path: Path, data: bytes) -> None:
    """Replace ``path`` atomically with ``data``, readable by its owner only.

    The temporary file has a name of its own (pid and random), is created exclusively and
    never through a symbolic link, and is removed on every failure (a full disk included):
    two processes writing the same file at once each rename a whole file of their own.
    Raises OSError.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW, 0o600)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def check_writable(path: Path | None = None) -> Path:
    """Make sure squad can record what it is about to do, before it does anything: the state
    directory (or ``path`` in it) exists, is writable, and has some free space. Raises a
    :class:`StorageError` with one line saying what to fix."""
    path = ensure_private_dir(path or state_home())
    probe = path / f".probe-{os.getpid()}-{secrets.token_hex(3)}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW, 0o600)
        os.close(fd)
        os.unlink(probe)
        st = os.statvfs(path)
        free = (st.f_bfree if os.geteuid() == 0 else st.f_bavail) * st.f_frsize
    except OSError as exc:
        raise storage_error(path, exc) from None
    if free < MIN_FREE:
        raise StorageError(f"cannot write {path}: the disk is full ({free // 1024} KiB free); "
                           "free some space (nothing was done)")
    for name in STATE_FILES:
        if (path / name).is_symlink():
            raise StorageError(f"{path / name} is a symbolic link, which squad never follows "
                               "for its own files: remove it (nothing was done)")
    return path


# squad's own files in a squad's state directory; none of them may be a symbolic link.
STATE_FILES = ("events.jsonl", "hooks.jsonl", "layout.toml", "snapshot.json", "tasks.db",
               "tasks.db-wal", "tasks.db-shm", "supervisor.lock", "up.lock", "squad.log")


@contextmanager
def squad_lock(name: str, what: str) -> Iterator[None]:
    """Take turns with other processes doing ``what`` to the same squad (a blocking flock
    on a file in its state directory; the kernel frees it if the holder dies)."""
    path = squad_dir(name) / f"{what}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def log_bug(context: str) -> str:
    """Append the current exception's traceback to ``squad.log`` in the state directory;
    return where it went (for the one line a user sees instead)."""
    import traceback

    try:
        path = state_home() / "squad.log"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | NOFOLLOW, 0o600)
        with os.fdopen(fd, "a") as f:
            f.write(f"--- squad {context}\n{traceback.format_exc()}\n")
        return str(path)
    except (OSError, StorageError):
        return "(the log could not be written)"
