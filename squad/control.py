"""What users do to a squad: bring it up or down, pause, resume, stop, restart, send, capture.

The CLI and the UI both call these functions; each returns plain results (what happened to
which agent) and records an event in the audit trail. Process work goes through
:mod:`squad.procs`, tmux work through :mod:`squad.tmux` in batched invocations.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from squad import events, procs, records, worktrees
from squad.errors import ControlError, SquadError, TargetError
from squad.layout import Agent, Squad, check_programs
from squad.live import (
    Live,
    agent_env,
    load_saved_layout,
    remember_squad,
    running_squads,
    save_layout,
    wrapper_argv,
)
from squad.state import squad_dir, squad_lock
from squad.tmux import Pane, Tmux, env_args, format_literal

if TYPE_CHECKING:
    from squad import launch

WINDOW_SIZE = ("160", "48")  # detached windows; a client attaching resizes them
HISTORY_LIMIT = "50000"


@dataclass
class Outcome:
    """What one action did to one agent."""

    target: str
    action: str
    ok: bool
    message: str
    data: dict[str, object] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {"target": self.target, "action": self.action, "ok": self.ok,
                "message": self.message, **self.data}


# -- up ---------------------------------------------------------------------------------


def _prepare_dir(squad: Squad, agent: Agent) -> tuple[Path, str | None]:
    """Create or reuse the agent's worktree; return its working directory and what was done."""
    note = None
    wt = squad.worktree_dir(agent)
    if agent.worktree and wt is not None:
        note = worktrees.ensure(squad.repo, wt, agent.branch_name(), agent.base)
    workdir = squad.agent_dir(agent)
    if not workdir.is_dir():
        raise SquadError(
            f"{agent.target}: working directory {workdir} does not exist (check `cwd` in the "
            "layout)"
        )
    return workdir, note


def _launch():  # noqa: ANN202 - the module, imported when an agent starts (not for pause)
    from squad import launch

    return launch


def _spawn(squad: Squad, agent: Agent, socket: str, workdir: Path, *,
           resume: str | None = None, hold: bool = False) -> tuple[list[str], launch.Launch]:
    """tmux arguments for the agent's window (directory, environment, then ``--`` and the
    command), and how it is launched (hooks, conversation id). With ``hold`` the window
    only says the agent is hibernated (nothing runs; ``squad wake`` starts it)."""
    how = _launch().prepare(squad, agent, resume=resume)
    # tmux expands -c (and -n) as formats, where #(...) would run a shell command; -e values
    # are taken literally.
    env = agent_env(squad, agent, socket) | how.env
    env["SQUAD_PATH"] = env.pop("PATH")  # tmux overrides PATH; the wrapper restores it
    argv = wrapper_argv(how.argv) if not hold else wrapper_argv(
        ["--hold", f"{agent.target} is hibernated: `squad wake {agent.target}` starts it "
                   "again in its conversation"])
    return ["-c", format_literal(str(workdir)), *env_args(env), "--", *argv], how


def _remember(squad: Squad, started: list[tuple[Agent, launch.Launch]]) -> None:
    """Record the conversation ids of agents just started (a new conversation replaces the
    one before; programs that report their id later get it recorded by the supervisor)."""
    for agent, how in started:
        _launch().remember(squad, agent, how)


def _restore_note(agent: Agent, how: launch.Launch, record: records.AgentRecord) -> str:
    if how.resumed:
        what = how.session_id if how.program != "aider" else "chat history"
        return f"resuming its conversation ({what})"
    if record.session_id or record.program:
        return (f"started fresh: {agent.argv[0]!r} as written cannot resume its "
                "conversation")
    return ""


