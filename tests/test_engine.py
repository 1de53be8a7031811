"""The ML engine: seeded and paired training, cumulative budgets, rank classification, exact save/reload."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from harness.data import DataSpec, load_task  # noqa: E402
from harness.evaluation import evaluate, evaluate_generate, label_scores  # noqa: E402
from harness.modules import (  # noqa: E402
    ModuleSpec,
    attach_new,
    attach_saved,
    load_host,
    module_tensors,
    save_module,
    set_module_tensors,
)
from harness.train import TrainConfig, batch_indices, train  # noqa: E402
from hubport.errors import ConfigError, IncompatibleError, NotFoundError  # noqa: E402

LORA = ModuleSpec.of("lora", "peft", {"r": 4, "lora_alpha": 8, "target_modules": ["q", "v"]})
SPECS = {
    "peft-lora": LORA,
    "peft-ia3": ModuleSpec.of("ia3", "peft", {}),
    "peft-prefix": ModuleSpec.of("prefix_tuning", "peft", {"num_virtual_tokens": 4}),
    "peft-prompt": ModuleSpec.of("prompt_tuning", "peft", {"num_virtual_tokens": 4}),
    "adapters-seq_bn": ModuleSpec.of("bottleneck", "adapters", {"reduction_factor": 4}),
    "adapters-double_seq_bn": ModuleSpec.of("bottleneck", "adapters",
                                            {"reduction_factor": 4, "type": "double_seq_bn"}),
    "adapters-compacter": ModuleSpec.of("compacter", "adapters", {"reduction_factor": 4}),
    "adapters-prefix": ModuleSpec.of("prefix_tuning", "adapters",
                                     {"prefix_length": 4, "bottleneck_size": 16}),
    "adapters-lora": ModuleSpec.of("lora", "adapters", {"r": 4, "alpha": 8}),
    "adapters-ia3": ModuleSpec.of("ia3", "adapters", {}),
}
CFG = TrainConfig(lr=1e-2, batch_size=8)


def _save_host(folder, tokenizer, layers: int, seed: int):
    from transformers import T5Config, T5ForConditionalGeneration

    config = T5Config(vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=64, num_layers=layers,
                      num_decoder_layers=layers, num_heads=4, dropout_rate=0.0,
                      feed_forward_proj="gated-gelu",
                      tie_word_embeddings=False, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    torch.manual_seed(seed)
    T5ForConditionalGeneration(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny gated host (vocab ~200, d_model 32, 2+2 layers), a 1-layer sibling, and the demo task, small."""
    from hubport.demo.task import make_lexicon, write_demo_task
    from hubport.demo.tokenizer import build_tokenizer

    root = tmp_path_factory.mktemp("engine")
    tokenizer = build_tokenizer(make_lexicon().words())
    host = _save_host(root / "host", tokenizer, layers=2, seed=0)
    shallow = _save_host(root / "shallow", tokenizer, layers=1, seed=1)
    data = write_demo_task(root / "data", seed=3, n_train=256, n_eval=48)
    task = load_task(DataSpec(source=str(data)), tokenizer)
    return {"root": root, "host": host, "shallow": shallow, "data": data, "task": task}


def _run(world, spec, *, seed, steps, module_seed=0, start=None):
    model, _ = load_host(world["host"])
    model = attach_new(model, spec, module_seed) if start is None else attach_saved(model, spec, start)
    result = train(model, world["task"], steps, CFG, seed=seed)
    return model, result, evaluate(model, world["task"])


def _equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_same_seed_same_metrics_bit_for_bit(world):
    m1, r1, e1 = _run(world, LORA, seed=5, steps=12)
    m2, r2, e2 = _run(world, LORA, seed=5, steps=12)
    m3, r3, _ = _run(world, LORA, seed=6, steps=12)
    assert r1["loss"] == r2["loss"] and e1 == e2
    assert _equal(module_tensors(m1, LORA), module_tensors(m2, LORA))
    assert r3["loss"] != r1["loss"] and not _equal(module_tensors(m1, LORA), module_tensors(m3, LORA))


