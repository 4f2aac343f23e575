"""Evaluation: the packaged `evaluate` metric and report plots (PNG, matplotlib Agg).

`load_metric` loads ``hf_avemotion/metrics/avemotion_metric`` by path, so it works offline
(``HF_HUB_OFFLINE=1``). The plot functions use matplotlib's object API with the Agg canvas
(no pyplot global state, no display needed) and return the path they wrote.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Sequence, Union

import numpy as np

__all__ = ["METRIC_PATH", "load_metric", "plot_confusion_matrix", "plot_roc_pr", "plot_training_curves"]

#: Folder of the evaluate metric module (``avemotion_metric.py`` inside).
METRIC_PATH = Path(__file__).resolve().parent / "metrics" / "avemotion_metric"

PathLike = Union[str, Path]


def load_metric(config_name: str = "classification", **kwargs):
    """Load the emotion metric (``"classification"``, ``"classification_with_scores"`` or ``"regression"``).

    Extra keyword arguments go to `evaluate.load` (e.g. ``experiment_id``).
    """
    import evaluate

    return evaluate.load(str(METRIC_PATH), config_name, **kwargs)


def _figure(width: float, height: float, ncols: int = 1):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols)
    return fig, axes


def _save(fig, out_path: PathLike) -> Path:
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out


def plot_confusion_matrix(
    confusion: Sequence[Sequence[int]],
    label_names: Sequence[str],
    out_path: PathLike,
    title: str = "Confusion matrix",
) -> Path:
    """Row-normalised confusion matrix (C, C) (rows = true class) with counts annotated; PNG."""
    cm = np.asarray(confusion, dtype=np.int64)
    n = len(label_names)
    if cm.shape != (n, n):
        raise ValueError(f"confusion matrix shape {cm.shape} does not match {n} label names")
    rows = cm.sum(1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros(cm.shape, np.float64), where=rows > 0)
    side = max(4.5, 0.75 * n + 2.5)
    fig, ax = _figure(side + 1.0, side)
    im = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
    ax.set_xticks(range(n), labels=list(label_names), rotation=45, ha="right")
    ax.set_yticks(range(n), labels=list(label_names))
    ax.set_xlabel("Predicted emotion")
    ax.set_ylabel("True emotion")
    acc = np.trace(cm) / max(cm.sum(), 1)
    ax.set_title(f"{title}\n(accuracy {acc:.3f}, n={int(cm.sum())})")
    for i in range(n):
        for j in range(n):
            color = "white" if norm[i, j] > 0.5 else "black"
            ax.text(j, i, f"{cm[i, j]}\n{norm[i, j]:.0%}", ha="center", va="center", fontsize=8, color=color)
    return _save(fig, out_path)


def plot_roc_pr(
    references: Sequence[int],
    prediction_scores: Sequence[Sequence[float]],
    label_names: Sequence[str],
    out_path: PathLike,
    title: str = "One-vs-rest ROC and precision-recall",
) -> Path:
    """One-vs-rest ROC and PR curves, one per class present + macro mean; scores (N, C); PNG."""
    from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_curve

    y = np.asarray(references, dtype=np.int64)
    scores = np.asarray(prediction_scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape != (len(y), len(label_names)):
        raise ValueError(f"prediction_scores must have shape (N, C) = ({len(y)}, {len(label_names)})")
    fig, (ax_roc, ax_pr) = _figure(12.0, 5.2, ncols=2)
    grid = np.linspace(0.0, 1.0, 201)
    tprs, precs, aucs, aps = [], [], [], []
    colors = [f"C{k % 10}" for k in range(len(label_names))]
    for k, name in enumerate(label_names):
        positive = y == k
        if not positive.any() or positive.all():
            continue  # ROC/PR undefined for this class
        fpr, tpr, _ = roc_curve(positive, scores[:, k])
        prec, rec, _ = precision_recall_curve(positive, scores[:, k])
        roc_auc, ap = auc(fpr, tpr), average_precision_score(positive, scores[:, k])
        ax_roc.plot(fpr, tpr, color=colors[k], lw=1.2, label=f"{name} ({roc_auc:.2f})")
        ax_pr.step(rec, prec, where="post", color=colors[k], lw=1.2, label=f"{name} ({ap:.2f})")
        tprs.append(np.interp(grid, fpr, tpr))
        # interpolated precision (best precision at recall >= r) on a common recall grid
        r_inc, p_inc = rec[::-1], prec[::-1]
        p_int = np.maximum.accumulate(p_inc[::-1])[::-1]
        precs.append(p_int[np.minimum(np.searchsorted(r_inc, grid, side="left"), len(p_int) - 1)])
        aucs.append(roc_auc)
        aps.append(ap)
    if tprs:
        ax_roc.plot(grid, np.mean(tprs, 0), color="black", lw=2.4, label=f"macro ({np.mean(aucs):.2f})")
        ax_pr.plot(grid, np.mean(precs, 0), color="black", lw=2.4, label=f"macro ({np.mean(aps):.2f})")
    ax_roc.plot([0, 1], [0, 1], ls="--", color="grey", lw=0.8, label="chance")
    ax_roc.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="False positive rate", ylabel="True positive rate",
               title="ROC (AUC in legend)")
    ax_pr.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="Recall", ylabel="Precision",
              title="Precision-recall (average precision in legend)")
    for ax in (ax_roc, ax_pr):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right" if ax is ax_roc else "lower left")
    fig.suptitle(title)
    return _save(fig, out_path)


_TRAIN_LOSS_KEYS = ("train_loss", "loss")
_VAL_LOSS_KEYS = ("eval_loss", "val_loss", "validation_loss")
_VAL_F1_KEYS = ("eval_macro_f1", "val_macro_f1", "validation_macro_f1", "macro_f1")


def _series(history: List[Dict], keys: Sequence[str]):
    xs, ys = [], []
    for i, entry in enumerate(history):
        for key in keys:
            if entry.get(key) is not None:
                xs.append(float(entry.get("epoch", i + 1)))
                ys.append(float(entry[key]))
                break
    return xs, ys


def plot_training_curves(
    history: List[Dict],
    out_path: PathLike,
    title: str = "Training curves",
) -> Path:
    """Loss (train/val) and validation macro-F1 by epoch from a list of dicts; PNG.

    Each dict has an ``epoch`` and any of ``train_loss``/``loss``, ``eval_loss``/``val_loss``,
    ``eval_macro_f1``/``val_macro_f1``/``macro_f1`` (Trainer ``log_history`` works as is).
    """
    fig, (ax_loss, ax_f1) = _figure(11.0, 4.2, ncols=2)
    for keys, label, style in ((_TRAIN_LOSS_KEYS, "train loss", "-o"), (_VAL_LOSS_KEYS, "validation loss", "-s")):
        xs, ys = _series(history, keys)
        if xs:
            ax_loss.plot(xs, ys, style, ms=3, label=label)
    xs, ys = _series(history, _VAL_F1_KEYS)
    if xs:
        ax_f1.plot(xs, ys, "-o", ms=3, color="C2", label="validation macro-F1")
        best = int(np.argmax(ys))
        ax_f1.annotate(f"best {ys[best]:.3f}", (xs[best], ys[best]), textcoords="offset points", xytext=(0, 8),
                       ha="center", fontsize=8)
    ax_loss.set(xlabel="Epoch", ylabel="Cross-entropy loss", title="Loss")
    ax_f1.set(xlabel="Epoch", ylabel="Macro-F1", title="Validation macro-F1", ylim=(0, 1.05))
    for ax in (ax_loss, ax_f1):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.suptitle(title)
    return _save(fig, out_path)
