"""Demo hosts and task: the generated language, the tokenizer, deterministic cached hosts, host distance."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from hubport.demo import pretrain
from hubport.demo.hosts import HostRecipe, build_demo_hosts, relative_difference
from hubport.demo.task import DEMO_LABELS, make_lexicon, review, write_demo_task
from hubport.demo.tokenizer import build_tokenizer

# A recipe small enough to build in about a second: the same code path as the demo's, far fewer steps.
TINY = HostRecipe(d_model=16, d_ff=32, d_kv=4, num_heads=4, batch_size=8, steps_origin=6, steps_receiving=4,
                  warmup=2)
ROOT = Path(__file__).resolve().parents[1]


def _label_by_rule(text: str, lex) -> int:
    """The polarity the lexicon implies: the last sentiment word decides ("but" clauses), "not" flips it."""
    words = text.split()
    pos = [i for i, w in enumerate(words) if w in lex.positive or w in lex.negative]
    last = pos[-1]
    polarity = int(words[last] in lex.positive)
    return 1 - polarity if "not" in words[:last] else polarity


def test_reviews_follow_the_lexicon_rules():
    lex = make_lexicon()
    rng = np.random.default_rng(0)
    rows = [review(rng, lex) for _ in range(2000)]
    assert all(_label_by_rule(text, lex) == label for text, label in rows)
    labels = np.array([label for _, label in rows])
    assert 0.45 < labels.mean() < 0.55
    assert any(" not " in f" {t} " for t, _ in rows) and any(" but " in f" {t} " for t, _ in rows)


def test_lexicon_is_fixed_and_its_roles_disjoint():
    lex, again = make_lexicon(), make_lexicon()
    assert lex == again
    roles = [lex.positive, lex.negative, lex.neutral, lex.nouns, lex.verbs]
    assert sum(len(r) for r in roles) == len(set().union(*roles))
    assert make_lexicon(seed=1) != lex


def test_tokenizer_is_word_level_with_t5_ids(tmp_path):
    from transformers import AutoTokenizer

    lex = make_lexicon()
    build_tokenizer(lex.words(), extra_ids=4).save_pretrained(tmp_path)
    tok = AutoTokenizer.from_pretrained(tmp_path)
    assert (tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2)
    assert tok.convert_tokens_to_ids("<extra_id_0>") == 3
    rng = np.random.default_rng(1)
    texts = [f"sentiment: {review(rng, lex)[0]}" for _ in range(200)]
    for kind in ("span", "copy", "reverse", "first", "review", "opinion"):
        texts += list(pretrain.example(kind, rng, lex))
    for text in texts:
        ids = tok(text)["input_ids"]
        assert ids[-1] == 1 and 2 not in ids, text
        assert len(ids) == len(re.findall(r"<extra_id_\d+>|\w+|[^\w\s]+", text)) + 1  # one token a word
    assert [len(tok(w)["input_ids"]) for w in DEMO_LABELS] == [2, 2]


def test_span_corruption_keeps_every_word():
    rng = np.random.default_rng(2)
    lex = make_lexicon()
    for _ in range(300):
        words = review(rng, lex)[0].split()
        source, target = pretrain.corrupt(words, rng)
        spans, current = {}, None
        for w in target.split():
            if w.startswith("<extra_id_"):
                current = w
                spans[current] = []
            else:
                spans[current].append(w)
        rebuilt = [x for w in source.split() for x in (spans[w] if w in spans else [w])]
        assert rebuilt == words and 1 <= len(spans) and all(spans.values())


def test_demo_task_files_are_deterministic(tmp_path):
    a = write_demo_task(tmp_path / "a", seed=4, n_train=50, n_eval=20)
    b = write_demo_task(tmp_path / "b", seed=4, n_train=50, n_eval=20)
    c = write_demo_task(tmp_path / "c", seed=5, n_train=50, n_eval=20)
    assert (a / "train.jsonl").read_bytes() == (b / "train.jsonl").read_bytes()
    assert (a / "train.jsonl").read_bytes() != (c / "train.jsonl").read_bytes()
    rows = [json.loads(line) for line in (a / "validation.jsonl").read_text().splitlines()]
    assert len(rows) == 20 and {r["label"] for r in rows} <= {0, 1} and all(r["text"] for r in rows)


class _Progress:
    def __init__(self):
        self.calls = []

    def add_task(self, name, total):
        self.calls.append(("add", name, total))
        return name

    def update(self, task, completed):
        self.calls.append(("update", task, completed))


def test_hosts_are_deterministic_cached_and_related(tmp_path):
    progress = _Progress()
    hosts = build_demo_hosts(tmp_path / "one", seed=3, recipe=TINY, progress=progress)
    assert ("add", "building demo host origin", 6) in progress.calls
    assert ("update", "building demo host receiving", 4) in progress.calls
    again = build_demo_hosts(tmp_path / "two", seed=3, recipe=TINY)
    other = build_demo_hosts(tmp_path / "one", seed=4, recipe=TINY)
    for name in ("origin", "receiving"):
        weights = (getattr(hosts, name) / "model.safetensors").read_bytes()
        assert weights == (getattr(again, name) / "model.safetensors").read_bytes()
        assert weights != (getattr(other, name) / "model.safetensors").read_bytes()
    assert hosts.recipe_hash == again.recipe_hash != other.recipe_hash
    assert hosts.origin == tmp_path / "one" / hosts.recipe_hash / "origin"
    stamp = (hosts.origin.parent / "build.json").stat().st_mtime_ns
    progress.calls.clear()
    assert build_demo_hosts(tmp_path / "one", seed=3, recipe=TINY, progress=progress) == hosts
    assert progress.calls == [] and (hosts.origin.parent / "build.json").stat().st_mtime_ns == stamp
    assert not [p for p in (tmp_path / "one").iterdir() if p.name.startswith(".")]  # no temporary folder


def test_hosts_are_identical_in_a_fresh_process(tmp_path):
    code = ("import sys; from pathlib import Path; from tests.test_demo_hosts import TINY; "
            "from hubport.demo.hosts import build_demo_hosts; "
            "print(build_demo_hosts(Path(sys.argv[1]), seed=3, recipe=TINY).origin)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "fresh")], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout.strip().splitlines()[-1]
    here = build_demo_hosts(tmp_path / "here", seed=3, recipe=TINY)
    for name in ("origin", "receiving"):
        theirs = Path(out).parent / name / "model.safetensors"
        assert theirs.read_bytes() == (getattr(here, name) / "model.safetensors").read_bytes()


def test_hosts_load_as_t5_with_their_tokenizer(tmp_path):
    from hubport.engine.modules import load_host

    hosts = build_demo_hosts(tmp_path, seed=0, recipe=TINY)
    model, tokenizer = load_host(hosts.receiving)
    assert model.config.feed_forward_proj == "gated-gelu" and not model.config.tie_word_embeddings
    assert model.config.vocab_size == len(tokenizer)
    info = json.loads((hosts.origin.parent / "build.json").read_text())
    assert info["seed"] == 0 and info["origin"]["steps"] == 6
    assert "encoder.block.0" in info["relative_difference"]


def test_relative_difference_per_block(tmp_path):
    hosts = build_demo_hosts(tmp_path, seed=1, recipe=TINY)
    same = relative_difference(hosts.origin, hosts.origin)
    diff = relative_difference(hosts.origin, hosts.receiving)
    blocks = [f"{s}.block.{i}" for s in ("encoder", "decoder") for i in range(TINY.num_layers)]
    assert set(blocks + ["lm_head", "shared", "all"]) <= set(diff)
    assert all(v == 0.0 for v in same.values())
    assert all(diff[b] > 0 for b in blocks)


def test_recipe_hash_covers_every_field():
    base = HostRecipe()
    assert base.hash(0) != base.hash(1)
    changes = (("d_model", 32), ("steps_origin", 1), ("lr_receiving", 0.5), ("lexicon_seed", 1))
    assert len({replace(base, **{f: v}).hash(0) for f, v in changes} | {base.hash(0)}) == 5
