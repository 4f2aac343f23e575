"""Bad input at every entry point, property-based fuzz of the processor, mutation fuzz of the media loader.

* the bad-input corpus of ``benchmarks/bad_input_corpus.py`` (>= 40 generated cases) through the processor,
  the pipeline, the CLI (``hf_avemotion.cli.main`` in a worker process) and the app's handler, each call under a
  timeout: every case gets its expected outcome, nothing uncaught, nothing hangs;
* hypothesis: random frame arrays (shapes, dtypes, values incl. NaN/inf) and waveforms (lengths, values,
  sampling rates) through ``AVEmotionProcessor``: only ValueError (MediaError) escapes, results are finite;
* ``benchmarks/fuzz_media.py``: a few hundred mutated files through ``load_clip``/``iter_windows`` in worker
  processes: only MediaError, no hang, no crash;
* regressions of what the fuzzers found (a segfault on 9-channel planar audio, a hang on a timestamp jump,
  frames changing size mid-stream).
"""

from __future__ import annotations

import sys
import time
import warnings

import av
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from conftest import REPO_ROOT
from media_factory import write_media
from tiny_model import save_tiny_model, tiny_processor

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
import bad_input_corpus as corpus  # noqa: E402
import fuzz_media  # noqa: E402

import hf_avemotion.media as media  # noqa: E402
from hf_avemotion.media import MediaError, MediaTooLongError, iter_windows, load_clip  # noqa: E402

pytestmark = [pytest.mark.timeout(300), pytest.mark.filterwarnings("ignore")]


# ----------------------------------------------------------------------------------------- corpus


def test_bad_input_corpus_at_every_entry_point(tmp_path):
    cases = corpus.build_corpus()
    assert len(cases) >= 40
    model = save_tiny_model(tmp_path / "model")
    report = corpus.run_corpus(tmp_path, str(model), cli_mode="inprocess", timeout=90.0)
    counts = report.counts()
    print(report.format())
    for entry in corpus.ENTRY_POINTS:
        assert counts[entry]["cases"] >= 40, (entry, counts[entry])
    assert not report.failures(), report.format()
    # the named cases are all there
    names = {c.name for c in cases}
    for needed in ("Y4M header 100000x100000", "10 000 tiny frames (array)", "2-hour silent video",
                   "96 kHz 8-channel WAV", "NaN in waveform", "frames rank 2", "frames bool", "empty list",
                   "mixed batch of files (good, empty, good, missing, truncated)"):
        assert needed in names


# ----------------------------------------------------------------------------------------- hypothesis


@pytest.fixture(scope="module")
def processor():
    return tiny_processor()


# Weighted towards valid input (so the success path is exercised too), with every kind of invalid one.
FRAME_DTYPES = st.sampled_from([np.uint8] * 4 + [np.float32] * 2 + [np.float64, np.float16, np.int16, np.int64,
                                                                      np.bool_, np.complex64])
WAVE_DTYPES = st.sampled_from([np.float32] * 4 + [np.float64, np.int16, np.int32, np.uint8, np.int64, np.float16])


