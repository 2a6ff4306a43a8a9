"""Recurring work (`squad dispatch --every 15m`, `--at 09:00`): the schedule as a pure function,
the series in the real store with explicit clocks, and a real squad where a slow agent never
gets a pile of repeats."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from squad.store import TaskStore
from squad.task_model import TaskError, next_slot, parse_clock
from tests.conftest import demo_cmd, run_squad, wait_for, write_layout
from tests.test_queue import headless, tasks


def at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def test_next_slot_every_skips_missed_slots_and_never_drifts() -> None:
    start = 1000.0
    assert next_slot(60, None, start, start) == 1060
    assert next_slot(60, None, start, 1059) == 1060
    assert next_slot(60, None, start, 1060) == 1120  # a slot is "later than now"
    assert next_slot(60, None, start, 1000 + 60 * 9.5) == 1600  # nine missed: not made up


def test_next_slot_daily_and_anchored() -> None:
    assert next_slot(None, "09:00", at("2026-12-02T08:00"), at("2026-12-02T08:00")) == \
        at("2026-12-02T09:00")
    assert next_slot(None, "09:00", at("2026-12-02T09:00"), at("2026-12-02T09:00")) == \
        at("2026-12-03T09:00")
    every_2h = next_slot(7200, "09:00", at("2026-12-02T12:30"), at("2026-12-02T12:30"))
    assert every_2h == at("2026-12-02T13:00")
    late = next_slot(7200, "09:00", at("2026-12-02T23:30"), at("2026-12-02T23:30"))
    assert late == at("2026-12-03T01:00")  # on through the night, in step with 09:00
    odd = next_slot(5 * 3600, "09:00", at("2026-12-03T04:30"), at("2026-12-03T04:30"))
    assert odd == at("2026-12-03T05:00")  # 09, 14, 19, 00, 05, then 09 again


@pytest.mark.parametrize("bad", ["9", "25:00", "12:60", "noon", ""])
def test_bad_clock_times_are_refused(bad: str) -> None:
    with pytest.raises(TaskError):
        parse_clock(bad)


def test_a_series_never_piles_up_and_survives_a_new_store(tmp_path: Path) -> None:
    db = tmp_path / "tasks.db"
    with TaskStore(db) as store:
        rep, first = store.add_repeat("Check in with the team", every="10m", now=1000.0,
                                      tags=("pm",), priority="high")
        assert first is not None and first.repeat == rep.id and first.tags == ("pm",)
        assert rep.next_at == 1600
        assert store.run_repeats(1300) == []  # not due yet
        assert store.run_repeats(1700) == []  # due, but the first one is still open
        assert store.repeat(rep.id).skipped == 1 and store.repeat(rep.id).next_at == 2200
    with TaskStore(db) as store:  # the series is in the database, not in a process
        store.complete(first.id, "checked in", now=1800)  # done (queued -> done by hand)
        (second,) = store.run_repeats(2300)
        assert second.repeat == rep.id and second.prompt == "Check in with the team"
        assert store.run_repeats(2300) == []  # each slot is taken once
        store.stop_repeat(rep.id)
        store.cancel(second.id)
        assert store.run_repeats(99999) == []
        assert [t.id for t in store.list()] == [first.id, second.id]


def test_bad_repeats_write_nothing(tmp_path: Path) -> None:
    with TaskStore(tmp_path / "tasks.db") as store:
        for kwargs in ({}, {"every": "-5m"}, {"every": "soon"}, {"at": "25:00"},
                       {"every": "5m", "priority": "urgent"}, {"every": "5m", "target": "x"},
                       {"every": "5m", "depends_on": (1,)}):
            with pytest.raises(TaskError):
                store.add_repeat("x", **kwargs)
        assert store.repeats() == [] and store.count() == 0


def test_a_slow_agent_never_gets_a_pile_of_repeats(socket: str, tmp_path: Path) -> None:
    layout = write_layout(tmp_path / "rp.toml", f"""
name = "rp"
[[teams]]
name = "t"
[[teams.agents]]
name = "pm"
command = {demo_cmd("--work", "2.5")}
""")
    assert run_squad("-L", socket, "up", str(layout)).returncode == 0
    made = run_squad("-L", socket, "dispatch", "Check in", "--every", "1s", "--json")
    assert made.returncode == 0, made.stderr
    rep = json.loads(made.stdout)["repeat"]["id"]
    proc = headless(socket)
    try:
        def progress() -> bool:
            got = tasks(socket)
            open_ = [t for t in got.values() if t["status"] not in ("done", "failed")]
            assert len(open_) <= 1, open_  # never two of the series at once
            return sum(t["status"] == "done" for t in got.values()) >= 2

        wait_for(progress, 60, "two runs of the series")
    finally:
        proc.terminate()
        proc.wait(10)
    listing = json.loads(run_squad("-L", socket, "repeats", "--json").stdout)
    assert listing[0]["id"] == rep and listing[0]["skipped"] >= 1
    assert all(t["repeat"] == rep for t in tasks(socket).values())
    stopped = run_squad("-L", socket, "repeats", "--stop", str(rep))
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    bad = run_squad("-L", socket, "dispatch", "x", "--every", "1s", "--after", "1")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
