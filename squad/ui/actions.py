"""What the keys do: pause, resume, stop, restart, hibernate, wake, attach, send input or
keys, dispatch, the diff view, add and remove agents, act on tasks, bring the squad up, and
quit+stop.

Each action picks its target (the selected agent or team), asks first when it cannot be
undone, and calls :mod:`squad.control` in a thread worker; the outcomes come back as one
:class:`ActionsDone` message and are shown as notifications. A mixin of
:class:`squad.ui.app.SquadApp` (Textual finds ``action_*`` methods and ``on_*`` handlers on
the app's classes), kept apart so that the app's layout and the actions each read on their
own.
"""

from __future__ import annotations

import os
import subprocess
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import SuspendNotSupported

from squad import control
from squad.errors import SquadError
from squad.live import Live
from squad.ui.dialogs import (
    AddAgentDialog,
    AddRequest,
    ChoiceDialog,
    ConfirmDialog,
    DispatchDialog,
    DispatchRequest,
    SendDialog,
    SendRequest,
)
from squad.ui.messages import ActionsDone
from squad.ui.workers import thread_worker

if TYPE_CHECKING:
    from textual.app import App

    from squad.snapshot import Snapshot
    from squad.tmux import Tmux
    from squad.ui.panels import TaskPanel
    from squad.ui.task_queue import TaskProvider

    Base = App[None]
else:
    Base = object


QUICK = frozenset({"pause", "resume"})
"""Actions that hold other work back while they run (see :meth:`AgentActions.run_control`)."""
QUICK_HOLD = 0.3  # seconds at most


