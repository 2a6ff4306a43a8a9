"""Shared fixtures: every test gets its own tmux socket, HOME, state directory and temp dirs,
and the session fails if any test leaves a tmux server or an agent process behind."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
AGENTS = Path(__file__).resolve().parent / "agents"
SOCKET_PREFIX = f"sqt{os.getpid()}-"
PY = sys.executable


def wait_for(check: Callable[[], object], timeout: float = 10.0, what: str = "condition"):
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.2)


@pytest.fixture(autouse=True)
def private_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("SHELL", "/bin/sh")
    monkeypatch.setenv("SQUAD_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("GIT_AUTHOR_NAME", "squad test")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "test@example.invalid")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "squad test")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "test@example.invalid")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("SQUAD_NOTIFY", "0")  # no desktop notifications from test supervisors
    for var in ("TMUX", "TMUX_PANE", "SQUAD_NAME", "SQUAD_TEAM", "SQUAD_AGENT", "XDG_STATE_HOME"):
        monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture
def socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A tmux socket of this test alone; its server and every agent on it die at teardown."""
    name = SOCKET_PREFIX + uuid.uuid4().hex[:8]
    monkeypatch.setenv("SQUAD_SOCKET", name)
    yield name
    kill_socket(name)


def server_pids(name: str) -> list[int]:
    proc = subprocess.run(["tmux", "-L", name, "list-panes", "-a", "-F", "#{pane_pid}"],
                          capture_output=True, text=True, check=False)
    return [int(x) for x in proc.stdout.split() if x.isdigit()]


def kill_socket(name: str) -> None:
    from squad import procs

    roots = server_pids(name)
    if roots:
        procs.terminate_trees(roots, grace=2.0)
    subprocess.run(["tmux", "-L", name, "kill-server"], capture_output=True, check=False)
    uid = os.getuid()
    path = Path(os.environ.get("TMUX_TMPDIR", "/tmp")) / f"tmux-{uid}" / name
    wait_for(lambda: not _alive(name), 5, f"tmux server {name} to exit")
    path.unlink(missing_ok=True)


def _alive(name: str) -> bool:
    return subprocess.run(["tmux", "-L", name, "list-sessions"], capture_output=True,
                          check=False).returncode == 0


@pytest.fixture
def git_repo(tmp_path: Path) -> Path:
    """A git repository with one commit."""
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    (repo / "README.md").write_text("hello\n")
    subprocess.run(["git", "-C", str(repo), "add", "."], check=True)
    subprocess.run(["git", "-C", str(repo), "commit", "-qm", "init"], check=True)
    return repo


def write_layout(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def demo_cmd(*extra: str) -> str:
    """A TOML array literal running the demo agent with this interpreter, fast settings."""
    args = [PY, "-m", "squad.demo_agent", "--work", "0.6", "--ask", "0", "--mem", "4", *extra]
    return "[" + ", ".join(f'"{a}"' for a in args) + "]"


def agent_cmd(script: str, *extra: str) -> str:
    args = [PY, str(AGENTS / script), *extra]
    return "[" + ", ".join(f'"{a}"' for a in args) + "]"


def run_squad(*args: str, input: bytes | None = None, timeout: float = 60,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real `squad` command (python -m squad) and capture its output."""
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = str(ROOT) + os.pathsep + full_env.get("PYTHONPATH", "")
    if env:
        full_env.update(env)
    proc = subprocess.run([PY, "-m", "squad", *args], input=input, capture_output=True,
                          timeout=timeout, env=full_env, check=False)
    return subprocess.CompletedProcess(proc.args, proc.returncode,
                                       proc.stdout.decode("utf-8", "replace"),
                                       proc.stderr.decode("utf-8", "replace"))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if any test leaked a tmux server or a squad process."""
    leaks = []
    base = Path(os.environ.get("TMUX_TMPDIR", "/tmp")) / f"tmux-{os.getuid()}"
    if base.is_dir():
        for sock in base.glob(SOCKET_PREFIX + "*"):
            if _alive(sock.name):
                leaks.append(f"tmux server {sock.name}")
                subprocess.run(["tmux", "-L", sock.name, "kill-server"], capture_output=True)
            sock.unlink(missing_ok=True)
    marker = f"SQUAD_SOCKET={SOCKET_PREFIX}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            if marker in environ:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                leaks.append(f"process {entry.name}: {cmdline[:120]}")
                os.kill(int(entry.name), 9)
        except OSError:
            continue
    if leaks:
        print("\nLEAKS after the test session:\n  " + "\n  ".join(leaks), file=sys.stderr)
        session.exitstatus = 1


def have_tmux() -> bool:
    return shutil.which("tmux") is not None
