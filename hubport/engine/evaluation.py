"""Evaluation by rank classification: the label string with the highest log-probability wins.

Per batch one forward runs the encoder and the first decoder step (shared by all label strings, since they
all start from the decoder start token) through the model's own forward, so every library's hooks and prefixes
apply exactly as in training; the remaining label tokens are scored on that cache, copied per label.
`evaluate_generate` predicts with generate() instead; the two agree on a trained module.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

METRIC_DIR = Path(__file__).resolve().parent / "metrics" / "accuracy"


def evaluate(model, task, *, batch_size: int = 64, accelerator=None) -> dict:
    """Accuracy of rank classification on the task's eval split: {"accuracy", "n", "predictions", "margins"};
    margins[i] is the gold label's log-probability minus the best other label's (> 0: right)."""
    scores = _sharded(model, task, batch_size, accelerator, label_scores)
    return {**_result(scores.argmax(-1), task), "margins": label_margins(scores, task.eval.labels).tolist()}


def evaluate_generate(model, task, *, batch_size: int = 64) -> dict:
    """The same with greedy generate(): an output that is no label string counts as wrong (prediction -1)."""
    predictions = _sharded(model, task, batch_size, None, _generate_predict)
    return _result(predictions, task)


def label_margins(scores: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """[n] gold-label score minus the best other label's score, from [n, labels] scores."""
    scores = np.asarray(scores, dtype=np.float64)
    rows = np.arange(len(gold))
    others = scores.copy()
    others[rows, gold] = -np.inf
    return scores[rows, gold] - others.max(-1)


def accuracy_metric():
    """The project's own `evaluate` accuracy module (evaluate.load("accuracy") would need the Hub)."""
    import evaluate as hf_evaluate

    return hf_evaluate.load(str(METRIC_DIR), keep_in_memory=True)


def _result(predictions: np.ndarray, task) -> dict:
    scores = accuracy_metric().compute(predictions=predictions.tolist(), references=task.eval.labels.tolist())
    return {"accuracy": float(scores["accuracy"]), "n": int(len(predictions)),
            "predictions": [int(p) for p in predictions]}


def _sharded(model, task, batch_size: int, accelerator, predict) -> np.ndarray:
    """Predictions for the whole eval split; several processes each take a block, then gather them."""
    import torch

    n = len(task.eval)
    ranks = accelerator.num_processes if accelerator is not None else 1
    if ranks == 1:
        return _predict_all(model, task, np.arange(n), batch_size, predict)
    per = -(-n // ranks)
    first = accelerator.process_index * per
    mine = np.resize(np.arange(n), per * ranks)[first:first + per]
    local = _predict_all(accelerator.unwrap_model(model), task, mine, batch_size, predict)
    gathered = accelerator.gather(torch.from_numpy(local).to(accelerator.device))
    return gathered.cpu().numpy()[:n]


def _predict_all(model, task, indices: np.ndarray, batch_size: int, predict) -> np.ndarray:
    """Predict `indices` in length-sorted batches (less padding), returned in the order given."""
    import torch

    split = task.eval
    device = next(model.parameters()).device
    lengths = split.attention_mask[indices].sum(1)
    order = np.argsort(lengths, kind="stable")
    out = None   # [n] predictions or [n, labels] scores, shaped by the first batch
    labels = torch.from_numpy(task.label_ids).to(device), torch.from_numpy(task.label_mask).to(device)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for lo in range(0, len(order), batch_size):
                pos = order[lo:lo + batch_size]
                idx = indices[pos]
                width = int(lengths[pos].max())
                ids = torch.from_numpy(split.input_ids[idx, :width]).to(device)
                mask = torch.from_numpy(split.attention_mask[idx, :width]).to(device)
                batch = predict(model, ids, mask, *labels).float().cpu().numpy()
                if out is None:
                    out = np.empty((len(indices), *batch.shape[1:]), dtype=batch.dtype)
                out[pos] = batch
    finally:
        model.train(was_training)
    return out if out is not None else np.empty(0)


def label_scores(model, input_ids, attention_mask, label_ids, label_mask):
    """[batch, labels] summed log-probabilities of each label string (</s> included) given each input."""
    if _prompt_learning(model):
        return _scores_unshared(model, input_ids, attention_mask, label_ids, label_mask)
    return _scores_shared(model, input_ids, attention_mask, label_ids, label_mask)


def _scores_shared(model, input_ids, attention_mask, label_ids, label_mask):
    """Encoder and first decoder step once per example, then the label strings on a cache expanded per label.

    Every label string starts from the same decoder start token, so step 0 is shared; its cache (self-
    attention at step 0, cross-attention keys/values over the encoder states) is copied per label, never
    recomputed.
    """
    import torch

    batch, (labels, width) = input_ids.shape[0], label_ids.shape
    start = torch.full((batch, 1), model.config.decoder_start_token_id, dtype=torch.long,
                       device=input_ids.device)
    out = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=start, use_cache=True)
    scores = out.logits[:, -1].float().log_softmax(-1)[:, label_ids[:, 0]] * label_mask[:, 0]
    if width == 1:
        return scores
    cache = _repeat_cache(out.past_key_values, labels)
    encoded = (out.encoder_last_hidden_state.repeat_interleave(labels, dim=0),)
    mask = attention_mask.repeat_interleave(labels, dim=0)
    targets, target_mask = label_ids.repeat(batch, 1), label_mask.repeat(batch, 1)
    rest = torch.zeros(batch * labels, device=input_ids.device)
    for t in range(1, width):
        out = model(attention_mask=mask, encoder_outputs=encoded, decoder_input_ids=targets[:, t - 1:t],
                    past_key_values=cache, use_cache=True)
        cache = out.past_key_values
        logp = out.logits[:, -1].float().log_softmax(-1)
        rest += logp.gather(-1, targets[:, t:t + 1]).squeeze(-1) * target_mask[:, t]
    return scores + rest.view(batch, labels)


