"""Speech emotion model: cache the frozen Whisper encoder's states, train the head, evaluate speaker-independently.

Recipe (2 CPU cores): Whisper's encoder runs once per clip (``cache_encoder_states``: every layer's states,
[L+1, N, D] float16, in a `datasets` Arrow cache); each clip is then reduced to the head's input, the mean and
standard deviation over its real frames of every layer (``cache_layer_statistics``: [L+1, 2D], ~29 KB per clip),
and the linear head of `AVEmotionForSpeechClassification` trains on those in seconds (``train_speech_head``).
Fine-tuning Whisper's top layers was left out: ~20x the head's compute per step on un-pooled states that do not fit
in memory here (6.7 GB). Augmentation acts on the statistics: mixup between clips (soft targets) and Gaussian
noise in standardised units.

Protocols (``speech_experiment``): RAVDESS 8-class, the subject-wise 5-fold split of Luna-Jimenez et al. (no test
actor in training of its fold), with TESS and EmoDB added to every fold's training data; cross-corpus EmoDB
(trained without it, 7-class basic view); TESS speaker-out (trained on one TESS speaker).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .corpora import BASIC_EMOTIONS, EMOTIONS, get_corpus, to_basic
from .media import load_clip

SPEECH_CORPORA = ("ravdess", "tess", "emodb")


def speech_items(root, corpora=SPEECH_CORPORA) -> list[dict]:
    """Every labelled clip of the speech corpora under ``root``: dicts with corpus, path, clip_id, speaker, label
    (package word; clips whose label is dropped, e.g. EmoDB boredom, are left out)."""
    rows = []
    for name in corpora:
        for item in get_corpus(name).scan(root):
            if item["label"] is None:
                continue
            rows.append({"corpus": name, "path": item["path"], "clip_id": item["clip_id"],
                         "speaker": f"{name}:{item['speaker']}", "label": item["label"]})
    return rows


def _encoded_rows(items_json: str, backbone: str, chunk_seconds: int, batch_size: int):
    """Generator behind `cache_encoder_states`: the item columns + duration + layer_states per clip. (Items come
    as one JSON string: `datasets` would split a list argument into one generator call per item.)"""
    from transformers import WhisperFeatureExtractor, WhisperModel

    from .modeling_avemotion import whisper_encode

    items = json.loads(items_json)
    encoder = WhisperModel.from_pretrained(backbone).get_encoder().eval()
    extractor = WhisperFeatureExtractor(feature_size=encoder.config.num_mel_bins, chunk_length=chunk_seconds)
    for start in range(0, len(items), batch_size):
        batch = items[start:start + batch_size]
        waves = [load_clip(item["path"]).audio for item in batch]
        mel = extractor(waves, sampling_rate=16000, return_tensors="pt")["input_features"]
        with torch.no_grad():
            states = torch.stack(whisper_encode(encoder, mel), dim=1).to(torch.float16).numpy()
        for item, wave, state in zip(batch, waves, states):
            yield {**item, "duration": len(wave) / 16000, "layer_states": state}


def cache_encoder_states(items: list[dict], backbone, cache_dir, *, chunk_seconds: int = 4, batch_size: int = 16):
    """Encode every clip once with the frozen Whisper encoder of ``backbone`` (a folder or Hub name).

    Returns a `datasets.Dataset` (Arrow, memory-mapped, in ``cache_dir``; `datasets` reuses a finished cache for
    the same items and backbone) with the item columns + ``duration`` + ``layer_states`` float16 [L+1, N, D]
    (N = 50 * chunk_seconds). Features are computed exactly as `pipeline("audio-classification")` computes them
    at inference: Whisper's feature extractor with ``chunk_length=chunk_seconds`` (longer clips cut, shorter
    ones padded with silence)."""
    from datasets import Array3D, Dataset, Features, Value
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(backbone)
    columns = ("corpus", "path", "clip_id", "speaker", "label")
    features = Features({**{k: Value("string") for k in columns}, "duration": Value("float32"),
                         "layer_states": Array3D((config.encoder_layers + 1, 50 * chunk_seconds, config.d_model),
                                                 "float16")})
    rows = [{k: item[k] for k in columns} for item in items]
    return Dataset.from_generator(
        _encoded_rows, features=features, cache_dir=str(cache_dir), writer_batch_size=64,
        gen_kwargs=dict(items_json=json.dumps(rows), backbone=str(backbone), chunk_seconds=chunk_seconds, batch_size=batch_size))


# ---------------------------------------------------------------------------------------------- training the head


def real_tokens(duration: float, num_tokens: int) -> int:
    """Whisper tokens (20 ms each) of a clip of ``duration`` seconds within a window of ``num_tokens``: the count
    the feature extractor's attention mask gives (``whisper_token_mask``)."""
    return max(1, min(num_tokens, math.ceil(round(duration * 16000) / 320)))


