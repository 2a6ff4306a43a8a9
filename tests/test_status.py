"""Status classification on plain data: recorded screens, precedence, layout patterns,
stalls, the debounced tracker, and which pack fits which command. No tmux, no processes."""

from __future__ import annotations

import re
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from squad.status import (
    STARTING_FOR,
    Evidence,
    Patterns,
    Status,
    StatusTracker,
    bottom_lines,
    classify,
    load_packs,
    pack_name_for,
    patterns_for,
)

SCREENS = Path(__file__).resolve().parent / "screens"
DEMO = ["python", "-m", "squad.demo_agent"]


def screen(name: str) -> str:
    return (SCREENS / name).read_text()


def ev(text: str = "", *, now: float = 100.0, started_at: float = 0.0,
       changed_at: float | None = None, **kw: object) -> Evidence:
    """Evidence of a long-running agent whose screen changed half a second ago."""
    return Evidence(now=now, started_at=started_at, screen=text,
                    changed_at=now - 0.5 if changed_at is None else changed_at, **kw)


def pack(name: str) -> Patterns:
    return load_packs()[name].patterns()


# -- recorded screens -------------------------------------------------------------------


def recorded() -> list[tuple[str, str, str]]:
    """(file, pack, expected status) from names like ``claude.needs-input.bash.txt``."""
    cases = []
    for path in sorted(SCREENS.glob("*.txt")):
        pack_name, expected = path.name.split(".")[:2]
        cases.append((path.name, pack_name, expected))
    return cases


def test_recorded_screens_cover_every_pack_and_status():
    seen = {(p, s) for _, p, s in recorded()}
    for name in ("claude", "codex", "aider", "gemini", "demo"):
        for status in ("idle", "working", "needs-input"):
            assert (name, status) in seen, f"no recorded {name} screen that is {status}"
    assert ("shell", "idle") in seen and ("generic", "idle") in seen
    assert ("server", "idle") in seen


def test_a_quiet_server_stays_idle():
    text = screen("server.idle.http.txt")
    pats = patterns_for(["python3", "-m", "http.server", "3000"])
    assert classify(ev(text, now=10_000, changed_at=0), pats) == Status.IDLE
    scrolled = text + "".join(f'127.0.0.1 - - [x] "GET /a{i} HTTP/1.1" 200 -\n'
                              for i in range(60))
    assert classify(ev(scrolled, now=10_000, changed_at=0), pats) == Status.IDLE


@pytest.mark.parametrize(("name", "pack_name", "expected"), recorded(),
                         ids=[c[0] for c in recorded()])
def test_recorded_screen(name: str, pack_name: str, expected: str):
    text = screen(name)
    pats = pack(pack_name)
    assert classify(ev(text), pats) == expected
    # tmux may or may not keep trailing spaces ("demo> " vs "demo>"): both read the same.
    stripped = "\n".join(line.rstrip() for line in text.split("\n"))
    assert classify(ev(stripped), pats) == expected
    # Blank rows under the output (a tall pane) change nothing.
    assert classify(ev(text + "\n" * 30), pats) == expected


def test_markup_like_text_is_plain_text():
    text = screen("generic.idle.markup.txt")
    assert "[/]" in text and "[bold]" in text
    assert classify(ev(text), pack("generic")) == Status.IDLE
    assert bottom_lines(text, 3)[0].startswith("[bold]markup-looking[/]")


def test_screens_are_matched_through_ansi_escapes():
    colored = "\x1b[1m◆ demo agent\x1b[0m\n\x1b[32mdemo> \x1b[0m\n"
    assert bottom_lines(colored, 1) == ["demo>"]
    assert classify(ev(colored), patterns_for(DEMO)) == Status.IDLE


def test_old_demo_progress_above_the_prompt_does_not_count_as_busy():
    text = screen("demo.idle.txt")
    assert "step 4/4" in text
    assert classify(ev(text), patterns_for(DEMO)) == Status.IDLE


