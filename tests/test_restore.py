"""Bringing a squad back after a reboot, hibernating and waking agents, and reshaping a running
squad (issues 13 and 11): real tmux, real processes, and stand-in programs named like the
coding CLIs that record the command line squad gives them (the real CLIs resume in
tests/real)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

from squad import procs, records
from squad.live import Live
from squad.store import TaskStore
from squad.tmux import Tmux
from tests.conftest import demo_cmd, run_squad, wait_for, write_layout
from tests.test_programs import ls, stand_ins
from tests.test_queue import dispatch, headless, tasks


def argv_of(tmp_path: Path, agent: str) -> list[str]:
    path = tmp_path / f"{agent}.argv"
    return path.read_text().splitlines() if path.exists() else []


def wait_argv(tmp_path: Path, agent: str, *, changed_from: list[str] | None = None
              ) -> list[str]:
    return wait_for(lambda: (a := argv_of(tmp_path, agent)) and a != changed_from and a,
                    15, f"{agent} to start")


def reboot(socket: str) -> None:
    """The closest a test gets to a reboot: the tmux server and everything in it die."""
    live = Live.open(Tmux(socket))
    roots = [p.pid for p in live.panes.values() if p.pid and not p.dead]
    subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True)
    procs.terminate_trees(roots, grace=2.0)
    wait_for(lambda: not Tmux(socket).alive(), 10, "the server to be gone")


def test_a_reboot_brings_the_squad_back_in_its_conversations_and_states(
        socket: str, tmp_path: Path) -> None:
    bin_dir = stand_ins(tmp_path)
    path_env = f"{bin_dir}:{os.environ['PATH']}"
    layout = write_layout(tmp_path / "rb.toml", f"""
name = "rb"
[defaults]
env = {{ PATH = "{path_env}" }}
grace = 1.0
[[teams]]
name = "t"
[[teams.agents]]
name = "claude"
command = "claude"
[[teams.agents]]
name = "gemini"
command = "gemini"
[[teams.agents]]
name = "demo"
command = {demo_cmd()}
[[teams.agents]]
name = "sleepy"
command = "claude"
""")
    assert run_squad("-L", socket, "up", str(layout), env={"PATH": path_env}).returncode == 0
    first = {n: wait_argv(tmp_path, n) for n in ("claude", "gemini", "sleepy")}
    conversation = first["claude"][first["claude"].index("--session-id") + 1]
    gemini_id = first["gemini"][first["gemini"].index("--session-id") + 1]
    assert run_squad("-L", socket, "pause", "t/demo").returncode == 0
    slept = run_squad("-L", socket, "hibernate", "t/sleepy", "--grace", "1")
    assert slept.returncode == 0 and "kept" in slept.stdout
    assert ls(socket)["t/sleepy"]["status"] == "hibernated"

    reboot(socket)
    up = run_squad("-L", socket, "up", str(layout), env={"PATH": path_env})
    assert up.returncode == 0, up.stderr
    assert "resuming its conversation" in up.stdout and "hibernated, as it was" in up.stdout
    again = wait_argv(tmp_path, "claude", changed_from=first["claude"])
    assert again[again.index("--resume") + 1] == conversation and "--session-id" not in again
    gemini = wait_argv(tmp_path, "gemini", changed_from=first["gemini"])
    assert gemini[gemini.index("--resume") + 1] == gemini_id
    rows = ls(socket)
    assert rows["t/claude"]["session_id"] == conversation
    assert rows["t/sleepy"]["status"] == "hibernated"
    wait_for(lambda: ls(socket)["t/demo"]["status"] == "paused", 15, "demo paused again")

    woke = run_squad("-L", socket, "wake", "t/sleepy")
    assert woke.returncode == 0 and "resuming its conversation" in woke.stdout
    assert wait_for(lambda: ls(socket)["t/sleepy"]["status"] not in ("hibernated", "down"),
                    15, "sleepy awake")
    # `squad down` ends the squad on purpose: the next `up` starts afresh.
    assert run_squad("-L", socket, "down", "--grace", "1").returncode == 0
    assert records.read("rb") == {}
    before = argv_of(tmp_path, "claude")
    assert run_squad("-L", socket, "up", str(layout), env={"PATH": path_env}).returncode == 0
    fresh = wait_argv(tmp_path, "claude", changed_from=before)
    assert "--session-id" in fresh and "--resume" not in fresh


def test_hibernate_frees_the_tree_and_keeps_the_task_which_comes_back_once(
        socket: str, tmp_path: Path) -> None:
    layout = write_layout(tmp_path / "hb.toml", f"""
