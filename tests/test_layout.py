"""Layout files: parsing, the defaults cascade, every validation error, dump round trips."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from squad.errors import LayoutError
from squad.governor import GovernorConfig
from squad.layout import (
    DISPATCH_POLICIES,
    Agent,
    Squad,
    Team,
    check_branch,
    check_programs,
    dump,
    load,
    loads,
)

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ("demo", "fullstack", "claude")


def git_init(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    return path


def layout(agent: str = "", *, top: str = "", defaults: str = "", team: str = "",
           more: str = "") -> str:
    """A small valid layout with text added at each level."""
    return (
        f'name = "s"\n{top}\n'
        f"[defaults]\n{defaults}\n"
        f'[[teams]]\nname = "t"\n{team}\n'
        f'[[teams.agents]]\nname = "a"\ncommand = "prog"\n{agent}\n'
        f"{more}"
    )


def with_command(value: str) -> str:
    return layout().replace('command = "prog"', f"command = {value}")


def parse(text: str, base_dir: Path | None = None) -> Squad:
    return loads(text, source="L.toml", base_dir=base_dir or Path("/"))


def error(text: str, base_dir: Path | None = None) -> LayoutError:
    with pytest.raises(LayoutError) as info:
        parse(text, base_dir)
    return info.value


SECOND_AGENT = '[[teams.agents]]\nname = "b"\ncommand = "prog"\n'
SECOND_TEAM = '[[teams]]\nname = "u"\n[[teams.agents]]\nname = "a"\ncommand = "prog"\n'

BAD = [
    # (layout text, key path, fragment of the message)
    (layout("capacity = \"two\""), "teams[0].agents[0].capacity",
     'must be a positive integer, got "two"'),
    (layout("capacity = true"), "teams[0].agents[0].capacity", "got true"),
    (layout("capacity = 0"), "teams[0].agents[0].capacity", "positive integer, got 0"),
    (layout("capacity = 2.0"), "teams[0].agents[0].capacity", "got 2.0"),
    (layout("capacty = 2"), "teams[0].agents[0].capacty", 'did you mean "capacity"?'),
    (layout("priority = 1.5"), "teams[0].agents[0].priority", "must be an integer"),
    (layout("memory_limit_mb = 0"), "teams[0].agents[0].memory_limit_mb", "positive integer"),
    (layout("cpu_limit = -5"), "teams[0].agents[0].cpu_limit", "positive number"),
    (layout("stall_after = 0"), "teams[0].agents[0].stall_after", "positive number"),
    (layout("stall_after = inf"), "teams[0].agents[0].stall_after", "got inf"),
    (layout("grace = -1"), "teams[0].agents[0].grace", "0 or more"),
    (layout('submit_delay = "1s"'), "teams[0].agents[0].submit_delay", 'got "1s"'),
    (layout(defaults='worktree = "yes"'), "defaults.worktree", 'true or false, got "yes"'),
    (layout(defaults='name = "x"'), "defaults.name", "cannot be a default"),
    (layout(team='[teams.defaults]\ntags = ["a", "b", 3]'), "teams[0].defaults.tags[2]",
     "got 3"),
    (layout(team='[teams.defaults]\ntags = ["a", "b c"]'), "teams[0].defaults.tags[1]",
     "without spaces"),
    (layout('tags = "web"'), "teams[0].agents[0].tags", "array of strings"),
    (layout("env = { PORT = 3000 }"), "teams[0].agents[0].env.PORT",
     'quote it (PORT = "3000")'),
    (layout('env = { SQUAD_TEAM = "x" }'), "teams[0].agents[0].env.SQUAD_TEAM",
     "set by squad"),
    (layout('env = { "MY VAR" = "x" }'), 'teams[0].agents[0].env."MY VAR"',
     "environment variable name"),
    (layout('env = "A=1"'), "teams[0].agents[0].env", "must be a table"),
    (layout('ready_pattern = "(unclosed"'), "teams[0].agents[0].ready_pattern",
     "not a valid regular expression"),
    (layout('busy_pattern = ""'), "teams[0].agents[0].busy_pattern", "must not be empty"),
    (layout('input_pattern = 3'), "teams[0].agents[0].input_pattern", "got 3"),
    (with_command('"  "'), "teams[0].agents[0].command", "non-empty command"),
    (with_command("[]"), "teams[0].agents[0].command", "empty array"),
    (with_command('["prog", 1]'), "teams[0].agents[0].command[1]", "must be a string"),
    (with_command('["", "x"]'), "teams[0].agents[0].command[0]", "must name a program"),
    (with_command("5"), "teams[0].agents[0].command", "string or an array of strings"),
    (with_command("\"prog 'unclosed\""), "teams[0].agents[0].command", "close the quote"),
    ('name = "s"\n[[teams]]\nname = "t"\n[[teams.agents]]\nname = "a"\n',
     "teams[0].agents[0]", "has no command"),
    ('name = "s"\n[[teams]]\nname = "t"\n[[teams.agents]]\ncommand = "x"\n',
     "teams[0].agents[0].name", "is required"),
    (layout().replace('name = "a"', 'name = "../x"'), "teams[0].agents[0].name",
     "not a usable name"),
    (layout().replace('name = "a"', 'name = "a.b"'), "teams[0].agents[0].name",
     "not a usable name"),
    (layout().replace('name = "s"', 'name = "a:b"'), "name", '"a:b" is not a usable name'),
    (layout().replace('name = "s"', 'name = "-s"'), "name", "not a usable name"),
    (layout().replace('name = "s"', 'name = ""'), "name", "not a usable name"),
    (layout().replace('name = "s"\n', ""), "name", "is required"),
    ('name = "s"\n[[teams]]\n[[teams.agents]]\nname = "a"\ncommand = "x"\n', "teams[0].name",
     "is required"),
    (layout(team='session = "two words"'), "teams[0].session", "not a usable name"),
    (layout(more=SECOND_TEAM.replace('"u"', '"t"')), "teams[1].name",
     "already the name of teams[0]"),
    (layout(more=SECOND_AGENT.replace('"b"', '"a"')), "teams[0].agents[1].name",
     "already the name of teams[0].agents[0]"),
    (layout(team='session = "main"', more=SECOND_TEAM.replace(
        'name = "u"', 'name = "u"\nsession = "main"')), "teams[1].session",
     'session "main" is already used by teams[0]'),
    (layout(team='session = "u"', more=SECOND_TEAM), "teams[1].name",
     'session "u" is already used'),
    ('name = "s"\n[[teams]]\nname = "t"\n', "teams[0].agents", "has no agents"),
    ('name = "s"\n', "teams", "no teams"),
    ('name = "s"\nteams = []\n', "teams", "no teams"),
    ('name = "s"\nteams = "t"\n', "teams", "array of tables"),
    ('name = "s"\n[[agents]]\nname = "a"\n', "agents", "[[teams.agents]]"),
    (layout(top='dispatch_polcy = "random"'), "dispatch_polcy",
     'did you mean "dispatch_policy"?'),
    (layout(top='dispatch_policy = "fastest"'), "dispatch_policy", '"least-loaded"'),
    (layout(team="capacity = 2"), "teams[0].capacity", "[teams.defaults]"),
    (layout(top="worktree = true"), "worktree", "[defaults]"),
    (layout('repo = "."'), "teams[0].agents[0].repo", "squad setting"),
    (layout('session = "x"'), "teams[0].agents[0].session", "per team"),
    (layout("colour = 1"), "teams[0].agents[0].colour", "known keys here: name, role"),
    (layout('team = "t"'), "teams[0].agents[0].team", "remove this key"),
    (layout('role = "a:b"'), "teams[0].agents[0].role", "':' or '.'"),
    (layout('role = " PM"'), "teams[0].agents[0].role", "whitespace"),
    (layout('role = ""'), "teams[0].agents[0].role", "non-empty"),
    (layout(f'role = "{"x" * 33}"'), "teams[0].agents[0].role", "at most 32"),
    (layout('role = "P\\tM"'), "teams[0].agents[0].role", "control characters"),
    (layout('branch = "a..b"'), "teams[0].agents[0].branch", "'..'"),
    (layout('branch = "feature/x.lock"'), "teams[0].agents[0].branch", ".lock"),
    (layout('branch = "my branch"'), "teams[0].agents[0].branch", "space"),
    (layout('branch = "-b"'), "teams[0].agents[0].branch", "'-'"),
    (layout('branch = "@"'), "teams[0].agents[0].branch", "reserved"),
    (layout('base = ""'), "teams[0].agents[0].base", "non-empty git ref"),
    (layout('base = "--force"'), "teams[0].agents[0].base", "not an option"),
    (layout('cwd = ""'), "teams[0].agents[0].cwd", "non-empty path"),
    (layout(top='repo = "does/not/exist"'), "repo", "does not exist"),
    (layout(top="worktree_root = 3"), "worktree_root", "non-empty path"),
    (layout("worktree = true"), "repo", "git init"),
    ('name = "s"\nrepo = "."\nrepo = ".."\n', "line 3", "Cannot overwrite a value"),
    # resource limits per agent (issue 11)
    (layout("memory_warn_mb = -1"), "teams[0].agents[0].memory_warn_mb", "positive integer"),
    (layout("memory_warn_mb = 600\nmemory_limit_mb = 500"),
     "teams[0].agents[0].memory_warn_mb", "must be below memory_limit_mb (500), got 600"),
    (layout("memory_warn_mb = 500\nmemory_limit_mb = 500"),
     "teams[0].agents[0].memory_warn_mb", "must be below memory_limit_mb (500)"),
    (layout("memory_limit_mb = 500", defaults="memory_warn_mb = 600"),
     "teams[0].agents[0].memory_limit_mb", "above memory_warn_mb (600, from [defaults])"),
    (layout(defaults="memory_limit_mb = 500",
            team="[teams.defaults]\nmemory_warn_mb = 700"),
     "teams[0].defaults.memory_warn_mb", "below memory_limit_mb (500, from [defaults])"),
    (layout(defaults="memory_warn_mb = 700\nmemory_limit_mb = 500"),
     "defaults.memory_warn_mb", "must be below memory_limit_mb (500), got 700"),
    (layout('on_memory_limit = "hibernat"'), "teams[0].agents[0].on_memory_limit",
     'unknown action "hibernat"; did you mean "hibernate"?'),
    (layout('on_memory_limit = "kill"'), "teams[0].agents[0].on_memory_limit",
     'use one of "warn", "pause", "restart", "hibernate", "stop"'),
    (layout("on_memory_limit = 1"), "teams[0].agents[0].on_memory_limit", "got 1"),
    (layout('pinned = "yes"'), "teams[0].agents[0].pinned", 'true or false, got "yes"'),
    (layout("cpu_limit = 0"), "teams[0].agents[0].cpu_limit", "positive number"),
    (layout("max_active = 2"), "teams[0].agents[0].max_active", "[governor] table"),
    (layout(defaults="memory_low_mb = 2"), "defaults.memory_low_mb", "[governor] table"),
    # the squad's [governor] table
    (layout(top="max_active = 2"), "max_active", "go in a [governor] table"),
    (layout(top="governor = 3"), "governor", "must be a table ([governor]), got 3"),
    (layout(top="[governor]\nmax_active = 0"), "governor.max_active", "positive integer"),
    (layout(top="[governor]\nmax_active = 2.5"), "governor.max_active", "got 2.5"),
    (layout(top="[governor]\npause_excess = true"), "governor.pause_excess", "needs max_active"),
    (layout(top="[governor]\nmemory_low_mb = -100"), "governor.memory_low_mb",
     "positive integer"),
    (layout(top="[governor]\nmemory_low_mb = 1000\nmemory_ok_mb = 900"),
     "governor.memory_ok_mb", "must be above memory_low_mb (1000), got 900"),
    (layout(top="[governor]\nmemory_ok_mb = 900"), "governor.memory_ok_mb",
     "no effect without memory_low_mb"),
    (layout(top="[governor]\nmemory_psi_high = 120"), "governor.memory_psi_high",
     "at most 100, got 120"),
    (layout(top="[governor]\ncpu_psi_high = 0"), "governor.cpu_psi_high", "above 0"),
    (layout(top="[governor]\ncpu_psi_high = 40\ncpu_psi_ok = 50"), "governor.cpu_psi_ok",
     "must be below cpu_psi_high (40.0)"),
    (layout(top="[governor]\nload_high = 1.5\nload_ok = 2"), "governor.load_ok",
     "must be below load_high (1.5)"),
    (layout(top='[governor]\npressure_action = "stop"'), "governor.pressure_action",
     'use one of "pause", "hibernate"'),
    (layout(top='[governor]\npressure_action = "hibernat"'), "governor.pressure_action",
     'did you mean "hibernate"?'),
    (layout(top="[governor]\nrecover_after = -1"), "governor.recover_after", "0 or more"),
    (layout(top="[governor]\nsamples = 0"), "governor.samples", "positive integer"),
    (layout(top='[governor]\ndry_run = "yes"'), "governor.dry_run", "true or false"),
    (layout(top="[governor]\nmax_actve = 2"), "governor.max_actve",
     'did you mean "max_active"?'),
    (layout(top="[governor]\ncpu_limit = 50"), "governor.cpu_limit", "per-agent setting"),
]


@pytest.mark.parametrize(("text", "where", "fragment"), BAD,
                         ids=[f"{i}-{case[1]}" for i, case in enumerate(BAD)])
def test_bad_layouts_name_the_key_path(text: str, where: str, fragment: str,
                                       tmp_path: Path) -> None:
    err = error(text, tmp_path)
    assert err.file == "L.toml"
    assert err.where == where, str(err)
    assert fragment in err.message, str(err)
    assert str(err).startswith(f"L.toml: {where}: ")


def test_syntax_error_names_the_line_without_the_position_suffix() -> None:
    err = error('name = "s"\n\n[[teams]\n')
    assert err.where == "line 3"
    assert "(at line" not in err.message


def test_unterminated_string_at_end_of_file() -> None:
    err = error('name = """s\n')
    assert err.where == "end of file"
    assert "Unterminated" in err.message


