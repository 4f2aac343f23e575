"""Training-side benchmarks of hf_avemotion (used by run_benchmarks.py): dataset preparation throughput, the
embedding cache of frozen-backbone training, and the accuracy of the quantized paths on the synthetic benchmark.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from bench_inference import NUM_FRAMES, build_model, median_time

ROOT = Path(__file__).resolve().parents[1]


def display_path(path: Path) -> str:
    """A path as results may record it: relative to the checkout, else ``<tmp>/NAME`` (results never name an
    absolute folder of the machine that made them)."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(Path("<tmp>", path.name))


DEMO_FOLDS = {"demo": {"test": ["10", "11", "12"], "validation": ["8", "9"]}}


# --------------------------------------------------------------------------- embedding cache


def bench_embedding_cache(num_clips: int = 8, batch_size: int = 4, repeats: int = 5, full_epochs: int = 1) -> dict:
    """Epoch time of frozen-backbone training that re-encodes every clip (ViT-B/16 on 8 frames + AST-base at 400
    frames per clip) / epoch time of head-only training on cached encoder outputs (`cache_encoder_outputs`)."""
    from hf_avemotion.training import cache_encoder_outputs, make_collate, model_inputs

    model, processor = build_model()
    model.freeze_backbones()
    rng = np.random.default_rng(0)
    s = processor.crop_size
    items = [dict(
        frames=torch.from_numpy(rng.integers(0, 256, (NUM_FRAMES, 3, s, s), dtype=np.uint8)),
        video_mask=torch.ones(NUM_FRAMES, dtype=torch.bool),
        input_values=torch.randn(processor.feature_extractor.max_length, processor.feature_extractor.num_mel_bins),
        audio_mask=torch.tensor(True),
        labels=torch.tensor(i % 8),
    ) for i in range(num_clips)]
    collate = make_collate(processor)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-4)

    def epoch(dataset):
        model.train()
        for start in range(0, len(dataset), batch_size):
            batch = collate([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])
            loss = model(**model_inputs(model, batch)).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()

    epoch(items[:1])  # warm-up: one step of one clip
    full_raw = []
    for _ in range(full_epochs):  # one by default: an epoch of full re-encoding is long
        start = time.perf_counter()
        epoch(items)
        full_raw.append(time.perf_counter() - start)
    start = time.perf_counter()
    cached = cache_encoder_outputs(model, items, processor, batch_size=batch_size)
    cache_seconds = time.perf_counter() - start
    cached_s, cached_raw = median_time(lambda: epoch(cached), max(5, repeats))
    full_s = statistics.median(full_raw)
    print(f"  epoch of {num_clips} clips: re-encoding {full_s:.2f} s, cached {cached_s * 1000:.1f} ms "
          f"(building the cache {cache_seconds:.2f} s)", flush=True)
    return {"embedding_cache_speedup": round(full_s / cached_s, 1), "num_clips": num_clips,
            "batch_size": batch_size, "epoch_full_seconds": round(full_s, 4),
            "epoch_full_raw": [round(t, 4) for t in full_raw], "epoch_cached_seconds": round(cached_s, 5),
            "epoch_cached_raw": cached_raw, "cache_build_seconds": round(cache_seconds, 3)}


# --------------------------------------------------------------------------- synthetic benchmark


def _existing_demo() -> tuple[Path, Path] | None:
    """(model folder, prepared data folder) of a finished `make demo` run, if there is one."""
    runs = ROOT / "runs" / "demo"
    for model in (runs / "model", runs / "cross_attention" / "model"):
        data = runs / "data"
        if (model / "config.json").exists() and (data / "folds.json").exists():
            return model, data
    return None


def bench_prepare(folder: Path) -> dict:
    """Generate the synthetic benchmark (288 clips) and prepare it with num_proc 1 and 2 -> clips/s."""
    from hf_avemotion.prepare import prepare_folder
    from hf_avemotion.synthetic import generate_synthetic_benchmark

    clips = folder / "synthetic"
    start = time.perf_counter()
    generate_synthetic_benchmark(clips, num_proc=2)
    generate_seconds = time.perf_counter() - start
    out = {"generate_seconds": round(generate_seconds, 2)}
    for num_proc in (1, 2):
        target = folder / f"prepared_{num_proc}"
        start = time.perf_counter()
        prepare_folder(clips, target, num_frames=4, image_size=64, num_proc=num_proc, folds=DEMO_FOLDS,
                       cache_dir=folder / f"cache_{num_proc}", overwrite=True)
        seconds = time.perf_counter() - start
        n = sum(1 for _ in clips.glob("Actor_*/*.mp4"))
        out[f"num_proc_{num_proc}"] = {"seconds": round(seconds, 3), "clips": n,
                                       "clips_per_s": round(n / seconds, 2)}
        print(f"  prepare num_proc={num_proc}: {n} clips in {seconds:.1f} s ({n / seconds:.1f} clips/s)", flush=True)
    out["data"] = display_path(folder / "prepared_2")
    return out


