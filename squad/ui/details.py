"""The details panel: the selected agent's facts, CPU and memory gauges with sparklines of
their recent history, and buttons for the mouse."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Sparkline, Static

from squad.snapshot import AgentRow
from squad.ui.gauge import Gauge
from squad.ui.paint import update
from squad.ui.render import human_bytes, status_text

BUTTONS = (
    ("pause", "Pause"), ("resume", "Resume"), ("stop", "Stop"), ("restart", "Restart"),
    ("attach", "Attach"), ("send_input", "Input"), ("dispatch", "Dispatch"), ("diff", "Diff"),
)


class AgentDetails(Vertical):
    """Facts and usage of one agent (or a team's totals)."""

    def compose(self) -> ComposeResult:
        yield Static(id="facts")
        with Horizontal(classes="usage"):
            yield Gauge("CPU", id="agent-cpu", value_width=6)
            yield Sparkline([], id="cpu-spark")
        with Horizontal(classes="usage"):
            yield Gauge("MEM", id="agent-mem", value_width=6)
            yield Sparkline([], id="mem-spark")
        with Horizontal(id="buttons"):
            for action, label in BUTTONS:
                yield Button(label, id=f"btn-{action}", compact=True,
                             action=f"app.{action}", classes=f"act-{action}")

    def show(self, target: str | None, rows: list[AgentRow], history: list[tuple],
             now: float, mem_total: int, mem_limit: int | None = None) -> None:
        """Show an agent (one row) or a team (its rows, totals) with its usage history."""
        facts = Text(no_wrap=True, overflow="ellipsis")
        if not rows:
            facts.append(f"{target}: not shown" if target else "no agent selected",
                         style="dim italic")
            update(self.query_one("#facts", Static), facts, layout=False)
            for gid in ("#agent-cpu", "#agent-mem"):
                self.query_one(gid, Gauge).update(0, "-")
            self.query_one("#cpu-spark", Sparkline).data = []
            self.query_one("#mem-spark", Sparkline).data = []
            return
        if len(rows) == 1 and target and "/" in target:
            row = rows[0]
            facts.append(row.target, style="bold")
            facts.append(f" {row.role}" if row.role else "", style="italic")
            facts.append("  ")
            facts.append_text(status_text(row, now))
            bits = []
            if row.pid:
                bits.append(f"pid {row.pid}")
            if row.procs:
                bits.append(f"{row.procs} proc{'s' if row.procs != 1 else ''}")
            if row.branch:
                bits.append(f"branch {row.branch}")
            if bits:
                facts.append("  " + " · ".join(bits), style="dim")
            facts.append("\n")
            facts.append("task ", style="dim")
            facts.append(row.task or "none", style="" if row.task else "dim")
            if row.breaker and row.breaker != "closed":
                facts.append("  breaker ", style="dim")
                facts.append(row.breaker, style="bold red")
            if row.tags:
                facts.append("  tags ", style="dim")
                facts.append(", ".join(row.tags))
            if row.worktree:
                facts.append("  worktree ", style="dim")
                facts.append(row.worktree)
        else:
            facts.append(f"team {target}", style="bold")
            facts.append(f"  {len(rows)} agents", style="dim")
            facts.append("\n")
            for row in rows:
                facts.append_text(status_text(row))
                facts.append(f" {row.agent}  ")
        update(self.query_one("#facts", Static), facts, layout=False)
        cpu = sum(r.cpu for r in rows)
        rss = sum(r.rss for r in rows)
        self.query_one("#agent-cpu", Gauge).update(cpu / 100, f"{cpu:.1f}%")
        scale = mem_limit or mem_total or 1
        self.query_one("#agent-mem", Gauge).update(rss / scale, human_bytes(rss) if rss else "-")
        self.query_one("#cpu-spark", Sparkline).data = [c for _, c, _ in history] or [0.0]
        self.query_one("#mem-spark", Sparkline).data = [float(m) for _, _, m in history] or [0.0]
