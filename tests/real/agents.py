"""Launch settings for the real agent CLIs: where they are installed, a throwaway home per
agent that starts each one straight at its prompt without any network, and shims so that a
squad layout can say plain ``command = "claude"`` the way users write it.

Everything a CLI needs lives in its home (settings files) or its environment, never in extra
command-line flags, because users write plain commands and squad must cope with those.

The CLIs are installed by ``.ci/install-agents`` into ``$SQUAD_AGENTS_DIR`` (default
``~/.cache/squad-agents``): the npm packages under ``npm/node_modules``, Aider in the venv
``aider/``. A CLI found on ``PATH`` is used when that directory lacks it.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.real.terminal import Terminal

CLIS = ("claude", "codex", "gemini", "aider")
API_KEY = "sk-fake-squad-test-key-0123456789abcdef"  # Claude approves a key by its tail
MODEL = "fake-model"  # unknown to every CLI: no model-upgrade dialogs


def agents_dir() -> Path:
    """Where ``.ci/install-agents`` puts the CLIs: ``$SQUAD_AGENTS_DIR``, else under the
    ``HOME`` this module saw when first imported (at collection, before each test gets a
    private ``HOME``)."""
    configured = os.environ.get("SQUAD_AGENTS_DIR")
    if configured:
        return Path(configured).expanduser()
    return Path(_REAL_HOME) / ".cache" / "squad-agents"


_REAL_HOME = os.environ.get("HOME") or pwd.getpwuid(os.getuid()).pw_dir


@dataclass(frozen=True)
class CLI:
    """One agent CLI: how it is installed, and the few screen and key facts a test needs to
    drive it (kept here, independent of squad's pattern packs, which the tests check)."""

    name: str  # the command users type
    package: str  # what .ci/install-agents installs
    version: str  # the pinned version the recorded screens come from
    relpath: str  # the program inside the agents directory
    api: str  # the fake model API it speaks
    ready: str  # regex: its prompt is on screen (it may still be busy: see ``busy``)
    busy: str  # regex: it says it is working
    question: str  # regex: its permission question is open
    approve: tuple[str, ...]  # tmux keys answering the question "yes"
    deny: tuple[str, ...]  # tmux keys answering "no"
    quit: tuple[str, ...]  # tmux keys that end it from its idle prompt
    interrupt: tuple[str, ...]  # tmux keys that stop the model mid-answer
    submit_gap: float = 0.0  # seconds between pasting a prompt and pressing Enter

    def program(self) -> Path | None:
        """The installed program: the agents directory first, then ``PATH``."""
        candidate = agents_dir() / self.relpath
        if os.access(candidate, os.X_OK):
            return candidate
        found = shutil.which(self.name)
        return Path(found) if found else None

    def missing(self) -> str | None:
        """Why this CLI cannot run here (with how to install it), or None."""
        if self.program() is None:
            return (f"{self.name} ({self.package}) is not installed: looked for "
                    f"{agents_dir() / self.relpath} and on PATH. Install it with "
                    f"`.ci/install-agents` (set SQUAD_AGENTS_DIR to choose where)")
        if self.name in ("codex", "gemini") and shutil.which("node") is None:
            return f"{self.name} needs node on PATH (Node.js 20 or later)"
        return None

    def installed_version(self) -> str | None:
        """The version the program reports (``--version``), or None."""
        program = self.program()
        if program is None:
            return None
        try:
            out = subprocess.run([str(program), "--version"], capture_output=True, text=True,
                                 timeout=60, env=_version_env()).stdout
        except (OSError, subprocess.TimeoutExpired):
            return None
        found = re.search(r"\d+\.\d+\.\d+", out)
        return found.group(0) if found else None


CLAUDE = CLI(
    "claude", "@anthropic-ai/claude-code", "2.1.197", "npm/node_modules/.bin/claude",
    "anthropic",
    # The input box: a rule, then the prompt line (its footer hint varies: `? for
    # shortcuts`, or a notice such as "tmux focus-events off").
    ready=r"^─{20,}\n❯", busy=r"esc to interrupt",
    question=r"Do you want to proceed\?", approve=("Enter",), deny=("Escape",),
    quit=("C-c", "C-c"), interrupt=("Escape",))
CODEX = CLI(
    "codex", "@openai/codex", "0.171.0", "npm/node_modules/.bin/codex", "responses",
    # The composer stays on screen while Codex works, and its "Working" line goes away
    # while an answer streams: the prompt alone does not mean idle.
    ready=r"Ask Codex to do anything", busy=r"esc to interrupt",
    question=r"Would you like to run the following command\?", approve=("y",),
    deny=("Escape",), quit=("C-c", "C-c"), interrupt=("Escape",))
GEMINI = CLI(
    "gemini", "@google/gemini-cli", "0.61.0", "npm/node_modules/.bin/gemini", "gemini",
    ready=r"Type your message", busy=r"esc to cancel",
    question=r"Allow execution of", approve=("Enter",), deny=("Escape",),
    quit=("C-c", "C-c"), interrupt=("Escape",),
    # An Enter that arrives with the paste becomes a newline in Gemini's input box.
    submit_gap=0.2)
AIDER = CLI(
    "aider", "aider-chat", "0.86.2", "aider/bin/aider", "chat",
    ready=r"^diff> ?\Z", busy=r"Waiting for ",
    question=r"\(Y\)es/\(N\)o.*\[(Yes|No)\]: ?\Z", approve=("y", "Enter"),
    deny=("n", "Enter"), quit=("C-d",), interrupt=("C-c",))
BY_NAME = {c.name: c for c in (CLAUDE, CODEX, GEMINI, AIDER)}


def _version_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(DISABLE_AUTOUPDATER="1", NO_UPDATE_NOTIFIER="1")
    return env


def skip_unless_installed(cli: str) -> None:
    """Skip the calling test, saying what is missing and how to install it."""
    reason = BY_NAME[cli].missing()
    if reason:
        pytest.skip(reason)


def installed(cli: str) -> bool:
    return BY_NAME[cli].missing() is None


# -- a port that refuses every connection ------------------------------------------------

_REFUSER: socket.socket | None = None


def refusing_port() -> int:
    """A local port bound but never listening, so connecting to it is refused at once.

    The proxies point there: any attempt of a CLI to reach the internet fails fast instead
    of hanging, while ``NO_PROXY`` lets 127.0.0.1 (the fake model) through.
    """
    global _REFUSER
    if _REFUSER is None:
        _REFUSER = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        _REFUSER.bind(("127.0.0.1", 0))
    return _REFUSER.getsockname()[1]


# -- one agent's throwaway world -----------------------------------------------------------


@dataclass
class RealAgent:
    """One CLI set up to run offline: its home, work directory, shims and environment.

    ``env`` holds only what differs from a clean environment (HOME, PATH, API settings,
    proxies, temp dirs); :meth:`full_env` adds the basics for starting it outside squad.
    """

    cli: CLI
    name: str  # the agent's name in a layout (the CLI's name unless several share one)
    home: Path
    workdir: Path
    bin: Path  # shims named claude, codex, gemini, aider
    model_url: str
    env: dict[str, str] = field(default_factory=dict)

    def full_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """A complete environment for starting the CLI directly (tmux new-session -e ...)."""
        env = {k: v for k, v in (base or os.environ).items()
               if k in ("USER", "LOGNAME", "SHELL")}
        env["COLORTERM"] = "truecolor"
        env.update(self.env)
        return env

    def processes(self) -> list[int]:
        """Pids of every live process that has this agent's HOME in its environment."""
        return processes_with_env(f"HOME={self.home}")


def processes_with_env(entry: str) -> list[int]:
    """Pids whose environment holds exactly ``entry`` (``NAME=value``); zombies excluded."""
    needle = entry.encode() + b"\0"
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            environ = Path(f"/proc/{name}/environ").read_bytes()
            if not (environ.startswith(needle) or b"\0" + needle in environ):
                continue
            stat = Path(f"/proc/{name}/stat").read_bytes()
        except OSError:
            continue
        state = stat[stat.rfind(b")") + 2:][:1]
        if state not in (b"Z", b"X"):
            found.append(int(name))
    return found


def kill_processes(pids: Iterable[int], grace: float = 3.0) -> None:
    """TERM, wait up to ``grace`` seconds, then KILL whatever is left."""
    pids = list(pids)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.05)
    for pid in pids:
        if _alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2:][:1] not in (b"Z", b"X")


