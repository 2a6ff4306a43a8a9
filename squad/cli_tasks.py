"""Task-queue commands of the CLI: dispatch, tasks, task ..., run --headless."""

from __future__ import annotations

HANDLERS: dict = {}


def add_task_commands(cmd) -> None:
    """Add the task-queue subcommands to the parser (filled in with the task queue)."""
