"""The study's conditions: how the module on the receiving host starts out.

- ported:  the originating module, ported with hubport's own API and loaded by its library's loader.
           `ported:<tier>` names the map tier (copy | embed | weights | probe); plain `ported` is
           `ported:copy`. Where hubport refuses (a copy across lineages, nothing carried) the run is
           "refused".
- ported:force: the naive copy past hubport's lineage check (`hubport port --force`): the tensors as they are,
           as an initialisation, on hosts of another lineage too (refused only where the shapes differ).
- ported:distill: a fresh module on the receiving host distilled from the originating host + module on the
           receiving data's train texts, labels withheld (hubport.distill; grid key `distill`). Budget 0 is
           after distillation, before any labelled step.
- scratch:matched: the compute-matched baseline of ported:distill: scratch trained `distill.steps` labelled
           steps before budget 0 (as many labelled steps as distillation used unlabelled ones).
- zero_pad, drop: the naive cross-host baselines of `hubport port --map naive:zero_pad|naive:drop` (pad/cut by index; copy what
           fits by shape and drop the rest).
- scratch: the family's default initialisation on the receiving host, seeded with the run's seed.
- sampled: the ported module's shapes, every value drawn afresh from a distribution with the ported tensors'
           mean and standard deviation. The paper says only "parameters sampled from the same distribution as
           the ported module"; our default (a normal per tensor) is its most likely reading, and the
           distribution (normal | uniform) and the granularity (tensor | row | module) are configurable.
- host:    the receiving host alone, no module, no training (evaluated once per cell and seed).
"""

from __future__ import annotations

import math
from pathlib import Path

from hubport.crossmap import TIERS  # hubport's map tiers: ported:<tier>
from hubport.port.strategies import STRATEGIES

NAIVE = tuple(name.split(":", 1)[1] for name in STRATEGIES if name.startswith("naive:"))  # hubport's baselines

FORCE, DISTILL, MATCHED = "ported:force", "ported:distill", "scratch:matched"
PORTED = tuple(dict.fromkeys(("ported", *(f"ported:{t}" for t in TIERS), FORCE, DISTILL)))
PORTED_LIKE = PORTED + NAIVE           # runs that start from a port of the originating module
CONDITIONS = (*PORTED, *NAIVE, "scratch", MATCHED, "sampled", "host")
USES_DISTILL = (DISTILL, MATCHED)      # conditions that read the grid's `distill` settings
NEEDS_ORIGIN = (*PORTED_LIKE, "sampled")
SAMPLED_TIERS = ("copy", "weights")   # sampled: the copy port, or the weights map's where the copy is refused
DISTRIBUTIONS = ("normal", "uniform")
GRANULARITIES = ("tensor", "row", "module")


def port_method(condition: str) -> tuple[str, str]:
    """How a ported-like condition gets its module: ("map", tier) via hubport.api.port, ("naive", how),
    ("force", "copy") (the copy forced past the lineage check) or ("distill", "fresh") (hubport.distill)."""
    if condition in NAIVE:
        return "naive", condition
    if condition == FORCE:
        return "force", "copy"
    if condition == DISTILL:
        return "distill", "fresh"
    if condition == "ported":
        return "map", "copy"
    if condition in PORTED:
        return "map", condition.split(":", 1)[1]
    raise ValueError(f"condition '{condition}' does not port a module")


def prepare(model, condition: str, spec, *, seed: int, ported_dir: Path | None, distribution: str = "normal",
            granularity: str = "tensor"):
    """Attach the condition's module to a freshly loaded receiving host; returns the model to train."""
    from hubport.engine.modules import attach_new, attach_saved, module_tensors, set_module_tensors

    if condition == "host":
        return model
    if condition in ("scratch", MATCHED):   # the matched baseline's head start is trained by the run
        return attach_new(model, spec, seed)
    if ported_dir is None:
        raise ValueError(f"condition '{condition}' needs the ported module")
    model = attach_saved(model, spec, ported_dir)
    if condition == "sampled":   # every other condition left here loads the ported module as it is
        tensors = module_tensors(model, spec)
        set_module_tensors(model, spec, sample_like(tensors, seed=seed, distribution=distribution,
                                                    granularity=granularity))
    return model


def sample_like(tensors: dict, *, seed: int, distribution: str = "normal",
                granularity: str = "tensor") -> dict:
    """New tensors of the same shapes whose values match the given tensors' mean and std at `granularity`:
    per tensor, per row (dim 0 of each tensor with 2+ dims; 1-d tensors count as one row), or one mean/std
    pooled over the whole module. A uniform draw uses [mean - sqrt(3) std, mean + sqrt(3) std]."""
    import torch

    if distribution not in DISTRIBUTIONS or granularity not in GRANULARITIES:
        raise ValueError(f"unknown distribution/granularity {distribution}/{granularity}")
    gen = torch.Generator().manual_seed(int(seed))
    pooled = None
    if granularity == "module":
        flat = torch.cat([t.detach().float().reshape(-1).cpu() for t in tensors.values()])
        pooled = (flat.mean(), flat.std(unbiased=False))
    out = {}
    for name in sorted(tensors):
        ref = tensors[name].detach().float().cpu()
        if pooled is not None:
            mean, std = pooled
        elif granularity == "row" and ref.dim() >= 2:
            rows = ref.reshape(ref.shape[0], -1)
            shape = (ref.shape[0],) + (1,) * (ref.dim() - 1)
            mean, std = rows.mean(dim=1).reshape(shape), rows.std(dim=1, unbiased=False).reshape(shape)
        else:
            mean, std = ref.mean(), ref.std(unbiased=False)
        noise = torch.randn(ref.shape, generator=gen) if distribution == "normal" else \
            (torch.rand(ref.shape, generator=gen) * 2 - 1) * math.sqrt(3.0)
        out[name] = (mean + std * noise).to(dtype=tensors[name].dtype, device=tensors[name].device)
    return out
