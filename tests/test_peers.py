"""The peers' expression classifiers in PyTorch (benchmarks/peers) against their original runtime.

* our tfjs manifest reader on small manifests built here (uint8-quantised, float16, float32 and int32 weights
  spread over two shards and two groups), so it runs without any download;
* TF's legacy bilinear resize and face-api's centred padding on tiny arrays;
* `fetch_peers.py` failure paths with a stand-in `npm` (no network);
* when `python benchmarks/peers/fetch_peers.py` has filled the cache: face-api's FaceExpressionNet and human's
  mini-Xception give the probabilities TensorFlow.js gave on the same real faces (tests/data/peers_reference.json,
  made by benchmarks/peers/make_reference.mjs), within 1e-3.
"""

import json
import os
import stat
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))

from peers import fetch_peers  # noqa: E402
from peers.tf_ops import resize_bilinear_legacy  # noqa: E402
from peers.tfjs_weights import TfjsFormatError, load_tfjs_weights  # noqa: E402

REFERENCE = REPO_ROOT / "tests" / "data" / "peers_reference.json"
OUR_WORDS = {"neutral", "happy", "sad", "angry", "fearful", "disgust", "surprised"}
TOLERANCE = 1e-3


# ---------------------------------------------------------------- tfjs manifest reader (no cache needed)

def _write_tiny_model(folder: Path, as_model_json: bool) -> tuple[Path, dict]:
    rng = np.random.default_rng(0)
    quantised = rng.integers(0, 256, size=(3, 4), dtype=np.uint8)  # uint8, scale 0.5, min -1
    plain = rng.standard_normal(5).astype("<f4")
    half = rng.standard_normal((2, 2)).astype("<f2")
    ints = np.array([7, -3], dtype="<i4")
    uint16 = np.array([0, 1000, 65535], dtype="<u2")  # uint16, scale 0.001, min 2
    group1 = quantised.tobytes() + plain.tobytes()  # 12 + 20 bytes, split mid-weight into two shards
    (folder / "group1-shard1of2.bin").write_bytes(group1[:17])
    (folder / "group1-shard2of2.bin").write_bytes(group1[17:])
    (folder / "group2-shard1of1.bin").write_bytes(half.tobytes() + ints.tobytes() + uint16.tobytes())
    groups = [
        {"paths": ["group1-shard1of2.bin", "group1-shard2of2.bin"], "weights": [
            {"name": "block/kernel", "shape": [3, 4], "dtype": "float32",
             "quantization": {"dtype": "uint8", "scale": 0.5, "min": -1.0}},
            {"name": "block/bias", "shape": [5], "dtype": "float32"},
        ]},
        {"paths": ["group2-shard1of1.bin"], "weights": [
            {"name": "head/kernel", "shape": [2, 2], "dtype": "float32", "quantization": {"dtype": "float16"}},
            {"name": "axes", "shape": [2], "dtype": "int32"},
            {"name": "head/bias", "shape": [3], "dtype": "float32",
             "quantization": {"dtype": "uint16", "scale": 0.001, "min": 2.0}},
        ]},
    ]
    manifest = {"format": "graph-model", "modelTopology": {}, "weightsManifest": groups} if as_model_json else groups
    path = folder / ("model.json" if as_model_json else "tiny-weights_manifest.json")
    path.write_text(json.dumps(manifest))
    expected = {
        "block/kernel": (quantised.astype(np.float64) * 0.5 - 1.0).astype(np.float32),
        "block/bias": plain.astype(np.float32),
        "head/kernel": half.astype(np.float32),
        "axes": ints.astype(np.int32),
        "head/bias": (uint16.astype(np.float64) * 0.001 + 2.0).astype(np.float32),
    }
    return path, expected


@pytest.mark.parametrize("as_model_json", [False, True], ids=["weights-manifest", "model-json"])
def test_tfjs_reader_decodes_quantised_and_float_weights_across_shards(tmp_path, as_model_json):
    path, expected = _write_tiny_model(tmp_path, as_model_json)
    weights = load_tfjs_weights(path)
    assert list(weights) == list(expected)
    for name, value in expected.items():
        assert weights[name].dtype == value.dtype, name
        assert weights[name].shape == value.shape, name
        np.testing.assert_array_equal(weights[name], value, err_msg=name)


def test_tfjs_reader_old_quantisation_without_dtype_means_uint8(tmp_path):
    (tmp_path / "w.bin").write_bytes(bytes([0, 2, 255]))
    (tmp_path / "m.json").write_text(json.dumps([{"paths": ["w.bin"], "weights": [
        {"name": "w", "shape": [3], "dtype": "float32", "quantization": {"scale": 0.25, "min": 1.0}}]}]))
    np.testing.assert_array_equal(load_tfjs_weights(tmp_path / "m.json")["w"],
                                  np.array([1.0, 1.5, 64.75], np.float32))


def test_tfjs_reader_rejects_shards_of_the_wrong_size(tmp_path):
    path, _ = _write_tiny_model(tmp_path, as_model_json=False)
    shard = tmp_path / "group1-shard2of2.bin"
    shard.write_bytes(shard.read_bytes()[:-4])
    with pytest.raises(TfjsFormatError, match="block/bias"):
        load_tfjs_weights(path)
    shard.write_bytes(shard.read_bytes() + b"\0" * 8)
    with pytest.raises(TfjsFormatError, match="hold"):
        load_tfjs_weights(path)
    (tmp_path / "bad.json").write_text(json.dumps({"format": "graph-model"}))
    with pytest.raises(TfjsFormatError, match="not a tfjs weights manifest"):
        load_tfjs_weights(tmp_path / "bad.json")


