"""Shared test set-up.

The Hub endpoint must be fixed before huggingface_hub is imported (it reads HF_ENDPOINT at import time), so this
file picks a free loopback port and points every client at the project's own server there. Caches go to a
temporary folder so that tests never touch the user's ~/.cache.
"""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

_TMP = Path(tempfile.mkdtemp(prefix="hubport-tests-"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


HUB_PORT = _free_port()
os.environ["HF_ENDPOINT"] = f"http://127.0.0.1:{HUB_PORT}"
os.environ.pop("HF_HUB_OFFLINE", None)
os.environ.pop("HF_TOKEN", None)
os.environ["HF_HUB_DISABLE_XET"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_EVALUATE_OFFLINE"] = "1"
os.environ["HF_HOME"] = str(_TMP / "hf_home")
os.environ["HF_MODULES_CACHE"] = str(_TMP / "hf_modules")
os.environ["MPLCONFIGDIR"] = str(_TMP / "mpl")
os.environ["HUBPORT_CACHE"] = str(_TMP / "hubport_cache")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_NUM_THREADS", "1")

pytest_plugins = ["tests.fixtures.hosts", "tests.fixtures.hub"]
