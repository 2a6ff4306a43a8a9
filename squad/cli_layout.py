"""Layout commands of the CLI: freeze (the running squad as a layout file) and import (a
tmuxp workspace or tmuxinator project as one).

Both print the layout on standard output, with absolute paths since the text may end up
anywhere; ``-o FILE`` writes it instead, with paths relative to FILE's directory, and never
replaces an existing file without ``--force``. Import's notes (what had no equivalent) go to
standard error, one line each.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from squad.errors import SquadError


def add_layout_commands(cmd: Callable[[str, str], argparse.ArgumentParser]) -> None:
    c = cmd("freeze", "write the running squad as a layout file: defaults left out, shared "
                      "settings in [defaults] and [teams.defaults]")
    _output_options(c)

    c = cmd("import", "convert a tmuxp workspace (YAML or JSON) or a tmuxinator project (YAML) "
                      "into a layout; notes on what has no equivalent go to stderr")
    c.add_argument("workspace", help="the tmuxp or tmuxinator file")
    _output_options(c)


def _output_options(c: argparse.ArgumentParser) -> None:
    c.add_argument("-o", "--output", metavar="FILE",
                   help="write the layout to FILE (paths relative to its directory) instead "
                        "of printing it (absolute paths)")
    c.add_argument("--force", action="store_true", help="with -o: replace FILE if it exists")
    c.add_argument("--json", action="store_true",
                   help="print {layout, notes, output} as JSON")


def _output_dir(args: argparse.Namespace) -> Path | None:
    """Where the layout will live (its paths are written relative to it), checked early."""
    if not args.output:
        if args.force:
            raise SquadError("--force only applies with -o FILE")
        return None
    out = Path(args.output)
    if out.is_dir():
        raise SquadError(f"{out} is a directory: name the layout file to write, e.g. "
                         f"{out / 'squad.toml'}")
    if (out.exists() or out.is_symlink()) and not args.force:
        raise SquadError(f"{out} already exists: pass --force to replace it")
    parent = out.absolute().parent
    if not parent.is_dir():
        raise SquadError(f"cannot write {out}: directory {parent} does not exist")
    return parent


def _write(path: Path, text: str) -> None:
    """Write the whole file or nothing: a temporary file in the same directory, renamed."""
    parent = path.absolute().parent
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
    except OSError as exc:
        raise SquadError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise SquadError(f"cannot write {path}: {exc.strerror or exc}") from None


def _emit(args: argparse.Namespace, text: str, notes: list[str], what: str) -> int:
    if args.output:
        _write(Path(args.output), text)
    if args.json:
        print(json.dumps({"layout": text, "notes": notes, "output": args.output}, indent=2))
    elif args.output:
        print(f"✓ wrote {args.output} ({what})")
    else:
        sys.stdout.write(text)
    if not args.json:
        for note in notes:
            print(f"squad: note: {note}", file=sys.stderr)
    return 0


def _counts(squad) -> str:
    teams, agents = len(squad.teams), len(squad.agents())
    return (f"squad {squad.name}: {teams} team{'s' if teams != 1 else ''}, "
            f"{agents} agent{'s' if agents != 1 else ''}")


def cmd_freeze(args: argparse.Namespace) -> int:
    from squad.freeze import freeze
    from squad.live import load_saved_layout, pick_squad, socket_name
    from squad.tmux import Tmux

    base_dir = _output_dir(args)
    squad = load_saved_layout(pick_squad(Tmux(socket_name(args.socket)), args.squad_name))
    return _emit(args, freeze(squad, base_dir=base_dir), [], _counts(squad))


def cmd_import(args: argparse.Namespace) -> int:
    from squad.importer import import_workspace
    from squad.layout import loads

    base_dir = _output_dir(args)
    text, notes = import_workspace(Path(args.workspace), base_dir=base_dir)
    squad = loads(text, source=args.workspace, base_dir=base_dir or Path.cwd())
    what = _counts(squad) + (f", {len(notes)} note{'s' if len(notes) != 1 else ''}"
                             if notes else "")
    return _emit(args, text, notes, what)


HANDLERS = {"freeze": cmd_freeze, "import": cmd_import}
