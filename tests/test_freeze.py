"""Freeze: a squad written back as an idiomatic layout that loads to an equal squad; the
`squad freeze` command round trip on a real running squad."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import tomllib
from dataclasses import MISSING, fields, replace
from pathlib import Path

import pytest

from squad.freeze import freeze
from squad.layout import (
    AGENT_FIELDS,
    DISPATCH_POLICIES,
    Agent,
    Squad,
    Team,
    default_role,
    dump,
    load,
    loads,
)
from squad.notify import KindConfig, NotifyConfig
from tests.conftest import demo_cmd, run_squad, write_layout

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ("demo", "fullstack", "claude")


def git_init(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    return path.resolve()


def round_trip(squad: Squad, base_dir: Path | None, elsewhere: Path) -> str:
    """Freeze, check the text loads back equal and is no longer than dump's; the text."""
    text = freeze(squad, base_dir=base_dir)
    back = loads(text, source="frozen", base_dir=base_dir or elsewhere)
    assert back == squad, text
    assert len(text) <= len(dump(squad)), text
    assert freeze(back, base_dir=base_dir) == text  # frozen twice: the same text
    return text


def team_of(*agents: Agent, name: str = "t", session: str | None = None) -> Team:
    return Team(name, session or name, tuple(replace(a, team=name) for a in agents))


def agent(name: str, **kw) -> Agent:
    kw.setdefault("command", "claude")
    kw.setdefault("role", default_role(name))
    return Agent(team="t", name=name, **kw)


def squad_of(repo: Path, *teams: Team, **kw) -> Squad:
    return Squad(name="s", repo=repo, worktree_root=kw.pop("worktree_root", None)
                 or repo.parent / f"{repo.name}.worktrees", teams=teams, **kw)


# -- the shipped layouts -----------------------------------------------------------------


@pytest.fixture
def shipped(tmp_path: Path) -> Path:
    """The shipped layouts in a copy of the project that is a git repository."""
    project = git_init(tmp_path / "checkout")
    shutil.copytree(ROOT / "layouts", project / "layouts")
    return project / "layouts"


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_layouts_freeze_and_load_back_equal(name: str, shipped: Path,
                                                    tmp_path: Path) -> None:
    squad = load(shipped / f"{name}.toml")
    text = round_trip(squad, shipped, tmp_path)
    round_trip(squad, None, tmp_path)  # absolute paths: loads anywhere
    doc = tomllib.loads(text)
    # Nothing a person would leave out is written: default roles, sessions, worktree_root.
    for team in doc["teams"]:
        assert team.get("session", "") != team["name"]
        for a in team["agents"]:
            assert a.get("role") != default_role(a["name"])
    assert "worktree_root" not in doc and "dispatch_policy" not in doc
    # Written next to the layouts, the repository is where the original said.
    assert doc.get("repo") == (".." if name != "demo" else None)


def test_demo_freezes_to_the_shape_it_was_written_in(shipped: Path) -> None:
    doc = tomllib.loads(freeze(load(shipped / "demo.toml"), base_dir=shipped))
    assert doc["defaults"] == {"stall_after": 60.0, "grace": 3.0, "env": {"DEMO": "1"}}
    alpha, beta = doc["teams"]
    assert "defaults" not in alpha
    assert beta["defaults"] == {"stall_after": 90.0, "env": {"DEMO_TEAM": "beta"}}
    assert alpha["agents"][0] == {"name": "pm", "command": "python3 -m squad.demo_agent --seed 1",
                                  "tags": ["planning"], "capacity": 2, "priority": 1}


def test_claude_layout_keeps_the_norm_in_defaults_and_the_exception_per_agent(
        shipped: Path) -> None:
    text = freeze(load(shipped / "claude.toml"), base_dir=shipped)
    doc = tomllib.loads(text)
    assert doc["defaults"]["worktree"] is True  # four of five agents
    pm = doc["teams"][0]["agents"][0]
    assert pm["name"] == "pm" and pm["worktree"] is False
    assert 'tags = ["planning", "review"]' in text  # short arrays on one line


