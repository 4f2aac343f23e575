"""Tests for hf_avemotion.prepare on tiny synthetic trees laid out with the real naming conventions."""

from __future__ import annotations

import csv
import json
import os
from fractions import Fraction
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import av
import numpy as np
import pytest

import datasets
from hf_avemotion import prepare as P

T, S = 4, 32  # frames per clip, crop side: small to keep the tests fast
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


# ----------------------------------------------------------------------------- media writers


def write_media(path, *, video=True, audio=True, seconds=0.5, fps=8, size=64, sr=44100, data_stream=False):
    """Write a small file with PyAV: grey ramp frames and a 440 Hz stereo (mono for FLV) sine.

    Container from the suffix: .mp4 (mpeg4 + aac), .wav (pcm_s16le), .mp3, .flv (Sorenson H.263 +
    MP3, optional extra data stream as in CREMA-D's FLVs).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ext = path.suffix
    vcodec, acodec = {".mp4": ("mpeg4", "aac"), ".flv": ("flv", "libmp3lame"), ".wav": (None, "pcm_s16le"),
                      ".mp3": (None, "libmp3lame")}[ext]
    layout = "mono" if ext in (".flv", ".mp3") else "stereo"
    with av.open(str(path), "w") as c:
        vs = as_ = ds = None
        if video and vcodec:
            vs = c.add_stream(vcodec, rate=fps)
            vs.width = vs.height = size
            vs.pix_fmt = "yuv420p"
        if audio:
            as_ = c.add_stream(acodec, rate=sr, layout=layout)
        if data_stream:
            ds = c.add_data_stream()
        if vs is not None:
            n = max(1, round(seconds * fps))
            for i in range(n):
                img = np.full((size, size, 3), int(30 + 190 * i / max(n - 1, 1)), np.uint8)
                frame = av.VideoFrame.from_ndarray(img, format="rgb24")
                frame.pts = i
                for p in vs.encode(frame):
                    c.mux(p)
        if ds is not None:
            pkt = av.Packet(b"onMetaData")
            pkt.stream, pkt.pts, pkt.dts, pkt.time_base = ds, 0, 0, Fraction(1, 1000)
            c.mux(pkt)
        if as_ is not None:
            n = int(seconds * sr)
            wave = (0.5 * np.sin(2 * np.pi * 440 * np.arange(n) / sr)).astype(np.float32)
            chans = 1 if layout == "mono" else 2
            fmt = "s16" if acodec == "pcm_s16le" else "fltp"
            step = 1152
            for k in range(0, n, step):
                chunk = np.repeat(wave[None, k : k + step], chans, axis=0)
                if fmt == "s16":
                    arr = (chunk.T.reshape(1, -1) * 32767).astype(np.int16)
                else:
                    arr = np.ascontiguousarray(chunk)
                frame = av.AudioFrame.from_ndarray(arr, format=fmt, layout=layout)
                frame.sample_rate, frame.pts = sr, k
                for p in as_.encode(frame):
                    c.mux(p)
        for s in (vs, as_):
            if s is not None:
                for p in s.encode():
                    c.mux(p)
    return path


# ----------------------------------------------------------------------------- trees

RAV_SECONDS = 0.5


def _rav(modality, emotion, statement, actor, vocal=1, suffix=""):
    return f"{modality:02d}-{vocal:02d}-{emotion:02d}-02-{statement:02d}-01-{actor:02d}{suffix}"


@pytest.fixture(scope="module")
def ravdess_root(tmp_path_factory):
    """24 actors, one speech clip each: odd actors a full-AV 01 .mp4 (actor 1 with a `_1` suffix),
    even actors a video-only 02 .mp4 + audio-only 03 .wav pair, in the official download folders.
    Also: a song file, a corrupt 01 file for actor 03, an 02 file that an 01 file supersedes."""
    root = tmp_path_factory.mktemp("ravdess")
    for a in range(1, 25):
        emo = (a - 1) % 8 + 1
        if a % 2:
            write_media(root / f"Actor_{a:02d}" / (_rav(1, emo, 1, a, suffix="_1" if a == 1 else "") + ".mp4"),
                        seconds=RAV_SECONDS)
        else:
            write_media(root / f"Video_Speech_Actor_{a:02d}" / f"Actor_{a:02d}" / (_rav(2, emo, 1, a) + ".mp4"),
                        audio=False, seconds=RAV_SECONDS)
            write_media(root / "Audio_Speech_Actors_01-24" / f"Actor_{a:02d}" / (_rav(3, emo, 1, a) + ".wav"),
                        video=False, seconds=RAV_SECONDS, sr=48000)
    write_media(root / "Actor_05" / (_rav(2, 5, 1, 5) + ".mp4"), audio=False)  # superseded by the 01 file
    write_media(root / "Actor_01" / (_rav(1, 3, 1, 1, vocal=2) + ".mp4"))  # song: excluded
    (root / "Actor_03" / (_rav(1, 4, 2, 3) + ".mp4")).write_bytes(b"this is not a video")
    (root / "__MACOSX").mkdir()
    (root / "__MACOSX" / ("._" + _rav(1, 1, 1, 1) + ".mp4")).write_bytes(b"junk")
    return root


@pytest.fixture(scope="module")
def ravdess_prepared(ravdess_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "ravdess"
    cache = tmp_path_factory.mktemp("cache1")
    return P.prepare_ravdess(ravdess_root, out, num_frames=T, image_size=S, num_proc=1, cache_dir=cache)


@pytest.fixture(scope="module")
def crema_root(tmp_path_factory):
    """3 actors x 2 emotions: VideoFlash FLV (flv + MP3 + data stream) with AudioWAV WAVs,
    except one clip whose audio must come from its FLV."""
    root = tmp_path_factory.mktemp("crema")
    for actor in (1001, 1002, 1091):
        for code in ("ANG", "NEU"):
            name = f"{actor}_DFA_{code}_XX"
            write_media(root / "VideoFlash" / f"{name}.flv", seconds=0.5, sr=22050, data_stream=True)
            if name != "1091_DFA_NEU_XX":
                write_media(root / "AudioWAV" / f"{name}.wav", video=False, seconds=0.75, sr=16000)
    return root


# ----------------------------------------------------------------------------- name parsing and folds (no decoding)


def test_scan_ravdess(ravdess_root):
    sources, stats = P._scan_ravdess(ravdess_root)
    by_id = {s.clip_id: s for s in sources}
    assert len(sources) == 25  # 24 recordings + the corrupt one (fails later, at decoding)
    av1 = by_id["01-01-01-02-01-01-01"]  # `_1` suffix accepted and dropped from the id
    assert av1.video_file == av1.audio_file == "Actor_01/01-01-01-02-01-01-01_1.mp4"
    assert (av1.actor, av1.emotion) == ("01", "neutral")
    pair = by_id["02-01-02-02-01-01-02"]
    assert pair.video_file.endswith("Actor_02/02-01-02-02-01-01-02.mp4")
    assert pair.audio_file.startswith("Audio_Speech_Actors_01-24/") and pair.audio_file.endswith(".wav")
    assert (pair.actor, pair.emotion) == ("02", "calm")
    assert by_id["01-01-05-02-01-01-05"].video_file.startswith("Actor_05/01-")  # 01 wins over 02
    assert by_id["02-01-08-02-01-01-08"].emotion == "surprised"
    assert stats["song_excluded"] == 1 and stats["paired_02_03"] == 12 and stats["redundant_02_03"] == 1
    assert not any("MACOSX" in s.source_path for s in sources)


def test_scan_crema_d(crema_root):
    sources, _ = P._scan_crema_d(crema_root)
    by_id = {s.clip_id: s for s in sources}
    assert len(sources) == 6
    s = by_id["1001_DFA_ANG_XX"]
    assert (s.actor, s.emotion) == ("1001", "anger")
    assert (s.video_file, s.audio_file) == ("VideoFlash/1001_DFA_ANG_XX.flv", "AudioWAV/1001_DFA_ANG_XX.wav")
    assert by_id["1091_DFA_NEU_XX"].audio_file == "VideoFlash/1091_DFA_NEU_XX.flv"
    assert by_id["1002_DFA_NEU_XX"].emotion == "neutral"


def _assert_folds_valid(folds, actors, *, cover=True):
    actors = set(actors)
    tests = []
    for name, f in folds.items():
        tr, va, te = set(f["train"]), set(f["validation"]), set(f["test"])
        assert not (tr & va or tr & te or va & te), name
        assert tr | va | te == actors, name
        tests += f["test"]
    if cover:
        assert sorted(tests) == sorted(actors)  # every actor in exactly one test fold


def test_ravdess_fold_schemes():
    actors = [f"{a:02d}" for a in range(1, 25)]
    f6 = P._ravdess_folds("6x4", actors)
    assert list(f6) == [f"fold_{k}" for k in range(1, 7)]
    assert f6["fold_1"]["test"] == ["01", "02", "03", "04"] and f6["fold_1"]["validation"] == ["05", "06", "07", "08"]
    assert f6["fold_6"]["validation"] == ["01", "02", "03", "04"] and len(f6["fold_6"]["train"]) == 16
    _assert_folds_valid(f6, actors)
    f5 = P._ravdess_folds("5x", actors)  # Luna-Jimenez et al. 2021
    assert [sorted(map(int, f["test"])) for f in f5.values()] == [sorted(g) for g in P.RAVDESS_FOLDS_5X]
    _assert_folds_valid(f5, actors)
    with pytest.raises(ValueError, match="unknown RAVDESS fold scheme"):
        P._ravdess_folds("10x", actors)
    # partial download: folds restricted to present actors, empty test folds dropped, names kept
    part = P._ravdess_folds("6x4", ["01", "02", "09"])
    assert list(part) == ["fold_1", "fold_3"] and part["fold_3"]["test"] == ["09"]


def test_kfold_by_actor_and_custom_folds():
    actors = [str(a) for a in range(1001, 1092)]
    groups = P.kfold_by_actor(actors, 5)
    assert [len(g) for g in groups] == [19, 18, 18, 18, 18] and groups[0][:2] == ["1001", "1006"]
    folds = P._folds_from_test_groups(groups, actors)
    _assert_folds_valid(folds, actors)
    assert P._folds_from_test_groups(P.kfold_by_actor(["a", "b"], 2), ["a", "b"])["fold_1"] == {
        "train": ["b"], "validation": [], "test": ["a"]}  # k < 3: no validation
    custom = P._folds_from_dict({"holdout": ["a"], "f2": {"test": ["b"], "validation": ["c"]}}, ["a", "b", "c", "d"])
    assert custom["holdout"]["train"] == ["b", "c", "d"] and custom["f2"]["train"] == ["a", "d"]
    with pytest.raises(ValueError, match="not actor-independent"):
        P._folds_from_dict({"bad": {"test": ["a"], "train": ["a", "b"]}}, ["a", "b"])
    with pytest.raises(ValueError, match="not in the data"):
        P._folds_from_dict({"f": ["zz"]}, ["a"])


def test_limit_round_robin():
    src = [P._Source(f"{a}-{i}", a, "x", f"{a}{i}.mp4", "") for a in ("1", "2", "3") for i in range(3)]
    assert [s.clip_id for s in P._limit(src, 4)] == ["1-0", "1-1", "2-0", "3-0"]


# ----------------------------------------------------------------------------- generic folder: path safety


def test_folder_rejects_paths_outside_root(tmp_path):
    root = tmp_path / "corpus"
    write_media(root / "a" / "clip.mp4")
    (tmp_path / "outside.mp4").write_bytes(b"x")
    os.symlink(tmp_path / "outside.mp4", root / "link.mp4")

    def write_csv(path_value):
        with open(root / "metadata.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["path", "actor", "emotion"])
            w.writerow(["a/clip.mp4", "1", "happy"])
            w.writerow([path_value, "2", "sad"])

    for bad, msg in [("../outside.mp4", "outside the root"), ("a/../../outside.mp4", "outside the root"),
                     (str(tmp_path / "outside.mp4"), "absolute"), ("link.mp4", "outside the root")]:
        write_csv(bad)
        with pytest.raises(ValueError, match=msg) as err:
            P.prepare_folder(root, tmp_path / "out", num_frames=T, image_size=S)
        assert "row 3" in str(err.value)
    assert not (tmp_path / "out").exists()
    write_csv("a/./clip.mp4")  # inside the root: fine at scan time, but duplicate clip id
    with pytest.raises(ValueError, match="duplicate clip_id"):
        P._scan_folder(root, None)


# ----------------------------------------------------------------------------- end to end (decoding)


def test_prepare_ravdess_end_to_end(ravdess_prepared):
    out = Path(ravdess_prepared)
    info = json.loads((out / "prepare_info.json").read_text())
    assert info["source"] == "ravdess" and info["counts"]["clips"] == 24
    assert [s["clip_id"] for s in info["skipped"]] == ["01-01-04-02-02-01-03"] and info["skipped"][0]["error"]
    assert info["package_version"] and info["options"]["num_frames"] == T
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp siblings left

    ds = datasets.load_from_disk(str(out))
    assert ds.features["label"].names == list(P.RAVDESS_EMOTIONS)
    assert ds.features["frames"].shape == (T, S, S, 3) and ds.features["frames"].dtype == "uint8"
    ds = ds.with_format("numpy")
    rows = {r["clip_id"]: r for r in ds}
    assert set(rows) == {f"{'01' if a % 2 else '02'}-01-{(a - 1) % 8 + 1:02d}-02-01-01-{a:02d}" for a in range(1, 25)}
    for cid, r in rows.items():
        a = int(cid[-2:])
        assert r["actor"] == f"{a:02d}" and r["label"] == (a - 1) % 8
        assert r["emotion"] == P.RAVDESS_EMOTIONS[(a - 1) % 8]
        assert r["has_video"] and r["has_audio"], cid  # 02/03 pairs merged
        assert r["frames"].shape == (T, S, S, 3)  # stored uint8; the numpy formatter widens to int64
        assert r["video_mask"].all() and r["frames"].any()
        assert r["audio"].dtype == np.float32
        assert abs(len(r["audio"]) - RAV_SECONDS * 16000) <= 0.05 * 16000, (cid, len(r["audio"]))
        assert abs(np.abs(r["audio"]).max() - 0.5) < 0.1
    pair = rows["02-01-02-02-01-01-02"]
    assert pair["audio_source_path"].endswith("03-01-02-02-01-01-02.wav")
    assert rows["01-01-01-02-01-01-01"]["source_path"] == "Actor_01/01-01-01-02-01-01-01_1.mp4"


def test_ravdess_folds_and_load_prepared(ravdess_prepared):
    names = P.list_folds(ravdess_prepared)
    assert names == [f"fold_{k}" for k in range(1, 7)]
    actors = [f"{a:02d}" for a in range(1, 25)]
    _assert_folds_valid(json.loads((Path(ravdess_prepared) / "folds.json").read_text())["folds"], actors)
    for name in names:
        dd = P.load_prepared(ravdess_prepared, name)
        assert set(dd) == {"train", "validation", "test"}
        split_actors = {k: set(v["actor"]) for k, v in dd.items()}
        assert not (split_actors["train"] & split_actors["test"] or split_actors["train"] & split_actors["validation"]
                    or split_actors["validation"] & split_actors["test"])
        assert sum(len(v) for v in dd.values()) == 24 and len(dd["test"]) == 4
    dd = P.load_prepared(ravdess_prepared, "fold_2")
    assert sorted(set(dd["test"]["actor"])) == ["05", "06", "07", "08"]
    assert np.asarray(dd["test"].with_format("numpy")[0]["frames"]).shape == (T, S, S, 3)
    with pytest.raises(KeyError, match="fold_9"):
        P.load_prepared(ravdess_prepared, "fold_9")


def test_num_proc_2_matches_num_proc_1(ravdess_root, ravdess_prepared, tmp_path):
    out2 = P.prepare_ravdess(ravdess_root, tmp_path / "r2", num_frames=T, image_size=S, num_proc=2,
                             cache_dir=tmp_path / "cache2")
    a = datasets.load_from_disk(str(ravdess_prepared)).with_format("numpy")
    b = datasets.load_from_disk(str(out2)).with_format("numpy")
    assert a.features == b.features and len(a) == len(b)
    for ra, rb in zip(a, b):
        for k in ra:
            assert np.array_equal(ra[k], rb[k]), k
    fa, fb = ((Path(p) / "folds.json").read_text() for p in (ravdess_prepared, out2))
    assert fa == fb


def test_out_dir_not_overwritten_by_default(ravdess_root, ravdess_prepared, tmp_path):
    with pytest.raises(FileExistsError):
        P.prepare_ravdess(ravdess_root, ravdess_prepared, num_frames=T, image_size=S)


def test_prepare_crema_d(crema_root, tmp_path):
    out = P.prepare_crema_d(crema_root, tmp_path / "crema", num_frames=T, image_size=S, cache_dir=tmp_path / "c")
    ds = datasets.load_from_disk(str(out)).with_format("numpy")
    assert ds.features["label"].names == list(P.CREMA_D_EMOTIONS)
    rows = {r["clip_id"]: r for r in ds}
    assert len(rows) == 6
    r = rows["1002_DFA_ANG_XX"]
    assert r["actor"] == "1002" and r["emotion"] == "anger" and r["label"] == 0
    assert r["has_video"] and r["has_audio"] and r["frames"].shape == (T, S, S, 3)
    assert abs(len(r["audio"]) - 0.75 * 16000) <= 800  # from the WAV (0.75 s), not the FLV (0.5 s)
    flv_audio = rows["1091_DFA_NEU_XX"]
    assert flv_audio["has_audio"] and abs(len(flv_audio["audio"]) - 0.5 * 16000) <= 0.1 * 16000
    folds = json.loads((Path(out) / "folds.json").read_text())["folds"]
    assert list(folds) == ["fold_1", "fold_2", "fold_3"]  # 3 actors: 5 folds, 2 of them empty
    _assert_folds_valid(folds, ["1001", "1002", "1091"])
    dd = P.load_prepared(out, "fold_1")
    assert set(dd["test"]["actor"]) == {"1001"} and set(dd["validation"]["actor"]) == {"1002"}


def test_prepare_crema_d_audio_only(tmp_path):
    root = tmp_path / "crema_audio"
    for actor in (1001, 1002):
        write_media(root / "AudioMP3" / f"{actor}_IEO_SAD_HI.mp3", video=False, seconds=0.5, sr=44100)
        write_media(root / "AudioWAV" / f"{actor}_IEO_HAP_MD.wav", video=False, seconds=0.5, sr=16000)
    out = P.prepare_crema_d(root, tmp_path / "out", num_frames=T, image_size=S, cache_dir=tmp_path / "c")
    ds = datasets.load_from_disk(str(out)).with_format("numpy")
    assert len(ds) == 4
    for r in ds:
        assert not r["has_video"] and r["has_audio"]
        assert not r["video_mask"].any() and not r["frames"].any() and not r["face_mask"].any()
        assert abs(len(r["audio"]) - 8000) <= 1600


def test_prepare_folder(tmp_path):
    root = tmp_path / "corpus"
    rows = []
    for actor in ("s1", "s2", "s3"):
        for emo in ("happy", "sad"):
            rel = f"{actor}/{emo}.mp4"
            write_media(root / rel, seconds=0.5)
            rows.append([rel, actor, emo])
    with open(root / "metadata.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "actor", "emotion"])
        w.writerows(rows)
    import torch

    threads = torch.get_num_threads()
    out = P.prepare_folder(root, tmp_path / "out", num_frames=T, image_size=S, labels=["sad", "happy"],
                           cache_dir=tmp_path / "c")
    assert torch.get_num_threads() == threads  # the one-OpenMP-thread setting is restored
    ds = datasets.load_from_disk(str(out))
    assert ds.features["label"].names == ["sad", "happy"]
    assert dict(zip(ds["clip_id"], ds["label"]))["s1/happy"] == 1
    assert P.list_folds(out) == ["fold_1", "fold_2", "fold_3"]  # k = min(5, 3 actors)
    _assert_folds_valid(json.loads((Path(out) / "folds.json").read_text())["folds"], ["s1", "s2", "s3"])
    out2 = P.prepare_folder(root, tmp_path / "out2", num_frames=T, image_size=S, folds={"only": ["s3"]},
                            cache_dir=tmp_path / "c")
    dd = P.load_prepared(out2, "only")
    assert (len(dd["train"]), len(dd["validation"]), len(dd["test"])) == (4, 0, 2)


def test_push_prepared_to_hub_is_private_by_default(ravdess_prepared, monkeypatch):
    calls = []
    monkeypatch.setattr(datasets.Dataset, "push_to_hub", lambda self, repo_id, **kw: calls.append((repo_id, kw)))
    import huggingface_hub

    uploads = []
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_file", lambda self, **kw: uploads.append(kw["path_in_repo"]))
    P.push_prepared_to_hub(ravdess_prepared, "me/ravdess-prepared")
    assert calls[0][0] == "me/ravdess-prepared" and calls[0][1]["private"] is True
    assert sorted(uploads) == ["folds.json", "prepare_info.json"]


@pytest.mark.skipif(not (SHARED / "crema_d").is_dir(), reason="../shared/data not available")
def test_real_crema_d_audio_clips(tmp_path):
    out = P.prepare_crema_d(SHARED / "crema_d", tmp_path / "out", num_frames=T, image_size=S,
                            cache_dir=tmp_path / "c")
    ds = datasets.load_from_disk(str(out))
    assert len(ds) == 6 and set(ds["actor"]) == {"1002"} and not any(ds["has_video"])
    assert sorted(ds["emotion"]) == sorted(P.CREMA_D_EMOTIONS)
    assert all(2.0 * 16000 < len(a) < 3.0 * 16000 for a in ds["audio"])


@pytest.mark.skipif(not (SHARED / "ravdess_av").is_dir(), reason="../shared/data not available")
def test_real_ravdess_clip(tmp_path):
    out = P.prepare_ravdess(SHARED / "ravdess_av", tmp_path / "out", num_frames=T, image_size=64,
                            cache_dir=tmp_path / "c")
    r = datasets.load_from_disk(str(out)).with_format("numpy")[0]
    assert (r["clip_id"], r["actor"], r["emotion"]) == ("01-01-07-02-02-01-01", "01", "disgust")
    assert r["has_video"] and r["has_audio"] and r["face_mask"].all()  # a real face is found
    assert abs(len(r["audio"]) / 16000 - r["duration"]) < 0.2 and 3.5 < r["duration"] < 4.5
    assert P.list_folds(out) == ["fold_1"]


@pytest.mark.skipif(not (SHARED / "enterface05").is_dir(), reason="../shared/data not available")
def test_real_folder_with_file_name_and_subject_columns(tmp_path):
    out = P.prepare_folder(SHARED / "enterface05", tmp_path / "out", num_frames=T, image_size=S, max_clips=2,
                           cache_dir=tmp_path / "c")
    ds = datasets.load_from_disk(str(out))
    assert len(ds) == 2 and set(ds["actor"]) == {"1"} and all(ds["has_video"]) and all(ds["has_audio"])
    assert ds.features["label"].names == ["anger", "disgust", "happiness"]


def test_failed_write_leaves_no_output(ravdess_root, tmp_path, monkeypatch):
    def broken_save(self, path, **kw):
        Path(path).mkdir(parents=True)
        (Path(path) / "data-00000-of-00001.arrow").write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(datasets.Dataset, "save_to_disk", broken_save)
    with pytest.raises(OSError, match="disk full"):
        P.prepare_ravdess(ravdess_root, tmp_path / "out", num_frames=T, image_size=S, max_clips=2,
                          cache_dir=tmp_path / "c")
    assert list(tmp_path.iterdir()) == [tmp_path / "c"]  # neither out nor a temp sibling


def test_prepare_folder_with_frame_arrays_reports_a_corrupt_one(tmp_path):
    """Video may come as .npz face frames (array `frames`, uint8 [n,H,W,3]); a broken one is skipped by name."""
    root = tmp_path / "corpus"
    root.mkdir()
    rng = np.random.default_rng(0)
    for actor in ("a", "b"):
        np.savez(root / f"{actor}.npz", frames=rng.integers(0, 255, (3, 40, 40, 3), dtype=np.uint8))
    (root / "bad.npz").write_bytes(b"PK\x03\x04 not a zip archive")
    with open(root / "metadata.csv", "w", newline="") as f:
        csv.writer(f).writerows([["path", "actor", "emotion"], ["a.npz", "a", "sad"], ["b.npz", "b", "happy"],
                                 ["bad.npz", "c", "sad"]])
    out = P.prepare_folder(root, tmp_path / "out", num_frames=T, image_size=S, cache_dir=tmp_path / "c")
    info = json.loads((Path(out) / "prepare_info.json").read_text())
    assert [s["source_path"] for s in info["skipped"]] == ["bad.npz"] and "frame array" in info["skipped"][0]["error"]
    ds = datasets.load_from_disk(str(out)).with_format("numpy")
    assert len(ds) == 2 and all(ds["has_video"]) and not any(ds["has_audio"])
    assert ds[0]["frames"].shape == (T, S, S, 3) and ds[0]["video_mask"].all() and ds[0]["duration"] == 0
