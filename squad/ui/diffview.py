"""The diff view (key ``D``): what an agent's worktree changed, merging it, and feedback.

The files it changed with their +/- counts, the commits it is ahead of its base, and the
whole diff with syntax colours, scrollable; ``m`` merges its branch into its base (asking
first; a refusal says why and changes nothing), ``f`` sends it feedback (as input now, or
as a queued task), ``r`` reads it again. The diff is computed in a thread worker by
:func:`squad.review.diff` (cached there by the worktree's state) and rendered to lines in
the same worker; the app keeps the last rendering per agent, so the view opens at once and
refreshes behind.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from rich.style import Style
from rich.syntax import Syntax
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.geometry import Size
from textual.message import Message
from textual.screen import Screen
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import DataTable, Static

from squad import control
from squad.ui.dialogs import Feedback, FeedbackDialog, MergeDialog, MergeRequest
from squad.ui.keybar import KeyBar
from squad.ui.paint import set_title, update
from squad.ui.workers import thread_worker

if TYPE_CHECKING:
    from squad.review import AgentDiff, MergeResult
    from squad.ui.app import SquadApp

DIFFS_KEPT = 8  # agents whose rendered diff the app keeps
HIGHLIGHT_LINES = 20_000  # patch lines given syntax colours; the rest only +/- colours
ADDED = Style(bgcolor="color(22)")
REMOVED = Style(bgcolor="color(52)")
_GIT_HEADER = re.compile(r"^diff --git a/(.*) b/(.*)$")


# -- rendering (plain functions, run in a worker) ---------------------------------------------


def _syntax(path: str) -> Syntax | None:
    from pygments.lexers import get_lexer_for_filename
    from pygments.util import ClassNotFound

    try:
        lexer = get_lexer_for_filename(path, stripnl=False, ensurenl=False)
    except ClassNotFound:
        return None
    return Syntax("", lexer, theme="ansi_dark", background_color="default")


def _hunk(lines: list[str], syntax: Syntax | None, out: list[Text]) -> None:
    """Lines of one hunk (``+``, ``-``, `` `` and ``\\`` lines): the code highlighted in
    one piece (the lexer sees its context), each line tinted by its kind."""
    code = "\n".join(line[1:] for line in lines)
    texts = syntax.highlight(code).split("\n") if syntax is not None else [
        Text(line[1:]) for line in lines]
    for line, body in zip(lines, texts, strict=False):
        mark = line[:1]
        text = Text(no_wrap=True, end="")
        if mark == "\\":
            text.append(line, style="dim italic")
        else:
            text.append(mark or " ", style="bold green" if mark == "+" else
                        "bold red" if mark == "-" else "dim")
            body.no_wrap, body.end = True, ""
            text.append_text(body)
            if mark in ("+", "-"):
                text.stylize_before(ADDED if mark == "+" else REMOVED)
        out.append(text)


def patch_lines(patch: str) -> tuple[list[Text], dict[str, int]]:
    """A unified diff as coloured lines, and the line where each file's part starts."""
    out: list[Text] = []
    starts: dict[str, int] = {}
    syntax: Syntax | None = None
    hunk: list[str] = []
    budget = HIGHLIGHT_LINES

    def flush() -> None:
        nonlocal hunk, budget
        if hunk:
            _hunk(hunk, syntax if budget > 0 else None, out)
            budget -= len(hunk)
            hunk = []

    in_hunk = False
    for line in patch.split("\n"):
        if in_hunk and line[:1] in ("+", "-", " ", "\\") and line:
            hunk.append(line)
            continue
        flush()
        in_hunk = False
        if line.startswith("diff --git "):
            m = _GIT_HEADER.match(line)
            path = m.group(2) if m else line[11:]
            starts.setdefault(path, len(out))
            syntax = _syntax(path)
            out.append(Text(f" {path} ", style="bold reverse", no_wrap=True, end=""))
        elif line.startswith("@@"):
            in_hunk = True
            out.append(Text(line, style="cyan", no_wrap=True, end=""))
        else:
            out.append(Text(line, style="dim", no_wrap=True, end=""))
    flush()
    while out and not out[-1].plain:
        out.pop()
    return out, starts


@dataclass
class Rendered:
    """An agent's diff as the view shows it."""

    diff: AgentDiff
    lines: list[Text]
    starts: dict[str, int]


def headline(d: AgentDiff) -> Text:
    """Two lines: where the branch stands against its base, and what changed."""
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(d.target, style="bold")
    text.append(f"  {d.branch or 'detached HEAD'}", style="cyan")
    text.append(" against ", style="dim")
    text.append(d.base, style="cyan")
    text.append(f"  ({d.worktree})", style="dim")
    text.append("\n")
    text.append(f"{len(d.files)} file{'s' if len(d.files) != 1 else ''}", style="bold")
    text.append(f"  +{d.insertions}", style="green")
    text.append(f" -{d.deletions}", style="red")
    text.append(f"  {d.ahead} commit{'s' if d.ahead != 1 else ''} ahead", style="bold")
    if d.behind:
        text.append(f", {d.behind} behind", style="yellow")
    if d.uncommitted:
        text.append(f"  {d.uncommitted} uncommitted", style="yellow")
    return text


