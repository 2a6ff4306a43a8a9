"""Regression tests for the failures found by adversarial testing (issue 8), one or more per
numbered item, each on real SQLite, git, tmux and processes. Each fails without its fix."""

from __future__ import annotations

import json
import os
import signal
import socket as socketlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from squad import events, procs
from squad.errors import TmuxError
from squad.live import Live
from squad.store import TaskStore
from squad.supervisor import Supervisor
from squad.tmux import Tmux
from tests.conftest import PY, ROOT, agent_cmd, demo_cmd, run_squad, wait_for, write_layout
from tests.test_queue import counter_agent, dispatch, headless, received, tasks, tick_until

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mounts, cgroups, pids)")


@pytest.fixture
def supervise(socket: str) -> Iterator:
    made: list[Supervisor] = []

    def make(interval: float = 0.2) -> Supervisor:
        sup = Supervisor(Live.open(Tmux(socket)), interval=interval)
        sup.start()
        sup.desk.backoff_base = 0.2
        sup.desk.backoff_cap = 0.8
        made.append(sup)
        return sup

    yield make
    for sup in made:
        sup.close()


def task_of(socket: str, task_id: int) -> dict:
    return tasks(socket)[task_id]


def one_agent(tmp_path: Path, command: str, *, name: str = "one", agent: str = "a",
              extra: str = "") -> Path:
    return write_layout(tmp_path / f"{name}.toml", f"""
name = "{name}"
[[teams]]
name = "t"
[[teams.agents]]
name = "{agent}"
command = {command}
grace = 1.0
{extra}
""")


def processes_matching(text: str) -> list[int]:
    """Live processes whose command line is exactly ``text`` (split at spaces)."""
    want = text.split()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().decode().split("\0")[:-1]
                state = procs.proc_state(int(entry.name))
            except OSError:
                continue
            if argv == want and state not in (None, "Z", "X"):
                found.append(int(entry.name))
    return found


def agent_pids(socket: str, target: str) -> list[int]:
    live = Live.open(Tmux(socket))
    pane = live.panes[target]
    return procs.scan().tree(pane.pid) if pane.pid else []


# -- 1. the task database never splits -----------------------------------------------------


def test_1_two_stores_in_one_process_and_writers_elsewhere_lose_nothing(tmp_path: Path) -> None:
    """A second store opened and closed next to a live one, with writers in other processes:
    nothing is lost, and no process ever holds a deleted write-ahead log."""
    path = tmp_path / "tasks.db"

    def other(prompt: str) -> None:
        code = (f"from squad.store import TaskStore\ns = TaskStore({str(path)!r})\n"
                f"s.add({prompt!r})\ns.close()")
        subprocess.run([PY, "-c", code], check=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))

    a = TaskStore(path)
    a.add("a1")
    b = TaskStore(path)
    b.add("b1")
    b.close()
    other("o1")
    a.add("a2")
    other("o2")
    c = TaskStore(path)  # and a third, kept open while others write
    other("o3")
    c.close()
    fds = [os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")
           if os.path.exists(f"/proc/self/fd/{fd}")]
    assert not [f for f in fds if "tasks.db" in f and "(deleted)" in f], fds
    a.close()
    with TaskStore(path) as fresh:
        assert sorted(t.prompt for t in fresh.list()) == ["a1", "a2", "b1", "o1", "o2", "o3"]


# -- 2. ignored files are work too -------------------------------------------------------------


def test_2_prune_keeps_a_worktree_holding_only_ignored_files(socket: str, tmp_path: Path,
                                                            git_repo: Path) -> None:
    (git_repo / ".gitignore").write_text(".env\nbuild/\n")
    subprocess.run(["git", "-C", str(git_repo), "add", "."], check=True)
    subprocess.run(["git", "-C", str(git_repo), "commit", "-qm", "ignore"], check=True)
    layout = write_layout(tmp_path / "ig.toml", f"""
name = "ig"
repo = "{git_repo}"
[[teams]]
name = "t"
[[teams.agents]]
name = "dev"
command = ["{PY}", "-c", "import time; time.sleep(600)"]
worktree = true
grace = 1.0
""")
    assert run_squad("-L", socket, "up", str(layout)).returncode == 0
    wt = git_repo.parent / "repo.worktrees" / "t" / "dev"
    (wt / ".env").write_text("SECRET=1\n")
    (wt / "build").mkdir()
    (wt / "build" / "out.bin").write_bytes(b"\0" * 10)
    down = run_squad("-L", socket, "down", "--prune")
    assert down.returncode == 0
    assert "kept" in down.stderr and "ignored" in down.stderr and ".env" in down.stderr
    assert (wt / ".env").read_text() == "SECRET=1\n" and (wt / "build" / "out.bin").exists()
    forced = run_squad("-L", socket, "down", "--prune", "--force")
    assert forced.returncode == 0, forced.stderr
    assert not wt.exists()


