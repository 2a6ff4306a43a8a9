"""Review an agent's work: its diff against its base, merging its branch, opening a pull request.

The git command line only (no Textual, no git library). What an agent changed is everything
between the merge-base of its branch with its base and its worktree as it is on disk: commits
on its branch, staged and unstaged edits, and untracked files (shown as added; ignored files
are not shown).

**The base.** An agent's base is the layout's ``base`` when set; otherwise the branch the main
repository has checked out *now* (the agent's branch was created from the main repository's
HEAD, and that branch is where a merge lands). If the main repository is on a detached HEAD,
diffs compare with that commit and merges are refused.

**The cache.** :func:`diff` keys its result by the worktree's state: the output of one
``git status --porcelain=v2`` (HEAD, index entries, untracked files), the size and mtime of
every path it lists, and the base's commit read from the ref files. Asking again for a
worktree nobody touched runs that one ``git status`` and nothing else (``max_age`` skips even
that); :func:`summary` gives the counts the UI's agent tree shows from the same cache.

**Never lose anything.** Nothing here resets, stashes, checks out or deletes. Read commands
run with ``GIT_OPTIONAL_LOCKS=0`` so polling never holds the index lock an agent's own
``git commit`` needs. :func:`merge` checks everything before it changes anything, commits an
agent's uncommitted work only when given a message, and a merge that fails anyway is aborted
and verified (HEAD unchanged, no tracked change) before the error is raised.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from squad import events
from squad.errors import SquadError
from squad.layout import Agent, Squad


class ReviewError(SquadError):
    """A diff, merge or pull request that cannot be done as asked; the message says why."""


COMMITS_SHOWN = 200
"""At most this many commits are listed in a diff (``ahead`` always counts all of them)."""

CACHE_SIZE = 64
"""Worktree states remembered; one per (worktree, base) is all a squad needs."""

_HEX = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")
_STATUS_WORDS = {"A": "added", "M": "modified", "D": "deleted", "R": "renamed", "C": "copied",
                 "T": "type-changed", "U": "unmerged", "X": "unknown"}

stats = {"git": 0, "hits": 0, "misses": 0}
"""Counters for tests and benchmarks: git processes run, cache hits and misses."""


# -- plain data ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Commit:
    """One commit on the agent's branch that its base does not have."""

    sha: str
    author: str
    time: int
    """Author time, Unix seconds."""
    subject: str


@dataclass(frozen=True)
class FileChange:
    """One file that differs between the merge-base and the worktree on disk."""

    path: str
    status: str
    """``added``, ``modified``, ``deleted``, ``renamed``, ``copied``, ``type-changed``."""
    added: int | None
    """Lines added; ``None`` for a binary file."""
    deleted: int | None
    """Lines deleted; ``None`` for a binary file."""
    binary: bool = False
    old_path: str | None = None
    """The path before a rename or copy."""
    uncommitted: bool = False
    """Whether the worktree holds changes to it that are not committed (staged or not)."""


@dataclass(frozen=True)
class AgentDiff:
    """What an agent's worktree changed against its base."""

    target: str
    worktree: str
    branch: str | None
    """The branch the worktree has checked out (``None`` when detached)."""
    base: str
    """The ref compared with: the layout's ``base``, else the main repository's branch."""
    base_commit: str
    merge_base: str
    head: str
    """The worktree's HEAD commit."""
    ahead: int
    """Commits on the worktree's HEAD that the base does not have."""
    behind: int
    """Commits on the base that the worktree's HEAD does not have."""
    commits: tuple[Commit, ...]
    """The commits ahead, newest first (at most :data:`COMMITS_SHOWN`)."""
    files: tuple[FileChange, ...]
    uncommitted: int
    """Paths with uncommitted changes (staged, unstaged or untracked)."""
    patch: str = ""
    """The full unified diff (empty when ``stat_only``)."""
    stat_only: bool = False

    @property
    def insertions(self) -> int:
        return sum(f.added or 0 for f in self.files)

    @property
    def deletions(self) -> int:
        return sum(f.deleted or 0 for f in self.files)

    def summary(self) -> DiffSummary:
        return DiffSummary(self.target, len(self.files), self.ahead, self.behind,
                           self.uncommitted, self.insertions, self.deletions)

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["commits"] = [asdict(c) for c in self.commits]
        data["files"] = [asdict(f) for f in self.files]
        data["insertions"] = self.insertions
        data["deletions"] = self.deletions
        if self.stat_only:
            del data["patch"]
        return data


