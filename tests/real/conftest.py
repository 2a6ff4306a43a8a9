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

import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import kill_socket
from tests.real.agents import (RealAgent, agents_dir, kill_processes, real_agent_env,
                               skip_unless_installed)
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
def private_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """squad's state directory for this test where no parent is writable by others.

    Gemini CLI ignores a system settings file (squad's hooks) below a directory others can
    write to, /tmp included, as a user's ``~/.local/state`` never is; so the real-agent
    tests keep squad's state below the agents' cache directory, as private as a user's."""
    parent = agents_dir() / "state"
    parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="sq-", dir=parent))
    monkeypatch.setenv("SQUAD_HOME", str(path))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def real_agent(tmp_path: Path, fake_model: FakeModel, socket: str, private_state: Path
               ) -> Iterator[Callable[..., RealAgent]]:
    """``real_agent(cli, **kw)``: the CLI set up offline in ``tmp_path`` against
    ``fake_model`` (keywords go to :func:`tests.real.agents.real_agent_env`); skips when it
    is not installed. squad's state goes to :func:`private_state`.

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