# -- every field, and each rule ------------------------------------------------------------


NEWER_KEYS = {k: v for k, v in {"memory_warn_mb": 256, "on_memory_limit": "restart",
                                 "pinned": True}.items() if k in AGENT_FIELDS}
"""Keys added to layouts after freeze was written, set when this checkout has them."""


def set_keys(squad: Squad, target: str) -> set[str]:
    """The keys an agent's settings differ from the built-in defaults in."""
    a = squad.agent(target)
    assert a is not None
    out = set()
    for f in fields(Agent):
        if f.name not in AGENT_FIELDS:
            continue
        default = f.default if f.default_factory is MISSING else f.default_factory()
        if f.name == "role":
            default = default_role(a.name)
        if getattr(a, f.name) != default:
            out.add(f.name)
    return out


def keys_for(doc: dict, team: int, agent_index: int) -> set[str]:
    """Every key the frozen document sets for one agent, at any level of the cascade."""
    t = doc["teams"][team]
    return (set(doc.get("defaults", {})) | set(t.get("defaults", {}))
            | set(t["agents"][agent_index])) - {"name"}


def full_squad(tmp_path: Path) -> Squad:
    repo = git_init(tmp_path / "repo")
    full = agent(
        "full", role="Full Stack", command=("prog", "--flag", "a b"),
        cwd="sub/dir", worktree=True, branch="feature/full", base="origin/main",
        env={"A": "1", "B": "two words"}, tags=("x", "y"), capacity=3, priority=-2,
        dispatch=False, ready_pattern=r"^> $", busy_pattern=r"esc to interrupt",
        input_pattern=r"\(y/n\)", memory_limit_mb=512, cpu_limit=150.5, stall_after=30.0,
        grace=0.0, submit_delay=0.25, **NEWER_KEYS,
    )
    plain = agent("pm", role="PM", command="claude --x 'quoted arg' | tee l")
    other = agent("dev", command="codex", worktree=True)
    notify = replace(NotifyConfig(), desktop=False, kinds=(
        KindConfig("needs_input", command=("notify-send", "squad")),
        *NotifyConfig().kinds[1:]))
    squad = squad_of(repo, team_of(full, plain, session="Task-t"), team_of(other, name="u"),
                     worktree_root=(tmp_path / "wt").resolve(), dispatch_policy="round-robin",
                     notify=notify)
    if "governor" in {f.name for f in fields(Squad)}:  # a squad-level table added later
        from squad.governor import GovernorConfig

        squad = replace(squad, governor=replace(GovernorConfig(), max_active=3,
                                                pause_excess=True))
    return squad


def test_every_field_set_round_trips(tmp_path: Path) -> None:
    squad = full_squad(tmp_path)
    round_trip(squad, tmp_path, tmp_path)
    round_trip(squad, None, tmp_path / "elsewhere")
    doc = tomllib.loads(freeze(squad, base_dir=tmp_path))
    assert doc["repo"] == "repo" and doc["worktree_root"] == "wt"
    assert doc["dispatch_policy"] == "round-robin" and doc["notify"]["desktop"] is False
    if "governor" in {f.name for f in fields(Squad)}:
        assert doc["governor"] == {"max_active": 3, "pause_excess": True}
    # Every key the agent sets is written somewhere in the cascade, none forgotten.
    assert keys_for(doc, 0, 0) == set_keys(squad, "t/full") == set(AGENT_FIELDS)
    assert keys_for(doc, 0, 1) >= set_keys(squad, "t/pm")


