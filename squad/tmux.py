"""The one place squad talks to tmux: batched commands on squad's own server (its socket).

Every tmux invocation forks a process (2-4 ms of CPU each, measured), so this
module sends many commands per invocation: a list of commands becomes one ``tmux`` call with
``;`` separators. Arguments are escaped so that nothing a user wrote (a command ending in ``;``,
a path with ``#``) is read by tmux as syntax. Agent text is delivered through a paste buffer
fed on standard input, so it reaches the program byte for byte.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from squad.errors import TmuxError

if TYPE_CHECKING:
    from squad.tmux_control import TmuxControl

MIN_VERSION = (3, 2)
BATCH_BYTES = 12_000  # per tmux invocation; tmux's own limit is a 16 KB message
SEP = "\x1f"  # unit separator: never in names squad allows, survives tmux formats verbatim

_PANE_FIELDS = (
    "session_name",
    "session_id",
    "window_id",
    "window_index",
    "window_name",
    "pane_id",
    "pane_pid",
    "pane_dead",
    "pane_dead_status",
    "pane_dead_signal",
    "@squad_name",
    "@squad_team",
    "@squad_agent",
    "pane_width",
    "pane_height",
    "pane_current_path",
    "alternate_on",
)
PANE_FORMAT = SEP.join("#{" + f + "}" for f in _PANE_FIELDS)


@dataclass(frozen=True)
class Pane:
    """One agent window's first pane as tmux reports it."""

    session: str
    session_id: str
    window_id: str
    window_index: int
    window_name: str
    pane_id: str
    pid: int | None
    dead: bool
    exit_code: int | None
    exit_signal: int | None
    squad: str
    team: str
    agent: str
    width: int
    height: int
    path: str
    fullscreen: bool = False  # the program is on the alternate screen (vim, less, htop)

    @property
    def target(self) -> str:
        return f"{self.team}/{self.agent}"


def escape_arg(arg: str) -> str:
    """Escape one argument so tmux's command parser gives it back unchanged.

    tmux treats any argument that ends in ``;`` as "argument, then command separator", and an
    argument ending in ``\\;`` as one ending in ``;``. Turning a final ``;`` into ``\\;``
    restores the original in both cases.
    """
    return arg[:-1] + "\\;" if arg.endswith(";") else arg


def format_literal(text: str) -> str:
    """Escape text for options that tmux expands as a format (``-c`` start directory)."""
    return text.replace("#", "##")


def _int(text: str) -> int | None:
    return int(text) if text.strip().lstrip("-").isdigit() else None


def _zombie_status(pid: int | None) -> int | None:
    """The wait status of a pane process that exited but tmux has not reaped yet (a zombie),
    from /proc (Linux >= 3.5 keeps it in field 52); None if it is not a zombie."""
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if not fields or fields[0] != b"Z" or len(fields) < 50:
        return None
    return int(fields[49])


def _dead_pane(dead: str, status: str, signal: str, pid: int | None
               ) -> tuple[bool, int | None, int | None]:
    """(dead, exit code, signal) of a pane. tmux marks a pane dead when its pty closes, and
    fills in the status only when it reaps the process, which can lag, sometimes until the
    next child exits; a zombie's own wait status fills the gap."""
    code, sig = _int(status), _int(signal)
    if dead != "1":
        return False, None, None
    if code is not None or sig is not None:
        return True, code, sig
    wait = _zombie_status(pid)
    if wait is not None:
        if os.WIFSIGNALED(wait):
            return True, None, os.WTERMSIG(wait)
        return True, os.WEXITSTATUS(wait), None
    if pid:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True, None, None
        except PermissionError:
            pass
        else:
            return False, None, None  # alive: tmux saw the pty close a moment early
    return True, None, None


