"""Modal screens: confirmations, sending a line, the dispatch form, and the help screen.

Each returns its answer with ``dismiss`` (a bool, the text, a :class:`DispatchRequest`),
so the app reacts in one callback; Escape always cancels.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Button, Input, Label, Select, Static, TextArea

from squad.style import STATUS_GLYPH, STATUS_STYLE
from squad.ui.render import STATUS_WORD
from squad.ui.task_queue import PRIORITIES


class ConfirmDialog(ModalScreen[bool]):
    """Ask before something that cannot be undone: y / Enter confirms, n / Escape cancels."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes", show=False),
        Binding("n,escape", "answer(False)", "No", show=False),
    ]

    def __init__(self, title: str, body: str, confirm: str) -> None:
        super().__init__(classes="dialog-screen")
        self.title_text = title
        self.body = body
        self.confirm = confirm

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog confirm"):
            yield Label(Text(self.title_text), classes="dialog-title")
            yield Static(Text(self.body), classes="dialog-body")
            with Horizontal(classes="dialog-buttons"):
                yield Button(f"{self.confirm} (y)", variant="error", id="yes")
                yield Button("Cancel (n)", id="no")

    def on_mount(self) -> None:
        self.query_one("#yes", Button).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class SendDialog(ModalScreen[str | None]):
    """One line of input for an agent; Enter sends it (followed by Enter)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", show=False)]

    def __init__(self, target: str, *, blink: bool = True) -> None:
        super().__init__(classes="dialog-screen")
        self.target = target
        self.blink = blink

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog send"):
            yield Label(Text(f"Send a line to {self.target}"), classes="dialog-title")
            field = Input(placeholder="text for the agent; Enter sends, Escape cancels",
                          id="send-text")
            field.cursor_blink = self.blink
            yield field

    @on(Input.Submitted)
    def _submit(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


@dataclass(frozen=True)
class DispatchRequest:
    """What the dispatch form asks for."""

    prompt: str
    priority: str
    tags: list[str]
    target: str | None


class DispatchDialog(ModalScreen[DispatchRequest | None]):
    """The dispatch form: prompt, priority, tags and an optional target."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", show=False),
        Binding("ctrl+s", "submit", "Dispatch", show=False),
    ]

    def __init__(self, targets: list[str], default_target: str | None, *,
                 blink: bool = True) -> None:
        super().__init__(classes="dialog-screen")
        self.targets = targets
        self.default_target = default_target
        self.blink = blink

    def compose(self) -> ComposeResult:
        where = "empty: the least-loaded suitable agent"
        with Vertical(classes="dialog dispatch"):
            yield Label("Dispatch a task", classes="dialog-title")
            prompt = TextArea(id="prompt", placeholder="What should the agent do?",
                              soft_wrap=True)
            prompt.cursor_blink = self.blink
            yield prompt
            with Horizontal(classes="form-row"):
                yield Label("Priority", classes="form-label")
                yield Select([(p, p) for p in PRIORITIES], value="medium",
                             allow_blank=False, id="priority", compact=True)
            with Horizontal(classes="form-row"):
                yield Label("Tags", classes="form-label")
                tags = Input(placeholder="comma separated, e.g. frontend, css", id="tags",
                             compact=True)
                tags.cursor_blink = self.blink
                yield tags
            with Horizontal(classes="form-row"):
                yield Label("Target", classes="form-label")
                target = Input(placeholder=where, id="target", compact=True,
                               suggester=SuggestFromList(self.targets, case_sensitive=False))
                target.cursor_blink = self.blink
                yield target
            with Horizontal(classes="dialog-buttons"):
                yield Button("Dispatch (ctrl+s)", variant="primary", id="go")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#prompt", TextArea).focus()

    @on(Button.Pressed, "#go")
    def action_submit(self) -> None:
        prompt = self.query_one("#prompt", TextArea).text
        if not prompt.strip():
            self.notify("write a prompt first", severity="warning")
            self.query_one("#prompt", TextArea).focus()
            return
        tags = [t.strip() for t in self.query_one("#tags", Input).value.split(",") if t.strip()]
        target = self.query_one("#target", Input).value.strip() or None
        priority = str(self.query_one("#priority", Select).value)
        self.dismiss(DispatchRequest(prompt, priority, tags, target))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


LEGEND = ("working", "idle", "needs-input", "stalled", "paused", "starting", "exited", "down")


class HelpScreen(ModalScreen[None]):
    """Every key, what the glyphs mean, and where the mouse works."""

    BINDINGS = [Binding("escape,question_mark,q", "close", "Close", show=False)]

    def __init__(self, keys: list[tuple[str, str]]) -> None:
        super().__init__(classes="dialog-screen")
        self.keys = keys

    def compose(self) -> ComposeResult:
        keys = Table.grid(padding=(0, 2))
        keys.add_column(style="bold", no_wrap=True)
        keys.add_column()
        for key, what in self.keys:
            keys.add_row(Text(key), Text(what))
        legend = Table.grid(padding=(0, 1))
        legend.add_column(no_wrap=True)
        legend.add_column()
        for status in LEGEND:
            legend.add_row(Text(STATUS_GLYPH[status], style=STATUS_STYLE[status]),
                           Text(STATUS_WORD[status]))
        with Vertical(classes="dialog help"):
            yield Label("squad · keys", classes="dialog-title")
            with VerticalScroll():
                with Horizontal(classes="help-columns"):
                    yield Static(keys, classes="help-keys")
                    yield Static(legend, classes="help-legend")
                yield Static(Text(
                    "Mouse: click an agent to select it, a footer key or a button to act, "
                    "a grid tile to select its agent; the wheel scrolls output. "
                    "Attach hands the terminal to tmux: detach with C-b d to come back. "
                    "ctrl+p opens the command palette with every action.",
                    style="dim"), classes="help-note")
            yield Static(Text("Escape or ? closes", style="dim italic"), classes="dialog-note")

    def action_close(self) -> None:
        self.dismiss(None)