@dataclass(frozen=True)
class DiffSummary:
    """The counts the agent tree shows: changed files and commits ahead of the base."""

    target: str
    files: int
    ahead: int
    behind: int
    uncommitted: int
    insertions: int
    deletions: int

    def to_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class MergeResult:
    """What :func:`merge` did."""

    target: str
    branch: str
    into: str
    how: str
    """``fast-forward``, ``merge`` (a merge commit) or ``up-to-date`` (nothing to merge)."""
    before: str
    """The main repository's HEAD before the merge."""
    after: str
    """Its HEAD after the merge."""
    commits: int
    """Commits of the agent's branch that the merge brought in."""
    committed: str | None = None
    """The commit made of the worktree's uncommitted work first (``commit_message``)."""
    message: str = ""

    def to_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class PrResult:
    """What :func:`pull_request` did."""

    target: str
    branch: str
    remote: str
    base: str
    url: str
    title: str
    draft: bool = False
    existing: bool = False
    """A pull request for the branch was already open; ``url`` is that one."""
    notes: tuple[str, ...] = ()
    """Things the user should know (uncommitted work that the pull request does not hold)."""

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["notes"] = list(self.notes)
        return data


# -- git ---------------------------------------------------------------------------------------


def _git(cwd: Path, *args: str, check: bool = True, env: dict[str, str] | None = None,
         input: bytes | None = None, locks: bool = False) -> subprocess.CompletedProcess[bytes]:
    """Run git in ``cwd``, bytes in and out. ``locks=False`` (for reads) keeps git from
    taking the index lock to refresh stat data, which an agent's own commit may need."""
    stats["git"] += 1
    full_env = dict(os.environ)
    if not locks:
        full_env["GIT_OPTIONAL_LOCKS"] = "0"
    full_env["GIT_TERMINAL_PROMPT"] = "0"
    if env:
        full_env.update(env)
    try:
        proc = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True,
                              input=input, env=full_env, check=False,
                              stdin=None if input is not None else subprocess.DEVNULL)
    except FileNotFoundError:
        raise ReviewError("git is not installed (or not on PATH)") from None
    if check and proc.returncode != 0:
        raise ReviewError(f"git {' '.join(args[:2])} in {cwd} failed: {_said(proc)}")
    return proc


def _said(proc: subprocess.CompletedProcess[bytes]) -> str:
    """git's last meaningful line of complaint."""
    text = (proc.stderr or proc.stdout or b"").decode("utf-8", "replace").strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()
             and not ln.startswith(("hint:", "To ", "Everything up-to-date"))]
    return lines[-1].removeprefix("fatal: ").removeprefix("error: ") if lines else (
        f"exit status {proc.returncode}")


def _out(proc: subprocess.CompletedProcess[bytes]) -> str:
    return proc.stdout.decode("utf-8", "replace").strip()


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def _git_dirs(path: Path) -> tuple[Path, Path]:
    """(git dir, common git dir) of a repository or worktree, read from its ``.git`` (a
    directory, or a ``gitdir:`` file for a worktree) each time, so a worktree removed and made
    again is never looked for in its old place; git is asked only for unusual layouts."""
    dot = path / ".git"
    try:
        if dot.is_dir():
            gitdir = dot
        else:
            text = dot.read_text().strip()
            if not text.startswith("gitdir: "):
                raise OSError("not a gitdir file")
            gitdir = (path / text[8:].strip()).resolve()
        try:
            common = (gitdir / (gitdir / "commondir").read_text().strip()).resolve()
        except FileNotFoundError:
            common = gitdir
        if (gitdir / "HEAD").is_file():
            return gitdir, common
    except OSError:
        pass
    out = _out(_git(path, "rev-parse", "--absolute-git-dir", "--git-common-dir")).splitlines()
    gitdir = Path(out[0])
    common = Path(out[1]) if len(out) > 1 else gitdir
    return gitdir, common if common.is_absolute() else (path / common).resolve()


def _read_ref(gitdir: Path, common: Path, name: str) -> str | None:
    """A ref's value read from the ref files (no git process); ``None`` if not found there.

    ``HEAD`` is per-worktree; other refs live in the common directory, loose or packed.
    Symbolic refs are followed. Used for the cache key only: the diff itself asks git.
    """
    for _ in range(5):
        path = (gitdir if name == "HEAD" else common) / name
        try:
            value = path.read_text().strip()
        except OSError:
            value = _packed(common).get(name, "")
        if value.startswith("ref: "):
            name = value[5:].strip()
            continue
        return value or None
    return None


def _packed(common: Path) -> dict[str, str]:
    refs: dict[str, str] = {}
    try:
        text = (common / "packed-refs").read_text()
    except OSError:
        return refs
    for line in text.splitlines():
        if line and line[0] not in "#^":
            sha, _, name = line.partition(" ")
            refs[name] = sha
    return refs


