"""The README's examples stay true: its layout example loads, its commands exist."""

from __future__ import annotations

import re
from pathlib import Path

from squad.cli import COMMANDS, build_parser
from squad.layout import loads

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_readme_layout_example_is_a_valid_layout(git_repo: Path) -> None:
    block = re.search(r"```toml\n(.*?)```", README, re.S)
    assert block, "the README shows a layout"
    text = block.group(1).replace('repo = "~/src/webshop"', f'repo = "{git_repo}"')
    squad = loads(text, source="README.md", base_dir=git_repo)
    assert [t.name for t in squad.teams] == ["frontend", "backend"]
    dev = squad.agent("frontend/dev")
    assert dev is not None and dev.worktree and set(dev.tags) == {"frontend", "css"}
    assert dev.env == {"NODE_ENV": "development", "PORT": "3000"}
    assert squad.agent("frontend/server").dispatch is False


def test_every_command_in_the_readme_tour_parses() -> None:
    tour = re.search(r"## A tour\n\n```sh\n(.*?)```", README, re.S).group(1)
    parser = build_parser()
    for line in tour.splitlines():
        line = line.split("#")[0].strip()
        if not line:
            continue
        words = re.findall(r'"[^"]*"|\S+', line)[1:]
        words = [w.strip('"') for w in words]
        if words and words[0] in COMMANDS:
            parser.parse_args(words)  # raises on anything the CLI would refuse
