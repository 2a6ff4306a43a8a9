"""A test agent with a process tree: a child, a setsid grandchild, and a double-forked daemon.

Writes "role pid" lines to the file named by its first argument, then each process loops
printing a counter so pause/resume is observable. Ignores SIGTERM with the second argument
"stubborn" (to test the SIGKILL after the grace period).
"""

import os
import signal
import sys
import time


def spin(tag: str) -> None:
    n = 0
    while True:
        n += 1
        if tag == "agent":
            print(f"tick {n}", flush=True)
        time.sleep(0.2)


def main() -> None:
    out = sys.argv[1]
    stubborn = len(sys.argv) > 2 and sys.argv[2] == "stubborn"

    def note(role: str) -> None:
        with open(out, "a") as f:
            f.write(f"{role} {os.getpid()}\n")

    if stubborn:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    note("agent")
    if os.fork() == 0:
        note("child")
        if os.fork() == 0:
            os.setsid()
            note("grandchild")
            spin("grandchild")
        spin("child")
    middle = os.fork()
    if middle == 0:  # double fork: the daemon's parent exits at once
        if os.fork() == 0:
            os.setsid()
            note("daemon")
            spin("daemon")
        os._exit(0)
    os.waitpid(middle, 0)
    spin("agent")


if __name__ == "__main__":
    main()
