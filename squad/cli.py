"""The ``squad`` command line: every action of the UI as a command, with ``--json`` output.

Imports are lazy so that commands other than the UI never load Textual and answer fast.
User errors (:class:`squad.errors.SquadError`) print one line and exit 2; anything else is a
bug: its traceback goes to ``squad.log`` in the state directory, and the user gets one line
saying where.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

COMMANDS = (
    "ui", "up", "down", "ls", "pause", "resume", "stop", "restart", "send", "capture",
    "attach", "events", "dispatch", "tasks", "task", "run", "diff", "merge", "pr", "repeats",
    "hook", "hibernate", "wake", "add", "remove", "freeze", "import", "pin", "unpin", "policy",
)


class UsageError(Exception):
    """Raised instead of argparse's exit so that usage errors also exit 2 with one line."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message} (see `{self.prog} --help`)")


def bundled_layouts() -> Path:
    here = Path(__file__).resolve().parent
    packaged = here / "layouts"
    return packaged if packaged.is_dir() else here.parent / "layouts"


def demo_layout() -> Path:
    return bundled_layouts() / "demo.toml"


def _json(data: object) -> None:
    print(json.dumps(data, indent=2, default=str))


def _console():
    from rich.console import Console

    # Piped output is not cut to 80 columns: scripts and logs get whole rows.
    return Console(highlight=False, soft_wrap=False,
                   width=None if sys.stdout.isatty() else 200)


# -- parser ---------------------------------------------------------------------------------


class _Unused:
    """Stands in for the parser of a command this run does not need: it takes every
    add_argument (and nested add_subparsers / add_parser) and does nothing, so a command
    pays only for its own arguments (building all of them costs ~30 ms on every run)."""

    def __getattr__(self, name: str) -> object:
        return lambda *args, **kwargs: self


def _chosen(argv: list[str]) -> str | None:
    """The command a (normalised) command line runs, if it is one of ours."""
    i = 0
    while i < len(argv):
        if argv[i] in GLOBAL_VALUE_OPTIONS:
            i += 2
            continue
        if argv[i] in COMMANDS:
            return argv[i]
        i += 1
    return None


