"""Layout files: parse and validate a squad's TOML description, and dump it back fully resolved.

A layout names the squad, the git repository its agents work on, and its teams of agents.
Agent settings cascade: the squad's ``[defaults]``, then a team's ``[teams.defaults]``, then
the agent's own table (``env`` tables merge; every other key replaces). Every problem a user
can make in a layout becomes a :class:`~squad.errors.LayoutError` naming the file and the key
path (``teams[1].agents[0].capacity``) or the line of a TOML syntax error.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import tomli_w

from squad.errors import LayoutError
from squad.governor import LIMIT_ACTIONS, PRESSURE_ACTIONS, GovernorConfig
from squad.notify import NotifyConfig, NotifyError, parse_notify

DISPATCH_POLICIES = ("least-loaded", "round-robin", "random")

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
"""Squad, team, agent and session names: safe as tmux targets, directory names and branch parts."""

SHELL = "/bin/sh"
SHELL_CHARS = frozenset("|&;<>(){}$`\\*?[]~#\n\r")
"""A string command containing any of these runs through ``/bin/sh -c``."""

SHELL_WORDS = frozenset(
    "! { } [[ ]] . : [ alias bg break case cd command continue declare do done elif else esac "
    "eval exec exit export false fg fi for function getopts hash if in jobs kill let local "
    "printf pwd read readonly return select set shift source test then time times trap true "
    "type typeset ulimit umask unalias unset until wait while echo".split()
)
"""Shell keywords and builtins: a command starting with one of them needs a shell."""

_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_SQUAD_ENV = ("SQUAD_NAME", "SQUAD_TEAM", "SQUAD_AGENT", "SQUAD_SOCKET", "SQUAD_HOME")
_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")
_TOML_AT_END = re.compile(r"\s*\(at end of document\)$")


def _needs_shell(command: str) -> bool:
    """Whether a string command must run through ``/bin/sh -c`` to mean what it says.

    The direct form (split like sh splits words, no shell in between) is used only when it
    means exactly what sh would do: no shell characters, balanced quotes, and neither a
    variable assignment nor a shell keyword or builtin as the first word.
    """
    if any(c in SHELL_CHARS for c in command):
        return True
    try:
        words = shlex.split(command)
    except ValueError:
        return True
    return not words or bool(_ASSIGNMENT.match(words[0])) or words[0] in SHELL_WORDS


@dataclass(frozen=True)
class Agent:
    """One program in one tmux window, addressed as ``team/name``; settings as the layout says."""

    team: str
    """The team the agent belongs to."""
    name: str
    """The agent's name, unique within its team."""
    role: str
    """What the agent does (PM, Dev, Server, ...); also its tmux window name."""
    command: str | tuple[str, ...]
    """As written: one string (see :attr:`argv` for how it runs) or an argument vector."""
    cwd: str | None = None
    """Start directory as written; relative to the worktree (``worktree``) or else the repo."""
    worktree: bool = False
    """Run in the agent's own git worktree on its own branch."""
    branch: str | None = None
    """The worktree's branch; ``None`` means ``squad/<team>/<name>``."""
    base: str | None = None
    """The git ref a new branch starts from; ``None`` means the repository's HEAD."""
    env: dict[str, str] = field(default_factory=dict)
    """Extra environment of the agent's window."""
    tags: tuple[str, ...] = ()
    """What the agent is good at; tasks with tags go to agents having them."""
    capacity: int = 1
    """How many tasks the agent may hold at once."""
    priority: int = 0
    """Preference among equally suitable agents; higher wins."""
    dispatch: bool = True
    """Whether the agent receives tasks at all (a dev server does not)."""
    ready_pattern: str | None = None
    """Regex on the screen meaning the agent is idle and ready for input."""
    busy_pattern: str | None = None
    """Regex on the screen meaning the agent is working."""
    input_pattern: str | None = None
    """Regex on the screen meaning the agent waits for a person's answer."""
    memory_warn_mb: int | None = None
    """Memory of the agent's process tree, in MiB, past which squad warns."""
    memory_limit_mb: int | None = None
    """Memory limit of the agent's process tree, in MiB: past it, ``on_memory_limit`` acts."""
    on_memory_limit: str = "warn"
    """What happens past ``memory_limit_mb``: one of :data:`squad.governor.LIMIT_ACTIONS`."""
    cpu_limit: float | None = None
    """CPU limit of the agent's process tree, in percent of one core (may exceed 100)."""
    pinned: bool = False
    """Never paused or hibernated by memory or CPU pressure, nor by ``max_active``."""
    stall_after: float = 120.0
    """Seconds of silence while working before the agent counts as stalled."""
    grace: float = 10.0
    """Seconds between SIGTERM and SIGKILL when stopping the agent."""
    submit_delay: float = 0.0
    """Seconds between pasting text into the agent and pressing Enter."""

    def __hash__(self) -> int:
        # The generated hash would hash ``env`` (a dict); the target identifies an agent.
        return hash((self.team, self.name))

    @property
    def target(self) -> str:
        """The agent's address, ``team/name``."""
        return f"{self.team}/{self.name}"

    @property
    def argv(self) -> list[str]:
        """The argument vector to run.

        A list command runs as written. A string command runs through ``/bin/sh -c`` when it
        contains any of ``| & ; < > ( ) { } $ ` \\ * ? [ ] ~ #`` or a newline, or starts with a
        variable assignment (``FOO=1 cmd``) or a shell keyword or builtin (``cd``, ``exec``);
        otherwise it is split into words the way sh would (quotes work) and run directly.
        """
        if not isinstance(self.command, str):
            return list(self.command)
        if _needs_shell(self.command):
            return [SHELL, "-c", self.command]
        return shlex.split(self.command)

    @property
    def program(self) -> str | None:
        """The program that must exist for the command to run, or ``None`` if unknown.

        For a shell-form command: the first word after any variable assignments and ``exec``,
        unless that word is a shell keyword or builtin or contains shell characters.
        """
        if not isinstance(self.command, str):
            return self.command[0] if self.command else None
        try:
            words = shlex.split(self.command)
        except ValueError:
            return None
        i = 0
        while i < len(words) and (_ASSIGNMENT.match(words[i]) or words[i] == "exec"):
            i += 1
        if i == len(words):
            return None
        word = words[i]
        if not word or word in SHELL_WORDS or any(c in SHELL_CHARS for c in word):
            return None
        return word

    def branch_name(self) -> str:
        """The worktree's branch: ``branch`` if set, else ``squad/<team>/<name>``."""
        return self.branch or f"squad/{self.team}/{self.name}"


