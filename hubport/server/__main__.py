"""`python -m hubport.server --root DIR [--host H] [--port N] [--token T]... [--read-token T]...
[--token-file F]`.

The same options as `hubport serve`, without importing the CLI; used by `running_server` and the test fixture.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hubport.errors import HubportError
from hubport.server import load_token_file, serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hubport.server", description="Serve a folder as a Hub.")
    parser.add_argument(
        "--root", type=Path, required=True, help="folder holding the repos (created if missing)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    parser.add_argument("--port", type=int, default=0, help="port (0: a free one, printed at start)")
    parser.add_argument("--token", action="append", default=[], help="a write token (repeatable)")
    parser.add_argument("--read-token", action="append", default=[], help="a read-only token (repeatable)")
    parser.add_argument(
        "--token-file", type=Path, help="tokens, one a line; 'read:TOKEN' lines are read-only"
    )
    args = parser.parse_args(argv)
    write, read = list(args.token), list(args.read_token)
    try:
        if args.token_file is not None:
            more_write, more_read = load_token_file(args.token_file)
            write, read = write + list(more_write), read + list(more_read)
        serve(args.root, host=args.host, port=args.port, write_tokens=write, read_tokens=read)
    except HubportError as exc:
        print(f"error: {exc.one_line()}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