def build_parser(only: str | None = None) -> Parser:
    """The command line parser; with ``only``, just that command's arguments are built
    (every command is still known by name)."""
    p = Parser(prog="squad", description="Run and supervise teams of AI coding agents in tmux.")
    p.add_argument("-L", "--socket", help="tmux socket name (default: squad, env SQUAD_SOCKET)")
    p.add_argument("--squad", dest="squad_name", metavar="NAME",
                   help="which squad to act on when several run (env SQUAD_NAME)")
    p.add_argument("-V", "--version", action="store_true", help="print the version and exit")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    def cmd(name: str, help: str) -> Parser:
        parser = sub.add_parser(name, help=help, description=help)
        return parser if only is None or name == only else _Unused()  # type: ignore[return-value]

    ui = cmd("ui", "open the UI (bringing LAYOUT up first if it is not running); the default")
    ui.add_argument("layout", nargs="?", help="layout file (default: what runs, else the demo)")

    c = cmd("up", "bring a layout up; idempotent (creates what is missing, keeps what runs)")
    c.add_argument("layout", nargs="?", help="layout file (default: the bundled demo)")
    c.add_argument("--json", action="store_true")

    c = cmd("down", "stop agents (whole process trees) and remove their sessions")
    c.add_argument("team", nargs="?", help="only this team")
    c.add_argument("--prune", action="store_true", help="also remove worktrees that are clean")
    c.add_argument("--force", action="store_true",
                   help="with --prune: remove worktrees even with uncommitted work")
    c.add_argument("--grace", type=float, help="seconds between SIGTERM and SIGKILL")
    c.add_argument("--json", action="store_true")

    c = cmd("ls", "teams and agents with status, pid, CPU, memory, branch")
    c.add_argument("--json", action="store_true")

    c = cmd("policy", "resource policies: limits, pressure now, what the governor did")
    c.add_argument("--json", action="store_true")

    for name, what in (("pause", "freeze (SIGSTOP) an agent's whole process tree"),
                       ("resume", "continue (SIGCONT) a paused agent's process tree"),
                       ("stop", "end an agent's process tree: SIGTERM, grace, SIGKILL"),
                       ("restart", "stop an agent, then start it again as the layout says"),
                       ("hibernate", "stop an agent to free its memory, keeping its window, "
                                     "task and conversation"),
                       ("wake", "start a hibernated agent again in its conversation"),
                       ("pin", "never pause or hibernate this agent under pressure or "
                               "max_active"),
                       ("unpin", "let pressure policies act on this agent again")):
        c = cmd(name, what)
        c.add_argument("target", nargs="?", help="TEAM/AGENT or TEAM")
        c.add_argument("--all", action="store_true", help="every agent of the squad")
        c.add_argument("--reason", help="why (recorded in the audit trail)")
        if name in ("stop", "restart", "hibernate"):
            c.add_argument("--grace", type=float, help="seconds between SIGTERM and SIGKILL")
        if name == "restart":
            c.add_argument("--resume", action="store_true",
                           help="start it again in the conversation it had (Claude Code, "
                                "Codex, Gemini CLI; Aider's chat history)")
        c.add_argument("--json", action="store_true")

    c = cmd("add", "add an agent (and its team) to the running squad and start it")
    c.add_argument("target", help="TEAM/AGENT (a new team is made when needed)")
    c.add_argument("--command", "-c", required=True, dest="agent_command",
                   help="the program to run (as in a layout)")
    c.add_argument("--role", help="its window's name (default: from its name)")
    c.add_argument("--worktree", action="store_true", help="its own git worktree and branch")
    c.add_argument("--tag", "-t", action="append", default=[], help="what it is good at")
    c.add_argument("--cwd", help="start directory, relative to its worktree or the repo")
    c.add_argument("--capacity", type=int, help="tasks it may hold at once (default 1)")
    c.add_argument("--no-dispatch", action="store_true", help="it never receives tasks")
    c.add_argument("--env", "-e", action="append", default=[], metavar="NAME=VALUE",
                   help="environment for its window (repeatable)")
    c.add_argument("--json", action="store_true")

    c = cmd("remove", "stop an agent and take it out of the running squad")
    c.add_argument("target", help="TEAM/AGENT")
    c.add_argument("--prune", action="store_true", help="also remove its worktree when clean")
    c.add_argument("--force", action="store_true",
                   help="with --prune: remove its worktree even with uncommitted work")
    c.add_argument("--grace", type=float, help="seconds between SIGTERM and SIGKILL")
    c.add_argument("--json", action="store_true")

    c = cmd("send", "deliver text to an agent exactly as written, then Enter; or keys")
    c.add_argument("target", help="TEAM/AGENT")
    c.add_argument("text", nargs="?", help="the text (default: read standard input)")
    c.add_argument("--file", "-f", help="send this file's contents")
    c.add_argument("--no-enter", action="store_true", help="do not press Enter after the text")
    c.add_argument("--key", "-k", action="append", default=[], metavar="KEY",
                   help="press this key instead of sending text (repeatable, in order): tmux "
                        "key names such as Escape, Enter, C-c, Up, Tab, F1")
    c.add_argument("--reason")
    c.add_argument("--json", action="store_true")

    c = cmd("capture", "print an agent's screen and scrollback")
    c.add_argument("target", help="TEAM/AGENT")
    c.add_argument("--lines", "-n", type=int, default=2000, help="scrollback lines (default 2000)")
    c.add_argument("--ansi", action="store_true", help="keep colours and attributes")
    c.add_argument("--json", action="store_true")

    c = cmd("attach", "attach this terminal to an agent's window (detach: C-b d)")
    c.add_argument("target", help="TEAM/AGENT")

    c = cmd("events", "the audit trail of every action and status change")
    c.add_argument("--follow", "-f", action="store_true", help="keep printing new events")
    c.add_argument("--agent", help="only events of this agent (TEAM/AGENT) or team")
    c.add_argument("--since", help="an age (15m, 2h, 1d) or an ISO time")
    c.add_argument("--json", action="store_true", help="one JSON object per line")

    from squad.cli_queue import add_task_commands

    add_task_commands(cmd)
    from squad.cli_review import add_review_commands

    add_review_commands(cmd)
    from squad.cli_layout import add_layout_commands

    add_layout_commands(cmd)
    return p


GLOBAL_VALUE_OPTIONS = frozenset({"-L", "--socket", "--squad"})


