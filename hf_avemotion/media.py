"""Decode audio-visual media into :class:`Clip` objects: sampled RGB frames + 16 kHz mono audio.

This is the first stage of the system (``media -> processor -> model -> pipeline``). It knows
nothing about models. Three ways in:

* :func:`load_clip` -- one local file (any container FFmpeg reads: MP4/MOV, MKV/WebM, AVI,
  FLV, WAV, MP3, FLAC, ...) decoded into one clip, frames sampled uniformly over it;
* :func:`iter_windows` -- a long file decoded in one streaming pass, one clip per window;
* :func:`clip_from_arrays` -- frames and/or a waveform already in memory (webcam, datasets).

Decoding uses PyAV (which bundles FFmpeg); there is no dependency on a system ``ffmpeg`` or on
torchaudio. Every failure is raised as a subclass of :class:`MediaError` (itself a
``ValueError``) whose message names the file and says what is wrong; no PyAV exception escapes.

Time line of a clip. When the file has video, the clip spans the video stream: from its first
frame to the end of its last frame. The audio is cut (or zero-padded) to that same span so both
modalities cover the same interval; audio running past the last frame by less than
``AUDIO_OVERHANG_S`` (codec priming/padding, typically 20-50 ms) is dropped, a longer audio tail
extends the clip. Audio-only files span their audio. ``Clip.timestamps`` are frame presentation
times (from pts, so variable frame rate is handled) relative to the clip start.

Fallbacks (documented behaviour for odd but valid input):

* a still image (PNG, JPEG, ... whatever its file name) is refused with :class:`NotMediaError`
  -- it has no duration or audio, and a picture named ``.mp4`` is more likely a mistake than
  intent; pass images through :func:`clip_from_arrays` instead;
* a 1-frame video, or a clip shorter than ``num_frames`` frames (e.g. 0.1 s), loads: the
  nearest frames are repeated so the clip still has exactly ``num_frames`` frames. Callers that
  need a minimum length set ``min_duration`` (-> :class:`MediaTooShortError`);
* a file with one decodable and one undecodable stream (e.g. an unknown video codec beside PCM
  audio) loads the decodable one and emits a ``UserWarning``; with none decodable it raises
  :class:`UnsupportedCodecError`;
* isolated damaged packets are skipped with a ``UserWarning``; a file that stops before its
  header says it should (truncated download) or whose damage is widespread raises
  :class:`CorruptMediaError`.
"""

from __future__ import annotations

import math
import os
import re
import stat
import warnings
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
import av.error
import numpy as np

__all__ = [
    "AUDIO_OVERHANG_S",
    "Clip",
    "CorruptMediaError",
    "FrameTooLargeError",
    "MediaError",
    "MediaIsDirectoryError",
    "MediaNotFoundError",
    "MediaTooLongError",
    "MediaTooShortError",
    "NoUsableStreamError",
    "NotMediaError",
    "RemoteURLError",
    "UnsupportedCodecError",
    "check_clip",
    "clip_from_arrays",
    "iter_windows",
    "load_clip",
]

DEFAULT_SAMPLING_RATE = 16000
DEFAULT_MAX_PIXELS = 4096 * 4096
# Sampling rates accepted for in-memory audio and as a target: telephone speech is 8 kHz, studio PCM at most
# 768 kHz. The bounds keep a resampling ratio (and so the memory it allocates) below ~1000x.
MIN_SAMPLING_RATE, MAX_SAMPLING_RATE = 1000, 1_000_000
MIN_FPS, MAX_FPS = 1e-3, 1e4  # frame rates accepted for in-memory frames (one frame per 1000 s .. 10 kHz)
AUDIO_OVERHANG_S = 0.25  # audio past the last video frame shorter than this is codec padding
_MAX_SKEW_S = 10.0  # how far one stream may run ahead of the other before a window is closed
_DAMAGE_FRACTION = 0.1  # more damaged packets than this fraction -> CorruptMediaError
_HEAD_BYTES = 4096


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class MediaError(ValueError):
    """Base class of every media problem; the message names the file and what is wrong."""


class MediaNotFoundError(MediaError):
    """The path does not exist."""


class MediaIsDirectoryError(MediaNotFoundError):
    """The path is a directory, not a media file."""


class RemoteURLError(MediaError):
    """A URL (http://, rtsp://, ...) was given where a local file is expected; never fetched."""


class NotMediaError(MediaError):
    """The file is not audio/video: empty, text, a still image, random bytes, a device."""


class NoUsableStreamError(MediaError):
    """The container opens but holds neither a video nor an audio stream."""


class UnsupportedCodecError(MediaError):
    """The audio/video streams use codecs this FFmpeg build cannot decode."""


class CorruptMediaError(MediaError):
    """The file looks like media but its data is truncated or undecodable."""


class MediaTooShortError(MediaError):
    """The media is shorter than ``min_duration`` (or holds no decodable data at all)."""


class MediaTooLongError(MediaError):
    """The media is longer than ``max_duration``."""


class FrameTooLargeError(MediaError):
    """The video frame size (width*height) exceeds ``max_pixels``."""


# --------------------------------------------------------------------------------------------
# Clip
# --------------------------------------------------------------------------------------------


@dataclass
class Clip:
    """Decoded audio-visual clip.

    Attributes:
        frames: uint8 [T,H,W,3] RGB frames; shape (0,0,0,3) when there is no video.
        timestamps: float64 [T] presentation time of each frame, seconds from clip start.
        audio: float32 [N] mono waveform in [-1, 1] at ``sampling_rate``; shape (0,) if none.
        sampling_rate: audio sampling rate in Hz.
        has_video / has_audio: whether the modality is present (arrays are empty if not).
        duration: clip length in seconds.
        path: source file, if any.
        start: offset of this clip in the source file, seconds (non-zero for windows).
    """

    frames: np.ndarray
    timestamps: np.ndarray
    audio: np.ndarray
    sampling_rate: int
    has_video: bool
    has_audio: bool
    duration: float
    path: str | None = None
    start: float = 0.0

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    def __repr__(self) -> str:  # arrays are summarised, not printed
        return (
            f"Clip(frames={tuple(self.frames.shape)}, audio={tuple(self.audio.shape)}@"
            f"{self.sampling_rate}Hz, duration={self.duration:.3f}s, start={self.start:.3f}s, "
            f"has_video={self.has_video}, has_audio={self.has_audio}, path={self.path!r})"
        )


def _empty_frames() -> np.ndarray:
    return np.zeros((0, 0, 0, 3), dtype=np.uint8)


def _empty_audio() -> np.ndarray:
    return np.zeros((0,), dtype=np.float32)


# --------------------------------------------------------------------------------------------
# Path checks and file sniffing (no FFmpeg involved)
# --------------------------------------------------------------------------------------------

_URL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")

# (offset, magic bytes, human name): containers FFmpeg reads. Used to tell "damaged media"
# (CorruptMediaError) from "not media at all" (NotMediaError) when FFmpeg refuses a file.
_MEDIA_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (4, b"ftyp", "MP4/MOV"),
    (4, b"moov", "MOV"),
    (4, b"mdat", "MOV"),
    (4, b"free", "MOV"),
    (4, b"wide", "MOV"),
    (0, b"\x1aE\xdf\xa3", "Matroska/WebM"),
    (0, b"FLV", "FLV"),
    (0, b"OggS", "Ogg"),
    (0, b"ID3", "MP3"),
    (0, b"fLaC", "FLAC"),
    (0, b"RF64", "WAV"),
    (0, b"FORM", "AIFF"),
    (0, b"0&\xb2u\x8ef\xcf\x11", "ASF/WMV"),
    (0, b"\x00\x00\x01\xba", "MPEG-PS"),
    (0, b"YUV4MPEG2", "Y4M"),
    (0, b"#!AMR", "AMR"),
    (0, b"caff", "CAF"),
    (0, b".snd", "AU"),
)
_IMAGE_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\x89PNG\r\n\x1a\n", "PNG"),
    (0, b"\xff\xd8\xff", "JPEG"),
    (0, b"BM", "BMP"),
    (0, b"II*\x00", "TIFF"),
    (0, b"MM\x00*", "TIFF"),
)


