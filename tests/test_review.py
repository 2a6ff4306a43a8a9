"""Review and merge on real git: diffs of real worktrees, merges into a real main repository,
pull requests pushed to a real bare remote through a stand-in `gh`; the CLI on a running squad."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from squad import review, worktrees
from squad.layout import Squad, load
from squad.review import ReviewError
from tests.conftest import PY, ROOT, run_squad, wait_for, write_layout


def git(path: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(path), *args], capture_output=True, text=True)
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
    return proc.stdout.strip()


def commit_all(path: Path, message: str) -> str:
    git(path, "add", "-A")
    git(path, "commit", "-qm", message)
    return git(path, "rev-parse", "HEAD")


def layout_text(repo: Path, *, base: str | None = None, command: str = '"sleep 1"') -> str:
    base_line = f'base = "{base}"' if base else ""
    return f"""
name = "rev"
repo = "{repo}"

[[teams]]
name = "t"

[[teams.agents]]
name = "dev"
command = {command}
worktree = true
{base_line}

[[teams.agents]]
name = "pm"
command = {command}
"""


def make_squad(tmp_path: Path, repo: Path, *, base: str | None = None) -> Squad:
    return load(write_layout(tmp_path / "rev.toml", layout_text(repo, base=base)))


@pytest.fixture
def squad(tmp_path: Path, git_repo: Path) -> Squad:
    """A squad whose agent t/dev has a real worktree of ``git_repo`` on squad/t/dev."""
    for i in range(3):
        (git_repo / f"f{i}.txt").write_text("".join(f"line {n}\n" for n in range(20)))
    (git_repo / "logo.bin").write_bytes(b"\x89PNG\0\0\x01")
    commit_all(git_repo, "files")
    sq = make_squad(tmp_path, git_repo)
    agent = sq.agent("t/dev")
    worktrees.ensure(sq.repo, sq.worktree_dir(agent), agent.branch_name(), agent.base)
    review.clear_cache()
    return sq


def wt_of(sq: Squad) -> Path:
    path = sq.worktree_dir(sq.agent("t/dev"))
    assert path is not None
    return path


# -- diff ------------------------------------------------------------------------------------


def test_diff_shows_commits_and_every_kind_of_uncommitted_change(squad: Squad) -> None:
    wt, main = wt_of(squad), squad.repo
    agent = squad.agent("t/dev")
    (wt / "f0.txt").write_text("rewritten\n")
    commit_all(wt, "rewrite f0")
    git(wt, "mv", "f1.txt", "moved.txt")
    commit_all(wt, "move f1")
    (wt / "f2.txt").write_text((wt / "f2.txt").read_text() + "staged\n")
    git(wt, "add", "f2.txt")
    (wt / "f2.txt").write_text((wt / "f2.txt").read_text() + "unstaged\n")
    (wt / "new.txt").write_text("one\ntwo\n")
    (wt / "new.bin").write_bytes(b"\0\1\2\3")
    (wt / "logo.bin").unlink()
    (wt / "README.md").write_text("hello\nworld\n")
    (wt / ".gitignore").write_text("*.log\n")
    (wt / "noise.log").write_text("ignored\n")
    # The main repository moves on meanwhile: the diff stays against the merge-base.
    (main / "elsewhere.txt").write_text("main's work\n")
    commit_all(main, "main moves on")
    index_before = git(wt, "status", "--porcelain=v2", "--untracked-files=all")

    d = review.diff(squad, agent)

    files = {f.path: f for f in d.files}
    assert set(files) == {"f0.txt", "moved.txt", "f2.txt", "new.txt", "new.bin", "logo.bin",
                          "README.md", ".gitignore"}
    assert (files["f0.txt"].status, files["f0.txt"].added, files["f0.txt"].deleted) == (
        "modified", 1, 20)
    assert not files["f0.txt"].uncommitted
    assert files["moved.txt"].status == "renamed" and files["moved.txt"].old_path == "f1.txt"
    assert (files["f2.txt"].added, files["f2.txt"].deleted) == (2, 0)
    assert files["f2.txt"].uncommitted
    assert (files["new.txt"].status, files["new.txt"].added) == ("added", 2)
    assert files["new.bin"].binary and files["new.bin"].added is None
    assert files["new.bin"].status == "added"
    assert files["logo.bin"].status == "deleted" and files["logo.bin"].binary
    assert files["README.md"].uncommitted and files["README.md"].added == 1
    assert (d.ahead, d.behind) == (2, 1)
    assert [c.subject for c in d.commits] == ["move f1", "rewrite f0"]
    assert d.base == "main" and d.branch == "squad/t/dev"
    assert d.merge_base == git(main, "rev-parse", "HEAD~1")
    assert d.uncommitted == 6  # f2, new.txt, new.bin, logo.bin, README.md, .gitignore
    assert "rename from f1.txt" in d.patch and "new file mode" in d.patch
    assert "+unstaged" in d.patch and "+staged" in d.patch
    assert "Binary files /dev/null and b/new.bin differ" in d.patch
    assert "elsewhere.txt" not in d.patch and "noise.log" not in d.patch
    # Looking changed nothing: the worktree's own index still has its untracked files.
    assert git(wt, "status", "--porcelain=v2", "--untracked-files=all") == index_before
    data = json.loads(json.dumps(d.to_json()))
    assert data["insertions"] == d.insertions and data["files"][0]["path"]
    stat = review.diff(squad, agent, stat_only=True)
    assert stat.patch == "" and "patch" not in stat.to_json() and stat.files == d.files


def test_unchanged_worktree_costs_one_git_status(squad: Squad) -> None:
    wt, agent = wt_of(squad), squad.agent("t/dev")
    (wt / "f0.txt").write_text("edited\n")
    commit_all(wt, "edit")
    (wt / "f1.txt").write_text("uncommitted\n")
    (wt / "untracked.txt").write_text("u\n")

    def calls(fn) -> tuple[int, object]:
        before = review.stats["git"]
        result = fn()
        return review.stats["git"] - before, result

    first, d1 = calls(lambda: review.diff(squad, agent))
    assert first >= 4
    again, d2 = calls(lambda: review.diff(squad, agent))
    assert again == 1 and d2 is d1  # one `git status`, the cached result
    n, _ = calls(lambda: review.diff(squad, agent, stat_only=True))
    assert n == 1  # a cached full diff answers a --stat question too
    n, _ = calls(lambda: review.diff(squad, agent, max_age=60))
    assert n == 0
    n, s = calls(lambda: review.summary(squad, agent))
    assert n == 1 and (s.files, s.ahead, s.uncommitted) == (3, 1, 2)
    assert review.summaries(squad, max_age=60) == {"t/dev": s}

    # A file that was already modified, modified again: git status says the same, the
    # cache must still see it.
    (wt / "f1.txt").write_text("uncommitted, and then some more\n")
    n, d3 = calls(lambda: review.diff(squad, agent))
    assert n > 1 and "then some more" in d3.patch
    # The base moving on is seen through the ref files, still with one git command.
    n, _ = calls(lambda: review.diff(squad, agent))
    assert n == 1
    (squad.repo / "later.txt").write_text("x\n")
    commit_all(squad.repo, "main moves")
    n, d4 = calls(lambda: review.diff(squad, agent))
    assert n > 1 and d4.behind == 1
    # So is a commit in the worktree.
    commit_all(wt, "commit the rest")
    d5 = review.diff(squad, agent)
    assert (d5.ahead, d5.uncommitted) == (2, 0)


def test_diff_refuses_agents_without_a_worktree(tmp_path: Path, git_repo: Path) -> None:
    sq = make_squad(tmp_path, git_repo)
    with pytest.raises(ReviewError, match="no worktree"):
        review.diff(sq, sq.agent("t/pm"))
    with pytest.raises(ReviewError, match="does not exist: run `squad up`"):
        review.diff(sq, sq.agent("t/dev"))
    assert review.summaries(sq) == {"t/dev": None}


def test_diff_against_a_layout_base(tmp_path: Path, git_repo: Path) -> None:
    git(git_repo, "branch", "release")
    (git_repo / "main-only.txt").write_text("x\n")
    commit_all(git_repo, "main only")
    sq = make_squad(tmp_path, git_repo, base="release")
    agent = sq.agent("t/dev")
    worktrees.ensure(sq.repo, sq.worktree_dir(agent), agent.branch_name(), agent.base)
    d = review.diff(sq, agent)
    assert (d.base, d.ahead, d.behind, d.files) == ("release", 0, 0, ())
    assert review.merge_target(sq, agent) == "release"


# -- merge -----------------------------------------------------------------------------------


def repo_state(repo: Path) -> tuple[str, str, list[str]]:
    """HEAD, the porcelain status (untracked included) and every file's content."""
    files = sorted(f"{p.relative_to(repo)}={p.read_bytes()!r}" for p in repo.rglob("*")
                   if p.is_file() and ".git" not in p.parts)
    return (git(repo, "rev-parse", "HEAD"),
            git(repo, "status", "--porcelain", "--untracked-files=all"), files)


