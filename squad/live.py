"""Running squads as tmux shows them: which squads run on a socket, their layouts, targets.

A running squad is recognised by the user options squad sets on its sessions and windows
(``@squad_name``, ``@squad_team``, ``@squad_agent``); its layout, resolved, is kept in the
state directory when it is brought up, so every command knows each agent's command,
directory, tags and limits without the layout file at hand.
"""

from __future__ import annotations

import functools
import os
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

from squad import layout as layout_mod
from squad.errors import LayoutError, SquadError, TargetError, storage_error
from squad.layout import Agent, Squad
from squad.state import squad_dir, state_home, write_private
from squad.tmux import Pane, Tmux

DEFAULT_SOCKET = "squad"


def socket_name(arg: str | None = None) -> str:
    return arg or os.environ.get("SQUAD_SOCKET") or DEFAULT_SOCKET


def saved_layout_path(name: str) -> Path:
    return squad_dir(name) / "layout.toml"


def save_layout(squad: Squad) -> Path:
    """Keep the resolved layout in the state directory (private, atomically replaced)."""
    path = saved_layout_path(squad.name)
    try:
        write_private(path, layout_mod.dump(squad).encode("utf-8"))
    except OSError as exc:
        raise storage_error(path, exc) from None
    return path


def load_saved_layout(name: str) -> Squad:
    path = saved_layout_path(name)
    if not path.exists():
        raise SquadError(
            f"squad {name!r} is running but squad has no record of its layout "
            f"({path} is missing): run `squad up LAYOUT` again to record it"
        )
    try:
        return layout_mod.load(path)
    except SquadError as exc:
        if isinstance(exc, LayoutError):  # squad's own file: the first problem says enough
            more = len(exc.problems) - 1
            detail = (f"{exc.where}: {exc.message}" if exc.where else exc.message) + (
                f", and {more} more problem{'s' if more > 1 else ''}" if more else "")
        else:
            detail = str(exc)
        raise SquadError(
            f"squad {name!r}: its recorded layout {path} cannot be read ({detail}); run "
            "`squad up LAYOUT` with your layout file to record it again"
        ) from None


def _socket_note(socket: str) -> Path:
    return state_home() / "sockets" / socket.replace("/", "_")


def remember_squad(socket: str, name: str) -> None:
    """Note the squad last brought up on a socket, so that after `squad down` its history
    (`squad tasks`, `squad events`, `squad down --prune`) needs no --squad."""
    path = _socket_note(socket)
    try:
        path.parent.mkdir(mode=0o700, exist_ok=True)
        write_private(path, name.encode())
    except OSError:
        pass  # a convenience: never a reason to fail `up`


def last_squad(socket: str) -> str | None:
    """The squad last brought up on this socket, if its layout record is still there."""
    try:
        name = _socket_note(socket).read_text().strip()
    except OSError:
        return None
    return name if name and saved_layout_path(name).exists() else None


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def running_squads(tmux: Tmux, panes: list[Pane] | None = None) -> dict[str, list[Pane]]:
    """Squad name -> its panes, for every squad on this socket."""
    found: dict[str, list[Pane]] = {}
    for pane in tmux.panes() if panes is None else panes:
        if pane.squad and pane.team and pane.agent:
            found.setdefault(pane.squad, []).append(pane)
    return found


def pick_squad(tmux: Tmux, name: str | None, panes: list[Pane] | None = None) -> str:
    """The squad a command acts on: ``--squad``/``$SQUAD_NAME``, else the only one running."""
    name = name or os.environ.get("SQUAD_NAME") or None
    running = running_squads(tmux, panes)
    if name:
        if name not in running and not saved_layout_path(name).exists():
            others = ", ".join(sorted(running)) or "none"
            raise SquadError(
                f"no squad named {name!r} on tmux socket {tmux.socket!r} (running: {others})"
            )
        return name
    if not running:
        last = last_squad(tmux.socket)
        if last is not None:
            return last  # brought down: its history (tasks, events, worktrees) stays at hand
        raise SquadError(
            f"no squad is running on tmux socket {tmux.socket!r}: start one with "
            "`squad up LAYOUT` (or `squad up` for the demo), or pick another socket with -L"
        )
    if len(running) > 1:
        raise SquadError(
            f"several squads run on socket {tmux.socket!r} ({', '.join(sorted(running))}): "
            "pick one with --squad NAME"
        )
    return next(iter(running))


