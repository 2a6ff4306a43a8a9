"""CPU limits that act: an agent's whole process tree held to ``cpu_limit`` percent of one core.

Two mechanisms, the kernel's first:

- **cgroup** (``cgroup-v2`` with ``cpu.max``, or ``cgroup-v1`` with ``cpu.cfs_quota_us``):
  each limited agent gets a group of its own under ``<cpu hierarchy>/squad/<name>/``, and its
  tree (the wrapper excluded, as everywhere in squad) is moved in. Children inherit their
  parent's group, so whatever the agent forks later is limited too; :meth:`CpuLimiter.sync`
  moves in anything that got past (a child forked while its parent was being moved). The
  scheduler enforces the quota exactly and at no cost to squad. It needs write access to a
  cgroup hierarchy with the cpu controller (root, or a delegated hierarchy).
- **duty-cycle**, everywhere else: a background thread gives each tree a CPU budget that
  refills at the limit's rate (``limit / 100`` CPU-seconds per second), measured from
  ``/proc``; a tree that spent its budget is stopped (SIGSTOP, root first) until the budget
  has refilled a little, then continued (SIGCONT, deepest first). Over any few seconds the
  tree gets its limit, whatever number of processes or cores it uses. Signals go through
  :func:`squad.procs._send` with each process's start time, so a recycled pid is never hit.

A duty cycle never fights a pause: a tree held with :meth:`CpuLimiter.hold` (the governor
pausing it) or marked in :class:`Holds` (a person's ``squad pause``, from any process) is
left exactly as it is, and a tree found entirely stopped by someone else is left alone until
it runs again. Nothing stays stopped behind squad's back: :meth:`CpuLimiter.release`,
:meth:`CpuLimiter.close` (also at interpreter exit) and, after a crash,
:meth:`CpuLimiter.recover` continue every process the duty cycle stopped.
"""

from __future__ import annotations

import atexit
import errno
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from squad import procs
from squad.errors import ControlError

log = logging.getLogger(__name__)

CGROUP_V1 = "cgroup-v1"
CGROUP_V2 = "cgroup-v2"
DUTY = "duty-cycle"
MECHANISMS = (CGROUP_V2, CGROUP_V1, DUTY)

PERIOD_US = 100_000  # the CFS period: the quota is granted per 100 ms
MIN_QUOTA_US = 1_000  # the kernel's smallest quota: limits below 1% are rounded up to it


# -- finding a cgroup hierarchy with the cpu controller ---------------------------------------


@dataclass(frozen=True)
class CgroupFs:
    """A mounted cgroup hierarchy that has the cpu controller."""

    version: int  # 1 or 2
    mount: Path  # where it is mounted
    mount_root: str = "/"  # which of the hierarchy's groups the mount shows (containers)

    @property
    def mechanism(self) -> str:
        return CGROUP_V2 if self.version == 2 else CGROUP_V1

    def path_of(self, pid: int) -> Path | None:
        """The directory of the group ``pid`` is in, in this hierarchy (None: gone)."""
        try:
            with open(f"/proc/{pid}/cgroup") as f:
                lines = f.read().splitlines()
        except OSError:
            return None
        for line in lines:
            _, controllers, rel = line.split(":", 2)
            if (self.version == 2 and controllers == "") or (
                    self.version == 1 and "cpu" in controllers.split(",")):
                rel = os.path.relpath(rel, self.mount_root) if self.mount_root != "/" else rel
                rel = rel.lstrip("/")
                return self.mount / rel if rel and rel != "." else self.mount
        return None


