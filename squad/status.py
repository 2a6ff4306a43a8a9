"""Agent status: a pure decision from evidence (process facts, screen, activity), and a
debounced tracker that keeps one agent's status steady across observations.

No tmux, psutil or Textual here: callers gather an :class:`Evidence` and get a :class:`Status`.

Where patterns look
    Callers pass the whole visible screen; only its bottom is read. The screen is cut to
    its non-blank lines (ANSI escapes removed, trailing whitespace
    dropped). ``input`` and ``busy`` patterns are searched in the bottom ``tail_lines`` of
    them, ``ready`` patterns only in the bottom ``ready_lines`` (1 for most packs: the prompt
    must be the last non-blank line, nothing after it; more for programs that draw a box and
    a footer under their prompt, like Claude Code). Patterns are compiled with
    ``re.MULTILINE`` and searched in those lines joined by newlines, so ``^`` and ``$`` anchor
    at line ends. A pattern is tried on the lines as captured without trailing whitespace and
    again with one trailing space on every line, so ``^> $`` and ``^>$`` both find a bare
    ``> `` prompt whether or not the capture kept the space.

Rules, first that applies wins (:func:`classify`)
    1. the pane's process exited                                  -> exited
    2. every process of the agent's tree is stopped               -> paused
    h. the program's own hook (since it started, and its screen has not moved on since,
       give or take :data:`HOOK_SLACK`) said: a permission question
       -> needs-input; a prompt submitted or a tool running -> working (needs-input if a
       question is on screen; stalled when frozen as below); the turn ended -> idle unless
       the screen shows a busy sign
    f. a full-screen program (alternate screen) with no busy sign -> idle (needs-input
       on a question): editors, pagers and monitors redraw by themselves and wait for keys
    3. a line prompt (``ready_lines`` = 1) on the last line, itself neither a question nor a
       busy sign                                                   -> idle (older output
       above the prompt does not count)
    4. an ``input`` pattern in the tail                           -> needs-input
    5. a ``busy`` pattern in the tail                             -> working, or stalled when
       the screen has not changed for ``stall_after`` seconds and the tree is quiet
       (CPU below :data:`BUSY_CPU`): a spinner frozen on screen is stalled
    6. a ``ready`` pattern at the bottom                          -> idle
    7. no pattern: the screen silent for ``stall_after`` with a quiet CPU -> stalled;
       within :data:`STARTING_FOR` seconds of the start            -> starting;
       otherwise                                                   -> working

So an agent is idle only when a ready prompt is visible: a silent program without a
recognisable prompt counts as working (it may be waiting on a model) and later as stalled,
never as idle, because tasks are delivered to idle agents only. Give such programs a
``ready_pattern`` in the layout. Needs-input never turns into stalled: a question waits for a
person as long as it takes.

Debounce (:class:`StatusTracker`)
    ``exited`` and ``paused`` are facts from the process table and apply at once, and so does
    leaving them. Any other change must be seen in at least two consecutive observations
    spanning ``debounce`` seconds before it is reported, so a one-tick flicker (a prompt
    redrawn, a spinner between frames) never flips the status. The first observation is
    reported as it is.

Pattern packs live in ``packs.toml`` next to this module, one table per known program. A
layout's own patterns go first in each list; they are added to the pack, never replace it.
"""

from __future__ import annotations

import os
import re
import shlex
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from pathlib import Path

STARTING_FOR = 5.0  # seconds after start during which a patternless screen means "starting"
BUSY_CPU = 5.0  # CPU % of the tree above which the agent is doing something, screen or not
HOOK_SLACK = 1.5  # seconds a program may redraw after a hook without superseding it
PACKS_FILE = Path(__file__).with_name("packs.toml")


class Status(StrEnum):
    """What an agent is doing, as users and scripts see it."""

    STARTING = "starting"
    WORKING = "working"
    IDLE = "idle"
    NEEDS_INPUT = "needs-input"
    STALLED = "stalled"
    PAUSED = "paused"
    EXITED = "exited"


FACTS = frozenset({Status.EXITED, Status.PAUSED})  # statuses that are never debounced


