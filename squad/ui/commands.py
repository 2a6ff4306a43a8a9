"""Command palette commands (ctrl+p): each action once.

Actions on one agent are listed per agent (``Pause frontend/dev``, ``Diff backend/qa``):
with nothing typed, the selected agent's actions (with their keys) and ``Go to`` each agent;
typing searches every agent's. The app lists the other actions (dispatch, panels, quit) as
system commands; see :meth:`squad.ui.app.SquadApp.get_system_commands`.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from textual.command import DiscoveryHit, Hit, Hits, Provider

if TYPE_CHECKING:
    from squad.ui.app import SquadApp

AGENT_ACTIONS = (
    ("Go to", None), ("Pause", "pause"), ("Resume", "resume"), ("Stop", "stop"),
    ("Restart", "restart"), ("Hibernate", "hibernate"), ("Wake", "wake"),
    ("Attach to", "attach"), ("Send input to", "send_input"), ("Diff of", "diff"),
    ("Remove", "remove_agent"),
)
"""What the palette offers for each agent: (verb, app action)."""

AGENT_ACTION_NAMES = frozenset(a for _, a in AGENT_ACTIONS if a)


class AgentCommands(Provider):
    """``Pause frontend/dev``, ``Go to backend/qa``, ...: actions on an agent named in the
    palette, without moving the cursor first."""

    def _keys(self) -> dict[str, str]:
        app: SquadApp = self.app  # type: ignore[assignment]
        return {b.action: app.get_key_display(b) for b in app.BINDINGS  # type: ignore[union-attr]
                if getattr(b, "action", None) in AGENT_ACTION_NAMES}

    def _commands(self) -> list[tuple[str, str, object]]:
        app: SquadApp = self.app  # type: ignore[assignment]
        out = []
        for target in app.targets():
            for verb, action in AGENT_ACTIONS:
                help = f"{verb} {target}" if action else f"select {target} in the tree"
                out.append((f"{verb} {target}", help, partial(app.act_on, target, action)))
        return out

    async def discover(self) -> Hits:
        app: SquadApp = self.app  # type: ignore[assignment]
        keys = self._keys()
        selected = app.selected_agent
        if selected:
            for verb, action in AGENT_ACTIONS:
                if action:
                    yield DiscoveryHit(f"{verb} {selected} ({keys.get(action, '')})",
                                       partial(app.act_on, selected, action),
                                       help="the selected agent")
        for target in app.targets():
            if target != selected:
                yield DiscoveryHit(f"Go to {target}", partial(app.act_on, target, None),
                                   help="select this agent")

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help, callback in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help)