def up(squad: Squad, tmux: Tmux, *, by: str = "cli") -> list[Outcome]:
    """Bring a squad up: create what is missing, restart what exited, keep what runs.

    The tmux side goes in as few batched tmux invocations as tmux accepts (one for a usual
    squad). Idempotent: running it again on a running squad changes nothing and says so.
    Two ``up`` of the same squad at once take turns (a lock in its state directory); the
    layout is recorded only once the squad is up. An agent whose directory cannot be made
    ready is reported and skipped; the others start.
    """
    if tmux.binary is None:
        tmux.require_version()  # says tmux is missing
    missing = check_programs(squad, path_env=agent_env(squad, squad.agents()[0], "").get("PATH"))
    if missing:
        where = squad.source or squad.name
        lines = "; ".join(f"{a.target} needs {prog!r}" for a, prog in missing)
        which = "it" if len({p for _, p in missing}) == 1 else "them"
        raise SquadError(
            f"{where}: not found on PATH: {lines}. Install {which}, or change the `command` "
            "in the layout; nothing was started"
        )
    with squad_lock(squad.name, "up"):
        return _up(squad, tmux, by)


def _up(squad: Squad, tmux: Tmux, by: str) -> list[Outcome]:
    panes = tmux.panes()
    mine = {p.target: p for p in running_squads(tmux, panes).get(squad.name, [])}
    owner: dict[str, str] = {}
    for p in panes:
        owner.setdefault(p.session, p.squad)
    for team in squad.teams:
        if team.session in owner and owner[team.session] != squad.name:
            who = f"squad {owner[team.session]!r}" if owner[team.session] else "someone else"
            raise SquadError(
                f"tmux session {team.session!r} on socket {tmux.socket!r} belongs to {who}: "
                f"give team {team.name!r} another `session` name in the layout, or use "
                "another socket with -L"
            )

    try:
        before = load_saved_layout(squad.name) if mine else None
    except SquadError:
        before = None  # no record, or a record an older squad cannot read: nothing to compare
    outcomes: list[Outcome] = []
    units: list[list[list[str]]] = [[
        ["start-server"],
        ["set-option", "-g", "history-limit", HISTORY_LIMIT],
        ["set-option", "-wg", "remain-on-exit", "on"],
        # Programs that ask for focus events (Claude Code) otherwise show a notice instead
        # of their usual footer.
        ["set-option", "-g", "focus-events", "on"],
    ]]
    sessions = {p.session for p in panes}
    started: list[tuple[Agent, launch.Launch]] = []
    to_pause: list[Agent] = []
    # What squad remembers of agents it did not bring down itself (a crash, a reboot, an
    # agent that exited): they come back in their conversation, paused or hibernated as
    # they were. `squad down` forgets, so an `up` after it starts afresh.
    remembered = records.read(squad.name)
    for team in squad.teams:
        session = f"={team.session}"
        for agent in team.agents:
            pane = mine.get(agent.target)
            if pane is not None and not pane.dead:
                msg = "kept (running)"
                old = before.agent(agent.target) if before is not None else None
                if old is not None and old != agent:
                    msg += (f"; its layout changed since it started: `squad restart "
                            f"{agent.target}` applies the change")
                outcomes.append(Outcome(agent.target, "up", True, msg,
                                        {"state": "kept", "pid": pane.pid}))
                continue
            try:
                workdir, worktree_note = _prepare_dir(squad, agent)
            except SquadError as exc:
                outcomes.append(Outcome(agent.target, "up", False, f"not started: {exc}",
                                        {"state": "failed"}))
                continue
            record = remembered.get(agent.target) or records.AgentRecord()
            args, how = _spawn(squad, agent, tmux.socket, workdir, hold=record.hibernated,
                               resume=_launch().resume_id(squad, agent) if record.program else None)
            if not record.hibernated:
                started.append((agent, how))
            if record.paused and not record.hibernated:
                to_pause.append(agent)
            cmds: list[list[str]] = []
            units.append(cmds)
            if pane is not None:
                cmds.append(["respawn-pane", "-k", "-t", pane.pane_id, *args])
                status = f" with status {pane.exit_code}" if pane.exit_code is not None else ""
                state, msg = "restarted", f"restarted (it had exited{status})"
            else:
                if team.session not in sessions:
                    cmds.append(["new-session", "-d", "-s", team.session,
                                 "-n", format_literal(agent.role),
                                 "-x", WINDOW_SIZE[0], "-y", WINDOW_SIZE[1], *args])
                    cmds.append(["set-option", "-t", f"{session}:", "@squad_name", squad.name])
                    cmds.append(["set-option", "-t", f"{session}:", "@squad_team", team.name])
                    sessions.add(team.session)
                else:
                    cmds.append(["new-window", "-d", "-a", "-t", f"{session}:{{end}}",
                                 "-n", format_literal(agent.role), *args])
                cmds.append(["set-option", "-w", "-t", f"{session}:{{end}}",
                             "@squad_agent", agent.name])
                state, msg = ("restored", "restored") if record.program or (
                    record.paused or record.hibernated) else ("created", "created")
            if record.hibernated:
                msg += "; hibernated, as it was (`squad wake` starts it)"
            elif note := _restore_note(agent, how, record):
                msg += f"; {note}"
            if record.paused and not record.hibernated:
                msg += "; paused, as it was"
            if worktree_note:
                msg += f"; worktree {worktree_note} on {agent.branch_name()}"
            outcomes.append(Outcome(agent.target, "up", True, msg, {"state": state}))
    if len(units) > 1:
        tmux.run_units(units)
    save_layout(squad)  # only now: a failed `up` leaves the recorded layout as it was
    remember_squad(tmux.socket, squad.name)
    _remember(squad, started)
    if to_pause:
        _pause_when_started(squad, tmux, to_pause)
    started_now = [o for o in outcomes if o.data.get("state") not in ("kept", "failed")]
    if started_now:  # one write for all of them: a big squad is not a hundred fsyncs
        events.record_many(squad.name, [dict(action="up", target=o.target, by=by,
                                             reason=o.message) for o in started_now])
    extra = sorted(set(mine) - {a.target for a in squad.agents()})
    for target in extra:
        outcomes.append(Outcome(target, "up", True,
                                "running but not in the layout (left alone)", {"state": "extra"}))
    return outcomes


