"""The demo's pair of tiny related T5 hosts, built deterministically from a seed and cached by recipe.

Host A (origin) is a gated, untied (v1.1/Flan-style) T5 trained from scratch on the generated language; host B
(receiving) is A trained further on other tasks, the way Flan-T5 derives from T5, so the pair differs the way
real pairs do (see relative_difference). Building runs on one CPU thread so that the weights are the same bit
for bit in every fresh process on a machine; folders are written to a temporary name and renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from hubport.demo import pretrain
from hubport.demo.task import LEXICON_SEED, make_lexicon
from hubport.demo.tokenizer import build_tokenizer, save_tokenizer

RECIPE_VERSION = 1
INDEPENDENT_SEED = 1   # the demo's host of another lineage: the same recipe from this seed, pretrained apart


@dataclass(frozen=True)
class HostRecipe:
    """Everything that determines the two hosts' weights (its hash names the cache folder)."""

    d_model: int = 64
    d_ff: int = 256
    num_layers: int = 2
    num_heads: int = 4
    d_kv: int = 16
    extra_ids: int = 8
    batch_size: int = 64
    steps_origin: int = 1200
    lr_origin: float = 3e-3
    steps_receiving: int = 400
    lr_receiving: float = 1e-3
    warmup: int = 100
    mixtures: tuple = field(default_factory=lambda: tuple(sorted(pretrain.MIXTURES.items())))
    lexicon_seed: int = LEXICON_SEED
    version: int = RECIPE_VERSION

    def hash(self, seed: int) -> str:
        blob = json.dumps({"recipe": asdict(self), "seed": seed}, sort_keys=True, default=list)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class DemoHosts:
    """The two host folders (config.json, model.safetensors, tokenizer files) and their recipe hash."""

    origin: Path
    receiving: Path
    recipe_hash: str


def demo_cache_dir() -> Path:
    """Where demo hosts are cached: $HUBPORT_CACHE/demo, by default ~/.cache/hubport/demo."""
    return Path(os.environ.get("HUBPORT_CACHE", "~/.cache/hubport")).expanduser() / "demo"


def build_demo_hosts(cache_dir: Path, *, seed: int = 0, progress=None,
                     recipe: HostRecipe | None = None) -> DemoHosts:
    """The cached pair for (recipe, seed), built first if absent; `progress` is an optional rich Progress."""
    recipe = recipe or HostRecipe()
    key = recipe.hash(seed)
    final = Path(cache_dir).expanduser() / key
    hosts = DemoHosts(final / "origin", final / "receiving", key)
    if (final / "build.json").is_file():
        return hosts
    tmp = final.parent / f".{key}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        info = _build(tmp, recipe, seed, progress)
        (tmp / "build.json").write_text(json.dumps(info, indent=1, sort_keys=True))
        if final.exists() and not (final / "build.json").is_file():
            shutil.rmtree(final)  # without build.json it is no finished build (never renamed into place)
        try:
            os.rename(tmp, final)
        except OSError:  # another process finished the same recipe first: theirs is identical
            if not (final / "build.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return hosts


def _build(folder: Path, recipe: HostRecipe, seed: int, progress) -> dict:
    """Train A from scratch, then B from A; save both with the tokenizer; return the build's facts."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            lex = make_lexicon(recipe.lexicon_seed)
            tokenizer = build_tokenizer(lex.words(), recipe.extra_ids)
            model = _fresh_model(recipe, len(tokenizer))
            mixtures = dict(recipe.mixtures)
            info = {"recipe": asdict(recipe), "seed": seed, "vocab_size": len(tokenizer),
                    "parameters": sum(p.numel() for p in model.parameters())}
            for name, steps, lr in (("origin", recipe.steps_origin, recipe.lr_origin),
                                    ("receiving", recipe.steps_receiving, recipe.lr_receiving)):
                rng = np.random.default_rng([seed, 1 if name == "origin" else 2])
                pairs = pretrain.draw_examples(mixtures[name], steps * recipe.batch_size, rng, lex)
                began = time.perf_counter()
                losses = pretrain.train_full(model, tokenizer, pairs, batch_size=recipe.batch_size, lr=lr,
                                             warmup=recipe.warmup, on_step=_ticker(progress, name, steps))
                info[name] = {"steps": steps, "seconds": round(time.perf_counter() - began, 2),
                              "final_loss": round(float(np.mean(losses[-50:])), 4)}
                model.save_pretrained(str(folder / name))
                save_tokenizer(tokenizer, folder / name)
    finally:
        torch.set_num_threads(threads)
    info["relative_difference"] = relative_difference(folder / "origin", folder / "receiving")
    return info


def _fresh_model(recipe: HostRecipe, vocab_size: int):
    """A random gated, untied T5; lm_head re-drawn at std d_model^-0.5 (HF's std 1.0 is far too big)."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    config = T5Config(vocab_size=vocab_size, d_model=recipe.d_model, d_ff=recipe.d_ff, d_kv=recipe.d_kv,
                      num_layers=recipe.num_layers, num_decoder_layers=recipe.num_layers,
                      num_heads=recipe.num_heads,
                      feed_forward_proj="gated-gelu", tie_word_embeddings=False, dropout_rate=0.0,
                      decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    model = T5ForConditionalGeneration(config)
    with torch.no_grad():
        model.lm_head.weight.normal_(0.0, recipe.d_model ** -0.5)
    return model


def _ticker(progress, name: str, steps: int):
    if progress is None:
        return None
    task = progress.add_task(f"building demo host {name}", total=steps)
    return lambda step: progress.update(task, completed=step + 1)


def relative_difference(a: Path, b: Path) -> dict[str, float]:
    """||B - A||_F / ||A||_F per block (encoder.block.0 ...), final norm, embedding (shared), lm_head, all."""
    from safetensors.numpy import load_file

    wa, wb = load_file(str(Path(a) / "model.safetensors")), load_file(str(Path(b) / "model.safetensors"))
    groups: dict[str, list[str]] = {}
    for key in sorted(wa):
        parts = key.split(".")
        group = ".".join(parts[:3]) if len(parts) > 3 and parts[1] == "block" else ".".join(parts[:-1])
        groups.setdefault(group, []).append(key)
    out = {}
    for group, keys in groups.items():
        num = sum(float(np.sum((wb[k].astype(np.float64) - wa[k]) ** 2)) for k in keys)
        den = sum(float(np.sum(wa[k].astype(np.float64) ** 2)) for k in keys)
        out[group] = round((num / den) ** 0.5, 6) if den else 0.0
    num = sum(float(np.sum((wb[k].astype(np.float64) - wa[k]) ** 2)) for k in wa)
    out["all"] = round((num / sum(float(np.sum(wa[k].astype(np.float64) ** 2)) for k in wa)) ** 0.5, 6)
    return out