def test_values_equal_to_the_defaults_are_left_out(tmp_path: Path) -> None:
    repo = git_init(tmp_path / "repo")
    plain = agent("dev", worktree=True, branch="squad/t/dev")  # the default branch, written out
    squad = squad_of(repo, team_of(plain))
    doc = tomllib.loads(freeze(squad, base_dir=repo))
    assert doc == {"name": "s", "teams": [
        {"name": "t", "agents": [{"name": "dev", "command": "claude", "worktree": True}]}]}
    back = loads(freeze(squad, base_dir=repo), source="f", base_dir=repo)
    # The one deliberate loss: the branch comes back as "the default", the same branch.
    assert back.agents()[0].branch is None
    assert back.agents()[0].branch_name() == plain.branch_name() == "squad/t/dev"
    assert replace(back, teams=(team_of(replace(back.agents()[0], branch="squad/t/dev")),)) \
        == squad


def test_a_value_every_agent_shares_goes_to_defaults(tmp_path: Path) -> None:
    repo = git_init(tmp_path / "repo")
    squad = squad_of(repo,
                     team_of(agent("a", grace=3.0), agent("b", grace=3.0), name="one"),
                     team_of(agent("c", grace=3.0), name="two"))
    doc = tomllib.loads(round_trip(squad, repo, tmp_path))
    assert doc["defaults"] == {"command": "claude", "grace": 3.0}
    assert all(a == {"name": a["name"]} for t in doc["teams"] for a in t["agents"])


def test_a_value_one_team_shares_goes_to_its_team_defaults(tmp_path: Path) -> None:
    repo = git_init(tmp_path / "repo")
    squad = squad_of(repo,
                     team_of(agent("a", tags=("web",)), agent("b", tags=("web",)), name="one"),
                     team_of(agent("c"), agent("d", tags=("db",)), name="two"))
    doc = tomllib.loads(round_trip(squad, repo, tmp_path))
    assert doc["teams"][0]["defaults"] == {"tags": ["web"]}
    assert "defaults" not in doc["teams"][1]
    assert doc["teams"][1]["agents"][1]["tags"] == ["db"]


def test_most_agents_share_a_value_and_the_others_say_so(tmp_path: Path) -> None:
    repo = git_init(tmp_path / "repo")
    squad = squad_of(repo, team_of(agent("pm", capacity=1), agent("a", capacity=2),
                                   agent("b", capacity=2), agent("c", capacity=2)))
    doc = tomllib.loads(round_trip(squad, repo, tmp_path))
    assert doc["defaults"]["capacity"] == 2
    assert doc["teams"][0]["agents"][0] == {"name": "pm", "capacity": 1}


def test_a_value_only_a_minority_shares_stays_with_those_agents(tmp_path: Path) -> None:
    repo = git_init(tmp_path / "repo")
    agents = [agent("a", tags=("plan",)), agent("b", tags=("plan",)),
              agent("c", tags=("x",)), agent("d", tags=("y",)), agent("e", tags=("z",))]
    doc = tomllib.loads(round_trip(squad_of(repo, team_of(*agents)), repo, tmp_path))
    assert "tags" not in doc["defaults"] and "defaults" not in doc["teams"][0]
    assert [a["tags"] for a in doc["teams"][0]["agents"]] == [["plan"], ["plan"], ["x"], ["y"],
                                                              ["z"]]


def test_one_agent_keeps_its_own_settings(tmp_path: Path) -> None:
    repo = git_init(tmp_path / "repo")
    doc = tomllib.loads(round_trip(squad_of(repo, team_of(agent("dev", grace=2.0))), repo,
                                   tmp_path))
    assert "defaults" not in doc
    assert doc["teams"][0]["agents"] == [{"name": "dev", "command": "claude", "grace": 2.0}]


