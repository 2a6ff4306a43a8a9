"""Notifications: decisions on plain data; delivery to a real HTTP server on 127.0.0.1, a real
command, and a stand-in notify-send; rate limits shown by counts; failures never raised."""

from __future__ import annotations

import json
import socket as socketlib
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from squad import events
from squad.errors import LayoutError
from squad.notify import (
    KINDS,
    AuditTail,
    Event,
    KindConfig,
    Notifier,
    NotifyConfig,
    NotifyError,
    RateLimit,
    Watch,
    changes,
    desktop_argv,
    event_env,
    intents,
    parse_notify,
)
from tests.conftest import wait_for

# -- config ----------------------------------------------------------------------------------


def test_parse_notify_reads_every_form() -> None:
    config = parse_notify({
        "desktop": False,
        "webhook": "https://hooks.example/all",
        "repeat_after": 30,
        "max_per_minute": 5,
        "timeout": 2.5,
        "needs_input": ["ntfy", "publish", "my-topic"],
        "task_failed": {"command": ["/usr/local/bin/page-me"], "webhook": "http://127.0.0.1/x",
                        "desktop": True},
        "task_done": False,
    })
    assert (config.desktop, config.webhook, config.repeat_after, config.max_per_minute,
            config.timeout) == (False, "https://hooks.example/all", 30.0, 5, 2.5)
    assert config.for_kind("needs_input").command == ("ntfy", "publish", "my-topic")
    failed = config.for_kind("task_failed")
    assert (failed.command, failed.webhook, failed.desktop) == (
        ("/usr/local/bin/page-me",), "http://127.0.0.1/x", True)
    assert not config.for_kind("task_done").enabled
    assert config.for_kind("stalled") == KindConfig("stalled")
    assert parse_notify(config.to_table()) == config  # what layout.dump writes reads back
    assert parse_notify({}) == NotifyConfig() and NotifyConfig().to_table() == {}
    hash(config)  # a Squad holding it stays hashable


def test_parse_notify_names_every_problem_by_key_path() -> None:
    with pytest.raises(NotifyError) as exc:
        parse_notify({
            "needs_input": 5,
            "stalled": ["ok", 3],
            "webhok": "http://x",
            "webhook": "ftp://nope",
            "desktop": "yes",
            "max_per_minute": 0,
            "timeout": -1,
            "task_failed": {"command": [], "hook": 1},
        })
    assert isinstance(exc.value, LayoutError)
    problems = dict(exc.value.problems)
    assert problems["notify.needs_input"] == (
        "must be a list of strings (a command), a table { command, webhook, desktop } or "
        "false, got 5")
    assert problems["notify.stalled[1]"] == "must be a string, got 3"
    assert problems["notify.webhok"].startswith('unknown key "webhok"; did you mean "webhook"?')
    assert problems["notify.webhook"] == 'must be an http or https URL, got "ftp://nope"'
    assert problems["notify.desktop"] == 'must be true or false, got "yes"'
    assert problems["notify.max_per_minute"] == "must be a positive integer, got 0"
    assert "notify.timeout" in problems
    assert problems["notify.task_failed.command"].startswith("must be a non-empty list")
    assert problems["notify.task_failed.hook"].startswith('unknown key "hook"; did you mean')
    assert (exc.value.where, exc.value.message) == exc.value.problems[0]
    assert str(exc.value).startswith("notify.needs_input: must be a list of strings")
    assert len(exc.value.problems) == 9 and "(and 8 more problems)" in str(exc.value)
    with pytest.raises(NotifyError, match="^layout.notify: must be a table"):
        parse_notify(["x"], where="layout.notify")


# -- deciding what happened ------------------------------------------------------------------


def rows(**statuses: str) -> dict[str, dict]:
    return {t.replace("__", "/"): {"status": s, "role": "Dev"} for t, s in statuses.items()}