def _sniff(head: bytes) -> str | None:
    """Name of the media container ``head`` (first bytes of a file) starts like, else None."""
    for offset, magic, name in _MEDIA_MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return name
    if head[:4] == b"RIFF" and head[8:12] in (b"AVI ", b"WAVE", b"AVIX"):
        return "AVI" if head[8:11] == b"AVI" else "WAV"
    if len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0:
        return "MPEG audio (MP3/AAC)"
    if len(head) > 188 and head[0] == 0x47 and head[188] == 0x47:
        return "MPEG-TS"
    return None


def _sniff_image(head: bytes) -> str | None:
    for offset, magic, name in _IMAGE_MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return name
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    return None


def _looks_like_text(head: bytes) -> bool:
    """True for a head of printable UTF-8 text (no NUL byte)."""
    if not head or b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # allow a multi-byte character cut by the sample end
            return False
    control = sum(b < 32 and b not in (9, 10, 12, 13) for b in head)
    return control <= len(head) // 100


def _check_path(path: Any) -> tuple[str, bytes]:
    """Validate a local media path; returns (absolute path, first bytes). Raises MediaError."""
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    text = os.fspath(path)
    if _URL_RE.match(text):
        raise RemoteURLError(
            f"{text!r} is a URL; only local files are read (no network access is attempted). "
            "Download it first and pass the local path."
        )
    if text == "":
        raise MediaNotFoundError("empty path given: no media file")
    if "\x00" in text:
        raise MediaNotFoundError(f"{text!r}: no such file (the path contains a NUL byte)")
    abspath = os.path.abspath(text)  # absolute: FFmpeg never reads "name:..." as a protocol
    try:
        st = os.stat(abspath)
    except FileNotFoundError:
        raise MediaNotFoundError(f"{text!r}: no such file") from None
    except NotADirectoryError:
        raise MediaNotFoundError(f"{text!r}: no such file (a parent is not a directory)") from None
    except OSError as exc:
        raise MediaError(f"{text!r}: cannot access file ({exc.strerror or exc})") from None
    if stat.S_ISDIR(st.st_mode):
        raise MediaIsDirectoryError(f"{text!r} is a directory, not a media file")
    if not stat.S_ISREG(st.st_mode):
        raise NotMediaError(f"{text!r} is not a regular file (device, pipe or socket)")
    if st.st_size == 0:
        raise NotMediaError(f"{text!r} is empty (0 bytes)")
    try:
        with open(abspath, "rb") as fh:
            head = fh.read(_HEAD_BYTES)
    except OSError as exc:
        raise MediaError(f"{text!r}: cannot read file ({exc.strerror or exc})") from None
    if _sniff(head) is None:
        image = _sniff_image(head)
        if image is not None:
            raise NotMediaError(
                f"{text!r} is a {image} still image, not audio/video; "
                "use clip_from_arrays(frames=...) for images"
            )
        if _looks_like_text(head):
            raise NotMediaError(f"{text!r} is a text file, not audio/video")
    return abspath, head


# --------------------------------------------------------------------------------------------
# Translating PyAV / OS exceptions
# --------------------------------------------------------------------------------------------


def _describe(exc: BaseException) -> str:
    msg = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return str(msg)


def _translate(exc: BaseException, name: str, head: bytes) -> MediaError:
    """Map an exception raised by PyAV/the OS while reading ``name`` to a MediaError."""
    if isinstance(exc, MediaError):
        return exc
    reason = _describe(exc)
    if isinstance(exc, (av.error.DecoderNotFoundError, av.error.PatchWelcomeError)):
        return UnsupportedCodecError(
            f"{name!r}: codec not supported by this FFmpeg build ({reason})"
        )
    if isinstance(exc, FileNotFoundError):
        return MediaNotFoundError(f"{name!r}: no such file ({reason})")
    if isinstance(exc, PermissionError):
        return MediaError(f"{name!r}: permission denied ({reason})")
    if isinstance(exc, (av.error.MemoryError, MemoryError)):
        return CorruptMediaError(f"{name!r}: out of memory while decoding ({reason})")
    kind = _sniff(head)
    if kind is None:
        return NotMediaError(f"{name!r} is not a recognised audio/video file ({reason})")
    return CorruptMediaError(f"{name!r} looks like {kind} but is damaged or truncated ({reason})")


@contextmanager
def _errors_as_media_errors(name: str, head: bytes):
    try:
        yield
    except MediaError:
        raise
    except (av.error.FFmpegError, OSError, MemoryError) as exc:
        raise _translate(exc, name, head) from exc


# --------------------------------------------------------------------------------------------
# Container opening, stream choice, header checks
# --------------------------------------------------------------------------------------------


@dataclass
class _Source:
    """An opened file and the streams chosen from it."""

    container: Any
    name: str  # as given by the caller, for messages
    head: bytes
    video: Any  # av.VideoStream | None
    audio: Any  # av.AudioStream | None


def _is_still_image_format(fmt_name: str) -> bool:
    return fmt_name == "image2" or fmt_name.endswith("_pipe")


def _open(abspath: str, name: str, head: bytes) -> _Source:
    """Open with FFmpeg restricted to local files; pick the best video and audio streams."""
    try:
        container = av.open(
            abspath,
            metadata_errors="replace",
            container_options={"protocol_whitelist": "file"},
        )
    except (av.error.FFmpegError, OSError) as exc:
        raise _translate(exc, name, head) from exc
    try:
        fmt = container.format.name
        if _is_still_image_format(fmt):
            raise NotMediaError(
                f"{name!r} is a still image ({fmt}), not audio/video; "
                "use clip_from_arrays(frames=...) for images"
            )
        if fmt == "tty":
            raise NotMediaError(f"{name!r} is a text file, not audio/video")
        video, audio = _select_streams(container, name)
        return _Source(container, name, head, video, audio)
    except BaseException:
        container.close()
        raise


def _select_streams(container: Any, name: str) -> tuple[Any, Any]:
    """Best video stream (no cover art) and best audio stream (default, else first decodable)."""
    attached = av.stream.Disposition.attached_pic
    videos = [s for s in container.streams.video if not (s.disposition & attached)]
    audios = list(container.streams.audio)
    if not videos and not audios:
        kinds = sorted({s.type for s in container.streams}) or ["none"]
        raise NoUsableStreamError(
            f"{name!r} has no audio or video stream (streams found: {', '.join(kinds)})"
        )
    ok_videos = [s for s in videos if s.codec_context is not None]
    ok_audios = [s for s in audios if s.codec_context is not None]
    if not ok_videos and not ok_audios:
        raise UnsupportedCodecError(
            f"{name!r}: no decoder in this FFmpeg build for its "
            f"{len(videos)} video / {len(audios)} audio stream(s)"
        )
    for kind, found, ok in (("video", videos, ok_videos), ("audio", audios, ok_audios)):
        if found and not ok:
            warnings.warn(
                f"{name!r}: the {kind} stream uses a codec this FFmpeg build cannot decode; "
                f"loading without {kind}",
                UserWarning,
                stacklevel=4,
            )
    default = av.stream.Disposition.default

    def video_rank(s: Any) -> tuple:
        cc = s.codec_context
        return (not (s.disposition & default), -(cc.width or 0) * (cc.height or 0), s.index)

    video = min(ok_videos, key=video_rank) if ok_videos else None
    audio = (
        min(ok_audios, key=lambda s: (not (s.disposition & default), s.index))
        if ok_audios
        else None
    )
    return video, audio


