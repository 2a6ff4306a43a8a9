"""Task-queue commands of the CLI: dispatch, tasks, task show/cancel/retry/done/fail, run.

Agents use these from their own windows: the window's environment names the squad and the
agent, so ``squad task done`` marks the agent's current task done, and a PM agent can hand
work on with ``squad dispatch --to backend/dev "..."``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from squad.errors import SquadError, TargetError


def add_task_commands(cmd: Callable[[str, str], argparse.ArgumentParser]) -> None:
    c = cmd("dispatch", "queue a task for the least-loaded idle agent that fits")
    c.add_argument("prompt", help="what to do (`-` reads it from standard input)")
    c.add_argument("--title", help="a short title (default: the prompt's first line)")
    c.add_argument("--priority", "-p", default="medium",
                   help="critical, high, medium (default) or low")
    c.add_argument("--tag", "-t", action="append", default=[],
                   help="only agents carrying this tag (repeatable)")
    c.add_argument("--team", help="only agents of this team")
    c.add_argument("--to", metavar="TEAM/AGENT", help="only this agent")
    c.add_argument("--due", help="a date (2026-12-01, 2026-12-01T15:00) or a delay (30m, 2h, 1d)")
    c.add_argument("--after", action="append", default=[], metavar="ID",
                   help="wait until task ID is done (repeatable)")
    c.add_argument("--timeout", help="fail the attempt after this long (seconds, or 30m, 2h)")
    c.add_argument("--attempts", help="failed attempts allowed before the task fails (default 3)")
    c.add_argument("--review-by", metavar="TEAM/AGENT", help="have this agent review the result")
    c.add_argument("--every", metavar="DURATION",
                   help="repeat: a new task every 15m, 2h, 1d (never while one is still open)")
    c.add_argument("--at", metavar="HH:MM",
                   help="repeat daily at this local time (with --every: from this time on)")
    c.add_argument("--json", action="store_true")

    c = cmd("repeats", "list recurring tasks (squad dispatch --every / --at)")
    c.add_argument("--stop", metavar="ID", help="stop this series (its open task goes on)")
    c.add_argument("--json", action="store_true")

    c = cmd("tasks", "list the task queue")
    c.add_argument("--status", "-s", action="append", default=[],
                   help="only tasks with this status (repeatable)")
    c.add_argument("--json", action="store_true")

    c = cmd("task", "inspect and steer one task")
    sub = c.add_subparsers(dest="task_command", metavar="ACTION", parser_class=type(c))
    sub.required = True
    for name, what in (("show", "everything about a task, and why it waits"),
                       ("cancel", "cancel a task"),
                       ("retry", "queue a failed or cancelled task again"),
                       ("done", "mark a task done (default: this agent's current task)"),
                       ("fail", "report a failed attempt (default: this agent's current task)")):
        t = sub.add_parser(name, help=what, description=what)
        t.add_argument("id", nargs="?" if name in ("done", "fail") else None,
                       help="task id (#12 or 12)")
        if name == "done":
            t.add_argument("--result", help="what was done (default: the agent's output)")
        if name in ("cancel", "fail"):
            t.add_argument("--reason", help="why")
        t.add_argument("--json", action="store_true")

    t = sub.add_parser("after", help="make a task wait for other tasks",
                       description="make task ID wait until every DEP is done")
    t.add_argument("id", help="the task that waits")
    t.add_argument("deps", nargs="+", metavar="DEP", help="tasks it waits for")
    t.add_argument("--json", action="store_true")

    c = cmd("run", "run the supervisor: dispatch tasks, watch agents (--headless: no UI)")
    c.add_argument("--headless", action="store_true", help="without the UI (required for now)")
    c.add_argument("--interval", type=float, default=1.0, help="seconds between ticks")
    c.add_argument("--no-control", action="store_true",
                   help="fork a tmux for every command instead of one persistent control-mode "
                        "connection (for tmux versions whose control mode misbehaves)")
    c.add_argument("--for", dest="duration", type=float, help=argparse.SUPPRESS)


# -- helpers ---------------------------------------------------------------------------------


def _by() -> str:
    return "agent" if os.environ.get("SQUAD_AGENT") else "cli"


def _squad(args: argparse.Namespace):
    """The squad's saved layout (a task can be queued while agents are down)."""
    from squad.live import load_saved_layout, pick_squad, socket_name
    from squad.tmux import Tmux

    tmux = Tmux(socket_name(args.socket))
    squad = load_saved_layout(pick_squad(tmux, args.squad_name))
    if args.command == "dispatch" or (args.command == "task" and args.task_command != "show") \
            or (args.command == "repeats" and args.stop is not None):
        from squad.state import check_writable, squad_dir

        check_writable(squad_dir(squad.name))
    return squad, tmux


def _store(name: str):
    from squad.delivery import event_sink
    from squad.store import TaskStore

    return TaskStore.for_squad(name, on_event=event_sink(name, _by()))


