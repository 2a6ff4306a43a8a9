"""A bundled stand-in for an LLM coding CLI, for the demo team and the test suite.

``python -m squad.demo_agent [--seed N] [--work S] [--name NAME] [--ask EVERY] [--mem MB]
[--fail-on WORD]`` prints a banner and the prompt ``demo> `` (no newline), reads one task per
line, and for each task:

- prints ``● Working on: <task>``, then progress lines ``  ⠋ step 2/5: editing app.py…``
  while it burns some CPU and holds ``--mem`` MB for ``--work`` seconds in all;
- before every ``--ask``-th task, and for any task containing "confirm", first asks
  ``? Apply changes to 3 files? [y/n] ``: ``y``/``yes`` goes on, ``n``/``no`` prints
  ``✖ Skipped`` and returns to the prompt;
- prints ``✔ Done: <result>`` and ``RESULT: <summary>``; a review request (the task mentions
  "review" or "verdict") ends with ``VERDICT: APPROVED``, or ``VERDICT: REJECTED: <reason>``
  when the task says "reject" (outside the words "VERDICT: APPROVED/REJECTED" themselves,
  which a review prompt may quote as instructions);
- with ``--fail-on WORD``, a task containing WORD crashes the agent: exit status 3.

An empty line re-prompts; ``exit``, ``quit`` or end of input exit 0. Ctrl-C interrupts the
current task (``^C interrupted``) and returns to the prompt. Output is flushed line by line
and is the same for the same seed and inputs. On a terminal it turns on bracketed paste, so
a multi-line paste (``squad send`` of a long prompt) is one task, not one task per line.

Standard library only and few imports: it starts in a few tens of milliseconds.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import signal
import sys
import time

PROMPT = "demo> "
QUESTION = "? Apply changes to 3 files? [y/n] "
SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
PASTE_START, PASTE_END = "\x1b[200~", "\x1b[201~"
FAIL_STATUS = 3

FILES = ("src/app.py", "src/auth.py", "src/api/routes.py", "src/models.py", "web/index.ts",
         "web/components/Login.tsx", "README.md", "tests/test_api.py", "src/db.py")
MIDDLE_STEPS = ("searching the codebase", "planning the change", "editing {file}",
                "writing tests for {file}", "running the linter", "reviewing the diff",
                "updating the docs")
VERBS = ("fixed", "implemented", "refactored", "updated", "cleaned up")
REASONS = ("missing tests for the error path", "the change breaks the public API",
           "needs a docstring and a changelog entry", "empty input is not handled",
           "the new function duplicates an existing helper")


class Quit(Exception):
    """Leave the agent with this exit status."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class Console:
    """Line-based terminal I/O that flushes every write and survives odd input."""

    def __init__(self) -> None:
        self.out = sys.stdout
        self.inp = sys.stdin.buffer
        self.at_line_start = True
        self.tty = os.isatty(0) and os.isatty(1)
        self.echo = not os.isatty(0)  # show input like a terminal would (pipes, tests)
        self._saved_tty: list | None = None

    def setup(self) -> None:
        if isinstance(self.out, io.TextIOWrapper):
            self.out.reconfigure(encoding="utf-8", errors="replace")
        if not self.tty:
            return
        # Bracketed paste makes a multi-line paste one task. Without ECHOCTL the terminal
        # does not show the paste markers (or ^C) as caret text.
        import termios

        try:
            attrs = termios.tcgetattr(0)
            self._saved_tty = [*attrs[:6], list(attrs[6])]
            attrs[3] &= ~termios.ECHOCTL
            termios.tcsetattr(0, termios.TCSANOW, attrs)
        except termios.error:
            self._saved_tty = None
        self.write("\x1b[?2004h")

    def restore(self) -> None:
        if not self.tty:
            return
        try:
            self.write("\x1b[?2004l")
        except OSError:
            pass
        if self._saved_tty is not None:
            import termios

            try:
                termios.tcsetattr(0, termios.TCSANOW, self._saved_tty)
            except termios.error:
                pass

    def write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()
        if text:
            self.at_line_start = text.endswith("\n")

    def say(self, text: str = "") -> None:
        self.write(text + "\n")

    def new_line(self) -> None:
        if not self.at_line_start:
            self.write("\n")

    def read_line(self) -> str | None:
        """One line of input (a whole bracketed paste counts as one), None at end of input."""
        raw = self.inp.readline()
        if not raw:
            return None
        self.at_line_start = True  # the terminal echoed the Enter
        text = raw.decode("utf-8", "replace")
        if PASTE_START in text:
            while PASTE_END not in text:
                more = self.inp.readline()
                if not more:
                    break
                text += more.decode("utf-8", "replace")
            text = text.replace(PASTE_START, "").replace(PASTE_END, "")
        text = text.replace("\r", "").strip("\n")
        if self.echo:
            self.write(text + "\n")
        return text