def write_shims(bin_dir: Path) -> Path:
    """``bin_dir`` with one executable per installed CLI, named as users type it.

    A shim is ``exec PROGRAM "$@"``: nothing stays between squad and the CLI. Codex's shim
    adds nothing either; its background server is turned off in its config.
    """
    bin_dir.mkdir(parents=True, exist_ok=True)
    for cli in BY_NAME.values():
        program = cli.program()
        if program is None:
            continue
        shim = bin_dir / cli.name
        shim.write_text(f'#!/bin/sh\nexec "{program}" "$@"\n')
        shim.chmod(0o755)
    return bin_dir


def real_agent_env(cli: str, root: Path, model: object, *, name: str | None = None,
                   workdir: Path | None = None, trust: Iterable[Path] = ()) -> RealAgent:
    """Set up ``cli`` to run offline against the fake model ``model`` (a running
    :class:`~tests.real.fakemodel.FakeModel`, or its URL).

    Creates ``root/<name>/home`` (settings, temp dirs) and, unless ``workdir`` is given,
    ``root/<name>/work``, where ``name`` defaults to the CLI's (give one per agent when
    several run the same CLI); ``root/bin`` holds the shims. The work directory, ``root``
    and any ``trust`` directories are marked trusted, so no trust dialog appears there
    (worktrees under ``root`` included).
    """
    spec = BY_NAME[cli]
    name = name or cli
    root = Path(root).resolve()
    home = root / name / "home"
    work = Path(workdir).resolve() if workdir else root / name / "work"
    for d in (home, work, home / "tmp", home / "run", home / ".config", home / ".cache",
              home / ".local" / "share", home / ".local" / "state"):
        d.mkdir(parents=True, exist_ok=True)
    (home / "run").chmod(0o700)
    bin_dir = write_shims(root / "bin")
    trusted = list(dict.fromkeys([work, root, *(Path(t).resolve() for t in trust)]))
    proxy = f"http://127.0.0.1:{refusing_port()}"
    node = shutil.which("node")
    path = [str(bin_dir)]
    if node:
        path.append(str(Path(node).parent))
    path += ["/usr/local/bin", "/usr/bin", "/bin"]
    env = {
        "HOME": str(home),
        "PATH": os.pathsep.join(dict.fromkeys(path)),
        "TMPDIR": str(home / "tmp"),
        "XDG_RUNTIME_DIR": str(home / "run"),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_STATE_HOME": str(home / ".local" / "state"),
        "HTTP_PROXY": proxy, "HTTPS_PROXY": proxy, "ALL_PROXY": proxy,
        "http_proxy": proxy, "https_proxy": proxy, "all_proxy": proxy,
        "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
        "LANG": "C.UTF-8",  # the CLIs draw with Unicode glyphs; the screens assume UTF-8
        "LC_ALL": "C.UTF-8",
        "NO_UPDATE_NOTIFIER": "1",
        "NPM_CONFIG_UPDATE_NOTIFIER": "false",
    }
    model_url = str(getattr(model, "url", model)).rstrip("/")
    agent = RealAgent(spec, name, home, work, bin_dir, model_url, env)
    _SETUP[cli](agent, trusted)
    return agent