# -- 3. an agent that does not echo gets its task once -----------------------------------------


def test_3_an_agent_without_echo_gets_each_task_exactly_once(socket: str, tmp_path: Path,
                                                             supervise) -> None:
    log = tmp_path / "noecho.log"
    layout = one_agent(tmp_path, agent_cmd("noecho_agent.py", str(log), "1.2"),
                       extra='ready_pattern = "^noecho> ?$"')
    assert run_squad("-L", socket, "up", str(layout)).returncode == 0
    first = dispatch(socket, "Refactor the parser")
    second = dispatch(socket, "Then write its tests")
    sup = supervise()
    tick_until(sup, lambda: {t["status"] for t in tasks(socket).values()} == {"done"},
               timeout=60, what="both tasks done")
    got = tasks(socket)
    assert [got[i]["attempts"] for i in (first, second)] == [1, 1]
    assert [got[i]["failures"] for i in (first, second)] == [0, 0]
    assert len(received(log)) == 2, received(log)
    assert "finished the task" in (got[first]["result"] or "")


def test_3_an_agent_without_echo_that_answers_at_once_is_done(socket: str, tmp_path: Path,
                                                              supervise) -> None:
    """Found by the random-kill test: an agent that does not echo and answers before the
    supervisor's first look after sending shows the text taken up and answered on the same
    screen; the task is done from that screen, not left in progress for ever."""
    log = tmp_path / "noecho.log"
    layout = one_agent(tmp_path, agent_cmd("noecho_agent.py", str(log), "0"),
                       extra='ready_pattern = "^noecho> ?$"')
    assert run_squad("-L", socket, "up", str(layout)).returncode == 0
    ids = [dispatch(socket, f"Quick question {n}") for n in range(3)]
    sup = supervise()
    tick_until(sup, lambda: {t["status"] for t in tasks(socket).values()} == {"done"},
               timeout=60, what="every task done")
    got = tasks(socket)
    assert [got[i]["attempts"] for i in ids] == [1, 1, 1]
    assert len(received(log)) == 3, received(log)


# -- 4. killed between paste and Enter ----------------------------------------------------------


def test_4_supervisor_killed_between_paste_and_enter_finishes_the_delivery(
        socket: str, tmp_path: Path) -> None:
    layout = one_agent(tmp_path, demo_cmd(), extra="submit_delay = 5.0")
    assert run_squad("-L", socket, "up", str(layout)).returncode == 0
    task = dispatch(socket, "Fix the flaky login test")
    proc = headless(socket)
    try:
        wait_for(lambda: task_of(socket, task)["sent_at"], 30, "the text to be pasted")
        assert task_of(socket, task)["enters"] == 0  # pasted; its Enter not pressed yet
        proc.kill()
        proc.wait(10)
        proc = headless(socket)
        wait_for(lambda: task_of(socket, task)["status"] == "done", 60, "the task done")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    final = task_of(socket, task)
    assert final["attempts"] == 1 and final["failures"] == 0
    screen = run_squad("-L", socket, "capture", "t/a").stdout
    assert screen.count("Working on: Fix the flaky login test") == 1


# -- 5. done needs evidence ---------------------------------------------------------------------


