"""The tmux layer on a real server: escaping, batched queries, exact text delivery."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from squad.tmux import Tmux, escape_arg
from tests.conftest import AGENTS, wait_for

WRAPPER = str(Path(__file__).resolve().parent.parent / "squad" / "wrapper.py")


@pytest.mark.parametrize("arg", ["a;", "a\\;", ";", "\\;", "x", "", "a;b", ";;", "#{pane_id}"])
def test_escape_survives_tmux_parsing(socket: str, arg: str) -> None:
    tmux = Tmux(socket)
    tmux.run(["start-server"], ["new-session", "-d", "-s", "t"],
             ["set-option", "-t", "=t:", "@probe", arg])
    assert tmux.run(["show-options", "-v", "-t", "=t:", "@probe"]).rstrip("\n") == arg
    assert escape_arg("plain") == "plain"


def test_panes_and_batched_capture_of_many_panes(socket: str) -> None:
    tmux = Tmux(socket)
    assert tmux.panes() == []
    assert not tmux.alive()
    cmds = [["start-server"], ["set-option", "-wg", "remain-on-exit", "on"]]
    for i in range(12):
        what = ["new-session", "-d", "-s", f"s{i}"] if i == 0 else [
            "new-window", "-d", "-t", "=s0:"]
        cmds.append([*what, "--", sys.executable, "-c",
                     f"print('hello from [bold]{i}[/]'); import time; time.sleep(30)"])
    tmux.run(*cmds)
    panes = wait_for(lambda: [p for p in tmux.panes()] if len(tmux.panes()) == 12 else None)
    assert all(p.pid and not p.dead for p in panes)
    ids = [p.pane_id for p in panes]
    shots = wait_for(lambda: (s := tmux.capture(ids)) and all("hello" in v for v in s.values())
                     and len(s) == 12 and s, what="12 screens")
    for i in range(12):
        assert any(f"hello from [bold]{i}[/]" in text for text in shots.values())


def test_forked_capture_of_more_panes_than_one_tmux_command_line_holds(socket: str) -> None:
    """tmux refuses a command line past ~16 KB ("command too long"); 260 panes (with
    history and colours, the longest form) need several invocations, each pane once."""
    tmux = Tmux(socket)
    units = [[["start-server"], ["new-session", "-d", "-s", "big", "--", "cat"]]]
    units += [[["new-window", "-d", "-t", "=big:", "--", "cat"]] for _ in range(259)]
    tmux.run_units(units)
    ids = [p.pane_id for p in wait_for(lambda: len(tmux.panes()) == 260 and tmux.panes(),
                                       what="260 panes")]
    # What each pane shows: its own id (typed into cat, so echoed).
    tmux.run_units([[["send-keys", "-t", i, "-l", f"I am {i}"]] for i in ids])
    for history, ansi in ((0, False), (5000, True)):
        shots = wait_for(lambda: (s := tmux.capture(ids, history=history, ansi=ansi))
                         and all(f"I am {i}" in s.get(i, "") for i in ids) and s,
                         what="every pane's own screen")
        assert len(shots) == 260


def test_paste_delivers_bytes_exactly(socket: str, tmp_path: Path) -> None:
    out = tmp_path / "received.txt"
    tmux = Tmux(socket)
    tmux.run(["new-session", "-d", "-s", "e", "--", sys.executable, WRAPPER, "--",
              sys.executable, str(AGENTS / "echo_agent.py"), str(out)])
    pane = wait_for(lambda: tmux.panes())[0]
    wait_for(lambda: "ready" in tmux.capture([pane.pane_id]).get(pane.pane_id, ""))
    payloads = [
        b"plain words",
        b"semi; colon; $(rm -rf /) `id` 'single' \"double\" \\back\\slash",
        b"C-c Enter Escape ; kill-server \\; display-message hi",
        b"tab\there and\nnew\nlines\r\nand CR",
        "non-ASCII: héllo wörld ✓ 日本語 🚀".encode(),
        b"#{pane_id} #(echo no) ~ ${HOME} %1",
        bytes(range(32, 127)) * 600,  # ~57 KB
        b"x" * 65536,
    ]
    for data in payloads:
        tmux.paste(pane.pane_id, data)
    lines = wait_for(lambda: (t := out.read_text() if out.exists() else "").count("\n")
                     >= len(payloads) and t.splitlines(), timeout=20, what="all payloads")
    assert len(lines) == len(payloads)
    for data, line in zip(payloads, lines, strict=True):
        body, after = line.split(" ")
        assert bytes.fromhex(body) == data
        assert after == "0d"  # Enter arrives as CR after the paste


def test_batched_view_agrees_with_libtmux(socket: str) -> None:
    """squad's one-fork pane listing against libtmux's object model of the same server."""
    import libtmux

    tmux = Tmux(socket)
    assert tmux.version() >= (3, 2)
    tmux.run(["start-server"], ["new-session", "-d", "-s", "a", "-n", "PM", "--", "sleep", "60"],
             ["new-window", "-d", "-t", "=a:", "-n", "Dev", "--", "sleep", "60"],
             ["new-session", "-d", "-s", "b", "-n", "QA", "--", "sleep", "60"])
    ours = {(p.session, p.window_name, p.pane_id, p.pid) for p in tmux.panes()}
    server = libtmux.Server(socket_name=socket)
    theirs = {(s.session_name, w.window_name, p.pane_id, int(p.pane_pid))
              for s in server.sessions for w in s.windows for p in w.panes}
    assert ours == theirs and len(ours) == 3


def test_exit_code_of_a_pane_process_tmux_has_not_reaped() -> None:
    """tmux can mark a pane dead before it reaps the process: a zombie's wait status fills in."""
    import subprocess

    from squad.tmux import _dead_pane

    child = subprocess.Popen([sys.executable, "-c", "raise SystemExit(7)"])
    try:
        wait_for(lambda: (Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1]
                          .split()[0] == "Z"), what="a zombie")
        assert _dead_pane("1", "", "", child.pid) == (True, 7, None)
        assert _dead_pane("1", "3", "", child.pid) == (True, 3, None)  # tmux's own word wins
        assert _dead_pane("0", "", "", child.pid) == (False, None, None)
    finally:
        child.wait()
    live = subprocess.Popen(["sleep", "30"])
    try:
        # running: tmux saw the pty close a moment before the process ended
        assert _dead_pane("1", "", "", live.pid) == (False, None, None)
    finally:
        live.kill()
        live.wait()