def _repeat_cache(cache, repeats: int):
    """Each example's cache entry `repeats` times in a row: a Cache object, or the legacy nested tuples that
    adapters-patched T5 layers return."""
    if hasattr(cache, "batch_repeat_interleave"):
        cache.batch_repeat_interleave(repeats)
        return cache
    return tuple(tuple(t.repeat_interleave(repeats, dim=0) for t in layer) for layer in cache)


def _scores_unshared(model, input_ids, attention_mask, label_ids, label_mask):
    """For peft prompt learning, whose forward replaces any cache with its prompt: encoder once (a one-token
    decoder step, so the prompt applies), then one teacher-forced decoder pass over all label strings."""
    batch, (labels, width) = input_ids.shape[0], label_ids.shape
    decoder_in = torch_shift_right(label_ids, model.config.decoder_start_token_id)
    first = model(input_ids=input_ids, attention_mask=attention_mask,
                  decoder_input_ids=decoder_in[:1, :1].expand(batch, 1))
    encoded = first.encoder_last_hidden_state.repeat_interleave(labels, dim=0)
    out = model(input_ids=input_ids.repeat_interleave(labels, dim=0),
                attention_mask=attention_mask.repeat_interleave(labels, dim=0),
                encoder_outputs=(encoded,), decoder_input_ids=decoder_in.repeat(batch, 1))
    logp = out.logits.float().log_softmax(-1)
    targets = label_ids.repeat(batch, 1).unsqueeze(-1)
    token = logp.gather(-1, targets).squeeze(-1) * label_mask.repeat(batch, 1)
    return token.sum(-1).view(batch, labels)


def _prompt_learning(model) -> bool:
    config = getattr(model, "active_peft_config", None)
    return bool(getattr(config, "is_prompt_learning", False))


def torch_shift_right(label_ids, start: int):
    """Decoder inputs for teacher forcing: the start token, then the labels without their last position."""
    import torch

    first = torch.full_like(label_ids[:, :1], start)
    return torch.cat([first, label_ids[:, :-1]], dim=1)


def _generate_predict(model, input_ids, attention_mask, label_ids, label_mask):
    """Greedy decode as many tokens as the longest label; match the output against each label string."""
    import torch

    width = label_ids.shape[1]
    out = model.generate(input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=width,
                         do_sample=False, num_beams=1)
    generated = out[:, 1:]
    pred = torch.full((input_ids.shape[0],), -1, dtype=torch.long, device=input_ids.device)
    for c in range(label_ids.shape[0]):
        n = int(label_mask[c].sum())
        if generated.shape[1] >= n:
            hit = (generated[:, :n] == label_ids[c, :n]).all(-1) & (pred < 0)
            pred[hit] = c
    return pred