def _normalise(argv: list[str]) -> list[str]:
    """``squad [LAYOUT]`` means ``squad ui [LAYOUT]``: insert ``ui`` where no command is given."""
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in GLOBAL_VALUE_OPTIONS:
            i += 2
            continue
        if a.startswith("-"):
            if a in ("-h", "--help", "-V", "--version"):
                return argv
            i += 1
            continue
        if a in COMMANDS:
            return argv
        return argv[:i] + ["ui"] + argv[i:]
    return argv + ["ui"]


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _takes_value(parser: argparse.ArgumentParser) -> set[str]:
    return {opt for action in parser._actions for opt in action.option_strings
            if action.nargs != 0}


def arrange(argv: list[str], parser: argparse.ArgumentParser) -> list[str]:
    """Options may come anywhere, as users type them: ``squad ls -L x``, ``squad send T
    --no-enter "text"``. argparse matches positionals greedily (an optional positional is
    taken as absent when an option follows it), so the command's options are moved before
    its positionals, and global options found after the command move before it."""
    commands = _subparsers(parser)
    head: list[str] = []
    i = 0
    while i < len(argv) and argv[i] not in commands:
        head.append(argv[i])
        if argv[i] in GLOBAL_VALUE_OPTIONS and i + 1 < len(argv):
            head.append(argv[i + 1])
            i += 1
        i += 1
    if i >= len(argv):
        return argv
    command, rest = argv[i], argv[i + 1:]
    leaf = commands[command]
    nested = _subparsers(leaf)
    prefix = [command]
    if nested:  # `squad task done 3 --json`: arrange what follows the action word
        j = next((k for k, a in enumerate(rest) if a in nested), None)
        if j is None:
            return argv
        prefix += rest[:j + 1]
        leaf, rest = nested[rest[j]], rest[j + 1:]
    values = _takes_value(leaf)
    options: list[str] = []
    positionals: list[str] = []
    k = 0
    while k < len(rest):
        a = rest[k]
        if a == "--":
            positionals += rest[k + 1:]
            break
        name = a.split("=", 1)[0]
        if a.startswith("-") and a != "-" and name in GLOBAL_VALUE_OPTIONS:
            head += rest[k:k + 2] if "=" not in a else [a]
            k += 1 if "=" in a else 2
            continue
        if a.startswith("-") and a != "-" and not _is_number(a):
            options.append(a)
            if name in values and "=" not in a and k + 1 < len(rest):
                options.append(rest[k + 1])
                k += 1
        else:
            positionals.append(a)
        k += 1
    tail = ["--", *positionals] if any(p.startswith("-") and p != "-" for p in positionals) \
        else positionals
    return head + prefix + options + tail


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# -- commands -------------------------------------------------------------------------------


def _tmux(args: argparse.Namespace):
    from squad.live import socket_name
    from squad.tmux import Tmux

    return Tmux(socket_name(args.socket))


# Commands that change something: before acting they make sure squad can record it (the
# state directory is writable and not full), so nothing is done and then left unrecorded.
WRITING = frozenset({"up", "down", "pause", "resume", "stop", "restart", "send", "dispatch",
                     "run", "hibernate", "wake", "add", "remove", "pin", "unpin"})


def _live(args: argparse.Namespace):
    from squad.live import Live

    live = Live.open(_tmux(args), args.squad_name)
    if args.command in WRITING:
        from squad.state import check_writable, squad_dir

        check_writable(squad_dir(live.squad.name))
    return live


def _load(path: str | None):
    from squad.layout import load

    return load(path or demo_layout())


def _print_outcomes(outcomes, as_json: bool) -> int:
    if as_json:
        _json([o.to_json() for o in outcomes])
    else:
        for o in outcomes:
            warn = o.ok and o.data.get("warning")
            mark = "!" if warn else "✓" if o.ok else "✗"
            stream = sys.stdout if o.ok and not warn else sys.stderr
            print(f"{mark} {o.target}: {o.message}", file=stream)
    return 0 if all(o.ok for o in outcomes) else 2


def cmd_up(args: argparse.Namespace) -> int:
    from squad import control
    from squad.state import check_writable, squad_dir

    squad = _load(args.layout)
    check_writable(squad_dir(squad.name))
    outcomes = control.up(squad, _tmux(args))
    if not args.json:
        created = sum(o.data.get("state") in ("created", "restarted") for o in outcomes)
        kept = sum(o.data.get("state") == "kept" for o in outcomes)
        print(f"squad {squad.name} on socket {_tmux(args).socket}: "
              f"{created} started, {kept} already running")
    return _print_outcomes(outcomes, args.json)


