"""Where squad keeps its own files: a private state directory per user (mode 0700)."""

from __future__ import annotations

import os
import sys
from pathlib import Path


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
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)
    return path


def log_bug(context: str) -> str:
    """Append the current exception's traceback to ``squad.log`` in the state directory;
    return where it went (for the one line a user sees instead)."""
    import traceback

    try:
        path = state_home() / "squad.log"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a") as f:
            f.write(f"--- squad {context}\n{traceback.format_exc()}\n")
        return str(path)
    except OSError:
        return "(the log could not be written)"
