# Copyright 2026 The hf_avemotion Authors. Licensed under the Apache License, Version 2.0.
"""Emotion-recognition metrics (classification and dimensional regression) for `evaluate`.

Self-contained (imports nothing from hf_avemotion) so that ``evaluate.load(<this folder>)``
works offline and the script can travel to the Hub unchanged.
"""

from typing import Dict, List, Optional, Sequence

import datasets
import evaluate
import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    roc_auc_score,
)

_CITATION = """\
@inproceedings{schuller2009interspeech,
  title={The INTERSPEECH 2009 Emotion Challenge},
  author={Schuller, Bj{\\"o}rn and Steidl, Stefan and Batliner, Anton},
  booktitle={Interspeech},
  year={2009}
}
@article{lin1989concordance,
  title={A concordance correlation coefficient to evaluate reproducibility},
  author={Lin, Lawrence I-Kuei},
  journal={Biometrics},
  volume={45}, number={1}, pages={255--268}, year={1989}
}
"""

_DESCRIPTION = """\
Metrics for categorical and dimensional emotion recognition, computed with scikit-learn.

Config "classification" (default): accuracy, macro precision / recall / F1, UAR (unweighted
average recall, i.e. macro recall: the mean of per-class recalls, insensitive to class
imbalance, the standard emotion-challenge measure), weighted F1, per-class precision /
recall / F1 / support keyed by label name, the confusion matrix (rows = references,
columns = predictions, in `labels` order) and, when class scores are given, one-vs-rest
ROC-AUC and PR-AUC (average precision) per class and their macro mean over the classes
that occur in the references (None where undefined). Scores are passed either as the
`prediction_scores` compute keyword (config "classification") or as a third input column
that `add_batch` accumulates (config "classification_with_scores").

Config "regression": concordance correlation coefficient (CCC) and mean squared error per
target dimension (e.g. valence, arousal) and their means.
"""

_KWARGS_DESCRIPTION = """
Args (classification):
    predictions (`list[int]`): predicted class ids, shape (N,).
    references (`list[int]`): true class ids, shape (N,).
    prediction_scores (`list[list[float]]`, optional): class scores (probabilities or
        logits), shape (N, C), column k belonging to `labels[k]`. Enables the AUCs.
    labels (`list[int]`, optional): the full class set, fixing the order of the confusion
        matrix and per-class tables. Default: range(len(label_names)), else range(C) of the
        scores, else the sorted ids seen in references and predictions.
    label_names (`list[str]`, optional): a name per entry of `labels` (default: str(id)).
Macro averages follow scikit-learn: they run over the labels that occur in the references
or the predictions (classes absent from both are not counted as zeros).

Args (regression):
    predictions / references (`list[list[float]]` of shape (N, D), or `list[float]`).
    target_names (`list[str]`, optional): a name per dimension (default "dim_0", ...).

Returns (classification): dict with `accuracy`, `macro_precision`, `macro_recall`,
    `macro_f1`, `uar`, `weighted_f1`, `per_class` ({name: {precision, recall, f1, support,
    roc_auc, pr_auc}}, None where undefined), `confusion_matrix` (list of lists, C x C), `labels`, `label_names`,
    `roc_auc_macro`, `pr_auc_macro` (None without scores), `num_samples`.
Returns (regression): dict with `ccc` ({name: float | None}), `ccc_mean`, `mse`
    ({name: float}), `mse_mean`, `num_samples`.

Examples:
    >>> metric = evaluate.load("hf_avemotion/metrics/avemotion_metric")
    >>> out = metric.compute(predictions=[0, 1, 1], references=[0, 1, 0], label_names=["a", "b"])
    >>> out["accuracy"], out["confusion_matrix"]
    (0.6666666666666666, [[1, 1], [0, 1]])
"""

_CLASSIFICATION_CONFIGS = ("default", "classification", "classification_with_scores")


def _float(x) -> Optional[float]:
    return None if x is None else float(x)


