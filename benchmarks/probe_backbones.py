"""Frozen-feature probes of the converted backbones, each against a random-init encoder of the same shape.

    python benchmarks/probe_backbones.py [--corpus ../shared/corpus] [--out benchmarks/probe_results.json]

* Speech: Whisper hidden states on RAVDESS speech (8 classes, the clip's first 4 s), mean + std pooled over the
  clip's real frames, per layer; logistic regression; the subject-wise 5 folds of Luna-Jimenez et al. (train = the fold's train +
  validation actors, test = its test actors). Whisper base (real) and tiny.en (real and random-init).
* Faces: DINOv2-small on FER+ (majority label, 7 classes, contempt excluded): [CLS; mean patch token] at 112 px,
  logistic regression trained on 4,000 Train faces (stratified, seed 0), tested on all of PublicTest.
* Short vs padded Whisper: the probe trained on short-form (4 s) features of fold 1, applied to the same test
  clips encoded both ways (short, and padded to 30 s as stock Whisper does): agreement of the predictions.

Prints a markdown table and writes the JSON (no absolute paths; machine facts included).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hf_avemotion import load_clip, pretrained_path  # noqa: E402
from hf_avemotion.corpora import EMOTIONS, default_corpus_root, get_corpus  # noqa: E402
from hf_avemotion.modeling_avemotion import whisper_encode  # noqa: E402

FER_WORDS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear")  # FER+ vote order
FER_TO_OURS = {"neutral": "neutral", "happiness": "happy", "surprise": "surprised", "sadness": "sad",
               "anger": "angry", "disgust": "disgust", "fear": "fearful"}


def logistic_accuracy(train_x, train_y, test_x, test_y):
    """Standardised features -> logistic regression; returns (test accuracy, the fitted probe)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.1))
    probe.fit(train_x, train_y)
    predictions = probe.predict(test_x)
    return float((predictions == test_y).mean()), probe


def pooled_whisper_features(encoder, waves, seconds: int | None) -> np.ndarray:
    """[n, L+1, 2D]: per layer, mean and std of the states over the tokens of the real audio. ``seconds``: the
    clip length the encoder sees (None: padded to 30 s, as stock Whisper)."""
    from transformers import WhisperFeatureExtractor

    extractor = WhisperFeatureExtractor(feature_size=encoder.config.num_mel_bins, chunk_length=seconds or 30)
    out = []
    for wave in waves:
        mel = extractor(wave, sampling_rate=16000, return_tensors="pt")["input_features"]
        with torch.no_grad():
            states = torch.stack(whisper_encode(encoder, mel), 1)[0]  # [L+1, N, D]
        real = max(1, min(states.shape[1], int(np.ceil(len(wave) / 320))))
        states = states[:, :real]
        out.append(torch.cat([states.mean(1), states.std(1)], -1).numpy())
    return np.stack(out)


def cached_base_features(root: Path, items: list[dict], waves) -> np.ndarray:
    """The same pooled features as `pooled_whisper_features` for Whisper base, from the speech model's encoder
    cache (`avemotion speech` writes it; encoded here when absent)."""
    from hf_avemotion.speech_training import cache_encoder_states, speech_items

    cache = cache_encoder_states(speech_items(root), pretrained_path("whisper-base"),
                                 REPO / "runs" / "speech" / "cache_whisper-base")
    row_of = {clip: i for i, (clip, corpus) in enumerate(zip(cache["clip_id"], cache["corpus"])) if corpus == "ravdess"}
    source = cache.with_format("numpy", dtype=np.float32)
    out = []
    for item, wave in zip(items, waves):
        states = torch.from_numpy(source[row_of[item["clip_id"]]]["layer_states"])
        real = max(1, min(states.shape[1], int(np.ceil(len(wave) / 320))))
        states = states[:, :real]
        out.append(torch.cat([states.mean(1), states.std(1)], -1).numpy())
    return np.stack(out)


