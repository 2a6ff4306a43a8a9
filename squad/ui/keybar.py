"""The footer's keys, fitted to the terminal's width.

Textual's footer lists every key in order and cuts the line where the terminal ends, so
at 120 columns the keys at the end of the list (quit among them) were gone. This one keeps
the order but chooses which keys to show by importance: when they do not all fit, the least
important give way (every key stays in the help screen and the command palette), and keys
of the focused panel come first. Keys are never grouped (a group's label ran into the next
key: ``P U Teamq Quit``).
"""

from __future__ import annotations

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

PALETTE_ROOM = 13  # "▏^p palette" and its margins


class KeyBar(Footer):
    """A footer that shows the most important keys that fit (see the module docstring).

    ``ranks`` maps an action to its importance (0 first); actions it does not name (the
    focused panel's own keys) come before all of them. ``app_keys=False`` leaves out the
    app's keys (a screen of its own, such as the diff view, shows its keys alone)."""

    def __init__(self, ranks: dict[str, int], *, app_keys: bool = True,
                 **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.ranks = ranks
        self.app_keys = app_keys
        self._width = 0

    @staticmethod
    def cells(key: str, description: str) -> int:
        """Width of one key in the compact footer: key, space, description, margin."""
        return len(key) + 1 + len(description) + 1

    def choose(self, keys: list[tuple[Binding, str]], room: int) -> list[int]:
        """Indexes of ``keys`` (binding, key as shown) to show in ``room`` cells."""
        order = sorted(range(len(keys)),
                       key=lambda i: (self.ranks.get(keys[i][0].action, -1), i))
        chosen, used = set(), 0
        for i in order:
            width = self.cells(keys[i][1], keys[i][0].description)
            if used + width <= room:
                chosen.add(i)
                used += width
        return sorted(chosen)

    def compose(self) -> ComposeResult:
        if not self._bindings_ready:
            return
        active = self.screen.active_bindings
        keys: list[tuple[Binding, bool, str, str]] = []
        seen: set[str] = set()
        for node, binding, enabled, tooltip in active.values():
            if not binding.show or binding.action in seen:
                continue
            if not self.app_keys and node is self.app:
                continue
            seen.add(binding.action)
            keys.append((binding, enabled, tooltip, self.app.get_key_display(binding)))
        width = self.size.width or self.app.size.width
        self._width = width
        room = width - (PALETTE_ROOM if self.show_command_palette else 0)
        for i in self.choose([(b, shown) for b, _, _, shown in keys], room):
            binding, enabled, tooltip, shown = keys[i]
            yield FooterKey(binding.key, shown, binding.description, binding.action,
                            disabled=not enabled, tooltip=tooltip).data_bind(
                compact=Footer.compact)
        if self.show_command_palette and self.app.ENABLE_COMMAND_PALETTE:
            palette = active.get(self.app.COMMAND_PALETTE_BINDING)
            if palette is not None:
                _node, binding, enabled, tooltip = palette
                yield FooterKey(binding.key, self.app.get_key_display(binding),
                                binding.description, binding.action,
                                classes="-command-palette", disabled=not enabled,
                                tooltip=binding.tooltip or binding.description)

    def on_resize(self, event: events.Resize) -> None:
        if event.size.width != self._width and self._bindings_ready:
            self.call_after_refresh(self.recompose)