def _claude(agent: RealAgent, trusted: list[Path]) -> None:
    """Claude Code: API settings in the environment; ``~/.claude.json`` says onboarding is
    done, the key is approved (by its last 20 characters), the marketplace install was
    already tried, and the folders are trusted."""
    agent.env.update({
        "ANTHROPIC_BASE_URL": agent.model_url,
        "ANTHROPIC_API_KEY": API_KEY,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "CLAUDE_CODE_DISABLE_OFFICIAL_MARKETPLACE_AUTOINSTALL": "1",
        "CLAUDE_CODE_TMPDIR": agent.env["TMPDIR"],
    })
    state = {
        "hasCompletedOnboarding": True,
        "lastOnboardingVersion": agent.cli.version,
        "theme": "dark",
        "numStartups": 1,
        "customApiKeyResponses": {"approved": [API_KEY[-20:]], "rejected": []},
        "officialMarketplaceAutoInstallAttempted": True,
        "bypassPermissionsModeAccepted": False,
        "projects": {str(d): {"hasTrustDialogAccepted": True, "allowedTools": [],
                              "hasCompletedProjectOnboarding": True} for d in trusted},
    }
    (agent.home / ".claude.json").write_text(json.dumps(state, indent=2))
    (agent.home / ".claude").mkdir(exist_ok=True)