# -- patterns ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Patterns:
    """Compiled patterns for one agent, matched against the bottom of its screen."""

    name: str  # pack name ("claude", "demo", "shell", "generic", ...)
    ready: tuple[re.Pattern[str], ...]
    busy: tuple[re.Pattern[str], ...]
    input: tuple[re.Pattern[str], ...]
    tail_lines: int = 8  # bottom non-blank lines searched for busy and input patterns
    ready_lines: int = 1  # bottom non-blank lines searched for ready patterns
    empty: tuple[re.Pattern[str], ...] = ()  # an empty input box (nothing typed or pasted)
    submit_delay: float = 0.0  # seconds between pasting a prompt and pressing Enter
    marker: str = "line"  # how the delivery marker is written: line | comment | none
    collapses: bool = False  # shows a long paste as a placeholder, not as its text
    clear: tuple[str, ...] = ()  # keys that empty its input (take back an unsent text)


MARKER_STYLES = ("line", "comment", "none")


@dataclass(frozen=True)
class PackSpec:
    """One pattern pack as written in ``packs.toml`` (regular expressions as strings)."""

    name: str
    match: tuple[str, ...] = ()  # program basenames, module names, npm package names
    ready: tuple[str, ...] = ()
    busy: tuple[str, ...] = ()
    input: tuple[str, ...] = ()
    empty: tuple[str, ...] = ()
    tail_lines: int = 8
    ready_lines: int = 1
    submit_delay: float = 0.0
    marker: str = "line"
    collapses: bool = False
    clear: tuple[str, ...] = ()

    def patterns(self, ready: Iterable[str] = (), busy: Iterable[str] = (),
                 input: Iterable[str] = ()) -> Patterns:
        """The compiled pack, with extra patterns (a layout's own) put first in each list."""
        return Patterns(
            name=self.name,
            ready=_compile_all((*ready, *self.ready), "ready"),
            busy=_compile_all((*busy, *self.busy), "busy"),
            input=_compile_all((*input, *self.input), "input"),
            tail_lines=self.tail_lines,
            ready_lines=self.ready_lines,
            empty=_compile_all(self.empty, "empty"),
            submit_delay=self.submit_delay,
            marker=self.marker,
            collapses=self.collapses,
            clear=self.clear,
        )


@cache
def _compile(pattern: str, kind: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern, re.MULTILINE)
    except re.error as e:
        raise ValueError(f"invalid {kind} pattern {pattern!r}: {e}") from None


def _compile_all(patterns: Iterable[str], kind: str) -> tuple[re.Pattern[str], ...]:
    return tuple(_compile(p, kind) for p in dict.fromkeys(patterns))


_PACK_KEYS = {"match", "ready", "busy", "input", "empty", "tail_lines", "ready_lines",
              "submit_delay", "marker", "collapses", "clear"}


@cache
def load_packs() -> dict[str, PackSpec]:
    """Every pattern pack from ``packs.toml``, by name (read and checked once)."""
    with PACKS_FILE.open("rb") as f:
        data = tomllib.load(f)
    packs: dict[str, PackSpec] = {}
    for name, table in data.items():
        if not isinstance(table, dict) or not set(table) <= _PACK_KEYS:
            raise ValueError(f"{PACKS_FILE}: [{name}] must be a table with keys "
                             f"{', '.join(sorted(_PACK_KEYS))}")
        lists = {k: tuple(str(x) for x in table.get(k, ())) for k in
                 ("match", "ready", "busy", "input", "empty")}
        spec = PackSpec(name=name, tail_lines=int(table.get("tail_lines", 8)),
                        ready_lines=int(table.get("ready_lines", 1)),
                        submit_delay=float(table.get("submit_delay", 0.0)),
                        marker=str(table.get("marker", "line")),
                        collapses=bool(table.get("collapses", False)),
                        clear=tuple(str(k) for k in table.get("clear", ())), **lists)
        if spec.tail_lines < 1 or spec.ready_lines < 1:
            raise ValueError(f"{PACKS_FILE}: [{name}] tail_lines and ready_lines must be >= 1")
        if spec.marker not in MARKER_STYLES or not 0 <= spec.submit_delay <= 10:
            raise ValueError(f"{PACKS_FILE}: [{name}] marker must be one of "
                             f"{', '.join(MARKER_STYLES)}; submit_delay 0 to 10 seconds")
        packs[name] = spec  # its regexes compile when an agent uses it (tests compile all)
    if "generic" not in packs:
        raise ValueError(f"{PACKS_FILE}: the [generic] pack is missing")
    return packs


# -- which pack fits a command ----------------------------------------------------------

