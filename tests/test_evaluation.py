"""The packaged evaluate metric (offline) and the report plots."""

import os
import struct

import numpy as np
import pytest

from hf_avemotion.evaluation import (
    METRIC_PATH,
    load_metric,
    plot_confusion_matrix,
    plot_roc_pr,
    plot_training_curves,
)

NAMES = ["neutral", "happy", "sad"]
# hand-checked example: 8 samples, 3 classes
REFS = [0, 0, 0, 1, 1, 2, 2, 2]
PREDS = [0, 0, 1, 1, 2, 2, 2, 0]
# confusion (rows = true): [[2,1,0],[0,1,1],[1,0,2]]
# recall: 2/3, 1/2, 2/3 -> UAR = 11/18; precision: 2/3, 1/2, 2/3
# f1: 2/3, 1/2, 2/3 -> macro 11/18; weighted = (3*2/3 + 2*1/2 + 3*2/3)/8 = 5/8


@pytest.fixture(scope="module")
def metric():
    assert os.environ.get("HF_HUB_OFFLINE") == "1"  # conftest sets it: no Hub access
    return load_metric()


def test_metric_module_is_a_local_evaluate_metric(metric):
    import evaluate

    assert isinstance(metric, evaluate.Metric)
    assert (METRIC_PATH / "avemotion_metric.py").is_file()
    assert set(metric.features) == {"predictions", "references"}


def test_classification_matches_hand_computation(metric):
    out = metric.compute(predictions=PREDS, references=REFS, label_names=NAMES)
    assert out["accuracy"] == pytest.approx(5 / 8)
    assert out["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [1, 0, 2]]
    assert out["uar"] == pytest.approx(11 / 18) and out["macro_recall"] == out["uar"]
    assert out["macro_precision"] == pytest.approx(11 / 18)
    assert out["macro_f1"] == pytest.approx(11 / 18)
    assert out["weighted_f1"] == pytest.approx(5 / 8)
    assert out["per_class"]["happy"] == pytest.approx(
        {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2, "roc_auc": None, "pr_auc": None}
    )
    assert out["label_names"] == NAMES and out["num_samples"] == 8
    assert out["roc_auc_macro"] is None and out["pr_auc_macro"] is None  # no scores given


def test_uar_differs_from_accuracy_under_imbalance(metric):
    # 9 of class 0 right, the single class-1 sample wrong: accuracy 0.9, UAR 0.5
    out = metric.compute(predictions=[0] * 10, references=[0] * 9 + [1])
    assert out["accuracy"] == pytest.approx(0.9)
    assert out["uar"] == pytest.approx(0.5)


def test_aucs_with_scores_and_absent_class(metric):
    scores = np.array(
        [[0.9, 0.05, 0.05], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.5, 0.4, 0.1]]
    )
    refs = [0, 0, 1, 1, 0]  # class 2 never occurs
    out = metric.compute(predictions=scores.argmax(1), references=refs, prediction_scores=scores,
                         label_names=NAMES)
    assert out["per_class"]["sad"]["roc_auc"] is None and out["per_class"]["sad"]["pr_auc"] is None
    assert out["per_class"]["sad"]["recall"] is None  # undefined, not a fake zero
    assert out["per_class"]["neutral"]["roc_auc"] == pytest.approx(1.0)  # 0.9, 0.6, 0.5 > 0.2, 0.1
    assert out["per_class"]["happy"]["roc_auc"] == pytest.approx(1.0)
    assert out["roc_auc_macro"] == pytest.approx(1.0) and out["pr_auc_macro"] == pytest.approx(1.0)
    assert len(out["confusion_matrix"]) == 3  # all labels kept

    # imperfect ranking, checked by hand: positives {0.8, 0.3}, negatives {0.6, 0.1}: 3 of 4 pairs
    out = metric.compute(predictions=[1, 1, 0, 0], references=[1, 1, 0, 0],
                         prediction_scores=[[0.2, 0.8], [0.7, 0.3], [0.4, 0.6], [0.9, 0.1]])
    assert out["per_class"]["1"]["roc_auc"] == pytest.approx(0.75)


def test_scores_accumulate_across_batches():
    metric = load_metric("classification_with_scores")
    metric.add_batch(predictions=[0, 1], references=[0, 1], prediction_scores=[[0.8, 0.2], [0.3, 0.7]])
    metric.add_batch(predictions=[1], references=[0], prediction_scores=[[0.4, 0.6]])
    out = metric.compute()
    assert out["num_samples"] == 3
    assert out["confusion_matrix"] == [[1, 1], [0, 1]]
    assert out["roc_auc_macro"] == pytest.approx(1.0)


def test_regression_ccc():
    metric = load_metric("regression")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 2))
    out = metric.compute(predictions=x, references=x, target_names=["valence", "arousal"])
    assert out["ccc"] == pytest.approx({"valence": 1.0, "arousal": 1.0})
    assert out["mse_mean"] == pytest.approx(0.0)
    centred = x - x.mean(0)
    out = metric.compute(predictions=-centred, references=centred)
    assert out["ccc"]["dim_0"] == pytest.approx(-1.0) and out["ccc"]["dim_1"] == pytest.approx(-1.0)
    # a constant offset lowers CCC (unlike Pearson) but not to zero
    out = metric.compute(predictions=(x[:, 0] + 1.0).tolist(), references=x[:, 0].tolist())
    assert 0.0 < out["ccc"]["dim_0"] < 0.8 and out["mse"]["dim_0"] == pytest.approx(1.0)


def _png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_plots_written(tmp_path):
    rng = np.random.default_rng(0)
    names = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]
    y = rng.integers(0, 8, 120)
    scores = rng.normal(size=(120, 8))
    scores[np.arange(120), y] += 1.5
    cm = load_metric().compute(predictions=scores.argmax(1), references=y, label_names=names)["confusion_matrix"]

    paths = [
        plot_confusion_matrix(cm, names, tmp_path / "cm.png"),
        plot_roc_pr(y, scores, names, tmp_path / "sub" / "roc_pr.png"),
        plot_training_curves(
            [{"epoch": e, "loss": 2.0 / (e + 1)} for e in range(1, 6)]
            + [{"epoch": e, "eval_loss": 2.2 / (e + 1), "eval_macro_f1": 1 - 1 / (e + 1)} for e in range(1, 6)],
            tmp_path / "curves.png",
        ),
    ]
    for path in paths:
        assert path.is_file() and path.stat().st_size > 10_000
        width, height = _png_size(path)
        assert 300 <= width <= 3000 and 300 <= height <= 3000

    with pytest.raises(ValueError):
        plot_confusion_matrix(cm, names[:3], tmp_path / "bad.png")