def test_env_is_factored_per_variable(tmp_path: Path) -> None:
    repo = git_init(tmp_path / "repo")
    squad = squad_of(
        repo,
        team_of(agent("a", env={"ALL": "1", "TEAM": "x", "OWN": "a"}),
                agent("b", env={"ALL": "1", "TEAM": "x"}), name="one"),
        team_of(agent("c", env={"ALL": "1", "TEAM": "y"}),
                agent("d", env={"ALL": "2", "TEAM": "y"}), name="two"))
    text = round_trip(squad, repo, tmp_path)
    doc = tomllib.loads(text)
    assert doc["defaults"]["env"] == {"ALL": "1"}
    one, two = doc["teams"]
    assert one["defaults"] == {"env": {"TEAM": "x"}} and two["defaults"] == {"env": {"TEAM": "y"}}
    assert one["agents"][0]["env"] == {"OWN": "a"} and "env" not in one["agents"][1]
    assert two["agents"][1]["env"] == {"ALL": "2"}
    assert 'env = { ALL = "1" }' in text  # inline, as the README writes it


def test_nothing_goes_up_over_an_agent_that_could_not_undo_it(tmp_path: Path) -> None:
    # TOML cannot say "no cwd", and an env variable set above cannot be unset below.
    repo = git_init(tmp_path / "repo")
    squad = squad_of(repo, team_of(agent("a", cwd="sub", env={"X": "1"}),
                                   agent("b", cwd="sub", env={"X": "1"}),
                                   agent("c", cwd="sub", env={"X": "1"}), agent("d")))
    doc = tomllib.loads(round_trip(squad, repo, tmp_path))
    assert doc["defaults"] == {"command": "claude"}
    assert [a.get("cwd") for a in doc["teams"][0]["agents"]] == ["sub", "sub", "sub", None]


def test_roles_are_factored_against_each_agents_own_default(tmp_path: Path) -> None:
    repo = git_init(tmp_path / "repo")
    squad = squad_of(repo, team_of(agent("a", role="Worker"), agent("b", role="Worker"),
                                   agent("c", role="Worker"), agent("dev")))
    doc = tomllib.loads(round_trip(squad, repo, tmp_path))
    assert doc["defaults"]["role"] == "Worker"
    assert doc["teams"][0]["agents"][3] == {"name": "dev", "role": "Dev"}


def test_paths_relative_where_shorter_and_absolute_where_not(tmp_path: Path) -> None:
    repo = git_init(tmp_path / "repo")
    squad = squad_of(repo, team_of(agent("a")), worktree_root=(tmp_path / "trees").resolve())
    near = tomllib.loads(round_trip(squad, tmp_path / "layouts", tmp_path))
    assert (near["repo"], near["worktree_root"]) == ("../repo", "../trees")
    deep = tmp_path.joinpath(*["d"] * 40)
    deep.mkdir(parents=True)
    far = tomllib.loads(round_trip(squad, deep, tmp_path))
    assert (far["repo"], far["worktree_root"]) == (str(repo), str((tmp_path / "trees").resolve()))
    at_repo = tomllib.loads(round_trip(squad, repo, tmp_path))
    assert "repo" not in at_repo and at_repo["worktree_root"] == "../trees"


def test_paths_through_a_symlinked_directory_read_back_the_same(tmp_path: Path) -> None:
    repo = git_init(tmp_path / "real" / "repo")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    squad = squad_of(repo, team_of(agent("a")))
    for base in (tmp_path / "link", tmp_path / "link" / "repo", tmp_path):
        round_trip(squad, base, tmp_path)


def test_a_directory_starting_with_a_tilde_is_not_mistaken_for_home(tmp_path: Path) -> None:
    repo = git_init(tmp_path / "~repo")
    squad = squad_of(repo, team_of(agent("a")))
    text = round_trip(squad, tmp_path, tmp_path)
    assert tomllib.loads(text)["repo"] == str(repo)


# -- many generated squads -----------------------------------------------------------------