def _elements(dtype, bound: float):
    """Element strategy: mostly in range ([0,1] frames, [-1,1] audio), else up to +-bound, NaN and inf for
    floats; the full range for integer dtypes."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        width = dtype.itemsize * 8
        return st.one_of(st.floats(0.0, 1.0, width=width), st.floats(-1.0, 1.0, width=width),
                         st.floats(-bound, bound, width=width),
                         st.sampled_from([np.nan, np.inf, -np.inf, 1e30 if width > 16 else 6e4]))
    return None


@st.composite
def frame_arrays(draw):
    """Arrays around [T,H,W,C] (mostly rank 4; also 0-3, 5, 6): T 0-3, H and W 0-40, C mostly 3."""
    rank = draw(st.sampled_from([4] * 6 + [5, 3, 2, 1, 0, 6]))
    dims = [draw(st.integers(0, 3)), draw(st.integers(0, 40)), draw(st.integers(0, 40)),
            draw(st.sampled_from([3] * 4 + [1, 4, 2, 5]))]
    shape = tuple(dims[4 - rank:]) if rank <= 4 else tuple([draw(st.integers(1, 2)) for _ in range(rank - 4)] + dims)
    dtype = draw(FRAME_DTYPES)
    return draw(hnp.arrays(dtype, shape, elements=_elements(dtype, 1e3)))


@st.composite
def waveforms(draw):
    """Waveforms, mostly [N]; also [2,N], [N,2], [1,1,5] and scalars; NaN/inf and out-of-range floats."""
    dtype = draw(WAVE_DTYPES)
    n = draw(st.integers(0, 4000))
    shape = draw(st.sampled_from([(n,)] * 5 + [(2, n // 4), (n // 4, 2), (1, 1, 5), ()]))
    return draw(hnp.arrays(dtype, shape, elements=_elements(dtype, 2.0)))


RATES = st.one_of(st.sampled_from([8000, 16000, 22050, 44100, 48000, 96000]), st.none(),
                  st.integers(-10, 2_000_000), st.floats(allow_nan=True), st.just(True))


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(frames=st.one_of(st.none(), frame_arrays()), wave=st.one_of(st.none(), waveforms()), rate=RATES)
def test_processor_array_inputs_raise_only_value_errors(processor, frames, wave, rate):
    """Random arrays in: a finite BatchFeature out, or a ValueError (MediaError) that names the problem."""
    kwargs = {}
    if frames is not None:
        kwargs["videos"] = frames
    if wave is not None:
        kwargs.update(audio=wave, sampling_rate=rate)
    try:
        out = processor(**kwargs, return_tensors="np")
    except ValueError as err:  # MediaError included
        assert str(err).strip()
        return
    assert np.isfinite(out["pixel_values"]).all() and np.isfinite(out["input_values"]).all()
    assert out["pixel_values"].shape[:2] == out["video_mask"].shape == out["face_mask"].shape


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(frames=st.one_of(st.none(), frame_arrays()), wave=st.one_of(st.none(), waveforms()), rate=RATES,
       fps=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 1000)))
def test_clip_from_arrays_raises_only_value_errors(frames, wave, rate, fps):
    try:
        clip = media.clip_from_arrays(frames=frames, audio=wave, sampling_rate=rate, fps=fps)
    except ValueError:
        return
    media.check_clip(clip)


# ----------------------------------------------------------------------------------------- media fuzz


def test_mutation_fuzz_of_the_media_loader(tmp_path):
    """A few hundred mutated files (bit flips, truncation, chunk duplication, header corruption, ...)."""
    result = fuzz_media.fuzz(400, seed=11, workers=2, timeout=30.0, folder=tmp_path)
    counts = result["counts"]
    assert sum(counts.values()) == 400
    assert counts["uncaught"] == counts["hang"] == counts["crash"] == 0, result["failures"][:5]
    assert counts["ok"] > 50 and counts["media_error"] > 50  # the mutations hit both sides


# ----------------------------------------------------------------------------------------- regressions


def test_nine_channel_planar_audio_frame_is_read_without_pyav_planes():
    """PyAV's ``frame.planes`` walks past FFmpeg's pointer array for >= 8 planar channels (a fuzzed AAC header
    announcing 9 channels segfaulted); the numpy down-mix reads exactly ``nb_channels`` planes."""
    frame = av.AudioFrame(format="fltp", layout="9 channels", samples=256)
    for i in range(9):
        np.frombuffer(av.audio.plane.AudioPlane(frame, i), dtype=np.float32, count=256)[:] = i / 10
    samples = media._frame_samples(frame)
    assert samples.shape == (9, 256)
    np.testing.assert_allclose(media._frame_to_mono(frame), np.full(256, 0.4), rtol=1e-6)


def test_timestamp_jump_is_refused_before_opening_windows(tmp_path):
    """A damaged timestamp a million seconds ahead used to open millions of windows (a hang)."""
    path = write_media(tmp_path / "jump.mkv", frame_times=[0.0, 0.04, 1_000_000.0], duration=1_000_000.04,
                       audio_codec=None)
    started = time.perf_counter()
    with pytest.raises(MediaTooLongError):
        list(iter_windows(path, window_s=0.25, max_duration=600.0))
    assert time.perf_counter() - started < 10


def test_pipeline_timeline_has_a_duration_limit(tmp_path):
    from hf_avemotion.pipeline_avemotion import load_pipeline

    pipe = load_pipeline(save_tiny_model(tmp_path / "model"))
    long = write_media(tmp_path / "long.mp4", frame_times=[0.0, 7200.0], audio_codec=None)
    with pytest.raises(MediaTooLongError, match="max_duration=3600"):
        pipe(str(long), timeline=True, max_timeline_s=3600)
    frames = {"frames": np.zeros((2, 8, 8, 3), np.uint8), "fps": 1e-3}  # 2 frames "lasting" 2000 s
    with pytest.raises(MediaTooLongError, match="max_timeline_s"):
        pipe(frames, timeline=True, max_timeline_s=1000)


def test_frames_keep_the_first_size_and_rotation_across_passes():
    """Damaged streams change size mid-stream; both decoding passes convert to the first picked size."""
    first = media._FrameConverter("x", None)
    a = first(av.VideoFrame(64, 48, "yuv420p"), 0)
    again = media._FrameConverter("x", None, first.size, first.turns)
    b = again(av.VideoFrame(64, 560, "yuv420p"), 1)
    assert a.shape == b.shape == (48, 64, 3)


def test_in_memory_limits():
    with pytest.raises(media.FrameTooLargeError):
        media.clip_from_arrays(frames=np.broadcast_to(np.uint8(0), (1, 5000, 4000, 3)))
    for rate in (1, 999, 10**7, 10**10):
        with pytest.raises(ValueError, match="supported range"):
            media.clip_from_arrays(audio=np.zeros(100, np.float32), sampling_rate=rate)
    with pytest.raises(MediaError, match="NUL"):
        load_clip("clip\x00.mp4")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clip = media.clip_from_arrays(audio=np.zeros(1000, np.float32), sampling_rate=1000)
    assert len(clip.audio) == 16000
