"""``python /path/to/squad/hookcmd.py PROGRAM EVENT ...``: the command agent programs run for
their hooks. A file path rather than ``squad hook`` on PATH, because some programs run hooks
with a cleaned environment (no PATH or PYTHONPATH of the agent's window)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from squad.hooks import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