def cache_layer_statistics(dataset, path, chunk: int = 128) -> np.ndarray:
    """Per-layer mean and std over each clip's real tokens, float32 [n, L+1, 2D], from a `cache_encoder_states`
    dataset; saved to ``path`` (.npy, written atomically) and read from there when present."""
    from .modeling_avemotion import layer_statistics

    path = Path(path)
    if path.is_file():
        return np.load(path)
    source = dataset.select_columns(["layer_states", "duration"]).with_format("numpy", dtype=np.float32)
    parts = []
    for start in range(0, len(dataset), chunk):  # chunk by chunk: the un-pooled states may not fit in memory
        rows = source[start:start + chunk]
        states = torch.from_numpy(rows["layer_states"])  # [b, L+1, N, D]
        counts = torch.tensor([real_tokens(float(d), states.shape[2]) for d in rows["duration"]])
        mask = torch.arange(states.shape[2])[None, :] < counts[:, None]
        parts.append(layer_statistics(states, mask).numpy())
    statistics = np.concatenate(parts)
    partial = path.with_suffix(".partial.npy")
    np.save(partial, statistics)
    partial.replace(path)
    return statistics


def statistics_cache(corpus_root, backbone, cache_dir) -> "StatisticsCache":
    """Every clip of the speech corpora under ``corpus_root`` encoded once by ``backbone`` (a Whisper folder) and
    reduced to the head's input, both cached in ``cache_dir`` (reused by later calls)."""
    states = cache_encoder_states(speech_items(corpus_root), backbone, cache_dir)
    statistics = cache_layer_statistics(states, Path(cache_dir) / f"layer_statistics_{states._fingerprint}.npy")
    return StatisticsCache(states, statistics)


@dataclass
class SpeechRecipe:
    """Hyper-parameters of head training on cached layer statistics (defaults: the shipped model's recipe)."""

    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 2e-3
    weight_decay: float = 1e-2
    warmup_ratio: float = 0.1
    dropout: float = 0.2
    mixup_alpha: float = 0.0
    noise: float = 0.0  # Gaussian noise on the standardised statistics
    label_smoothing: float = 0.0
    seed: int = 0


class StatisticsCache:
    """The head's inputs for every clip: ``statistics`` float32 [n, L+1, 2D] + the string columns."""

    def __init__(self, dataset, statistics: np.ndarray):
        self.columns = {k: list(dataset[k]) for k in ("corpus", "clip_id", "speaker", "label")}
        self.statistics = torch.from_numpy(statistics)

    def __len__(self) -> int:
        return len(self.columns["label"])

    def select(self, *, corpora=None, speakers=None, exclude_speakers=()) -> np.ndarray:
        """Row indices of the clips of ``corpora`` (all when None) whose speaker is in ``speakers`` (all when
        None) and not in ``exclude_speakers``."""
        keep = [i for i in range(len(self))
                if (corpora is None or self.columns["corpus"][i] in corpora)
                and (speakers is None or self.columns["speaker"][i] in speakers)
                and self.columns["speaker"][i] not in exclude_speakers]
        return np.asarray(keep, dtype=np.int64)

    def targets(self, rows, label_names=EMOTIONS) -> torch.Tensor:
        return torch.tensor([label_names.index(self.columns["label"][i]) for i in rows])


def _class_weights(targets: torch.Tensor, num_labels: int) -> list[float]:
    """Inverse class frequency, normalised to mean 1 over the classes present (absent classes weigh 0)."""
    counts = torch.bincount(targets, minlength=num_labels).float()
    weights = torch.where(counts > 0, counts.sum() / (counts * (counts > 0).sum()).clamp(min=1), 0.0)
    return weights.tolist()


def predict_proba(model, cache: StatisticsCache, rows, batch_size: int = 256) -> np.ndarray:
    """Class probabilities [n, C] of the clips ``rows`` from their cached statistics."""
    model.eval()
    with torch.no_grad():
        out = [torch.softmax(model(layer_statistics=cache.statistics[rows[s:s + batch_size]]).logits, -1)
               for s in range(0, len(rows), batch_size)]
    return torch.cat(out).numpy() if out else np.zeros((0, model.config.num_labels), np.float32)


