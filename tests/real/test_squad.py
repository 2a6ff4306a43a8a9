"""squad on the real agent CLIs (Claude Code, Codex, Gemini CLI, Aider), offline against the
fake model: layouts say plain `claude`, `codex`, `gemini`, `aider`, tasks go through the
queue and a real headless supervisor, and what the model receives is counted.

For each CLI: a queued task reaches the model exactly once; the agent is `working` while
the answer streams and while the model thinks in silence; `needs-input` while a permission
question waits (and a task queued meanwhile waits too, then goes out once it is answered);
`idle` back at its prompt, and the task done; a multi-line prompt arrives as one prompt;
`squad send --key` interrupts a working agent. For the CLIs with conversation ids, a
hibernated and woken agent (and one brought back after its tmux server died) carries on in
the same conversation: the model sees the earlier messages again.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from squad import hooks
from tests.conftest import run_squad, wait_for
from tests.real.agents import CLIS, RealAgent, layout_toml
from tests.real.fakemodel import PROMPT, FakeModel
from tests.test_queue import dispatch, headless, tasks


def ls(socket: str) -> dict[str, dict]:
    proc = run_squad("-L", socket, "ls", "--json")
    assert proc.returncode == 0, proc.stderr
    return {f"{r['team']}/{r['agent']}": r for r in json.loads(proc.stdout)}


def status(socket: str, target: str) -> str:
    return ls(socket)[target]["status"]


@pytest.fixture
def squad_of(socket: str, tmp_path: Path, real_agent: Callable[..., RealAgent]
             ) -> Iterator[Callable[..., tuple[RealAgent, str]]]:
    """``squad_of(cli)``: one real agent in a squad on this test's socket, a headless
    supervisor watching it, and its target once it is idle."""
    procs: list[subprocess.Popen] = []

    def make(cli: str, **extra: object) -> tuple[RealAgent, str]:
        agent = real_agent(cli)
        layout = tmp_path / "real.toml"
        layout.write_text(layout_toml([agent], extra={agent.name: {"stall_after": 300,
                                                                    **extra}}))
        up = run_squad("-L", socket, "up", str(layout))
        assert up.returncode == 0, up.stdout + up.stderr
        procs.append(headless(socket, "--interval", "0.5"))
        target = f"real/{agent.name}"
        try:
            wait_for(lambda: status(socket, target) == "idle", 90, f"{cli} idle at its prompt")
        except AssertionError as e:  # say what the agent shows (inside the test's time)
            screen = subprocess.run(["tmux", "-L", socket, "capture-pane", "-p", "-t",
                                     "real"], capture_output=True, text=True)
            raise AssertionError(f"{e}; its status: {status(socket, target)}; its screen:\n"
                                 f"{screen.stdout}{screen.stderr}") from None
        return agent, target

    yield make
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        assert "Traceback" not in err, err


def watch_statuses(socket: str, target: str, until: Callable[[], object],
                   timeout: float) -> list[str]:
    """Every status `squad ls` reports for ``target`` until ``until()`` holds."""
    seen: list[str] = []

    def step() -> object:
        seen.append(status(socket, target))
        return until()

    wait_for(step, timeout, "the condition while watching the status")
    return seen


def answer(socket: str, target: str, cli: str, task: int) -> None:
    """Say yes to every permission question until the task is done (Aider asks twice)."""
    keys = {"claude": ["Enter"], "codex": ["y"], "gemini": ["Enter"],
            "aider": ["y", "Enter"]}[cli]

    def step() -> bool:
        if tasks(socket)[task]["status"] == "done":
            return True
        if status(socket, target) == "needs-input":
            for key in keys:
                assert run_squad("-L", socket, "send", target, "--key", key).returncode == 0
            time.sleep(0.5)  # one answer per question: let the screen move on
        return False

    wait_for(step, 90, f"{cli} to finish after its questions were answered")


@pytest.mark.parametrize("cli", CLIS)
def test_a_task_reaches_the_model_once_and_status_follows_the_work(
        cli: str, squad_of, fake_model: FakeModel, socket: str) -> None:
    agent, target = squad_of(cli)
    streamed = dispatch(socket, "Tell a long story [fake: stream 8]")
    fake_model.wait_prompt("Tell a long story", 60)
    during = watch_statuses(socket, target, lambda: tasks(socket)[streamed]["status"] == "done",
                            90)
    assert "working" in during and "needs-input" not in during, during
    assert during[0] == "working", during  # from the moment the prompt reached the model
    assert status(socket, target) == "idle"
    assert fake_model.count("Tell a long story") == 1, fake_model.prompts()

    thought = dispatch(socket, "Think it over [fake: think 6]")
    fake_model.wait_prompt("Think it over", 60)
    silent = watch_statuses(socket, target, lambda: tasks(socket)[thought]["status"] == "done",
                            90)
    assert silent[:3] == ["working"] * 3, silent  # no bytes from the model: still working
    assert fake_model.count("Think it over") == 1
    got = tasks(socket)
    assert [got[t]["attempts"] for t in (streamed, thought)] == [1, 1]


@pytest.mark.parametrize("cli", CLIS)
def test_a_question_holds_the_next_task_until_it_is_answered(
        cli: str, squad_of, fake_model: FakeModel, socket: str) -> None:
    agent, target = squad_of(cli)
    made = agent.workdir / "made-by-squad"
    asking = dispatch(socket, "Make a file [fake: tool touch made-by-squad]")
    wait_for(lambda: status(socket, target) == "needs-input", 60, "the permission question")
    waiting = dispatch(socket, "The second task [fake: echo second done]")
    for _ in range(6):  # several ticks with the question open: nothing more is sent
        assert status(socket, target) == "needs-input"
        assert tasks(socket)[waiting]["status"] == "queued"
        time.sleep(0.5)
    assert fake_model.count("The second task") == 0 and not made.exists()
    answer(socket, target, cli, asking)
    assert made.exists()
    wait_for(lambda: tasks(socket)[waiting]["status"] == "done", 90, "the second task")
    assert fake_model.count("The second task") == 1
    assert fake_model.count("Make a file") == 1


@pytest.mark.parametrize("cli", CLIS)
def test_a_multi_line_prompt_arrives_as_one_prompt(
        cli: str, squad_of, fake_model: FakeModel, socket: str) -> None:
    agent, target = squad_of(cli)
    lines = ["Refactor the parser in three steps:", "1. split the tokenizer out",
             "2. add tests for the edge cases", "3. keep the public API",
             "[fake: echo steps noted]"]
    task = dispatch(socket, "\n".join(lines))
    wait_for(lambda: tasks(socket)[task]["status"] == "done", 90, "the task done")
    prompts = [p for p in fake_model.prompts(agent.cli.api) if "Refactor the parser" in p]
    assert len(prompts) == 1, fake_model.prompts()
    assert all(line in prompts[0] for line in lines[1:4]), prompts[0]


@pytest.mark.parametrize("cli", CLIS)
def test_send_key_interrupts_a_working_agent(
        cli: str, squad_of, fake_model: FakeModel, socket: str) -> None:
    agent, target = squad_of(cli)
    dispatch(socket, "Write a very long essay [fake: stream 90]")
    fake_model.wait_prompt("Write a very long essay", 60)
    wait_for(lambda: status(socket, target) == "working", 30, "working")
    key = "C-c" if cli == "aider" else "Escape"
    sent = run_squad("-L", socket, "send", target, "--key", key)
    assert sent.returncode == 0, sent.stderr
    wait_for(lambda: status(socket, target) == "idle", 60, f"{cli} interrupted, idle again")


@pytest.mark.parametrize("cli", ("claude", "codex", "gemini"))
def test_hibernate_then_wake_carries_on_in_the_same_conversation(
        cli: str, squad_of, fake_model: FakeModel, socket: str) -> None:
    agent, target = squad_of(cli)
    first = dispatch(socket, "Remember the word pelican [fake: echo noted]")
    wait_for(lambda: tasks(socket)[first]["status"] == "done", 90, "the first task")
    session = wait_for(lambda: ls(socket)[target]["session_id"], 30, "a conversation id")
    slept = run_squad("-L", socket, "hibernate", target)
    assert slept.returncode == 0 and session in slept.stdout, slept.stdout + slept.stderr
    assert status(socket, target) == "hibernated"
    woke = run_squad("-L", socket, "wake", target)
    assert woke.returncode == 0 and "resuming its conversation" in woke.stdout, woke.stdout
    wait_for(lambda: status(socket, target) == "idle", 120, "awake at its prompt")
    second = dispatch(socket, "Which word did I ask you to remember? [fake: echo pelican]")
    wait_for(lambda: tasks(socket)[second]["status"] == "done", 90, "the second task")
    request = next(r for r in fake_model.select(agent.cli.api, PROMPT)
                   if "Which word" in r.prompt)
    assert "Remember the word pelican" in json.dumps(request.body), \
        "the resumed conversation did not carry the earlier messages"
    assert ls(socket)[target]["session_id"] == session


def test_claude_hooks_are_recorded_and_a_reboot_resumes_its_conversation(
        squad_of, fake_model: FakeModel, socket: str, tmp_path: Path) -> None:
    agent, target = squad_of("claude")
    first = dispatch(socket, "Remember the word heron [fake: echo noted]")
    wait_for(lambda: tasks(socket)[first]["status"] == "done", 90, "the first task")
    reader = hooks.HookReader("real")
    reader.poll()
    assert reader.latest[target].kind == "stop"
    session = ls(socket)[target]["session_id"]
    assert reader.sessions[target] == session
    subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True)
    wait_for(lambda: not agent.processes(), 30, "claude gone with its server")
    up = run_squad("-L", socket, "up", str(tmp_path / "real.toml"))
    assert up.returncode == 0 and "resuming its conversation" in up.stdout, up.stdout
    wait_for(lambda: status(socket, target) == "idle", 120, "back at its prompt")
    second = dispatch(socket, "Which bird did I name? [fake: echo heron]")
    wait_for(lambda: tasks(socket)[second]["status"] == "done", 90, "the second task")
    request = next(r for r in fake_model.select("anthropic", PROMPT) if "Which bird" in r.prompt)
    assert "Remember the word heron" in json.dumps(request.body)


def test_gemini_hooks_are_recorded(squad_of, fake_model: FakeModel, socket: str) -> None:
    """Gemini CLI runs squad's hooks (its system settings file) and reports the
    conversation squad started it in."""
    agent, target = squad_of("gemini")
    task = dispatch(socket, "Say something [fake: echo noted]")
    wait_for(lambda: tasks(socket)[task]["status"] == "done", 90, "the task")
    reader = hooks.HookReader("real")
    wait_for(lambda: reader.poll() and reader.latest[target].kind == "stop", 30,
             "gemini's end-of-turn hook")
    assert reader.sessions[target] == ls(socket)[target]["session_id"]