def test_deep_nesting_is_a_layout_error() -> None:
    assert "nested too deeply" in str(error("a = " + "[" * 100_000))


def test_every_problem_is_shown_at_once() -> None:
    err = error(layout("capacity = 0\npriority = 1.5\ngrace = -1"))
    assert err.where == "teams[0].agents[0].capacity"
    assert [w for w, _ in err.problems] == ["teams[0].agents[0].capacity",
                                           "teams[0].agents[0].priority",
                                           "teams[0].agents[0].grace"]
    lines = str(err).splitlines()
    assert len(lines) == 3 and all(line.startswith(err.file + ": teams[0]") for line in lines)


def test_bad_default_is_reported_once_not_per_agent() -> None:
    err = error(layout(defaults="capacity = 0", more=SECOND_AGENT))
    assert err.where == "defaults.capacity"
    assert len(err.problems) == 1


def test_worktree_agents_need_their_own_branches(tmp_path: Path) -> None:
    git_init(tmp_path)
    err = error(layout('worktree = true\nbranch = "feature"',
                       more=SECOND_AGENT + 'worktree = true\nbranch = "feature"\n'), tmp_path)
    assert err.where == "teams[0].agents[1].branch"
    assert "t/a" in err.message


@pytest.mark.parametrize("name", [
    "main", "feature/x", "squad/frontend/dev", "a.b", "a..b", "a/.b", "a.lock", "a/b.lock/c",
    "a b", "a~b", "a^b", "a:b", "a?b", "a*b", "a[b", "a\\b", "/a", "a/", "a//b", "a.", "@",
    "a@{b", "a@b", "-a", "HEAD", "x\x7fy", "ünïcode",
])
def test_branch_rules_agree_with_git(name: str) -> None:
    git = subprocess.run(["git", "check-ref-format", "--branch", name],
                         capture_output=True, check=False)
    # git lets `git branch @` through; squad refuses it too, since `@` also means HEAD.
    valid = git.returncode == 0 and name != "@"
    assert (check_branch(name) is None) == valid, check_branch(name)


