"""Git worktrees for agents: create or reuse, check for uncommitted work, remove when clean.

Uses the git command line. Nothing here ever resets a branch or deletes uncommitted work
unless the caller passes ``force``.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from squad.errors import SquadError


class WorktreeError(SquadError):
    """A worktree that cannot be created, reused or removed as asked."""


def git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=False
    )
    if check and proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).strip().splitlines()
        raise WorktreeError(
            f"git {' '.join(args[:2])} in {repo} failed: {msg[-1] if msg else proc.returncode}"
        )
    return proc


@dataclass(frozen=True)
class Worktree:
    path: Path
    branch: str | None
    head: str


def list_worktrees(repo: Path) -> dict[Path, Worktree]:
    out = git(repo, "worktree", "list", "--porcelain").stdout
    trees: dict[Path, Worktree] = {}
    path: Path | None = None
    branch: str | None = None
    head = ""
    for line in out.splitlines() + [""]:
        if line.startswith("worktree "):
            path = Path(line[9:]).resolve()
        elif line.startswith("HEAD "):
            head = line[5:]
        elif line.startswith("branch "):
            branch = line[7:].removeprefix("refs/heads/")
        elif not line and path is not None:
            trees[path] = Worktree(path, branch, head)
            path, branch, head = None, None, ""
    return trees


def branch_exists(repo: Path, branch: str) -> bool:
    ref = f"refs/heads/{branch}"
    return git(repo, "rev-parse", "--verify", "--quiet", ref, check=False).returncode == 0


def ensure(repo: Path, path: Path, branch: str, base: str | None = None) -> str:
    """Make sure ``path`` is a worktree of ``repo`` on ``branch``; say what was done.

    An existing worktree is reused as it is (never reset, whatever its branch); an existing
    branch is checked out rather than recreated; otherwise the branch starts at ``base``
    (default: the repository's HEAD).
    """
    path = path.resolve()
    trees = list_worktrees(repo)
    if path in trees:
        if path.is_dir():
            return "reused"
        # Deleted by hand: git still lists it (as prunable). Its branch keeps every commit,
        # so forget the stale entry and check the branch out again.
        git(repo, "worktree", "prune")
        branch = trees[path].branch or branch
        git(repo, "worktree", "add", str(path), branch)
        return "recreated (its directory had been deleted; the branch was kept)"
    if path.exists() and any(path.iterdir()):
        raise WorktreeError(
            f"{path} exists and is not a worktree of {repo}: move it away or set another "
            "worktree_root in the layout"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    if branch_exists(repo, branch):
        git(repo, "worktree", "add", str(path), branch)
        return "created (existing branch)"
    if base is not None and git(repo, "rev-parse", "--verify", "--quiet", f"{base}^{{commit}}",
                                check=False).returncode != 0:
        raise WorktreeError(f"base {base!r} is not a commit in {repo}")
    args = ["worktree", "add", "-b", branch, str(path)]
    if base is not None:
        args.append(base)
    elif git(repo, "rev-parse", "--verify", "--quiet", "HEAD", check=False).returncode != 0:
        raise WorktreeError(f"{repo} has no commits yet: commit something so agents can branch")
    git(repo, *args)
    return "created"


def dirty(path: Path) -> list[str]:
    """What removing a worktree would lose: uncommitted changes (untracked files included)
    and ignored files (``.env``, ``build/``, local configs are work too), as porcelain lines
    (``!! path`` for ignored ones)."""
    proc = git(path, "status", "--porcelain", "--untracked-files=all", "--ignored=matching",
               check=False)
    if proc.returncode != 0:
        return []
    return [line for line in proc.stdout.splitlines() if line.strip()]


def describe(changes: list[str], limit: int = 3) -> str:
    """``2 uncommitted change(s) and 3 ignored file(s): .env, build/, ...``"""
    ignored = [line[3:] for line in changes if line.startswith("!! ")]
    other = [line[3:] for line in changes if not line.startswith("!! ")]
    parts = []
    if other:
        parts.append(f"{len(other)} uncommitted change(s)")
    if ignored:
        parts.append(f"{len(ignored)} ignored file(s)")
    names = (other + ignored)[:limit]
    more = len(other) + len(ignored) - len(names)
    return " and ".join(parts) + ": " + ", ".join(names) + (f", and {more} more" if more else "")


def remove(repo: Path, path: Path, *, force: bool = False) -> None:
    """Remove a worktree (its branch stays). Refuses when it holds uncommitted work."""
    path = path.resolve()
    if path not in list_worktrees(repo):
        return
    changes = dirty(path)
    if changes and not force:
        raise WorktreeError(
            f"{path} holds {describe(changes)}: commit or move them, or pass --force to delete "
            "them"
        )
    git(repo, "worktree", "remove", *(["--force"] if force else []), str(path))
