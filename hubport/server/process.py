"""Run the server in a child process (`python -m hubport.server`), wait until it answers, and always stop it.

A child process rather than a thread: it can be SIGKILLed in fault tests, and the tests' own HTTP clients
never share an event loop or GIL-bound thread with it. Tokens travel in a private temporary file, not on the
command line, so they do not show up in the process list.
"""

from __future__ import annotations

import ctypes
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from hubport.errors import HubError

_SOURCE_ROOT = Path(__file__).resolve().parents[2]  # the folder that holds the hubport package
READY_PREFIX = "hubport hub: serving "
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class ServerProcess:
    """A running server child: its base URL and process (for stop() or a deliberate SIGKILL)."""

    url: str
    process: subprocess.Popen
    log_path: Path

    def stop(self, timeout: float = 5.0, *, keep_log: bool = False) -> None:
        """Terminate the server (SIGTERM, then SIGKILL after `timeout`); safe to call twice."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        if not keep_log:
            shutil.rmtree(self.log_path.parent, ignore_errors=True)

    def kill(self) -> None:
        """SIGKILL: the server gets no chance to clean up (what the crash tests need)."""
        self.process.kill()
        self.process.wait()


def _exit_with_parent() -> Callable[[], None] | None:
    """Linux: a preexec hook that SIGTERMs the server when its parent dies (a killed test run leaves none)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # loaded before fork: the hook only makes a syscall
    except (OSError, AttributeError):
        return None
    return lambda: prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _write_token_file(folder: Path, write_tokens: Iterable[str], read_tokens: Iterable[str]) -> Path:
    path = folder / "tokens"
    lines = [f"write:{t}" for t in write_tokens] + [f"read:{t}" for t in read_tokens]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def _read_ready_line(proc: subprocess.Popen, deadline: float) -> str:
    buffer = b""
    while b"\n" not in buffer:
        left = deadline - time.monotonic()
        if left <= 0 or proc.poll() is not None:
            return ""
        ready, _, _ = select.select([proc.stdout], [], [], min(left, 0.2))
        if ready:
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                return ""
            buffer += chunk
    return buffer.split(b"\n", 1)[0].decode()


def _wait_answering(url: str, deadline: float) -> bool:
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/api/whoami-v2", timeout=2)
        except urllib.error.HTTPError:
            return True  # any HTTP answer (401 without a token) means it serves
        except OSError:
            time.sleep(0.05)
        else:
            return True
    return False


def spawn_server(
    root: Path,
    *,
    write_tokens: Iterable[str] = (),
    read_tokens: Iterable[str] = (),
    port: int | None = None,
    timeout: float = 30.0,
) -> ServerProcess:
    """Start `python -m hubport.server` on loopback; return once it answers.

    On Linux the server ends when the thread that started it ends (PR_SET_PDEATHSIG), so start it from a thread
    that outlives its use (the main thread, normally).
    """
    work = Path(tempfile.mkdtemp(prefix="hubport-server-"))
    token_file = _write_token_file(work, write_tokens, read_tokens)
    log_path = work / "server.log"
    cmd = [sys.executable, "-m", "hubport.server", "--root", str(root), "--port", str(port or 0)]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(_SOURCE_ROOT), os.environ.get("PYTHONPATH")])),
    }
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [*cmd, "--token-file", str(token_file)],
            stdout=subprocess.PIPE,
            stderr=log,
            env=env,
            preexec_fn=_exit_with_parent(),  # only a prctl syscall runs between fork and exec
        )
    deadline = time.monotonic() + timeout
    line = _read_ready_line(proc, deadline)
    token_file.unlink(missing_ok=True)
    server = ServerProcess(line.rsplit(" at ", 1)[-1].strip(), proc, log_path)
    if not line.startswith(READY_PREFIX) or not _wait_answering(server.url, deadline):
        server.stop(keep_log=True)
        last = (log_path.read_text(errors="replace").strip().splitlines() or ["no output"])[-1]
        shutil.rmtree(work, ignore_errors=True)
        raise HubError(f"the hub server did not start: {last}", "run `python -m hubport.server` to see why")
    return server


@contextmanager
def running_server(
    root: Path,
    *,
    write_tokens: Iterable[str] = (),
    read_tokens: Iterable[str] = (),
    port: int | None = None,
) -> Iterator[str]:
    """Run a server on `root` for the duration of the block; yields its base URL (http://127.0.0.1:PORT)."""
    server = spawn_server(root, write_tokens=write_tokens, read_tokens=read_tokens, port=port)
    try:
        yield server.url
    finally:
        server.stop()