# -- reading files ---------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(LayoutError, match="no such file") as info:
        load(path)
    assert info.value.file == str(path)


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(LayoutError, match="is a directory"):
        load(tmp_path)


def test_nul_in_file_name() -> None:
    with pytest.raises(LayoutError, match="NUL"):
        load("a\0b.toml")


def test_bad_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_bytes(b'name = "s"\n# caf\xe9\n')
    with pytest.raises(LayoutError, match="UTF-8") as info:
        load(path)
    assert info.value.where == "line 2"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "secret.toml"
    path.write_text(layout())
    path.chmod(0)
    with pytest.raises(LayoutError, match="cannot be read"):
        load(path)


def test_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + layout().encode())
    assert load(path).name == "s"


def test_paths_are_relative_to_the_layout_file(tmp_path: Path) -> None:
    project = git_init(tmp_path / "project")
    (tmp_path / "conf").mkdir()
    path = tmp_path / "conf" / "squad.toml"
    path.write_text(layout("worktree = true", top='repo = "../project"\nworktree_root = "wt"'))
    squad = load(path)
    assert squad.repo == project.resolve()
    assert squad.worktree_root == (tmp_path / "conf" / "wt").resolve()
    assert squad.source == path.resolve()


def test_defaults_repo_is_the_layout_dir_and_worktrees_go_beside_it(tmp_path: Path) -> None:
    path = tmp_path / "squad.toml"
    path.write_text(layout())
    squad = load(path)
    assert squad.repo == tmp_path.resolve()
    assert squad.worktree_root == tmp_path.resolve().parent / f"{tmp_path.name}.worktrees"
    assert squad.dispatch_policy == "least-loaded"