def _task_id(text: str) -> int:
    t = str(text).strip().lstrip("#")
    if not t.isdigit():
        raise SquadError(f"{text!r} is not a task id (a number like 12 or #12)")
    return int(t)


def _check_agent(squad, target: str | None, what: str) -> str | None:
    if target is None:
        return None
    if squad.agent(target) is None:
        known = ", ".join(a.target for a in squad.agents())
        raise TargetError(f"{what} {target!r}: no such agent in squad {squad.name!r} "
                          f"(agents: {known})")
    return target


def _age(t: float | None, now: float) -> str:
    if not t:
        return "-"
    s = max(0, int(now - t))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit}"
    return f"{s}s"


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def _row(task) -> dict[str, object]:
    return task.to_dict()


# -- commands -------------------------------------------------------------------------------


def cmd_dispatch(args: argparse.Namespace) -> int:
    squad, _ = _squad(args)
    prompt = args.prompt
    if prompt == "-":
        prompt = sys.stdin.read() if sys.stdin and not sys.stdin.isatty() else ""
    if not prompt.strip():
        raise SquadError("the prompt is empty: say what the task is")
    _check_agent(squad, args.to, "--to")
    _check_agent(squad, args.review_by, "--review-by")
    if args.team and squad.team(args.team) is None:
        raise TargetError(f"--team {args.team!r}: no such team in squad {squad.name!r} "
                          f"(teams: {', '.join(t.name for t in squad.teams)})")
    from squad.task_model import parse_attempts, parse_due, parse_duration

    if args.every is not None or args.at is not None:
        return _dispatch_repeat(args, squad, prompt)
    due = parse_due(args.due) if args.due else None
    timeout = parse_duration(args.timeout) if args.timeout else None
    attempts = parse_attempts(args.attempts) if args.attempts is not None else 3
    after = tuple(_task_id(a) for a in args.after)
    with _store(squad.name) as store:
        task = store.add(prompt, title=args.title, priority=args.priority, due=due,
                         tags=tuple(args.tag), team=args.team, target=args.to,
                         depends_on=after, timeout=timeout, max_attempts=attempts,
                         review_by=args.review_by)
    fits = [a for a in squad.agents() if a.dispatch and set(task.tags) <= set(a.tags)
            and (task.team is None or a.team == task.team)
            and (task.target is None or a.target == task.target)]
    if args.json:
        _print_json(_row(task))
    else:
        print(f"queued task #{task.id} ({task.priority}): {task.title}")
    if not fits:
        print(f"squad: note: no agent of squad {squad.name!r} fits task #{task.id} "
              "(tags/team/target); it waits until one does", file=sys.stderr)
    return 0


def _dispatch_repeat(args: argparse.Namespace, squad, prompt: str) -> int:
    if args.after:
        raise SquadError("a repeating task cannot wait for other tasks: drop --after")
    if args.due:
        raise SquadError("a repeating task has no single due date: drop --due (use --timeout)")
    from squad.task_model import parse_attempts

    template = dict(title=args.title, priority=args.priority, tags=tuple(args.tag),
                    team=args.team, target=args.to, timeout=args.timeout,
                    max_attempts=parse_attempts(args.attempts) if args.attempts else 3,
                    review_by=args.review_by)
    with _store(squad.name) as store:
        rep, task = store.add_repeat(prompt, every=args.every, at=args.at, **template)
    if args.json:
        _print_json({"repeat": rep.to_dict(), "task": _row(task) if task else None})
    else:
        first = f"task #{task.id} queued now" if task else (
            "the first at " + time.strftime("%Y-%m-%d %H:%M", time.localtime(rep.next_at)))
        print(f"repeat #{rep.id} ({rep.to_dict()['schedule']}): {rep.title}; {first}")
    return 0


def cmd_repeats(args: argparse.Namespace) -> int:
    squad, _ = _squad(args)
    with _store(squad.name) as store:
        if args.stop is not None:
            rep = store.stop_repeat(_task_id(args.stop))
            if args.json:
                _print_json(rep.to_dict())
            else:
                print(f"repeat #{rep.id} stopped: {rep.title}")
            return 0
        reps = [r.to_dict() for r in store.repeats()]
    if args.json:
        _print_json(reps)
        return 0
    if not reps:
        print("no recurring tasks (squad dispatch --every 15m \"...\" makes one)")
        return 0
    for r in reps:
        state = "" if r["active"] else " (stopped)"
        nxt = time.strftime("%Y-%m-%d %H:%M", time.localtime(r["next_at"]))
        print(f"#{r['id']}  {r['schedule']}{state}  next {nxt}  last task "
              f"{'#' + str(r['last_task']) if r['last_task'] else '-'}  skipped {r['skipped']}"
              f"  {r['title']}")
    return 0


