"""squad with the programs people run as agents, beyond the coding CLIs (issue 9): shells and
REPLs that run what they receive, full-screen programs, questions, keys instead of text,
hooks and conversation ids (with stand-in programs named like the real ones; the real CLIs
are driven in tests/real)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from squad import hooks, launch
from squad.live import Live
from squad.tmux import Tmux
from tests.conftest import PY, demo_cmd, run_squad, wait_for, write_layout
from tests.test_queue import dispatch, headless, tasks


def ls(socket: str) -> dict[str, dict]:
    proc = run_squad("-L", socket, "ls", "--json")
    assert proc.returncode == 0, proc.stderr
    return {f"{r['team']}/{r['agent']}": r for r in json.loads(proc.stdout)}


def capture(socket: str, target: str) -> str:
    return run_squad("-L", socket, "capture", target, "--lines", "500").stdout


def layout(tmp_path: Path, name: str, agents: dict[str, str], extra: str = "") -> Path:
    body = "".join(f'[[teams.agents]]\nname = "{n}"\ncommand = {c}\ngrace = 1.0\n'
                   for n, c in agents.items())
    return write_layout(tmp_path / f"{name}.toml",
                        f'name = "{name}"\n{extra}\n[[teams]]\nname = "t"\n{body}')


# -- keys ------------------------------------------------------------------------------------


def test_send_key_interrupts_a_working_agent_and_bad_keys_press_nothing(
        socket: str, tmp_path: Path) -> None:
    path = layout(tmp_path, "keys", {"a": demo_cmd("--work", "60")})
    assert run_squad("-L", socket, "up", str(path)).returncode == 0
    wait_for(lambda: "demo>" in capture(socket, "t/a"), 10, "the prompt")
    assert run_squad("-L", socket, "send", "t/a", "Refactor everything").returncode == 0
    wait_for(lambda: "Working on: Refactor everything" in capture(socket, "t/a"), 10, "work")
    bad = run_squad("-L", socket, "send", "t/a", "--key", "NotAKey")
    assert bad.returncode == 2 and "unknown key" in bad.stderr
    both = run_squad("-L", socket, "send", "t/a", "text", "--key", "Enter")
    assert both.returncode == 2
    assert "interrupted" not in capture(socket, "t/a")
    sent = run_squad("-L", socket, "send", "t/a", "--key", "C-c", "--json")
    assert sent.returncode == 0, sent.stderr
    assert json.loads(sent.stdout)[0]["keys"] == ["C-c"]
    wait_for(lambda: "^C interrupted" in capture(socket, "t/a"), 10, "the interrupt")
    wait_for(lambda: ls(socket)["t/a"]["status"] == "idle", 10, "idle again")


# -- programs that run what they receive ------------------------------------------------------


def test_shells_and_repls_get_their_marker_as_a_comment(socket: str, tmp_path: Path) -> None:
    path = layout(tmp_path, "repl", {
        "sh": '["bash", "--norc", "--noprofile", "-i"]',
        "py": f'["{PY}", "-q"]',
    }, extra='[defaults]\nenv = { PS1 = "$ " }\n')
    assert run_squad("-L", socket, "up", str(path)).returncode == 0
    wait_for(lambda: ">>>" in capture(socket, "t/py"), 15, "the Python prompt")
    shell = dispatch(socket, "echo hello-from-the-task", "--to", "t/sh")
    repl = dispatch(socket, "print(6 * 7)", "--to", "t/py")
    proc = headless(socket)
    try:
        wait_for(lambda: {t["status"] for t in tasks(socket).values()} == {"done"}, 60,
                 "both tasks done")
    finally:
        proc.terminate()
        proc.wait(10)
    got = tasks(socket)
    assert "hello-from-the-task" in got[shell]["result"]
    assert "42" in got[repl]["result"]
    sh_screen, py_screen = capture(socket, "t/sh"), capture(socket, "t/py")
    assert "command not found" not in sh_screen and "# [squad task #" in sh_screen
    assert "SyntaxError" not in py_screen and "# [squad task #" in py_screen


# -- full-screen programs and questions --------------------------------------------------------


def fullscreen_commands() -> dict[str, str]:
    found = {}
    if shutil.which("less"):
        found["pager"] = '["less", "/etc/passwd"]'
    editor = shutil.which("vim") or shutil.which("vi")
    if editor:
        found["editor"] = json.dumps([editor, "-N", "-u", "NONE", "notes.txt"])
    found["monitor"] = '["top", "-d", "0.3"]'
    return found


def test_full_screen_programs_waiting_for_keys_are_idle_never_stalled(
        socket: str, tmp_path: Path) -> None:
    from squad.supervisor import Supervisor

    programs = fullscreen_commands()
    path = layout(tmp_path, "full", programs,
                  extra="[defaults]\nstall_after = 1.0\ndispatch = false\n")
    assert run_squad("-L", socket, "up", str(path)).returncode == 0
    sup = Supervisor(Live.open(Tmux(socket)), interval=0.2)
    sup.start()
    try:
        seen: dict[str, set[str]] = {t: set() for t in (f"t/{n}" for n in programs)}
        for _ in range(30):  # 6 s of ticks: several times stall_after
            for row in sup.tick().agents:
                seen[row.target].add(row.status)
            import time

            time.sleep(0.2)
    finally:
        sup.close()
    for target, statuses in seen.items():
        assert "stalled" not in statuses and "working" not in statuses, (target, statuses)
        assert statuses <= {"starting", "idle"}, (target, statuses)
        assert "idle" in statuses, (target, statuses)


def test_rm_i_question_is_needs_input(socket: str, tmp_path: Path) -> None:
    path = layout(tmp_path, "ask", {"sh": '["bash", "--norc", "--noprofile", "-i"]'},
                  extra='[defaults]\nenv = { PS1 = "$ " }\n')
    assert run_squad("-L", socket, "up", str(path)).returncode == 0
    target = tmp_path / "doomed.txt"
    target.write_text("x")
    assert run_squad("-L", socket, "send", "t/sh", f"rm -i {target}").returncode == 0
    wait_for(lambda: ls(socket)["t/sh"]["status"] == "needs-input", 15, "the question")
    assert run_squad("-L", socket, "send", "t/sh", "n").returncode == 0
    wait_for(lambda: ls(socket)["t/sh"]["status"] == "idle", 15, "idle after the answer")
    assert target.exists()


# -- hooks ----------------------------------------------------------------------------------


def test_the_hook_command_records_what_programs_report(tmp_path: Path) -> None:
    home = Path(os.environ["SQUAD_HOME"])
    cmd = [PY, str(launch.HOOKCMD)]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SQUAD_", "PYTHON"))}
    cases = [
        (["claude", "UserPromptSubmit"], {"session_id": "c-1", "prompt": "x"}, "submit", ""),
        (["claude", "Notification"], {"notification_type": "permission_prompt",
                                      "message": "Claude needs your permission to use Bash"},
         "question", ""),
        (["claude", "Stop"], {"session_id": "c-1"}, "stop", ""),
        (["gemini", "BeforeAgent"], {"session_id": "g-1"}, "submit", "{}"),
        (["gemini", "Notification"], {"notification_type": "ToolPermission"}, "question", "{}"),
    ]
    for args, payload, kind, out in cases:
        proc = subprocess.run([*cmd, *args, "--squad", "hk", "--target", "t/a", "--home",
                               str(home)], input=json.dumps(payload), capture_output=True,
                              text=True, env=env)  # a cleaned environment, as Gemini CLI runs them
        assert proc.returncode == 0 and proc.stdout.strip() == out, (args, proc)
        assert hooks.HookReader("hk").poll()["t/a"].kind == kind, args
    # Codex reports turns of side threads too (titling): only a thread with a session file
    # of its own is its conversation.
    codex_home = tmp_path / "codex"
    (codex_home / "sessions" / "2026" / "12").mkdir(parents=True)
    (codex_home / "sessions" / "2026" / "12" / "rollout-2026-12-02T05-00-00-x-9.jsonl").touch()
    for thread in ("x-9", "side-7"):
        codex = subprocess.run([*cmd, "codex", "turn", "--squad", "hk", "--target", "t/b",
                                "--home", str(home), json.dumps(
                                    {"type": "agent-turn-complete", "thread-id": thread})],
                               capture_output=True, text=True,
                               env=dict(env, CODEX_HOME=str(codex_home)))
        assert codex.returncode == 0
    reader = hooks.HookReader("hk")
    reader.poll()
    assert reader.latest["t/b"].kind == "stop" and reader.sessions["t/b"] == "x-9"
    assert reader.sessions["t/a"] == "g-1"
    junk = subprocess.run([*cmd, "claude", "Stop", "--squad", "hk", "--target", "t/a",
                           "--home", str(home)], input="not json", capture_output=True,
                          text=True, env=env)
    assert junk.returncode == 0  # a hook never fails the program that runs it


def test_hook_events_drive_status_and_never_say_idle_during_a_question(
        socket: str, tmp_path: Path) -> None:
    """A program without any pattern squad knows: only its hooks tell its status."""
    from squad.supervisor import Supervisor

    path = layout(tmp_path, "hs", {"a": f'["{PY}", "-c", "import time; time.sleep(600)"]'})
    assert run_squad("-L", socket, "up", str(path)).returncode == 0
    sup = Supervisor(Live.open(Tmux(socket)), interval=0.2)
    sup.start()
    try:
        def status_after(kind: str | None) -> str:
            if kind:
                hooks.record("hs", "t/a", kind, "claude")
            return sup.tick().agent("t/a").status

        for kind, want in (("submit", "working"), ("question", "needs-input"),
                           ("tool", "working"), ("stop", "idle"), ("question", "needs-input")):
            wait_for(lambda k=kind, w=want: status_after(k) == w, 10, f"{kind} -> {want}")
    finally:
        sup.close()


# -- launching the coding CLIs: hooks and conversation ids ------------------------------------


STAND_IN = """#!/bin/sh
printf '%s\\n' "$0" "$@" > "{out}/$SQUAD_AGENT.argv"
env > "{out}/$SQUAD_AGENT.env"
exec sleep 600
"""


def stand_ins(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("claude", "codex", "gemini"):
        script = bin_dir / name
        script.write_text(STAND_IN.format(out=tmp_path))
        script.chmod(0o755)
    return bin_dir


def test_claude_codex_gemini_start_with_squads_hooks_and_a_known_conversation(
        socket: str, tmp_path: Path) -> None:
    bin_dir = stand_ins(tmp_path)
    path_env = f"{bin_dir}:{os.environ['PATH']}"
    path = write_layout(tmp_path / "cli.toml", f"""