def test_repo_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    err = error(layout(top='repo = "f"'), tmp_path)
    assert (err.where, "not a directory" in err.message) == ("repo", True)


def test_repo_subdirectory_of_a_git_repository_is_accepted(tmp_path: Path) -> None:
    git_init(tmp_path)
    (tmp_path / "sub").mkdir()
    squad = parse(layout("worktree = true", top='repo = "sub"'), tmp_path)
    assert squad.repo == (tmp_path / "sub").resolve()


# -- the cascade -----------------------------------------------------------------------------


def test_cascade_squad_then_team_then_agent() -> None:
    squad = parse(layout(
        'capacity = 3\nenv = { C = "agent", D = "agent" }',
        defaults='capacity = 1\npriority = 5\ntags = ["x"]\ngrace = 1\n'
                 'env = { A = "squad", B = "squad", C = "squad" }',
        team='[teams.defaults]\npriority = 7\ntags = ["y", "z"]\n'
             'env = { B = "team", C = "team" }',
        more=SECOND_AGENT + 'tags = []\n',
    ))
    a, b = squad.agents()
    assert (a.capacity, a.priority, a.tags, a.grace) == (3, 7, ("y", "z"), 1.0)
    assert a.env == {"A": "squad", "B": "team", "C": "agent", "D": "agent"}
    assert (b.capacity, b.priority, b.tags) == (1, 7, ())
    assert b.env == {"A": "squad", "B": "team", "C": "team"}


