"""Dispatch policy on plain data: eligibility, the three policies, plan(), backoff, breaker."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from squad.dispatch import (
    Breaker,
    Candidate,
    Job,
    backoff,
    choose,
    eligible,
    occupy,
    plan,
)
from squad.task_model import Task, TaskError

NOW = 1_800_000_000.0


def cand(target: str, **kw) -> Candidate:
    team = target.split("/")[0]
    base = dict(target=target, team=team, tags=frozenset(), capacity=1, active=0, cpu=0.0,
                idle_since=NOW, dispatch=True, status="idle")
    base.update(kw)
    base["tags"] = frozenset(base["tags"])
    return Candidate(**base)


def task(id: int = 1, **kw) -> Task:
    return Task(id=id, prompt="p", title="p", created=NOW + id, **kw)


def test_eligibility_reasons() -> None:
    t = task(tags=("css", "web"))
    assert eligible(t, cand("fe/dev", tags={"css", "web", "x"})) is None
    assert eligible(t, cand("fe/dev", status="working", tags={"css", "web"})) == \
        "fe/dev is working"
    assert eligible(t, cand("fe/dev", status="needs-input")) == "fe/dev waits for input"
    assert eligible(t, cand("fe/dev", tags={"web"})) == "fe/dev lacks tag css"
    assert eligible(t, cand("fe/dev")) == "fe/dev lacks tags css, web"
    assert eligible(task(), cand("fe/dev", active=1)) == "fe/dev is at capacity 1/1"
    assert eligible(task(), cand("fe/dev", dispatch=False)) == "fe/dev has dispatch disabled"
    assert eligible(task(team="be"), cand("fe/dev")) == "fe/dev is not in team be"
    assert eligible(task(target="be/dev"), cand("fe/dev")) == "fe/dev is not the target be/dev"
    until = NOW + 60
    why = eligible(task(), cand("fe/dev", breaker="open", breaker_until=until))
    assert why is not None and why.startswith("fe/dev has its breaker open until ")
    assert eligible(task(), cand("fe/dev", breaker="half-open", capacity=2, active=1)) == \
        "fe/dev has a half-open breaker and its one trial task is running"
    assert eligible(task(), cand("fe/dev", breaker="half-open", capacity=2)) is None


def test_tags_are_a_subset_rule() -> None:
    assert eligible(task(), cand("a/b", tags={"x"})) is None  # no tags: anyone
    assert eligible(task(tags=("x",)), cand("a/b", tags={"x", "y"})) is None
    assert eligible(task(tags=("x", "z")), cand("a/b", tags={"x", "y"})) is not None


def test_team_and_target_rules() -> None:
    cands = [cand("fe/dev"), cand("be/dev"), cand("be/qa")]
    assert choose(task(team="be", target="be/qa"), cands)[0].target == "be/qa"
    assert choose(task(team="be"), cands)[0].team == "be"
    winner, why = choose(task(target="ops/dev"), cands)
    assert winner is None and why == ["ops/dev is not an agent of this squad"]
    winner, why = choose(task(team="ops"), cands)
    assert winner is None and why == ["team ops has no agents"]
    winner, why = choose(task(), [])
    assert winner is None and why == ["the squad has no agents"]


def test_choose_lists_why_not_for_each_plausible_agent() -> None:
    cands = [cand("fe/dev", status="working"), cand("fe/pm", tags={"plan"}),
             cand("be/dev", active=1)]
    winner, why = choose(task(tags=("css",)), cands)
    assert winner is None
    assert why == ["fe/dev is working", "fe/pm lacks tag css", "be/dev is at capacity 1/1"]


def test_least_loaded_tie_breaks_in_order() -> None:
    # load ratio first
    a = cand("t/a", capacity=2, active=1)  # 0.5
    b = cand("t/b", capacity=4, active=1)  # 0.25
    assert choose(task(), [a, b])[0].target == "t/b"
    # then CPU
    a, b = cand("t/a", cpu=50.0), cand("t/b", cpu=5.0)
    assert choose(task(), [a, b])[0].target == "t/b"
    # then who waited longest
    a, b = cand("t/a", idle_since=NOW - 100), cand("t/b", idle_since=NOW - 5)
    assert choose(task(), [a, b])[0].target == "t/a"
    # then the higher layout priority
    a, b = cand("t/a"), cand("t/b", priority=5)
    assert choose(task(), [a, b])[0].target == "t/b"
    # then the name
    assert choose(task(), [cand("t/z"), cand("t/a")])[0].target == "t/a"


def test_round_robin_rotates_and_survives_changes() -> None:
    cands = [cand("t/c"), cand("t/a"), cand("t/b")]
    state: dict = {}
    picks = [choose(task(), cands, "round-robin", rr_state=state)[0].target for _ in range(4)]
    assert picks == ["t/a", "t/b", "t/c", "t/a"]
    # t/b leaves, t/d joins: the rotation continues after the last pick
    cands = [cand("t/c"), cand("t/a"), cand("t/d")]
    picks = [choose(task(), cands, "round-robin", rr_state=state)[0].target for _ in range(3)]
    assert picks == ["t/c", "t/d", "t/a"]


def test_random_is_reproducible_with_a_seed() -> None:
    cands = [cand(f"t/a{i}") for i in range(10)]
    one = [choose(task(), cands, "random", rng=random.Random(7))[0].target for _ in range(5)]
    two = [choose(task(), cands, "random", rng=random.Random(7))[0].target for _ in range(5)]
    assert one == two
    rng = random.Random(1)
    seen = {choose(task(), cands, "random", rng=rng)[0].target for _ in range(200)}
    assert len(seen) == 10


def test_unknown_policy() -> None:
    with pytest.raises(TaskError, match="least-loaded, round-robin, random"):
        choose(task(), [], "fastest")


def test_plan_fills_capacity_in_queue_order() -> None:
    cands = [cand("fe/dev", tags={"css"}, capacity=2), cand("be/dev", tags={"py"}),
             cand("be/qa", status="working")]
    tasks = [task(1, tags=("py",)), task(2, tags=("css",)), task(3, tags=("py",)),
             task(4), task(5, tags=("go",)), task(6)]
    # 1 -> be/dev (only py); 2 -> fe/dev; 3 waits (be/dev full); 4 -> fe/dev (last slot)
    assert plan(tasks, cands) == [(1, "be/dev"), (2, "fe/dev"), (4, "fe/dev")]


def test_plan_spreads_by_load_and_respects_target_and_team() -> None:
    cands = [cand(f"t/a{i}", capacity=2) for i in range(3)] + [cand("u/x")]
    out = plan([task(i) for i in range(1, 8)], cands)
    counts: dict[str, int] = {}
    for _, target in out:
        counts[target] = counts.get(target, 0) + 1
    assert counts == {"t/a0": 2, "t/a1": 2, "t/a2": 2, "u/x": 1}
    # the first four go one each (least loaded), before anyone gets a second
    assert len({t for _, t in out[:4]}) == 4
    targeted = [task(1, target="u/x"), task(2, target="u/x"), task(3, team="u"),
                task(4, team="t", target="u/x")]
    assert plan(targeted, cands) == [(1, "u/x")]


def test_plan_half_open_breaker_gets_one_trial() -> None:
    cands = [cand("t/a", capacity=3, breaker="half-open"), cand("t/b", breaker="open")]
    assert plan([task(i) for i in range(1, 5)], cands) == [(1, "t/a")]


def test_plan_many_tasks_stops_when_full() -> None:
    cands = [cand(f"t/a{i}", capacity=2, tags={"x"} if i % 2 else {"y"}) for i in range(50)]
    tasks = [task(i, tags=(("x",), ("y",), ("z",), ())[i % 4]) for i in range(1, 10_001)]
    out = plan(tasks, cands)
    assert len(out) == 100  # every slot filled
    assert len({tid for tid, _ in out}) == 100
    by_id = {t.id: t for t in tasks}
    agents = {c.target: c for c in cands}
    for tid, target in out:
        assert set(by_id[tid].tags) <= agents[target].tags
    assert plan(tasks, [replace(c, active=2) for c in cands]) == []


def test_plan_round_robin_and_limit() -> None:
    cands = [cand("t/a", capacity=5), cand("t/b", capacity=5)]
    state: dict = {}
    out = plan([task(i) for i in range(1, 5)], cands, "round-robin", rr_state=state)
    assert [t for _, t in out] == ["t/a", "t/b", "t/a", "t/b"] and state["last"] == "t/b"
    assert len(plan([task(i) for i in range(1, 5)], cands, limit=3)) == 3


def test_occupy_then_plan_reviews_first() -> None:
    cands = [cand("q/rev"), cand("t/dev")]
    reviews = plan([Job(9, target="q/rev")], cands)
    assert reviews == [(9, "q/rev")]
    after = occupy(cands, reviews)
    assert [c.active for c in after] == [1, 0]
    assert plan([task(1), task(2)], after) == [(1, "t/dev")]


def test_backoff_grows_caps_and_jitters_within_bounds() -> None:
    ceilings = [backoff(n, jitter="none") for n in range(1, 9)]
    assert ceilings == [5, 10, 20, 40, 80, 160, 300, 300]
    assert backoff(1000, jitter="none") == 300
    rng = random.Random(3)
    for n in range(1, 12):
        ceiling = min(300.0, 5.0 * 2 ** (n - 1))
        for _ in range(50):
            assert ceiling / 2 <= backoff(n, rng=rng) <= ceiling
            assert 0 <= backoff(n, rng=rng, jitter="full") <= ceiling
    assert backoff(2, rng=random.Random(5)) == backoff(2, rng=random.Random(5))
    with pytest.raises(ValueError):
        backoff(1, jitter="wild")


def test_breaker_cycle_with_explicit_times() -> None:
    b = Breaker(threshold=3, cooldown=120)
    assert b.state(NOW) == "closed" and b.allows(NOW)
    assert b.record_failure(NOW) == "closed"
    assert b.record_failure(NOW + 1) == "closed"
    b.record_success(NOW + 2)  # a success resets the count
    assert b.failures == 0
    for i in range(3):
        state = b.record_failure(NOW + 10 + i)
    assert state == "open" and not b.allows(NOW + 13) and b.until == NOW + 12 + 120
    assert b.state(NOW + 131) == "open"
    assert b.state(NOW + 132) == "half-open" and b.allows(NOW + 132)
    # the trial fails: open again for a full cooldown
    assert b.record_failure(NOW + 140) == "open"
    assert b.state(NOW + 259) == "open" and b.state(NOW + 260) == "half-open"
    # the trial succeeds: closed
    assert b.record_success(NOW + 270) == "closed"
    assert b.state(NOW + 270) == "closed" and b.failures == 0


def test_breaker_round_trips_through_a_dict() -> None:
    b = Breaker(threshold=2, cooldown=30)
    b.record_failure(NOW)
    b.record_failure(NOW)
    again = Breaker.from_dict(b.to_dict())
    assert again == b and again.state(NOW + 1) == "open"
    assert Breaker.from_dict({}) == Breaker()