def cmd_down(args: argparse.Namespace) -> int:
    from squad import control

    outcomes = control.down(_live(args), args.team, prune=args.prune, force=args.force,
                            grace=args.grace)
    return _print_outcomes(outcomes, args.json)


def _control(args: argparse.Namespace) -> int:
    from squad import control

    if args.target and args.all:
        raise UsageError(f"squad {args.command}: give a TARGET or --all, not both")
    live = _live(args)
    agents = live.resolve(args.target, all=args.all)
    fn = getattr(control, "pin" if args.command in ("pin", "unpin") else args.command)
    kw = {"reason": args.reason}
    if args.command in ("pin", "unpin"):
        kw["pinned"] = args.command == "pin"
    if args.command in ("stop", "restart", "hibernate"):
        kw["grace"] = args.grace
    if args.command == "restart":
        kw["resume"] = args.resume
    return _print_outcomes(fn(live, agents, **kw), args.json)


def cmd_add(args: argparse.Namespace) -> int:
    from squad import control

    env = {}
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"squad add: --env {item!r}: write NAME=VALUE")
        env[key] = value
    settings = {"command": args.agent_command, "role": args.role,
                "worktree": True if args.worktree else None, "tags": args.tag or None,
                "cwd": args.cwd, "capacity": args.capacity,
                "dispatch": False if args.no_dispatch else None, "env": env or None}
    return _print_outcomes(control.add_agent(_live(args), args.target, settings), args.json)


def cmd_remove(args: argparse.Namespace) -> int:
    from squad import control

    outcomes = control.remove_agent(_live(args), args.target, prune=args.prune,
                                    force=args.force, grace=args.grace)
    return _print_outcomes(outcomes, args.json)


def cmd_send(args: argparse.Namespace) -> int:
    from squad import control
    from squad.errors import SquadError

    if args.key:
        if args.file or args.text is not None or args.no_enter:
            raise UsageError("squad send: --key sends keys alone; give keys or text, not both")
        from squad.tmux import check_key

        for key in args.key:
            check_key(key)  # a bad key name is refused before anything is pressed
        live = _live(args)
        (agent,) = _one(live, args.target)
        outcome = control.send_keys(live, agent, args.key, reason=args.reason)
        return _print_outcomes([outcome], args.json)
    if args.file and args.text is not None:
        raise UsageError("squad send: give TEXT or --file, not both")
    if args.file:
        try:
            data = Path(args.file).read_bytes()
        except OSError as exc:
            raise SquadError(f"cannot read {args.file}: {exc.strerror}") from None
    elif args.text is not None and args.text != "-":
        data = os.fsencode(args.text)
    else:
        if sys.stdin is None or sys.stdin.isatty():
            raise UsageError("squad send: give TEXT, --file F, or pipe the text on stdin")
        data = sys.stdin.buffer.read()
    live = _live(args)
    (agent,) = _one(live, args.target)
    outcome = control.send(live, agent, data, enter=not args.no_enter, reason=args.reason)
    return _print_outcomes([outcome], args.json)


def _one(live, target: str):
    from squad.errors import TargetError

    if "/" not in target:
        raise TargetError(f"{target!r}: name one agent as TEAM/AGENT")
    return live.resolve(target)


def cmd_capture(args: argparse.Namespace) -> int:
    from squad import control

    live = _live(args)
    (agent,) = _one(live, args.target)
    text = control.capture(live, agent, lines=max(0, args.lines), ansi=args.ansi)
    if args.json:
        _json({"target": agent.target, "text": text})
    else:
        sys.stdout.write(text.rstrip("\n") + "\n")
    return 0


def cmd_attach(args: argparse.Namespace) -> int:
    from squad import control

    live = _live(args)
    (agent,) = _one(live, args.target)
    argv = control.attach_argv(live, agent)
    env = dict(os.environ)
    env.pop("TMUX", None)
    sys.stdout.flush()
    os.execvpe(argv[0], argv, env)
    return 0  # not reached


