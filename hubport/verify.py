"""`--verify`: load the target host with the ported module through the module's own library and run it."""

from __future__ import annotations

from pathlib import Path

from hubport.errors import FormatError, IncompatibleError


def load_ported(host_dir: Path, module_dir: Path, library: str):
    """What a user does with the result: PeftModel.from_pretrained, or adapters.init + load_adapter(with_head=False)."""
    from transformers import T5ForConditionalGeneration

    model = T5ForConditionalGeneration.from_pretrained(host_dir)
    if library == "peft":
        from peft import PeftModel

        return PeftModel.from_pretrained(model, str(module_dir)).eval()
    import adapters

    adapters.init(model)
    use_st = (Path(module_dir) / "adapter.safetensors").is_file()
    name = model.load_adapter(str(module_dir), with_head=False, use_safetensors=use_st)
    model.set_active_adapters(name)
    return model.eval()


def verify_port(host_dir: Path, module_dir: Path, library: str, vocab_size: int) -> dict:
    """A forward pass of target + module; returns how much the module moves the logits (0 would mean it is inert)."""
    import torch

    try:
        model = load_ported(host_dir, module_dir, library)
    except (OSError, ValueError) as exc:  # transformers' refusal of a pickle or a broken file: its own words
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise FormatError(f"--verify cannot load {host_dir} with the module: {first}",
                          "give a host saved with safetensors (hubport never unpickles arbitrary objects)") from None
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(3, max(4, vocab_size), (2, 8), generator=gen)
    dec = torch.zeros((2, 2), dtype=torch.long)
    with torch.no_grad():
        with_module = model(input_ids=ids, decoder_input_ids=dec).logits
        if library == "peft":
            with model.disable_adapter():
                bare = model(input_ids=ids, decoder_input_ids=dec).logits
        else:
            model.set_active_adapters(None)
            bare = model(input_ids=ids, decoder_input_ids=dec).logits
    if not torch.isfinite(with_module).all():
        raise IncompatibleError("the ported module gives non-finite logits on the target", "do not use this port")
    return {"forward_pass": "ok", "module_effect_max_abs_logit": float((with_module - bare).abs().max())}