def fit_statistics_head(head, statistics: torch.Tensor, targets: torch.Tensor, recipe: SpeechRecipe, *,
                        class_weights: list[float] | None = None, num_labels: int = len(EMOTIONS), log=print) -> list[dict]:
    """Train a `SpeechStatisticsHead` in place on statistics [n,L+1,2D] with labels [n]: feature scale from these
    statistics, fixed recipe (no epoch selection), class-weighted soft cross-entropy, AdamW with a one-cycle schedule.
    Shared by the speech model and the AV model's speech head. Returns the history (one dict per epoch)."""
    torch.manual_seed(recipe.seed)
    generator = torch.Generator().manual_seed(recipe.seed)
    for module in (head.norm, head.classifier):
        module.reset_parameters()
    head.set_feature_scale(statistics)
    weight = torch.tensor(class_weights) if class_weights is not None else None
    optimizer = torch.optim.AdamW(head.parameters(), lr=recipe.learning_rate, weight_decay=recipe.weight_decay)
    steps_per_epoch = math.ceil(len(targets) / recipe.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, recipe.learning_rate, pct_start=recipe.warmup_ratio,
                                                    total_steps=recipe.epochs * steps_per_epoch)
    scale = head.feature_std.view(statistics.shape[1:])  # noise in standardised units
    history = []
    head.train()
    for epoch in range(1, recipe.epochs + 1):
        started, total = time.time(), 0.0
        order = torch.randperm(len(targets), generator=generator)
        for start in range(0, len(order), recipe.batch_size):
            rows = order[start:start + recipe.batch_size]
            x, soft = statistics[rows], F.one_hot(targets[rows], num_labels).float()
            if recipe.mixup_alpha > 0:
                lam = float(np.random.default_rng(recipe.seed * 100003 + epoch * 1009 + start).beta(
                    recipe.mixup_alpha, recipe.mixup_alpha))
                perm = torch.randperm(len(rows), generator=generator)
                x, soft = lam * x + (1 - lam) * x[perm], lam * soft + (1 - lam) * soft[perm]
            if recipe.noise > 0:
                x = x + recipe.noise * scale * torch.randn(x.shape, generator=generator)
            loss = F.cross_entropy(head(x), soft, weight=weight, label_smoothing=recipe.label_smoothing)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += float(loss.detach()) * len(rows)
        history.append({"epoch": epoch, "train_loss": round(total / len(targets), 4),
                        "seconds": round(time.time() - started, 2)})
    head.eval()
    log(f"trained {recipe.epochs} epochs on {len(targets)} clips: loss {history[-1]['train_loss']:.4f} "
        f"({sum(h['seconds'] for h in history):.0f} s)")
    return history


def train_speech_head(cache: StatisticsCache, train_rows, backbone, recipe: SpeechRecipe, label_names=EMOTIONS,
                      log=print):
    """A speech model (``backbone``'s Whisper encoder, frozen) whose head is trained on the cached statistics of
    ``train_rows`` (`fit_statistics_head`). Returns (model, history)."""
    from .modeling_avemotion import AVEmotionForSpeechClassification

    targets = cache.targets(train_rows, label_names)
    weights = _class_weights(targets, len(label_names))
    model = AVEmotionForSpeechClassification.from_backbone(
        str(backbone), id2label=dict(enumerate(label_names)), label2id={n: i for i, n in enumerate(label_names)},
        classifier_dropout=recipe.dropout, class_weights=weights, label_smoothing=recipe.label_smoothing)
    model.encoder.requires_grad_(False)
    history = fit_statistics_head(model.head, cache.statistics[train_rows], targets, recipe, class_weights=weights,
                                  num_labels=len(label_names), log=log)
    return model.eval(), history


# ---------------------------------------------------------------------------------------------- protocols


def _scores(targets: np.ndarray, probabilities: np.ndarray, label_names) -> dict:
    """accuracy, macro-F1, UAR, confusion matrix ... from the package's evaluate metric."""
    from .evaluation import load_metric

    result = load_metric("classification").compute(predictions=probabilities.argmax(-1), references=targets,
                                                    labels=list(range(len(label_names))),
                                                    label_names=list(label_names))
    return {k: result[k] for k in ("accuracy", "macro_f1", "uar", "confusion_matrix", "num_samples", "per_class")}


