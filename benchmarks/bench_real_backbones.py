"""End-to-end CPU cost of the package's default model, and of the AV model on the real backbones vs the old
ViT-B/16 + AST-base design, in one run.

    python benchmarks/bench_real_backbones.py [--repeats 5] [--threads N] [--designs default,real,old]
                                              [--out runs/bench/real_backbones.json]

Models (8 face frames, cross-attention fusion, 4 s 1280x720 H.264 + AAC clip):
* default: the shipped default model (`pretrained_path("audio-visual")`: the face model's DINOv2-small at 112 px
  + the speech model's Whisper base, fusion head and both unimodal heads) with its own processor;
* real: DINOv2-small (112 px crops) + Whisper base encoder on the clip's 4 s (400 mel frames), from
  `make backbones`;
* old: ViT-B/16 (224 px) + AST-base at 400 frames (random init; the first wave's default shapes).
Each at fp32, bf16 and dynamic int8 (`hf_avemotion.quantization`); stages (decode, face detection, processor,
model) and the whole pipeline call are timed in interleaved rounds (medians), so ratios share the machine's noise.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from bench_inference import CLIP_SECONDS, build_model, interleaved, make_clip, model_inputs, quiet  # noqa: E402
from probe_backbones import machine  # noqa: E402


def build_real_model():
    """AV model on DINOv2-small + Whisper base (cross-attention head untrained: speed only) and its processor."""
    from hf_avemotion import AVEmotionForAudioVisualClassification, AVEmotionProcessor, pretrained_path

    vision, audio = str(pretrained_path("dinov2-small")), str(pretrained_path("whisper-base"))
    model = AVEmotionForAudioVisualClassification.from_backbones(
        vision=vision, audio=audio, vision_pooling="cls_mean", audio_layer_pooling="weighted").eval()
    processor = AVEmotionProcessor.from_backbones(vision=vision, audio=audio, image_size=112, audio_seconds=4)
    return model, processor


def build_default_model():
    """The package default and its processor, as `pipeline("audio-visual-emotion-recognition")` loads them."""
    from transformers import AutoModel, AutoProcessor

    from hf_avemotion import DEFAULT_MODEL, pretrained_path

    folder = pretrained_path(DEFAULT_MODEL)
    return AutoModel.from_pretrained(folder).eval(), AutoProcessor.from_pretrained(folder)


DESIGNS = {"default": build_default_model, "real": build_real_model,
           "old": lambda: build_model(audio_max_length=400)}


def bench(clip_path: Path, repeats: int, designs=tuple(DESIGNS)) -> dict:
    from hf_avemotion.media import load_clip
    from hf_avemotion.pipeline_avemotion import load_pipeline
    from hf_avemotion.quantization import quantize_model

    designs = {name: DESIGNS[name]() for name in designs}
    runners, features = {}, {}
    for design, (model, processor) in designs.items():
        pipe = load_pipeline(model, processor=processor)
        clip = load_clip(clip_path, num_frames=processor.num_frames)
        frames = processor._sample_frames(clip)
        features[design] = processor(videos=[clip], return_tensors="pt")
        runners[f"{design}_decode"] = lambda p=processor: load_clip(clip_path, num_frames=p.num_frames)
        runners[f"{design}_face_detection"] = lambda p=processor, f=frames: p.face_cropper(f)
        runners[f"{design}_processor"] = lambda p=processor, c=clip: p(videos=[c], return_tensors="pt")
        for precision in ("fp32", "bf16", "int8"):
            m = model if precision == "fp32" else quantize_model(model, precision)
            dtype = torch.bfloat16 if precision == "bf16" else torch.float32
            inputs = model_inputs(features[design], dtype)

            def forward(m=m, inputs=inputs):
                with torch.inference_mode():
                    return m(**inputs).logits

            def e2e(m=m, pipe=pipe):
                pipe.model = m
                return pipe(str(clip_path))
            runners[f"{design}_model_{precision}"] = forward
            runners[f"{design}_e2e_{precision}"] = e2e
    timings = interleaved(runners, repeats)
    med = {name: v[0] for name, v in timings.items()}
    results = {"clip_seconds": CLIP_SECONDS, "repeats": repeats, "designs": {}}
    for design, (model, _) in designs.items():
        f = features[design]
        results["designs"][design] = {
            "parameters_millions": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
            "pixel_values_shape": list(f["pixel_values"].shape), "input_values_shape": list(f["input_values"].shape),
            "faces_found": int(f["face_mask"].sum()),
            "stages_seconds": {stage: round(med[f"{design}_{stage}"], 4)
                               for stage in ("decode", "face_detection", "processor")},
            **{precision: {"model_seconds": round(med[f"{design}_model_{precision}"], 4),
                           "e2e_seconds": round(med[f"{design}_e2e_{precision}"], 4),
                           "e2e_rtf": round(med[f"{design}_e2e_{precision}"] / CLIP_SECONDS, 4)}
               for precision in ("fp32", "bf16", "int8")},
        }
    results["raw_seconds"] = {name: v[1] for name, v in timings.items()}
    return results


def table(results: dict) -> str:
    lines = ["| design | params | decode | face det. | processor | model fp32 | e2e RTF fp32 | e2e RTF bf16 | "
             "e2e RTF int8 |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    names = {"default": "package default (face model + speech model, fused)",
             "real": "DINOv2-S 112 px + Whisper base (real weights)", "old": "ViT-B/16 224 px + AST-base 400 fr."}
    for design, r in results["designs"].items():
        s = r["stages_seconds"]
        lines.append(f"| {names[design]} | {r['parameters_millions']:.1f} M | {s['decode']:.3f} s | "
                     f"{s['face_detection']:.3f} s | {s['processor'] - s['face_detection']:.3f} s | "
                     f"{r['fp32']['model_seconds']:.3f} s | {r['fp32']['e2e_rtf']:.3f} | {r['bf16']['e2e_rtf']:.3f} | "
                     f"{r['int8']['e2e_rtf']:.3f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--designs", default=",".join(DESIGNS), help="comma-separated: " + ", ".join(DESIGNS))
    parser.add_argument("--out", default=str(HERE.parent / "runs" / "bench" / "real_backbones.json"))
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    quiet()
    with tempfile.TemporaryDirectory() as folder:
        clip_path, content = make_clip(Path(folder))
        results = {"machine": machine(), "clip": content,
                   **bench(clip_path, args.repeats, tuple(args.designs.split(",")))}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