def _stream_span(stream: Any) -> tuple[float | None, float | None]:
    """(start, duration) in seconds from a stream header; None where unknown."""
    tb = stream.time_base
    if not tb:
        return None, None
    start = float(stream.start_time * tb) if stream.start_time is not None else None
    dur = (
        float(stream.duration * tb) if stream.duration is not None and stream.duration > 0 else None
    )
    return start, dur


def _header_duration(src: _Source) -> float | None:
    """Duration (s) the headers claim for the chosen streams; None when they do not say."""
    ends, starts = [], []
    for s in (src.video, src.audio):
        if s is None:
            continue
        start, dur = _stream_span(s)
        if dur is not None:
            starts.append(start or 0.0)
            ends.append((start or 0.0) + dur)
    if ends:
        return max(ends) - min(starts)
    if src.container.duration is not None and src.container.duration > 0:
        return src.container.duration / av.time_base
    return None


def _check_header_limits(
    src: _Source, max_pixels: int | None, max_duration: float | None
) -> float | None:
    """Refuse oversize frames / overlong media from the headers, before decoding anything."""
    if src.video is not None and max_pixels is not None:
        cc = src.video.codec_context
        w, h = cc.width or 0, cc.height or 0
        if w * h > max_pixels:
            raise FrameTooLargeError(
                f"{src.name!r}: video frames are {w}x{h} = {w * h} pixels, above max_pixels={max_pixels}"
            )
    duration = _header_duration(src)
    if max_duration is not None and duration is not None and duration > max_duration:
        raise MediaTooLongError(
            f"{src.name!r} lasts {duration:.1f} s according to its header, "
            f"above max_duration={max_duration:g} s"
        )
    return duration


# --------------------------------------------------------------------------------------------
# Packet loop: one guarded, error-translating pass over the chosen streams
# --------------------------------------------------------------------------------------------


@dataclass
class _DecodeStats:
    packets: int = 0
    damaged: int = 0  # corrupt-flagged packets + packets the decoder rejected
    demux_error: str | None = None


def _decode(src: _Source, streams: Sequence[Any], stats: _DecodeStats) -> Iterator[tuple[str, Any]]:
    """Yield ("video"|"audio", frame) in file order. Damaged packets are counted and skipped.

    Terminates on any input: every packet consumes file bytes, and a packet budget proportional
    to the file size stops demuxers that would loop.
    """
    try:
        size = os.path.getsize(src.container.name)
    except OSError:
        size = 1 << 30
    budget = size + 10_000
    demux = src.container.demux(*streams)
    while True:
        try:
            packet = next(demux)
        except StopIteration:
            return
        except av.error.EOFError:
            return
        except (av.error.DecoderNotFoundError, av.error.PatchWelcomeError):
            raise
        except av.error.FFmpegError as exc:
            stats.demux_error = _describe(exc)
            return
        stats.packets += packet.size > 0  # flush packets carry no data
        if stats.packets > budget:
            raise CorruptMediaError(
                f"{src.name!r}: demuxer does not advance (more packets than bytes)"
            )
        if packet.is_corrupt:
            stats.damaged += 1
        try:
            frames = packet.decode()
        except (av.error.DecoderNotFoundError, av.error.PatchWelcomeError):
            raise
        except av.error.FFmpegError:
            stats.damaged += 1
            continue
        kind = packet.stream.type
        for frame in frames:
            yield kind, frame


def _require_data(src: _Source, stats: _DecodeStats, vspan, aspan) -> None:
    """Raise when nothing decoded; warn when a chosen stream gave nothing."""
    if vspan is None and aspan is None:
        if stats.packets or stats.damaged or stats.demux_error:
            raise CorruptMediaError(
                f"{src.name!r} is damaged: {stats.packets} data packet(s) but no decodable "
                "video frame or audio sample"
            )
        raise MediaTooShortError(f"{src.name!r} holds no video frames or audio samples (0 s)")
    for kind, stream, span in (("video", src.video, vspan), ("audio", src.audio, aspan)):
        if stream is not None and span is None:
            warnings.warn(
                f"{src.name!r}: the {kind} stream decoded to nothing; loading without {kind}",
                UserWarning,
                stacklevel=4,
            )


def _check_damage(src: _Source, stats: _DecodeStats, shortfall: float | None) -> None:
    """Raise CorruptMediaError for truncated/badly damaged data; warn for isolated damage."""
    damaged = stats.damaged + (stats.demux_error is not None)
    if shortfall is not None and damaged:
        raise CorruptMediaError(
            f"{src.name!r} is truncated or damaged: decodable data ends {shortfall:.2f} s before "
            f"the end its header announces ({damaged} damaged packet(s)"
            + (f", demuxer: {stats.demux_error}" if stats.demux_error else "")
            + ")"
        )
    if damaged > max(1, _DAMAGE_FRACTION * stats.packets):
        raise CorruptMediaError(
            f"{src.name!r} is damaged: {damaged} of {stats.packets} packets could not be decoded"
        )
    if damaged:
        warnings.warn(
            f"{src.name!r}: skipped {damaged} damaged packet(s) of {stats.packets}",
            UserWarning,
            stacklevel=3,
        )


# --------------------------------------------------------------------------------------------
# Video: pts clock and frame conversion
# --------------------------------------------------------------------------------------------


class _VideoClock:
    """Turns decoded frames into monotonic presentation times (s) and tracks the stream end."""

    def __init__(self, stream: Any):
        rate = stream.average_rate or stream.guessed_rate or stream.codec_context.framerate
        self.nominal = float(1 / rate) if rate else None
        self.first: float | None = None
        self.last: float | None = None
        self.last_duration: float | None = None
        self.count = 0
        self._diffs: deque[float] = deque(maxlen=16)

    def time_of(self, frame: Any) -> float:
        t = frame.time
        dur = (
            float(frame.duration * frame.time_base) if frame.duration and frame.time_base else None
        )
        if t is None:
            t = 0.0 if self.last is None else self.last + (self.step() or 0.0)
        if self.last is not None:
            if t < self.last:  # broken pts going backwards: keep time monotonic
                t = self.last
            self._diffs.append(t - self.last)
        if self.first is None:
            self.first = t
        self.last = t
        self.last_duration = dur
        self.count += 1
        return t

    def step(self) -> float | None:
        diffs = [d for d in self._diffs if d > 0]
        if diffs:
            return float(np.median(diffs))
        return self.nominal

    def end(self) -> float | None:
        """Presentation end of the last frame (its pts + its duration)."""
        if self.last is None:
            return None
        return self.last + (self.last_duration or self.step() or 0.0)


class _FrameConverter:
    """Converts picked av.VideoFrames to uint8 [H,W,3] RGB, all at the first frame's size and rotation
    (damaged streams can change both mid-stream; the frames of a clip must still stack)."""

    def __init__(
        self,
        name: str,
        max_pixels: int | None,
        size: tuple[int, int] | None = None,
        turns: int | None = None,
    ):
        self.name = name
        self.max_pixels = max_pixels
        self.size: tuple[int, int] | None = size  # (width, height) of output arrays
        self.turns: int | None = turns  # quarter turns counter-clockwise (display matrix)
        self._cache: tuple[int, np.ndarray] | None = None

    def check(self, frame: Any) -> None:
        if self.max_pixels is not None and frame.width * frame.height > self.max_pixels:
            raise FrameTooLargeError(
                f"{self.name!r}: a decoded frame is {frame.width}x{frame.height} pixels, "
                f"above max_pixels={self.max_pixels}"
            )

    def __call__(self, frame: Any, key: int) -> np.ndarray:
        """RGB array of ``frame``; ``key`` (frame number) lets repeated picks share one array."""
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        if self.size is None:
            self.size = (frame.width, frame.height)
        w, h = self.size
        if (frame.width, frame.height) == (w, h):
            rgb = frame.to_ndarray(format="rgb24")
        else:  # resolution changed mid-stream: keep one size so frames stack
            rgb = frame.to_ndarray(format="rgb24", width=w, height=h)
        if self.turns is None:
            rotation = frame.rotation or 0
            self.turns = int(round(rotation / 90.0)) % 4 if math.isfinite(rotation) else 0
        if self.turns:  # display matrix (phone videos): rotate counter-clockwise by `rotation` degrees
            rgb = np.ascontiguousarray(np.rot90(rgb, self.turns))
        self._cache = (key, rgb)
        return rgb


