"""PEFT modules of both libraries behind one small interface: attach new (seeded) or saved, save, read, write.

peft modules go through get_peft_model and the library's own state-dict loader; AdapterHub modules through
`adapters.init(T5ForConditionalGeneration)` (AutoAdapterModel cannot load untied Flan-style checkpoints),
always with_head=False so that a module never carries or overwrites the host's lm_head. Attaching mutates the
host it is given: pass a freshly loaded host (load_host) for every run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hubport.errors import ConfigError, IncompatibleError, NotAHostError, NotFoundError, UnknownNameError
from hubport.families import REGISTRY, detect_family, get_family

FAMILIES = tuple(REGISTRY)
LIBRARIES = ("peft", "adapters")
SUPPORTED = {lib: tuple(name for name, fam in REGISTRY.items() if lib in fam.LIBRARIES) for lib in LIBRARIES}
T5_TYPES = ("t5", "mt5", "umt5")


@dataclass(frozen=True)
class ModuleSpec:
    """A PEFT family in one library and the library config's items (sorted, lists as tuples: hashable)."""

    family: str
    library: str
    config: tuple[tuple[str, object], ...] = ()

    @classmethod
    def of(cls, family: str, library: str, config: dict | None = None) -> ModuleSpec:
        """Validate the names and freeze the config."""
        if library not in LIBRARIES:
            raise UnknownNameError("library", library, LIBRARIES)
        if family not in FAMILIES:
            raise UnknownNameError("family", family, FAMILIES)
        if family not in SUPPORTED[library]:
            raise ConfigError(f"family '{family}' is not available in library '{library}'",
                              f"{library} offers: {', '.join(SUPPORTED[library])}")
        items = tuple(sorted((str(k), _freeze(v)) for k, v in (config or {}).items()))
        return cls(family=family, library=library, config=items)

    def config_dict(self) -> dict:
        """The library config as keyword arguments (tuples back to lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.config}


def _freeze(value: object) -> object:
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        raise ConfigError(f"module config value {value!r} is a mapping", "use flat keys in module configs")
    return value


def load_host(host: str | Path):
    """A T5 host and its tokenizer from a local folder or a Hub id ("owner/name[@revision]"), in eval mode."""
    from transformers import AutoConfig, AutoTokenizer, T5ForConditionalGeneration

    name, revision = str(host), None
    if not Path(name).expanduser().exists() and "@" in name:
        name, revision = name.rsplit("@", 1)
    try:
        config = AutoConfig.from_pretrained(name, revision=revision)
    except OSError as exc:
        raise NotFoundError(f"cannot load host '{host}': {str(exc).splitlines()[0]}") from None
    if config.model_type not in T5_TYPES:
        raise NotAHostError(f"host '{host}' is a '{config.model_type}' model, not a T5 encoder-decoder")
    model = T5ForConditionalGeneration.from_pretrained(name, revision=revision)
    tokenizer = AutoTokenizer.from_pretrained(name, revision=revision)
    model.eval()
    return model, tokenizer


def attach_new(model, spec: ModuleSpec, seed: int):
    """Attach a freshly initialised module (the family's default init, drawn from `seed`); only it trains."""
    import torch

    with torch.random.fork_rng(devices=_cuda_devices(model)):
        torch.manual_seed(seed)
        if spec.library == "peft":
            from peft import get_peft_model

            model = get_peft_model(model, _library_config(spec))
        else:
            import adapters

            adapters.init(model)
            model.add_adapter(spec.family, config=_library_config(spec))
            model.train_adapter(spec.family)
            model.set_active_adapters(spec.family)
    model.eval()
    _require_trainable(model, spec)
    return model


def attach_saved(model, spec: ModuleSpec, module_dir: Path):
    """Attach a saved module with its library's own loader; refuse one whose tensors do not all land."""
    module_dir = Path(module_dir)
    if not (module_dir / "adapter_config.json").is_file():
        raise NotFoundError(f"no adapter_config.json in {module_dir}",
                            "point at a folder a module was saved to")
    saved_family = saved_module_family(module_dir)
    if saved_family != spec.family:
        raise IncompatibleError(f"{module_dir} holds a '{saved_family}' module, not '{spec.family}'",
                                "use a ModuleSpec of the saved module's family")
    model = _peft_saved(model, module_dir) if spec.library == "peft" else _adapters_saved(model, module_dir)
    model.eval()
    return model


def _peft_saved(model, module_dir: Path):
    from peft import PeftConfig, get_peft_model, load_peft_weights, set_peft_model_state_dict

    config = PeftConfig.from_pretrained(str(module_dir))
    config.inference_mode = False
    config.base_model_name_or_path = model.config.name_or_path or None  # the module now lives on this host
    if getattr(config, "prefix_projection", False):
        config.prefix_projection = False  # peft saves only the final prefix: reload it flat, still trainable
    peft_model = get_peft_model(model, config)
    weights = load_peft_weights(str(module_dir), device="cpu")
    result = set_peft_model_state_dict(peft_model, weights)
    trainable = {n for n, p in peft_model.named_parameters() if p.requires_grad}
    missing = sorted(trainable & set(result.missing_keys))
    unexpected = list(result.unexpected_keys)
    if config.is_prompt_learning:  # the prompt encoder loads "prompt_embeddings" itself, strictly
        missing = [k for k in missing if not k.startswith("prompt_encoder.")]
        unexpected = [k for k in unexpected if k != "prompt_embeddings"]
    _check_landed(module_dir, unexpected, missing)
    return peft_model


def _adapters_saved(model, module_dir: Path):
    import adapters

    adapters.init(model)
    info: dict = {}
    safetensors = (module_dir / "adapter.safetensors").is_file()
    name = model.load_adapter(str(module_dir), with_head=False, loading_info=info,
                              use_safetensors=safetensors)
    model.train_adapter(name)
    model.set_active_adapters(name)
    missing = [k for k in info.get("missing_keys", []) if f".{name}." in k]
    _check_landed(module_dir, list(info.get("unexpected_keys", [])), missing)
    return model


def _check_landed(module_dir: Path, unexpected: list[str], missing: list[str]) -> None:
    if unexpected or missing:
        example = (unexpected or missing)[0]
        raise IncompatibleError(
            f"module {module_dir} does not fit this host: {len(unexpected)} tensors have no place, "
            f"{len(missing)} module places got no tensor (e.g. {example})",
            "port it first with `hubport port`, which maps tensors onto the target host",
            tuple(unexpected + missing),
        )


def saved_module_family(module_dir: Path) -> str:
    """The family of a module saved by peft or adapters (hubport.families decides, as for every port)."""
    from hubport.formats import read_module

    module = read_module(Path(module_dir))
    return detect_family(module.library, module.method_config).NAME


def save_module(model, spec: ModuleSpec, out_dir: Path) -> None:
    """Save the module alone (no host weights, no head) with its library's saver (safetensors if it can)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if spec.library == "peft":
        model.save_pretrained(str(out_dir))
        return
    name = _adapter_name(model)
    config = model.adapters_config.get(name) or {}
    if spec.family == "compacter" and config.get("shared_phm_rule", False):
        raise ConfigError("adapters 1.3 does not save a Compacter's shared PHM rule under adapters.init",
                          "use shared_phm_rule=False (the harness default)")
    # adapters' prefix pool shares one tensor among all attention layers, which safetensors refuses to write
    model.save_adapter(str(out_dir), name, with_head=False, use_safetensors=spec.family != "prefix_tuning")


def module_tensors(model, spec: ModuleSpec) -> dict:
    """The trainable module tensors by parameter name (detached copies)."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def set_module_tensors(model, spec: ModuleSpec, tensors: dict) -> None:
    """Overwrite the trainable module tensors; names and shapes must be exactly those of module_tensors."""
    import torch

    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    if set(params) != set(tensors):
        odd = sorted(set(params) ^ set(tensors))
        raise IncompatibleError(f"{len(odd)} module tensor names differ from the model's (e.g. {odd[0]})",
                                "pass the names module_tensors returned", tuple(odd))
    with torch.no_grad():
        for name, param in params.items():
            value = tensors[name]
            if tuple(value.shape) != tuple(param.shape):
                raise IncompatibleError(f"tensor {name} has shape {tuple(value.shape)}, the module needs "
                                        f"{tuple(param.shape)}", "pass tensors of the module's own shapes")
            param.copy_(value.to(dtype=param.dtype, device=param.device))


def _library_config(spec: ModuleSpec):
    """The library's config for a new module, built by the family (hubport.families)."""
    try:
        return get_family(spec.family).library_config(spec.library, spec.config_dict())
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bad {spec.library} {spec.family} config: {exc}") from None


def _adapter_name(model) -> str:
    names = list(model.adapters_config.adapters)
    if len(names) != 1:
        raise ConfigError(f"expected exactly one adapter on the model, found {names}",
                          "attach one module per freshly loaded host")
    return names[0]


def _require_trainable(model, spec: ModuleSpec) -> None:
    if not any(p.requires_grad for p in model.parameters()):
        raise ConfigError(f"the {spec.library} {spec.family} config {spec.config_dict()} trains no tensor",
                          "check the module config (target modules, leave_out)")


def _cuda_devices(model) -> list:
    devices = {p.device.index for p in model.parameters() if p.device.type == "cuda"}
    return sorted(d for d in devices if d is not None)
