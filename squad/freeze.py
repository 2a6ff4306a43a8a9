"""Freeze: a squad written back as the layout file a person would write.

:func:`squad.layout.dump` writes every agent out in full, which is right for squad's own
record but not for a file to read, share or commit. :func:`freeze` writes the same squad the
way the README teaches: values equal to the built-in defaults left out, settings shared by
agents lifted into ``[defaults]`` and ``[teams.defaults]``, paths relative to the file's
directory. ``layout.loads`` reads the text back to an equal squad.

**The factoring rule**, decided per agent key and, for ``env``, per variable:

* A value goes up a level when more than half of the agents below share it and writing it
  once there, plus the agents that differ, takes fewer keys than writing it in every agent
  that has it. So a value shared by every agent of the squad (two or more) goes to
  ``[defaults]``; one shared by every agent of a team (and not already in ``[defaults]``)
  to that team's ``[teams.defaults]``; a value most agents share goes up too, and the few
  that differ say so themselves. A value only a minority shares stays with those agents,
  even where lifting it would save a key: ``[defaults]`` should read as the norm.
* When two choices need as many keys, the one whose value more agents share wins (counting
  only values shared by two or more), then the one that writes less structure.
* Nothing goes up over an agent that could not undo it: a TOML file cannot say "no ``cwd``"
  (``None``), and an ``env`` variable set above cannot be unset below.

The text is tomli-w's, with two touches checked by parsing both texts: short arrays of plain
values on one line (``tags = ["web", "css"]``), and short ``env`` tables inline in their
table (``env = { PORT = "3000" }``), as the README writes them.

Agent keys are read generically (:func:`dataclasses.fields` of :class:`~squad.layout.Agent`
filtered by the keys a layout may set, :data:`squad.layout.AGENT_FIELDS`), so keys added to
``Agent`` later are frozen too. A few are special by name: ``role`` is left out when it is the
default for the agent's name, ``branch`` when it is the default ``squad/TEAM/AGENT``,
``command`` has no default, and ``env`` is factored per variable. A team's ``session`` is left
out when it is the team's name.

One loss is deliberate: a ``branch`` written out equal to its default comes back as ``None``
(the same branch, :meth:`~squad.layout.Agent.branch_name`), not as the string.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import MISSING, Field, fields
from pathlib import Path
from typing import Any

import tomli_w

from squad.layout import AGENT_FIELDS, Agent, Squad, Team, default_role
from squad.notify import NotifyConfig


class _Unset:
    """A value a layout cannot write: no command, no ``env`` variable."""

    def __init__(self, what: str) -> None:
        self.what = what

    def __repr__(self) -> str:
        return f"<{self.what}>"


_NO_COMMAND = _Unset("no command")
_NO_VAR = _Unset("not set")

_UP = object()
"""A level's choice "set nothing here": agents inherit from the level above."""


def _writable(value: object) -> bool:
    """Whether an agent can state ``value`` itself (TOML has no null)."""
    return value is not None and not isinstance(value, _Unset)


def _field_default(f: Field[Any]) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return _NO_COMMAND if f.name == "command" else _Unset(f"no {f.name}")


