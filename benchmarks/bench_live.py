"""Per-hop latency of live mode (hf_avemotion.live.LiveStream): real clips streamed hop by hop.

Every hop is timed from the window's assembly to its scores: face detection on the frames new to the window,
face crops + image processor + log-mel (the pipeline's processor), and the model forward. The clips from
``../shared/data`` (RAVDESS MP4 640x480, eNTERFACE'05 AVI 720x576) are played with ``speed=0`` (every hop is
predicted, none dropped), then one clip at real speed to count the stale hops dropped. The seed paper's budget
is 250 ms per hop.

    python benchmarks/bench_live.py [--model DIR | --default-architecture] [--threads 1] [--out runs/bench/live.json]

Model: ``--model DIR``, else the package default (``hf_avemotion.pretrained_path("audio-visual")``). While that
is not shipped, ``--default-architecture`` times the same architecture built from the shipped face and speech
models with an untrained fusion head (latency does not depend on the fusion weights; the labels are meaningless).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

SHARED_DATA = ROOT.parent / "shared" / "data"
BUDGET_MS = 250.0


def machine_info(threads: int) -> dict:
    """bench_media's machine record (CPU model and speed flags, cores, load: no paths, no host name) + torch."""
    from bench_media import machine_info as media_machine_info

    return {**media_machine_info(), "torch_threads": threads, "torch": torch.__version__}


