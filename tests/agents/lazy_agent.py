"""A test agent that echoes what it receives (a normal terminal) but, for a task that does
not contain the word "work", prints nothing and goes straight back to its ``lazy>`` prompt:
it looks idle again with nothing to show. A task with "work" in it prints a result first.
Every task marker it receives is appended to the log file named by the first argument."""

import re
import sys

MARK = re.compile(r"\[squad (?:task|review) #\d+ [0-9a-f]+\]")


def main() -> None:
    log = sys.argv[1]
    print("lazy agent", flush=True)
    print("lazy> ", end="", flush=True)
    task: list[str] = []
    for line in sys.stdin:
        task.append(line)
        found = MARK.search(line)
        if found:
            with open(log, "a") as f:
                f.write(found.group(0) + "\n")
            if any("work" in t for t in task):
                print("did the work: 2 files changed", flush=True)
            task = []
        if found or not line.strip():
            print("lazy> ", end="", flush=True)


if __name__ == "__main__":
    main()
