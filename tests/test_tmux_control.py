"""The tmux control-mode connection on real tmux: replies matched under concurrency, errors,
exact arguments and bytes, decoded output, notifications, several sessions, a server that
dies, flow control, and tmux client processes that never outlive squad."""

from __future__ import annotations

import marshal
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from squad.errors import TmuxError
from squad.tmux import Tmux
from squad.tmux_control import (
    Chunk,
    Continue,
    ControlBroken,
    ControlClient,
    ControlTimeout,
    Event,
    Exit,
    LayoutChange,
    Notification,
    Output,
    Pause,
    SessionChanged,
    SessionsChanged,
    StateChange,
    SubscriptionChanged,
    TmuxControl,
    UnlinkedWindowAdd,
    UnlinkedWindowClose,
    WindowAdd,
    WindowClose,
    _parse_notification,
    command_line,
    quote,
    unescape_output,
)
from tests.conftest import PY, ROOT, have_tmux, wait_for

pytestmark = pytest.mark.skipif(not have_tmux(), reason="tmux is not installed")

# Writes chunks of bytes to its terminal in raw mode (no newline translation), one write per
# chunk with a pause between them, so each chunk reaches tmux as its own read. Waits for a
# line on stdin first, so that the test's control client is attached before anything counts.
EMIT = r"""
import marshal, os, sys, time, tty
chunks, delay = marshal.load(open(sys.argv[1], "rb"))
sys.stdin.readline()
tty.setraw(0)
os.write(1, b"<<START>>")
for chunk in chunks:
    os.write(1, chunk)
    time.sleep(delay)
os.write(1, b"<<END>>")
time.sleep(3600)
"""

# Prints for a while by its own clock, then says so through tmux (wait-for is remembered).
FLOOD = r"""
import os, sys, time
sys.stdin.readline()
line = b"x" * 999 + b"\n"
t = time.monotonic()
written = 0
while time.monotonic() - t < float(sys.argv[1]):
    written += os.write(1, line * 16)
os.write(1, b"<<END>>\n")
if len(sys.argv) > 3:
    with open(sys.argv[3], "w") as f:
        f.write(str(written))
os.system(f"tmux -L {sys.argv[2]} wait-for -S flood-done")
time.sleep(3600)
"""


def ticker(text: str, every: float) -> list[str]:
    """A pane command printing ``text`` every ``every`` seconds from one process (a shell
    loop would fork a ``sleep`` each time)."""
    return [PY, "-c", f"import time\nwhile True: print({text!r}, flush=True); time.sleep({every})"]


def tmux(socket: str, *args: str, input: bytes | None = None) -> str:
    proc = subprocess.run(["tmux", "-L", socket, *args], input=input, capture_output=True,
                          check=False, timeout=30)
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout.decode()


def new_session(socket: str, name: str, *cmd: str) -> str:
    """A detached session running ``cmd``; returns its first pane's id."""
    return tmux(socket, "-f", "/dev/null", "new-session", "-d", "-P", "-F", "#{pane_id}",
                "-s", name, "-x", "120", "-y", "40", *(["--", *cmd] if cmd else [])).strip()


def new_window(socket: str, session: str, *cmd: str) -> tuple[str, str]:
    out = tmux(socket, "new-window", "-d", "-P", "-F", "#{window_id} #{pane_id}",
               "-t", f"={session}:", *(["--", *cmd] if cmd else []))
    window, pane = out.split()
    return window, pane


class Recorder:
    """A listener keeping every event, with helpers to wait for some."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self.lock:
            self.events.append(event)

    def all(self, kind: type | None = None) -> list[Event]:
        with self.lock:
            return [e for e in self.events if kind is None or isinstance(e, kind)]

    def output(self, pane: str) -> bytes:
        return b"".join(e.data for e in self.all(Output) if e.pane == pane)  # type: ignore[attr-defined]

    def text(self, pane: str) -> str:
        return "".join(e.text for e in self.all(Output) if e.pane == pane)  # type: ignore[attr-defined]

    def wait(self, match: Callable[[Event], bool], what: str, timeout: float = 15) -> Event:
        return wait_for(lambda: next((e for e in self.all() if match(e)), None), timeout, what)


@pytest.fixture
def control(socket: str) -> Iterator[Callable[..., TmuxControl]]:
    """Opens TmuxControl connections on the test's socket; closes them all at teardown."""
    made: list[TmuxControl] = []

    def make(sessions: list[str], **kw: object) -> TmuxControl:
        kw.setdefault("timeout", 15.0)  # a loaded machine is slow, not hung
        ctl = TmuxControl(socket, sessions, **kw)  # type: ignore[arg-type]
        made.append(ctl)
        return ctl.open()

    yield make
    for ctl in made:
        ctl.close()