POOLS: dict[str, list] = {
    "role": [None, None, "Worker", "Dev Lead"],  # None: the default role for the name
    "command": ["claude", "claude", "codex --full-auto", ("aider", "--no-auto-commits"),
                "npm run dev | tee dev.log"],
    "cwd": [None, None, "sub", "/tmp"],
    "worktree": [False, True],
    "branch": [None, None, "custom"],  # "custom": a branch of its own, made unique
    "base": [None, None, "main", "origin/main"],
    "tags": [(), ("web",), ("web",), ("web", "css"), ("python",)],
    "capacity": [1, 1, 2, 3],
    "priority": [0, 0, 1, -1],
    "dispatch": [True, True, False],
    "ready_pattern": [None, None, r"^> $"],
    "busy_pattern": [None, r"esc to interrupt"],
    "input_pattern": [None, r"\[y/n\]"],
    "memory_warn_mb": [None, None, 256],  # below every memory_limit_mb
    "memory_limit_mb": [None, 2048, 512],
    "on_memory_limit": ["warn", "warn", "pause", "stop"],
    "pinned": [False, False, True],
    "cpu_limit": [None, None, 150.0],
    "stall_after": [120.0, 60.0, 300.0],
    "grace": [10.0, 10.0, 3.0, 0.0],
    "submit_delay": [0.0, 0.0, 0.3],
}
ENV_POOL = {"A": ["1", "2"], "B": ["x"], "PORT": ["3000", "8000"], "MODE": ["dev", "prod"]}
TEAM_NAMES = ["alpha", "beta", "gamma", "delta", "t-5"]
AGENT_NAMES = ["pm", "dev", "qa", "server", "reviewer", "a1", "w_2"]


def generated_squad(rng: random.Random, repo: Path, trees: Path) -> Squad:
    """A valid squad with random settings drawn from small pools, so that agents share
    values by chance, and sometimes by design (a team or the whole squad agreeing on a key)."""
    squad_bias = {k: rng.choice(v) for k, v in POOLS.items() if rng.random() < 0.3}
    teams = []
    for team_name in rng.sample(TEAM_NAMES, rng.randint(1, 4)):
        team_bias = {k: rng.choice(v) for k, v in POOLS.items() if rng.random() < 0.3}
        team_env = {k: rng.choice(v) for k, v in ENV_POOL.items() if rng.random() < 0.3}
        agents = []
        for name in rng.sample(AGENT_NAMES, rng.randint(1, 5)):
            kw = {}
            for f in fields(Agent):
                if f.name not in POOLS:
                    continue  # keys this test does not know yet keep their defaults
                if rng.random() < 0.7 and f.name in team_bias:
                    kw[f.name] = team_bias[f.name]
                elif rng.random() < 0.7 and f.name in squad_bias:
                    kw[f.name] = squad_bias[f.name]
                else:
                    kw[f.name] = rng.choice(POOLS[f.name])
            if kw["role"] is None:
                kw["role"] = default_role(name)
            if kw["branch"] == "custom":
                kw["branch"] = f"feature/{team_name}-{name}"
            env = {k: v for k, v in team_env.items() if rng.random() < 0.8}
            env.update({k: rng.choice(v) for k, v in ENV_POOL.items() if rng.random() < 0.2})
            agents.append(Agent(team=team_name, name=name, env=env, **kw))
        session = rng.choice([team_name, team_name, f"Task-{team_name}"])
        teams.append(Team(team_name, session, tuple(agents)))
    return Squad(
        name=rng.choice(["squad", "web-shop"]), repo=repo,
        worktree_root=rng.choice([repo.parent / f"{repo.name}.worktrees", trees]),
        teams=tuple(teams), dispatch_policy=rng.choice(DISPATCH_POLICIES),
        notify=rng.choice([NotifyConfig(), replace(NotifyConfig(), desktop=False)]),
    )


def test_generated_squads_round_trip_and_are_never_longer_than_dump(tmp_path: Path) -> None:
    repo = git_init(tmp_path / "project" / "repo")
    trees = (tmp_path / "trees").resolve()
    bases = [None, repo, tmp_path / "project", tmp_path / "out"]
    rng = random.Random(13)
    lifted = 0
    for _ in range(150):
        squad = generated_squad(rng, repo, trees)
        text = round_trip(squad, rng.choice(bases), tmp_path)
        lifted += "[defaults]" in text or "[teams.defaults]" in text
    assert lifted > 50  # the generator does exercise the cascade


