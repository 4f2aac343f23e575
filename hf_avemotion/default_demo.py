"""`make demo` / `avemotion demo`: the package's default model on real clips.

1. assemble the default model from the registry backbones and the shipped heads (`pretrained_path`; once);
2. run ``pipeline("audio-visual-emotion-recognition")`` (no model argument: the default) on the bundled example
   clips (``demo/examples``, see its NOTICE.md), printing the prediction, what the face and the voice each say, the
   true label and a timeline;
3. when ``../shared`` sits beside the checkout: every real item there, each system's answer and a summary table
   (`av_training.evaluate_real`, the protocol of the model card).

The synthetic benchmark has its own command: `avemotion synthetic-demo`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLES_DIR = REPO_ROOT / "demo" / "examples"
SHARED_DIR = REPO_ROOT.parent / "shared"


def example_clips(folder: Path = EXAMPLES_DIR) -> list[tuple[Path, str]]:
    """The bundled examples with their true labels (``labels.json``), in a stable order."""
    labels = json.loads((folder / "labels.json").read_text())
    return [(folder / name, label) for name, label in sorted(labels.items())]


def _evidence(result: dict) -> str:
    modalities = result.get("modalities") or {}
    parts = []
    for name in ("face", "voice"):
        said = modalities.get(name)
        parts.append(f"{name}: {said['label']} {said['score']:.2f}" if said else f"{name}: none")
    return ", ".join(parts)


def timeline_line(segments: list[dict]) -> str:
    """Segments -> one line: ``0.0-2.0 s angry | 1.0-3.0 s angry | ...``."""
    return " | ".join(f"{s['start']:.1f}-{s['end']:.1f} s {s['label']}" for s in segments)


def run_examples(pipe, clips, log=print) -> list[dict]:
    """The pipeline on each clip (whole clip + a 2 s / 1 s timeline); prints a block per clip; returns rows."""
    rows = []
    for path, label in clips:
        start = time.perf_counter()
        result = pipe(str(path), return_metadata=True)
        seconds = time.perf_counter() - start
        segments = pipe(str(path), timeline=True, window_s=2.0, hop_s=1.0)["segments"]
        top = result["scores"][0]
        mark = "correct" if top["label"] == label else "wrong"
        log(f"{path.name}: predicted {top['label']} ({top['score']:.2f}), true {label} [{mark}]; {_evidence(result)}")
        log(f"  face found in {result['face_found_ratio']:.0%} of frames, audio: {'yes' if result['has_audio'] else 'no'},"
            f" {result['duration']:.1f} s clip, {seconds:.1f} s to answer")
        log(f"  timeline (2 s windows, 1 s hop): {timeline_line(segments)}")
        rows.append({"file": path.name, "label": label, "predicted": top["label"], "score": top["score"]})
    return rows


def run_shared(model_dir, log=print) -> dict | None:
    """Every real item in ``../shared`` (if present) through the default model: per-item answers and the table."""
    from transformers import AutoModel, AutoProcessor

    from .av_training import evaluate_real, real_items, results_table

    if not (SHARED_DIR / "corpus").is_dir():
        log(f"({SHARED_DIR} is absent: no table over the real items there)")
        return None
    items = real_items(SHARED_DIR / "corpus", SHARED_DIR / "data")
    model = AutoModel.from_pretrained(model_dir).eval()
    processor = AutoProcessor.from_pretrained(model_dir)
    real = evaluate_real(model, processor, items)
    log(f"\nevery real item in {SHARED_DIR.name}/ ({len(items)} items; the RAVDESS voices are in the speech "
        f"model's training data):")
    for r in real["items"]:
        log(f"  {r['source']:<15} {r['item']:<28} true {r['label']:<9} -> {r['cross_attention']:<9} "
            f"(face {r['face_only'] if r['has_face'] else '-':<9} voice {r['voice_only'] if r['has_voice'] else '-'})")
    log("\n" + results_table({"real": real}, fused_name=f"default model ({model.config.fusion_type} fusion)"))
    return real


def main(argv: list[str] | None = None) -> int:
    import warnings

    from transformers import pipeline
    from transformers.utils import logging as hf_logging

    from . import DEFAULT_MODEL, pretrained_path
    from .pipeline_avemotion import TASK

    hf_logging.set_verbosity_error()
    warnings.filterwarnings("ignore", category=UserWarning)
    start = time.perf_counter()
    model_dir = pretrained_path(DEFAULT_MODEL)
    print(f"[1/3] default model: {model_dir} ({time.perf_counter() - start:.1f} s)", flush=True)
    pipe = pipeline(TASK)  # no model argument: the package default
    print(f"[2/3] bundled examples ({EXAMPLES_DIR.relative_to(REPO_ROOT)}, licences in NOTICE.md)", flush=True)
    rows = run_examples(pipe, example_clips())
    correct = sum(r["label"] == r["predicted"] for r in rows)
    print(f"  {correct}/{len(rows)} examples correct", flush=True)
    print("[3/3] real items in ../shared", flush=True)
    run_shared(model_dir)
    print(f"done in {time.perf_counter() - start:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
