"""Synthesize small media files with PyAV's bundled encoders, for tests.

Every file carries content a test can check after decoding:

* video frames are uniform grey; frame ``i`` of ``n`` has brightness :func:`frame_level`
  (a ramp with time), so uniform frame sampling is verifiable from the pixel means;
* audio is a sine (default 440 Hz, amplitude 0.5) in every channel, so the frequency and level
  can be measured again after resampling and down-mixing.

Import from a test as ``from media_factory import write_media`` (``tests/`` has no
``__init__.py``; pytest puts the test directory on ``sys.path``).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

__all__ = [
    "AMPLITUDE",
    "SIZE",
    "TONE_HZ",
    "encoder_available",
    "frame_level",
    "frame_schedule",
    "levels_of",
    "patch_avi_fourcc",
    "patch_flv_duration",
    "tone_frequency",
    "write_flv_data_only",
    "write_media",
    "write_y4m_header_only",
]

SIZE = (64, 48)  # (width, height) of generated video
TONE_HZ = 440.0
AMPLITUDE = 0.5
LEVEL_LO, LEVEL_HI = 30.0, 220.0

# Channel count -> FFmpeg layout name.
_LAYOUTS = {1: "mono", 2: "stereo", 6: "5.1", 8: "7.1"}


def encoder_available(name: str) -> bool:
    """True when this PyAV build has an encoder called ``name``."""
    try:
        av.codec.Codec(name, "w")
    except Exception:  # UnknownCodecError and friends
        return False
    return True


def frame_level(i: int, n: int) -> float:
    """Brightness (0-255) of frame ``i`` of ``n``: linear ramp LEVEL_LO -> LEVEL_HI."""
    if n <= 1:
        return LEVEL_LO
    return LEVEL_LO + (LEVEL_HI - LEVEL_LO) * i / (n - 1)


def levels_of(frames: np.ndarray) -> np.ndarray:
    """Mean brightness per frame: uint8 [T,H,W,3] -> float64 [T]."""
    return frames.reshape(len(frames), -1).mean(axis=1)


def tone_frequency(audio: np.ndarray, sampling_rate: int) -> float:
    """Dominant frequency (Hz) of a mono waveform float [N] (Hann-windowed FFT peak)."""
    x = np.asarray(audio, dtype=np.float64)
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    spec[0] = 0.0
    return float(np.argmax(spec) * sampling_rate / len(x))


def frame_schedule(duration: float, fps: float = 25, vfr: bool = False) -> np.ndarray:
    """Presentation times (s) of the frames write_media makes: float64 [T].

    Constant rate: ``i / fps`` for ``round(duration * fps)`` frames. ``vfr``: frame durations
    alternate 20 ms / 60 ms (25 fps on average), the last one clipped to end at ``duration``.
    """
    if not vfr:
        return np.arange(int(round(duration * fps)), dtype=np.float64) / fps
    times, t, k, total = [], 0, 0, int(round(duration * 1000))
    while t < total:
        times.append(t / 1000)
        t += min(20 if k % 2 == 0 else 60, total - t)
        k += 1
    return np.array(times)


def _amf_string(s: str) -> bytes:
    b = s.encode()
    return struct.pack(">H", len(b)) + b


def _flv_script_tag(name: str) -> bytes:
    """AMF0 payload of an FLV script-data tag ``name({"sd": "..."})`` (what Flash encoders add)."""
    return (
        b"\x02"
        + _amf_string(name)
        + b"\x03"
        + _amf_string("sd")
        + b"\x02"
        + _amf_string("30-01-2008")
        + b"\x00\x00\x09"
    )


def write_media(
    path: str | Path,
    *,
    duration: float = 1.0,
    fps: float = 25,
    video_codec: str | None = "libx264",
    audio_codec: str | None = "aac",
    sample_rate: int = 44100,
    channels: int = 1,
    size: tuple[int, int] = SIZE,
    tones: Sequence[float] = (TONE_HZ,),
    default_track: int | None = None,
    vfr: bool = False,
    frame_times: Sequence[float] | None = None,
    format: str | None = None,
    data_stream: bool = False,
    cover_art: bool = False,
    container_options: dict[str, str] | None = None,
) -> Path:
    """Encode a test file; the container is chosen from the suffix unless ``format`` is given.

    ``video_codec=None`` makes an audio-only file, ``audio_codec=None`` a silent video.
    ``tones`` gives one audio track per entry (its sine frequency); ``default_track`` marks
    that track "default". ``frame_times`` (seconds) overrides the frame schedule (e.g. two
    frames two hours apart); ``vfr`` uses :func:`frame_schedule`'s variable rate.
    ``data_stream`` adds an FLV-style script-data stream (two tags), ``cover_art`` a PNG
    attached picture. Returns the path.
    """
    path = Path(path)
    out = av.open(str(path), "w", format=format, options=container_options or {})
    try:
        vstream, astreams, packets = None, [], []
        if video_codec is not None:
            if frame_times is not None or vfr:
                times = np.asarray(
                    frame_times if frame_times is not None else frame_schedule(duration, fps, True)
                )
                tb = Fraction(1, 1000)
                pts = [int(round(t * 1000)) for t in times]
                ends = pts[1:] + [int(round(max(duration, times[-1] + 1 / fps) * 1000))]
                durs = [max(e - p, 1) for p, e in zip(pts, ends)]
            else:
                tb = 1 / Fraction(fps).limit_denominator(1001)
                pts = list(range(len(frame_schedule(duration, fps))))
                durs = [1] * len(pts)
            vstream = out.add_stream(video_codec, rate=Fraction(fps).limit_denominator(1001))
            vstream.width, vstream.height = size
            vstream.pix_fmt = "yuv420p"
            vstream.codec_context.time_base = tb
            vstream.time_base = tb
            if video_codec in ("libx264", "h264"):
                vstream.codec_context.options = {"preset": "ultrafast", "crf": "18"}
        if audio_codec is not None:
            layout = _LAYOUTS.get(channels, f"{channels}c")
            for k, _ in enumerate(tones):
                s = out.add_stream(audio_codec, rate=sample_rate)
                s.codec_context.layout = layout
                if audio_codec in ("vorbis", "opus"):  # native encoders are "experimental";
                    s.codec_context.options = {
                        "strict": "experimental"
                    }  # native Vorbis: stereo only
                if default_track is not None:
                    s.disposition = (
                        av.stream.Disposition.default
                        if k == default_track
                        else av.stream.Disposition(0)
                    )
                astreams.append(s)
        if cover_art:
            pic = out.add_stream("png")
            pic.width, pic.height, pic.pix_fmt = 32, 32, "rgb24"
            pic.disposition = av.stream.Disposition.attached_pic
            img = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 200, np.uint8), format="rgb24")
            img.pts = 0
            packets.extend(pic.encode(img) + pic.encode(None))
        if data_stream:
            dstream = out.add_data_stream()
            for t_ms in (200, 600):
                p = av.Packet(_flv_script_tag("onFI"))
                p.stream = dstream
                p.pts = p.dts = t_ms
                p.time_base = Fraction(1, 1000)
                packets.append(p)

        if vstream is not None:
            w, h = size
            for i, (p, d) in enumerate(zip(pts, durs)):
                img = np.full((h, w, 3), int(round(frame_level(i, len(pts)))), dtype=np.uint8)
                frame = av.VideoFrame.from_ndarray(img, format="rgb24")
                frame.pts, frame.duration, frame.time_base = p, d, tb
                packets.extend(vstream.encode(frame))
            packets.extend(vstream.encode(None))
        total = int(round(duration * sample_rate))
        for astream, tone in zip(astreams, tones):
            for start in range(0, total, 1024):
                t = np.arange(start, min(start + 1024, total)) / sample_rate
                wave = (AMPLITUDE * np.sin(2 * np.pi * tone * t)).astype(np.float32)
                # Packed layout [1, n*channels] (planar frames with 8 channels trip PyAV 18).
                frame = av.AudioFrame.from_ndarray(
                    np.repeat(wave, channels)[None, :],
                    format="flt",
                    layout=astream.codec_context.layout.name,
                )
                frame.sample_rate, frame.pts, frame.time_base = (
                    sample_rate,
                    start,
                    Fraction(1, sample_rate),
                )
                packets.extend(astream.encode(frame))
            packets.extend(astream.encode(None))
        # Interleave by time, as a real muxer input would be.
        packets.sort(key=lambda p: float((p.dts if p.dts is not None else 0) * p.time_base))
        out.mux(packets)
    finally:
        out.close()
    return path


def write_flv_data_only(path: str | Path) -> Path:
    """An FLV file holding only a script-data stream: it opens, but has no audio or video."""
    path = Path(path)
    with av.open(str(path), "w", format="flv") as out:
        d = out.add_data_stream()
        for t_ms in (100, 500, 900):
            p = av.Packet(_flv_script_tag("onFI"))
            p.stream, p.pts, p.dts, p.time_base = d, t_ms, t_ms, Fraction(1, 1000)
            out.mux(p)
    return path


def patch_flv_duration(path: str | Path, seconds: float) -> Path:
    """Overwrite the ``duration`` in an FLV's onMetaData header (make the header lie)."""
    path = Path(path)
    data = bytearray(path.read_bytes())
    key = _amf_string("duration") + b"\x00"  # key, then AMF number marker
    pos = data.find(key)
    if pos < 0:
        raise ValueError(f"{path}: no duration in onMetaData")
    data[pos + len(key) : pos + len(key) + 8] = struct.pack(">d", seconds)
    path.write_bytes(bytes(data))
    return path


def patch_avi_fourcc(path: str | Path, old: bytes = b"FMP4", new: bytes = b"QQQ9") -> Path:
    """Replace a video FourCC in an AVI header (unknown FourCC = codec FFmpeg cannot decode)."""
    path = Path(path)
    data = path.read_bytes()
    if old not in data:
        raise ValueError(f"{path}: FourCC {old!r} not found")
    path.write_bytes(data.replace(old, new))
    return path


def write_y4m_header_only(path: str | Path, width: int, height: int) -> Path:
    """A YUV4MPEG2 file whose header claims ``width``x``height`` but holds 64 bytes of data.

    Lets a test check that a frame-size limit is enforced from the header, before decoding
    (a frame would need width*height*1.5 bytes).
    """
    path = Path(path)
    header = f"YUV4MPEG2 W{width} H{height} F25:1 Ip A1:1 C420jpeg\nFRAME\n".encode()
    path.write_bytes(header + b"\x80" * 64)
    return path
