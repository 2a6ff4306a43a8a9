"""`squad` end to end, as a user runs it: real tmux, real git, real process trees."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from squad import procs
from tests.conftest import PY, agent_cmd, demo_cmd, run_squad, wait_for, write_layout


def panes(socket: str) -> list[dict[str, str]]:
    fmt = "#{session_name}|#{window_name}|#{@squad_team}|#{@squad_agent}|#{pane_pid}|#{pane_dead}"
    out = subprocess.run(["tmux", "-L", socket, "list-panes", "-a", "-F", fmt],
                         capture_output=True, text=True).stdout
    keys = ("session", "window", "team", "agent", "pid", "dead")
    return [dict(zip(keys, line.split("|"), strict=True)) for line in out.splitlines()]


def ls(socket: str) -> dict[str, dict]:
    proc = run_squad("-L", socket, "ls", "--json")
    assert proc.returncode == 0, proc.stderr
    return {f"{r['team']}/{r['agent']}": r for r in json.loads(proc.stdout)}


def roles(path: Path) -> dict[str, int]:
    if not path.exists():
        return {}
    return {ln.split()[0]: int(ln.split()[1]) for ln in path.read_text().splitlines()}


@pytest.fixture
def two_teams(tmp_path: Path) -> Path:
    envfile = tmp_path / "env.txt"
    return write_layout(tmp_path / "two.toml", f"""
name = "two"

[defaults]
command = {demo_cmd()}

[[teams]]
name = "alpha"
session = "Task-alpha"

[[teams.agents]]
name = "pm"
role = "PM"

[[teams.agents]]
name = "dev"
role = "Dev"
env = {{ GREETING = "hi there" }}
command = "env | grep -E '^(SQUAD_|GREETING|PATH)' | sort > {envfile}; exec sleep 600"

[[teams]]
name = "beta"

[[teams.agents]]
name = "qa"
role = "QA"
""")


def test_up_is_idempotent_and_down_cleans_up(socket: str, two_teams: Path,
                                             tmp_path: Path) -> None:
    first = run_squad("-L", socket, "up", str(two_teams))
    assert first.returncode == 0, first.stderr
    assert "3 started" in first.stdout
    got = wait_for(lambda: len(p := panes(socket)) == 3 and p)
    assert {(p["session"], p["window"], p["agent"]) for p in got} == {
        ("Task-alpha", "PM", "pm"), ("Task-alpha", "Dev", "dev"), ("beta", "QA", "qa")}
    env = wait_for(lambda: (tmp_path / "env.txt").exists()
                   and "SQUAD_SOCKET" in (t := (tmp_path / "env.txt").read_text()) and t)
    assert "SQUAD_NAME=two\n" in env and "SQUAD_TEAM=alpha\n" in env
    assert "SQUAD_AGENT=dev\n" in env and f"SQUAD_SOCKET={socket}\n" in env
    assert f"SQUAD_HOME={os.environ['SQUAD_HOME']}\n" in env and "GREETING=hi there\n" in env
    # squad's own interpreter comes first on PATH, so `squad` and `python` in the window are
    # the ones running this squad (tmux would otherwise impose the client's PATH).
    assert f"PATH={os.path.dirname(PY)}:" in env and "SQUAD_PATH" not in env
    # The window runs the wrapper; the agent is its child (never an interactive shell).
    table = procs.scan()
    for p in got:
        assert "python" in table.procs[int(p["pid"])].name
    pids = {p["agent"]: p["pid"] for p in got}

    again = run_squad("-L", socket, "up", str(two_teams))
    assert again.returncode == 0, again.stderr
    assert "0 started, 3 already running" in again.stdout
    assert {p["agent"]: p["pid"] for p in panes(socket)} == pids

    rows = ls(socket)
    assert set(rows) == {"alpha/pm", "alpha/dev", "beta/qa"}
    for row in rows.values():
        assert {"team", "agent", "role", "state", "pid", "cpu", "rss", "branch", "worktree",
                "status", "procs"} <= set(row)
        assert row["state"] == "running" and row["pid"] and row["procs"] >= 1
    assert rows["alpha/pm"]["role"] == "PM"

    home = Path(os.environ["SQUAD_HOME"])
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    for f in (home / "squads" / "two").iterdir():
        assert stat.S_IMODE(f.stat().st_mode) & 0o077 == 0, f

    tree = [p for r in (int(x) for x in pids.values()) for p in procs.scan().tree(r)]
    down = run_squad("-L", socket, "down")
    assert down.returncode == 0, down.stderr
    assert panes(socket) == []
    wait_for(lambda: all(procs.proc_state(p) in (None, "Z") for p in tree))


def test_process_tree_control_from_the_cli(socket: str, tmp_path: Path) -> None:
    out = tmp_path / "pids"
    layout = write_layout(tmp_path / "tree.toml", f"""
