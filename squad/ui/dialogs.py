"""Modal screens: confirmations and choices, sending input, the dispatch form, adding an
agent, merging and feedback from the diff view, and the help screen.

Each returns its answer with ``dismiss`` (a bool, a choice, a small request dataclass), so
the app reacts in one callback; Escape always cancels.
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
from textual.widgets import Button, Checkbox, Input, Label, Select, Static, TextArea

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


@dataclass(frozen=True)
class SendRequest:
    """What the input dialog sends: a line of text (then Enter), or keys by tmux name."""

    text: str | None = None
    keys: tuple[str, ...] = ()


KEY_BUTTONS = ("Escape", "C-c", "Enter", "Up", "Down", "Tab", "y", "n")
"""Keys one click (or Tab and Enter) away in the input dialog: interrupt Claude Code
(Escape), a command (C-c), answer a menu or a question."""


class SendDialog(ModalScreen[SendRequest | None]):
    """Input for an agent: a line of text (Enter sends it, followed by Enter), or keys: a
    button per common key, or tmux key names typed in the second field (``Escape``,
    ``C-c``, ``Up Up Enter``)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", show=False)]

    def __init__(self, target: str, *, blink: bool = True) -> None:
        super().__init__(classes="dialog-screen")
        self.target = target
        self.blink = blink

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog send"):
            yield Label(Text(f"Send input to {self.target}"), classes="dialog-title")
            field = Input(placeholder="a line of text; Enter sends it, Escape cancels",
                          id="send-text")
            field.cursor_blink = self.blink
            yield field
            with Horizontal(classes="form-row"):
                yield Label("Keys", classes="form-label")
                keys = Input(placeholder="tmux key names: Escape, C-c, Up Up Enter, F5",
                             id="send-keys", compact=True)
                keys.cursor_blink = self.blink
                yield keys
            with Horizontal(classes="key-buttons"):
                for key in KEY_BUTTONS:
                    yield Button(key, id=f"key-{KEY_BUTTONS.index(key)}", compact=True,
                                 classes="key-button")

    def on_mount(self) -> None:
        self.query_one("#send-text", Input).focus()

    @on(Input.Submitted, "#send-text")
    def _submit_text(self, event: Input.Submitted) -> None:
        self.dismiss(SendRequest(text=event.value))

    @on(Input.Submitted, "#send-keys")
    def _submit_keys(self, event: Input.Submitted) -> None:
        from squad.errors import SquadError
        from squad.tmux import check_key

        keys = event.value.replace(",", " ").split()
        try:
            for key in keys:
                check_key(key)
        except SquadError as exc:
            self.notify(str(exc), severity="error", markup=False)
            return
        if keys:
            self.dismiss(SendRequest(keys=tuple(keys)))

    @on(Button.Pressed, ".key-button")
    def _key_button(self, event: Button.Pressed) -> None:
        self.dismiss(SendRequest(keys=(str(event.button.label),)))

    def action_cancel(self) -> None:
        self.dismiss(None)


class ChoiceDialog(ModalScreen[str | None]):
    """Ask which of a few things to do (a button each, the first focused); Escape cancels.
    Answers the chosen button's id."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", show=False)]

    def __init__(self, title: str, body: str, choices: list[tuple[str, str, str]],
                 *, danger: bool = True) -> None:
        """``choices``: (id, label, variant) per button, in order; a Cancel button follows."""
        super().__init__(classes="dialog-screen")
        self.title_text = title
        self.body = body
        self.choices = choices
        self.danger = danger

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog confirm" if self.danger else "dialog"):
            yield Label(Text(self.title_text), classes="dialog-title")
            yield Static(Text(self.body), classes="dialog-body")
            with Horizontal(classes="dialog-buttons"):
                for ident, label, variant in self.choices:
                    yield Button(label, variant=variant, id=ident)  # type: ignore[arg-type]
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        self.query(Button).first().focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None if event.button.id == "cancel" else event.button.id)

    def action_cancel(self) -> None:
        self.dismiss(None)


@dataclass(frozen=True)
class AddRequest:
    """A new agent: ``TEAM/AGENT`` and its layout settings."""

    target: str
    settings: dict


class AddAgentDialog(ModalScreen[AddRequest | None]):
    """The form for ``squad add``: target, command, role, worktree, tags. The settings are
    checked like a layout file's when the agent is added."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", show=False),
        Binding("ctrl+s", "submit", "Add", show=False),
    ]

    def __init__(self, teams: list[str], *, blink: bool = True) -> None:
        super().__init__(classes="dialog-screen")
        self.teams = teams
        self.blink = blink

    def compose(self) -> ComposeResult:
        fields = (
            ("target", "Agent", "TEAM/AGENT, e.g. backend/qa (a new team is made)"),
            ("command", "Command", "the program, e.g. claude, or aider --model sonnet"),
            ("role", "Role", "its window name; empty: the name, capitalised"),
            ("tags", "Tags", "comma separated, e.g. backend, tests"),
        )
        with Vertical(classes="dialog add"):
            yield Label("Add an agent to the running squad", classes="dialog-title")
            for ident, label, hint in fields:
                with Horizontal(classes="form-row"):
                    yield Label(label, classes="form-label")
                    suggest = (SuggestFromList([f"{t}/" for t in self.teams])
                               if ident == "target" else None)
                    field = Input(placeholder=hint, id=f"add-{ident}", compact=True,
                                  suggester=suggest)
                    field.cursor_blink = self.blink
                    yield field
            with Horizontal(classes="form-row"):
                yield Label("Worktree", classes="form-label")
                yield Checkbox("its own git worktree and branch", id="add-worktree",
                               compact=True)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Add (ctrl+s)", variant="primary", id="go")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#add-target", Input).focus()

    @on(Input.Submitted)
    def _next(self, event: Input.Submitted) -> None:
        self.focus_next()

    @on(Button.Pressed, "#go")
    def action_submit(self) -> None:
        def value(ident: str) -> str:
            return self.query_one(f"#add-{ident}", Input).value.strip()

        target, command = value("target"), value("command")
        if "/" not in target or not command:
            self.notify("say which agent (TEAM/AGENT) and its command", severity="warning")
            return
        tags = [t.strip() for t in value("tags").split(",") if t.strip()]
        settings = {"command": command, "role": value("role") or None,
                    "worktree": self.query_one("#add-worktree", Checkbox).value,
                    "tags": tags or None}
        self.dismiss(AddRequest(target, settings))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


