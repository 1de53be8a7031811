"""The contract between a port strategy and the one write path: what a strategy is given and what it returns.

A strategy reads the resolved module and hosts, decides what to carry and how, and returns a `Carried`; it never
writes files. `hubport.port.commit` turns any Carried into a module folder the same way, so every option that acts
on the result (--verify, --evaluate, --train-steps, --push) works with every strategy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hubport.port.plan import PortPlan
from hubport.port.resolve import Resolved

Progress = Callable[[str, int, int], None]
"""progress(what, done, total): called by slow strategies (probe passes, distillation steps) as they go."""


@dataclass(frozen=True)
class PortOptions:
    """What the user asked of the port, beyond the module and the hosts (each strategy reads what it needs)."""

    allow_partial: bool = False       # drop what cannot be carried (by name, recorded) instead of refusing
    force: bool = False               # carry past a lineage gate (copy across lineages; maps without a residual fit)
    probe_tokens: int = 4096          # probe tier: tokens of forward passes on both hosts
    seed: int = 0                     # every draw a strategy makes (probe tokens, held-out rows, training)
    init: str | None = None           # for strategies that start from another's result (distill): its name
    settings: Mapping[str, Any] = field(default_factory=dict)  # strategy-specific settings (distill: data, steps)
    progress: Progress | None = None


@dataclass(frozen=True)
class Carried:
    """A module carried onto the target, not yet written.

    `tensors` holds the target's tensors by target key; None means "the source's own tensors, renamed by `kept`"
    (the copy, which then writes by byte copy where nothing changes). `config_patch` is applied to the retargeted
    method config (peft's flat config, adapters' inner `config`). `record` is merged into hubport.json: the
    strategy's own section(s), such as `crossmap` for the map tiers.
    """

    plan: PortPlan                                   # one TensorPlan per source tensor, as carried
    kept: Mapping[str, str]                          # source key -> target key
    dropped: Mapping[str, str]                       # source key -> why it was not carried
    tensors: Mapping[str, Any] | None = None         # target key -> torch tensor
    config_patch: Mapping[str, Any] = field(default_factory=dict)
    record: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    forced: bool = False                             # carried past a lineage gate the user overrode with --force


CarryFn = Callable[[Resolved, PortOptions, "Carried | None"], Carried]


@dataclass(frozen=True)
class Strategy:
    """One way to carry a module, registered by name in hubport.port.strategies.STRATEGIES.

    `carry(r, options, init)` gets the resolved module and hosts (local folders through `r.base_files.local_dir()`
    and `r.target_files.local_dir()`), the options, and, when `needs_init`, the Carried of the strategy named by
    `options.init` (or `default_init`), already run. It refuses (raises a HubportError) before reading weights
    wherever the refusal does not depend on them.
    """

    name: str
    carry: CarryFn
    summary: str
    needs_init: bool = False
    default_init: str | None = None
