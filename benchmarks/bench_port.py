"""Port time of a LoRA (q, v, r = 8) between same-lineage hosts, against copying the module's files.

Hosts are t5-base- and t5-11b-shaped: their config.json and a model.safetensors whose header lists every tensor.
Only `shared.weight` holds real bytes (the lineage check reads a sample of its rows); the rest of the file is sparse,
so a 45 GB t5-11b checkpoint costs no disk. Prints the median times side by side, their ratio (target <= 2x,
whatever the host size) and the bytes each port read.

    .venv/bin/python benchmarks/bench_port.py
"""

from __future__ import annotations

import json
import shutil
import statistics
import struct
import tempfile
import time
from pathlib import Path

import numpy as np

SHAPES = {
    "t5-base": dict(d_model=768, d_kv=64, d_ff=2048, num_heads=12, num_layers=12, vocab_size=32128),
    "t5-11b": dict(d_model=1024, d_kv=128, d_ff=65536, num_heads=128, num_layers=24, vocab_size=32128),
}
RUNS = 15


def host_tensors(s: dict) -> dict[str, tuple[int, ...]]:
    inner, d, ff = s["num_heads"] * s["d_kv"], s["d_model"], s["d_ff"]
    out = {"shared.weight": (s["vocab_size"], d), "lm_head.weight": (s["vocab_size"], d)}
    for stack, layers in (("encoder", ["SelfAttention", None]), ("decoder", ["SelfAttention", "EncDecAttention", None])):
        for b in range(s["num_layers"]):
            for i, sub in enumerate(layers):
                base = f"{stack}.block.{b}.layer.{i}"
                out[f"{base}.layer_norm.weight"] = (d,)
                if sub:
                    for p, shape in (("q", (inner, d)), ("k", (inner, d)), ("v", (inner, d)), ("o", (d, inner))):
                        out[f"{base}.{sub}.{p}.weight"] = shape
                else:
                    for p, shape in (("wi_0", (ff, d)), ("wi_1", (ff, d)), ("wo", (d, ff))):
                        out[f"{base}.DenseReluDense.{p}.weight"] = shape
        out[f"{stack}.final_layer_norm.weight"] = (d,)
    return out


def write_host(folder: Path, s: dict, embedding: np.ndarray) -> None:
    """config.json plus a sparse model.safetensors in which only shared.weight is written."""
    folder.mkdir(parents=True)
    config = {"model_type": "t5", "feed_forward_proj": "gated-gelu", "tie_word_embeddings": False,
              "num_decoder_layers": s["num_layers"], **s}
    (folder / "config.json").write_text(json.dumps(config))
    header, offset = {}, 0
    for name, shape in host_tensors(s).items():
        size = int(np.prod(shape)) * 4
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    with open(folder / "model.safetensors", "wb") as fh:
        fh.write(struct.pack("<Q", len(blob)) + blob)
        start = fh.tell()
        fh.seek(start + header["shared.weight"]["data_offsets"][0])
        fh.write(embedding.astype("<f4").tobytes())
        fh.truncate(start + offset)


def write_lora(folder: Path, s: dict, base: str, rng: np.random.Generator) -> None:
    from safetensors.numpy import save_file

    folder.mkdir(parents=True)
    inner, d, r = s["num_heads"] * s["d_kv"], s["d_model"], 8
    tensors = {}
    for stack, subs in (("encoder", [(0, "SelfAttention")]), ("decoder", [(0, "SelfAttention"), (1, "EncDecAttention")])):
        for b in range(s["num_layers"]):
            for layer, sub in subs:
                for p in ("q", "v"):
                    key = f"base_model.model.{stack}.block.{b}.layer.{layer}.{sub}.{p}"
                    tensors[f"{key}.lora_A.weight"] = rng.standard_normal((r, d), dtype=np.float32)
                    tensors[f"{key}.lora_B.weight"] = rng.standard_normal((inner, r), dtype=np.float32)
    save_file(tensors, str(folder / "adapter_model.safetensors"), metadata={"format": "pt"})
    config = {"peft_type": "LORA", "task_type": "SEQ_2_SEQ_LM", "r": r, "lora_alpha": 16, "target_modules": ["q", "v"],
              "base_model_name_or_path": base, "revision": None, "inference_mode": True}
    (folder / "adapter_config.json").write_text(json.dumps(config))


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

    t_copy, t_port = side_by_side(copy, port)
    lineage = last["report"].plan.lineage
    print(f"{name:8s} host {(root / 'a' / 'model.safetensors').stat().st_size / 1e9:7.1f} GB | module "
          f"{module_bytes / 1e6:5.2f} MB | copy {t_copy * 1e3:7.2f} ms | port {t_port * 1e3:7.2f} ms | "
          f"ratio {t_port / t_copy:5.2f}x (target <= 2x) | lineage {lineage.verdict}, "
          f"{lineage.bytes_read / 1e6:.2f} MB of embedding rows + headers read")


def main() -> None:
    for name, shape in SHAPES.items():
        with tempfile.TemporaryDirectory() as tmp:
            bench(name, shape, Path(tmp))


if __name__ == "__main__":
    main()
