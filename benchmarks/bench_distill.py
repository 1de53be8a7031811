"""Distillation across lineages on the independent demo pair, measured side by side in one run (no asserts).

Source: the seed-0 demo origin host with an originating module trained there as the demo does (600 labelled
steps, lr 5e-3, batch 32); target: the seed-1 demo receiving host, pretrained independently (the same recipe,
another seed), where `hubport check` finds no map. For LoRA (peft) and the bottleneck adapter (adapters),
prints accuracy on the demo task's validation split of: the origin module on its own host, the target host
alone, the module distilled onto the target from a fresh init with N unlabelled steps (budget 0: no labelled
step after), and scratch trained N labelled steps, as a curve over N. Then distillation steps/s against the
harness's own training loop (harness.train) on the same model and batch. Targets: >= 90% of the origin
module's accuracy within 300 unlabelled steps on CPU; speed ratio >= 0.9x.

Run: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_distill.py [--quick] [--cuda]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import shutil
import tempfile
import warnings
from pathlib import Path

FAMILIES = {
    "lora": ("peft", {"r": 8, "lora_alpha": 16, "target_modules": ["q", "v"]}),
    "bottleneck": ("adapters", {"type": "seq_bn", "reduction_factor": 8}),
}
ORIGIN = {"steps": 600, "lr": 5e-3, "batch_size": 32}
TEMPLATE = "sentiment: {text}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="steps 25 and 100 only")
    parser.add_argument("--cuda", action="store_true", help="run on the GPU (bf16 where it has it)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    import torch

    from hubport.demo.hosts import build_demo_hosts, demo_cache_dir
    from hubport.demo.task import write_demo_task

    torch.set_num_threads(1)
    budgets = (25, 100) if args.quick else (25, 100, 300)
    source = build_demo_hosts(demo_cache_dir(), seed=0).origin
    target = build_demo_hosts(demo_cache_dir(), seed=1).receiving
    device = "cuda" if args.cuda else "cpu"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = write_demo_task(root / "data")
        print(f"source {source}\ntarget {target}\ndevice {device}; budgets {budgets}; data {data}")
        speeds = []
        for family, (library, config) in FAMILIES.items():
            speeds.append(run_family(root, family, library, config, source, target, data, budgets, device))
        print("\nsteps/s (same model and batch 32):  family  distill  harness.train  ratio")
        for family, d, h in speeds:
            print(f"  {family:<11} {d:7.1f}  {h:7.1f}  {d / h:5.2f}x")


def run_family(root: Path, family: str, library: str, config: dict, source: Path, target: Path, data: Path,
               budgets: tuple, device: str) -> tuple:
    """Print one family's curve; return (family, distill steps/s, harness steps/s) at the largest budget."""
    from hubport.distill import DistillConfig, distill_module, fresh_module, read_texts
    from hubport.engine.data import DataSpec, load_task
    from hubport.engine.evaluation import evaluate
    from hubport.engine.modules import ModuleSpec, attach_new, attach_saved, load_host, save_module
    from hubport.engine.train import TrainConfig, make_accelerator, train

    acc = make_accelerator(cpu=device == "cpu")
    spec = ModuleSpec.of(family, library, config)
    cfg = TrainConfig(lr=ORIGIN["lr"], batch_size=ORIGIN["batch_size"], mixed_precision="auto")
    model, tok = load_host(source)
    task = load_task(DataSpec(source=str(data), template=TEMPLATE), tok)
    model = attach_new(model, spec, 0)
    train(model, task, ORIGIN["steps"], cfg, seed=0, accelerator=acc)
    origin_acc = evaluate(model, task, accelerator=acc)["accuracy"]
    save_module(model.cpu(), spec, root / f"{family}-origin")
    host, _ = load_host(target)
    host.to(acc.device)
    host_acc = evaluate(host, task, accelerator=acc)["accuracy"]
    texts, record = read_texts(data)
    print(f"\n{family} ({library}): origin module on its own host {origin_acc:.3f}; target host alone "
          f"{host_acc:.3f}; {record['n']} unlabelled inputs (labels not read)")
    print("  steps  distilled  (% of origin)  agreement  KL after  scratch   distill s  scratch s")
    init = fresh_module(root / f"{family}-origin", target, root / f"{family}-init", seed=0)
    speed = (0.0, 0.0)
    for steps in budgets:
        student = shutil.copytree(init, root / f"{family}-student-{steps}")
        result = distill_module(source, root / f"{family}-origin", target, student, texts,
                                DistillConfig(steps=steps, lr=cfg.lr, batch_size=cfg.batch_size, max_new_tokens=4,
                                              template=TEMPLATE), data=record, accelerator=acc)
        distilled, _ = load_host(target)
        distilled = attach_saved(distilled, spec, student).to(acc.device)
        dist_acc = evaluate(distilled, task, accelerator=acc)["accuracy"]
        scratch, _ = load_host(target)
        scratch = attach_new(scratch, spec, 0)
        fit = train(scratch, task, steps, cfg, seed=0, accelerator=acc)
        scratch_acc = evaluate(scratch, task, accelerator=acc)["accuracy"]
        print(f"  {steps:5d}  {dist_acc:9.3f}  {100 * dist_acc / origin_acc:12.1f}%  {result.agreement_after:9.3f}"
              f"  {result.kl_after:8.4f}  {scratch_acc:7.3f}  {result.train_seconds:9.2f}  {fit['seconds']:9.2f}")
        speed = (steps / result.train_seconds, steps / fit["seconds"])
    return family, *speed


if __name__ == "__main__":
    main()