# -- bases and branches ------------------------------------------------------------------------


def _current_branch(path: Path) -> str | None:
    proc = _git(path, "symbolic-ref", "--quiet", "--short", "HEAD", check=False)
    return _out(proc) or None if proc.returncode == 0 else None


def _ref_exists(repo: Path, ref: str) -> bool:
    return _git(repo, "rev-parse", "--verify", "--quiet", ref, check=False).returncode == 0


def base_ref(squad: Squad, agent: Agent) -> str:
    """The ref an agent's work is compared with: the layout's ``base``, else the branch the
    main repository has checked out (its commit when the main repository is detached)."""
    if agent.base:
        return agent.base
    gitdir, _ = _git_dirs(squad.repo)
    try:
        head = (gitdir / "HEAD").read_text().strip()
    except OSError:
        return _current_branch(squad.repo) or "HEAD"
    return head[16:] if head.startswith("ref: refs/heads/") else "HEAD"


def _base_key(squad: Squad, agent: Agent) -> str:
    """The base's identity for the cache key, from the ref files when possible."""
    gitdir, common = _git_dirs(squad.repo)
    if agent.base is None:
        head = _read_ref(gitdir, common, "HEAD")
        branch = ""
        try:
            branch = (gitdir / "HEAD").read_text().strip()
        except OSError:
            pass
        if head:
            return f"{branch} {head}"
    else:
        name = agent.base
        if _HEX.fullmatch(name):
            return name
        for ref in (name, f"refs/{name}", f"refs/tags/{name}", f"refs/heads/{name}",
                    f"refs/remotes/{name}", f"refs/remotes/{name}/HEAD"):
            if ref.startswith("refs/") and (sha := _read_ref(gitdir, common, ref)):
                return f"{ref} {sha}"
    # An expression (HEAD~2, @{u}) or a ref store squad cannot read: ask git.
    proc = _git(squad.repo, "rev-parse", "--verify", "--quiet",
                f"{base_ref(squad, agent)}^{{commit}}", check=False)
    return _out(proc) or "?"


def merge_target(squad: Squad, agent: Agent) -> str | None:
    """The local branch a merge of the agent's branch goes into (and a pull request's base).

    The layout's ``base`` when it names a local branch; a remote-tracking base such as
    ``origin/main`` means the local ``main``; with no ``base`` (or a tag or commit as base),
    the main repository's current branch. ``None`` when that is a detached HEAD.
    """
    repo = squad.repo
    if agent.base:
        if _ref_exists(repo, f"refs/heads/{agent.base}"):
            return agent.base
        if "/" in agent.base and _ref_exists(repo, f"refs/remotes/{agent.base}"):
            return agent.base.split("/", 1)[1]
    return _current_branch(repo)


def _worktree(squad: Squad, agent: Agent) -> Path:
    """The agent's existing worktree, or a clear error."""
    path = squad.worktree_dir(agent)
    if path is None:
        raise ReviewError(f"{agent.target} has no worktree (worktree = false in the layout): it "
                          f"works in {squad.repo} directly, so its changes are that repository's")
    if not (path / ".git").exists():
        raise ReviewError(f"{agent.target}'s worktree {path} does not exist: run `squad up` to "
                          "create it")
    return path


# -- status and the cache key ------------------------------------------------------------------


@dataclass(frozen=True)
class _Status:
    head: str
    branch: str | None
    changed: tuple[bytes, ...]
    """Paths with uncommitted changes (both sides of a rename), as git printed them."""
    untracked: tuple[bytes, ...]


def _status(wt: Path, *, untracked: bool = True) -> tuple[_Status, bytes]:
    """One ``git status``: the worktree's HEAD, branch and every uncommitted path."""
    raw = _git(wt, "status", "--porcelain=v2", "-z", "--branch",
               f"--untracked-files={'all' if untracked else 'no'}",
               "--ignore-submodules=none").stdout
    head, branch = "", None
    changed: list[bytes] = []
    untracked: list[bytes] = []
    tokens = raw.split(b"\0")
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        i += 1
        if tok.startswith(b"# branch.oid "):
            head = tok[13:].decode()
        elif tok.startswith(b"# branch.head "):
            name = tok[14:].decode("utf-8", "replace")
            branch = None if name == "(detached)" else name
        elif tok.startswith(b"1 "):
            changed.append(tok.split(b" ", 8)[8])
        elif tok.startswith(b"2 "):
            changed.append(tok.split(b" ", 9)[9])
            changed.append(tokens[i])  # the original path follows a rename
            i += 1
        elif tok.startswith(b"u "):
            changed.append(tok.split(b" ", 10)[10])
        elif tok.startswith(b"? "):
            untracked.append(tok[2:])
    return _Status(head, branch, tuple(changed), tuple(untracked)), raw


