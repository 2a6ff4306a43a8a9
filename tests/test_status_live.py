"""Status end to end: real agents in tmux, classified by a real supervisor tick by tick."""

from __future__ import annotations

import json
from pathlib import Path

from squad import control
from squad.live import Live
from squad.supervisor import Supervisor
from squad.tmux import Tmux
from tests.conftest import PY, run_squad, wait_for, write_layout


def test_demo_agent_statuses_and_status_events(socket: str, tmp_path: Path) -> None:
    layout = write_layout(tmp_path / "s.toml", f"""
name = "st"
[[teams]]
name = "t"
[[teams.agents]]
name = "demo"
command = ["{PY}", "-m", "squad.demo_agent", "--work", "3", "--ask", "1", "--mem", "4"]
[[teams.agents]]
name = "frozen"
command = "echo working hard; exec sleep 600"
busy_pattern = "working hard"
stall_after = 1.5
[[teams.agents]]
name = "quitter"
command = "echo bye; sleep 1; exit 3"
""")
    assert run_squad("-L", socket, "up", str(layout)).returncode == 0
    live = Live.open(Tmux(socket))
    sup = Supervisor(live)
    sup.start()
    try:
        def status(target: str) -> str:
            return sup.tick().agent(target).status

        wait_for(lambda: status("t/demo") == "idle", 15, "the demo agent to be idle")
        assert run_squad("-L", socket, "send", "t/demo", "add a health check").returncode == 0
        wait_for(lambda: status("t/demo") == "needs-input", 15, "the y/n question")
        assert run_squad("-L", socket, "send", "t/demo", "y").returncode == 0
        wait_for(lambda: status("t/demo") == "working", 15, "work")
        wait_for(lambda: status("t/demo") == "idle", 20, "idle again")

        wait_for(lambda: status("t/frozen") == "stalled", 15, "a frozen busy screen to stall")
        row = wait_for(lambda: (r := sup.tick().agent("t/quitter")).status == "exited" and r)
        assert row.exit_code == 3 and row.state == "exited"

        control.pause(live, live.resolve("t/demo"))
        wait_for(lambda: status("t/demo") == "paused", 5, "paused")
        control.resume(live, live.resolve("t/demo"))
        wait_for(lambda: status("t/demo") == "idle", 10, "idle after resume")
    finally:
        sup.close()
    events = [json.loads(line) for line in run_squad("-L", socket, "events", "--json",
                                                     "--agent", "t/demo").stdout.splitlines()]
    changes = [e["reason"] for e in events if e["action"] == "status"]
    for change in ("idle -> needs-input", "needs-input -> working", "working -> idle",
                   "idle -> paused", "paused -> idle"):
        assert change in changes, (change, changes)
    status_events = [e for e in events if e["action"] == "status"]
    assert all(e["by"] == "supervisor" and "cpu" in e["system"] for e in status_events)