def emitter(tmp_path: Path, chunks: list[bytes], delay: float = 0.0) -> list[str]:
    spec = tmp_path / f"chunks-{len(list(tmp_path.iterdir()))}"
    spec.write_bytes(marshal.dumps((chunks, delay)))
    script = tmp_path / "emit.py"
    script.write_text(EMIT)
    return [PY, str(script), str(spec)]


def between(data: bytes, start: bytes = b"<<START>>", end: bytes = b"<<END>>") -> bytes:
    return data.split(start, 1)[1].split(end, 1)[0]


def process_gone(pid: int) -> bool:
    """Gone, or a zombie nobody reaped yet (it runs no more code)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except OSError:
        return True


# -- pure pieces ------------------------------------------------------------------------


def test_quote_leaves_plain_words_and_escapes_the_rest() -> None:
    assert quote("new-window") == b"new-window"
    assert quote("-t") == b"-t"
    assert quote("%12:pause") == b'"%12:pause"'  # bare, tmux's parser calls it a syntax error
    assert quote("") == b'""'
    assert quote("a b") == b'"a b"'
    assert quote("$HOME") == b'"\\$HOME"'
    assert quote("~") == b'"\\~"'
    assert quote("x;") == b'"x\\;"'
    assert quote("é\n") == '"é\\012"'.encode()
    assert quote(b"\xc3\xa9") == b'"\\303\\251"'  # bytes: every non-ASCII byte escaped
    with pytest.raises(ValueError):
        quote("a\0b")
    assert command_line([["a", "1"], ["b", "x y"]]) == b'a 1 ; b "x y"'


def test_unescape_output_gives_raw_bytes() -> None:
    assert unescape_output(b"plain") == b"plain"
    assert unescape_output(b"a\\015\\012b\\134c\\000") == b"a\r\nb\\c\0"
    assert unescape_output("é".encode()) == "é".encode()


def test_notifications_parse_into_typed_events() -> None:
    assert _parse_notification("s", "%window-add", "@3") == WindowAdd("s", "@3")
    assert _parse_notification("s", "%window-close", "@3") == WindowClose("s", "@3")
    assert _parse_notification("s", "%unlinked-window-close", "@4") == \
        UnlinkedWindowClose("s", "@4")
    assert _parse_notification("s", "%sessions-changed", "") == SessionsChanged("s")
    assert _parse_notification("s", "%session-changed", "$1 my team") == \
        SessionChanged("s", "$1", "my team")
    assert _parse_notification("s", "%pause", "%2") == Pause("s", "%2")
    assert _parse_notification("s", "%exit", "too far behind") == Exit("s", "too far behind")
    assert _parse_notification("s", "%layout-change", "@1 ab,80x24 ab,80x24 *") == \
        LayoutChange("s", "@1", "ab,80x24", "ab,80x24", "*")
    assert _parse_notification("s", "%subscription-changed", "n $0 @1 0 %1 - : a : b") == \
        SubscriptionChanged("s", "n", "$0", "@1", "0", "%1", "a : b")
    assert _parse_notification("s", "%future-thing", "x y") == \
        Notification("s", "%future-thing", "x y")


# -- commands ---------------------------------------------------------------------------


def test_replies_match_requests_across_threads(socket: str, control, tmp_path: Path) -> None:
    new_session(socket, "a", *ticker("tick tick tick", 0.01))
    ctl = control(["a"])
    assert ctl.state == "ready", ctl.reason
    failures: list[str] = []
    start = threading.Barrier(8)

    def worker(t: int) -> None:
        start.wait()
        try:
            for i in range(150):
                if i % 5 == 4:
                    try:
                        ctl.run(["has-session", "-t", f"=nosuch-{t}-{i}"])
                        failures.append(f"{t}/{i}: no error")
                    except TmuxError as exc:
                        if f"nosuch-{t}-{i}" not in str(exc):
                            failures.append(f"{t}/{i}: wrong error {exc}")
                else:
                    got = ctl.run(["display-message", "-p", f"reply {t} {i}"],
                                  ["display-message", "-p", f"second {t} {i}"])
                    if got != f"reply {t} {i}\nsecond {t} {i}\n":
                        failures.append(f"{t}/{i}: {got!r}")
        except Exception as exc:  # noqa: BLE001 - reported below
            failures.append(f"{t}: {exc!r}")

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    assert not failures, failures[:5]
    assert ctl.fallbacks == 0
    assert ctl.state == "ready"


def test_errors_carry_tmux_message_and_stop_the_sequence(socket: str, control) -> None:
    new_session(socket, "a", "sh")
    ctl = control(["a"])
    with pytest.raises(TmuxError, match="unknown command: frobnicate"):
        ctl.run(["frobnicate"])
    with pytest.raises(TmuxError, match="can't find session"):
        ctl.run(["display-message", "-p", "one"], ["kill-session", "-t", "=nosuch"],
                ["display-message", "-p", "never"])
    # Without check: the output before the failure, nothing after it, as with forked tmux.
    out = ctl.run(["display-message", "-p", "one"], ["kill-session", "-t", "=nosuch"],
                  ["display-message", "-p", "never"], check=False)
    assert out == "one\n"
    forked = Tmux(socket).run(["display-message", "-p", "one"], ["kill-session", "-t", "=nosuch"],
                              ["display-message", "-p", "never"], check=False)
    assert out == forked
    assert ctl.run(["display-message", "-p", "still fine"]) == "still fine\n"


HOSTILE = [
    "plain", ";", "a;", "a\\;", "a ; b", "\\", "ends with \\", '"', "'", "\"'\"'", "$HOME",
    "${HOME}", "$(echo pwned)", "`echo pwned`", "~", "~root/x", "a~b", "#", "#{pane_id}",
    "#(echo pwned)", "##", "%if 1", "%hidden X=1", "{", "}", "{ display -p hi }", "-t", "--",
    "line\nbreak", "crlf\r\n", "\ttab", "\x1b[31mred\x1b[0m", "\x01\x02\x7f", "é€😀",
    "e\u0301 combining", "\u202eRTL override", "zero\u200bwidth", "line\u2028sep", "\ufeffBOM",
    "\\001 literal", "\\u00e9 literal", "\\n literal", "  spaces  ", "x" * 100_000,
    "%begin 1 2 1", "x\n%end 1796183749 265 1\n%error 1 1 1\ny",
]


def test_hostile_arguments_round_trip_exactly(socket: str, control, tmp_path: Path) -> None:
    new_session(socket, "a", "sh")
    ctl = control(["a"])
    forked = Tmux(socket)
    for i, arg in enumerate(HOSTILE):
        out = tmp_path / f"buf{i}"
        ctl.run(["set-buffer", "-b", f"h{i}", "--", arg],
                ["save-buffer", "-b", f"h{i}", str(out)])
        assert out.read_bytes() == arg.encode(), arg[:40]
        # Back through a reply, raw (show-options -v prints the value as it is), lines that
        # look like protocol included.
        ctl.run(["set-option", "-g", f"@h{i}", arg])
        assert ctl.run(["show-options", "-gv", f"@h{i}"]) == arg + "\n", arg[:40]
        # A window name is an argument too: tmux shows it the same whoever set it.
        if len(arg) > 10_000:
            continue  # a forked tmux refuses a command line past 16 KB
        ctl.run(["rename-window", "-t", "=a:0", "--", arg])
        listing = ["list-windows", "-t", "=a", "-F", "#{window_name}"]
        via_control = ctl.run(listing)
        forked.run(["rename-window", "-t", "=a:0", "--", arg])
        assert via_control == forked.run(listing), arg[:40]
    assert ctl.fallbacks == 0


def test_paste_buffer_bytes_are_exact(socket: str, control, tmp_path: Path) -> None:
    new_session(socket, "a", "sh")
    ctl = control(["a"])
    every_byte = bytes(range(1, 256)) * 300  # not UTF-8, control characters, 76 KB
    for i, data in enumerate([every_byte, "é€😀\n$HOME;#{x}".encode(), b"nul\0inside\0"]):
        out = tmp_path / f"paste{i}"
        before = ctl.fallbacks
        ctl.run(["load-buffer", "-b", f"p{i}", "-"],
                ["save-buffer", "-b", f"p{i}", str(out)], input=data)
        assert out.read_bytes() == data
        assert ctl.fallbacks == before  # a NUL is forked for load-buffer only, not a fallback


def test_capture_equals_forked_capture_even_with_protocol_lookalikes(
        socket: str, control, tmp_path: Path) -> None:
    screen = [b"%begin 1796183749 2 1\r\n", b"%end 1796183749 2 1\r\n", b"%error 1 1 1\r\n",
              b"%output %0 fake\r\n", b"%exit\r\n", "h\u00e9llo \u20ac\r\n".encode(),
              b"\x1b[31mred\x1b[0m\r\n", b"   trailing   \r\n"]
    pane = new_session(socket, "a", *emitter(tmp_path, screen))
    ctl = control(["a"])
    rec = Recorder()
    ctl.add_listener(rec)
    ctl.run(["send-keys", "-t", pane, "go", "Enter"])
    wait_for(lambda: b"<<END>>" in rec.output(pane), 15, "the screen to be printed")
    for flags in ([], ["-e"], ["-J", "-S", "-100"]):
        cmd = ["capture-pane", "-p", *flags, "-t", pane]
        assert ctl.run(cmd) == Tmux(socket).run(cmd)
    listing = ["list-panes", "-a", "-F", "#{pane_id}\x1f#{session_name}\x1f#{window_name}"]
    assert ctl.run(listing) == Tmux(socket).run(listing)


def test_capture_of_many_panes_matches_the_forked_capture(socket: str, control) -> None:
    first = new_session(socket, "a", "sh", "-c", "seq 1 30; echo '%end 1 1 1'; exec sleep 600")
    panes = [first] + [new_window(socket, "a", "sh", "-c", f"seq {i} 60; exec sleep 600")[1]
                       for i in range(5)]
    ctl = control(["a"])
    wait_for(lambda: all("30" in s for s in Tmux(socket).capture(panes).values()), 15, "seq")
    for kw in ({}, {"ansi": True}, {"history": 100}):
        via_control = ctl.capture([*panes, "%999"], **kw)
        forked = Tmux(socket).capture(panes, **kw)
        assert set(via_control) == set(panes)  # a pane that does not exist is just missing
        # squad.tmux strips the last pane's trailing newlines only; compare without them.
        assert {p: t.rstrip("\n") for p, t in via_control.items()} == \
            {p: t.rstrip("\n") for p, t in forked.items()}
    assert ctl.fallbacks == 0


def test_a_hung_reply_times_out_and_the_connection_recovers(socket: str, control) -> None:
    new_session(socket, "a", "sh")
    ctl = control(["a"])
    old = ctl.clients()["a"].pid
    with pytest.raises(ControlTimeout, match="no reply"):
        ctl.run(["wait-for", "never-signalled"], timeout=0.5)
    wait_for(lambda: ctl.state == "ready", 15, "the keeper to reconnect")
    assert ctl.run(["display-message", "-p", "back"], fallback=False) == "back\n"
    assert old is not None
    wait_for(lambda: process_gone(old), 10, "the hung client to end")


def test_a_stopped_server_times_out_writes_and_replies(socket: str, control) -> None:
    """A tmux that hangs (here: SIGSTOP) neither takes input nor answers: both give up."""
    new_session(socket, "a", "sh")
    ctl = control(["a"], timeout=1.0)
    server = int(Tmux(socket).run(["display-message", "-p", "#{pid}"]).strip())
    os.kill(server, signal.SIGSTOP)
    try:
        with pytest.raises(ControlTimeout):  # 4 MB cannot fit in the pipe
            ctl.run(["set-buffer", "-b", "big", "--", "x" * 4_000_000], fallback=False)
        wait_for(lambda: ctl.state != "ready", 10, "the connection to say it is not usable")
        with pytest.raises(ControlBroken):
            ctl.run(["display-message", "-p", "x"], fallback=False)
    finally:
        os.kill(server, signal.SIGCONT)
    ctl.reconnect()
    wait_for(lambda: ctl.state == "ready", 15, "a new client once tmux runs again")
    assert ctl.run(["display-message", "-p", "back"], fallback=False) == "back\n"


# -- output -----------------------------------------------------------------------------


def test_output_is_decoded_exactly(socket: str, control, tmp_path: Path) -> None:
    euro, smile = "€".encode(), "😀".encode()
    chunks = [b"ascii \\ backslash \\134 ", euro[:1], euro[1:], b" split ", smile[:2],
              smile[2:3], smile[3:], b"\x00\x01\x07\x08\t\r\n\x1b[1;31mbold red\x1b[0m\x7f",
              "é".encode()[:1], "é".encode()[1:] + b" end"]
    burst = ("0123456789abcdef" * 4096 + "é€😀\x01\r\n" * 500).encode()  # 64 KB + 6 KB
    pane = new_session(socket, "a", *emitter(tmp_path, [*chunks, burst], delay=0.05))
    ctl = control(["a"])
    rec = Recorder()
    ctl.add_listener(rec)
    ctl.run(["send-keys", "-t", pane, "go", "Enter"])
    wait_for(lambda: b"<<END>>" in rec.output(pane), 20, "the emitter to finish")
    expected = b"".join(chunks) + burst
    assert between(rec.output(pane)) == expected
    assert between(rec.text(pane).encode()) == expected  # every character whole
    # The characters really were split across notifications.
    split = [e for e in rec.all(Output) if e.pane == pane and e.data and e.data[-1] >= 0xC0]
    assert split, "the emitter's split writes arrived merged"
    act = ctl.activity(pane)
    assert act is not None and act.bytes == len(rec.output(pane)) and act.gaps == 0


def test_followed_pane_is_read_and_the_buffer_stays_bounded(
        socket: str, control, tmp_path: Path) -> None:
    pane = new_session(socket, "a", *emitter(tmp_path, [b"first\n", b"y" * 600_000], 0.05))
    ctl = control(["a"], buffer_chars=64 * 1024)
    rec = Recorder()
    ctl.add_listener(rec)
    ctl.follow(pane)
    ctl.run(["send-keys", "-t", pane, "go", "Enter"])
    rec.wait(lambda e: isinstance(e, Output) and e.pane == pane and b"<<END>>" in e.data,
             "the flood to arrive")
    chunk = ctl.read(pane)
    # Nobody read while 600 KB arrived: the oldest text went, the newest stayed, and the
    # reader is told there is a gap (capture the screen again).
    assert 0 < len(chunk.text) <= 64 * 1024
    assert chunk.gap
    assert chunk.text.endswith("y" * 1000 + "<<END>>")
    assert ctl.read(pane) == Chunk("", False)
    assert ctl.activity(pane).gaps == 1  # type: ignore[union-attr]


def received(ctl: TmuxControl, pane: str) -> int:
    act = ctl.activity(pane)
    return act.bytes if act else 0


# -- notifications and sessions ---------------------------------------------------------


def test_window_notifications(socket: str, control) -> None:
    new_session(socket, "a", "sh")
    new_session(socket, "b", "sh")
    ctl = control(["a", "b"])
    rec = Recorder()
    ctl.add_listener(rec)
    window, _pane = new_window(socket, "a", "sh")
    rec.wait(lambda e: e == WindowAdd("a", window), "%window-add in the window's session")
    rec.wait(lambda e: e == UnlinkedWindowAdd("b", window), "%unlinked-window-add elsewhere")
    tmux(socket, "kill-window", "-t", window)
    # tmux notifies after unlinking, so even the window's own session hears "unlinked".
    rec.wait(lambda e: e in (WindowClose("a", window), UnlinkedWindowClose("a", window)),
             "the window's close in its session")
    rec.wait(lambda e: e == UnlinkedWindowClose("b", window), "%unlinked-window-close")
    new_session(socket, "c", "sh")
    rec.wait(lambda e: isinstance(e, SessionsChanged), "%sessions-changed")


def test_several_sessions_stream_and_count_activity(socket: str, control) -> None:
    pa = new_session(socket, "alpha", "sh")
    pb = new_session(socket, "beta", "sh")
    ctl = control(["alpha", "beta", "late"])
    assert ctl.state == "partial" and "late" in ctl.reason
    rec = Recorder()
    ctl.add_listener(rec)
    mark = ctl.changes().mark
    ctl.run(["send-keys", "-t", pa, "echo from-alpha", "Enter"])
    ctl.run(["send-keys", "-t", pb, "echo from-beta", "Enter"])
    wait_for(lambda: "from-alpha\r\n" in rec.text(pa) and "from-beta\r\n" in rec.text(pb),
             15, "output of both sessions")
    assert {e.session for e in rec.all(Output) if e.pane == pa} == {"alpha"}
    assert {e.session for e in rec.all(Output) if e.pane == pb} == {"beta"}
    changes = ctl.changes(mark)
    assert {pa, pb} <= set(changes.panes)
    assert changes.panes[pa].bytes > 0 and changes.panes[pa].last_output > 0
    # Nothing printed since the new mark: nothing reported.
    quiet = ctl.changes(changes.mark)
    assert quiet.panes == {} or set(quiet.panes) <= {pa, pb}  # prompts may still be drawing
    mark = ctl.changes().mark
    ctl.run(["send-keys", "-t", pb, "echo again", "Enter"])
    wait_for(lambda: pb in ctl.changes(mark).panes, 15, "beta's new output")
    assert pa not in ctl.changes(mark).panes
    # A watched session that starts later gets its client without being asked.
    pl = new_session(socket, "late", "sh")
    wait_for(lambda: ctl.state == "ready", 15, "a client for the late session")
    ctl.run(["send-keys", "-t", pl, "echo from-late", "Enter"])
    wait_for(lambda: "from-late\r\n" in rec.text(pl), 15, "the late session's output")
    # Unwatching closes that client.
    late_pid = ctl.clients()["late"].pid
    ctl.watch(["alpha", "beta"])
    assert late_pid is not None
    wait_for(lambda: process_gone(late_pid), 10, "the late client to end")
    assert set(ctl.clients()) == {"alpha", "beta"}


def test_mute_stops_the_stream_but_not_the_activity(socket: str, control) -> None:
    pane = new_session(socket, "a", *ticker("tick", 0.2))
    ctl = control(["a"])
    wait_for(lambda: received(ctl, pane) > 0, 15, "ticks")
    ctl.mute([pane])
    assert ctl.muted() == {pane}
    muted = ctl.activity(pane)
    assert muted is not None
    # Activity keeps coming (tmux's window activity time, once a second), the bytes do not.
    wait_for(lambda: ctl.activity(pane).seq > muted.seq, 15, "activity while muted")  # type: ignore
    assert received(ctl, pane) == muted.bytes
    ctl.unmute([pane])
    wait_for(lambda: received(ctl, pane) > muted.bytes, 15, "bytes again")


def test_only_followed_panes_stream_when_asked(socket: str, control) -> None:
    watched = new_session(socket, "a", *ticker("watched", 0.1))
    _w, other = new_window(socket, "a", *ticker("other", 0.1))
    ctl = control(["a"], stream_all=False)
    ctl.follow(watched)
    # The other pane is muted when it first prints; its activity still shows.
    wait_for(lambda: other in ctl.muted(), 15, "the unfollowed pane to be muted")
    wait_for(lambda: received(ctl, watched) > 0, 15, "the followed pane's bytes")
    assert watched not in ctl.muted()
    seen = ctl.activity(other)
    assert seen is not None
    wait_for(lambda: ctl.activity(other).seq > seen.seq, 15, "the muted pane's activity")  # type: ignore
    assert received(ctl, other) == seen.bytes
    assert "watched" in ctl.read(watched).text
    # Following it streams it; unfollowing mutes it again.
    ctl.follow(other)
    wait_for(lambda: "other" in ctl.read(other).text, 15, "the newly followed pane's text")
    ctl.unfollow(other)
    assert other in ctl.muted()


def test_a_paused_pane_is_continued(socket: str, control) -> None:
    pane = new_session(socket, "a", *ticker("tick", 0.05))
    ctl = control(["a"])
    rec = Recorder()
    ctl.add_listener(rec)
    # As when tmux pauses a pane for a client that fell behind (pause-after).
    ctl.clients()["a"].run(["refresh-client", "-A", f"{pane}:pause"])
    rec.wait(lambda e: e == Pause("a", pane), "the pause")
    rec.wait(lambda e: e == Continue("a", pane), "the keeper to continue the pane")
    before = received(ctl, pane)
    wait_for(lambda: received(ctl, pane) > before, 15, "output again")
    assert ctl.activity(pane).gaps >= 1  # type: ignore[union-attr]


def test_a_stuck_listener_never_blocks_the_agents(socket: str, control, tmp_path: Path) -> None:
    """tmux stops reading a pane whose only clients are full control clients: a reader that
    waited for a listener would freeze every agent printing meanwhile."""
    script = tmp_path / "flood.py"
    script.write_text(FLOOD)
    pane = new_session(socket, "a", PY, str(script), "2", socket)
    ctl = control(["a"], pause_after=1)
    ctl.follow(pane)
    release = threading.Event()
    ctl.add_listener(lambda e: release.wait(60))
    ctl.run(["send-keys", "-t", pane, "go", "Enter"])
    # The agent prints for 2 s by its clock and finishes while the listener is stuck.
    subprocess.run(["tmux", "-L", socket, "wait-for", "flood-done"], timeout=60, check=True)
    tail = ""

    def reached_end() -> bool:
        nonlocal tail
        tail = (tail + ctl.read(pane).text)[-100:]
        return "<<END>>" in tail

    wait_for(reached_end, 15, "the stream to reach the end")
    assert received(ctl, pane) > 1_000_000
    release.set()
    assert ctl.run(["display-message", "-p", "alive"]) == "alive\n"


def server_rss(socket: str) -> int:
    pid = int(Tmux(socket).run(["display-message", "-p", "#{pid}"]).strip())
    with open(f"/proc/{pid}/status") as f:
        return int(f.read().split("VmRSS:")[1].split()[0]) * 1024


def test_a_frozen_reader_costs_tmux_bounded_memory(socket: str, control, tmp_path: Path,
                                                   monkeypatch) -> None:
    """If squad stops reading altogether (frozen, swapped out), tmux holds at most about
    ``pause_after`` seconds of a flooding pane before pausing it, or stops reading the pane
    meanwhile. (Without pause-after it buffers everything: this test then sees ~190 MB.)"""
    script = tmp_path / "flood.py"
    script.write_text(FLOOD)
    count = tmp_path / "written"
    pane = new_session(socket, "a", PY, str(script), "6", socket, str(count))
    frozen, release = threading.Event(), threading.Event()
    real = ControlClient._output

    def stuck(self: ControlClient, pane_id: str, data: bytes, age: int | None) -> None:
        if not release.is_set():
            frozen.set()
            release.wait(60)
        real(self, pane_id, data, age)

    monkeypatch.setattr(ControlClient, "_output", stuck)
    ctl = control(["a"], pause_after=1)
    base = peak = server_rss(socket)
    ctl.run(["send-keys", "-t", pane, "go", "Enter"])
    wait_for(frozen.is_set, 15, "the reader to freeze on the first output")
    done = subprocess.Popen(["tmux", "-L", socket, "wait-for", "flood-done"])
    start = time.monotonic()

    def sample() -> bool:
        nonlocal peak
        peak = max(peak, server_rss(socket))
        return done.poll() is not None or time.monotonic() - start > 8

    try:
        wait_for(sample, 30, "the flood to end or 8 s of it")
    finally:
        release.set()
        done.kill()
        done.wait()
    assert ctl.run(["display-message", "-p", "alive"]) == "alive\n"
    written = int(wait_for(lambda: count.exists() and count.read_text(), 30, "the flood's end"))
    # The flood lasts 6 s of its own clock: holding one second of it is a sixth.
    assert peak - base < max(written / 2, 20 * 2**20), \
        f"tmux grew by {(peak - base) >> 20} MB while the agent wrote {written >> 20} MB"


# -- failures and lifetime ----------------------------------------------------------------


def test_server_killed_under_it(socket: str, control, monkeypatch) -> None:
    crashes: list[object] = []
    monkeypatch.setattr(threading, "excepthook", crashes.append)
    new_session(socket, "a", "sh")
    ctl = control(["a"])
    rec = Recorder()
    ctl.add_listener(rec)
    pid = ctl.clients()["a"].pid
    tmux(socket, "kill-server")
    wait_for(lambda: ctl.state == "broken", 15, "the connection to say it broke")
    assert ctl.reason
    assert not ctl.connected
    rec.wait(lambda e: isinstance(e, StateChange) and e.state == "broken", "a state event")
    # No client: commands go to a forked tmux, which finds no server.
    with pytest.raises(TmuxError, match="no server|error connecting"):
        ctl.run(["display-message", "-p", "x"])
    with pytest.raises(ControlBroken):
        ctl.run(["display-message", "-p", "x"], fallback=False)
    assert pid is not None
    wait_for(lambda: process_gone(pid), 10, "the old client to end")
    # The server comes back: reconnecting is one call (the keeper would get there too).
    new_session(socket, "a", "sh")
    ctl.reconnect()
    wait_for(lambda: ctl.state == "ready", 15, "a new client")
    assert ctl.run(["display-message", "-p", "back"], fallback=False) == "back\n"
    assert not crashes


def test_close_ends_every_client_process(socket: str, control) -> None:
    new_session(socket, "a", "sh")
    new_session(socket, "b", "sh")
    ctl = control(["a", "b"])
    pids = [c.pid for c in ctl.clients().values()]
    assert len(pids) == 2 and all(pids)
    ctl.close()
    for pid in pids:
        wait_for(lambda pid=pid: process_gone(pid), 10, f"client {pid} to end")
    assert ctl.state == "closed"
    assert Tmux(socket).run(["list-clients", "-F", "#{client_pid}"]).strip() == ""


def test_clients_started_from_a_short_lived_thread_survive_it(socket: str, control) -> None:
    """PR_SET_PDEATHSIG fires when the starting *thread* ends; UI workers are threads."""
    new_session(socket, "a", "sh")
    ctl = TmuxControl(socket, ["a"], timeout=15.0)
    try:
        for _ in range(2):
            th = threading.Thread(target=ctl.open)
            th.start()
            th.join(30)
        for i in range(50):
            assert ctl.run(["display-message", "-p", str(i)], fallback=False) == f"{i}\n"
        assert ctl.state == "ready"
    finally:
        ctl.close()


CHILD = r"""
import os, sys, time
from squad.tmux_control import TmuxControl
ctl = TmuxControl(sys.argv[1], ["a", "b"]).open()
assert ctl.state == "ready", ctl.reason
holder = 0
if sys.argv[2] == "hold":
    # A forked child without exec keeps copies of the pipes, so the tmux clients never see
    # their input close: only PR_SET_PDEATHSIG can end them.
    holder = os.fork()
    if holder == 0:
        time.sleep(120)
        os._exit(0)
