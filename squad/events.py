"""The audit trail: every control action, status change and task transition, one JSON line each.

The log is append-only: each event is one ``write`` to a file opened with ``O_APPEND`` under
an exclusive ``flock``, so several writers (the CLI, the UI, a headless supervisor, agents
running ``squad`` themselves) never interleave or lose lines. The file is private (0600).
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from squad.state import squad_dir

SOURCES = ("cli", "ui", "policy", "supervisor", "agent")


def log_path(squad: str) -> Path:
    return squad_dir(squad) / "events.jsonl"


_cpu_prev: tuple[float, float] | None = None


def system_state() -> dict[str, float]:
    """System CPU % (since the previous call in this process, else since boot) and memory %."""
    global _cpu_prev
    cpu = mem = 0.0
    try:
        with open("/proc/stat") as f:
            fields = [float(x) for x in f.readline().split()[1:]]
        idle, total = fields[3] + fields[4], sum(fields)
        before = _cpu_prev or (0.0, 0.0)
        _cpu_prev = (idle, total)
        if total > before[1]:
            cpu = 100.0 * (1 - (idle - before[0]) / (total - before[1]))
        with open("/proc/meminfo") as f:
            info = {line.split(":")[0]: float(line.split()[1]) for line in f}
        mem = 100.0 * (1 - info["MemAvailable"] / info["MemTotal"])
    except (OSError, ValueError, KeyError, IndexError):
        import psutil

        cpu, mem = psutil.cpu_percent(None), psutil.virtual_memory().percent
    return {"cpu": round(cpu, 1), "mem": round(mem, 1)}


def record(
    squad: str,
    action: str,
    *,
    target: str | None = None,
    by: str = "cli",
    reason: str | None = None,
    system: dict[str, float] | None = None,
    **data: object,
) -> dict[str, object]:
    """Append one event to the squad's audit log and return it."""
    now = time.time()
    event: dict[str, object] = {
        "ts": round(now, 3),
        "time": datetime.fromtimestamp(now).astimezone().isoformat(timespec="milliseconds"),
        "squad": squad,
        "action": action,
        "target": target,
        "by": by,
        "reason": reason,
        "system": system if system is not None else system_state(),
    }
    event.update({k: v for k, v in data.items() if v is not None})
    append(log_path(squad), event)
    return event


def append(path: Path, event: dict[str, object]) -> None:
    line = (json.dumps(event, ensure_ascii=False, default=str) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, line)
    finally:
        os.close(fd)


def _matches(event: dict, target: str | None, since: float | None) -> bool:
    if since is not None and float(event.get("ts", 0)) < since:
        return False
    if target:
        t = event.get("target") or ""
        return t == target or t.startswith(target.rstrip("/") + "/") or (
            "/" not in target and t.split("/")[0] == target
        )
    return True


def read(squad: str, *, target: str | None = None, since: float | None = None) -> list[dict]:
    """Events in the order they were written, filtered by target (agent or team) and time."""
    path = log_path(squad)
    if not path.exists():
        return []
    events = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a torn last line from a crash: skip it
            if _matches(event, target, since):
                events.append(event)
    return events


def follow(
    squad: str, *, target: str | None = None, since: float | None = None, poll: float = 0.2
) -> Iterator[dict]:
    """Yield existing events, then new ones as they are appended, until interrupted."""
    path = log_path(squad)
    path.touch(mode=0o600, exist_ok=True)
    with open(path, encoding="utf-8", errors="replace") as f:
        partial = ""
        while True:
            chunk = f.readline()
            if not chunk:
                time.sleep(poll)
                continue
            partial += chunk
            if not partial.endswith("\n"):
                continue
            line, partial = partial, ""
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if _matches(event, target, since):
                yield event


def parse_since(text: str, now: float | None = None) -> float:
    """``--since``: an ISO time ("2026-11-22T10:00"), or an age ("90s", "15m", "2h", "1d")."""
    from squad.errors import SquadError

    now = time.time() if now is None else now
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    t = text.strip()
    if t and t[-1] in units and t[:-1].replace(".", "", 1).isdigit():
        return now - float(t[:-1]) * units[t[-1]]
    try:
        return datetime.fromisoformat(t).timestamp()
    except ValueError:
        raise SquadError(
            f"--since {text!r}: not a time; use an age like 15m, 2h, 1d or an ISO time like "
            "2026-11-22T10:00"
        ) from None