_SHELLS = frozenset({"sh", "bash", "zsh", "fish", "dash", "ksh", "mksh", "ash", "tcsh", "csh"})
_INTERPRETER = re.compile(r"^(python|pypy|node|nodejs|bun|deno)[\d.]*$")
_RUNNERS = frozenset({  # programs that run another program named among their arguments
    "npx", "bunx", "pnpx", "uvx", "pipx", "uv", "pnpm", "yarn", "npm", "poetry", "pdm",
    "env", "exec", "command", "nohup", "time", "nice", "ionice", "timeout", "stdbuf",
    "setsid", "caffeinate", "sudo", "doas", "script", "rlwrap", "unbuffer",
})
_SUFFIXES = (".exe", ".cmd", ".js", ".mjs", ".cjs", ".py", ".sh")
_SEPARATORS = frozenset({"&&", "||", ";", "|", "&", "(", ")", ";;", "|&"})
_PY_VALUE_OPTS = frozenset({"-W", "-X", "-Q"})
_NODE_VALUE_OPTS = frozenset({"-r", "--require", "--import", "--loader",
                              "--experimental-loader", "--env-file", "--inspect-port"})


@cache
def _lookup() -> dict[str, str]:
    """Every ``match`` word of every pack (lower case) -> pack name."""
    table: dict[str, str] = {}
    for spec in load_packs().values():
        for word in spec.match:
            table.setdefault(word.lower(), spec.name)
    return table


def _program(word: str) -> str:
    """The program name in a command word: basename, lower case, no suffix or login dash."""
    name = os.path.basename(word.rstrip("/")).lower().lstrip("-")
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _name_of_word(word: str, module: bool = False) -> str | None:
    """The pack a single word names: a program or script path, an npm package (with an
    optional ``@version``) or, with ``module``, a Python module; None if none."""
    table = _lookup()
    w = word.lower()
    if w.startswith("@") and w.count("@") > 1:
        w = w[: w.rindex("@")]  # @openai/codex@latest
    elif not w.startswith("@") and "@" in w and "/" not in w:
        w = w[: w.index("@")]  # aider-chat@0.80
    candidates = [w, _program(w)]
    if module:  # squad.demo_agent -> demo_agent, squad
        parts = w.split(".")
        candidates += [parts[-1], parts[0]]
    if "node_modules/" in w:  # .../node_modules/@anthropic-ai/claude-code/cli.js
        package = w.rsplit("node_modules/", 1)[1].split("/")
        depth = 2 if package[0].startswith("@") else 1
        candidates += ["/".join(package[:depth]), package[depth - 1]]
    elif "://" in w:  # npx https://github.com/google-gemini/gemini-cli
        candidates.append(_program(w.rstrip("/").rsplit("/", 1)[-1]))
    for c in candidates:
        if c in table:
            return table[c]
    return None


def _split_shell(command: str) -> list[list[str]]:
    """A ``sh -c`` command line as simple commands (split at ``&&``, ``;``, ``|``, ...)."""
    try:
        lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        words = list(lexer)
    except ValueError:
        words = command.split()
    segments: list[list[str]] = [[]]
    for w in words:
        if w in _SEPARATORS:
            segments.append([])
        else:
            segments[-1].append(w)
    return [s for s in segments if s]


def _shell_name(args: Sequence[str], depth: int) -> str | None:
    skip = False
    for i, arg in enumerate(args):
        if skip or arg == "--":
            skip = False
            continue
        if arg in ("-o", "+o", "-O", "+O"):  # set -o pipefail, shopt -s ...
            skip = True
            continue
        if arg.startswith("-") and not arg.startswith("--") and "c" in arg[1:]:
            if i + 1 >= len(args):
                return None
            for segment in _split_shell(args[i + 1]):
                found = _name(segment, depth + 1)
                if found is not None:
                    return found
            return None
        if not arg.startswith("-") and not arg.startswith("+"):
            return _name_of_word(arg)  # a script: known only by its own name
    return "shell"


def _interpreter_name(prog: str, args: Sequence[str]) -> str | None:
    value_opts = _PY_VALUE_OPTS if prog.startswith(("python", "pypy")) else _NODE_VALUE_OPTS
    skip = False
    for i, arg in enumerate(args):
        if skip:
            skip = False
            continue
        if arg in ("-m", "--module") and i + 1 < len(args):
            return _name_of_word(args[i + 1], module=True)
        if arg in ("-c", "-e", "--eval", "-p", "--print"):
            return None
        if arg in value_opts:
            skip = True
            continue
        if not arg.startswith("-"):
            return _name_of_word(arg)
    # Nothing to run: the interpreter's own prompt (the Python REPL), which runs what it
    # receives.
    return "python" if prog.startswith(("python", "pypy")) else None


