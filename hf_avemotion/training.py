"""Training with Accelerate on a prepared dataset (see `prepare.py`), one process or many.

`avemotion train --config configs/NAME.yaml [--field value ...]`: the YAML file sets defaults for the fields
of `ModelArguments`, `DataArguments` and `TrainArguments`; command-line flags override them
(parsed with transformers' `HfArgumentParser`).

What a run writes to `output_dir`:
    checkpoints/epoch_N/   full training state (Accelerate `save_state`) + trainer_state.json, written to a
                           temporary name and renamed, so a checkpoint is complete or absent
    best/                  weights of the best epoch (validation macro-F1)
    model/                 final model (best weights) + processor, loadable with AutoModel / AutoProcessor
    metrics.json           test metrics of the best model, training history
    plots/                 confusion matrix, ROC/PR curves, training curves
"""

import json
import math
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
import yaml
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch.utils.data import DataLoader, Dataset, Sampler
from transformers import ASTConfig, HfArgumentParser, ViTConfig, get_scheduler

from .configuration_avemotion import AVEmotionConfig
from .modeling_avemotion import AVEmotionForAudioVisualClassification
from .processing_avemotion import AVEmotionProcessor


@dataclass
class ModelArguments:
    """Which model to build. With `vision_model`/`audio_model` (checkpoint names or folders) the encoders load
    pretrained weights; without them they are built from the size fields below with random weights."""

    fusion_type: str = "cross_attention"
    vision_model: str | None = None
    audio_model: str | None = None
    image_size: int = 224
    patch_size: int = 16
    vision_hidden_size: int = 768
    vision_layers: int = 12
    vision_heads: int = 12
    vision_pooling: str = "cls"
    num_mel_bins: int = 128
    audio_max_length: int = 1024
    audio_patch_size: int = 16
    audio_stride: int = 10
    audio_hidden_size: int = 768
    audio_layers: int = 12
    audio_heads: int = 12
    fusion_hidden_size: int = 256
    fusion_num_layers: int = 2
    fusion_num_heads: int = 4
    fusion_dropout: float = 0.1
    num_frames: int = 8
    modality_dropout: float = 0.0
    label_smoothing: float = 0.0


@dataclass
class DataArguments:
    dataset: str = field(default="", metadata={"help": "folder written by `avemotion prepare`"})
    fold: str = "fold_1"


@dataclass
class TrainArguments:
    output_dir: str = "runs/train"
    num_epochs: int = 10
    batch_size: int = 8
    eval_batch_size: int = 32
    learning_rate: float = 1e-4
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    lr_scheduler: str = "cosine"
    gradient_accumulation_steps: int = 1
    max_grad_norm: float = 1.0
    mixed_precision: str = field(default="no", metadata={"help": "no, bf16 or fp16 (where the device supports it)"})
    class_balanced: bool = True
    early_stopping_patience: int = 5
    freeze_backbones: bool = False
    cache_embeddings: bool = field(default=False, metadata={"help": "frozen backbones: encode each clip once"})
    seed: int = 0
    resume: bool = False
    stop_after_epoch: int | None = field(default=None, metadata={"help": "end this run after that epoch"})
    keep_checkpoints: int = 2
    log_with: str | None = field(default=None, metadata={"help": "Accelerate tracker, e.g. tensorboard"})
    num_workers: int = 0


ARGUMENT_CLASSES = (ModelArguments, DataArguments, TrainArguments)


def parse_training_args(argv: list[str]) -> tuple[ModelArguments, DataArguments, TrainArguments]:
    """`--config FILE.yaml` gives defaults (flat keys of the three dataclasses), other flags override them."""
    parser = HfArgumentParser(ARGUMENT_CLASSES)
    parser.add_argument("--config", default=None, help="YAML file with defaults")
    known, _ = parser.parse_known_args(argv)
    if known.config:
        defaults = load_yaml_config(known.config)
        valid = {f.name for cls in ARGUMENT_CLASSES for f in fields(cls)}
        unknown = sorted(set(defaults) - valid)
        if unknown:
            raise ValueError(f"{known.config}: unknown setting(s) {', '.join(unknown)}")
        parser.set_defaults(**defaults)
    *parsed, _rest = parser.parse_args_into_dataclasses(args=argv)
    return tuple(parsed)


