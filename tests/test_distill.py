"""hubport.distill on tiny hosts (CPU, seconds): labels never used, agreement kept on an identical host and
rising with steps, tokenizer mismatch refused in one line, an interrupted run leaves the student untouched."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest

from hubport.distill import DistillConfig, distill_module, fresh_module, read_texts
from hubport.errors import IncompatibleError
from tests.fixtures import tiny
from tests.fixtures.tiny import tiny_study  # noqa: F401  (fixture)

CFG = {"template": "sentiment: {text}", "max_new_tokens": 3, "held_out": 24, "batch_size": 8, "lr": 1e-2}


@pytest.fixture(scope="module")
def teacher(tiny_study, tmp_path_factory) -> Path:  # noqa: F811
    """A LoRA trained on the tiny task on the originating host, so its outputs depend on the input."""
    from hubport.engine.data import DataSpec, load_task
    from hubport.engine.modules import ModuleSpec, attach_new, load_host, save_module
    from hubport.engine.train import TrainConfig, train

    spec = ModuleSpec.of("lora", "peft", {"r": 4, "lora_alpha": 8, "target_modules": ["q", "v", "wo"]})
    model, tok = load_host(tiny_study.origin)
    model = attach_new(model, spec, 0)
    train(model, load_task(DataSpec(source=str(tiny_study.data)), tok), 40,
          TrainConfig(lr=1e-2, batch_size=8, mixed_precision="no"), seed=0)
    out = tmp_path_factory.mktemp("teacher") / "lora"
    save_module(model, spec, out)
    return out


@pytest.fixture(scope="module")
def unrelated(tmp_path_factory) -> Path:
    """A host of another lineage (other seed) with the same tokenizer."""
    return tiny.build_hosts(tmp_path_factory.mktemp("unrelated"), seed=7)[0]


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_labels_never_reach_distillation(tiny_study, teacher, unrelated, tmp_path):  # noqa: F811
    rows = [json.loads(line) for line in (tiny_study.data / "train.jsonl").read_text().splitlines()]
    shuffled = [r["label"] for r in rows]
    random.Random(3).shuffle(shuffled)
    variants = {"shuffled": [{**r, "label": lab} for r, lab in zip(rows, shuffled, strict=True)],
                "missing": [{"text": r["text"]} for r in rows]}
    datas = {"original": tiny_study.data / "train.jsonl"}
    for name, body in variants.items():
        datas[name] = tmp_path / f"{name}.jsonl"
        datas[name].write_text("".join(json.dumps(r) + "\n" for r in body))
    init = fresh_module(teacher, unrelated, tmp_path / "init", seed=0)
    modules, records = {}, {}
    for name, path in datas.items():
        texts, records[name] = read_texts(path)
        student = tmp_path / f"student-{name}"
        shutil.copytree(init, student)
        distill_module(tiny_study.origin, teacher, unrelated, student, texts, DistillConfig(steps=6, **CFG))
        modules[name] = _files(student)
    assert modules["original"] != _files(init)  # it trained
    assert modules["shuffled"] == modules["original"] == modules["missing"]
    assert len({r["sha256"] for r in records.values()}) == 1


def test_identical_host_keeps_agreement(tiny_study, teacher, tmp_path):  # noqa: F811
    host = shutil.copytree(tiny_study.origin, tmp_path / "same-host")
    student = shutil.copytree(teacher, tmp_path / "student")
    texts, _ = read_texts(tiny_study.data)
    result = distill_module(tiny_study.origin, teacher, host, student, texts, DistillConfig(steps=10, **CFG))
    assert result.agreement_before >= 0.99 and result.agreement_after >= 0.99
    assert result.kl_after < 1e-3 and result.labels_used is False


def test_agreement_rises_with_steps(tiny_study, teacher, unrelated, tmp_path):  # noqa: F811
    texts, _ = read_texts(tiny_study.data)
    init = fresh_module(teacher, unrelated, tmp_path / "init", seed=0)
    results = []
    for steps in (0, 60):
        student = shutil.copytree(init, tmp_path / f"s{steps}")
        results.append(distill_module(tiny_study.origin, teacher, unrelated, student, texts,
                                      DistillConfig(steps=steps, **CFG)))
    first, last = results
    assert last.kl_after < 0.5 * first.kl_after
    assert last.agreement_after > first.agreement_after
    assert last.agreement_after >= 0.8


def test_tokenizer_mismatch_is_one_line(tiny_study, teacher, tmp_path):  # noqa: F811
    from hubport.demo.tokenizer import build_tokenizer

    host = shutil.copytree(tiny_study.receiving, tmp_path / "other-vocab")
    for f in host.glob("tokenizer*"):
        f.unlink()
    build_tokenizer(["other", "words", "entirely"]).save_pretrained(host)
    student = shutil.copytree(teacher, tmp_path / "student")
    with pytest.raises(IncompatibleError) as info:
        distill_module(tiny_study.origin, teacher, host, student, ["a b"] * 30, DistillConfig(steps=1, **CFG))
    line = info.value.one_line()
    assert "different tokenizers" in line and "\n" not in line


def test_interrupted_run_leaves_student_untouched(tiny_study, teacher, unrelated, tmp_path, monkeypatch):  # noqa: F811
    from hubport.distill import kd

    texts, _ = read_texts(tiny_study.data)
    student = fresh_module(teacher, unrelated, tmp_path / "student", seed=0)
    before = _files(student)
    calls, real = [], kd.kd_loss

    def stop_on_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(kd, "kd_loss", stop_on_third)
    with pytest.raises(KeyboardInterrupt):
        distill_module(tiny_study.origin, teacher, unrelated, student, texts, DistillConfig(steps=20, **CFG))
    assert _files(student) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["student"]


def test_fresh_module_follows_the_target_ffn(tiny_study, tmp_path):  # noqa: F811
    """A LoRA on gated wi_0/wi_1 becomes one on ReLU wi on a v1.0-layout host, and back."""
    from hubport.demo.tokenizer import build_tokenizer
    from hubport.engine.modules import ModuleSpec, attach_new, load_host, save_module
    from tests.fixtures.hosts import build_host

    spec = ModuleSpec.of("lora", "peft", {"r": 2, "target_modules": ["q", "wi_0", "wi_1"]})
    model, _ = load_host(tiny_study.origin)
    save_module(attach_new(model, spec, 0), spec, tmp_path / "gated-lora")
    relu = build_host("relu", 0, tmp_path / "relu-host")
    build_tokenizer(["x"]).save_pretrained(relu)
    out = fresh_module(tmp_path / "gated-lora", relu, tmp_path / "relu-lora", seed=0)
    targets = json.loads((out / "adapter_config.json").read_text())["target_modules"]
    assert sorted(targets) == ["q", "wi"]
    back = fresh_module(out, tiny_study.origin, tmp_path / "back", seed=0)
    assert sorted(json.loads((back / "adapter_config.json").read_text())["target_modules"]) == ["q", "wi_0", "wi_1"]