print(" ".join(str(c.pid) for c in ctl.clients().values()), holder, flush=True)
time.sleep(120)
"""


@pytest.mark.parametrize("mode", ["plain", "hold"])
def test_clients_die_with_a_sigkilled_parent(socket: str, mode: str) -> None:
    new_session(socket, "a", "sh")
    new_session(socket, "b", "sh")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    child = subprocess.Popen([PY, "-c", CHILD, socket, mode], stdout=subprocess.PIPE, env=env)
    holder = 0
    try:
        assert child.stdout is not None
        fields = child.stdout.readline().split()
        assert len(fields) == 3, fields
        pids, holder = [int(x) for x in fields[:2]], int(fields[2])
        assert all(not process_gone(p) for p in pids)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
        for pid in pids:
            wait_for(lambda pid=pid: process_gone(pid), 10, f"tmux client {pid} to end")
        assert Tmux(socket).run(["list-clients", "-F", "#{client_pid}"]).strip() == ""
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if holder:
            os.kill(holder, signal.SIGKILL)
            wait_for(lambda: process_gone(holder), 10, "the pipe holder to end")


# -- squad over its control connection ----------------------------------------------------------


def test_a_supervisor_over_control_mode_forks_no_tmux_and_captures_only_what_moved(
        socket: str, tmp_path: Path) -> None:
    """The headless supervisor's way: every tick's tmux work over the connection, and only
    panes that printed are captured; tasks still flow and statuses still follow."""
    from squad.live import Live
    from squad.supervisor import Supervisor
    from squad.tmux import Tmux
    from tests.conftest import demo_cmd, run_squad, write_layout
    from tests.test_queue import dispatch, tasks

    layout = write_layout(tmp_path / "cm.toml", f"""
