"""A test agent that records exactly what it receives, like a raw-mode LLM CLI.

It puts its terminal in raw mode, turns on bracketed paste, and for every pasted block
followed by Enter appends the block's bytes (hex, one line per message) to the file named
by its first argument.
"""

import os
import sys
import termios
import tty

START, END = b"\x1b[200~", b"\x1b[201~"


def main() -> None:
    out = sys.argv[1]
    fd = sys.stdin.fileno()
    tty.setraw(fd)
    os.write(1, b"\x1b[?2004hecho-agent ready\r\n> ")
    buf = b""
    try:
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                return
            buf += chunk
            while True:
                s = buf.find(START)
                e = buf.find(END, s + len(START)) if s >= 0 else -1
                if s < 0 or e < 0 or len(buf) <= e + len(END):
                    break
                body = buf[s + len(START):e]
                after = buf[e + len(END):e + len(END) + 1]
                buf = buf[e + len(END) + 1:]
                with open(out, "a") as f:
                    f.write(body.hex() + " " + after.hex() + "\n")
                os.write(1, f"got {len(body)} bytes\r\n> ".encode())
            if buf.startswith(b"\r") or buf.startswith(b"\x03"):
                if buf.startswith(b"\x03"):
                    return
                buf = buf[1:]
    finally:
        termios.tcsetattr(fd, termios.TCSANOW, termios.tcgetattr(fd))


if __name__ == "__main__":
    main()