def _uniform_targets(start: float, end: float, n: int) -> np.ndarray:
    """Midpoints of ``n`` equal segments of [start, end): float64 [n]."""
    span = max(end - start, 0.0)
    return start + (np.arange(n, dtype=np.float64) + 0.5) * (span / n)


def _pick_indices(times: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Index of the frame displayed at each target time (last frame with time <= target)."""
    idx = np.searchsorted(times, targets, side="right") - 1
    return np.clip(idx, 0, len(times) - 1)


# --------------------------------------------------------------------------------------------
# Audio: decode -> mono float32 at the target rate
# --------------------------------------------------------------------------------------------

_SAMPLE_SCALE = {
    "u8": (128.0, 128.0),
    "s16": (0.0, 32768.0),
    "s32": (0.0, 2147483648.0),
    "s64": (0.0, 2.0**63),
}


_SAMPLE_DTYPE = {"u8": "u1", "s16": "<i2", "s32": "<i4", "s64": "<i8", "flt": "<f4", "dbl": "<f8"}


def _frame_samples(frame: Any) -> np.ndarray:
    """Samples of an audio frame as [C, N] in its own dtype.

    Planes are read one channel at a time with ``AudioPlane(frame, i)``: PyAV's ``frame.planes`` (and so
    ``to_ndarray``) counts planes up to the first NULL pointer, which for planar frames with 8 or more
    channels runs past FFmpeg's pointer array and reads garbage (a damaged AAC header that announces 9
    channels crashed the interpreter). Raises ValueError for formats or sizes it cannot read.
    """
    from av.audio.plane import AudioPlane

    fmt = frame.format
    name = fmt.name.rstrip("p")
    if name not in _SAMPLE_DTYPE:
        raise ValueError(f"unsupported sample format {fmt.name}")
    dtype = np.dtype(_SAMPLE_DTYPE[name])
    channels, samples = frame.layout.nb_channels or 1, frame.samples
    if not fmt.is_planar:
        plane = AudioPlane(frame, 0)
        if plane.buffer_size < samples * channels * dtype.itemsize:
            raise ValueError("audio frame smaller than its sample count")
        return np.frombuffer(plane, dtype=dtype, count=samples * channels).reshape(-1, channels).T
    rows = []
    for i in range(channels):
        plane = AudioPlane(frame, i)
        if plane.buffer_size < samples * dtype.itemsize:
            raise ValueError("audio plane smaller than its sample count")
        rows.append(np.frombuffer(plane, dtype=dtype, count=samples))
    return np.stack(rows)


def _frame_to_mono(frame: Any) -> np.ndarray:
    """numpy down-mix of any audio frame (fallback when libswresample refuses its layout)."""
    arr = _frame_samples(frame)
    name = frame.format.name.rstrip("p")
    if name in _SAMPLE_SCALE:
        offset, scale = _SAMPLE_SCALE[name]
        arr = (arr.astype(np.float64) - offset) / scale
    return arr.astype(np.float32).mean(axis=0)


class _AudioSink:
    """Collects decoded audio as mono float32 at ``rate``, with absolute sample positions.

    Sample ``i`` (counted from the first decoded frame) is at time ``start + i / rate``.
    ``drop_before`` releases samples no longer needed (streaming windows).
    """

    def __init__(self, rate: int):
        self.rate = rate
        self.start: float | None = None
        self.count = 0  # samples produced so far
        self._chunks: deque[tuple[int, np.ndarray]] = deque()  # (position, samples)
        self._resampler: Any = None
        self._key: tuple | None = None
        self._numpy_mix = False
        self.skipped = 0  # frames that could not be read (counted as damaged packets)

    def _new_resampler(self) -> Any:
        # rematrix_maxval=1 normalises the down-mix matrix: mono stays within [-1, 1].
        return av.AudioResampler(
            format="flt", layout="mono", rate=self.rate, options={"rematrix_maxval": "1.0"}
        )

    def _take(self, frames: list) -> None:
        for f in frames:  # resampler output: packed mono float32
            data = f.to_ndarray().reshape(-1)
            if not np.isfinite(data).all():  # float PCM can carry NaN/inf: silence them
                data = np.nan_to_num(data, nan=0.0, posinf=1.0, neginf=-1.0)
            if data.size:
                self._chunks.append((self.count, data))
                self.count += data.size

    def push(self, frame: Any) -> None:
        if self.start is None:
            self.start = frame.time if frame.time is not None else 0.0
        key = (frame.format.name, frame.layout.name, frame.layout.nb_channels, frame.sample_rate)
        if key != self._key:  # format change mid-stream: drain and start a new resampler
            self.finish()
            self._resampler, self._key, self._numpy_mix = self._new_resampler(), key, False
        if not self._numpy_mix:
            try:
                self._take(self._resampler.resample(frame))
                return
            except (ValueError, av.error.FFmpegError):
                self._numpy_mix = True  # unusual layout: down-mix in numpy, resample mono
                self._resampler = self._new_resampler()
        try:
            samples = _frame_to_mono(frame)
        except ValueError:  # unreadable frame (unknown format, short buffer): count it as damage
            self.skipped += 1
            return
        mono = av.AudioFrame.from_ndarray(samples[None, :], format="flt", layout="mono")
        mono.sample_rate = frame.sample_rate
        if frame.time_base is not None:
            mono.pts, mono.time_base = frame.pts, frame.time_base
        self._take(self._resampler.resample(mono))

    def finish(self) -> None:
        if self._resampler is not None:
            self._take(self._resampler.resample(None))
            self._resampler, self._key = None, None

    def end_time(self) -> float | None:
        return None if self.start is None else self.start + self.count / self.rate

    def position(self, t: float) -> int:
        """Sample position of absolute time ``t``."""
        return int(round((t - (self.start or 0.0)) * self.rate))

    def extract(self, i0: int, i1: int) -> np.ndarray:
        """Samples [i0, i1) as float32 [i1-i0]; zeros where nothing was decoded."""
        out = np.zeros(max(i1 - i0, 0), dtype=np.float32)
        for pos, data in self._chunks:
            lo, hi = max(i0, pos), min(i1, pos + data.size)
            if lo < hi:
                out[lo - i0 : hi - i0] = data[lo - pos : hi - pos]
        np.clip(out, -1.0, 1.0, out=out)
        return out

    def drop_before(self, i: int) -> None:
        while self._chunks and self._chunks[0][0] + self._chunks[0][1].size <= i:
            self._chunks.popleft()


def _timeline(
    video: tuple[float, float] | None, audio: tuple[float, float] | None
) -> tuple[float, float]:
    """Clip span (start, end), absolute seconds, from the decoded video and audio spans."""
    if video is None:
        assert audio is not None
        return audio
    if audio is None or audio[1] <= video[1] + AUDIO_OVERHANG_S:
        return video
    return video[0], audio[1]  # real audio tail beyond the last frame


def _check_progress(src: _Source, elapsed: float, max_duration: float | None) -> None:
    if max_duration is not None and elapsed > max_duration:
        raise MediaTooLongError(
            f"{src.name!r} runs past max_duration={max_duration:g} s while decoding "
            f"(reached {elapsed:.1f} s)"
        )


# --------------------------------------------------------------------------------------------
# load_clip
# --------------------------------------------------------------------------------------------


def _check_sampling_rate(sampling_rate: Any, name: str = "sampling_rate") -> int:
    """``sampling_rate`` as an int in [MIN_SAMPLING_RATE, MAX_SAMPLING_RATE]; ValueError otherwise."""
    if isinstance(sampling_rate, bool) or not isinstance(sampling_rate, (int, np.integer)) or sampling_rate <= 0:
        raise ValueError(f"{name} must be a positive int (Hz), got {sampling_rate!r}")
    if not MIN_SAMPLING_RATE <= sampling_rate <= MAX_SAMPLING_RATE:
        raise ValueError(
            f"{name}={int(sampling_rate)} Hz is outside the supported range "
            f"{MIN_SAMPLING_RATE}-{MAX_SAMPLING_RATE} Hz"
        )
    return int(sampling_rate)


def _validate_common(sampling_rate: int, max_pixels: int | None) -> None:
    _check_sampling_rate(sampling_rate)
    if max_pixels is not None and max_pixels <= 0:
        raise ValueError(f"max_pixels must be positive or None, got {max_pixels!r}")


def load_clip(
    path: str | os.PathLike,
    num_frames: int | None = None,
    fps: float | None = None,
    sampling_rate: int = DEFAULT_SAMPLING_RATE,
    *,
    max_duration: float | None = 600.0,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    min_duration: float = 0.0,
) -> Clip:
    """Decode a local audio/video file into a :class:`Clip`.

    Args:
        path: local file; URLs raise :class:`RemoteURLError` (nothing is fetched).
        num_frames: frames to sample uniformly (midpoints of ``num_frames`` equal segments of
            the clip); frames are repeated when the clip has fewer. Mutually exclusive with fps.
        fps: sample at this rate instead (``round(duration * fps)`` frames, at least 1).
            Neither given: every decoded frame.
        sampling_rate: output audio rate (Hz); audio is down-mixed to mono float32.
        max_duration: refuse longer media (:class:`MediaTooLongError`), from the header before
            decoding and again while decoding; None disables.
        max_pixels: refuse frames with more pixels (:class:`FrameTooLargeError`), checked from
            the codec header before any frame is decoded; None disables.
        min_duration: refuse shorter media (:class:`MediaTooShortError`).

    Returns:
        Clip with frames uint8 [T,H,W,3], timestamps float64 [T], audio float32 [N].

    Only the sampled frames are converted to RGB. The frame choice is planned from the header
    duration during one decoding pass and checked against the decoded timestamps; if the header
    was wrong, the video is decoded a second time to pick the right frames.
    """
    if num_frames is not None and fps is not None:
        raise ValueError("give num_frames or fps, not both")
    if num_frames is not None and (not isinstance(num_frames, (int, np.integer)) or num_frames < 1):
        raise ValueError(f"num_frames must be a positive int, got {num_frames!r}")
    if fps is not None and not (fps > 0 and math.isfinite(fps)):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    _validate_common(sampling_rate, max_pixels)
    abspath, head = _check_path(path)
    name = os.fsdecode(os.fspath(path))
    with _errors_as_media_errors(name, head):
        return _load_clip(
            abspath,
            name,
            head,
            num_frames,
            fps,
            int(sampling_rate),
            max_duration,
            max_pixels,
            min_duration,
        )


def _count_for(num_frames: int | None, fps: float | None, duration: float) -> int | None:
    if num_frames is not None:
        return int(num_frames)
    if fps is not None:
        return max(1, int(round(duration * fps)))
    return None


def _load_clip(
    abspath, name, head, num_frames, fps, sampling_rate, max_duration, max_pixels, min_duration
) -> Clip:
    src = _open(abspath, name, head)
    try:
        header_duration = _check_header_limits(src, max_pixels, max_duration)
        vstart, vdur = _stream_span(src.video) if src.video is not None else (None, None)
        if vdur is None and header_duration is not None and src.video is not None:
            vdur = header_duration
        sampling = num_frames is not None or fps is not None
        planned: np.ndarray | None = None  # target times (absolute) planned from the header
        if src.video is not None and sampling and vdur is not None:
            v0 = vstart or 0.0
            planned = _uniform_targets(v0, v0 + vdur, _count_for(num_frames, fps, vdur))

        streams = [s for s in (src.video, src.audio) if s is not None]
        if src.video is not None:
            src.video.thread_type = "AUTO"
        stats = _DecodeStats()
        clock = _VideoClock(src.video) if src.video is not None else None
        convert = _FrameConverter(name, max_pixels)
        sink = _AudioSink(sampling_rate) if src.audio is not None else None
        times: list[float] = []  # every decoded frame time (8 bytes each)
        picked: dict[int, np.ndarray] = {}  # frame number -> RGB, for sampled frames
        plan_idx: list[int] = []  # frame number chosen for each planned target
        prev: Any = None
        origin: float | None = None

        for kind, frame in _decode(src, streams, stats):
            if kind == "video":
                convert.check(frame)
                t = clock.time_of(frame)
                k = clock.count - 1
                times.append(t)
                if not sampling:
                    picked[k] = convert(frame, k)
                elif planned is not None:
                    while len(plan_idx) < len(planned) and planned[len(plan_idx)] < t:
                        j = k - 1 if prev is not None else k
                        picked[j] = convert(prev if prev is not None else frame, j)
                        plan_idx.append(j)
                prev = frame
                now = t
            else:
                sink.push(frame)
                now = sink.end_time()
            if origin is None:
                origin = now
            _check_progress(src, now - min(origin, now), max_duration)
            origin = min(origin, now)
        if sink is not None:
            sink.finish()
        if planned is not None and prev is not None:
            while len(plan_idx) < len(planned):  # targets after the last frame
                j = clock.count - 1
                picked[j] = convert(prev, j)
                plan_idx.append(j)
        prev = None

        vspan = (clock.first, clock.end()) if clock is not None and clock.count else None
        aspan = (sink.start, sink.end_time()) if sink is not None and sink.count else None
        stats.damaged += sink.skipped if sink is not None else 0
        _require_data(src, stats, vspan, aspan)
        t0, t1 = _timeline(vspan, aspan)
        _check_damage(src, stats, _shortfall(src, vspan, aspan))
        duration = t1 - t0
        _check_progress(src, duration, max_duration)
        if duration < min_duration:
            raise MediaTooShortError(
                f"{name!r} lasts {duration:.3f} s, below min_duration={min_duration:g} s"
            )

        frames, stamps = _empty_frames(), np.zeros((0,), dtype=np.float64)
        if vspan is not None:
            times_arr = np.asarray(times, dtype=np.float64)
            if not sampling:
                idx = np.arange(len(times_arr))
            else:
                idx = _pick_indices(
                    times_arr, _uniform_targets(t0, t1, _count_for(num_frames, fps, duration))
                )
            missing = sorted(set(idx.tolist()) - set(picked))
            if missing:  # header plan was off: decode the video again for exactly these frames
                picked = {j: picked[j] for j in set(idx.tolist()) if j in picked}
                picked.update(
                    _redecode_frames(abspath, name, head, set(missing), max_pixels, convert)
                )
            frames = np.stack([picked[j] for j in idx.tolist()])
            stamps = times_arr[idx] - t0
        audio = _empty_audio()
        if aspan is not None:
            i0 = sink.position(t0)
            audio = sink.extract(i0, i0 + int(round(duration * sampling_rate)))
        return Clip(
            frames=frames,
            timestamps=stamps,
            audio=audio,
            sampling_rate=sampling_rate,
            has_video=vspan is not None,
            has_audio=aspan is not None,
            duration=float(duration),
            path=name,
            start=0.0,
        )
    finally:
        src.container.close()


def _shortfall(src: _Source, vspan, aspan) -> float | None:
    """Seconds by which decoded data ends before the header's stream end (> 2 frames), else None."""
    worst = None
    if all(_stream_span(s)[1] is None for s in (src.video, src.audio) if s is not None):
        c = src.container  # only a container-level duration (Matroska, FLV, ...)
        if c.duration and c.duration > 0:
            header_end = ((c.start_time or 0) + c.duration) / av.time_base
            got_end = max(span[1] for span in (vspan, aspan) if span is not None)
            gap = header_end - got_end
            return gap if gap > 0.25 else None
        return None
    for stream, span in ((src.video, vspan), (src.audio, aspan)):
        if stream is None:
            continue
        start, dur = _stream_span(stream)
        if dur is None:
            continue
        header_end = (start or 0.0) + dur
        got_end = span[1] if span is not None else (start or 0.0)
        tol = max(
            0.1,
            2
            * (
                float(1 / stream.average_rate)
                if stream.type == "video" and stream.average_rate
                else 0.0
            ),
        )
        gap = header_end - got_end
        if gap > tol and (worst is None or gap > worst):
            worst = gap
    return worst