name = "cm"
[defaults]
command = {demo_cmd()}
[[teams]]
name = "a"
[[teams.agents]]
name = "one"
[[teams.agents]]
name = "two"
[[teams]]
name = "b"
[[teams.agents]]
name = "three"
""")
    assert run_squad("-L", socket, "up", str(layout)).returncode == 0
    sup = Supervisor(Live.open(Tmux(socket)), interval=0.2, control=True)
    sup.start()
    try:
        tmux = sup.live.tmux
        assert tmux.control is not None
        forks = []
        real = tmux.run_bytes

        def counted(*commands, **kw):
            forks.append(commands)
            return real(*commands, **kw)

        tmux.run_bytes = counted  # instrumented, not replaced: every call still runs
        captured: list[list[str]] = []
        real_capture = tmux.control.capture

        def capture(ids, **kw):
            captured.append(list(ids))
            return real_capture(ids, **kw)

        tmux.control.capture = capture
        wait_for(lambda: {r.status for r in sup.tick().agents} == {"idle"}, 30, "idle")
        sup.observer.full_sweep = 1e9  # no safety sweep during the count

        quiet_since: list[float] = []

        def settled() -> bool:
            """No capture for 3 s of ticks: past tmux's one-second activity reports and the
            observer's settling window, every start-up line has been seen."""
            captured.clear()
            sup.tick()
            if any(captured):
                quiet_since.clear()
            elif not quiet_since:
                quiet_since.append(time.monotonic())
            return bool(quiet_since) and time.monotonic() - quiet_since[0] > 3.0

        wait_for(settled, 60, "the squad to settle")
        for _ in range(5):  # a quiet squad: nobody printed, nothing to capture
            sup.tick()
        assert sum(len(c) for c in captured) == 0, captured
        task = dispatch(socket, "Only agent three works", "--to", "b/three")
        wait_for(lambda: (sup.tick(), tasks(socket)[task]["status"] == "done")[1], 60,
                 "the task done over control mode")
        moved = {p for c in captured for p in c}
        three = sup.live.panes["b/three"].pane_id
        assert three in moved and len(moved) == 1, moved  # the others never moved
        assert [c for c in forks if c and c[0][0] not in ("display-message", "list-clients")
                ] == [], forks  # only the paste tag check and viewer lookups fork
        assert tmux.control.fallbacks == 0
    finally:
        sup.close()
    assert sup.live.tmux.control is None
