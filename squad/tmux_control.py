"""A persistent tmux control-mode connection: squad's commands and its agents' live output.

Every forked ``tmux`` costs about 2 ms of CPU; a control-mode client (``tmux -C``, talking over
pipes, no terminal) answers a command in a tenth of a millisecond and streams what panes print
as ``%output`` notifications. This module keeps such clients for squad:

- :class:`ControlClient` is one ``tmux -C attach-session`` process. Requests are written as
  text lines and their replies matched by ``%begin``/``%end``/``%error`` blocks; a reader
  thread parses the stream and hands typed :class:`Event` objects to a callback.
- :class:`TmuxControl` is what squad holds: one client per watched session (tmux sends a
  control client ``%output`` only for panes of the session it is attached to, and a team is a
  session), commands carried by any ready client, per-pane activity counters a supervisor
  reads cheaply, bounded per-pane output buffers for viewers, flow control, reconnection, and
  a fallback to forked ``tmux`` whenever no client is usable.

Facts about tmux 3.3a this relies on, checked on a real server:

- A line with several commands (``a ; b``) gives one block per command, an error stops the
  rest (fewer blocks), a parse error gives one ``%error`` block, ``if-shell`` and hooks add
  blocks of their own. So the number of blocks per request is not known in advance: after each
  request line the client writes a second line, ``display-message -p TOKEN``, on its own line
  so that it always runs, and everything up to the block printing TOKEN is the reply.
- Hook blocks carry flags 0, blocks of commands this client sent carry flags 1; only the
  latter make up a reply.
- ``%pause`` and ``%continue`` caused by ``refresh-client -A`` are printed inside that
  command's block, despite the manual's "never inside a block".
- Commands that wait (``load-buffer PATH``, ``run-shell``) print ``%end`` before they finish,
  and their errors later, outside any block. Hence paste data is set with ``set-buffer``.
- Inside double quotes the command parser still expands ``$VAR`` and a leading ``~``, and it
  rejects bytes that are not UTF-8; ``\\ooo`` octal escapes give any byte except NUL (a C
  string ends there). Lines of a megabyte are accepted.
- Without ``-u`` a client on a non-UTF-8 locale gets ``_`` for every non-ASCII character in
  replies; ``%output`` escapes bytes below 32 and the backslash as ``\\ooo``, the rest raw.
- A control client without a size of its own never resizes windows; ``ignore-size`` makes
  that explicit. It exits when its standard input closes. ``-N`` keeps an attach attempt
  from starting a server when none runs.
- ``%output`` comes only for panes of the session the client is attached to; subscriptions
  (``refresh-client -B``) reach other sessions no better and give format values, not bytes.
  Hence one client per team session (the tmux server writes to our pipe itself, so an idle
  client process costs nothing).
- Flow: a reader that stops entirely makes tmux stop reading every pane whose only attached
  clients are control clients with output waiting, so agents printing meanwhile block;
  without ``pause-after`` tmux instead buffers for the client without bound (100 MB in 3 s of
  a flooding pane). So the reader runs no one else's code: it parses, counts and buffers, and
  listeners get events on a thread of their own through a bounded queue.
- ``kill-window`` notifies after unlinking: every client, the window's own session included,
  usually hears ``%unlinked-window-close``.
"""

from __future__ import annotations

import codecs
import collections
import functools
import logging
import os
import queue
import re
import secrets
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from squad.errors import TmuxError
from squad.tmux import escape_arg

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 5.0  # seconds for a reply; past it the connection counts as hung
PAUSE_AFTER = 1  # seconds of output tmux may hold for us before pausing a pane (a frozen
# squad costs tmux about one second of the busiest pane's output; 3 s measured 120 MB)
BUFFER_CHARS = 256 * 1024  # per followed pane; beyond it the oldest text is dropped (a gap)
EVENT_QUEUE = 2_000  # events waiting for listeners (a few MB at most); then dropped
ACTIVITY_SUBSCRIPTION = "squad-activity"
_BACKOFF = (0.2, 0.5, 1.0, 2.0, 5.0, 10.0)  # seconds between reconnection attempts

_SAFE = re.compile(rb"[A-Za-z0-9_@:./+,-]+")  # not %: "%3:pause" bare is a syntax error
_OCTAL = re.compile(rb"\\([0-7]{3})")
_OCTAL_BYTES = {b"%03o" % i: bytes((i,)) for i in range(256)}
_ESCAPE_IN_QUOTES = frozenset(b'\\"$~;#{}\'')


# -- errors -------------------------------------------------------------------------------


class ControlBroken(TmuxError):
    """The control connection cannot carry a request: callers fall back to forked tmux."""


class ControlTimeout(ControlBroken):
    """tmux did not answer in time. The request may or may not have run, so it is not
    retried; the client that hung is closed and replaced."""


# -- events -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """A notification from tmux; ``session`` names the watched session whose client got it."""

    session: str


@dataclass(frozen=True)
class Output(Event):
    """A pane printed ``data`` (raw bytes); ``text`` is it decoded as UTF-8, a character split
    across notifications kept whole. ``age_ms`` is how long tmux held it (None: unknown),
    ``at`` the ``time.monotonic()`` at which squad read it."""

    pane: str
    data: bytes
    text: str
    age_ms: int | None
    at: float = 0.0


@dataclass(frozen=True)
class WindowAdd(Event):
    """A window was linked to the client's session."""

    window: str


@dataclass(frozen=True)
class WindowClose(Event):
    """A window of the client's session closed."""

    window: str


@dataclass(frozen=True)
class UnlinkedWindowAdd(Event):
    """A window was created in another session."""

    window: str


@dataclass(frozen=True)
class UnlinkedWindowClose(Event):
    """A window of another session closed."""

    window: str


@dataclass(frozen=True)
class WindowRenamed(Event):
    window: str
    name: str


@dataclass(frozen=True)
class SessionsChanged(Event):
    """A session was created or destroyed somewhere on the server."""


@dataclass(frozen=True)
class SessionChanged(Event):
    """The client is now attached to session ``session_id`` named ``name``."""

    session_id: str
    name: str


@dataclass(frozen=True)
class SessionRenamed(Event):
    name: str


@dataclass(frozen=True)
class PaneModeChanged(Event):
    """A pane entered or left a mode (copy mode, view mode)."""

    pane: str


