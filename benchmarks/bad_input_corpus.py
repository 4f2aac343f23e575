"""Bad-input corpus: generated strange inputs run through every entry point, each under a timeout.

Entry points: the processor (``AVEmotionProcessor.__call__``), the pipeline (``pipe(x, return_metadata=True)``),
the CLI (``avemotion predict FILE... --model DIR --json``) and the Gradio app's handler
(``EmotionSpace.predict`` of ``demo/app.py``). Every case says what each entry point must do:

* ``error``  -- a ``MediaError``/``ValueError`` (for some cases a specific subclass); the CLI exits 2 with
  exactly one ``error: ...`` line on stderr and no traceback; the app raises ``gr.Error`` titled
  "Cannot analyse this video" (not its "Something went wrong" internal-error path);
* ``ok``     -- a documented fallback: a well-formed, finite result (scores summing to 1);
* ``either`` -- damaged-but-maybe-decodable data: ``ok`` or ``error``, nothing else;
* a pattern such as ``ok,error,ok`` for a mixed batch (lists for the pipeline, several files for the CLI):
  the good items are answered and the bad ones reported, in order.

Calls run in a worker process (the model, processor and app loaded once) that the driver kills and restarts
when a call exceeds ``--timeout`` (counted as a hang). Per entry point the script prints ``cases`` (that
apply to it), ``handled`` (as expected), ``wrong`` (a MediaError/ValueError of another kind than expected, or
a result where an error was expected), ``uncaught`` (any other exception, a traceback, a worker crash) and
``hangs``, and exits 1 unless wrong + uncaught + hangs is 0::

    python benchmarks/bad_input_corpus.py                     # tiny random model, CLI in subprocesses
    python benchmarks/bad_input_corpus.py --model runs/demo/model --json benchmarks/bad_input_results.json
    python benchmarks/bad_input_corpus.py --cli inprocess     # CLI through hf_avemotion.cli.main (fast; tests)

The media files are generated with PyAV's encoders (``tests/media_factory.py``) in a temporary folder.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from line_worker import LineWorker

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))  # media_factory, tiny_model

ENTRY_POINTS = ("processor", "pipeline", "cli", "app")
APP_ERROR_TITLE = "Cannot analyse this video"
DEFAULT_TIMEOUT = 60.0


# ------------------------------------------------------------------------------------------------ cases


@dataclass
class Case:
    """One corpus entry.

    ``make(root)`` builds the input: for ``kind="file"`` a path (str) written under ``root``; for ``"files"`` a
    list of paths; for ``"array"`` a dict ``{"processor": kwargs, "pipeline": input}`` (a missing key: that
    entry point does not apply). ``expect``: "error" | "ok" | "either" | "ok,error,..." (mixed), or a dict per
    entry point. ``errors``: accepted exception class names (any in the MRO) for processor/pipeline errors.
    """

    name: str
    kind: str
    make: Callable[[Path], Any]
    expect: Any
    errors: tuple[str, ...] = ()
    entries: tuple[str, ...] = ENTRY_POINTS
    note: str = ""

    def expectation(self, entry: str) -> str:
        return self.expect[entry] if isinstance(self.expect, dict) else self.expect


def _write(path: Path, data: bytes) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return str(path)


def _png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (32, 24), (10, 200, 30)).save(buf, format="PNG")
    return buf.getvalue()


def _jpeg() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (32, 24), (200, 20, 30)).save(buf, format="JPEG")
    return buf.getvalue()


def _media(root: Path, name: str, **kwargs) -> Path:
    """A small generated file (cached by name under root/media)."""
    from media_factory import write_media

    path = root / "media" / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_media(path, **kwargs)
    return path


def good_mp4(root: Path) -> Path:
    return _media(root, "good.mp4", duration=1.0)


def good_wav(root: Path) -> Path:
    return _media(root, "voice.wav", duration=1.0, video_codec=None, audio_codec="pcm_s16le", sample_rate=16000)


def _truncated(root: Path, name: str, **kwargs) -> str:
    data = _media(root, "whole_" + name, **kwargs).read_bytes()
    return _write(root / "files" / name, data[: len(data) // 2])


def _flipped(root: Path, name: str, seed: int) -> str:
    data = bytearray(good_mp4(root).read_bytes())
    rng = np.random.default_rng(seed)
    for pos in rng.integers(64, len(data), size=30):
        data[pos] ^= 1 << int(rng.integers(0, 8))
    return _write(root / "files" / name, bytes(data))


def _patch_moov_size(root: Path) -> str:
    data = bytearray(_media(root, "faststart.mp4", duration=1.0, container_options={"movflags": "faststart"})
                     .read_bytes())
    pos = data.find(b"moov") - 4
    data[pos:pos + 4] = struct.pack(">I", 0xFFFFFFF0)
    return _write(root / "files" / "moov_size.mp4", bytes(data))


def _avi_claiming(root: Path, width: int, height: int) -> str:
    """An MPEG-4 AVI whose avih and strf (BITMAPINFOHEADER) headers claim ``width`` x ``height``."""
    data = bytearray(_media(root, "small.avi", duration=0.5, video_codec="mpeg4", audio_codec=None).read_bytes())
    avih = data.find(b"avih") + 8  # MainAVIHeader: dwWidth, dwHeight at offsets 32, 36
    data[avih + 32:avih + 40] = struct.pack("<II", width, height)
    strf = data.find(b"strf") + 8  # BITMAPINFOHEADER: biSize, biWidth, biHeight
    data[strf + 4:strf + 12] = struct.pack("<ii", width, height)
    return _write(root / "files" / f"claims_{width}x{height}.avi", bytes(data))


def _wav_claiming(root: Path, seconds: float, rate: int = 8000) -> str:
    """A 16-bit mono WAV whose RIFF/data sizes claim ``seconds`` but holding 1 s of silence."""
    claimed = int(seconds * rate * 2)
    header = (b"RIFF" + struct.pack("<I", 36 + claimed) + b"WAVEfmt " +
              struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16) + b"data" + struct.pack("<I", claimed))
    return _write(root / "files" / "claims_2h.wav", header + bytes(rate * 2))


def _flv_claiming(root: Path, seconds: float) -> str:
    from media_factory import patch_flv_duration

    path = root / "files" / "claims_2h.flv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_media(root, "small.flv", duration=1.0, video_codec="flv", audio_codec="libmp3lame").read_bytes())
    return str(patch_flv_duration(path, seconds))


def _fifo(root: Path) -> str:
    path = root / "files" / "pipe.mp4"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        os.mkfifo(path)
    return str(path)


def _symlink(root: Path, name: str, target: Path) -> str:
    path = root / "files" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_symlink():
        os.symlink(target, path)
    return str(path)


def _dir(root: Path) -> str:
    path = root / "files" / "folder.mp4"
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


def _file_cases() -> list[Case]:
    from media_factory import patch_avi_fourcc, write_flv_data_only, write_y4m_header_only

    F = "file"
    rng = lambda seed: np.random.default_rng(seed)  # noqa: E731
    html = b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head><body>Not Found</body></html>\n"
    return [
        Case("empty file", F, lambda r: _write(r / "files" / "empty.mp4", b""), "error", ("NotMediaError",)),
        Case("one byte", F, lambda r: _write(r / "files" / "one.mp4", b"\x00"), "error"),
        Case("random bytes .mp4", F, lambda r: _write(r / "files" / "random.mp4", rng(0).bytes(50_000)), "error",
             ("NotMediaError",)),
        Case("PNG named .mp4", F, lambda r: _write(r / "files" / "picture.mp4", _png()), "error", ("NotMediaError",)),
        Case("JPEG named .avi", F, lambda r: _write(r / "files" / "photo.avi", _jpeg()), "error", ("NotMediaError",)),
        Case("PDF named .mp4", F, lambda r: _write(r / "files" / "doc.mp4", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"
                                                   + rng(1).bytes(4000)), "error", ("NotMediaError",)),
        Case("HTML error page .mp4", F, lambda r: _write(r / "files" / "download.mp4", html), "error",
             ("NotMediaError",)),
        Case("text file", F, lambda r: _write(r / "files" / "notes.txt", b"hello\nnot a video\n" * 50), "error",
             ("NotMediaError",)),
        Case("unicode text .mp4", F, lambda r: _write(r / "files" / "notes.mp4", "émotion ünïcode 情绪\n".encode()
                                                      * 50), "error", ("NotMediaError",)),
        Case("truncated MP4", F, lambda r: _truncated(r, "truncated.mp4", duration=2.0), "error",
             ("CorruptMediaError",)),
        Case("truncated faststart MP4", F, lambda r: _truncated(
            r, "truncated_fs.mp4", duration=2.0, container_options={"movflags": "faststart"}), "error",
             ("CorruptMediaError",)),
        Case("truncated MKV", F, lambda r: _truncated(r, "truncated.mkv", duration=2.0), "either",
             note="cut between clusters, it decodes cleanly up to the cut (like a header that lies): loads"),
        Case("MP4 magic + garbage", F, lambda r: _write(r / "files" / "garbage.mp4", b"\x00\x00\x00\x18ftypisom"
                                                        + rng(2).bytes(30_000)), "error", ("CorruptMediaError",)),
        Case("MP4 magic + zeros", F, lambda r: _write(r / "files" / "zeros.mp4", b"\x00\x00\x00\x18ftypisom"
                                                      + bytes(30_000)), "error"),
        Case("moov box size corrupt", F, _patch_moov_size, "either"),
        Case("directory", F, _dir, "error", ("MediaIsDirectoryError",)),
        Case("missing path", F, lambda r: str(r / "files" / "missing.mp4"), "error", ("MediaNotFoundError",)),
        Case("dangling symlink", F, lambda r: _symlink(r, "dangling.mp4", r / "nowhere.mp4"), "error",
             ("MediaNotFoundError",)),
        Case("NUL byte in path", F, lambda r: str(r / "files" / "a\x00b.mp4"), "error", ("MediaError",),
             entries=("processor", "pipeline", "app")),  # an OS argv cannot carry NUL
        Case("file name of 300 chars", F, lambda r: str(r / "files" / ("x" * 300 + ".mp4")), "error",
             ("MediaError",)),
        Case("http URL", F, lambda r: "http://example.com/clip.mp4", "error", ("RemoteURLError",)),
        Case("rtsp URL", F, lambda r: "rtsp://10.0.0.1/stream", "error", ("RemoteURLError",)),
        Case("file:// URL", F, lambda r: "file:///etc/passwd", "error", ("RemoteURLError",)),
        Case("/dev/null", F, lambda r: os.devnull, "error", ("NotMediaError",)),
        Case("/dev/zero (endless)", F, lambda r: "/dev/zero", "error", ("NotMediaError",)),
        Case("named pipe (FIFO)", F, _fifo, "error", ("NotMediaError",)),
        Case("FLV without audio/video", F, lambda r: str(write_flv_data_only(_mk(r / "files" / "data.flv"))),
             "error", ("NoUsableStreamError",)),
        Case("unknown video codec", F, lambda r: str(patch_avi_fourcc(
            _copy(_media(r, "mpeg4.avi", duration=0.5, video_codec="mpeg4", audio_codec=None),
                  r / "files" / "unknown.avi"))), "error", ("UnsupportedCodecError",)),
        Case("Y4M header 100000x100000", F, lambda r: str(write_y4m_header_only(
            _mk(r / "files" / "huge.y4m"), 100_000, 100_000)), "error", ("FrameTooLargeError", "CorruptMediaError"),
             note="FFmpeg itself refuses to open frames this large: CorruptMediaError before any allocation"),
        Case("Y4M header 16000x16000", F, lambda r: str(write_y4m_header_only(
            _mk(r / "files" / "big.y4m"), 16_000, 16_000)), "error", ("FrameTooLargeError",)),
        Case("H.264 5000x4000 (20 MP > 16.7 MP limit)", F, lambda r: str(_media(
            r, "20mp.mp4", duration=0.04, size=(5000, 4000), audio_codec=None)), "error", ("FrameTooLargeError",)),
        Case("AVI header claims 100000x100000", F, lambda r: _avi_claiming(r, 100_000, 100_000), "ok",
             note="the MPEG-4 bitstream's own header gives the real 64x48 size, which is decoded"),
        Case("2-hour silent video", F, lambda r: str(_media(r, "two_hours.mp4", frame_times=[0.0, 3600.0, 7200.0],
                                                            audio_codec=None)), "error", ("MediaTooLongError",)),
        Case("WAV header claims 2 h", F, lambda r: _wav_claiming(r, 7200.0), "ok",
             note="FFmpeg bounds the claimed data size by the file size: the 1 s present loads"),
        Case("FLV header claims 2 h", F, lambda r: _flv_claiming(r, 7200.0), "error",
             ("MediaTooLongError", "CorruptMediaError")),
        Case("10 000 tiny frames (16x16, 1000 fps)", F, lambda r: str(_media(
            r, "many_frames.mp4", duration=10.0, fps=1000, size=(16, 16), audio_codec=None, video_codec="mpeg4")),
             "ok"),
        Case("2x2 pixel video", F, lambda r: str(_media(r, "tiny.mp4", duration=0.5, size=(2, 2))), "ok"),
        Case("1024x2 strip video", F, lambda r: str(_media(r, "strip.mp4", duration=0.5, size=(1024, 2),
                                                           video_codec="mpeg4")), "ok"),
        Case("1-frame video", F, lambda r: str(_media(r, "one_frame.mp4", frame_times=[0.0], duration=0.04,
                                                      audio_codec=None)), "ok"),
        Case("0.1 s clip", F, lambda r: str(_media(r, "short.mp4", duration=0.1)), "ok"),
        Case("path with spaces and non-ASCII", F, lambda r: str(_media(r, "dossier été 情绪/clip (1) ñ.mp4",
                                                                       duration=1.0)), "ok"),
        Case("video without audio", F, lambda r: str(_media(r, "silent.mp4", duration=1.0, audio_codec=None)), "ok"),
        Case("audio-only WAV", F, lambda r: str(good_wav(r)), "ok"),
        Case("audio-only silent WAV", F, lambda r: str(_media(r, "zeros.wav", duration=1.0, video_codec=None,
                                                              audio_codec="pcm_s16le", tones=(0.0,))), "ok"),
        Case("96 kHz 8-channel WAV", F, lambda r: str(_media(r, "96k_8ch.wav", duration=1.0, video_codec=None,
                                                             audio_codec="pcm_s16le", sample_rate=96000,
                                                             channels=8)), "ok"),
        Case("bit flips #1", F, lambda r: _flipped(r, "flip1.mp4", 1), "either"),
        Case("bit flips #2", F, lambda r: _flipped(r, "flip2.mp4", 2), "either"),
        Case("two MP4s concatenated", F, lambda r: _write(r / "files" / "cat.mp4", good_mp4(r).read_bytes() * 2),
             "either"),
    ]


def _mk(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _copy(src: Path, dst: Path) -> Path:
    _mk(dst).write_bytes(src.read_bytes())
    return dst


def _arr(processor: Any = None, pipeline: Any = None, **_) -> Callable[[Path], dict]:
    """An array case: processor kwargs and/or a pipeline input (callables get the root)."""
    def make(root: Path) -> dict:
        out = {}
        if processor is not None:
            out["processor"] = processor(root) if callable(processor) else processor
        if pipeline is not None:
            out["pipeline"] = pipeline(root) if callable(pipeline) else pipeline
        return out
    return make


def _wave(n=16000, value=0.1):
    return np.full(n, value, dtype=np.float32)


def _audio_case(audio, sr=16000):
    """Same waveform through processor(audio=..., sampling_rate=...) and pipeline({"audio": ...})."""
    return _arr(processor=lambda r: dict(audio=audio, sampling_rate=sr),
                pipeline=lambda r: {"audio": audio, "sampling_rate": sr})


def _frames_case(frames, fps=None):
    item = {"frames": frames} if fps is None else {"frames": frames, "fps": fps}
    return _arr(processor=lambda r: dict(videos=frames), pipeline=lambda r: item)


def _bad_clip():
    from hf_avemotion.media import Clip

    return Clip(frames=np.full((2, 8, 8), np.nan), timestamps=np.zeros(2), audio=np.array([np.inf], np.float32),
                sampling_rate=16000, has_video=True, has_audio=True, duration=1.0)


def _array_cases() -> list[Case]:
    A = "array"
    both = ("processor", "pipeline")
    nan_wave = _wave(); nan_wave[100] = np.nan  # noqa: E702
    inf_wave = _wave(); inf_wave[-1] = np.inf  # noqa: E702
    frames = np.full((4, 32, 32, 3), 120, np.uint8)
    nan_frames = frames.astype(np.float32); nan_frames[0, 0, 0, 0] = np.nan  # noqa: E702
    from PIL import Image

    pil_mixed = [Image.new("RGB", (32, 32)), Image.new("RGB", (16, 32))]
    return [
        Case("NaN in waveform", A, _audio_case(nan_wave), "error", entries=both),
        Case("inf in waveform", A, _audio_case(inf_wave), "error", entries=both),
        Case("waveform peak 3.0 (int PCM as float)", A, _audio_case(_wave(value=3.0)), "error", entries=both),
        Case("waveform int64", A, _audio_case(np.zeros(16000, np.int64)), "error", entries=both),
        Case("waveform empty", A, _audio_case(np.zeros(0, np.float32)), "error", entries=both),
        Case("waveform one sample", A, _audio_case(np.zeros(1, np.float32)), "ok", entries=both),
        Case("waveform 3-D", A, _audio_case(np.zeros((2, 2, 100), np.float32)), "error", entries=both),
        Case("audio array 96 kHz x 8 channels", A, _audio_case(np.zeros((8, 96000), np.float32) + 0.1, 96000),
             {"processor": "error", "pipeline": "ok"}, entries=both,
             note="the processor takes mono [N] waveforms; the pipeline's dict input down-mixes [C,N]"),
        Case("sampling_rate 0", A, _audio_case(_wave(), 0), "error", entries=both),
        Case("sampling_rate -16000", A, _audio_case(_wave(), -16000), "error", entries=both),
        Case("sampling_rate 1 Hz (x16000 upsampling)", A, _audio_case(_wave(200_000), 1), "error", entries=both),
        Case("sampling_rate 10 GHz", A, _audio_case(_wave(), 10_000_000_000), "error", entries=both),
        Case("sampling_rate missing", A, _arr(processor=dict(audio=_wave()), pipeline={"audio": _wave()}), "error",
             entries=both),
        Case("frames float with NaN", A, _frames_case(nan_frames), "error", entries=both),
        Case("frames bool", A, _frames_case(np.ones((2, 8, 8, 3), bool)), "error", entries=both),
        Case("frames complex", A, _frames_case(np.ones((2, 8, 8, 3), np.complex64)), "error", entries=both),
        Case("frames of strings", A, _frames_case(np.full((2, 8, 8, 3), "x")), "error", entries=both),
        Case("frames rank 1", A, _frames_case(np.zeros(10, np.uint8)), "error", entries=both),
        Case("frames rank 2", A, _frames_case(np.zeros((8, 8), np.uint8)), "error", entries=both),
        Case("frames rank 6", A, _frames_case(np.zeros((1, 1, 2, 8, 8, 3), np.uint8)), "error", entries=both),
        Case("frames with 2 channels", A, _frames_case(np.zeros((2, 8, 8, 2), np.uint8)), "error", entries=both),
        Case("frames int16 negative", A, _frames_case(np.full((2, 8, 8, 3), -5, np.int16)), "error", entries=both),
        Case("frames float above 255", A, _frames_case(np.full((2, 8, 8, 3), 300.0, np.float32)), "error",
             entries=both),
        Case("frames T=0", A, _frames_case(np.zeros((0, 8, 8, 3), np.uint8)),
             {"processor": "ok", "pipeline": "error"}, entries=both,
             note="processor: a row without video (masks false); pipeline: nothing to classify"),
        Case("10 000 tiny frames (array)", A, _frames_case(np.zeros((10_000, 2, 2, 3), np.uint8) + 90), "ok",
             entries=both),
        Case("one 8000x8000 frame (view)", A, _frames_case(np.broadcast_to(np.uint8(7), (1, 8000, 8000, 3))),
             "error", ("FrameTooLargeError",), entries=both),
        Case("fps 0", A, _arr(pipeline={"frames": frames, "fps": 0}), "error", entries=("pipeline",)),
        Case("fps NaN", A, _arr(pipeline={"frames": frames, "fps": float("nan")}), "error", entries=("pipeline",)),
        Case("PIL frames of different sizes", A, _frames_case(pil_mixed), "error", entries=both),
        Case("empty list", A, _arr(processor=dict(videos=[]), pipeline=[]), {"processor": "error", "pipeline": "ok"},
             entries=both, note="pipeline([]) is [] (nothing asked, nothing answered)"),
        Case("list holding an empty list", A, _arr(processor=dict(videos=[[]]), pipeline=[[]]),
             {"processor": "error", "pipeline": "error"}, entries=both),
        Case("an int as input", A, _arr(processor=dict(videos=5), pipeline=5), "error", entries=both),
        Case("an object as input", A, _arr(processor=dict(videos=object()), pipeline=object()), "error",
             entries=both),
        Case("dict with unknown keys", A, _arr(pipeline={"video": frames}), "error", entries=("pipeline",)),
        Case("dict with nothing", A, _arr(pipeline={"frames": None, "audio": None}), "error",
             entries=("pipeline",)),
        Case("malformed Clip object", A, _arr(processor=lambda r: dict(videos=_bad_clip()),
                                              pipeline=lambda r: _bad_clip()), "error", entries=both),
        Case("torch tensor of wrong rank", A, _arr(processor=lambda r: dict(videos=_torch_zeros(3, 8, 8)),
                                                   pipeline=lambda r: {"frames": _torch_zeros(3, 8)}), "error",
             entries=both),
    ]


def _torch_zeros(*shape):
    import torch

    return torch.zeros(*shape)


def _mixed_cases() -> list[Case]:
    def files(root: Path) -> list[str]:
        bad = root / "files" / "mixed_empty.mp4"
        _write(bad, b"")
        return [str(good_mp4(root)), str(bad), str(good_wav(root)), str(root / "files" / "mixed_missing.mp4"),
                _truncated(root, "mixed_truncated.mp4", duration=2.0)]

    def items(root: Path) -> dict:
        nan = _wave(); nan[5] = np.nan  # noqa: E702
        return {"pipeline": [str(good_mp4(root)), {"audio": nan, "sampling_rate": 16000},
                             {"frames": np.full((3, 32, 32, 3), 99, np.uint8)}, 5,
                             {"audio": _wave(8000), "sampling_rate": 8000}, "http://example.com/x.mp4"]}

    return [
        Case("mixed batch of files (good, empty, good, missing, truncated)", "files", files,
             {"processor": "error", "pipeline": "ok,error,ok,error,error", "cli": "ok,error,ok,error,error"},
             entries=("processor", "pipeline", "cli"),
             note="the processor makes one tensor batch: it names the bad row; pipeline and CLI answer per item"),
        Case("mixed batch of items (path, NaN audio, frames, int, audio, URL)", "array", items,
             {"pipeline": "ok,error,ok,error,ok,error"}, entries=("pipeline",)),
    ]


def build_corpus() -> list[Case]:
    """Every case (>= 40); inputs are built lazily by ``case.make(root)``."""
    return _file_cases() + _array_cases() + _mixed_cases()


# ------------------------------------------------------------------------------------------------ worker


def _mro_names(exc: BaseException) -> list[str]:
    return [c.__name__ for c in type(exc).__mro__]


def _first_line(text: str) -> str:
    lines = [line for line in str(text).strip().splitlines() if line.strip()]
    return lines[0][:300] if lines else ""


def _error(exc: BaseException) -> dict:
    if isinstance(exc, ValueError):  # MediaError is a ValueError
        return {"outcome": "error", "types": _mro_names(exc), "detail": _first_line(str(exc))}
    return {"outcome": "uncaught", "types": _mro_names(exc),
            "detail": f"{type(exc).__name__}: {_first_line(str(exc))}",
            "traceback": "".join(traceback.format_exception(exc))[-3000:]}


def _check_scores(scores: Any) -> str | None:
    """None when ``scores`` is a well-formed ranked list summing to 1, else what is wrong."""
    if not isinstance(scores, list) or not scores:
        return f"scores is {type(scores).__name__} {scores!r:.80}"
    values = [s.get("score") for s in scores if isinstance(s, dict)]
    if len(values) != len(scores) or not all(isinstance(v, float) and math.isfinite(v) for v in values):
        return f"non-finite or missing scores: {values}"
    if abs(sum(values) - 1) > 1e-3 or values != sorted(values, reverse=True):
        return f"scores do not sum to 1 or are not ranked: {values}"
    return None


def _check_pipeline_result(result: Any) -> dict:
    if isinstance(result, dict) and "error" in result:
        return {"outcome": "error", "types": ["ReportedError"], "detail": str(result["error"])}
    problem = _check_scores(result["scores"] if isinstance(result, dict) else result)
    if problem is None and isinstance(result, dict):
        if not (0.0 <= result.get("face_found_ratio", 0.0) <= 1.0 and math.isfinite(result.get("duration", 0.0))):
            problem = f"bad metadata {result}"
    if problem:
        return {"outcome": "uncaught", "types": ["BadResult"], "detail": problem}
    return {"outcome": "ok"}


class _State:
    """What the worker loads once: pipeline, processor, app handler, CLI."""

    def __init__(self, root: Path, model: str):
        import importlib.util
        import warnings

        warnings.filterwarnings("ignore")
        from hf_avemotion import cli
        from hf_avemotion import pipeline_avemotion as pipeline_module

        self.root, self.model = root, model
        self.pipe = pipeline_module.load_pipeline(model, device="cpu")
        self.processor = self.pipe.processor
        spec = importlib.util.spec_from_file_location("avemotion_corpus_app", REPO / "demo" / "app.py")
        self.app = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = self.app
        spec.loader.exec_module(self.app)
        self.space = self.app.EmotionSpace(self.pipe)
        self.cli = cli
        loaded = {}
        original = pipeline_module.load_pipeline

        def cached(model, device=None, **kwargs):  # the CLI loads the model once per call: once is enough here
            key = (str(model), device, tuple(sorted(kwargs.items())))
            if key not in loaded:
                loaded[key] = original(model, device=device, **kwargs)
            return loaded[key]

        pipeline_module.load_pipeline = cached
        self.cases = {c.name: c for c in build_corpus()}

    def run(self, name: str, entry: str) -> dict:
        case = self.cases[name]
        value = case.make(self.root)
        return getattr(self, f"_{entry}")(case, value)

    def _processor(self, case: Case, value: Any) -> dict:
        kwargs = value["processor"] if case.kind == "array" else {"videos": value}
        try:
            out = self.processor(**kwargs, return_tensors="np")
        except Exception as exc:  # noqa: BLE001 - classified
            return _error(exc)
        for key in ("pixel_values", "input_values"):
            if not np.isfinite(out[key]).all():
                return {"outcome": "uncaught", "types": ["BadResult"], "detail": f"non-finite {key}"}
        return {"outcome": "ok"}

    def _pipeline(self, case: Case, value: Any) -> dict:
        inputs = value["pipeline"] if case.kind == "array" else value
        try:
            result = self.pipe(inputs, return_metadata=True)
        except Exception as exc:  # noqa: BLE001
            return _error(exc)
        if isinstance(inputs, list):
            if not isinstance(result, list) or len(result) != len(inputs):
                return {"outcome": "uncaught", "types": ["BadResult"], "detail": f"{len(inputs)} inputs, got {result!r:.100}"}
            items = [_check_pipeline_result(r) for r in result]
            if any(i["outcome"] == "uncaught" for i in items):
                return next(i for i in items if i["outcome"] == "uncaught")
            return {"outcome": ",".join(i["outcome"] for i in items) if items else "ok"}
        return _check_pipeline_result(result)

    def _cli(self, case: Case, value: Any) -> dict:
        files = value if isinstance(value, list) else [value]
        out, err = io.StringIO(), io.StringIO()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = self.cli.main(["predict", *files, "--model", self.model, "--json"])
        except BaseException as exc:  # noqa: BLE001 - SystemExit included: main must return, not exit
            return {"raw": True, "code": None, "stdout": out.getvalue(), "stderr": err.getvalue(),
                    "escaped": f"{type(exc).__name__}: {_first_line(str(exc))}"}
        return {"raw": True, "code": code, "stdout": out.getvalue(), "stderr": err.getvalue()}

    def _app(self, case: Case, value: Any) -> dict:
        import gradio as gr

        try:
            values = self.space.predict(value, False, 4.0)
        except gr.Error as exc:
            title = getattr(exc, "title", "")
            if title == APP_ERROR_TITLE:
                return {"outcome": "error", "types": ["gr.Error"], "detail": _first_line(exc.message)}
            return {"outcome": "uncaught", "types": ["gr.Error"], "detail": f"{title}: {_first_line(exc.message)}"}
        except Exception as exc:  # noqa: BLE001
            return {**_error(exc), "outcome": "uncaught"}
        label = values[0] if isinstance(values, tuple) and len(values) == 6 else None
        if not isinstance(label, dict) or not label:
            return {"outcome": "uncaught", "types": ["BadResult"], "detail": f"app returned {values!r:.100}"}
        return {"outcome": "ok"}


def worker_main(root: str, model: str) -> None:
    """Serve ``{"case", "entry"}`` requests (JSON lines on stdin) with JSON lines on the original stdout."""
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # stray prints go to stderr, never into the protocol
    sys.stdout = sys.stderr
    state = _State(Path(root), model)
    proto.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        started = time.perf_counter()
        try:
            reply = state.run(request["case"], request["entry"])
        except Exception as exc:  # noqa: BLE001 - a bug of the harness or the input maker
            reply = {"outcome": "uncaught", "types": _mro_names(exc), "detail": f"harness: {exc!r}"[:300],
                     "traceback": traceback.format_exc()[-3000:]}
        reply["seconds"] = round(time.perf_counter() - started, 3)
        proto.write(json.dumps(reply, default=str) + "\n")


class Worker(LineWorker):
    """The corpus worker subprocess with a per-call timeout; killed (its process group) and restarted after a hang."""

    def __init__(self, root: Path, model: str, startup_timeout: float = 300.0):
        super().__init__(open(root / "worker.log", "ab"))
        self.root, self.model, self.startup_timeout = root, model, startup_timeout

    def call(self, case: str, entry: str, timeout: float) -> dict:
        if self.proc is None or self.proc.poll() is not None:
            env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
                   "PYTHONWARNINGS": "ignore", "TOKENIZERS_PARALLELISM": "false"}
            self.spawn([sys.executable, str(Path(__file__).resolve()), "--worker", str(self.root), "--model",
                        self.model], env, self.startup_timeout,
                       f"the corpus worker did not start; see {self.root / 'worker.log'}")
        started = time.perf_counter()
        self.send({"case": case, "entry": entry})
        reply = self.read(timeout)
        if reply is None:
            self.stop()
            return {"outcome": "hang", "detail": f"no answer within {timeout:g} s",
                    "seconds": round(time.perf_counter() - started, 3)}
        if "exit_code" in reply:
            return {"outcome": "uncaught", "types": ["WorkerCrash"], "detail": f"worker died (exit {reply['exit_code']})"}
        return reply


# ------------------------------------------------------------------------------------------------ CLI + verdicts


def run_cli_subprocess(files: list[str], model: str, timeout: float) -> dict:
    """``python -m hf_avemotion.cli predict FILES --model MODEL --json`` in its own process."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "hf_avemotion.cli", "predict", *files, "--model", model, "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return {"outcome": "hang", "detail": f"no exit within {timeout:g} s"}
    return {"raw": True, "code": proc.returncode, "stdout": out, "stderr": err,
            "seconds": round(time.perf_counter() - started, 3)}