def test_5_an_idle_holder_is_not_done_without_evidence(socket: str, tmp_path: Path,
                                                       supervise) -> None:
    log = tmp_path / "lazy.log"
    layout = one_agent(tmp_path, agent_cmd("lazy_agent.py", str(log)),
                       extra='ready_pattern = "^lazy> ?$"')
    assert run_squad("-L", socket, "up", str(layout)).returncode == 0
    idle = dispatch(socket, "Just look at it")
    sup = supervise()
    tick_until(sup, lambda: task_of(socket, idle)["status"] == "in_progress", 30, "delivery")
    for _ in range(20):  # well past the debounce: idle, prompt back, nothing printed
        sup.tick()
        time.sleep(0.2)
    assert task_of(socket, idle)["status"] == "in_progress"
    sup.close()
    again = supervise()  # a supervisor restart: its first look sees an idle holder
    for _ in range(5):
        again.tick()
        time.sleep(0.2)
    assert task_of(socket, idle)["status"] == "in_progress"
    assert run_squad("-L", socket, "task", "done", str(idle)).returncode == 0
    work = dispatch(socket, "Now do the work")
    tick_until(again, lambda: task_of(socket, work)["status"] == "done", 30, "the real work")
    assert "did the work" in task_of(socket, work)["result"]


# -- 6. descendants that leave the session -----------------------------------------------------


def test_6_orphans_of_an_exited_agent_are_ended_even_when_they_ignore_term(
        socket: str, tmp_path: Path) -> None:
    tag = f"99{os.getpid() % 1000:03d}1"
    cmd = (f"setsid bash -c 'trap \"\" TERM HUP; bash -c \"trap \\\"\\\" TERM HUP; "
           f"sleep {tag}; true\" & wait' & sleep 1; exit 0")
    layout = one_agent(tmp_path, json.dumps(["sh", "-c", cmd]))
    assert run_squad("-L", socket, "up", str(layout)).returncode == 0
    wait_for(lambda: processes_matching(f"sleep {tag}"), 10, "the escaped sleep")
    wait_for(lambda: Live.open(Tmux(socket)).panes["t/a"].dead, 20, "the agent to exit")
    wait_for(lambda: not processes_matching(f"sleep {tag}"), 15, "the orphans to be ended")


def test_6_down_ends_processes_that_escaped_the_tree(socket: str, tmp_path: Path) -> None:
    tag = f"99{os.getpid() % 1000:03d}2"
    cmd = f"setsid sleep {tag} & exec sleep 600"
    layout = one_agent(tmp_path, json.dumps(["sh", "-c", cmd]))
    assert run_squad("-L", socket, "up", str(layout)).returncode == 0
    wait_for(lambda: processes_matching(f"sleep {tag}"), 10, "the setsid sleep")
    wrapper = Live.open(Tmux(socket)).panes["t/a"].pid
    os.kill(wrapper, signal.SIGKILL)  # the agent's tree is orphaned: re-parented to init
    wait_for(lambda: procs.proc_state(wrapper) is None or procs.proc_state(wrapper) == "Z", 10,
             "the wrapper to die")
    assert processes_matching(f"sleep {tag}")
    assert run_squad("-L", socket, "down", "--grace", "1").returncode == 0
    assert not processes_matching(f"sleep {tag}")
    assert not processes_matching("sleep 600") or all(
        b"SQUAD_SOCKET=" + socket.encode() not in Path(f"/proc/{p}/environ").read_bytes()
        for p in processes_matching("sleep 600"))


# -- 7. a failed paste leaves no buffer -------------------------------------------------------


def test_7_a_failed_paste_leaves_no_buffer_behind(socket: str) -> None:
    tmux = Tmux(socket)
    tmux.run(["new-session", "-d", "-s", "x", "sleep", "600"])
    with pytest.raises(TmuxError):
        tmux.paste("%999", b"secret prompt text")
    assert tmux.run(["list-buffers", "-F", "#{buffer_name}"]).strip() == ""


# -- 8. the headless supervisor outlives any task change ----------------------------------------


def test_8_cancel_and_done_during_delivery_never_stop_the_supervisor(
        socket: str, tmp_path: Path) -> None:
    layout = one_agent(tmp_path, demo_cmd(), extra="submit_delay = 3.0")
    assert run_squad("-L", socket, "up", str(layout)).returncode == 0
    proc = headless(socket)
    try:
        first = dispatch(socket, "First, to be cancelled")
        wait_for(lambda: task_of(socket, first)["status"] == "assigned", 30, "assignment")
        assert run_squad("-L", socket, "task", "cancel", str(first)).returncode == 0
        second = dispatch(socket, "Second, done by hand")
        wait_for(lambda: task_of(socket, second)["status"] == "assigned", 30, "assignment")
        assert run_squad("-L", socket, "task", "done", str(second)).returncode == 0
        third = dispatch(socket, "Third, done by the agent")
        wait_for(lambda: task_of(socket, third)["status"] == "done", 60, "the third task")
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    assert "Traceback" not in err and "stale" not in err
    assert task_of(socket, first)["status"] == "cancelled"
    assert task_of(socket, second)["status"] == "done"


