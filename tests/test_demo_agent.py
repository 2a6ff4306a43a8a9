"""The demo agent as a real process on pipes (no tmux): prompt, tasks, questions, crashes,
Ctrl-C, determinism, and its real output read by the status classifier."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from squad.status import Evidence, Status, classify, patterns_for
from tests.conftest import ROOT, wait_for

PROMPT = "demo> "
QUESTION = "? Apply changes to 3 files? [y/n] "
ARGV = [sys.executable, "-m", "squad.demo_agent"]


class Demo:
    """A running demo agent: what it printed so far, and a way to type into it."""

    def __init__(self, *args: str, work: float = 0.3, mem: int = 2) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="0")
        env.pop("SQUAD_AGENT", None)
        self.proc = subprocess.Popen(
            [*ARGV, "--work", str(work), "--mem", str(mem), *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
            cwd=ROOT,
        )
        self._out = bytearray()
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while chunk := os.read(fd, 65536):
            with self._lock:
                self._out += chunk

    @property
    def text(self) -> str:
        with self._lock:
            return self._out.decode("utf-8", "replace")

    def wait_until(self, check: Callable[[str], bool], what: str, timeout: float = 10.0) -> str:
        """Wait until the output so far passes ``check``; return that very output."""

        def probe() -> str | None:
            text = self.text
            return text if check(text) else None

        return wait_for(probe, timeout, f"{what}; output so far:\n{self.text}")

    def wait_prompt(self, count: int = 1) -> str:
        """Wait until the output ends with the prompt, shown ``count`` times in all."""
        return self.wait_until(lambda t: t.endswith(PROMPT) and t.count(PROMPT) >= count,
                               f"prompt #{count}")

    def type(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def close_input(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()

    def exit_code(self, timeout: float = 10.0) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(5)
        return code

    @property
    def stderr(self) -> str:
        assert self.proc.stderr is not None
        return self.proc.stderr.read().decode("utf-8", "replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if f is not None:
                try:
                    f.close()
                except OSError:
                    pass


@pytest.fixture
def demo() -> Iterator[Callable[..., Demo]]:
    started: list[Demo] = []

    def start(*args: str, **kw: float) -> Demo:
        d = Demo(*args, **kw)
        started.append(d)
        return d

    yield start
    for d in started:
        d.stop()


def run_session(*args: str, lines: list[str]) -> tuple[int, str]:
    """Feed all lines at once and read everything the agent prints until it exits."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("SQUAD_AGENT", None)
    proc = subprocess.run([*ARGV, "--work", "0.05", "--mem", "1", *args], cwd=ROOT, env=env,
                          input="".join(line + "\n" for line in lines).encode(),
                          capture_output=True, timeout=30, check=False)
    assert b"Traceback" not in proc.stderr
    return proc.returncode, proc.stdout.decode()


def after(text: str, marker: str) -> list[str]:
    """The lines printed after the last occurrence of ``marker``."""
    return text[text.rindex(marker) + len(marker):].split("\n")


# -- the conversation -------------------------------------------------------------------


def test_banner_then_prompt_without_newline(demo):
    d = demo("--name", "dev", "--seed", "7")
    text = d.wait_prompt()
    assert text.startswith('◆ demo agent "dev" · seed 7\n')
    assert text.endswith("\n" + PROMPT)


def test_a_task_works_reports_and_prompts_again(demo):
    d = demo("--ask", "0")
    d.wait_prompt()
    d.type("fix the login bug")
    text = d.wait_prompt(2)
    lines = after(text, PROMPT + "fix the login bug\n")
    assert lines[0] == "● Working on: fix the login bug"
    steps = [line for line in lines if " step " in line]
    total = len(steps)
    assert 3 <= total <= 6
    for i, line in enumerate(steps, 1):
        assert line.startswith("  ") and f" step {i}/{total}: " in line and line.endswith("…")
    done = next(line for line in lines if line.startswith("✔ Done: "))
    result = next(line for line in lines if line.startswith("RESULT: "))
    assert lines.index(done) < lines.index(result)
    assert "fix the login bug" in result
    assert not any(line.startswith("VERDICT") for line in lines)
    assert lines[-1] == PROMPT


def test_empty_line_reprompts_and_exit_quits(demo):
    d = demo()
    d.wait_prompt()
    d.type("")
    d.wait_prompt(2)
    assert "Working" not in d.text
    d.type("exit")
    assert d.exit_code() == 0


def test_question_answered_yes_does_the_work(demo):
    d = demo("--ask", "2")
    d.wait_prompt()
    d.type("first task")
    d.wait_prompt(2)
    assert QUESTION not in d.text
    d.type("second task")
    d.wait_until(lambda t: t.endswith(QUESTION), "the question")
    d.type("maybe")
    d.wait_until(lambda t: t.count(QUESTION) == 2 and t.endswith(QUESTION), "asked again")
    assert "Please answer y or n." in d.text
    d.type("yes")
    text = d.wait_prompt(3)
    assert "RESULT: second task" in text


def test_question_answered_no_skips(demo):
    d = demo("--ask", "0")
    d.wait_prompt()
    d.type("please confirm the migration")
    d.wait_until(lambda t: t.endswith(QUESTION), "the question")
    d.type("n")
    text = d.wait_prompt(2)
    lines = after(text, QUESTION + "n\n")
    assert lines[0] == "✖ Skipped"
    assert "RESULT" not in text and " step " not in text