def _redecode_frames(
    abspath: str, name: str, head: bytes, wanted: set[int], max_pixels, first: _FrameConverter
) -> dict[int, np.ndarray]:
    """Second pass over the video stream only: RGB arrays of frames numbered ``wanted``, at the size and
    rotation the first pass (``first``) used."""
    src = _open(abspath, name, head)
    try:
        src.video.thread_type = "AUTO"
        convert = _FrameConverter(name, max_pixels, first.size, first.turns)
        out: dict[int, np.ndarray] = {}
        k = -1
        last = max(wanted)
        for _, frame in _decode(src, [src.video], _DecodeStats()):
            k += 1
            if k in wanted:
                out[k] = convert(frame, k)
            if k >= last:
                break
        if len(out) < len(wanted):  # decoder gave fewer frames than the first pass
            fill = out[max(out)] if out else None
            if fill is None:
                raise CorruptMediaError(f"{name!r}: video frames could not be decoded again")
            for j in wanted - set(out):
                out[j] = fill
        return out
    finally:
        src.container.close()


# --------------------------------------------------------------------------------------------
# iter_windows
# --------------------------------------------------------------------------------------------


@dataclass
class _Window:
    index: int
    start: float  # absolute seconds
    end: float  # planned end, absolute
    targets: np.ndarray | None  # absolute target times; None = every frame in the window
    picks: list  # [(frame time, RGB array)] in target order (or frame order)

    def remaining(self) -> int:
        return 0 if self.targets is None else len(self.targets) - len(self.picks)