def test_conditions_see_identical_batches(world, tmp_path):
    """Paired design: a new module and a saved one trained with the same seed get the same batch sequence."""
    first, _, _ = _run(world, LORA, seed=0, steps=3)
    save_module(first, LORA, tmp_path / "saved")
    seen = {}
    for name, start, seed in (("scratch", None, 11), ("ported", tmp_path / "saved", 11), ("other", None, 12)):
        model, _ = load_host(world["host"])
        model = attach_new(model, LORA, 99) if start is None else attach_saved(model, LORA, start)
        batches = []
        record = lambda mod, args, kw: batches.append(kw["input_ids"].clone())  # noqa: E731
        model.get_encoder().register_forward_pre_hook(record, with_kwargs=True)
        train(model, world["task"], 6, CFG, seed=seed)
        seen[name] = batches
    assert len(seen["scratch"]) == 6
    assert all(torch.equal(a, b) for a, b in zip(seen["scratch"], seen["ported"], strict=True))
    assert not all(a.shape == b.shape and torch.equal(a, b) for a, b in zip(seen["scratch"], seen["other"]))


def test_batch_order_is_a_function_of_seed_and_step():
    n, bs = 10, 4
    stream = np.concatenate([batch_indices(n, bs, 3, s) for s in range(5)])
    assert sorted(stream[:10]) == list(range(10)) and sorted(stream[10:20]) == list(range(10))
    assert np.array_equal(batch_indices(n, bs, 3, 4), stream[16:20])
    assert not np.array_equal(batch_indices(n, bs, 4, 0), batch_indices(n, bs, 3, 0))


@pytest.mark.parametrize("spec", [LORA, SPECS["adapters-seq_bn"]], ids=["peft-lora", "adapters-seq_bn"])
def test_cumulative_budgets_equal_a_straight_run(world, spec):
    cfg = TrainConfig(lr=5e-3, batch_size=8, warmup_steps=5)
    straight, _ = load_host(world["host"])
    straight = attach_new(straight, spec, 1)
    train(straight, world["task"], 20, cfg, seed=2)
    staged, _ = load_host(world["host"])
    staged = attach_new(staged, spec, 1)
    train(staged, world["task"], 0, cfg, seed=2)
    train(staged, world["task"], 7, cfg, seed=2, start_step=0)
    evaluate(staged, world["task"])
    train(staged, world["task"], 20, cfg, seed=2, start_step=7)
    assert _equal(module_tensors(straight, spec), module_tensors(staged, spec))
    assert evaluate(straight, world["task"]) == evaluate(staged, world["task"])


def test_continuing_needs_the_state_of_the_previous_call(world):
    model, _ = load_host(world["host"])
    model = attach_new(model, LORA, 0)
    train(model, world["task"], 4, CFG, seed=0)
    with pytest.raises(ConfigError):
        train(model, world["task"], 8, CFG, seed=0, start_step=5)
    with pytest.raises(ConfigError):
        train(model, world["task"], 8, CFG, seed=1, start_step=4)


def test_rank_classification_agrees_with_generate_on_a_trained_module(world):
    model, _, ranked = _run(world, LORA, seed=0, steps=60)
    generated = evaluate_generate(model, world["task"])
    assert ranked["predictions"] == generated["predictions"]
    hits = np.array(ranked["predictions"]) == world["task"].eval.labels
    assert ranked["accuracy"] == pytest.approx(hits.mean())


@pytest.mark.parametrize("name", ["peft-lora", "peft-prefix", "peft-prompt", "adapters-prefix",
                                  "adapters-seq_bn"])
