"""Rough edges of the command line a new user hit (issue 12, points 5 to 10), each as the user
met it: narrow terminals and pipes, options after the command, mistyped commands, layout
files with several problems, history after `squad down`, counts that count agents."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, demo_cmd, run_squad, wait_for, write_layout
from tests.test_queue import dispatch

LONG_TITLE = "Refactor the payment service so refunds share one path"


def squad_with_a_task(socket: str, tmp_path: Path) -> Path:
    layout = write_layout(tmp_path / "edges.toml", f"""
name = "edges"
[[teams]]
name = "frontend-team"
[[teams.agents]]
name = "developer-one"
command = {demo_cmd()}
""")
    assert run_squad("-L", socket, "up", str(layout)).returncode == 0
    dispatch(socket, LONG_TITLE, "--to", "frontend-team/developer-one")
    return layout


def in_a_terminal(socket: str, tmp_path: Path, args: str, width: int) -> str:
    """Run `squad ARGS` in a real terminal of ``width`` columns (a tmux pane of a server of
    the test's own) and return what it showed."""
    outer = f"{socket}-term-{width}-{args.split()[0]}"
    done = tmp_path / f"done-{args.replace(' ', '_')}-{width}"
    cmd = (f"PYTHONPATH={shlex.quote(str(ROOT))} {shlex.quote(sys.executable)} -m squad "
           f"-L {socket} {args}; touch {shlex.quote(str(done))}; sleep 60")
    subprocess.run(["tmux", "-L", outer, "new-session", "-d", "-x", str(width), "-y", "20",
                    "sh", "-c", cmd], check=True)
    try:
        wait_for(done.exists, 30, "the command to finish")
        return subprocess.run(["tmux", "-L", outer, "capture-pane", "-p", "-J"],
                              capture_output=True, text=True).stdout
    finally:
        subprocess.run(["tmux", "-L", outer, "kill-server"], capture_output=True)


def test_narrow_terminals_drop_columns_by_importance_and_pipes_cut_nothing(
        socket: str, tmp_path: Path) -> None:
    squad_with_a_task(socket, tmp_path)
    for width in (80, 120):
        shown = in_a_terminal(socket, tmp_path, "ls", width)
        header = next(line for line in shown.splitlines() if "STATUS" in line)
        for column in ("TEAM", "AGENT", "STATUS", "TASK"):
            assert column in header, (width, shown)
        assert "developer-one" in shown and "frontend-team" in shown
        assert all(len(line) <= width for line in shown.splitlines())
        tasks = in_a_terminal(socket, tmp_path, "tasks", width)
        assert "ID" in tasks and "#1" in tasks, tasks
    piped = run_squad("-L", socket, "tasks")
    assert LONG_TITLE in piped.stdout and "#1" in piped.stdout  # nothing cut
    assert "frontend-team/developer-one" in run_squad("-L", socket, "ls").stdout or \
        "developer-one" in run_squad("-L", socket, "ls").stdout


def test_options_may_come_after_the_command(socket: str, tmp_path: Path) -> None:
    squad_with_a_task(socket, tmp_path)
    rows = run_squad("ls", "-L", socket, "--json")
    assert rows.returncode == 0, rows.stderr
    assert json.loads(rows.stdout)[0]["agent"] == "developer-one"
    assert run_squad("tasks", "--squad", "edges", "-L", socket).returncode == 0
    sent = run_squad("send", "frontend-team/developer-one", "--no-enter", "half a line",
                     "-L", socket)
    assert sent.returncode == 0, sent.stderr
    piped = run_squad("send", "frontend-team/developer-one", "--no-enter", "-", "-L", socket,
                      input=b" and the rest")
    assert piped.returncode == 0, piped.stderr
    wait_for(lambda: "half a line and the rest" in run_squad(
        "-L", socket, "capture", "frontend-team/developer-one").stdout, 10, "the text")


def test_a_mistyped_command_is_called_one() -> None:
    typo = run_squad("tsks")
    assert typo.returncode == 2 and "unknown command 'tsks'" in typo.stderr
    assert "squad tasks" in typo.stderr
    missing = run_squad("layouts/nothing-here.toml")
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_every_layout_problem_is_shown_at_once(tmp_path: Path) -> None:
    layout = write_layout(tmp_path / "bad.toml", """
name = "bad"
[[teams]]
name = "t"
[[teams.agents]]
name = "a"
command = "x"
capacity = 0
priority = 1.5
capacty = 2
""")
    bad = run_squad("up", str(layout))
    assert bad.returncode == 2
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 3, bad.stderr
    assert "capacity" in lines[0] and "priority" in lines[1] and 'did you mean "capacity"' \
        in lines[2]


def test_history_stays_readable_after_down(socket: str, tmp_path: Path) -> None:
    squad_with_a_task(socket, tmp_path)
    assert run_squad("-L", socket, "down", "--grace", "1").returncode == 0
    tasks = run_squad("-L", socket, "tasks", "--json")
    assert tasks.returncode == 0 and json.loads(tasks.stdout)[0]["title"].startswith(
        "Refactor the payment")
    events = run_squad("-L", socket, "events")
    assert events.returncode == 0 and "down" in events.stdout
    nothing = run_squad("-L", socket + "-never-used", "tasks")
    assert nothing.returncode == 2 and "no squad is running" in nothing.stderr


def test_down_counts_agents_not_lines(socket: str, tmp_path: Path) -> None:
    layout = write_layout(tmp_path / "stubborn.toml", """
name = "stubborn"
[[teams]]
name = "t"
[[teams.agents]]
name = "a"
command = ["sh", "-c", "trap '' TERM; while :; do sleep 1; done"]
grace = 0.5
""")
    assert run_squad("-L", socket, "up", str(layout)).returncode == 0
    down = run_squad("-L", socket, "down", "--json")
    assert down.returncode == 0
    rows = json.loads(down.stdout)
    agents = [r for r in rows if not r.get("summary")]
    assert [r["target"] for r in agents] == ["t/a"]
    assert any(r.get("summary") and r["killed"] >= 1 for r in rows)