name = "trees"
[[teams]]
name = "t"
[[teams.agents]]
name = "tree"
command = {agent_cmd("tree_agent.py", str(out))}
grace = 3
""")
    assert run_squad("-L", socket, "up", str(layout)).returncode == 0
    pids = wait_for(lambda: len(r := roles(out)) == 4 and r, what="the 4 processes")

    def states() -> set[str | None]:
        return {procs.proc_state(p) for p in pids.values()}

    p = run_squad("-L", socket, "pause", "t/tree", "--reason", "testing", "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)[0]["ok"]
    assert states() <= procs.STOPPED_STATES
    assert ls(socket)["t/tree"]["status"] == "paused"
    again = run_squad("-L", socket, "pause", "t/tree")
    assert again.returncode == 0 and "already paused" in again.stdout

    r = run_squad("-L", socket, "resume", "t")
    assert r.returncode == 0, r.stderr
    assert not states() & procs.STOPPED_STATES
    assert "already running" in run_squad("-L", socket, "resume", "--all").stdout

    s = run_squad("-L", socket, "stop", "t/tree", "--grace", "2")
    assert s.returncode == 0, s.stderr
    wait_for(lambda: states() <= {None, "Z"}, what="no process of the agent left")
    row = ls(socket)["t/tree"]
    assert row["state"] == "exited" and row["status"] == "exited"
    assert panes(socket)[0]["dead"] == "1"  # the window stays with the last screen

    out.unlink()
    rs = run_squad("-L", socket, "restart", "t/tree", "--json")
    assert rs.returncode == 0, rs.stderr
    new = wait_for(lambda: len(r := roles(out)) == 4 and r)
    assert new["agent"] != pids["agent"]
    assert ls(socket)["t/tree"]["state"] == "running"

    ev = run_squad("-L", socket, "events", "--json", "--agent", "t/tree")
    actions = [json.loads(line)["action"] for line in ev.stdout.splitlines()]
    for action in ("up", "pause", "resume", "stop", "restart"):
        assert action in actions
    first = json.loads(ev.stdout.splitlines()[1])
    assert first["by"] == "cli" and first["reason"] == "testing"
    assert {"cpu", "mem"} <= set(first["system"])

    tree = [p for r in roles(out).values() for p in [r]]
    assert run_squad("-L", socket, "down", "--grace", "2").returncode == 0
    wait_for(lambda: all(procs.proc_state(p) in (None, "Z") for p in tree))


def test_send_and_capture_exact_text(socket: str, tmp_path: Path) -> None:
    out = tmp_path / "got"
    layout = write_layout(tmp_path / "echo.toml", f"""
name = "echo"
[[teams]]
name = "e"
[[teams.agents]]
name = "echo"
command = {agent_cmd("echo_agent.py", str(out))}
""")
    assert run_squad("-L", socket, "up", str(layout)).returncode == 0
    wait_for(lambda: "ready" in run_squad("-L", socket, "capture", "e/echo").stdout)
    tricky = "a; b \\; $(echo x) `id` 'q' \"d\" C-c Enter #{pane_id} ~ tab\there ✓ 日本"
    sent = [tricky.encode(), b"from stdin\nsecond line", b"z" * 65536]
    assert run_squad("-L", socket, "send", "e/echo", tricky).returncode == 0
    assert run_squad("-L", socket, "send", "e/echo", input=sent[1]).returncode == 0
    big = tmp_path / "big.txt"
    big.write_bytes(sent[2])
    assert run_squad("-L", socket, "send", "e/echo", "--file", str(big)).returncode == 0
    lines = wait_for(lambda: out.exists() and len(t := out.read_text().splitlines()) == 3 and t,
                     timeout=20)
    assert [bytes.fromhex(line.split()[0]) for line in lines] == sent
    cap = run_squad("-L", socket, "capture", "e/echo", "--json")
    assert "got 65536 bytes" in json.loads(cap.stdout)["text"]


def test_worktrees_created_reused_and_pruned_safely(socket: str, tmp_path: Path,
                                                     git_repo: Path) -> None:
    layout = write_layout(tmp_path / "wt.toml", f"""