def _runner_name(args: Sequence[str], depth: int) -> str | None:
    for i, arg in enumerate(args):
        if arg.startswith("-") or ("=" in arg and not arg.startswith(("/", "."))):
            continue
        found = _name(args[i:], depth + 1)
        prog = _program(arg)
        if found is not None or prog in _SHELLS or prog in _RUNNERS or _INTERPRETER.match(prog):
            return found
    return None


_ASSIGNMENT = re.compile(r"^[A-Za-z_]\w*=")


def _name(argv: Sequence[str], depth: int = 0) -> str | None:
    while argv and _ASSIGNMENT.match(argv[0]):  # FOO=1 claude
        argv = argv[1:]
    if not argv or depth > 8:
        return None
    prog, args = _program(argv[0]), argv[1:]
    if prog in _SHELLS:
        return _shell_name(args, depth)
    if _INTERPRETER.match(prog):
        return _interpreter_name(prog, args)
    direct = _name_of_word(argv[0])
    if direct is not None:
        return direct
    if prog in _RUNNERS:
        return _runner_name(args, depth)
    return None


def pack_name_for(argv: Sequence[str] | str) -> str:
    """Which pattern pack fits a command, "generic" when none does.

    Looks at the program's basename and, for interpreters (python, node), runners (npx, uv,
    uvx, pipx, env, timeout, ...) and ``sh -c "..."``, at the module, script, package or
    command they run: ``["python", "-m", "squad.demo_agent"]`` -> "demo",
    ``["/bin/sh", "-c", "cd x && aider --model m"]`` -> "aider", ``["bash"]`` -> "shell".
    """
    if isinstance(argv, str):
        argv = shlex.split(argv) if argv.strip() else []
    return _name(list(argv)) or "generic"


def patterns_for(argv: Sequence[str] | str, ready_pattern: str | None = None,
                 busy_pattern: str | None = None,
                 input_pattern: str | None = None) -> Patterns:
    """The pack for ``argv`` with the layout's own patterns first in each list (they win).

    Raises ValueError naming the pattern when one of the layout's patterns is not a valid
    regular expression.
    """
    spec = load_packs()[pack_name_for(argv)]
    return spec.patterns(
        ready=(ready_pattern,) if ready_pattern else (),
        busy=(busy_pattern,) if busy_pattern else (),
        input=(input_pattern,) if input_pattern else (),
    )


# -- classification ---------------------------------------------------------------------


@dataclass(frozen=True)
class Evidence:
    """One observation of one agent."""

    now: float  # time.monotonic()-like seconds
    started_at: float  # when the agent (pane) started
    screen: str  # visible screen text, plain (no ANSI)
    changed_at: float  # last time the screen content changed
    dead: bool = False  # the pane's process exited
    exit_code: int | None = None
    stopped: bool = False  # every process of the agent's tree is stopped (SIGSTOP)
    cpu: float = 0.0  # CPU % of the agent's whole tree, recent
    hook: str | None = None  # the program's latest hook event since it started, if fresh
    hook_age: float = 0.0  # seconds since that hook event
    fullscreen: bool = False  # the program drew on the alternate screen (vim, less, htop)


_ANSI = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)?|[@-Z\\-_])")


def bottom_lines(screen: str, count: int) -> list[str]:
    """The last ``count`` non-blank lines of a screen, without ANSI escapes or trailing
    whitespace, top to bottom."""
    if "\x1b" in screen:
        screen = _ANSI.sub("", screen)
    found: list[str] = []
    for line in reversed(screen.split("\n")):
        line = line.rstrip()
        if line:
            found.append(line)
            if len(found) >= count:
                break
    found.reverse()
    return found


def matches(patterns: tuple[re.Pattern[str], ...], lines: list[str]) -> bool:
    if not patterns or not lines:
        return False
    plain = "\n".join(lines)
    spaced = " \n".join(lines) + " "
    return any(p.search(plain) or p.search(spaced) for p in patterns)