def test_an_answered_question_no_longer_needs_input():
    answered = screen("demo.needs-input.txt").rstrip() + " y\n  ⠋ step 1/3: reading files…\n"
    assert classify(ev(answered), patterns_for(DEMO)) == Status.WORKING
    answered_generic = "Overwrite existing config? [y/N] y\nwriting config.toml\n"
    assert classify(ev(answered_generic), pack("generic")) == Status.WORKING


def test_demo_task_typed_ahead_is_working():
    # A task typed while the previous one worked was echoed back then, not after the prompt.
    assert classify(ev("demo> ● Working on: next task\n"), patterns_for(DEMO)) == \
        Status.WORKING


def test_claude_prompt_in_the_transcript_is_not_idle_while_the_spinner_runs():
    text = screen("claude.working.spinner.txt")
    assert classify(ev(text), pack("claude")) == Status.WORKING
    done = text.replace("✻ Cogitating… (12s · ↑ 1.2k tokens · esc to interrupt)",
                        "● Fixed it.")
    assert classify(ev(done), pack("claude")) == Status.IDLE


# -- precedence -------------------------------------------------------------------------


def test_dead_beats_everything():
    asking = screen("demo.needs-input.txt")
    assert classify(ev(asking, dead=True, exit_code=3, stopped=True, cpu=90.0),
                    patterns_for(DEMO)) == Status.EXITED
    assert classify(ev("", dead=True, now=1.0), pack("generic")) == Status.EXITED


def test_stopped_beats_patterns():
    for name in ("demo.needs-input.txt", "demo.working.txt", "demo.idle.txt"):
        assert classify(ev(screen(name), stopped=True), patterns_for(DEMO)) == Status.PAUSED


def test_input_beats_busy_and_busy_beats_ready():
    pats = Patterns("t", ready=(re.compile(r"^> ?$", re.M),), busy=(re.compile("BUSY"),),
                    input=(re.compile(r"\?\s*$", re.M),), tail_lines=3)
    assert classify(ev("BUSY\nproceed?\n"), pats) == Status.NEEDS_INPUT
    # A line prompt on the last line is idle whatever older output above it says...
    assert classify(ev("BUSY\n>\n"), pats) == Status.IDLE
    # ...but a program whose prompt box is always drawn says it works above the box.
    boxed = replace(pats, ready_lines=2)
    assert classify(ev("BUSY\n>\n"), boxed) == Status.WORKING
    assert classify(ev("done\n> \n"), pats) == Status.IDLE


def test_ready_prompt_must_be_the_last_line_for_line_prompt_packs():
    shell = pack("shell")
    assert classify(ev("dev@box:~$ \n"), shell) == Status.IDLE
    assert classify(ev("dev@box:~$ make\ncc -o app app.c\n"), shell) == Status.WORKING
    assert classify(ev("demo> \n"), patterns_for(DEMO)) == Status.IDLE
    assert classify(ev("demo> \nsomething after the prompt\n"), patterns_for(DEMO)) == \
        Status.WORKING


def test_busy_and_input_are_searched_only_in_the_tail():
    pats = Patterns("t", ready=(re.compile(r"^done$", re.M),), busy=(re.compile("spinning"),),
                    input=(re.compile(r"\?$", re.M),), tail_lines=2)
    assert classify(ev("spinning\nok?\nline\ndone\n"), pats) == Status.IDLE
    assert classify(ev("line\nspinning\ndone\n"), pats) == Status.IDLE  # prompt is last
    assert classify(ev("line\nspinning\ndone\n"), replace(pats, ready_lines=2)) == (
        Status.WORKING)
    assert classify(ev("ok?\ndone\n"), pats) == Status.IDLE  # a question above the prompt
    assert classify(ev("ok?\ndone\n"), replace(pats, ready_lines=2)) == Status.NEEDS_INPUT


# -- layout patterns --------------------------------------------------------------------