def _codex(agent: RealAgent, trusted: list[Path]) -> None:
    """Codex: ``$CODEX_HOME/config.toml`` with the fake model as a custom Responses
    provider, approvals on request, no update checks, analytics, tips or background server.

    ``[features] daemon_auto_start = false`` is what keeps Codex from starting its
    app-server daemon (which calls setsid and outlives the TUI): no ``--no-daemon`` flag is
    needed. One request has no switch: each start fetches an announcement from
    raw.githubusercontent.com, which the refusing proxy turns away at once.
    """
    codex_home = agent.home / ".codex"
    codex_home.mkdir(exist_ok=True)
    agent.env.update({"CODEX_HOME": str(codex_home), "FAKE_MODEL_API_KEY": API_KEY})
    projects = "".join(f'\n[projects."{d}"]\ntrust_level = "trusted"\n' for d in trusted)
    (codex_home / "config.toml").write_text(f"""\
model = "{MODEL}"
model_provider = "fake"
approval_policy = "on-request"
sandbox_mode = "workspace-write"
check_for_update_on_startup = false

[model_providers.fake]
name = "fake"
base_url = "{agent.model_url}/v1"
wire_api = "responses"
env_key = "FAKE_MODEL_API_KEY"
request_max_retries = 0
stream_max_retries = 0

[analytics]
enabled = false

[feedback]
enabled = false

[tui]
show_tooltips = false

[features]
daemon_auto_start = false
plugins = false
apps = false
in_app_updates = false
{projects}""")


def _gemini(agent: RealAgent, trusted: list[Path]) -> None:
    """Gemini CLI: key and base URL in the environment; ``~/.gemini/settings.json`` picks
    API-key auth and turns off folder trust, updates, statistics and tips."""
    agent.env.update({
        "GEMINI_API_KEY": API_KEY,
        "GOOGLE_GEMINI_BASE_URL": agent.model_url,
        "GEMINI_CLI_NO_RELAUNCH": "true",
    })
    gemini = agent.home / ".gemini"
    gemini.mkdir(exist_ok=True)
    settings = {
        "security": {"auth": {"selectedType": "gemini-api-key"},
                     "folderTrust": {"enabled": False}},
        "general": {"disableAutoUpdate": True, "disableUpdateNag": True,
                    "enableAutoUpdate": False, "enableAutoUpdateNotification": False},
        "privacy": {"usageStatisticsEnabled": False},
        "telemetry": {"enabled": False},
        "ui": {"hideTips": True, "hideBanner": True},
        "ide": {"enabled": False, "hasSeenNudge": True},
    }
    (gemini / "settings.json").write_text(json.dumps(settings, indent=2))
    (gemini / "trustedFolders.json").write_text(
        json.dumps({str(d): "TRUST_FOLDER" for d in trusted}, indent=2))


def _aider(agent: RealAgent, trusted: list[Path]) -> None:
    """Aider: ``~/.aider.conf.yml`` names the fake model and turns off git, update checks,
    release notes, model warnings and the repo map; analytics are declined for good and the
    model price list is read from a local file instead of the internet."""
    agent.env.update({"OPENAI_API_KEY": API_KEY, "OPENAI_API_BASE": f"{agent.model_url}/v1",
                      "LITELLM_LOCAL_MODEL_COST_MAP": "True"})
    (agent.home / ".aider.conf.yml").write_text(f"""\
model: openai/{MODEL}
openai-api-base: {agent.model_url}/v1
edit-format: diff
git: false
auto-commits: false
check-update: false
show-release-notes: false
show-model-warnings: false
map-tokens: 0
detect-urls: false
""")
    caches = agent.home / ".aider" / "caches"
    caches.mkdir(parents=True, exist_ok=True)
    (caches / "model_prices_and_context_window.json").write_text(json.dumps({
        f"openai/{MODEL}": {"max_tokens": 8192, "max_input_tokens": 128000,
                            "max_output_tokens": 8192, "input_cost_per_token": 0.0,
                            "output_cost_per_token": 0.0, "litellm_provider": "openai",
                            "mode": "chat"}}))
    (agent.home / ".aider" / "analytics.json").write_text(
        json.dumps({"permanently_disable": True, "asked_opt_in": True}))


_SETUP = {"claude": _claude, "codex": _codex, "gemini": _gemini, "aider": _aider}


# -- driving a CLI in a terminal ---------------------------------------------------------


