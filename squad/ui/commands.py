"""Command palette commands (ctrl+p): every key's action, and each agent by name."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from textual.command import DiscoveryHit, Hit, Hits, Provider

if TYPE_CHECKING:
    from squad.ui.app import SquadApp

AGENT_ACTIONS = (
    ("Go to", None), ("Pause", "pause"), ("Resume", "resume"), ("Stop", "stop"),
    ("Restart", "restart"), ("Attach to", "attach"), ("Send a line to", "send_input"),
)


class AgentCommands(Provider):
    """``Pause frontend/dev``, ``Go to backend/qa``, ...: actions on an agent named in the
    palette, without moving the cursor first."""

    def _commands(self) -> list[tuple[str, str, object]]:
        app: SquadApp = self.app  # type: ignore[assignment]
        out = []
        for target in app.targets():
            for verb, action in AGENT_ACTIONS:
                help = f"{verb} {target}" if action else f"select {target} in the tree"
                out.append((f"{verb} {target}", help,
                            partial(app.act_on, target, action)))
        return out

    async def discover(self) -> Hits:
        app: SquadApp = self.app  # type: ignore[assignment]
        for target in app.targets():
            yield DiscoveryHit(f"Go to {target}", partial(app.act_on, target, None),
                               help="select this agent")

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help, callback in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help)
