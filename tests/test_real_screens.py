"""The real agent CLIs' screens, captured by ``tests/real/capture_screens.py`` into
``tests/screens/real/``, read the way squad reads them: each file's name says the status
squad's pattern pack must give it. The screens are files, so this runs without the CLIs.

A new CLI version that changes its look fails here once its screens are captured: fix its
pack in ``squad/packs.toml``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from squad.status import (
    Evidence,
    Status,
    bottom_lines,
    classify,
    matches,
    pack_name_for,
    patterns_for,
)

SCREENS = Path(__file__).resolve().parent / "screens" / "real"
NAME = re.compile(r"^(?P<cli>[a-z]+)-(?P<version>\d+(?:\.\d+)+)\.(?P<state>idle|working|"
                  r"needs-input)\.(?P<variant>[\w-]+)(?P<ansi>\.ansi)?\.txt$")
CLIS = ("claude", "codex", "gemini", "aider")


def screens() -> list[tuple[str, str, str]]:
    """(file name, CLI, expected status) for every captured screen."""
    found = []
    for path in sorted(SCREENS.glob("*.txt")):
        m = NAME.match(path.name)
        assert m, f"{path.name}: not named <cli>-<version>.<state>.<variant>[.ansi].txt"
        found.append((path.name, m["cli"], m["state"]))
    return found


def evidence(screen: str) -> Evidence:
    """A long-running agent whose screen changed half a second ago, CPU quiet."""
    return Evidence(now=100.0, started_at=0.0, screen=screen, changed_at=99.5)


def test_every_cli_has_every_state_captured_plain_and_with_ansi():
    names = {name for name, _, _ in screens()}
    seen = {(cli, state) for _, cli, state in screens()}
    for cli in CLIS:
        for state in ("idle", "working", "needs-input"):
            assert (cli, state) in seen, f"no real {cli} screen that is {state}"
    for name in names:
        twin = name.replace(".ansi.txt", ".txt") if name.endswith(".ansi.txt") \
            else name[:-4] + ".ansi.txt"
        assert twin in names, f"{name} has no {twin}"


def test_plain_commands_pick_the_cli_packs():
    for cli in CLIS:
        assert pack_name_for(cli) == cli


@pytest.mark.parametrize(("name", "cli", "expected"), screens(), ids=[s[0] for s in screens()])
def test_real_screen(name: str, cli: str, expected: str):
    text = (SCREENS / name).read_text()
    got = classify(evidence(text), patterns_for(cli))
    assert got == expected, f"{name} reads as {got}, expected {expected}"


@pytest.mark.parametrize(("name", "cli"), [(n, c) for n, c, s in screens() if s == "needs-input"],
                         ids=[n for n, _, s in screens() if s == "needs-input"])
def test_an_open_question_is_never_idle_even_when_quiet(name: str, cli: str):
    """A question waits for a person as long as it takes: minutes of silence change nothing."""
    text = (SCREENS / name).read_text()
    quiet = Evidence(now=10_000.0, started_at=0.0, screen=text, changed_at=0.0)
    assert classify(quiet, patterns_for(cli)) == Status.NEEDS_INPUT


def _box_is_empty(name: str, cli: str) -> bool:
    pats = patterns_for(cli)
    region = bottom_lines((SCREENS / name).read_text(), pats.ready_lines)
    return matches(pats.empty, region)


BOXED = [(n, c) for n, c, s in screens() if s == "idle" and patterns_for(c).empty]


@pytest.mark.parametrize(("name", "cli"), BOXED, ids=[n for n, _ in BOXED])
def test_the_empty_input_box_is_recognised(name: str, cli: str):
    """How delivery tells a submitted prompt (the box emptied) from one still sitting in the
    box: the pack's ``empty`` patterns, for programs that draw an input box."""
    assert _box_is_empty(name, cli) == (".unsent." not in name)
