"""Pre-training mixtures for the demo hosts and the full-model training loop that runs them.

Host A (the originating host, "T5-like") learns the language by span corruption and sees the sentiment family
under its own prompt and verbaliser (`review:` -> good/bad), as T5 and Flan-T5 saw SST-2 under other prompts.
Host B (the receiving host, "Flan-like") is A trained further on other tasks: copy, reverse, first word, more
span corruption, and a little sentiment under yet another prompt (`opinion:` -> yes/no). Every example is
drawn from a numpy RNG seeded by the recipe seed, so a host is a pure function of its recipe.
"""

from __future__ import annotations

import numpy as np

from hubport.demo.task import Lexicon, neutral_sentence, review
from hubport.demo.tokenizer import sentinel

MIXTURES = {
    "origin": (("span", 0.5), ("review", 0.5)),
    "receiving": (("span", 0.25), ("copy", 0.2), ("reverse", 0.2), ("first", 0.2), ("opinion", 0.15)),
}
VERBALISERS = {"review": ("bad", "good"), "opinion": ("no", "yes")}


def corrupt(words: list[str], rng: np.random.Generator, density: float = 0.15, mean_span: float = 3.0):
    """T5 span corruption: (input with sentinels, target of sentinels and the dropped spans)."""
    n = len(words)
    n_noise = min(max(1, round(n * density)), n - 1)
    n_spans = max(1, min(round(n_noise / mean_span), n - n_noise))
    cuts = np.sort(rng.choice(np.arange(1, n_noise), size=n_spans - 1, replace=False)) if n_spans > 1 else []
    spans = np.diff(np.concatenate([[0], cuts, [n_noise]])).astype(int)
    gaps = np.ones(n_spans + 1, dtype=int)
    gaps[0] = gaps[-1] = 0
    extra = n - n_noise - int(gaps.sum())
    gaps += rng.multinomial(extra, np.full(n_spans + 1, 1.0 / (n_spans + 1)))
    source, target, pos = [], [], 0
    for i in range(n_spans):
        source += words[pos:pos + gaps[i]]
        pos += gaps[i]
        source.append(sentinel(i))
        target += [sentinel(i), *words[pos:pos + spans[i]]]
        pos += spans[i]
    source += words[pos:]
    return " ".join(source), " ".join(target)


def example(kind: str, rng: np.random.Generator, lex: Lexicon) -> tuple[str, str]:
    """One (input, target) pair of a mixture component."""
    if kind in VERBALISERS:
        text, label = review(rng, lex)
        return f"{kind}: {text}", VERBALISERS[kind][label]
    text = review(rng, lex)[0] if rng.random() < 0.5 else neutral_sentence(rng, lex)
    words = text.split()
    if kind == "span":
        return corrupt(words, rng)
    if kind == "copy":
        return f"copy: {text}", text
    if kind == "reverse":
        return f"reverse: {text}", " ".join(reversed(words))
    if kind == "first":
        return f"first word: {text}", words[0]
    raise ValueError(f"unknown mixture component {kind}")


def draw_examples(mixture: tuple[tuple[str, float], ...], n: int, rng: np.random.Generator, lex: Lexicon):
    """n (input, target) pairs drawn from a weighted mixture."""
    kinds = [k for k, _ in mixture]
    weights = np.array([w for _, w in mixture], dtype=float)
    picks = rng.choice(len(kinds), size=n, p=weights / weights.sum())
    return [example(kinds[i], rng, lex) for i in picks]


def pad_batch(rows: list[list[int]], fill: int):
    """Right-pad token id lists into a LongTensor."""
    import torch

    width = max(len(r) for r in rows)
    out = torch.full((len(rows), width), fill, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    return out


def train_full(model, tokenizer, pairs: list[tuple[str, str]], *, batch_size: int, lr: float, warmup: int,
               on_step=None) -> list[float]:
    """Full-model AdamW over `pairs` in order (one pass), linear warm-up, linear decay to 10%; the losses."""
    import torch

    steps = len(pairs) // batch_size
    sources = tokenizer([s for s, _ in pairs], truncation=True, max_length=48)["input_ids"]
    targets = tokenizer([t for _, t in pairs], truncation=True, max_length=48)["input_ids"]
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.98))
    schedule = lambda s: min((s + 1) / warmup, 1.0 - 0.9 * s / steps)  # noqa: E731
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    losses = []
    model.train()
    for step in range(steps):
        sl = slice(step * batch_size, (step + 1) * batch_size)
        ids = pad_batch(sources[sl], tokenizer.pad_token_id).to(model.device)
        labels = pad_batch(targets[sl], -100).to(model.device)
        loss = model(input_ids=ids, attention_mask=(ids != tokenizer.pad_token_id).long(), labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.detach())
        if on_step is not None:
            on_step(step)
    model.eval()
    return [float(v) for v in torch.stack(losses)] if losses else []
