"""Accuracy as an `evaluate` metric module shipped with the project.

evaluate.load("accuracy") needs the Hub; evaluate.load(<this folder>) works offline and keeps the metric's
name, features and citation in the results the study reports.
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = "Accuracy: the proportion of predictions equal to their reference label."
_KWARGS_DESCRIPTION = """
Args:
    predictions (list of int): predicted labels (-1 for "none of the labels").
    references (list of int): gold labels.
    normalize (bool): return the proportion (True, default) or the count of correct predictions.
    sample_weight (list of float): optional weight per example.
Returns:
    accuracy (float or int): the proportion (0..1) or count of correct predictions.
"""
_CITATION = ""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Accuracy(evaluate.Metric):
    """Accuracy over integer class labels."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("int32"), "references": datasets.Value("int32")}
            ),
        )

    def _compute(self, predictions, references, normalize=True, sample_weight=None):
        correct = (np.asarray(predictions) == np.asarray(references)).astype(float)
        weights = np.ones_like(correct) if sample_weight is None else np.asarray(sample_weight, dtype=float)
        total = float((correct * weights).sum())
        if normalize:
            return {"accuracy": total / float(weights.sum()) if weights.sum() else float("nan")}
        return {"accuracy": int(total) if sample_weight is None else total}