def test_command_can_come_from_defaults() -> None:
    text = ('name = "s"\n[defaults]\ncommand = ["x", "--y"]\n[[teams]]\nname = "t"\n'
            '[teams.defaults]\nrole = "Worker"\n[[teams.agents]]\nname = "a"\n')
    agent = parse(text).agents()[0]
    assert agent.command == ("x", "--y")
    assert agent.role == "Worker"


def test_other_teams_do_not_see_a_teams_defaults() -> None:
    squad = parse(layout(team="[teams.defaults]\ncapacity = 4", more=SECOND_TEAM))
    assert [a.capacity for a in squad.agents()] == [4, 1]


@pytest.mark.parametrize(("name", "role"), [("pm", "PM"), ("qa", "QA"), ("dev", "Dev"),
                                            ("server", "Server"), ("x", "X")])
def test_role_defaults_from_the_name(name: str, role: str) -> None:
    text = layout().replace('name = "a"', f'name = "{name}"')
    assert parse(text).agents()[0].role == role


def test_numbers_convert_and_everything_defaults() -> None:
    agent = parse(layout("stall_after = 60\ncpu_limit = 50")).agents()[0]
    assert agent.stall_after == 60.0 and isinstance(agent.stall_after, float)
    assert agent.cpu_limit == 50.0 and isinstance(agent.cpu_limit, float)
    assert (agent.worktree, agent.dispatch, agent.capacity, agent.grace) == (False, True, 1, 10.0)
    assert agent.env == {} and agent.tags == () and agent.branch is None


