"""Import: a tmuxp workspace or a tmuxinator project turned into a squad layout.

People come to squad with tmux sessions already described for tmuxp (YAML or JSON) or
tmuxinator (YAML). :func:`import_workspace` maps what has an equivalent and says what has
not, so nothing is dropped silently:

* the session (tmuxp ``session_name``, tmuxinator ``name``) becomes the squad and its one
  team (a safe slug of the name);
* each window becomes an agent: its role is the window's name, its name a safe slug of it,
  made unique; its command is what the window's first pane runs;
* the session's ``start_directory`` / ``root`` becomes ``repo`` (relative paths are relative
  to the workspace file, which is also the default), a window's (or its first pane's)
  becomes the agent's ``cwd``;
* ``environment`` (session, window, first pane) becomes ``env``.

Everything else (more panes, layouts, hooks, commands typed before every pane, focus, tmux
options, ...) becomes a note naming where it came from. tmuxp and tmuxinator type a pane's
commands into an interactive shell; squad runs one command, so several are joined with
``&&`` and a note says how that differs.

The layout is validated with :func:`squad.layout.loads` and written by
:func:`squad.freeze.freeze`, so it reads like a hand-written one. PyYAML is imported only
here, and only when a YAML file is read.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from squad.errors import LayoutError, SquadError
from squad.freeze import freeze
from squad.layout import SAFE_NAME, Squad, loads

SHELL_AFTER = 'exec "${SHELL:-sh}"'
"""What an agent runs when its window only prepared a shell (or ran nothing): the shell."""

_SHELL_SETUP = frozenset({"cd", "pushd", "popd", "source", ".", "export", "set", "unset",
                          "alias", "unalias", "ulimit", "umask", "clear", "workon", "nvm",
                          "conda", "rbenv", "pyenv", "rvm"})
"""Commands whose only effect is on the shell they are typed into."""

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ROLE_BAD = re.compile(r"[:.\x00-\x1f\x7f]+")
_AGENT_INDEX = re.compile(r"^teams\[0\]\.agents\[(\d+)\]")


class WorkspaceError(SquadError):
    """A tmuxp or tmuxinator file that cannot be read or converted.

    The message names the file and where in it (``windows[2].panes``, ``line 4``).
    """

    def __init__(self, file: str, where: str, message: str) -> None:
        self.file = file
        self.where = where
        self.message = message
        super().__init__(f"{file}: {where}: {message}" if where else f"{file}: {message}")


@dataclass
class _Window:
    """One window as far as squad cares: a name, what runs, where, with which environment."""

    where: str
    title: str | None
    commands: list[str] = field(default_factory=list)
    program: str | None = None
    """A program the commands are typed into instead of a shell (tmuxp ``shell``)."""
    directory: Path | None = None
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class _Session:
    tool: str
    name: str
    directory: Path
    env: dict[str, str]
    windows: list[_Window]


class _Notes:
    """What has no equivalent in squad, one line each, naming the file and where; in the
    file's order (session first, then window by window), whenever each was found."""

    _WINDOW = re.compile(r"^(?:windows|tabs)\[(\d+)\]")

    def __init__(self, file: str) -> None:
        self.file = file
        self._items: list[tuple[int, str]] = []

    def add(self, where: str, message: str) -> None:
        m = self._WINDOW.match(where)
        self._items.append((int(m.group(1)) if m else -1,
                            f"{self.file}: {where}: {message}" if where
                            else f"{self.file}: {message}"))

    @property
    def items(self) -> list[str]:
        return [text for _, text in sorted(self._items, key=lambda item: item[0])]