@dataclass(frozen=True)
class Team:
    """A group of agents sharing one tmux session."""

    name: str
    """The team's name, unique within the squad."""
    session: str
    """The tmux session's name (layout key ``session``; default: the team's name)."""
    agents: tuple[Agent, ...]
    """The team's agents in layout order; one tmux window each."""


@dataclass(frozen=True)
class Squad:
    """Everything one layout file describes."""

    name: str
    """The squad's name; squad's state directory and tmux options are keyed by it."""
    repo: Path
    """The git repository the agents work on; absolute and resolved."""
    worktree_root: Path
    """Where agents' worktrees go (``worktree_root/team/agent``); absolute."""
    teams: tuple[Team, ...]
    """The teams in layout order."""
    dispatch_policy: str = "least-loaded"
    """How a task picks among equally suitable agents: one of :data:`DISPATCH_POLICIES`."""
    notify: NotifyConfig = NotifyConfig()
    """Notifications: the layout's ``[notify]`` table."""
    governor: GovernorConfig = GovernorConfig()
    """Squad-wide resource policy: the layout's ``[governor]`` table."""
    source: Path | None = field(default=None, compare=False)
    """The layout file the squad was loaded from."""

    def agents(self) -> list[Agent]:
        """Every agent, team by team, in layout order."""
        return [a for t in self.teams for a in t.agents]

    def agent(self, target: str) -> Agent | None:
        """The agent addressed as ``team/name``, if there is one."""
        team_name, sep, name = target.partition("/")
        team = self.team(team_name) if sep else None
        return next((a for a in team.agents if a.name == name), None) if team else None

    def team(self, name: str) -> Team | None:
        """The team called ``name``, if there is one."""
        return next((t for t in self.teams if t.name == name), None)

    def worktree_dir(self, agent: Agent) -> Path | None:
        """The agent's worktree (``worktree_root/team/agent``), or ``None`` without one."""
        return self.worktree_root / agent.team / agent.name if agent.worktree else None

    def agent_dir(self, agent: Agent) -> Path:
        """Where the agent runs: its worktree or the repo, joined with its ``cwd``."""
        base = self.worktree_dir(agent) or self.repo
        if agent.cwd is None:
            return base
        return base / Path(agent.cwd).expanduser()  # an absolute cwd replaces base


# -- validation ------------------------------------------------------------------------------