# -- 9. a full disk ------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A 3 MB tmpfs as the state directory (root only)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m,mode=0700", "tmpfs",
                           str(mnt)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small file system here: {made.stderr.strip()}")
    monkeypatch.setenv("SQUAD_HOME", str(mnt / "state"))
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def fill(path: Path) -> Path:
    filler = path / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    return filler


@ROOT_ONLY
def test_9_a_full_disk_is_one_clear_line_and_supervision_recovers(
        socket: str, tmp_path: Path, small_disk: Path) -> None:
    layout = one_agent(tmp_path, demo_cmd())
    assert run_squad("-L", socket, "up", str(layout)).returncode == 0
    proc = headless(socket)
    state = small_disk / "state" / "squads" / "one"
    try:
        wait_for(lambda: (state / "snapshot.json").exists(), 20, "a published snapshot")
        filler = fill(small_disk)
        before = (state / "snapshot.json").read_bytes()
        time.sleep(1.0)  # let the supervisor tick on the full disk a few times
        queued = run_squad("-L", socket, "dispatch", "Write the docs")
        assert queued.returncode == 2 and "disk is full" in queued.stderr, queued.stderr
        assert len(queued.stderr.strip().splitlines()) == 1
        paused = run_squad("-L", socket, "pause", "t/a")
        assert paused.returncode == 2 and "disk is full" in paused.stderr
        assert not any(s in procs.STOPPED_STATES for s in
                       (procs.proc_state(p) for p in agent_pids(socket, "t/a")) if s)
        assert proc.poll() is None
        assert not [p.name for p in state.iterdir() if p.name.endswith(".tmp")]
        filler.unlink()
        wait_for(lambda: (state / "snapshot.json").read_bytes() != before, 20,
                 "the supervisor to publish again")
        task = dispatch(socket, "Write the docs")
        wait_for(lambda: task_of(socket, task)["status"] == "done", 60, "the task after space")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


# -- 10. the audit trail survives lines that are not events -------------------------------------

HOSTILE_LINES = ['null', '[1,2]', '"text"', '{"ts":"abc"}', '{"target":5}', '{"action":7}',
                 '{"ts":1,"action":"x","system":{"cpu":"hot"}}', 'not json at all', '{}',
                 '{"ts":NaN,"action":"x"}']


def test_10_events_skip_and_count_lines_that_are_not_events(socket: str, tmp_path: Path) -> None:
    layout = one_agent(tmp_path, demo_cmd())
    assert run_squad("-L", socket, "up", str(layout)).returncode == 0
    path = events.log_path("one")
    with open(path, "a") as f:
        f.write("\n".join(HOSTILE_LINES) + "\n")
    assert run_squad("-L", socket, "pause", "t/a").returncode == 0
    for args in (("events",), ("events", "--json"), ("events", "--agent", "t/a")):
        proc = run_squad("-L", socket, *args)
        assert proc.returncode == 0, proc.stderr
        assert "pause" in proc.stdout
        assert f"skipped {len(HOSTILE_LINES)}" in proc.stderr
    assert run_squad("-L", socket, "resume", "t/a").returncode == 0


def test_10_the_ui_events_panel_never_dies_on_data(socket: str, tmp_path: Path) -> None:
    import asyncio

    from squad.ui.app import SquadApp
    from squad.ui.panels import EventsPanel

    layout = one_agent(tmp_path, demo_cmd())
    assert run_squad("-L", socket, "up", str(layout)).returncode == 0
    assert run_squad("-L", socket, "pause", "t/a").returncode == 0
    with open(events.log_path("one"), "a") as f:
        f.write("\n".join(HOSTILE_LINES) + "\n")
    assert run_squad("-L", socket, "resume", "t/a").returncode == 0

    async def scenario() -> None:
        app = SquadApp(Live.open(Tmux(socket)))
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            await pilot.press("e")
            panel = app.query_one("#events", EventsPanel)
            deadline = time.monotonic() + 15
            while len(panel._keys) < 2 and time.monotonic() < deadline:
                await pilot.pause(0.1)
            assert panel.display and len(panel._keys) >= 2
            assert app.is_running
            await app.action_quit()

    asyncio.run(scenario())