def load_yaml_config(path) -> dict:
    try:
        with open(path) as f:
            data = yaml.safe_load(f) or {}
    except FileNotFoundError:
        raise ValueError(f"config file not found: {path}") from None
    except yaml.YAMLError as e:
        raise ValueError(f"{path} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of setting: value")
    return data


def build_model(model_args: ModelArguments, id2label: dict[int, str], class_weights=None, freeze=False):
    """Model from pretrained encoders (`from_backbones`) or from the size fields (random init)."""
    fusion = dict(fusion_type=model_args.fusion_type, fusion_hidden_size=model_args.fusion_hidden_size,
                  fusion_num_layers=model_args.fusion_num_layers, fusion_num_heads=model_args.fusion_num_heads,
                  fusion_dropout=model_args.fusion_dropout, num_frames=model_args.num_frames,
                  vision_pooling=model_args.vision_pooling,
                  modality_dropout=model_args.modality_dropout, label_smoothing=model_args.label_smoothing,
                  id2label=id2label, label2id={v: k for k, v in id2label.items()}, class_weights=class_weights)
    if model_args.vision_model or model_args.audio_model:
        return AVEmotionForAudioVisualClassification.from_backbones(
            vision=model_args.vision_model, audio=model_args.audio_model, freeze_backbones=freeze,
            audio_max_length=model_args.audio_max_length, **fusion)
    vision = ViTConfig(image_size=model_args.image_size, patch_size=model_args.patch_size,
                       hidden_size=model_args.vision_hidden_size, num_hidden_layers=model_args.vision_layers,
                       num_attention_heads=model_args.vision_heads,
                       intermediate_size=4 * model_args.vision_hidden_size)
    audio = ASTConfig(num_mel_bins=model_args.num_mel_bins, max_length=model_args.audio_max_length,
                      patch_size=model_args.audio_patch_size, frequency_stride=model_args.audio_stride,
                      time_stride=model_args.audio_stride, hidden_size=model_args.audio_hidden_size,
                      num_hidden_layers=model_args.audio_layers, num_attention_heads=model_args.audio_heads,
                      intermediate_size=4 * model_args.audio_hidden_size)
    model = AVEmotionForAudioVisualClassification(AVEmotionConfig(vision_config=vision, audio_config=audio, **fusion))
    if freeze:
        model.freeze_backbones()
    return model


def build_processor(model_args: ModelArguments) -> AVEmotionProcessor:
    """Processor matching the model's frame size, mel bins and spectrogram length."""
    return AVEmotionProcessor.from_sizes(image_size=model_args.image_size, num_mel_bins=model_args.num_mel_bins,
                                         max_length=model_args.audio_max_length, num_frames=model_args.num_frames)


class ClipFeatures(Dataset):
    """Model inputs of every clip of a prepared split, computed once.

    Each item: frames uint8 [T,3,S,S], video_mask [T], input_values float [F,M], audio_mask [], labels [].
    Frames stay uint8 (a quarter of the memory); `collate` rescales and normalises the batch.
    """

    def __init__(self, split, processor: AVEmotionProcessor, num_frames: int):
        self.items = []
        split = split.with_format("numpy")
        for row in split:
            frames = torch.from_numpy(np.asarray(row["frames"], dtype=np.uint8)[:num_frames]).permute(0, 3, 1, 2)
            has_audio = bool(row["has_audio"]) and len(row["audio"]) > 0
            self.items.append(dict(
                frames=frames,
                video_mask=torch.from_numpy(np.asarray(row["video_mask"], dtype=bool)[:num_frames]),
                input_values=processor.audio_features(row["audio"] if has_audio else None),
                audio_mask=torch.tensor(has_audio),
                labels=torch.tensor(int(row["label"])),
            ))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]


class EpochSeededSampler(Sampler):
    """Shuffles with a generator seeded by (seed, epoch): a resumed run sees the same order as an
    uninterrupted one. Accelerate calls `set_epoch` through its prepared DataLoader."""

    def __init__(self, size: int, seed: int):
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int):
        self.epoch = epoch

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 1000 + self.epoch)
        return iter(torch.randperm(self.size, generator=generator).tolist())

    def __len__(self):
        return self.size


def make_collate(processor: AVEmotionProcessor):
    def collate(items):
        batch = {key: torch.stack([item[key] for item in items]) for key in items[0]}
        if "frames" in batch:
            batch["pixel_values"] = processor.normalize_frames(batch.pop("frames"))
        return batch
    return collate