def test_merge_fast_forwards(squad: Squad) -> None:
    wt, agent = wt_of(squad), squad.agent("t/dev")
    (wt / "feature.txt").write_text("feature\n")
    tip = commit_all(wt, "add feature")
    result = review.merge(squad, agent)
    assert (result.how, result.into, result.commits, result.after) == (
        "fast-forward", "main", 1, tip)
    assert git(squad.repo, "rev-parse", "HEAD") == tip
    assert (squad.repo / "feature.txt").read_text() == "feature\n"
    again = review.merge(squad, agent)
    assert again.how == "up-to-date" and again.after == tip


def test_merge_makes_a_merge_commit_when_main_moved_on(squad: Squad) -> None:
    wt, agent, main = wt_of(squad), squad.agent("t/dev"), squad.repo
    (wt / "f0.txt").write_text("agent's f0\n")
    tip = commit_all(wt, "agent work")
    (main / "f1.txt").write_text("main's f1\n")
    main_tip = commit_all(main, "main work")
    result = review.merge(squad, agent)
    assert result.how == "merge" and result.before == main_tip
    parents = git(main, "rev-list", "--parents", "-n", "1", "HEAD").split()[1:]
    assert parents == [main_tip, tip]
    assert git(main, "log", "-1", "--format=%s") == "Merge squad/t/dev into main"
    assert "t/dev" in git(main, "log", "-1", "--format=%b")
    assert (main / "f0.txt").read_text() == "agent's f0\n"
    assert (main / "f1.txt").read_text() == "main's f1\n"
    assert git(main, "status", "--porcelain") == ""
    from squad import events

    assert any(e["action"] == "merge" and e["target"] == "t/dev" for e in events.read("rev"))