class AgentActions(Base):
    """The app's actions on agents, teams and the squad."""

    live: Live | None
    frozen: Snapshot | None
    snapshot: Snapshot | None
    selected: str | None
    tasks: TaskProvider
    task_panel: TaskPanel
    diffs: dict

    # -- targets ---------------------------------------------------------------------------

    def _need_live(self) -> Live | None:
        if self.live is None:
            self.notify("this screen shows frozen data: there is no squad to act on",
                        severity="error", markup=False)
        return self.live

    def _need_target(self, *, agent: bool = False, team: bool = False) -> str | None:
        sel = self.selected
        if not sel:
            self.notify("select an agent first", severity="warning", markup=False)
            return None
        if team:
            return sel.split("/")[0]
        if agent and "/" not in sel:
            self.notify(f"{sel} is a team: select one of its agents", severity="warning",
                        markup=False)
            return None
        return sel

    def _what(self, target: str) -> str:
        if "/" in target:
            return target
        n = sum(1 for r in self.snapshot.agents if r.team == target) if self.snapshot else 0
        return f"team {target} ({n} agent{'s' if n != 1 else ''})"

    # -- process control -------------------------------------------------------------------

    def action_pause(self) -> None:
        if (target := self._need_target()) and self._need_live():
            self.run_control("pause", target)

    def action_resume(self) -> None:
        if (target := self._need_target()) and self._need_live():
            self.run_control("resume", target)

    def action_pause_team(self) -> None:
        if (target := self._need_target(team=True)) and self._need_live():
            self.run_control("pause", target)

    def action_resume_team(self) -> None:
        if (target := self._need_target(team=True)) and self._need_live():
            self.run_control("resume", target)

    def action_stop(self) -> None:
        target = self._need_target()
        if not target or not self._need_live():
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.notify(f"stopping {self._what(target)}…", markup=False, timeout=2)
                self.run_control("stop", target)

        self.push_screen(ConfirmDialog(
            f"Stop {self._what(target)}?",
            "Its whole process tree gets SIGTERM, then SIGKILL after the grace period. "
            "The window stays, showing the last screen; R restarts it.", "Stop"), answered)

    def action_restart(self) -> None:
        target = self._need_target()
        live = self._need_live()
        if not target or live is None:
            return
        rows = self.selected_rows()
        if rows and all(r.status == "down" for r in rows):
            self._offer_up(target, live)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.notify(f"restarting {self._what(target)}…", markup=False, timeout=2)
                self.run_control("restart", target)

        what = ("The agent is stopped (its work in progress is lost)" if "/" in target else
                "Each of its agents is stopped (work in progress is lost)")
        self.push_screen(ConfirmDialog(
            f"Restart {self._what(target)}?",
            f"{what} and started again with the command, directory and environment of the "
            "layout.", "Restart"), answered)

    def _offer_up(self, target: str, live: Live) -> None:
        """``R`` on agents without a window: bring the squad's recorded layout up again."""

        def answered(yes: bool | None) -> None:
            if yes:
                self.notify(f"bringing squad {live.squad.name} up…", markup=False, timeout=2)
                self._up()

        self.push_screen(ConfirmDialog(
            f"{self._what(target)} has no window: bring the squad up?",
            f"Every agent of squad {live.squad.name}'s recorded layout that has no window "
            "is started (squad up); agents that run are left as they are.", "Up"),
            answered)

    @thread_worker("actions", "up", lambda error: ActionsDone("up", error=error))
    def _up(self) -> None:
        live = self.live
        assert live is not None
        outcomes = control.up(live.squad, live.tmux, by="ui")
        self.post_message(ActionsDone("up", [o for o in outcomes
                                             if o.data.get("state") != "running"]))

    def action_hibernate(self) -> None:
        target = self._need_target()
        if not target or not self._need_live():
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.notify(f"hibernating {self._what(target)}…", markup=False, timeout=2)
                self.run_control("hibernate", target)

        self.push_screen(ConfirmDialog(
            f"Hibernate {self._what(target)}?",
            "Its whole process tree is stopped to free its memory. Its window, worktree, "
            "task and conversation are kept: w wakes it inside that conversation (a program "
            "that cannot resume one starts fresh).", "Hibernate"), answered)

    def action_wake(self) -> None:
        if (target := self._need_target()) and self._need_live():
            self.run_control("wake", target)

    def run_control(self, verb: str, target: str) -> None:
        """Run ``squad.control.<verb>`` on a target in a thread; the outcomes come back as
        an :class:`ActionsDone`. Pausing and resuming should feel instant even while the
        squad floods the screen, so output captures and the supervisor tick hold back
        until they are done (a fraction of a second at most)."""
        if verb in QUICK:
            self.hold_refreshes(QUICK_HOLD)
        self._control_worker(verb, target)

    @thread_worker("actions", "{0} {1}", lambda error, verb, target: ActionsDone(
        verb, error=error))
    def _control_worker(self, verb: str, target: str) -> None:
        live = self.live
        assert live is not None
        agents = live.resolve(target)
        outcomes = getattr(control, verb)(live, agents, by="ui")
        self.post_message(ActionsDone(verb, outcomes))

    def on_actions_done(self, message: ActionsDone) -> None:
        self.release_refreshes()
        title = message.action.capitalize()
        if message.error:
            self.notify(message.error, title=f"{title} failed", severity="error",
                        markup=False)
        ok = [o for o in message.outcomes if o.ok]
        bad = [o for o in message.outcomes if not o.ok]
        if ok:
            self.notify("\n".join(f"{o.target}: {o.message}" for o in ok), title=title,
                        markup=False)
        if bad:
            self.notify("\n".join(f"{o.target}: {o.message}" for o in bad),
                        title=f"{title} failed", severity="error", markup=False)
        if message.message:
            self.notify(message.message, title=title, markup=False)
        if message.then_exit:
            squad = self.live.squad.name if self.live else "squad"
            # Agents, not outcomes: down adds a summary line (processes it had to kill).
            n = sum(1 for o in ok if "/" in o.target and not o.data.get("summary"))
            lines = [f"squad {squad}: stopped {n} agent{'s' if n != 1 else ''}"]
            lines += [f"  {o.target}: {o.message}" for o in bad]
            self.exit(return_code=1 if bad else 0, message=Text("\n".join(lines)))
            return
        self.refresh_all()

    # -- attach, input, dispatch -----------------------------------------------------------

    def action_attach(self) -> None:
        target = self._need_target(agent=True)
        live = self._need_live()
        if not target or live is None:
            return
        try:
            (agent,) = live.resolve(target)
            argv = control.attach_argv(live, agent)
            pane = live.require_pane(agent)
            sizes = window_sizes(live.tmux, pane.session_id)
            keys = detach_keys(live.tmux)
        except SquadError as exc:
            self.notify(str(exc), title="Attach failed", severity="error", markup=False)
            return
        env = dict(os.environ)
        env.pop("TMUX", None)
        try:
            with self.suspend():
                print(f"squad: attaching to {target}; detach with {keys} to come back",
                      flush=True)
                code = subprocess.run(argv, env=env, check=False).returncode
        except SuspendNotSupported:
            self.notify(f"attach needs a real terminal: run `squad attach {target}` in "
                        "another one", title="Attach", severity="error", markup=False)
            return
        except OSError as exc:
            self.notify(f"could not run tmux: {exc}", title="Attach failed",
                        severity="error", markup=False)
            return
        finally:
            restore_sizes(live.tmux, sizes)
        if code == 0:
            self.notify(f"detached from {target}", title="Attach", markup=False)
        else:
            self.notify(f"tmux attach exited with status {code}", title="Attach failed",
                        severity="error", markup=False)
        self.refresh(layout=True)
        self.ticks_now()

    def action_send_input(self) -> None:
        target = self._need_target(agent=True)
        if not target or not self._need_live():
            return

        def answered(request: SendRequest | None) -> None:
            if request is not None:
                self._send(target, request)

        self.push_screen(SendDialog(target, blink=self.frozen is None), answered)

    @thread_worker("actions", "send {0}", lambda error, target, request: ActionsDone(
        "send", error=error))
    def _send(self, target: str, request: SendRequest) -> None:
        live = self.live
        assert live is not None
        (agent,) = live.resolve(target)
        if request.keys:
            outcome = control.send_keys(live, agent, list(request.keys), by="ui")
            self.post_message(ActionsDone("keys", [outcome]))
        else:
            outcome = control.send(live, agent, (request.text or "").encode(), by="ui")
            self.post_message(ActionsDone("send", [outcome]))

    def action_dispatch(self) -> None:
        def answered(request: DispatchRequest | None) -> None:
            if request is not None:
                if self._need_live():
                    self._dispatch(request)

        self.push_screen(DispatchDialog(self.targets(), self.selected_agent,
                                        blink=self.frozen is None), answered)

    @thread_worker("actions", "dispatch", lambda error, request: ActionsDone(
        "dispatch", error=error))
    def _dispatch(self, request: DispatchRequest) -> None:
        message = self.tasks.dispatch(request.prompt, request.priority, request.tags,
                                      request.target)
        self.post_message(ActionsDone("dispatch", message=message))

    # -- review ------------------------------------------------------------------------------

    def action_diff(self) -> None:
        target = self._need_target(agent=True)
        if not target:
            return
        live = self.live if target in self.diffs else self._need_live()
        if live is None and target not in self.diffs:
            return
        agent = live.squad.agent(target) if live is not None else None
        if agent is not None and not agent.worktree:
            self.notify(f"{target} works in {live.squad.repo} itself (worktree = false): it "
                        "has no branch of its own to show", title="Diff", severity="warning",
                        markup=False)
            return
        from squad.ui.diffview import DiffScreen

        self.push_screen(DiffScreen(target))  # live is None: a frozen screen's diff

    # -- reshaping the squad -----------------------------------------------------------------

    def action_add_agent(self) -> None:
        live = self._need_live()
        if live is None:
            return

        def answered(request: AddRequest | None) -> None:
            if request is not None:
                self.notify(f"adding {request.target}…", markup=False, timeout=2)
                self._add(request)

        teams = [t.name for t in live.squad.teams]
        self.push_screen(AddAgentDialog(teams, blink=self.frozen is None), answered)

    @thread_worker("actions", "add {0.target}", lambda error, request: ActionsDone(
        "add", error=error))
    def _add(self, request: AddRequest) -> None:
        live = self.live
        assert live is not None
        outcomes = control.add_agent(live, request.target, request.settings, by="ui")
        self.post_message(ActionsDone("add", outcomes))

    def action_remove_agent(self) -> None:
        target = self._need_target(agent=True)
        live = self._need_live()
        if not target or live is None:
            return
        agent = live.squad.agent(target)
        wt = live.squad.worktree_dir(agent) if agent is not None and agent.worktree else None
        if wt is not None and wt.exists():
            body = (f"Its whole process tree is stopped, its window closed, and it leaves "
                    f"the squad; a task it holds goes back to the queue. Its worktree {wt} "
                    f"(branch {agent.branch_name()}) is kept, or deleted if you choose so "
                    "and it holds no uncommitted work.")
            choices = [("keep", "Remove, keep its worktree", "error"),
                       ("prune", "Remove and delete its worktree", "error")]
        else:
            body = ("Its whole process tree is stopped, its window closed, and it leaves "
                    "the squad; a task it holds goes back to the queue.")
            choices = [("keep", "Remove", "error")]

        def answered(choice: str | None) -> None:
            if choice:
                self.notify(f"removing {target}…", markup=False, timeout=2)
                self._remove(target, choice == "prune")

        self.push_screen(ChoiceDialog(f"Remove {target} from squad {live.squad.name}?",
                                      body, choices), answered)

    @thread_worker("actions", "remove {0}", lambda error, target, prune: ActionsDone(
        "remove", error=error))
    def _remove(self, target: str, prune: bool) -> None:
        live = self.live
        assert live is not None
        outcomes = control.remove_agent(live, target, prune=prune, by="ui")
        self.post_message(ActionsDone("remove", outcomes))

    # -- tasks (keys of the task panel) -------------------------------------------------------

    def _task_under_cursor(self) -> dict | None:
        task = self.task_panel.selected_task() if self.task_panel.display else None
        if task is None:
            self.notify("no task under the cursor: open the task panel (t)",
                        severity="warning", markup=False)
        return task

    def action_cancel_task(self) -> None:
        task = self._task_under_cursor()
        if task is None:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._task_worker("cancel", int(task["id"]))

        self.push_screen(ConfirmDialog(
            f"Cancel task #{task['id']}?", f"{task.get('title', '')}\n\nTasks that wait "
            "for it fail. An agent working on it keeps going: interrupt it with i (Escape "
            "or C-c) if it should stop.", "Cancel task"), answered)

    def action_retry_task(self) -> None:
        if (task := self._task_under_cursor()) is not None:
            self._task_worker("retry", int(task["id"]))

    def action_raise_priority(self) -> None:
        if (task := self._task_under_cursor()) is not None:
            self._task_worker("raise_priority", int(task["id"]))

    @thread_worker("actions", "task {0} #{1}", lambda error, verb, task_id: ActionsDone(
        "task", error=error))
    def _task_worker(self, verb: str, task_id: int) -> None:
        message = getattr(self.tasks, verb)(task_id)
        self.post_message(ActionsDone("task", message=message))

    # -- the whole squad -------------------------------------------------------------------

    def action_quit_and_stop(self) -> None:
        live = self._need_live()
        if live is None:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.notify(f"stopping every agent of squad {live.squad.name}…",
                            markup=False)
                self._down()

        n = len(self.snapshot.agents) if self.snapshot else 0
        self.push_screen(ConfirmDialog(
            f"Stop all {n} agent{'s' if n != 1 else ''} of squad {live.squad.name} and quit?",
            "Every agent's process tree is stopped and the squad's tmux sessions are "
            "removed. Worktrees are kept.", "Stop all and quit"), answered)

    @thread_worker("actions", "down", lambda error: ActionsDone("down", error=error))
    def _down(self) -> None:
        live = self.live
        assert live is not None
        outcomes = control.down(live, by="ui")
        self.post_message(ActionsDone("down", outcomes, then_exit=True))


