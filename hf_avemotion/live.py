"""Live mode: webcam frames and microphone chunks streamed in, one emotion prediction every hop.

    from transformers import pipeline
    from hf_avemotion.live import LiveStream

    live = LiveStream(pipeline("audio-visual-emotion-recognition"), window_s=4.0, hop_s=0.5)
    live.push_video(frame, timestamp=t)                       # uint8 [H,W,3] RGB, seconds
    live.push_audio(chunk, sampling_rate=48000, timestamp=t)  # float [N] (or int16 PCM), any rate
    prediction = live.poll()                                  # a LivePrediction, or None
    ...
    last = live.finish()                                      # the windows that end with the stream

Windows are those of the offline timeline (``pipe(path, timeline=True, window_s=W, hop_s=H)``): window k spans
``[origin + k*H, origin + k*H + W)``, its frames are the ones *shown* at the ``num_frames`` midpoints of ``num_frames``
equal parts of the window (what `iter_windows` picks from a file) and its audio is the 16 kHz waveform cut to the
window. A window is predicted once every stream that has data passed its end (or, when one lags, ``max_wait_s``
after the other did). Each window goes through the pipeline's own steps (`_encode`: the processor; `forward`: the
model; `postprocess`), with two per-frame memos: consecutive windows share most of their frames, so only the
frames that entered the window since the previous hop are run through the face detector and through the vision
encoder (the model's own ``embed_frames``; every frame is encoded on its own, so reusing an embedding is exact).
For that a frame's face box is fixed when a window first uses it (``crops="per_frame"``, boxes smoothed causally);
``crops="window"`` smooths boxes within each window as the offline processor does (then a frame's crop changes
from hop to hop and every hop encodes all its frames).

Stale hops: `poll` answers the newest ready window and drops the older ready ones (counted in
``LivePrediction.skipped``): when inference is slower than real time the stream stays current instead of
falling further behind a queue. With a consumer fast enough (or a file played with ``speed=0``, which waits
for it) no hop is dropped, and with ``crops="window"`` (or no face to track) the predictions equal the offline
timeline's windows.

Only the frames a future window can show and the audio of the open windows are kept: memory stays flat.
"""

from __future__ import annotations

import copy
import math
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import av
import numpy as np

from .face_detection import FaceCropper, FaceCrops
from .media import AUDIO_OVERHANG_S, Clip, _audio_from_input, _AudioSink, _frame_to_mono

__all__ = ["LivePrediction", "LiveStream", "play_camera", "play_file", "stream_file"]

DEFAULT_WINDOW_S = 4.0  # the shipped model hears 4 s (Whisper's input; shorter windows are zero-padded at equal cost)
DEFAULT_HOP_S = 0.5
SILENCE_DBFS = -50.0  # window RMS below this (dB re full scale) is flagged as silence
_AUDIO_GAP_S = 0.1  # an audio chunk starting later than the previous one ended by more than this: a gap


@dataclass
class LivePrediction:
    """One hop's answer.

    index: window number k (window k starts ``k * hop_s`` after the stream origin).
    start / end: the window, seconds from the stream origin (``end - start == window_s`` except at the end).
    label / score: best class; scores: every class ``[{"label", "score"}]``, best first.
    latency_ms: wall time of this prediction (window assembly, face detection, features, model).
    skipped: stale hops dropped just before this one (the consumer was slower than real time).
    behind_s: how far the stream had run past this window's end when it was predicted.
    flags: what was off in this window: ``no_video``, ``no_face``, ``dropped_frames``, ``no_audio``,
        ``silence``, ``audio_gap``, ``skipped_stale``.
    face_ratio: fraction of the window's distinct frames with a detected face; frames_received: frames pushed
        inside the window; frames_dropped: frames missing from it (gaps of more than 2.5 frame intervals);
        detections: detector runs this hop (frames not seen by an earlier window); frames_encoded: frames run
        through the vision encoder this hop (likewise, the others' embeddings are reused); audio_dbfs: window RMS
        level (None without audio); modalities: each modality's own best label (models with modality heads:
        ``{"face": {"label", "score"} | None, "voice": ...}``, as the pipeline gives it), else None.
        timings_ms: ``window`` (assembly), ``features`` (face detection, crops, log-mel), ``model``.
    """

    index: int
    start: float
    end: float
    label: str
    score: float
    scores: list[dict]
    latency_ms: float
    skipped: int = 0
    behind_s: float = 0.0
    flags: tuple[str, ...] = ()
    face_ratio: float = 0.0
    frames_received: int = 0
    frames_dropped: int = 0
    detections: int = 0
    frames_encoded: int = 0
    audio_dbfs: float | None = None
    modalities: dict | None = None
    timings_ms: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        out = dict(self.__dict__)
        out["flags"] = list(self.flags)
        return out

    def format_line(self) -> str:
        """One line: ``  12.00-14.00 s  happy     0.61  183 ms  [no_face]``."""
        flags = f"  [{', '.join(self.flags)}]" if self.flags else ""
        skipped = f"  (dropped {self.skipped} stale)" if self.skipped else ""
        return (f"{self.start:7.2f}-{self.end:7.2f} s  {self.label:<10} {self.score:5.2f}  "
                f"{self.latency_ms:6.0f} ms{skipped}{flags}")