def test_merge_refuses_a_dirty_main_repository(squad: Squad) -> None:
    wt, agent, main = wt_of(squad), squad.agent("t/dev"), squad.repo
    (wt / "feature.txt").write_text("feature\n")
    commit_all(wt, "feature")
    (main / "f0.txt").write_text("the user's own unsaved work\n")
    before = repo_state(main)
    with pytest.raises(ReviewError, match=r"uncommitted changes \(f0.txt\)"):
        review.merge(squad, agent)
    assert repo_state(main) == before
    git(main, "add", "f0.txt")  # staged counts too
    with pytest.raises(ReviewError, match="uncommitted changes"):
        review.merge(squad, agent)


def test_merge_refuses_when_main_is_not_on_the_base_branch(squad: Squad) -> None:
    wt, agent, main = wt_of(squad), squad.agent("t/dev"), squad.repo
    (wt / "feature.txt").write_text("feature\n")
    commit_all(wt, "feature")
    git(main, "switch", "-q", "-c", "other")
    base = make_squad(main.parent, main, base="main")
    with pytest.raises(ReviewError, match="is on branch 'other'.*git switch main"):
        review.merge(base, base.agent("t/dev"))
    git(main, "switch", "-q", "--detach")
    with pytest.raises(ReviewError, match="detached HEAD"):
        review.merge(squad, agent)


