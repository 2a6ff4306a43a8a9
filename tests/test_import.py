"""Import: tmuxp workspaces and tmuxinator projects, in the shapes their documentation shows
(tests/workspaces/), become layouts that load, with a note for everything dropped."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from squad.importer import SHELL_AFTER, WorkspaceError, import_workspace
from squad.layout import Squad, loads
from tests.conftest import PY, run_squad, wait_for

WORKSPACES = Path(__file__).resolve().parent / "workspaces"
TESTS = WORKSPACES.parent


def convert(name: str, base_dir: Path | None = WORKSPACES) -> tuple[Squad, str, list[str]]:
    """Import one fixture; check the text loads and is what the squad freezes to."""
    path = WORKSPACES / name
    text, notes = import_workspace(path, base_dir=base_dir)
    squad = loads(text, source=name, base_dir=base_dir or Path("/"))
    assert all(n.startswith(f"{path}: ") for n in notes)
    return squad, text, notes


def agents(squad: Squad) -> dict[str, tuple[str, str | tuple[str, ...]]]:
    return {a.name: (a.role, a.command) for a in squad.agents()}


def noted(notes: list[str], *fragments: str) -> str:
    """The one note containing every fragment."""
    found = [n for n in notes if all(f in n for f in fragments)]
    assert len(found) == 1, (fragments, notes)
    return found[0]


def test_every_fixture_converts_and_loads() -> None:
    files = sorted(p.name for p in WORKSPACES.iterdir())
    assert len(files) >= 6
    for name in files:
        squad, text, _ = convert(name)
        assert squad.agents() and len(squad.teams) == 1
        _, again, _ = convert(name, base_dir=None)  # absolute paths: loads anywhere
        assert loads(again, source=name, base_dir=Path("/")) == squad


def test_tmuxp_minimal_session() -> None:
    squad, text, notes = convert("tmuxp-minimal.yaml")
    assert squad.name == "my-tmux-session" and squad.teams[0].session == "my-tmux-session"
    assert agents(squad) == {"window-1": ("Window-1", SHELL_AFTER)}
    assert squad.repo == WORKSPACES
    assert "repo" not in text  # the file's directory, where the layout is written
    noted(notes, "session_name", "'My tmux session'", "'my-tmux-session'")
    noted(notes, "windows[0]", "has no name", "'window-1'")
    noted(notes, "no start_directory", str(WORKSPACES))
    assert len(notes) == 3


def test_tmuxp_panes_and_shell_command_lists() -> None:
    squad, text, notes = convert("tmuxp-panes.yaml")
    assert agents(squad) == {
        "dev-window": ("dev window", r"cd /var/log && ls -al | grep \.log"),
        "long-form": ("long form", "echo 'did you know' && echo 'you can inline'"),
        "skip-send": ("skip send", 'echo "___$((11 + 1))___"'),
        "blank-pane-test": ("Blank pane test", SHELL_AFTER),
        "python": ("python", "python3"),
    }
    noted(notes, 'windows[0] "dev window".layout', "tiled")
    noted(notes, 'windows[0] "dev window".shell_command_before', "`cd ~/`")
    noted(notes, 'windows[0] "dev window".panes', "3 more panes", "`echo second pane`",
          "`echo forth pane`")
    noted(notes, 'windows[0] "dev window":', "2 commands", "&&", "stops at the first failure")
    noted(notes, 'windows[1] "long form".focus')
    noted(notes, 'windows[1] "long form".options')
    noted(notes, 'windows[2] "skip send".panes[0].shell_command[1]', "without pressing Enter")
    noted(notes, 'windows[3] "Blank pane test".panes', "2 more panes", "an empty shell")
    noted(notes, 'windows[4] "python"', "typed into `python3`", "print('typed into python')")
    noted(notes, "suppress_history")
    # Notes come in the file's order: the session's first, then window by window.
    firsts = [n.split(": ")[1][:10] for n in notes]
    assert firsts == sorted(firsts, key=lambda w: (w.startswith("windows"), w))


def test_tmuxp_start_directory_and_environment() -> None:
    squad, text, notes = convert("tmuxp-start-directory.yaml")
    assert squad.repo == TESTS
    by_name = {a.name: a for a in squad.agents()}
    assert by_name["agents"].cwd == "agents"
    assert squad.agent_dir(by_name["agents"]) == TESTS / "agents"
    assert by_name["should-be-tmp"].cwd == str(Path("/tmp").resolve())
    assert by_name["pane-directory"].cwd == "workspaces"  # a pane's own directory wins
    assert by_name["django-project"].env == {"EDITOR": "/usr/bin/vim", "SERVER_PORT": "8009"}
    # Window, then first pane, environment over the session's; numbers become strings.
    assert by_name["another-django-project"].env == {
        "EDITOR": "/usr/bin/vim", "SERVER_PORT": "8010",
        "DJANGO_SETTINGS_MODULE": "my_app.settings.local-testing"}
    doc_text = text.split("[[teams]]")[0]
    assert 'repo = ".."' in doc_text
    assert 'env = { EDITOR = "/usr/bin/vim", SERVER_PORT = "8009" }' in doc_text  # [defaults]
    noted(notes, 'windows[1] "Another Django project".panes', "1 more pane",
          "runserver 0.0.0.0:8011")
    noted(notes, "session_name", "'start-directory'")
    assert len(notes) == 2


def test_tmuxp_json_workspace() -> None:
    squad, text, notes = convert("tmuxp-session.json")
    assert squad.name == "json-session"
    assert agents(squad) == {
        "editor": ("editor", "vim"),
        "server": ("server", "cd .. && python3 -m http.server 8000"),
        "shell": ("shell", f"cd /tmp && {SHELL_AFTER}"),
    }
    assert all(a.env == {"EDITOR": "/usr/bin/vim",
                         "DJANGO_SETTINGS_MODULE": "my_app.settings.local"}
               for a in squad.agents())
    noted(notes, "environment.bad-name", "dropped")
    noted(notes, "before_script", "run it yourself")
    noted(notes, "shell_command_before", "`source .venv/bin/activate`")
    noted(notes, 'windows[0] "editor".panes[0].focus')
    noted(notes, 'windows[0] "editor".panes', "`git status`")
    noted(notes, 'windows[2] "shell"', "`cd /tmp` only prepares the shell", SHELL_AFTER)


def test_tmuxinator_sample_project(private_env: Path) -> None:
    squad, text, notes = convert("tmuxinator-sample.yml")
    assert squad.name == "sample" and squad.repo == private_env  # root: ~/
    assert agents(squad) == {
        "editor": ("editor", "vim"),
        "shell": ("shell", "git pull && git merge"),  # a window given as a list of commands
        "guard": ("guard", SHELL_AFTER),
        "database": ("database", "bundle exec rails db"),
        "server": ("server", "bundle exec rails s"),
        "logs": ("logs", "tail -f log/development.log"),
        "capistrano": ("capistrano", SHELL_AFTER),  # `- capistrano:` runs nothing
        "server-2": ("server", "ssh user@example.com"),  # names made unique
    }
    noted(notes, "socket_name")
    noted(notes, "pre_window", "`rbenv shell 2.0.0-p247`", "before its own commands")
    noted(notes, "tmux_options")
    noted(notes, 'windows[0] "editor".pre', "I get run in each pane")
    noted(notes, 'windows[0] "editor".layout', "main-vertical")
    noted(notes, 'windows[0] "editor".panes', "3 more panes", "an empty shell", "`top`",
          '`ssh server && echo "Hello"`')
    noted(notes, 'windows[1] "shell"', "tmuxinator types its 2 commands")
    noted(notes, 'windows[2] "guard".layout', "tiled")


def test_tmuxinator_hooks_window_root_named_panes_and_erb() -> None:
    squad, text, notes = convert("tmuxinator-hooks.yml")
    assert squad.repo == WORKSPACES
    editor = squad.agent("blog/editor")
    assert editor is not None and editor.command == "vim"
    assert editor.cwd == str(TESTS / "agents")  # root relative to the project root
    assert agents(squad)["window-2"] == ("Window-2", 'echo "this is a window with no name"')
    assert agents(squad)["server-local"][0] == "server-local"
    for key in ("on_project_start", "on_project_stop", "startup_window", "attach"):
        noted(notes, f": {key}: ")
    noted(notes, "on_project_start", "`docker compose up -d`", "hook")
    noted(notes, 'windows[0] "editor".synchronize')
    noted(notes, 'windows[0] "editor".focused_pane')
    noted(notes, 'windows[0] "editor".panes[0]', "pane title 'editor'")
    noted(notes, 'windows[0] "editor".panes', "1 more pane", "`guard`")
    noted(notes, "windows[1]", "has no name")
    noted(notes, 'windows[3] "server.local"', "not usable as a role", "'server-local'")
    noted(notes, "line 22", "ERB")


def test_joined_commands_run_as_tmuxp_typed_them_until_one_fails(tmp_path: Path) -> None:
    # Commands that would change what && applies to (;, &, comments) are grouped.
    ws = tmp_path / "ws.yaml"
    ws.write_text(f"""