def speech_probes(root: Path, log) -> dict:
    from transformers import WhisperConfig, WhisperModel

    corpus = get_corpus("ravdess")
    items = [i for i in corpus.scan(root) if i["label"] is not None]
    folds = corpus.folds(items)
    labels = np.array([EMOTIONS.index(i["label"]) for i in items])
    speakers = np.array([i["speaker"] for i in items])
    waves = [load_clip(i["path"]).audio for i in items]
    rows, features = {}, {"Whisper base": cached_base_features(root, items, waves)}
    encoders = {
        "Whisper base": WhisperModel.from_pretrained(pretrained_path("whisper-base")).get_encoder(),
        "Whisper tiny.en": WhisperModel.from_pretrained(pretrained_path("whisper-tiny.en")).get_encoder(),
    }
    torch.manual_seed(0)
    encoders["Whisper tiny.en shape, random init"] = WhisperModel(
        WhisperConfig.from_pretrained(pretrained_path("whisper-tiny.en"))).get_encoder()
    for name, encoder in encoders.items():
        started = time.time()
        if name not in features:
            features[name] = pooled_whisper_features(encoder.eval(), waves, seconds=4)
        per_layer = []
        for layer in range(features[name].shape[1]):
            accs = []
            for split in folds.values():
                train = np.isin(speakers, split["train"] + split["validation"])
                test = np.isin(speakers, split["test"])
                accs.append(logistic_accuracy(features[name][train, layer], labels[train],
                                              features[name][test, layer], labels[test])[0])
            per_layer.append((float(np.mean(accs)), float(np.std(accs))))
        best = int(np.argmax([m for m, _ in per_layer]))
        rows[name] = {"best_layer": best, "accuracy_mean": per_layer[best][0], "accuracy_std": per_layer[best][1],
                      "last_layer_accuracy_mean": per_layer[-1][0], "per_layer": per_layer,
                      "seconds": round(time.time() - started, 1), "clips": len(items)}
        log(f"{name}: best layer {best} {per_layer[best][0]:.3f} ± {per_layer[best][1]:.3f}")

    # short (4 s) vs padded (30 s) Whisper base on fold 1's test clips (every 4th), probe trained on short features
    name, split = "Whisper base", folds["fold_1"]
    layer = rows[name]["best_layer"]
    train = np.isin(speakers, split["train"] + split["validation"])
    test = np.flatnonzero(np.isin(speakers, split["test"]))[::4]
    _, probe = logistic_accuracy(features[name][train, layer], labels[train], features[name][test, layer],
                                 labels[test])
    padded = pooled_whisper_features(encoders[name], [waves[i] for i in test], seconds=None)[:, layer]
    short_pred, padded_pred = probe.predict(features[name][test, layer]), probe.predict(padded)
    rows["short_vs_padded"] = {"clips": len(test), "layer": layer, "agreement": float((short_pred == padded_pred).mean()),
                               "accuracy_short": float((short_pred == labels[test]).mean()),
                               "accuracy_padded": float((padded_pred == labels[test]).mean())}
    log(f"short vs padded: {rows['short_vs_padded']}")
    return rows


def face_probes(root: Path, log) -> dict:
    from datasets import load_dataset
    from transformers import Dinov2Config, Dinov2Model

    fer = root / "faces" / "fer"
    data = load_dataset("parquet", data_files={"train": sorted(str(p) for p in fer.glob("train-*.parquet")),
                                               "test": str(fer / "validation-00000-of-00001.parquet")})

    def majority(split):
        ds = data[split].filter(lambda label: label in FER_WORDS, input_columns="ferplus_label")
        return ds, np.array([EMOTIONS.index(FER_TO_OURS[w]) for w in ds["ferplus_label"]])

    train, train_y = majority("train")
    rng = np.random.default_rng(0)
    # 4,000 training faces, stratified: each class in proportion to its share of Train
    chosen = np.concatenate([rng.permutation(np.flatnonzero(train_y == c))[:int(round(4000 * (train_y == c).mean()))]
                             for c in np.unique(train_y)])
    train, train_y = train.select(chosen), train_y[chosen]
    test, test_y = majority("test")
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)

    def embed(model, ds):
        out = []
        for start in range(0, len(ds), 64):
            images = ds[start:start + 64]["image"]
            pixels = torch.stack([torch.from_numpy(np.asarray(im.convert("RGB").resize((112, 112), 3), np.float32)
                                                   / 255).permute(2, 0, 1) for im in images])
            with torch.no_grad():
                tokens = model(pixel_values=(pixels - mean) / std).last_hidden_state
            out.append(torch.cat([tokens[:, 0], tokens[:, 1:].mean(1)], -1).numpy())
        return np.concatenate(out)

    rows = {}
    real = Dinov2Model.from_pretrained(pretrained_path("dinov2-small")).eval()
    torch.manual_seed(0)
    models = {"DINOv2-small": real, "DINOv2-small shape, random init": Dinov2Model(real.config).eval()}
    for name, model in models.items():
        started = time.time()
        acc, _ = logistic_accuracy(embed(model, train), train_y, embed(model, test), test_y)
        rows[name] = {"accuracy": acc, "train_faces": len(train), "test_faces": len(test),
                      "seconds": round(time.time() - started, 1)}
        log(f"{name}: {acc:.3f}")
    return rows


def machine() -> dict:
    flags = ""
    if Path("/proc/cpuinfo").is_file():
        flags = next((line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")), "")
    return {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
            "avx512_bf16": "avx512_bf16" in flags, "amx": "amx_bf16" in flags, "torch": torch.__version__,
            "date": time.strftime("%Y-%m-%d")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default=None)
    parser.add_argument("--out", default=str(REPO / "runs" / "probe_results.json"))
    parser.add_argument("--only", choices=("speech", "faces"), default=None)
    args = parser.parse_args(argv)
    root = Path(args.corpus) if args.corpus else default_corpus_root()
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    results = {"machine": machine()}
    if args.only in (None, "speech"):
        results["speech"] = speech_probes(root, log)
    if args.only in (None, "faces"):
        results["faces"] = face_probes(root, log)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print("| encoder | data (protocol) | probe accuracy |\n|---|---|---:|")
    for name, row in results.get("speech", {}).items():
        if name != "short_vs_padded":
            print(f"| {name} | RAVDESS speech, 8 classes, 5 subject-wise folds (best layer {row['best_layer']}) | "
                  f"{row['accuracy_mean']:.3f} ± {row['accuracy_std']:.3f} |")
    for name, row in results.get("faces", {}).items():
        print(f"| {name} | FER+ PublicTest, 7 classes ({row['train_faces']} training faces) | {row['accuracy']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