# -- 11. a read-only state directory ------------------------------------------------------------


@ROOT_ONLY
def test_11_a_read_only_state_directory_is_told_up_front_and_nothing_acts(
        socket: str, tmp_path: Path) -> None:
    log = tmp_path / "echo.log"
    layout = one_agent(tmp_path, agent_cmd("echo_agent.py", str(log)))
    assert run_squad("-L", socket, "up", str(layout)).returncode == 0
    state = Path(os.environ["SQUAD_HOME"]) / "squads" / "one"
    subprocess.run(["mount", "--bind", str(state), str(state)], check=True)
    try:
        made = subprocess.run(["mount", "-o", "remount,bind,ro", str(state)],
                              capture_output=True, text=True)
        if made.returncode != 0:
            pytest.skip(f"cannot remount read-only here: {made.stderr.strip()}")
        for args in (("pause", "t/a"), ("send", "t/a", "hello"), ("down",),
                     ("dispatch", "x"), ("stop", "t/a")):
            proc = run_squad("-L", socket, *args)
            assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
            assert "read-only" in proc.stderr and "internal error" not in proc.stderr
            assert len(proc.stderr.strip().splitlines()) == 1
        live = Live.open(Tmux(socket))
        assert not live.panes["t/a"].dead
        assert not any(procs.proc_state(p) in procs.STOPPED_STATES
                       for p in agent_pids(socket, "t/a"))
        assert not log.exists()  # nothing was sent
    finally:
        subprocess.run(["umount", "-l", str(state)], capture_output=True)


# -- 12. a worktree deleted by hand --------------------------------------------------------------


def test_12_a_worktree_deleted_by_hand_is_recreated_and_restart_checks_first(
        socket: str, tmp_path: Path, git_repo: Path) -> None:
    import shutil

    layout = write_layout(tmp_path / "wt.toml", f"""
name = "wt"
repo = "{git_repo}"
[defaults]
command = {demo_cmd()}
worktree = true
grace = 1.0
[[teams]]
name = "t"
[[teams.agents]]
name = "dev"
[[teams.agents]]
name = "qa"
""")
    assert run_squad("-L", socket, "up", str(layout)).returncode == 0
    wt = git_repo.parent / "repo.worktrees" / "t" / "dev"
    shutil.rmtree(wt)
    restarted = run_squad("-L", socket, "restart", "t/dev", "--grace", "1")
    assert restarted.returncode == 0, restarted.stderr
    assert (wt / "README.md").exists()
    assert run_squad("-L", socket, "down", "--grace", "1").returncode == 0
    shutil.rmtree(wt)
    up = run_squad("-L", socket, "up", str(layout))
    assert up.returncode == 0, up.stderr
    assert "recreated" in up.stdout and (wt / "README.md").exists()
    # Something in the way: restart refuses before stopping anything.
    before = Live.open(Tmux(socket)).panes["t/dev"].pid
    # Moved aside, not deleted: the running agent keeps its working directory (an agent
    # whose directory vanished may exit by itself, which says nothing about restart).
    wt.rename(wt.with_name("dev.moved"))
    wt.write_text("not a directory")
    refused = run_squad("-L", socket, "restart", "t/dev", "--grace", "1")
    assert refused.returncode == 2 and "not restarted" in refused.stderr
    pane = Live.open(Tmux(socket)).panes["t/dev"]
    assert pane.pid == before and not pane.dead


# -- 13. tmux errors are not "no server" ---------------------------------------------------------


def test_13_only_a_missing_server_means_no_server(socket: str, tmp_path: Path) -> None:
    assert Tmux(socket).panes() == []  # no socket file at all
    stale = Path(f"/tmp/tmux-{os.getuid()}") / f"{socket}-stale"
    sock = socketlib.socket(socketlib.AF_UNIX)
    sock.bind(str(stale))  # a socket file nobody listens on
    sock.close()
    try:
        assert Tmux(stale.name).panes() == []
    finally:
        stale.unlink()
    # A server that answers with something else is an error, never "no agents".
    flaky = tmp_path / "bin" / "tmux"
    flaky.parent.mkdir()
    flaky.write_text("#!/bin/sh\necho 'server exited unexpectedly' >&2\nexit 1\n")
    flaky.chmod(0o755)
    broken = Tmux(socket)
    broken.binary = str(flaky)
    with pytest.raises(TmuxError, match="server exited unexpectedly"):
        broken.panes()