def to_basic_view(probabilities: np.ndarray) -> np.ndarray:
    """8-class probabilities [n, 8] (EMOTIONS order) -> 7-class basic view [n, 7] (calm merged into neutral)."""
    out = np.zeros((len(probabilities), len(BASIC_EMOTIONS)), dtype=probabilities.dtype)
    for k, name in enumerate(EMOTIONS):
        out[:, BASIC_EMOTIONS.index(to_basic(name))] += probabilities[:, k]
    return out


def _summary(folds: list[dict]) -> dict:
    return {f"{key}_{stat}": float(fn([f[key] for f in folds]))
            for key in ("accuracy", "macro_f1", "uar") for stat, fn in (("mean", np.mean), ("std", np.std))}


def ravdess_cross_validation(cache: StatisticsCache, backbone, recipe: SpeechRecipe, *, extra_corpora=("tess", "emodb"),
                             folds=None, log=print) -> dict:
    """RAVDESS 8-class, subject-wise 5-fold (Luna-Jimenez et al.): per fold, train on every actor but the fold's
    test actors + ``extra_corpora`` (all their clips) with the fixed recipe (no epoch selection, so the test actors
    choose nothing), test on the test actors."""
    spec = get_corpus("ravdess").folds([{"speaker": s.split(":", 1)[1]} for s in set(cache.columns["speaker"])
                                        if s.startswith("ravdess:")])
    results, pooled_targets, pooled_probs = [], [], []
    for name, split in spec.items():
        if folds and name not in folds:
            continue
        actors = {part: {f"ravdess:{a}" for a in split[part]} for part in ("train", "validation", "test")}
        train = np.concatenate([cache.select(corpora=["ravdess"], speakers=actors["train"] | actors["validation"]),
                                cache.select(corpora=list(extra_corpora))])
        test = cache.select(corpora=["ravdess"], speakers=actors["test"])
        log(f"{name}: train {len(train)} clips, test {len(test)} (test actors {sorted(split['test'])})")
        model, history = train_speech_head(cache, train, backbone, recipe, log=log)
        probs = predict_proba(model, cache, test)
        targets = cache.targets(test).numpy()
        scores = _scores(targets, probs, EMOTIONS)
        results.append({"fold": name, "test_actors": sorted(split["test"]), "epochs": len(history), **scores})
        pooled_targets.append(targets)
        pooled_probs.append(probs)
        log(f"{name}: accuracy {scores['accuracy']:.3f}, macro-F1 {scores['macro_f1']:.3f}, UAR {scores['uar']:.3f}")
    pooled = _scores(np.concatenate(pooled_targets), np.concatenate(pooled_probs), EMOTIONS)
    return {"protocol": "RAVDESS speech, 8 classes, subject-wise 5-fold (Luna-Jimenez et al. 2021); training "
                        f"also on all of {', '.join(extra_corpora) or 'nothing else'}; fixed recipe, no epoch "
                        "selection", "folds": results, **_summary(results),
            "pooled_confusion_matrix": pooled["confusion_matrix"], "label_names": list(EMOTIONS)}


def held_out_corpus(cache: StatisticsCache, backbone, recipe: SpeechRecipe, *, test_speakers, train_corpora,
                    basic_view: bool, log=print) -> dict:
    """Train on ``train_corpora`` minus the test speakers (fixed recipe), test on ``test_speakers`` (in the
    7-class basic view when ``basic_view``: calm merged into neutral)."""
    test = cache.select(speakers=set(test_speakers))
    train = cache.select(corpora=list(train_corpora), exclude_speakers=set(test_speakers))
    log(f"train {len(train)} clips, test {len(test)}")
    model, _ = train_speech_head(cache, train, backbone, recipe, log=log)
    probs, names = predict_proba(model, cache, test), EMOTIONS
    targets = [cache.columns["label"][i] for i in test]
    if basic_view:
        probs, names, targets = to_basic_view(probs), BASIC_EMOTIONS, [to_basic(t) for t in targets]
    return _scores(np.array([names.index(t) for t in targets]), probs, names) | {"label_names": list(names)}


# ---------------------------------------------------------------------------------------------- one command


PROTOCOLS = ("cv", "emodb", "tess", "ship")