name = "wt"
repo = "{git_repo}"
worktree_root = "{tmp_path / 'trees'}"
[defaults]
command = "sleep 600"
worktree = true
[[teams]]
name = "web"
[[teams.agents]]
name = "dev"
[[teams.agents]]
name = "dev2"
branch = "feature/x"
[[teams.agents]]
name = "pm"
worktree = false
""")
    up = run_squad("-L", socket, "up", str(layout))
    assert up.returncode == 0, up.stderr
    dev, dev2 = tmp_path / "trees" / "web" / "dev", tmp_path / "trees" / "web" / "dev2"
    branch = subprocess.run(["git", "-C", str(dev), "branch", "--show-current"],
                            capture_output=True, text=True).stdout.strip()
    assert branch == "squad/web/dev"
    assert subprocess.run(["git", "-C", str(dev2), "branch", "--show-current"],
                          capture_output=True, text=True).stdout.strip() == "feature/x"
    rows = ls(socket)
    assert rows["web/dev"]["branch"] == "squad/web/dev"
    assert rows["web/dev"]["worktree"] == str(dev)
    assert rows["web/pm"]["worktree"] is None

    (dev / "work.txt").write_text("uncommitted work\n")  # the agent's unsaved work
    assert run_squad("-L", socket, "down").returncode == 0
    again = run_squad("-L", socket, "up", str(layout))  # reuses, never resets
    assert again.returncode == 0 and "reused" in again.stdout
    assert (dev / "work.txt").read_text() == "uncommitted work\n"

    pruned = run_squad("-L", socket, "down", "--prune")
    assert pruned.returncode == 0  # keeping work is what --prune promises, not a failure
    assert f"! web/dev: kept {dev}" in pruned.stderr and "uncommitted" in pruned.stderr
    assert (dev / "work.txt").exists() and not dev2.exists()

    # The squad is down, its history at hand without --squad: the leftover goes with --force.
    assert "web/dev" in run_squad("-L", socket, "events").stdout
    forced = run_squad("-L", socket, "down", "--prune", "--force")
    assert forced.returncode == 0, forced.stderr
    assert not dev.exists()
    # The branches stay: committed work is never lost.
    assert "squad/web/dev" in subprocess.run(["git", "-C", str(git_repo), "branch"],
                                             capture_output=True, text=True).stdout


def test_bad_input_exits_2_with_one_clear_line(socket: str, tmp_path: Path,
                                                two_teams: Path) -> None:
    nothing = run_squad("-L", socket, "ls")
    assert nothing.returncode == 2 and "no squad is running" in nothing.stderr
    broken = write_layout(tmp_path / "broken.toml", 'name = "x"\n[[teams]\n')
    bad = run_squad("-L", socket, "up", str(broken))
    assert bad.returncode == 2 and "broken.toml" in bad.stderr and "line 2" in bad.stderr
    missing = write_layout(tmp_path / "missing.toml", """
name = "m"
[[teams]]
name = "t"
[[teams.agents]]
name = "a"
command = "definitely-not-installed-agent --flag"
""")
    miss = run_squad("-L", socket, "up", str(missing))
    assert miss.returncode == 2 and "definitely-not-installed-agent" in miss.stderr
    assert panes(socket) == []  # nothing was brought up

    assert run_squad("-L", socket, "up", str(two_teams)).returncode == 0
    other = write_layout(tmp_path / "other.toml", f"""