def iter_windows(
    path: str | os.PathLike,
    window_s: float = 4.0,
    hop_s: float | None = None,
    num_frames: int | None = 8,
    sampling_rate: int = DEFAULT_SAMPLING_RATE,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    max_duration: float | None = None,
) -> Iterator[Clip]:
    """Decode a long file in one streaming pass, yielding one :class:`Clip` per window.

    Windows start every ``hop_s`` seconds (default ``window_s``: back to back) and last
    ``window_s``; the last window ends with the file (it may be shorter) and together they
    cover the whole file. Each clip has ``num_frames`` frames sampled uniformly over its own
    span (None: every frame in it), ``start`` = window start in the file, timestamps relative to
    that start, and ``round(duration * sampling_rate)`` audio samples (zero-padded where the
    audio track has no data). Memory stays flat: only the sampled frames and audio of the
    windows currently open are held, never the decoded video.

    The last window's frames are planned from the header duration; if the file ends elsewhere,
    they are re-chosen among the frames already picked for that window (nearest earlier one).
    Path problems raise at call time; decoding problems raise from the iteration, and damage
    only detectable at the end (truncation) raises after the windows decoded before it.
    """
    if not (window_s > 0 and math.isfinite(window_s)):
        raise ValueError(f"window_s must be a positive number, got {window_s!r}")
    hop = window_s if hop_s is None else hop_s
    if not (hop > 0 and math.isfinite(hop)):
        raise ValueError(f"hop_s must be a positive number, got {hop_s!r}")
    if num_frames is not None and (not isinstance(num_frames, (int, np.integer)) or num_frames < 1):
        raise ValueError(f"num_frames must be a positive int or None, got {num_frames!r}")
    _validate_common(sampling_rate, max_pixels)
    abspath, head = _check_path(path)
    name = os.fsdecode(os.fspath(path))
    return _WindowStream(
        abspath,
        name,
        head,
        float(window_s),
        float(hop),
        num_frames,
        int(sampling_rate),
        max_pixels,
        max_duration,
    ).run()


