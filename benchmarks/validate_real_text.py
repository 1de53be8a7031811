"""The demo grid's design on real text: SST-2 and Rotten Tomatoes, hosts pretrained here from that text.

No pretrained T5 can be downloaded on these machines, so the hosts are built the way the demo builds its own, at a
larger size and on real text: a word-level tokenizer over SST-2 + Rotten Tomatoes train text; host A trained from
scratch on span corruption of that text plus the sentiment family under another prompt and verbaliser
(`review: <Rotten Tomatoes train text>` -> good/bad, as T5/Flan-T5 saw sentiment tasks); host B = A trained further
on copy / reverse / first word / span corruption and `opinion: <SST-2 train text>` -> yes/no. Modules are then
trained on SST-2 (`sentiment: {text}` -> negative/positive) and the study runs A -> B and B -> A, SST-2 -> SST-2 and
SST-2 -> Rotten Tomatoes. Validation data (SST-2 dev, RT validation) is never seen by the hosts.

    python benchmarks/validate_real_text.py --data ../shared/data --out runs/real-text [--device cuda] [--jobs 8]
    harness analyze runs/real-text/study && harness report runs/real-text/study
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

WORD = re.compile(r"\w+|[^\w\s]+")
SIZES = {"small": dict(d_model=256, d_ff=1024, num_layers=4, num_heads=4, d_kv=64),
         "tiny": dict(d_model=64, d_ff=256, num_layers=2, num_heads=4, d_kv=16)}


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def vocabulary(texts: list[str], size: int) -> list[str]:
    counts = collections.Counter(w for t in texts for w in WORD.findall(t.lower()))
    return [w for w, c in counts.most_common(size) if c >= 2]


def examples(kind: str, n: int, rng: np.random.Generator, corpus: list[str], rt: list[dict], sst: list[dict]):
    from hubport.demo.pretrain import corrupt

    out = []
    for _ in range(n):
        if kind == "review":
            row = rt[rng.integers(len(rt))]
            out.append((f"review: {row['text']}", ("bad", "good")[row["label"]]))
            continue
        if kind == "opinion":
            row = sst[rng.integers(len(sst))]
            out.append((f"opinion: {row['text']}", ("no", "yes")[row["label"]]))
            continue
        words = corpus[rng.integers(len(corpus))].split()[:40]
        if kind == "span":
            out.append(corrupt(words, rng))
        elif kind == "copy":
            out.append((f"copy: {' '.join(words)}", " ".join(words)))
        elif kind == "reverse":
            out.append((f"reverse: {' '.join(words)}", " ".join(reversed(words))))
        else:
            out.append((f"first word: {' '.join(words)}", words[0]))
    return out


def mixture(parts: dict[str, float], steps: int, batch: int, seed: int, *data) -> list[tuple[str, str]]:
    rng = np.random.default_rng(seed)
    n = steps * batch
    pairs = []
    for kind, share in parts.items():
        pairs += examples(kind, int(round(n * share)), rng, *data)
    order = rng.permutation(len(pairs))
    return [pairs[i] for i in order]


def build_hosts(data: Path, out: Path, *, size: str, steps_a: int, steps_b: int, batch: int, device: str) -> dict:
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    from hubport.demo.hosts import relative_difference
    from hubport.demo.pretrain import train_full
    from hubport.demo.tokenizer import build_tokenizer, save_tokenizer

    sst, rt = read_jsonl(data / "sst2" / "train.jsonl"), read_jsonl(data / "rotten_tomatoes" / "train.jsonl")
    corpus = [r["text"] for r in sst + rt if len(r["text"].split()) >= 6]
    tokenizer = build_tokenizer(vocabulary([r["text"] for r in sst + rt], 16000), extra_ids=32)
    torch.manual_seed(0)
    config = T5Config(vocab_size=len(tokenizer), feed_forward_proj="gated-gelu", tie_word_embeddings=False,
                      dropout_rate=0.0, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1, **SIZES[size])
    model = T5ForConditionalGeneration(config)
    with torch.no_grad():
        model.lm_head.weight.normal_(0.0, config.d_model ** -0.5)
    model.to(device)
    info = {"vocab": len(tokenizer), "parameters": sum(p.numel() for p in model.parameters()), "size": size}
    plan = (("origin", {"span": 0.5, "review": 0.5}, steps_a, 2e-3),
            ("receiving", {"span": 0.25, "copy": 0.2, "reverse": 0.2, "first": 0.2, "opinion": 0.15}, steps_b, 1e-3))
    for i, (name, parts, steps, lr) in enumerate(plan):
        began = time.perf_counter()
        losses = train_full(model, tokenizer, mixture(parts, steps, batch, i, corpus, rt, sst), batch_size=batch,
                            lr=lr, warmup=100)
        info[name] = {"steps": steps, "seconds": round(time.perf_counter() - began, 1),
                      "final_loss": round(float(np.mean(losses[-50:])), 3)}
        model.to("cpu").save_pretrained(out / name)
        save_tokenizer(tokenizer, out / name)
        model.to(device)
        print(name, info[name], flush=True)
    info["relative_difference"] = relative_difference(out / "origin", out / "receiving")
    return info


def grid(hosts: Path, data: Path, *, seeds: int, budgets: list[int], origin_steps: int) -> dict:
    label = {"template": "sentiment: {text}", "label_words": ["negative", "positive"], "max_length": 64,
             "max_train": 10000}
    return {"description": "The demo grid's design on real text (benchmarks/validate_real_text.py)",
            "defaults": {
                "hosts": {"a": str(hosts / "origin"), "b": str(hosts / "receiving")},
                "datasets": {"sst2": {"source": str(data / "sst2"), **label},
                             "rt": {"source": str(data / "rotten_tomatoes"), **label}},
                "pairs": ["a -> b", "b -> a"], "data_pairs": ["sst2 -> sst2", "sst2 -> rt"],
                "families": {
                    "lora": {"library": "peft", "config": {"r": 8, "lora_alpha": 16, "target_modules": ["q", "v"]}},
                    "prefix_tuning": {"library": "adapters", "config": {"prefix_length": 10, "bottleneck_size": 64}},
                    "bottleneck": {"library": "adapters", "config": {"type": "seq_bn", "reduction_factor": 16}},
                    "compacter": {"library": "adapters", "config": {"reduction_factor": 16,
                                                                    "shared_phm_rule": False}}},
                "conditions": ["ported", "scratch", "sampled", "host"], "budgets": budgets,
                "seeds": list(range(seeds)),
                "origin": {"seed": 0, "steps": origin_steps, "train": {"lr": 3e-3, "batch_size": 32}},
                "train": {"lr": 3e-3, "batch_size": 32, "mixed_precision": "auto"},
                "eval": {"batch_size": 256}, "resources": {"cpus": 1, "gpus": 0}},
            "experiments": {"real_text": {}}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=Path("../shared/data"))
    p.add_argument("--out", type=Path, default=Path("runs/real-text"))
    p.add_argument("--device", default="cuda" if _cuda() else "cpu")
    p.add_argument("--size", choices=sorted(SIZES), default="small")
    p.add_argument("--steps-a", type=int, default=4000)
    p.add_argument("--steps-b", type=int, default=1000)
    p.add_argument("--seeds", type=int, default=6)
    p.add_argument("--budgets", default="0,50,200")
    p.add_argument("--origin-steps", type=int, default=600)
    p.add_argument("--jobs", type=int, default=1)
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    hosts = a.out / "hosts"
    if not (hosts / "build.json").is_file():
        info = build_hosts(a.data, hosts, size=a.size, steps_a=a.steps_a, steps_b=a.steps_b, batch=64,
                           device=a.device)
        (hosts / "build.json").write_text(json.dumps(info, indent=1, sort_keys=True))
    config = grid(hosts, a.data.resolve(), seeds=a.seeds, budgets=[int(b) for b in a.budgets.split(",")],
                  origin_steps=a.origin_steps)
    (a.out / "grid.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    cmd = [sys.executable, "-m", "harness.cli", "run", str(a.out / "grid.yaml"), "--out", str(a.out / "study"),
           "--jobs", str(a.jobs)]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=False)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    main()
