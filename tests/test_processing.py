"""Tests of hf_avemotion.processing_avemotion (AVEmotionProcessor)."""

import os
import pickle
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch
from media_factory import write_media
from PIL import Image
from transformers import ASTFeatureExtractor, AutoProcessor

from hf_avemotion.configuration_avemotion import AVEmotionConfig
from hf_avemotion.media import MediaError, MediaNotFoundError, clip_from_arrays
from hf_avemotion.processing_avemotion import AVEmotionProcessor, register_processor

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
RAVDESS = DATA / "ravdess_av" / "01-01-07-02-02-01-01_1.mp4"
SR = 16000
pytestmark = pytest.mark.filterwarnings("ignore:At least one mel filter has all zero values")


def grey_frames(levels, h=48, w=64):
    """uint8 [len(levels),H,W,3], frame i uniformly grey at levels[i]."""
    return np.stack([np.full((h, w, 3), v, np.uint8) for v in levels])


def tone(seconds, sr=SR, hz=440.0):
    t = np.arange(int(seconds * sr)) / sr
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def pixel_level(pixel_values):
    """Normalised pixels (mean = std = 0.5) back to 0-255 levels, averaged per frame: [..., 3, S, S] -> [...]."""
    return ((pixel_values * 0.5 + 0.5) * 255).mean(dim=(-3, -2, -1))


@pytest.fixture(scope="module")
def processor():
    return AVEmotionProcessor(num_frames=4, feature_extractor=ASTFeatureExtractor(max_length=200))


@pytest.fixture(scope="module")
def tiny_video(tmp_path_factory):
    """1 s 64x48 H.264 + AAC 44.1 kHz clip, 25 grey frames (no face)."""
    return write_media(tmp_path_factory.mktemp("media") / "tiny.mp4", duration=1.0)


def test_default_construction():
    p = AVEmotionProcessor()
    assert p.image_processor.size == {"height": 224, "width": 224}
    assert list(p.image_processor.image_mean) == [0.5] * 3 and list(p.image_processor.image_std) == [0.5] * 3
    fe = p.feature_extractor
    assert isinstance(fe, ASTFeatureExtractor)
    assert (fe.sampling_rate, fe.num_mel_bins, fe.max_length) == (16000, 128, 1024)
    assert (p.num_frames, p.detect_faces, p.face_margin, p.max_duration) == (8, True, 0.25, 600.0)
    assert p.crop_size == 224 and p.face_cropper.output_size == 224
    out = p(audio=tone(0.5), sampling_rate=SR)
    assert out["pixel_values"].shape == (1, 8, 3, 224, 224)
    assert out["input_values"].shape == (1, 1024, 128)


def test_save_and_auto_processor_round_trip(tmp_path):
    register_processor()
    p = AVEmotionProcessor(
        feature_extractor=ASTFeatureExtractor(max_length=300),
        num_frames=5,
        detect_faces=False,
        face_margin=0.4,
        max_duration=30.0,
    )
    p.image_processor.size = {"height": 96, "width": 96}
    AVEmotionConfig().save_pretrained(tmp_path)  # the processor lives in a model folder
    p.save_pretrained(tmp_path)
    q = AutoProcessor.from_pretrained(tmp_path)
    assert type(q) is AVEmotionProcessor
    assert (q.num_frames, q.detect_faces, q.face_margin, q.max_duration) == (5, False, 0.4, 30.0)
    assert q.image_processor.size == {"height": 96, "width": 96}
    assert q.feature_extractor.max_length == 300
    frames = grey_frames([10, 200, 90])
    a, b = p(videos=frames, audio=tone(1.0), sampling_rate=SR), q(videos=frames, audio=tone(1.0), sampling_rate=SR)
    assert a["pixel_values"].shape == (1, 5, 3, 96, 96) and b["input_values"].shape == (1, 300, 128)
    for key in a:
        torch.testing.assert_close(a[key], b[key])