def _unescape(text: str) -> str:
    """mountinfo escapes spaces and the like as octal (``\\040``)."""
    out, i = [], 0
    while i < len(text):
        digits = text[i + 1:i + 4]
        if text[i] == "\\" and len(digits) == 3 and digits.isdigit():
            out.append(chr(int(text[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def find_cpu_cgroup(mountinfo: str | os.PathLike[str] = "/proc/self/mountinfo"
                    ) -> CgroupFs | None:
    """The hierarchy with the cpu controller: cgroup v2 when its root offers ``cpu``, else
    the v1 hierarchy mounted with ``cpu`` (hybrid machines have both); None when neither."""
    try:
        with open(mountinfo) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    v1 = v2 = None
    for line in lines:
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields_ = left.split()
        rest = right.split()
        if len(fields_) < 5 or len(rest) < 3:
            continue
        fstype, options = rest[0], rest[2].split(",")
        mount, root = Path(_unescape(fields_[4])), _unescape(fields_[3])
        if fstype == "cgroup2" and v2 is None:
            try:
                controllers = (mount / "cgroup.controllers").read_text().split()
            except OSError:
                controllers = []
            if "cpu" in controllers:
                v2 = CgroupFs(2, mount, root)
        elif fstype == "cgroup" and "cpu" in options and v1 is None:
            v1 = CgroupFs(1, mount, root)
    return v2 or v1


def _write(path: Path, text: str) -> None:
    """One write() of ``text`` (cgroup files take one value per write)."""
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _group_name(target: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "." for c in target) or "agent"


# -- holds: pauses a duty cycle must not undo -----------------------------------------------


class Holds:
    """Marker files saying "a person paused this agent", readable from any process.

    ``squad pause`` runs in another process than the supervisor whose duty cycle might
    continue the tree a moment later; the marker (one empty file per agent in a directory of
    the squad's state) is how the cycle knows to leave the tree stopped.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.dir = Path(directory)

    def _path(self, target: str) -> Path:
        return self.dir / _group_name(target)

    def add(self, target: str) -> None:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._path(target).touch()

    def discard(self, target: str) -> None:
        self._path(target).unlink(missing_ok=True)

    def __contains__(self, target: object) -> bool:
        return isinstance(target, str) and self._path(target).exists()


# -- the limiter -------------------------------------------------------------------------------


@dataclass
class _Limit:
    target: str
    root: int
    root_start: float | None
    limit: float  # percent of one core
    mechanism: str
    group: Path | None = None
    moved: set[tuple[int, float]] = field(default_factory=set)  # cgroup: members moved in
    why: str | None = None  # why the kernel's way was not used, when it was not
    # duty cycle
    members: list[tuple[int, float]] = field(default_factory=list)
    last_cpu: dict[tuple[int, float], float] = field(default_factory=dict)
    last_at: float = 0.0
    budget: float = 0.0
    stopped: list[tuple[int, float]] = field(default_factory=list)
    external: bool = False
    refreshed: float = -1.0

    @property
    def rate(self) -> float:
        return self.limit / 100.0


def _stat(pid: int) -> tuple[str, float, float] | None:
    """(state, CPU seconds, start) of one process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
        rest = raw[raw.rfind(b")") + 2:].split()
        return (rest[0].decode(), (int(rest[11]) + int(rest[12])) / procs.CLK_TCK,
                float(rest[19]))
    except (OSError, IndexError, ValueError):
        return None


class CpuLimiter:
    """Holds agents' process trees to their ``cpu_limit``.

    ``name`` keeps this squad's groups apart from other squads' (``<cpu>/squad/<name>/``).
    ``prefer`` is ``"auto"`` (a cgroup when usable, else the duty cycle), ``"cgroup"`` (a
    cgroup or nothing: :meth:`apply` raises OSError) or ``"duty"``. ``held`` says whether a
    person paused an agent (see :class:`Holds`); ``journal`` is a file naming the trees under
    a duty cycle, so a supervisor killed mid-cycle can be followed by :meth:`recover`.
    """

    def __init__(self, name: str, *, prefer: str = "auto", cgroup: CgroupFs | None = None,
                 held: Callable[[str], bool] | None = None, period: float = 0.2,
                 journal: str | os.PathLike[str] | None = None) -> None:
        if prefer not in ("auto", "cgroup", "duty"):
            raise ValueError(f"prefer must be auto, cgroup or duty, not {prefer!r}")
        self.name = _group_name(name)
        self.prefer = prefer
        self.held_by_person = held or (lambda _t: False)
        self.period = period
        self.step = period / 10
        self.refresh_every = 0.5  # seconds between rescans of a cycled tree's members
        self.journal = Path(journal) if journal is not None else None
        self.limits: dict[str, _Limit] = {}
        self.holds: set[str] = set()
        self.cgroup: CgroupFs | None = None
        self.cgroup_problem: str | None = None
        if prefer != "duty":
            self.cgroup = cgroup or find_cpu_cgroup()
            if self.cgroup is None:
                self.cgroup_problem = "no cgroup hierarchy with the cpu controller is mounted"
            else:
                # A probe now, so callers know at once which mechanism they will get; the
                # directories come back on the first limit, and go with the last.
                self.cgroup_problem = self._prepare()
                if self.cgroup_problem:
                    self.cgroup = None
                else:
                    self._remove_base()
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._table: procs.Table | None = None
        self._journaled: dict[str, list[object]] | None = None
        atexit.register(self.close)

    # -- cgroup plumbing -----------------------------------------------------------------------

    @property
    def base(self) -> Path | None:
        """This squad's directory of groups, when a cgroup hierarchy is used."""
        return self.cgroup.mount / "squad" / self.name if self.cgroup else None

    def _prepare(self) -> str | None:
        """Create ``squad/<name>`` (enabling the cpu controller down to it on v2); say why
        not when the kernel refuses."""
        cg = self.cgroup
        assert cg is not None
        try:
            if cg.version == 2:
                for parent in (cg.mount, cg.mount / "squad"):
                    parent.mkdir(exist_ok=True)
                    ctl = parent / "cgroup.subtree_control"
                    if "cpu" not in ctl.read_text().split():
                        _write(ctl, "+cpu")
                base = cg.mount / "squad" / self.name
                base.mkdir(exist_ok=True)
                if "cpu" not in (base / "cgroup.subtree_control").read_text().split():
                    _write(base / "cgroup.subtree_control", "+cpu")
            else:
                (cg.mount / "squad" / self.name).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return f"cannot create a cgroup under {cg.mount}: {exc.strerror or exc}"
        return None

    def _remove_base(self) -> None:
        """Remove ``squad/<name>`` and ``squad`` when nothing is left in them."""
        if self.base is None:
            return
        for path in (self.base, self.base.parent):
            try:
                os.rmdir(path)
            except OSError:
                pass  # not empty: another squad's, or still in use

    def _quota(self, group: Path, limit: float) -> None:
        assert self.cgroup is not None
        quota = max(MIN_QUOTA_US, round(limit / 100.0 * PERIOD_US))
        if self.cgroup.version == 2:
            _write(group / "cpu.max", f"{quota} {PERIOD_US}")
        else:
            _write(group / "cpu.cfs_period_us", str(PERIOD_US))
            _write(group / "cpu.cfs_quota_us", str(quota))

    def _move_in(self, lim: _Limit, table: procs.Table) -> None:
        """Move tree members not moved yet into the agent's group (children forked after
        a move are already in it: membership is inherited)."""
        assert lim.group is not None
        members = [(p, table.procs[p].start) for p in table.tree(lim.root)
                   if table.procs[p].state not in procs.GONE_STATES]
        lim.moved &= set(members)
        for pid, start in members:
            if (pid, start) in lim.moved:
                continue
            st = _stat(pid)
            if st is None or st[2] != start:
                continue  # gone, or its pid is someone else's now
            try:
                _write(lim.group / "cgroup.procs", str(pid))
            except ProcessLookupError:
                continue
            except OSError as exc:
                if exc.errno == errno.ESRCH:
                    continue
                raise
            lim.moved.add((pid, start))

    def _group_pids(self, group: Path) -> list[int]:
        try:
            return [int(x) for x in (group / "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            return []

    def _empty_group(self, group: Path, home: Path | None) -> None:
        """Move whatever is left in ``group`` to ``home`` and remove the group."""
        assert self.cgroup is not None
        home = home or self.cgroup.mount
        for _ in range(20):
            for pid in self._group_pids(group):
                try:
                    _write(home / "cgroup.procs", str(pid))
                except OSError:
                    pass  # exited meanwhile, or a zombie: it leaves by itself
            try:
                os.rmdir(group)
                return
            except FileNotFoundError:
                return
            except OSError as exc:
                if exc.errno != errno.EBUSY:
                    log.warning("cgroup %s not removed: %s", group, exc)
                    return
            time.sleep(0.01)
        log.warning("cgroup %s not removed: processes keep arriving", group)

    # -- the public face -----------------------------------------------------------------------

    def apply(self, target: str, root: int, limit: float, *, root_start: float | None = None,
              table: procs.Table | None = None) -> str:
        """Hold the tree below ``root`` (the agent's wrapper) to ``limit`` percent of one
        core; returns the mechanism in use. Calling it again with the same arguments only
        brings new members in; another ``limit`` changes the quota; another ``root`` (the
        agent restarted) moves to the new tree."""
        if limit <= 0:
            raise ValueError(f"cpu_limit must be above 0, got {limit}")
        table = table or procs.scan()
        if root_start is None and root in table.procs:
            root_start = table.procs[root].start
        with self._lock:
            lim = self.limits.get(target)
            if lim is not None and (lim.root, lim.root_start) != (root, root_start) \
                    and lim.mechanism == DUTY:
                self._release(lim)
                lim = None
            if lim is None:
                lim = self._new(target, root, root_start, limit, table)
                self.limits[target] = lim
            else:
                lim.root, lim.root_start = root, root_start
                if lim.limit != limit:
                    lim.limit = limit
                    if lim.group is not None:
                        self._quota(lim.group, limit)
                if lim.group is not None:
                    self._move_in(lim, table)
            if lim.mechanism == DUTY:
                self._table = table
                self._save_journal()
                self._ensure_thread()
            return lim.mechanism

    def _new(self, target: str, root: int, root_start: float | None, limit: float,
             table: procs.Table) -> _Limit:
        why = self.cgroup_problem
        if self.cgroup is not None and self.base is not None:
            group = self.base / _group_name(target)
            lim = _Limit(target, root, root_start, limit, self.cgroup.mechanism, group)
            try:
                if not self.base.is_dir():
                    problem = self._prepare()
                    if problem:
                        raise OSError(problem)
                group.mkdir(exist_ok=True)
                self._quota(group, limit)
                self._move_in(lim, table)
                # A second pass catches children forked while their parents were moved.
                self._move_in(lim, procs.scan())
                return lim
            except OSError as exc:
                why = f"cgroup {group}: {exc.strerror or exc}"
                log.warning("%s: cpu limit by duty cycle instead: %s", target, why)
                self._empty_group(group, self.cgroup.path_of(root))
        if self.prefer == "cgroup":
            raise OSError(f"no usable cgroup for {target}: {why}")
        lim = _Limit(target, root, root_start, limit, DUTY, why=why)
        lim.budget = self._resume_at(lim)
        lim.last_at = time.monotonic()
        return lim

    def release(self, target: str) -> None:
        """Remove ``target``'s limit: its group goes (its processes back where the wrapper
        is), or its duty cycle ends with every process it stopped continued."""
        with self._lock:
            lim = self.limits.pop(target, None)
            if lim is not None:
                self._release(lim)
                self._save_journal()
                if lim.group is not None and not any(x.group for x in self.limits.values()):
                    self._remove_base()

    def _release(self, lim: _Limit) -> None:
        if lim.group is not None and self.cgroup is not None:
            home = self.cgroup.path_of(lim.root)
            if home is not None and home == lim.group:
                home = None
            self._empty_group(lim.group, home)
        elif lim.stopped:
            self._continue(lim)

    def mechanism(self, target: str) -> str | None:
        """How ``target``'s CPU is limited (``cgroup-v1``, ``cgroup-v2``, ``duty-cycle``), or
        None when it is not: what ``squad ls`` shows."""
        lim = self.limits.get(target)
        return lim.mechanism if lim else None

    def cycling(self, target: str) -> bool:
        """Whether a stopped tree of ``target`` may be the duty cycle's doing rather than a
        pause: the observer must then not call the agent paused (nor idle for being quiet)
        unless a hold says a pause is meant."""
        lim = self.limits.get(target)
        return (lim is not None and lim.mechanism == DUTY and target not in self.holds
                and not lim.external and not self.held_by_person(target))

    def describe(self) -> dict[str, dict[str, object]]:
        """Per limited agent: mechanism, limit, and why the kernel's way was not used."""
        with self._lock:
            return {t: {"mechanism": lim.mechanism, "cpu_limit": lim.limit,
                        **({"why": lim.why} if lim.why else {}),
                        **({"group": str(lim.group)} if lim.group else {})}
                    for t, lim in self.limits.items()}

    def sync(self, wanted: Mapping[str, tuple[int, float | None, float]],
             table: procs.Table | None = None) -> dict[str, str]:
        """The supervisor's per-tick call: ``wanted`` maps each agent that should be limited
        now (running, with a ``cpu_limit``) to ``(wrapper pid, wrapper start, limit)``.
        Applies new limits, follows restarts and new children, and releases the limits of
        agents no longer wanted (ended, or the limit was removed). Reuses the tick's process
        table. Returns target -> mechanism."""
        table = table or procs.scan()
        with self._lock:
            self._table = table
            for target in [t for t in self.limits if t not in wanted]:
                self.release(target)
            out = {}
            for target, (root, start, limit) in wanted.items():
                try:
                    out[target] = self.apply(target, root, limit, root_start=start,
                                             table=table)
                except OSError as exc:
                    log.warning("%s: cpu limit not applied: %s", target, exc)
            return out

    def hold(self, target: str) -> None:
        """Leave ``target``'s tree alone (the governor is pausing it): the duty cycle stops
        touching it, and what it had stopped stays stopped for the pause."""
        with self._lock:
            self.holds.add(target)
            lim = self.limits.get(target)
            if lim is not None:
                lim.stopped = []

    def unhold(self, target: str) -> None:
        """Cycle ``target`` again (after the governor resumed it)."""
        with self._lock:
            self.holds.discard(target)
            lim = self.limits.get(target)
            if lim is not None:
                lim.budget = self._resume_at(lim)
                lim.last_at = time.monotonic()

    def close(self) -> None:
        """End every limit: groups removed, duty-cycled trees continued, the thread ended.
        Safe to call twice; runs at interpreter exit too."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(5)
        with self._lock:
            for target in list(self.limits):
                self.release(target)
            self._remove_base()
        atexit.unregister(self.close)

    def sweep(self) -> list[str]:
        """Remove groups this squad left behind (a supervisor that died): every group under
        ``squad/<name>`` that no current limit uses; their processes go back to the group
        squad runs in. Returns the groups removed."""
        if self.base is None or self.cgroup is None:
            return []
        removed = []
        with self._lock:
            used = {lim.group for lim in self.limits.values()}
            try:
                groups = [p for p in self.base.iterdir() if p.is_dir()]
            except OSError:
                return []
            for group in groups:
                if group not in used:
                    self._empty_group(group, self.cgroup.path_of(os.getpid()))
                    removed.append(group.name)
        return removed

    def recover(self) -> list[int]:
        """After a supervisor died mid-cycle: continue every stopped process of the trees its
        journal names, unless a person holds the agent. Returns the pids continued."""
        if self.journal is None:
            return []
        try:
            entries = json.loads(self.journal.read_text())
        except (OSError, ValueError):
            return []
        woken: list[int] = []
        table = procs.scan()
        if not isinstance(entries, dict):
            entries = {}
        for target, value in entries.items():
            try:
                root, start = int(value[0]), value[1]
            except (TypeError, ValueError, IndexError):
                continue
            if target in self.limits or self.held_by_person(target):
                continue
            p = table.procs.get(root)
            if p is None or (start is not None and p.start != start):
                continue
            for pid in reversed(table.tree(root)):
                q = table.procs[pid]
                if q.state in procs.STOPPED_STATES and procs._send(pid, signal.SIGCONT, q.start):
                    woken.append(pid)
        self._save_journal()
        return woken

    # -- the duty cycle ------------------------------------------------------------------------

    def _resume_at(self, lim: _Limit) -> float:
        """Budget a stopped tree waits for before it runs again: half a period's worth."""
        return lim.rate * self.period / 2

    def _save_journal(self) -> None:
        if self.journal is None:
            return
        data: dict[str, list[object]] = {t: [lim.root, lim.root_start]
                                          for t, lim in self.limits.items()
                                          if lim.mechanism == DUTY}
        if data == self._journaled:
            return  # written once per change, not once per tick
        self._journaled = data
        try:
            if data:
                tmp = self.journal.with_name(f".{self.journal.name}.{os.getpid()}.tmp")
                tmp.write_text(json.dumps(data))
                os.replace(tmp, self.journal)
            else:
                self.journal.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("cpu limit journal not written: %s", exc)

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"squad-duty-{self.name}",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                duties = [lim for lim in self.limits.values() if lim.mechanism == DUTY]
                if not duties:
                    self._thread = None
                    return
                now = time.monotonic()
                table = self._table
                if any(now - lim.refreshed >= self.refresh_every for lim in duties) and (
                        table is None or now - table.at >= self.refresh_every):
                    table = self._table = procs.scan()
                for lim in duties:
                    try:
                        self._cycle(lim, now, table)
                    except Exception:  # noqa: BLE001 - one tree's trouble must not stop others
                        log.exception("duty cycle of %s", lim.target)
            self._stop.wait(self.step)

    def _cycle(self, lim: _Limit, now: float, table: procs.Table | None) -> None:
        if table is not None and table.at > lim.refreshed:
            lim.members = [(p, table.procs[p].start) for p in table.tree(lim.root)
                           if table.procs[p].state not in procs.GONE_STATES]
            lim.refreshed = table.at
        used, states = 0.0, {}
        live: list[tuple[int, float]] = []
        for member in lim.members:
            st = _stat(member[0])
            if st is None or st[2] != member[1] or st[0] in procs.GONE_STATES:
                continue
            live.append(member)
            states[member] = st[0]
            before = lim.last_cpu.get(member)
            if before is not None:
                used += max(0.0, st[1] - before)
            lim.last_cpu[member] = st[1]
        lim.last_cpu = {m: lim.last_cpu[m] for m in live}
        lim.members = live
        dt = max(0.0, now - lim.last_at)
        lim.last_at = now
        cap = lim.rate * self.period
        lim.budget = min(cap, lim.budget + lim.rate * dt - used)
        if lim.target in self.holds or self.held_by_person(lim.target):
            lim.stopped = []  # whatever is stopped now stays stopped: it is a pause
            return
        if lim.stopped:
            if lim.budget >= self._resume_at(lim):
                self._continue(lim)
            return
        running = [m for m in live if states[m] not in procs.STOPPED_STATES]
        if live and not running:
            lim.external = True  # someone else stopped the whole tree: theirs to continue
            return
        lim.external = False
        if lim.budget < 0 and running:
            stopped = []
            for pid, start in running:  # breadth first: parents before children
                try:
                    if procs._send(pid, signal.SIGSTOP, start):
                        stopped.append((pid, start))
                except ControlError:
                    continue
            lim.stopped = stopped

    def _continue(self, lim: _Limit) -> None:
        for pid, start in reversed(lim.stopped):
            try:
                procs._send(pid, signal.SIGCONT, start)
            except ControlError:
                continue
        lim.stopped = []