def _state_key(wt: Path, raw_status: bytes, status: _Status, base: str) -> str:
    """A digest of everything a diff depends on. Status lists which paths differ; their sizes
    and mtimes catch a file edited again after it first changed (status would not)."""
    h = hashlib.sha1(raw_status)
    h.update(b"\0" + base.encode())
    root = os.fsencode(wt)
    for p in (*status.changed, *status.untracked):
        try:
            st = os.lstat(os.path.join(root, p))
            h.update(b"%s %d %d %d %o\0" % (p, st.st_mtime_ns, st.st_size, st.st_ino,
                                            st.st_mode))
        except OSError:
            h.update(p + b" -\0")
    return h.hexdigest()


# -- computing a diff --------------------------------------------------------------------------


def _parse_diff(raw: bytes, uncommitted: set[str]) -> tuple[list[FileChange], str]:
    """``git diff --raw --numstat [-p] -z``: raw records (status, paths), as many numstat
    records (line counts), then, after an empty record, the patch."""
    pos = 0

    def token() -> bytes:
        nonlocal pos
        end = raw.find(b"\0", pos)
        if end < 0:
            end = len(raw)
        tok, pos = raw[pos:end], end + 1
        return tok

    kinds: list[tuple[str, str, str | None]] = []  # status, path, old path
    while raw.startswith(b":", pos):
        letter = token().split(b" ")[-1][:1].decode()
        if letter in ("R", "C"):
            old, new = _text(token()), _text(token())
            kinds.append((letter, new, old))
        else:
            kinds.append((letter, _text(token()), None))
    files = []
    for letter, path, old in kinds:
        added, deleted, rest = token().split(b"\t", 2)
        if not rest:  # a rename or copy: the two paths follow
            token()
            token()
        counts = (None, None) if added == b"-" else (int(added), int(deleted))
        files.append(FileChange(
            path=path, status=_STATUS_WORDS.get(letter, "modified"), added=counts[0],
            deleted=counts[1], binary=counts[0] is None, old_path=old,
            uncommitted=path in uncommitted or (old is not None and old in uncommitted)))
    if raw.startswith(b"\0", pos):
        pos += 1
    return files, _text(raw[pos:])


def _compute(wt: Path, target: str, base: str, status: _Status, stat_only: bool) -> AgentDiff:
    """Ask git for everything a diff shows: five or six short commands."""
    proc = _git(wt, "rev-parse", "--verify", "--quiet", f"{base}^{{commit}}", check=False)
    base_commit = _out(proc)
    if proc.returncode != 0 or not base_commit:
        raise ReviewError(f"{target}: its base {base!r} is not a commit in the repository")
    head = status.head
    proc = _git(wt, "merge-base", base_commit, head, check=False)
    merge_base = _out(proc)
    if proc.returncode != 0 or not merge_base:
        raise ReviewError(f"{target}: its HEAD {head[:12]} shares no history with its base "
                          f"{base!r}")
    counts = _out(_git(wt, "rev-list", "--left-right", "--count",
                       f"{base_commit}...{head}")).split()
    behind, ahead = int(counts[0]), int(counts[1])
    commits: list[Commit] = []
    if ahead:
        log = _git(wt, "log", f"--max-count={COMMITS_SHOWN}", "-z",
                   "--format=%H%x1f%an%x1f%at%x1f%s", f"{merge_base}..{head}").stdout
        for rec in log.split(b"\0"):
            if rec.strip():
                sha, author, at, subject = _text(rec.strip(b"\n")).split("\x1f", 3)
                commits.append(Commit(sha, author, int(at), subject))
    uncommitted = {_text(p) for p in (*status.changed, *status.untracked)}
    with _index_with_untracked(wt, status.untracked) as env:
        raw = _git(wt, "diff", "--no-color", "--no-ext-diff", "--no-relative", "-M", "--raw",
                   "--numstat", *([] if stat_only else ["-p"]), "-z", merge_base, env=env).stdout
    files, patch = _parse_diff(raw, uncommitted)
    return AgentDiff(
        target=target, worktree=str(wt), branch=status.branch, base=base,
        base_commit=base_commit, merge_base=merge_base, head=head, ahead=ahead, behind=behind,
        commits=tuple(commits), files=tuple(files),
        uncommitted=len(set(status.changed) | set(status.untracked)), patch=patch,
        stat_only=stat_only)


