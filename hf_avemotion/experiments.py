"""Experiments built on `training.train`: k-fold cross-validation, the fusion ablation, and the demo job.

Every number these write comes with its protocol (dataset, folds, backbones) so that a table in README or a
model card can say where it came from.
"""

import dataclasses
from pathlib import Path

import numpy as np

from .training import ModelArguments, train, write_json_atomic

SUMMARY_METRICS = ("accuracy", "macro_f1", "uar")


def backbone_description(model_args: ModelArguments) -> str:
    if model_args.vision_model or model_args.audio_model:
        return f"{model_args.vision_model or 'random ViT'} + {model_args.audio_model or 'random AST'}"
    return (f"ViT {model_args.vision_layers}x{model_args.vision_hidden_size} @ {model_args.image_size}px + "
            f"AST {model_args.audio_layers}x{model_args.audio_hidden_size} @ {model_args.num_mel_bins} mel, "
            "trained from scratch")


def cross_validate(model_args, data_args, train_args, folds=None) -> dict:
    """Train and test on every fold (or the given ones); mean and std over folds of each summary metric."""
    from .prepare import list_folds

    folds = folds or list_folds(data_args.dataset)
    per_fold = {}
    for fold in folds:
        fold_train = dataclasses.replace(train_args, output_dir=str(Path(train_args.output_dir) / fold))
        result = train(model_args, dataclasses.replace(data_args, fold=fold), fold_train)
        per_fold[fold] = {k: result[k] for k in SUMMARY_METRICS}
    summary = {k: dict(mean=float(np.mean([r[k] for r in per_fold.values()])),
                       std=float(np.std([r[k] for r in per_fold.values()]))) for k in SUMMARY_METRICS}
    report = dict(fusion_type=model_args.fusion_type, dataset=data_args.dataset, folds=list(folds),
                  backbones=backbone_description(model_args), per_fold=per_fold, summary=summary)
    Path(train_args.output_dir).mkdir(parents=True, exist_ok=True)
    write_json_atomic(Path(train_args.output_dir) / "cv_results.json", report)
    return report


def ablation(model_args, data_args, train_args, fusion_types, folds=None) -> tuple[dict, str]:
    """Cross-validate each fusion type with otherwise identical settings; returns results and a markdown table
    (like Table 1 of the papers: one row per fusion type, mean ± std over actor-independent folds)."""
    results = {}
    for fusion_type in fusion_types:
        results[fusion_type] = cross_validate(
            dataclasses.replace(model_args, fusion_type=fusion_type), data_args,
            dataclasses.replace(train_args, output_dir=str(Path(train_args.output_dir) / fusion_type)), folds)
    table = ablation_table(results)
    out = Path(train_args.output_dir)
    write_json_atomic(out / "ablation.json", results)
    (out / "ablation.md").write_text(table)
    return results, table


def ablation_table(results: dict) -> str:
    first = next(iter(results.values()))
    lines = [f"Dataset: `{first['dataset']}`; actor-independent folds: {', '.join(first['folds'])}; "
             f"backbones: {first['backbones']}. Mean ± std over folds.", "",
             "| fusion | accuracy | macro-F1 | UAR |", "|---|---:|---:|---:|"]
    for fusion_type, r in results.items():
        cells = [f"{r['summary'][k]['mean']:.3f} ± {r['summary'][k]['std']:.3f}" for k in SUMMARY_METRICS]
        lines.append(f"| {fusion_type} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def evaluate_model(model_dir, dataset, fold="fold_1", split="test", output_dir=None, batch_size=32) -> dict:
    """Metrics (the package's evaluate module) and plots of a saved model on one split of a prepared fold."""
    from accelerate import Accelerator
    from torch.utils.data import DataLoader

    from .evaluation import load_metric, plot_confusion_matrix, plot_roc_pr
    from .modeling_avemotion import AVEmotionForAudioVisualClassification
    from .prepare import load_prepared
    from .processing_avemotion import AVEmotionProcessor
    from .training import ClipFeatures, make_collate, predict

    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise ValueError(f"{model_dir} is not a saved model folder (no config.json)")
    model = AVEmotionForAudioVisualClassification.from_pretrained(model_dir, use_safetensors=True)
    processor = AVEmotionProcessor.from_pretrained(model_dir)
    part = load_prepared(dataset, fold=fold)[split]
    data_labels = part.features["label"].names
    label_names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    if data_labels != label_names:
        raise ValueError(f"the dataset's labels {data_labels} differ from the model's {label_names}")
    accelerator = Accelerator()
    loader = DataLoader(ClipFeatures(part, processor, model.config.num_frames), batch_size=batch_size,
                        collate_fn=make_collate(processor))
    model, loader = accelerator.prepare(model, loader)
    probs, labels = predict(model, loader, accelerator)
    results = dict(load_metric().compute(predictions=probs.argmax(-1), references=labels, prediction_scores=probs,
                                         labels=list(range(len(label_names))), label_names=label_names))
    results.update(model=str(model_dir), dataset=str(dataset), fold=fold, split=split, num_clips=int(len(labels)))
    out = Path(output_dir) if output_dir else model_dir.parent / f"eval_{fold}_{split}"
    out.mkdir(parents=True, exist_ok=True)
    results["plots"] = [str(plot_confusion_matrix(results["confusion_matrix"], label_names, out / "confusion_matrix.png")),
                        str(plot_roc_pr(labels, probs, label_names, out / "roc_pr.png"))]
    write_json_atomic(out / "metrics.json", results)
    return results
