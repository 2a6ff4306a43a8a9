"""An agent's diff on a big worktree: squad's first diff, its cached repeat, and a naive `git diff`
run every time (what a diff view refreshed each tick would cost without the cache).

The repository has FILES files in 50 directories; the agent's branch has 20 commits touching
100 files, plus 50 unstaged edits and 20 untracked files. Prints the median wall time and the
mean CPU time of git child processes per call, and the ratios. Run: python bench/bench_diff.py
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from squad import review, worktrees  # noqa: E402
from squad.layout import loads  # noqa: E402

FILES = 5000
ROUNDS = 15


def child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def measure(fn, setup=None) -> tuple[float, float, float]:
    """(median wall ms, mean child CPU ms, mean git processes) per call."""
    walls, cpus, gits = [], [], []
    for _ in range(ROUNDS):
        if setup:
            setup()
        c0, g0, t0 = child_cpu(), review.stats["git"], time.perf_counter()
        fn()
        walls.append((time.perf_counter() - t0) * 1000)
        cpus.append((child_cpu() - c0) * 1000)
        gits.append(review.stats["git"] - g0)
    return statistics.median(walls), statistics.mean(cpus), statistics.mean(gits)


def git(path: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(path), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def build(root: Path) -> tuple[object, object, Path]:
    repo = root / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    for i in range(FILES):
        d = repo / f"pkg{i % 50}"
        d.mkdir(exist_ok=True)
        (d / f"mod{i}.py").write_text("".join(f"def f{n}(x):\n    return x + {n}\n"
                                              for n in range(20)))
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "a big project")
    layout = loads(f'name = "bench"\nrepo = "{repo}"\n[[teams]]\nname = "t"\n'
                   '[[teams.agents]]\nname = "dev"\ncommand = "true"\nworktree = true\n',
                   source="bench.toml", base_dir=root)
    agent = layout.agent("t/dev")
    wt = layout.worktree_dir(agent)
    worktrees.ensure(layout.repo, wt, agent.branch_name())
    for c in range(20):
        for i in range(c * 5, c * 5 + 5):
            p = wt / f"pkg{i % 50}" / f"mod{i}.py"
            p.write_text(p.read_text() + f"# commit {c}\n")
        git(wt, "commit", "-qam", f"change {c}")
    for i in range(500, 550):
        p = wt / f"pkg{i % 50}" / f"mod{i}.py"
        p.write_text(p.read_text().replace("return x + 3", "return x * 3"))
    for i in range(20):
        (wt / f"new{i}.py").write_text("print('new')\n" * 10)
    return layout, agent, wt


def main() -> None:
    env_keep = {k: os.environ.get(k) for k in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL",
                                               "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL")}
    os.environ.update(GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="bench@example.invalid",
                      GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="bench@example.invalid")
    with tempfile.TemporaryDirectory(prefix="squad-bench-diff-") as tmp:
        layout, agent, wt = build(Path(tmp))
        merge_base = git(wt, "merge-base", "main", "HEAD")
        d = review.diff(layout, agent)
        print(f"worktree: {FILES} files; diff: {len(d.files)} files, +{d.insertions} "
              f"-{d.deletions}, {d.ahead} commits ahead, {len(d.patch) // 1024} KiB of patch")

        first = measure(lambda: review.diff(layout, agent), setup=review.clear_cache)
        first_stat = measure(lambda: review.diff(layout, agent, stat_only=True),
                             setup=review.clear_cache)
        review.diff(layout, agent)
        cached = measure(lambda: review.diff(layout, agent))
        tree = measure(lambda: review.summary(layout, agent, max_age=5))

        def naive() -> None:
            subprocess.run(["git", "-C", str(wt), "diff", "--stat", "-p", merge_base],
                           check=True, capture_output=True)

        plain = (*measure(naive)[:2], 1.0)  # one git process, not counted by squad

        probe = wt / "pkg1" / "mod1.py"

        def touch() -> None:
            probe.write_text(probe.read_text() + "#\n")

        changed = measure(lambda: review.diff(layout, agent), setup=touch)

    for k, v in env_keep.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    rows = [
        ("first diff, full patch (cold cache)", first),
        ("first diff, --stat only (cold cache)", first_stat),
        ("after one file changed (cache miss)", changed),
        ("cached repeat, unchanged worktree", cached),
        ("agent tree summary, max_age=5", tree),
        ("naive `git diff --stat -p` every time", plain),
    ]
    print(f"\n{'':40} {'wall ms':>9} {'git CPU ms':>11} {'git procs':>10}")
    for name, (wall, cpu, procs) in rows:
        print(f"{name:40} {wall:9.2f} {cpu:11.2f} {procs:10.1f}")
    print(f"\nnaive every time / cached repeat: {plain[0] / cached[0]:.1f}x wall, "
          f"{plain[1] / max(cached[1], 0.01):.1f}x CPU")
    print(f"first diff / cached repeat: {first[0] / cached[0]:.1f}x wall")


if __name__ == "__main__":
    main()