class _MemoFaceCropper(FaceCropper):
    """`FaceCropper` for a stream: per-frame detections are memoised (keyed by frame content), so a frame shared
    by consecutive windows is detected once.

    ``per_frame=False``: boxes, smoothing and crops exactly as the base class computes them for the window's
    frames (the offline path; a frame's crop then depends on its neighbours in the window).
    ``per_frame=True``: each frame's box is fixed the first time a window uses it, smoothed causally with the
    previous frame's (weight ``smoothing``; a frame without a face keeps the previous box, or a centre square
    before any face), so a frame has one crop whatever the window, and the model's frame embeddings can be
    reused too."""

    def __init__(self, base: FaceCropper, capacity: int, per_frame: bool = False):
        super().__init__(output_size=base.output_size, margin=base.margin, smoothing=base.smoothing,
                         detect_max_side=base.detect_max_side, min_confidence=base.min_confidence)
        self.capacity = int(capacity)
        self.per_frame = bool(per_frame)
        self.runs = 0  # detector runs so far
        self._memo: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._crops: OrderedDict[tuple, tuple] = OrderedDict()  # per_frame: key -> (crop, box, found)
        self._state: np.ndarray | None = None  # per_frame: last smoothed (centre x, centre y, side)

    @staticmethod
    def _key(frame: np.ndarray) -> tuple:
        frame = np.ascontiguousarray(frame)
        return frame.shape, zlib.crc32(frame.data)

    def _remember(self, memo: OrderedDict, key: tuple, value: Any) -> None:
        memo[key] = value
        while len(memo) > self.capacity:
            memo.popitem(last=False)

    def detect(self, frame: np.ndarray) -> np.ndarray:
        key = self._key(frame)
        found = self._memo.get(key)
        if found is None:
            found = super().detect(np.ascontiguousarray(frame))
            self.runs += 1
            self._remember(self._memo, key, found)
        else:
            self._memo.move_to_end(key)
        return found.copy()

    def __call__(self, frames: np.ndarray) -> FaceCrops:
        if not self.per_frame or len(frames) == 0:
            return super().__call__(frames)
        out = []
        for frame in frames:
            key = self._key(frame)
            if key not in self._crops:
                self._remember(self._crops, key, self._crop_one(frame))
            self._crops.move_to_end(key)
            out.append(self._crops[key])
        return FaceCrops(crops=np.stack([o[0] for o in out]), boxes=np.stack([o[1] for o in out]),
                         face_found=np.array([o[2] for o in out], dtype=bool))

    def _crop_one(self, frame: np.ndarray) -> tuple:
        """One frame -> (crop uint8 [S,S,3], box float32 [4], face found), smoothing boxes causally."""
        h, w = frame.shape[:2]
        dets = self.detect(frame)
        if len(dets):
            x0, y0, x1, y1 = dets[0, :4].astype(np.float64)
            params = np.array([(x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) * (1 + 2 * self.margin)])
            if self._state is not None:
                params = (1 - self.smoothing) * params + self.smoothing * self._state
            self._state = params
        elif self._state is not None:
            params = self._state
        else:
            params = np.array([w / 2, h / 2, min(h, w)], dtype=np.float64)
        side = max(1.0, float(np.round(params[2])))
        x0, y0 = float(np.round(params[0] - side / 2)), float(np.round(params[1] - side / 2))
        box = np.array([x0, y0, x0 + side, y0 + side], dtype=np.float32)
        return self.crop(frame[None], box[None])[0], box, bool(len(dets))