def test_layout_patterns_come_first_and_are_added_to_the_pack():
    pats = patterns_for(DEMO, ready_pattern=r"^ok>\s*$", busy_pattern="crunching",
                        input_pattern="Pick one:")
    assert pats.name == "demo"
    assert pats.ready[0].pattern == r"^ok>\s*$"
    assert pats.busy[0].pattern == "crunching"
    assert pats.input[0].pattern == "Pick one:"
    assert len(pats.ready) == len(load_packs()["demo"].ready) + 1
    assert classify(ev("ok> \n"), pats) == Status.IDLE
    assert classify(ev("demo> \n"), pats) == Status.IDLE  # the pack still applies


def test_layout_patterns_decide_for_an_unknown_program():
    argv = ["./my-agent", "--fast"]
    plain = patterns_for(argv)
    assert plain.name == "generic"
    assert classify(ev("my-agent ready, awaiting orders\n"), plain) == Status.WORKING
    mine = patterns_for(argv, ready_pattern="awaiting orders$", busy_pattern=r"^\[\d+%\]",
                        input_pattern="Choose wisely")
    assert classify(ev("my-agent ready, awaiting orders\n"), mine) == Status.IDLE
    assert classify(ev("[42%] compiling\n"), mine) == Status.WORKING
    assert classify(ev("Choose wisely\n1) red\n2) blue\n"), mine) == Status.NEEDS_INPUT


def test_layout_pattern_with_or_without_a_trailing_space_matches_a_prompt():
    for pattern in (r"^agent> $", r"^agent>$", r"^agent> ?$"):
        pats = patterns_for(["my-agent"], ready_pattern=pattern)
        assert classify(ev("hello\nagent> \n"), pats) == Status.IDLE, pattern
        assert classify(ev("hello\nagent>\n"), pats) == Status.IDLE, pattern


def test_layout_input_pattern_wins_over_a_pack_ready_prompt():
    idle = screen("claude.idle.box.txt")
    assert classify(ev(idle), patterns_for(["claude"])) == Status.IDLE
    pats = patterns_for(["claude"], input_pattern=r"for shortcuts")
    assert classify(ev(idle), pats) == Status.NEEDS_INPUT


def test_invalid_layout_pattern_is_a_clear_error():
    with pytest.raises(ValueError, match=r"invalid ready pattern '\(unclosed'"):
        patterns_for(DEMO, ready_pattern="(unclosed")


# -- activity, starting, stalled --------------------------------------------------------


def test_starting_until_a_pattern_shows_up():
    generic = pack("generic")
    assert classify(ev("", now=1.0, changed_at=1.0), generic) == Status.STARTING
    assert classify(ev("loading plugins...\n", now=2.0, changed_at=1.9), generic) == \
        Status.STARTING
    assert classify(ev("demo> \n", now=0.2, changed_at=0.2), patterns_for(DEMO)) == \
        Status.IDLE
    later = STARTING_FOR + 1
    assert classify(ev("loading plugins...\n", now=later, changed_at=later - 0.1),
                    generic) == Status.WORKING


def test_silence_without_a_prompt_is_working_then_stalled():
    generic = pack("generic")
    text = "thinking about it\n"
    assert classify(ev(text, now=100, changed_at=0.0), generic, stall_after=120) == \
        Status.WORKING
    assert classify(ev(text, now=130, changed_at=0.0), generic, stall_after=120) == \
        Status.STALLED


def test_frozen_busy_spinner_is_stalled_after_stall_after():
    text = screen("demo.working.txt")
    pats = patterns_for(DEMO)
    assert classify(ev(text, now=200, changed_at=90), pats, stall_after=120) == Status.WORKING
    assert classify(ev(text, now=200, changed_at=79), pats, stall_after=120) == Status.STALLED
    assert classify(ev(text, now=10, changed_at=4), pats, stall_after=5) == Status.STALLED


def test_cpu_activity_is_not_stalled():
    text = screen("demo.working.txt")
    assert classify(ev(text, now=500, changed_at=0, cpu=80.0), patterns_for(DEMO)) == \
        Status.WORKING
    assert classify(ev("crunching numbers\n", now=500, changed_at=0, cpu=80.0),
                    pack("generic")) == Status.WORKING