class Tmux:
    """squad's tmux server, reached by socket name (``tmux -L NAME``)."""

    def __init__(self, socket: str) -> None:
        self.socket = socket
        self.binary = shutil.which("tmux")
        # A persistent control-mode connection (squad.tmux_control), for processes that live
        # long (the UI, the headless supervisor): commands then cost a tenth of a millisecond
        # instead of a forked tmux, and output streams. One-shot commands keep forking.
        self.control: TmuxControl | None = None

    def connect(self, sessions: Iterable[str] = (), **options: object) -> TmuxControl:
        """Carry this object's commands over a control-mode connection watching
        ``sessions`` (the teams), falling back to forked ``tmux`` whenever it is not ready."""
        from squad.tmux_control import TmuxControl

        if self.control is None:
            self.control = TmuxControl(self.socket, sessions, binary=self.binary,
                                       **options)  # type: ignore[arg-type]
            self.control.open(wait=2.0)
        else:
            self.control.watch(sessions)
        return self.control

    def disconnect(self) -> None:
        if self.control is not None:
            self.control.close()
            self.control = None

    def _connected(self) -> TmuxControl | None:
        control = self.control
        return control if control is not None and control.connected else None

    # -- running commands -------------------------------------------------------------

    def _argv(self, commands: Sequence[Sequence[str]]) -> list[str]:
        if not self.binary:
            self.binary = shutil.which("tmux")
            if not self.binary:
                raise TmuxError("tmux is not installed (squad needs tmux >= 3.2 on PATH)")
        argv = [self.binary, "-L", self.socket]
        for i, cmd in enumerate(commands):
            if i:
                argv.append(";")
            argv.extend(escape_arg(str(a)) for a in cmd)
        return argv

    def run(
        self,
        *commands: Sequence[str],
        input: bytes | None = None,
        check: bool = True,
    ) -> str:
        """Run commands in one tmux invocation; return its standard output as text.

        With ``check`` a non-zero exit raises :class:`TmuxError` carrying tmux's message.
        """
        if (control := self._connected()) is not None:
            return control.run(*commands, input=input, check=check)
        proc = self.run_bytes(*commands, input=input)
        out = proc.stdout.decode("utf-8", "replace")
        if check and proc.returncode != 0:
            err = proc.stderr.decode("utf-8", "replace").strip() or f"exit {proc.returncode}"
            self.require_version()  # an old tmux explains itself better than its error
            raise TmuxError(f"tmux (socket {self.socket!r}): {err}")
        return out

    def run_units(self, units: Sequence[Sequence[Sequence[str]]], *,
                  limit: int = BATCH_BYTES) -> None:
        """Run groups of commands in as few invocations as tmux accepts.

        tmux refuses a command line past about 16 KB ("command too long"), and each window
        carries its environment, so a big squad needs several invocations. A unit (say, one
        window and the options set on it) is never split: targets like ``{end}`` inside it
        must refer to what the unit itself created.
        """
        batch: list[Sequence[str]] = []
        size = 0
        for unit in units:
            unit_size = command_bytes(unit)
            if batch and size + unit_size > limit:
                self.run(*batch)
                batch, size = [], 0
            batch.extend(unit)
            size += unit_size
        if batch:
            self.run(*batch)

    def run_bytes(
        self, *commands: Sequence[str], input: bytes | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        argv = self._argv(commands)
        env = dict(os.environ)
        env.pop("TMUX", None)  # inside tmux, never let the user's server leak in
        return subprocess.run(
            argv,
            input=input if input is not None else b"",
            capture_output=True,
            env=env,
            check=False,
        )

    # -- queries ----------------------------------------------------------------------

    def alive(self) -> bool:
        """Whether a tmux server answers on this socket."""
        if not self.binary:
            return False
        return self.run_bytes(["list-sessions", "-F", "x"]).returncode == 0

    def version(self) -> tuple[int, int]:
        """The tmux version, read by libtmux (imported here only: it costs ~50 ms, so it is
        kept off the hot paths; squad checks versions at UI start and when a command fails)."""
        if not self.binary:
            raise TmuxError("tmux is not installed (squad needs tmux >= 3.2 on PATH)")
        from libtmux import common

        try:
            text = str(common.get_version(tmux_bin=self.binary))
        except Exception:  # noqa: BLE001 - libtmux raises several types for odd binaries
            return (0, 0)
        parts = ["".join(ch for ch in p if ch.isdigit()) or "0" for p in text.split(".")]
        return int(parts[0]), int(parts[1] if len(parts) > 1 else 0)

    def require_version(self) -> None:
        have = self.version()
        if have < MIN_VERSION:
            raise TmuxError(
                f"tmux {have[0]}.{have[1]} is too old: squad needs tmux >= "
                f"{MIN_VERSION[0]}.{MIN_VERSION[1]}"
            )

    def panes(self) -> list[Pane]:
        """Every pane on the server in one fork; [] when no server runs."""
        control = self._connected()
        if control is not None:
            try:
                text = control.run(["list-panes", "-a", "-F", PANE_FORMAT])
            except TmuxError as exc:
                if no_server(str(exc)):
                    return []
                raise
        else:
            proc = self.run_bytes(["list-panes", "-a", "-F", PANE_FORMAT])
            if proc.returncode != 0:
                err = proc.stderr.decode("utf-8", "replace").strip()
                if no_server(err):
                    return []
                # Anything else (a server busy or exiting, a client killed) is not "no
                # agents": callers keep what they saw last instead of declaring them down.
                raise TmuxError(f"tmux (socket {self.socket!r}): "
                                f"{err or f'exit status {proc.returncode} without a message'}")
            text = proc.stdout.decode("utf-8", "replace")
        panes = []
        for line in text.splitlines():
            f = line.split(SEP)
            if len(f) != len(_PANE_FIELDS):
                continue
            dead, code, sig = _dead_pane(f[7], f[8], f[9], _int(f[6]))
            panes.append(
                Pane(
                    session=f[0],
                    session_id=f[1],
                    window_id=f[2],
                    window_index=_int(f[3]) or 0,
                    window_name=f[4],
                    pane_id=f[5],
                    pid=_int(f[6]),
                    dead=dead,
                    exit_code=code,
                    exit_signal=sig,
                    squad=f[10],
                    team=f[11],
                    agent=f[12],
                    width=_int(f[13]) or 0,
                    height=_int(f[14]) or 0,
                    path=f[15],
                    fullscreen=f[16] == "1",
                )
            )
        return panes

    def capture(
        self,
        pane_ids: Iterable[str],
        *,
        history: int = 0,
        ansi: bool = False,
    ) -> dict[str, str]:
        """Capture several panes' screens (plus ``history`` lines of scrollback) in one fork.

        Panes are separated in the output by a random marker printed with display-message.
        tmux stops a command list at the first command that fails, so a pane that vanished
        meanwhile ends the batch there: it is left out of the result and the panes after it
        are captured again in another invocation.
        """
        ids = list(pane_ids)
        if ids and (control := self._connected()) is not None:
            try:
                return control.capture(ids, history=history, ansi=ansi)
            except TmuxError:
                pass  # a reply that could not be matched: capture the forked way
        result: dict[str, str] = {}
        while ids:
            chunk = ids[:_fitting(ids, history, ansi)]  # tmux refuses a line past ~16 KB
            got, failed_at, err = self._capture_batch(chunk, history, ansi)
            result.update(got)
            if failed_at is None:
                ids = ids[len(chunk):]
                continue
            if failed_at == 0 and not got and "can't find" not in err:
                if no_server(err):
                    break
                raise TmuxError(f"tmux (socket {self.socket!r}): {err or 'capture failed'}")
            ids = ids[failed_at + 1:]
        return result

    @staticmethod
    def _capture_commands(ids: list[str], history: int, ansi: bool, marker: str
                          ) -> list[list[str]]:
        cmds: list[list[str]] = []
        for i, pid in enumerate(ids):
            cmd = ["capture-pane", "-p", "-J", "-t", pid]
            if ansi:
                cmd.append("-e")
            if history:
                cmd += ["-S", str(-history)]
            # An index, not the pane id: display-message runs its text through strftime,
            # which mangles "%3".
            cmds.append(["display-message", "-p", f"{marker} {i}"])
            cmds.append(cmd)
        return cmds

    def _capture_batch(self, ids: list[str], history: int, ansi: bool
                       ) -> tuple[dict[str, str], int | None, str]:
        """One invocation: the screens it got, the index of the pane it failed on (None if
        it did not fail), and tmux's message."""
        marker = f"squad-capture-{secrets.token_hex(8)}"
        proc = self.run_bytes(*self._capture_commands(ids, history, ansi, marker))
        text = proc.stdout.decode("utf-8", "replace")
        result: dict[str, str] = {}
        current: int | None = None
        lines: list[str] = []
        for line in text.split("\n"):
            index = line[len(marker) + 1 :]
            if line.startswith(marker + " ") and index.isdigit() and int(index) < len(ids):
                if current is not None:
                    result[ids[current]] = "\n".join(lines)
                current, lines = int(index), []
            elif current is not None:
                lines.append(line)
        if proc.returncode == 0:
            if current is not None:
                result[ids[current]] = "\n".join(lines).rstrip("\n")
            return result, None, ""
        # The last marker printed belongs to the pane whose capture failed.
        failed = current if current is not None else 0
        return result, failed, proc.stderr.decode("utf-8", "replace").strip()

    # -- effects ----------------------------------------------------------------------

    def paste(self, pane_id: str, data: bytes, *, enter: bool = True, delay: float = 0.0,
              tag: str | None = None) -> None:
        """Deliver ``data`` to a pane exactly as given, then press Enter.

        The bytes go through a named paste buffer read from standard input, so neither tmux
        nor a shell interprets them; ``-p`` wraps them in bracketed-paste markers when the
        program asked for that, ``-r`` keeps newlines as they are. The two bracketed-paste
        delimiters are removed from the text itself (:func:`neutralise_paste`): inside a
        paste they would end it early and let the rest run as typed input. The buffer is
        deleted on every path, also when the pane vanished.

        With ``tag``, the pane's ``@squad_pasted`` option is set to it in the same command
        list as the paste: tmux runs a list as a whole, so after a crash of the sender the
        option tells whether this paste happened (:meth:`pasted`), whether or not the program
        echoes what it receives.
        """
        data = neutralise_paste(data)
        buf = f"squad-{secrets.token_hex(6)}"
        cmds: list[list[str]] = []
        if data:
            cmds.append(["load-buffer", "-b", buf, "-"])
            cmds.append(["paste-buffer", "-d", "-p", "-r", "-b", buf, "-t", pane_id])
            if tag is not None:
                cmds.append(["set-option", "-p", "-t", pane_id, "@squad_pasted", tag])
        if enter and not delay:
            cmds.append(["send-keys", "-t", pane_id, "Enter"])
        if cmds:
            try:
                self.run(*cmds, input=data)
            except TmuxError:
                if data:  # paste-buffer -d deletes it only when the paste succeeds
                    self.run_bytes(["delete-buffer", "-b", buf])
                raise
        if enter and delay:
            import time

            time.sleep(delay)
            self.send_keys(pane_id, "Enter")

    def viewed_windows(self) -> set[str]:
        """Windows a person is looking at: the current window of every client attached to
        the server that is not a control-mode client (squad's own)."""
        proc = self.run_bytes(["list-clients", "-F", "#{client_control_mode} #{window_id}"])
        if proc.returncode != 0:
            return set()
        found = set()
        for line in proc.stdout.decode("utf-8", "replace").splitlines():
            control, _, window = line.partition(" ")
            if control != "1" and window:
                found.add(window)
        return found

    def pasted(self, pane_id: str) -> str:
        """The tag of the last paste made with ``tag`` into this pane ("" if none)."""
        proc = self.run_bytes(["display-message", "-p", "-t", pane_id, "#{@squad_pasted}"])
        return proc.stdout.decode("utf-8", "replace").strip() if proc.returncode == 0 else ""

    def send_keys(self, pane_id: str, *keys: str) -> None:
        """Press keys by tmux name (``Enter``, ``Escape``, ``C-c``, ``Up``, ...), never
        text: see :func:`check_key`."""
        for key in keys:
            check_key(key)
        if keys:
            self.run(["send-keys", "-t", pane_id, *keys])

    def kill_server(self) -> None:
        """Stop the server and remove its socket file (tmux leaves it behind)."""
        self.run_bytes(["kill-server"])
        base = os.environ.get("TMUX_TMPDIR") or "/tmp"
        try:
            os.unlink(os.path.join(base, f"tmux-{os.getuid()}", self.socket))
        except OSError:
            pass


def no_server(message: str) -> bool:
    """Whether tmux's error means nothing listens on the socket (rather than a failure of a
    running server): no socket file, or a socket nobody accepts on."""
    return ("no server running" in message or "No such file or directory" in message
            or "Connection refused" in message)


PASTE_DELIMITERS = (b"\x1b[200~", b"\x1b[201~")


def command_bytes(commands: Sequence[Sequence[str]]) -> int:
    """What a command list costs of tmux's message limit (arguments and separators)."""
    return sum(len(a.encode()) + 1 for cmd in commands for a in cmd) + 2 * len(commands)


def _fitting(ids: list[str], history: int, ansi: bool, limit: int = BATCH_BYTES) -> int:
    """How many of ``ids`` (at least one) one forked capture invocation can take."""
    one = command_bytes(Tmux._capture_commands(["%99999"], history, ansi,
                                               "squad-capture-" + "0" * 16))
    return max(1, min(len(ids), limit // (one + 8)))  # + 8: longer indexes and pane ids


def neutralise_paste(data: bytes) -> bytes:
    """``data`` without bracketed-paste delimiters, so a paste cannot be ended from inside
    (``text ESC[201~ newline exit`` would otherwise run ``exit`` as typed input)."""
    while any(d in data for d in PASTE_DELIMITERS):
        for d in PASTE_DELIMITERS:
            data = data.replace(d, b"")
    return data


# Key names tmux's send-keys understands (see KEY BINDINGS in tmux(1)); modifiers C-, M-, S-
# may prefix any of them or one character.
KEY_NAMES = frozenset({
    "Up", "Down", "Left", "Right", "BSpace", "BTab", "DC", "End", "Enter", "Escape", "Home",
    "IC", "NPage", "PageDown", "PgDn", "PPage", "PageUp", "PgUp", "Space", "Tab",
    *(f"F{n}" for n in range(1, 13)),
    *(f"KP{k}" for k in ("/", "*", "-", "7", "8", "9", "+", "4", "5", "6", "1", "2", "3",
                         "Enter", "0", ".")),
})


def check_key(key: str) -> str:
    """A key name for ``send-keys``: a name of :data:`KEY_NAMES` or one printable character,
    optionally with ``C-``, ``M-``, ``S-`` modifiers (``C-c``, ``M-Enter``, ``S-Tab``).
    Anything else raises :class:`TmuxError` (one clear line), so text is never sent as keys."""
    base = key
    while len(base) > 2 and base[:2] in ("C-", "M-", "S-"):
        base = base[2:]
    if base in KEY_NAMES or (len(base) == 1 and base.isprintable() and base != " "):
        return key
    raise TmuxError(f"unknown key {key!r}: use a tmux key name (Enter, Escape, Tab, Up, "
                    "C-c, M-x, F1, ...) or one character, optionally with C-, M-, S-")


def env_args(env: Mapping[str, str]) -> list[str]:
    """``-e NAME=VALUE`` arguments for new-session / new-window / respawn-pane."""
    args: list[str] = []
    for key, value in env.items():
        args += ["-e", f"{key}={value}"]
    return args
