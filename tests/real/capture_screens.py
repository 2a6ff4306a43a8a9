"""Capture the real screens of each installed agent CLI into ``tests/screens/real/``.

    python tests/real/capture_screens.py [--cli claude --cli codex ...] [--out DIR]

Each CLI runs offline against the fake model in its own tmux server at 120x40 and is taken
through the states squad must tell apart; each screen is saved plain and with ANSI escapes
(taken in one tmux call, so both show the same moment) as

    <cli>-<version>.<state>.<variant>.txt   and   <cli>-<version>.<state>.<variant>.ansi.txt

    idle.start        its prompt, right after start
    working.stream    an answer streaming in
    idle.answered     its prompt again after that answer
    working.think     the model silent (no bytes at all) while the CLI waits
    needs-input.tool  its permission question for a shell command
    idle.denied       its prompt after the user said no to a second question
    working.long      an answer so long that the prompt it answers has scrolled away
    idle.interrupted  its prompt after the user stopped that answer
    idle.unsent       a prompt pasted into its input box, Enter not pressed (box programs)

``tests/test_real_screens.py`` classifies every file with squad's pattern packs and expects
the state in its name, so a new CLI version's change of look shows up as a failing test:
capture its screens with this script, then fix the pack in ``squad/packs.toml``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.real.agents import (  # noqa: E402 - after the path is set up
    BY_NAME,
    CLIS,
    RealAgent,
    launch,
    quit_agent,
    real_agent_env,
    submit,
    wait_ready,
)
from tests.real.fakemodel import FakeModel  # noqa: E402
from tests.real.terminal import Terminal  # noqa: E402

OUT = ROOT / "tests" / "screens" / "real"


def save(term: Terminal, out: Path, stem: str, name: str) -> None:
    """Save the screen once it holds still for a moment: a capture can catch a program in
    the middle of redrawing (Aider's live markdown clears its lines, then draws them)."""
    plain, ansi = term.capture_both()
    for _ in range(20):
        time.sleep(0.05)
        again = term.capture_both()
        if again == (plain, ansi):
            break
        plain, ansi = again
    (out / f"{stem}.{name}.txt").write_text(plain)
    (out / f"{stem}.{name}.ansi.txt").write_text(ansi)
    print(f"  {stem}.{name}", flush=True)


def capture(agent: RealAgent, model: FakeModel, out: Path) -> None:
    """Take one CLI through its states, saving each screen."""
    cli = agent.cli
    version = cli.installed_version() or "unknown"
    stem = f"{cli.name}-{version}"
    term = Terminal(f"sqscreens-{cli.name}")
    term.kill()
    try:
        seconds = launch(agent, term)
        print(f"{cli.name} {version}: prompt after {seconds:.1f}s", flush=True)
        time.sleep(1.0)  # let start-up notices settle: the screen a user sees once it is up
        save(term, out, stem, "idle.start")

        submit(agent, term, "Tell a long story [fake: stream 10]")
        model.wait_prompt("Tell a long story", 30)
        term.wait(r"streaming 8/", 30, "the answer to stream in")
        save(term, out, stem, "working.stream")
        term.wait(r"stream done", 30)
        wait_ready(agent, term)
        time.sleep(1.0)
        save(term, out, stem, "idle.answered")

        submit(agent, term, "Think it over [fake: think 8]")
        model.wait_prompt("Think it over", 30)
        time.sleep(2.0)  # two seconds into the silence: spinners and timers are running
        save(term, out, stem, "working.think")
        term.wait(r"thought for 8s", 30)
        wait_ready(agent, term)

        submit(agent, term, "Make a file [fake: tool touch made-by-tool]")
        term.wait(cli.question, 30, "the permission question")
        time.sleep(0.5)
        save(term, out, stem, "needs-input.tool")
        for key in cli.approve:
            term.keys(key)
        wait_ready(agent, term, 30)

        submit(agent, term, "Make another file [fake: tool touch denied-by-user]")
        term.wait(cli.question, 30, "the second permission question")
        for key in cli.deny:
            term.keys(key)
        term.wait_gone(cli.question, 30, "the question")
        wait_ready(agent, term, 30)
        time.sleep(1.0)
        save(term, out, stem, "idle.denied")

        submit(agent, term, "Start a long answer [fake: stream 40]")
        model.wait_prompt("Start a long answer", 30)
        term.wait(r"streaming 100/", 60, "a long answer to fill the screen")
        save(term, out, stem, "working.long")
        for key in cli.interrupt:
            term.keys(key)
        wait_ready(agent, term, 30)
        time.sleep(1.0)
        save(term, out, stem, "idle.interrupted")

        if cli.name != "aider":  # a line prompt with text after it is not a prompt box
            term.paste("Fix the login bug\n[squad task #7 0123abcd]")
            term.wait(r"squad task #7|Pasted", 30, "the unsent prompt in the input box")
            time.sleep(0.5)
            save(term, out, stem, "idle.unsent")
    finally:
        left = quit_agent(agent, term)
        term.kill()
        if left:
            print(f"  warning: {cli.name} left processes {left}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cli", action="append", choices=CLIS,
                        help="capture only this CLI (repeatable); default: every installed one")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    # A fixed place, so the paths on the saved screens stay the same from run to run.
    root = Path(tempfile.gettempdir()) / "squad-real-screens"
    shutil.rmtree(root, ignore_errors=True)
    failed = 0
    with FakeModel() as model:
        for name in args.cli or CLIS:
            reason = BY_NAME[name].missing()
            if reason:
                print(f"skipping {reason}", file=sys.stderr)
                continue
            agent = real_agent_env(name, root, model.url)
            try:
                capture(agent, model, args.out)
            except AssertionError as e:
                failed += 1
                print(f"{name}: {e}", file=sys.stderr)
    shutil.rmtree(root, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