def test_mixed_batch_of_path_clip_array_and_pil(processor, tiny_video):
    clip = clip_from_arrays(frames=grey_frames([50, 150]), audio=tone(0.7), sampling_rate=SR)
    array = grey_frames([20, 40, 60])
    pil = [Image.fromarray(f) for f in grey_frames(range(0, 200, 20))]  # 10 frames
    out = processor(videos=[str(tiny_video), clip, array, pil])
    assert out["pixel_values"].shape == (4, 4, 3, 224, 224) and out["pixel_values"].dtype == torch.float32
    assert out["input_values"].shape == (4, 200, 128)
    assert out["video_mask"].tolist() == [[True] * 4, [True, True, False, False], [True, True, True, False], [True] * 4]
    assert not out["face_mask"].any()  # grey frames: no face
    assert out["audio_mask"].tolist() == [True, True, False, False]  # the file's and the Clip's own audio
    levels = pixel_level(out["pixel_values"])
    # Padded frames and rows without audio are zeros.
    assert (out["pixel_values"][1, 2:] == 0).all() and (out["pixel_values"][2, 3] == 0).all()
    assert (out["input_values"][2:] == 0).all() and (out["input_values"][:2] != 0).any()
    # Frames keep their order; 10 PIL frames are subsampled uniformly (indices 0, 3, 6, 9).
    torch.testing.assert_close(levels[1, :2], torch.tensor([50.0, 150.0]), atol=1.0, rtol=0)
    torch.testing.assert_close(levels[2, :3], torch.tensor([20.0, 40.0, 60.0]), atol=1.0, rtol=0)
    torch.testing.assert_close(levels[3], torch.tensor([0.0, 60.0, 120.0, 180.0]), atol=1.0, rtol=0)


def test_video_only_audio_only_and_mixed_rows(processor):
    video_only = processor(videos=grey_frames([100] * 6))
    assert video_only["video_mask"].all() and video_only["audio_mask"].tolist() == [False]
    assert (video_only["input_values"] == 0).all()

    audio_only = processor(audio=tone(1.0), sampling_rate=SR)
    assert audio_only["pixel_values"].shape == (1, 4, 3, 224, 224)
    assert not audio_only["video_mask"].any() and not audio_only["face_mask"].any()
    assert (audio_only["pixel_values"] == 0).all() and audio_only["audio_mask"].tolist() == [True]

    mixed = processor(videos=[grey_frames([100] * 2), None], audio=[None, tone(0.5)], sampling_rate=SR)
    assert mixed["video_mask"].tolist() == [[True, True, False, False], [False] * 4]
    assert mixed["audio_mask"].tolist() == [False, True]
    assert (mixed["input_values"][0] == 0).all() and (mixed["pixel_values"][1] == 0).all()

    np_out = processor(audio=[tone(0.3), tone(0.01)], sampling_rate=SR, return_tensors="np")
    assert isinstance(np_out["input_values"], np.ndarray) and np_out["audio_mask"].tolist() == [True, True]

    # A used processor (face cropper built) still pickles, e.g. for DataLoader workers.
    clone = pickle.loads(pickle.dumps(processor))
    torch.testing.assert_close(clone(videos=grey_frames([100] * 6))["pixel_values"], video_only["pixel_values"])


def test_audio_replaces_file_audio_and_short_file_is_padded(processor, tmp_path):
    path = write_media(tmp_path / "three.mp4", duration=0.12, fps=25)  # 3 frames
    out = processor(videos=path)
    assert out["video_mask"].tolist() == [[True, True, True, False]]  # 3 frames, not repeated to 4
    assert out["audio_mask"].tolist() == [True]
    silent = processor(videos=path, audio=np.zeros(8000, np.float32), sampling_rate=SR)
    assert not torch.equal(silent["input_values"], out["input_values"])


