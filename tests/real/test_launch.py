"""Smoke tests of the harness on the real CLIs: each starts offline from a plain command,
takes a prompt, reaches the fake model exactly once, shows the answer, asks before running
a shell command, and quits leaving nothing behind. Skipped where a CLI is not installed.

These prove the harness; squad itself is tested on top of it elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.conftest import wait_for
from tests.real.agents import CLIS, RealAgent, launch, quit_agent, submit, wait_ready
from tests.real.fakemodel import PROMPT, TOOL_RESULT, UNKNOWN, FakeModel
from tests.real.terminal import Terminal


@pytest.mark.parametrize("cli", CLIS)
def test_starts_offline_answers_once_and_quits_clean(
        cli: str, real_agent: Callable[..., RealAgent], fake_model: FakeModel,
        terminal: Terminal) -> None:
    agent = real_agent(cli)
    seconds = launch(agent, terminal)
    print(f"{cli}: prompt after {seconds:.1f}s")

    submit(agent, terminal, "Say hello to the harness")
    fake_model.wait_prompt("Say hello to the harness", 30, api=agent.cli.api)
    terminal.wait(r"OK: Say hello to the harness", 30, "the answer on screen")
    wait_ready(agent, terminal, 30)
    assert fake_model.count("Say hello to the harness") == 1, fake_model.prompts()
    assert fake_model.select(kind=UNKNOWN) == [], "the CLI asked for something unknown"

    left = quit_agent(agent, terminal)
    assert terminal.dead(), f"{cli} did not quit:\n{terminal.text()}"
    assert left == [], f"{cli} left processes running: {left}"


@pytest.mark.parametrize("cli", CLIS)
def test_a_shell_tool_call_asks_first_then_runs(
        cli: str, real_agent: Callable[..., RealAgent], fake_model: FakeModel,
        terminal: Terminal) -> None:
    agent = real_agent(cli)
    launch(agent, terminal)
    target = agent.workdir / "made-by-tool"

    submit(agent, terminal, "Make a file [fake: tool touch made-by-tool]")
    terminal.wait(agent.cli.question, 30, "the permission question")
    assert not target.exists(), "the command ran before anyone said yes"
    for key in agent.cli.approve:
        terminal.keys(key)
    wait_for(target.exists, 30, "the approved command to run")
    if agent.cli.api != "chat":  # Aider runs the command itself and tells no model
        fake_model.wait(lambda m: m.select(kind=TOOL_RESULT), 30, "the tool's result")
        terminal.wait(r"tool done", 30, "the model's answer to the result")
    wait_ready(agent, terminal, 30)
    assert len(fake_model.select(agent.cli.api, PROMPT)) == 1
    assert quit_agent(agent, terminal) == []