class _FrameEmbeddingMemo:
    """Memoised `AVEmotionModel.embed_frames` for one stream: a frame (its pixel_values [3,S,S]) already encoded
    by an earlier window is not run through the vision encoder again; new frames are encoded in one batch by
    the model's own method. Exact: the encoder treats every frame on its own."""

    def __init__(self, base_model: Any, capacity: int):
        self.base = base_model
        self.capacity = int(capacity)
        self.runs = 0  # frames encoded so far
        self._memo: OrderedDict[tuple, Any] = OrderedDict()

    def __call__(self, pixel_values, video_mask):
        import torch

        batch, num_frames = pixel_values.shape[:2]
        out = pixel_values.new_zeros(batch, num_frames, self.base.config.frame_embedding_size)
        where = [tuple(int(i) for i in bt) for bt in torch.nonzero(video_mask, as_tuple=False).tolist()]
        keys = {bt: (tuple(pixel_values.shape[2:]), str(pixel_values.dtype),
                     zlib.crc32(pixel_values[bt].detach().cpu().contiguous().view(torch.uint8).numpy().data))
                for bt in where}
        missing = list(dict.fromkeys(keys[bt] for bt in where if keys[bt] not in self._memo))
        if missing:
            first = {key: bt for bt in reversed(where) for key in [keys[bt]]}
            frames = torch.stack([pixel_values[first[key]] for key in missing])[None]
            encoded = type(self.base).embed_frames(self.base, frames, torch.ones(1, len(missing), dtype=torch.bool,
                                                                                 device=frames.device))[0]
            self.runs += len(missing)
            for key, embedding in zip(missing, encoded):
                self._memo[key] = embedding
        for bt in where:
            self._memo.move_to_end(keys[bt])
            out[bt] = self._memo[keys[bt]].to(out.dtype)
        while len(self._memo) > self.capacity:
            self._memo.popitem(last=False)
        return out


def _with_frame_memo(model: Any, memo: _FrameEmbeddingMemo) -> Any:
    """A shallow copy of the classifier ``model`` (same weights, same code) whose `AVEmotionModel` encodes frames
    through ``memo``; ``model`` itself is unchanged (other callers of the same model are not affected)."""
    inner = copy.copy(model.avemotion)
    inner.embed_frames = memo
    outer = copy.copy(model)
    outer._modules = dict(model._modules)
    outer._modules["avemotion"] = inner
    return outer


def _targets(start: float, end: float, n: int) -> np.ndarray:
    """Midpoints of n equal parts of [start, end) (the frame times `iter_windows` samples): float64 [n]."""
    return start + (np.arange(n, dtype=np.float64) + 0.5) * (max(end - start, 0.0) / n)


