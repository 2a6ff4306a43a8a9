"""Process trees: one process-table scan per tick, tree CPU and memory, pause/resume/stop.

On Linux the table is one raw read of ``/proc/*/stat`` (about 5 ms for a few hundred
processes, against ~300 ms for a ``children(recursive=True)`` walk per agent); elsewhere it
is one ``psutil.process_iter`` pass. Every agent's tree is then found from the same
parent -> children map, so sampling 100 agents costs one scan, not 100.

Processes are identified by (pid, start time) so that a recycled pid is never mistaken for
a process squad saw earlier.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from squad.errors import ControlError

LINUX = sys.platform.startswith("linux")
CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

STOPPED_STATES = frozenset("Tt")  # stopped, or stopped by a tracer
GONE_STATES = frozenset("ZXx")  # zombie or dead: the process has exited


@dataclass(slots=True)
class Proc:
    """One process as a scan saw it."""

    pid: int
    ppid: int
    state: str  # one letter as in /proc: R S D T t Z ...
    cpu_time: float  # user + system seconds
    rss: int  # bytes
    start: float  # start time (clock ticks since boot on Linux); identity with pid
    name: str


@dataclass
class Table:
    """A process table at one moment, with a parent -> children map."""

    at: float
    procs: dict[int, Proc]
    children: dict[int, list[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.children:
            kids: dict[int, list[int]] = {}
            for p in self.procs.values():
                kids.setdefault(p.ppid, []).append(p.pid)
            self.children = kids

    def tree(self, root: int, *, include_root: bool = False) -> list[int]:
        """Pids of ``root``'s descendants, breadth first (parents before children)."""
        order = [root] if include_root and root in self.procs else []
        queue = list(self.children.get(root, ()))
        while queue:
            pid = queue.pop(0)
            order.append(pid)
            queue.extend(self.children.get(pid, ()))
        return order


def _scan_linux() -> dict[int, Proc]:
    procs: dict[int, Proc] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                raw = f.read()
        except OSError:
            continue
        close = raw.rfind(b")")
        rest = raw[close + 2 :].split()
        if len(rest) < 22:
            continue
        procs[int(name)] = Proc(
            pid=int(name),
            ppid=int(rest[1]),
            state=rest[0].decode(),
            cpu_time=(int(rest[11]) + int(rest[12])) / CLK_TCK,
            rss=int(rest[21]) * PAGE,
            start=float(rest[19]),
            name=raw[raw.find(b"(") + 1 : close].decode("utf-8", "replace"),
        )
    return procs


_PSUTIL_STATE = {
    "running": "R",
    "sleeping": "S",
    "disk-sleep": "D",
    "stopped": "T",
    "tracing-stop": "t",
    "zombie": "Z",
    "dead": "X",
    "idle": "I",
}


def _scan_psutil() -> dict[int, Proc]:
    import psutil

    procs: dict[int, Proc] = {}
    attrs = ["pid", "ppid", "status", "cpu_times", "memory_info", "create_time", "name"]
    for p in psutil.process_iter(attrs):
        info = p.info
        times, mem = info.get("cpu_times"), info.get("memory_info")
        procs[info["pid"]] = Proc(
            pid=info["pid"],
            ppid=info.get("ppid") or 0,
            state=_PSUTIL_STATE.get(info.get("status") or "", "S"),
            cpu_time=(times.user + times.system) if times else 0.0,
            rss=mem.rss if mem else 0,
            start=info.get("create_time") or 0.0,
            name=info.get("name") or "",
        )
    return procs


def scan() -> Table:
    """One scan of the whole process table."""
    procs = _scan_linux() if LINUX else _scan_psutil()
    return Table(at=time.monotonic(), procs=procs)


_BOOT: list[float] = []


def started_at(start: float) -> float:
    """Wall-clock time of a process start as a scan reports it (clock ticks since boot on
    Linux; already wall-clock time elsewhere)."""
    if not LINUX:
        return start
    if not _BOOT:
        try:
            with open("/proc/stat") as f:
                _BOOT.append(next(float(line.split()[1]) for line in f
                                  if line.startswith("btime ")))
        except (OSError, StopIteration, ValueError, IndexError):
            _BOOT.append(time.time() - time.monotonic())
    return _BOOT[0] + start / CLK_TCK


def proc_state(pid: int) -> str | None:
    """The state letter of one process, or None if it is gone."""
    if LINUX:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                raw = f.read()
        except OSError:
            return None
        return raw[raw.rfind(b")") + 2 :].split()[0].decode()
    import psutil

    try:
        return _PSUTIL_STATE.get(psutil.Process(pid).status(), "S")
    except psutil.Error:
        return None


# -- sampling --------------------------------------------------------------------------


@dataclass(frozen=True)
class Usage:
    """Resources of one agent's process tree (the wrapper excluded)."""

    cpu: float  # percent of one core, summed over the tree
    rss: int  # bytes, summed over the tree
    procs: int  # live processes in the tree
    stopped: bool  # every live process in the tree is stopped
    pids: tuple[int, ...] = ()


@dataclass(frozen=True)
class System:
    cpu: float  # percent of all cores
    mem: float  # percent of memory in use