@dataclass(frozen=True)
class LayoutChange(Event):
    window: str
    layout: str
    visible_layout: str
    flags: str


@dataclass(frozen=True)
class SubscriptionChanged(Event):
    """A ``refresh-client -B`` format changed value (checked by tmux at most once a second)."""

    name: str
    session_id: str
    window: str
    window_index: str
    pane: str
    value: str


@dataclass(frozen=True)
class Pause(Event):
    """tmux stopped sending this pane's output to the client; what it printed meanwhile is
    lost to the stream (capture the screen to catch up)."""

    pane: str


@dataclass(frozen=True)
class Continue(Event):
    pane: str


@dataclass(frozen=True)
class Exit(Event):
    """The tmux client is exiting (its session or the server ended, or stdin closed)."""

    reason: str


@dataclass(frozen=True)
class Notification(Event):
    """Any other notification, kept raw: newer tmux versions add some."""

    name: str
    args: str


@dataclass(frozen=True)
class StateChange(Event):
    """A client became ``ready``, ``broken`` or ``closed``; ``reason`` says why."""

    state: str
    reason: str


# -- quoting ------------------------------------------------------------------------------


def quote(arg: str | bytes) -> bytes:
    """One argument as tmux's command parser must read it to give it back unchanged.

    Plain words pass as they are; anything else goes in double quotes with ``\\``, ``"``,
    ``$``, ``~`` (and, for clarity, ``;`` ``#`` braces and ``'``) escaped, control characters
    and bytes that are not UTF-8 written as ``\\ooo``. Bytes arguments (paste data) have every
    non-ASCII byte escaped, so they arrive exactly whatever they are. NUL cannot be carried:
    tmux arguments are C strings.
    """
    if isinstance(arg, str):
        try:
            raw, any_bytes = arg.encode("utf-8"), False
        except UnicodeEncodeError:  # lone surrogates, e.g. from os.fsdecode
            raw, any_bytes = arg.encode("utf-8", "surrogateescape"), True
    else:
        raw, any_bytes = bytes(arg), True
    if b"\0" in raw:
        raise ValueError("tmux arguments cannot contain NUL bytes")
    if raw and _SAFE.fullmatch(raw):
        return raw
    out = bytearray(b'"')
    for byte in raw:
        if byte in _ESCAPE_IN_QUOTES:
            out += b"\\" + bytes((byte,))
        elif byte < 32 or byte == 127 or (byte > 127 and any_bytes):
            out += b"\\%03o" % byte
        else:
            out.append(byte)
    out += b'"'
    return bytes(out)


def command_line(commands: Sequence[Sequence[str | bytes]]) -> bytes:
    """Commands as one control-mode line, separated by ``;`` (a failure stops the rest)."""
    parts = []
    for cmd in commands:
        if not cmd:
            raise ValueError("empty tmux command")
        parts.append(b" ".join(quote(a) for a in cmd))
    return b" ; ".join(parts)


def unescape_output(value: bytes) -> bytes:
    """The bytes of a ``%output`` value (tmux writes bytes below 32 and ``\\`` as ``\\ooo``)."""
    if b"\\" not in value:
        return value
    return _OCTAL.sub(lambda m: _OCTAL_BYTES.get(m.group(1), m.group(0)), value)


# -- one client ---------------------------------------------------------------------------


class _Request:
    """A request written to tmux and the blocks of its reply, until its sync token shows."""

    __slots__ = ("text", "token", "blocks", "failed", "done", "control_notes")

    def __init__(self, text: str, token: bytes, control_notes: bool) -> None:
        self.text = text
        self.token = token
        self.blocks: list[tuple[bool, list[bytes]]] = []  # (ok, lines)
        self.failed: str | None = None
        self.done = threading.Event()
        self.control_notes = control_notes  # refresh-client prints %pause inside its block