name = "hb"
[[teams]]
name = "t"
[[teams.agents]]
name = "a"
command = {demo_cmd("--work", "30")}
grace = 1.0
""")
    assert run_squad("-L", socket, "up", str(layout)).returncode == 0
    task = dispatch(socket, "Port the parser to Rust")
    proc = headless(socket)
    try:
        wait_for(lambda: tasks(socket)[task]["status"] == "in_progress", 30, "the delivery")
        pids = procs.scan().tree(Live.open(Tmux(socket)).panes["t/a"].pid)
        assert run_squad("-L", socket, "hibernate", "t/a").returncode == 0
        assert not [p for p in pids if procs.proc_state(p) not in (None, "Z")]  # freed
        for _ in range(10):  # the supervisor keeps ticking: the task stays with its agent
            assert tasks(socket)[task]["status"] == "in_progress"
            assert tasks(socket)[task]["agent"] == "t/a"
        assert run_squad("-L", socket, "wake", "t/a").returncode == 0
        wait_for(lambda: "Continue it where you left off" in run_squad(
            "-L", socket, "capture", "t/a").stdout, 60, "the task given back")
        wait_for(lambda: tasks(socket)[task]["status"] == "in_progress" and
                 tasks(socket)[task]["enters"] >= 1, 30, "taken up again")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    final = tasks(socket)[task]
    assert final["attempts"] == 1 and final["failures"] == 0
    screen = run_squad("-L", socket, "capture", "t/a", "--lines", "5000").stdout
    assert screen.count("Working on: You were stopped while working on this task") == 1


def test_add_and_remove_agents_while_the_squad_runs(socket: str, tmp_path: Path,
                                                    git_repo: Path) -> None:
    layout = write_layout(tmp_path / "ar.toml", f"""
name = "ar"
repo = "{git_repo}"
[[teams]]
name = "t"
[[teams.agents]]
name = "a"
command = {demo_cmd()}
""")
    assert run_squad("-L", socket, "up", str(layout)).returncode == 0
    proc = headless(socket)
    try:
        added = run_squad("-L", socket, "add", "web/dev", "--command", " ".join(
            json.loads(demo_cmd())), "--worktree", "--tag", "css", "--role", "Frontend")
        assert added.returncode == 0, added.stderr
        rows = ls(socket)
        assert rows["web/dev"]["role"] == "Frontend" and rows["web/dev"]["branch"] == \
            "squad/web/dev"
        task = dispatch(socket, "Style the login page", "--tag", "css")
        wait_for(lambda: tasks(socket)[task]["status"] == "done", 60,
                 "the running supervisor to use the new agent")
        assert tasks(socket)[task]["agent"] == "web/dev"
        bad = run_squad("-L", socket, "add", "web/x", "--command", "x", "--capacity", "0")
        assert bad.returncode == 2 and "capacity" in bad.stderr
        dup = run_squad("-L", socket, "add", "web/dev", "--command", "y")
        assert dup.returncode == 2 and "already" in dup.stderr
        wt = git_repo.parent / "repo.worktrees" / "web" / "dev"
        (wt / "notes.txt").write_text("work in progress\n")
        refused = run_squad("-L", socket, "remove", "web/dev", "--prune")
        assert refused.returncode == 2 and "nothing was stopped" in refused.stderr
        assert ls(socket)["web/dev"]["state"] == "running"
        removed = run_squad("-L", socket, "remove", "web/dev", "--grace", "1")
        assert removed.returncode == 0, removed.stderr
        assert "kept" in removed.stdout and (wt / "notes.txt").exists()
        assert set(ls(socket)) == {"t/a"}
        assert run_squad("-L", socket, "remove", "t/a").returncode == 2  # the last agent
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    with TaskStore.for_squad("ar") as store:
        assert store.get(task).status.value == "done"


def test_a_squad_reshaped_while_running_freezes_and_comes_back_the_same(
        socket: str, tmp_path: Path, git_repo: Path) -> None:
    """up -> add and remove agents -> freeze -> down -> up the frozen file: the same agents,
    commands, roles, tags, worktrees and branches."""
    from squad.live import load_saved_layout

    layout = write_layout(tmp_path / "rs.toml", f"""
name = "rs"
repo = "{git_repo}"
[defaults]
command = {demo_cmd()}
[[teams]]
name = "t"
[[teams.agents]]
name = "a"
[[teams.agents]]
name = "gone"
""")
    assert run_squad("-L", socket, "up", str(layout)).returncode == 0
    added = run_squad("-L", socket, "add", "web/dev", "--command", "sleep 600", "--worktree",
                      "--tag", "css", "--tag", "html", "--role", "Frontend")
    assert added.returncode == 0, added.stderr
    assert run_squad("-L", socket, "remove", "t/gone", "--grace", "1").returncode == 0
    before = {t: {k: r[k] for k in ("role", "branch", "tags", "worktree")}
              for t, r in ls(socket).items()}
    recorded = load_saved_layout("rs")
    frozen = tmp_path / "frozen.toml"
    froze = run_squad("-L", socket, "freeze", "-o", str(frozen))
    assert froze.returncode == 0, froze.stderr
    assert "gone" not in frozen.read_text() and "web" in frozen.read_text()
    assert run_squad("-L", socket, "down", "--grace", "1").returncode == 0
    again = run_squad("-L", socket, "up", str(frozen))
    assert again.returncode == 0, again.stderr
    after = {t: {k: r[k] for k in ("role", "branch", "tags", "worktree")}
             for t, r in ls(socket).items()}
    assert after == before and set(after) == {"t/a", "web/dev"}
    assert [(a.target, a.command) for a in load_saved_layout("rs").agents()] == \
        [(a.target, a.command) for a in recorded.agents()]