class Sampler:
    """CPU needs two observations: keeps the previous scan to turn CPU time into percent."""

    def __init__(self) -> None:
        self.prev: Table | None = None
        self.table: Table | None = None
        # A first reading now, so the first system figure covers the time since this
        # sampler was made, not the average since boot.
        self._prev_cpu: tuple[float, float] | None = system_cpu_times()

    def sample(self) -> Table:
        self.prev, self.table = self.table, scan()
        return self.table

    def usage(self, root: int | None) -> Usage:
        """The tree below ``root`` (a wrapper pid), from the latest scan."""
        table = self.table
        if table is None or root is None:
            return Usage(0.0, 0, 0, False)
        pids = [p for p in table.tree(root) if table.procs[p].state not in GONE_STATES]
        rss = sum(table.procs[p].rss for p in pids)
        cpu = 0.0
        prev = self.prev
        if prev is not None and table.at > prev.at:
            ticks = 0.0
            for p in pids:
                now, before = table.procs[p], prev.procs.get(p)
                if before is not None and before.start == now.start:
                    ticks += max(0.0, now.cpu_time - before.cpu_time)
            cpu = 100.0 * ticks / (table.at - prev.at)
        stopped = bool(pids) and all(table.procs[p].state in STOPPED_STATES for p in pids)
        return Usage(round(cpu, 1), rss, len(pids), stopped, tuple(pids))

    def system(self) -> System:
        """System CPU % since the previous call (first call: since this sampler was made)
        and memory %."""
        cpu = 0.0
        if LINUX:
            now = system_cpu_times()
            before = self._prev_cpu
            if now is not None:
                self._prev_cpu = now
                if before is not None and now[1] > before[1]:
                    cpu = 100.0 * (1 - (now[0] - before[0]) / (now[1] - before[1]))
        else:
            import psutil

            cpu = psutil.cpu_percent(None)
        return System(round(cpu, 1), memory_percent())


def memory_percent() -> float:
    """Memory in use, % (Linux: from /proc/meminfo, without importing psutil)."""
    if LINUX:
        try:
            with open("/proc/meminfo") as f:
                info = {line.split(":")[0]: float(line.split()[1]) for line in f
                        if line.startswith(("MemTotal:", "MemAvailable:"))}
            return round(100.0 * (1 - info["MemAvailable"] / info["MemTotal"]), 1)
        except (OSError, ValueError, KeyError, IndexError, ZeroDivisionError):
            pass
    import psutil

    return round(psutil.virtual_memory().percent, 1)


def system_cpu_times() -> tuple[float, float] | None:
    """(idle, total) jiffies of the whole machine from /proc/stat (Linux), else None."""
    if not LINUX:
        return None
    try:
        with open("/proc/stat") as f:
            fields = [float(x) for x in f.readline().split()[1:]]
        return fields[3] + (fields[4] if len(fields) > 4 else 0.0), sum(fields)
    except (OSError, ValueError, IndexError):
        return None


# -- control ---------------------------------------------------------------------------