_PRCTL: Callable[..., int] | None = None
_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    """Runs in the forked child before exec: SIGTERM when the thread that started it ends
    (Linux), and give up at once if the parent is already gone."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        os._exit(1)


def _preexec() -> Callable[[], None] | None:
    global _PRCTL
    if not sys.platform.startswith("linux"):
        return None
    if _PRCTL is None:
        import ctypes

        _PRCTL = ctypes.CDLL(None, use_errno=True).prctl  # resolved before any fork
    return functools.partial(_die_with_parent, os.getpid())


class ControlClient:
    """One ``tmux -C attach-session`` process on one session, with its reader thread.

    Thread-safe: any thread may call :meth:`run`; writes are serialised and replies come back
    in the order requests were written. ``on_event`` runs on the reader thread and must be
    quick (bump a counter, queue the event): while it runs nothing is read, and tmux 3.3
    stops reading a pane whose only attached clients are control clients with output
    waiting, so every agent printing meanwhile blocks. (Without ``pause-after`` tmux would
    instead buffer for the client without bound; with it, a reader that is slow but moving
    gets ``%pause`` for panes more than ``pause_after`` seconds behind.)

    On Linux the tmux process gets SIGTERM when the *thread* that called :meth:`start` ends
    (that is how PR_SET_PDEATHSIG works), so start clients from a thread that lives as long as
    they should; :class:`TmuxControl` does. It also exits when its standard input closes, which
    the kernel does when squad's process dies however it dies.
    """

    def __init__(
        self,
        socket: str,
        session: str,
        *,
        on_event: Callable[[ControlClient, Event], None] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        pause_after: int | None = PAUSE_AFTER,
        binary: str | None = None,
    ) -> None:
        self.socket = socket
        self.session = session
        """The session name it was asked to attach to (exact match)."""
        self.session_id = ""
        self.timeout = timeout
        self.pause_after = pause_after
        self.binary = binary or shutil.which("tmux")
        self.state = "new"
        """``new``, ``starting``, ``ready``, ``broken`` or ``closed``."""
        self.reason = ""
        """Why it is not ready, in words fit for a status line."""
        self.proc: subprocess.Popen[bytes] | None = None
        self._stdin = -1  # the pipe's fd, non-blocking, written with os.write under _write_lock
        self._on_event = on_event
        self._write_lock = threading.Lock()  # one writer at a time: FIFO order = write order
        self._pending_lock = threading.Lock()  # the reader takes only this one, never a writer's
        self._state_lock = threading.Lock()
        self._pending: collections.deque[_Request] = collections.deque()
        self._ready = threading.Event()
        self._reader: threading.Thread | None = None
        self._decoders: dict[str, codecs.IncrementalDecoder] = {}
        self._secret = secrets.token_hex(6)
        self._seq = 0
        self._startup_error: list[str] = []
        self._exit_reason: str | None = None
        self.subscribed = False  # whether TmuxControl's activity subscription is set here

    def __repr__(self) -> str:
        return f"<ControlClient {self.socket}:{self.session} {self.state} pid={self.pid}>"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def ready(self) -> bool:
        return self.state == "ready"

    # -- lifecycle ----------------------------------------------------------------------

    def start(self, timeout: float | None = None) -> bool:
        """Start the tmux client and wait until it is attached; False (and ``reason``) if it
        could not attach: no server, no such session, tmux hung or missing."""
        if self.state != "new":
            raise RuntimeError("a ControlClient starts once; make a new one to reconnect")
        if not self.binary:
            self._set_state("broken", "tmux is not installed")
            return False
        self.state = "starting"
        flags = "ignore-size" + (f",pause-after={self.pause_after}" if self.pause_after else "")
        # -N: a reconnection attempt must never start a server (nor read the user's config).
        argv = [self.binary, "-u", "-N", "-L", self.socket, "-C",
                "attach-session", "-f", flags, "-t", "=" + self.session]
        env = dict(os.environ)
        env.pop("TMUX", None)  # inside tmux, never let the user's own server leak in
        env.pop("TMUX_PANE", None)
        try:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env=env, start_new_session=True,  # the terminal's ^C is not for it
                preexec_fn=_preexec(),  # only a prctl call resolved before the fork
            )
        except OSError as exc:
            self._set_state("broken", f"cannot start tmux: {exc}")
            return False
        assert self.proc.stdin is not None
        self._stdin = self.proc.stdin.fileno()
        os.set_blocking(self._stdin, False)  # a write that cannot go through must time out
        self._reader = threading.Thread(target=self._read_loop, daemon=True,
                                        name=f"tmux-control-{self.session}")
        self._reader.start()
        if not self._ready.wait(self.timeout if timeout is None else timeout):
            self._break(f"tmux did not attach to session {self.session!r} in time")
            return False
        return self.state == "ready"

    def close(self, reason: str = "closed") -> None:
        """End the tmux client: close its input (it exits), then terminate it if it lingers.
        Pending requests fail with :class:`ControlBroken`."""
        with self._state_lock:
            if self.state == "closed":
                return
        self._finish("closed", reason)

    def _break(self, reason: str) -> None:
        with self._state_lock:
            if self.state in ("broken", "closed"):
                return
        log.info("tmux control client %s broken: %s", self.session, reason)
        self._finish("broken", reason)

    def _finish(self, state: str, reason: str) -> None:
        self._set_state(state, reason)
        self._ready.set()
        self._fail_pending(reason)
        proc = self.proc
        if proc is not None:
            with self._write_lock:  # never close the fd under a writer (it could be reused)
                self._stdin = -1
                try:
                    if proc.stdin:
                        proc.stdin.close()  # tmux exits when its input ends
                except OSError:
                    pass
            try:
                proc.wait(0.5)
            except subprocess.TimeoutExpired:
                proc.terminate()
                try:
                    proc.wait(1.0)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        reader = self._reader
        if reader is not None and reader is not threading.current_thread():
            reader.join(2.0)  # it closes the output pipes when it sees their end

    def _set_state(self, state: str, reason: str) -> None:
        with self._state_lock:
            if self.state == state or self.state == "closed":
                return
            self.state, self.reason = state, reason
        self._emit(StateChange(self.session, state, reason))

    def _fail_pending(self, reason: str) -> None:
        with self._pending_lock:
            pending, self._pending = list(self._pending), collections.deque()
        for req in pending:
            req.failed = reason
            req.done.set()

    # -- requests -----------------------------------------------------------------------

    def submit(self, *commands: Sequence[str | bytes], separate: bool = False) -> _Request:
        """Write commands as one request without waiting; :meth:`wait` collects the reply.

        ``separate`` writes each command on a line of its own instead of one ``;`` sequence:
        a failure stops nothing else, and each command gives exactly one block of the reply
        (:meth:`blocks`), unless hooks or ``if-shell`` add some.
        """
        if separate:
            line = b"\n".join(command_line([c]) for c in commands)
        else:
            line = command_line(commands)
        with self._write_lock:
            if self.state != "ready" or self._stdin < 0:
                raise ControlBroken(self._unusable())
            self._seq += 1
            token = f"squad-sync-{self._secret}-{self._seq}".encode()
            notes = any(str(c[0]) in ("refresh-client", "refresh") for c in commands)
            req = _Request(line[:200].decode("utf-8", "replace"), token, notes)
            with self._pending_lock:
                self._pending.append(req)
            try:
                # The token on a line of its own always runs, even when the request fails.
                self._write(line + b"\ndisplay-message -p " + token + b"\n")
            except (OSError, ControlTimeout) as exc:
                with self._pending_lock:
                    if req in self._pending:
                        self._pending.remove(req)
                # Part of the line may be written: the stream cannot be trusted any more.
                reason = f"cannot write to tmux: {exc}"
                threading.Thread(target=self._break, args=(reason,), daemon=True).start()
                if isinstance(exc, ControlTimeout):
                    raise
                raise ControlBroken(reason) from exc
        return req

    def _write(self, data: bytes) -> None:
        """Write all of ``data`` within the timeout; the caller holds ``_write_lock``."""
        deadline = time.monotonic() + self.timeout
        view = memoryview(data)
        poller = None
        while view:
            try:
                view = view[os.write(self._stdin, view):]
                continue
            except BlockingIOError:
                pass
            left = deadline - time.monotonic()
            if left <= 0:
                raise ControlTimeout(f"tmux control (socket {self.socket!r}): tmux took no "
                                     f"input for {self.timeout:g} s")
            if poller is None:
                poller = select.poll()
                poller.register(self._stdin, select.POLLOUT)
            poller.poll(left * 1000)

    def wait(self, req: _Request, *, check: bool = True, timeout: float | None = None) -> str:
        """The reply of a submitted request as text, like a forked tmux's standard output."""
        out, error = self.reply(req, timeout=timeout)
        if error is not None and check:
            raise TmuxError(f"tmux (socket {self.socket!r}): {error}")
        return out

    def reply(self, req: _Request, *, timeout: float | None = None) -> tuple[str, str | None]:
        """(standard output, tmux's error message or None) of a submitted request."""
        out: list[str] = []
        error = None
        for ok, lines in self.blocks(req, timeout=timeout):
            if ok:
                out.extend(line + "\n" for line in lines)
            elif error is None:
                error = "\n".join(lines).strip() or "command failed"
        return "".join(out), error

    def blocks(self, req: _Request, *, timeout: float | None = None
               ) -> list[tuple[bool, list[str]]]:
        """The reply's blocks in order: (succeeded, its lines)."""
        limit = self.timeout if timeout is None else timeout
        if not req.done.wait(limit):
            reason = f"no reply from tmux within {limit:g} s to: {req.text}"
            self._break(reason)
            raise ControlTimeout(f"tmux control (socket {self.socket!r}): {reason}")
        if req.failed is not None:
            raise ControlBroken(f"tmux control (socket {self.socket!r}): {req.failed}; "
                                f"the request may or may not have run: {req.text}")
        return [(ok, [x.decode("utf-8", "replace") for x in lines]) for ok, lines in req.blocks]

    def run(self, *commands: Sequence[str | bytes], check: bool = True,
            timeout: float | None = None) -> str:
        """Run commands as one sequence (the first failure stops the rest) and return their
        output. ``%error`` raises :class:`TmuxError` with tmux's message when ``check``; a
        dead or hung connection raises :class:`ControlBroken`."""
        if not commands:
            return ""
        return self.wait(self.submit(*commands), check=check, timeout=timeout)

    def _unusable(self) -> str:
        if self.state == "ready":
            return "tmux control client has no input"
        what = {"new": "not started", "starting": "still attaching"}.get(self.state, self.state)
        return f"tmux control client for session {self.session!r} is {what}" + (
            f": {self.reason}" if self.reason else "")

    # -- reading ------------------------------------------------------------------------

    def _emit(self, event: Event) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(self, event)
        except Exception:  # noqa: BLE001 - a listener's bug must not stop the reader
            log.exception("tmux control listener failed on %r", event)

    def _read_loop(self) -> None:
        """Read tmux's output until it ends; never raises (a reader that dies silently would
        leave callers waiting for replies)."""
        proc = self.proc
        assert proc is not None and proc.stdout is not None
        fd = proc.stdout.fileno()
        rest = b""
        block: list[bytes] | None = None
        block_ok = True
        end_line = err_line = b""
        block_ours = False
        try:
            while True:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    break
                lines = (rest + chunk).split(b"\n")
                rest = lines.pop()
                for line in lines:
                    if block is not None:
                        if line == end_line or line == err_line:
                            block_ok = line == end_line
                            self._block_done(block_ours, block_ok, block)
                            block = None
                        else:
                            block.append(line)
                    elif line.startswith(b"%begin "):
                        fields = line[7:]
                        end_line, err_line = b"%end " + fields, b"%error " + fields
                        block_ours = fields.endswith(b" 1")
                        block = []
                    elif line.startswith(b"%"):
                        self._notification(line)
                    elif line:
                        # Errors of commands that finished after their %end land here.
                        log.info("tmux control %s: stray line %r", self.session, line[:200])
        except Exception:  # noqa: BLE001
            log.exception("tmux control reader for %s failed", self.session)
        err = b""
        try:
            if proc.stderr is not None:
                poller = select.poll()
                poller.register(proc.stderr.fileno(), select.POLLIN)
                if poller.poll(500):
                    err = os.read(proc.stderr.fileno(), 4096)
        except (OSError, ValueError):
            pass
        for stream in (proc.stdout, proc.stderr):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        text = "; ".join(self._startup_error) or err.decode("utf-8", "replace").strip()
        if text:
            reason = f"tmux control client exited: {text}"
        else:
            reason = self._exit_reason or "tmux control client exited"
        self._break(reason)

    def _block_done(self, ours: bool, ok: bool, lines: list[bytes]) -> None:
        if self.state == "starting":
            if not ok:  # the attach itself failed: "can't find session: x"
                self._startup_error.extend(x.decode("utf-8", "replace") for x in lines)
            return
        with self._pending_lock:
            req = self._pending[0] if self._pending else None
            if req is not None and ours and ok and len(lines) == 1 and lines[0] == req.token:
                self._pending.popleft()
                req.done.set()
                return
        if req is None or not ours:
            return  # a hook's block, or one nobody waits for
        if req.control_notes:
            kept = []
            for line in lines:
                if line.startswith((b"%pause ", b"%continue ")):
                    self._notification(line)
                else:
                    kept.append(line)
            lines = kept
        req.blocks.append((ok, lines))

    def _notification(self, line: bytes) -> None:
        name, _, rest = line.partition(b" ")
        s = self.session
        if name == b"%output":
            pane, _, value = rest.partition(b" ")
            self._output(pane.decode(), unescape_output(value), None)
        elif name == b"%extended-output":
            head, _, value = rest.partition(b" : ")
            fields = head.split(b" ")
            age = int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else None
            self._output(fields[0].decode(), unescape_output(value), age)
        else:
            text = rest.decode("utf-8", "replace")
            event = _parse_notification(s, name.decode("utf-8", "replace"), text)
            if isinstance(event, SessionChanged):
                self._attached(event)
            elif isinstance(event, Exit):
                self._exit_reason = (f"tmux control client exited: {event.reason}"
                                     if event.reason else "tmux control client exited")
            self._emit(event)

    def _attached(self, event: SessionChanged) -> None:
        if self.state == "starting":
            self.session_id = event.session_id
            self._set_state("ready", "")
            self._ready.set()
        elif event.session_id != self.session_id:
            # Its session ended and tmux moved it to another (detach-on-destroy off): that
            # session has a client of its own, so this one has no job left.
            threading.Thread(target=self._break, daemon=True,
                             args=(f"session {self.session!r} ended",)).start()

    def _output(self, pane: str, data: bytes, age: int | None) -> None:
        dec = self._decoders.get(pane)
        if dec is None:
            dec = self._decoders[pane] = codecs.getincrementaldecoder("utf-8")("replace")
        self._emit(Output(self.session, pane, data, dec.decode(data), age, time.monotonic()))