def test_changes_turn_status_transitions_and_task_events_into_notifications() -> None:
    # First tick: an agent already waiting for a person is news, an old exit is not.
    first = rows(a__dev="needs-input", a__qa="working", a__pm="exited", b__x="stalled")
    assert [(e.kind, e.target) for e in changes(None, first, now=1.0)] == [
        ("needs_input", "a/dev"), ("stalled", "b/x")]
    before = rows(a__dev="working", a__qa="working", a__pm="idle", b__x="working",
                  b__y="exited")
    after = rows(a__dev="needs-input", a__qa="stalled", a__pm="down", b__x="exited",
                 b__y="exited")
    after["a/dev"]["screen"] = "Reading files\n\nProceed with the edit? [y/n]\n\n"
    after["b/x"]["exit_code"] = 3
    audit = [
        {"action": "task.done", "task": 4, "title": "Fix login", "target": "a/qa", "ts": 5.0},
        {"action": "task.failed", "task": 5, "title": "Ship", "target": "b/x",
         "reason": "agent exited", "ts": 6.0},
        {"action": "task.requeued", "task": 6, "target": "b/x"},
        {"action": "stop", "target": "b/y", "ts": 6.0},
    ]
    found = changes(before, after, audit, now=7.0)
    got = [(e.kind, e.target) for e in found]
    assert got == [("needs_input", "a/dev"), ("stalled", "a/qa"), ("exited", "a/pm"),
                   ("exited", "b/x"), ("task_done", "a/qa"), ("task_failed", "b/x")]
    needs = found[0]
    assert needs.fields["excerpt"] == "Reading files / Proceed with the edit? [y/n]"
    assert needs.title("sq") == "squad sq: a/dev needs input"
    assert found[3].fields["exit_code"] == 3
    assert found[3].title("sq") == "squad sq: b/x exited (exit status 3)"
    assert found[5].title("sq") == "squad sq: task #5 failed"
    assert found[5].message() == "Ship (b/x): agent exited"
    # Unchanged, started, or already gone: nothing.
    assert changes(after, after, now=8.0) == []
    assert changes(rows(a__dev="starting"), rows(a__dev="working"), now=9.0) == []
    assert changes(rows(a__dev="down"), rows(a__dev="exited"), now=9.0) == []
    assert intents(audit) == [("b/y", 6.0)]
    assert intents([{"action": "down", "target": None, "ts": 1.0}]) == [("*", 1.0)]


def test_watch_drops_the_exits_squad_caused() -> None:
    w = Watch(settle=5.0, slack=1.0)
    assert w.step(rows(t__a="working", t__b="working", t__c="working", u__d="working"), [],
                  100.0) == []
    # All four exit at once; squad's own stop of t/a is recorded just after the tick saw it.
    gone = rows(t__a="exited", t__b="exited", t__c="exited", u__d="exited")
    assert w.step(gone, [], 101.0) == []  # held back, waiting for intents
    assert w.step(gone, [{"action": "stop", "target": "t/a", "ts": 101.2}], 102.0) == []
    assert w.step(gone, [{"action": "down", "target": "u", "ts": 102.5}], 103.0) == []
    out = w.step(gone, [], 106.5)
    assert sorted(e.target for e in out) == ["t/b", "t/c"]  # unexpected: reported once
    assert w.step(gone, [], 110.0) == []

    # A restart long before a later crash does not hide the crash.
    w = Watch(settle=5.0, slack=1.0)
    w.step(rows(t__a="exited"), [], 200.0)
    w.step(rows(t__a="starting"), [{"action": "restart", "target": "t/a", "ts": 200.5}], 201.0)
    w.step(rows(t__a="working"), [], 202.0)
    w.step(rows(t__a="exited"), [], 230.0)
    out = w.step(rows(t__a="exited"), [], 236.0)
    assert [(e.kind, e.target) for e in out] == [("exited", "t/a")]

    # A whole-squad down covers everyone; other kinds are never held.
    w = Watch(settle=5.0)
    w.step(rows(t__a="working", t__b="working"), [], 300.0)
    out = w.step(rows(t__a="exited", t__b="needs-input"),
                 [{"action": "down", "target": None, "ts": 300.5}], 301.0)
    assert [(e.kind, e.target) for e in out] == [("needs_input", "t/b")]
    assert w.step(rows(t__a="exited", t__b="needs-input"), [], 320.0) == []


def test_rate_limit_by_key_and_in_all() -> None:
    limit = RateLimit(repeat_after=60, per_minute=3)
    key = ("needs_input", "t/a")
    assert [limit.allow(key, t) for t in (0, 10, 20, 59)] == [0, None, None, None]
    assert limit.allow(key, 61) == 3  # three were held back since the last one went out
    assert limit.allow(("stalled", "t/a"), 62) == 0
    assert limit.allow(("stalled", "t/b"), 63) == 0
    assert limit.allow(("stalled", "t/c"), 64) is None  # three in the last minute already
    assert limit.allow(("stalled", "t/c"), 121) == 1  # 61 is more than a minute ago


