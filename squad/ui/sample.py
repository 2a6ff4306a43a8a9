"""A fixed, made-up squad: the frozen screen of the snapshot tests, the README screenshot
and the responsiveness benchmark. Deterministic: the same arguments give the same data."""

from __future__ import annotations

import math

from squad.snapshot import AgentRow, Snapshot
from squad.ui.messages import History

AT = 1_800_000_000.0  # the frozen "now"

_TEAMS = (
    ("frontend", (("pm", "PM"), ("dev", "Dev"), ("server", "Server"))),
    ("backend", (("dev", "Dev"), ("qa", "QA"), ("reviewer", "Reviewer"))),
)
_STATUSES = ("working", "idle", "working", "needs-input", "paused", "stalled", "exited",
             "working", "idle", "starting")
_TASKS = ("#12 Fix the login redirect", None, "#14 Add [bold] markup tests [/]", None,
          "#9 Refactor the session store", "#15 Migrate users table", None,
          "#17 Write API docs", None, None)

SCREEN = """\x1b[1mdemo agent\x1b[0m 0.1 (seed {seed}) - a pretend coding agent
type a task and press Enter; `exit` quits
demo> add a health check endpoint
\x1b[32m●\x1b[0m Working on: add a health check endpoint
  \x1b[36m⠋\x1b[0m step 1/5: searching the codebase…
  \x1b[36m⠙\x1b[0m step 2/5: editing src/api/routes.py…
  \x1b[36m⠹\x1b[0m step 3/5: writing tests for src/api/routes.py…
  \x1b[36m⠸\x1b[0m step 4/5: running the linter…
  \x1b[36m⠼\x1b[0m step 5/5: reviewing the diff…
\x1b[1;32m✔ Done:\x1b[0m implemented add a health check endpoint (3 files changed)
RESULT: GET /healthz returns 200 with the build id
demo> {task}
\x1b[32m●\x1b[0m Working on: {task}
  \x1b[36m⠋\x1b[0m step 1/4: searching the codebase…
  \x1b[36m⠙\x1b[0m step 2/4: editing src/app.py…
  literal brackets stay literal: [bold]not bold[/] and [/]
  \x1b[33mwarning\x1b[0m: 2 tests skipped (\x1b[2mneeds a database\x1b[0m)
  \x1b[36m⠹\x1b[0m step 3/4: running the linter…"""


def sample(agents: int | None = None, tick: int = 0) -> tuple[Snapshot, History]:
    """The sample squad (six agents in two teams, or ``agents`` spread over teams of five)
    at tick number ``tick``, with five minutes of usage history."""
    if agents is None:
        layout = [(team, list(members)) for team, members in _TEAMS]
    else:
        roles = ("PM", "Dev", "Dev", "QA", "Reviewer")
        layout = []
        for i in range(agents):
            team = f"team{i // 5 + 1:02d}"
            if not layout or layout[-1][0] != team:
                layout.append((team, []))
            layout[-1][1].append((f"agent{i % 5 + 1}", roles[i % 5]))
    rows: list[AgentRow] = []
    screens: dict[str, str] = {}
    history: History = {}
    n = 0
    for team, members in layout:
        for name, role in members:
            status = _STATUSES[n % len(_STATUSES)]
            task = _TASKS[n % len(_TASKS)] if status not in ("exited", "starting") else None
            running = status != "exited"
            cpu = round(abs(math.sin(n * 1.7 + tick * 0.3 + 0.8)) * (85 if status == "working"
                                                                else 4), 1)
            rss = int((40 + 37 * (n % 7) + tick % 5) * 1024 * 1024) if running else 0
            target = f"{team}/{name}"
            rows.append(AgentRow(
                team=team, agent=name, role=role, state="running" if running else "exited",
                status=status, pid=41000 + n if running else None,
                wrapper_pid=40000 + n, exit_code=None if running else 1,
                cpu=cpu if running and status != "paused" else 0.0, rss=rss,
                procs=(1 + n % 3) if running else 0, branch=None, worktree=None,
                cwd="/srv/webshop", session=team, window_id=f"@{n}", pane_id=f"%{n}",
                tags=("python", "backend") if n % 2 else ("frontend",),
                since=AT - 60 * (n + 1) - 7 * n, task=task, task_id=None,
                breaker="open" if status == "stalled" else "closed",
            ))
            screens[target] = SCREEN.format(seed=n + 1, task=(task or "idle").split(" ", 1)[-1])
            history[target] = [
                (AT - 300 + s, round(abs(math.sin((s + tick) / 9 + n)) * 60 + (s % 7), 1),
                 int((30 + n * 9 + 20 * math.sin((s + tick) / 23)) * 1024 * 1024))
                for s in range(300)
            ]
            n += 1
    snap = Snapshot("webshop", "squad", AT + tick, 37.5 + (tick % 10), 58.0, tuple(rows),
                    screens)
    return snap, history