class _WindowStream:
    """State of one iter_windows pass (see :func:`iter_windows`)."""

    def __init__(
        self, abspath, name, head, window, hop, num_frames, rate, max_pixels, max_duration
    ):
        self.abspath, self.name, self.head = abspath, name, head
        self.window, self.hop, self.n, self.rate = window, hop, num_frames, rate
        self.max_pixels, self.max_duration = max_pixels, max_duration

    def run(self) -> Iterator[Clip]:
        with _errors_as_media_errors(self.name, self.head):
            src = _open(self.abspath, self.name, self.head)
            try:
                yield from self._run(src)
            finally:
                src.container.close()

    # -- window bookkeeping ------------------------------------------------------------------

    def _make_window(self, k: int) -> _Window:
        s = self.origin + k * self.hop
        e = s + self.window
        if self.header_end is not None and s < self.header_end < e:
            e = self.header_end  # plan the (probable) last window over what remains
        targets = None if self.n is None else _uniform_targets(s, e, self.n)
        return _Window(k, s, e, targets, [])

    def _open_windows_until(self, t: float) -> None:
        while self.origin + self.next_k * self.hop <= t:
            self.open.append(self._make_window(self.next_k))
            self.next_k += 1

    def _resolve(
        self, w: _Window, upto: float, frame: Any, key: int, t: float, inclusive=False
    ) -> None:
        """Assign ``frame`` (shown at time t) to targets of w before ``upto``."""
        if w.targets is None:
            return
        while w.remaining() and (w.targets[len(w.picks)] < upto or inclusive):
            w.picks.append((t, self.convert(frame, key)))

    def _finish_window(self, w: _Window, end: float, has_video: bool, has_audio: bool) -> Clip:
        """Clip for window w truncated at ``end`` (absolute)."""
        e = min(w.start + self.window, end)
        frames, stamps = _empty_frames(), np.zeros((0,), dtype=np.float64)
        if has_video:
            picks = w.picks
            if w.targets is not None:
                want = _uniform_targets(w.start, e, self.n)
                if picks and not np.allclose(want, w.targets[: len(want)], atol=1e-6):
                    ptimes = np.array([p[0] for p in picks])
                    picks = [picks[i] for i in _pick_indices(ptimes, want)]
            if picks:
                frames = np.stack([p[1] for p in picks])
                stamps = np.array([p[0] for p in picks], dtype=np.float64) - w.start
            elif self.last_rgb is not None:  # no frame inside this window: show the last one
                count = self.n or 1
                frames = np.stack([self.last_rgb[1]] * count)
                stamps = np.full(count, self.last_rgb[0] - w.start)
        audio = _empty_audio()
        if has_audio:
            i0 = self.sink.position(w.start)
            audio = self.sink.extract(i0, i0 + int(round((e - w.start) * self.rate)))
        return Clip(
            frames=frames,
            timestamps=stamps,
            audio=audio,
            sampling_rate=self.rate,
            has_video=has_video,
            has_audio=has_audio,
            duration=float(e - w.start),
            path=self.name,
            start=float(w.start - self.origin),
        )

    # -- main loop ---------------------------------------------------------------------------

    def _run(self, src: _Source) -> Iterator[Clip]:
        header_duration = _check_header_limits(src, self.max_pixels, self.max_duration)
        self.header_end = None
        streams = [s for s in (src.video, src.audio) if s is not None]
        if src.video is not None:
            src.video.thread_type = "AUTO"
        self.convert = _FrameConverter(self.name, self.max_pixels)
        clock = _VideoClock(src.video) if src.video is not None else None
        self.sink = _AudioSink(self.rate) if src.audio is not None else None
        self.open: deque[_Window] = deque()
        self.next_k = 0
        self.origin: float | None = None
        self.last_rgb: tuple[float, np.ndarray] | None = None
        stats = _DecodeStats()
        prev: Any = None
        prev_t = 0.0
        emitted = 0

        def set_origin(t: float) -> None:
            self.origin = t
            if header_duration is not None:
                vstart = _stream_span(src.video)[0] if src.video is not None else None
                self.header_end = (vstart if vstart is not None else t) + header_duration

        for kind, frame in _decode(src, streams, stats):
            if kind == "video":
                self.convert.check(frame)
                t = clock.time_of(frame)
                if self.origin is None:
                    set_origin(t)
                # before opening windows up to t: a damaged timestamp far in the future would open millions
                _check_progress(src, t - self.origin, self.max_duration)
                self._open_windows_until(t)
                key = clock.count - 1
                for w in self.open:
                    if prev is not None:
                        self._resolve(w, t, prev, key - 1, prev_t)
                    elif w.targets is not None:
                        self._resolve(w, t, frame, key, t)
                    if w.targets is None and w.start <= t < w.start + self.window:
                        w.picks.append((t, self.convert(frame, key)))
                prev, prev_t = frame, t
            else:
                self.sink.push(frame)
                if self.origin is None and (
                    src.video is None or self.sink.end_time() - self.sink.start > _MAX_SKEW_S
                ):
                    set_origin(self.sink.start)
            if self.origin is None:
                continue
            v_now = clock.last if clock is not None and clock.count else None
            a_now = self.sink.end_time() if self.sink is not None else None
            now = max(x for x in (v_now, a_now) if x is not None)
            _check_progress(src, now - self.origin, self.max_duration)
            if a_now is not None:
                self._open_windows_until(a_now)
            # Close windows every stream has passed (or that one stream passed long ago).
            while self.open:
                w = self.open[0]
                e = w.start + self.window
                v_done = src.video is None or (v_now is not None and v_now >= e)
                a_done = src.audio is None or (a_now is not None and a_now >= e)
                if not ((v_done and a_done) or now >= e + _MAX_SKEW_S):
                    break
                self.open.popleft()
                if prev is not None:
                    self._resolve(w, math.inf, prev, clock.count - 1, prev_t, inclusive=True)
                if w.picks:
                    self.last_rgb = w.picks[-1]
                yield self._finish_window(
                    w,
                    math.inf,
                    clock is not None and clock.count > 0,
                    self.sink is not None and self.sink.count > 0,
                )
                emitted += 1
                self._release_audio()

        # End of file: settle the real end, close the remaining windows.
        if self.sink is not None:
            self.sink.finish()
        vspan = (clock.first, clock.end()) if clock is not None and clock.count else None
        aspan = (
            (self.sink.start, self.sink.end_time())
            if self.sink is not None and self.sink.count
            else None
        )
        stats.damaged += self.sink.skipped if self.sink is not None else 0
        _require_data(src, stats, vspan, aspan)
        if self.origin is None:
            set_origin(_timeline(vspan, aspan)[0])
        _check_damage(src, stats, _shortfall(src, vspan, aspan))
        end = _timeline(vspan, aspan)[1]
        _check_progress(src, end - self.origin, self.max_duration)
        self._open_windows_until(end - 1e-9)
        has_v, has_a = vspan is not None, aspan is not None
        for w in list(self.open):
            if w.start >= end - 1e-9 and (w.index > 0 or emitted):
                break
            if w.index > 0 and w.start - self.hop + self.window >= end - 1e-9:
                break  # the previous window already reached the end
            if prev is not None:
                self._resolve(w, math.inf, prev, clock.count - 1, prev_t, inclusive=True)
            if w.picks:
                self.last_rgb = w.picks[-1]
            yield self._finish_window(w, end, has_v, has_a)
            self.open.popleft()
            self._release_audio()
        self.open.clear()

    def _release_audio(self) -> None:
        if self.sink is None or self.sink.start is None or self.origin is None:
            return
        keep_from = self.open[0].start if self.open else self.origin + self.next_k * self.hop
        self.sink.drop_before(self.sink.position(keep_from))


# --------------------------------------------------------------------------------------------
# clip_from_arrays
# --------------------------------------------------------------------------------------------


def _check_frame_pixels(height: int, width: int, max_pixels: int | None, what: str) -> None:
    if max_pixels is not None and height * width > max_pixels:
        raise FrameTooLargeError(
            f"{what} are {width}x{height} = {width * height} pixels each, above max_pixels={max_pixels}"
        )


