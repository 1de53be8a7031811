"""GPU throughput of the harness's training step on a T5-base-shaped host, alone and with runs sharing one GPU.

A flan-t5-base-shaped host (d_model 768, 12+12 layers, gated FFN 2048, vocabulary 32128; random weights), a peft
LoRA (q, v, r = 8), batches of 32 x 64 input tokens and a one-word label, trained by hubport.engine.train.train with
mixed_precision "auto" (bf16 on a GPU that has it). Prints the step time and peak memory of one run, then the
aggregate steps per second of K concurrent runs (separate processes on the same GPU) against K = 1.
Goals: <= 8 ms per step; >= 2x aggregate throughput from concurrent runs.

    python benchmarks/bench_gpu.py            # needs a CUDA GPU
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

SHAPE = dict(d_model=768, d_ff=2048, d_kv=64, num_layers=12, num_decoder_layers=12, num_heads=12, vocab_size=32128)
BATCH, LENGTH, STEPS, WARMUP = 32, 64, 300, 10
START_DELAY = 40  # seconds for every worker to build its model and warm up before the common start


def synthetic_task(n: int = 4096):
    import numpy as np

    from hubport.engine.data import DataSpec, Split, Task

    rng = np.random.default_rng(0)
    ids = rng.integers(3, SHAPE["vocab_size"], size=(n, LENGTH)).astype(np.int64)
    split = Split(ids, np.ones_like(ids), rng.integers(0, 2, size=n).astype(np.int64))
    labels = np.array([[100, 1], [200, 1]], dtype=np.int64)
    return Task(spec=DataSpec(source="synthetic"), train=split, eval=split, label_ids=labels,
                label_mask=np.ones_like(labels), pad_id=0)


def worker(start_at: float) -> dict:
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    from hubport.engine.modules import ModuleSpec, attach_new
    from hubport.engine.train import TrainConfig, train

    torch.manual_seed(0)
    config = T5Config(**SHAPE, feed_forward_proj="gated-gelu", tie_word_embeddings=False, dropout_rate=0.0,
                      decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    model = attach_new(T5ForConditionalGeneration(config), ModuleSpec.of("lora", "peft", {"r": 8, "lora_alpha": 16,
                                                                                          "target_modules": ["q", "v"]}), 0)
    task, cfg = synthetic_task(), TrainConfig(lr=1e-3, batch_size=BATCH, mixed_precision="auto")
    train(model, task, WARMUP, cfg, seed=0)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    time.sleep(max(0.0, start_at - time.time()))  # all K runs start their timed steps together
    began = time.time()
    train(model, task, WARMUP + STEPS, cfg, seed=0, start_step=WARMUP)
    torch.cuda.synchronize()
    ended = time.time()
    return {"began": began, "ended": ended, "ms_per_step": (ended - began) / STEPS * 1e3,
            "peak_gib": torch.cuda.max_memory_allocated() / 2**30}


def concurrent(k: int) -> dict:
    start_at = str(time.time() + START_DELAY)
    procs = [subprocess.Popen([sys.executable, __file__, "--worker", start_at], stdout=subprocess.PIPE, text=True)
             for _ in range(k)]
    results = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    # throughput over the window in which all K ran their timed steps together
    start, end = max(r["began"] for r in results), min(r["ended"] for r in results)
    rate = sum(STEPS / (r["ended"] - r["began"]) for r in results) if end > start else float("nan")
    return {"k": k, "steps_per_s": rate, "ms_per_step": [round(r["ms_per_step"], 2) for r in results],
            "peak_gib": round(max(r["peak_gib"] for r in results), 2)}


def main() -> None:
    if "--worker" in sys.argv:
        print(json.dumps(worker(float(sys.argv[-1]))), flush=True)
        return
    import torch

    print(f"device: {torch.cuda.get_device_name()}; host {SHAPE}; LoRA q,v r8; batch {BATCH} x {LENGTH}")
    base = None
    for k in (1, 2, 4, 8):
        r = concurrent(k)
        base = base or r["steps_per_s"]
        print(f"K={k}: per-run ms/step {r['ms_per_step']}, peak {r['peak_gib']} GiB per run, aggregate "
              f"{r['steps_per_s']:.1f} steps/s = {r['steps_per_s'] / base:.2f}x K=1 (goal >= 2x); "
              f"one run's step {min(r['ms_per_step']):.2f} ms (goal <= 8 ms)", flush=True)


if __name__ == "__main__":
    main()
