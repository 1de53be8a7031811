"""What a distillation is asked to do (DistillConfig) and what it did (DistillResult, written to hubport.json)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from hubport.errors import ConfigError


@dataclass(frozen=True)
class DistillConfig:
    """Settings of one sequence-level distillation; the defaults suit a classification-like task on CPU.

    `template` turns a raw text into the model's input ("sentiment: {text}"); `held_out` inputs are kept out
    of training to measure teacher agreement; `max_new_tokens` bounds the teacher's greedy outputs;
    `bf16=None` picks bf16 where the device has it; `cache_mb` bounds the cache of teacher logits (above it the
    teacher runs again on every batch)."""

    steps: int = 300
    temperature: float = 2.0
    lr: float = 5e-3
    batch_size: int = 32
    max_new_tokens: int = 16
    held_out: int = 200
    seed: int = 0
    max_source_len: int = 128
    template: str = "{text}"
    bf16: bool | None = None
    cache_mb: int = 512
    decode_batch_size: int = 64
    tolerance: float = 1e-4  # a batch whose loss is below it already matches the teacher: no step

    def __post_init__(self) -> None:
        positive = {"batch_size": self.batch_size, "max_new_tokens": self.max_new_tokens,
                    "max_source_len": self.max_source_len, "decode_batch_size": self.decode_batch_size}
        for name, value in positive.items():
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"distill {name} must be a positive integer, got {value!r}")
        for name, value in {"steps": self.steps, "held_out": self.held_out, "cache_mb": self.cache_mb}.items():
            if not isinstance(value, int) or value < 0:
                raise ConfigError(f"distill {name} must be a non-negative integer, got {value!r}")
        if not self.tolerance >= 0:
            raise ConfigError(f"distill tolerance must be >= 0, got {self.tolerance!r}")
        if not self.temperature > 0 or not self.lr > 0:
            raise ConfigError(f"distill temperature and lr must be > 0, got {self.temperature!r} and {self.lr!r}")
        if "{text}" not in self.template:
            raise ConfigError(f"distill template {self.template!r} has no {{text}} field",
                              "write the input format with {text} where the text goes, e.g. 'sentiment: {text}'")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class DistillResult:
    """What one distillation did: the record hubport.json keeps (labels are never used, by construction).

    Agreement is the share of held-out inputs whose greedy output (whole sequence) is the teacher's; KL is
    KL(teacher || student) at temperature 1 per target token on the teacher's held-out outputs."""

    steps: int
    seconds: float
    inputs: int
    held_out: int
    agreement_before: float | None
    agreement_after: float | None
    kl_before: float | None
    kl_after: float | None
    data: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    device: str = "cpu"
    precision: str = "no"
    processes: int = 1
    teacher_seconds: float = 0.0
    train_seconds: float = 0.0
    final_loss: float | None = None
    labels_used: bool = False
    method: str = "sequence-level distillation (Kim & Rush 2016): KL(teacher || student) on teacher outputs"

    def to_dict(self) -> dict:
        """Plain JSON-ready values, keys sorted when written (hubport.json)."""
        return asdict(self)
