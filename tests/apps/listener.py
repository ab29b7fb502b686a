#!/usr/bin/env python3
"""A supervisor event listener that appends ``EVENTNAME PAYLOAD`` lines to the file in argv[1]."""
import sys


def main() -> None:
    with open(sys.argv[1], "a") as out:
        while True:
            sys.stdout.write("READY\n")
            sys.stdout.flush()
            header = dict(field.split(":", 1) for field in sys.stdin.readline().split())
            payload = sys.stdin.read(int(header["len"]))
            out.write(f"{header['eventname']} {payload}\n")
            out.flush()
            sys.stdout.write("RESULT 2\nOK")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