class LiveStream:
    """Rolling-window emotion recognition over frames and audio chunks pushed as they arrive.

    Args:
        pipe: an `AudioVisualEmotionPipeline` (``pipeline("audio-visual-emotion-recognition", ...)``); its
            processor and model are used as they are (see `from_model` for a model + processor).
        window_s: window length W (seconds, default 4: the default model's audio length; RAVDESS utterances last
            3-4 s); hop_s: a prediction every H seconds of stream time (default 0.5).
        origin: stream time of window 0's start; default: the first timestamp pushed.
        max_wait_s: once one stream (video or audio) passed a window's end, how long (stream time) the window
            waits for the other before it is predicted without it (a camera or microphone that stalls or is absent).
        silence_dbfs: audio RMS level under which a window is flagged ``silence``.
        top_k: number of scores per prediction (default: all).
        crops: ``"per_frame"`` (default): a frame's face crop is fixed when a window first uses it (boxes
            smoothed over time, causally), so every frame goes through the face detector and the vision encoder
            once. ``"window"``: crops exactly as the offline pipeline makes them (boxes smoothed within each
            window: predictions equal the offline timeline's, but each hop encodes all its frames again).
    """

    def __init__(self, pipe: Any, *, window_s: float = DEFAULT_WINDOW_S, hop_s: float = DEFAULT_HOP_S,
                 origin: float | None = None,
                 max_wait_s: float = 0.5, silence_dbfs: float = SILENCE_DBFS, top_k: int | None = None,
                 crops: str = "per_frame"):
        for name, value in (("window_s", window_s), ("hop_s", hop_s)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 < value < math.inf):
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        if not (isinstance(max_wait_s, (int, float)) and 0 <= max_wait_s < math.inf):
            raise ValueError(f"max_wait_s must be a number of seconds >= 0, got {max_wait_s!r}")
        if crops not in ("per_frame", "window"):
            raise ValueError(f"crops must be 'per_frame' or 'window', got {crops!r}")
        if getattr(pipe, "processor", None) is None or getattr(pipe, "model", None) is None:
            raise ValueError("LiveStream needs the audio-visual-emotion-recognition pipeline (with its processor "
                             f"and model), got {type(pipe).__name__}")
        self.pipe = pipe
        self.window_s, self.hop_s = float(window_s), float(hop_s)
        self.max_wait_s, self.silence_dbfs, self.top_k = float(max_wait_s), float(silence_dbfs), top_k
        # the pipeline's processor, with a face cropper that remembers detections, in a shallow copy of the
        # pipeline (same model, same code; the caller's pipeline is untouched)
        self.processor = copy.copy(pipe.processor)
        self.num_frames = int(self.processor.num_frames)
        self.sampling_rate = int(self.processor.sampling_rate)
        self.crops = crops
        self.cropper = _MemoFaceCropper(pipe.processor.face_cropper, capacity=4 * self.num_frames,
                                        per_frame=crops == "per_frame")
        self.processor._face_cropper = self.cropper
        self._pipe = copy.copy(pipe)
        self._pipe.processor = self.processor
        # and a model that encodes each frame once (consecutive windows share most frames)
        self.frame_memo = None
        inner = getattr(pipe.model, "avemotion", None)
        if inner is not None and callable(getattr(inner, "embed_frames", None)) \
                and getattr(inner.config, "uses_video", False):
            self.frame_memo = _FrameEmbeddingMemo(inner, capacity=4 * self.num_frames)
            self._pipe.model = _with_frame_memo(pipe.model, self.frame_memo)
        self.origin = None if origin is None else float(origin)
        self.next_index = 0  # first window not yet predicted or dropped
        self.skipped_total = 0
        self.late_frames = 0  # frames pushed with a timestamp not after the previous one (ignored)
        self.audio_gap_s = 0.0
        self.frames_pushed = 0
        self._gaps: list[tuple[float, float]] = []  # audio gaps filled with zeros (stream time), recent ones
        # video: retained frames (stream time, uint8 [H,W,3]); every time a frame was pushed (recent ones)
        self._frames: list[tuple[float, np.ndarray]] = []
        self._frame_times: list[float] = []
        self._video_until: float | None = None  # latest frame time
        # audio: 16 kHz mono samples with positions (media's sink: libswresample, as files are decoded)
        self._sink: _AudioSink | None = None
        self._audio_expected: float | None = None  # where the next chunk should start (input clock)
        self._lock = threading.Lock()  # buffers
        self._busy = threading.Lock()  # one prediction at a time

    @classmethod
    def from_model(cls, model: Any, processor: Any, **kwargs) -> LiveStream:
        """A LiveStream over a loaded `AVEmotionForAudioVisualClassification` and its `AVEmotionProcessor`."""
        from .pipeline_avemotion import AudioVisualEmotionPipeline

        return cls(AudioVisualEmotionPipeline(model=model, processor=processor), **kwargs)

    # ------------------------------------------------------------------------------------------ input

    def set_origin(self, origin: float) -> None:
        """Fix the stream time of window 0's start (before anything is pushed)."""
        with self._lock:
            if self._frames or self._sink is not None:
                raise ValueError("set_origin must be called before the first push")
            self.origin = float(origin)

    def _time(self, timestamp: Any, what: str) -> float:
        if isinstance(timestamp, bool) or not isinstance(timestamp, (int, float, np.number)) \
                or not math.isfinite(timestamp):
            raise ValueError(f"{what} timestamp must be a finite number of seconds, got {timestamp!r}")
        if self.origin is None:
            self.origin = float(timestamp)
        return float(timestamp)

    def push_video(self, frame: np.ndarray, timestamp: float) -> None:
        """One frame uint8 [H,W,3] RGB shown from ``timestamp`` (seconds, the stream's clock) on.

        Frames not later than the previous one are ignored (counted in ``late_frames``)."""
        if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
            raise ValueError("a video frame must be a uint8 RGB array [H,W,3], got "
                             f"{getattr(frame, 'dtype', type(frame).__name__)} {getattr(frame, 'shape', '')}")
        if frame.shape[0] == 0 or frame.shape[1] == 0:
            raise ValueError(f"a video frame has zero height or width: shape {frame.shape}")
        with self._lock:
            t = self._time(timestamp, "video")
            if self._video_until is not None and t <= self._video_until:
                self.late_frames += 1
                return
            if self._frames and frame.shape != self._frames[-1][1].shape:  # camera resolution changed
                self._frames = [f for f in self._frames if f[1].shape == frame.shape]
            if self._frames and self.frames_pushed > 1 and not self._shown_at_a_target(self._frames[-1][0], t):
                self._frames.pop()  # the previous frame is shown at no window's sample time: never needed
            self._frames.append((t, frame))
            self._frame_times.append(t)
            self._video_until = t
            self.frames_pushed += 1

    def _shown_at_a_target(self, t0: float, t1: float) -> bool:
        """Whether some sample time of a window not yet predicted lies in [t0, t1)."""
        w, h, n = self.window_s, self.hop_s, self.num_frames
        first = max(self.next_index, math.floor((t0 - self.origin - w) / h))
        last = math.floor((t1 - self.origin) / h)
        for k in range(first, last + 1):
            start = self.origin + k * h
            targets = _targets(start, start + w, n)
            if np.any((targets >= t0) & (targets < t1)):
                return True
        return False

    def push_audio(self, chunk: np.ndarray, sampling_rate: int, timestamp: float) -> None:
        """An audio chunk: float [N] in [-1, 1] (or [N,C]/[C,N], or int16/int32 PCM) at ``sampling_rate`` Hz,
        whose first sample is at ``timestamp``. Resampled to the model's rate with libswresample, as
        `load_clip` does. Chunks follow each other; one that starts more than 0.1 s after the previous one
        ended leaves a gap filled with zeros (flagged ``audio_gap``)."""
        if isinstance(sampling_rate, bool) or not isinstance(sampling_rate, (int, np.integer)) \
                or not 1000 <= sampling_rate <= 1_000_000:
            raise ValueError(f"sampling_rate must be an integer rate in Hz (1000-1000000), got {sampling_rate!r}")
        if np.size(chunk) == 0:
            return
        mono = _audio_from_input(chunk)
        with self._lock:
            t = self._time(timestamp, "audio")
            if self._sink is None:
                self._sink = _AudioSink(self.sampling_rate)
                self._sink.start = t - self.origin  # sample 0 of the sink is at this stream time
            elif t > self._audio_expected + _AUDIO_GAP_S:  # samples went missing: keep the clock with zeros
                gap = t - self._audio_expected
                self.audio_gap_s += gap
                self._gaps = self._gaps[-15:] + [(self._audio_expected, t)]
                self._push_samples(np.zeros(int(round(gap * sampling_rate)), np.float32), sampling_rate)
            self._push_samples(mono, sampling_rate)
            self._audio_expected = t + len(mono) / sampling_rate

    def push(self, item: tuple) -> None:
        """An item as `play_file` / `play_camera` give them: ``("video", frame, t)`` or ``("audio", samples,
        sampling_rate, t)``."""
        if item[0] == "video":
            self.push_video(item[1], item[2])
        elif item[0] == "audio":
            self.push_audio(item[1], item[2], item[3])
        else:
            raise ValueError(f"unknown item kind {item[0]!r}: expected 'video' or 'audio'")

    def _push_samples(self, mono: np.ndarray, rate: int) -> None:
        if not len(mono):
            return
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(mono, np.float32)[None, :], format="flt",
                                           layout="mono")
        frame.sample_rate = int(rate)
        frame.time_base = Fraction(1, int(rate))
        self._sink.push(frame)

    # ------------------------------------------------------------------------------------------ windows

    def _window_start(self, k: int) -> float:
        return self.origin + k * self.hop_s

    def _ready(self) -> list[int]:
        """Windows (not yet predicted) whose end every stream passed, or one stream passed ``max_wait_s`` ago."""
        if self.origin is None:
            return []
        ends = [self._video_until, self._audio_until()]
        known = [e for e in ends if e is not None]
        if not known:
            return []
        lead = max(known)
        ready, k = [], self.next_index
        while True:
            end = self._window_start(k) + self.window_s
            if not (all(e is not None and e >= end for e in ends) or lead >= end + self.max_wait_s):
                return ready
            ready.append(k)
            k += 1

    def _audio_until(self) -> float | None:
        sink = self._sink
        if sink is None or not sink.count:
            return None
        return self.origin + sink.end_time()

    def _window(self, k: int, end: float | None = None) -> tuple[Clip, dict]:
        """Window k (cut at stream time ``end`` when given) -> (Clip for the processor, facts for the flags)."""
        start = self._window_start(k)
        stop = start + self.window_s if end is None else min(start + self.window_s, end)
        frames, stamps = np.zeros((0, 0, 0, 3), np.uint8), np.zeros(0)
        info: dict = {"frames_received": 0, "frames_dropped": 0}
        has_video = bool(self._frames)
        if has_video:
            times = np.array([t for t, _ in self._frames])
            targets = _targets(start, stop, self.num_frames)
            picks = np.clip(np.searchsorted(times, targets, side="right") - 1, 0, len(times) - 1)
            frames = np.stack([self._frames[i][1] for i in picks])
            stamps = times[picks] - start
            info.update(self._frame_counts(start, stop))
        audio, has_audio = np.zeros(0, np.float32), self._sink is not None and self._sink.count > 0
        if has_audio:
            i0 = self._sink.position(start - self.origin)
            audio = self._sink.extract(i0, i0 + int(round((stop - start) * self.sampling_rate)))
            audio_until = self._audio_until()
            info["audio_gap"] = audio_until < stop - _AUDIO_GAP_S or self._gap_in(start, stop)
        clip = Clip(frames=frames, timestamps=stamps, audio=audio, sampling_rate=self.sampling_rate,
                    has_video=has_video, has_audio=has_audio, duration=float(stop - start),
                    start=float(start - self.origin))
        return clip, info

    def _gap_in(self, start: float, stop: float) -> bool:
        return any(start < g1 and g0 < stop for g0, g1 in self._gaps)

    def _frame_counts(self, start: float, stop: float) -> dict:
        """Frames pushed inside [start, stop) and frames missing there: every gap between frames (or between the
        window's edges and its frames) longer than 2.5 typical frame intervals counts the frames it lacks
        (arrival jitter of a frame or so is not a drop)."""
        times = np.array(self._frame_times)
        inside = times[(times >= start) & (times < stop)]
        steps = np.diff(times[-64:])
        step = float(np.median(steps)) if len(steps) else 0.0
        dropped = 0
        if step > 0:
            before = times[times < start]
            edges = np.concatenate([[before[-1] if len(before) else start], inside, [stop]])
            for a, b in zip(edges[:-1], edges[1:]):
                gap = min(b, stop) - max(a, start)
                if b - a > 2.5 * step and gap > 0:
                    dropped += max(0, int(round(gap / step)) - 1)
        return {"frames_received": int(len(inside)), "frames_dropped": dropped}

    def _advance(self, k: int) -> None:
        """Forget windows before k: frames and audio only they could use."""
        self.next_index = max(self.next_index, k)
        start = self._window_start(self.next_index)
        # keep the last frame shown at or before the first pending window's start, and everything after
        keep = 0
        for i, (t, _) in enumerate(self._frames):
            if t <= start:
                keep = i
        self._frames = self._frames[keep:]
        self._frame_times = [t for t in self._frame_times if t >= start - 2 * self.window_s]
        if self._sink is not None:
            self._sink.drop_before(self._sink.position(start - self.origin))

    # ------------------------------------------------------------------------------------------ output

    def poll(self, block: bool = True) -> LivePrediction | None:
        """Predict the newest window ready, dropping older ready ones (stale); None when none is ready.

        ``block=False``: return None at once while another thread's prediction is running (the caller's
        data stays buffered and the next poll takes the then-newest window)."""
        if not self._busy.acquire(blocking=block):
            return None
        try:
            with self._lock:
                ready = self._ready()
                if not ready:
                    return None
                k = ready[-1]
                t0 = time.perf_counter()
                clip, info = self._window(k)
                behind = max(e for e in (self._video_until, self._audio_until()) if e is not None)
                self.skipped_total += len(ready) - 1
                self._advance(k + 1)
            return self._predict(k, clip, info, t0, skipped=len(ready) - 1,
                                 behind_s=max(0.0, behind - (self._window_start(k) + self.window_s)))
        finally:
            self._busy.release()

    def finish(self) -> list[LivePrediction]:
        """End of stream: predict every remaining window that starts before the end (the last ones cut at the
        end, as the offline timeline does), none dropped. The stream cannot be pushed to afterwards."""
        with self._busy, self._lock:
            if self.origin is None:
                return []
            if self._sink is not None:
                self._sink.finish()  # the resampler's last samples
            end = self._end()
            out = []
            k = self.next_index
            while True:
                start = self._window_start(k)
                if start >= end - 1e-9 and (k > 0 or out):
                    break
                if k > 0 and start - self.hop_s + self.window_s >= end - 1e-9:
                    break  # the previous window already reached the end
                t0 = time.perf_counter()
                clip, info = self._window(k, end)
                out.append(self._predict(k, clip, info, t0, skipped=0, behind_s=0.0))
                k += 1
            self._advance(k)
            return out

    def _end(self) -> float:
        """Stream end: the last frame's end (+ one frame interval), or the audio end when it runs on longer
        than `AUDIO_OVERHANG_S` (as `load_clip` decides a file's span)."""
        video_end = None
        if self._video_until is not None:
            steps = np.diff(self._frame_times[-64:])
            video_end = self._video_until + (float(np.median(steps)) if len(steps) else 0.0)
        audio_end = self._audio_until()
        if video_end is None:
            return audio_end
        if audio_end is None or audio_end <= video_end + AUDIO_OVERHANG_S:
            return video_end
        return audio_end

    def _predict(self, k: int, clip: Clip, info: dict, t0: float, skipped: int, behind_s: float) -> LivePrediction:
        """The pipeline's own steps on one window: `_encode` (processor), `forward` (model), `postprocess`."""
        pipe = self._pipe
        runs = self.cropper.runs
        encoded = self.frame_memo.runs if self.frame_memo is not None else 0
        t1 = time.perf_counter()
        model_inputs = pipe._encode(pipe._processor_clip(clip), True, False)
        t2 = time.perf_counter()
        result = pipe.postprocess([pipe.forward(model_inputs)], top_k=self.top_k, return_metadata=True)
        scores = result["scores"]
        t3 = time.perf_counter()

        num_frames, faces = model_inputs["meta"]["num_frames"], model_inputs["meta"]["num_faces"]
        flags = []
        if not clip.has_video:
            flags.append("no_video")
        elif faces == 0:
            flags.append("no_face")
        if info.get("frames_dropped"):
            flags.append("dropped_frames")
        dbfs = None
        if not clip.has_audio:
            flags.append("no_audio")
        else:
            rms = float(np.sqrt(np.mean(np.square(clip.audio, dtype=np.float64)))) if clip.audio.size else 0.0
            dbfs = 20 * math.log10(rms) if rms > 0 else -math.inf
            if dbfs < self.silence_dbfs:
                flags.append("silence")
            if info.get("audio_gap"):
                flags.append("audio_gap")
        if skipped:
            flags.append("skipped_stale")
        start = self._window_start(k) - self.origin
        return LivePrediction(
            index=k, start=start, end=start + clip.duration, label=scores[0]["label"], score=scores[0]["score"],
            scores=scores, latency_ms=(t3 - t0) * 1e3, skipped=skipped, behind_s=behind_s, flags=tuple(flags),
            face_ratio=faces / num_frames if num_frames else 0.0, frames_received=info.get("frames_received", 0),
            frames_dropped=info.get("frames_dropped", 0), detections=self.cropper.runs - runs,
            frames_encoded=(self.frame_memo.runs - encoded) if self.frame_memo is not None else num_frames,
            audio_dbfs=None if dbfs is None else max(dbfs, -120.0), modalities=result.get("modalities"),
            timings_ms={"window": (t1 - t0) * 1e3, "features": (t2 - t1) * 1e3, "model": (t3 - t2) * 1e3})