class _Bad(Exception):
    """One value is wrong; ``sub`` extends the key path (``[2]``, ``.FOO``)."""

    def __init__(self, message: str, sub: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.sub = sub


def _show(value: object) -> str:
    """A value as a user would recognise it from their TOML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return f"a {type(value).__name__} value"


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else json.dumps(key, ensure_ascii=False)


def _string(value: object, what: str = "a string") -> str:
    if not isinstance(value, str):
        raise _Bad(f"must be {what}, got {_show(value)}")
    if "\0" in value:
        raise _Bad("must not contain a NUL character")
    return value


def _nonempty(value: object, what: str = "a non-empty string") -> str:
    text = _string(value, what)
    if not text.strip():
        raise _Bad(f"must be {what}, got {_show(value)}")
    return text


def safe_name(value: object) -> str:
    """Check a squad, team, agent or session name; return it or raise ``_Bad``."""
    text = _string(value)
    if not SAFE_NAME.fullmatch(text):
        raise _Bad(
            f"{_show(text)} is not a usable name: use 1-64 letters, digits, '-' and '_', "
            "starting with a letter or digit (names become tmux targets, directories and "
            "git branches)"
        )
    return text


def _bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise _Bad(f"must be true or false, got {_show(value)}")
    return value


def _integer(minimum: int | None, what: str) -> Callable[[object], int]:
    def check(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Bad(f"must be {what}, got {_show(value)}")
        if minimum is not None and value < minimum:
            raise _Bad(f"must be {what}, got {value}")
        return value

    return check


def _number(minimum: float, inclusive: bool, what: str) -> Callable[[object], float]:
    def check(value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _Bad(f"must be {what}, got {_show(value)}")
        number = float(value)
        if not math.isfinite(number):
            raise _Bad(f"must be {what}, got {_show(value)}")
        if number < minimum or (number == minimum and not inclusive):
            raise _Bad(f"must be {what}, got {_show(value)}")
        return number

    return check


def _choice(options: tuple[str, ...], what: str) -> Callable[[object], str]:
    """One of ``options``; a near miss is told the closest one."""

    def check(value: object) -> str:
        text = _string(value, f"a string ({what})")
        if text in options:
            return text
        close = difflib.get_close_matches(text, options, n=1, cutoff=0.5)
        hint = f"did you mean {_show(close[0])}?" if close else (
            "use one of " + ", ".join(_show(o) for o in options))
        raise _Bad(f"unknown {what} {_show(text)}; {hint}")

    return check


def _percent(high: bool) -> Callable[[object], float]:
    """A PSI threshold: percent of time stalled; an acting one above 0, a recovery one below
    100."""
    what = "a percentage above 0, at most 100" if high else "a percentage from 0, below 100"

    def check(value: object) -> float:
        number = _number(0, not high, what)(value)
        if number > 100 or (number == 100 and not high):
            raise _Bad(f"must be {what}, got {_show(value)}")
        return number

    return check


def _role(value: object) -> str:
    text = _nonempty(value)
    if text != text.strip():
        raise _Bad(f"must not start or end with whitespace, got {_show(text)}")
    if len(text) > 32:
        raise _Bad(f"must be at most 32 characters (it names a tmux window), got {len(text)}")
    if not text.isprintable():
        raise _Bad(f"must not contain control characters, got {_show(text)}")
    if ":" in text or "." in text:
        raise _Bad("must not contain ':' or '.' (tmux reads them as separators), "
                   f"got {_show(text)}")
    return text


def _command(value: object) -> str | tuple[str, ...]:
    if isinstance(value, str):
        text = _nonempty(value, "a non-empty command")
        if not any(c in SHELL_CHARS for c in text):
            try:
                shlex.split(text)
            except ValueError as e:
                raise _Bad(f"cannot be split into words ({e}): close the quote") from None
        return text
    if isinstance(value, list):
        if not value:
            raise _Bad("must not be an empty array: give the program and its arguments")
        for i, arg in enumerate(value):
            try:
                _string(arg)
            except _Bad as e:
                raise _Bad(e.message, f"[{i}]") from None
        if not value[0].strip():
            raise _Bad("must name a program, got an empty string", "[0]")
        return tuple(value)
    raise _Bad(f"must be a string or an array of strings, got {_show(value)}")


def check_branch(name: str) -> str | None:
    """What makes ``name`` an invalid git branch name (``git check-ref-format``), or ``None``."""
    if not name:
        return "must not be empty"
    if name == "@" or name == "HEAD":
        return f"{_show(name)} is reserved by git"
    if name.startswith("-"):
        return "must not start with '-'"
    if name.startswith("/") or name.endswith("/"):
        return "must not start or end with '/'"
    if "//" in name:
        return "must not contain '//'"
    if ".." in name:
        return "must not contain '..'"
    if "@{" in name:
        return "must not contain '@{'"
    if name.endswith("."):
        return "must not end with '.'"
    bad = sorted({c for c in name if ord(c) < 32 or ord(c) == 127 or c in " ~^:?*[\\"})
    if bad:
        shown = ", ".join("space" if c == " " else repr(c) for c in bad)
        return f"must not contain {shown}"
    for part in name.split("/"):
        if part.startswith("."):
            return f"no part may start with '.' ({_show(part)})"
        if part.endswith(".lock"):
            return f"no part may end with '.lock' ({_show(part)})"
    return None


def _branch(value: object) -> str:
    text = _string(value)
    problem = check_branch(text)
    if problem:
        raise _Bad(f"{_show(text)} is not a valid git branch name: {problem}")
    return text


def _base(value: object) -> str:
    text = _nonempty(value, "a non-empty git ref")
    if text.startswith("-"):
        raise _Bad(f"must be a git ref, not an option: {_show(text)}")
    return text


def _env(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        raise _Bad(f'must be a table of NAME = "value", got {_show(value)}')
    env: dict[str, str] = {}
    for name, val in value.items():
        sub = "." + _key(name)
        if not _ENV_NAME.fullmatch(name):
            raise _Bad(
                "is not a usable environment variable name: use letters, digits and '_', "
                "not starting with a digit",
                sub,
            )
        if name in _SQUAD_ENV:
            raise _Bad(f"{name} is set by squad itself; use another name", sub)
        if isinstance(val, bool | int | float):
            raise _Bad(f"must be a string, got {_show(val)}: quote it ({name} = \"{_show(val)}\")",
                       sub)
        try:
            env[name] = _string(val)
        except _Bad as e:
            raise _Bad(e.message, sub) from None
    return env


def _tags(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _Bad(f'must be an array of strings (["web", "css"]), got {_show(value)}')
    for i, tag in enumerate(value):
        if not isinstance(tag, str) or not tag or any(c.isspace() for c in tag):
            raise _Bad(f"must be a non-empty word without spaces, got {_show(tag)}", f"[{i}]")
    return tuple(value)


def _pattern(value: object) -> str:
    text = _string(value, "a regular expression string")
    if not text:
        raise _Bad("must not be empty (an empty pattern matches every screen)")
    try:
        re.compile(text)
    except re.error as e:
        raise _Bad(f"is not a valid regular expression: {e}") from None
    return text


AGENT_FIELDS: dict[str, Callable[[Any], Any]] = {
    "role": _role,
    "command": _command,
    "cwd": lambda v: _nonempty(v, "a non-empty path"),
    "worktree": _bool,
    "branch": _branch,
    "base": _base,
    "env": _env,
    "tags": _tags,
    "capacity": _integer(1, "a positive integer"),
    "priority": _integer(None, "an integer"),
    "dispatch": _bool,
    "ready_pattern": _pattern,
    "busy_pattern": _pattern,
    "input_pattern": _pattern,
    "memory_warn_mb": _integer(1, "a positive integer (MiB)"),
    "memory_limit_mb": _integer(1, "a positive integer (MiB)"),
    "on_memory_limit": _choice(LIMIT_ACTIONS, "action"),
    "cpu_limit": _number(0, False, "a positive number (percent of one core)"),
    "pinned": _bool,
    "stall_after": _number(0, False, "a positive number of seconds"),
    "grace": _number(0, True, "a number of seconds, 0 or more"),
    "submit_delay": _number(0, True, "a number of seconds, 0 or more"),
}
"""Every key an agent (or a ``defaults`` table) may set, with its check and conversion."""

GOVERNOR_FIELDS: dict[str, Callable[[Any], Any]] = {
    "max_active": _integer(1, "a positive integer (agents working at once)"),
    "pause_excess": _bool,
    "memory_low_mb": _integer(1, "a positive integer (MiB of available memory)"),
    "memory_ok_mb": _integer(1, "a positive integer (MiB of available memory)"),
    "memory_psi_high": _percent(True),
    "memory_psi_ok": _percent(False),
    "cpu_psi_high": _percent(True),
    "cpu_psi_ok": _percent(False),
    "load_high": _number(0, False, "a positive number (1-minute load average per core)"),
    "load_ok": _number(0, True, "a number, 0 or more (1-minute load average per core)"),
    "pressure_action": _choice(PRESSURE_ACTIONS, "pressure action"),
    "recover_after": _number(0, True, "a number of seconds, 0 or more"),
    "samples": _integer(1, "a positive integer (consecutive samples)"),
    "dry_run": _bool,
}
"""Every key of the squad's ``[governor]`` table, with its check and conversion."""

_HYSTERESIS = (
    # recovery key, acting key, recovery must be above the acting threshold (else below)
    ("memory_ok_mb", "memory_low_mb", True),
    ("memory_psi_ok", "memory_psi_high", False),
    ("cpu_psi_ok", "cpu_psi_high", False),
    ("load_ok", "load_high", False),
)

_SQUAD_KEYS = ("name", "repo", "worktree_root", "dispatch_policy", "notify", "governor",
               "defaults", "teams")
_TEAM_KEYS = ("name", "session", "defaults", "agents")
_AGENT_KEYS = ("name", *AGENT_FIELDS)
_MISPLACED = {
    ("squad", "agent setting"): "settings for every agent go in a [defaults] table",
    ("squad", "team setting"): "`session` is set per team, in its [[teams]] entry",
    ("squad", "agents"): "agents belong to a team: write [[teams.agents]] after a [[teams]] entry",
    ("team", "agent setting"): "agent settings for the whole team go in [teams.defaults], "
                               "or in each [[teams.agents]] entry",
    ("team", "squad setting"): "this is a squad setting: put it at the top of the file, "
                               "before any [table]",
    ("agent", "team setting"): "`session` is set per team, in its [[teams]] entry",
    ("agent", "squad setting"): "this is a squad setting: put it at the top of the file, "
                                "before any [table]",
    ("defaults", "team setting"): "`session` is set per team, in its [[teams]] entry",
    ("defaults", "squad setting"): "this is a squad setting: put it at the top of the file, "
                                   "before any [table]",
    ("squad", "governor setting"): "squad-wide limits go in a [governor] table",
    ("team", "governor setting"): "squad-wide limits go in the squad's [governor] table",
    ("agent", "governor setting"): "squad-wide limits go in the squad's [governor] table",
    ("defaults", "governor setting"): "squad-wide limits go in the squad's [governor] table",
}
"""Hints for keys written at the wrong level, by (level, key or kind of key)."""


def _kind(key: str) -> str:
    if key in AGENT_FIELDS:
        return "agent setting"
    if key == "session":
        return "team setting"
    if key in ("repo", "worktree_root", "dispatch_policy", "notify", "governor"):
        return "squad setting"
    if key in GOVERNOR_FIELDS:
        return "governor setting"
    return key


_DEFAULTS = {f.name: f.default for f in fields(Agent) if f.default is not MISSING}


class _Problems:
    """The problems found in one layout, in document order."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.items: list[tuple[str, str]] = []

    def add(self, where: str, message: str) -> None:
        self.items.append((where, message))

    def check(self, where: str, check: Callable[[Any], Any], value: object) -> Any:
        """Run one check; record its problem and return ``None`` when it fails."""
        try:
            return check(value)
        except _Bad as e:
            self.add(where + e.sub, e.message)
            return None

    def unknown(self, where: str, key: str, level: str) -> None:
        """An unknown key at ``level`` (squad, team, agent, defaults): say where it belongs."""
        known = {"squad": _SQUAD_KEYS, "team": _TEAM_KEYS, "agent": _AGENT_KEYS,
                 "defaults": tuple(AGENT_FIELDS)}[level]
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        if hint := _MISPLACED.get((level, key)) or _MISPLACED.get((level, _kind(key))):
            advice = hint
        elif close:
            advice = f"did you mean {_show(close[0])}?"
        else:
            advice = "known keys here: " + ", ".join(known)
        self.add(f"{where}.{_key(key)}" if where else _key(key),
                 f"unknown key {_show(key)}; {advice}")

    def raise_first(self) -> None:
        """Raise a LayoutError naming every problem (the first one in its fields)."""
        if not self.items:
            return
        where, message = self.items[0]
        raise LayoutError(self.file, where, message, self.items[1:])


def _table(problems: _Problems, where: str, value: object, how: str) -> dict[str, Any] | None:
    if isinstance(value, dict):
        return value
    problems.add(where, f"must be a table ({how}), got {_show(value)}")
    return None


def _agent_settings(problems: _Problems, where: str, table: dict[str, Any],
                    *, defaults: bool) -> dict[str, Any]:
    """Check one agent or ``defaults`` table; return its valid settings, converted."""
    good: dict[str, Any] = {}
    for key, value in table.items():
        path = f"{where}.{_key(key)}"
        if key == "name" and defaults:
            problems.add(path, "cannot be a default: every agent names itself in [[teams.agents]]")
        elif key == "team":
            problems.add(path, "an agent's team is the [[teams]] entry it is listed under; "
                               "remove this key")
        elif key == "name":
            name = problems.check(path, safe_name, value)
            if name is not None:
                good[key] = name
        elif key in AGENT_FIELDS:
            checked = problems.check(path, AGENT_FIELDS[key], value)
            if checked is not None:
                good[key] = checked
        else:
            problems.unknown(where, key, "defaults" if defaults else "agent")
    warn, limit = good.get("memory_warn_mb"), good.get("memory_limit_mb")
    if warn is not None and limit is not None and warn >= limit:
        problems.add(f"{where}.memory_warn_mb", _warn_above_limit(warn, limit, ""))
        del good["memory_warn_mb"]  # said once here, not again for every agent below
    return good


def _warn_above_limit(warn: int, limit: int, source: str) -> str:
    return (f"must be below memory_limit_mb ({limit}{source}), got {warn}: the warning comes "
            "before the limit; lower memory_warn_mb or raise memory_limit_mb")


def _governor(problems: _Problems, where: str, value: object) -> GovernorConfig:
    """Check the ``[governor]`` table; problems are recorded with their key paths."""
    table = _table(problems, where, value, "[governor]")
    if table is None:
        return GovernorConfig()
    good: dict[str, Any] = {}
    for key, raw in table.items():
        path = f"{where}.{_key(key)}"
        if key in GOVERNOR_FIELDS:
            checked = problems.check(path, GOVERNOR_FIELDS[key], raw)
            if checked is not None:
                good[key] = checked
        elif key in AGENT_FIELDS:
            problems.add(path, f"unknown key {_show(key)}; it is a per-agent setting: put it "
                               "in [defaults], [teams.defaults] or an agent's entry")
        else:
            close = difflib.get_close_matches(key, tuple(GOVERNOR_FIELDS), n=1, cutoff=0.6)
            advice = f"did you mean {_show(close[0])}?" if close else (
                "known keys here: " + ", ".join(GOVERNOR_FIELDS))
            problems.add(path, f"unknown key {_show(key)}; {advice}")
    for ok_key, act_key, above in _HYSTERESIS:
        ok, act = good.get(ok_key), good.get(act_key)
        if ok is None:
            continue
        if act is None and ok_key in table:
            problems.add(f"{where}.{ok_key}", f"has no effect without {act_key}: set {act_key} "
                         f"too (squad acts past {act_key} and recovers past {ok_key})")
            del good[ok_key]
        elif act is not None and ((ok <= act) if above else (ok >= act)):
            side = "above" if above else "below"
            problems.add(f"{where}.{ok_key}", f"must be {side} {act_key} ({act}), got {ok}: "
                         f"squad acts past {act_key} and recovers once past {ok_key}")
            del good[ok_key]
    if good.get("pause_excess") and "max_active" not in good:
        problems.add(f"{where}.pause_excess", "needs max_active: set how many agents may work "
                                              "at once")
    return GovernorConfig(**good)


def _cascade(*levels: dict[str, Any]) -> dict[str, Any]:
    """Later levels override earlier ones; ``env`` tables merge."""
    merged: dict[str, Any] = {}
    env: dict[str, str] = {}
    for level in levels:
        merged.update(level)
        env.update(level.get("env", {}))
    merged["env"] = env
    return merged


def default_role(name: str) -> str:
    """``pm`` -> ``PM``, ``qa`` -> ``QA``, ``dev`` -> ``Dev``."""
    return name.upper() if len(name) <= 2 else name.capitalize()


def _path(value: object, base_dir: Path) -> Path:
    """A path from the layout, absolute; relative ones are relative to the layout's directory."""
    text = _nonempty(value, "a non-empty path")
    try:
        path = Path(text).expanduser()
        return (path if path.is_absolute() else base_dir / path).resolve()
    except (OSError, RuntimeError) as e:  # too long, symlink loop, unknown ~user
        raise _Bad(f"cannot use {_show(text)}: {e}") from None


def _directory_problem(path: Path) -> str | None:
    try:
        if path.is_dir():
            return None
        return "is not a directory" if path.exists() else "does not exist"
    except OSError as e:
        return f"cannot be used ({e.strerror or e})"


def _git_problem(repo: Path) -> str | None:
    """Why ``repo`` cannot hold worktrees, or ``None`` if it is a git repository."""
    try:
        proc = subprocess.run(["git", "-C", str(repo), "rev-parse", "--show-toplevel"],
                              capture_output=True, text=True, check=False, timeout=30)
    except FileNotFoundError:
        return "git is not installed"
    except (OSError, subprocess.SubprocessError) as e:
        return f"git could not run ({e})"
    if proc.returncode == 0:
        return None
    said = (proc.stderr or proc.stdout).strip().splitlines()
    detail = said[-1].removeprefix("fatal: ") if said else f"exit status {proc.returncode}"
    if "not a git repository" in detail:
        return f"{repo} is not a git repository"
    return f"git does not accept {repo} as a repository ({detail})"


def loads(text: str, *, source: str | os.PathLike[str], base_dir: Path) -> Squad:
    """Parse and validate a layout from a string.

    ``source`` names the layout in error messages; relative paths in it are relative to
    ``base_dir``. Raises :class:`LayoutError` for the first problem (saying how many more
    there are).
    """
    file = os.fspath(source)
    try:
        data = tomllib.loads(text.removeprefix("\ufeff"))
    except tomllib.TOMLDecodeError as e:
        message = str(e)
        if m := _TOML_POSITION.search(message):
            where = f"line {m.group(1)}"
            message = f"{message[:m.start()]} (column {m.group(2)})"
        else:
            where = "end of file" if _TOML_AT_END.search(message) else ""
            message = _TOML_AT_END.sub("", message)
        raise LayoutError(file, where, message) from None
    except RecursionError:
        raise LayoutError(file, "", "arrays or tables are nested too deeply") from None
    try:
        base = Path(base_dir).resolve()
    except (OSError, RuntimeError) as e:
        raise LayoutError(file, "", f"cannot use directory {base_dir}: {e}") from None
    return _build(data, file, base, Path(source))


def load(path: str | os.PathLike[str]) -> Squad:
    """Read and validate a layout file. Raises :class:`LayoutError` for any problem."""
    file = os.fspath(path)
    if "\0" in file:
        raise LayoutError(file.replace("\0", "\\0"), "", "a file name cannot contain NUL")
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise LayoutError(file, "", "no such file") from None
    except IsADirectoryError:
        raise LayoutError(file, "", "is a directory, not a layout file") from None
    except OSError as e:
        raise LayoutError(file, "", f"cannot be read: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise LayoutError(file, f"line {line}",
                          "is not UTF-8 text: save the file as UTF-8") from None
    squad = loads(text, source=file, base_dir=Path(path).absolute().parent)
    return replace(squad, source=Path(path).absolute())


def _build(data: dict[str, Any], file: str, base_dir: Path, source: Path) -> Squad:
    problems = _Problems(file)
    name: str | None = None
    repo = base_dir
    repo_ok = True
    worktree_root: Path | None = None
    policy = "least-loaded"
    notify = NotifyConfig()
    governor = GovernorConfig()
    defaults: dict[str, Any] = {}
    teams_raw: object = None

    if "name" not in data:
        problems.add("name", 'is required: add name = "my-squad" at the top of the file')
    for key, value in data.items():
        if key == "name":
            name = problems.check(key, safe_name, value)
        elif key == "repo":
            checked = problems.check(key, lambda v: _path(v, base_dir), value)
            if checked is None:
                repo_ok = False
            elif problem := _directory_problem(checked):
                problems.add(key, f"{checked} {problem}: point `repo` at your project")
                repo_ok = False
            else:
                repo = checked
        elif key == "worktree_root":
            worktree_root = problems.check(key, lambda v: _path(v, base_dir), value)
        elif key == "dispatch_policy":
            policy_checked = problems.check(key, _string, value)
            if policy_checked in DISPATCH_POLICIES:
                policy = policy_checked
            elif policy_checked is not None:
                close = difflib.get_close_matches(policy_checked, DISPATCH_POLICIES, n=1)
                hint = f"did you mean {_show(close[0])}?" if close else (
                    "use one of " + ", ".join(_show(p) for p in DISPATCH_POLICIES))
                problems.add(key, f"unknown policy {_show(policy_checked)}; {hint}")
        elif key == "notify":
            try:
                notify = parse_notify(value, key)
            except NotifyError as e:
                for where, message in e.problems:
                    problems.add(where, message)
        elif key == "governor":
            governor = _governor(problems, key, value)
        elif key == "defaults":
            table = _table(problems, key, value, "[defaults]")
            if table is not None:
                defaults = _agent_settings(problems, key, table, defaults=True)
        elif key == "teams":
            teams_raw = value
        else:
            problems.unknown("", key, "squad")

    teams: list[tuple[int, Team]] = []
    if teams_raw is None:
        problems.add("teams", "no teams: add a [[teams]] entry with at least one "
                              "[[teams.agents]] entry")
    elif not isinstance(teams_raw, list) or not all(isinstance(t, dict) for t in teams_raw):
        problems.add("teams", f"must be an array of tables ([[teams]]), got {_show(teams_raw)}")
    elif not teams_raw:
        problems.add("teams", "no teams: add a [[teams]] entry")
    else:
        for i, team_raw in enumerate(teams_raw):
            team = _build_team(problems, f"teams[{i}]", team_raw, defaults)
            if team is not None:
                teams.append((i, team))

    _check_unique(problems, teams)
    worktree_agents = [a for _, t in teams for a in t.agents if a.worktree]
    if worktree_agents and repo_ok and (why := _git_problem(repo)):
        problems.add("repo", f"{why}, and {worktree_agents[0].target} has worktree = true: "
                             "run `git init` there, point `repo` at a git repository, or set "
                             "worktree = false")
    problems.raise_first()
    assert name is not None
    if worktree_root is None:
        worktree_root = repo.parent / f"{repo.name}.worktrees"
    return Squad(name, repo, worktree_root, tuple(t for _, t in teams), policy, notify,
                 governor=governor, source=source)


def _build_team(problems: _Problems, where: str, raw: dict[str, Any],
                squad_defaults: dict[str, Any]) -> Team | None:
    before = len(problems.items)
    name: str | None = None
    session: str | None = None
    team_defaults: dict[str, Any] = {}
    agents_raw: object = None
    if "name" not in raw:
        problems.add(f"{where}.name", 'is required: add name = "frontend" to this [[teams]] entry')
    for key, value in raw.items():
        path = f"{where}.{_key(key)}"
        if key == "name":
            name = problems.check(path, safe_name, value)
        elif key == "session":
            session = problems.check(path, safe_name, value)
        elif key == "defaults":
            table = _table(problems, path, value, "[teams.defaults]")
            if table is not None:
                team_defaults = _agent_settings(problems, path, table, defaults=True)
        elif key == "agents":
            agents_raw = value
        else:
            problems.unknown(where, key, "team")

    agents: list[Agent] = []
    path = f"{where}.agents"
    if agents_raw is None:
        problems.add(path, "the team has no agents: add a [[teams.agents]] entry after it")
    elif not isinstance(agents_raw, list) or not all(isinstance(a, dict) for a in agents_raw):
        problems.add(path, "must be an array of tables ([[teams.agents]]), "
                           f"got {_show(agents_raw)}")
    elif not agents_raw:
        problems.add(path, "the team has no agents: add a [[teams.agents]] entry after it")
    else:
        seen: dict[str, int] = {}
        for j, agent_raw in enumerate(agents_raw):
            apath = f"{path}[{j}]"
            settings = _agent_settings(problems, apath, agent_raw, defaults=False)
            if "name" not in agent_raw:
                problems.add(f"{apath}.name", 'is required: add name = "dev" to this agent')
            merged = _cascade(squad_defaults, team_defaults, settings)
            _check_memory(problems, merged, (("defaults", squad_defaults),
                                             (f"{where}.defaults", team_defaults),
                                             (apath, settings)))
            if "command" not in merged:
                if "command" not in agent_raw:  # else its problem is already recorded
                    problems.add(apath, "has no command: set `command` here, in the team's "
                                        "[teams.defaults], or in [defaults]")
                continue
            agent_name = settings.get("name")
            if agent_name is None:
                continue
            if agent_name in seen:
                problems.add(f"{apath}.name", f"{_show(agent_name)} is already the name of "
                             f"{path}[{seen[agent_name]}]: agent names must differ within a team")
                continue
            seen[agent_name] = j
            merged.setdefault("role", default_role(agent_name))
            if name is not None:
                agents.append(Agent(team=name, **merged))
    if name is None or len(problems.items) > before:
        return None
    return Team(name, session or name, tuple(agents))


def _check_memory(problems: _Problems, merged: dict[str, Any],
                  levels: tuple[tuple[str, dict[str, Any]], ...]) -> None:
    """``memory_warn_mb`` below ``memory_limit_mb`` once the cascade has put them together;
    said at the deepest level that set either (once, however many agents inherit it)."""
    warn, limit = merged.get("memory_warn_mb"), merged.get("memory_limit_mb")
    if warn is None or limit is None or warn < limit:
        return
    where, level = next((w, lv) for w, lv in reversed(levels)
                        if "memory_warn_mb" in lv or "memory_limit_mb" in lv)
    names = {"defaults": "[defaults]"}
    if "memory_warn_mb" in level:
        origin = next(w for w, lv in reversed(levels) if "memory_limit_mb" in lv)
        message = _warn_above_limit(warn, limit, f", from {names.get(origin, origin)}")
        key = "memory_warn_mb"
    else:
        origin = next(w for w, lv in reversed(levels) if "memory_warn_mb" in lv)
        message = (f"must be above memory_warn_mb ({warn}, from {names.get(origin, origin)}), "
                   f"got {limit}: the warning comes before the limit; raise memory_limit_mb or "
                   "lower memory_warn_mb")
        key = "memory_limit_mb"
    if (f"{where}.{key}", message) not in problems.items:
        problems.add(f"{where}.{key}", message)
    merged.pop("memory_warn_mb")


def _check_unique(problems: _Problems, teams: list[tuple[int, Team]]) -> None:
    """Team names, session names and worktree branches must not collide."""
    names: dict[str, int] = {}
    sessions: dict[str, int] = {}
    branches: dict[str, Agent] = {}
    for i, team in teams:
        where = f"teams[{i}]"
        if team.name in names:
            problems.add(f"{where}.name", f"{_show(team.name)} is already the name of "
                         f"teams[{names[team.name]}]: team names must differ")
            continue
        names[team.name] = i
        if team.session in sessions:
            key = "session" if team.session != team.name else "name"
            problems.add(f"{where}.{key}", f"tmux session {_show(team.session)} is already used "
                         f"by teams[{sessions[team.session]}]: give this team another "
                         "`session` name")
        sessions.setdefault(team.session, i)
        for j, agent in enumerate(team.agents):
            if not agent.worktree:
                continue
            branch = agent.branch_name()
            if branch in branches:
                problems.add(f"{where}.agents[{j}].branch",
                             f"branch {_show(branch)} is already the branch of "
                             f"{branches[branch].target}: git checks a branch out in one "
                             "worktree only; give each worktree agent its own branch")
            branches.setdefault(branch, agent)


# -- dump ------------------------------------------------------------------------------------


def _dump_agent(agent: Agent) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": agent.name,
        "role": agent.role,
        "command": agent.command if isinstance(agent.command, str) else list(agent.command),
    }
    for f in fields(Agent):
        if f.name in ("team", "name", "role", "command"):
            continue
        value = getattr(agent, f.name)
        default = {} if f.name == "env" else _DEFAULTS.get(f.name)
        if value is None or value == default:
            continue
        out[f.name] = list(value) if isinstance(value, tuple) else value
    if "env" in out:  # tables after plain keys, so the TOML reads top to bottom
        out["env"] = dict(out.pop("env"))
    return out