class DemoAgent:
    """The agent's behaviour: tasks in, plausible progress and results out."""

    def __init__(self, args: argparse.Namespace, con: Console) -> None:
        self.seed = args.seed
        self.work_seconds = max(0.0, args.work)
        self.name = args.name
        self.ask_every = max(0, args.ask)
        self.mem_mb = max(0, args.mem)
        self.fail_on = args.fail_on
        self.con = con
        self.tasks = 0
        self.in_task = False  # between "Working on" and the next prompt

    def banner(self) -> None:
        self.con.say(f'◆ demo agent "{self.name}" · seed {self.seed}')
        self.con.say('  A stand-in for an LLM coding CLI. Type a task and press Enter; '
                     '"exit" quits.')
        self.con.say()

    def round(self) -> None:
        """Prompt, read one line, act on it."""
        self.con.write(PROMPT)
        line = self.con.read_line()
        if line is None:
            self.con.new_line()
            raise Quit(0)
        task = line.strip()
        if not task:
            return
        if task.lower() in ("exit", "quit", "/exit", "/quit"):
            self.con.say("Bye.")
            raise Quit(0)
        self.work(task)
        self.in_task = False  # (left True when Ctrl-C cuts the task short)

    def interrupted(self) -> None:
        """Ctrl-C: drop the current task (or the half-typed line) and prompt again."""
        if not self.in_task:
            self.con.say("^C")
            return
        self.in_task = False
        self.con.new_line()
        self.con.say("^C interrupted")
        self.con.say()

    def work(self, task: str) -> None:
        self.tasks += 1
        rng = random.Random(f"{self.seed}:{task}")
        one_line = clip(" ".join(task.split()), 200)
        self.in_task = True
        self.con.say(f"● Working on: {one_line}")
        memory = None
        try:
            memory = self.hold_memory()
            if (self.ask_every and self.tasks % self.ask_every == 0) or "confirm" in task.lower():
                if not self.confirm():
                    self.con.say("✖ Skipped")
                    self.con.say()
                    return
            file = rng.choice(FILES)
            middle = rng.sample(MIDDLE_STEPS, rng.randint(1, 4))
            steps = ["reading files", *(s.format(file=file) for s in middle), "running tests"]
            per_step = self.work_seconds / len(steps)
            for i, step in enumerate(steps, 1):
                self.con.say(f"  {SPINNER[(i - 1) % len(SPINNER)]} step {i}/{len(steps)}: "
                             f"{step}…")
                if self.fail_on and self.fail_on in task:
                    self.con.out.flush()
                    sys.stderr.write(f"demo agent: crashed while working on {one_line!r} "
                                     f"(--fail-on {self.fail_on})\n")
                    sys.stderr.flush()
                    raise Quit(FAIL_STATUS)
                spend(per_step, busy_fraction=rng.uniform(0.2, 0.4))
            changed, passed = rng.randint(1, 5), rng.randint(3, 40)
            files = f"{changed} file{'s' if changed > 1 else ''} changed"
            self.con.say(f"✔ Done: {rng.choice(VERBS)} {file} ({files}, {passed} tests passed)")
            self.con.say(f"RESULT: {clip(one_line, 60)} — {files}, {passed} tests pass")
            verdict = review_verdict(task, rng)
            if verdict:
                self.con.say(verdict)
            self.con.say()
        finally:
            del memory

    def confirm(self) -> bool:
        while True:
            self.con.write(QUESTION)
            answer = self.con.read_line()
            if answer is None:
                self.con.new_line()
                raise Quit(0)
            answer = answer.strip().lower()
            if answer in ("y", "yes"):
                return True
            if answer in ("n", "no"):
                return False
            self.con.say("  Please answer y or n.")

    def hold_memory(self) -> bytearray | None:
        """``--mem`` MB, every page written so it is resident, not just reserved."""
        if not self.mem_mb:
            return None
        block = bytearray(self.mem_mb << 20)
        block[::4096] = b"\x01" * len(range(0, len(block), 4096))
        return block


def review_verdict(task: str, rng: random.Random) -> str | None:
    """The VERDICT line for a review request, None for other tasks."""
    words = " ".join(task.lower().split())
    if "review" not in words and "verdict" not in words:
        return None
    for quoted in ("verdict: approved", "verdict: rejected", "verdict:approved",
                   "verdict:rejected", "a reviewer rejected"):
        words = words.replace(quoted, "")
    if "reject" in words:
        return f"VERDICT: REJECTED: {rng.choice(REASONS)}"
    return "VERDICT: APPROVED"


def clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def spend(seconds: float, busy_fraction: float) -> None:
    """Take ``seconds``, burning the CPU for ``busy_fraction`` of them."""
    start = time.monotonic()
    burn_until = start + seconds * busy_fraction
    x = 0
    while time.monotonic() < burn_until:
        for _ in range(2000):
            x += 1
    rest = start + seconds - time.monotonic()
    if rest > 0:
        time.sleep(rest)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m squad.demo_agent",
                                description="A stand-in for an LLM coding CLI.")
    p.add_argument("--seed", type=int, default=0, help="makes the output deterministic")
    p.add_argument("--work", type=float, default=4.0, metavar="SECONDS",
                   help="how long each task works (default 4)")
    p.add_argument("--name", default=os.environ.get("SQUAD_AGENT") or "demo",
                   help="shown in the banner")
    p.add_argument("--ask", type=int, default=3, metavar="EVERY",
                   help="ask a y/n question before every EVERY-th task (0: never)")
    p.add_argument("--mem", type=int, default=20, metavar="MB",
                   help="memory held while working (default 20)")
    p.add_argument("--fail-on", metavar="WORD",
                   help=f"a task containing WORD makes the agent exit with status {FAIL_STATUS}")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started ignoring it
    con = Console()
    agent = DemoAgent(args, con)
    try:
        con.setup()
        agent.banner()
        while True:
            try:
                agent.round()
            except KeyboardInterrupt:
                try:
                    agent.interrupted()
                except KeyboardInterrupt:
                    pass
    except Quit as q:
        return q.code
    except (BrokenPipeError, ConnectionResetError):
        # Nobody reads our output any more: leave quietly, without the interpreter's
        # "Exception ignored" complaint when it flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        return 130
    finally:
        try:
            con.restore()
        except (OSError, ValueError):
            pass


if __name__ == "__main__":
    sys.exit(main())