def run_speech_experiments(corpus_root, output_dir, *, backbone: str = "whisper-base", protocols=PROTOCOLS,
                           recipe: SpeechRecipe | None = None, ship_to=None, folds=None, log=print) -> dict:
    """Everything behind the speech model's numbers, in one call (``avemotion speech``):

    * ``cv``: RAVDESS 8-class subject-wise 5-fold (+ TESS and EmoDB in every fold's training data);
    * ``emodb``: cross-corpus: trained on RAVDESS + TESS (no EmoDB), tested on all of EmoDB, 7-class basic view;
    * ``tess``: speaker-out: trained on RAVDESS + EmoDB + one TESS speaker, tested on the other (both ways);
    * ``ship``: the shipped model: the same recipe on every clip, its head written to ``ship_to`` (default:
      nothing written).

    Writes ``output_dir/results.json`` (+ confusion-matrix PNG) and returns the results."""
    from .backbones import pretrained_path
    from .evaluation import plot_confusion_matrix

    recipe = recipe or SpeechRecipe()
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    folder = pretrained_path(backbone) if backbone in ("whisper-base", "whisper-tiny.en") else Path(backbone)
    started = time.time()
    cache = statistics_cache(corpus_root, folder, output_dir.parent / f"cache_{Path(folder).name}")
    log(f"encoder states of {len(cache)} clips ready after {time.time() - started:.0f} s")
    # the head's tensors are small: one thread avoids the thread-synchronisation cost that dominates them (measured
    # 4-5x faster per step than two threads on a busy 2-core machine)
    torch.set_num_threads(1)
    results = {"backbone": backbone, "recipe": asdict(recipe), "clips": len(cache),
               "encoding_seconds": round(time.time() - started, 1)}

    def save():  # after every protocol: a long run stopped halfway keeps what it measured
        (output_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    if "cv" in protocols:
        t = time.time()
        results["ravdess_cv"] = ravdess_cross_validation(cache, folder, recipe, folds=folds, log=log)
        results["ravdess_cv"]["seconds"] = round(time.time() - t, 1)
        plot_confusion_matrix(results["ravdess_cv"]["pooled_confusion_matrix"], EMOTIONS,
                              output_dir / "ravdess_cv_confusion.png",
                              title="Speech model, RAVDESS 5-fold (test actors pooled)")
        save()
    if "emodb" in protocols:
        emodb = {s for s in cache.columns["speaker"] if s.startswith("emodb:")}
        results["emodb_cross_corpus"] = held_out_corpus(
            cache, folder, recipe, test_speakers=emodb, train_corpora=("ravdess", "tess"),
            basic_view=True, log=log)
        save()
    if "tess" in protocols:
        results["tess_speaker_out"] = {}
        for test, other in (("tess:YAF", "tess:OAF"), ("tess:OAF", "tess:YAF")):
            results["tess_speaker_out"][test] = held_out_corpus(
                cache, folder, recipe, test_speakers={test}, train_corpora=("ravdess", "emodb", "tess"),
                basic_view=True, log=log)
            save()
    if "ship" in protocols:
        t = time.time()
        model, _ = train_speech_head(cache, np.arange(len(cache)), folder, recipe, log=log)
        results["shipped"] = {"epochs": recipe.epochs, "train_clips": len(cache), "seconds": round(time.time() - t, 1)}
        if ship_to is not None:
            write_shipped_speech_model(model, ship_to, results)
    save()
    return results


def write_shipped_speech_model(model, folder, results: dict) -> Path:
    """The repo's copy of the speech model: head weights (fp16), config, feature extractor, model card."""
    from transformers import WhisperFeatureExtractor

    from .backbones import save_trained_head

    folder = Path(folder)
    save_trained_head(model, folder, model.frozen_backbone_prefixes(),
                      extra_files={"README.md": speech_model_card(results), "results.json": json.dumps(
                          {k: v for k, v in results.items() if k != "recipe"}, indent=2) + "\n"})
    WhisperFeatureExtractor(feature_size=model.config.audio_config.num_mel_bins, chunk_length=4,
                            return_attention_mask=True).save_pretrained(folder)  # statistics skip the padding
    return folder


def _row(name: str, r: dict) -> str:
    if "accuracy_mean" in r:
        return (f"| {name} | {r['accuracy_mean']:.3f} ± {r['accuracy_std']:.3f} | {r['macro_f1_mean']:.3f} ± "
                f"{r['macro_f1_std']:.3f} | {r['uar_mean']:.3f} ± {r['uar_std']:.3f} | {sum(f['num_samples'] for f in r['folds'])} |")
    return f"| {name} | {r['accuracy']:.3f} | {r['macro_f1']:.3f} | {r['uar']:.3f} | {r['num_samples']} |"


def speech_results_table(results: dict) -> str:
    """Markdown table of a `run_speech_experiments` result."""
    lines = ["| protocol | accuracy | macro-F1 | UAR | n |", "|---|---:|---:|---:|---:|"]
    if "ravdess_cv" in results:
        lines.append(_row("RAVDESS 8-class, 5 subject-wise folds (mean ± std over folds)", results["ravdess_cv"]))
    if "emodb_cross_corpus" in results:
        lines.append(_row("EmoDB cross-corpus (never trained on EmoDB), 6 classes of the basic view",
                          results["emodb_cross_corpus"]))
    for speaker, r in results.get("tess_speaker_out", {}).items():
        lines.append(_row(f"TESS speaker-out: tested on {speaker.split(':')[1]}, trained on the other", r))
    return "\n".join(lines)


def speech_model_card(results: dict) -> str:
    """Model card (README.md) of the shipped speech model: protocol, numbers, data and licences."""
    per_class = ""
    if "ravdess_cv" in results:
        cm = np.asarray(results["ravdess_cv"]["pooled_confusion_matrix"])
        recall = np.diag(cm) / np.maximum(cm.sum(1), 1)
        per_class = "\n".join(f"| {n} | {r:.3f} | {int(s)} |" for n, r, s in zip(EMOTIONS, recall, cm.sum(1)))
        per_class = ("Per-class recall, RAVDESS 5-fold test actors pooled:\n\n| emotion | recall | n |\n|---|---:|---:|\n"
                     + per_class + "\n")
    shipped = results.get("shipped", {})
    return f"""---
license: cc-by-nc-sa-4.0
library_name: transformers
pipeline_tag: audio-classification
tags: [speech-emotion-recognition, whisper, hf_avemotion]
base_model: openai/whisper-base
---

# hf_avemotion speech emotion model (Whisper base encoder + attention-pooling head)

Names one of 8 emotions (neutral, calm, happy, sad, angry, fearful, disgust, surprised) in up to 4 s of English
speech. Made by `avemotion speech` (hf_avemotion/speech_training.py).

```python
import hf_avemotion
from transformers import pipeline
classify = pipeline("audio-classification", model=str(hf_avemotion.pretrained_path("speech")))
classify({{"raw": hf_avemotion.load_clip("clip.wav").audio, "sampling_rate": 16000}})
```

## Model
Whisper base's encoder (`openai/whisper-base`, here converted from a PyPI package; frozen), run on the clip's own
4 s (not padded to 30 s); the mean and standard deviation over the clip's real frames (padding left out) of each of
its 7 hidden states, standardised and concatenated (7,168 numbers), then one linear layer (after LayerNorm and
dropout). Only that read-out is trained ({shipped.get('epochs', '?')} epochs on {shipped.get('train_clips', '?')}
clips, cached statistics, class-balanced cross-entropy, AdamW, one-cycle schedule). This simple head beat the
earlier one (learned layer weights, attentive pooling, 2-layer classifier: 0.664 on the same folds): see
docs/speech_model.md in the hf_avemotion repository.

## Evaluation (speaker-independent)
{speech_results_table(results)}

RAVDESS folds: the subject-wise 5-fold split of Luna-Jiménez et al. (Applied Sciences 12(1):327, 2021) over the 22
actors available here (actors 05 and 24 are held back by the project); each fold trains on the other folds' actors
with the fixed recipe (no epoch selection); TESS and EmoDB are in every fold's training data. EmoDB: German, trained without it, 7-class basic view (calm
merged into neutral; EmoDB's boredom is dropped, so 6 classes occur). TESS has two speakers: its speaker-out
number is "trained on one woman (plus the other corpora), tested on the other".

{per_class}
## Limitations
Acted speech only (RAVDESS, TESS: North American English actors; EmoDB: German actors); 4 s per clip; the encoder
is frozen. Spontaneous speech, other languages and noisy rooms are not measured. Calm vs neutral is hard.

## Data and licences
Trained on RAVDESS speech (CC BY-NC-SA 4.0), TESS (CC BY-NC-ND 4.0) and EmoDB (licence not stated by the copy
used): **non-commercial research use only**; the weights inherit those terms. Whisper: MIT.
"""
