"""Evaluation by rank classification: the label string with the highest log-probability wins.

Per batch the encoder runs once (a forward with a one-token decoder, so that every library's hooks, prompts and
prefixes apply exactly as in training), then one decoder pass scores all label strings for all examples against
the reused encoder states. `evaluate_generate` predicts with generate() instead; the two agree on a trained module.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

METRIC_DIR = Path(__file__).resolve().parent / "metrics" / "accuracy"


def evaluate(model, task, *, batch_size: int = 64, accelerator=None) -> dict:
    """Accuracy of rank classification on the task's eval split: {"accuracy", "n", "predictions"}."""
    predictions = _sharded(model, task, batch_size, accelerator, _rank_predict)
    return _result(predictions, task)


def evaluate_generate(model, task, *, batch_size: int = 64) -> dict:
    """The same with greedy generate(): an output that is no label string counts as wrong (prediction -1)."""
    predictions = _sharded(model, task, batch_size, None, _generate_predict)
    return _result(predictions, task)


def accuracy_metric():
    """The project's own `evaluate` accuracy module (evaluate.load("accuracy") would need the Hub)."""
    import evaluate as hf_evaluate

    return hf_evaluate.load(str(METRIC_DIR), keep_in_memory=True)


def _result(predictions: np.ndarray, task) -> dict:
    scores = accuracy_metric().compute(predictions=predictions.tolist(), references=task.eval.labels.tolist())
    return {"accuracy": float(scores["accuracy"]), "n": int(len(predictions)),
            "predictions": [int(p) for p in predictions]}


def _sharded(model, task, batch_size: int, accelerator, predict) -> np.ndarray:
    """Predictions for the whole eval split; under several processes each takes a block and they are gathered."""
    import torch

    n = len(task.eval)
    ranks = accelerator.num_processes if accelerator is not None else 1
    if ranks == 1:
        return _predict_all(model, task, np.arange(n), batch_size, predict)
    per = -(-n // ranks)
    mine = np.resize(np.arange(n), per * ranks)[accelerator.process_index * per:(accelerator.process_index + 1) * per]
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
    out = np.empty(len(indices), dtype=np.int64)
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
                out[pos] = predict(model, ids, mask, *labels).cpu().numpy()
    finally:
        model.train(was_training)
    return out


def label_scores(model, input_ids, attention_mask, label_ids, label_mask):
    """[batch, labels] summed log-probabilities of each label string (</s> included) given each input."""
    batch, (labels, width) = input_ids.shape[0], label_ids.shape
    start = model.config.decoder_start_token_id
    decoder_in = torch_shift_right(label_ids, start)
    first = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_in[:1, :1].expand(batch, 1))
    encoded = first.encoder_last_hidden_state.repeat_interleave(labels, dim=0)
    out = model(input_ids=input_ids.repeat_interleave(labels, dim=0),
                attention_mask=attention_mask.repeat_interleave(labels, dim=0),
                encoder_outputs=(encoded,), decoder_input_ids=decoder_in.repeat(batch, 1))
    logp = out.logits.float().log_softmax(-1)
    targets = label_ids.repeat(batch, 1)
    token = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1) * label_mask.repeat(batch, 1)
    return token.sum(-1).view(batch, labels)


def torch_shift_right(label_ids, start: int):
    """Decoder inputs for teacher forcing: the start token, then the labels without their last position."""
    import torch

    first = torch.full_like(label_ids[:, :1], start)
    return torch.cat([first, label_ids[:, :-1]], dim=1)


def _rank_predict(model, input_ids, attention_mask, label_ids, label_mask):
    return label_scores(model, input_ids, attention_mask, label_ids, label_mask).argmax(-1)


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