def _parse_notification(s: str, name: str, rest: str) -> Event:
    """A notification line (other than output) as a typed event."""
    args = rest.split(" ")
    one = args[0] if args else ""
    simple: dict[str, Callable[[str, str], Event]] = {
        "%window-add": WindowAdd, "%window-close": WindowClose,
        "%unlinked-window-add": UnlinkedWindowAdd,
        "%unlinked-window-close": UnlinkedWindowClose,
        "%pane-mode-changed": PaneModeChanged, "%pause": Pause, "%continue": Continue,
    }
    if name in simple:
        return simple[name](s, one)
    if name == "%sessions-changed":
        return SessionsChanged(s)
    if name == "%exit":
        return Exit(s, rest)
    if name == "%session-changed" and len(args) >= 2:
        return SessionChanged(s, args[0], rest.split(" ", 1)[1])
    if name == "%session-renamed":
        return SessionRenamed(s, rest)
    if name == "%window-renamed" and len(args) >= 2:
        return WindowRenamed(s, args[0], rest.split(" ", 1)[1])
    if name == "%layout-change" and len(args) >= 4:
        return LayoutChange(s, args[0], args[1], args[2], " ".join(args[3:]))
    if name == "%subscription-changed":
        head, _, value = rest.partition(" : ")
        f = head.split(" ")
        if len(f) >= 5:
            return SubscriptionChanged(s, f[0], f[1], f[2], f[3], f[4], value)
    return Notification(s, name, rest)


