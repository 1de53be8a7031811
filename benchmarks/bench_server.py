"""Benchmark: hubport's Hub server with the real huggingface_hub client, on one machine, in one run.

Prints start-up time, the latency of a JSON call (model_info) side by side with a HEAD (file_exists), LFS
upload and download throughput for one large file, a raw streamed GET of the same file, and the server's
peak memory (it streams, so the peak stays far below the file size).

    .venv/bin/python benchmarks/bench_server.py [--mb 200] [--calls 200]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _per_call_ms(fn, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-server-"))
    start = time.perf_counter()
    from hubport.server import spawn_server

    server = spawn_server(work / "hub", write_tokens=["bench"])
    print(f"start-up, spawn to first answer: {time.perf_counter() - start:.2f} s")
    os.environ.update(HF_ENDPOINT=server.url, HF_HUB_DISABLE_XET="1", HF_HOME=str(work / "hf"))
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    import requests
    from huggingface_hub import HfApi, hf_hub_download

    try:
        api = HfApi(token="bench")
        api.create_repo("bench/model")
        api.upload_file(path_or_fileobj=b"{}", path_in_repo="config.json", repo_id="bench/model")
        info = _per_call_ms(lambda: api.model_info("bench/model"), args.calls)
        head = _per_call_ms(lambda: api.file_exists("bench/model", "config.json"), args.calls)
        print(f"model_info {info:.1f} ms/call vs HEAD resolve {head:.1f} ms/call (n={args.calls})")
        big = work / "big.bin"
        with open(big, "wb") as out:
            for _ in range(args.mb):
                out.write(os.urandom(1 << 20))
        start = time.perf_counter()
        sha = api.upload_file(path_or_fileobj=big, path_in_repo="big.bin", repo_id="bench/model").oid
        up = args.mb / (time.perf_counter() - start)
        start = time.perf_counter()
        hf_hub_download("bench/model", "big.bin", revision=sha)
        down = args.mb / (time.perf_counter() - start)
        start = time.perf_counter()
        with requests.get(f"{server.url}/bench/model/resolve/{sha}/big.bin", stream=True) as r:
            for _ in r.iter_content(1 << 20):
                pass
        raw = args.mb / (time.perf_counter() - start)
        print(f"{args.mb} MB LFS file: upload {up:.0f} MB/s (incl. client sha256), download {down:.0f} MB/s")
        print(f"  (hf_hub_download), raw streamed GET {raw:.0f} MB/s")
        print(f"server peak RSS: {_peak_rss_mb(server.process.pid):.0f} MB")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