def dump(squad: Squad) -> str:
    """The squad as a layout file, fully resolved: no ``[defaults]``, absolute paths.

    ``loads`` reads it back to an equal squad, whatever its ``base_dir``.
    """
    doc = {
        "name": squad.name,
        "repo": str(squad.repo),
        "worktree_root": str(squad.worktree_root),
        "dispatch_policy": squad.dispatch_policy,
        **({"notify": squad.notify.to_table()} if squad.notify != NotifyConfig() else {}),
        **({"governor": squad.governor.to_table()}
           if squad.governor != GovernorConfig() else {}),
        "teams": [
            {"name": t.name, "session": t.session, "agents": [_dump_agent(a) for a in t.agents]}
            for t in squad.teams
        ],
    }
    origin = f" from {str(squad.source)!r}" if squad.source else ""
    header = f"# squad {squad.name!r}, resolved{origin}: every agent written out\n"
    return header + tomli_w.dumps(doc)


# -- programs --------------------------------------------------------------------------------


def check_programs(squad: Squad, path_env: str | None = None) -> list[tuple[Agent, str]]:
    """Agents whose program cannot be found, with the program's name.

    A bare name is looked up on the agent's own ``PATH`` (its ``env``), else ``path_env``,
    else this process's ``PATH``. A path with a slash must be an executable file; a relative
    one is relative to the agent's directory (not checked while that directory does not
    exist yet, as with a worktree still to be created).
    """
    missing: list[tuple[Agent, str]] = []
    for agent in squad.agents():
        program = agent.program
        if program is None:
            continue
        if "/" in program:
            path = Path(program)
            if not path.is_absolute():
                workdir = squad.agent_dir(agent)
                if not workdir.is_dir():
                    continue
                path = workdir / path
            found = path.is_file() and os.access(path, os.X_OK)
        else:
            search = agent.env.get("PATH") or path_env or os.environ.get("PATH") or os.defpath
            found = shutil.which(program, path=search) is not None
        if not found:
            missing.append((agent, program))
    return missing
