"""Fixtures for tests on the real agent CLIs (Claude Code, Codex, Gemini CLI, Aider).

    def test_something(cli_agent, fake_model, socket):        # parametrize "cli" yourself
        ...

- ``fake_model``: a :class:`FakeModel` for this test, its log also in ``tmp_path``.
- ``fake_model_module``: one shared by the tests of a module (call ``.clear()`` as needed).
- ``real_agent``: a factory ``real_agent(cli, **kw) -> RealAgent`` that sets the CLI up in
  ``tmp_path`` against ``fake_model`` (skipping the test when the CLI is not installed) and,
  at teardown, fails the test if any process with its throwaway HOME is still running
  (after ending them).
- ``terminal``: a :class:`Terminal` on this test's own tmux socket (the ``socket`` fixture
  of ``tests/conftest.py``, whose server dies at teardown).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import kill_socket
from tests.real.agents import RealAgent, kill_processes, real_agent_env, skip_unless_installed
from tests.real.fakemodel import FakeModel
from tests.real.terminal import Terminal


@pytest.fixture
def fake_model(tmp_path: Path) -> Iterator[FakeModel]:
    """A fake model server for this test, logging to ``tmp_path/fakemodel.jsonl``."""
    with FakeModel(log_path=tmp_path / "fakemodel.jsonl") as model:
        yield model


@pytest.fixture(scope="module")
def fake_model_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeModel]:
    """One fake model server for all tests of a module."""
    log = tmp_path_factory.mktemp("fakemodel") / "fakemodel.jsonl"
    with FakeModel(log_path=log) as model:
        yield model


@pytest.fixture
def terminal(socket: str) -> Terminal:
    """A 120x40 terminal on this test's tmux socket."""
    return Terminal(socket)


@pytest.fixture
def real_agent(tmp_path: Path, fake_model: FakeModel, socket: str
               ) -> Iterator[Callable[..., RealAgent]]:
    """``real_agent(cli, **kw)``: the CLI set up offline in ``tmp_path`` against
    ``fake_model`` (keywords go to :func:`tests.real.agents.real_agent_env`); skips when it
    is not installed.

    At teardown this test's tmux server is ended first (so agents still running in it are
    not leaks); then any process still carrying an agent's HOME, such as a daemon that left
    the pane's tree, fails the test after it is ended.
    """
    made: list[RealAgent] = []

    def make(cli: str, **kw: Any) -> RealAgent:
        skip_unless_installed(cli)
        agent = real_agent_env(cli, tmp_path, kw.pop("model", fake_model), **kw)
        made.append(agent)
        return agent

    yield make
    kill_socket(socket)
    leaks: dict[str, list[int]] = {}
    deadline = time.monotonic() + 10  # node children may outlive their pane for a moment
    for agent in made:
        while (pids := agent.processes()) and time.monotonic() < deadline:
            time.sleep(0.1)
        if pids:
            leaks[agent.name] = pids
            kill_processes(pids)
    assert not leaks, f"processes left running with an agent's HOME: {leaks}"
