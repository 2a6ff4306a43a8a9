"""The thin process each agent window runs: it starts the agent as its child and never stops.

tmux sends SIGCONT to a pane's own process whenever that process stops (within a millisecond,
as checked), so the pane runs this wrapper and the agent is its child; pausing stops the
agent's tree below the wrapper and tmux never interferes. The wrapper:

- is a child subreaper (Linux), so processes the agent double-forks stay in its tree;
- ignores the terminal's job-control signals itself, while the agent gets default handling;
- when the agent exits, ends any orphans it left behind, prints one line saying how the agent
  ended, and exits with the agent's status, so tmux (``remain-on-exit``) keeps the last screen
  and reports the exit code.

It is run as ``python -S wrapper.py -- ARGV...`` and imports only the standard library,
so it starts in a few milliseconds and uses little memory.
"""

import _signal as signal  # the C module: `signal` imports enum, doubling start-up time
import os
import sys
import time

PR_SET_CHILD_SUBREAPER = 36
SIGNAL_NAMES = {getattr(signal, n): n for n in (
    "SIGHUP", "SIGINT", "SIGQUIT", "SIGILL", "SIGABRT", "SIGFPE", "SIGKILL", "SIGSEGV",
    "SIGPIPE", "SIGALRM", "SIGTERM", "SIGUSR1", "SIGUSR2", "SIGBUS", "SIGXCPU") if
    hasattr(signal, n)}


def become_subreaper() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def descendants_of(root: int) -> list[int]:
    """Every live descendant of ``root`` from one read of /proc (Linux); [] elsewhere. As a
    subreaper the wrapper inherits what its descendants orphan, so this is the agent's
    whole tree, however it forked."""
    kids: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for name in entries:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        rest = stat[stat.rfind(b")") + 2 :].split()
        if len(rest) > 1 and rest[0] not in (b"Z", b"X"):
            kids.setdefault(int(rest[1]), []).append(int(name))
    found, queue = [], list(kids.get(root, ()))
    while queue:
        pid = queue.pop()
        found.append(pid)
        queue.extend(kids.get(pid, ()))
    return found


def reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def end_orphans(grace: float = 2.0) -> None:
    """End everything the agent left behind: its whole remaining tree (grandchildren and
    processes that called setsid included), SIGTERM first and SIGKILL after ``grace``
    seconds, sweeping again and again so nothing forked or re-parented meanwhile survives,
    then reap. Processes ignoring SIGTERM and SIGHUP still end."""
    me = os.getpid()
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        deadline = time.monotonic() + wait
        while True:
            reap()
            tree = descendants_of(me)
            if not tree:
                return
            if time.monotonic() >= deadline:
                break
            for pid in tree:
                for s in (sig, signal.SIGCONT):
                    try:
                        os.kill(pid, s)
                    except ProcessLookupError:
                        pass
            time.sleep(0.02)


def describe(status: int) -> tuple[str, int]:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = SIGNAL_NAMES.get(sig, f"signal {sig}")
        return f"was killed by {name}", 128 + sig
    code = os.waitstatus_to_exitcode(status)
    return f"exited with status {code}", code


def drop_variables(names: str) -> None:
    """Remove the variables named in ``names`` (space-separated; ``PREFIX*`` names every
    variable starting with PREFIX) from the agent's environment: variables the agent's
    program would misread, e.g. ``CI`` that makes Gemini CLI start non-interactive."""
    for name in names.split():
        if name.endswith("*"):
            for key in [k for k in os.environ if k.startswith(name[:-1])]:
                del os.environ[key]
        else:
            os.environ.pop(name, None)


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        print("squad wrapper: no command given", file=sys.stderr)
        return 2
    if argv[0] == "--hold" and len(argv) == 2:
        # A hibernated agent's window after a restore: nothing runs, the window says why.
        os.write(1, f"\r\n[squad] {argv[1]}\r\n".encode("utf-8", "replace"))
        return 0
    # tmux gives every window the PATH of the client that created it, whatever `-e` says,
    # so squad passes the agent's PATH as SQUAD_PATH.
    path = os.environ.pop("SQUAD_PATH", None)
    if path:
        os.environ["PATH"] = path
    drop_variables(os.environ.pop("SQUAD_UNSET", ""))
    become_subreaper()
    child = {"pid": 0}

    # Python-level handlers, not SIG_IGN: exec resets caught signals to their defaults, so
    # the agent gets normal signal handling while the wrapper itself never stops or dies from
    # the terminal. Termination requests are passed on to the agent.
    def forward(signum: int, _frame: object) -> None:
        if signum in (signal.SIGTERM, signal.SIGHUP) and child["pid"]:
            for s in (signum, signal.SIGCONT):
                try:
                    os.kill(child["pid"], s)
                except ProcessLookupError:
                    pass

    for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU,
                signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, forward)

    pid = os.fork()
    if pid == 0:
        try:
            os.execvp(argv[0], argv)
        except OSError as exc:
            msg = f"squad: cannot run {argv[0]!r}: {exc.strerror}\r\n"
            os.write(2, msg.encode("utf-8", "replace"))
        os._exit(127)
    child["pid"] = pid

    status = 0
    while True:
        try:
            done, st = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if done == pid:
            status = st
            break
    child["pid"] = 0  # reaped: its pid may be recycled, so nothing more is forwarded to it
    how, code = describe(status)
    end_orphans()
    name = os.environ.get("SQUAD_AGENT", "agent")
    target = f"{os.environ.get('SQUAD_TEAM', '')}/{name}".lstrip("/")
    stamp = time.strftime("%H:%M:%S")
    line = f"\r\n[squad] {name} {how} at {stamp}; `squad restart {target}` starts it again\r\n"
    try:
        os.write(1, line.encode())
    except OSError:
        pass
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