def cmd_ls(args: argparse.Namespace) -> int:
    from squad import procs

    sampler = procs.Sampler()
    sampler.sample()  # the first reading for CPU %: the command's own work is the interval
    from squad.snapshot import Observer, merge_live, one_shot, read_published

    live = _live(args)
    published = read_published(live.squad.name)
    if published is not None:
        # A supervisor runs: one quick look for process facts; its CPU and debounced status.
        snap = merge_live(published, Observer(live).tick())
    else:
        snap = one_shot(live, sampler)
    if args.json:
        keys = ("team", "agent", "role", "state", "status", "pid", "cpu", "rss", "procs",
                "branch", "worktree", "exit_code", "task", "breaker", "tags", "session_id")
        from squad.snapshot import read_published_extra

        limits = read_published_extra(live.squad.name).get("cpu_limits") or {}
        rows = []
        for a in snap.agents:
            d = a.to_json()
            agent = live.squad.agent(a.target)
            row = {k: d[k] for k in keys}
            row["cpu_limit"] = agent.cpu_limit if agent else None
            row["cpu_limit_mechanism"] = (limits.get(a.target) or {}).get("mechanism")
            row["memory_limit_mb"] = agent.memory_limit_mb if agent else None
            rows.append(row)
        _json(rows)
        return 0
    from rich.text import Text

    from squad.style import STATUS_STYLE, human_bytes, print_table

    headers = ["TEAM", "AGENT", "ROLE", "STATE", "STATUS", "PID", "CPU%", "MEM", "PROCS",
               "TASK", "BRANCH", "WORKTREE"]
    # What matters most stays when the terminal is narrow: who, how it is, its task.
    priorities = [0, 0, 3, 4, 0, 2, 1, 1, 5, 1, 3, 6]
    rows = []
    for a in snap.agents:
        state = a.state if a.state != "exited" else f"exited ({a.exit_code})"
        status = Text(a.status, style=STATUS_STYLE.get(a.status, ""))
        if a.breaker != "closed":
            status.append(f" · breaker {a.breaker}", style="red")
        rows.append([a.team, a.agent, Text(a.role), state, status, a.pid or "-",
                     f"{a.cpu:.1f}", human_bytes(a.rss) if a.rss else "-", a.procs,
                     Text(a.task or "-"), a.branch or "-", a.worktree or "-"])
    print_table(f"squad {snap.squad} · socket {snap.socket} · CPU {snap.cpu:.0f}% · "
                f"memory {snap.mem:.0f}%", headers, rows, priorities,
                right=frozenset({"PID", "CPU%", "MEM", "PROCS"}))
    return 0


def cmd_policy(args: argparse.Namespace) -> int:
    from squad.governor import read_pressure
    from squad.snapshot import read_published_extra

    live = _live(args)
    squad = live.squad
    published = read_published_extra(squad.name)
    from squad import records

    pins = {t for t, r in records.read(squad.name).items() if r.pinned}
    agents = []
    for a in squad.agents():
        limits = (published.get("cpu_limits") or {}).get(a.target) or {}
        agents.append({"target": a.target, "priority": a.priority,
                       "pinned": a.pinned or a.target in pins,
                       "memory_warn_mb": a.memory_warn_mb, "memory_limit_mb": a.memory_limit_mb,
                       "on_memory_limit": a.on_memory_limit, "cpu_limit": a.cpu_limit,
                       "cpu_mechanism": limits.get("mechanism")})
    data = {"squad": squad.name, "governor": squad.governor.to_table(),
            "pressure": read_pressure().to_json(),
            "state": published.get("governor"), "recent": published.get("actions") or [],
            "supervisor": bool(published), "agents": agents}
    if args.json:
        _json(data)
        return 0
    gov = data["governor"] or {}
    print(f"squad {squad.name}: governor " + (", ".join(f"{k}={v}" for k, v in gov.items())
                                             or "off (no [governor] table)"))
    p = data["pressure"]
    print("pressure now: " + ", ".join(f"{k} {v}" for k, v in p.items() if v is not None))
    if not data["supervisor"]:
        print("no supervisor is running: limits and pressure act only under `squad` or "
              "`squad run --headless`")
    for a in agents:
        bits = [f"priority {a['priority']}"]
        if a["pinned"]:
            bits.append("pinned")
        if a["memory_warn_mb"] or a["memory_limit_mb"]:
            bits.append(f"memory warn {a['memory_warn_mb'] or '-'} MiB, limit "
                        f"{a['memory_limit_mb'] or '-'} MiB -> {a['on_memory_limit']}")
        if a["cpu_limit"]:
            bits.append(f"cpu {a['cpu_limit']:g}% ({a['cpu_mechanism'] or 'not applied yet'})")
        print(f"  {a['target']}: " + "; ".join(bits))
    for act in data["recent"]:
        print(f"  did: {act['kind']} {act['target']} ({act['rule']}: {act['reason']})"
              + (" [dry run]" if act.get("dry_run") else ""))
    return 0