class _index_with_untracked:
    """A private copy of the worktree's index with untracked files marked intent-to-add, so
    that one ``git diff`` shows them as added (with rename detection and binary marks). The
    worktree's own index is never written."""

    def __init__(self, wt: Path, untracked: tuple[bytes, ...]) -> None:
        self.wt = wt
        self.untracked = untracked
        self.tmp: str | None = None

    def __enter__(self) -> dict[str, str] | None:
        if not self.untracked:
            return None
        gitdir, _ = _git_dirs(self.wt)
        fd, self.tmp = tempfile.mkstemp(prefix="squad-index-")
        os.close(fd)
        try:
            shutil.copyfile(gitdir / "index", self.tmp)
        except FileNotFoundError:
            os.unlink(self.tmp)  # no index yet: git starts an empty one
        env = {"GIT_INDEX_FILE": self.tmp}
        _git(self.wt, "add", "--intent-to-add", "--pathspec-from-file=-", "--pathspec-file-nul",
             "--", env=env, input=b"\0".join(self.untracked), locks=True)
        return env

    def __exit__(self, *exc: object) -> None:
        if self.tmp:
            for path in (self.tmp, self.tmp + ".lock"):
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass


@dataclass
class _Entry:
    key: str
    diff: AgentDiff
    checked: float


_cache: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
_cache_lock = threading.Lock()


def clear_cache() -> None:
    """Forget every cached diff (tests and benchmarks start cold with it)."""
    with _cache_lock:
        _cache.clear()


def diff(squad: Squad, agent: Agent, *, stat_only: bool = False,
         max_age: float = 0.0) -> AgentDiff:
    """What the agent's worktree changed against its base (see the module's docstring).

    Cached by the worktree's state: an unchanged worktree costs one ``git status``. With
    ``max_age`` > 0 a result checked less than that many seconds ago is returned without
    running git at all (for displays refreshed every tick). Raises :class:`ReviewError`.
    """
    wt = _worktree(squad, agent)
    spec = agent.base or ""
    slot = (str(wt), spec)
    now = time.monotonic()
    with _cache_lock:
        entry = _cache.get(slot)
    if entry is not None and max_age > 0 and now - entry.checked < max_age and (
            stat_only or not entry.diff.stat_only):
        stats["hits"] += 1
        return _shaped(entry.diff, stat_only)
    status, raw = _status(wt)
    key = _state_key(wt, raw, status, _base_key(squad, agent))
    if entry is not None and entry.key == key and (stat_only or not entry.diff.stat_only):
        stats["hits"] += 1
        entry.checked = now
        return _shaped(entry.diff, stat_only)
    stats["misses"] += 1
    result = _compute(wt, agent.target, base_ref(squad, agent), status, stat_only)
    with _cache_lock:
        _cache[slot] = _Entry(key, result, now)
        _cache.move_to_end(slot)
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return result


def _shaped(d: AgentDiff, stat_only: bool) -> AgentDiff:
    return replace(d, patch="", stat_only=True) if stat_only and not d.stat_only else d


def summary(squad: Squad, agent: Agent, *, max_age: float = 0.0) -> DiffSummary:
    """Changed files and commits ahead for one worktree agent, from the cache when it holds."""
    return diff(squad, agent, stat_only=True, max_age=max_age).summary()


def summaries(squad: Squad, *, max_age: float = 2.0) -> dict[str, DiffSummary | None]:
    """:func:`summary` of every worktree agent (``None`` where it cannot be computed: no
    worktree yet, an unknown base). For the agent tree, called from a worker thread."""
    out: dict[str, DiffSummary | None] = {}
    for agent in squad.agents():
        if not agent.worktree:
            continue
        try:
            out[agent.target] = summary(squad, agent, max_age=max_age)
        except SquadError:
            out[agent.target] = None
    return out


# -- merge -------------------------------------------------------------------------------------


def _ancestor(repo: Path, a: str, b: str) -> bool:
    return _git(repo, "merge-base", "--is-ancestor", a, b, check=False).returncode == 0


def _head(repo: Path) -> str:
    return _out(_git(repo, "rev-parse", "--verify", "HEAD"))


def _tracked_changes(repo: Path) -> list[str]:
    """Staged or unstaged changes to tracked files (untracked files do not count)."""
    status, _ = _status(repo, untracked=False)
    return [_text(p) for p in status.changed]


def _operation_in_progress(repo: Path) -> str | None:
    gitdir, _ = _git_dirs(repo)
    for name, what in (("MERGE_HEAD", "a merge"), ("rebase-merge", "a rebase"),
                       ("rebase-apply", "a rebase or am"), ("CHERRY_PICK_HEAD", "a cherry-pick"),
                       ("REVERT_HEAD", "a revert"), ("BISECT_LOG", "a bisect")):
        if (gitdir / name).exists():
            return what
    return None


