"""What the keys do: pause, resume, stop, restart, attach, send input, dispatch, quit+stop.

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
from squad.ui.dialogs import ConfirmDialog, DispatchDialog, DispatchRequest, SendDialog
from squad.ui.messages import ActionsDone
from squad.ui.workers import thread_worker

if TYPE_CHECKING:
    from textual.app import App

    from squad.snapshot import Snapshot
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
        if not target or not self._need_live():
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.notify(f"restarting {self._what(target)}…", markup=False, timeout=2)
                self.run_control("restart", target)

        self.push_screen(ConfirmDialog(
            f"Restart {self._what(target)}?",
            "The agent is stopped (its work in progress is lost) and started again with "
            "the command, directory and environment of the layout.", "Restart"), answered)

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
            lines = [f"squad {squad}: stopped {len(ok)} agent{'s' if len(ok) != 1 else ''}"]
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
        except SquadError as exc:
            self.notify(str(exc), title="Attach failed", severity="error", markup=False)
            return
        env = dict(os.environ)
        env.pop("TMUX", None)
        try:
            with self.suspend():
                print(f"squad: attaching to {target}; detach with C-b d to come back",
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

        def answered(text: str | None) -> None:
            if text is not None:
                self._send(target, text)

        self.push_screen(SendDialog(target, blink=self.frozen is None), answered)

    @thread_worker("actions", "send {0}", lambda error, target, text: ActionsDone(
        "send", error=error))
    def _send(self, target: str, text: str) -> None:
        live = self.live
        assert live is not None
        (agent,) = live.resolve(target)
        outcome = control.send(live, agent, text.encode(), by="ui")
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
            f"Stop all {n} agents of squad {live.squad.name} and quit?",
            "Every agent's process tree is stopped and the squad's tmux sessions are "
            "removed. Worktrees are kept.", "Stop all and quit"), answered)

    @thread_worker("actions", "down", lambda error: ActionsDone("down", error=error))
    def _down(self) -> None:
        live = self.live
        assert live is not None
        outcomes = control.down(live, by="ui")
        self.post_message(ActionsDone("down", outcomes, then_exit=True))