def test_resource_keys_cascade_and_default() -> None:
    squad = parse(layout(
        'on_memory_limit = "pause"\npinned = true',
        defaults="memory_warn_mb = 400\nmemory_limit_mb = 600\ncpu_limit = 150",
        team='[teams.defaults]\non_memory_limit = "restart"\nmemory_limit_mb = 800',
        more=SECOND_AGENT + "memory_warn_mb = 700\n",
    ))
    a, b = squad.agents()
    assert (a.memory_warn_mb, a.memory_limit_mb, a.on_memory_limit, a.pinned) == (
        400, 800, "pause", True)
    assert (b.memory_warn_mb, b.memory_limit_mb, b.on_memory_limit, b.pinned) == (
        700, 800, "restart", False)
    assert a.cpu_limit == b.cpu_limit == 150.0  # may exceed one core
    plain = parse(layout()).agents()[0]
    assert (plain.memory_warn_mb, plain.memory_limit_mb, plain.on_memory_limit,
            plain.cpu_limit, plain.pinned) == (None, None, "warn", None, False)
    assert parse(layout()).governor == GovernorConfig()


def test_a_bad_default_limit_pair_is_reported_once() -> None:
    err = error(layout(team="[teams.defaults]\nmemory_warn_mb = 700",
                       defaults="memory_limit_mb = 500", more=SECOND_AGENT))
    assert err.where == "teams[0].defaults.memory_warn_mb"
    assert len(err.problems) == 1  # not once per agent of the team


def test_governor_table() -> None:
    squad = parse(layout(top=(
        "[governor]\nmax_active = 3\npause_excess = true\nmemory_low_mb = 2048\n"
        "memory_psi_high = 20\ncpu_psi_high = 60\ncpu_psi_ok = 30\nload_high = 1.5\n"
        'pressure_action = "hibernate"\nrecover_after = 10\nsamples = 2\ndry_run = true')))
    g = squad.governor
    assert (g.max_active, g.pause_excess, g.memory_low_mb, g.pressure_action, g.samples,
            g.dry_run) == (3, True, 2048, "hibernate", 2, True)
    assert g.recover_after == 10.0 and isinstance(g.recover_after, float)
    # Recovery thresholds default from the acting ones: memory +25%, PSI half, load 80%.
    assert (g.ok("memory"), g.ok("memory_psi"), g.ok("cpu_psi"), g.ok("load")) == (
        2560.0, 10.0, 30.0, pytest.approx(1.2))
    assert GovernorConfig().ok("memory") is None and not GovernorConfig().active


def test_dispatch_policies() -> None:
    for policy in DISPATCH_POLICIES:
        assert parse(layout(top=f'dispatch_policy = "{policy}"')).dispatch_policy == policy


# -- squad, team, agent ----------------------------------------------------------------------


def test_lookup_and_directories(tmp_path: Path) -> None:
    repo = git_init(tmp_path / "repo")
    squad = parse(layout(
        'worktree = true\ncwd = "web"',
        top='repo = "repo"\nworktree_root = "wt"',
        team='session = "Task-t"',
        more=SECOND_AGENT + 'cwd = "/abs"\n' + SECOND_TEAM,
    ), tmp_path)
    a = squad.agent("t/a")
    assert a is not None and a.target == "t/a"
    assert squad.agent("t/zzz") is None and squad.agent("nope/a") is None
    assert squad.agent("t") is None
    team = squad.team("t")
    assert team is not None and team.session == "Task-t"
    assert squad.team("u").session == "u"  # type: ignore[union-attr]
    assert squad.worktree_dir(a) == tmp_path.resolve() / "wt" / "t" / "a"
    assert squad.agent_dir(a) == tmp_path.resolve() / "wt" / "t" / "a" / "web"
    assert a.branch_name() == "squad/t/a"
    b = squad.agent("t/b")
    assert b is not None
    assert squad.worktree_dir(b) is None
    assert squad.agent_dir(b) == Path("/abs")
    u = squad.agent("u/a")
    assert u is not None and squad.agent_dir(u) == repo.resolve()
    assert [x.target for x in squad.agents()] == ["t/a", "t/b", "u/a"]


def test_agents_are_hashable_despite_env() -> None:
    squad = parse(layout('env = { A = "1" }'))
    assert squad.agents()[0] in {squad.agents()[0]}
    assert hash(squad) == hash(parse(layout('env = { A = "1" }')))