def cli_outcome(raw: dict, files: list[str]) -> dict:
    """Classify a CLI run: ok (exit 0 + JSON), error (exit 2 + one ``error:`` line per bad file), else uncaught."""
    if raw.get("outcome") == "hang":
        return raw
    err_lines = [line for line in raw["stderr"].splitlines() if line.strip()]
    errors = [line for line in err_lines if line.startswith("error: ")]
    noise = [line for line in err_lines if not line.startswith(("error: ", "warning: "))]
    if raw.get("escaped") or "Traceback" in raw["stderr"] or raw["code"] not in (0, 2):
        return {"outcome": "uncaught", "types": ["CLI"],
                "detail": raw.get("escaped") or f"exit {raw['code']}: {_first_line(raw['stderr'])}"}
    results = []
    if raw["stdout"].strip():
        try:
            results = json.loads(raw["stdout"])
        except json.JSONDecodeError:
            return {"outcome": "uncaught", "types": ["CLI"], "detail": f"stdout is not JSON: {raw['stdout'][:100]!r}"}
    answered = {r.get("file") for r in results}
    for r in results:
        problem = _check_scores(r.get("scores"))
        if problem:
            return {"outcome": "uncaught", "types": ["BadResult"], "detail": problem}
    if noise:
        return {"outcome": "uncaught", "types": ["CLI"], "detail": f"stderr noise: {noise[0][:150]}"}
    pattern = ["ok" if f in answered else "error" for f in files]
    if len(errors) != pattern.count("error") or (raw["code"] == 2) != ("error" in pattern):
        return {"outcome": "uncaught", "types": ["CLI"],
                "detail": f"exit {raw['code']}, {len(errors)} error line(s) for {pattern.count('error')} bad file(s)"}
    return {"outcome": ",".join(pattern), "detail": errors[0][:300] if errors else ""}