def test_audit_tail_reads_only_new_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps({"action": "old"}) + "\n")
    tail = AuditTail(path)
    assert tail.read() == []
    with open(path, "a") as f:
        f.write(json.dumps({"action": "new"}) + "\n" + '{"action": "hal')
    assert tail.read() == [{"action": "new"}]
    with open(path, "a") as f:
        f.write('f"}\n')
    assert tail.read() == [{"action": "half"}]
    path.write_text("")  # replaced
    path.write_text(json.dumps({"action": "fresh"}) + "\n")
    assert tail.read() == [{"action": "fresh"}]


def test_desktop_commands_and_event_environment() -> None:
    which = {"notify-send": "/usr/bin/notify-send", "osascript": "/usr/bin/osascript"}.get
    argv = desktop_argv("T", "M", urgent=True, which=which, platform="linux",
                        environ={"DISPLAY": ":0"})
    assert argv == ["/usr/bin/notify-send", "--app-name=squad", "--urgency=critical", "T", "M"]
    assert desktop_argv("T", "M", which=which, platform="linux", environ={}) is None
    assert desktop_argv("T", "M", which=lambda _: None, platform="linux",
                        environ={"DISPLAY": ":0"}) is None
    mac = desktop_argv('say "hi"', "M", which=which, platform="darwin", environ={})
    assert mac is not None and mac[-2:] == ['say "hi"', "M"]  # data, never AppleScript code
    env = event_env({"kind": "stalled", "exit_code": 3, "ok": True, "x-y": "a\0b",
                     "none": None, "list": [1]})
    assert env == {"SQUAD_EVENT_KIND": "stalled", "SQUAD_EVENT_EXIT_CODE": "3",
                   "SQUAD_EVENT_OK": "true", "SQUAD_EVENT_X_Y": "ab"}


# -- delivering, for real ---------------------------------------------------------------------


class Receiver:
    """A real HTTP server on 127.0.0.1 that keeps every JSON body POSTed to it."""

    def __init__(self, status: int = 200) -> None:
        self.bodies: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length", 0))
                receiver.bodies.append({"json": json.loads(self.rfile.read(length)),
                                        "type": self.headers.get("Content-Type")})
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(autouse=True)
def notifications_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SQUAD_NOTIFY", raising=False)


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def notifier(config: NotifyConfig, tmp_path: Path, **kw) -> Notifier:
    return Notifier(config, "sq", audit_path=tmp_path / "audit.jsonl",
                    which=kw.pop("which", lambda _: None), **kw)


def test_webhook_gets_the_event_as_json(receiver: Receiver, tmp_path: Path) -> None:
    n = notifier(NotifyConfig(webhook=receiver.url), tmp_path)
    assert n.notice("needs_input", "t/dev", role="Dev", task="#3 Fix login",
                    excerpt="Proceed? [y/n]")
    wait_for(lambda: receiver.bodies, what="the webhook POST")
    body = receiver.bodies[0]
    assert body["type"] == "application/json"
    data = body["json"]
    assert (data["squad"], data["kind"], data["target"]) == ("sq", "needs_input", "t/dev")
    assert data["title"] == "squad sq: t/dev needs input"
    assert data["message"] == "task #3 Fix login · Proceed? [y/n]"
    assert data["text"] == f"{data['title']}: {data['message']}"
    assert data["role"] == "Dev" and data["ts"] > 0 and data["time"]
    assert n.wait(10) and n.stats["delivered"] == 1 and n.stats["failed"] == 0


def test_per_kind_webhook_replaces_the_catch_all(tmp_path: Path) -> None:
    general, special = Receiver(), Receiver()
    try:
        config = parse_notify({"webhook": general.url, "task_failed": {"webhook": special.url}})
        n = notifier(config, tmp_path)
        n.notice("task_failed", "t/a", task=1, title="x")
        n.notice("task_done", "t/a", task=2, title="y")
        assert n.wait(10)
        assert [b["json"]["kind"] for b in general.bodies] == ["task_done"]
        assert [b["json"]["kind"] for b in special.bodies] == ["task_failed"]
    finally:
        general.close()
        special.close()


def recorder(tmp_path: Path, name: str = "record.py") -> tuple[Path, Path]:
    """A small program that writes its arguments, SQUAD_EVENT_* variables and stdin to a file."""
    out = tmp_path / f"{name}.out"
    script = tmp_path / name
    script.write_text(f"""import json, os, sys
data = {{"argv": sys.argv[1:], "stdin": json.loads(sys.stdin.read()),
        "env": {{k: v for k, v in os.environ.items() if k.startswith("SQUAD_EVENT_")}}}}
with open({str(out)!r}, "a") as f:
    f.write(json.dumps(data) + "\\n")
""")
    return script, out