def _toml(value: Any) -> Any:
    """A field's value as tomli-w writes it."""
    if hasattr(value, "to_table"):
        return value.to_table()
    if isinstance(value, tuple | list):
        return [_toml(v) for v in value]
    if isinstance(value, dict):
        return {k: _toml(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value


# -- the factoring ------------------------------------------------------------------------


class _Key:
    """One agent key (or one ``env`` variable): what each agent wants and its built-in value."""

    def __init__(self, want: Callable[[Agent], Any], builtin: Callable[[Agent], Any]) -> None:
        self.want = want
        self.builtin = builtin


def _distinct(values: Sequence[Any]) -> list[tuple[Any, int]]:
    """Writable values with how many agents want each, in order of first appearance.

    Values are compared with ``==`` (some, like dicts, cannot be hashed).
    """
    out: list[list[Any]] = []
    for v in values:
        if not _writable(v):
            continue
        for entry in out:
            if entry[0] == v and type(entry[0]) is type(v):
                entry[1] += 1
                break
        else:
            out.append([v, 1])
    return [(v, n) for v, n in out]


def _agent_cost(want: Any, inherited: Any) -> float:
    if want == inherited and type(want) is type(inherited):
        return 0
    return 1 if _writable(want) else math.inf


def _shared(n: int) -> int:
    """Sharing counts for a tie only when two or more agents share the value."""
    return n if n >= 2 else 0


def _team_choice(wants: list[Any], inherited: list[Any]) -> tuple[float, Any]:
    """The team's ``[teams.defaults]`` value for one key: (cost in keys, value or ``_UP``)."""
    kept = sum(_agent_cost(w, i) == 0 for w, i in zip(wants, inherited, strict=True))
    cost_up = sum(_agent_cost(w, i) for w, i in zip(wants, inherited, strict=True))
    best: tuple[tuple[float, int, int, int], Any] = ((cost_up, -_shared(kept), 0, -1), _UP)
    for order, (value, n) in enumerate(_distinct(wants)):
        if 2 * n <= len(wants):
            continue  # only a value most of the team shares
        cost = 1 + sum(_agent_cost(w, value) for w in wants)
        rank = (cost, -_shared(n), 1, order)
        if rank < best[0]:
            best = (rank, value)
    return best[0][0], best[1]


def _factor(squad: Squad, key: _Key) -> tuple[Any, list[Any], list[list[Any]]]:
    """Where one key is written: the ``[defaults]`` value, each team's, each agent's.

    ``_UP`` at a level means the level does not set the key.
    """
    teams = [list(t.agents) for t in squad.teams]
    wants = [[key.want(a) for a in agents] for agents in teams]
    builtins = [[key.builtin(a) for a in agents] for agents in teams]
    all_wants = [w for ws in wants for w in ws]

    def total(level: Any) -> tuple[float, list[Any]]:
        cost: float = 0 if level is _UP else 1
        choices = []
        for ws, bs in zip(wants, builtins, strict=True):
            inherited = bs if level is _UP else [level] * len(ws)
            team_cost, choice = _team_choice(ws, inherited)
            cost += team_cost
            choices.append(choice)
        return cost, choices

    kept = sum(_agent_cost(w, b) == 0 for ws, bs in zip(wants, builtins, strict=True)
               for w, b in zip(ws, bs, strict=True))
    cost, choices = total(_UP)
    best = ((cost, -_shared(kept), 0, -1), _UP, choices)
    for order, (value, n) in enumerate(_distinct(all_wants)):
        if 2 * n <= len(all_wants):
            continue  # only a value most of the squad shares
        cost, choices = total(value)
        rank = (cost, -_shared(n), 1, order)
        if rank < best[0]:
            best = (rank, value, choices)
    (cost, *_), level, team_levels = best
    if cost == math.inf:
        raise ValueError(f"squad {squad.name!r}: a value cannot be written as a layout")
    per_agent: list[list[Any]] = []
    for ws, bs, team_level in zip(wants, builtins, team_levels, strict=True):
        row = []
        for w, b in zip(ws, bs, strict=True):
            inherited = team_level if team_level is not _UP else (
                level if level is not _UP else b)
            row.append(_UP if _agent_cost(w, inherited) == 0 else w)
        per_agent.append(row)
    return level, team_levels, per_agent


def _keys(squad: Squad) -> list[tuple[str, str | None, _Key]]:
    """Every key to factor: (agent key, env variable or ``None``, how to read it)."""
    out: list[tuple[str, str | None, _Key]] = []
    for f in fields(Agent):
        if f.name not in AGENT_FIELDS:
            continue  # team, name, and anything a layout cannot set
        if f.name == "env":
            # Sorted: the order a loaded env has depends on where each variable was set,
            # and a squad frozen, loaded and frozen again should give the same text.
            for var in sorted({v for agent in squad.agents() for v in agent.env}):
                out.append(("env", var, _Key(lambda a, v=var: a.env.get(v, _NO_VAR),
                                             lambda a: _NO_VAR)))
            continue
        default = _field_default(f)
        if f.name == "role":
            key = _Key(lambda a: a.role, lambda a: default_role(a.name))
        elif f.name == "branch":
            key = _Key(lambda a: None if a.branch == f"squad/{a.team}/{a.name}" else a.branch,
                       lambda a, d=default: d)
        else:
            key = _Key(lambda a, n=f.name: getattr(a, n), lambda a, d=default: d)
        out.append((f.name, None, key))
    return out


def _put(table: dict[str, Any], name: str, var: str | None, value: Any) -> None:
    if value is _UP:
        return
    if var is None:
        table[name] = _toml(value)
    else:
        table.setdefault("env", {})[var] = value


def _env_last(table: dict[str, Any]) -> dict[str, Any]:
    """Plain keys first, then the ``env`` table, so the TOML reads top to bottom."""
    if "env" in table:
        table["env"] = table.pop("env")
    return table


# -- paths -------------------------------------------------------------------------------


def _reads_back(text: str, base: Path) -> Path | None:
    """Where ``layout.loads`` puts a path written as ``text`` (as its ``_path`` does)."""
    try:
        path = Path(text).expanduser()
        return (path if path.is_absolute() else base / path).resolve()
    except (OSError, RuntimeError):
        return None


def _path_text(target: Path, base: Path | None) -> str:
    """``target`` relative to ``base`` when that is shorter and reads back the same."""
    absolute = str(target)
    if base is None:
        return absolute
    try:
        relative = os.path.relpath(target, base)
    except ValueError:  # another drive (Windows)
        return absolute
    if len(relative) < len(absolute) and _reads_back(relative, base) == target:
        return relative
    return absolute


# -- the document ------------------------------------------------------------------------

_SQUAD_BY_NAME = frozenset({"name", "repo", "worktree_root", "teams", "dispatch_policy",
                            "notify", "source"})
_TEAM_BY_NAME = frozenset({"name", "session", "agents"})


def _other_fields(obj: Squad | Team, known: frozenset[str]) -> dict[str, Any]:
    """Fields added to ``Squad`` or ``Team`` later: written when they differ from default."""
    out: dict[str, Any] = {}
    for f in fields(obj):
        if f.name in known or not f.compare:
            continue
        value = getattr(obj, f.name)
        default = _field_default(f)
        if _writable(value) and not (value == default and type(value) is type(default)):
            out[f.name] = _toml(value)
    return out


def freeze(squad: Squad, *, base_dir: Path | None = None) -> str:
    """The squad as a layout file a person would write (see the module's factoring rule).

    ``base_dir`` is the directory the file will be written to: ``repo`` and
    ``worktree_root`` are written relative to it where that is shorter and reads back the
    same, and ``repo`` is left out when it is that directory. Without ``base_dir`` paths are
    absolute, right wherever the text ends up. ``layout.loads(text, base_dir=base_dir)``
    gives back a squad equal to ``squad``.
    """
    base = base_dir.resolve() if base_dir is not None else None
    doc: dict[str, Any] = {"name": squad.name}
    if base is None or squad.repo != base:
        doc["repo"] = _path_text(squad.repo, base)
    if squad.worktree_root != squad.repo.parent / f"{squad.repo.name}.worktrees":
        doc["worktree_root"] = _path_text(squad.worktree_root, base)
    policy_default = next(_field_default(f) for f in fields(Squad) if f.name == "dispatch_policy")
    if squad.dispatch_policy != policy_default:
        doc["dispatch_policy"] = squad.dispatch_policy
    doc.update(_other_fields(squad, _SQUAD_BY_NAME))

    defaults: dict[str, Any] = {}
    team_defaults: list[dict[str, Any]] = [{} for _ in squad.teams]
    agents: list[list[dict[str, Any]]] = [[{"name": a.name} for a in t.agents]
                                          for t in squad.teams]
    for name, var, key in _keys(squad):
        level, team_levels, per_agent = _factor(squad, key)
        _put(defaults, name, var, level)
        for table, value in zip(team_defaults, team_levels, strict=True):
            _put(table, name, var, value)
        for tables, values in zip(agents, per_agent, strict=True):
            for table, value in zip(tables, values, strict=True):
                _put(table, name, var, value)

    if defaults:
        doc["defaults"] = _env_last(defaults)
    if squad.notify != NotifyConfig():
        doc["notify"] = squad.notify.to_table()
    doc["teams"] = []
    for team, own, tables in zip(squad.teams, team_defaults, agents, strict=True):
        entry: dict[str, Any] = {"name": team.name}
        if team.session != team.name:
            entry["session"] = team.session
        entry.update(_other_fields(team, _TEAM_BY_NAME))
        if own:
            entry["defaults"] = _env_last(own)
        entry["agents"] = [_env_last(t) for t in tables]
        doc["teams"].append(entry)
    return _tidy(tomli_w.dumps(doc))


# -- layout of the text --------------------------------------------------------------------

_MAX_LINE = 100
_ENV_PARENTS = {"defaults": "[defaults]", "teams.defaults": "[teams.defaults]",
                "teams.agents": "[[teams.agents]]"}


def _one_line_arrays(lines: list[str]) -> list[str]:
    """``key = [`` / ``    "a",`` / ``]`` -> ``key = ["a"]`` for short arrays of plain values.

    tomli-w writes every item of an array on its own line (strings never contain a raw
    newline), indented by four spaces, and the closing bracket at the start of a line.
    """
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.endswith(" = [") and not line.startswith(" "):
            j = i + 1
            items = []
            while j < len(lines) and lines[j].startswith("    ") and lines[j].endswith(","):
                items.append(lines[j][4:-1])
                j += 1
            plain = all(not item.startswith(("{", "[", " ")) for item in items)
            joined = f"{line[:-1]}[{', '.join(items)}]"
            if items and plain and j < len(lines) and lines[j] == "]" and (
                    len(joined) <= _MAX_LINE):
                out.append(joined)
                i = j + 1
                continue
        out.append(line)
        i += 1
    return out


def _inline_env(lines: list[str]) -> list[str]:
    """Move a short ``[P.env]`` sub-table into its table as ``env = { A = "1" }``.

    tomli-w writes a table's plain keys, then a blank line, then its ``env`` sub-table; when
    the table has no plain keys it writes no header of its own, and one is added.
    """
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        parent = line[1:-len(".env]")] if line.startswith("[") and line.endswith(".env]") else ""
        if parent in _ENV_PARENTS and not line.startswith("[["):
            j = i + 1
            body = []
            while j < len(lines) and lines[j] and not lines[j].startswith("["):
                body.append(lines[j])
                j += 1
            inline = "env = { " + ", ".join(body) + " }"
            if body and len(inline) <= _MAX_LINE:
                k = len(out) - 2  # out[-1] is the blank line before the sub-table
                while k >= 0 and out[k] and not out[k].startswith("["):
                    k -= 1
                if (out and not out[-1] and k >= 0 and out[k] == _ENV_PARENTS[parent]
                        and k < len(out) - 2):
                    out.insert(len(out) - 1, inline)  # after the table's keys
                elif parent != "teams.agents":
                    out.extend([_ENV_PARENTS[parent], inline])
                else:
                    out.append(line)
                    i += 1
                    continue
                i = j
                continue
        out.append(line)
        i += 1
    # Moving a sub-table leaves its blank line behind; no string spans lines, so drop doubles.
    return [line for n, line in enumerate(out) if line or n == 0 or out[n - 1]]


def _tidy(text: str) -> str:
    """tomli-w's text with short arrays and ``env`` tables on one line, if that parses equal."""
    tidy = "\n".join(_inline_env(_one_line_arrays(text.split("\n"))))
    try:
        same = tomllib.loads(tidy) == tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        same = False
    return tidy if same else text