def concordance_correlation_coefficient(x: np.ndarray, y: np.ndarray) -> Optional[float]:
    """Lin's CCC of two 1-D arrays (population moments); None when both are constant."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    mx, my = x.mean(), y.mean()
    vx, vy = x.var(), y.var()
    cov = ((x - mx) * (y - my)).mean()
    denom = vx + vy + (mx - my) ** 2
    if denom <= 0:
        return None if not np.allclose(x, y) else 1.0
    return float(2 * cov / denom)


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class AVEmotionMetric(evaluate.Metric):
    """Classification (accuracy, F1, UAR, confusion matrix, AUCs) and regression (CCC, MSE) metrics."""

    def _info(self):
        name = self.config_name
        if name in ("default", "classification"):
            features = datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            )
        elif name == "classification_with_scores":
            features = datasets.Features(
                {
                    "predictions": datasets.Value("int64"),
                    "references": datasets.Value("int64"),
                    "prediction_scores": datasets.Sequence(datasets.Value("float64")),
                }
            )
        elif name == "regression":
            features = [
                datasets.Features(
                    {
                        "predictions": datasets.Sequence(datasets.Value("float64")),
                        "references": datasets.Sequence(datasets.Value("float64")),
                    }
                ),
                datasets.Features(
                    {"predictions": datasets.Value("float64"), "references": datasets.Value("float64")}
                ),
            ]
        else:
            raise ValueError(
                f"Unknown config {name!r}; choose 'classification', 'classification_with_scores' or 'regression'."
            )
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=features,
            # numpy format only allows scalar Value features
            format="numpy" if name in ("default", "classification") else None,
            reference_urls=["https://scikit-learn.org/stable/modules/model_evaluation.html"],
        )

    def _compute(self, predictions, references, **kwargs):
        if self.config_name in _CLASSIFICATION_CONFIGS:
            return self._classification(predictions, references, **kwargs)
        return self._regression(predictions, references, **kwargs)

    # ------------------------------------------------------------------ classification

    def _classification(
        self,
        predictions,
        references,
        prediction_scores=None,
        labels: Optional[Sequence[int]] = None,
        label_names: Optional[Sequence[str]] = None,
    ) -> Dict:
        y_pred = np.asarray(predictions, dtype=np.int64).reshape(-1)
        y_true = np.asarray(references, dtype=np.int64).reshape(-1)
        scores = None
        if prediction_scores is not None:
            scores = np.asarray([np.asarray(s, np.float64) for s in prediction_scores], np.float64)
            if scores.ndim != 2 or len(scores) != len(y_true):
                raise ValueError(f"prediction_scores must have shape (N, C); got {scores.shape} for N={len(y_true)}")
        if labels is None:
            if label_names is not None:
                labels = list(range(len(label_names)))
            elif scores is not None:
                labels = list(range(scores.shape[1]))
            else:
                labels = sorted(set(y_true.tolist()) | set(y_pred.tolist()))
        labels = [int(x) for x in labels]
        if label_names is None:
            label_names = [str(x) for x in labels]
        label_names = [str(x) for x in label_names]
        if len(label_names) != len(labels):
            raise ValueError("label_names must have one name per label")
        if scores is not None and scores.shape[1] != len(labels):
            raise ValueError(f"prediction_scores has {scores.shape[1]} columns for {len(labels)} labels")

        present = sorted(set(y_true.tolist()) | set(y_pred.tolist()))
        p_m, r_m, f_m, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=present, average="macro", zero_division=0
        )
        p_c, r_c, f_c, s_c = precision_recall_fscore_support(
            y_true, y_pred, labels=labels, average=None, zero_division=0
        )
        per_class = {}
        roc_list, pr_list = [], []
        for k, (lab, name) in enumerate(zip(labels, label_names)):
            roc = pr = None
            if scores is not None:
                positive = y_true == lab
                if positive.any() and (~positive).any():
                    roc = float(roc_auc_score(positive, scores[:, k]))
                    pr = float(average_precision_score(positive, scores[:, k]))
                    roc_list.append(roc)
                    pr_list.append(pr)
            n_pred, n_true = int((y_pred == lab).sum()), int(s_c[k])
            per_class[name] = {  # None where undefined (class never predicted / never present)
                "precision": float(p_c[k]) if n_pred else None,
                "recall": float(r_c[k]) if n_true else None,
                "f1": float(f_c[k]) if (n_pred or n_true) else None,
                "support": int(s_c[k]),
                "roc_auc": roc,
                "pr_auc": pr,
            }
        return {
            "accuracy": float(accuracy_score(y_true, y_pred)),
            "macro_precision": float(p_m),
            "macro_recall": float(r_m),
            "macro_f1": float(f_m),
            "uar": float(r_m),
            "weighted_f1": float(f1_score(y_true, y_pred, labels=present, average="weighted", zero_division=0)),
            "per_class": per_class,
            "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
            "labels": labels,
            "label_names": label_names,
            "roc_auc_macro": _float(np.mean(roc_list)) if roc_list else None,
            "pr_auc_macro": _float(np.mean(pr_list)) if pr_list else None,
            "num_samples": int(len(y_true)),
        }

    # ------------------------------------------------------------------ regression

    def _regression(self, predictions, references, target_names: Optional[List[str]] = None) -> Dict:
        pred = np.asarray([np.asarray(p, np.float64) for p in predictions], np.float64)
        ref = np.asarray([np.asarray(r, np.float64) for r in references], np.float64)
        if pred.ndim == 1:
            pred, ref = pred[:, None], ref[:, None]
        if pred.shape != ref.shape:
            raise ValueError(f"predictions {pred.shape} and references {ref.shape} differ in shape")
        dims = pred.shape[1]
        names = list(target_names) if target_names is not None else [f"dim_{d}" for d in range(dims)]
        if len(names) != dims:
            raise ValueError("target_names must have one name per dimension")
        ccc = {n: concordance_correlation_coefficient(pred[:, d], ref[:, d]) for d, n in enumerate(names)}
        mse = {n: float(((pred[:, d] - ref[:, d]) ** 2).mean()) for d, n in enumerate(names)}
        defined = [v for v in ccc.values() if v is not None]
        return {
            "ccc": ccc,
            "ccc_mean": float(np.mean(defined)) if defined else None,
            "mse": mse,
            "mse_mean": float(np.mean(list(mse.values()))),
            "num_samples": int(len(pred)),
        }