def test_command_per_kind_gets_environment_and_json_never_a_shell(tmp_path: Path) -> None:
    script, out = recorder(tmp_path)
    trap = tmp_path / "pwned"
    config = parse_notify({"stalled": [sys.executable, str(script), f"$(touch {trap})", "*"]})
    n = notifier(config, tmp_path)
    assert n.notice("stalled", "t/dev", task="#9 Refactor", status="stalled")
    assert not n.notice("bogus", "t/dev")
    assert n.wait(20)
    got = json.loads(out.read_text())
    assert got["argv"] == [f"$(touch {trap})", "*"] and not trap.exists()
    assert got["stdin"]["kind"] == "stalled" and got["stdin"]["task"] == "#9 Refactor"
    env = got["env"]
    assert env["SQUAD_EVENT_KIND"] == "stalled" and env["SQUAD_EVENT_TARGET"] == "t/dev"
    assert env["SQUAD_EVENT_SQUAD"] == "sq" and env["SQUAD_EVENT_TASK"] == "#9 Refactor"
    assert env["SQUAD_EVENT_TITLE"] == "squad sq: t/dev stalled"
    # Only the kind it was configured for runs it.
    n.notice("needs_input", "t/dev")
    assert n.wait(20) and len(out.read_text().splitlines()) == 1