@dataclass(frozen=True)
class Feedback:
    """Review feedback for an agent: sent to it now as input, or queued as a task."""

    text: str
    as_task: bool


class FeedbackDialog(ModalScreen[Feedback | None]):
    """Feedback from the diff view: a few lines for the agent, sent as its input
    (ctrl+s) or queued as a task for it (ctrl+t)."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", show=False),
        Binding("ctrl+s", "send(False)", "Send", show=False),
        Binding("ctrl+t", "send(True)", "Queue", show=False),
    ]

    def __init__(self, target: str, *, blink: bool = True) -> None:
        super().__init__(classes="dialog-screen")
        self.target = target
        self.blink = blink

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog feedback"):
            yield Label(Text(f"Feedback for {self.target} on its changes"),
                        classes="dialog-title")
            area = TextArea(id="feedback", placeholder="What should it change?",
                            soft_wrap=True)
            area.cursor_blink = self.blink
            yield area
            with Horizontal(classes="dialog-buttons"):
                yield Button("Send as input (ctrl+s)", variant="primary", id="now")
                yield Button("Queue as a task (ctrl+t)", id="task")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#feedback", TextArea).focus()

    @on(Button.Pressed, "#now")
    def _now(self) -> None:
        self.action_send(False)

    @on(Button.Pressed, "#task")
    def _task(self) -> None:
        self.action_send(True)

    def action_send(self, as_task: bool) -> None:
        text = self.query_one("#feedback", TextArea).text.strip()
        if not text:
            self.notify("write the feedback first", severity="warning")
            return
        self.dismiss(Feedback(text, as_task))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


@dataclass(frozen=True)
class MergeRequest:
    """Merge the agent's branch; ``commit_message`` commits its uncommitted work first."""

    commit_message: str | None


class MergeDialog(ModalScreen[MergeRequest | None]):
    """Ask before merging an agent's branch into its base; when its worktree holds
    uncommitted work, a commit message commits it first (empty: the merge is refused, as
    ``squad merge`` without ``--commit`` is)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", show=False)]

    def __init__(self, title: str, body: str, uncommitted: int, *,
                 blink: bool = True) -> None:
        super().__init__(classes="dialog-screen")
        self.title_text = title
        self.body = body
        self.uncommitted = uncommitted
        self.blink = blink

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog merge"):
            yield Label(Text(self.title_text), classes="dialog-title")
            yield Static(Text(self.body), classes="dialog-body")
            if self.uncommitted:
                with Horizontal(classes="form-row"):
                    yield Label("Commit", classes="form-label")
                    field = Input(placeholder=f"a message commits its {self.uncommitted} "
                                  "uncommitted change(s) first", id="merge-message",
                                  compact=True)
                    field.cursor_blink = self.blink
                    yield field
            with Horizontal(classes="dialog-buttons"):
                yield Button("Merge", variant="error", id="yes")
                yield Button("Cancel (esc)", id="no")

    def on_mount(self) -> None:
        self.query_one("#merge-message" if self.uncommitted else "#yes").focus()

    @on(Input.Submitted)
    def _entered(self) -> None:
        self._merge()

    @on(Button.Pressed, "#yes")
    def _merge(self) -> None:
        message = None
        if self.uncommitted:
            message = self.query_one("#merge-message", Input).value.strip() or None
        self.dismiss(MergeRequest(message))

    @on(Button.Pressed, "#no")
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


LEGEND = ("working", "idle", "needs-input", "stalled", "paused", "starting", "hibernated",
          "exited", "down")


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
            legend.add_row(Text(STATUS_GLYPH.get(status, "?"),
                                style=STATUS_STYLE.get(status, "")),
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
                    "Attach hands the terminal to tmux: detach with C-b d to come back (inside "
                    "another tmux with the same prefix: C-b C-b d); the agent's window keeps "
                    "its size. "
                    "ctrl+p opens the command palette with every action.",
                    style="dim"), classes="help-note")
            yield Static(Text("Escape or ? closes", style="dim italic"), classes="dialog-note")

    def action_close(self) -> None:
        self.dismiss(None)
