"""Inference benchmarks of hf_avemotion (used by run_benchmarks.py): end to end on a 4 s 720p clip with a stage
breakdown, the naive two-pipeline baseline, FLOP utilisation, AST at clip length vs 1024 frames, the
quantized CPU paths, and peak RSS (each measured in a child process started with ``--child``).

Model: default base backbones (ViT-B/16 224 px + AST-base 128 mel), random init (timing does not depend
on the weights), AST ``max_length`` 400 frames (4 s), 8 frames, cross-attention fusion.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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

CLIP_SECONDS = 4.0
AUDIO_MAX_LENGTH = 400  # 4 s of 10 ms frames
NUM_FRAMES = 8
PRECISIONS = ("fp32", "bf16", "int8")


# --------------------------------------------------------------------------- helpers


def quiet():
    """Silence library warnings and progress bars that would flood the benchmark log."""
    warnings.filterwarnings("ignore")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def median_time(fn, repeats: int, warmup: int = 1) -> tuple[float, list[float]]:
    """(median seconds, raw seconds) of ``repeats`` calls of ``fn`` after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    raw = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        raw.append(time.perf_counter() - start)
    return statistics.median(raw), [round(t, 4) for t in raw]


def matmul_flops_per_s(dtype=torch.float32, size: int = 2048) -> float:
    """FLOP/s of one size x size matmul (one call; callers take medians)."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    start = time.perf_counter()
    a @ b
    return 2 * size**3 / (time.perf_counter() - start)


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (MiB): VmHWM of /proc/self/status where there is one.
    Not ru_maxrss: Linux carries it over from the pre-exec copy of the parent, so a child started from a
    big benchmark process would report the parent's size."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss() -> bool:
    """Start a new peak-RSS window (Linux >= 4.0: writing 5 to /proc/self/clear_refs resets VmHWM).
    False where that is not possible (`peak_rss_mb` is then the whole process's peak)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def build_model(audio_max_length: int = AUDIO_MAX_LENGTH):
    """Base AVEmotion classifier (ViT-B/16 + AST-base, random init, eval mode) and its processor."""
    from transformers import ASTConfig, ViTConfig

    from hf_avemotion import AVEmotionConfig, AVEmotionForAudioVisualClassification
    from hf_avemotion.processing_avemotion import AVEmotionProcessor

    torch.manual_seed(0)
    config = AVEmotionConfig(vision_config=ViTConfig(), audio_config=ASTConfig(max_length=audio_max_length),
                             num_frames=NUM_FRAMES)
    model = AVEmotionForAudioVisualClassification(config).eval()
    processor = AVEmotionProcessor.from_sizes(max_length=audio_max_length, num_frames=NUM_FRAMES)
    return model, processor


def make_clip(folder: Path) -> tuple[Path, str]:
    """The 4 s 1280x720 H.264 + AAC clip of bench_media (RAVDESS face when ../shared/data has it)."""
    from bench_media import write_bench_clip

    path = folder / "bench_720p.mp4"
    if not path.exists():
        content = write_bench_clip(path, duration=CLIP_SECONDS)
        (folder / "bench_720p.txt").write_text(content)
    return path, (folder / "bench_720p.txt").read_text()


def model_inputs(features, dtype=torch.float32) -> dict:
    inputs = {k: features[k] for k in ("pixel_values", "input_values", "video_mask", "audio_mask")}
    for k in ("pixel_values", "input_values"):
        inputs[k] = inputs[k].to(dtype)
    return inputs


# --------------------------------------------------------------------------- end to end


def interleaved(runners: dict, repeats: int) -> dict:
    """Time every callable of ``runners`` once per round, ``repeats`` rounds after one warm-up round, so slow
    phases of a shared machine hit all of them alike. Returns {name: (median seconds, raw seconds)}."""
    for fn in runners.values():
        fn()
    raw = {name: [] for name in runners}
    for _ in range(repeats):
        for name, fn in runners.items():
            start = time.perf_counter()
            fn()
            raw[name].append(time.perf_counter() - start)
    return {name: (statistics.median(v), [round(t, 4) for t in v]) for name, v in raw.items()}


def bench_end_to_end(clip_path: Path, repeats: int) -> dict:
    """e2e_rtf (fp32, bf16, int8) with a stage breakdown, model speedups, FLOP utilisation and the naive
    baseline, all timed in interleaved rounds."""
    from torch.utils.flop_counter import FlopCounterMode

    from hf_avemotion.media import load_clip
    from hf_avemotion.pipeline_avemotion import load_pipeline
    from hf_avemotion.quantization import cpu_has_amx, cpu_has_bf16_units, quantize_model, resolve_method

    model, processor = build_model()
    pipe = load_pipeline(model, processor=processor)

    def decode():
        return load_clip(clip_path, num_frames=processor.num_frames, sampling_rate=processor.sampling_rate,
                         max_duration=processor.max_duration)

    clip = decode()
    frames = processor._sample_frames(clip)
    features = processor(videos=[clip], return_tensors="pt")
    models = {"fp32": model, **{p: quantize_model(model, p) for p in PRECISIONS if p != "fp32"}}
    matmul_rates = []

    def matmul():
        matmul_rates.append(max(matmul_flops_per_s() for _ in range(3)))

    def forward_fn(m, dtype):
        inputs = model_inputs(features, dtype)

        def forward():
            with torch.inference_mode():
                return m(**inputs).logits
        return forward

    def e2e_fn(m):
        def e2e():
            pipe.model = m
            return pipe(str(clip_path))
        return e2e

    naive_image, naive_audio = naive_pipelines(clip, frames)
    runners = {
        "decode": decode,
        "face_detection": lambda: processor.face_cropper(frames),
        "processor_total": lambda: processor(videos=[clip], return_tensors="pt"),
        "matmul": matmul,
    }
    for precision, m in models.items():
        runners[f"model_{precision}"] = forward_fn(m, torch.bfloat16 if precision == "bf16" else torch.float32)
        runners[f"e2e_{precision}"] = e2e_fn(m)
    runners["naive_image_pipeline"] = naive_image
    runners["naive_audio_pipeline"] = naive_audio
    timings = interleaved(runners, repeats)
    pipe.model = model
    med = {name: v[0] for name, v in timings.items()}

    results = {"clip_seconds": CLIP_SECONDS, "faces_found": int(features["face_mask"].sum()),
               "frames": int(features["video_mask"].sum()),
               "input_values_shape": list(features["input_values"].shape), "precisions": {}}
    for precision in PRECISIONS:
        e2e_s, model_s = med[f"e2e_{precision}"], med[f"model_{precision}"]
        results["precisions"][precision] = {
            "e2e_seconds": round(e2e_s, 4), "e2e_raw": timings[f"e2e_{precision}"][1],
            "e2e_rtf": round(e2e_s / CLIP_SECONDS, 4),
            "model_seconds": round(model_s, 4), "model_raw": timings[f"model_{precision}"][1],
        }
        print(f"  {precision}: e2e {e2e_s:.3f} s (RTF {e2e_s / CLIP_SECONDS:.3f}), model {model_s:.3f} s", flush=True)
    p = results["precisions"]
    results["stages_seconds"] = {
        "decode": round(med["decode"], 4),
        "face_detection": round(med["face_detection"], 4),
        "processor (image processor + log-mel, excluding detection)":
            round(med["processor_total"] - med["face_detection"], 4),
        "model fp32": p["fp32"]["model_seconds"],
        "model bf16": p["bf16"]["model_seconds"],
        "model int8": p["int8"]["model_seconds"],
    }
    results["stages_raw"] = {k: timings[k][1] for k in ("decode", "face_detection", "processor_total")}
    results["bf16_speedup"] = round(med["model_fp32"] / med["model_bf16"], 3)
    results["int8_speedup"] = round(med["model_fp32"] / med["model_int8"], 3)
    results["cpu_has_bf16_units"] = cpu_has_bf16_units()
    results["cpu_has_amx"] = cpu_has_amx()
    results["auto_quantization"] = resolve_method("auto")

    # FLOP utilisation: FLOPs of one fp32 forward (counted) / its median time / median 2048² matmul FLOP/s
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model(**model_inputs(features))
    flops = counter.get_total_flops()
    matmul = statistics.median(matmul_rates[1:])  # the warm-up round's rate is dropped like the others
    forward_s = med["model_fp32"]
    bf16_matmul = statistics.median(matmul_flops_per_s(torch.bfloat16) for _ in range(3))
    results["flops"] = {
        "model_forward_gflop": round(flops / 1e9, 2),
        "by_module_gflop": {name: round(sum(v.values()) / 1e9, 2) for name, v in counter.get_flop_counts().items()
                            if name and name.count(".") <= 2},
        "forward_seconds": round(forward_s, 4),
        "matmul_2048_fp32_gflops": round(matmul / 1e9, 1),
        "matmul_raw_gflops": [round(x / 1e9, 1) for x in matmul_rates[1:]],
        "achieved_gflops": round(flops / forward_s / 1e9, 1),
        "matmul_2048_bf16_gflops": round(bf16_matmul / 1e9, 1),
        "bf16_forward_gflops": round(flops / med["model_bf16"] / 1e9, 1),
    }
    results["flop_utilization"] = round(flops / forward_s / matmul, 3)
    print(f"  flops {flops / 1e9:.1f} GFLOP, forward {forward_s:.3f} s, matmul {matmul / 1e9:.0f} GFLOP/s "
          f"-> utilisation {results['flop_utilization']:.2f}", flush=True)

    naive_s = med["naive_image_pipeline"] + med["naive_audio_pipeline"]
    results["naive"] = {
        "seconds": round(naive_s, 4),
        "image_pipeline_seconds": round(med["naive_image_pipeline"], 4), "image_raw": timings["naive_image_pipeline"][1],
        "audio_pipeline_seconds": round(med["naive_audio_pipeline"], 4), "audio_raw": timings["naive_audio_pipeline"][1],
        "what": "transformers image-classification pipeline (ViT-B/16) on the same 8 frames + audio-classification "
                "pipeline (AST-base, 1024 frames) on the same 16 kHz audio; decoding not counted",
    }
    print(f"  naive: image pipeline {med['naive_image_pipeline']:.3f} s + audio pipeline "
          f"{med['naive_audio_pipeline']:.3f} s", flush=True)
    for precision, key in (("fp32", "vs_naive_ratio"), ("bf16", "vs_naive_ratio_bf16"), ("int8", "vs_naive_ratio_int8")):
        results[key] = round(p[precision]["e2e_seconds"] / naive_s, 3)
    return results


def naive_pipelines(clip, frames: np.ndarray):
    """What a user would otherwise assemble: transformers' image-classification pipeline (ViT-B/16) on the same
    frames + audio-classification pipeline (AST-base, default 1024 frames) on the same 16 kHz audio, as two
    callables. Decoding is not counted for them (it is in ours): the ratio favours the baseline."""
    from PIL import Image
    from transformers import (ASTConfig, ASTFeatureExtractor, ASTForAudioClassification, ViTConfig,
                              ViTForImageClassification, pipeline)

    from hf_avemotion.processing_avemotion import _default_image_processor

    torch.manual_seed(0)
    image_pipe = pipeline("image-classification", model=ViTForImageClassification(ViTConfig()).eval(),
                          image_processor=_default_image_processor())
    audio_pipe = pipeline("audio-classification", model=ASTForAudioClassification(ASTConfig()).eval(),
                          feature_extractor=ASTFeatureExtractor())
    assert audio_pipe.feature_extractor.max_length == 1024
    images = [Image.fromarray(f) for f in frames]
    audio = np.asarray(clip.audio, dtype=np.float32)
    return (lambda: image_pipe(images)), (lambda: audio_pipe(audio))


def bench_ast_short(repeats: int) -> dict:
    """AST-base encoder on 4 s of audio: clip-length max_length (400 frames) vs the checkpoint's 1024."""
    from transformers import ASTConfig, ASTFeatureExtractor, ASTModel

    rng = np.random.default_rng(0)
    wave = (0.1 * rng.standard_normal(int(16000 * CLIP_SECONDS))).astype(np.float32)
    out = {}
    for length in (AUDIO_MAX_LENGTH, 1024):
        torch.manual_seed(0)
        encoder = ASTModel(ASTConfig(max_length=length)).eval()
        features = ASTFeatureExtractor(max_length=length)(wave, sampling_rate=16000, return_tensors="pt")

        def run(encoder=encoder, features=features):
            with torch.inference_mode():
                encoder(**features)

        out[length] = median_time(run, repeats)
        del encoder
    short, full = out[AUDIO_MAX_LENGTH], out[1024]
    print(f"  AST {AUDIO_MAX_LENGTH} frames {short[0]:.3f} s, 1024 frames {full[0]:.3f} s", flush=True)
    return {"ast_short_speedup": round(full[0] / short[0], 3), "max_length": AUDIO_MAX_LENGTH,
            "seconds_short": round(short[0], 4), "raw_short": short[1],
            "seconds_1024": round(full[0], 4), "raw_1024": full[1]}


# --------------------------------------------------------------------------- peak RSS (child processes)


def child_inference(clip: str, precision: str) -> dict:
    """One pipeline call on ``clip`` after loading the base model: the process's peak RSS (loading included)
    and the peak during the call alone."""
    from hf_avemotion.pipeline_avemotion import load_pipeline
    from hf_avemotion.quantization import quantize_model

    model, processor = build_model()
    if precision != "fp32":
        model = quantize_model(model, precision, inplace=True)
    pipe = load_pipeline(model, processor=processor)
    loaded = peak_rss_mb()
    reset = reset_peak_rss()
    start = time.perf_counter()
    pipe(clip)
    seconds = time.perf_counter() - start
    call_peak = peak_rss_mb()
    return {"peak_rss_mb": round(max(loaded, call_peak), 1), "peak_after_load_mb": round(loaded, 1),
            "call_peak_rss_mb": round(call_peak, 1) if reset else None, "seconds": round(seconds, 3),
            "precision": precision}


def child_timeline(video: str, warmup_clip: str, precision: str, window_s: float) -> dict:
    """``timeline=True`` over ``video`` (windows decoded by iter_windows): peak RSS while the timeline runs
    (the peak window is reset after loading the model and one warm-up call on a 4 s clip, so the model's
    construction peak does not mask it) and its growth over the RSS at the start of the timeline."""
    from hf_avemotion.pipeline_avemotion import load_pipeline
    from hf_avemotion.quantization import quantize_model

    model, processor = build_model()
    if precision != "fp32":
        model = quantize_model(model, precision, inplace=True)
    pipe = load_pipeline(model, processor=processor)
    pipe(warmup_clip)
    process_peak_before = peak_rss_mb()
    reset = reset_peak_rss()  # the model's construction peak would otherwise mask the timeline's
    baseline = peak_rss_mb()
    start = time.perf_counter()
    result = pipe(video, timeline=True, window_s=window_s)
    seconds = time.perf_counter() - start
    peak = peak_rss_mb()
    return {"peak_rss_mb": round(peak, 1), "rss_before_timeline_mb": round(baseline, 1),
            "growth_mb": round(peak - baseline, 1), "peak_window_reset": reset,
            "process_peak_before_timeline_mb": round(process_peak_before, 1),
            "segments": len(result["segments"]), "duration_s": round(result["duration"], 2),
            "seconds": round(seconds, 2), "precision": precision, "window_s": window_s}


def write_long_video(path: Path, seconds: float, size=(640, 360), fps: int = 25, sr: int = 16000) -> str:
    """A ``seconds`` long H.264 + AAC video: the RAVDESS clip's frames and audio looped (a moving synthetic
    face without ../shared/data), ``size`` px, ultrafast preset (written quickly; decoding is what we time)."""
    from fractions import Fraction

    import av
    from PIL import Image

    from bench_media import RAVDESS_CLIP, decode_audio, decode_frames

    w, h = size
    if RAVDESS_CLIP.exists():
        src = decode_frames(RAVDESS_CLIP)
        src = np.stack([np.asarray(Image.fromarray(f).resize((h * 4 // 3, h))) for f in src])
        audio = decode_audio(RAVDESS_CLIP, sr)
        content = "RAVDESS frames and audio looped"
    else:
        yy, xx = np.mgrid[0:h, 0:w]
        src = []
        for i in range(50):
            img = np.full((h, w, 3), 70, np.uint8)
            img[((xx - w / 2 - 5 * np.sin(i / 8)) / 60) ** 2 + ((yy - h / 2) / 80) ** 2 < 1] = (224, 172, 140)
            src.append(img[:, : h * 4 // 3])
        src = np.stack(src)
        t = np.arange(4 * sr) / sr
        audio = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
        content = "synthetic face and tone looped"
    canvas = np.full((len(src), h, w, 3), 60, np.uint8)
    x0 = (w - src.shape[2]) // 2
    canvas[:, :, x0: x0 + src.shape[2]] = src
    n = int(seconds * fps)
    out = av.open(str(path), "w")
    try:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.codec_context.options = {"preset": "ultrafast", "crf": "28"}
        aus = out.add_stream("aac", rate=sr)
        aus.codec_context.layout = "mono"
        for i in range(n):
            out.mux(vs.encode(av.VideoFrame.from_ndarray(canvas[i % len(canvas)], format="rgb24")))
        out.mux(vs.encode(None))
        total = int(seconds * sr)
        for start in range(0, total, 1024):
            idx = np.arange(start, min(start + 1024, total)) % len(audio)
            frame = av.AudioFrame.from_ndarray(audio[idx][None, :].astype(np.float32), format="flt", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = sr, start, Fraction(1, sr)
            out.mux(aus.encode(frame))
        out.mux(aus.encode(None))
    finally:
        out.close()
    return f"{seconds:.0f} s {w}x{h} {fps} fps H.264 + AAC, {content}"


def loop_video(source: Path, path: Path, times: int) -> None:
    """``source`` repeated ``times`` times into ``path`` by copying packets (no re-encoding)."""
    import av

    with av.open(str(source)) as src, av.open(str(path), "w") as out:
        streams = {s.index: out.add_stream_from_template(s) for s in src.streams if s.type in ("video", "audio")}
        packets = [p for p in src.demux(*[src.streams[i] for i in streams]) if p.dts is not None]
        first, last = {}, {}
        for p in packets:  # per stream, in its time base: first dts and end of the last packet
            first[p.stream.index] = min(first.get(p.stream.index, p.dts), p.dts)
            last[p.stream.index] = max(last.get(p.stream.index, p.dts), p.dts + (p.duration or 0))
        span = {i: last[i] - first[i] for i in first}
        for k in range(times):
            for p in packets:
                offset = k * span[p.stream.index]
                copy = av.Packet(bytes(p))
                copy.pts, copy.dts, copy.duration = p.pts + offset, p.dts + offset, p.duration
                copy.is_keyframe = p.is_keyframe
                copy.time_base = p.time_base
                copy.stream = streams[p.stream.index]
                out.mux(copy)


def run_child(args: list[str], threads: int) -> dict:
    """Run this file with ``--child ...`` in a fresh process; returns its JSON answer."""
    import subprocess

    cmd = [sys.executable, __file__, "--threads", str(threads), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_memory(folder: Path, clip_path: Path, threads: int, precision: str, window_s: float = 4.0,
                 minutes=(1, 10)) -> dict:
    """peak_rss_mb of one 4 s inference (fp32 and ``precision``) and of timelines over 1- and 10-minute videos."""
    out = {"inference": {}}
    for p in ("fp32", precision):
        out["inference"][p] = run_child(["--child", "inference", "--clip", str(clip_path), "--precision", p], threads)
        print(f"  inference {p}: peak RSS {out['inference'][p]['peak_rss_mb']:.0f} MB (during the call "
              f"{out['inference'][p]['call_peak_rss_mb']} MB)", flush=True)
    out["timeline"] = {}
    base = folder / "long_base.mp4"
    start = time.perf_counter()
    content = write_long_video(base, 60 * minutes[0])
    base_seconds = time.perf_counter() - start
    for m in minutes:
        video = folder / f"long_{m}min.mp4"
        start = time.perf_counter()
        loop_video(base, video, round(m / minutes[0]))
        written = time.perf_counter() - start + base_seconds
        content_m = content.replace(f"{60 * minutes[0]:.0f} s", f"{60 * m:.0f} s") + \
            f" ({round(m / minutes[0])} copies of the {60 * minutes[0]:.0f} s file, packets copied)"
        r = run_child(["--child", "timeline", "--clip", str(video), "--warmup-clip", str(clip_path),
                       "--precision", precision, "--window-s", str(window_s)], threads)
        r.update(video=content_m, write_seconds=round(written, 1), file_mb=round(video.stat().st_size / 2**20, 1))
        out["timeline"][f"{m}min"] = r
        video.unlink()
        print(f"  timeline {m} min: peak RSS {r['peak_rss_mb']:.0f} MB (growth {r['growth_mb']:.0f} MB), "
              f"{r['segments']} segments in {r['seconds']:.0f} s", flush=True)
    lo, hi = out["timeline"][f"{minutes[0]}min"], out["timeline"][f"{minutes[-1]}min"]
    out["timeline_10min_over_1min"] = round(hi["peak_rss_mb"] / lo["peak_rss_mb"], 3)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", choices=["inference", "timeline"], required=True)
    parser.add_argument("--clip", required=True)
    parser.add_argument("--warmup-clip")
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS)
    parser.add_argument("--window-s", type=float, default=4.0)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args(argv)
    quiet()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child == "inference":
        result = child_inference(args.clip, args.precision)
    else:
        result = child_timeline(args.clip, args.warmup_clip, args.precision, args.window_s)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
