"""`make demo`: the whole product, offline, on two tiny hosts the project builds itself.

1. build (or reuse) the hosts and the demo data; 2. start the project's Hub server on a free loopback port with a
generated token and publish the hosts; 3. train an originating module per family and push each with a card;
4. `hubport check` and `hubport port` one of them by repo id onto the receiving host, pushing the result;
5. `harness run configs/demo.yaml`, `analyze`, `report --push`, and the ported module's card gets the results;
6. say where everything is, and stop the server.
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m harness.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("DEMO_OUT", "demo-out")),
                        help="where the Hub root, the study and the report go (default: ./demo-out)")
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "demo.yaml")
    parser.add_argument("--keep-server", action="store_true", help="leave the Hub server running at the end")
    parser.add_argument("--fresh", action="store_true", help="start from an empty --out (hosts stay cached)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    port, token = _free_port(), secrets.token_urlsafe(24)
    # huggingface_hub reads these at import time: set them before anything imports it.
    os.environ.update(HF_ENDPOINT=f"http://127.0.0.1:{port}", HF_HUB_DISABLE_XET="1", HF_TOKEN=token,
                      HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_PROGRESS_BARS="1",
                      TOKENIZERS_PARALLELISM="false")
    os.environ.pop("HF_HUB_OFFLINE", None)
    from harness.demo.steps import Demo
    from harness.runs.executors import quiet_libraries

    quiet_libraries()

    demo = Demo(out=args.out.resolve(), config=args.config, port=port, token=token, fresh=args.fresh)
    started = time.perf_counter()
    try:
        demo.run()
    except KeyboardInterrupt:
        demo.console.print("[red]interrupted[/]: the study resumes where it stopped if you run `make demo` again")
        return 130
    except Exception as exc:  # one line, like the CLIs; HUBPORT_DEBUG shows the traceback
        if os.environ.get("HUBPORT_DEBUG"):
            raise
        message = exc.one_line() if hasattr(exc, "one_line") else f"{type(exc).__name__}: {exc}"
        demo.console.print(f"[red]demo failed:[/] {message}", highlight=False)
        return 1
    finally:
        demo.finish(keep_server=args.keep_server)
    demo.console.print(f"[bold green]demo done[/] in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
