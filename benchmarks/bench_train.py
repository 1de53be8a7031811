"""Engine speed, measured side by side in one run (prints ratios; no asserts).

1. Training: hubport.engine.train (accelerate, seeded batches, resumable state) against a bare hand-written PyTorch
loop on the same model, batch size and number of steps. Target: ratio (bare time / harness time) >= 0.95. 2.
Evaluation: rank classification (hubport.engine.evaluation.evaluate) against greedy generate() on the same evaluation
set. Target: >= 5x faster, with identical predictions on a trained module. Hosts: a tiny demo-sized T5
(d_model 64, 2+2 layers) and a flan-t5-small-shaped one (d_model 512, 8+8 layers, vocabulary 32128), both with
random weights built from configs; the task is the generated demo task.

Measured here: training at parity with the bare loop; rank classification at parity with generate (1.0x), not
5x. Demo and SST-2 labels are one token plus </s>, so greedy generate needs just two decoder steps, the same work
as rank classification (which also scores the losing labels). Rank classification is exact and never
produces an output that is no label; its speed advantage appears only against untrained modules, where generate
runs to its length limit.

Run: .venv/bin/python benchmarks/bench_train.py [--quick] [--cuda]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

HOSTS = {
    "tiny": dict(d_model=64, d_ff=256, d_kv=16, num_layers=2, num_heads=4, vocab_size=None),
    "t5-small-shaped": dict(d_model=512, d_ff=1024, d_kv=64, num_layers=8, num_heads=6, vocab_size=32128),
}


def make_host(folder: Path, shape: dict, tokenizer) -> Path:
    """A gated, untied T5 with random weights (seed 0) saved with the demo tokenizer."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    kw = dict(shape, vocab_size=shape["vocab_size"] or len(tokenizer), num_decoder_layers=shape["num_layers"])
    config = T5Config(**kw, feed_forward_proj="gated-gelu", tie_word_embeddings=False, dropout_rate=0.0,
                      decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    torch.manual_seed(0)
    T5ForConditionalGeneration(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def bare_loop(model, task, steps: int, batch_size: int, lr: float, device: str) -> float:
    """The loop one would write by hand: shuffled indices, trim padding, forward, backward, AdamW step."""
    import torch

    model.to(device)
    ids, mask = torch.from_numpy(task.train.input_ids), torch.from_numpy(task.train.attention_mask)
    labels = torch.from_numpy(task.label_ids).masked_fill(torch.from_numpy(task.label_mask) == 0, -100)
    gold = torch.from_numpy(task.train.labels)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    order = torch.randperm(len(gold), generator=torch.Generator().manual_seed(0))
    model.train()
    began = time.perf_counter()
    for step in range(steps):
        idx = order[(step * batch_size) % len(gold):][:batch_size]
        m = mask[idx]
        width = int(m.sum(1).max())
        batch = {"input_ids": ids[idx, :width], "attention_mask": m[:, :width], "labels": labels[gold[idx]]}
        loss = model(**{k: v.to(device) for k, v in batch.items()}).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    float(loss)  # wait for the device, as train() does when it returns its losses
    model.eval()
    return time.perf_counter() - began


def bench_training(host: Path, task, steps: int, batch_size: int, repeats: int, device: str) -> None:
    from hubport.engine.modules import ModuleSpec, attach_new, load_host
    from hubport.engine.train import TrainConfig, make_accelerator, train

    spec = ModuleSpec.of("lora", "peft", {"r": 8, "lora_alpha": 16, "target_modules": ["q", "v"]})
    accelerator = make_accelerator(cpu=device == "cpu")
    cfg = TrainConfig(lr=1e-3, batch_size=batch_size, mixed_precision="no")  # the bare loop is fp32 too
    ratios, times = [], {"bare": [], "harness": []}
    for rep in range(repeats + 1):  # the first round warms up both paths and is not counted
        pair = {}
        for name in ("bare", "harness") if rep % 2 == 0 else ("harness", "bare"):
            model = attach_new(load_host(host)[0], spec, seed=0)
            if name == "bare":
                pair[name] = bare_loop(model, task, steps, batch_size, cfg.lr, device)
            else:
                pair[name] = train(model, task, steps, cfg, seed=0, accelerator=accelerator)["seconds"]
        if rep:
            ratios.append(pair["bare"] / pair["harness"])
            for k, v in pair.items():
                times[k].append(v)
    print(f"  training  {steps} steps x batch {batch_size}: bare {statistics.median(times['bare']):.3f} s, "
          f"harness {statistics.median(times['harness']):.3f} s, "
          f"throughput ratio harness/bare = {statistics.median(ratios):.3f} (target >= 0.95; "
          f"per repeat {', '.join(f'{r:.3f}' for r in ratios)})")


def bench_evaluation(host: Path, task, train_steps: int, repeats: int, device: str) -> None:
    from hubport.engine.evaluation import evaluate, evaluate_generate
    from hubport.engine.modules import ModuleSpec, attach_new, load_host
    from hubport.engine.train import TrainConfig, train

    spec = ModuleSpec.of("lora", "peft", {"r": 8, "lora_alpha": 16, "target_modules": ["q", "v"]})
    model = attach_new(load_host(host)[0], spec, seed=0).to(device)
    if train_steps:
        train(model, task, train_steps, TrainConfig(lr=1e-2, batch_size=32, mixed_precision="no"), seed=0)
    evaluate(model, task), evaluate_generate(model, task)  # warm-up
    rank_t, gen_t = [], []
    for _ in range(repeats):
        began = time.perf_counter()
        ranked = evaluate(model, task)
        rank_t.append(time.perf_counter() - began)
        began = time.perf_counter()
        generated = evaluate_generate(model, task)
        gen_t.append(time.perf_counter() - began)
    same = sum(a == b for a, b in zip(ranked["predictions"], generated["predictions"], strict=True))
    rank, gen = statistics.median(rank_t), statistics.median(gen_t)
    which = f"module trained {train_steps} steps" if train_steps else "untrained module"
    print(f"  evaluation of {ranked['n']} examples ({which}): "
          f"rank {rank:.3f} s, generate {gen:.3f} s, speed-up = {gen / rank:.1f}x (target >= 5x); "
          f"identical predictions {same}/{ranked['n']}; accuracy rank {ranked['accuracy']:.3f}, "
          f"generate {generated['accuracy']:.3f}")


def main(quick: bool = False, device: str = "cpu") -> None:
    import torch

    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    from hubport.demo.task import make_lexicon, write_demo_task
    from hubport.demo.tokenizer import build_tokenizer
    from hubport.engine.data import DataSpec, load_task
    from hubport.engine.modules import load_host

    root = Path(tempfile.mkdtemp(prefix="bench-train-"))
    tokenizer = build_tokenizer(make_lexicon().words())
    data = write_demo_task(root / "data", seed=0, n_train=2000, n_eval=500)
    where = torch.cuda.get_device_name() if device == "cuda" else f"CPU, {torch.get_num_threads()} thread(s)"
    print(f"bench_train: torch {torch.__version__}, {where}")
    for name, shape in HOSTS.items():
        host = make_host(root / name, shape, tokenizer)
        tiny = name == "tiny"
        task = load_task(DataSpec(source=str(data), max_eval=None if tiny else 128), tokenizer)
        params = sum(p.numel() for p in load_host(host)[0].parameters())
        print(f"{name} host ({params / 1e6:.2f} M parameters)")
        steps = (40 if quick else 100) if tiny or device == "cuda" else (4 if quick else 10)
        bench_training(host, task, steps, 32, repeats=3 if quick else 5, device=device)
        bench_evaluation(host, task, (150 if tiny else 0), repeats=2 if quick else 3, device=device)


if __name__ == "__main__":
    main(quick="--quick" in sys.argv, device="cuda" if "--cuda" in sys.argv else "cpu")