def test_resampled_audio_matches_16k(processor):
    wave_16k = tone(1.5, sr=16000)
    wave_44k = tone(1.5, sr=44100)
    a = processor(audio=wave_16k, sampling_rate=16000)["input_values"][0]
    b = processor(audio=wave_44k, sampling_rate=44100)["input_values"][0]

    def valid_frames(x):  # frames that are not the constant padding row
        return int((x != x[-1]).any(dim=1).sum())

    assert valid_frames(a) == valid_frames(b) == (24000 - 400) // 160 + 1
    assert (a - b).abs().mean() < 0.05
    # A `datasets` Audio dict carries its own rate.
    c = processor(audio=[{"array": wave_44k, "sampling_rate": 44100}])["input_values"][0]
    torch.testing.assert_close(c, b)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(videos=np.zeros((48, 64, 3), np.uint8)), ValueError, r"\[T,H,W,3\]"),
        (dict(videos=np.zeros((1, 1, 2, 48, 64, 3), np.uint8)), ValueError, r"\[T,H,W,3\]"),
        (dict(videos=np.zeros((2, 48, 64, 3), bool)), ValueError, "dtype"),
        (dict(videos=np.full((2, 48, 64, 3), np.nan)), ValueError, "NaN"),
        (dict(videos=[]), ValueError, "empty"),
        (dict(videos=123), ValueError, "videos must be"),
        (dict(videos=[grey_frames([1]), 5]), ValueError, r"videos\[1\]"),
        (dict(videos=Image.new("RGB", (8, 8))), ValueError, "list of PIL"),
        (dict(audio=np.array([0.1, np.nan, 0.2] * 200, np.float32), sampling_rate=SR), ValueError, "NaN"),
        (dict(audio=np.zeros((2, 16000), np.float32), sampling_rate=SR), ValueError, "mono"),
        (dict(audio=np.zeros(16000, np.complex64), sampling_rate=SR), ValueError, "dtype"),
        (dict(audio=np.zeros(16000, np.float32)), ValueError, "sampling_rate"),
        (dict(audio=[]), ValueError, "empty"),
        (dict(audio="speech.wav", sampling_rate=SR), ValueError, "audio must be"),
        (
            dict(videos=[grey_frames([1]), grey_frames([2])], audio=[tone(0.1)], sampling_rate=SR),
            ValueError,
            "batch sizes",
        ),
        (dict(), ValueError, "videos, audio"),
        (dict(videos="/nonexistent/clip.mp4"), MediaNotFoundError, "no such file"),
    ],
)
def test_bad_inputs_raise(processor, kwargs, error, match):
    with pytest.raises(error, match=match):
        processor(**kwargs)


def test_media_errors_are_value_errors():
    assert issubclass(MediaError, ValueError)


@pytest.mark.skipif(not RAVDESS.exists(), reason=f"real clips not found under {DATA}")
def test_real_clips_face_audio_and_audio_only_file():
    mp3 = sorted(DATA.glob("crema_d/*.mp3"))[0]  # audio-only file
    out = AVEmotionProcessor(feature_extractor=ASTFeatureExtractor(max_length=400))([RAVDESS, mp3])
    assert out["pixel_values"].shape == (2, 8, 3, 224, 224) and out["input_values"].shape == (2, 400, 128)
    assert out["video_mask"][0].all() and out["face_mask"][0].all()
    assert not out["video_mask"][1].any() and (out["pixel_values"][1] == 0).all()
    assert out["audio_mask"].tolist() == [True, True]


def test_face_crops_are_the_crops_the_pixel_values_come_from(processor):
    frames = grey_frames([40, 90, 140])
    clip = clip_from_arrays(frames=frames)
    features = processor(videos=clip, return_tensors="pt", return_face_crops=True)
    crops = features["face_crops"]
    assert crops.dtype == np.uint8 and crops.shape[:2] == (1, processor.num_frames)
    expected = processor.face_cropper(processor._sample_frames(clip)).crops
    np.testing.assert_array_equal(crops[0, : len(expected)], expected)
    assert not crops[0, len(expected):].any()  # padding rows stay zero
    # the normalised pixels are those crops, rescaled and normalised
    torch.testing.assert_close(features["pixel_values"][0, : len(expected)],
                               processor.normalize_frames(torch.from_numpy(expected).permute(0, 3, 1, 2)),
                               atol=1e-5, rtol=0)