@pytest.mark.parametrize(("command", "argv", "program"), [
    ("claude", ["claude"], "claude"),
    ("aider --model sonnet", ["aider", "--model", "sonnet"], "aider"),
    ('claude --append-system-prompt "You are the PM"',
     ["claude", "--append-system-prompt", "You are the PM"], "claude"),
    ("npm run dev -- --port 3000", ["npm", "run", "dev", "--", "--port", "3000"], "npm"),
    ("npm run dev | tee log", ["/bin/sh", "-c", "npm run dev | tee log"], "npm"),
    ("cd web && npm start", ["/bin/sh", "-c", "cd web && npm start"], None),
    ("FOO=1 claude", ["/bin/sh", "-c", "FOO=1 claude"], "claude"),
    ("exec codex", ["/bin/sh", "-c", "exec codex"], "codex"),
    ("$EDITOR notes.md", ["/bin/sh", "-c", "$EDITOR notes.md"], None),
    ("~/bin/agent", ["/bin/sh", "-c", "~/bin/agent"], None),
    ("python3 -c 'print(1)'", ["/bin/sh", "-c", "python3 -c 'print(1)'"], "python3"),
    ("run *.py", ["/bin/sh", "-c", "run *.py"], "run"),
    ("echo hi\necho there", ["/bin/sh", "-c", "echo hi\necho there"], None),
    ("./agent.sh --fast", ["./agent.sh", "--fast"], "./agent.sh"),
    (("python3", "-m", "x; y"), ["python3", "-m", "x; y"], "python3"),
    (("/usr/bin/env", "a b"), ["/usr/bin/env", "a b"], "/usr/bin/env"),
])
def test_argv_and_program(command: str | tuple[str, ...], argv: list[str],
                          program: str | None) -> None:
    agent = Agent(team="t", name="a", role="A", command=command)
    assert agent.argv == argv
    assert agent.program == program


def test_check_programs_names_the_missing_program(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    tool = bindir / "mytool"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    script = tmp_path / "run.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    text = (
        'name = "s"\n[[teams]]\nname = "t"\n'
        '[[teams.agents]]\nname = "a"\ncommand = "no-such-program-squad-test --x"\n'
        '[[teams.agents]]\nname = "b"\ncommand = "mytool | cat"\n'
        f'[[teams.agents]]\nname = "c"\ncommand = ["{sys.executable}", "-V"]\n'
        '[[teams.agents]]\nname = "d"\ncommand = "cd x && whatever"\n'
        '[[teams.agents]]\nname = "e"\ncommand = "./run.sh"\n'
        '[[teams.agents]]\nname = "f"\ncommand = "./missing.sh"\n'
        f'[[teams.agents]]\nname = "g"\ncommand = "mytool"\nenv = {{ PATH = "{bindir}" }}\n'
        '[[teams.agents]]\nname = "h"\ncommand = ["/nonexistent/agent"]\n'
    )
    squad = parse(text, tmp_path)
    missing = check_programs(squad, path_env=str(bindir))
    assert [(a.target, prog) for a, prog in missing] == [
        ("t/a", "no-such-program-squad-test"), ("t/f", "./missing.sh"),
        ("t/h", "/nonexistent/agent"),
    ]
    # Without bindir on the search path, `mytool` is missing except where env sets PATH.
    missing = check_programs(squad, path_env="/nonexistent")
    assert [a.name for a, _ in missing] == ["a", "b", "f", "h"]