def test_desktop_notification_runs_the_platform_tool(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    script, out = recorder(tmp_path, "notify_send.py")
    fake = tmp_path / "notify-send"
    fake.write_text(f"#!{sys.executable}\nimport json, sys\nopen({str(out)!r}, 'a').write("
                    "json.dumps(sys.argv[1:]) + '\\n')\n")
    fake.chmod(0o755)
    monkeypatch.setenv("DISPLAY", ":99")
    which = {"notify-send": str(fake)}.get
    n = notifier(parse_notify({"task_done": {"desktop": False}}), tmp_path, which=which)
    n.notice("exited", "t/dev", exit_code=1, previous="working", status="exited")
    n.notice("task_done", "t/dev", task=1, title="quiet")
    assert n.wait(20)
    calls = [json.loads(x) for x in out.read_text().splitlines()]
    assert calls == [["--app-name=squad", "--urgency=normal",
                      "squad sq: t/dev exited (exit status 1)",
                      "was working; now exited"]]


def test_rate_limits_shown_by_counts(receiver: Receiver, tmp_path: Path) -> None:
    clock = Clock()
    config = parse_notify({"webhook": receiver.url, "repeat_after": 60, "max_per_minute": 4})
    n = notifier(config, tmp_path, clock=clock)
    sent = [n.notice("needs_input", "t/a") for _ in range(5)]
    assert sent == [True, False, False, False, False]
    for agent in ("t/b", "t/c", "t/d", "t/e"):  # the fifth in a minute is held back
        n.notice("needs_input", agent)
    clock.t += 61
    assert n.notice("needs_input", "t/a")
    assert n.wait(10)
    bodies = [b["json"] for b in receiver.bodies]
    assert len(bodies) == 5 and n.stats["held"] == 5
    assert sorted(b["target"] for b in bodies) == ["t/a", "t/a", "t/b", "t/c", "t/d"]
    last = [b for b in bodies if b["target"] == "t/a"][-1]
    assert last["suppressed"] == 4


def test_failing_webhook_never_raises_and_never_blocks(tmp_path: Path) -> None:
    closed = socketlib.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    n = notifier(NotifyConfig(webhook=f"http://127.0.0.1:{port}/x"), tmp_path)
    assert n.notice("exited", "t/a", exit_code=1)
    assert n.wait(20)
    assert n.stats["failed"] == 1 and "cannot reach it" in n.failures[0]
    failed = [e for e in events.read("sq") if e["action"] == "notify.failed"]
    assert failed[0]["target"] == "t/a" and failed[0]["kind"] == "exited"

    # A receiver that accepts the connection and never answers: notice() returns while
    # the POST is still waiting, so a supervisor tick never waits for it.
    silent = socketlib.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        config = NotifyConfig(webhook=f"http://127.0.0.1:{silent.getsockname()[1]}/x",
                              timeout=60)
        n = notifier(config, tmp_path)
        assert n.notice("stalled", "t/a")
        assert n.in_flight == 1 and not n.wait(0.05)
    finally:
        silent.close()  # resets the pending connection: the POST fails
    assert n.wait(60) and n.stats["failed"] == 1


def test_missing_or_failing_command_is_logged(tmp_path: Path) -> None:
    config = parse_notify({"needs_input": [str(tmp_path / "no-such-program")],
                           "stalled": [sys.executable, "-c", "import sys; "
                                       "sys.exit('cannot page anyone')"]})
    n = notifier(config, tmp_path)
    n.notice("needs_input", "t/a")
    n.notice("stalled", "t/a")
    assert n.wait(20) and n.stats["failed"] == 2
    assert any("command not found" in f for f in n.failures)
    assert any("status 1: cannot page anyone" in f for f in n.failures)


def test_squad_notify_0_turns_everything_off(receiver: Receiver, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SQUAD_NOTIFY", "0")
    n = notifier(NotifyConfig(webhook=receiver.url), tmp_path)
    assert not n.notice("needs_input", "t/a")
    assert n.wait(5) and receiver.bodies == []


def test_tick_from_rows_and_the_audit_trail(receiver: Receiver, tmp_path: Path) -> None:
    """What the supervisor does each tick: rows in, the audit trail tailed, events out."""
    script, out = recorder(tmp_path)
    config = parse_notify({"webhook": receiver.url,
                           "task_done": [sys.executable, str(script)]})
    events.record("sq", "task.done", target="t/a", task=7, title="Fix login")  # before: old
    n = Notifier(config, "sq", which=lambda _: None)
    assert n.tick(rows(t__a="working", t__b="idle"), now=100.0) == []
    events.record("sq", "task.done", target="t/a", task=8, title="Add tests",
                  reason="3 files changed")
    sent = n.tick(rows(t__a="idle", t__b="needs-input"), now=101.0,
                  screens={"t/b": "Allow this command? (y/n)"})
    assert [(e.kind, e.target) for e in sent] == [("needs_input", "t/b"), ("task_done", "t/a")]
    assert n.wait(20)
    assert json.loads(out.read_text())["stdin"]["task"] == 8
    kinds = sorted(b["json"]["kind"] for b in receiver.bodies)
    assert kinds == ["needs_input", "task_done"]
    needs = next(b["json"] for b in receiver.bodies if b["json"]["kind"] == "needs_input")
    assert needs["excerpt"] == "Allow this command? (y/n)"
    n.close()
    assert not n.notice("stalled", "t/a")  # closed: nothing more goes out


def test_every_kind_has_a_title() -> None:
    for kind in KINDS:
        assert Event(kind, "t/a", 0.0, {"task": 1}).title("sq").startswith("squad sq: ")


def test_a_real_squad_ticked_by_a_real_supervisor(socket: str, tmp_path: Path,
                                                  receiver: Receiver) -> None:
    """Real agents in tmux: a question, a stall and a crash are notified; squad's own stop
    of another agent is not."""
    from squad import control
    from squad.live import Live
    from squad.supervisor import Supervisor
    from squad.tmux import Tmux
    from tests.conftest import run_squad, write_layout

    layout = write_layout(tmp_path / "n.toml", """
name = "nt"
[[teams]]
name = "t"
[[teams.agents]]
name = "asker"
command = "echo 'Proceed with the edit? [y/n]'; read answer; exit 3"
input_pattern = "Proceed with the edit\\\\? \\\\[y/n\\\\]"
[[teams.agents]]
name = "frozen"
command = "echo working hard; exec sleep 600"
busy_pattern = "working hard"
stall_after = 1.5
[[teams.agents]]
name = "victim"
command = "exec sleep 600"
""")
    assert run_squad("-L", socket, "up", str(layout)).returncode == 0
    live = Live.open(Tmux(socket))
    sup = Supervisor(live)
    sup.start()
    n = Notifier(NotifyConfig(webhook=receiver.url, desktop=False), "nt", settle=2.0)

    def tick() -> None:
        snap = sup.tick()
        n.tick(snap.agents, snap.at, screens=snap.screens)

    def got(kind: str, target: str) -> list[dict]:
        tick()
        return [b["json"] for b in receiver.bodies
                if b["json"]["kind"] == kind and b["json"]["target"] == target]

    try:
        tick()
        wait_for(lambda: got("needs_input", "t/asker"), 20, "the question's notification")
        wait_for(lambda: got("stalled", "t/frozen"), 20, "the stall's notification")
        assert "Proceed with the edit? [y/n]" in got("needs_input", "t/asker")[0]["excerpt"]
        control.stop(live, live.resolve("t/victim"), grace=2)
        assert run_squad("-L", socket, "send", "t/asker", "y").returncode == 0
        crash = wait_for(lambda: got("exited", "t/asker"), 30, "the crash's notification")
        assert crash[0]["exit_code"] == 3
        assert got("exited", "t/victim") == []  # stopped by squad: no news
    finally:
        n.close()
        sup.close()
        run_squad("-L", socket, "down")
