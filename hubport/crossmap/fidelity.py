"""Function-level fidelity of a port: does the ported module change the target the way the module changed its source?

Accuracy mixes two things: whether the map carried the module, and whether the target host is simply different.
These measures need no labels, only inputs: the module's effect is (host + module) - host,
on the label-word margin (logit of the second label word minus the first) when label token ids are given, else on
all logits of the first decoder step.

    effect_correlation  Pearson correlation of the source and target effects across inputs (or logits)
    effect_carried      1 - sum (e_t - e_s)^2 / sum e_s^2: 1 = carried exactly, 0 = no better than dropping it
    kl_carried          1 - KL(p_s+m || p_t+port) / KL(p_s+m || p_t), on the label words (or the vocabulary)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hubport.crossmap.probe import carried as carried_fraction


def _first_step_logits(model, input_ids, decoder_start: int, batch: int = 32) -> np.ndarray:
    import torch

    rows = []
    with torch.no_grad():
        for i in range(0, len(input_ids), batch):
            ids = torch.nn.utils.rnn.pad_sequence([torch.as_tensor(x) for x in input_ids[i:i + batch]],
                                                  batch_first=True, padding_value=0)
            mask = torch.nn.utils.rnn.pad_sequence([torch.ones(len(x), dtype=torch.long)
                                                    for x in input_ids[i:i + batch]], batch_first=True)
            dec = torch.full((ids.shape[0], 1), decoder_start, dtype=torch.long)
            rows.append(model(input_ids=ids, attention_mask=mask, decoder_input_ids=dec).logits[:, 0]
                        .double().numpy())
    return np.concatenate(rows)


def _logits(host: Path, module: Path | None, library: str | None, input_ids) -> np.ndarray:
    from transformers import T5ForConditionalGeneration

    from hubport.verify import load_ported

    if module is None:
        model = T5ForConditionalGeneration.from_pretrained(host).eval()
    else:
        model = load_ported(host, module, library)
    return _first_step_logits(model, input_ids, int(model.config.decoder_start_token_id or 0))


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def _kl(p_logits: np.ndarray, q_logits: np.ndarray) -> float:
    lp, lq = _log_softmax(p_logits), _log_softmax(q_logits)
    return float((np.exp(lp) * (lp - lq)).sum(axis=-1).mean())


def fidelity_from_logits(src_bare: np.ndarray, src_mod: np.ndarray, tgt_bare: np.ndarray, tgt_mod: np.ndarray,
                         label_ids: tuple[int, int] | None = None) -> dict:
    """The three measures from first-step logits [n, vocab] of the four models."""
    if label_ids is not None:
        pick = list(label_ids)
        src_bare, src_mod, tgt_bare, tgt_mod = (x[:, pick] for x in (src_bare, src_mod, tgt_bare, tgt_mod))
        e_s = (src_mod[:, 1] - src_mod[:, 0]) - (src_bare[:, 1] - src_bare[:, 0])
        e_t = (tgt_mod[:, 1] - tgt_mod[:, 0]) - (tgt_bare[:, 1] - tgt_bare[:, 0])
    else:
        e_s, e_t = (src_mod - src_bare).ravel(), (tgt_mod - tgt_bare).ravel()
    corr = float(np.corrcoef(e_s, e_t)[0, 1]) if e_s.std() > 0 and e_t.std() > 0 else float("nan")
    carried = carried_fraction(e_s, e_t)
    base_kl = _kl(src_mod, tgt_bare)
    kl = 1.0 - _kl(src_mod, tgt_mod) / base_kl if base_kl > 0 else float("nan")
    rms = {"source_effect_rms": float(np.sqrt((e_s ** 2).mean())),
           "target_effect_rms": float(np.sqrt((e_t ** 2).mean()))}
    return {"effect_correlation": corr, "effect_carried": carried, "kl_carried": kl, "n": int(len(src_bare)), **rms}


def function_fidelity(source_host: str | Path, source_module: str | Path, target_host: str | Path,
                      target_module: str | Path, input_ids: Sequence[Sequence[int]], *,
                      label_ids: tuple[int, int] | None = None, library: str | None = None) -> dict:
    """Load the four models (each host bare and with its module, via the module's own library) and compare the
    module's effect on the source with the ported module's effect on the target. Hosts are local folders."""
    from hubport.formats import read_module

    library = library or read_module(Path(source_module)).library
    src_bare = _logits(Path(source_host), None, None, input_ids)
    src_mod = _logits(Path(source_host), Path(source_module), library, input_ids)
    tgt_bare = _logits(Path(target_host), None, None, input_ids)
    tgt_mod = _logits(Path(target_host), Path(target_module), library, input_ids)
    return fidelity_from_logits(src_bare, src_mod, tgt_bare, tgt_mod, label_ids)
