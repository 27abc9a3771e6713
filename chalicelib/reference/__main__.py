"""`python -m chalicelib.reference render docs` writes docs/reference/ and the state machine in
docs/architecture.md; `check docs` exits 1 (listing the files) when they are out of date."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from .render import REGENERATE, stale, write


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chalicelib.reference", description=__doc__)
    parser.add_argument("command", choices=["render", "check"])
    parser.add_argument("docs", type=Path, nargs="?", default=Path("docs"), help="the docs directory (default: docs)")
    args = parser.parse_args(argv)
    importlib.import_module("app")  # the application: every Api it registers declares its endpoints
    if args.command == "render":
        for path in write(args.docs):
            print(f"wrote {path}")
        return 0
    out_of_date = stale(args.docs)
    for path in out_of_date:
        print(f"out of date: {path}", file=sys.stderr)
    if out_of_date:
        print(f"regenerate with: {REGENERATE}  (or make docs)", file=sys.stderr)
    return 1 if out_of_date else 0


if __name__ == "__main__":
    sys.exit(main())