def train_demo_model(data: Path, output_dir: Path, num_epochs: int | None, threads: int) -> Path:
    """The demo model (configs/demo.yaml) trained on ``data`` (for at most ``num_epochs``; None: the config's);
    returns its model folder."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS=str(threads), TOKENIZERS_PARALLELISM="false")
    cmd = [sys.executable, "-m", "hf_avemotion.training", "--config", str(ROOT / "configs" / "demo.yaml"),
           "--dataset", str(data), "--output_dir", str(output_dir),
           "--num_frames", "4"]  # bench_prepare's clips have 4 frames (the demo's have 8)
    if num_epochs:
        cmd += ["--num_epochs", str(num_epochs)]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"training failed:\n{done.stderr[-3000:]}")
    return output_dir / "model"


@torch.no_grad()
def evaluate_precisions(model_dir: Path, data: Path, fold: str = "demo") -> dict:
    """Accuracy of the fp32, bf16 and int8 versions of a trained model on the test split (and on all clips)."""
    from hf_avemotion import AVEmotionForAudioVisualClassification
    from hf_avemotion.prepare import load_prepared
    from hf_avemotion.processing_avemotion import AVEmotionProcessor
    from hf_avemotion.quantization import quantize_model
    from hf_avemotion.training import ClipFeatures, make_collate, model_inputs

    model = AVEmotionForAudioVisualClassification.from_pretrained(model_dir).eval()
    processor = AVEmotionProcessor.from_pretrained(model_dir)
    splits = load_prepared(data, fold=fold)
    collate = make_collate(processor)
    batches = {name: collate([f[i] for i in range(len(f))])
               for name, f in ((n, ClipFeatures(splits[n], processor, model.config.num_frames)) for n in splits)}
    predictions = {}
    for precision in ("fp32", "bf16", "int8"):
        m = model if precision == "fp32" else quantize_model(model, precision)
        dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        predictions[precision] = {}
        for name, batch in batches.items():
            inputs = model_inputs(m, {k: v for k, v in batch.items() if k != "labels"})
            inputs = {k: v.to(dtype) if v.is_floating_point() else v for k, v in inputs.items()}
            predictions[precision][name] = m(**inputs).logits.float().argmax(-1).numpy()
    labels = {name: batch["labels"].numpy() for name, batch in batches.items()}
    out = {"model": display_path(model_dir), "test_clips": int(len(labels["test"])),
           "all_clips": int(sum(len(v) for v in labels.values()))}
    for precision, preds in predictions.items():
        correct_test = float((preds["test"] == labels["test"]).mean())
        all_pred = np.concatenate([preds[n] for n in labels])
        all_true = np.concatenate([labels[n] for n in labels])
        fp32_all = np.concatenate([predictions["fp32"][n] for n in labels])
        out[precision] = {"test_accuracy": round(100 * correct_test, 2),
                          "all_clips_accuracy": round(100 * float((all_pred == all_true).mean()), 2),
                          "agreement_with_fp32": round(100 * float((all_pred == fp32_all).mean()), 2)}
    for precision in ("bf16", "int8"):
        out[f"{precision}_accuracy_delta"] = round(out[precision]["test_accuracy"] - out["fp32"]["test_accuracy"], 2)
    print(f"  test accuracy fp32 {out['fp32']['test_accuracy']:.1f} %, bf16 {out['bf16']['test_accuracy']:.1f} %, "
          f"int8 {out['int8']['test_accuracy']:.1f} % ({out['test_clips']} clips)", flush=True)
    return out


def bench_synthetic(folder: Path, threads: int, num_epochs: int | None = None) -> dict:
    """prepare_clips_per_s, then the quantized paths' accuracy on the synthetic benchmark's test actors (the demo
    model of `make demo` when runs/demo has it, else one trained here for ``num_epochs``)."""
    out = {"prepare": bench_prepare(folder)}
    existing = _existing_demo()
    if existing is not None:
        model_dir, data = existing
        out["model_source"] = "runs/demo (make demo)"
    else:
        start = time.perf_counter()
        data = folder / "prepared_2"
        model_dir = train_demo_model(data, folder / "demo_run", num_epochs, threads)
        out["model_source"] = "configs/demo.yaml trained here" + (f", at most {num_epochs} epochs" if num_epochs else "")
        out["train_seconds"] = round(time.perf_counter() - start, 1)
        print(f"  trained the demo model in {out['train_seconds']:.0f} s", flush=True)
    out["accuracy"] = evaluate_precisions(model_dir, data)
    return out