def cmd_tasks(args: argparse.Namespace) -> int:
    squad, _ = _squad(args)
    from squad.task_model import TaskStatus

    statuses = [TaskStatus.parse(s) for s in args.status] or None
    with _store(squad.name) as store:
        tasks = store.list(statuses)
    if args.json:
        _print_json([_row(t) for t in tasks])
        return 0
    from rich.text import Text

    from squad.style import print_table

    now = time.time()
    headers = ["ID", "STATUS", "PRIORITY", "TITLE", "AGENT", "AGE", "TRIES", "TAGS"]
    rows = [[f"#{t.id}", str(t.status), str(t.priority), Text(t.title),
             t.holder or t.agent or "-", _age(t.created, now),
             f"{t.attempts}/{t.max_attempts}" if t.attempts else "-", ",".join(t.tags) or "-"]
            for t in tasks]
    print_table(f"tasks of squad {squad.name}", headers, rows, [0, 0, 2, 1, 1, 3, 4, 3])
    return 0


def why_waiting(squad_name: str, squad, store, task) -> list[str]:
    """Why a queued task has not gone out: dependencies, backoff, or no agent fitting now."""
    from squad import dispatch
    from squad.delivery import candidates
    from squad.snapshot import read_published

    now = time.time()
    reasons = []
    blocked = store.blocked_reason(task.id, now)
    if blocked:
        reasons.append(blocked)
    snap = read_published(squad_name)
    if snap is None:
        reasons.append("no supervisor is running: start `squad` or `squad run --headless`")
        return reasons
    rows = {r.target: r for r in snap.agents}
    winner, why = dispatch.choose(task, candidates(squad, rows, store, now), squad.dispatch_policy)
    if winner is None:
        reasons += why or ["no agent fits"]
    elif not blocked:
        reasons.append(f"{winner.target} can take it at the next tick")
    return reasons


def cmd_task(args: argparse.Namespace) -> int:
    squad, _ = _squad(args)
    action = args.task_command
    with _store(squad.name) as store:
        if args.id is None:
            me = os.environ.get("SQUAD_TEAM"), os.environ.get("SQUAD_AGENT")
            if not all(me):
                raise SquadError(f"squad task {action}: give a task id (outside an agent "
                                 "window there is no current task)")
            current = store.current_task(f"{me[0]}/{me[1]}")
            if current is None:
                raise SquadError(f"{me[0]}/{me[1]} holds no task")
            task_id = current.id
        else:
            task_id = _task_id(args.id)
        task = store.get(task_id)
        if task is None:
            raise SquadError(f"no task #{task_id} in squad {squad.name!r}")
        now = time.time()
        if action == "show":
            data = _row(task)
            if task.status.value == "queued":
                data["waiting_because"] = why_waiting(squad.name, squad, store, task)
            if args.json:
                _print_json(data)
            else:
                for key, value in data.items():
                    if value in (None, [], "", 0) and key not in ("attempts",):
                        continue
                    if key.endswith("_at") or key in ("created", "updated", "due", "not_before"):
                        value = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(value)))
                    if isinstance(value, list):
                        value = "\n    ".join(map(str, value)) if key in (
                            "waiting_because", "feedback") else ", ".join(map(str, value))
                    print(f"{key:>18}: {value}")
            return 0
        holder = task.holder
        if action == "after":
            task = store.depend(task_id, [_task_id(d) for d in args.deps], now)
        elif action == "cancel":
            task = store.cancel(task_id, args.reason or "cancelled", now)
        elif action == "retry":
            task = store.retry(task_id, now)
        elif action == "done":
            task = store.complete(task_id, args.result, now)
            if holder:
                store.record_outcome(holder, True, now)
        elif action == "fail":
            task = store.fail_attempt(task_id, args.reason or "reported failed", now)
            if holder:
                store.record_outcome(holder, False, now)
    if args.json:
        _print_json(_row(task))
    else:
        print(f"task #{task.id} is now {task.status}" + (f" ({task.error})" if task.error
                                                          and action != "done" else ""))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    if not args.headless:
        raise SquadError("squad run: pass --headless (the UI runs its own supervisor: `squad`)")
    if args.interval <= 0:
        raise SquadError("--interval must be a positive number of seconds")
    from squad.live import Live, socket_name
    from squad.state import check_writable, squad_dir
    from squad.supervisor import Supervisor
    from squad.tmux import Tmux

    live = Live.open(Tmux(socket_name(args.socket)), args.squad_name)
    check_writable(squad_dir(live.squad.name))
    sup = Supervisor(live, by="supervisor", interval=args.interval,
                     control=not args.no_control)
    try:
        sup.start()
        print(f"supervising squad {live.squad.name} on socket {live.tmux.socket} "
              f"(pid {os.getpid()}); Ctrl-C stops", flush=True)
        sup.run_forever(stop_after=args.duration,
                        report=lambda line: print(line, file=sys.stderr, flush=True))
    finally:
        sup.close()
    return 0


HANDLERS = {"dispatch": cmd_dispatch, "tasks": cmd_tasks, "task": cmd_task, "run": cmd_run,
            "repeats": cmd_repeats}