def test_13_a_transient_tmux_failure_fails_no_held_task(socket: str, tmp_path: Path,
                                                        supervise) -> None:
    log = tmp_path / "w.log"
    layout = write_layout(tmp_path / "tr.toml", 'name = "tr"\n[[teams]]\nname = "t"\n'
                          + counter_agent("w", log, work=3.0))
    assert run_squad("-L", socket, "up", str(layout)).returncode == 0
    task = dispatch(socket, "long work")
    sup = supervise()
    tick_until(sup, lambda: task_of(socket, task)["status"] == "in_progress", 30, "delivery")
    real = sup.live.tmux.binary
    flaky = tmp_path / "bin" / "tmux"
    flaky.parent.mkdir()
    flaky.write_text("#!/bin/sh\necho 'lost server' >&2\nexit 1\n")
    flaky.chmod(0o755)
    sup.live.tmux.binary = str(flaky)
    for _ in range(3):
        with pytest.raises(TmuxError):
            sup.tick()
    sup.live.tmux.binary = real
    tick_until(sup, lambda: task_of(socket, task)["status"] == "done", 30, "the task done")
    assert task_of(socket, task)["failures"] == 0
    statuses = [e for e in events.read("tr") if e["action"] == "status"]
    assert not [e for e in statuses if e.get("status") in ("exited", "down")], statuses


def test_13_a_vanished_pane_in_a_batch_does_not_blank_the_others(socket: str) -> None:
    tmux = Tmux(socket)
    tmux.run(["new-session", "-d", "-s", "x", "-x", "80", "-y", "10", "sh", "-c",
              "echo first pane; exec sleep 600"])
    for word in ("second", "third"):
        tmux.run(["new-window", "-d", "-t", "x:", "sh", "-c", f"echo {word} pane; exec sleep 600"])
    ids = [p.pane_id for p in tmux.panes()]
    wait_for(lambda: all("pane" in s for s in tmux.capture(ids).values()), 10, "the text")
    got = tmux.capture([ids[0], "%999", ids[1], "%998", ids[2]])
    assert sorted(got) == sorted(ids)
    assert [got[i].split()[0] for i in ids] == ["first", "second", "third"]


# -- 14. bracketed paste cannot be broken out of -------------------------------------------------


def test_14_paste_delimiters_inside_text_are_neutralised(socket: str, tmp_path: Path) -> None:
    log = tmp_path / "echo.log"
    layout = write_layout(tmp_path / "bp.toml", f"""
name = "bp"
[[teams]]
name = "t"
[[teams.agents]]
name = "echo"
command = {agent_cmd("echo_agent.py", str(log))}
[[teams.agents]]
name = "sh"
command = ["bash", "--norc", "--noprofile", "-i"]
env = {{ PS1 = "sh-ready$ " }}
""")
    assert run_squad("-L", socket, "up", str(layout)).returncode == 0
    hostile = b"first\nsecond\x1b[201~\nexit\n"
    sent = run_squad("-L", socket, "send", "t/echo", input=hostile)
    assert sent.returncode == 0, sent.stderr
    wait_for(lambda: log.exists() and log.read_text().strip(), 10, "the message")
    messages = log.read_text().splitlines()
    assert len(messages) == 1
    assert bytes.fromhex(messages[0].split()[0]) == b"first\nsecond\nexit\n"
    wait_for(lambda: "sh-ready$" in run_squad("-L", socket, "capture", "t/sh").stdout, 10,
             "bash")
    # Without Enter nothing may run: a paste ended early would run `echo` and `exit` now.
    assert run_squad("-L", socket, "send", "t/sh", "--no-enter",
                     input=b"echo one\x1b[201~\nexit\n").returncode == 0
    wait_for(lambda: "exit" in run_squad("-L", socket, "capture", "t/sh").stdout, 10,
             "the text in bash's input line")
    assert run_squad("-L", socket, "send", "t/sh", "--no-enter", "; echo two").returncode == 0
    wait_for(lambda: "echo two" in run_squad("-L", socket, "capture", "t/sh").stdout, 10,
             "more text in the same input")
    screen = run_squad("-L", socket, "capture", "t/sh").stdout
    assert "\none\n" not in screen and not Live.open(Tmux(socket)).panes["t/sh"].dead


