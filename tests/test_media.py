"""Tests for hf_avemotion.media: real clips, generated formats, bad input, streaming windows."""

from __future__ import annotations

import csv
import os
import struct
import tempfile
import tracemalloc
import warnings
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

import hf_avemotion.media as media
from hf_avemotion.media import (
    Clip,
    CorruptMediaError,
    FrameTooLargeError,
    MediaError,
    MediaIsDirectoryError,
    MediaNotFoundError,
    MediaTooLongError,
    MediaTooShortError,
    NoUsableStreamError,
    NotMediaError,
    RemoteURLError,
    UnsupportedCodecError,
    clip_from_arrays,
    iter_windows,
    load_clip,
)
from media_factory import (
    AMPLITUDE,
    SIZE,
    TONE_HZ,
    encoder_available,
    frame_level,
    frame_schedule,
    levels_of,
    patch_avi_fourcc,
    patch_flv_duration,
    tone_frequency,
    write_flv_data_only,
    write_media,
    write_y4m_header_only,
)

pytestmark = pytest.mark.timeout(60)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SR = 16000


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """Point tempfile (and TMPDIR) at an empty private folder; fail if anything is left in it.

    A private folder keeps the check exact while other people use the shared /tmp.
    """
    tmp = tmp_path / "system-tmp"
    tmp.mkdir()
    for var in ("TMPDIR", "TEMP", "TMP"):
        monkeypatch.setenv(var, str(tmp))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    before = sorted(os.listdir(tempfile.gettempdir()))
    yield tmp_path
    assert sorted(os.listdir(tempfile.gettempdir())) == before, "temporary files left behind"


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 0


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def _expected_levels(times: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Brightness of the generated frame on screen at each target time."""
    idx = np.clip(np.searchsorted(times, targets, side="right") - 1, 0, len(times) - 1)
    return np.array([frame_level(i, len(times)) for i in idx])


# --------------------------------------------------------------------------------------------
# 1. Real clips from ../shared/data
# --------------------------------------------------------------------------------------------


def _real_files():
    rows = []
    for folder in ("enterface05", "ravdess_av", "crema_d"):
        meta = DATA / folder / "metadata.csv"
        if meta.is_file():
            with open(meta, newline="") as fh:
                rows += [
                    pytest.param(folder, row, id=row["file_name"]) for row in csv.DictReader(fh)
                ]
    return rows or [pytest.param(None, None, id="no-shared-data")]


@pytest.mark.parametrize("folder,row", _real_files())
def test_real_clips_load(folder, row):
    if folder is None or not (DATA / folder / row["file_name"]).is_file():
        pytest.skip(f"real clips not found under {DATA}")
    clip = load_clip(DATA / folder / row["file_name"], num_frames=8)
    duration = float(row["duration_s"])
    assert clip.sampling_rate == SR
    assert clip.has_audio and _rms(clip.audio) > 1e-3
    assert abs(len(clip.audio) - clip.duration * SR) <= 1
    if folder == "crema_d":  # MP3, audio only
        assert not clip.has_video and clip.frames.shape == (0, 0, 0, 3)
        samples = int(row["decoded_audio_samples"]) / int(row["audio_sr"])
        assert abs(clip.duration - samples) <= 1152 / int(row["audio_sr"])  # one MP3 frame
    else:
        fps = float(row["fps"])
        assert clip.has_video
        assert clip.frames.shape == (8, int(row["height"]), int(row["width"]), 3)
        assert clip.frames.dtype == np.uint8 and clip.timestamps.dtype == np.float64
        assert abs(clip.duration - duration) <= 1 / fps + 1e-6
        assert abs(clip.duration - int(row["decoded_video_frames"]) / fps) <= 1 / fps + 1e-6
        assert np.all(np.diff(clip.timestamps) > 0)
        assert 0 <= clip.timestamps[0] and clip.timestamps[-1] < clip.duration


# --------------------------------------------------------------------------------------------
# 2. Generated formats
# --------------------------------------------------------------------------------------------

# id: (file name, write_media kwargs, has_video, has_audio)
FORMATS = {
    "mp4-h264-aac": ("a.mp4", {}, True, True),
    "mov-h264-aac": ("a.mov", {}, True, True),
    "mkv-vp9-opus": (
        "a.mkv",
        dict(video_codec="libvpx-vp9", audio_codec="libopus", sample_rate=48000),
        True,
        True,
    ),
    "webm-vp8-vorbis": (
        "a.webm",
        dict(video_codec="libvpx", audio_codec="vorbis", channels=2),
        True,
        True,
    ),
    "webm-vp8-opus": (
        "a.webm",
        dict(video_codec="libvpx", audio_codec="libopus", sample_rate=48000),
        True,
        True,
    ),
    "avi-mpeg4-pcm48k-stereo": (
        "a.avi",
        dict(video_codec="mpeg4", audio_codec="pcm_s16le", sample_rate=48000, channels=2),
        True,
        True,
    ),
    "flv-flv1-mp3": ("a.flv", dict(video_codec="flv", audio_codec="libmp3lame"), True, True),
    "flv-h264-mp3-datastream": (
        "b.flv",
        dict(video_codec="libx264", audio_codec="libmp3lame", data_stream=True),
        True,
        True,
    ),
    "flv-flv1-mp3-datastream": (
        "c.flv",
        dict(video_codec="flv", audio_codec="libmp3lame", data_stream=True),
        True,
        True,
    ),
    "wav": ("a.wav", dict(video_codec=None, audio_codec="pcm_s16le"), False, True),
    "mp3": ("a.mp3", dict(video_codec=None, audio_codec="libmp3lame"), False, True),
    "mp3-cover-art": (
        "c.mp3",
        dict(video_codec=None, audio_codec="libmp3lame", cover_art=True),
        False,
        True,
    ),
    "flac": ("a.flac", dict(video_codec=None, audio_codec="flac"), False, True),
    "mp4-no-audio": ("n.mp4", dict(audio_codec=None), True, False),
    "mp4-vfr": ("v.mp4", dict(vfr=True, audio_codec=None), True, False),
    "mkv-vfr-aac": ("v.mkv", dict(vfr=True), True, True),
    "wav-8k-mono": (
        "8k.wav",
        dict(video_codec=None, audio_codec="pcm_s16le", sample_rate=8000),
        False,
        True,
    ),
    "wav-48k-6ch": (
        "6ch.wav",
        dict(video_codec=None, audio_codec="pcm_s16le", sample_rate=48000, channels=6),
        False,
        True,
    ),
    "mp4-aac-48k-6ch": ("6ch.mp4", dict(sample_rate=48000, channels=6), True, True),
    "flac-96k-8ch": (
        "8ch.flac",
        dict(video_codec=None, audio_codec="flac", sample_rate=96000, channels=8),
        False,
        True,
    ),
}
GEN_DURATION, GEN_FPS = 1.2, 25


@pytest.mark.parametrize("case", list(FORMATS))
def test_generated_formats(case, tmp_path):
    name, kwargs, has_video, has_audio = FORMATS[case]
    for codec in (kwargs.get("video_codec", "libx264"), kwargs.get("audio_codec", "aac")):
        if codec is not None and not encoder_available(codec):
            pytest.skip(f"encoder {codec} not in this PyAV build")
    path = write_media(tmp_path / name, duration=GEN_DURATION, fps=GEN_FPS, **kwargs)
    if kwargs.get("data_stream"):
        with av.open(str(path)) as c:
            assert any(s.type == "data" for s in c.streams), "factory did not produce a data stream"
    clip = load_clip(path, num_frames=6)

    assert isinstance(clip, Clip) and clip.path == str(path)
    assert (clip.has_video, clip.has_audio) == (has_video, has_audio)
    assert clip.sampling_rate == SR
    vfr = kwargs.get("vfr", False)
    frame_dur = 0.06 if vfr else 1 / GEN_FPS
    assert abs(clip.duration - GEN_DURATION) <= frame_dur + 1e-6

    if has_audio:
        assert clip.audio.dtype == np.float32 and clip.audio.ndim == 1
        assert abs(len(clip.audio) - GEN_DURATION * SR) <= frame_dur * SR
        assert abs(tone_frequency(clip.audio, SR) - TONE_HZ) < 3
        mid = clip.audio[len(clip.audio) // 4 : 3 * len(clip.audio) // 4]
        assert _rms(mid) == pytest.approx(AMPLITUDE / np.sqrt(2), rel=0.15)  # down-mix keeps level
        assert np.abs(clip.audio).max() <= 1.0
    else:
        assert clip.audio.shape == (0,)

    if has_video:
        assert clip.frames.shape == (6, SIZE[1], SIZE[0], 3) and clip.frames.dtype == np.uint8
        times = frame_schedule(GEN_DURATION, GEN_FPS, vfr)
        targets = (np.arange(6) + 0.5) * clip.duration / 6
        np.testing.assert_allclose(levels_of(clip.frames), _expected_levels(times, targets), atol=5)
        shown = times[np.clip(np.searchsorted(times, targets, side="right") - 1, 0, None)]
        np.testing.assert_allclose(clip.timestamps, shown, atol=1e-3)
    else:
        assert clip.frames.shape == (0, 0, 0, 3) and clip.timestamps.shape == (0,)


def test_all_frames_and_fps_sampling(tmp_path):
    path = write_media(tmp_path / "a.mp4", duration=2.0, fps=25)
    every = load_clip(path)
    assert every.num_frames == 50
    np.testing.assert_allclose(every.timestamps, np.arange(50) / 25, atol=1e-6)
    np.testing.assert_allclose(
        levels_of(every.frames), [frame_level(i, 50) for i in range(50)], atol=5
    )
    five = load_clip(path, fps=5)
    assert five.num_frames == 10
    np.testing.assert_allclose(five.timestamps, (np.arange(10) * 5 + 2) / 25, atol=1e-6)
    with pytest.raises(ValueError):
        load_clip(path, num_frames=4, fps=5)
    with pytest.raises(ValueError):
        load_clip(path, num_frames=0)


def test_header_duration_wrong_triggers_exact_second_pass(tmp_path, monkeypatch):
    """An FLV whose onMetaData claims 3 s for a 1 s file still yields the right frames."""
    path = patch_flv_duration(
        write_media(tmp_path / "lie.flv", video_codec="flv", audio_codec="libmp3lame"), 3.0
    )
    with av.open(str(path)) as c:
        assert c.duration / av.time_base == pytest.approx(3.0)
    calls = []
    real = media._redecode_frames
    monkeypatch.setattr(media, "_redecode_frames", lambda *a, **k: calls.append(1) or real(*a, **k))
    clip = load_clip(path, num_frames=8)
    assert calls, "wrong header plan should force a second, exact pass"
    assert abs(clip.duration - 1.0) <= 0.04
    targets = (np.arange(8) + 0.5) / 8
    np.testing.assert_allclose(
        levels_of(clip.frames), _expected_levels(frame_schedule(1.0), targets), atol=5
    )
    assert len(clip.audio) == SR


def test_stream_choice_default_audio_track(tmp_path):
    first = load_clip(write_media(tmp_path / "two.mkv", tones=(440, 660)))
    assert tone_frequency(first.audio, SR) == pytest.approx(440, abs=3)
    default = load_clip(write_media(tmp_path / "def.mkv", tones=(440, 660), default_track=1))
    assert tone_frequency(default.audio, SR) == pytest.approx(660, abs=3)


def test_rotation_display_matrix_applied(tmp_path):
    """A phone-style MP4 (tkhd matrix = 90 deg clockwise) comes out upright, marker moved."""
    path = tmp_path / "rot.mp4"
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        img = np.full((48, 64, 3), 20, np.uint8)
        img[:16, :16] = 230  # bright top-left corner
        for i in range(3):
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts = i
            out.mux(v.encode(f))
        out.mux(v.encode(None))
    data = bytearray(path.read_bytes())
    identity = struct.pack(">9i", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    pos = data.find(identity, data.find(b"tkhd"))
    data[pos : pos + 36] = struct.pack(">9i", 0, 0x10000, 0, -0x10000, 0, 0, 0, 0, 0x40000000)
    path.write_bytes(bytes(data))
    frame = load_clip(path, num_frames=1).frames[0].mean(axis=-1)
    assert frame.shape == (64, 48)
    assert frame[3, -4] > 200 and frame[3, 3] < 60  # top-left went to top-right


# --------------------------------------------------------------------------------------------
# 3. Bad input
# --------------------------------------------------------------------------------------------


def _png_bytes() -> bytes:
    import io

    buf = io.BytesIO()
    Image.new("RGB", (32, 24), (10, 200, 30)).save(buf, format="PNG")
    return buf.getvalue()


BAD = {
    "empty": (lambda d: _w(d / "empty.mp4", b""), NotMediaError),
    "random-bytes": (
        lambda d: _w(d / "rand.mp4", np.random.default_rng(0).bytes(50_000)),
        NotMediaError,
    ),
    "png-named-mp4": (lambda d: _w(d / "pic.mp4", _png_bytes()), NotMediaError),
    "text-file": (lambda d: _w(d / "notes.txt", b"hello\nnot a video\n" * 50), NotMediaError),
    "text-named-mp4": (
        lambda d: _w(d / "notes.mp4", "émotion, ünïcode text\n".encode() * 50),
        NotMediaError,
    ),
    "truncated-mp4": (
        lambda d: _truncate(write_media(d / "t.mp4", duration=2.0)),
        CorruptMediaError,
    ),
    "truncated-faststart-mp4": (
        lambda d: _truncate(
            write_media(d / "f.mp4", duration=2.0, container_options={"movflags": "faststart"})
        ),
        CorruptMediaError,
    ),
    "mp4-magic-then-garbage": (
        lambda d: _w(
            d / "g.mp4", b"\x00\x00\x00\x18ftypisom" + np.random.default_rng(1).bytes(30_000)
        ),
        CorruptMediaError,
    ),
    "directory": (lambda d: _mkdir(d / "a_dir.mp4"), MediaIsDirectoryError),
    "missing": (lambda d: d / "nope.mp4", MediaNotFoundError),
    "http-url": (lambda d: "http://example.com/clip.mp4", RemoteURLError),
    "rtsp-url": (lambda d: "rtsp://10.0.0.1/stream", RemoteURLError),
    "device": (lambda d: os.devnull, NotMediaError),
    "no-av-stream": (lambda d: write_flv_data_only(d / "data.flv"), NoUsableStreamError),
    "unknown-codec": (
        lambda d: patch_avi_fourcc(write_media(d / "u.avi", video_codec="mpeg4", audio_codec=None)),
        UnsupportedCodecError,
    ),
    "huge-frame-header": (
        lambda d: write_y4m_header_only(d / "huge.y4m", 16000, 16000),
        FrameTooLargeError,
    ),
    "two-hours": (
        lambda d: write_media(d / "long.mp4", frame_times=[0.0, 7200.0], audio_codec=None),
        MediaTooLongError,
    ),
}


def _w(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


def _truncate(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_raises_specific_error(case, private_tmp, monkeypatch):
    make, expected = BAD[case]
    target = make(private_tmp)
    if case in ("huge-frame-header", "two-hours"):  # refused from the header: nothing decoded
        monkeypatch.setattr(media, "_decode", lambda *a, **k: pytest.fail("decoding started"))
    fds = _open_fds()
    with pytest.raises(expected) as info:
        load_clip(target, num_frames=4)
    message = str(info.value)
    assert isinstance(info.value, MediaError) and isinstance(info.value, ValueError)
    assert os.fspath(target) in message or os.path.basename(os.fspath(target)) in message
    assert type(info.value).__module__ == "hf_avemotion.media"  # no raw PyAV/OS exception
    with pytest.raises(expected):  # the streaming entry point agrees
        list(iter_windows(target, max_duration=600.0))
    assert _open_fds() == fds, "file descriptor leaked"


def test_damaged_files_never_escape_or_hang(tmp_path):
    """Byte-flipped copies of a valid MP4 load or raise a MediaError; nothing else, no hang."""
    good = write_media(tmp_path / "good.mp4", duration=1.0).read_bytes()
    rng = np.random.default_rng(7)
    for i in range(12):
        data = bytearray(good)
        lo = 32 if i % 2 else len(data) // 3
        for pos in rng.integers(lo, len(data), size=40):
            data[pos] = rng.integers(0, 256)
        path = _w(tmp_path / f"bad{i}.mp4", bytes(data))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                clip = load_clip(path, num_frames=4)
            except MediaError:
                continue
        assert clip.frames.shape[0] in (0, 4)


def test_unknown_video_codec_beside_audio_loads_audio_with_warning(tmp_path):
    path = patch_avi_fourcc(
        write_media(tmp_path / "u.avi", video_codec="mpeg4", audio_codec="pcm_s16le")
    )
    with pytest.warns(UserWarning, match="cannot decode"):
        clip = load_clip(path, num_frames=4)
    assert not clip.has_video and clip.has_audio and len(clip.audio) == SR


def test_one_frame_video_repeats_frame(tmp_path):
    path = write_media(tmp_path / "one.mp4", frame_times=[0.0], duration=0.04, audio_codec=None)
    clip = load_clip(path, num_frames=8)
    assert clip.frames.shape == (8, SIZE[1], SIZE[0], 3)
    assert np.all(clip.timestamps == 0.0)
    assert clip.duration == pytest.approx(0.04, abs=1e-3)


def test_tenth_of_a_second_clip(tmp_path):
    path = write_media(tmp_path / "short.mp4", duration=0.1)
    clip = load_clip(path, num_frames=8)
    assert clip.num_frames == 8 and clip.duration == pytest.approx(0.12, abs=0.04)
    assert abs(len(clip.audio) - 0.1 * SR) <= SR / 25
    with pytest.raises(MediaTooShortError, match="min_duration"):
        load_clip(path, num_frames=8, min_duration=0.5)


def test_path_with_spaces_and_non_ascii(tmp_path):
    folder = tmp_path / "dossier été 情绪"
    folder.mkdir()
    path = write_media(folder / "clip (1) ñ: émotion.mp4", duration=1.0)
    clip = load_clip(path, num_frames=4)
    assert clip.has_video and clip.has_audio and clip.path == str(path)
    assert len(list(iter_windows(str(path), window_s=0.5))) == 2


def test_frame_size_limits(tmp_path, monkeypatch):
    path = write_media(tmp_path / "a.mp4", duration=0.5)
    monkeypatch.setattr(media, "_decode", lambda *a, **k: pytest.fail("decoding started"))
    with pytest.raises(FrameTooLargeError, match="64x48"):
        load_clip(path, max_pixels=1000)


def test_duration_limits(tmp_path, monkeypatch):
    path = write_media(tmp_path / "a.mp4", duration=2.0)
    with pytest.raises(MediaTooLongError, match="max_duration=1"):
        load_clip(path, max_duration=1.0)
    assert load_clip(path, max_duration=None).duration == pytest.approx(2.0, abs=0.04)
    # Headers that do not tell (or lie): the limit is enforced while decoding.
    long = write_media(tmp_path / "long.mp4", frame_times=[0.0, 7200.0], audio_codec=None)
    monkeypatch.setattr(media, "_header_duration", lambda src: None)
    with pytest.raises(MediaTooLongError, match="while decoding"):
        load_clip(long, max_duration=60)
    with pytest.raises(MediaTooLongError, match="while decoding"):
        list(iter_windows(long, max_duration=60))


# --------------------------------------------------------------------------------------------
# 4. iter_windows
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def long_video(tmp_path_factory):
    return write_media(tmp_path_factory.mktemp("long") / "long.mp4", duration=20.0, fps=10)


def _check_windows(clips, total, window, hop, n):
    starts = [c.start for c in clips]
    np.testing.assert_allclose(starts, np.arange(len(clips)) * hop, atol=1e-6)
    for c in clips[:-1]:
        assert c.duration == pytest.approx(window)
    assert clips[-1].start + clips[-1].duration == pytest.approx(total, abs=0.1 + 1e-6)
    assert len(clips) == 1 or clips[-2].start + window < total  # no superfluous window
    for c in clips:
        if c.has_audio:
            assert len(c.audio) == int(round(c.duration * SR))
        if c.has_video and n is not None:
            assert c.frames.shape[0] == n
        assert np.all((c.timestamps >= -1e-6) & (c.timestamps < c.duration))


def test_windows_contiguous_and_sampled(long_video):
    clips = list(iter_windows(long_video, window_s=4.0, num_frames=8))
    assert len(clips) == 5
    _check_windows(clips, 20.0, 4.0, 4.0, 8)
    times = frame_schedule(20.0, 10)
    for c in clips:
        targets = c.start + (np.arange(8) + 0.5) * c.duration / 8
        np.testing.assert_allclose(levels_of(c.frames), _expected_levels(times, targets), atol=5)
        assert abs(tone_frequency(c.audio, SR) - TONE_HZ) < 3
    whole = load_clip(long_video)
    joined = np.concatenate([c.audio for c in clips])
    np.testing.assert_allclose(joined, whole.audio, atol=1e-4)


def test_windows_overlapping_last_shorter(long_video):
    clips = list(iter_windows(long_video, window_s=4.0, hop_s=3.0, num_frames=4))
    assert [round(c.start) for c in clips] == [0, 3, 6, 9, 12, 15, 18]
    assert clips[-1].duration == pytest.approx(2.0, abs=0.1)
    _check_windows(clips, 20.0, 4.0, 3.0, 4)


def test_windows_all_frames(long_video):
    clips = list(iter_windows(long_video, window_s=3.0, num_frames=None))
    assert sum(c.num_frames for c in clips) == 200
    assert [c.num_frames for c in clips] == [30] * 6 + [20]


def test_windows_single_modality(tmp_path):
    audio = write_media(tmp_path / "a.wav", duration=5.5, video_codec=None, audio_codec="pcm_s16le")
    clips = list(iter_windows(audio, window_s=2.0))
    assert [c.has_video for c in clips] == [False] * 3 and all(c.has_audio for c in clips)
    _check_windows(clips, 5.5, 2.0, 2.0, None)
    video = write_media(tmp_path / "v.mkv", duration=5.0, audio_codec=None)
    clips = list(iter_windows(video, window_s=2.0, num_frames=3))
    assert all(c.has_video and not c.has_audio and c.audio.shape == (0,) for c in clips)
    _check_windows(clips, 5.0, 2.0, 2.0, 3)


def _peak_bytes_while_streaming(path) -> tuple[int, int]:
    """Peak traced allocation while consuming iter_windows (clips dropped), and one clip's size."""
    tracemalloc.start()
    try:
        size = 0
        for clip in iter_windows(path, window_s=2.0, num_frames=8):
            assert (
                clip.frames.flags.owndata
                or clip.frames.base is None
                or clip.frames.base.nbytes == clip.frames.nbytes
            )
            size = max(size, clip.frames.nbytes + clip.audio.nbytes)
            del clip
        return tracemalloc.get_traced_memory()[1], size
    finally:
        tracemalloc.stop()


def test_windows_memory_flat(tmp_path):
    """Memory held while streaming does not grow with the file: 10 s and 60 s peak alike."""
    short = write_media(tmp_path / "s.mp4", duration=10.0, fps=10)
    long = write_media(tmp_path / "l.mp4", duration=60.0, fps=10)
    peak_short, window_bytes = _peak_bytes_while_streaming(short)
    peak_long, _ = _peak_bytes_while_streaming(long)
    whole_long = 600 * SIZE[0] * SIZE[1] * 3 + 60 * SR * 4
    assert peak_long < whole_long / 3
    assert peak_long < peak_short + 2 * window_bytes


# --------------------------------------------------------------------------------------------
# clip_from_arrays
# --------------------------------------------------------------------------------------------


def test_clip_from_arrays_frames():
    arr = np.random.default_rng(0).integers(0, 256, (5, 24, 32, 3), dtype=np.uint8)
    clip = clip_from_arrays(arr, fps=10)
    assert clip.has_video and not clip.has_audio and clip.duration == pytest.approx(0.5)
    np.testing.assert_array_equal(clip.frames, arr)
    np.testing.assert_allclose(clip.timestamps, np.arange(5) / 10)
    np.testing.assert_array_equal(clip_from_arrays(arr / 255.0).frames, arr)
    pil = [Image.fromarray(a) for a in arr]
    np.testing.assert_array_equal(clip_from_arrays(pil).frames, arr)
    assert clip_from_arrays(arr[0]).frames.shape == (1, 24, 32, 3)
    assert clip_from_arrays(np.dstack([arr[0], arr[0][..., :1]])).frames.shape == (
        1,
        24,
        32,
        3,
    )  # RGBA


def test_clip_from_arrays_audio():
    t = np.arange(44100 * 2) / 44100
    wave = 0.5 * np.sin(2 * np.pi * 440 * t)
    clip = clip_from_arrays(audio=wave.astype(np.float32), sampling_rate=44100)
    assert clip.sampling_rate == SR and len(clip.audio) == 2 * SR and clip.audio.dtype == np.float32
    assert tone_frequency(clip.audio, SR) == pytest.approx(440, abs=2)
    assert _rms(clip.audio[SR // 2 : -SR // 2]) == pytest.approx(0.5 / np.sqrt(2), rel=0.05)
    stereo = np.stack([wave, wave])
    np.testing.assert_allclose(
        clip_from_arrays(audio=stereo, sampling_rate=44100).audio, clip.audio, atol=1e-5
    )
    np.testing.assert_allclose(
        clip_from_arrays(audio=stereo.T, sampling_rate=44100).audio, clip.audio, atol=1e-5
    )
    pcm = (wave[:16000] * 32767).astype(np.int16)
    assert clip_from_arrays(audio=pcm, sampling_rate=16000).audio.max() == pytest.approx(
        0.5, abs=1e-3
    )
    both = clip_from_arrays(np.zeros((25, 8, 8, 3), np.uint8), wave, sampling_rate=44100, fps=25)
    assert both.has_video and both.has_audio and both.duration == pytest.approx(2.0)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(audio=np.array([0.1, np.nan] * 100), sampling_rate=16000), "NaN"),
        (dict(audio=np.array([0.1, np.inf] * 100), sampling_rate=16000), "NaN or inf"),
        (dict(audio=np.zeros(100)), "sampling_rate is required"),
        (dict(audio=np.zeros((2, 3, 4)), sampling_rate=16000), "shape"),
        (dict(audio=np.zeros(0), sampling_rate=16000), "empty"),
        (dict(audio=np.full(100, 3000.0), sampling_rate=16000), r"\[-1, 1\]"),
        (dict(audio=np.array(["a", "b"]), sampling_rate=16000), "dtype"),
        (dict(frames=np.zeros((2, 8, 8), np.uint8)), "channel"),
        (dict(frames=np.zeros((2, 2, 8, 8, 3), np.uint8)), "shape"),
        (dict(frames=np.zeros((0, 8, 8, 3), np.uint8)), "empty"),
        (dict(frames=np.full((1, 8, 8, 3), np.nan)), "NaN"),
        (dict(frames=np.zeros((1, 8, 8, 3), complex)), "dtype"),
        (dict(frames=[]), "empty"),
        ({}, "give frames"),
    ],
)
def test_clip_from_arrays_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        clip_from_arrays(**kwargs)


def test_numpy_downmix_fallback_when_resampler_refuses(monkeypatch):
    """Layouts libswresample refuses are down-mixed in numpy, then resampled."""
    real = media._AudioSink._new_resampler
    made = []

    class Refusing:
        def resample(self, frame):
            raise ValueError("unsupported layout")

    def new_resampler(self):
        made.append(1)
        return Refusing() if len(made) == 1 else real(self)

    monkeypatch.setattr(media._AudioSink, "_new_resampler", new_resampler)
    t = np.arange(48000) / 48000
    wave = (0.5 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)
    sink = media._AudioSink(SR)
    for start in range(0, 48000, 1000):
        chunk = np.repeat(wave[start : start + 1000], 2)[None, :]  # packed s16 stereo
        frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout="stereo")
        frame.sample_rate, frame.pts = 48000, start
        sink.push(frame)
    sink.finish()
    audio = sink.extract(0, sink.count)
    assert abs(sink.count - SR) <= 1 and len(made) >= 2
    assert tone_frequency(audio, SR) == pytest.approx(440, abs=2)
    assert _rms(audio[2000:-2000]) == pytest.approx(0.5 / np.sqrt(2), rel=0.02)
