"""Mutation + random-bytes fuzz of the media loader: nothing but ``MediaError`` may escape, nothing may hang.

Seeds are small real files written with PyAV's encoders (MP4 H.264/AAC stereo and 5.1, faststart MP4, MOV,
MKV VP9/Opus, WebM VP8/Vorbis, AVI MPEG-4/PCM, FLV/MP3, WAV s16 and float 96 kHz 8-channel, MP3, FLAC,
Ogg/Opus, Y4M). Each iteration takes a seed (or
random bytes, or random bytes behind a container's magic number) and applies 1-3 mutations: bit flips,
random bytes, "interesting" integers (0, 0xFFFFFFFF, 0x7FFFFFFF, ...) written over header fields, header
overwrites, truncation, chunk duplication, chunk deletion, or a splice of two seeds. The mutated file is
decoded with ``load_clip(path, num_frames=4)`` (every 4th iteration with ``iter_windows`` instead) in a worker
process under a timeout and an address-space limit; the outcomes are counted:

* ``ok``       -- decoded into a well-formed clip (uint8 [4,H,W,3] frames, finite float32 audio in [-1, 1]);
* ``media_error`` -- a ``MediaError`` (the expected refusal of damaged data);
* ``uncaught`` -- any other exception, or a malformed clip;
* ``hang``     -- no answer within ``--timeout`` (the worker is killed and restarted);
* ``crash``    -- the worker died (e.g. a segfault in FFmpeg).

::

    python benchmarks/fuzz_media.py --iterations 3000 [--seed 0] [--workers 2] [--timeout 20] [--json OUT]

Exits 1 unless uncaught + hang + crash is 0. Failing inputs are copied to ``--keep DIR`` when given.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import select
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

import numpy as np
from line_worker import LineWorker

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

OUTCOMES = ("ok", "media_error", "uncaught", "hang", "crash")
INTERESTING = [b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff", b"\x80\x00\x00\x00",
               b"\x00\x00\x00\x01", b"\x00\x00\xff\xff", b"\xff\xff", b"\x00\x00", b"\x7f\xff"]
MAGICS = [b"\x00\x00\x00\x18ftypisom", b"\x1aE\xdf\xa3", b"FLV\x01\x05\x00\x00\x00\x09", b"OggS\x00\x02",
          b"RIFF\x00\x10\x00\x00AVI LIST", b"RIFF\x00\x10\x00\x00WAVEfmt ", b"ID3\x03\x00", b"fLaC",
          b"YUV4MPEG2 W64 H48 F25:1\n", b"\xff\xfb\x90\x00"]
MEMORY_LIMIT = 3 << 30  # bytes of address space per worker: runaway allocations become MemoryError


# ------------------------------------------------------------------------------------------------ seeds


def write_seeds(folder: Path) -> list[Path]:
    """Small valid files of every container the loader supports (~5-60 KB each)."""
    from media_factory import write_media

    folder.mkdir(parents=True, exist_ok=True)
    specs = {
        "h264_aac.mp4": dict(duration=0.6),
        "faststart.mp4": dict(duration=0.6, container_options={"movflags": "faststart"}),
        "mpeg4.mov": dict(duration=0.6, video_codec="mpeg4"),
        "vp9_opus.mkv": dict(duration=0.6, video_codec="libvpx-vp9", audio_codec="libopus", sample_rate=48000),
        "vp8_vorbis.webm": dict(duration=0.6, video_codec="libvpx", audio_codec="vorbis", sample_rate=44100,
                                channels=2),
        "mpeg4_pcm.avi": dict(duration=0.6, video_codec="mpeg4", audio_codec="pcm_s16le"),
        "flv_mp3.flv": dict(duration=0.6, video_codec="flv", audio_codec="libmp3lame"),
        "h264_vfr.mkv": dict(duration=0.6, audio_codec=None, vfr=True),
        "aac_51.mp4": dict(duration=0.5, channels=6, sample_rate=48000),
        "voice.wav": dict(duration=0.5, video_codec=None, audio_codec="pcm_s16le", channels=2),
        "float.wav": dict(duration=0.3, video_codec=None, audio_codec="pcm_f32le", sample_rate=96000, channels=8),
        "voice.mp3": dict(duration=0.5, video_codec=None, audio_codec="libmp3lame"),
        "voice.flac": dict(duration=0.5, video_codec=None, audio_codec="flac"),
        "voice.opus": dict(duration=0.5, video_codec=None, audio_codec="libopus", sample_rate=48000,
                           format="ogg"),
    }
    paths = []
    for name, kwargs in specs.items():
        path = folder / name
        if not path.exists():
            write_media(path, **kwargs)
        paths.append(path)
    y4m = folder / "raw.y4m"
    if not y4m.exists():
        frame = b"FRAME\n" + bytes([90]) * (16 * 12) + bytes([128]) * (2 * 8 * 6)
        y4m.write_bytes(b"YUV4MPEG2 W16 H12 F25:1 Ip A1:1 C420jpeg\n" + frame * 5)
    paths.append(y4m)
    return paths


# ------------------------------------------------------------------------------------------------ mutations


def _bit_flips(data: bytearray, rng) -> str:
    n = int(rng.integers(1, 50))
    for pos in rng.integers(0, len(data), size=n):
        data[pos] ^= 1 << int(rng.integers(0, 8))
    return f"flip{n}"


def _random_bytes(data: bytearray, rng) -> str:
    n = int(rng.integers(1, 64))
    pos = int(rng.integers(0, max(1, len(data) - n)))
    data[pos:pos + n] = rng.bytes(n)
    return f"rand{n}@{pos}"


def _interesting(data: bytearray, rng) -> str:
    """Overwrite likely header fields (sizes, counts, dimensions) with boundary values."""
    value = INTERESTING[int(rng.integers(0, len(INTERESTING)))]
    limit = min(len(data), 4096) if rng.random() < 0.7 else len(data)
    pos = int(rng.integers(0, max(1, limit - len(value))))
    data[pos:pos + len(value)] = value
    return f"int{value.hex()}@{pos}"


def _header(data: bytearray, rng) -> str:
    n = int(rng.integers(1, 32))
    pos = int(rng.integers(0, max(1, min(len(data), 512) - n)))
    fill = rng.choice([b"\x00", b"\xff", None])
    data[pos:pos + n] = rng.bytes(n) if fill is None else bytes(fill) * n
    return f"hdr{n}@{pos}"


def _truncate(data: bytearray, rng) -> str:
    cut = int(rng.integers(1, max(2, len(data))))
    del data[cut:]
    return f"cut@{cut}"


def _duplicate(data: bytearray, rng) -> str:
    n = int(rng.integers(1, max(2, min(len(data), 8192))))
    src = int(rng.integers(0, max(1, len(data) - n)))
    dst = int(rng.integers(0, len(data)))
    data[dst:dst] = data[src:src + n]
    return f"dup{n}:{src}->{dst}"


def _delete(data: bytearray, rng) -> str:
    n = int(rng.integers(1, max(2, min(len(data) // 2, 8192))))
    pos = int(rng.integers(0, max(1, len(data) - n)))
    del data[pos:pos + n]
    return f"del{n}@{pos}"


MUTATIONS = (_bit_flips, _random_bytes, _interesting, _header, _truncate, _duplicate, _delete)


def make_input(seeds: list[bytes], rng) -> tuple[bytes, str]:
    """One fuzz input and a short description of how it was made."""
    r = rng.random()
    if r < 0.04:
        return rng.bytes(int(rng.integers(1, 20000))), "random"
    if r < 0.08:
        magic = MAGICS[int(rng.integers(0, len(MAGICS)))]
        return magic + rng.bytes(int(rng.integers(0, 20000))), f"magic{magic[:4]!r}+random"
    k = int(rng.integers(0, len(seeds)))
    data = bytearray(seeds[k])
    steps = [f"seed{k}"]
    if r < 0.13:  # splice: head of one seed, tail of another
        other = seeds[int(rng.integers(0, len(seeds)))]
        cut_a, cut_b = int(rng.integers(1, len(data))), int(rng.integers(0, len(other)))
        data = data[:cut_a] + bytearray(other[cut_b:])
        steps.append(f"splice@{cut_a}")
    for _ in range(int(rng.integers(1, 4))):
        if not data:
            break
        steps.append(MUTATIONS[int(rng.integers(0, len(MUTATIONS)))](data, rng))
    return bytes(data), "+".join(steps)


# ------------------------------------------------------------------------------------------------ worker


def _check_clip(clip, expect_frames: int | None) -> str | None:
    """None for a well-formed Clip, else what is wrong with it."""
    f, a = clip.frames, clip.audio
    if f.dtype != np.uint8 or f.ndim != 4 or f.shape[-1] != 3:
        return f"frames {f.dtype} {f.shape}"
    if clip.has_video and expect_frames is not None and f.shape[0] != expect_frames:
        return f"{f.shape[0]} frames, asked for {expect_frames}"
    if a.dtype != np.float32 or a.ndim != 1 or not np.isfinite(a).all() or (a.size and np.abs(a).max() > 1.0):
        return f"audio {a.dtype} {a.shape} not finite/in range"
    if not (np.isfinite(clip.duration) and clip.duration >= 0) or len(clip.timestamps) != f.shape[0]:
        return f"duration {clip.duration} / {len(clip.timestamps)} timestamps"
    return None


def run_one(path: str, mode: str) -> dict:
    """Decode ``path`` with load_clip (mode "clip") or iter_windows (mode "windows"); classify the outcome."""
    import warnings

    from hf_avemotion.media import MediaError, iter_windows, load_clip

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if mode == "windows":
                clips = list(iter_windows(path, window_s=0.25, num_frames=2, max_duration=600.0))
                problems = [_check_clip(c, 2) for c in clips]
            else:
                problems = [_check_clip(load_clip(path, num_frames=4), 4)]
    except MediaError as exc:
        return {"outcome": "media_error", "type": type(exc).__name__}
    except Exception as exc:  # noqa: BLE001 - what we are looking for
        return {"outcome": "uncaught", "type": type(exc).__name__, "detail": str(exc)[:300],
                "traceback": traceback.format_exc()[-2000:]}
    bad = next((p for p in problems if p), None)
    if bad:
        return {"outcome": "uncaught", "type": "MalformedClip", "detail": bad}
    return {"outcome": "ok"}


def worker_main() -> None:
    """JSON lines in (``{"path", "mode"}``), JSON lines out, on the original stdout."""
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    import hf_avemotion.media  # noqa: F401  (imported once, before the first timed call)

    proto.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        proto.write(json.dumps(run_one(request["path"], request["mode"])) + "\n")


class Worker(LineWorker):
    """One fuzz worker subprocess (its own session: killed as a group after a hang)."""

    def start(self) -> None:
        env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
        # Only av + numpy are needed: bypass the package __init__ (torch, transformers) for a fast start.
        code = ("import sys, types, pathlib; p = pathlib.Path(sys.argv[1]); pkg = types.ModuleType('hf_avemotion'); "
                "pkg.__path__ = [str(p / 'hf_avemotion')]; sys.modules['hf_avemotion'] = pkg; "
                "sys.path.insert(0, str(p / 'benchmarks')); import fuzz_media; fuzz_media.worker_main()")
        self.spawn([sys.executable, "-c", code, str(REPO)], env, 120.0, "fuzz worker did not start")

    def send(self, request: dict) -> None:
        if self.proc is None:
            self.start()
        super().send(request)

    def read(self, timeout: float) -> dict | None:
        """Next reply, None on timeout, ``{"outcome": "crash"}`` when the worker died."""
        reply = super().read(timeout)
        if reply is not None and "exit_code" in reply:
            code = reply["exit_code"]
            return {"outcome": "crash", "detail": f"worker exit {code}"
                    + (f" ({signal.Signals(-code).name})" if code < 0 else "")}
        return reply


def fuzz(iterations: int, seed: int = 0, workers: int = 2, timeout: float = 20.0, folder: Path | None = None,
         keep: Path | None = None, log=None) -> dict:
    """Run ``iterations`` fuzz cases; returns {"counts": {...}, "failures": [...], "seconds": s}."""
    own = folder is None
    folder = Path(tempfile.mkdtemp(prefix="avemotion-fuzz-")) if own else Path(folder)
    seeds = [p.read_bytes() for p in write_seeds(folder / "seeds")]
    rng = np.random.default_rng(seed)
    counts, failures, started = Counter(), [], time.perf_counter()
    log_file = open(folder / "workers.log", "ab")
    pool = [Worker(log_file) for _ in range(max(1, workers))]
    busy: dict[int, tuple] = {}  # worker index -> (iteration, path, description, mode, sent_at)
    next_i = 0
    try:
        while next_i < iterations or busy:
            for w, worker in enumerate(pool):
                if w not in busy and next_i < iterations:
                    data, how = make_input(seeds, rng)
                    mode = "windows" if next_i % 4 == 3 else "clip"
                    path = folder / f"case_{w}.bin"
                    path.write_bytes(data)
                    worker.send({"path": str(path), "mode": mode})
                    busy[w] = (next_i, path, how, mode, time.monotonic())
                    next_i += 1
            fds = {pool[w].proc.stdout.fileno(): w for w in busy if pool[w].proc is not None}
            soonest = min(sent for *_, sent in busy.values()) + timeout
            ready = select.select(list(fds), [], [], max(0.0, min(1.0, soonest - time.monotonic())))[0] if fds else []
            for w in [fds[fd] for fd in ready] + [w for w in list(busy) if pool[w].proc is None]:
                if w not in busy:
                    continue
                reply = pool[w].read(0.001 if pool[w].proc is not None else 0) if pool[w].proc else \
                    {"outcome": "crash", "detail": "worker gone"}
                if reply is None:
                    continue
                _finish(busy.pop(w), reply, counts, failures, keep, log)
            for w, (i, path, how, mode, sent) in list(busy.items()):
                if time.monotonic() - sent > timeout:
                    pool[w].stop()
                    _finish(busy.pop(w), {"outcome": "hang", "detail": f"no answer in {timeout:g} s"}, counts,
                            failures, keep, log)
    finally:
        for worker in pool:
            worker.stop()
        log_file.close()
        if own:
            shutil.rmtree(folder, ignore_errors=True)
    return {"iterations": iterations, "seed": seed, "counts": {k: counts[k] for k in OUTCOMES},
            "failures": failures, "seconds": round(time.perf_counter() - started, 1)}


def _finish(job: tuple, reply: dict, counts: Counter, failures: list, keep: Path | None, log) -> None:
    i, path, how, mode, _ = job
    counts[reply["outcome"]] += 1
    if reply["outcome"] in ("uncaught", "hang", "crash"):
        failure = {"iteration": i, "input": how, "mode": mode, **reply}
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            target = keep / f"fail_{i}_{reply['outcome']}.bin"
            with contextlib.suppress(OSError):
                shutil.copyfile(path, target)
                failure["file"] = str(target)
        failures.append(failure)
        if log is not None:
            log(f"{reply['outcome'].upper()} #{i} {how} [{mode}]: {reply.get('type', '')} {reply.get('detail', '')}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds per case before it counts as a hang")
    parser.add_argument("--keep", type=Path, default=None, help="copy failing inputs here")
    parser.add_argument("--json", type=Path, default=None, help="write counts and failures here")
    args = parser.parse_args(argv)
    result = fuzz(args.iterations, args.seed, args.workers, args.timeout, keep=args.keep, log=print)
    c = result["counts"]
    print(f"media fuzz: {args.iterations} iterations (seed {args.seed}, {args.workers} workers, timeout "
          f"{args.timeout:g} s) in {result['seconds']:.0f} s: ok {c['ok']}, media_error {c['media_error']}, "
          f"uncaught {c['uncaught']}, hang {c['hang']}, crash {c['crash']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 1 if c["uncaught"] + c["hang"] + c["crash"] else 0


if __name__ == "__main__":
    sys.exit(main())
