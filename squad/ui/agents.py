"""The agent tree: teams (tmux sessions) and their agents (windows), one line each.

Every snapshot relabels the lines whose text changed, in place; the tree is rebuilt only
when the set of visible agents changes (a filter, an agent added), and the cursor stays on
the same agent. Node data is the target: ``team`` for a team line, ``team/agent`` for an
agent line. A worktree agent's line says what its worktree changed (``±3 ↑2``: files,
commits ahead of its base), and its memory turns yellow past its ``memory_warn_mb`` and red
past its ``memory_limit_mb``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual import events
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from squad.snapshot import AgentRow, Snapshot
from squad.ui.render import Columns, agent_label, matches, memory_level, team_label

if TYPE_CHECKING:
    from squad.review import DiffSummary


class AgentTree(Tree[str]):
    """Teams and agents with status glyph and colour, CPU, memory, breaker and task."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("squad", id=id)
        self.show_root = False
        self.guide_depth = 2
        self.auto_expand = False
        self.filter = ""
        self.snapshot: Snapshot | None = None
        self.limits: dict[str, tuple[int | None, int | None]] = {}
        """target -> (memory_warn_mb, memory_limit_mb) from the layout."""
        self.summaries: dict[str, DiffSummary | None] = {}
        """target -> what its worktree changed (worktree agents only)."""
        self._structure: tuple[tuple[str, tuple[str, ...]], ...] = ()
        self._by_target: dict[str, TreeNode[str]] = {}
        self._labels: dict[str, Text] = {}

    @property
    def selected(self) -> str | None:
        """The target under the cursor: ``team/agent``, ``team``, or None."""
        node = self.cursor_node
        return node.data if node is not None else None

    def visible_rows(self) -> list[AgentRow]:
        if self.snapshot is None:
            return []
        rows = list(self.snapshot.agents)
        if not self.filter.strip():
            return rows
        return [r for r in rows if matches(r, self.filter)]

    def show(self, snap: Snapshot | None = None, *, filter: str | None = None,
             limits: dict[str, tuple[int | None, int | None]] | None = None,
             summaries: dict[str, DiffSummary | None] | None = None) -> None:
        """Show a snapshot (or the last one again) with the current filter."""
        if snap is not None:
            self.snapshot = snap
        if filter is not None:
            self.filter = filter
        if limits is not None:
            self.limits = limits
        if summaries is not None:
            self.summaries = summaries
        rows = self.visible_rows()
        teams: dict[str, list[AgentRow]] = {}
        for row in rows:
            teams.setdefault(row.team, []).append(row)
        structure = tuple((t, tuple(r.target for r in rs)) for t, rs in teams.items())
        # Two cells for the guide, one for the scrollbar's room.
        cols = Columns(rows, max(20, self.scrollable_content_region.width - self.guide_depth - 1))
        labels: dict[str, Text] = {}
        for team, team_rows in teams.items():
            labels[team] = team_label(team, team_rows)
            for row in team_rows:
                warn, limit = self.limits.get(row.target, (None, None))
                labels[row.target] = agent_label(row, cols,
                                                 memory=memory_level(row.rss, warn, limit),
                                                 summary=self.summaries.get(row.target))
        if structure != self._structure:
            self._rebuild(structure, labels)
        else:
            for target, label in labels.items():
                if self._labels.get(target) != label:
                    self._by_target[target].set_label(label)
        self._labels = labels

    def _rebuild(self, structure: tuple[tuple[str, tuple[str, ...]], ...],
                 labels: dict[str, Text]) -> None:
        keep = self.selected
        self.clear()
        self._by_target = {}
        lines: dict[str, int] = {}
        line = 0
        for team, targets in structure:
            node = self.root.add(labels[team], data=team, expand=True)
            self._by_target[team] = node
            lines[team] = line
            line += 1
            for target in targets:
                self._by_target[target] = node.add_leaf(labels[target], data=target)
                lines[target] = line
                line += 1
        self._structure = structure
        if not lines:
            return
        if keep not in lines:
            # The first agent rather than a team line: the output panel has something to show.
            keep = next((t for _, ts in structure for t in ts), structure[0][0])
        # Set the line even when it did not change: the node on it is a new one.
        self.cursor_line = lines[keep]
        self.scroll_to_line(lines[keep], animate=False)

    def select_target(self, target: str) -> bool:
        """Move the cursor to an agent or team; False when it is not visible."""
        node = self._by_target.get(target)
        if node is None:
            return False
        for line, tree_line in enumerate(self._tree_lines):
            if tree_line.node is node:
                self.move_cursor_to_line(line)
                return True
        return False

    def on_resize(self, event: events.Resize) -> None:
        if self.snapshot is not None:
            self.show()