def _frames_from_input(frames: Any, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """uint8 [T,H,W,3] from an array [T,H,W,C] / [H,W,C], or a list of PIL images / arrays.

    Frames above ``max_pixels`` raise :class:`FrameTooLargeError` before any conversion.
    """
    if isinstance(frames, (list, tuple)):
        if len(frames) == 0:
            raise ValueError("frames is an empty list")
        items = []
        for i, f in enumerate(frames):
            if hasattr(f, "convert") and hasattr(f, "size"):  # PIL image
                items.append(np.asarray(f.convert("RGB")))
            else:
                a = np.asarray(f)
                if a.ndim != 3:
                    raise ValueError(f"frames[{i}] must be [H,W,C], got shape {a.shape}")
                items.append(a)
        shapes = {a.shape[:2] for a in items}
        if len(shapes) > 1:
            raise ValueError(f"all frames must have the same size, got {sorted(shapes)}")
        _check_frame_pixels(*items[0].shape[:2], max_pixels, "frames")
        arr = np.stack([_to_rgb_uint8(a, f"frames[{i}]") for i, a in enumerate(items)])
        return arr
    if hasattr(frames, "convert") and hasattr(frames, "size"):
        _check_frame_pixels(frames.size[1], frames.size[0], max_pixels, "frames")
        return np.asarray(frames.convert("RGB"))[None]
    arr = np.asarray(frames)
    if arr.ndim == 3:
        arr = arr[None]  # one image [H,W,C]
    if arr.ndim != 4:
        raise ValueError(f"frames must be [T,H,W,3] or [H,W,3], got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0 or arr.shape[2] == 0:
        raise ValueError(f"frames is empty (shape {arr.shape})")
    _check_frame_pixels(arr.shape[1], arr.shape[2], max_pixels, "frames")
    return _to_rgb_uint8(arr, "frames")


def _to_rgb_uint8(arr: np.ndarray, what: str) -> np.ndarray:
    """[...,C] with C in (1,3,4), uint8 or float ([0,1], or [0,255] if max > 1) -> uint8 [...,3]."""
    c = arr.shape[-1]
    if c not in (1, 3, 4):
        raise ValueError(
            f"{what} must have 3 (RGB), 4 (RGBA) or 1 channel(s) last, got shape {arr.shape}"
        )
    if arr.dtype == np.uint8:
        out = arr
    elif arr.dtype == np.bool_ or arr.dtype.kind not in "fiu":
        raise ValueError(f"{what} must be uint8 or float, got dtype {arr.dtype}")
    else:
        data = arr.astype(np.float32)
        if not np.isfinite(data).all():
            raise ValueError(f"{what} contains NaN or inf")
        if arr.dtype.kind == "f" and data.max(initial=0.0) <= 1.0:
            data = data * 255.0  # float images in [0, 1]
        if data.min(initial=0.0) < 0 or data.max(initial=0.0) > 255.0:
            raise ValueError(f"{what} values must lie in [0, 1] (float) or [0, 255]")
        out = np.rint(data).astype(np.uint8)
    if c == 4:
        out = out[..., :3]
    elif c == 1:
        out = np.repeat(out, 3, axis=-1)
    return np.ascontiguousarray(out)


_INT_AUDIO_SCALE = {
    np.dtype(np.int16): 32768.0,
    np.dtype(np.int32): 2147483648.0,
    np.dtype(np.int8): 128.0,
}


def _audio_from_input(audio: Any) -> np.ndarray:
    """float32 [N] mono in [-1,1] from [N], [N,C] or [C,N] (channels = the short axis)."""
    arr = np.asarray(audio)
    if arr.dtype in _INT_AUDIO_SCALE:
        arr = arr.astype(np.float32) / _INT_AUDIO_SCALE[arr.dtype]
    elif arr.dtype == np.uint8:
        arr = (arr.astype(np.float32) - 128.0) / 128.0
    elif arr.dtype.kind != "f":
        raise ValueError(f"audio must be float (or int16/int32/uint8 PCM), got dtype {arr.dtype}")
    arr = arr.astype(np.float32, copy=False)
    if arr.size == 0:
        raise ValueError("audio is empty")
    if arr.ndim == 2:
        ch_axis = 0 if arr.shape[0] <= arr.shape[1] else 1
        if arr.shape[ch_axis] > 32:
            raise ValueError(
                f"audio must be [N], [N,C] or [C,N] with C <= 32 channels, got {arr.shape}"
            )
        arr = arr.mean(axis=ch_axis)
    elif arr.ndim != 1:
        raise ValueError(f"audio must be [N], [N,C] or [C,N], got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError("audio is empty")
    if not np.isfinite(arr).all():
        raise ValueError("audio contains NaN or inf")
    peak = float(np.abs(arr).max())
    if peak > 1.01:
        raise ValueError(
            f"float audio must lie in [-1, 1], its peak is {peak:g} "
            "(integer PCM stored as float? divide by 32768)"
        )
    return np.clip(arr, -1.0, 1.0)


def _resample_mono(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Resample float32 [N] with libswresample (via av.AudioResampler) -> float32 [~N*out/in].

    libswresample low-pass filters before decimating; plain linear interpolation would alias
    everything above 8 kHz of a 44.1/48 kHz recording into the 16 kHz band the model sees, and
    files decoded by load_clip go through the same resampler, so both paths agree.
    """
    if rate_in == rate_out:
        return x.astype(np.float32, copy=True)
    frame = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(x, dtype=np.float32)[None, :], format="flt", layout="mono"
    )
    frame.sample_rate = rate_in
    frame.pts = 0
    frame.time_base = Fraction(1, rate_in)
    resampler = av.AudioResampler(format="flt", layout="mono", rate=rate_out)
    out = resampler.resample(frame) + resampler.resample(None)
    y = np.concatenate([f.to_ndarray().reshape(-1) for f in out]) if out else _empty_audio()
    n = int(round(len(x) * rate_out / rate_in))
    y = y[:n] if len(y) >= n else np.pad(y, (0, n - len(y)))
    return np.clip(y, -1.0, 1.0).astype(np.float32)


def clip_from_arrays(
    frames: Any = None,
    audio: Any = None,
    sampling_rate: int | None = None,
    fps: float = 25.0,
    *,
    target_sampling_rate: int = DEFAULT_SAMPLING_RATE,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> Clip:
    """Build a :class:`Clip` from in-memory frames and/or a waveform.

    Args:
        frames: uint8 or float array [T,H,W,3] (float in [0,1], or [0,255] when its max > 1),
            one image [H,W,3], or a list of PIL images / [H,W,3] arrays of equal size.
            RGBA (alpha dropped) and 1-channel (replicated) input are accepted.
        audio: float array [N] in [-1,1], or [N,C] / [C,N] (the shorter axis is taken as
            channels and averaged); int16/int32/uint8 PCM is scaled to [-1,1].
        sampling_rate: rate of ``audio`` in Hz; required when audio is given.
        fps: frame rate of ``frames`` (MIN_FPS..MAX_FPS); frame i gets timestamp i / fps.
        target_sampling_rate: output rate; audio at another rate is resampled (libswresample).
        max_pixels: refuse frames with more pixels (:class:`FrameTooLargeError`); None disables.

    Raises:
        ValueError (or MediaError) for empty input, wrong rank/dtype, NaN/inf, out-of-range
        audio, audio without sampling_rate, or a sampling rate outside
        [MIN_SAMPLING_RATE, MAX_SAMPLING_RATE].
    """
    if frames is None and audio is None:
        raise ValueError("give frames, audio, or both")
    if isinstance(fps, bool) or not isinstance(fps, (int, float, np.number)) or not (
        fps > 0 and math.isfinite(fps)
    ):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    if not MIN_FPS <= fps <= MAX_FPS:
        raise ValueError(f"fps={fps!r} is outside the supported range {MIN_FPS:g}-{MAX_FPS:g}")
    target_sampling_rate = _check_sampling_rate(target_sampling_rate, "target_sampling_rate")
    out_frames, stamps = _empty_frames(), np.zeros((0,), dtype=np.float64)
    if frames is not None:
        out_frames = _frames_from_input(frames, max_pixels)
        stamps = np.arange(len(out_frames), dtype=np.float64) / fps
    wave = _empty_audio()
    if audio is not None:
        if sampling_rate is None:
            raise ValueError("sampling_rate is required when audio is given")
        rate = _check_sampling_rate(sampling_rate)
        wave = _resample_mono(_audio_from_input(audio), rate, target_sampling_rate)
    duration = max(len(out_frames) / fps, len(wave) / target_sampling_rate)
    return Clip(
        frames=out_frames,
        timestamps=stamps,
        audio=wave,
        sampling_rate=int(target_sampling_rate),
        has_video=frames is not None,
        has_audio=audio is not None,
        duration=float(duration),
        path=None,
        start=0.0,
    )


def check_clip(clip: Any, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Clip:
    """Validate a :class:`Clip` built outside this module (its fields are plain attributes).

    Raises ValueError when ``frames`` is not uint8 [T,H,W,3] (or exceeds ``max_pixels``:
    :class:`FrameTooLargeError`), ``timestamps`` does not have T entries, ``audio`` is not a finite
    float32/float64 [N] within [-1, 1], ``sampling_rate`` is out of range, or ``duration`` is not
    a finite number >= 0. Returns the clip unchanged.
    """
    frames, audio = getattr(clip, "frames", None), getattr(clip, "audio", None)
    if not isinstance(frames, np.ndarray) or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(
            f"Clip.frames must be a uint8 array [T,H,W,3], got {getattr(frames, 'shape', type(frames))}"
        )
    if frames.dtype != np.uint8:
        raise ValueError(f"Clip.frames must be uint8, got dtype {frames.dtype}")
    if frames.shape[0]:
        _check_frame_pixels(frames.shape[1], frames.shape[2], max_pixels, "Clip.frames")
    stamps = np.asarray(getattr(clip, "timestamps", ()))
    if stamps.shape != (frames.shape[0],):
        raise ValueError(f"Clip.timestamps must have {frames.shape[0]} entries, got shape {stamps.shape}")
    if not isinstance(audio, np.ndarray) or audio.ndim != 1 or audio.dtype.kind != "f":
        raise ValueError(
            f"Clip.audio must be a float array [N], got {getattr(audio, 'shape', type(audio))}"
        )
    if audio.size and not (np.isfinite(audio).all() and np.abs(audio).max() <= 1.01):
        raise ValueError("Clip.audio must be finite and within [-1, 1]")
    if audio.size:
        _check_sampling_rate(clip.sampling_rate, "Clip.sampling_rate")
    duration = clip.duration
    if not isinstance(duration, (int, float, np.number)) or not (
        math.isfinite(duration) and duration >= 0
    ):
        raise ValueError(f"Clip.duration must be a finite number >= 0, got {duration!r}")
    return clip
