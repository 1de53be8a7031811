"""Time and bytes read per map tier, base <-> large-shaped hosts (random weights, CPU), against the copy tier.

The hosts are written straight from their configs as safetensors with random weights (no model is built):
t5-base-shaped (d_model 768, 12 heads, 12+12 layers, d_ff 2048, gated) and t5-large-shaped (1024, 16, 24+24,
2816), with the vocabulary shrunk (--vocab) to keep it fast. Modules are written in peft's format: a soft prompt
(what `embed` carries) and a LoRA on q, v and wo (what `weights` and `probe` carry). `copy` is a copy port onto
a host of the module's own shape (configs, headers and a lineage sample of embedding rows). Random hosts share
no function, so the maps are meaningless here: this measures cost only. No asserts on time.

    nice -n 10 .venv/bin/python benchmarks/bench_cross.py [--vocab 4096] [--probe-tokens 256] [--no-probe]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy: threaded OpenBLAS on a shared 2-core box is 20x slower
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import shutil
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

SHAPES = {
    "base": {"d_model": 768, "d_kv": 64, "num_heads": 12, "num_layers": 12, "num_decoder_layers": 12, "d_ff": 2048},
    "large": {"d_model": 1024, "d_kv": 64, "num_heads": 16, "num_layers": 24, "num_decoder_layers": 24,
              "d_ff": 2816},
}


def host_config(size: str, vocab: int) -> dict:
    return {"model_type": "t5", "architectures": ["T5ForConditionalGeneration"], "vocab_size": vocab,
            "feed_forward_proj": "gated-gelu", "tie_word_embeddings": False, "dropout_rate": 0.0,
            "decoder_start_token_id": 0, "pad_token_id": 0, "eos_token_id": 1, "layer_norm_epsilon": 1e-6,
            "relative_attention_num_buckets": 32, "relative_attention_max_distance": 128, **SHAPES[size]}


def write_host(folder: Path, config: dict, seed: int, like: Path | None = None) -> Path:
    """config.json + model.safetensors with random weights, shapes from a meta-device model (no memory). With
    `like`, the embeddings are that host's times a random isometry, so a residual map exists (otherwise hubport
    rightly refuses to map between hosts that share no coordinates)."""
    import torch
    from safetensors.numpy import save_file
    from transformers import T5Config, T5ForConditionalGeneration

    if (folder / "model.safetensors").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in T5ForConditionalGeneration(T5Config(**config)).state_dict().items()}
    rng, tensors = np.random.default_rng(seed), {}
    for name, shape in shapes.items():
        if name in ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight"):
            continue
        if name.endswith("layer_norm.weight"):
            tensors[name] = rng.uniform(0.5, 1.5, shape).astype(np.float32)
        else:
            tensors[name] = (rng.standard_normal(shape, dtype=np.float32) / np.sqrt(shape[-1])).astype(np.float32)
    if like is not None:
        from safetensors import safe_open

        with safe_open(str(like / "model.safetensors"), "np") as other:
            source = other.get_tensor("shared.weight")
        q, _ = np.linalg.qr(rng.standard_normal((config["d_model"], source.shape[1])))
        tensors["shared.weight"] = (source @ q.T).astype(np.float32)
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def _peft_common(host: Path) -> dict:
    return {"task_type": "SEQ_2_SEQ_LM", "base_model_name_or_path": str(host), "revision": None,
            "inference_mode": True}


def write_lora(folder: Path, host: Path, config: dict, r: int = 8) -> Path:
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    rng, tensors = np.random.default_rng(1), {}
    d, inner, f = config["d_model"], config["num_heads"] * config["d_kv"], config["d_ff"]
    dims = {"q": (d, inner), "v": (d, inner), "wo": (f, d)}
    for stack, layers in (("encoder", config["num_layers"]), ("decoder", config["num_decoder_layers"])):
        for b in range(layers):
            paths = [(f"{stack}.block.{b}.layer.0.SelfAttention", ("q", "v")),
                     (f"{stack}.block.{b}.layer.{1 if stack == 'encoder' else 2}.DenseReluDense", ("wo",))]
            if stack == "decoder":
                paths.append((f"decoder.block.{b}.layer.1.EncDecAttention", ("q", "v")))
            for path, projs in paths:
                for p in projs:
                    key = f"base_model.model.{path}.{p}"
                    tensors[f"{key}.lora_A.weight"] = rng.standard_normal((r, dims[p][0]), dtype=np.float32)
                    tensors[f"{key}.lora_B.weight"] = rng.standard_normal((dims[p][1], r), dtype=np.float32) * 0.01
    save_file(tensors, str(folder / "adapter_model.safetensors"), metadata={"format": "pt"})
    cfg = {**_peft_common(host), "peft_type": "LORA", "r": r, "lora_alpha": 2 * r, "target_modules": ["q", "v", "wo"],
           "lora_dropout": 0.0, "bias": "none", "fan_in_fan_out": False}
    (folder / "adapter_config.json").write_text(json.dumps(cfg))
    return folder


def write_prompt(folder: Path, host: Path, config: dict, tokens: int = 20) -> Path:
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    prompt = np.random.default_rng(2).standard_normal((2 * tokens, config["d_model"]), dtype=np.float32)
    save_file({"prompt_embeddings": prompt}, str(folder / "adapter_model.safetensors"), metadata={"format": "pt"})
    cfg = {**_peft_common(host), "peft_type": "PROMPT_TUNING", "num_virtual_tokens": tokens,
           "num_transformer_submodules": 2, "token_dim": config["d_model"], "num_layers": config["num_layers"],
           "num_attention_heads": config["num_heads"], "prompt_tuning_init": "RANDOM"}
    (folder / "adapter_config.json").write_text(json.dumps(cfg))
    return folder


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def run_direction(src: str, tgt: str, hosts: dict, mods: dict, out: Path, probe_tokens: int | None) -> list[tuple]:
    from hubport import api
    from hubport.api import port as port_with_map

    rows = []
    secs, rep = timed(lambda: api.port(mods[src, "lora"], hosts[src], out / f"{src}-copy", force=True))
    rows.append((f"{src}->{tgt}", "copy (same shape)", secs, rep.plan.lineage.bytes_read))
    runs = [("embed", "prompt", {}), ("weights", "lora", {})]
    if probe_tokens:
        runs.append(("probe", "lora", {"probe_tokens": probe_tokens}))
    for tier, module, extra in runs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            secs, rep = timed(lambda: port_with_map(mods[src, module], hosts[tgt], out / f"{src}-{tier}", map=tier,
                                                    allow_partial=True, **extra))
        rows.append((f"{src}->{tgt}", f"{tier} ({module})", secs, rep.provenance["crossmap"]["bytes_read"]))
    return rows


def main() -> None:
    import torch

    torch.set_num_threads(1)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", type=int, default=4096)
    parser.add_argument("--probe-tokens", type=int, default=256)
    parser.add_argument("--no-probe", action="store_true")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "hubport-bench-cross")
    args = parser.parse_args()
    hosts, mods = {}, {}
    for i, size in enumerate(("base", "large")):
        config = host_config(size, args.vocab)
        like = hosts.get("base")
        secs, hosts[size] = timed(lambda: write_host(args.cache / f"{size}-host", config, seed=i, like=like))
        print(f"{size} host ready in {secs:.1f} s ({(hosts[size] / 'model.safetensors').stat().st_size / 1e6:.0f} MB)")
        mods[size, "lora"] = write_lora(args.cache / f"{size}-lora", hosts[size], config)
        mods[size, "prompt"] = write_prompt(args.cache / f"{size}-prompt", hosts[size], config)
    out = Path(tempfile.mkdtemp(prefix="bench-cross-"))
    try:
        rows = []
        for src, tgt in (("base", "large"), ("large", "base")):
            rows += run_direction(src, tgt, hosts, mods, out, None if args.no_probe else args.probe_tokens)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    print(f"\n{'direction':<12} {'tier':<20} {'seconds':>9} {'MB read':>10} {'x copy time':>12} {'x copy bytes':>13}")
    copy = {}
    for direction, tier, secs, nbytes in rows:
        if tier.startswith("copy"):
            copy[direction] = (secs, max(nbytes, 1))
        base_secs, base_bytes = copy[direction]
        print(f"{direction:<12} {tier:<20} {secs:>9.2f} {nbytes / 1e6:>10.1f} {secs / base_secs:>12.1f} "
              f"{nbytes / base_bytes:>13.1f}")


if __name__ == "__main__":
    main()