def test_fail_on_word_exits_with_status_3(demo):
    d = demo("--fail-on", "boom")
    d.wait_prompt()
    d.type("make it go boom")
    assert d.exit_code() == 3
    assert "● Working on: make it go boom" in d.text
    err = d.stderr
    assert "boom" in err and "Traceback" not in err


def test_end_of_input_exits_0(demo):
    d = demo()
    d.wait_prompt()
    d.close_input()
    assert d.exit_code() == 0
    assert "Traceback" not in d.stderr


def test_end_of_input_during_the_question_exits_0_quietly(demo):
    d = demo("--ask", "1")
    d.wait_prompt()
    d.type("do it")
    d.wait_until(lambda t: t.endswith(QUESTION), "the question")
    d.close_input()
    assert d.exit_code() == 0
    assert d.stderr == ""


def test_ctrl_c_interrupts_the_task_and_returns_to_the_prompt(demo):
    d = demo("--ask", "0", work=20.0)
    d.wait_prompt()
    d.type("a long refactoring")
    d.wait_until(lambda t: " step 1/" in t, "the first step")
    d.proc.send_signal(signal.SIGINT)
    text = d.wait_prompt(2)
    assert "^C interrupted\n" in text and "RESULT" not in text
    assert d.proc.poll() is None
    d.proc.send_signal(signal.SIGINT)  # at the prompt: a fresh prompt, nothing else
    d.wait_until(lambda t: t.endswith("^C\n" + PROMPT), "a fresh prompt")
    d.type("exit")
    assert d.exit_code() == 0
    assert "Traceback" not in d.stderr


def test_a_reader_that_went_away_is_no_crash():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([*ARGV, "--work", "0.05", "--mem", "1"], cwd=ROOT, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdin is not None
    proc.stdout.read1(100)  # the banner is out: the agent runs
    proc.stdout.close()
    try:
        proc.stdin.write(b"task one\ntask two\n")
        proc.stdin.close()
    except BrokenPipeError:
        pass
    proc.wait(10)
    assert proc.stderr is not None
    err = proc.stderr.read()
    proc.stderr.close()
    assert b"Traceback" not in err and b"Exception ignored" not in err


def test_memory_is_held_while_working(demo):
    status = Path("/proc/self/status")
    if not status.exists():
        pytest.skip("needs /proc")

    def rss_mb(pid: int) -> float:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    d = demo("--ask", "0", work=30.0, mem=64)
    d.wait_prompt()
    before = rss_mb(d.proc.pid)
    d.type("allocate")
    d.wait_until(lambda t: " step 1/" in t, "the first step")
    wait_for(lambda: rss_mb(d.proc.pid) - before > 60, 10, "64 MB to become resident")


def test_review_requests_end_with_a_verdict():
    code, out = run_session("--ask", "0", lines=[
        "please review the change",
        "review it and reject it",
        "Review task #12. Reply with VERDICT: APPROVED or VERDICT: REJECTED: <reason>",
    ])
    assert code == 0
    verdicts = [line for line in out.split("\n") if line.startswith("VERDICT:")]
    assert verdicts[0] == "VERDICT: APPROVED"
    assert verdicts[1].startswith("VERDICT: REJECTED: ") and len(verdicts[1]) > 20
    assert verdicts[2] == "VERDICT: APPROVED"
    assert len(verdicts) == 3


def test_same_seed_same_output():
    lines = ["fix the login bug", "add a /health endpoint", "y", "write docs", "confirm it",
             "n", "review please"]
    first = run_session("--seed", "42", "--ask", "2", lines=lines)
    second = run_session("--seed", "42", "--ask", "2", lines=lines)
    other = run_session("--seed", "43", "--ask", "2", lines=lines)
    assert first == second
    assert first[0] == 0 and first[1].count("RESULT: ") == 4  # "confirm it" was skipped
    assert other[1] != first[1]


def test_imports_only_the_standard_library():
    code = ("import sys, squad.demo_agent; "
            "print(sorted(m for m in sys.modules if m.startswith('squad')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert out.stdout.strip() == "['squad', 'squad.demo_agent']"


# -- its real output, read by the classifier --------------------------------------------


def test_classifier_reads_the_real_demo_output(demo):
    pats = patterns_for([*ARGV, "--work", "2"])
    assert pats.name == "demo"

    def status(text: str) -> Status:
        return classify(Evidence(now=100.0, started_at=0.0, screen=text, changed_at=99.9),
                        pats)

    d = demo("--ask", "2", work=1.5)
    assert status(d.wait_prompt()) == Status.IDLE
    d.type("first task")
    assert status(d.wait_until(lambda t: " step 1/" in t, "working")) == Status.WORKING
    assert status(d.wait_prompt(2)) == Status.IDLE
    d.type("second task")
    asking = d.wait_until(lambda t: t.endswith(QUESTION), "the question")
    assert status(asking) == Status.NEEDS_INPUT
    d.type("y")
    assert status(d.wait_until(lambda t: t.endswith("…\n"), "a step")) == Status.WORKING
    assert status(d.wait_prompt(3)) == Status.IDLE
