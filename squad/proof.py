"""Evidence about a delivery: was the text taken up, and is the task finished? Pure functions
over screens, statuses and hook events; :mod:`squad.delivery` gathers them each tick.

Why evidence and not assumptions: a pasted prompt can sit unsent in an agent's input box
while everything looks fine (some programs turn an Enter that follows a paste too closely
into a newline), an agent may not echo what it receives, and a program may collapse a long
paste into a placeholder. So:

Taken up (the prompt was submitted) when any of these holds, after the text was sent:
    1. the agent's own hook reported a submitted prompt (or a turn that ended);
    2. the screen shows a busy or question sign of the agent's pattern pack;
    3. the delivery marker is on screen and no longer in the input line or box: for a line
       prompt (``ready_lines`` = 1), something follows the marker's line; for a prompt box,
       the box is empty again (an ``empty`` pattern of the pack matches) or, where the pack
       has none, the marker sits above the box;
    4. the marker is nowhere on screen, the screen changed since just before the text went
       out, and the program does not collapse pastes: it does not echo, and what changed is
       its own output.

Finished (the task was done) when the holder is idle again and, since it took the task up:
    1. its hook reported the turn ended; or
    2. this supervisor saw it busy or asking (a real observation, not an assumed status); or
    3. the marker is on screen with output in answer to the text: lines that are not its
       echo, a prompt or decoration (a shell or REPL may answer before the marker, running
       each line as it arrives); or
    4. the marker is not on screen and the screen changed since the take-up, or, when the
       take-up was seen only once the program was back at its prompt (taken up by rule 4
       and idle in the same look), since just before the text went out.
Idle alone is never enough: a prompt still on screen two seconds after a delivery proves
nothing.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from squad.status import Patterns, bottom_lines, matches

_ANSI = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)?|[@-Z\\-_])")


def screen_hash(screen: str) -> str:
    """A short fingerprint of a screen's text (trailing blanks ignored)."""
    text = "\n".join(line.rstrip() for line in screen.rstrip().split("\n"))
    return hashlib.blake2b(text.encode("utf-8", "replace"), digest_size=10).hexdigest()


def _lines(screen: str) -> list[str]:
    if "\x1b" in screen:
        screen = _ANSI.sub("", screen)
    return [line.rstrip() for line in screen.rstrip().split("\n")]


def _first(lines: list[str], marker: str) -> int:
    """The line of the marker's first appearance: the delivered text itself (a program may
    repeat the marker later, quoting its task), so everything after it is the agent's."""
    return next((i for i, line in enumerate(lines) if marker in line), -1)


def marker_place(screen: str, marker: str | None, pats: Patterns) -> str:
    """Where the delivery marker is: ``"absent"``, ``"input"`` (still in the input line or
    box: not submitted) or ``"history"`` (above the input: submitted)."""
    if not marker:
        return "absent"
    lines = _lines(screen)
    at = _first(lines, marker)
    if at < 0:
        return "absent"
    below = [line for line in lines[at + 1:] if line.strip()]
    if pats.ready_lines <= 1:
        # A line prompt: the pasted text ends with the marker, so while it is unsent the
        # marker's line is the last one; a submitted one has the program's output after it.
        return "history" if below else "input"
    if pats.empty:
        region = bottom_lines("\n".join(lines), pats.ready_lines)
        return "history" if matches(pats.empty, region) else "input"
    return "history" if len(below) >= pats.ready_lines else "input"


@dataclass(frozen=True)
class Look:
    """One look at the holder of a delivery."""

    screen: str
    busy: bool  # a busy or question sign of the pack is on screen
    hook: str | None = None  # the latest hook event after the text was sent ("submit", ...)


def signs(screen: str, pats: Patterns) -> bool:
    """Whether the screen shows the pack's busy or question signs (a real sign, not the
    "no prompt, so probably working" fallback of classification)."""
    tail = bottom_lines(screen, max(pats.tail_lines, 1))
    return matches(pats.busy, tail) or matches(pats.input, tail)


def taken_up(look: Look, marker: str | None, sent_screen: str | None, pats: Patterns,
             *, collapses: bool = False) -> bool:
    """Whether the delivered text was submitted (rules in the module docstring)."""
    if look.hook in ("submit", "tool", "stop", "question"):
        return True
    if look.busy:
        return True
    place = marker_place(look.screen, marker, pats)
    if place == "history":
        return True
    if place == "input":
        return False
    return (not collapses and sent_screen is not None
            and screen_hash(look.screen) != sent_screen)


def at_prompt(screen: str, pats: Patterns) -> bool:
    """Whether the screen ends at the program's prompt with no busy or question sign."""
    n_tail, n_ready = max(pats.tail_lines, 1), max(pats.ready_lines, 1)
    tail = bottom_lines(screen, max(n_tail, n_ready))
    return (matches(pats.ready, tail[-n_ready:]) and not matches(pats.busy, tail[-n_tail:])
            and not matches(pats.input, tail[-n_tail:]))


def answered_when_taken(look: Look, marker: str | None, sent_screen: str | None,
                        pats: Patterns, *, idle: bool, collapses: bool = False) -> bool:
    """Whether the look that shows the text taken up also shows it answered: a program that
    does not echo (taken up by rule 4: its marker nowhere on screen, the screen changed since
    the text went out) and is already back at its prompt (``idle``: :func:`at_prompt` of this
    very screen). What changed is then its whole answer. A supervisor looking only after the
    program finished sees just this: one started again after a crash, or a slow tick with a
    fast program; measuring "changed since the take-up" from this screen would wait for ever.
    """
    if not idle or look.busy or look.hook is not None or collapses:
        return False
    if marker_place(look.screen, marker, pats) != "absent":
        return False
    return sent_screen is not None and screen_hash(look.screen) != sent_screen


_DECORATION = re.compile(r"^[\s\u2500-\u257f\u2580-\u259f]*$")  # box drawing, blocks


def output_after(screen: str, marker: str | None, pats: Patterns,
                 text: str | None = None) -> str | None:
    """What the agent printed in answer to the delivered ``text`` (None when its marker is
    not on screen): the lines from where the text's echo begins, without the echo itself,
    prompts, and box-drawing decoration. Output may come before the marker: a shell or a
    REPL runs each line of a paste as it arrives."""
    if not marker:
        return None
    lines = _lines(screen)
    at = _first(lines, marker)
    if at < 0:
        return None
    sent = [ln.strip() for ln in (text or marker).splitlines() if ln.strip()]
    start = at
    if sent:
        head = sent[0]
        start = next((i for i in range(at, -1, -1) if lines[i].rstrip().endswith(head)), at)
    out = []
    for line in lines[start:]:
        bare = line.strip()
        if not bare or marker in line or _DECORATION.match(line):
            continue
        if any(bare.endswith(s) for s in sent):
            continue  # the program's echo of what it was sent (after its prompt)
        if matches(pats.ready, [line]):
            continue  # a prompt
        out.append(line)
    return "\n".join(out)


def finished(look: Look, marker: str | None, taken_screen: str | None, pats: Patterns, *,
             worked: bool, text: str | None = None) -> bool:
    """Whether an idle holder finished its task (rules in the module docstring)."""
    if look.hook == "stop" or worked:
        return True
    if marker_place(look.screen, marker, pats) == "history":
        return bool((output_after(look.screen, marker, pats, text) or "").strip())
    if marker_place(look.screen, marker, pats) == "input":
        return False
    return taken_screen is not None and screen_hash(look.screen) != taken_screen
