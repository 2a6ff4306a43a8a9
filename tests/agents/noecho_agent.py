"""A test agent whose terminal does not echo (``stty -echo``), like TUIs that hide pasted
text: nothing it receives ever shows on screen. It reads lines; a line carrying a task marker
("[squad task #N TOKEN]") ends a task: the marker goes to the log file named by the first
argument, then it works for the second argument's seconds printing progress, and returns to
its ``noecho>`` prompt."""

import os
import re
import sys
import termios
import time

MARK = re.compile(r"\[squad (?:task|review) #\d+ [0-9a-f]+\]")


def main() -> None:
    log = sys.argv[1]
    work = float(sys.argv[2]) if len(sys.argv) > 2 else 0.5
    attrs = termios.tcgetattr(0)
    attrs[3] &= ~(termios.ECHO | termios.ECHONL)
    termios.tcsetattr(0, termios.TCSANOW, attrs)
    print("no-echo agent", flush=True)
    print("noecho> ", end="", flush=True)
    lines: list[str] = []
    for line in sys.stdin:
        lines.append(line.rstrip("\n"))
        found = MARK.search(line)
        if not found:
            continue
        with open(log, "a") as f:
            f.write(found.group(0) + "\n")
        print(f"\nworking on: {lines[0][:40]}", flush=True)
        for i in range(3):
            time.sleep(work / 3)
            print(f"  step {i + 1}/3", flush=True)
        print("finished the task", flush=True)
        print("noecho> ", end="", flush=True)
        lines = []


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        os._exit(0)