# ---------------------------------------------------------------------------------------------- file playback


def play_file(path: str, speed: float = 1.0, max_pixels: int | None = None) -> Iterator[list[tuple]]:
    """Decode a media file and deliver its frames and audio chunks in presentation order, as a camera and a
    microphone would: items ``("video", frame uint8 [H,W,3], t)`` and ``("audio", float32 [N], sampling_rate,
    t)``, t in seconds from the first video frame (from the first audio sample without video).

    Yields lists of items: at ``speed`` 1.0 (real time; 2.0 twice as fast) each list holds what became due while
    the consumer was busy, so a slow consumer pushes it all and then polls once (stale hops are then dropped, as
    live). ``speed=0`` does not wait: one item per list, as fast as the consumer takes them (every hop is answered).
    Decoding errors raise `MediaError` like `load_clip`.
    """
    from .media import DEFAULT_MAX_PIXELS, _check_path, _errors_as_media_errors, _FrameConverter, _open

    if isinstance(speed, bool) or not isinstance(speed, (int, float)) or not (0 <= speed < math.inf):
        raise ValueError(f"speed must be a number >= 0, got {speed!r}")
    abspath, head = _check_path(path)
    name = str(path)
    with _errors_as_media_errors(name, head):
        src = _open(abspath, name, head)
        try:
            streams = [s for s in (src.video, src.audio) if s is not None]
            origin = None
            if src.video is not None and src.video.start_time is not None and src.video.time_base:
                origin = float(src.video.start_time * src.video.time_base)
            convert = _FrameConverter(name, DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels)
            count = 0
            wall0 = time.monotonic()

            def decoded() -> Iterator[tuple]:
                nonlocal origin, count
                for packet in src.container.demux(*streams):
                    for frame in packet.decode():
                        if frame.time is None:
                            continue
                        if origin is None:
                            origin = frame.time
                        if packet.stream.type == "video":
                            count += 1
                            yield ("video", convert(frame, count), frame.time - origin)
                        else:
                            yield ("audio", _frame_to_mono(frame), int(frame.sample_rate), frame.time - origin)

            batch: list[tuple] = []
            for item in _in_time_order(decoded(), len(streams)):
                if speed > 0:
                    wait = wall0 + item[-1] / speed - time.monotonic()
                    if wait > 0:  # not due yet: hand over what is, then wait
                        if batch:
                            yield batch
                            batch = []
                            wait = wall0 + item[-1] / speed - time.monotonic()
                        time.sleep(max(wait, 0.0))
                batch.append(item)
                if speed == 0:
                    yield batch
                    batch = []
            if batch:
                yield batch
        finally:
            src.container.close()


