"""A test agent that logs every task it really receives, for exactly-once delivery checks.

Raw terminal with bracketed paste, like Claude Code: each pasted block followed by Enter is
one message. The task marker it contains ("[squad task #N TOKEN]") is appended to the file
named by the first argument; then it "works" for the second argument's seconds (default 0.3)
printing progress, and returns to its `ready>` prompt. A message containing "crash" makes it
exit 3; one containing "hang" makes it print "working" and then go silent; one containing
"selfdone" makes it run `squad task done --result ...` itself.
"""

import os
import re
import subprocess
import sys
import time
import tty

START, END = b"\x1b[200~", b"\x1b[201~"
MARK = re.compile(rb"\[squad (?:task|review) #\d+ [0-9a-f]+\]")


def say(text: str) -> None:
    os.write(1, text.replace("\n", "\r\n").encode())


def main() -> None:
    log = sys.argv[1]
    work = float(sys.argv[2]) if len(sys.argv) > 2 else 0.3
    fd = 0
    tty.setraw(fd)
    say("\x1b[?2004hcounter agent\nready> ")
    buf = b""
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            return
        buf += chunk
        while True:
            s = buf.find(START)
            e = buf.find(END, s + 1) if s >= 0 else -1
            if s < 0 or e < 0 or len(buf) <= e + len(END):
                break
            body = buf[s + len(START):e]
            buf = buf[e + len(END) + 1:]
            marks = MARK.findall(body)
            with open(log, "ab") as f:
                for m in marks:
                    f.write(m + b"\n")
            shown = " ".join(m.decode() for m in marks)
            say(f"\n{shown}\ngot {len(body)} bytes\n")
            if b"crash" in body:
                say("crashing on purpose\n")
                sys.exit(3)
            if b"hang" in body:
                say("working on it...\n")
                while True:
                    time.sleep(60)
            for i in range(3):
                say(f"working step {i + 1}/3\n")
                time.sleep(work / 3)
            if b"selfdone" in body:
                subprocess.run([sys.executable, "-m", "squad", "task", "done",
                                "--result", "did it myself"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            say("finished\nready> ")


if __name__ == "__main__":
    main()