def test_idle_and_needs_input_never_stall():
    assert classify(ev(screen("demo.idle.txt"), now=10_000, changed_at=0),
                    patterns_for(DEMO)) == Status.IDLE
    assert classify(ev(screen("demo.needs-input.txt"), now=10_000, changed_at=0),
                    patterns_for(DEMO)) == Status.NEEDS_INPUT


# -- the debounced tracker --------------------------------------------------------------


def obs(kind: str, t: float, **kw: object) -> Evidence:
    screens = {"idle": "demo> \n", "working": "● Working on: x\n",
               "input": "? Apply changes to 3 files? [y/n] \n"}
    return Evidence(now=t, started_at=0.0, screen=screens[kind], changed_at=t, **kw)


def test_tracker_reports_the_first_observation_at_once():
    tr = StatusTracker(patterns_for(DEMO))
    assert tr.update(obs("working", 10.0)) == Status.WORKING
    assert tr.since == 10.0


def test_tracker_ignores_a_one_observation_flicker():
    tr = StatusTracker(patterns_for(DEMO), debounce=1.0)
    tr.update(obs("working", 10.0))
    assert tr.update(obs("idle", 10.5)) == Status.WORKING
    assert tr.raw == Status.IDLE
    assert tr.update(obs("working", 11.0)) == Status.WORKING
    assert tr.update(obs("idle", 11.5)) == Status.WORKING  # a new, separate candidate
    assert tr.update(obs("working", 12.0)) == Status.WORKING
    assert tr.since == 10.0


def test_tracker_follows_a_steady_change_after_debounce():
    tr = StatusTracker(patterns_for(DEMO), debounce=1.0)
    tr.update(obs("working", 10.0))
    assert tr.update(obs("idle", 10.5)) == Status.WORKING
    assert tr.update(obs("idle", 11.0)) == Status.WORKING  # seen twice, but for 0.5 s
    assert tr.update(obs("idle", 11.5)) == Status.IDLE  # seen for 1.0 s
    assert tr.since == 10.5  # when the change was first seen


def test_tracker_needs_two_observations_even_when_far_apart():
    tr = StatusTracker(patterns_for(DEMO), debounce=1.0)
    tr.update(obs("idle", 10.0))
    assert tr.update(obs("input", 50.0)) == Status.IDLE
    assert tr.update(obs("input", 51.0)) == Status.NEEDS_INPUT


def test_tracker_applies_exited_and_paused_at_once_and_leaves_them_at_once():
    tr = StatusTracker(patterns_for(DEMO), debounce=1.0)
    tr.update(obs("working", 10.0))
    assert tr.update(obs("working", 10.1, stopped=True)) == Status.PAUSED
    assert tr.since == 10.1
    assert tr.update(obs("working", 20.0)) == Status.WORKING  # resumed
    assert tr.update(obs("idle", 20.1, dead=True, exit_code=3)) == Status.EXITED
    assert tr.since == 20.1


def test_tracker_with_zero_debounce_follows_every_observation():
    tr = StatusTracker(patterns_for(DEMO), debounce=0)
    tr.update(obs("working", 1.0))
    assert tr.update(obs("idle", 1.1)) == Status.IDLE


def test_tracker_reports_stalled_after_stall_after_of_silence():
    tr = StatusTracker(patterns_for(DEMO), stall_after=5.0, debounce=1.0)
    frozen = "● Working on: x\n"
    for t in (10.0, 12.0, 14.0):
        assert tr.update(Evidence(now=t, started_at=0, screen=frozen, changed_at=10.0)) == \
            Status.WORKING
    tr.update(Evidence(now=15.5, started_at=0, screen=frozen, changed_at=10.0))
    assert tr.update(Evidence(now=16.5, started_at=0, screen=frozen, changed_at=10.0)) == \
        Status.STALLED