def verdict(case: Case, entry: str, result: dict) -> str:
    """handled | wrong | uncaught | hang."""
    outcome = result.get("outcome")
    if outcome in ("hang", "uncaught"):
        return outcome
    expected = case.expectation(entry)
    if expected == "either":
        return "handled" if outcome in ("ok", "error") else "wrong"
    if outcome != expected:
        return "wrong"
    if expected == "error" and case.errors and entry in ("processor", "pipeline"):
        if not set(case.errors) & set(result.get("types", [])):
            return "wrong"
    return "handled"


@dataclass
class Report:
    rows: list[dict] = field(default_factory=list)

    def counts(self) -> dict[str, dict[str, int]]:
        table = {}
        for entry in ENTRY_POINTS:
            rows = [r for r in self.rows if r["entry"] == entry]
            table[entry] = {"cases": len(rows), **{k: sum(r["verdict"] == k for r in rows)
                                                    for k in ("handled", "wrong", "uncaught", "hang")}}
        return table

    def failures(self) -> list[dict]:
        return [r for r in self.rows if r["verdict"] != "handled"]

    def format(self) -> str:
        lines = [f"{'entry point':<12}{'cases':>7}{'handled':>9}{'wrong':>7}{'uncaught':>10}{'hangs':>7}"]
        total = {k: 0 for k in ("cases", "handled", "wrong", "uncaught", "hang")}
        for entry, c in self.counts().items():
            lines.append(f"{entry:<12}{c['cases']:>7}{c['handled']:>9}{c['wrong']:>7}{c['uncaught']:>10}{c['hang']:>7}")
            for k in total:
                total[k] += c[k]
        lines.append(f"{'all':<12}{total['cases']:>7}{total['handled']:>9}{total['wrong']:>7}{total['uncaught']:>10}"
                     f"{total['hang']:>7}")
        for r in self.failures():
            lines.append(f"  {r['verdict'].upper()}: [{r['entry']}] {r['case']}: expected {r['expected']}, got "
                         f"{r['outcome']} {r.get('types', '')} {r.get('detail', '')}"[:400])
        return "\n".join(lines)