def _some(paths: list[str], n: int = 3) -> str:
    shown = ", ".join(paths[:n])
    return shown + (f" and {len(paths) - n} more" if len(paths) > n else "")


def _would_be_commit(wt: Path, message: str) -> str:
    """The commit ``git add -A && git commit`` would make in the worktree, built in a private
    index with ``commit-tree``: no ref, index or file of the worktree changes."""
    gitdir, _ = _git_dirs(wt)
    fd, tmp = tempfile.mkstemp(prefix="squad-index-")
    os.close(fd)
    try:
        shutil.copyfile(gitdir / "index", tmp)
        env = {"GIT_INDEX_FILE": tmp}
        _git(wt, "add", "-A", env=env, locks=True)
        tree = _out(_git(wt, "write-tree", env=env))
        return _out(_git(wt, "commit-tree", tree, "-p", "HEAD", "-m", message))
    finally:
        for path in (tmp, tmp + ".lock"):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass


def _overwritten(repo: Path, head: str, tip: str) -> list[str]:
    """Files the merge would create that already exist, untracked or ignored, in the main
    repository's work tree. git refuses to overwrite untracked files but silently replaces
    ignored ones; squad refuses both."""
    raw = _git(repo, "diff", "--name-only", "-z", "--no-renames", "--diff-filter=A",
               f"{head}...{tip}").stdout
    added = [p for p in raw.split(b"\0") if p]
    present = [p for p in added if os.path.lexists(os.path.join(os.fsencode(repo), p))]
    if not present:
        return []
    tracked = set(_git(repo, "ls-files", "-z", "--", *(os.fsdecode(p) for p in present),
                       env={"GIT_LITERAL_PATHSPECS": "1"}).stdout.split(b"\0"))
    return [_text(p) for p in present if p not in tracked]


def _conflicts(repo: Path, head: str, tip: str) -> list[str] | None:
    """Files a merge would conflict on, found without touching the work tree
    (``git merge-tree --write-tree``, git 2.38+); ``None`` when this git cannot tell."""
    proc = _git(repo, "merge-tree", "--write-tree", "--name-only", "--no-messages", head, tip,
                check=False)
    if proc.returncode == 0:
        return []
    if proc.returncode == 1:
        lines = _text(proc.stdout).splitlines()[1:]
        return sorted({ln for ln in lines if ln.strip()})
    return None


