"""Tests of hf_avemotion.face_detection (YuNet face crops)."""

import pickle
from pathlib import Path

import av
import numpy as np
import pytest

from hf_avemotion.face_detection import FaceCropper, FaceCrops

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
REAL_CLIPS = sorted(DATA.glob("enterface05/*.avi")) + sorted(DATA.glob("ravdess_av/*.mp4"))
RAVDESS = DATA / "ravdess_av" / "01-01-07-02-02-01-01_1.mp4"
needs_data = pytest.mark.skipif(not RAVDESS.exists(), reason=f"real clips not found under {DATA}")


def sample_frames(path: Path, n: int) -> np.ndarray:
    """n uniformly sampled frames of a file: uint8 [n,H,W,3] (only those are converted to RGB)."""
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
    idx = np.linspace(0, len(frames) - 1, n).round().astype(int)
    return np.stack([frames[i].to_ndarray(format="rgb24") for i in idx])


@pytest.fixture(scope="module")
def cropper():
    return FaceCropper()


@pytest.fixture(scope="module")
def ravdess_frames():
    if not RAVDESS.exists():
        pytest.skip(f"real clips not found under {DATA}")
    return sample_frames(RAVDESS, 4)


def noise_frames(t=2, h=240, w=320, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


@needs_data
@pytest.mark.parametrize("path", REAL_CLIPS, ids=[p.name for p in REAL_CLIPS])
def test_face_found_on_real_clips(cropper, path):
    out = cropper(sample_frames(path, 16))
    assert out.face_found.mean() >= 0.9, f"{path.name}: face found in {out.face_found.sum()}/16 frames"


def test_no_face_gives_centre_crop(cropper):
    frames = np.concatenate([noise_frames(2), np.full((1, 240, 320, 3), 128, np.uint8)])
    out = cropper(frames)
    assert isinstance(out, FaceCrops)
    assert out.crops.shape == (3, 224, 224, 3) and out.crops.dtype == np.uint8
    assert out.boxes.shape == (3, 4) and out.boxes.dtype == np.float32
    assert out.face_found.dtype == bool and not out.face_found.any()
    np.testing.assert_array_equal(out.boxes, np.tile([40, 0, 280, 240], (3, 1)))
    # The centre crop of the uniform frame is the frame content, not padding.
    assert (out.crops[2] == 128).all()


def test_output_size_and_empty_input():
    small = FaceCropper(output_size=64)
    assert small(noise_frames(1)).crops.shape == (1, 64, 64, 3)
    empty = small(np.zeros((0, 48, 64, 3), np.uint8))
    assert empty.crops.shape == (0, 64, 64, 3)
    assert empty.boxes.shape == (0, 4) and empty.face_found.shape == (0,)


@pytest.mark.parametrize(
    "frames, match",
    [
        (np.zeros((2, 48, 64, 3), np.float32), "uint8"),
        (np.zeros((48, 64, 3), np.uint8), r"\[T,H,W,3\]"),
        (np.zeros((2, 48, 64, 4), np.uint8), r"\[T,H,W,3\]"),
        ([np.zeros((48, 64, 3), np.uint8)], "numpy array"),
    ],
)
def test_bad_frames_raise(cropper, frames, match):
    with pytest.raises(ValueError, match=match):
        cropper(frames)


@pytest.mark.parametrize("smoothing", [0.0, 0.5])
def test_crop_box_contains_detected_face(ravdess_frames, smoothing):
    cropper = FaceCropper(smoothing=smoothing)
    out = cropper(ravdess_frames)
    assert out.face_found.all()
    for frame, box in zip(ravdess_frames, out.boxes):
        face = cropper.detect(frame)[0]
        assert 0.5 < face[4] <= 1.0
        x0, y0, x1, y1 = box
        assert x1 - x0 == y1 - y0, "crop must be square"
        assert x0 <= face[0] and y0 <= face[1] and x1 >= face[2] and y1 >= face[3]
        # The margin is a margin, not a zoom-out: the crop is at most ~(1 + 2 * margin) the face size.
        assert (x1 - x0) <= 1.7 * max(face[2] - face[0], face[3] - face[1])


def test_missing_frame_takes_interpolated_box(ravdess_frames):
    cropper = FaceCropper(smoothing=0.0)
    a, b = ravdess_frames[0], ravdess_frames[-1]
    h, w = a.shape[:2]
    frames = np.stack([a, noise_frames(1, h, w)[0], b])
    out = cropper(frames)
    np.testing.assert_array_equal(out.face_found, [True, False, True])
    np.testing.assert_allclose(out.boxes[1], (out.boxes[0] + out.boxes[2]) / 2, atol=1.0)
    # Without any face later on, the nearest found box is reused.
    out = cropper(np.stack([a, noise_frames(1, h, w)[0]]))
    np.testing.assert_array_equal(out.boxes[1], out.boxes[0])


def test_face_at_border_is_padded_not_shifted(ravdess_frames):
    cropper = FaceCropper(smoothing=0.0)
    frame = ravdess_frames[0]
    face = cropper.detect(frame)[0]
    # Cut the frame so the face touches its left edge.
    cut = np.ascontiguousarray(frame[:, int(face[0]) + 10 :])
    out = cropper(cut[None])
    assert out.face_found[0]
    x0 = out.boxes[0, 0]
    assert x0 < 0, "box must extend past the frame rather than move off the face"
    pad_cols = int(-x0 / (out.boxes[0, 2] - x0) * 224)
    assert pad_cols > 2
    assert (out.crops[0, :, : pad_cols - 1] == 0).all()
    assert out.crops[0, :, pad_cols + 2 :].mean() > 20


def test_cropper_pickles_and_validates_single_frames(cropper):
    clone = pickle.loads(pickle.dumps(cropper))
    np.testing.assert_array_equal(clone(noise_frames(1)).boxes, cropper(noise_frames(1)).boxes)
    with pytest.raises(ValueError, match="uint8"):
        cropper.detect(np.zeros((48, 64, 3), np.float32))