def _start_of(pid: int) -> float | None:
    """A process's start time (clock ticks since boot), or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
        return float(raw[raw.rfind(b")") + 2 :].split()[19])
    except (OSError, IndexError, ValueError):
        return None


_PIDFD = LINUX and hasattr(os, "pidfd_open") and hasattr(signal, "pidfd_send_signal")


def _send(pid: int, sig: int, start: float | None = None) -> bool:
    """Signal the process ``pid`` if it is still the one that started at ``start``.

    pids are recycled (pid_max may be as low as 32768), so a pid seen a moment ago may name
    another process now. With ``start``, the process is pinned with a pidfd first and its
    start time checked, so the signal reaches exactly the process that was seen, or nothing.
    Returns whether it was sent.
    """
    if start is not None and LINUX:
        if not _PIDFD:
            if _start_of(pid) != start:
                return False
        else:
            try:
                fd = os.pidfd_open(pid)
            except ProcessLookupError:
                return False
            except OSError:
                fd = None  # pidfds not allowed here: the start time check alone
            try:
                if _start_of(pid) != start:
                    return False  # recycled: another process has this pid now
                if fd is not None:
                    signal.pidfd_send_signal(fd, sig)
                    return True
            except ProcessLookupError:
                return False
            except PermissionError as exc:
                raise ControlError(f"not allowed to signal process {pid}: {exc.strerror}"
                                   ) from None
            finally:
                if fd is not None:
                    os.close(fd)
    try:
        os.kill(pid, sig)
        return True
    except ProcessLookupError:
        return False
    except PermissionError as exc:
        raise ControlError(f"not allowed to signal process {pid}: {exc.strerror}") from None


def _wait_until(check: Callable[[], bool], timeout: float, step: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(step)
        step = min(step * 1.5, 0.1)


def _live(pids: Iterable[int]) -> list[tuple[int, str]]:
    out = []
    for pid in pids:
        state = proc_state(pid)
        if state is not None and state not in GONE_STATES:
            out.append((pid, state))
    return out


def _names(pids: Iterable[int]) -> str:
    table = scan()
    parts = []
    for pid in pids:
        p = table.procs.get(pid)
        parts.append(f"{pid} ({p.name}, state {p.state})" if p else str(pid))
    return ", ".join(parts)


def pause_tree(root: int, *, timeout: float = 2.0) -> list[int]:
    """SIGSTOP every process below ``root``; return the stopped pids, in stop order.

    Stops the agent first, then its descendants breadth first, then sweeps the table again
    for children forked meanwhile, until a sweep finds nothing new. Succeeds only when every
    member reports the stopped state; otherwise resumes what it stopped (a half-stopped tree
    is worse than none) and raises :class:`ControlError` naming the processes.
    """
    stopped: list[tuple[int, float]] = []
    seen: set[int] = set()
    for _ in range(10):
        table = scan()
        new = [p for p in table.tree(root) if p not in seen]
        if not new:
            break
        for pid in new:
            seen.add(pid)
            start = table.procs[pid].start
            if _send(pid, signal.SIGSTOP, start):
                stopped.append((pid, start))
    pids = [p for p, _ in stopped]

    def all_stopped() -> bool:
        return all(state in STOPPED_STATES for _, state in _live(pids))

    if not _wait_until(all_stopped, timeout):
        bad = [pid for pid, state in _live(pids) if state not in STOPPED_STATES]
        names = _names(bad)
        for pid, start in reversed(stopped):
            _send(pid, signal.SIGCONT, start)
        raise ControlError(f"these processes did not stop: {names}; the "
                           f"{len(stopped)} that did were resumed, so the agent runs on")
    return pids


def resume_tree(root: int, *, timeout: float = 2.0) -> list[int]:
    """SIGCONT every process below ``root`` in reverse stop order (deepest first)."""
    table = scan()
    members = [(p, table.procs[p].start) for p in reversed(table.tree(root))]
    for pid, start in members:
        _send(pid, signal.SIGCONT, start)
    pids = [p for p, _ in members]

    def none_stopped() -> bool:
        return not any(state in STOPPED_STATES for _, state in _live(pids))

    if not _wait_until(none_stopped, timeout):
        bad = [pid for pid, state in _live(pids) if state in STOPPED_STATES]
        raise ControlError(f"these processes did not resume: {_names(bad)}")
    return pids


def tagged(env: dict[str, str], *, exclude: Iterable[int] = ()) -> list[tuple[int, float]]:
    """Processes whose environment carries every ``NAME=VALUE`` of ``env`` (Linux), as
    (pid, start): squad tags each agent's window with its squad, socket, team and agent, and
    descendants inherit that, so this finds what escaped an agent's tree (re-parented to init
    after its parent died) unless it cleared its own environment. ``exclude`` and this
    process's own ancestors are left out (an agent may run ``squad down`` itself)."""
    if not LINUX:
        return []
    wanted = [f"{k}={v}".encode() for k, v in env.items()]
    skip = set(exclude) | set(_ancestors(os.getpid()))
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in skip:
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                environ = f.read().split(b"\0")
        except OSError:
            continue
        if all(w in environ for w in wanted):
            start = _start_of(int(name))
            if start is not None:
                found.append((int(name), start))
    return found


def _ancestors(pid: int) -> list[int]:
    out = []
    while pid > 1 and len(out) < 100:
        out.append(pid)
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                raw = f.read()
            pid = int(raw[raw.rfind(b")") + 2 :].split()[1])
        except (OSError, IndexError, ValueError):
            break
    return out


def terminate_trees(roots: Iterable[int], *, grace: float = 10.0,
                    extra: Iterable[tuple[int, float]] = ()) -> list[int]:
    """End every process below each root, and the ``extra`` (pid, start) processes: SIGTERM
    (and SIGCONT, so stopped ones can act on it), wait up to ``grace`` seconds, then SIGKILL
    whatever is left, including children forked meanwhile and ones that called setsid.
    Returns the pids that had to be killed.
    """
    roots = list(roots)
    table = scan()
    members = {(p, table.procs[p].start) for r in roots for p in table.tree(r)}
    members |= set(extra)
    for pid, start in members:
        _send(pid, signal.SIGTERM, start)
    for pid, start in members:
        _send(pid, signal.SIGCONT, start)

    def remaining() -> set[tuple[int, float]]:
        now = scan()
        alive = set()
        for r in roots:
            for p in now.tree(r):
                if now.procs[p].state not in GONE_STATES:
                    alive.add((p, now.procs[p].start))
        # Members that left the tree (reparented to init because the wrapper died) count too.
        for pid, start in members:
            p = now.procs.get(pid)
            if p is not None and p.start == start and p.state not in GONE_STATES:
                alive.add((pid, start))
        return alive

    if _wait_until(lambda: not remaining(), grace, step=0.02):
        return []
    killed: list[int] = []
    for _ in range(5):
        left = remaining()
        if not left:
            break
        for pid, start in left:
            if _send(pid, signal.SIGKILL, start):
                killed.append(pid)
        _wait_until(lambda: not remaining(), 1.0)
    if left := remaining():
        raise ControlError(f"these processes survived SIGKILL: {_names(p for p, _ in left)}")
    return killed