def classify(ev: Evidence, pats: Patterns, stall_after: float = 120.0) -> Status:
    """The status one observation shows, with no memory of earlier ones (rules in the module
    docstring)."""
    if ev.dead:
        return Status.EXITED
    if ev.stopped:
        return Status.PAUSED
    # A hook tells where the program is until its screen moves on: a hook followed by no
    # screen change (a little slack: programs redraw right after their hooks) still holds;
    # after a change the screen is read again (an interrupted turn, say, sends no "stop").
    hook = ev.hook if ev.hook and ev.hook_age <= ev.now - ev.changed_at + HOOK_SLACK else None
    if hook == "question":
        return Status.NEEDS_INPUT
    n_tail, n_ready = max(pats.tail_lines, 1), max(pats.ready_lines, 1)
    tail = bottom_lines(ev.screen, max(n_tail, n_ready))
    bottom = tail[-n_ready:]
    stalled = ev.now - ev.changed_at > stall_after and ev.cpu < BUSY_CPU
    if hook in ("submit", "tool", "stop", "idle"):
        # The program said where it is: between a submitted prompt and the end of its turn
        # it works (a question on screen still wins); after it, it is idle unless the
        # screen shows otherwise.
        if matches(pats.input, tail[-n_tail:]):
            return Status.NEEDS_INPUT
        if hook in ("submit", "tool"):
            return Status.STALLED if stalled else Status.WORKING
        if not matches(pats.busy, tail[-n_tail:]):
            return Status.IDLE
    if ev.fullscreen and not matches(pats.busy, tail[-n_tail:]):
        # A full-screen program (an editor, a pager, top) waits for keys whatever its
        # screen says, and redraws it by itself: never "working", never "stalled".
        return Status.NEEDS_INPUT if matches(pats.input, tail[-n_tail:]) else Status.IDLE
    # A line prompt on the last line means the program waits for input, whatever older
    # output above it says ("working step 3/3" just before the prompt). Programs that draw
    # their prompt box all the time (ready_lines > 1) say they work elsewhere on screen.
    if (n_ready == 1 and matches(pats.ready, bottom) and not matches(pats.busy, bottom)
            and not matches(pats.input, bottom)):
        return Status.IDLE
    if matches(pats.input, tail[-n_tail:]):
        return Status.NEEDS_INPUT
    if matches(pats.busy, tail[-n_tail:]):
        return Status.STALLED if stalled else Status.WORKING
    if matches(pats.ready, tail[-n_ready:]):
        return Status.IDLE
    if stalled:
        return Status.STALLED
    if ev.now - ev.started_at < STARTING_FOR:
        return Status.STARTING
    return Status.WORKING


class StatusTracker:
    """Debounced status of one agent across observations."""

    def __init__(self, pats: Patterns, stall_after: float = 120.0, debounce: float = 1.0):
        self.pats = pats
        self.stall_after = stall_after
        self.debounce = debounce
        self.status = Status.STARTING  # the reported status
        self.since = 0.0  # when the reported status began (the clock of Evidence.now)
        self.raw: Status | None = None  # the last observation's own classification
        self._pending: Status | None = None  # a change seen but not yet reported
        self._pending_since = 0.0

    def update(self, ev: Evidence) -> Status:
        """Take one observation; return the status to report."""
        raw = classify(ev, self.pats, self.stall_after)
        first, self.raw = self.raw is None, raw
        if first:
            self.status, self.since, self._pending = raw, ev.now, None
        elif raw == self.status:
            self._pending = None
        elif raw in FACTS or self.status in FACTS or self.debounce <= 0:
            self._set(raw, ev.now)
        elif raw != self._pending:
            self._pending, self._pending_since = raw, ev.now
        elif ev.now - self._pending_since >= self.debounce:
            self._set(raw, self._pending_since)
        return self.status

    @property
    def settling(self) -> bool:
        """A change was seen but not reported yet: the next observation decides it."""
        return self._pending is not None

    def force(self, status: Status, now: float) -> None:
        """Report ``status`` from now on until observations steadily show otherwise, e.g.
        ``working`` right after delivering a task, so a prompt still on screen for a moment
        is not taken for idle. A different observed status then needs the usual debounce."""
        self._set(status, now)
        if self.raw is None:
            self.raw = status

    def _set(self, status: Status, since: float) -> None:
        if status != self.status:
            self.since = since
        self.status = status
        self._pending = None