# -- attaching without resizing the agents' windows for good ------------------------------------


def window_sizes(tmux: Tmux, session: str) -> dict[str, tuple[int, int]]:
    """The size of each window of a session (``$3`` or a name), before a client attaches."""
    out = tmux.run(["list-windows", "-t", session, "-F",
                    "#{window_id} #{window_width} #{window_height}"], check=False)
    sizes = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
            sizes[parts[0]] = (int(parts[1]), int(parts[2]))
    return sizes


def restore_sizes(tmux: Tmux, sizes: dict[str, tuple[int, int]]) -> None:
    """Give windows back the size they had before an attach. tmux resizes a window to the
    client that looks at it and keeps that size after the client detaches (160x48 became
    120x35 for good); ``resize-window`` sets it back, and unsetting ``window-size`` right
    after lets the next client that attaches fit the window to itself again (tmux 3.3a:
    checked by tests/test_ui_features.py)."""
    if not sizes:
        return
    out = tmux.run(["list-windows", "-a", "-F", "#{window_id} #{window_width} #{window_height}"],
                   check=False)
    now = {parts[0]: (parts[1], parts[2]) for line in out.splitlines()
           if len(parts := line.split()) == 3}
    units = [[["resize-window", "-t", window, "-x", str(w), "-y", str(h)],
              ["set-option", "-w", "-u", "-t", window, "window-size"]]
             for window, (w, h) in sizes.items()
             if window in now and now[window] != (str(w), str(h))]
    try:
        tmux.run_units(units)  # a big team's windows need several tmux command lines
    except SquadError:
        pass  # a window closed meanwhile: nothing to give back


def detach_keys(tmux: Tmux) -> str:
    """The keys that detach from squad's tmux, said for this terminal: inside another tmux
    its prefix reaches that one first, so when both use the same prefix it is pressed
    twice (the outer tmux sends the second one on)."""
    inner = tmux.run(["show-options", "-gv", "prefix"], check=False).strip() or "C-b"
    if not os.environ.get("TMUX"):
        return f"{inner} d"
    try:
        outer = subprocess.run(["tmux", "show-options", "-gv", "prefix"], capture_output=True,
                               text=True, timeout=2, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        outer = ""
    if outer == inner:
        return (f"{inner} {inner} d (you are inside tmux, whose {outer} comes first: "
                f"pressed twice, it goes on to squad's)")
    return f"{inner} d"
