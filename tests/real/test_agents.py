"""The launch settings without running any CLI: what each throwaway home holds, the shims,
the squad layout they make, and the skip message when a CLI is missing."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from squad import layout
from tests.real.agents import BY_NAME, CLIS, installed, layout_toml, real_agent_env

URL = "http://127.0.0.1:9"


def test_each_home_holds_the_settings_that_start_it_offline(tmp_path: Path):
    agents = {cli: real_agent_env(cli, tmp_path, URL) for cli in CLIS}
    for agent in agents.values():
        env = agent.env
        assert env["HOME"] == str(agent.home) and Path(env["TMPDIR"]).is_relative_to(agent.home)
        assert Path(env["XDG_RUNTIME_DIR"]).is_relative_to(agent.home)
        assert env["HTTPS_PROXY"].startswith("http://127.0.0.1:")
        assert "127.0.0.1" in env["NO_PROXY"]
        assert env["PATH"].split(":")[0] == str(agent.bin)

    claude = json.loads((agents["claude"].home / ".claude.json").read_text())
    assert claude["hasCompletedOnboarding"] and claude["officialMarketplaceAutoInstallAttempted"]
    assert claude["projects"][str(agents["claude"].workdir)]["hasTrustDialogAccepted"]
    assert agents["claude"].env["ANTHROPIC_API_KEY"][-20:] in \
        claude["customApiKeyResponses"]["approved"]

    codex = tomllib.loads((agents["codex"].home / ".codex" / "config.toml").read_text())
    assert codex["model_providers"]["fake"]["base_url"] == URL + "/v1"
    assert codex["features"]["daemon_auto_start"] is False  # no server left behind
    assert codex["projects"][str(agents["codex"].workdir)]["trust_level"] == "trusted"

    gemini = json.loads((agents["gemini"].home / ".gemini" / "settings.json").read_text())
    assert gemini["security"]["auth"]["selectedType"] == "gemini-api-key"
    assert agents["gemini"].env["GOOGLE_GEMINI_BASE_URL"] == URL

    aider = (agents["aider"].home / ".aider.conf.yml").read_text()
    assert f"openai-api-base: {URL}/v1" in aider and "check-update: false" in aider
    assert json.loads((agents["aider"].home / ".aider" / "analytics.json").read_text()) == {
        "permanently_disable": True, "asked_opt_in": True}


def test_the_layout_runs_plain_commands_with_each_agents_environment(tmp_path: Path):
    agents = [real_agent_env(cli, tmp_path, URL) for cli in CLIS]
    text = layout_toml(agents, repo=tmp_path, extra={"gemini": {"stall_after": 60.0}})
    squad = layout.loads(text, source="real.toml", base_dir=tmp_path)
    by_name = {a.name: a for a in squad.agents()}
    for agent in agents:
        got = by_name[agent.name]
        assert got.command == agent.name  # as users write it
        assert got.env["HOME"] == str(agent.home)
        assert squad.agent_dir(got) == agent.workdir
    assert by_name["gemini"].stall_after == 60.0
    two = [real_agent_env("claude", tmp_path, URL, name=n) for n in ("pm", "dev")]
    assert two[0].home != two[1].home
    squad = layout.loads(layout_toml(two), source="two.toml", base_dir=tmp_path)
    assert [(a.name, a.command) for a in squad.agents()] == [("pm", "claude"), ("dev", "claude")]
    missing = {agent.name for agent, _ in layout.check_programs(squad)}
    assert missing == {cli for cli in CLIS if not installed(cli)}


def test_a_missing_cli_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("SQUAD_AGENTS_DIR", str(tmp_path / "nothing"))
    monkeypatch.setenv("PATH", "/nonexistent")
    reason = BY_NAME["codex"].missing()
    assert reason and "@openai/codex" in reason and ".ci/install-agents" in reason
    assert str(tmp_path / "nothing") in reason