@torch.no_grad()
def cache_encoder_outputs(model, features: ClipFeatures, processor, batch_size=16) -> Dataset:
    """Frozen-backbone mode: run both encoders once per clip and keep their outputs
    (frame_embeds [T,Dv], audio_states [2+P,Da]) in place of the raw inputs."""
    core = model.avemotion
    was_training = core.training
    core.eval()
    collate = make_collate(processor)
    cached = []
    for start in range(0, len(features), batch_size):
        items = [features[i] for i in range(start, min(start + batch_size, len(features)))]
        batch = collate(items)
        video_mask, frame_mask = core._normalise_masks(batch["pixel_values"], batch["input_values"],
                                                       batch["video_mask"], batch["audio_mask"], None, None)
        frame_embeds = core.embed_frames(batch["pixel_values"], video_mask) if core.config.uses_video else None
        audio_states = core.embed_audio(batch["input_values"], frame_mask) if core.config.uses_audio else None
        for i, item in enumerate(items):
            entry = dict(video_mask=item["video_mask"], audio_mask=item["audio_mask"], labels=item["labels"])
            if frame_embeds is not None:
                entry["frame_embeds"] = frame_embeds[i]
            if audio_states is not None:
                entry["audio_states"] = audio_states[i]
            cached.append(entry)
    core.train(was_training)
    return cached


def model_inputs(model, batch):
    """Only the inputs the model's fusion type uses (audio_only never sees frames, and so on)."""
    config = model.config
    skip = set()
    if not config.uses_video:
        skip |= {"pixel_values", "frame_embeds", "video_mask"}
    if not config.uses_audio:
        skip |= {"input_values", "audio_states", "audio_mask"}
    return {k: v for k, v in batch.items() if k not in skip}


@torch.no_grad()
def predict(model, loader, accelerator):
    """Returns (probabilities [N,K] numpy, labels [N] numpy) gathered from all processes."""
    model.eval()
    probs, labels = [], []
    for batch in loader:
        target = batch.pop("labels")
        logits = model(**model_inputs(accelerator.unwrap_model(model), batch)).logits
        logits, target = accelerator.gather_for_metrics((logits, target))
        probs.append(torch.softmax(logits.float(), -1).cpu())
        labels.append(target.cpu())
    model.train()
    return torch.cat(probs).numpy(), torch.cat(labels).numpy()


def class_balanced_weights(labels: np.ndarray, num_labels: int) -> list[float]:
    """Inverse-frequency weights N / (K * n_c), normalised to mean 1 over present classes; absent classes 0."""
    counts = np.bincount(labels, minlength=num_labels).astype(float)
    weights = np.where(counts > 0, counts.sum() / (num_labels * np.maximum(counts, 1)), 0.0)
    present = counts > 0
    weights[present] /= weights[present].mean()
    return weights.round(6).tolist()