# -- 15. state files are never followed through symbolic links -----------------------------------


def test_15_state_files_are_never_written_through_symbolic_links(socket: str,
                                                                 tmp_path: Path) -> None:
    layout = one_agent(tmp_path, demo_cmd())
    assert run_squad("-L", socket, "up", str(layout)).returncode == 0
    state = Path(os.environ["SQUAD_HOME"]) / "squads" / "one"
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (state / "layout.tmp").symlink_to(victim)  # the name older versions wrote through
    assert run_squad("-L", socket, "up", str(layout)).returncode == 0
    assert victim.read_text() == "precious\n"
    (state / "events.jsonl").unlink()
    (state / "events.jsonl").symlink_to(victim)
    paused = run_squad("-L", socket, "pause", "t/a")
    assert paused.returncode == 2 and "symbolic link" in paused.stderr
    assert victim.read_text() == "precious\n"
    assert not any(procs.proc_state(p) in procs.STOPPED_STATES
                   for p in agent_pids(socket, "t/a"))


# -- 16. signals reach the process that was seen, or nothing -------------------------------------


def test_16_a_signal_never_reaches_a_process_that_took_a_recycled_pid() -> None:
    victim = subprocess.Popen(["sleep", "600"])
    try:
        wait_for(lambda: procs.proc_state(victim.pid) == "S", 5, "sleep to start")
        start = procs.scan().procs[victim.pid].start
        assert not procs._send(victim.pid, signal.SIGTERM, start + 1)  # another process
        assert victim.poll() is None
        assert procs._send(victim.pid, signal.SIGTERM, start)
        assert victim.wait(5) == -signal.SIGTERM
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait()


@ROOT_ONLY
def test_16_the_wrapper_forwards_nothing_to_its_reaped_childs_pid(socket: str,
                                                                  tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    cmd = f"echo $$ > {pidfile}; (trap '' TERM HUP; exec sleep 601) & sleep 0.5; exit 0"
    layout = one_agent(tmp_path, json.dumps(["sh", "-c", cmd]))
    assert run_squad("-L", socket, "up", str(layout)).returncode == 0
    wrapper = Live.open(Tmux(socket)).panes["t/a"].pid
    old = int(wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), 10, "pid"))
    wait_for(lambda: procs.proc_state(old) is None, 10, "the agent to exit and be reaped")
    decoy = None
    for _ in range(50):  # make the next new process take the reaped agent's pid
        try:
            Path("/proc/sys/kernel/ns_last_pid").write_text(str(old - 1))
        except OSError as exc:
            pytest.skip(f"cannot choose pids here: {exc}")
        p = subprocess.Popen(["sleep", "600"])
        if p.pid == old:
            decoy = p
            break
        p.kill()
        p.wait()
    if decoy is None:
        pytest.skip("another process took the pid first")
    try:
        os.kill(wrapper, signal.SIGTERM)  # the wrapper is still ending the orphan
        wait_for(lambda: Live.open(Tmux(socket)).panes["t/a"].dead, 20, "the wrapper to end")
        assert decoy.poll() is None, "the wrapper signalled a process that reused its pid"
    finally:
        decoy.kill()
        decoy.wait()


# -- 17. a pause that fails half-way ---------------------------------------------------------------


