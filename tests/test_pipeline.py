"""Tests of the "audio-visual-emotion-recognition" pipeline on a tiny random model (no Hub)."""

import math
import os
from fractions import Fraction

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import av
import numpy as np
import pytest
from conftest import SHARED_DATA
from media_factory import write_media
from tiny_model import save_tiny_model
from transformers import pipeline

import hf_avemotion.pipeline_avemotion as pipeline_module
from hf_avemotion.configuration_avemotion import RAVDESS_EMOTIONS
from hf_avemotion.media import MediaError, load_clip
from hf_avemotion.pipeline_avemotion import TASK, AudioVisualEmotionPipeline, segment_bounds

pytestmark = [pytest.mark.timeout(300), pytest.mark.filterwarnings("ignore:At least one mel filter")]
MEDIA_SUFFIXES = {".mp4", ".avi", ".mp3", ".wav", ".flv", ".mkv", ".webm", ".mov"}
SHARED_FILES = sorted(p for p in SHARED_DATA.rglob("*") if p.suffix.lower() in MEDIA_SUFFIXES) \
    if SHARED_DATA.is_dir() else []


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("model") / "model")


@pytest.fixture(scope="module")
def pipe(model_dir):
    return pipeline(TASK, model=str(model_dir), device="cpu")


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("media")
    write_media(d / "av.mp4", duration=1.5)
    write_media(d / "silent.mp4", duration=1.5, audio_codec=None)
    write_media(d / "voice.wav", duration=1.5, video_codec=None, audio_codec="pcm_s16le")
    return d


def assert_scores(scores, k=len(RAVDESS_EMOTIONS)):
    """[{"label", "score"}] of length k, best first, labels among the model's, scores in [0, 1]."""
    assert isinstance(scores, list) and len(scores) == k
    assert all(set(s) == {"label", "score"} for s in scores)
    assert all(isinstance(s["label"], str) and isinstance(s["score"], float) for s in scores)
    assert {s["label"] for s in scores} <= set(RAVDESS_EMOTIONS)
    values = [s["score"] for s in scores]
    assert values == sorted(values, reverse=True) and all(0.0 <= v <= 1.0 for v in values)
    if k == len(RAVDESS_EMOTIONS):
        assert math.isclose(sum(values), 1.0, abs_tol=1e-5)


def scores_of(result):
    return np.array([s["score"] for s in (result["scores"] if isinstance(result, dict) else result)])


def test_registered_task_gives_this_pipeline(pipe):
    assert isinstance(pipe, AudioVisualEmotionPipeline)
    assert pipe.device.type == "cpu"


@pytest.mark.skipif(not SHARED_FILES, reason=f"{SHARED_DATA} is absent")
def test_every_shared_file_gives_a_well_formed_result(pipe):
    for path in SHARED_FILES:
        result = pipe(str(path), return_metadata=True)
        assert set(result) == {"scores", "face_found_ratio", "has_audio", "duration"}, path
        assert_scores(result["scores"])
        assert result["has_audio"] is True, path  # every shared clip has a voice
        assert 0.5 < result["duration"] < 30, path
        if path.suffix == ".mp3":  # CREMA-D copies are audio only
            assert result["face_found_ratio"] == 0.0
        else:  # close-up talking faces
            assert result["face_found_ratio"] >= 0.75, path


def test_clip_dict_and_path_inputs_agree(pipe, media_dir):
    path = media_dir / "av.mp4"
    by_path = pipe(str(path))
    assert_scores(by_path)
    clip = load_clip(path, num_frames=pipe.processor.num_frames)
    np.testing.assert_allclose(scores_of(pipe(clip)), scores_of(by_path), atol=1e-6)
    by_dict = pipe({"frames": clip.frames, "audio": clip.audio, "sampling_rate": clip.sampling_rate},
                   return_metadata=True)
    assert_scores(by_dict["scores"])
    assert by_dict["has_audio"] and by_dict["face_found_ratio"] == 0.0  # grey frames: no face
    audio_only = pipe({"audio": np.zeros(8000, np.float32), "sampling_rate": 8000}, return_metadata=True)
    assert audio_only["has_audio"] and audio_only["duration"] == pytest.approx(1.0)
    frames_only = pipe({"frames": clip.frames, "fps": 4.0}, return_metadata=True)
    assert not frames_only["has_audio"] and frames_only["duration"] == pytest.approx(1.0)