def cmd_events(args: argparse.Namespace) -> int:
    from squad import events
    from squad.live import pick_squad

    tmux = _tmux(args)
    name = pick_squad(tmux, args.squad_name)
    since = events.parse_since(args.since) if args.since else None
    skipped: list[int] = []
    stream = (events.follow(name, target=args.agent, since=since) if args.follow
              else iter(events.read(name, target=args.agent, since=since, skipped=skipped)))
    try:
        for ev in stream:
            if args.json:
                print(json.dumps(ev, ensure_ascii=False), flush=True)
            else:
                print(format_event(ev), flush=True)
    except KeyboardInterrupt:
        pass
    if skipped and skipped[0]:
        print(f"squad: skipped {skipped[0]} line(s) of {events.log_path(name)} that are not "
              "events", file=sys.stderr)
    return 0


def format_event(ev: dict) -> str:
    when = str(ev.get("time", ""))[11:19]
    system = ev.get("system") or {}
    parts = [when, f"{ev.get('by', ''):<10}", f"{ev.get('action', ''):<16}",
             str(ev.get("target") or "-")]
    for key in ("reason", "result", "error", "status"):
        if ev.get(key):
            parts.append(f"{key}={ev[key]}")
    if system:
        cpu, mem = system.get("cpu"), system.get("mem")
        parts.append(f"[cpu {'?' if cpu is None else f'{cpu:.0f}'}% "
                     f"mem {'?' if mem is None else f'{mem:.0f}'}%]")
    return "  ".join(parts)


def _unknown_command(word: str) -> UsageError | None:
    """``squad nosuchcmd``: a word that is neither a file nor a command is a mistyped
    command, not a missing layout file."""
    if os.path.exists(word) or "/" in word or word.endswith(".toml"):
        return None
    import difflib

    close = difflib.get_close_matches(word, [c for c in COMMANDS if c != "hook"], n=1)
    hint = f"; did you mean `squad {close[0]}`?" if close else "; see `squad --help`"
    return UsageError(f"squad: unknown command {word!r} (and no layout file of that "
                      f"name){hint}")


def cmd_ui(args: argparse.Namespace) -> int:
    if args.layout:
        if (error := _unknown_command(args.layout)) is not None:
            raise error
        _load(args.layout)  # a bad layout fails here, with one line, before the UI loads
    _tmux(args).require_version()
    from squad.ui.app import run_ui

    return run_ui(args, demo_layout())


HANDLERS = {
    "ui": cmd_ui, "up": cmd_up, "down": cmd_down, "ls": cmd_ls, "pause": _control,
    "resume": _control, "stop": _control, "restart": _control, "hibernate": _control,
    "wake": _control, "pin": _control, "unpin": _control, "policy": cmd_policy,
    "add": cmd_add, "remove": cmd_remove, "send": cmd_send,
    "capture": cmd_capture, "attach": cmd_attach, "events": cmd_events,
}


def main(argv: Sequence[str] | None = None) -> int:
    from squad.errors import SquadError

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["hook"]:  # run by agent programs: fast, and never an error for them
        from squad.hooks import main as hook_main

        return hook_main(argv[1:])
    try:
        argv = _normalise(argv)
        parser = build_parser(_chosen(argv))
        args = parser.parse_args(arrange(argv, parser))
        if args.version:
            from squad import __version__

            print(f"squad {__version__}")
            return 0
        if args.command in HANDLERS:
            return HANDLERS[args.command](args)
        from squad.cli_queue import HANDLERS as TASK_HANDLERS
        from squad.cli_review import HANDLERS as REVIEW_HANDLERS

        if args.command in REVIEW_HANDLERS:
            return REVIEW_HANDLERS[args.command](args)
        from squad.cli_layout import HANDLERS as LAYOUT_HANDLERS

        if args.command in LAYOUT_HANDLERS:
            return LAYOUT_HANDLERS[args.command](args)
        return TASK_HANDLERS[args.command](args)
    except UsageError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except SquadError as exc:
        print(f"squad: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        except OSError:
            pass
        return 0
    except Exception as exc:  # noqa: BLE001 - the last line of defence for users
        from squad.state import log_bug

        where = log_bug(" ".join(sys.argv[1:]))
        print(f"squad: internal error: {type(exc).__name__}: {exc} (details in {where})",
              file=sys.stderr)
        return 1