def import_workspace(path: Path, *, base_dir: Path | None = None) -> tuple[str, list[str]]:
    """The squad layout for a tmuxp workspace or tmuxinator project, and the notes.

    ``base_dir`` is where the layout will be written (its paths are made relative to it, see
    :func:`~squad.freeze.freeze`); without it paths are absolute. Raises
    :class:`WorkspaceError` for a file that cannot be read, is not a workspace, or does not
    make a valid squad.
    """
    file = os.fspath(path)
    text = _read(Path(path), file)
    data = _parse(text, Path(path), file)
    notes = _Notes(file)
    here = Path(path).absolute().parent
    if not isinstance(data, dict):
        raise WorkspaceError(file, "", "is not a tmuxp or tmuxinator workspace: expected "
                                       "settings (session_name or name, windows, ...), got "
                                       f"{_kind(data)}")
    if "session_name" in data:
        session = _tmuxp(data, here, file, notes)
    elif "name" in data or "project_name" in data:
        if "<%" in text:
            line = text[:text.index("<%")].count("\n") + 1
            notes.add(f"line {line}", "ERB (<% ... %>) is not evaluated: its text is kept as "
                                      "written; put real values there")
        session = _tmuxinator(data, here, file, notes)
    else:
        raise WorkspaceError(file, "", "is not a tmuxp or tmuxinator workspace: it has "
                                       "neither session_name (tmuxp) nor name (tmuxinator)")
    squad = _squad(session, file, notes)
    frozen = freeze(squad, base_dir=base_dir)
    back = loads(frozen, source=file, base_dir=base_dir or squad.repo)
    assert back == squad, f"freeze lost something converting {file}"
    return frozen, notes.items


# -- reading ---------------------------------------------------------------------------------


def _read(path: Path, file: str) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise WorkspaceError(file, "", "no such file") from None
    except IsADirectoryError:
        raise WorkspaceError(file, "", "is a directory, not a workspace file") from None
    except OSError as e:
        raise WorkspaceError(file, "", f"cannot be read: {e.strerror or e}") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise WorkspaceError(file, f"line {line}", "is not UTF-8 text") from None


def _parse(text: str, path: Path, file: str) -> Any:
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise WorkspaceError(file, f"line {e.lineno}",
                                 f"is not valid JSON: {e.msg} (column {e.colno})") from None
        except RecursionError:
            raise WorkspaceError(file, "", "is nested too deeply") from None
    try:
        import yaml
    except ImportError:
        raise WorkspaceError(file, "", "reading YAML needs PyYAML: pip install pyyaml") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        if mark is None:
            raise WorkspaceError(file, "", f"is not valid YAML: {problem}") from None
        raise WorkspaceError(file, f"line {mark.line + 1}", f"is not valid YAML: {problem} "
                                                            f"(column {mark.column + 1})") from None
    except RecursionError:
        raise WorkspaceError(file, "", "is nested too deeply") from None


