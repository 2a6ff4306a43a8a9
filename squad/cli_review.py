"""Review commands of the CLI: diff, merge and pr for an agent's worktree and branch.

``squad diff`` prints, on a terminal, a summary and the syntax-coloured diff; piped, the same
summary as plain text followed by the unified diff exactly as git wrote it (``git apply``
skips the summary). Errors are :class:`~squad.errors.SquadError`: one line, exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable

from squad.errors import TargetError


def add_review_commands(cmd: Callable[[str, str], argparse.ArgumentParser]) -> None:
    c = cmd("diff", "what an agent's worktree changed against its base: commits and "
                    "uncommitted work")
    c.add_argument("target", help="TEAM/AGENT")
    c.add_argument("--stat", action="store_true", help="only the files, with +/- counts")
    c.add_argument("--json", action="store_true")

    c = cmd("merge", "merge an agent's branch into its base branch in the main repository")
    c.add_argument("target", help="TEAM/AGENT")
    c.add_argument("--commit", metavar="MESSAGE",
                   help="first commit the worktree's uncommitted work with this message")
    c.add_argument("--json", action="store_true")

    c = cmd("pr", "push an agent's branch and open a pull request with gh")
    c.add_argument("target", help="TEAM/AGENT")
    c.add_argument("--title", help="the pull request's title (default: from the commits)")
    c.add_argument("--body", help="its description (default: the list of commits)")
    c.add_argument("--draft", action="store_true", help="open it as a draft")
    c.add_argument("--json", action="store_true")


# -- helpers ---------------------------------------------------------------------------------


def _agent(args: argparse.Namespace):
    """The squad (its saved layout) and the agent named by ``args.target``."""
    from squad.live import load_saved_layout, pick_squad, socket_name
    from squad.tmux import Tmux

    squad = load_saved_layout(pick_squad(Tmux(socket_name(args.socket)), args.squad_name))
    target = args.target.strip()
    agent = squad.agent(target) if "/" in target else None
    if agent is None:
        own = [a.target for a in squad.agents() if a.worktree]
        known = ", ".join(own) or "none (no agent has worktree = true)"
        what = "name one agent as TEAM/AGENT" if "/" not in target else "no such agent"
        raise TargetError(f"{target!r}: {what} in squad {squad.name!r}; agents with "
                          f"worktrees: {known}")
    return squad, agent


def _print_json(data: object) -> None:
    print(json.dumps(data, indent=2, default=str))


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


_LETTER = {"added": "A", "modified": "M", "deleted": "D", "renamed": "R", "copied": "C",
           "type-changed": "T", "unmerged": "U"}


def summary_lines(d) -> list[tuple[str, str]]:
    """The summary of a diff as (text, rich style) lines, shared by both renderings."""
    where = f"branch {d.branch}" if d.branch else f"detached at {d.head[:12]}"
    head = (f"{d.target} · {where} · {_plural(d.ahead, 'commit')} ahead of {d.base}"
            + (f", {d.behind} behind" if d.behind else "")
            + (f" · {d.uncommitted} uncommitted" if d.uncommitted else ""))
    lines = [(head, "bold")]
    if d.commits:
        lines.append(("commits:", "bold"))
        now = time.time()
        for c in d.commits:
            age = _age(now - c.time)
            lines.append((f"  {c.sha[:10]} {c.subject}  ({c.author}, {age} ago)", ""))
        if d.ahead > len(d.commits):
            lines.append((f"  … and {d.ahead - len(d.commits)} more", "dim"))
    if not d.files:
        lines.append(("no changes against the base", "dim"))
        return lines
    lines.append((f"files: {len(d.files)} changed, +{d.insertions} -{d.deletions}", "bold"))
    width = min(60, max(len(_name(f)) for f in d.files))
    for f in d.files:
        counts = "binary" if f.binary else f"+{f.added} -{f.deleted}"
        mark = "  (uncommitted)" if f.uncommitted else ""
        style = {"added": "green", "deleted": "red", "renamed": "cyan"}.get(f.status, "")
        lines.append((f"  {_LETTER.get(f.status, '?')}  {_name(f):<{width}}  {counts}{mark}",
                      style))
    return lines


def _name(f) -> str:
    return f"{f.old_path} -> {f.path}" if f.old_path else f.path


def _age(seconds: float) -> str:
    s = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit}"
    return f"{s}s"


# -- commands --------------------------------------------------------------------------------


def cmd_diff(args: argparse.Namespace) -> int:
    from rich.console import Console

    from squad import review

    squad, agent = _agent(args)
    d = review.diff(squad, agent, stat_only=args.stat)
    if args.json:
        _print_json(d.to_json())
        return 0
    console = Console(highlight=False, soft_wrap=True)
    if not console.is_terminal:
        out = sys.stdout
        for text, _ in summary_lines(d):
            out.write(text + "\n")
        if d.patch:
            out.write("\n" + d.patch)
        return 0
    from rich.syntax import Syntax
    from rich.text import Text

    for text, style in summary_lines(d):
        console.print(Text(text, style=style))
    if d.patch:
        console.print()
        console.print(Syntax(d.patch, "diff", theme="ansi_dark", word_wrap=False,
                             background_color="default"))
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from squad import review

    squad, agent = _agent(args)
    result = review.merge(squad, agent, commit_message=args.commit)
    if args.json:
        _print_json(result.to_json())
    else:
        if result.committed:
            print(f"✓ {agent.target}: committed its uncommitted work as {result.committed[:10]}")
        print(f"✓ {agent.target}: {result.message}"
              + (f" (now at {result.after[:10]})" if result.how != "up-to-date" else ""))
    return 0


def cmd_pr(args: argparse.Namespace) -> int:
    from squad import review

    squad, agent = _agent(args)
    result = review.pull_request(squad, agent, title=args.title, body=args.body,
                                 draft=args.draft)
    if args.json:
        _print_json(result.to_json())
    else:
        what = "already open" if result.existing else ("opened (draft)" if result.draft
                                                       else "opened")
        print(f"✓ {agent.target}: pull request {what}: {result.url or '(gh printed no URL)'}")
    for note in result.notes:
        print(f"squad: note: {note}", file=sys.stderr)
    return 0


HANDLERS = {"diff": cmd_diff, "merge": cmd_merge, "pr": cmd_pr}