def load(args):
    """(pipeline, description of the model)."""
    from hf_avemotion.pipeline_avemotion import load_pipeline

    if args.model:
        return load_pipeline(args.model), {"model": Path(args.model).name}
    from hf_avemotion import pretrained_path

    try:
        folder = pretrained_path("audio-visual")
        return load_pipeline(folder), {"model": "audio-visual (package default)"}
    except KeyError:
        if not args.default_architecture:
            sys.exit("error: the package default model 'audio-visual' is not available yet: pass --model DIR, or "
                     "--default-architecture to time its architecture with an untrained fusion head")
    from hf_avemotion.av_training import build_default_model, build_processor
    from hf_avemotion.pipeline_avemotion import AudioVisualEmotionPipeline

    face, speech = pretrained_path("face"), pretrained_path("speech")
    model, processor = build_default_model(face, speech), build_processor(face, speech)
    return AudioVisualEmotionPipeline(model=model, processor=processor), {
        "model": "audio-visual architecture: shipped face + speech models, fusion head untrained",
        "fusion_type": model.config.fusion_type}


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def summary(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 1), "p95": round(percentile(values, 95), 1),
            "max": round(max(values), 1), "n": len(values)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="model folder (default: the package default)")
    parser.add_argument("--default-architecture", action="store_true",
                        help="without a shipped default: its architecture from the face + speech models")
    parser.add_argument("--clips", nargs="*", default=None, help="media files (default: ../shared/data clips)")
    parser.add_argument("--window-s", type=float, default=4.0)
    parser.add_argument("--hop-s", type=float, default=0.5)
    parser.add_argument("--loops", type=int, default=3, help="play each clip this many times back to back (the "
                        "clips last 3-4 s; a longer stream gives steady-state hops)")
    parser.add_argument("--crops", default="per_frame", choices=("per_frame", "window"),
                        help="LiveStream crops: per_frame (default; frames detected and encoded once) or window "
                             "(exactly the offline crops: every hop encodes all its frames)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the machines have 2 cores)")
    parser.add_argument("--out", default=str(ROOT / "runs" / "bench" / "live.json"))
    args = parser.parse_args(argv)

    warnings.filterwarnings("ignore")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    torch.set_num_threads(args.threads)
    from hf_avemotion.live import LiveStream, play_file, stream_file

    clips = [Path(c) for c in args.clips] if args.clips else sorted(
        list((SHARED_DATA / "ravdess_av").glob("*.mp4")) + list((SHARED_DATA / "enterface05").glob("*.avi")))
    if not clips:
        sys.exit(f"error: no clips (give --clips, or put the shared data at {SHARED_DATA})")
    pipe, model_info = load(args)
    processor = pipe.processor
    info = {"machine": machine_info(torch.get_num_threads()), **model_info,
            "window_s": args.window_s, "hop_s": args.hop_s, "crops": args.crops, "num_frames": processor.num_frames,
            "crop_size": processor.crop_size, "audio_frames": processor.audio_frames, "clips": [], "note":
            "real clips from ../shared/data (1 RAVDESS, 6 eNTERFACE'05); per-hop wall time on a machine shared "
            "with other jobs (see loadavg); each clip is played --loops times back to back as one stream; the first "
            "hop of a stream detects and encodes every frame (cold) and is reported apart"}

    # warm-up (first calls allocate, load the face detector)
    warmup = LiveStream(pipe, window_s=args.window_s, hop_s=args.hop_s, crops=args.crops)
    list(stream_file(warmup, str(clips[0]), speed=0))
    warm, cold, parts, detections, encoded = [], [], {"window": [], "features": [], "model": []}, [], []
    for clip in clips:
        live = LiveStream(pipe, window_s=args.window_s, hop_s=args.hop_s, crops=args.crops)
        live.set_origin(0.0)
        items = [item for batch in play_file(str(clip), speed=0) for item in batch]
        length = max(item[-1] for item in items) + 0.04
        hops = []
        for loop in range(args.loops):  # the clip again and again, as one stream
            for item in items:
                live.push((*item[:-1], item[-1] + loop * length))
                if (prediction := live.poll()) is not None:
                    hops.append(prediction)
        hops += live.finish()
        info["clips"].append({"clip": clip.name, "hops": len(hops),
                              "latency_ms": [round(h.latency_ms, 1) for h in hops],
                              "labels": [h.label for h in hops], "flags": sorted({f for h in hops for f in h.flags})})
        cold.append(hops[0].latency_ms)
        for h in hops[1:]:
            warm.append(h.latency_ms)
            detections.append(h.detections)
            encoded.append(h.frames_encoded)
            for k in parts:
                parts[k].append(h.timings_ms[k])
    info["per_hop_ms"] = summary(warm)
    info["first_hop_ms"] = summary(cold)
    info["stages_median_ms"] = {k: round(statistics.median(v), 1) for k, v in parts.items()}
    info["detections_per_hop"] = round(float(np.mean(detections)), 2)
    info["frames_encoded_per_hop"] = round(float(np.mean(encoded)), 2)
    info["within_budget"] = info["per_hop_ms"]["median"] <= BUDGET_MS

    # one clip at real speed: are hops dropped?
    live = LiveStream(pipe, window_s=args.window_s, hop_s=args.hop_s, crops=args.crops)
    live.set_origin(0.0)
    answered, t0 = 0, time.monotonic()
    for batch in play_file(str(clips[0]), speed=1.0):
        for item in batch:
            live.push(item)
        answered += live.poll() is not None
    answered += len(live.finish())
    info["real_time"] = {"clip": clips[0].name, "answered": answered, "stale_dropped": live.skipped_total,
                         "wall_s": round(time.monotonic() - t0, 2)}

    print(f"live mode per-hop latency ({info['model']}; {args.window_s:g} s window, hop {args.hop_s:g} s, "
          f"{args.crops} crops, "
          f"{processor.num_frames} frames, {torch.get_num_threads()} torch threads, "
          f"load {info['machine']['loadavg_1min']})")
    print(f"{'':24}{'median':>9}{'p95':>9}{'max':>9}{'n':>5}")
    for name, key in (("per hop (steady)", "per_hop_ms"), ("first hop (cold)", "first_hop_ms")):
        s = info[key]
        print(f"{name:<24}{s['median']:>7.0f}ms{s['p95']:>7.0f}ms{s['max']:>7.0f}ms{s['n']:>5}")
    stages = info["stages_median_ms"]
    print(f"stages (median): window {stages['window']:.0f} ms, detection+crops+features {stages['features']:.0f} ms, "
          f"model {stages['model']:.0f} ms; per hop {info['detections_per_hop']} face detections, "
          f"{info['frames_encoded_per_hop']} frames encoded")
    rt = info["real_time"]
    print(f"real-time playback of {rt['clip']}: {rt['answered']} hops answered, {rt['stale_dropped']} stale dropped")
    print(f"budget {BUDGET_MS:.0f} ms per hop: {'met' if info['within_budget'] else 'NOT met'}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(info, indent=2) + "\n")
    print(f"wrote {out.resolve().relative_to(ROOT) if out.resolve().is_relative_to(ROOT) else out.name}")
    return info


if __name__ == "__main__":
    main()
