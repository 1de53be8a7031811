"""hubport's Hub-compatible server: a folder served as a Hugging Face Hub to the unchanged huggingface_hub.

    serve(root, host="127.0.0.1", port=0, write_tokens=(), read_tokens=())  # blocking (`hubport serve`)
    with running_server(root, write_tokens=["w"]) as url: ...                # a subprocess (tests, demos)

Clients must set HF_HUB_DISABLE_XET=1 (the server speaks LFS, not xet). Starlette and uvicorn are imported
only when serving, so importing this package stays cheap.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import socket
import sys
from collections.abc import Iterable
from pathlib import Path

from hubport.errors import HubError
from hubport.server.auth import load_token_file
from hubport.server.process import ServerProcess, running_server, spawn_server

__all__ = ["ServerProcess", "load_token_file", "running_server", "serve", "spawn_server"]


def _check_root(root: Path) -> Path:
    root = Path(root).expanduser().resolve()
    if root.exists() and not root.is_dir():
        raise HubError(
            f"server root {root} is a file, not a folder", "pass a folder (it is created if missing)"
        )
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HubError(f"cannot create server root {root}: {exc.strerror}", "pass a writable folder") from exc
    return root


def _bind(host: str, port: int) -> socket.socket:
    """Bind and listen before uvicorn starts: a busy port is a clear error, and port 0 picks a free one."""
    if not 0 <= port <= 65535:
        raise HubError(f"--port {port} is not a TCP port", "choose 1-65535, or 0 for a free one")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP lets asyncio set TCP_NODELAY on accepted connections (else each reply stalls ~40 ms)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # rebinding right after a killed server
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise HubError(
                f"port {port} on {host} is in use", "choose another --port, or 0 for a free one"
            ) from exc
        raise HubError(f"cannot listen on {host}:{port}: {exc.strerror}", "check --host and --port") from exc
    return sock


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def serve(
    root: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    write_tokens: Iterable[str] = (),
    read_tokens: Iterable[str] = (),
    as_json: bool = False,
) -> None:
    """Serve the Hub stored in `root` until interrupted. Prints one line with the URL once listening
    (`as_json`: one JSON object with url, root and token counts, for scripts)."""
    import uvicorn

    from hubport.server.app import create_app

    root = _check_root(root)
    write_tokens, read_tokens = tuple(write_tokens), tuple(read_tokens)
    sock = _bind(host, port)
    app = create_app(root, write_tokens=write_tokens, read_tokens=read_tokens)
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=2
    )
    bound_port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{bound_port}"
    if as_json:
        print(json.dumps({"url": url, "root": str(root), "write_tokens": len(write_tokens),
                          "read_tokens": len(read_tokens)}), flush=True)
    else:
        print(f"hubport hub: serving {root} at {url}", flush=True)
    if not _is_loopback(host):
        print(f"warning: listening on {host}, reachable from other machines", file=sys.stderr, flush=True)
    if not write_tokens:
        print("note: no write token given (--token-file), so every push is refused", file=sys.stderr, flush=True)
    uvicorn.Server(config).run(sockets=[sock])