def atomic_replace_dir(tmp: Path, final: Path):
    """Rename a finished temporary folder into place. An older folder of that name is renamed aside first and
    deleted after, so ``final`` is never a half-deleted folder (at worst briefly absent)."""
    old = final.with_name(f".{final.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def latest_checkpoint(checkpoint_dir: Path) -> Path | None:
    done = [p for p in checkpoint_dir.glob("epoch_*") if (p / "trainer_state.json").exists()]
    return max(done, key=lambda p: int(p.name.split("_")[1])) if done else None


def train(model_args: ModelArguments, data_args: DataArguments, train_args: TrainArguments) -> dict:
    """Train, early-stop on validation macro-F1, evaluate the best model on the test split. Returns the metrics."""
    from .evaluation import load_metric, plot_confusion_matrix, plot_roc_pr, plot_training_curves
    from .prepare import load_prepared

    if not data_args.dataset:
        raise ValueError("no dataset given: set `dataset:` in the config or pass --dataset FOLDER")
    if train_args.cache_embeddings and not train_args.freeze_backbones:
        raise ValueError("cache_embeddings needs freeze_backbones: true (cached encoder outputs cannot learn)")
    output_dir = Path(train_args.output_dir)
    checkpoint_dir = output_dir / "checkpoints"
    accelerator = Accelerator(gradient_accumulation_steps=train_args.gradient_accumulation_steps,
                              mixed_precision=train_args.mixed_precision, log_with=train_args.log_with,
                              project_dir=str(output_dir))
    set_seed(train_args.seed)
    splits = load_prepared(data_args.dataset, fold=data_args.fold)
    label_names = splits["train"].features["label"].names
    id2label = dict(enumerate(label_names))
    train_labels = np.asarray(splits["train"]["label"])
    weights = class_balanced_weights(train_labels, len(label_names)) if train_args.class_balanced else None
    model = build_model(model_args, id2label, weights, freeze=train_args.freeze_backbones)
    processor = build_processor(model_args)

    features = {name: ClipFeatures(splits[name], processor, model_args.num_frames) for name in splits}
    if train_args.cache_embeddings:
        features = {name: cache_encoder_outputs(model, f, processor) for name, f in features.items()}
    collate = make_collate(processor)
    sampler = EpochSeededSampler(len(features["train"]), train_args.seed)
    train_loader = DataLoader(features["train"], batch_size=train_args.batch_size, sampler=sampler,
                              collate_fn=collate, num_workers=train_args.num_workers)
    eval_loaders = {name: DataLoader(features[name], batch_size=train_args.eval_batch_size, collate_fn=collate)
                    for name in ("validation", "test")}
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=train_args.learning_rate, weight_decay=train_args.weight_decay)
    steps_per_epoch = math.ceil(len(train_loader) / accelerator.num_processes / train_args.gradient_accumulation_steps)
    total_steps = max(1, steps_per_epoch * train_args.num_epochs)
    scheduler = get_scheduler(train_args.lr_scheduler, optimizer,
                              num_warmup_steps=int(train_args.warmup_ratio * total_steps),
                              num_training_steps=total_steps)
    model, optimizer, train_loader, scheduler, eval_loaders["validation"], eval_loaders["test"] = accelerator.prepare(
        model, optimizer, train_loader, scheduler, eval_loaders["validation"], eval_loaders["test"])
    metric = load_metric()

    state = dict(epoch=0, best_macro_f1=-1.0, best_epoch=0, epochs_without_improvement=0, history=[])
    if train_args.resume and (last := latest_checkpoint(checkpoint_dir)) is not None:
        accelerator.load_state(str(last))
        state = json.loads((last / "trainer_state.json").read_text())
        if accelerator.is_main_process:
            recover_best(output_dir, state)
        accelerator.wait_for_everyone()
        accelerator.print(f"resumed from {last} (epoch {state['epoch']})")
    elif train_args.resume:
        accelerator.print(f"--resume: no checkpoint in {checkpoint_dir}, starting from scratch")
    if train_args.log_with:
        accelerator.init_trackers("avemotion", config={**asdict(model_args), **asdict(train_args)})

    model.train()
    for epoch in range(state["epoch"] + 1, train_args.num_epochs + 1):
        if state["epochs_without_improvement"] >= train_args.early_stopping_patience:
            break
        train_loader.set_epoch(epoch)
        started, losses = time.perf_counter(), []
        for batch in train_loader:
            with accelerator.accumulate(model):
                loss = model(**model_inputs(accelerator.unwrap_model(model), batch)).loss
                accelerator.backward(loss)
                if accelerator.sync_gradients and train_args.max_grad_norm:
                    accelerator.clip_grad_norm_(trainable, train_args.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            losses.append(accelerator.gather(loss.detach()[None]).mean().item())
        probs, labels = predict(model, eval_loaders["validation"], accelerator)
        val = metric.compute(predictions=probs.argmax(-1), references=labels, labels=list(range(len(label_names))))
        record = dict(epoch=epoch, train_loss=float(np.mean(losses)), val_accuracy=val["accuracy"],
                      val_macro_f1=val["macro_f1"], seconds=round(time.perf_counter() - started, 3))
        state["history"].append(record)
        state["epoch"] = epoch
        # ties go to the later epoch: with a small validation set, equal scores are common early on
        improved = val["macro_f1"] >= state["best_macro_f1"]
        if improved:
            state.update(best_macro_f1=val["macro_f1"], best_epoch=epoch, epochs_without_improvement=0)
        else:
            state["epochs_without_improvement"] += 1
        accelerator.print(f"epoch {epoch}: loss {record['train_loss']:.4f}  val acc {val['accuracy']:.3f}  "
                          f"val macro-F1 {val['macro_f1']:.3f}  ({record['seconds']:.1f}s)")
        if train_args.log_with:
            accelerator.log(record, step=epoch)
        save_checkpoint(accelerator, model, checkpoint_dir, output_dir / "best" if improved else None, state,
                        train_args.keep_checkpoints)
        if train_args.stop_after_epoch is not None and epoch >= train_args.stop_after_epoch:
            accelerator.print(f"stopping after epoch {epoch} as asked; continue with --resume")
            accelerator.end_training()
            return dict(stopped_at_epoch=epoch, history=state["history"])

    # best weights -> test metrics, final model folder, plots
    unwrapped = accelerator.unwrap_model(model)
    best = AVEmotionForAudioVisualClassification.from_pretrained(output_dir / "best")
    unwrapped.load_state_dict(best.state_dict())
    probs, labels = predict(model, eval_loaders["test"], accelerator)
    results = dict(metric.compute(predictions=probs.argmax(-1), references=labels, prediction_scores=probs,
                                  labels=list(range(len(label_names))), label_names=label_names))
    results.update(best_epoch=state["best_epoch"], best_val_macro_f1=state["best_macro_f1"],
                   history=state["history"], fold=data_args.fold, dataset=data_args.dataset,
                   fusion_type=model_args.fusion_type, num_test_clips=int(len(labels)))
    if accelerator.is_main_process:
        tmp = output_dir / "model.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        unwrapped.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        atomic_replace_dir(tmp, output_dir / "model")
        plots = output_dir / "plots"
        plots.mkdir(parents=True, exist_ok=True)
        results["plots"] = [str(p) for p in (
            plot_confusion_matrix(results["confusion_matrix"], label_names, plots / "confusion_matrix.png"),
            plot_roc_pr(labels, probs, label_names, plots / "roc_pr.png"),
            plot_training_curves(state["history"], plots / "training_curves.png"),
        )]
        write_json_atomic(output_dir / "metrics.json", results)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return results


def save_checkpoint(accelerator, model, checkpoint_dir: Path, best_dir: Path | None, state: dict, keep: int):
    """Full training state of this epoch, and the best weights when they improved. The commit point is the
    rename of ``.tmp_epoch_N`` to ``epoch_N``: improved weights are written to ``best.tmp`` before it and moved
    to ``best`` after it (`recover_best` finishes or drops that move after a crash), so a crash leaves the
    previous checkpoint and the best weights it refers to intact."""
    final = checkpoint_dir / f"epoch_{state['epoch']}"
    tmp = checkpoint_dir / f".tmp_epoch_{state['epoch']}"
    best_tmp = None if best_dir is None else best_dir.with_name(best_dir.name + ".tmp")
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        if best_tmp is not None:
            shutil.rmtree(best_tmp, ignore_errors=True)
            accelerator.unwrap_model(model).save_pretrained(best_tmp)
            (best_tmp / "best_epoch.json").write_text(json.dumps({"epoch": state["epoch"]}))
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    if accelerator.is_main_process:
        (tmp / "trainer_state.json").write_text(json.dumps(state, indent=2))
        atomic_replace_dir(tmp, final)  # commit
        if best_tmp is not None:
            atomic_replace_dir(best_tmp, best_dir)
        done = sorted((p for p in checkpoint_dir.glob("epoch_*")), key=lambda p: int(p.name.split("_")[1]))
        for old in done[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def recover_best(output_dir: Path, state: dict):
    """After a crash between a checkpoint's commit and the move of its best weights: finish the move when
    ``best.tmp`` holds the committed best epoch, else drop it (it belongs to an epoch that was not committed)."""
    best, best_tmp = output_dir / "best", output_dir / "best.tmp"
    if not best_tmp.is_dir():
        return
    try:
        epoch = json.loads((best_tmp / "best_epoch.json").read_text())["epoch"]
    except (OSError, ValueError, KeyError):
        epoch = None
    if epoch == state.get("best_epoch") and (best_tmp / "model.safetensors").is_file():
        atomic_replace_dir(best_tmp, best)
    else:
        shutil.rmtree(best_tmp, ignore_errors=True)


def write_json_atomic(path: Path, data):
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=float))
    os.replace(tmp, path)


def main(argv=None):
    model_args, data_args, train_args = parse_training_args(sys.argv[1:] if argv is None else argv)
    return train(model_args, data_args, train_args)


if __name__ == "__main__":  # `accelerate launch -m hf_avemotion.training --config ...`
    main()