def _in_time_order(items: Iterator[tuple], num_streams: int, max_skew_s: float = 10.0) -> Iterator[tuple]:
    """Re-order items of interleaved streams (a file's demuxing order: its audio may run a second ahead of its
    video) by time, as live devices deliver them: an item is released once every stream has reached its time
    (or ``max_skew_s`` later for a stream that lags or has ended)."""
    import heapq

    heap: list = []
    latest: dict[str, float] = {}
    for seq, item in enumerate(items):
        latest[item[0]] = item[-1]
        heapq.heappush(heap, (item[-1], seq, item))
        lead = max(latest.values())
        floor = min(latest.values()) if len(latest) == num_streams else -math.inf
        while heap and (heap[0][0] <= floor or heap[0][0] <= lead - max_skew_s):
            yield heapq.heappop(heap)[2]
    while heap:
        yield heapq.heappop(heap)[2]


def stream_file(live: LiveStream, path: str, speed: float = 1.0) -> Iterator[LivePrediction]:
    """Play ``path`` through ``live`` (see `play_file`), polling after every batch of due items; yields each
    prediction, then those of `LiveStream.finish`."""
    if live.origin is None:
        live.set_origin(0.0)  # play_file's clock: 0 = the first video frame, as in the offline timeline
    for batch in play_file(path, speed=speed):
        for item in batch:
            live.push(item)
        prediction = live.poll()
        if prediction is not None:
            yield prediction
    yield from live.finish()