def _kind(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"the {type(value).__name__} {value!r}"


def _scalar(value: object) -> str:
    """A YAML scalar as text, the way the user typed it (``true``, not ``True``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _shown(commands: list[str], limit: int = 3) -> str:
    """Commands for a note: the first few, quoted, long ones cut short."""
    shown = ", ".join("an empty shell" if not c else f"`{c if len(c) <= 60 else c[:57] + '...'}`"
                      for c in commands[:limit])
    more = len(commands) - limit
    return shown + (f" and {more} more" if more > 0 else "") if commands else "an empty shell"


# -- the two formats -------------------------------------------------------------------------

_TMUXP_SESSION_NOTES = {
    "before_script": "runs once before tmuxp builds the session; run it yourself before "
                     "`squad up`",
    "options": "tmux session options; squad sets its own",
    "global_options": "tmux global options; squad runs its own tmux server",
    "suppress_history": "squad types nothing into a shell, so there is no history to keep",
    "socket_name": "squad uses its own tmux socket (squad -L NAME picks another)",
    "config": "a tmux configuration file; squad's tmux server does not read it",
    "plugins": "tmuxp plugins have no equivalent",
}
_TMUXP_WINDOW_NOTES = {
    "layout": "squad gives each agent one window of one pane: nothing to lay out",
    "options": "tmux window options; squad sets its own",
    "options_after": "tmux window options; squad sets its own",
    "focus": "squad's UI selects agents; nothing is focused on start",
    "suppress_history": "squad types nothing into a shell, so there is no history to keep",
    "window_index": "windows are in layout order",
}
_TMUXP_PANE_NOTES = {
    "focus": "squad's UI selects agents; nothing is focused on start",
    "suppress_history": "squad types nothing into a shell, so there is no history to keep",
    "sleep_before": "pauses between typed commands have no equivalent",
    "sleep_after": "pauses between typed commands have no equivalent",
}
_BEFORE = ("is typed into every pane before its own commands; squad has no equivalent: add "
           "it to the commands that need it")


def _tmuxp(data: dict[str, Any], here: Path, file: str, notes: _Notes) -> _Session:
    name = _expand(_scalar(data["session_name"]), "session_name", notes, tmuxp=True)
    directory = _session_dir(data, "start_directory", here, file, notes, tmuxp=True)
    env = _env(data.get("environment"), "environment", file, notes, tmuxp=True)
    for key, value in data.items():
        if key in ("session_name", "start_directory", "environment", "windows"):
            continue
        if key == "shell_command_before":
            notes.add(key, f"{_shown(_tmuxp_commands(value, key, file, notes))} {_BEFORE}")
        elif key.startswith("on_") or key.startswith("workspace_builder"):
            notes.add(key, f"`{_scalar(value)}`: tmuxp hooks and builders have no equivalent")
        else:
            notes.add(key, _TMUXP_SESSION_NOTES.get(key, "has no equivalent in squad"))
    windows = []
    for i, raw in enumerate(_window_list(data, "windows", file)):
        if not isinstance(raw, dict):
            raise WorkspaceError(file, f"windows[{i}]", "must be a window (window_name, panes, "
                                                         f"...), got {_kind(raw)}")
        windows.append(_tmuxp_window(raw, i, directory, file, notes))
    return _Session("tmuxp", name, directory, env, windows)


def _tmuxp_window(raw: dict[str, Any], i: int, session_dir: Path, file: str,
                  notes: _Notes) -> _Window:
    title = raw.get("window_name")
    title = None if title is None else _expand(_scalar(title), f"windows[{i}].window_name",
                                               notes, tmuxp=True)
    where = f'windows[{i}] "{title}"' if title else f"windows[{i}]"
    window = _Window(where, title or None)
    window.directory = _sub_dir(raw.get("start_directory"), session_dir, where, notes, True)
    window.env = _env(raw.get("environment"), f"{where}.environment", file, notes, tmuxp=True)
    for key, value in raw.items():
        if key in ("window_name", "start_directory", "environment", "panes", "window_shell"):
            continue
        if key == "shell_command_before":
            cmds = _tmuxp_commands(value, f"{where}.{key}", file, notes)
            notes.add(f"{where}.{key}", f"{_shown(cmds)} {_BEFORE}")
        elif key == "layout":
            notes.add(f"{where}.layout", f"{_scalar(value)}: {_TMUXP_WINDOW_NOTES['layout']}")
        else:
            notes.add(f"{where}.{key}", _TMUXP_WINDOW_NOTES.get(key, "has no equivalent in "
                                                                      "squad"))
    panes = raw.get("panes")
    if panes is None:
        panes = [None]  # tmuxp gives a window without panes one empty pane
    if not isinstance(panes, list):
        raise WorkspaceError(file, f"{where}.panes", f"must be a list of panes, got "
                                                     f"{_kind(panes)}")
    if not panes:
        panes = [None]
    first = f"{where}.panes[0]"
    window.commands, pane_shell, pane_dir, pane_env = _tmuxp_pane(panes[0], first, file, notes)
    if pane_dir is not None:
        window.directory = _sub_dir(pane_dir, window.directory or session_dir, first, notes,
                                    True)
    window.env.update(pane_env)
    shell = pane_shell or raw.get("window_shell")
    window.program = None if shell is None else _scalar(shell)
    if len(panes) > 1:
        others = []
        for j, pane in enumerate(panes[1:], start=1):
            quiet = _Notes(file)  # the pane is dropped whole: one note, not one per key
            cmds = _tmuxp_pane(pane, f"{where}.panes[{j}]", file, quiet)[0]
            others.append(" && ".join(cmds) if cmds else "")
        notes.add(f"{where}.panes", _more_panes(others))
    return window


def _tmuxp_pane(raw: object, where: str, file: str, notes: _Notes
                ) -> tuple[list[str], str | None, str | None, dict[str, str]]:
    """A pane's commands, the program they are typed into, its directory and environment."""
    if raw is None or isinstance(raw, str | list):
        return _tmuxp_commands(raw, where, file, notes), None, None, {}
    if not isinstance(raw, dict):
        raise WorkspaceError(file, where, f"must be a command, a list of commands or a pane "
                                          f"(shell_command, ...), got {_kind(raw)}")
    commands = _tmuxp_commands(raw.get("shell_command"), f"{where}.shell_command", file, notes)
    directory = raw.get("start_directory")
    env = _env(raw.get("environment"), f"{where}.environment", file, notes, tmuxp=True)
    shell = raw.get("shell")
    for key, value in raw.items():
        if key in ("shell_command", "start_directory", "environment", "shell"):
            continue
        if key == "shell_command_before":
            cmds = _tmuxp_commands(value, f"{where}.{key}", file, notes)
            notes.add(f"{where}.{key}", f"{_shown(cmds)} {_BEFORE}")
        else:
            notes.add(f"{where}.{key}", _TMUXP_PANE_NOTES.get(key, "has no equivalent in "
                                                                    "squad"))
    return (commands, None if shell is None else _scalar(shell),
            None if directory is None else _scalar(directory), env)


def _tmuxp_commands(raw: object, where: str, file: str, notes: _Notes) -> list[str]:
    """tmuxp's command shorthands: nothing, ``blank``/``pane``, a string, a list of strings
    or of ``{cmd, enter, sleep_before, sleep_after}``; empty strings only press Enter."""
    if raw is None or raw in ("blank", "pane"):
        return []
    if isinstance(raw, dict) and "shell_command" in raw:  # shell_command_before as a pane
        raw = raw["shell_command"]
    items = [raw] if isinstance(raw, str | dict) else raw
    if not isinstance(items, list):
        raise WorkspaceError(file, where, f"must be a command or a list of commands, got "
                                          f"{_kind(raw)}")
    if items in (["blank"], ["pane"], [None]):
        return []
    commands = []
    for k, item in enumerate(items):
        here = f"{where}[{k}]" if isinstance(raw, list) else where
        if item is None:
            continue
        if isinstance(item, dict):
            if "cmd" not in item:
                raise WorkspaceError(file, here, "a command given as a mapping needs `cmd`")
            cmd = _scalar(item["cmd"])
            for key in item:
                if key in ("sleep_before", "sleep_after"):
                    notes.add(f"{here}.{key}", _TMUXP_PANE_NOTES[key])
                elif key not in ("cmd", "enter"):
                    notes.add(f"{here}.{key}", "has no equivalent in squad")
            if item.get("enter") is False:
                notes.add(here, f"`{cmd}` is typed without pressing Enter; squad cannot leave "
                                "text half-typed: dropped")
                continue
        elif isinstance(item, str | int | float):
            cmd = _scalar(item)
        else:
            raise WorkspaceError(file, here, f"must be a command, got {_kind(item)}")
        if cmd.strip():
            commands.append(cmd)
    return commands


_TMUXINATOR_NOTES = {
    "pre_window": _BEFORE,
    "pre_tab": _BEFORE,
    "pre": "runs once before the session is built (deprecated in tmuxinator); run it "
           "yourself before `squad up`",
    "post": "runs once after the session is built (deprecated in tmuxinator); no equivalent",
    "on_project_start": "a project hook; squad has no hooks: run it yourself",
    "on_project_first_start": "a project hook; squad has no hooks: run it yourself",
    "on_project_restart": "a project hook; squad has no hooks: run it yourself",
    "on_project_exit": "a project hook; squad has no hooks: run it yourself",
    "on_project_stop": "a project hook; squad has no hooks: run it yourself",
    "socket_name": "squad uses its own tmux socket (squad -L NAME picks another)",
    "tmux_options": "options for tmux itself; squad runs its own tmux server",
    "cli_args": "options for tmux itself; squad runs its own tmux server",
    "tmux_command": "squad runs tmux itself",
    "startup_window": "squad's UI selects agents; nothing is focused on start",
    "startup_pane": "squad's UI selects agents; nothing is focused on start",
    "attach": "`squad up` never attaches; `squad attach TEAM/AGENT` does",
    "tmux_detached": "`squad up` never attaches; `squad attach TEAM/AGENT` does",
    "enable_pane_titles": "one pane per agent: the window's name (the role) says what it is",
    "pane_title_position": "one pane per agent: the window's name (the role) says what it is",
    "pane_title_format": "one pane per agent: the window's name (the role) says what it is",
    "rbenv": "selects a Ruby in every pane first; add `rbenv shell VERSION &&` to commands "
             "that need it",
    "rvm": "selects a Ruby in every pane first; add `rvm use VERSION &&` to commands that "
           "need it",
}
_TMUXINATOR_WINDOW_NOTES = {
    "layout": "squad gives each agent one window of one pane: nothing to lay out",
    "pre": _BEFORE,
    "synchronize": "one pane per agent: nothing to synchronise",
    "focused_pane": "one pane per agent: nothing to focus",
}


def _tmuxinator(data: dict[str, Any], here: Path, file: str, notes: _Notes) -> _Session:
    name_key = "name" if "name" in data else "project_name"
    name = _scalar(data[name_key])
    root_key = "root" if "root" in data else "project_root"
    directory = _session_dir(data, root_key, here, file, notes, tmuxp=False)
    windows_key = "windows" if "windows" in data or "tabs" not in data else "tabs"
    for key, value in data.items():
        if key in (name_key, root_key, windows_key):
            continue
        if key in ("pre_window", "pre_tab", "pre", "post") or key.startswith("on_project"):
            commands = value if isinstance(value, list) else [value]
            shown = _shown([_scalar(c) for c in commands if c is not None])
            notes.add(key, f"{shown} {_TMUXINATOR_NOTES.get(key, 'has no equivalent')}")
        else:
            notes.add(key, _TMUXINATOR_NOTES.get(key, "has no equivalent in squad"))
    windows = []
    for i, raw in enumerate(_window_list(data, windows_key, file)):
        if not isinstance(raw, dict) or len(raw) != 1:
            raise WorkspaceError(file, f"{windows_key}[{i}]",
                                 "must be one `name: command` entry (or `name:` with layout, "
                                 f"panes, root), got {_kind(raw)}")
        ((key, value),) = raw.items()
        title = None if key is None else _scalar(key)
        where = f'{windows_key}[{i}] "{title}"' if title else f"{windows_key}[{i}]"
        windows.append(_tmuxinator_window(value, where, title, directory, file, notes))
    return _Session("tmuxinator", name, directory, {}, windows)


def _tmuxinator_window(value: object, where: str, title: str | None, session_dir: Path,
                       file: str, notes: _Notes) -> _Window:
    window = _Window(where, title)
    if not isinstance(value, dict):
        window.commands = _tmuxinator_commands(value, where, file)
        return window
    for key, item in value.items():
        if key in ("panes", "root"):
            continue
        message = _TMUXINATOR_WINDOW_NOTES.get(key, "has no equivalent in squad")
        if key == "pre":
            cmds = [_scalar(c) for c in (item if isinstance(item, list) else [item])
                    if c is not None]
            message = f"{_shown(cmds)} {message}"
        elif key == "layout":
            message = f"{_scalar(item)}: {message}"
        notes.add(f"{where}.{key}", message)
    window.directory = _sub_dir(value.get("root"), session_dir, where, notes, False)
    panes = value.get("panes")
    if panes is None:
        return window
    if not isinstance(panes, list):
        panes = [panes]
    if not panes:
        return window
    first = f"{where}.panes[0]"
    pane_title, window.commands = _tmuxinator_pane(panes[0], first, file)
    if pane_title:
        notes.add(first, f"pane title {pane_title!r}: one pane per agent, the window's name "
                         "(the role) says what it is")
    if len(panes) > 1:
        others = []
        for j, pane in enumerate(panes[1:], start=1):
            cmds = _tmuxinator_pane(pane, f"{where}.panes[{j}]", file)[1]
            others.append(" && ".join(cmds))
        notes.add(f"{where}.panes", _more_panes(others))
    return window


def _tmuxinator_pane(raw: object, where: str, file: str) -> tuple[str | None, list[str]]:
    """A pane's title (``- title: command``) and commands."""
    if isinstance(raw, dict):
        if len(raw) != 1:
            raise WorkspaceError(file, where, "a named pane must be one `title: commands` entry")
        ((title, value),) = raw.items()
        return _scalar(title), _tmuxinator_commands(value, where, file)
    return None, _tmuxinator_commands(raw, where, file)


def _tmuxinator_commands(raw: object, where: str, file: str) -> list[str]:
    if raw is None:
        return []
    items = raw if isinstance(raw, list) else [raw]
    commands = []
    for k, item in enumerate(items):
        if item is None:
            continue
        if isinstance(item, dict | list):
            here = f"{where}[{k}]" if isinstance(raw, list) else where
            raise WorkspaceError(file, here, f"must be a command, got {_kind(item)}")
        if _scalar(item).strip():
            commands.append(_scalar(item))
    return commands


def _window_list(data: dict[str, Any], key: str, file: str) -> list[Any]:
    windows = data.get(key)
    if windows is None or windows == []:
        raise WorkspaceError(file, key if key in data else "",
                             f"no windows: add a `{key}:` list; each window becomes an agent")
    if not isinstance(windows, list):
        raise WorkspaceError(file, key, f"must be a list of windows, got {_kind(windows)}")
    return windows


def _more_panes(commands: list[str]) -> str:
    n = len(commands)
    return (f"{n} more pane{'s' if n > 1 else ''} dropped ({_shown(commands)}): squad gives "
            "each agent one window of one pane; make them agents of their own if they matter")


# -- directories and environment ----------------------------------------------------------


def _expand(text: str, where: str, notes: _Notes, *, tmuxp: bool) -> str:
    """``~`` and, for tmuxp (which expands them when it loads), ``$VARIABLES``."""
    expanded = os.path.expanduser(text)
    if tmuxp:
        with_vars = os.path.expandvars(expanded)
        if with_vars != expanded:
            notes.add(where, f"{text!r} names environment variables, expanded as set here: "
                             f"{with_vars!r}")
        expanded = with_vars
    return expanded


def _session_dir(data: dict[str, Any], key: str, here: Path, file: str, notes: _Notes,
                 *, tmuxp: bool) -> Path:
    raw = data.get(key)
    if raw is None:
        tool = "tmuxp" if tmuxp else "tmuxinator"
        notes.add("", f"no {key}: {tool} starts the windows where you run it; the squad's repo "
                      f"is this file's directory ({here})")
        return here
    text = _expand(_scalar(raw), key, notes, tmuxp=tmuxp)
    try:
        directory = (here / text).resolve()
    except (OSError, RuntimeError) as e:
        raise WorkspaceError(file, key, f"cannot use {text!r}: {e}") from None
    if not directory.is_dir():
        raise WorkspaceError(file, key, f"{directory} is not a directory on this machine: "
                                        f"the agents run there; create it or change {key}")
    return directory


def _sub_dir(raw: object, parent: Path, where: str, notes: _Notes, tmuxp: bool) -> Path | None:
    """A window's or pane's directory: relative ones are relative to ``parent``."""
    if raw is None:
        return None
    key = "start_directory" if tmuxp else "root"
    text = _expand(_scalar(raw), f"{where}.{key}", notes, tmuxp=tmuxp)
    try:
        directory = (parent / text).resolve()
    except (OSError, RuntimeError):
        directory = parent / text
    if not directory.is_dir():
        notes.add(f"{where}.{key}", f"{directory} is not a directory on this machine: "
                                    "`squad up` will not start this agent until it is")
    return directory


def _env(raw: object, where: str, file: str, notes: _Notes, *, tmuxp: bool) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise WorkspaceError(file, where, f"must be a mapping of NAME: value, got {_kind(raw)}")
    env: dict[str, str] = {}
    for name, value in raw.items():
        key = _scalar(name)
        if not _ENV_NAME.fullmatch(key):
            notes.add(f"{where}.{key}", "is not a usable environment variable name (letters, "
                                        "digits and _, not starting with a digit): dropped")
            continue
        if key.startswith("SQUAD_"):
            notes.add(f"{where}.{key}", "SQUAD_* variables are squad's own: dropped")
            continue
        if isinstance(value, dict | list):
            notes.add(f"{where}.{key}", f"must be a single value, got {_kind(value)}: dropped")
            continue
        text = _expand(_scalar(value), f"{where}.{key}", notes, tmuxp=tmuxp)
        if "\0" in text:
            notes.add(f"{where}.{key}", "contains a NUL character: dropped")
            continue
        env[key] = text
    return env


# -- the squad ---------------------------------------------------------------------------


def _slug(text: str) -> str:
    """A safe squad, team or agent name from free text: lower case, runs of anything else
    than letters, digits, ``_`` and ``-`` become ``-``."""
    slug = re.sub(r"[^a-z0-9_-]+", "-", text.lower()).lstrip("-_")[:64].rstrip("-")
    return slug if SAFE_NAME.fullmatch(slug) else ""


def _role(title: str) -> str:
    """A window name as a role: no ``:`` or ``.`` (tmux separators), at most 32 characters."""
    return re.sub(r"-(?=\s)", "", _ROLE_BAD.sub("-", title)).strip()[:32].strip()


def _command(window: _Window, tool: str, notes: _Notes) -> str:
    """The agent's command: the window's commands, joined into one shell command."""
    commands = window.commands
    if window.program is not None:
        if commands:
            notes.add(window.where, f"{_shown(commands)} are typed into `{window.program}` by "
                                    f"{tool}; squad starts the program and types nothing: send "
                                    "them with `squad send` once it runs")
        return window.program
    if not commands:
        return SHELL_AFTER
    last = commands[-1].split()
    if last and last[0] in _SHELL_SETUP:
        notes.add(window.where, f"its last command `{commands[-1]}` only prepares the shell it "
                                f"is typed into; squad ends an agent when its command ends, so "
                                f"the agent runs your shell after it (`{SHELL_AFTER}`)")
        commands = [*commands, SHELL_AFTER]
    if len(window.commands) > 1:
        notes.add(window.where, f"{tool} types its {len(window.commands)} commands into a shell "
                                "one after another: each runs even if the one before failed, "
                                "and the shell stays open after the last; squad runs them as "
                                "one shell command joined with && (it stops at the first "
                                "failure, and the agent ends when the last command ends)")
    return " && ".join(_grouped(c) for c in commands) if len(commands) > 1 else commands[0]


def _grouped(command: str) -> str:
    """A command safe to join with ``&&``: ``a; b``, ``a &``, comments and newlines would
    change what ``&&`` applies to, so such a command becomes a ``{ ...; }`` group."""
    try:
        words = shlex.split(command, comments=False, posix=True)
    except ValueError:
        words = []
    plain = (words and not any(c in command for c in ";\n#")
             and not re.search(r"(?<!&)&(?!&)", command))
    return command if plain else f"{{ {command.strip()}\n}}"


def _squad(session: _Session, file: str, notes: _Notes) -> Squad:
    name = session.name if SAFE_NAME.fullmatch(session.name) else (
        _slug(session.name) or _slug(Path(file).stem) or "workspace")
    key = "session_name" if session.tool == "tmuxp" else "name"
    if name != session.name:
        notes.add(key, f"{session.name!r} is not usable as a squad, team or tmux session name "
                       f"(letters, digits, - and _): the squad and its team are {name!r}")
    agents: list[dict[str, Any]] = []
    taken: set[str] = set()
    for i, window in enumerate(session.windows):
        base = _slug(window.title or "") or f"window-{i + 1}"
        agent_name, n = base, 1
        while agent_name in taken:
            n += 1
            agent_name = f"{base[:60]}-{n}"
        taken.add(agent_name)
        agent: dict[str, Any] = {"name": agent_name}
        if window.title is None:
            notes.add(window.where, f"has no name (tmux would name it after its program): the "
                                    f"agent is {agent_name!r}")
        else:
            role = _role(window.title)
            if role:
                agent["role"] = role
            if role != window.title:
                notes.add(window.where, f"window name {window.title!r} is not usable as a role "
                                        "(tmux window names take no ':' or '.', at most 32 "
                                        f"characters): the role is {role or agent_name!r}")
        agent["command"] = _command(window, session.tool, notes)
        if window.directory is not None and window.directory != session.directory:
            try:
                agent["cwd"] = window.directory.relative_to(session.directory).as_posix()
            except ValueError:
                agent["cwd"] = str(window.directory)
        env = {**session.env, **window.env}
        if env:
            agent["env"] = env
        agents.append(agent)
    doc = {"name": name, "repo": str(session.directory),
           "teams": [{"name": name, "agents": agents}]}
    try:
        return loads(tomli_w.dumps(doc), source=file, base_dir=session.directory)
    except LayoutError as e:
        where = e.where
        if m := _AGENT_INDEX.match(where):
            where = session.windows[int(m.group(1))].where + where[m.end():]
        raise WorkspaceError(file, where, f"cannot become a squad agent: {e.message}") from None