def launch(agent: RealAgent, term: Terminal, timeout: float = 90.0, settle: float = 1.0
           ) -> float:
    """Start the CLI in ``term`` the way users do (its plain name, found through the shim on
    its PATH), wait until its prompt is up and not busy, then until the screen has held
    still for ``settle`` seconds; return the seconds until the prompt was up.

    The settling matters: Claude Code draws its prompt before it takes input, and an Enter
    pressed in its first few tenths of a second is lost (measured: 5 prompts of 8 stayed
    unsent when pasted the moment the prompt appeared; none 0.3 s later).
    """
    started = time.monotonic()
    term.start([agent.cli.name], agent.full_env(), agent.workdir)
    wait_ready(agent, term, timeout)
    up = time.monotonic() - started
    wait_still(term, settle, timeout)
    return up


def wait_still(term: Terminal, seconds: float, timeout: float = 30.0) -> None:
    """Wait until the screen has not changed for ``seconds``."""
    deadline = time.monotonic() + timeout
    screen, since = term.text(), time.monotonic()
    while time.monotonic() - since < seconds:
        if time.monotonic() > deadline:
            raise AssertionError(f"the screen kept changing for {timeout}s:\n{screen}")
        time.sleep(0.05)
        now = term.text()
        if now != screen:
            screen, since = now, time.monotonic()


def wait_ready(agent: RealAgent, term: Terminal, timeout: float = 60.0) -> None:
    """Wait until the CLI shows its prompt with no busy sign and no open question.

    Codex shows no busy sign while an answer streams, so for Codex wait for the answer's
    end (its text, or ``Worked for``) first.
    """
    cli = agent.cli
    ready, busy, question = (re.compile(p, re.MULTILINE) for p in
                             (cli.ready, cli.busy, cli.question))
    deadline = time.monotonic() + timeout
    while True:
        screen = term.text()
        if ready.search(screen) and not busy.search(screen) and not question.search(screen):
            return
        if term.dead() or time.monotonic() > deadline:
            raise AssertionError(f"{cli.name} did not come to its prompt within {timeout}s"
                                 f"{' (it exited)' if term.dead() else ''}; screen:\n{screen}")
        time.sleep(0.1)


def submit(agent: RealAgent, term: Terminal, text: str) -> None:
    """Send a prompt the way this CLI takes it: one (bracketed) paste, then Enter, with the
    gap some CLIs need in between."""
    term.paste(text)
    if agent.cli.submit_gap:
        time.sleep(agent.cli.submit_gap)  # a protocol gap, not a wait for a condition
    term.keys("Enter")


def quit_agent(agent: RealAgent, term: Terminal, timeout: float = 30.0) -> list[int]:
    """End the CLI with its own quit keys, wait for its pane to die and for every process
    with its HOME to go; return the pids still alive after ``timeout`` (none, normally)."""
    deadline = time.monotonic() + timeout
    next_try = 0.0
    while not term.dead() and time.monotonic() < deadline:
        if time.monotonic() >= next_try:
            for key in agent.cli.quit:
                term.keys(key)
                time.sleep(0.1)  # each key its own keystroke, as a person types
            next_try = time.monotonic() + 3.0
        time.sleep(0.05)
    while agent.processes() and time.monotonic() < deadline:
        time.sleep(0.05)
    return agent.processes()


# -- a squad layout ----------------------------------------------------------------------


def _toml_str(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string


def layout_toml(agents: Iterable[RealAgent], *, name: str = "real", repo: Path | None = None,
                team: str = "real", extra: Mapping[str, Mapping[str, object]] | None = None
                ) -> str:
    """A squad layout with one entry per agent (``real/claude``, ... by agent name),
    each running its CLI's plain command (``command = "claude"``, as users write it) in
    its own work directory with its own environment. ``extra`` adds agent keys by agent
    name, e.g. ``{"gemini": {"stall_after": 60}}``. ``repo`` defaults to the first agent's
    work directory."""
    agents = list(agents)
    repo = repo or agents[0].workdir
    lines = [f"name = {_toml_str(name)}", f"repo = {_toml_str(str(repo))}", "",
             "[[teams]]", f"name = {_toml_str(team)}"]
    for agent in agents:
        env = ", ".join(f"{k} = {_toml_str(v)}" for k, v in sorted(agent.env.items()))
        lines += ["", "[[teams.agents]]", f"name = {_toml_str(agent.name)}",
                  f"command = {_toml_str(agent.cli.name)}",
                  f"cwd = {_toml_str(str(agent.workdir))}",
                  f"env = {{ {env} }}"]
        for key, value in (extra or {}).get(agent.name, {}).items():
            lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"
