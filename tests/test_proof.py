"""The delivery evidence rules (squad/proof.py) on plain screens: taken up, answered, finished.

Each screen here is what a real program of that kind shows; the numbers in the test names
are the rules of the module's docstring.
"""

from __future__ import annotations

from squad import proof
from squad.proof import Look
from squad.status import patterns_for

MARK = "[squad task #7 0a1b2c3d]"
# A line-prompt program that echoes what it receives (the demo agent's kind).
LINE = patterns_for(["python3", "agent.py"], ready_pattern=r"^agent> ?$",
                    busy_pattern=r"Working on:")
# A program that does not echo (stty -echo): its screen shows only its own output.
NOECHO = patterns_for(["python3", "noecho.py"], ready_pattern=r"^noecho> ?$")
# A prompt-box program (Claude Code's pack): two rules around the input line.
CLAUDE = patterns_for(["claude"])

BEFORE_NOECHO = "no-echo agent\nnoecho> "
ANSWERED_NOECHO = ("no-echo agent\nnoecho> \nworking on: fix it\n  step 1/3\n  step 2/3\n"
                   "  step 3/3\nfinished the task\nnoecho> ")


def look(screen: str, pats=LINE, **kw) -> Look:
    return Look(screen, busy=proof.signs(screen, pats), **kw)


def test_marker_place_for_a_line_prompt() -> None:
    assert proof.marker_place("agent> fix it\n" + MARK, MARK, LINE) == "input"
    assert proof.marker_place(f"agent> fix it\n{MARK}\nWorking on: fix it", MARK, LINE) \
        == "history"
    assert proof.marker_place("agent> ", MARK, LINE) == "absent"
    assert proof.marker_place("agent> ", None, LINE) == "absent"


def test_1_2_a_hook_or_a_busy_sign_is_taken_up() -> None:
    unsent = "agent> fix it\n" + MARK
    assert not proof.taken_up(look(unsent), MARK, proof.screen_hash("agent> "), LINE)
    assert proof.taken_up(look(unsent, hook="submit"), MARK, None, LINE)
    assert proof.taken_up(look("Working on: fix it"), MARK, None, LINE)


def test_3_the_marker_left_the_input_line() -> None:
    sent = proof.screen_hash("agent> ")
    assert proof.taken_up(look(f"agent> fix it\n{MARK}\nok"), MARK, sent, LINE)


def test_4_no_echo_is_taken_up_when_its_screen_changed_unless_it_collapses_pastes() -> None:
    sent = proof.screen_hash(BEFORE_NOECHO)
    assert not proof.taken_up(look(BEFORE_NOECHO, NOECHO), MARK, sent, NOECHO)
    assert proof.taken_up(look(ANSWERED_NOECHO, NOECHO), MARK, sent, NOECHO)
    assert not proof.taken_up(look(ANSWERED_NOECHO, NOECHO), MARK, sent, NOECHO,
                              collapses=True)
    assert not proof.taken_up(look(ANSWERED_NOECHO, NOECHO), MARK, None, NOECHO)


def test_answered_when_taken_only_when_back_at_its_prompt_without_echo() -> None:
    sent = proof.screen_hash(BEFORE_NOECHO)
    done = look(ANSWERED_NOECHO, NOECHO)
    assert proof.at_prompt(ANSWERED_NOECHO, NOECHO)
    assert proof.answered_when_taken(done, MARK, sent, NOECHO, idle=True)
    # Still working (no prompt at the bottom): not answered yet.
    working = ANSWERED_NOECHO.rsplit("\n", 2)[0]
    assert not proof.at_prompt(working, NOECHO)
    assert not proof.answered_when_taken(look(working, NOECHO), MARK, sent, NOECHO,
                                         idle=proof.at_prompt(working, NOECHO))
    # Unchanged screen, a hook, a program that echoes, or one that collapses pastes: no.
    assert not proof.answered_when_taken(look(BEFORE_NOECHO, NOECHO), MARK, sent, NOECHO,
                                         idle=True)
    assert not proof.answered_when_taken(look(ANSWERED_NOECHO, NOECHO, hook="submit"), MARK,
                                         sent, NOECHO, idle=True)
    echoed = f"agent> fix it\n{MARK}\nok\nagent> "
    assert not proof.answered_when_taken(look(echoed), MARK, proof.screen_hash("agent> "),
                                         LINE, idle=True)
    assert not proof.answered_when_taken(done, MARK, sent, NOECHO, idle=True, collapses=True)


def test_finished_measures_from_the_take_up_or_from_before_the_text_when_answered_at_once(
        ) -> None:
    sent = proof.screen_hash(BEFORE_NOECHO)
    done = look(ANSWERED_NOECHO, NOECHO)
    # Taken up on the answered screen itself: measured from there, it never changes again.
    assert not proof.finished(done, MARK, proof.screen_hash(ANSWERED_NOECHO), NOECHO,
                              worked=False)
    # So the take-up records the screen before the text went out instead.
    assert proof.finished(done, MARK, sent, NOECHO, worked=False)


def test_idle_alone_is_never_finished() -> None:
    screen = f"agent> fix it\n{MARK}\nagent> "
    assert not proof.finished(look(screen), MARK, proof.screen_hash(screen), LINE,
                              worked=False, text="fix it\n" + MARK)
    assert proof.finished(look(screen), MARK, None, LINE, worked=True)
    assert proof.finished(look(screen, hook="stop"), MARK, None, LINE, worked=False)


def test_1_to_3_output_in_answer_to_the_text_finishes() -> None:
    screen = f"agent> fix it\n{MARK}\nWorking on: fix it\nfixed in parser.py\nagent> "
    assert proof.finished(look(screen), MARK, None, LINE, worked=False,
                          text="fix it\n" + MARK)
    out = proof.output_after(screen, MARK, LINE, "fix it\n" + MARK)
    assert out is not None and "fixed in parser.py" in out and MARK not in out


def test_a_prompt_box_is_taken_up_when_the_box_is_empty_again() -> None:
    box = "─" * 40
    unsent = f"{box}\n❯ fix it {MARK}\n{box}\n  ? for shortcuts"
    sent_hash = proof.screen_hash(f"{box}\n❯ \n{box}\n  ? for shortcuts")
    assert not proof.taken_up(look(unsent, CLAUDE), MARK, sent_hash, CLAUDE)
    taken = f"> fix it {MARK}\n\n● Done.\n{box}\n❯ \n{box}\n  ? for shortcuts"
    assert proof.taken_up(look(taken, CLAUDE), MARK, sent_hash, CLAUDE)
