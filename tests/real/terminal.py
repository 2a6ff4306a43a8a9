"""A real terminal for one program: a tmux session on its own socket, 120x40 by default,
with the few things a test does to it (type, paste, press keys, read the screen, wait).

squad's own tmux code is deliberately not used here, so the harness keeps working while
squad changes and can check squad against an independent view of the same screens.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

WIDTH, HEIGHT = 120, 40


class Terminal:
    """One program running in a detached tmux session on a private socket."""

    def __init__(self, socket: str | None = None, width: int = WIDTH, height: int = HEIGHT):
        self.socket = socket or f"sqreal-{uuid.uuid4().hex[:8]}"
        self.width, self.height = width, height
        self.target = "main:0.0"

    def tmux(self, *args: str, input: bytes | None = None, check: bool = True
             ) -> subprocess.CompletedProcess[bytes]:
        proc = subprocess.run(["tmux", "-L", self.socket, *args], input=input,
                              capture_output=True, check=False, timeout=30)
        if check and proc.returncode != 0:
            raise RuntimeError(f"tmux {' '.join(args)}: {proc.stderr.decode().strip()}")
        return proc

    def start(self, argv: Sequence[str], env: Mapping[str, str], cwd: Path) -> Terminal:
        """Start ``argv`` in ``cwd`` with ``env`` plus what tmux itself gives every pane
        (``TMUX``, ``TMUX_PANE``, ``TERM``), as a program under squad sees it; nothing of
        this process's environment leaks in. The pane stays after the program ends, so its
        last screen and exit status can be read."""
        # The server starts with a minimal environment (panes inherit it); -e adds ``env``.
        server_env = {"PATH": env.get("PATH", os.defpath), "LANG": "C.UTF-8"}
        pairs = [arg for k, v in env.items() for arg in ("-e", f"{k}={v}")]
        proc = subprocess.run(["tmux", "-L", self.socket, "-f", "/dev/null", "new-session",
                               "-d", "-s", "main", "-x", str(self.width), "-y",
                               str(self.height), "-c", str(cwd), *pairs, *argv],
                              env=server_env, capture_output=True, timeout=30, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"tmux -L {self.socket} new-session: "
                               f"{proc.stderr.decode().strip()}")
        self.tmux("set-option", "-g", "remain-on-exit", "on")
        self.tmux("set-option", "-g", "history-limit", "5000")
        return self

    def capture(self, ansi: bool = False, history: bool = False) -> str:
        """The visible screen (``history``: with scrollback), plain or with ANSI escapes."""
        args = ["capture-pane", "-p", "-t", self.target]
        if ansi:
            args.append("-e")
        if history:
            args += ["-S", "-"]
        return self.tmux(*args).stdout.decode("utf-8", "replace")

    def capture_both(self) -> tuple[str, str]:
        """The visible screen plain and with ANSI escapes, taken at the same moment (one
        tmux invocation, so nothing can change in between)."""
        marker = f"8<-- {uuid.uuid4().hex} -->8"
        out = self.tmux("capture-pane", "-p", "-t", self.target, ";",
                        "display-message", "-p", marker, ";",
                        "capture-pane", "-p", "-e", "-t", self.target).stdout
        plain, _, ansi = out.decode("utf-8", "replace").partition(marker + "\n")
        return plain, ansi

    def pane(self, fmt: str) -> str:
        return self.tmux("display-message", "-p", "-t", self.target, fmt).stdout.decode().strip()

    def pid(self) -> int | None:
        value = self.pane("#{pane_pid}")
        return int(value) if value.isdigit() else None

    def dead(self) -> bool:
        return self.pane("#{pane_dead}") == "1"

    def type(self, text: str) -> None:
        """Send ``text`` as typed keys (literally, no key names)."""
        self.tmux("send-keys", "-t", self.target, "-l", text)

    def paste(self, text: str, bracketed: bool = True) -> None:
        """Paste ``text`` as one paste (bracketed if the program asked for it)."""
        name = f"p{uuid.uuid4().hex[:8]}"
        self.tmux("load-buffer", "-b", name, "-", input=text.encode())
        self.tmux("paste-buffer", "-d", "-b", name, "-t", self.target, *(["-p"] if bracketed
                                                                          else []))

    def keys(self, *keys: str) -> None:
        """Press tmux key names: ``Enter``, ``Escape``, ``C-c``, ``y``..."""
        self.tmux("send-keys", "-t", self.target, *keys)

    def text(self, history: bool = False) -> str:
        """The screen as plain text without trailing spaces or trailing blank lines, so a
        pattern can anchor at the last line with ``\\Z``."""
        lines = [line.rstrip() for line in self.capture(history=history).split("\n")]
        return "\n".join(lines).rstrip("\n")

    def wait(self, pattern: str | re.Pattern[str], timeout: float = 30.0,
             what: str | None = None, history: bool = False) -> re.Match[str]:
        """Wait until the screen (as :meth:`text`) matches ``pattern`` (re.MULTILINE); fail
        with the screen."""
        regex = re.compile(pattern, re.MULTILINE) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        delay = 0.05
        while True:
            screen = self.text(history=history)
            found = regex.search(screen)
            if found:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for "
                                     f"{what or regex.pattern!r}; screen:\n{screen}")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.25)

    def wait_gone(self, pattern: str, timeout: float = 30.0, what: str | None = None) -> None:
        """Wait until the screen no longer matches ``pattern``."""
        regex = re.compile(pattern, re.MULTILINE)
        deadline = time.monotonic() + timeout
        while regex.search(screen := self.text()):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for "
                                     f"{what or pattern!r} to go; screen:\n{screen}")
            time.sleep(0.1)

    def kill(self) -> None:
        """End the tmux server (and so the pane's process group gets SIGHUP)."""
        self.tmux("kill-server", check=False)

    def alive(self) -> bool:
        return self.tmux("list-sessions", check=False).returncode == 0