name = "cli"
[defaults]
env = {{ PATH = "{path_env}" }}
[[teams]]
name = "t"
[[teams.agents]]
name = "claude"
command = "claude --model opus"
[[teams.agents]]
name = "codex"
command = "codex"
[[teams.agents]]
name = "gemini"
command = "gemini"
[[teams.agents]]
name = "mine"
command = ["claude", "--session-id", "11111111-2222-3333-4444-555555555555"]
""")
    # Started from a CI job (or a shell with a CI_* variable): Gemini CLI would start
    # non-interactive, so its environment goes without them; the others keep theirs.
    ci = {"CI": "true", "CONTINUOUS_INTEGRATION": "1", "CI_TOKEN": "x"}
    up = run_squad("-L", socket, "up", str(path), env={"PATH": path_env, **ci})
    assert up.returncode == 0, up.stderr
    argv = {n: wait_for(lambda n=n: (tmp_path / f"{n}.argv").exists() and
                        (tmp_path / f"{n}.argv").read_text().splitlines(), 10, n)
            for n in ("claude", "codex", "gemini")}
    claude = argv["claude"]
    settings = json.loads(claude[claude.index("--settings") + 1])
    session = claude[claude.index("--session-id") + 1]
    assert re.fullmatch(r"[0-9a-f-]{36}", session) and claude[-2:] == ["--model", "opus"]
    stop_hook = settings["hooks"]["Stop"][0]["hooks"][0]["command"]
    assert str(launch.HOOKCMD) in stop_hook and "--target t/claude" in stop_hook
    rows = ls(socket)
    assert rows["t/claude"]["session_id"] == session
    assert rows["t/mine"]["session_id"] is None  # its own choice: squad adds nothing
    codex = argv["codex"]
    notify = codex[codex.index("-c") + 1]
    import tomllib

    assert tomllib.loads(notify)["notify"][1] == str(launch.HOOKCMD)
    gemini_env = (tmp_path / "gemini.env").read_text()
    assert not re.search(r"^(CI|CONTINUOUS_INTEGRATION|CI_TOKEN)=", gemini_env, re.M)
    assert "CI_TOKEN=x" in (tmp_path / "codex.env").read_text().splitlines()
    settings_path = re.search(r"GEMINI_CLI_SYSTEM_SETTINGS_PATH=(.*)", gemini_env).group(1)
    assert "AfterAgent" in json.loads(Path(settings_path).read_text())["hooks"]
    # The hook, run as Claude Code runs it (a shell command), reaches the right agent.
    subprocess.run(["sh", "-c", stop_hook], input=json.dumps({"session_id": session}),
                   text=True, check=True)
    assert hooks.HookReader("cli").poll()["t/claude"].kind == "stop"
    # A restart starts a new conversation, recorded in its place.
    assert run_squad("-L", socket, "restart", "t/claude", "--grace", "1").returncode == 0
    wait_for(lambda: ls(socket)["t/claude"]["session_id"] not in (None, session), 10,
             "a new conversation id")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux process table")
def test_codex_conversation_ids_reported_by_hooks_are_recorded(socket: str,
                                                               tmp_path: Path) -> None:
    from squad.supervisor import Supervisor

    bin_dir = stand_ins(tmp_path)
    path_env = f"{bin_dir}:{os.environ['PATH']}"
    path = write_layout(tmp_path / "cx.toml", f"""
name = "cx"
[[teams]]
name = "t"
[[teams.agents]]
name = "codex"
command = "codex"
env = {{ PATH = "{path_env}" }}
""")
    assert run_squad("-L", socket, "up", str(path), env={"PATH": path_env}).returncode == 0
    sup = Supervisor(Live.open(Tmux(socket)), interval=0.2)
    sup.start()
    try:
        hooks.record("cx", "t/codex", "stop", "codex", {"thread-id": "th-42"})
        wait_for(lambda: sup.tick().agent("t/codex").session_id == "th-42", 10, "the id")
    finally:
        sup.close()
    assert ls(socket)["t/codex"]["session_id"] == "th-42"