session_name: joined
start_directory: {tmp_path}
windows:
  - window_name: all
    panes:
      - shell_command:
          - cd {tmp_path}
          - echo one > out.txt; echo two >> out.txt
          - echo three >> out.txt # a comment
          - (sleep 0 &) ; echo four >> out.txt
          - echo five >> out.txt
  - window_name: stops
    panes:
      - shell_command:
          - echo six >> out.txt
          - "false"
          - echo never >> out.txt
""")
    text, _ = import_workspace(ws)
    squad = loads(text, source="ws", base_dir=tmp_path)
    for agent in squad.agents():
        subprocess.run(agent.argv, cwd=tmp_path, check=False, timeout=30)
    assert (tmp_path / "out.txt").read_text().split() == ["one", "two", "three", "four",
                                                          "five", "six"]


def test_names_roles_and_environment_are_made_usable(tmp_path: Path) -> None:
    ws = tmp_path / "odd.yaml"
    ws.write_text("""
session_name: ok_name
environment:
  SQUAD_NAME: mine
  GOOD: "1"
  FLAG: true
windows:
  - window_name: "dev: api.v2"
    panes: [vim]
  - window_name: Dev
    panes: [vim]
  - window_name: dev
    panes: [vim]
  - window_name: "🚀"
    panes: [htop]
  - window_name: a very long window name that tmux would take but squad not
    panes: [top]
