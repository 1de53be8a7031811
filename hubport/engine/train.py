"""Seeded, paired, resumable training of a PEFT module with `accelerate`.

The batch at step s is a pure function of (seed, s): step s takes positions [s*B, (s+1)*B) of an endless
stream of per-epoch permutations, each drawn from numpy's RNG seeded with (seed, epoch). So every condition of
a cell sees the same batches (paired), and train(..., 20) then train(..., 60, start_step=20) equals train(...,
60): the optimizer and RNG state travel with the model between the two calls (see TrainState).
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np

from hubport.errors import ConfigError

MIXED_PRECISION = ("auto", "no", "bf16")  # no fp16: T5 overflows in it
STATE_ATTR = "hubport_train_state"


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser settings; the learning rate is constant after a linear warm-up, so budgets can add up."""

    lr: float = 1e-3
    batch_size: int = 16
    weight_decay: float = 0.0
    warmup_steps: int = 0
    mixed_precision: str = "auto"


@dataclass
class TrainState:
    """What a continued run needs from the previous call: optimiser, step reached, RNG state."""

    optimizer: object
    step: int
    seed: int
    config: TrainConfig
    rng_state: object


def batch_indices(n: int, batch_size: int, seed: int, step: int) -> np.ndarray:
    """Example indices of the batch at `step`: the same for every condition that shares the seed."""
    start, stop = step * batch_size, (step + 1) * batch_size
    parts = []
    for epoch in range(start // n, (stop - 1) // n + 1):
        perm = np.random.default_rng([seed, epoch]).permutation(n)
        lo, hi = max(start - epoch * n, 0), min(stop - epoch * n, n)
        parts.append(perm[lo:hi])
    return np.concatenate(parts)


def resolve_precision(mixed_precision: str, device_type: str | None = None) -> str:
    """'auto' -> 'bf16' on a CUDA device that supports it, else 'no'."""
    if mixed_precision not in MIXED_PRECISION:
        raise ConfigError(f"unknown mixed_precision '{mixed_precision}'",
                          f"choose one of {', '.join(MIXED_PRECISION)}")
    if mixed_precision != "auto":
        return mixed_precision
    import torch

    cuda = device_type in (None, "cuda") and torch.cuda.is_available()  # None: this process's default device
    return "bf16" if cuda and torch.cuda.is_bf16_supported() else "no"


def make_accelerator(**kwargs):
    """An Accelerator for this process (CPU, one GPU, or one rank of `accelerate launch`): device placement,
    DDP and backward. Mixed precision is applied per run from TrainConfig (torch.autocast), not fixed here,
    because accelerate allows one precision per process and a grid may mix them."""
    import torch
    from accelerate import Accelerator

    if not torch.cuda.is_available():
        kwargs.setdefault("cpu", True)  # else accelerate sees one process even under torchrun (no MULTI_CPU)
    return Accelerator(**kwargs)


def train(model, task, steps: int, cfg: TrainConfig, *, seed: int, start_step: int = 0,
          accelerator=None, on_step=None) -> dict:
    """Train the module on steps [start_step, steps); returns the mean loss, seconds and step counts.

    `on_step(step, loss)` (optional) is called after each step with the detached loss tensor, for progress bars;
    converting it to a float (a device sync) is left to the caller, who can do it as rarely as it draws."""
    import torch

    if steps < start_step:
        raise ConfigError(f"cannot train to step {steps} from step {start_step}", "budgets must not decrease")
    acc = accelerator if accelerator is not None else make_accelerator()
    model.to(acc.device)
    state = _train_state(model, cfg, seed, start_step)
    began, losses = time.perf_counter(), []
    if steps > start_step:
        devices = [acc.device.index or 0] if acc.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            if state.rng_state is None:
                torch.manual_seed(seed)  # dropout draws from here: seeded, and restored when continuing
            else:
                torch.set_rng_state(state.rng_state[0])
                if devices:
                    torch.cuda.set_rng_state(state.rng_state[1], acc.device)
            losses = _run_steps(model, task, state, steps, cfg, acc, on_step)
            cuda_state = torch.cuda.get_rng_state(acc.device) if devices else None
            state.rng_state = (torch.get_rng_state(), cuda_state)
    setattr(model, STATE_ATTR, state)
    seconds = time.perf_counter() - began
    return {"loss": float(np.mean(losses)) if losses else math.nan,
            "last_loss": losses[-1] if losses else math.nan,
            "seconds": seconds, "steps": steps - start_step, "step": steps}


def _train_state(model, cfg: TrainConfig, seed: int, start_step: int) -> TrainState:
    """A fresh state at step 0, or the one the previous call left on the model at start_step."""
    import torch

    if start_step == 0:
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise ConfigError("the model has no trainable tensor",
                              "attach a module first (attach_new/attach_saved)")
        optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        return TrainState(optimizer, 0, seed, cfg, None)
    state = getattr(model, STATE_ATTR, None)
    if state is None or state.step != start_step or state.seed != seed or state.config != cfg:
        found = "none" if state is None else f"step {state.step}, seed {state.seed}"
        raise ConfigError(f"cannot continue from step {start_step} (seed {seed}): the model's training state "
                          f"is {found}", "continue with the same model, seed and TrainConfig, or start at 0")
    return state


def _run_steps(model, task, state: TrainState, steps: int, cfg: TrainConfig, acc, on_step=None) -> list[float]:
    """The training loop proper: one forward/backward/step per batch, shards of the batch per process."""
    import torch

    wrapped = acc.prepare_model(model) if acc.num_processes > 1 else model
    precision = resolve_precision(cfg.mixed_precision, acc.device.type)
    bf16 = precision == "bf16"
    autocast = (lambda: torch.autocast(acc.device.type, dtype=torch.bfloat16)) if bf16 else nullcontext
    arrays = _tensors(task)
    losses, optimizer = [], state.optimizer
    model.train()
    try:
        for step in range(state.step, steps):
            idx = batch_indices(len(task.train), cfg.batch_size, state.seed, step)
            batch = _batch(arrays, idx[acc.process_index:: acc.num_processes], acc.device)
            for group in optimizer.param_groups:
                group["lr"] = cfg.lr * min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else cfg.lr
            with autocast():
                loss = wrapped(**batch).loss
            acc.backward(loss)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.detach())
            state.step = step + 1
            if on_step is not None:
                on_step(state.step, losses[-1])
    finally:
        model.eval()
        if wrapped is not model and wrapped in acc._models:
            acc._models.remove(wrapped)  # prepare_model keeps a reference: drop it so the run can be freed
    if not losses:
        return []
    stacked = torch.stack(losses).float()
    if acc.num_processes > 1:
        stacked = acc.reduce(stacked, reduction="mean")  # each rank saw a shard: the whole batch's loss
    return [float(v) for v in stacked.cpu()]


def _tensors(task) -> tuple:
    """The train split as tensors (no copies) and the label strings as loss targets (-100 past their end)."""
    import torch

    split = task.train
    targets = np.where(task.label_mask.astype(bool), task.label_ids, -100)
    return (torch.from_numpy(split.input_ids), torch.from_numpy(split.attention_mask),
            torch.from_numpy(targets), torch.from_numpy(split.labels))


def _batch(arrays: tuple, idx: np.ndarray, device) -> dict:
    """One batch, padding trimmed to its longest input, on the device."""
    import torch

    inputs, masks, targets, gold = arrays
    rows = torch.from_numpy(idx)
    mask = masks[rows]
    width = int(mask.sum(1).max())
    return {"input_ids": inputs[rows, :width].to(device), "attention_mask": mask[:, :width].to(device),
            "labels": targets[gold[rows]].to(device)}