def test_rank_scores_equal_one_full_forward_per_label(world, name):
    """The shared-prefix scoring gives the log-probabilities of scoring each label with its own forward."""
    spec, task = SPECS[name], world["task"]
    model, _ = load_host(world["host"])
    model = attach_new(model, spec, 0)
    train(model, task, 3, CFG, seed=0)
    device = next(model.parameters()).device  # train() places the model where accelerate says (CPU in CI)
    arrays = (task.eval.input_ids[:6], task.eval.attention_mask[:6], task.label_ids, task.label_mask)
    ids, mask, labels, lmask = (torch.from_numpy(a).to(device) for a in arrays)
    with torch.no_grad():
        fast = label_scores(model, ids, mask, labels, lmask)
        slow = []
        for c in range(labels.shape[0]):
            target = labels[c:c + 1].repeat(6, 1)
            logp = model(input_ids=ids, attention_mask=mask, labels=target).logits.log_softmax(-1)
            slow.append((logp.gather(-1, target.unsqueeze(-1)).squeeze(-1) * lmask[c]).sum(-1))
    torch.testing.assert_close(fast, torch.stack(slow, 1), rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_saved_module_reproduces_logits_exactly(world, tmp_path, name):
    spec, task = SPECS[name], world["task"]
    model, _ = load_host(world["host"])
    model = attach_new(model, spec, 0)
    train(model, task, 2, CFG, seed=0)
    save_module(model, spec, tmp_path / "module")
    device = next(model.parameters()).device
    again, _ = load_host(world["host"])
    again = attach_saved(again, spec, tmp_path / "module").to(device)
    batch = {"input_ids": torch.from_numpy(task.eval.input_ids[:8]).to(device),
             "attention_mask": torch.from_numpy(task.eval.attention_mask[:8]).to(device),
             "decoder_input_ids": torch.zeros(8, 2, dtype=torch.long, device=device)}
    with torch.no_grad():
        assert (model(**batch).logits - again(**batch).logits).abs().max().item() == 0.0
    host = load_host(world["host"])[0].to(device)
    with torch.no_grad():
        assert not torch.equal(host(**batch).logits, again(**batch).logits)  # the module does something


@pytest.mark.parametrize("name", ["peft-lora", "peft-prefix", "adapters-seq_bn", "adapters-compacter",
                                  "adapters-prefix"])
def test_attach_new_is_seeded(world, name):
    spec = SPECS[name]
    tensors = []
    for seed in (4, 4, 5):
        model, _ = load_host(world["host"])
        tensors.append(module_tensors(attach_new(model, spec, seed), spec))
    assert _equal(tensors[0], tensors[1])
    assert not _equal(tensors[0], tensors[2])


def test_set_module_tensors_round_trip_and_refusals(world):
    model, _ = load_host(world["host"])
    model = attach_new(model, LORA, 0)
    tensors = {k: torch.full_like(v, 0.5) for k, v in module_tensors(model, LORA).items()}
    set_module_tensors(model, LORA, tensors)
    assert _equal(module_tensors(model, LORA), tensors)
    with pytest.raises(IncompatibleError):
        set_module_tensors(model, LORA, dict(list(tensors.items())[1:]))
    with pytest.raises(IncompatibleError):
        set_module_tensors(model, LORA, {k: v[..., :1] for k, v in tensors.items()})


@pytest.mark.parametrize("name", ["peft-lora", "adapters-seq_bn"])
def test_attach_saved_refuses_a_module_that_does_not_land(world, tmp_path, name):
    spec = SPECS[name]
    model, _ = load_host(world["host"])
    save_module(attach_new(model, spec, 0), spec, tmp_path / "module")
    shallow, _ = load_host(world["shallow"])
    with pytest.raises(IncompatibleError):
        attach_saved(shallow, spec, tmp_path / "module")
    other, _ = load_host(world["host"])
    with pytest.raises(IncompatibleError):
        wrong = SPECS["peft-ia3" if name == "peft-lora" else "adapters-compacter"]
        attach_saved(other, wrong, tmp_path / "module")


def test_data_from_folder_file_and_formats_agree(world, tmp_path):
    import pandas as pd

    rows = [json.loads(line) for line in (world["data"] / "validation.jsonl").read_text().splitlines()]
    frame = pd.DataFrame(rows)
    frame.to_csv(tmp_path / "validation.csv", index=False)
    frame.to_parquet(tmp_path / "val.parquet")
    tokenizer = load_host(world["host"])[1]
    base = world["task"].eval
    for source in (tmp_path / "validation.csv", tmp_path / "val.parquet", world["data"] / "validation.jsonl"):
        task = load_task(DataSpec(source=str(source), train_split="validation"), tokenizer)
        assert np.array_equal(task.eval.input_ids, base.input_ids)
        assert np.array_equal(task.eval.labels, base.labels)
    spec = DataSpec(source=str(world["data"]), max_train=10, eval_split="validation[:5]")
    small = load_task(spec, tokenizer)
    assert len(small.train) == 10 and len(small.eval) == 5
    with pytest.raises(NotFoundError):
        load_task(DataSpec(source=str(world["data"]), eval_split="test"), tokenizer)
    with pytest.raises(ConfigError):
        load_task(DataSpec(source=str(world["data"]), label_words=("positive",)), tokenizer)
    frame.assign(label=frame.label + 1).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ConfigError):
        load_task(DataSpec(source=str(tmp_path / "bad.csv"), eval_split="train"), tokenizer)