""")
    text, notes = import_workspace(ws, base_dir=tmp_path)
    squad = loads(text, source="odd", base_dir=tmp_path)
    assert squad.name == "ok_name"
    assert [(a.name, a.role) for a in squad.agents()] == [
        ("dev-api-v2", "dev api-v2"), ("dev", "Dev"), ("dev-2", "dev"),
        ("window-4", "🚀"), ("a-very-long-window-name-that-tmux-would-take-but-squad-not",
                            "a very long window name that tmu")]
    assert squad.agents()[0].env == {"GOOD": "1", "FLAG": "true"}
    noted(notes, "environment.SQUAD_NAME", "squad's own")
    noted(notes, 'windows[0] "dev: api.v2"', "not usable as a role")
    noted(notes, "windows[4]", "not usable as a role", "at most 32")
    assert not any("session_name" in n for n in notes)


def test_variables_in_directories_are_expanded_and_said(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROJECT_DIR", str(tmp_path))
    ws = tmp_path / "vars.yaml"
    ws.write_text("session_name: vars\nstart_directory: ${PROJECT_DIR}\n"
                  "windows:\n  - window_name: w\n    panes: [ls]\n")
    text, notes = import_workspace(ws)
    assert loads(text, source="v", base_dir=Path("/")).repo == tmp_path.resolve()
    noted(notes, "start_directory", "${PROJECT_DIR}", "expanded")


def test_a_missing_window_directory_is_a_note_and_a_missing_session_one_an_error(
        tmp_path: Path) -> None:
    ws = tmp_path / "dirs.yaml"
    ws.write_text("session_name: d\nwindows:\n  - window_name: w\n    start_directory: gone\n"
                  "    panes: [ls]\n")
    _, notes = import_workspace(ws)
    noted(notes, 'windows[0] "w".start_directory', "not a directory", "will not start")
    ws.write_text("session_name: d\nstart_directory: gone\nwindows:\n  - panes: [ls]\n")
    with pytest.raises(WorkspaceError, match=r"dirs.yaml: start_directory: .*gone is not a "
                                             r"directory on this machine"):
        import_workspace(ws)


BAD = [
    ("bad.yaml", "session_name: x\nwindows: [unclosed\n", r"line 3: is not valid YAML"),
    ("bad.json", '{"session_name": "x",\n "windows": }', r"line 2: is not valid JSON"),
    ("list.yaml", "- a\n- b\n", r"not a tmuxp or tmuxinator workspace: expected settings"),
    ("empty.yaml", "", r"got nothing"),
    ("neither.yaml", "windows:\n  - panes: [ls]\n", r"neither session_name .* nor name"),
    ("nowin.yaml", "session_name: x\n", r"no windows: add a `windows:` list"),
    ("nowin2.yml", "name: x\nwindows: []\n", r"windows: no windows"),
    ("winmap.yaml", "session_name: x\nwindows:\n  a: b\n", r"windows: must be a list"),
    ("winstr.yaml", "session_name: x\nwindows:\n  - just a string\n",
     r"windows\[0\]: must be a window"),
    ("panes.yaml", "session_name: x\nwindows:\n  - window_name: w\n    panes: vim\n",
     r'windows\[0\] "w".panes: must be a list of panes'),
    ("pane.yaml", "session_name: x\nwindows:\n  - panes: [12]\n", r"panes\[0\]: must be a "),
    ("env.yaml", "session_name: x\nenvironment: [A]\nwindows:\n  - panes: [ls]\n",
     r"environment: must be a mapping"),
    ("mux.yml", "name: x\nwindows:\n  - a: 1\n    b: 2\n", r"windows\[0\]: must be one "),
    ("muxpane.yml", "name: x\nwindows:\n  - a:\n      panes:\n        - [[nested]]\n",
     r'windows\[0\] "a".panes\[0\]\[0\]: must be a command'),
]


@pytest.mark.parametrize(("name", "text", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_one_clear_error_naming_the_file(name: str, text: str, message: str,
                                                      tmp_path: Path) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(WorkspaceError) as info:
        import_workspace(path)
    said = str(info.value)
    assert said.startswith(f"{path}: ") and "\n" not in said
    assert __import__("re").search(message, said), said


def test_unreadable_inputs(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match="no such file"):
        import_workspace(tmp_path / "missing.yaml")
    with pytest.raises(WorkspaceError, match="is a directory"):
        import_workspace(tmp_path)
    (tmp_path / "latin1.yaml").write_bytes(b"session_name: caf\xe9\n")
    with pytest.raises(WorkspaceError, match="line 1: is not UTF-8"):
        import_workspace(tmp_path / "latin1.yaml")


def test_a_layout_problem_is_reported_against_the_window(tmp_path: Path) -> None:
    ws = tmp_path / "nul.json"
    ws.write_text(json.dumps({"session_name": "x", "windows": [
        {"window_name": "ok", "panes": ["ls"]},
        {"window_name": "bad", "panes": ["echo a\u0000b"]}]}))
    with pytest.raises(WorkspaceError, match=r'nul.json: windows\[1\] "bad".command: cannot '
                                             r"become a squad agent: must not contain a NUL"):
        import_workspace(ws)


# -- the command ------------------------------------------------------------------------

wired = pytest.mark.skipif(
    "import" not in __import__("squad.cli", fromlist=["COMMANDS"]).COMMANDS,
    reason="squad/cli.py does not route `freeze` and `import` to squad.cli_layout yet")


@wired
def test_import_prints_the_layout_and_notes_on_stderr(tmp_path: Path) -> None:
    proc = run_squad("import", str(WORKSPACES / "tmuxp-panes.yaml"))
    assert proc.returncode == 0, proc.stderr
    squad = loads(proc.stdout, source="stdout", base_dir=tmp_path)
    assert squad.repo == WORKSPACES  # absolute on stdout
    notes = proc.stderr.strip().splitlines()
    assert notes and all(n.startswith("squad: note: ") for n in notes)
    _, expected = import_workspace(WORKSPACES / "tmuxp-panes.yaml")
    assert [n.removeprefix("squad: note: ") for n in notes] == expected

    as_json = run_squad("import", str(WORKSPACES / "tmuxp-panes.yaml"), "--json")
    assert as_json.returncode == 0 and not as_json.stderr
    data = json.loads(as_json.stdout)
    assert data["layout"] == proc.stdout and data["notes"] == expected


@wired
def test_import_writes_a_file_and_never_replaces_one_without_force(tmp_path: Path) -> None:
    out = tmp_path / "squad.toml"
    first = run_squad("import", str(WORKSPACES / "tmuxinator-sample.yml"), "-o", str(out))
    assert first.returncode == 0, first.stderr
    assert f"wrote {out}" in first.stdout and "8 agents" in first.stdout
    assert loads(out.read_text(), source="out", base_dir=tmp_path).name == "sample"
    out.write_text("# mine\n")
    again = run_squad("import", str(WORKSPACES / "tmuxinator-sample.yml"), "-o", str(out))
    assert again.returncode == 2 and "already exists" in again.stderr
    assert out.read_text() == "# mine\n"
    forced = run_squad("import", "-o", str(out), "--force",
                       str(WORKSPACES / "tmuxinator-sample.yml"))
    assert forced.returncode == 0, forced.stderr
    assert out.read_text().startswith('name = "sample"')
    bad = run_squad("import", str(tmp_path / "nothing.yaml"))
    assert bad.returncode == 2
    assert bad.stderr == f"squad: {tmp_path / 'nothing.yaml'}: no such file\n"


@wired
def test_an_imported_workspace_comes_up(socket: str, tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "sub").mkdir(parents=True)
    shutil.copy(WORKSPACES / "tmuxp-minimal.yaml", tmp_path / "unused.yaml")
    ws = tmp_path / "team.yaml"
    ws.write_text(f"""
session_name: imported
start_directory: ./project
environment:
  GREETING: hello
windows:
  - window_name: Worker
    start_directory: sub
    panes:
      - shell_command:
          - echo "$GREETING" > greeting.txt
          - exec {PY} -c "import time; time.sleep(600)"
      - htop
  - window_name: shell
    panes:
      - null
""")
    out = tmp_path / "imported.toml"
    converted = run_squad("import", str(ws), "-o", str(out))
    assert converted.returncode == 0, converted.stderr
    up = run_squad("-L", socket, "up", str(out))
    assert up.returncode == 0, up.stderr
    wait_for(lambda: (project / "sub" / "greeting.txt").exists()
             and (project / "sub" / "greeting.txt").read_text() == "hello\n",
             what="the imported command to run in its directory with its environment")
    listed = run_squad("-L", socket, "ls", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {r["agent"]: r for r in json.loads(listed.stdout)}
    assert {(name, r["role"]) for name, r in rows.items()} == {("worker", "Worker"),
                                                              ("shell", "shell")}
    down = run_squad("-L", socket, "down")
    assert down.returncode == 0, down.stderr
