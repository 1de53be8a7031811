"""A fresh student module: the saved module's own config, retargeted to the target host, newly initialised.

Distillation needs a student of the same family on the target; where no map carries the module's values, it
starts from the library's default initialisation. Sizes come from the target host (peft's prompt learning
sizes are re-derived, adapters' configs are size-free), and FFN names follow the target's layout: ReLU `wi`
becomes gated `wi_0`/`wi_1` and back, so v1.0 <-> v1.1 and any other size pair works.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from hubport.distill.models import load_host, module_library, module_spec
from hubport.errors import OutputExistsError

GATED_IN, RELU_IN = ("wi_0", "wi_1"), ("wi",)
PROMPT_SIZES = ("num_layers", "token_dim", "num_attention_heads", "num_transformer_submodules",
                "encoder_hidden_size")


def fresh_module(module_dir: str | Path, host_dir: str | Path, out_dir: str | Path, seed: int = 0) -> Path:
    """Write a freshly initialised module of `module_dir`'s family and config, fitted to `host_dir`, to
    `out_dir` (which must not exist; written under a temporary name, then renamed), with its library's saver."""
    import torch

    module_dir, out_dir = Path(module_dir), Path(out_dir)
    if out_dir.exists():
        raise OutputExistsError(f"output folder {out_dir} already exists")
    spec = module_spec(module_dir)
    model, _ = load_host(host_dir)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            if module_library(module_dir) == "peft":
                _fresh_peft(model, module_dir, host_dir, tmp)
            else:
                _fresh_adapters(model, module_dir, tmp, spec.family)
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _fresh_peft(model, module_dir: Path, host_dir: str | Path, out: Path) -> None:
    from peft import PeftConfig, get_peft_model

    config = PeftConfig.from_pretrained(str(module_dir))
    config.base_model_name_or_path = str(host_dir)
    config.inference_mode = False
    gated = bool(model.config.is_gated_act)
    for name in ("target_modules", "feedforward_modules"):
        value = getattr(config, name, None)
        if isinstance(value, list | set | tuple):
            setattr(config, name, _retarget(value, gated))
    if config.is_prompt_learning:
        for name in PROMPT_SIZES:
            if hasattr(config, name):
                setattr(config, name, None)  # get_peft_model derives them from the target host
    get_peft_model(model, config).save_pretrained(str(out))


def _fresh_adapters(model, module_dir: Path, out: Path, family: str) -> None:
    import adapters
    from adapters import AdapterConfig

    saved = json.loads((module_dir / "adapter_config.json").read_text())
    name = saved.get("name") or family
    adapters.init(model)
    model.add_adapter(name, config=AdapterConfig.load(saved["config"]))
    model.train_adapter(name)
    safetensors = (module_dir / "adapter.safetensors").is_file()
    model.save_adapter(str(out), name, with_head=False, use_safetensors=safetensors)


def _retarget(names, gated: bool) -> list[str]:
    """FFN input projections renamed to the target layout; other module names kept; sorted, no repeats."""
    ffn_in = set(GATED_IN) | set(RELU_IN)
    out = {n for n in names if n not in ffn_in}
    if any(n in ffn_in for n in names):
        out |= set(GATED_IN if gated else RELU_IN)
    return sorted(out)