def test_tracker_force_holds_until_observations_steadily_disagree():
    tr = StatusTracker(patterns_for(DEMO), debounce=1.0)
    tr.update(obs("idle", 10.0))
    tr.force(Status.WORKING, 10.1)  # a task was just delivered
    assert tr.status == Status.WORKING and tr.since == 10.1
    assert tr.update(obs("idle", 10.2)) == Status.WORKING  # prompt still on screen
    assert tr.update(obs("working", 10.4)) == Status.WORKING
    assert tr.update(obs("idle", 12.0)) == Status.WORKING
    assert tr.update(obs("idle", 13.0)) == Status.IDLE


# -- packs and which pack fits a command ------------------------------------------------


def test_packs_load_and_compile():
    packs = load_packs()
    assert {"claude", "codex", "aider", "gemini", "shell", "demo", "generic"} <= set(packs)
    owners: dict[str, str] = {}
    for name, spec in packs.items():
        pats = spec.patterns()
        assert pats.name == name
        assert pats.tail_lines >= 1 and pats.ready_lines >= 1
        assert pats.ready, f"{name} has no ready patterns"
        for word in spec.match:
            assert owners.setdefault(word, name) == name, f"{word} in two packs"
    assert load_packs() is packs  # cached


@pytest.mark.parametrize(("argv", "expected"), [
    (["python", "-m", "squad.demo_agent"], "demo"),
    ([sys.executable, "-u", "-m", "squad.demo_agent", "--work", "0.5"], "demo"),
    (["python3.11", "squad/demo_agent.py", "--seed", "3"], "demo"),
    (["uv", "run", "python", "-m", "squad.demo_agent"], "demo"),
    (["sh", "-c", "python -m squad.demo_agent --seed 3"], "demo"),
    (["claude"], "claude"),
    (["/usr/local/bin/claude", "--dangerously-skip-permissions"], "claude"),
    (["npx", "-y", "@anthropic-ai/claude-code@latest"], "claude"),
    (["node", "/usr/lib/node_modules/@anthropic-ai/claude-code/cli.js"], "claude"),
    (["env", "ANTHROPIC_MODEL=opus", "claude"], "claude"),
    (["/bin/sh", "-c", "ANTHROPIC_MODEL=opus claude"], "claude"),
    (["bash", "-lc", "cd /srv/app && exec claude --resume"], "claude"),
    ("claude --model opus", "claude"),
    (["codex"], "codex"),
    (["npx", "@openai/codex", "--full-auto"], "codex"),
    (["timeout", "600", "codex"], "codex"),
    (["/bin/sh", "-c", "aider --model x"], "aider"),
    (["aider", "--architect"], "aider"),
    (["uvx", "aider-chat"], "aider"),
    (["uv", "run", "--with", "rich", "aider"], "aider"),
    (["pipx", "run", "aider-chat"], "aider"),
    (["python", "-m", "aider"], "aider"),
    (["sh", "-c", "source .venv/bin/activate; aider"], "aider"),
    (["gemini"], "gemini"),
    (["npx", "@google/gemini-cli"], "gemini"),
    (["gemini", "-m", "gemini-2.5-pro"], "gemini"),
    (["bash"], "shell"),
    (["/bin/zsh", "-l"], "shell"),
    (["-bash"], "shell"),
    (["fish"], "shell"),
    (["sh", "-c", "exec bash"], "shell"),
    (["bash", "-o", "pipefail", "-c", "codex | tee codex.log"], "codex"),
    (["python3", "-m", "http.server", "3000", "--bind", "127.0.0.1"], "server"),
    (["uvicorn", "app:app", "--port", "8000", "--reload"], "server"),
    (["npx", "vite", "--port", "5173"], "server"),
    (["bash", "deploy.sh"], "generic"),
    (["python", "/home/claude/agent.py"], "generic"),
    (["/opt/tools/claude-wrapper/run"], "generic"),
    (["python", "myagent.py", "--model", "claude"], "generic"),
    (["python", "-c", "print(1)"], "generic"),
    (["npm", "run", "dev", "--", "--port", "3000"], "generic"),
    (["./my-agent"], "generic"),
    ([], "generic"),
])
def test_pack_name_for(argv: list[str] | str, expected: str):
    assert pack_name_for(argv) == expected
    assert patterns_for(argv).name == expected