def merge(squad: Squad, agent: Agent, *, commit_message: str | None = None,
          by: str = "cli") -> MergeResult:
    """Merge the agent's branch into its base branch in the main repository.

    Refuses (:class:`ReviewError`, nothing changed) when the main repository has tracked
    changes, is mid-merge or rebase, is not on the base branch; when the agent's worktree is
    on another branch or has uncommitted work (unless ``commit_message``: then it is committed
    first, ignored files excluded); when the merge would conflict or overwrite an untracked or
    ignored file. Fast-forwards when it can, else makes a merge commit. A merge that fails
    anyway is aborted and the main repository verified unchanged before the error is raised.
    """
    repo = squad.repo
    target = agent.target
    if not agent.worktree:
        raise ReviewError(f"{target} works in {repo} itself (worktree = false): it has no "
                          "branch of its own to merge")
    branch = agent.branch_name()
    if not _ref_exists(repo, f"refs/heads/{branch}"):
        raise ReviewError(f"{target}: branch {branch!r} does not exist in {repo}: nothing to "
                          "merge (run `squad up` to create the agent's worktree)")
    into = merge_target(squad, agent)
    current = _current_branch(repo)
    if current is None:
        where = f"its base {into!r}" if into else "the branch to merge into"
        raise ReviewError(f"the main repository {repo} is on a detached HEAD: check out "
                          f"{where} there first (git switch)")
    assert into is not None
    if current == branch:
        raise ReviewError(f"the main repository {repo} has {target}'s own branch {branch!r} "
                          "checked out: switch it to the branch to merge into first")
    if current != into:
        raise ReviewError(f"the main repository {repo} is on branch {current!r}, but {target}'s "
                          f"base is {into!r}: `git switch {into}` there first")
    if busy := _operation_in_progress(repo):
        raise ReviewError(f"the main repository {repo} is in the middle of {busy}: finish or "
                          "abort it first")
    dirty_main = _tracked_changes(repo)
    if dirty_main:
        raise ReviewError(f"the main repository {repo} has uncommitted changes "
                          f"({_some(dirty_main)}): commit or stash them first")
    wt = squad.worktree_dir(agent)
    wt_dirty: list[str] = []
    if wt is not None and (wt / ".git").exists():
        on = _current_branch(wt)
        if on != branch:
            raise ReviewError(f"{target}'s worktree {wt} is on {on or 'a detached HEAD'!r}, not "
                              f"on its branch {branch!r}: switch it back first")
        if busy := _operation_in_progress(wt):
            raise ReviewError(f"{target}'s worktree {wt} is in the middle of {busy}")
        st, _ = _status(wt)
        wt_dirty = [_text(p) for p in (*st.changed, *st.untracked)]
        if wt_dirty and commit_message is None:
            raise ReviewError(f"{target}'s worktree has {len(wt_dirty)} uncommitted change(s) "
                              f"({_some(wt_dirty)}): commit them there, or pass --commit "
                              "MESSAGE to commit them all first")
    if commit_message is not None and not commit_message.strip():
        raise ReviewError("the commit message is empty: say what the agent's work does")
    before = _head(repo)
    tip = _out(_git(repo, "rev-parse", "--verify", f"refs/heads/{branch}"))
    if wt_dirty:
        assert wt is not None and commit_message is not None
        tip = _would_be_commit(wt, commit_message)
    if _ancestor(repo, tip, before):
        return MergeResult(target, branch, into, "up-to-date", before, before, 0,
                           message=f"{into} already has everything on {branch}")
    fast = _ancestor(repo, before, tip)
    if clobbered := _overwritten(repo, before, tip):
        raise ReviewError(f"merging {branch} would overwrite untracked or ignored files in "
                          f"{repo} ({_some(clobbered)}): move them away first")
    if not fast:
        conflicted = _conflicts(repo, before, tip)
        if conflicted:
            raise ReviewError(f"merging {branch} into {into} would conflict in "
                              f"{_some(conflicted)}: nothing was changed; merge {into} into "
                              f"the agent's branch and resolve there, or merge by hand")
    commits = int(_out(_git(repo, "rev-list", "--count", f"{before}..{tip}")))
    committed = None
    if wt_dirty:
        assert wt is not None and commit_message is not None
        _git(wt, "add", "-A", locks=True)
        _git(wt, "commit", "-q", "-m", commit_message, locks=True)
        committed = _head(wt)
    message = (f"Merge {branch} into {into}\n\nThe work of squad agent {target} ({agent.role}): "
               f"{commits} commit{'s' if commits != 1 else ''}.")
    args = ["merge", "--ff-only", branch] if fast else [
        "merge", "--no-ff", "--no-edit", "-m", message, branch]
    proc = _git(repo, *args, check=False, locks=True, env={"GIT_EDITOR": "true"})
    if proc.returncode != 0:
        _undo_merge(repo, before)
        raise ReviewError(f"git merge {branch} into {into} failed: {_said(proc)}; the merge "
                          "was aborted and the main repository is as it was")
    after = _head(repo)
    how = "fast-forward" if fast else "merge"
    text = (f"merged {branch} into {into} ({how}, {commits} commit"
            f"{'s' if commits != 1 else ''})")
    events.record(squad.name, "merge", target=target, by=by, reason=text,
                  result=after, committed=committed)
    return MergeResult(target, branch, into, how, before, after, commits, committed, text)


def _undo_merge(repo: Path, before: str) -> None:
    """Abort a merge git left half done, then check that nothing is left of it."""
    gitdir, _ = _git_dirs(repo)
    if (gitdir / "MERGE_HEAD").exists():
        _git(repo, "merge", "--abort", check=False, locks=True)
    problems = []
    if _head(repo) != before:
        problems.append(f"HEAD moved from {before[:12]}")
    if left := _tracked_changes(repo):
        problems.append(f"changes left in {_some(left)}")
    if (gitdir / "MERGE_HEAD").exists():
        problems.append("a merge is still in progress")
    if problems:
        raise ReviewError(f"the failed merge could not be undone cleanly in {repo} "
                          f"({'; '.join(problems)}): look with `git status` before going on")


# -- pull requests -----------------------------------------------------------------------------


def _remote(repo: Path, branch: str, into: str | None) -> str | None:
    """The remote to push to: the branch's own, else its base's, else ``origin``, else the
    only remote there is."""
    for b in (branch, into):
        if b:
            proc = _git(repo, "config", "--get", f"branch.{b}.remote", check=False)
            name = _out(proc)
            if proc.returncode == 0 and name and name != ".":
                return name
    remotes = _out(_git(repo, "remote")).split()
    if "origin" in remotes:
        return "origin"
    return remotes[0] if len(remotes) == 1 else None