# -- widgets ------------------------------------------------------------------------------------


class PatchView(ScrollView, can_focus=True):
    """The diff's lines, painted as they scroll into view."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "scroll_up", show=False), Binding("down", "scroll_down", show=False),
        Binding("pageup", "page_up", show=False), Binding("pagedown", "page_down", show=False),
        Binding("home", "scroll_home", show=False), Binding("end", "scroll_end", show=False),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.lines: list[Text] = []
        self._strips: dict[int, Strip] = {}

    def show(self, lines: list[Text]) -> None:
        self.lines = lines
        self._strips.clear()
        self.virtual_size = Size(max((t.cell_len for t in lines), default=0), len(lines))
        self.refresh()

    def plain(self) -> str:
        return "\n".join(t.plain for t in self.lines)

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index = scroll_y + y
        width = self.scrollable_content_region.width
        style = self.rich_style
        if index >= len(self.lines):
            return Strip.blank(width, style)
        strip = self._strips.get(index)
        if strip is None:
            text = self.lines[index]
            strip = self._strips[index] = Strip(text.render(self.app.console), text.cell_len)
        return strip.apply_style(style).crop_extend(scroll_x, scroll_x + width, style)


class DiffReady(Message):
    """The diff was computed (or could not be: ``error``)."""

    def __init__(self, target: str, rendered: Rendered | None, error: str | None = None
                 ) -> None:
        super().__init__()
        self.target = target
        self.rendered = rendered
        self.error = error


class Merged(Message):
    """A merge finished: what it did, or why it was refused."""

    def __init__(self, result: MergeResult | None, error: str | None = None) -> None:
        super().__init__()
        self.result = result
        self.error = error


class DiffScreen(Screen[None]):
    """The selected agent's changes against its base (see the module docstring)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "close", "Back"),
        Binding("m", "merge", "Merge", tooltip="Merge its branch into its base (asks first)"),
        Binding("f", "feedback", "Feedback",
                tooltip="Send it feedback: as input now, or as a queued task"),
        Binding("r", "reload", "Reload", tooltip="Read the diff again"),
        Binding("n", "next_file(1)", "Next file"),
        Binding("N", "next_file(-1)", "Prev file", key_display="N"),
    ]

    def __init__(self, target: str) -> None:
        super().__init__()
        self.target = target
        self.rendered: Rendered | None = None

    @property
    def squad_app(self) -> SquadApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Static(id="diff-head")
        with Horizontal(id="diff-body"):
            with Vertical(id="diff-side"):
                files: DataTable = DataTable(id="diff-files", cursor_type="row")
                files.add_columns("", "file", "+", "-")
                yield files
                commits: DataTable = DataTable(id="diff-commits", cursor_type="row")
                commits.add_columns("commit", "subject")
                yield commits
            yield PatchView(id="diff-patch")
        yield KeyBar({}, app_keys=False, compact=True)

    def on_mount(self) -> None:
        self.query_one("#diff-files").border_title = "Files"
        self.query_one("#diff-commits").border_title = "Commits ahead"
        set_title(self.query_one("#diff-patch"), Text(f"Diff · {self.target}"))
        cached = self.squad_app.diffs.get(self.target)
        if cached is not None:
            self._show(cached)
        else:
            update(self.query_one("#diff-head", Static),
                   Text(f"{self.target}: reading its diff…", style="dim italic"))
        self.query_one("#diff-patch").focus()
        self.action_reload()

    # -- reading --------------------------------------------------------------------------

    def action_reload(self) -> None:
        if self.squad_app.live is not None:  # frozen screens show what they were given
            self._compute(self.target)

    @thread_worker("diff", "diff {0}", lambda error, target: DiffReady(target, None, error),
                   exclusive=True)
    def _compute(self, target: str) -> None:
        from squad import review

        live = self.squad_app.live
        assert live is not None
        agent = live.squad.agent(target)
        if agent is None:
            live.resolve(target)  # says which agents there are
        assert agent is not None
        d = review.diff(live.squad, agent)
        lines, starts = patch_lines(d.patch)
        if not lines:
            lines = [Text("no changes against its base", style="dim italic")]
        self.post_message(DiffReady(target, Rendered(d, lines, starts)))

    def on_diff_ready(self, message: DiffReady) -> None:
        if message.target != self.target:
            return
        if message.rendered is None:
            update(self.query_one("#diff-head", Static),
                   Text(f"{self.target}: {message.error}", style="bold red"))
            if self.rendered is None:
                self.query_one(PatchView).show([Text(message.error or "", style="red")])
            return
        diffs = self.squad_app.diffs
        diffs.pop(self.target, None)
        diffs[self.target] = message.rendered
        while len(diffs) > DIFFS_KEPT:  # the agents looked at least recently go first
            diffs.pop(next(iter(diffs)))
        self._show(message.rendered)

    def _show(self, rendered: Rendered) -> None:
        same = (self.rendered is not None
                and self.rendered.diff.patch == rendered.diff.patch
                and self.rendered.diff.commits == rendered.diff.commits)
        self.rendered = rendered
        d = rendered.diff
        update(self.query_one("#diff-head", Static), headline(d), layout=False)
        if same:
            return
        files = self.query_one("#diff-files", DataTable)
        files.clear()
        for f in d.files:
            name = f.path if not f.old_path else f"{f.old_path} → {f.path}"
            files.add_row(Text(f.status[:1].upper() + ("*" if f.uncommitted else ""),
                               style="yellow" if f.uncommitted else "dim"),
                          Text(name), Text("bin" if f.binary else f"+{f.added}", style="green"),
                          Text("" if f.binary else f"-{f.deleted}", style="red"))
        commits = self.query_one("#diff-commits", DataTable)
        commits.clear()
        for c in d.commits:
            commits.add_row(Text(c.sha[:8], style="yellow"), Text(c.subject))
        self.query_one(PatchView).show(rendered.lines)

    # -- moving around ----------------------------------------------------------------------

    @on(DataTable.RowHighlighted, "#diff-files")
    def _file_chosen(self, event: DataTable.RowHighlighted) -> None:
        if self.rendered is None or not self.query_one("#diff-files").has_focus:
            return
        self._jump(event.cursor_row)

    def _jump(self, row: int) -> None:
        assert self.rendered is not None
        files = self.rendered.diff.files
        if 0 <= row < len(files):
            line = self.rendered.starts.get(files[row].path)
            if line is not None:
                self.query_one(PatchView).scroll_to(y=line, animate=False)

    def action_next_file(self, step: int) -> None:
        if self.rendered is None or not self.rendered.starts:
            return
        view = self.query_one(PatchView)
        here = round(view.scroll_y)
        starts = sorted(self.rendered.starts.values())
        later = [s for s in starts if s > here] if step > 0 else [s for s in starts if s < here]
        if later:
            view.scroll_to(y=later[0] if step > 0 else later[-1], animate=False)

    def action_close(self) -> None:
        self.dismiss(None)

    # -- merge and feedback -----------------------------------------------------------------

    def action_merge(self) -> None:
        d = self.rendered.diff if self.rendered else None
        if d is None:
            self.notify("the diff is not read yet", severity="warning", markup=False)
            return
        branch = d.branch or "its branch"
        body = (f"{branch} ({d.ahead} commit{'s' if d.ahead != 1 else ''}) is merged into "
                f"{d.base} in the main repository: a fast-forward when it can, else a merge "
                "commit. Nothing is changed, and the reason is shown, when the main "
                "repository has uncommitted changes or is on another branch, or the merge "
                "would conflict.")

        def answered(request: MergeRequest | None) -> None:
            if request is not None:
                self._merge(self.target, request.commit_message)

        self.app.push_screen(MergeDialog(f"Merge {self.target}'s work into {d.base}?", body,
                                         d.uncommitted,
                                         blink=self.squad_app.frozen is None), answered)

    @thread_worker("diff-merge", "merge {0}", lambda error, target, message: Merged(
        None, error))
    def _merge(self, target: str, message: str | None) -> None:
        from squad import review

        live = self.squad_app.live
        assert live is not None
        (agent,) = live.resolve(target)
        self.post_message(Merged(review.merge(live.squad, agent, commit_message=message,
                                              by="ui")))

    def on_merged(self, message: Merged) -> None:
        if message.error:
            self.notify(message.error, title="Merge refused", severity="error", timeout=12,
                        markup=False)
        elif message.result is not None:
            self.notify(message.result.message, title="Merged", markup=False)
        self.action_reload()

    def action_feedback(self) -> None:
        def answered(feedback: Feedback | None) -> None:
            if feedback is not None:
                self._feedback(self.target, feedback)

        self.app.push_screen(FeedbackDialog(self.target, blink=self.squad_app.frozen is None),
                             answered)

    @thread_worker("actions", "feedback {0}", lambda error, target, feedback: FeedbackSent(
        target, None, error))
    def _feedback(self, target: str, feedback: Feedback) -> None:
        app = self.squad_app
        live = app.live
        assert live is not None
        if feedback.as_task:
            said = app.tasks.dispatch(
                f"Review feedback on your changes (see `git diff` in your worktree):\n\n"
                f"{feedback.text}", "high", [], target)
        else:
            (agent,) = live.resolve(target)
            said = control.send(live, agent, feedback.text.encode(), by="ui",
                                reason="review feedback").message
        self.post_message(FeedbackSent(target, said))

    def on_feedback_sent(self, message: FeedbackSent) -> None:
        if message.error:
            self.notify(message.error, title="Feedback failed", severity="error",
                        markup=False)
        else:
            self.notify(f"{message.target}: {message.said}", title="Feedback", markup=False)


class FeedbackSent(Message):
    """Feedback went to the agent (``said``: what came of it), or failed (``error``)."""

    def __init__(self, target: str, said: str | None, error: str | None = None) -> None:
        super().__init__()
        self.target = target
        self.said = said
        self.error = error