def _open_device(spec: str, kind: str):
    """``FORMAT:NAME`` (e.g. ``v4l2:/dev/video0``, ``pulse:default``) -> an opened PyAV input container."""
    fmt, _, name = spec.partition(":")
    if not name:
        raise ValueError(f"{kind} {spec!r}: expected FORMAT:DEVICE, e.g. pulse:default or alsa:hw:0")
    try:
        return av.open(name, format=fmt, timeout=5.0)
    except (av.error.FFmpegError, ValueError, OSError) as err:
        raise OSError(f"cannot open {kind} {spec!r}: {err}") from None


def play_camera(camera: int, mic: str | None = None) -> Iterator[list[tuple]]:
    """Frames of camera ``camera`` (``/dev/videoN`` through PyAV's v4l2 input, or OpenCV when PyAV cannot open
    it) and, with ``mic`` (``FORMAT:DEVICE``, e.g. ``pulse:default``), chunks of that microphone, as
    `play_file` yields them: lists of the items that arrived since the consumer last asked (t: seconds since the
    devices were opened, on this machine's monotonic clock).

    The devices are opened at once: OSError naming the device when one cannot be. The iterator runs until the
    caller stops it (``close()``)."""
    if isinstance(camera, bool) or not isinstance(camera, int) or camera < 0:
        raise ValueError(f"camera must be a device number >= 0, got {camera!r}")
    capture = None
    try:
        video = _open_device(f"v4l2:/dev/video{camera}", "camera")
    except OSError as err:
        try:
            import cv2
        except ImportError:
            raise err from None
        capture = cv2.VideoCapture(camera)
        if not capture.isOpened():
            raise OSError(f"cannot open camera {camera} (/dev/video{camera}) with PyAV or OpenCV") from None
        video = None
    audio = _open_device(mic, "microphone") if mic else None
    return _device_items(camera, video, capture, audio)