@ROOT_ONLY
def test_17_a_pause_that_fails_half_way_resumes_what_it_stopped(socket: str,
                                                                tmp_path: Path) -> None:
    freezer = Path("/sys/fs/cgroup/freezer")
    if not (freezer / "tasks").exists():
        pytest.skip("no cgroup v1 freezer here")
    layout = one_agent(tmp_path, json.dumps(["sh", "-c", "sleep 602 & sleep 603 & wait"]))
    assert run_squad("-L", socket, "up", str(layout)).returncode == 0
    wait_for(lambda: len(agent_pids(socket, "t/a")) == 3, 10, "the tree")
    frozen = processes_matching("sleep 603")[0]
    group = freezer / f"squad-test-{os.getpid()}"
    group.mkdir()
    try:
        (group / "tasks").write_text(str(frozen))
        (group / "freezer.state").write_text("FROZEN")
        wait_for(lambda: (group / "freezer.state").read_text().strip() == "FROZEN", 10, "freeze")
        paused = run_squad("-L", socket, "pause", "t/a")
        assert paused.returncode == 2
        assert "did not stop" in paused.stderr and "resumed" in paused.stderr
        others = [p for p in agent_pids(socket, "t/a") if p != frozen]
        assert others and not [p for p in others if procs.proc_state(p) in procs.STOPPED_STATES]
    finally:
        (group / "freezer.state").write_text("THAWED")
        (freezer / "tasks").write_text(str(frozen))
        wait_for(lambda: not (group / "tasks").read_text().strip(), 10, "the group to empty")
        group.rmdir()


# -- 18. system CPU in events is measured, never an average since boot ---------------------------


def test_18_event_cpu_is_never_an_average_since_boot(socket: str, tmp_path: Path) -> None:
    layout = one_agent(tmp_path, demo_cmd())
    assert run_squad("-L", socket, "up", str(layout)).returncode == 0
    assert run_squad("-L", socket, "pause", "t/a").returncode == 0
    assert events.read("one")[-1]["system"]["cpu"] is None  # no supervisor: unknown
    proc = headless(socket, "--interval", "60")  # one tick, then a long sleep
    try:
        snap = events.log_path("one").with_name("snapshot.json")
        wait_for(lambda: snap.exists(), 20, "a published snapshot")
        published = json.loads(snap.read_text())["cpu"]
        assert run_squad("-L", socket, "resume", "t/a").returncode == 0
        assert events.read("one")[-1]["system"]["cpu"] == published
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


# -- 19. the audit trail is rotated and read incrementally ---------------------------------------


def test_19_events_rotate_and_are_read_whole_and_incrementally(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events, "MAX_BYTES", 4096)
    tail = events.Tail("rot")
    seen: list[int] = []
    for n in range(200):
        events.record("rot", "test", reason=str(n), system={"cpu": 1.0, "mem": 2.0})
        if n % 37 == 0:
            seen += [int(e["reason"]) for e in tail.read()]
    seen += [int(e["reason"]) for e in tail.read()]
    assert seen == list(range(200))  # each exactly once, in order, across rotations
    path = events.log_path("rot")
    rotated = [p for p in events.rotated_paths(path) if p.exists()]
    assert len(rotated) == events.KEEP and path.stat().st_size <= 4096 + 512
    kept = [int(e["reason"]) for e in events.read("rot")]
    assert kept == list(range(kept[0], 200))  # the newest, without gaps
    assert sum(p.stat().st_size for p in [*rotated, path]) < 7 * 4096


# -- 20. two `squad up` at once, and a failed one ------------------------------------------------


def test_20_two_ups_at_once_and_a_failed_up_keeps_the_recorded_layout(
        socket: str, tmp_path: Path) -> None:
    layout = write_layout(tmp_path / "two.toml", f"""
name = "twice"
[defaults]
command = {demo_cmd()}
[[teams]]
name = "t"
[[teams.agents]]
name = "a"
[[teams.agents]]
name = "b"
""")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    runs = [subprocess.Popen([PY, "-m", "squad", "-L", socket, "up", str(layout)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    results = [(p.wait(60), p.stderr.read()) for p in runs]
    assert [code for code, _ in results] == [0, 0], results
    windows = subprocess.run(["tmux", "-L", socket, "list-windows", "-a", "-F",
                              "#{@squad_agent}"], capture_output=True, text=True).stdout.split()
    assert sorted(windows) == ["a", "b"]
    saved = Path(os.environ["SQUAD_HOME"]) / "squads" / "twice" / "layout.toml"
    recorded = saved.read_bytes()
    huge = write_layout(tmp_path / "huge.toml", layout.read_text() + f"""
[[teams.agents]]
name = "c"
env = {{ BIG = "{'x' * 20000}" }}
""")
    failed = run_squad("-L", socket, "up", str(huge))
    assert failed.returncode == 2, failed.stdout + failed.stderr
    assert saved.read_bytes() == recorded
    assert not [p for p in saved.parent.iterdir() if p.name.endswith(".tmp")]