def run_corpus(root: Path, model: str, *, entries=ENTRY_POINTS, cli_mode: str = "subprocess",
               timeout: float = DEFAULT_TIMEOUT, cases: list[Case] | None = None, log=None) -> Report:
    """Build every case under ``root`` and run it through ``entries``; returns the report."""
    cases = build_corpus() if cases is None else cases
    for case in cases:  # write the files once, in this process (the worker rebuilds arrays itself)
        if case.kind in ("file", "files"):
            case.make(root)
    report = Report()
    worker = Worker(root, model)
    try:
        for case in cases:
            for entry in entries:
                if entry not in case.entries or (entry == "cli" and cli_mode == "subprocess"):
                    continue
                result = worker.call(case.name, entry, timeout)
                if entry == "cli":
                    value = case.make(root)
                    result = cli_outcome(result, value if isinstance(value, list) else [value])
                _record(report, case, entry, result, log)
    finally:
        worker.stop()
    if "cli" in entries and cli_mode == "subprocess":
        jobs = [c for c in cases if "cli" in c.entries]

        def one(case: Case) -> tuple[Case, dict]:
            value = case.make(root)
            files = value if isinstance(value, list) else [value]
            return case, cli_outcome(run_cli_subprocess(files, model, timeout), files)

        with ThreadPoolExecutor(max_workers=2) as pool:
            for case, result in pool.map(one, jobs):
                _record(report, case, "cli", result, log)
    return report