def _pause_when_started(squad: Squad, tmux: Tmux, agents: list[Agent]) -> None:
    """Pause agents restored as paused, as soon as their program runs."""
    live = Live(tmux, squad)
    live.refresh()
    deadline = time.monotonic() + 5.0
    for agent in agents:
        pane = live.pane(agent)
        if pane is None or not pane.pid:
            continue
        while not procs.scan().tree(pane.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        try:
            procs.pause_tree(pane.pid)
        except ControlError:
            records.update(squad.name, agent.target, paused=False)


# -- down -------------------------------------------------------------------------------


def down(
    live: Live,
    team: str | None = None,
    *,
    prune: bool = False,
    force: bool = False,
    grace: float | None = None,
    by: str = "cli",
) -> list[Outcome]:
    """Stop every agent's whole process tree, then remove the team sessions.

    With ``prune`` also remove the agents' worktrees that hold no uncommitted work; dirty
    ones are kept and named (``force`` deletes them too).
    """
    squad = live.squad
    running_teams = {p.team for p in live.panes.values()}
    if team is not None and squad.team(team) is None and team not in running_teams:
        raise TargetError(
            f"unknown team {team!r} in squad {squad.name!r}; teams: "
            + ", ".join(sorted({x.name for x in squad.teams} | running_teams))
        )
    agents = [a for t in squad.teams if team in (None, t.name) for a in t.agents]
    # Every window of the squad in scope, including agents no longer in the layout: they
    # still run, and `down` must leave nothing behind.
    panes = [p for p in live.panes.values() if team in (None, p.team)]
    roots = [p.pid for p in panes if not p.dead and p.pid]
    wait = grace if grace is not None else max((a.grace for a in agents), default=10.0)
    killed = procs.terminate_trees(roots, grace=wait,
                                   extra=escaped(live, team=team, exclude=roots))
    for s in sorted({p.session for p in panes}):
        live.tmux.run_bytes(["kill-session", "-t", f"={s}"])
    outcomes = [
        Outcome(a.target, "down", True, "stopped" if live.pane(a) else "was not running")
        for a in agents
    ]
    known = {a.target for a in agents}
    outcomes += [Outcome(p.target, "down", True, "stopped (no longer in the layout)")
                 for p in panes if p.target not in known]
    if killed:  # a summary line, not an agent (counts of agents skip it)
        outcomes.append(Outcome(squad.name, "down", True,
                                f"killed {len(killed)} process(es) after the {wait:g}s grace",
                                {"summary": True, "killed": len(killed)}))
    events.record(squad.name, "down", target=team, by=by,
                  reason=f"{len(roots)} agent(s) stopped", killed=len(killed))
    for target in known | {p.target for p in panes}:
        records.forget(squad.name, target)  # brought down on purpose: `up` starts afresh
    if prune:
        outcomes += prune_worktrees(squad, agents, force=force, by=by)
    return outcomes


def prune_worktrees(squad: Squad, agents: Iterable[Agent], *, force: bool,
                    by: str) -> list[Outcome]:
    outcomes = []
    for agent in agents:
        path = squad.worktree_dir(agent)
        if not agent.worktree or path is None or not path.exists():
            continue
        changes = worktrees.dirty(path)
        if changes and not force:
            # Keeping work is what --prune promises, not a failure: said, exit status 0.
            outcomes.append(Outcome(agent.target, "prune", True,
                                    f"kept {path}: it holds {worktrees.describe(changes)} "
                                    "(commit or move them, or pass --force to delete them)",
                                    {"worktree": str(path), "kept": changes,
                                     "warning": True}))
            continue
        worktrees.remove(squad.repo, path, force=force)
        events.record(squad.name, "prune", target=agent.target, by=by, reason=str(path))
        outcomes.append(Outcome(agent.target, "prune", True, f"removed worktree {path}",
                                {"worktree": str(path)}))
    return outcomes


def escaped(live: Live, *, team: str | None = None, agent: str | None = None,
            exclude: Iterable[int] = ()) -> list[tuple[int, float]]:
    """Processes started from the squad's windows (their environment says so) that are no
    longer in any agent's tree: re-parented to init after their parent died, or left by an
    agent that exited. ``down`` and ``stop`` end them with the trees."""
    env = {"SQUAD_SOCKET": live.tmux.socket, "SQUAD_NAME": live.squad.name}
    if team:
        env["SQUAD_TEAM"] = team
    if agent:
        env["SQUAD_AGENT"] = agent
    return procs.tagged(env, exclude=exclude)


# -- pause / resume / stop / restart -----------------------------------------------------


def _alive_pane(live: Live, agent: Agent) -> Pane:
    pane = live.require_pane(agent)
    if pane.dead or not pane.pid:
        raise ControlError(f"{agent.target} has exited (status {pane.exit_code}): nothing to do")
    return pane


def _each(
    live: Live,
    agents: list[Agent],
    action: str,
    do: Callable[[Agent], Outcome],
    *,
    reason: str | None,
    by: str,
) -> list[Outcome]:
    outcomes = []
    for agent in agents:
        try:
            outcome = do(agent)
        except (ControlError, TargetError) as exc:
            outcome = Outcome(agent.target, action, False, str(exc))
        if outcome.ok and not outcome.data.get("noop"):
            events.record(live.squad.name, action, target=agent.target, by=by, reason=reason,
                          result=outcome.message)
        elif not outcome.ok:
            events.record(live.squad.name, f"{action}.failed", target=agent.target, by=by,
                          reason=reason, error=outcome.message)
        outcomes.append(outcome)
    return outcomes


def pause(live: Live, agents: list[Agent], *, reason: str | None = None,
          by: str = "cli") -> list[Outcome]:
    """SIGSTOP each agent's whole tree; verified stopped. Pausing a paused agent is a no-op."""

    def one(agent: Agent) -> Outcome:
        pane = _alive_pane(live, agent)
        table = procs.scan()
        tree = [p for p in table.tree(pane.pid) if table.procs[p].state not in procs.GONE_STATES]
        if not tree:
            raise ControlError(f"{agent.target} has no running process to pause")
        # The marker first: a CPU duty cycle (cpu_limit) then leaves the tree stopped, and a
        # tree that looks stopped because of that cycle becomes paused for good.
        marks = policy_holds(live.squad.name)
        held = agent.target in marks
        marks.add(agent.target)
        if held and all(table.procs[p].state in procs.STOPPED_STATES for p in tree):
            return Outcome(agent.target, "pause", True, "already paused", {"noop": True})
        try:
            stopped = procs.pause_tree(pane.pid)
        except ControlError:
            marks.discard(agent.target)
            raise
        records.update(live.squad.name, agent.target, paused=True)
        return Outcome(agent.target, "pause", True,
                       f"paused ({len(stopped)} process{'es' if len(stopped) != 1 else ''})",
                       {"pids": stopped})

    return _each(live, agents, "pause", one, reason=reason, by=by)


def resume(live: Live, agents: list[Agent], *, reason: str | None = None,
           by: str = "cli") -> list[Outcome]:
    """SIGCONT each agent's tree, deepest first; a running agent is a harmless no-op."""

    def one(agent: Agent) -> Outcome:
        pane = _alive_pane(live, agent)
        table = procs.scan()
        tree = table.tree(pane.pid)
        if not any(table.procs[p].state in procs.STOPPED_STATES for p in tree):
            return Outcome(agent.target, "resume", True, "already running", {"noop": True})
        policy_holds(live.squad.name).discard(agent.target)
        pids = procs.resume_tree(pane.pid)
        records.update(live.squad.name, agent.target, paused=False)
        return Outcome(agent.target, "resume", True,
                       f"resumed ({len(pids)} process{'es' if len(pids) != 1 else ''})",
                       {"pids": pids})

    return _each(live, agents, "resume", one, reason=reason, by=by)


def policy_holds(squad: str):  # noqa: ANN201 - squad.cpulimit.Holds, imported lazily
    """The markers of agents a person paused (see squad.policy.holds)."""
    from squad.cpulimit import Holds

    return Holds(squad_dir(squad) / "holds")


def pin(live: Live, agents: list[Agent], *, pinned: bool = True, reason: str | None = None,
        by: str = "cli") -> list[Outcome]:
    """Pinned agents are never paused or hibernated by memory or CPU pressure or by
    ``max_active`` (the layout's ``pinned`` does the same for good)."""
    outcomes = []
    for agent in agents:
        records.update(live.squad.name, agent.target, pinned=pinned)
        word = "pin" if pinned else "unpin"
        events.record(live.squad.name, word, target=agent.target, by=by, reason=reason)
        outcomes.append(Outcome(agent.target, word, True, "pinned: pressure leaves it alone"
                                if pinned else "unpinned"))
    return outcomes


def _wait_dead(live: Live, targets: set[str], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        live.refresh()
        if all((p := live.panes.get(t)) is None or p.dead for t in targets):
            return
        time.sleep(0.02)


def stop(live: Live, agents: list[Agent], *, grace: float | None = None,
         reason: str | None = None, by: str = "cli") -> list[Outcome]:
    """SIGTERM each agent's tree, wait the grace period, SIGKILL survivors. The window stays,
    showing the agent's last screen and how it ended."""
    running = []
    outcomes: list[Outcome] = []
    marks = policy_holds(live.squad.name)
    for agent in agents:
        marks.discard(agent.target)
        try:
            pane = _alive_pane(live, agent)
        except (ControlError, TargetError) as exc:
            noop = isinstance(exc, ControlError)
            outcomes.append(Outcome(agent.target, "stop", noop,
                                    "already exited" if noop else str(exc), {"noop": noop}))
            continue
        running.append((agent, pane))
    if running:
        wait = grace if grace is not None else max(a.grace for a, _ in running)
        roots = [p.pid for _, p in running if p.pid]
        strays = [s for agent, _ in running
                  for s in escaped(live, team=agent.team, agent=agent.name, exclude=roots)]
        killed = procs.terminate_trees(roots, grace=wait, extra=strays)
        _wait_dead(live, {a.target for a, _ in running})
        for agent, _ in running:
            pane = live.panes.get(agent.target)
            how = f"exit status {pane.exit_code}" if pane and pane.exit_code is not None else (
                f"signal {pane.exit_signal}" if pane and pane.exit_signal else "stopped")
            msg = f"stopped ({how})" + (f"; killed {len(killed)} after {wait:g}s" if killed else "")
            outcomes.append(Outcome(agent.target, "stop", True, msg, {"killed": len(killed)}))
            events.record(live.squad.name, "stop", target=agent.target, by=by, reason=reason,
                          result=msg)
    return outcomes


def restart(live: Live, agents: list[Agent], *, grace: float | None = None,
            reason: str | None = None, by: str = "cli", resume: bool = False,
            _action: str = "restart") -> list[Outcome]:
    """Stop each agent (if running), then respawn its window with the same command,
    environment and directory from the squad's layout: in a new conversation, or with
    ``resume`` in the one it had (where its program can). Everything that can fail is
    checked first (its window, its directory or worktree): an agent that could not start
    again is never stopped."""
    outcomes: list[Outcome] = []
    ready: list[tuple[Agent, Path]] = []
    for agent in agents:
        if live.pane(agent) is None:
            outcomes.append(Outcome(agent.target, "restart", False,
                                    f"{agent.target} has no window: run `squad up`"))
            continue
        try:
            workdir, _ = _prepare_dir(live.squad, agent)
        except SquadError as exc:
            outcomes.append(Outcome(agent.target, "restart", False,
                                    f"not restarted (left as it is): {exc}"))
            continue
        ready.append((agent, workdir))
    if not ready:
        return outcomes
    stop(live, [a for a, _ in ready], grace=grace, reason=reason, by=by)
    live.refresh()
    units: list[list[list[str]]] = []
    started: list[tuple[Agent, launch.Launch]] = []
    for agent, workdir in ready:
        pane = live.pane(agent)
        if pane is None:
            outcomes.append(Outcome(agent.target, "restart", False,
                                    f"{agent.target} lost its window while stopping: run "
                                    "`squad up`"))
            continue
        previous = _launch().resume_id(live.squad, agent) if resume else None
        args, how = _spawn(live.squad, agent, live.tmux.socket, workdir, resume=previous)
        started.append((agent, how))
        units.append([["respawn-pane", "-k", "-t", pane.pane_id, *args],
                      ["clear-history", "-t", pane.pane_id]])
        msg = "restarted" if _action == "restart" else "woken"
        if resume:
            msg += ("; resuming its conversation" + (f" {how.session_id}" if how.session_id
                                                     else "") if how.resumed else
                    "; started fresh: nothing to resume for its program")
        outcomes.append(Outcome(agent.target, _action, True, msg,
                                {"session_id": how.session_id, "resumed": how.resumed}))
    if units:
        live.tmux.run_units(units)
        _remember(live.squad, started)
        live.refresh()
    for o in outcomes:
        if o.ok:
            pane = live.panes.get(o.target)
            o.data["pid"] = pane.pid if pane else None
            records.update(live.squad.name, o.target, paused=False, hibernated=False)
            events.record(live.squad.name, _action, target=o.target, by=by, reason=reason,
                          result=o.message)
    return outcomes


def hibernate(live: Live, agents: list[Agent], *, grace: float | None = None,
              reason: str | None = None, by: str = "cli") -> list[Outcome]:
    """Stop each agent's whole tree to free its memory, keeping its window (showing where it
    was), worktree, held task and conversation: ``wake`` starts it again inside that
    conversation. A task it was working on waits for it and is given back once, on wake."""
    outcomes: list[Outcome] = []
    running: list[Agent] = []
    for agent in agents:
        pane = live.pane(agent)
        if records.get(live.squad.name, agent.target).hibernated:
            outcomes.append(Outcome(agent.target, "hibernate", True, "already hibernated",
                                    {"noop": True}))
        elif pane is None or pane.dead:
            outcomes.append(Outcome(agent.target, "hibernate", False,
                                    f"{agent.target} is not running: nothing to hibernate"))
        else:
            running.append(agent)
    if not running:
        return outcomes
    from squad.store import TaskStore

    with TaskStore.for_squad(live.squad.name) as store:
        for agent in running:
            for task in store.active_for(agent.target):
                if task.status.value == "in_progress":
                    store.park(task.id)
    for agent in running:
        records.update(live.squad.name, agent.target, hibernated=True, paused=False)
    stop(live, running, grace=grace, reason=reason or "hibernate", by=by)
    for agent in running:
        session = records.get(live.squad.name, agent.target).session_id
        keeps = (f"its conversation {session} is kept" if session else
                 "its program's chat history is kept" if _launch().known_program(agent) == "aider"
                 else "it has no conversation squad can resume: it will start fresh")
        outcomes.append(Outcome(agent.target, "hibernate", True, f"hibernated; {keeps}",
                                {"session_id": session}))
        events.record(live.squad.name, "hibernate", target=agent.target, by=by, reason=reason,
                      result=keeps)
    return outcomes


def wake(live: Live, agents: list[Agent], *, reason: str | None = None,
         by: str = "cli") -> list[Outcome]:
    """Start hibernated agents again, each inside its conversation where its program can."""
    asleep = [a for a in agents if records.get(live.squad.name, a.target).hibernated]
    outcomes = [Outcome(a.target, "wake", True, "not hibernated", {"noop": True})
                for a in agents if a not in asleep]
    if asleep:
        outcomes += restart(live, asleep, grace=1.0, reason=reason, by=by, resume=True,
                            _action="wake")
    return outcomes


# -- send / capture -------------------------------------------------------------------


def send(live: Live, agent: Agent, data: bytes, *, enter: bool = True,
         by: str = "cli", reason: str | None = None) -> Outcome:
    """Deliver bytes to an agent exactly as given, then Enter."""
    from squad.status import patterns_for

    pane = _alive_pane(live, agent)
    pats = patterns_for(agent.argv, agent.ready_pattern, agent.busy_pattern,
                        agent.input_pattern)
    # The program's own pause between a paste and its Enter (Gemini CLI takes an Enter that
    # follows a paste too closely as a newline), or the layout's, whichever is longer.
    live.tmux.paste(pane.pane_id, data, enter=enter,
                    delay=max(agent.submit_delay, pats.submit_delay))
    preview = data[:120].decode("utf-8", "replace")
    events.record(live.squad.name, "send", target=agent.target, by=by, reason=reason,
                  bytes=len(data), preview=preview)
    return Outcome(agent.target, "send", True, f"sent {len(data)} bytes", {"bytes": len(data)})


def send_keys(live: Live, agent: Agent, keys: list[str], *, by: str = "cli",
              reason: str | None = None) -> Outcome:
    """Press keys in the agent's window by tmux name (Escape interrupts Claude Code, C-c a
    shell command, Up/Enter answer a menu), in order. Never text: see tmux.check_key."""
    pane = _alive_pane(live, agent)
    live.tmux.send_keys(pane.pane_id, *keys)
    events.record(live.squad.name, "keys", target=agent.target, by=by, reason=reason,
                  keys=" ".join(keys))
    return Outcome(agent.target, "keys", True, f"pressed {' '.join(keys)}", {"keys": keys})


def capture(live: Live, agent: Agent, *, lines: int = 2000, ansi: bool = False) -> str:
    """The agent's screen and up to ``lines`` lines of scrollback."""
    pane = live.require_pane(agent)
    return live.tmux.capture([pane.pane_id], history=lines, ansi=ansi).get(pane.pane_id, "")


def attach_argv(live: Live, agent: Agent) -> list[str]:
    """The tmux command line that attaches a terminal to the agent's window."""
    pane = live.require_pane(agent)
    return [live.tmux.binary or "tmux", "-L", live.tmux.socket,
            "select-window", "-t", pane.window_id, ";",
            "attach-session", "-t", pane.session_id]


# -- reshaping a running squad ----------------------------------------------------------------


def _with_agents(squad: Squad, change: Callable[[list[dict]], None], what: str) -> Squad:
    """The squad with its teams changed by ``change`` (on the resolved layout's tables),
    validated exactly like a layout file."""
    import tomllib

    import tomli_w

    from squad import layout

    data = tomllib.loads(layout.dump(squad))
    change(data["teams"])
    text = tomli_w.dumps(data)
    return layout.loads(text, source=f"{squad.name} ({what})", base_dir=squad.repo)


def add_agent(live: Live, target: str, settings: dict[str, object], *,
              by: str = "cli") -> list[Outcome]:
    """Add an agent (and its team, when new) to the running squad and start it. Settings are
    layout keys (``command``, ``role``, ``worktree``, ``tags``, ...), checked exactly as in
    a layout file; what is not given takes the built-in defaults. The supervisor picks the
    new agent up at its next tick."""
    team, _, name = target.partition("/")
    if not team or not name:
        raise TargetError(f"{target!r}: name the new agent as TEAM/AGENT")
    if live.squad.agent(target) is not None:
        raise TargetError(f"{target} is already in squad {live.squad.name!r}")

    def change(teams: list[dict]) -> None:
        entry = {"name": name, **{k: v for k, v in settings.items() if v is not None}}
        for t in teams:
            if t["name"] == team:
                t["agents"].append(entry)
                return
        teams.append({"name": team, "agents": [entry]})

    squad = _with_agents(live.squad, change, f"squad add {target}")
    outcomes = up(squad, live.tmux, by=by)
    live.squad = squad
    events.record(squad.name, "add", target=target, by=by,
                  reason=", ".join(f"{k}={v}" for k, v in settings.items() if v is not None))
    return [o for o in outcomes if o.target == target] or outcomes


def remove_agent(live: Live, target: str, *, prune: bool = False, force: bool = False,
                 grace: float | None = None, by: str = "cli") -> list[Outcome]:
    """Stop an agent (its whole tree), close its window and take it out of the running
    squad. Its worktree is kept unless ``prune`` (and, when it holds work, ``force``), like
    ``squad down --prune``: nothing is stopped when a dirty worktree would block the prune.
    A task it held goes back to the queue."""
    agent = live.squad.agent(target) if "/" in target else None
    if agent is None:
        live.resolve(target)  # says what exists
        raise TargetError(f"{target!r}: name one agent as TEAM/AGENT")
    if len(live.squad.agents()) == 1:
        raise TargetError(f"{target} is the squad's only agent: use `squad down` instead")
    wt = live.squad.worktree_dir(agent) if agent.worktree else None
    if prune and not force and wt is not None and wt.exists() and (
            changes := worktrees.dirty(wt)):
        raise ControlError(f"{target}: its worktree {wt} holds {worktrees.describe(changes)}: "
                           "commit or move them, or pass --force to delete them; nothing "
                           "was stopped")

    def change(teams: list[dict]) -> None:
        for t in teams:
            t["agents"] = [a for a in t["agents"]
                           if not (t["name"] == agent.team and a["name"] == agent.name)]
        teams[:] = [t for t in teams if t["agents"]]

    squad = _with_agents(live.squad, change, f"squad remove {target}")
    outcomes: list[Outcome] = []
    pane = live.pane(agent)
    if pane is not None:
        if not pane.dead:
            outcomes += stop(live, [agent], grace=grace, reason="removed", by=by)
        live.tmux.run_bytes(["kill-window", "-t", pane.window_id])
    with squad_lock(squad.name, "up"):
        save_layout(squad)
    live.squad = squad
    records.forget(squad.name, target)
    outcomes.append(Outcome(target, "remove", True, "removed from the squad"
                            + (f"; its worktree {wt} is kept" if wt and wt.exists() and not prune
                               else "")))
    events.record(squad.name, "remove", target=target, by=by)
    if prune:
        outcomes += prune_worktrees(live.squad, [agent], force=force, by=by)
    return outcomes