def _gh_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(GH_PROMPT_DISABLED="1", GH_NO_UPDATE_NOTIFIER="1", NO_COLOR="1",
               GIT_TERMINAL_PROMPT="0")
    return env


def _run_gh(gh: str, repo: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([gh, *args], cwd=repo, capture_output=True, env=_gh_env(),
                          stdin=subprocess.DEVNULL, check=False, timeout=120)


_URL = re.compile(r"https?://\S+")


def pull_request(squad: Squad, agent: Agent, *, title: str | None = None,
                 body: str | None = None, draft: bool = False, by: str = "cli") -> PrResult:
    """Push the agent's branch to its remote and open a pull request with ``gh``.

    Raises :class:`ReviewError` saying plainly what is missing: ``gh`` not installed, no
    remote, ``gh`` not authenticated, nothing to propose, the push rejected. Never forces a
    push. An already open pull request for the branch is returned (``existing``).
    """
    repo = squad.repo
    target = agent.target
    if not agent.worktree:
        raise ReviewError(f"{target} works in {repo} itself (worktree = false): it has no "
                          "branch of its own to propose")
    branch = agent.branch_name()
    if not _ref_exists(repo, f"refs/heads/{branch}"):
        raise ReviewError(f"{target}: branch {branch!r} does not exist in {repo}")
    into = merge_target(squad, agent)
    gh = shutil.which("gh")
    remote = _remote(repo, branch, into)
    missing = []
    if gh is None:
        missing.append("gh (the GitHub CLI) is not installed: see https://cli.github.com")
    if remote is None:
        missing.append(f"{repo} has no remote to push to: `git remote add origin URL`")
    if into is None:
        missing.append(f"no base branch (the main repository {repo} is on a detached HEAD)")
    if missing:
        raise ReviewError(f"cannot open a pull request for {target}: " + "; ".join(missing))
    assert gh is not None and remote is not None and into is not None
    base = agent.base or into
    ahead = int(_out(_git(repo, "rev-list", "--count", f"{base}..refs/heads/{branch}")))
    if ahead == 0:
        raise ReviewError(f"{target}: branch {branch!r} has no commits that {base!r} lacks: "
                          "nothing to propose (commit the agent's work first)")
    auth = _run_gh(gh, repo, "auth", "status")
    if auth.returncode != 0:
        raise ReviewError(f"gh is not authenticated ({_said(auth)}): run `gh auth login`")
    notes = []
    wt = squad.worktree_dir(agent)
    if wt is not None and (wt / ".git").exists():
        st, _ = _status(wt)
        if n := len(st.changed) + len(st.untracked):
            notes.append(f"the worktree has {n} uncommitted change(s) that the pull request "
                         "does not include")
    push = _git(repo, "push", "--porcelain", "--set-upstream", remote,
                f"refs/heads/{branch}:refs/heads/{branch}", check=False, locks=True)
    if push.returncode != 0:
        rejected = [ln for ln in _text(push.stdout).splitlines() if ln.startswith("!")]
        if not rejected:
            raise ReviewError(f"could not push {branch} to {remote}: {_said(push)}")
        why = rejected[0].split("\t")[-1]
        hint = (f": the remote branch has commits the agent's branch lacks; squad never "
                f"force-pushes, so merge or rebase {branch} first" if "fast-forward" in why
                or "fetch first" in why else "")
        raise ReviewError(f"pushing {branch} to {remote} was rejected ({why}){hint}")
    subjects = [s for s in _out(_git(repo, "log", "--format=%s", f"{base}..refs/heads/{branch}"))
                .splitlines() if s]
    if title is None:
        title = subjects[0] if len(subjects) == 1 else (
            f"{branch}: {len(subjects)} commits from squad agent {target}")
    if body is None:
        body = (f"Opened by squad for agent {target} ({agent.role}).\n\n"
                + "\n".join(f"- {s}" for s in reversed(subjects)))
    remote_base = into
    args = ["pr", "create", "--head", branch, "--base", remote_base, "--title", title,
            "--body", body] + (["--draft"] if draft else [])
    made = _run_gh(gh, repo, *args)
    said = _text(made.stdout) + "\n" + _text(made.stderr)
    urls = _URL.findall(said)
    existing = made.returncode != 0 and "already exists" in said and bool(urls)
    if made.returncode != 0 and not existing:
        raise ReviewError(f"gh could not open the pull request for {branch}: {_said(made)} "
                          f"(the branch is pushed to {remote})")
    url = urls[-1] if urls else ""
    events.record(squad.name, "pr", target=target, by=by, reason=title, result=url)
    return PrResult(target, branch, remote, remote_base, url, title, draft, existing,
                    tuple(notes))