SAMPLE_EVENTS = [
    {"ts": AT - 120, "by": "ui", "action": "pause", "target": "backend/dev",
     "result": "paused (2 processes)"},
    {"ts": AT - 90, "by": "supervisor", "action": "status", "target": "frontend/server",
     "reason": "working -> needs-input", "status": "needs-input"},
    {"ts": AT - 30, "by": "ui", "action": "send", "target": "frontend/pm",
     "preview": "review [bold] the plan [/]"},
]

SAMPLE_TASKS = [
    {"id": 12, "title": "Fix the login redirect", "status": "in_progress",
     "priority": "high", "agent": "frontend/pm", "attempts": 1, "created": "10:02"},
    {"id": 15, "title": "Migrate users table", "status": "queued", "priority": "medium",
     "agent": None, "attempts": 0, "created": "10:05"},
]


SAMPLE_PATCH = """diff --git a/src/auth.py b/src/auth.py
index 3b18e51..a7c2f0d 100644
--- a/src/auth.py
+++ b/src/auth.py
@@ -10,9 +10,12 @@ from .sessions import SessionStore
\x20
 def login(request, store: SessionStore):
     user = authenticate(request.form["user"], request.form["password"])
-    if user is None:
-        return redirect("/login")
+    if user is None:
+        # Keep where the user wanted to go: [next] survives a failed login.
+        return redirect(f"/login?next={request.args.get('next', '/')}")
     session = store.create(user)
-    return redirect("/")
+    target = request.args.get("next") or "/"
+    return redirect(target if target.startswith("/") else "/")
diff --git a/tests/test_auth.py b/tests/test_auth.py
new file mode 100644
index 0000000..5d1f2a9
--- /dev/null
+++ b/tests/test_auth.py
@@ -0,0 +1,6 @@
+from src.auth import login
+
+
+def test_login_redirects_back(client):
+    response = client.post("/login?next=/cart", data={"user": "ann", "password": "x"})
+    assert response.headers["Location"] == "/cart"
"""


def sample_diff(target: str = "frontend/pm"):  # noqa: ANN201 - a squad.ui.diffview.Rendered
    """A made-up diff of one agent's worktree, rendered as the diff view shows it."""
    from squad.review import AgentDiff, Commit, FileChange
    from squad.ui.diffview import Rendered, patch_lines

    diff = AgentDiff(
        target=target, worktree="/srv/webshop.worktrees/frontend/pm", branch="squad/frontend/pm",
        base="main", base_commit="4f1c2ab" * 5 + "1234", merge_base="4f1c2ab" * 5 + "1234",
        head="9e8d7c6" * 5 + "1234", ahead=2, behind=0,
        commits=(Commit("9e8d7c6" * 5 + "1234", "squad agent", int(AT) - 300,
                        "Keep ?next across a failed login"),
                 Commit("1a2b3c4" * 5 + "1234", "squad agent", int(AT) - 900,
                        "Test the login redirect")),
        files=(FileChange("src/auth.py", "modified", 5, 3),
               FileChange("tests/test_auth.py", "added", 6, 0, uncommitted=True)),
        uncommitted=1, patch=SAMPLE_PATCH)
    lines, starts = patch_lines(diff.patch)
    return Rendered(diff, lines, starts)


SAMPLE_POLICY = {
    "supervising": True,
    "governor": {
        "config": {"memory_high": "85%", "memory_ok": "70%", "max_active": 4},
        "level": "between", "held": {"backend/reviewer": {"kind": "pause",
                                                          "rule": "memory_high",
                                                          "dry_run": False}},
        "recent": [],
    },
    "pressure_now": {"available_mb": 3120.0, "total_mb": 16384.0, "memory_psi": 4.2,
                     "cpu_psi": 11.5, "load1": 2.4, "cores": 8},
    "cpu_limits": {"backend/qa": {"mechanism": "cgroup v2 cpu.max", "cpu_limit": 50}},
    "actions": [{"kind": "pause", "target": "backend/reviewer", "rule": "memory_high",
                 "reason": "available 2.1 GiB < 15%", "dry_run": False}],
    "agents": [{"target": "frontend/dev", "priority": 0, "pinned": True,
                "memory_warn_mb": 512, "memory_limit_mb": 768, "on_memory_limit": "hibernate",
                "cpu_limit": None},
               {"target": "backend/qa", "priority": 1, "pinned": False, "memory_warn_mb": None,
                "memory_limit_mb": None, "on_memory_limit": "warn", "cpu_limit": 50.0}],
    "failures": ["command notification needs_input for frontend/server failed: exit status 3"],
}
