"""distill_module: train a student module on the target host to reproduce the source host + module.

Loss: KL(teacher || student) at temperature T (times T^2, Hinton et al. 2015) on every target-side token of
the teacher's greedy outputs (sequence-level KD, Kim & Rush 2016). Inputs come without labels; the batch at
step s is a pure function of (seed, s), dropout is seeded, so a CPU run is deterministic. Under `accelerate
launch` each process takes a shard of every batch (DDP); teacher decoding and the held-out measures are
repeated on every process (cheap next to training) and only the main process writes.

The student folder is read once at the start and replaced only at the end: the trained module is saved to a
hidden sibling, then swapped in by two renames. An interrupted run leaves the folder as it was.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path

import numpy as np

from hubport.distill import teacher as tch
from hubport.distill.config import DistillConfig, DistillResult
from hubport.distill.models import (
    batch_indices,
    load_with_module,
    make_accelerator,
    require_same_start,
    require_same_tokenizer,
    resolve_precision,
    save_module,
)
from hubport.distill.progress import StepBar
from hubport.errors import ConfigError


def distill_module(teacher_host: str | Path, teacher_module: str | Path, student_host: str | Path,
                   student_module: str | Path, texts: Sequence[str], config: DistillConfig, *,
                   progress: bool = False, data: dict | None = None, accelerator=None) -> DistillResult:
    """Distil (teacher_host + teacher_module) into the module saved in `student_module` on `student_host`;
    the folder is replaced by the trained module (same library and format). `data` is the record read_texts
    returned, kept in the result; `accelerator` defaults to one for this process. Returns what was done."""
    import torch

    began, student_module = time.perf_counter(), Path(student_module)
    texts = [str(t) for t in texts]
    if len(texts) <= config.held_out:
        raise ConfigError(f"{len(texts)} inputs leave none to train on after {config.held_out} held out",
                          "pass more inputs or a smaller held_out")
    acc = accelerator if accelerator is not None else make_accelerator()
    teacher, t_tok, _ = load_with_module(Path(teacher_host), Path(teacher_module))
    student, s_tok, s_spec = load_with_module(Path(student_host), student_module)
    require_same_tokenizer(teacher_host, student_host, t_tok, s_tok)
    require_same_start(teacher, student, teacher_host, student_host)
    precision = _precision(config, acc.device.type)
    autocast = ((lambda: torch.autocast(acc.device.type, dtype=torch.bfloat16)) if precision == "bf16"
                else nullcontext)
    teacher.to(acc.device)
    student.to(acc.device)
    for p in teacher.parameters():
        p.requires_grad_(False)
    inputs = tch.tokenize(texts, s_tok, config.template, config.max_source_len)
    order = np.random.default_rng([config.seed, 10]).permutation(len(inputs))
    held, train_idx = order[:config.held_out], order[config.held_out:]
    start, eos, pad = student.config.decoder_start_token_id, s_tok.eos_token_id, s_tok.pad_token_id
    keep = tch.cache_fits(len(inputs), config.max_new_tokens, student.config.vocab_size, config.cache_mb)
    tick = time.perf_counter()
    tokens, mask, logits = tch.decode(teacher, inputs, np.arange(len(inputs)), max_new_tokens=config.max_new_tokens,
                                      batch_size=config.decode_batch_size, eos=eos, pad=pad, keep_logits=keep,
                                      autocast=autocast)
    targets = _Targets(tokens, mask, logits, teacher, start)
    teacher_seconds = time.perf_counter() - tick
    measure = lambda: _held_out(student, inputs, held, targets, config, eos, pad, autocast)
    before = measure()
    tick = time.perf_counter()
    loss = _train(student, inputs, train_idx, targets, config, acc, autocast, progress)
    train_seconds = time.perf_counter() - tick
    after = measure()
    if acc.is_main_process:
        _replace(student_module, lambda out: save_module(student, s_spec, out))
    acc.wait_for_everyone()
    return DistillResult(steps=config.steps, seconds=round(time.perf_counter() - began, 3), inputs=len(train_idx),
                         held_out=len(held), agreement_before=before[0], agreement_after=after[0],
                         kl_before=before[1], kl_after=after[1], data=dict(data or {}), config=config.to_dict(), device=str(acc.device),
                         precision=precision, processes=acc.num_processes,
                         teacher_seconds=round(teacher_seconds, 3), train_seconds=round(train_seconds, 3),
                         final_loss=loss)


class _Targets:
    """The teacher's outputs by input index, with its logits from the cache or from a fresh teacher pass."""

    def __init__(self, tokens, mask, logits, teacher, start: int) -> None:
        self.tokens, self.mask, self.logits, self.teacher, self.start = tokens, mask, logits, teacher, start

    def batch(self, idx: np.ndarray, ids, attn, device) -> tuple:
        """(targets, their mask, teacher logits) for inputs idx, trimmed to the batch's longest output."""
        import torch

        rows = torch.from_numpy(idx)
        mask = self.mask[rows]
        width = max(int(mask.sum(1).max()), 1)
        targets, mask = self.tokens[rows, :width].to(device), mask[:, :width].to(device)
        if self.logits is not None:
            return targets, mask, self.logits[rows, :width].to(device)
        return targets, mask, tch.teacher_logits(self.teacher, ids, attn, targets, self.start)