def _device_items(camera: int, video, capture, audio) -> Iterator[list[tuple]]:
    """Items of the opened devices (see `play_camera`), read by one thread per device."""
    import queue

    items: queue.Queue = queue.Queue(maxsize=256)
    stop = threading.Event()
    errors: list[BaseException] = []
    t0 = time.monotonic()

    def frames() -> Iterator[np.ndarray]:
        if capture is not None:
            while not stop.is_set():
                ok, bgr = capture.read()
                if not ok:
                    raise OSError(f"camera {camera} stopped delivering frames")
                yield np.ascontiguousarray(bgr[:, :, ::-1])
            return
        for frame in video.decode(video=0):
            if stop.is_set():
                return
            yield frame.to_ndarray(format="rgb24")

    def run_video() -> None:
        try:
            for frame in frames():
                items.put(("video", frame, time.monotonic() - t0))
        except BaseException as err:  # re-raised by the consumer
            errors.append(err)
        finally:
            items.put(None)

    def run_audio() -> None:
        try:
            for frame in audio.decode(audio=0):
                if stop.is_set():
                    return
                samples = _frame_to_mono(frame)
                items.put(("audio", samples, int(frame.sample_rate),
                           time.monotonic() - t0 - len(samples) / frame.sample_rate))
        except BaseException as err:
            errors.append(err)
            items.put(None)

    threads = [threading.Thread(target=run_video, daemon=True)]
    if audio is not None:
        threads.append(threading.Thread(target=run_audio, daemon=True))
    for thread in threads:
        thread.start()
    try:
        while True:
            batch = [items.get()]  # wait for one, then take whatever else has arrived
            while True:
                try:
                    batch.append(items.get_nowait())
                except queue.Empty:
                    break
            ended = None in batch
            batch = [item for item in batch if item is not None]
            if batch:
                yield batch
            if ended:
                if errors:
                    raise errors[0]
                return
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=2.0)
        for container in (video, audio):
            if container is not None:
                container.close()
        if capture is not None:
            capture.release()