# -- the command ------------------------------------------------------------------------

wired = pytest.mark.skipif(
    "freeze" not in __import__("squad.cli", fromlist=["COMMANDS"]).COMMANDS,
    reason="squad/cli.py does not route `freeze` and `import` to squad.cli_layout yet")


def ls(socket: str) -> dict[str, dict]:
    proc = run_squad("-L", socket, "ls", "--json")
    assert proc.returncode == 0, proc.stderr
    keep = ("role", "tags", "branch", "worktree")
    return {f"{r['team']}/{r['agent']}": {k: r[k] for k in keep}
            for r in json.loads(proc.stdout)}


@wired
def test_freeze_down_up_brings_back_the_same_squad(socket: str, git_repo: Path,
                                                   tmp_path: Path) -> None:
    from squad.live import load_saved_layout

    layout = write_layout(tmp_path / "web.toml", f"""
name = "web"
repo = "{git_repo}"
worktree_root = "{tmp_path / 'trees'}"

[defaults]
command = {demo_cmd()}
grace = 2.0
env = {{ SHARED = "1" }}

[[teams]]
name = "front"
session = "Task-front"

[teams.defaults]
tags = ["web"]

[[teams.agents]]
name = "pm"
role = "PM"
capacity = 2

[[teams.agents]]
name = "dev"
worktree = true
tags = ["web", "css"]

[[teams]]
name = "back"

[[teams.agents]]
name = "dev"
role = "Backend Dev"
worktree = true
branch = "feature/api"
command = {demo_cmd("--seed", "7")}
env = {{ PORT = "8000" }}
""")
    up = run_squad("-L", socket, "up", str(layout))
    assert up.returncode == 0, up.stderr
    before_agents = ls(socket)
    before = load_saved_layout("web")

    printed = run_squad("-L", socket, "freeze")
    assert printed.returncode == 0, printed.stderr
    assert loads(printed.stdout, source="stdout", base_dir=tmp_path / "x") == before

    out = tmp_path / "frozen" / "web.toml"
    out.parent.mkdir()
    wrote = run_squad("-L", socket, "freeze", "-o", str(out), "--squad", "web")
    assert wrote.returncode == 0, wrote.stderr
    assert "web.toml" in wrote.stdout and "3 agents" in wrote.stdout
    text = out.read_text()
    assert 'repo = "../repo"' in text and "[defaults]" in text and "Task-front" in text

    again = run_squad("-L", socket, "freeze", "-o", str(out))
    assert again.returncode == 2 and "already exists" in again.stderr and "--force" in again.stderr
    forced = run_squad("-L", socket, "freeze", "-o", str(out), "--force")
    assert forced.returncode == 0, forced.stderr
    assert out.read_text() == text

    down = run_squad("-L", socket, "down")
    assert down.returncode == 0, down.stderr
    up = run_squad("-L", socket, "up", str(out))
    assert up.returncode == 0, up.stderr
    assert ls(socket) == before_agents
    assert before_agents["back/dev"]["branch"] == "feature/api"
    assert before_agents["front/dev"]["branch"] == "squad/front/dev"
    after = load_saved_layout("web")
    assert after == before
    assert [a.command for a in after.agents()] == [a.command for a in before.agents()]


@wired
def test_freeze_names_the_problem(socket: str, tmp_path: Path) -> None:
    nothing = run_squad("-L", socket, "freeze")
    assert nothing.returncode == 2 and "no squad is running" in nothing.stderr
    assert len(nothing.stderr.strip().splitlines()) == 1
    as_dir = run_squad("-L", socket, "freeze", "-o", str(tmp_path))
    assert as_dir.returncode == 2 and "is a directory" in as_dir.stderr