def test_legacy_bilinear_resize_uses_corner_aligned_source_coordinates():
    image = np.array([[0.0, 10.0], [20.0, 30.0]], np.float32)[:, :, None]
    out = resize_bilinear_legacy(image, 4, 4)[:, :, 0]
    # source coordinate = index * in/out = 0, 0.5, 1, 1.5 -> the last one clamps to the edge pixel
    np.testing.assert_allclose(out[0], [0, 5, 10, 10])
    np.testing.assert_allclose(out[:, 0], [0, 10, 20, 20])
    np.testing.assert_allclose(out[1, 1], 15)


def test_face_api_pads_the_short_side_round_half_after():
    from peers.face_api import pad_to_square

    image = np.ones((2, 5), np.float32)  # diff 3: Math.round(1.5) = 2 rows after, 1 before
    padded = pad_to_square(image)
    assert padded.shape == (5, 5)
    np.testing.assert_array_equal(padded.sum(axis=1), [0, 5, 5, 0, 0])


# ---------------------------------------------------------------- fetch_peers.py failure paths (no network)

def _fake_npm(folder: Path, script: str) -> None:
    npm = folder / "npm"
    npm.write_text(f"#!{sys.executable}\n" + textwrap.dedent(script))
    npm.chmod(npm.stat().st_mode | stat.S_IEXEC)


def test_fetch_reports_an_unreachable_registry_in_one_line_naming_the_package(tmp_path, monkeypatch, capsys):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _fake_npm(bin_dir, """
        import json
        print(json.dumps({"error": {"code": "ECONNREFUSED", "summary": "request to the registry failed"}}))
        raise SystemExit(1)
    """)
    monkeypatch.setenv("PATH", str(bin_dir))
    assert fetch_peers.main(["--cache-dir", str(tmp_path / "cache")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "@vladmandic/face-api@1.7.15" in err and "ECONNREFUSED" in err
    assert not fetch_peers.package_dir(fetch_peers.FACE_API, tmp_path / "cache").exists()
    assert not any(p.name.startswith(".") for p in (tmp_path / "cache" / "peers" / "@vladmandic").iterdir())


def test_fetch_refuses_a_tarball_whose_sha256_differs_and_leaves_nothing(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _fake_npm(bin_dir, """
        import io, json, sys, tarfile
        dest = sys.argv[sys.argv.index("--pack-destination") + 1]
        with tarfile.open(dest + "/vladmandic-face-api-1.7.15.tgz", "w:gz") as archive:
            data = b"{}"
            info = tarfile.TarInfo("package/package.json")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        print(json.dumps([{"filename": "vladmandic-face-api-1.7.15.tgz"}]))
    """)
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(fetch_peers.FetchError, match="differs from the pinned"):
        fetch_peers.fetch(fetch_peers.FACE_API, tmp_path / "cache")
    assert os.listdir(tmp_path / "cache" / "peers" / "@vladmandic") == []


# ---------------------------------------------------------------- against TensorFlow.js (needs the cache)

def _package_dir_or_skip(package):
    if not fetch_peers.is_complete(package):
        pytest.skip(f"{package.spec} is not in the peers cache ({fetch_peers.package_dir(package)}): "
                    "run `python benchmarks/peers/fetch_peers.py` first")
    return fetch_peers.package_dir(package)


@pytest.fixture(scope="module")
def reference():
    from peers.reference_inputs import CORPUS, load_reference_inputs

    if not CORPUS.is_dir():
        pytest.skip(f"{CORPUS} is absent: the reference faces are read from the shared corpus")
    data = json.loads(REFERENCE.read_text())
    items = load_reference_inputs()
    assert [item["key"] for item in items] == [item["key"] for item in data["inputs"]]
    assert [item["sha256"] for item in items] == [item["sha256"] for item in data["inputs"]], \
        "the corpus faces differ from those the reference outputs were computed on"
    return data, [item["pixels"] for item in items]


@pytest.mark.parametrize("name", ["face_api", "mini_xception"])
def test_peer_matches_tfjs_outputs(reference, name):
    import torch
    from peers import face_api, mini_xception

    data, images = reference
    module, load, package = {
        "face_api": (face_api, face_api.load_face_api, fetch_peers.FACE_API),
        "mini_xception": (mini_xception, mini_xception.load_mini_xception, fetch_peers.HUMAN_MODELS),
    }[name]
    folder = _package_dir_or_skip(package)
    assert tuple(data[name]["labels"]) == module.LABELS
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = load(folder)
        probs = model.predict(images)
        single = model.predict(images[-1:])  # batching does not change a face's result
    finally:
        torch.set_num_threads(threads)
    expected = np.asarray(data[name]["probs"], dtype=np.float64)
    assert probs.shape == expected.shape == (len(images), 7)
    diff = np.abs(probs - expected).max()
    assert diff <= TOLERANCE, f"{name}: max abs difference {diff:.2e} from tfjs"
    np.testing.assert_allclose(single[0], probs[-1], atol=1e-5)
    assert set(model.our_labels) == OUR_WORDS
    assert (probs.argmax(1) == expected.argmax(1)).all()