name = "other"
[[teams]]
name = "gamma"
[[teams.agents]]
name = "solo"
command = {demo_cmd()}
""")
    assert run_squad("-L", socket, "up", str(other)).returncode == 0
    for args, fragment in [
        (["--squad", "two", "pause", "alpha/nobody"], "unknown target 'alpha/nobody'"),
        (["--squad", "two", "pause", "gamma/solo"], "belongs to squad 'other'"),
        (["pause", "alpha/pm"], "several squads"),
        (["--squad", "nope", "ls"], "no squad named 'nope'"),
        (["--squad", "two", "send", "alpha", "x"], "TEAM/AGENT"),
        (["--squad", "two", "pause"], "TEAM/AGENT, TEAM, or --all"),
        (["--squad", "two", "events", "--since", "yesterday-ish"], "--since"),
        (["--squad", "two", "frobnicate"], None),
    ]:
        proc = run_squad("-L", socket, *args)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        if fragment:
            assert fragment in proc.stderr, (args, proc.stderr)
    gone = run_squad("-L", socket + "x", "--squad", "two", "pause", "alpha/pm")
    assert gone.returncode == 2 and "Traceback" not in gone.stderr
    assert run_squad("-L", socket, "--squad", "other", "down").returncode == 0
    assert run_squad("-L", socket, "--squad", "two", "down").returncode == 0


def test_python_dash_m_and_version() -> None:
    proc = subprocess.run([PY, "-m", "squad", "--version"], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parent.parent)
    assert proc.returncode == 0 and proc.stdout.startswith("squad ")


def test_cli_never_imports_textual(socket: str, two_teams: Path) -> None:
    assert run_squad("-L", socket, "up", str(two_teams)).returncode == 0
    code = ("import sys; from squad.cli import main; rc = main(['ls', '--json']); "
            "assert 'textual' not in sys.modules, 'textual imported'; sys.exit(rc)")
    proc = subprocess.run([PY, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parent.parent)
    assert proc.returncode == 0, proc.stderr
    assert run_squad("-L", socket, "down").returncode == 0


def test_events_follow_streams_new_events(socket: str, two_teams: Path) -> None:
    assert run_squad("-L", socket, "up", str(two_teams)).returncode == 0
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    follower = subprocess.Popen([PY, "-m", "squad", "-L", socket, "events", "--follow", "--json",
                                 "--agent", "beta"], stdout=subprocess.PIPE, text=True, env=env)
    try:
        first = json.loads(follower.stdout.readline())  # what happened before: `up` of beta/qa
        assert first["action"] == "up" and first["target"] == "beta/qa"
        assert run_squad("-L", socket, "pause", "beta/qa", "--reason", "lunch").returncode == 0
        live = json.loads(follower.stdout.readline())
        assert (live["action"], live["target"], live["reason"]) == ("pause", "beta/qa", "lunch")
    finally:
        follower.terminate()
        follower.wait(10)
    assert run_squad("-L", socket, "down").returncode == 0


def test_a_big_squad_needs_several_tmux_invocations(socket: str, tmp_path: Path) -> None:
    """tmux refuses one command past ~16 KB; 60 agents with their environments need several."""
    teams = "".join(
        f'[[teams]]\nname = "team{t}"\n'
        + "".join(f'[[teams.agents]]\nname = "a{a}"\nenv = {{ FILLER = "{"x" * 200}" }}\n'
                  for a in range(6))
        for t in range(10))
    layout = write_layout(tmp_path / "big.toml",
                          f'name = "big"\n[defaults]\ncommand = "sleep 600"\n{teams}')
    up = run_squad("-L", socket, "up", str(layout))
    assert up.returncode == 0, up.stderr
    got = wait_for(lambda: len(p := panes(socket)) == 60 and p, what="60 windows")
    assert {(p["team"], p["agent"]) for p in got} == {
        (f"team{t}", f"a{a}") for t in range(10) for a in range(6)}
    before = {p["pid"] for p in got}
    again = run_squad("-L", socket, "restart", "--all", "--grace", "1")
    assert again.returncode == 0, again.stderr
    after = wait_for(lambda: len(p := [x for x in panes(socket) if x["dead"] == "0"]) == 60 and p)
    assert not before & {p["pid"] for p in after}
    assert run_squad("-L", socket, "down", "--grace", "1").returncode == 0
    assert panes(socket) == []


def test_names_are_never_run_by_tmux(socket: str, tmp_path: Path) -> None:
    """tmux expands window names as formats, where #(...) runs a shell command."""
    marker = Path(f"/tmp/sqpw{os.getpid() % 10000}")  # short: a role has at most 32 characters
    marker.unlink(missing_ok=True)
    layout = write_layout(tmp_path / "f.toml", f"""
name = "fmt"
[[teams]]
name = "t"
[[teams.agents]]
name = "a"
role = "D#(touch {marker})#S"
command = "sleep 600"
[[teams.agents]]
name = "b"
role = "QA#"
command = "sleep 600"
""")
    assert run_squad("-L", socket, "up", str(layout)).returncode == 0
    windows = {p["agent"]: p["window"] for p in panes(socket)}
    assert windows == {"a": f"D#(touch {marker})#S", "b": "QA#"}
    assert not marker.exists()
    assert run_squad("-L", socket, "down").returncode == 0


