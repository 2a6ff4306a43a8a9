"""The supervisor's resource policies, each tick: memory limits and pressure through the
governor (:mod:`squad.governor`), CPU limits through the limiter (:mod:`squad.cpulimit`),
``max_active`` through the dispatcher's gate.

Pause and resume act on the agents' trees here; restart, hibernate, wake and stop go through
:mod:`squad.control`, recorded ``by = "policy"`` with the rule that fired. Nothing here runs
unless the layout asks for it: no limits and no ``[governor]`` table cost nothing per tick.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from squad import control, events, records
from squad.cpulimit import CpuLimiter, Holds
from squad.errors import SquadError
from squad.governor import Executor, Governor, Sample, read_pressure
from squad.live import Live
from squad.snapshot import Snapshot
from squad.state import squad_dir

log = logging.getLogger(__name__)

DEFERRED = {"restart": control.restart, "hibernate": control.hibernate,
            "wake": control.wake, "stop": control.stop}


def holds(squad: str) -> Holds:
    """The markers of agents a person paused (a CPU duty cycle leaves them stopped)."""
    return Holds(squad_dir(squad) / "holds")


class Policies:
    """The governor, the CPU limiter and the dispatch gate of one supervisor."""

    def __init__(self, live: Live) -> None:
        self.live = live
        name = live.squad.name
        self.governor = Governor(live.squad.governor)
        self.holds = holds(name)
        self.limiter: CpuLimiter | None = None  # made when an agent has a cpu_limit
        self.executor = Executor(governor=self.governor,
                                 record=functools.partial(events.record_quietly, name))
        self.samples: list[Sample] = []
        self.last_actions: list[dict[str, Any]] = []

    # -- what the layout asks for ---------------------------------------------------------

    def _wants_memory(self) -> bool:
        return any(a.memory_warn_mb or a.memory_limit_mb for a in self.live.squad.agents())

    def _cpu_limits(self) -> bool:
        return any(a.cpu_limit for a in self.live.squad.agents())

    @property
    def active(self) -> bool:
        return self.live.squad.governor.active or self._wants_memory()

    # -- the tick ---------------------------------------------------------------------------

    def step(self, snap: Snapshot, table: Any = None) -> None:
        """Sample, decide, act. Called by the supervisor holding the lock, once per tick;
        ``table`` is the tick's process-table scan (reused, never repeated)."""
        squad = self.live.squad
        if self.governor.config != squad.governor:
            self.governor.configure(squad.governor)
        if self.limiter is None and self._cpu_limits():
            self.limiter = CpuLimiter(squad.name, held=self.holds.__contains__,
                                      journal=squad_dir(squad.name) / "cpulimit.json")
            self.limiter.recover()  # trees a supervisor killed mid-cycle left stopped
            self.limiter.sweep()
            self.executor.limiter = self.limiter
        if self.active:
            attached = (self.live.tmux.viewed_windows()
                        if squad.governor.watches_pressure else set())
            remembered = records.read(squad.name)
            samples = []
            for row in snap.agents:
                agent = squad.agent(row.target)
                if agent is None:
                    continue
                pin = agent.pinned or (remembered.get(row.target) or records.AgentRecord()
                                       ).pinned
                samples.append(Sample.of(row, agent, attached=row.window_id in attached,
                                         pinned=pin))
            self.samples = samples
            pressure = read_pressure() if squad.governor.watches_pressure else None
            actions = self.governor.step(samples, pressure, snap.at)
            if actions:
                self._carry_out(actions, samples)
        if self.limiter is not None:
            wanted = {}
            for row in snap.agents:
                agent = squad.agent(row.target)
                if (agent is not None and agent.cpu_limit and row.state == "running"
                        and row.wrapper_pid):
                    wanted[row.target] = (row.wrapper_pid, row.wrapper_start, agent.cpu_limit)
            try:
                self.limiter.sync(wanted, table)
            except OSError as exc:
                log.warning("cpu limits not applied: %s", exc)

    def _carry_out(self, actions: list, samples: list[Sample]) -> None:
        for res in self.executor.run(actions, samples):
            action = res.action
            self.last_actions = (self.last_actions + [{
                "kind": action.kind, "target": action.target, "rule": action.rule,
                "reason": action.reason, "ok": res.ok, "dry_run": action.dry_run}])[-10:]
            if not res.deferred:
                continue
            agent = self.live.squad.agent(action.target)
            fn = DEFERRED[action.kind]
            try:
                outcomes = fn(self.live, [agent], reason=f"{action.rule}: {action.reason}",
                              by="policy") if agent else []
            except SquadError as exc:
                log.warning("policy %s of %s failed: %s", action.kind, action.target, exc)
                outcomes = []
            if not outcomes or not all(o.ok for o in outcomes):
                self.governor.undo(action)

    # -- for dispatch, the published snapshot and the CLI -----------------------------------

    def free_slots(self) -> int | None:
        """How many new tasks may start now (None: no limit)."""
        if not self.live.squad.governor.active or not self.samples:
            return None
        return self.governor.free_slots(self.samples)

    def cycling(self, target: str) -> bool:
        return self.limiter is not None and self.limiter.cycling(target)

    def describe(self) -> dict[str, Any]:
        return {"governor": self.governor.describe(),
                "cpu_limits": self.limiter.describe() if self.limiter else {},
                "actions": self.last_actions}

    def close(self) -> None:
        if self.limiter is not None:
            self.limiter.close()  # releases the cgroups, continues duty-cycled trees