@dataclass
class Live:
    """One running squad: its layout and the panes of its agents (by ``team/agent``)."""

    tmux: Tmux
    squad: Squad
    panes: dict[str, Pane] = field(default_factory=dict)
    others: dict[str, list[Pane]] = field(default_factory=dict)
    layout_stamp: float = 0.0  # mtime of the saved layout this object holds

    @classmethod
    def open(cls, tmux: Tmux, name: str | None = None) -> Live:
        panes = tmux.panes()
        chosen = pick_squad(tmux, name, panes)
        running = running_squads(tmux, panes)
        squad = load_saved_layout(chosen)
        live = cls(tmux, squad, others={k: v for k, v in running.items() if k != chosen},
                   layout_stamp=_mtime(saved_layout_path(chosen)))
        live.panes = {p.target: p for p in running.get(chosen, [])}
        return live

    def refresh(self) -> None:
        """Re-read the panes, and the layout if `squad up` recorded a new one meanwhile."""
        stamp = _mtime(saved_layout_path(self.squad.name))
        if stamp != self.layout_stamp:
            try:
                self.squad = load_saved_layout(self.squad.name)
            except SquadError:
                pass  # mid-write or removed: keep the layout we have
            self.layout_stamp = stamp
        running = running_squads(self.tmux)
        self.panes = {p.target: p for p in running.get(self.squad.name, [])}
        self.others = {k: v for k, v in running.items() if k != self.squad.name}

    def pane(self, agent: Agent) -> Pane | None:
        return self.panes.get(agent.target)

    def resolve(self, target: str | None, *, all: bool = False) -> list[Agent]:
        """Agents named by a target: ``TEAM/AGENT``, ``TEAM``, or every agent with ``all``."""
        if all:
            return self.squad.agents()
        if not target:
            raise TargetError("say which agent: TEAM/AGENT, TEAM, or --all")
        target = target.strip()
        if "/" in target:
            agent = self.squad.agent(target)
            if agent is not None:
                return [agent]
        else:
            team = self.squad.team(target)
            if team is not None:
                return list(team.agents)
        for other, panes in self.others.items():
            if any(p.target == target or p.team == target for p in panes):
                raise TargetError(
                    f"{target} belongs to squad {other!r}, not {self.squad.name!r}: "
                    f"pass --squad {other}"
                )
        known = ", ".join(a.target for a in self.squad.agents())
        raise TargetError(
            f"unknown target {target!r} in squad {self.squad.name!r}; agents: {known}"
        )

    def require_pane(self, agent: Agent) -> Pane:
        pane = self.pane(agent)
        if pane is None:
            raise TargetError(
                f"{agent.target} has no window on socket {self.tmux.socket!r}: "
                "run `squad up` to create it"
            )
        return pane


def agent_env(squad: Squad, agent: Agent, socket: str) -> dict[str, str]:
    """The environment of an agent's window: the layout's, plus squad's own names.

    The directories of squad's interpreter and scripts go first on PATH so that ``squad``
    and ``python`` inside the window are the ones that run this squad.
    """
    env = dict(agent.env)
    base_path = env.get("PATH") or os.environ.get("PATH", "")
    first = []
    for d in _squad_dirs():
        if d and d not in first and d not in base_path.split(os.pathsep)[:2]:
            first.append(d)
    env["PATH"] = os.pathsep.join([*first, base_path]) if first else base_path
    # Running from a checkout (not installed): agents such as the demo agent and `squad`
    # itself must still import this squad package.
    home = str(Path(__file__).resolve().parent.parent)
    if home not in _site_dirs():
        old = env.get("PYTHONPATH") or os.environ.get("PYTHONPATH", "")
        if home not in old.split(os.pathsep):
            env["PYTHONPATH"] = os.pathsep.join(p for p in (home, old) if p)
    env.update(
        SQUAD_NAME=squad.name,
        SQUAD_TEAM=agent.team,
        SQUAD_AGENT=agent.name,
        SQUAD_SOCKET=socket,
        SQUAD_HOME=str(state_home()),
    )
    return env


@functools.cache
def _squad_dirs() -> tuple[str, str]:
    return sysconfig.get_path("scripts"), os.path.dirname(sys.executable)


@functools.cache
def _site_dirs() -> set[str]:
    import site

    dirs = set(site.getsitepackages()) | {site.getusersitepackages()}
    return {str(Path(d).resolve()) for d in dirs}


def wrapper_argv(argv: list[str]) -> list[str]:
    """The window's command: the thin wrapper, with the agent's command as its child."""
    wrapper = Path(__file__).with_name("wrapper.py")
    return [sys.executable, "-S", str(wrapper), "--", *argv]