def test_top_k(pipe, media_dir):
    result = pipe(str(media_dir / "av.mp4"), top_k=3)
    assert_scores(result, k=3)
    np.testing.assert_allclose(scores_of(result), scores_of(pipe(str(media_dir / "av.mp4")))[:3])
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="top_k"):
            pipe(str(media_dir / "av.mp4"), top_k=bad)


def test_list_input_batched_answers_good_items_and_reports_bad_ones(pipe, media_dir, tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    clip = load_clip(media_dir / "av.mp4", num_frames=4)
    items = [str(media_dir / "av.mp4"), str(empty), clip, str(media_dir / "silent.mp4"), 42,
             str(media_dir / "voice.wav"), str(tmp_path / "missing.mp4")]
    singles = pipe(items, batch_size=1)
    batched = pipe(items, batch_size=3)
    assert len(singles) == len(batched) == len(items)
    for i in (1, 4, 6):
        assert set(singles[i]) == {"error"} and singles[i] == batched[i]
    assert "empty" in singles[1]["error"] and "int" in singles[4]["error"]
    assert "missing.mp4" in singles[6]["error"]
    for i in (0, 2, 3, 5):
        assert_scores(batched[i])
        np.testing.assert_allclose(scores_of(batched[i]), scores_of(singles[i]), atol=1e-5)
        np.testing.assert_allclose(scores_of(singles[i]), scores_of(pipe(items[i])), atol=1e-6)
    assert pipe([]) == []


def test_single_bad_input_raises(pipe, tmp_path):
    with pytest.raises(MediaError, match="no such file"):
        pipe(str(tmp_path / "missing.mp4"))
    with pytest.raises(ValueError, match="unsupported input"):
        pipe(3.5)
    with pytest.raises(ValueError, match="unknown key"):
        pipe({"video": np.zeros((2, 8, 8, 3), np.uint8)})
    with pytest.raises(ValueError, match="window_s"):
        pipe(str(tmp_path / "missing.mp4"), timeline=True, window_s=0)


def test_metadata_for_audio_only_file_and_video_without_audio(pipe, media_dir):
    voice = pipe(str(media_dir / "voice.wav"), return_metadata=True)
    assert voice["has_audio"] is True and voice["face_found_ratio"] == 0.0
    assert voice["duration"] == pytest.approx(1.5, abs=0.05)
    silent = pipe(str(media_dir / "silent.mp4"), return_metadata=True)
    assert silent["has_audio"] is False and silent["duration"] == pytest.approx(1.5, abs=0.05)
    assert 0.0 <= silent["face_found_ratio"] <= 1.0
    assert_scores(voice["scores"])
    assert_scores(silent["scores"])


@pytest.mark.skipif(not SHARED_FILES, reason=f"{SHARED_DATA} is absent")
def test_attention_and_face_crops_for_a_real_face(pipe):
    path = next(p for p in SHARED_FILES if p.suffix == ".avi")
    result = pipe(str(path), return_attentions=True, return_face_crops=True, top_k=1)
    crops = result["face_crops"]
    assert crops.dtype == np.uint8 and crops.shape == (4, 32, 32, 3)
    assert result["face_found_ratio"] == 1.0
    weights = result["attention"]
    assert len(weights) == 4 and all(0.0 <= w <= 1.0 for w in weights) and sum(weights) <= 1.0 + 1e-5
    assert_scores(result["scores"], k=1)


def test_attention_is_none_without_cross_modal_attention(tmp_path, media_dir):
    late = pipeline(TASK, model=str(save_tiny_model(tmp_path / "late", fusion_type="late")))
    result = late(str(media_dir / "voice.wav"), return_attentions=True, return_face_crops=True)
    assert result["attention"] is None and result["face_crops"].shape == (0, 32, 32, 3)


# ------------------------------------------------------------------------------------------ timeline


def write_concatenated_video(path, seconds=60.0, fps=25, size=(64, 48), rate=16000):
    """MP4 (H.264 + AAC) of about ``seconds`` made by concatenating the shared clips (repeated), scaled down to
    ``size``; a generated clip when ../shared/data is absent."""
    sources = [next(p for p in SHARED_FILES if p.suffix == s) for s in (".avi", ".mp4")
               if any(p.suffix == s for p in SHARED_FILES)]  # one eNTERFACE and one RAVDESS clip
    if not sources:
        return write_media(path, duration=seconds, size=size)
    frames, audio = [], []
    for source in sources:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        with av.open(str(source)) as container:
            clip_frames = [f.to_ndarray(width=size[0], height=size[1], format="rgb24")
                           for f in container.decode(video=0)]
        with av.open(str(source)) as container:
            wave = np.concatenate([r.to_ndarray()[0] for f in container.decode(audio=0) for r in resampler.resample(f)])
        n = int(round(len(clip_frames) / fps * rate))  # keep audio and video in step, clip by clip
        frames += clip_frames
        audio.append(np.pad(wave[:n], (0, max(0, n - len(wave)))))
    audio = np.concatenate(audio)
    total = int(seconds * fps)
    frames = [frames[i % len(frames)] for i in range(total)]
    audio = np.resize(audio, int(seconds * rate)).astype(np.float32)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
        video.codec_context.options = {"preset": "ultrafast"}
        sound = out.add_stream("aac", rate=rate)
        sound.codec_context.layout = "mono"
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        for start in range(0, len(audio), 1024):
            frame = av.AudioFrame.from_ndarray(audio[None, start:start + 1024], format="flt", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
            out.mux(sound.encode(frame))
        out.mux(sound.encode(None))
    return path


def assert_contiguous(result, duration):
    segments = result["segments"]
    assert segments[0]["start"] == 0.0
    assert segments[-1]["end"] == pytest.approx(duration, abs=0.1)
    assert segments[-1]["end"] == pytest.approx(result["duration"], abs=1e-9)
    for a, b in zip(segments, segments[1:]):
        assert a["end"] == b["start"] and a["start"] < a["end"]
    for s in segments:
        assert set(s) >= {"start", "end", "label", "score", "scores"}
        assert s["label"] == s["scores"][0]["label"] and s["score"] == s["scores"][0]["score"]


def test_timeline_of_a_60s_video_covers_it_with_contiguous_segments(pipe, tmp_path, monkeypatch):
    path = write_concatenated_video(tmp_path / "long.mp4")
    # the timeline streams the file window by window; it never decodes the whole file at once
    monkeypatch.setattr(pipeline_module, "load_clip", lambda *a, **k: pytest.fail("load_clip on a timeline"))
    result = pipe(str(path), timeline=True, window_s=4.0, top_k=2, batch_size=4)
    assert set(result) == {"scores", "face_found_ratio", "has_audio", "duration", "segments"}
    assert_contiguous(result, 60.0)
    assert len(result["segments"]) == 15 and all(s["end"] - s["start"] == pytest.approx(4.0)
                                                  for s in result["segments"])
    assert_scores(result["scores"], k=2)
    assert result["has_audio"] is True
    if SHARED_FILES:
        assert result["face_found_ratio"] > 0.75


def test_timeline_batched_equals_unbatched_and_works_in_memory(pipe, media_dir):
    path = str(media_dir / "av.mp4")
    one = pipe(path, timeline=True, window_s=0.4, hop_s=0.3)
    three = pipe(path, timeline=True, window_s=0.4, hop_s=0.3, batch_size=3)
    assert_contiguous(one, 1.5)
    assert [(s["start"], s["end"]) for s in one["segments"]] == [(s["start"], s["end"]) for s in three["segments"]]
    for a, b in zip(one["segments"], three["segments"]):
        np.testing.assert_allclose(scores_of(a), scores_of(b), atol=1e-5)
    clip = load_clip(path)  # every frame, in memory
    in_memory = pipe(clip, timeline=True, window_s=0.5, return_face_crops=True, return_attentions=True)
    assert_contiguous(in_memory, 1.5)
    assert len(in_memory["segments"]) == math.ceil(clip.duration / 0.5 - 1e-9)
    assert all(s["face_crops"].shape[1:] == (32, 32, 3) and len(s["attention"]) == len(s["face_crops"])
               for s in in_memory["segments"])


def test_segment_bounds():
    assert segment_bounds([0, 4, 8], 10.0, 4.0, 4.0) == [(0, 4.0), (4.0, 8.0), (8.0, 10.0)]
    # overlapping windows: cut in the middle of each overlap
    assert segment_bounds([0, 2, 4], 7.0, 4.0, 2.0) == [(0, 3.0), (3.0, 5.0), (5.0, 7.0)]