# -- squad's connection -------------------------------------------------------------------


@dataclass(frozen=True)
class PaneActivity:
    """What one pane printed since the connection opened, as a supervisor needs it."""

    pane: str
    bytes: int
    """Bytes of output received (0 for muted panes, whose activity comes from tmux's
    once-a-second activity time instead)."""
    notifications: int
    last_output: float
    """``time.monotonic()`` of the last sign of output; 0.0 if none yet."""
    seq: int
    """The connection's change counter at its last output (compare with :attr:`Changes.mark`)."""
    gaps: int
    """Times output was lost to the stream (tmux paused the pane, or the buffer overflowed)."""


@dataclass(frozen=True)
class Changes:
    """Panes that printed since an earlier mark; pass ``mark`` to the next call."""

    mark: int
    panes: dict[str, PaneActivity]


@dataclass(frozen=True)
class Chunk:
    """Text a followed pane printed since the last read. ``gap``: some was lost meanwhile (a
    pause or a full buffer), so a viewer should capture the screen again."""

    text: str
    gap: bool


class _Pane:
    __slots__ = ("bytes", "notifications", "last", "seq", "gaps", "activity_value",
                 "followed", "chunks", "chars", "gap")

    def __init__(self) -> None:
        self.bytes = self.notifications = self.seq = self.gaps = self.chars = 0
        self.last = 0.0
        self.activity_value: str | None = None
        self.followed = False
        self.chunks: collections.deque[str] = collections.deque()
        self.gap = False

    def snapshot(self, pane: str) -> PaneActivity:
        return PaneActivity(pane, self.bytes, self.notifications, self.last, self.seq,
                            self.gaps)


