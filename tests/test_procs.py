"""Process trees on real processes: sampling, pause, resume and stop under the wrapper."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from squad import procs
from tests.conftest import AGENTS, wait_for

WRAPPER = str(Path(__file__).resolve().parent.parent / "squad" / "wrapper.py")


def roles(path: Path) -> dict[str, int]:
    if not path.exists():
        return {}
    return {line.split()[0]: int(line.split()[1]) for line in path.read_text().splitlines()}


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[tuple[subprocess.Popen, dict[str, int], Path]]:
    """The wrapper running tree_agent: agent, child, setsid grandchild, double-forked daemon."""
    out = tmp_path / "pids"
    wrapper = subprocess.Popen(
        [sys.executable, "-S", WRAPPER, "--", sys.executable, str(AGENTS / "tree_agent.py"),
         str(out)], stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        start_new_session=True)
    pids = wait_for(lambda: len(r := roles(out)) == 4 and r, what="4 processes")
    # The daemon was re-parented to the wrapper (a child subreaper), not to init.
    wait_for(lambda: len(procs.scan().tree(wrapper.pid)) == 4, what="tree of 4")
    yield wrapper, pids, out
    try:
        procs.terminate_trees([wrapper.pid], grace=1)
    finally:
        wrapper.kill()
        wrapper.wait(5)


def states(pids) -> dict[int, str | None]:
    return {p: procs.proc_state(p) for p in pids}


def test_tree_includes_setsid_and_double_forked(tree) -> None:
    wrapper, pids, _ = tree
    members = set(procs.scan().tree(wrapper.pid))
    assert members == set(pids.values())
    assert wrapper.pid not in members


def test_pause_resume_and_stop_the_whole_tree(tree) -> None:
    wrapper, pids, _ = tree
    stopped = procs.pause_tree(wrapper.pid)
    assert stopped[0] == pids["agent"]  # the agent first, then its descendants
    assert set(stopped) == set(pids.values())
    assert all(s in procs.STOPPED_STATES for s in states(pids.values()).values())
    assert procs.proc_state(wrapper.pid) not in procs.STOPPED_STATES  # never the wrapper
    resumed = procs.resume_tree(wrapper.pid)
    assert set(resumed) == set(pids.values())
    assert not any(s in procs.STOPPED_STATES for s in states(pids.values()).values())
    procs.pause_tree(wrapper.pid)  # a paused tree must still stop cleanly
    killed = procs.terminate_trees([wrapper.pid], grace=5)
    assert killed == []  # SIGTERM (with SIGCONT) was enough
    wait_for(lambda: all(s in (None, "Z") for s in states(pids.values()).values()))
    assert wrapper.wait(5) == 128 + signal.SIGTERM


def test_stubborn_tree_is_killed_after_grace(tmp_path: Path) -> None:
    out = tmp_path / "pids"
    wrapper = subprocess.Popen(
        [sys.executable, "-S", WRAPPER, "--", sys.executable, str(AGENTS / "tree_agent.py"),
         str(out), "stubborn"], stdout=subprocess.DEVNULL, start_new_session=True)
    try:
        pids = wait_for(lambda: len(r := roles(out)) == 4 and r)
        wait_for(lambda: len(procs.scan().tree(wrapper.pid)) == 4)
        killed = procs.terminate_trees([wrapper.pid], grace=0.5)
        assert set(killed) >= {pids["agent"]}
        wait_for(lambda: all(s in (None, "Z") for s in states(pids.values()).values()))
        assert wrapper.wait(5) == 128 + signal.SIGKILL
    finally:
        wrapper.kill()
        wrapper.wait(5)


def test_wrapper_ends_orphans_when_agent_exits(tmp_path: Path) -> None:
    out = tmp_path / "pids"
    wrapper = subprocess.Popen(
        [sys.executable, "-S", WRAPPER, "--", sys.executable, str(AGENTS / "tree_agent.py"),
         str(out)], stdout=subprocess.DEVNULL, start_new_session=True)
    pids = wait_for(lambda: len(r := roles(out)) == 4 and r)
    wait_for(lambda: len(procs.scan().tree(wrapper.pid)) == 4)
    os.kill(pids["agent"], signal.SIGKILL)  # the agent dies; its children must not survive
    assert wrapper.wait(10) == 128 + signal.SIGKILL
    wait_for(lambda: all(procs.proc_state(p) in (None, "Z") for p in pids.values()))


def test_wrapper_reports_missing_program_and_exit_code(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-S", WRAPPER, "--", "no-such-program-xyz"],
                          capture_output=True, timeout=10)
    assert proc.returncode == 127
    assert b"cannot run 'no-such-program-xyz'" in proc.stderr
    proc = subprocess.run([sys.executable, "-S", WRAPPER, "--", "sh", "-c", "exit 7"],
                          capture_output=True, timeout=10)
    assert proc.returncode == 7
    assert b"exited with status 7" in proc.stdout


def test_sampler_measures_cpu_and_memory_of_the_tree(tmp_path: Path) -> None:
    burn = ("import time\nx = bytearray(30 * 1024 * 1024)\nfor i in range(0, len(x), 4096): "
            "x[i] = 1\nt = time.time()\nwhile time.time() - t < 30: pass\n")
    wrapper = subprocess.Popen([sys.executable, "-S", WRAPPER, "--", sys.executable, "-c", burn],
                               stdout=subprocess.DEVNULL, start_new_session=True)
    try:
        sampler = procs.Sampler()

        def busy() -> procs.Usage | None:
            sampler.sample()
            u = sampler.usage(wrapper.pid)
            return u if u.cpu > 50 and u.rss > 30 * 1024 * 1024 else None

        usage = wait_for(busy, what="a busy, 30 MB tree")
        assert usage.procs == 1 and not usage.stopped
        system = sampler.system()
        assert 0 <= system.cpu <= 100 and 0 < system.mem < 100
    finally:
        procs.terminate_trees([wrapper.pid], grace=1)
        wrapper.wait(5)


def test_table_tree_is_pure() -> None:
    t = procs.Table(at=0.0, procs={
        p: procs.Proc(p, pp, "S", 0.0, 0, float(p), "x")
        for p, pp in [(1, 0), (10, 1), (11, 10), (12, 10), (13, 11), (20, 1)]})
    assert t.tree(10) == [11, 12, 13]
    assert t.tree(10, include_root=True) == [10, 11, 12, 13]
    assert t.tree(99) == []
