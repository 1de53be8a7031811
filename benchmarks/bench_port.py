"""Port time of a LoRA (q, v, r = 8) between same-lineage hosts, against copying the module's files; and `check`
of the same beside `port`.

Hosts are t5-base- and t5-11b-shaped (tests/fixtures/sparse.py): their config.json and a model.safetensors whose
header lists every tensor. Only `shared.weight` holds real bytes; the rest of the file is sparse, so a 45 GB t5-11b
checkpoint costs no disk. Prints the median times side by side, their ratios (port / copy and check / port, both
targets <= 2x, whatever the host size) and the bytes each read.

    .venv/bin/python benchmarks/bench_port.py
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.fixtures.sparse import SHAPES, write_host, write_lora

RUNS = 15


def side_by_side(first, second, runs: int = RUNS) -> tuple[float, float]:
    """Median seconds of two operations, alternated run by run so that both meet the same page cache and
    write-back pressure (each run writes a new copy of the module)."""
    first(), second()  # warm the page cache and imports
    a, b = [], []
    for _ in range(runs):
        for fn, out in ((first, a), (second, b)):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    return statistics.median(a), statistics.median(b)


def bench(name: str, s: dict, root: Path) -> None:
    from hubport import api

    rng = np.random.default_rng(0)
    emb = rng.standard_normal((s["vocab_size"], s["d_model"]), dtype=np.float32)
    write_host(root / "a", s, emb)
    write_host(root / "b", s, emb + 0.05 * rng.standard_normal(emb.shape, dtype=np.float32))
    write_lora(root / "lora", s, str(root / "a"), rng)
    counter = iter(range(10**6))
    module_bytes = sum(f.stat().st_size for f in (root / "lora").iterdir())

    def copy() -> None:
        shutil.copytree(root / "lora", root / f"copy-{next(counter)}")

    last = {}

    def port() -> None:
        last["report"] = api.port(root / "lora", root / "b", root / f"port-{next(counter)}", command="bench")

    def check() -> None:
        last["plan"] = api.check(root / "lora", root / "b")

    t_copy, t_port = side_by_side(copy, port)
    t_port2, t_check = side_by_side(port, check, runs=max(3, RUNS // 3))
    lineage = last["report"].plan.lineage
    print(f"{name:8s} host {(root / 'a' / 'model.safetensors').stat().st_size / 1e9:7.1f} GB | module "
          f"{module_bytes / 1e6:5.2f} MB | copy {t_copy * 1e3:7.2f} ms | port {t_port * 1e3:7.2f} ms | "
          f"ratio {t_port / t_copy:5.2f}x (target <= 2x) | lineage {lineage.verdict}, "
          f"{lineage.bytes_read / 1e6:.2f} MB of embedding rows + headers read")
    print(f"{name:8s} check {t_check * 1e3:7.2f} ms | port {t_port2 * 1e3:7.2f} ms | ratio {t_check / t_port2:5.2f}x "
          f"(target <= 2x) | check read {last['plan'].read['bytes'] / 1e6:.2f} MB (bounded samples; --deep reads all)")


def main() -> None:
    for name, shape in SHAPES.items():
        with tempfile.TemporaryDirectory() as tmp:
            bench(name, shape, Path(tmp))


if __name__ == "__main__":
    main()
