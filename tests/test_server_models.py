"""transformers, peft and adapters load models and modules from hubport's server by Hub id, unchanged."""

from __future__ import annotations

import pytest
from huggingface_hub import HfApi


@pytest.fixture(scope="module")
def tiny_t5_dir(tmp_path_factory):
    """A tiny random T5 (vocab 128, d_model 32, 2 layers, 4 heads) saved by transformers."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(0)
    config = T5Config(
        vocab_size=128,
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_heads=4,
        decoder_start_token_id=0,
        pad_token_id=0,
        eos_token_id=1,
    )
    out = tmp_path_factory.mktemp("tiny_t5")
    T5ForConditionalGeneration(config).save_pretrained(out)
    return out


def _push(hub_server, repo_id: str, folder) -> str:
    api = HfApi(endpoint=hub_server.url, token=hub_server.write_token)
    api.create_repo(repo_id)
    return api.upload_folder(folder_path=folder, repo_id=repo_id).oid


def _randomize(module, names: tuple[str, ...]) -> None:
    """Give module tensors (zero-initialised by some libraries) values a wrong load could not reproduce."""
    import torch

    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, param in module.named_parameters():
            if any(n in name for n in names):
                param.copy_(torch.randn(param.shape, generator=gen))


def _same_tensors(a: dict, b: dict) -> bool:
    import torch

    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_transformers_from_pretrained(hub_server, hub_repo_id, tiny_t5_dir):
    from transformers import T5ForConditionalGeneration

    sha = _push(hub_server, hub_repo_id, tiny_t5_dir)
    local = T5ForConditionalGeneration.from_pretrained(tiny_t5_dir)
    for revision in (sha, None):
        remote = T5ForConditionalGeneration.from_pretrained(hub_repo_id, revision=revision)
        assert _same_tensors(local.state_dict(), remote.state_dict())


def test_peft_from_pretrained(hub_server, hub_repo_id, tiny_t5_dir, tmp_path):
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import T5ForConditionalGeneration

    config = LoraConfig(task_type="SEQ_2_SEQ_LM", r=4, lora_alpha=8, target_modules=["q", "v"])
    model = get_peft_model(T5ForConditionalGeneration.from_pretrained(tiny_t5_dir), config)
    _randomize(model, ("lora_",))
    model.save_pretrained(tmp_path / "lora")
    _push(hub_server, hub_repo_id, tmp_path / "lora")
    loaded = PeftModel.from_pretrained(T5ForConditionalGeneration.from_pretrained(tiny_t5_dir), hub_repo_id)
    want = {k: v for k, v in model.state_dict().items() if "lora_" in k}
    got = {k: v for k, v in loaded.state_dict().items() if "lora_" in k}
    assert len(want) == 24 and _same_tensors(want, got)  # 6 q/v attention blocks x 2 projections x (A, B)


@pytest.mark.parametrize("safetensors", [False, True], ids=["bin", "safetensors"])
def test_adapters_load_adapter_by_hub_id(hub_server, hub_repo_id, tiny_t5_dir, tmp_path, safetensors):
    import adapters
    from transformers import T5ForConditionalGeneration

    model = T5ForConditionalGeneration.from_pretrained(tiny_t5_dir)
    adapters.init(model)
    model.add_adapter("bn", config=adapters.SeqBnConfig(reduction_factor=4))
    _randomize(model, ("adapters.bn",))
    model.save_adapter(str(tmp_path / "bn"), "bn", with_head=False, use_safetensors=safetensors)
    _push(hub_server, hub_repo_id, tmp_path / "bn")
    fresh = T5ForConditionalGeneration.from_pretrained(tiny_t5_dir)
    adapters.init(fresh)
    # adapters 1.3 resolves a non-local name through huggingface_hub.snapshot_download (HF_ENDPOINT applies)
    name = fresh.load_adapter(hub_repo_id, with_head=False, use_safetensors=safetensors)
    assert name == "bn"
    want = {k: v for k, v in model.state_dict().items() if "adapters.bn" in k}
    got = {k: v for k, v in fresh.state_dict().items() if "adapters.bn" in k}
    assert want and _same_tensors(want, got)