class TmuxControl:
    """squad's persistent connection to its tmux server: one control client per watched
    session (a team), commands over any of them, live output and activity for every pane.

    Threads: one reader per client (parses, updates counters and buffers, queues events),
    one event thread (calls listeners), one keeper (starts and restarts clients, mutes and
    continues panes), and any number of callers. Every public method is thread-safe; the
    ones that talk to tmux (:meth:`run`, :meth:`capture`, :meth:`mute`, :meth:`unmute`,
    :meth:`follow`) wait for their own replies, at most ``timeout`` seconds each.

    Route squad's calls through it per :class:`squad.tmux.Tmux` instance, not globally: its
    fallbacks use a fresh ``Tmux(socket)`` or a forked ``tmux`` of their own.

    When no client is ready, :meth:`run` runs the commands as a forked ``tmux`` instead
    (counted in :attr:`fallbacks`) and the keeper keeps trying to reconnect with backoff;
    :attr:`state` and :attr:`reason` say what is going on.
    """

    def __init__(
        self,
        socket: str,
        sessions: Iterable[str] = (),
        *,
        timeout: float = DEFAULT_TIMEOUT,
        pause_after: int | None = PAUSE_AFTER,
        buffer_chars: int = BUFFER_CHARS,
        stream_all: bool = True,
        binary: str | None = None,
    ) -> None:
        self.socket = socket
        self.timeout = timeout
        self.pause_after = pause_after
        self.buffer_chars = buffer_chars
        self.stream_all = stream_all
        """False: only followed panes stream their bytes; every other pane is muted when it
        first prints (its activity then comes once a second from tmux's activity time)."""

        self.binary = binary or shutil.which("tmux")
        self.fallbacks = 0
        """Requests run as forked tmux because no control client was ready."""
        self._watched: set[str] = set(sessions)
        self._clients: dict[str, ControlClient] = {}
        self._retry: dict[str, tuple[float, int]] = {}  # session -> (due, attempts)
        self._listeners: list[Callable[[Event], None]] = []
        self._panes: dict[str, _Pane] = {}
        self._muted: set[str] = set()
        self._seq = 0
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._tasks: collections.deque[Callable[[], None]] = collections.deque()
        self._keeper: threading.Thread | None = None
        self._dispatcher: threading.Thread | None = None
        self._events: queue.Queue[Event | None] = queue.Queue(EVENT_QUEUE)
        self.dropped_events = 0
        """Events listeners never saw because they fell behind by ``EVENT_QUEUE``."""
        self._closed = False
        self._attempted: set[str] = set()

    def __enter__(self) -> TmuxControl:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- lifecycle ----------------------------------------------------------------------

    def open(self, wait: float | None = None) -> TmuxControl:
        """Start the keeper and a client per watched session; wait (at most ``wait``
        seconds, default the reply timeout) until each has attached or failed once."""
        with self._lock:
            if self._closed:
                raise RuntimeError("this TmuxControl is closed")
            if self._keeper is None:
                self._keeper = threading.Thread(target=self._keep, daemon=True,
                                                name=f"tmux-control-keeper-{self.socket}")
                self._keeper.start()
                self._dispatcher = threading.Thread(target=self._dispatch, daemon=True,
                                                    name=f"tmux-control-events-{self.socket}")
                self._dispatcher.start()
        self._await_attempts(wait)
        return self

    def watch(self, sessions: Iterable[str], wait: float | None = None) -> None:
        """Watch exactly these sessions (a client each); clients of others are closed."""
        names = set(sessions)
        with self._lock:
            gone = [c for s, c in self._clients.items() if s not in names]
            for c in gone:
                del self._clients[c.session]
            self._watched = names
            for s in names:
                self._retry.setdefault(s, (0.0, 0))
            self._wake.notify_all()
        for c in gone:
            c.close("no longer watched")
        if self._keeper is not None:
            self._await_attempts(wait)

    def reconnect(self) -> None:
        """Try every watched session without a ready client now, skipping the backoff."""
        with self._lock:
            for s in self._watched:
                self._retry[s] = (0.0, 0)
            self._wake.notify_all()

    def close(self) -> None:
        """Close every client and stop the keeper; no tmux client of ours outlives this.

        The keeper closes the clients itself before it ends: they were started on its thread,
        and its end would SIGTERM them (PR_SET_PDEATHSIG) before a clean close."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._wake.notify_all()
            keeper = self._keeper
        if keeper is not None and keeper.is_alive() and keeper is not threading.current_thread():
            keeper.join(30.0)
        self._close_clients()
        dispatcher = self._dispatcher
        if dispatcher is not None and dispatcher is not threading.current_thread():
            while True:  # make room for the stop mark, whatever listeners left behind
                try:
                    self._events.put_nowait(None)
                    break
                except queue.Full:
                    try:
                        self._events.get_nowait()
                    except queue.Empty:
                        pass
            dispatcher.join(5.0)

    def _close_clients(self) -> None:
        with self._lock:
            clients = list(self._clients.values())
            self._clients.clear()
        for c in clients:
            c.close()

    def _await_attempts(self, wait: float | None) -> None:
        deadline = time.monotonic() + (self.timeout + 1 if wait is None else wait)
        with self._lock:
            while not self._closed and not self._watched <= self._attempted:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._wake.wait(left)

    # -- state --------------------------------------------------------------------------

    @property
    def state(self) -> str:
        """``ready`` (every watched session has a client), ``partial``, ``broken`` (none
        ready: requests are forked), ``idle`` (nothing watched) or ``closed``."""
        with self._lock:
            if self._closed:
                return "closed"
            if not self._watched:
                return "idle"
            ready = [s for s in self._watched if self._ready_client(s)]
            if len(ready) == len(self._watched):
                return "ready"
            return "partial" if ready else "broken"

    @property
    def reason(self) -> str:
        """Why some watched session has no ready client ('' when all have one)."""
        with self._lock:
            out = []
            for s in sorted(self._watched):
                c = self._clients.get(s)
                if c is None or not c.ready:
                    out.append(f"{s}: {c.reason if c and c.reason else 'not connected'}")
            return "; ".join(out)

    @property
    def connected(self) -> bool:
        """Whether commands go over control mode right now (some client is ready)."""
        return self._command_client() is not None

    def clients(self) -> dict[str, ControlClient]:
        with self._lock:
            return dict(self._clients)

    def _ready_client(self, session: str) -> ControlClient | None:
        c = self._clients.get(session)
        return c if c is not None and c.ready else None

    def _command_client(self) -> ControlClient | None:
        with self._lock:
            for s in sorted(self._clients):
                c = self._clients[s]
                if c.ready:
                    return c
        return None

    # -- commands -----------------------------------------------------------------------

    def run(
        self,
        *commands: Sequence[str],
        input: bytes | None = None,
        check: bool = True,
        timeout: float | None = None,
        fallback: bool = True,
    ) -> str:
        """Run commands like :meth:`squad.tmux.Tmux.run`: one sequence, stopped by the first
        failure, returning standard output as text, raising :class:`TmuxError` with tmux's
        message when ``check``.

        ``input`` feeds ``load-buffer ... -``; control mode has no standard input, so that
        command becomes ``set-buffer`` with the bytes escaped (exact for every byte but NUL;
        data with NUL, or empty, is loaded by a forked ``tmux load-buffer -``).

        With no ready client the commands run as one forked tmux (when ``fallback``, else
        :class:`ControlBroken`); a client that dies or hangs after the request was written
        raises :class:`ControlBroken`, because the commands may have run: they are not
        repeated.
        """
        if not commands:
            return ""
        client = self._command_client()
        if client is None:
            if not fallback:
                raise ControlBroken(f"tmux control (socket {self.socket!r}): "
                                    f"{self.reason or 'not connected'}")
            return self._forked(commands, input=input, check=check, fallback=True)
        out = []
        for i, (kind, group) in enumerate(self._split_for_input(commands, input)):
            if kind == "fork":
                text, error = self._forked_reply(group, input=input)
            else:
                try:
                    req = client.submit(*group)
                except ControlBroken:
                    if i or not fallback:
                        raise
                    return self._forked(commands, input=input, check=check, fallback=True)
                text, error = client.reply(req, timeout=timeout)
            out.append(text)
            if error is not None:  # like tmux: a failure stops the rest of the sequence
                if check:
                    raise TmuxError(f"tmux (socket {self.socket!r}): {error}")
                break
        return "".join(out)

    def capture(self, pane_ids: Iterable[str], *, history: int = 0, ansi: bool = False,
                timeout: float | None = None) -> dict[str, str]:
        """Capture several panes' screens (plus ``history`` lines of scrollback) in one
        request, like :meth:`squad.tmux.Tmux.capture`: each capture is its own command line,
        so each comes back as its own block (no markers to parse) and a pane that vanished
        meanwhile is simply missing from the result. Falls back to a forked batched capture
        when no client is ready."""
        ids = list(pane_ids)
        if not ids:
            return {}
        cmds: list[list[str]] = []
        for pane in ids:
            cmd = ["capture-pane", "-p", "-J", "-t", pane]
            if ansi:
                cmd.append("-e")
            if history:
                cmd += ["-S", str(-history)]
            cmds.append(cmd)
        client = self._command_client()
        req = None
        if client is not None:
            try:
                req = client.submit(*cmds, separate=True)
            except ControlBroken:
                req = None
        if client is None or req is None:
            from squad.tmux import Tmux

            with self._lock:
                self.fallbacks += 1
            return Tmux(self.socket).capture(ids, history=history, ansi=ansi)
        blocks = client.blocks(req, timeout=timeout)
        if len(blocks) != len(ids):  # a hook added blocks: they cannot be told apart
            raise TmuxError(f"tmux (socket {self.socket!r}): {len(blocks)} replies to "
                            f"{len(ids)} captures")
        return {pane: "\n".join(lines) for pane, (ok, lines) in zip(ids, blocks, strict=True) if ok}

    def _split_for_input(self, commands: Sequence[Sequence[str]], data: bytes | None
                         ) -> list[tuple[str, list[Sequence[str | bytes]]]]:
        """Commands grouped as control-mode sequences, ``load-buffer -`` rewritten."""
        groups: list[tuple[str, list[Sequence[str | bytes]]]] = []
        current: list[Sequence[str | bytes]] = []
        for cmd in commands:
            if (data is not None and cmd and cmd[0] in ("load-buffer", "loadb")
                    and cmd[-1] == "-"):
                if data and b"\0" not in data:
                    current.append(["set-buffer", *cmd[1:-1], "--", data])
                    continue
                if current:
                    groups.append(("control", current))
                    current = []
                groups.append(("fork", [cmd]))
                continue
            current.append(cmd)
        if current:
            groups.append(("control", current))
        return groups

    def _forked(self, commands: Sequence[Sequence[str | bytes]], *, input: bytes | None,
                check: bool, fallback: bool = False) -> str:
        if fallback:
            with self._lock:
                self.fallbacks += 1
        text, error = self._forked_reply(commands, input=input)
        if error is not None and check:
            raise TmuxError(f"tmux (socket {self.socket!r}): {error}")
        return text

    def _forked_reply(self, commands: Sequence[Sequence[str | bytes]], *,
                      input: bytes | None) -> tuple[str, str | None]:
        """The commands as one forked tmux, the way squad.tmux runs them: (stdout, error)."""
        if not self.binary:
            raise TmuxError("tmux is not installed (squad needs tmux >= 3.2 on PATH)")
        argv = [self.binary, "-L", self.socket]
        for i, cmd in enumerate(commands):
            if i:
                argv.append(";")
            argv.extend(escape_arg(os.fsdecode(a) if isinstance(a, bytes) else str(a))
                        for a in cmd)
        env = dict(os.environ)
        env.pop("TMUX", None)
        proc = subprocess.run(argv, input=input if input is not None else b"",
                              capture_output=True, env=env, check=False)
        text = proc.stdout.decode("utf-8", "replace")
        if proc.returncode != 0:
            return text, (proc.stderr.decode("utf-8", "replace").strip()
                          or f"exit {proc.returncode}")
        return text, None

    # -- activity and output ------------------------------------------------------------

    def changes(self, since: int = 0) -> Changes:
        """Panes with output after mark ``since`` (0: ever), and the mark to pass next time.
        Costs a walk over a dict of panes: cheap enough for every tick."""
        with self._lock:
            panes = {p: st.snapshot(p) for p, st in self._panes.items() if st.seq > since}
            return Changes(self._seq, panes)

    def activity(self, pane: str) -> PaneActivity | None:
        with self._lock:
            st = self._panes.get(pane)
            return st.snapshot(pane) if st else None

    def follow(self, pane: str) -> None:
        """Keep this pane's text for :meth:`read` (bounded by ``buffer_chars``), and stream
        its bytes if it was muted."""
        with self._lock:
            self._pane(pane).followed = True
            muted = pane in self._muted
        if muted:
            self.unmute([pane])

    def unfollow(self, pane: str) -> None:
        """Stop keeping its text; without ``stream_all``, mute it again."""
        with self._lock:
            st = self._panes.get(pane)
            if st is not None:
                st.followed, st.chars, st.gap = False, 0, False
                st.chunks.clear()
        if not self.stream_all:
            self.mute([pane])

    def read(self, pane: str) -> Chunk:
        """Text a followed pane printed since the last read (drained)."""
        with self._lock:
            st = self._panes.get(pane)
            if st is None:
                return Chunk("", False)
            text, gap = "".join(st.chunks), st.gap
            st.chunks.clear()
            st.chars, st.gap = 0, False
            return Chunk(text, gap)

    def mute(self, panes: Iterable[str]) -> None:
        """Stop the byte stream of panes nobody watches (``refresh-client -A %P:pause``;
        never ``off``, which makes tmux stop reading a pane every client turned off, blocking
        its agent). Their activity still shows, from a subscription to tmux's window activity
        time, with one-second resolution. Applied to every client before returning; clients
        that reconnect later get it again."""
        new = set(panes)
        with self._lock:
            new -= self._muted
            self._muted |= new
            clients = [c for c in self._clients.values() if c.ready]
        for c in clients:
            self._apply_mute(c, new)

    def unmute(self, panes: Iterable[str]) -> None:
        """Stream these panes' output again (``refresh-client -A %P:continue``)."""
        with self._lock:
            back = set(panes) & self._muted
            self._muted -= back
            clients = [c for c in self._clients.values() if c.ready]
        for c in clients:
            for group in _chunks(sorted(back), 50):
                self._run_quietly(c, ["refresh-client", *[
                    a for p in group for a in ("-A", f"{p}:continue")]])

    def forget(self, panes: Iterable[str]) -> None:
        """Drop the counters of panes that no longer exist (a restarted agent gets a new
        pane id; without this a long-lived squad would keep every old one)."""
        with self._lock:
            for p in panes:
                self._panes.pop(p, None)
                self._muted.discard(p)

    def muted(self) -> set[str]:
        with self._lock:
            return set(self._muted)

    def add_listener(self, fn: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``fn(event)`` for every event, in order, on the connection's event thread
        (never a reader: a reader that stops makes tmux stop reading the agents' panes).
        A listener may call :meth:`run`; one that is slow only delays other listeners, and
        past ``EVENT_QUEUE`` waiting events output events are dropped for listeners (counted
        in :attr:`dropped_events`; counters and :meth:`read` buffers still get everything).
        Returns a function that removes the listener."""
        with self._lock:
            self._listeners = [*self._listeners, fn]

        def remove() -> None:
            with self._lock:
                self._listeners = [f for f in self._listeners if f is not fn]

        return remove

    def _pane(self, pane: str) -> _Pane:
        st = self._panes.get(pane)
        if st is None:
            st = self._panes[pane] = _Pane()
        return st

    def _on_event(self, client: ControlClient, event: Event) -> None:
        """Runs on a reader thread (or the keeper for state changes)."""
        if isinstance(event, Output):
            now = time.monotonic()
            with self._lock:
                st = self._pane(event.pane)
                if (not self.stream_all and not st.followed
                        and event.pane not in self._muted):
                    self._muted.add(event.pane)  # a pane nobody follows: mute it
                    self._tasks.append(functools.partial(self._apply_mute, client,
                                                         {event.pane}))
                    self._wake.notify_all()
                self._seq += 1
                st.seq, st.last = self._seq, now
                st.bytes += len(event.data)
                st.notifications += 1
                if st.followed and event.text:
                    st.chunks.append(event.text)
                    st.chars += len(event.text)
                    while st.chars > self.buffer_chars and len(st.chunks) > 1:
                        st.chars -= len(st.chunks.popleft())
                        if not st.gap:
                            st.gap = True
                            st.gaps += 1
                    if st.chars > self.buffer_chars:  # one chunk larger than the buffer
                        last = st.chunks[0][-self.buffer_chars:]
                        st.chunks[0], st.chars = last, len(last)
                        if not st.gap:
                            st.gap = True
                            st.gaps += 1
        elif isinstance(event, Pause):
            with self._lock:
                st = self._pane(event.pane)
                muted = event.pane in self._muted
                if not muted:  # flow control, not our own mute: output was lost
                    st.gaps += 1
                    st.gap = st.gap or st.followed
                    self._tasks.append(functools.partial(
                        self._submit_quietly, client,
                        ["refresh-client", "-A", f"{event.pane}:continue"]))
                    self._wake.notify_all()
        elif isinstance(event, SubscriptionChanged) and event.name == ACTIVITY_SUBSCRIPTION:
            with self._lock:
                st = self._pane(event.pane)
                seen, st.activity_value = st.activity_value, event.value
                if event.pane in self._muted and seen is not None and seen != event.value:
                    self._seq += 1
                    st.seq, st.last = self._seq, time.monotonic()
                    st.notifications += 1
        elif isinstance(event, (SessionsChanged, StateChange, Exit)):
            with self._lock:
                if isinstance(event, SessionsChanged):
                    for s in self._watched:
                        if self._ready_client(s) is None:
                            self._retry[s] = (0.0, 0)
                self._wake.notify_all()
        if self._listeners:
            try:
                self._events.put_nowait(event)
            except queue.Full:
                with self._lock:
                    self.dropped_events += 1

    def _dispatch(self) -> None:
        """Hand events to listeners, off the readers' threads."""
        while True:
            event = self._events.get()
            if event is None:
                return
            for fn in self._listeners:
                try:
                    fn(event)
                except Exception:  # noqa: BLE001 - one listener's bug must not stop the rest
                    log.exception("tmux control listener failed on %r", event)

    def _submit_quietly(self, client: ControlClient, cmd: Sequence[str]) -> None:
        """Fire a command whose reply nobody needs (the reader completes it)."""
        try:
            client.submit(cmd)
        except ControlBroken:
            pass

    def _run_quietly(self, client: ControlClient, cmd: Sequence[str]) -> None:
        """Run a command and wait for it; a broken client is the keeper's business."""
        try:
            client.run(cmd)
        except ControlBroken:
            pass
        except TmuxError as exc:  # a pane that just closed, say
            log.info("tmux control: %s: %s", " ".join(cmd)[:100], exc)

    def _apply_mute(self, client: ControlClient, panes: Iterable[str]) -> None:
        if not client.subscribed:  # once per client: a new subscription reports every pane
            client.subscribed = True
            self._run_quietly(client, ["refresh-client", "-B",
                                       f"{ACTIVITY_SUBSCRIPTION}:%*:#{{window_activity}}"])
        for group in _chunks(sorted(panes), 50):
            self._run_quietly(client, ["refresh-client", *[
                a for p in group for a in ("-A", f"{p}:pause")]])

    # -- the keeper ---------------------------------------------------------------------

    def _keep(self) -> None:
        """Start clients for watched sessions that have none (with backoff), run small tasks
        readers handed over. Clients are started here, never on a caller's thread: the tmux
        process is signalled when the thread that started it ends."""
        while True:
            with self._lock:
                closed = self._closed
            if closed:
                self._close_clients()
                return
            with self._lock:
                if self._closed:
                    continue
                now = time.monotonic()
                due = []
                next_at = now + 10.0
                for s in sorted(self._watched):
                    c = self._clients.get(s)
                    if c is not None and c.state in ("ready", "starting"):
                        continue
                    at, _n = self._retry.get(s, (0.0, 0))
                    if at <= now:
                        due.append(s)
                    else:
                        next_at = min(next_at, at)
                if not due and not self._tasks:
                    self._wake.wait(max(0.0, next_at - now))
                    continue
                tasks, self._tasks = list(self._tasks), collections.deque()
            for task in tasks:
                try:
                    task()
                except Exception:  # noqa: BLE001
                    log.exception("tmux control task failed")
            for s in due:
                self._connect(s)

    def _connect(self, session: str) -> None:
        client = ControlClient(self.socket, session, on_event=self._on_event,
                               timeout=self.timeout, pause_after=self.pause_after,
                               binary=self.binary)
        with self._lock:
            if self._closed or session not in self._watched:
                return
            old = self._clients.get(session)
            self._clients[session] = client
        if old is not None:
            old.close("replaced")
        ok = client.start()
        with self._lock:
            _at, n = self._retry.get(session, (0.0, 0))
            if ok:
                self._retry[session] = (0.0, 0)
                muted = set(self._muted)
            else:
                delay = _BACKOFF[min(n, len(_BACKOFF) - 1)]
                self._retry[session] = (time.monotonic() + delay, n + 1)
                muted = set()
            self._attempted.add(session)
            stale = self._closed or self._clients.get(session) is not client
            self._wake.notify_all()
        if stale:
            client.close()
        elif muted:
            self._apply_mute(client, muted)


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]