def _record(report: Report, case: Case, entry: str, result: dict, log) -> None:
    row = {"case": case.name, "entry": entry, "expected": case.expectation(entry), **result}
    row.pop("raw", None)
    row["verdict"] = verdict(case, entry, result)
    report.rows.append(row)
    if log is not None:
        log(f"{row['verdict']:<9} {entry:<10} {case.name}: {row.get('outcome')} {row.get('detail', '')}"[:200])


def make_tiny_model(folder: Path) -> str:
    from tiny_model import save_tiny_model

    return str(save_tiny_model(folder))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="model folder (default: a tiny random model)")
    parser.add_argument("--cli", choices=("subprocess", "inprocess"), default="subprocess")
    parser.add_argument("--entries", default=",".join(ENTRY_POINTS))
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per call before a hang")
    parser.add_argument("--json", default=None, help="write the per-case rows and counts here")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker_main(args.worker, args.model)
        return 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory(prefix="avemotion-corpus-") as tmp:
        root = Path(tmp)
        model = args.model or make_tiny_model(root / "model")
        started = time.perf_counter()
        report = run_corpus(root, model, entries=tuple(args.entries.split(",")), cli_mode=args.cli,
                            timeout=args.timeout, log=print if args.verbose else None)
        seconds = time.perf_counter() - started
        with contextlib.suppress(OSError):
            (root / "files" / "pipe.mp4").unlink()
    cases = build_corpus()
    print(f"bad-input corpus: {len(cases)} cases ({sum(c.kind == 'file' for c in cases)} files, "
          f"{sum(c.kind == 'array' for c in cases)} in-memory, {sum(c.kind == 'files' for c in cases)} mixed file "
          f"batch), CLI in {args.cli}, timeout {args.timeout:g} s, {seconds:.0f} s")
    print(report.format())
    if args.json:
        rows = [{k: (v.replace(str(root), "<tmp>") if isinstance(v, str) else v) for k, v in row.items()
                 if k != "traceback"} for row in report.rows]
        Path(args.json).write_text(json.dumps({"counts": report.counts(), "rows": rows, "seconds": round(seconds, 1)},
                                              indent=1, default=str) + "\n")
    bad = sum(c["wrong"] + c["uncaught"] + c["hang"] for c in report.counts().values())
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
