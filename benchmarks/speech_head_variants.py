"""The speech head's recipe against variants of it, on the speech model's own protocols (RAVDESS 8 classes, the 5
subject-wise folds of Luna-Jimenez et al., fixed recipe, no epoch selection; EmoDB cross-corpus, trained without
EmoDB, 7-class basic view): the comparison in docs/speech_model.md.

    python benchmarks/speech_head_variants.py [--backbone whisper-base] [--out runs/speech/head_variants.json]

Uses (and builds when absent) the encoder cache of `avemotion speech` (runs/speech/cache_<backbone>). The shipped
recipe was chosen on a quicker comparison over these same folds, so its row is a slightly optimistic estimate; the
spread across variants shows how much that choice can matter. Prints a markdown table and writes the JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hf_avemotion import pretrained_path  # noqa: E402
from hf_avemotion.corpora import default_corpus_root  # noqa: E402
from hf_avemotion.speech_training import (SpeechRecipe, held_out_corpus, ravdess_cross_validation,  # noqa: E402
                                          statistics_cache)

EXTRA = ("tess", "emodb")
ALL = (range(7), True, True)  # layers, mean, std
VARIANTS = {  # name -> (recipe changes, corpora added to every RAVDESS fold's training data, statistics kept)
    "shipped: all 7 layers' mean + std, linear, dropout 0.2, 30 epochs, lr 2e-3, wd 0.01": ({}, EXTRA, ALL),
    "the same, RAVDESS folds trained on RAVDESS only": ({}, (), ALL),
    "label smoothing 0.1": ({"label_smoothing": 0.1}, EXTRA, ALL),
    "+ mixup (alpha 0.2)": ({"mixup_alpha": 0.2}, EXTRA, ALL),
    "+ Gaussian noise (0.3 sd)": ({"noise": 0.3}, EXTRA, ALL),
    "weight decay 0.1, dropout 0.5": ({"weight_decay": 0.1, "dropout": 0.5}, EXTRA, ALL),
    "15 epochs": ({"epochs": 15}, EXTRA, ALL),
    "means only (no std)": ({}, EXTRA, (range(7), True, False)),
    "layers 2-5 only": ({}, EXTRA, (range(2, 6), True, True)),
}


def keep_statistics(statistics: torch.Tensor, layers, mean: bool, std: bool) -> torch.Tensor:
    """[n, L+1, 2D] with everything but the kept layers / halves set to 0 (constant: standardised to 0)."""
    width = statistics.shape[-1] // 2
    kept = torch.zeros_like(statistics)
    for layer in layers:
        if mean:
            kept[:, layer, :width] = statistics[:, layer, :width]
        if std:
            kept[:, layer, width:] = statistics[:, layer, width:]
    return kept


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default=None)
    parser.add_argument("--backbone", default="whisper-base", choices=("whisper-base", "whisper-tiny.en"))
    parser.add_argument("--out", default=str(REPO / "runs" / "speech" / "head_variants.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # small tensors: one thread is fastest (speech_training)
    folder = pretrained_path(args.backbone)
    cache = statistics_cache(Path(args.corpus) if args.corpus else default_corpus_root(), folder,
                             REPO / "runs" / "speech" / f"cache_{folder.name}")
    full, rows, quiet = cache.statistics, {}, (lambda message: None)
    emodb = {s for s in cache.columns["speaker"] if s.startswith("emodb:")}
    for name, (changes, extra, kept) in VARIANTS.items():
        started = time.time()
        recipe = dataclasses.replace(SpeechRecipe(), **changes)
        cache.statistics = keep_statistics(full, *kept)
        result = ravdess_cross_validation(cache, folder, recipe, extra_corpora=extra, log=quiet)
        rows[name] = {k: result[k] for k in ("accuracy_mean", "accuracy_std", "macro_f1_mean", "uar_mean")}
        cross = held_out_corpus(cache, folder, recipe, test_speakers=emodb, train_corpora=("ravdess", "tess"),
                                basic_view=True, log=quiet)
        rows[name] |= {"emodb_accuracy": cross["accuracy"], "emodb_macro_f1": cross["macro_f1"],
                       "seconds": round(time.time() - started, 1)}
        print(f"{name}: RAVDESS {result['accuracy_mean']:.3f} ± {result['accuracy_std']:.3f}, EmoDB "
              f"{cross['accuracy']:.3f}", file=sys.stderr, flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"backbone": args.backbone, "variants": rows}, indent=2) + "\n")
    print(f"| {args.backbone}: variant | RAVDESS acc (5 folds) | macro-F1 | UAR | EmoDB cross-corpus acc | macro-F1 |\n"
          "|---|---:|---:|---:|---:|---:|")
    for name, r in rows.items():
        print(f"| {name} | {r['accuracy_mean']:.3f} ± {r['accuracy_std']:.3f} | {r['macro_f1_mean']:.3f} | "
              f"{r['uar_mean']:.3f} | {r['emodb_accuracy']:.3f} | {r['emodb_macro_f1']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