def test_attach_shows_the_agent_and_detach_returns(socket: str, two_teams: Path,
                                                   tmp_path: Path) -> None:
    """`squad attach` in a real terminal (a pane of a second private tmux server)."""
    from tests.conftest import ROOT, kill_socket

    assert run_squad("-L", socket, "up", str(two_teams)).returncode == 0
    done = tmp_path / "returned"
    viewer = socket + "v"
    cmd = (f"env PYTHONPATH={ROOT} {PY} -m squad -L {socket} attach beta/qa; "
           f"echo $? > {done}; sleep 30")
    subprocess.run(["tmux", "-L", viewer, "new-session", "-d", "-x", "100", "-y", "20", cmd],
                   check=True)
    try:
        def screen() -> str:
            return subprocess.run(["tmux", "-L", viewer, "capture-pane", "-p"],
                                  capture_output=True, text=True).stdout

        wait_for(lambda: 'demo agent "qa"' in screen(), what="the agent's window")
        subprocess.run(["tmux", "-L", viewer, "send-keys", "C-b", "d"], check=True)
        wait_for(lambda: done.exists() and done.read_text().strip() == "0", what="detach")
    finally:
        kill_socket(viewer)
    assert run_squad("-L", socket, "down").returncode == 0


def test_layout_edits_while_running_are_reported_and_down_leaves_nothing(
        socket: str, tmp_path: Path) -> None:
    out = tmp_path / "pids"
    first = f"""
name = "edit"
[[teams]]
name = "keep"
[[teams.agents]]
name = "a"
command = "sleep 600"
[[teams.agents]]
name = "b"
command = "sleep 600"
[[teams]]
name = "gone"
[[teams.agents]]
name = "tree"
command = {agent_cmd("tree_agent.py", str(out))}
"""
    layout = write_layout(tmp_path / "edit.toml", first)
    assert run_squad("-L", socket, "up", str(layout)).returncode == 0
    tree = wait_for(lambda: len(r := roles(out)) == 4 and r)
    # The user edits the layout: a's command changes, b and the whole team "gone" go away.
    write_layout(layout, """
name = "edit"
[[teams]]
name = "keep"
[[teams.agents]]
name = "a"
command = "sleep 700"
""")
    again = run_squad("-L", socket, "up", str(layout))
    assert again.returncode == 0, again.stderr
    assert "keep/a: kept (running); its layout changed" in again.stdout
    assert "keep/b: running but not in the layout" in again.stdout
    assert "gone/tree: running but not in the layout" in again.stdout
    down = run_squad("-L", socket, "down", "--grace", "2")
    assert down.returncode == 0, down.stderr
    assert "gone/tree: stopped (no longer in the layout)" in down.stdout
    assert panes(socket) == []
    wait_for(lambda: all(procs.proc_state(p) in (None, "Z") for p in tree.values()),
             what="no process of the removed team left")
