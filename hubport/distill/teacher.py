"""The teacher's side, computed once: greedy outputs for every input, and its logits along them (cached).

Sequence-level distillation (Kim & Rush 2016) trains the student on the teacher's own decoded outputs, so the
targets are token sequences of any text-to-text task. generate() hands back the raw logits of every decoding
step, which are the teacher's distributions on those sequences, so no second teacher pass is needed; where
they would not fit in `cache_mb`, they are not kept and the teacher runs again on each batch instead.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Inputs:
    """Tokenized inputs, right-padded: ids and mask as int64 arrays [n, width]."""

    ids: np.ndarray
    mask: np.ndarray

    def __len__(self) -> int:
        return int(self.ids.shape[0])


@dataclass
class TeacherOutputs:
    """The teacher's greedy outputs [n, length] (pad after </s>), their mask (up to and with </s>), and its
    logits on them [n, length, vocab] (float32, CPU) or None when they are recomputed per batch."""

    tokens: object
    mask: object
    logits: object | None
    seconds: float


def tokenize(texts: list[str], tokenizer, template: str, max_len: int) -> Inputs:
    """Format each text with the template and tokenize it (truncated to max_len)."""
    rows = tokenizer([template.format(text=t) for t in texts], truncation=True, max_length=max_len)["input_ids"]
    width = max(len(r) for r in rows)
    ids = np.full((len(rows), width), tokenizer.pad_token_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        ids[i, :len(row)] = row
        mask[i, :len(row)] = 1
    return Inputs(ids, mask)


def batch_inputs(inputs: Inputs, idx: np.ndarray, device) -> tuple:
    """One batch of inputs, padding trimmed to its longest row, on the device."""
    import torch

    mask = inputs.mask[idx]
    width = max(int(mask.sum(1).max()), 1)
    return (torch.from_numpy(inputs.ids[idx, :width]).to(device),
            torch.from_numpy(mask[:, :width]).to(device))


def decode(model, inputs: Inputs, idx: np.ndarray, *, max_new_tokens: int, batch_size: int, eos: int,
           pad: int, keep_logits: bool, autocast=nullcontext) -> tuple:
    """Greedy outputs of `model` for inputs[idx]: (tokens [k, L], mask [k, L], logits [k, L, V] or None)."""
    import torch

    device = next(model.parameters()).device
    tokens, logits = [], []
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), autocast():
            for lo in range(0, len(idx), batch_size):
                ids, mask = batch_inputs(inputs, idx[lo:lo + batch_size], device)
                out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                                     do_sample=False, num_beams=1, return_dict_in_generate=True,
                                     output_logits=keep_logits)
                tokens.append(out.sequences[:, 1:].cpu())
                if keep_logits:
                    logits.append(torch.stack(out.logits, dim=1).float().cpu())
    finally:
        model.train(was_training)
    length = max(t.shape[1] for t in tokens)
    toks = torch.cat([_pad_right(t, length, pad) for t in tokens])
    toks, mask = _until_eos(toks, eos, pad)
    if not keep_logits:
        return toks, mask, None
    return toks, mask, torch.cat([_pad_right(x, length, 0.0) for x in logits])


def teacher_logits(teacher, ids, mask, targets, start: int):
    """The teacher's logits on given target sequences (teacher forcing), without gradients."""
    import torch

    with torch.no_grad():
        return teacher(input_ids=ids, attention_mask=mask,
                       decoder_input_ids=shift_right(targets, start)).logits.float()


def shift_right(targets, start: int):
    """Decoder inputs for teacher forcing: the start token, then the targets without their last position."""
    import torch

    return torch.cat([torch.full_like(targets[:, :1], start), targets[:, :-1]], dim=1)


def cache_fits(n: int, max_new_tokens: int, vocab: int, cache_mb: int) -> bool:
    """Whether float32 logits for n outputs of up to max_new_tokens tokens fit in cache_mb."""
    return n * max_new_tokens * vocab * 4 <= cache_mb * 2 ** 20


def _pad_right(t, length: int, value):
    import torch

    if t.shape[1] == length:
        return t
    shape = (t.shape[0], length - t.shape[1], *t.shape[2:])
    return torch.cat([t, torch.full(shape, value, dtype=t.dtype)], dim=1)


def _until_eos(tokens, eos: int, pad: int) -> tuple:
    """Tokens up to and with the first </s> (pad after it), and that span's 0/1 mask."""
    import torch

    is_eos = (tokens == eos).long()
    before = torch.cumsum(is_eos, dim=1) - is_eos  # number of </s> strictly before each position
    mask = (before == 0).long()
    return tokens.masked_fill(mask == 0, pad), mask