def test_check_programs_uses_process_path_by_default(monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    squad = parse(layout().replace('"prog"', '"sh"'))
    assert [p for _, p in check_programs(squad)] == ["sh"]
    monkeypatch.setenv("PATH", "/bin:/usr/bin")
    assert check_programs(squad) == []


# -- shipped layouts and round trips ---------------------------------------------------------


@pytest.fixture
def shipped(tmp_path: Path) -> Path:
    """The shipped layouts in a copy of the project that is a git repository."""
    project = git_init(tmp_path / "checkout")
    shutil.copytree(ROOT / "layouts", project / "layouts")
    return project / "layouts"


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_layouts_load_and_round_trip(name: str, shipped: Path, tmp_path: Path) -> None:
    squad = load(shipped / f"{name}.toml")
    assert squad.agents()
    text = dump(squad)
    assert "[defaults]" not in text
    assert loads(text, source="dumped", base_dir=tmp_path / "elsewhere") == squad
    again = tmp_path / f"{name}-dumped.toml"
    again.write_text(text)
    assert load(again) == squad
    assert dump(load(again)).split("\n", 1)[1] == text.split("\n", 1)[1]


def test_shipped_layouts_load_in_this_checkout() -> None:
    # The demo needs nothing; the others need the checkout to be a git repository.
    assert load(ROOT / "layouts" / "demo.toml").name == "demo"
    if subprocess.run(["git", "-C", str(ROOT), "rev-parse"], capture_output=True).returncode == 0:
        for name in SHIPPED:
            load(ROOT / "layouts" / f"{name}.toml")


def test_demo_layout_needs_only_python(shipped: Path) -> None:
    squad = load(shipped / "demo.toml")
    assert squad.name == "demo"
    assert [t.name for t in squad.teams] == ["alpha", "beta"]
    assert not any(a.worktree for a in squad.agents())
    assert all(a.program == "python3" for a in squad.agents())
    seeds = [a.argv[a.argv.index("--seed") + 1] for a in squad.agents()]
    assert len(set(seeds)) == len(seeds)
    pm = squad.agent("alpha/pm")
    assert pm is not None and pm.capacity == 2 and pm.tags == ("planning",)
    assert squad.agent("beta/dev").tags == ("frontend", "css")  # type: ignore[union-attr]


def test_fullstack_layout(shipped: Path) -> None:
    squad = load(shipped / "fullstack.toml")
    assert squad.repo == shipped.parent.resolve()
    assert [(t.name, t.session) for t in squad.teams] == [
        ("frontend", "Task-frontend"), ("backend", "Task-backend")]
    for team in squad.teams:
        roles = {a.name: (a.role, a.worktree, a.dispatch) for a in team.agents}
        assert roles == {"pm": ("PM", False, True), "dev": ("Dev", True, True),
                         "server": ("Server", False, False)}
    server = squad.agent("backend/server")
    assert server is not None and "8000" in server.argv


def test_claude_layout_validates_without_the_programs(shipped: Path) -> None:
    squad = load(shipped / "claude.toml")
    programs = {a.program for a in squad.agents()}
    assert {"claude", "codex", "aider"} <= programs
    missing = check_programs(squad, path_env=str(shipped))
    assert {p for _, p in missing} == programs


def test_round_trip_with_every_field_set(tmp_path: Path) -> None:
    repo = git_init(tmp_path / "repo").resolve()
    full = Agent(
        team="t", name="full", role="Full Stack", command=("prog", "--flag", "a b"),
        cwd="sub/dir", worktree=True, branch="feature/full", base="origin/main",
        env={"A": "1", "B": "two words"},
        tags=("x", "y"), capacity=3, priority=-2, dispatch=False,
        ready_pattern=r"^> $", busy_pattern=r"esc to interrupt", input_pattern=r"\(y/n\)",
        memory_warn_mb=384, memory_limit_mb=512, on_memory_limit="hibernate", cpu_limit=150.5,
        pinned=True, stall_after=30.0, grace=0.0, submit_delay=0.25,
    )
    plain = Agent(team="t", name="pm", role="PM", command="claude --x 'quoted arg' | tee l")
    other = Agent(team="u", name="dev", role="Dev", command="codex", worktree=True)
    squad = Squad(
        name="every", repo=repo, worktree_root=(tmp_path / "wt").resolve(),
        teams=(Team("t", "Task-t", (full, plain)), Team("u", "u", (other,))),
        dispatch_policy="round-robin",
        governor=GovernorConfig(
            max_active=4, pause_excess=True, memory_low_mb=1024, memory_ok_mb=1500,
            memory_psi_high=25.0, memory_psi_ok=5.5, cpu_psi_high=80.0, cpu_psi_ok=40.0,
            load_high=2.0, load_ok=1.5, pressure_action="hibernate", recover_after=0.0,
            samples=1, dry_run=True),
    )
    default = GovernorConfig()
    assert not squad.governor.to_table().keys() ^ default.__dataclass_fields__.keys(), \
        "every governor key is set here, so each one is round-tripped"
    text = dump(squad)
    assert "[governor]" in text
    back = loads(text, source="dumped", base_dir=tmp_path / "anywhere")
    assert back == squad
    assert back.agent("t/full") == full
    assert back.agent("t/full").env == {"A": "1", "B": "two words"}  # type: ignore[union-attr]