def kd_loss(student_logits, teacher_logits, mask, temperature: float):
    """Mean over target tokens of T^2 * KL(softmax(t/T) || softmax(s/T)), in float32."""
    t = (teacher_logits.float() / temperature).log_softmax(-1)
    s = (student_logits.float() / temperature).log_softmax(-1)
    kl = (t.exp() * (t - s)).sum(-1)
    m = mask.to(kl.dtype)
    return (kl * m).sum() / m.sum().clamp_min(1.0) * temperature ** 2


def _train(student, inputs, train_idx: np.ndarray, targets: _Targets, config: DistillConfig, acc, autocast,
           progress: bool) -> float | None:
    """config.steps optimiser steps on seeded batches of the training inputs; returns the last loss."""
    import torch

    if config.steps == 0:
        return None
    params = [p for p in student.parameters() if p.requires_grad]
    if not params:
        raise ConfigError("the student module has no trainable tensor", "pass a module folder saved by its library")
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0)
    wrapped = acc.prepare_model(student) if acc.num_processes > 1 else student
    devices = [acc.device.index or 0] if acc.device.type == "cuda" else []
    losses = []
    bar = StepBar(config.steps, enabled=progress and acc.is_main_process)
    student.train()
    try:
        with torch.random.fork_rng(devices=devices), bar:
            torch.manual_seed(config.seed)
            for step in range(config.steps):
                idx = train_idx[batch_indices(len(train_idx), config.batch_size, config.seed, step)]
                idx = idx[acc.process_index::acc.num_processes]
                ids, attn = tch.batch_inputs(inputs, idx, acc.device)
                tgt, mask, t_logits = targets.batch(idx, ids, attn, acc.device)
                with autocast():
                    s_logits = wrapped(input_ids=ids, attention_mask=attn,
                                       decoder_input_ids=tch.shift_right(tgt, targets.start)).logits
                loss = kd_loss(s_logits, t_logits, mask, config.temperature)
                value = float(loss.detach())
                if value > config.tolerance:  # a matched batch's gradient is float noise that Adam
                    acc.backward(loss)                  # would scale up to full-size steps: skip it
                    optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                losses.append(loss.detach())
                if bar.enabled:
                    bar.update(step, value, _token_agreement(s_logits.detach(), t_logits, mask))
    finally:
        student.eval()
        if wrapped is not student and wrapped in acc._models:
            acc._models.remove(wrapped)
    last = losses[-1].float()
    if acc.num_processes > 1:
        last = acc.reduce(last, reduction="mean")
    return float(last)


def _token_agreement(s_logits, t_logits, mask) -> float:
    m = mask.bool()
    return float((s_logits.argmax(-1) == t_logits.argmax(-1))[m].float().mean())


def _held_out(student, inputs, held: np.ndarray, targets: _Targets, config: DistillConfig, eos: int, pad: int,
              autocast) -> tuple[float | None, float | None]:
    """(agreement, KL at T=1) of the student with the teacher on the held-out inputs."""
    import torch

    if len(held) == 0:
        return None, None
    tokens, mask, _ = tch.decode(student, inputs, held, max_new_tokens=config.max_new_tokens,
                                 batch_size=config.decode_batch_size, eos=eos, pad=pad, keep_logits=False,
                                 autocast=autocast)
    want, want_mask = targets.tokens[torch.from_numpy(held)], targets.mask[torch.from_numpy(held)]
    width = max(tokens.shape[1], want.shape[1])
    tokens, want = tch._pad_right(tokens, width, pad), tch._pad_right(want, width, pad)
    same = (tokens == want).all(1) & (tch._pad_right(mask, width, 0) == tch._pad_right(want_mask, width, 0)).all(1)
    device = next(student.parameters()).device
    kl_sum, count = 0.0, 0.0
    with torch.inference_mode(), autocast():
        for lo in range(0, len(held), config.decode_batch_size):
            idx = held[lo:lo + config.decode_batch_size]
            ids, attn = tch.batch_inputs(inputs, idx, device)
            tgt, m, t_logits = targets.batch(idx, ids, attn, device)
            s_logits = student(input_ids=ids, attention_mask=attn,
                               decoder_input_ids=tch.shift_right(tgt, targets.start)).logits
            n = float(m.sum())
            kl_sum += float(kd_loss(s_logits, t_logits, m, 1.0)) * n
            count += n
    return round(float(same.float().mean()), 6), round(kl_sum / max(count, 1.0), 6)


def _precision(config: DistillConfig, device_type: str) -> str:
    if config.bf16 is None:
        return resolve_precision("auto", device_type)
    return "bf16" if config.bf16 else "no"


def _replace(folder: Path, save) -> None:
    """Save into a hidden sibling, then swap it in for `folder` by two renames (the old one is put back if the
    second fails); no temporary folder is left behind either way."""
    new = folder.parent / f".{folder.name}.distilled-{os.getpid()}"
    old = folder.parent / f".{folder.name}.replaced-{os.getpid()}"
    shutil.rmtree(new, ignore_errors=True)
    try:
        save(new)
        os.rename(folder, old)
        try:
            os.rename(new, folder)
        except BaseException:
            os.rename(old, folder)
            raise
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(new, ignore_errors=True)