def conflicting(sq: Squad) -> None:
    (wt_of(sq) / "f0.txt").write_text("the agent's version\n")
    commit_all(wt_of(sq), "agent edits f0")
    (sq.repo / "f0.txt").write_text("main's version\n")
    commit_all(sq.repo, "main edits f0")


def test_merge_refuses_a_conflict_and_changes_nothing(squad: Squad) -> None:
    conflicting(squad)
    before = repo_state(squad.repo)
    with pytest.raises(ReviewError, match="would conflict in f0.txt: nothing was changed"):
        review.merge(squad, squad.agent("t/dev"))
    assert repo_state(squad.repo) == before
    assert not (squad.repo / ".git" / "MERGE_HEAD").exists()


def test_a_conflicting_merge_git_starts_is_aborted_and_verified(
        squad: Squad, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the conflict check cannot tell (an older git), the real merge runs, conflicts,
    and is aborted; the main repository is checked to be as it was."""
    conflicting(squad)
    monkeypatch.setattr(review, "_conflicts", lambda *a: None)
    before = repo_state(squad.repo)
    with pytest.raises(ReviewError, match="merge was aborted and the main repository is as "
                                          "it was"):
        review.merge(squad, squad.agent("t/dev"))
    assert repo_state(squad.repo) == before
    assert not (squad.repo / ".git" / "MERGE_HEAD").exists()


def test_uncommitted_work_is_refused_or_committed_when_asked(squad: Squad) -> None:
    wt, agent, main = wt_of(squad), squad.agent("t/dev"), squad.repo
    (wt / ".gitignore").write_text("*.log\n")
    commit_all(wt, "ignore logs")
    (wt / "work.txt").write_text("not committed yet\n")
    (wt / "f0.txt").write_text("edited\n")
    (wt / "debug.log").write_text("ignored: never committed\n")
    wt_before, main_before = repo_state(wt), repo_state(main)
    with pytest.raises(ReviewError, match=r"2 uncommitted change\(s\).*--commit MESSAGE"):
        review.merge(squad, agent)
    assert (repo_state(wt), repo_state(main)) == (wt_before, main_before)

    result = review.merge(squad, agent, commit_message="Finish the work")
    assert result.committed == git(wt, "rev-parse", "HEAD")
    assert git(wt, "log", "-1", "--format=%s") == "Finish the work"
    assert git(wt, "status", "--porcelain", "--untracked-files=all") == ""
    assert (wt / "debug.log").exists()  # still there, still untracked
    assert "debug.log" not in git(wt, "ls-files")
    assert result.how == "fast-forward" and result.commits == 2
    assert (main / "work.txt").read_text() == "not committed yet\n"
    assert not (main / "debug.log").exists()


def test_commit_is_not_made_when_the_merge_would_conflict(squad: Squad) -> None:
    wt = wt_of(squad)
    (squad.repo / "f0.txt").write_text("main's version\n")
    commit_all(squad.repo, "main edits f0")
    (wt / "f0.txt").write_text("the agent's uncommitted version\n")
    wt_before, main_before = repo_state(wt), repo_state(squad.repo)
    with pytest.raises(ReviewError, match="would conflict in f0.txt"):
        review.merge(squad, squad.agent("t/dev"), commit_message="never made")
    assert (repo_state(wt), repo_state(squad.repo)) == (wt_before, main_before)


def test_merge_never_overwrites_untracked_or_ignored_files(squad: Squad) -> None:
    wt, main = wt_of(squad), squad.repo
    (main / ".gitignore").write_text("secrets.env\n")
    commit_all(main, "ignore secrets")
    git(wt, "merge", "-q", "main")
    (wt / "secrets.env").write_text("agent's\n")
    (wt / "notes.txt").write_text("agent's\n")
    git(wt, "add", "-f", "secrets.env", "notes.txt")
    git(wt, "commit", "-qm", "add files the user has locally")
    (main / "secrets.env").write_text("the user's real secrets\n")
    before = repo_state(main)
    with pytest.raises(ReviewError, match="would overwrite untracked or ignored files.*"
                                          "secrets.env"):
        review.merge(squad, squad.agent("t/dev"))
    assert repo_state(main) == before
    (main / "secrets.env").unlink()
    (main / "notes.txt").write_text("the user's notes\n")
    with pytest.raises(ReviewError, match="notes.txt"):
        review.merge(squad, squad.agent("t/dev"))
    assert (main / "notes.txt").read_text() == "the user's notes\n"


# -- pull requests ---------------------------------------------------------------------------


def bin_with(bin_dir: Path, *programs: str) -> Path:
    """A directory for PATH holding only these programs (so no `gh`, unless a test adds one)."""
    bin_dir.mkdir(exist_ok=True)
    for name in programs:
        real = shutil.which(name)
        assert real, f"{name} is needed for this test"
        (bin_dir / name).symlink_to(real)
    return bin_dir


@pytest.fixture
def only_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """PATH holds git and nothing else: no gh."""
    bin_dir = bin_with(tmp_path / "bin", "git")
    monkeypatch.setenv("PATH", str(bin_dir))
    return bin_dir


def fake_gh(bin_dir: Path, record: Path, *, auth_ok: bool = True,
            create_exit: int = 0, create_out: str = "https://github.com/o/r/pull/7") -> None:
    """A stand-in for the GitHub CLI that records every call."""
    script = bin_dir / "gh"
    script.write_text(f"""#!{sys.executable}
import json, sys
with open({str(record)!r}, "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
if sys.argv[1:3] == ["auth", "status"]:
    if not {auth_ok!r}:
        print("You are not logged into any GitHub hosts. To log in, run: gh auth login",
              file=sys.stderr)
        sys.exit(1)
    sys.exit(0)
if sys.argv[1:3] == ["pr", "create"]:
    print({create_out!r}, file=sys.stdout if {create_exit} == 0 else sys.stderr)
    sys.exit({create_exit})
sys.exit(2)
""")
    script.chmod(0o755)


def calls(record: Path) -> list[list[str]]:
    return [json.loads(x) for x in record.read_text().splitlines()] if record.exists() else []


def with_remote(sq: Squad, tmp_path: Path) -> Path:
    bare = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    git(sq.repo, "remote", "add", "origin", str(bare))
    git(sq.repo, "push", "-q", "origin", "main")
    return bare


def test_pr_says_plainly_what_is_missing(squad: Squad, only_git: Path,
                                         tmp_path: Path) -> None:
    agent = squad.agent("t/dev")
    (wt_of(squad) / "feature.txt").write_text("x\n")
    commit_all(wt_of(squad), "feature")
    with pytest.raises(ReviewError) as exc:
        review.pull_request(squad, agent)
    assert "gh (the GitHub CLI) is not installed" in str(exc.value)
    assert "has no remote to push to" in str(exc.value)
    fake_gh(only_git, tmp_path / "gh.log")
    with pytest.raises(ReviewError, match="no remote") as exc:
        review.pull_request(squad, agent)
    assert "not installed" not in str(exc.value)
    bare = with_remote(squad, tmp_path)
    (only_git / "gh").unlink()
    with pytest.raises(ReviewError, match="not installed") as exc:
        review.pull_request(squad, agent)
    assert "remote" not in str(exc.value)
    assert subprocess.run(["git", "-C", str(bare), "rev-parse", "--verify", "-q",
                           "refs/heads/squad/t/dev"]).returncode != 0


def test_pr_pushes_and_opens_a_pull_request_with_gh(squad: Squad, only_git: Path,
                                                    tmp_path: Path) -> None:
    bare = with_remote(squad, tmp_path)
    record = tmp_path / "gh.log"
    fake_gh(only_git, record)
    wt, agent = wt_of(squad), squad.agent("t/dev")
    (wt / "feature.txt").write_text("x\n")
    tip = commit_all(wt, "Add the feature")
    (wt / "draft.txt").write_text("not committed\n")
    result = review.pull_request(squad, agent, draft=True)
    assert result.url == "https://github.com/o/r/pull/7"
    assert (result.branch, result.remote, result.base, result.title) == (
        "squad/t/dev", "origin", "main", "Add the feature")
    assert git(bare, "rev-parse", "refs/heads/squad/t/dev") == tip
    assert git(squad.repo, "config", "branch.squad/t/dev.remote") == "origin"
    create = [c for c in calls(record) if c[:2] == ["pr", "create"]]
    assert len(create) == 1
    args = create[0]
    assert args[args.index("--head") + 1] == "squad/t/dev"
    assert args[args.index("--base") + 1] == "main"
    assert args[args.index("--title") + 1] == "Add the feature"
    assert "- Add the feature" in args[args.index("--body") + 1] and "--draft" in args
    assert result.notes and "uncommitted" in result.notes[0]

    # Already open: gh says so, and that pull request is the answer.
    fake_gh(only_git, record, create_exit=1,
            create_out='a pull request for branch "squad/t/dev" into branch "main" already '
                       "exists:\nhttps://github.com/o/r/pull/7")
    again = review.pull_request(squad, agent, title="Mine", body="text")
    assert again.existing and again.url == "https://github.com/o/r/pull/7"


def test_pr_refuses_without_gh_login_or_when_the_push_is_rejected(
        squad: Squad, only_git: Path, tmp_path: Path) -> None:
    bare = with_remote(squad, tmp_path)
    record = tmp_path / "gh.log"
    fake_gh(only_git, record, auth_ok=False)
    wt, agent = wt_of(squad), squad.agent("t/dev")
    (wt / "feature.txt").write_text("x\n")
    tip = commit_all(wt, "feature")
    with pytest.raises(ReviewError, match="gh is not authenticated.*gh auth login"):
        review.pull_request(squad, agent)
    assert subprocess.run(["git", "-C", str(bare), "rev-parse", "--verify", "-q",
                           "refs/heads/squad/t/dev"]).returncode != 0  # nothing pushed

    # Someone else pushed to the branch: the push is rejected, never forced.
    other = tmp_path / "other"
    subprocess.run(["git", "clone", "-q", str(bare), str(other)], check=True)
    git(other, "switch", "-q", "-c", "squad/t/dev")
    (other / "theirs.txt").write_text("theirs\n")
    theirs = commit_all(other, "their commit")
    git(other, "push", "-q", "origin", "squad/t/dev")
    fake_gh(only_git, record)
    with pytest.raises(ReviewError, match="rejected.*never force-pushes"):
        review.pull_request(squad, agent)
    assert git(bare, "rev-parse", "refs/heads/squad/t/dev") == theirs != tip
    assert not [c for c in calls(record) if c[:2] == ["pr", "create"]]


def test_pr_with_nothing_to_propose(squad: Squad, only_git: Path, tmp_path: Path) -> None:
    with_remote(squad, tmp_path)
    fake_gh(only_git, tmp_path / "gh.log")
    with pytest.raises(ReviewError, match="nothing to propose"):
        review.pull_request(squad, squad.agent("t/dev"))


# -- the CLI, on a running squad -------------------------------------------------------------


def test_review_commands_on_a_running_squad(socket: str, tmp_path: Path,
                                            git_repo: Path) -> None:
    sleeper = json.dumps([PY, "-c", "import time; time.sleep(600)"])
    layout = write_layout(tmp_path / "cli.toml", layout_text(git_repo, command=sleeper))
    up = run_squad("-L", socket, "up", str(layout))
    assert up.returncode == 0, up.stderr
    sq = load(layout)
    wt = wt_of(sq)
    wait_for(lambda: (wt / ".git").exists(), what="the worktree")
    (wt / "README.md").write_text("hello\nfrom the agent\n")
    commit_all(wt, "Say more")
    (wt / "notes.txt").write_text("uncommitted notes\n")

    piped = run_squad("-L", socket, "diff", "t/dev")
    assert piped.returncode == 0, piped.stderr
    assert "\x1b[" not in piped.stdout
    assert piped.stdout.startswith("t/dev · branch squad/t/dev · 1 commit ahead of main")
    assert "  A  notes.txt  +1 -0  (uncommitted)" in piped.stdout
    assert "\ndiff --git a/README.md b/README.md\n" in piped.stdout
    patch = tmp_path / "agent.patch"
    patch.write_text(piped.stdout)
    check = subprocess.run(["git", "-C", str(git_repo), "apply", "--check", str(patch)],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr  # git apply skips the summary

    coloured = run_squad("-L", socket, "diff", "t/dev", env={"FORCE_COLOR": "1",
                                                              "COLUMNS": "100"})
    assert coloured.returncode == 0 and "\x1b[" in coloured.stdout

    stat = run_squad("-L", socket, "diff", "t/dev", "--stat")
    assert stat.returncode == 0 and "diff --git" not in stat.stdout
    assert "files: 2 changed, +2 -0" in stat.stdout
    data = json.loads(run_squad("-L", socket, "diff", "t/dev", "--json").stdout)
    assert data["ahead"] == 1 and {f["path"] for f in data["files"]} == {
        "README.md", "notes.txt"}

    refused = run_squad("-L", socket, "merge", "t/dev")
    assert refused.returncode == 2
    assert refused.stderr.startswith("squad: t/dev's worktree has 1 uncommitted change(s)")
    assert len(refused.stderr.strip().splitlines()) == 1
    merged = run_squad("-L", socket, "merge", "t/dev", "--commit", "Keep the notes", "--json")
    assert merged.returncode == 0, merged.stderr
    result = json.loads(merged.stdout)
    assert result["how"] == "fast-forward" and result["commits"] == 2
    assert (git_repo / "notes.txt").read_text() == "uncommitted notes\n"

    no_gh = bin_with(tmp_path / "bin", "git", "tmux")
    pr = run_squad("-L", socket, "pr", "t/dev", env={"PATH": str(no_gh)})
    assert pr.returncode == 2 and "cannot open a pull request for t/dev" in pr.stderr

    for bad, says in (("t/nobody", "no such agent"), ("t", "name one agent as TEAM/AGENT")):
        proc = run_squad("-L", socket, "diff", bad)
        assert proc.returncode == 2 and says in proc.stderr
    no_wt = run_squad("-L", socket, "diff", "t/pm")
    assert no_wt.returncode == 2 and "has no worktree" in no_wt.stderr
    assert run_squad("-L", socket, "down").returncode == 0


def test_review_modules_never_import_textual() -> None:
    code = ("import sys, squad.review, squad.notify, squad.cli_review; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'textual'); "
            "print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_remote_tracking_base_merges_into_its_local_branch(tmp_path: Path,
                                                             git_repo: Path) -> None:
    bare = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    git(git_repo, "remote", "add", "origin", str(bare))
    git(git_repo, "branch", "develop")
    git(git_repo, "push", "-q", "origin", "main", "develop")
    git(git_repo, "branch", "-D", "develop")  # only origin/develop is left
    for base, into in (("origin/main", "main"), ("origin/develop", "develop")):
        sq = make_squad(tmp_path, git_repo, base=base)
        assert review.merge_target(sq, sq.agent("t/dev")) == into
    agent = sq.agent("t/dev")
    worktrees.ensure(sq.repo, sq.worktree_dir(agent), agent.branch_name(), agent.base)
    (wt_of(sq) / "x.txt").write_text("x\n")
    commit_all(wt_of(sq), "x")
    assert review.diff(sq, agent).base == "origin/develop"
    with pytest.raises(ReviewError, match="on branch 'main', but t/dev's base is 'develop': "
                                          "`git switch develop`"):
        review.merge(sq, agent)
