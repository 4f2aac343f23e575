"""Tests for hf_avemotion.corpora on the real corpora in ../shared/corpus (skipped when it is absent).

Folds and labels are checked on every item's metadata; decoding runs on small copies (a few files each).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import shutil
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hf_avemotion.cli import main
from hf_avemotion.corpora import (
    BASIC_EMOTIONS,
    EMOTIONS,
    format_corpus_table,
    get_corpus,
    list_corpora,
    load_corpus,
    prepare_corpus,
    to_basic,
)

CORPUS = Path(os.environ.get("HF_AVEMOTION_CORPUS") or Path(__file__).parents[1].parent / "shared" / "corpus")
REPO = Path(__file__).resolve().parents[1]
needs_corpus = pytest.mark.skipif(not (CORPUS / "SOURCES.md").is_file(), reason=f"{CORPUS} not available")

# The label mapping as documented in docs/corpora.md and README.md ("Real corpora"); None = dropped.
DOCUMENTED = {
    "ravdess": {e: e for e in EMOTIONS},
    "tess": {"angry": "angry", "disgust": "disgust", "fear": "fearful", "happy": "happy", "neutral": "neutral",
             "ps": "surprised", "sad": "sad"},
    "emodb": {"anger": "angry", "boredom": None, "disgust": "disgust", "fear": "fearful", "happiness": "happy",
              "neutral": "neutral", "sadness": "sad"},
    "fer": {"neutral": "neutral", "happiness": "happy", "surprise": "surprised", "sadness": "sad", "anger": "angry",
            "disgust": "disgust", "fear": "fearful", "contempt": None, "unknown": None, "NF": None, None: None},
    "ckplus": {"anger": "angry", "contempt": None, "disgust": "disgust", "fear": "fearful", "happy": "happy",
               "sadness": "sad", "surprise": "surprised"},
}


def test_label_space():
    assert EMOTIONS == ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
    assert BASIC_EMOTIONS == ("neutral", "happy", "sad", "angry", "fearful", "disgust", "surprised")
    assert to_basic("calm") == "neutral" and [to_basic(e) for e in BASIC_EMOTIONS] == list(BASIC_EMOTIONS)
    with pytest.raises(ValueError):
        to_basic("boredom")
    assert list_corpora() == ["ravdess", "tess", "emodb", "fer", "ckplus", "av", "ravdess-av", "crema-d"]
    assert list_corpora("speech") == ["ravdess", "tess", "emodb"] and list_corpora("faces") == ["fer", "ckplus"]
    for name, mapping in DOCUMENTED.items():
        assert dict(get_corpus(name).mapping) == mapping, name
    with pytest.raises(KeyError, match="unknown corpus"):
        get_corpus("imagenet")


# ----------------------------------------------------------------------------- the corpus table


def _sources_counts() -> dict:
    """{corpus: (people or None, items)} from the table in SOURCES.md (the av rows summed)."""
    counts = {}
    for line in (CORPUS / "SOURCES.md").read_text(encoding="utf-8").splitlines():
        m = re.match(r"\| `([a-z_/]+)/` \|[^|]*\| ([^|]*) \| ([^|]*) \|", line)
        if not m:
            continue
        folder, people, items = m.groups()
        people = int(re.search(r"\d+", people).group()) if re.search(r"\d", people) else None
        parts = re.findall(r"([\d,]+) (?:train|validation)", items) or [re.search(r"[\d,]+", items).group()]
        items = sum(int(p.replace(",", "")) for p in parts)
        name = "av" if folder.startswith("av/") else folder.split("/")[-1]
        old = counts.get(name, (0, 0))
        counts[name] = (people if name != "av" else old[0] + people, old[1] + items)
    return counts


@pytest.fixture(scope="module")
def table():
    from contextlib import redirect_stdout

    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["corpora", str(CORPUS), "--json"]) == 0
    return json.loads(out.getvalue())


@needs_corpus
def test_corpus_table_matches_sources_md(table):
    expected = _sources_counts()
    assert {r["corpus"] for r in table} == set(expected) == {"ravdess", "tess", "emodb", "fer", "ckplus", "av"}
    for r in table:
        assert (r["people"], r["items"]) == expected[r["corpus"]], r["corpus"]
        assert sum(r["by_emotion"].values()) + sum(r["dropped"].values()) == r["items"]
    rows = {r["corpus"]: r for r in table}
    assert rows["ravdess"]["by_emotion"] == {e: 88 if e == "neutral" else 176 for e in EMOTIONS}  # SOURCES.md
    assert rows["tess"]["by_emotion"] == {e: 0 if e == "calm" else 400 for e in EMOTIONS}
    emodb = dict(angry=127, disgust=46, fearful=69, happy=71, neutral=79, sad=62)
    assert rows["emodb"]["by_emotion"] == {e: emodb.get(e, 0) for e in EMOTIONS}
    assert rows["emodb"]["dropped"] == {"boredom": 81} and rows["ckplus"]["dropped"] == {"contempt": 54}
    assert 80 * 60 < rows["ravdess"]["seconds"] < 82 * 60 and rows["fer"]["seconds"] is None


@needs_corpus
def test_docs_show_the_commands_table(table):
    docs = (REPO / "docs" / "corpora.md").read_text(encoding="utf-8")
    assert format_corpus_table(table) in docs
    assert "avemotion corpora" in docs


# ----------------------------------------------------------------------------- folds (full metadata)


def _assert_disjoint(folds: dict, items: list[dict], key: str, *, cover: bool):
    present = {i[key] for i in items}
    tests = []
    for name, fold in folds.items():
        tr, va, te = (set(fold[s]) for s in ("train", "validation", "test"))
        assert not (tr & va or tr & te or va & te), name
        assert tr | va | te <= present and te, name
        split_of = {v: s for s in ("train", "validation", "test") for v in fold[s]}
        by_split = {s: {i[key] for i in items if split_of.get(i[key]) == s} for s in ("train", "validation", "test")}
        assert not (by_split["train"] & by_split["test"] or by_split["validation"] & by_split["test"]
                    or by_split["train"] & by_split["validation"]), name
        tests += fold["test"]
    if cover:
        assert sorted(tests) == sorted(present)  # every speaker is tested exactly once


@needs_corpus
@pytest.mark.parametrize("name, n_folds, speakers", [("ravdess", 5, 22), ("tess", 2, 2), ("emodb", 5, 10)])
def test_speech_folds_are_speaker_disjoint(name, n_folds, speakers):
    corpus = get_corpus(name)
    items = corpus.scan(CORPUS)
    folds = corpus.folds(items)
    assert len(folds) == n_folds and len({i["speaker"] for i in items}) == speakers
    _assert_disjoint(folds, items, "speaker", cover=True)
    for fold in folds.values():
        assert len(fold["train"]) >= 1


@needs_corpus
def test_ravdess_uses_the_published_5_fold_split():
    items = get_corpus("ravdess").scan(CORPUS)
    folds = get_corpus("ravdess").folds(items)
    published = [(2, 5, 14, 15, 16), (3, 6, 7, 13, 18), (10, 11, 12, 19, 20), (8, 17, 21, 23, 24), (1, 4, 9, 22)]
    held_back = {5, 24}  # not in ../shared/corpus
    assert [sorted(map(int, f["test"])) for f in folds.values()] == [sorted(set(g) - held_back) for g in published]
    assert folds["fold_1"]["validation"] == ["03", "06", "07", "13", "18"]


@needs_corpus
def test_emodb_folds_pair_a_man_and_a_woman():
    corpus = get_corpus("emodb")
    items = corpus.scan(CORPUS)
    sex = {r["speaker"].split("_")[1]: r["gender"] for r in _metadata("emodb")}
    assert sex == {i["speaker"]: i["gender"] for i in items}
    for fold in corpus.folds(items).values():
        assert sorted(sex[s] for s in fold["test"]) == ["female", "male"]


@needs_corpus
def test_av_items_and_ckplus_folds():
    av = get_corpus("av")
    items = av.scan(CORPUS)
    assert len(items) == 22 and len({i["speaker"] for i in items}) == 9
    _assert_disjoint(av.folds(items), items, "speaker", cover=True)
    with_audio = {Path(i["audio_path"]).name for i in items if i["audio_path"]}
    assert with_audio == {"M030_sad_3_001.mp4", "03-01-03-02-02-01-01.opus", "03-01-05-02-01-02-14.opus",
                          "03-01-07-02-02-02-06.opus"}  # the RAVDESS frames get their speech file's audio
    ck = get_corpus("ckplus")
    ck_items = ck.scan(CORPUS)
    assert len({i["subject"] for i in ck_items}) == 118
    _assert_disjoint(ck.folds(ck_items), ck_items, "subject", cover=True)


@needs_corpus
def test_fer_splits_are_duplicate_free():
    fer = get_corpus("fer")
    items = fer.scan(CORPUS)
    assert fer.folds(items) == {"official": {"train": ["train"], "validation": ["validation"], "test": ["public_test"]}}
    parts = [i["part"] for i in items]
    n_train = sum(i["split"] == "train" for i in items)
    assert parts.count("public_test") == 3510 and n_train == 26804
    assert 0.08 * n_train < parts.count("validation") < 0.12 * n_train
    part_of_pixels: dict[bytes, str] = {}
    images = [cell for f in sorted((CORPUS / "faces" / "fer").glob("*.parquet"))
              for cell in pq.read_table(f, columns=["image"]).column("image").to_pylist()]
    import PIL.Image

    for item, cell in zip(items, images, strict=True):
        assert item["name"] == cell["path"]
        with PIL.Image.open(io.BytesIO(cell["bytes"])) as im:
            key = hashlib.sha1(im.tobytes()).digest()
        assert part_of_pixels.setdefault(key, item["part"]) == item["part"], item["name"]


# ----------------------------------------------------------------------------- labels


def _metadata(name: str) -> list[dict]:
    with open(CORPUS / "speech" / name / "metadata.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@needs_corpus
@pytest.mark.parametrize("name", ["ravdess", "tess", "emodb"])
def test_speech_labels_mapped_as_documented(name):
    """File-name labels agree with metadata.csv (whose words are already the package's, or boredom)."""
    items = {i["name"]: i for i in get_corpus(name).scan(CORPUS)}
    rows = _metadata(name)
    assert len(items) == len(rows)
    for row in rows:
        item = items[row["file_name"]]
        assert item["label"] == (row["emotion"] if row["emotion"] in EMOTIONS else None), row["file_name"]
        assert DOCUMENTED[name][item["source_label"]] == item["label"]
        assert f"{row['dataset'].split('_')[0]}_{item['speaker']}" == row["speaker"]
        assert Path(item["path"]).is_file() and item["path"].endswith(row["file_name"])


@needs_corpus
def test_face_labels_mapped_as_documented():
    fer = get_corpus("fer").scan(CORPUS)
    for item in fer:
        assert item["label"] == DOCUMENTED["fer"][item["source_label"]]
        soft = np.asarray(item["soft_label"])
        if item["label"] is not None:  # a FER+ majority (> 50 % of the kept votes) is the soft label's argmax
            assert abs(soft.sum() - 1) < 1e-6 and EMOTIONS[int(soft.argmax())] == item["label"], item["name"]
            assert soft[EMOTIONS.index("calm")] == 0
    table = pq.read_table(CORPUS / "faces" / "ckplus" / "all.parquet", columns=["label"]).column("label").to_pylist()
    fer2013_words = {"angry": "angry", "disgust": "disgust", "fear": "fearful", "happy": "happy", "sad": "sad",
                     "surprise": "surprised", "contempt": None}
    for item, word in zip(get_corpus("ckplus").scan(CORPUS), table, strict=True):
        assert item["label"] == DOCUMENTED["ckplus"][item["source_label"]] == fer2013_words[word]


# ----------------------------------------------------------------------------- preparation with bad files


@needs_corpus
def test_prepare_speech_reports_a_truncated_opus_file(tmp_path, capsys, monkeypatch):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "cache")  # the CLI has no --cache-dir
    src = tmp_path / "ravdess"
    src.mkdir()
    names = ["03-01-01-01-01-01-01.opus", "03-01-05-02-01-01-02.opus", "03-01-03-01-02-01-14.opus",
             "03-01-04-02-02-02-14.opus", "03-01-02-01-01-02-22.opus", "03-01-08-02-02-01-22.opus"]
    for n in names:
        shutil.copy(CORPUS / "speech" / "ravdess" / n, src / n)
    bad = src / names[3]
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    out = tmp_path / "out"
    assert main(["prepare", "ravdess", str(src), str(out), "--num-proc", "2"]) == 0
    captured = capsys.readouterr()
    assert f"skipped {names[3]}" in captured.err and "truncated" in captured.err
    assert "5 of 6 items prepared" in captured.out
    info = json.loads((out / "prepare_info.json").read_text())
    assert [s["name"] for s in info["skipped"]] == [names[3]] and info["counts"]["skipped"] == 1

    splits = load_corpus(out, "fold_1")  # tests 02 and 14 (5, 15, 16 absent); fold_2's actors (validation) absent
    assert {k: sorted(set(v["speaker"])) for k, v in splits.items()} == {
        "train": ["01", "22"], "validation": [], "test": ["02", "14"]}
    durations = {r["file_name"]: float(r["duration_s"]) for r in _metadata("ravdess")}
    full = datasets.load_dataset("parquet", data_files=str(out / "data" / "*.parquet"), split="train")
    assert len(full) == 5 and full.features["label"].names == list(EMOTIONS)
    for r in full:
        audio = np.asarray(r["audio"], np.float32)
        assert r["sampling_rate"] == 16000 and audio.ndim == 1 and np.abs(audio).max() <= 1.0
        assert abs(len(audio) / 16000 - durations[r["path"]]) < 0.03, r["path"]
        assert abs(r["duration"] - len(audio) / 16000) < 0.01
        assert EMOTIONS[r["label"]] == r["emotion"] and BASIC_EMOTIONS[r["basic_label"]] == to_basic(r["emotion"])


@needs_corpus
def test_prepare_faces_reports_a_corrupt_png(tmp_path):
    src = tmp_path / "fer"
    src.mkdir()
    for name, rows in (("train-00000-of-00001.parquet", 60), ("validation-00000-of-00001.parquet", 20)):
        table = pq.read_table(next((CORPUS / "faces" / "fer").glob(name.split("-")[0] + "-00000-*.parquet")))
        pq.write_table(table.slice(0, rows), src / name)
    table = pq.read_table(src / "train-00000-of-00001.parquet")
    rows = table.to_pylist()
    corrupt = next(r for r in rows if r["ferplus_label"] == "happiness")
    corrupt["image"]["bytes"] = corrupt["image"]["bytes"][:60]
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), src / "train-00000-of-00001.parquet")

    items = get_corpus("fer").scan(src)
    labelled = [i for i in items if i["label"] is not None]
    out = prepare_corpus("fer", src, tmp_path / "out", num_proc=1, cache_dir=tmp_path / "cache")
    info = json.loads((out / "prepare_info.json").read_text())
    assert [s["name"] for s in info["skipped"]] == [corrupt["image"]["path"]]
    assert "CorruptMediaError" in info["skipped"][0]["error"]
    assert info["counts"]["items"] == len(labelled) - 1
    assert sum(info["counts"]["dropped_labels"].values()) == len(items) - len(labelled)

    splits = load_corpus(out)  # the one fold, "official"
    assert {k: set(v["part"]) for k, v in splits.items()} == {
        "train": {"train"}, "validation": {"validation"}, "test": {"public_test"}}
    row = splits["test"][0]
    assert row["image"].size == (48, 48) and row["subject"] is None
    assert EMOTIONS[row["label"]] == row["emotion"] and len(row["soft_label"]) == 8 and len(row["ferplus_votes"]) == 10
    names = [n for split in splits.values() for n in split["image_id"]]
    assert len(names) == len(set(names)) == len(labelled) - 1


@needs_corpus
def test_prepare_ckplus_and_av_items(tmp_path):
    out = prepare_corpus("ckplus", CORPUS, tmp_path / "ck", max_items=12, cache_dir=tmp_path / "cache")
    splits = load_corpus(out, "eval")
    assert len(splits["test"]) == 12 and len(splits["train"]) == 0 and len(set(splits["test"]["subject"])) == 12

    out = prepare_corpus("av", CORPUS, tmp_path / "av", num_frames=2, image_size=32, cache_dir=tmp_path / "cache")
    info = json.loads((out / "prepare_info.json").read_text())
    assert info["counts"]["clips"] == 22 and info["counts"]["with_audio"] == 4 and not info["skipped"]
    splits = load_corpus(out, "fold_1")  # the Arrow dataset of hf_avemotion.prepare, selected by actor
    assert sum(len(s) for s in splits.values()) == 22 and len(splits["test"]) > 0
    row = splits["test"].with_format("numpy")[0]
    assert row["frames"].shape == (2, 32, 32, 3) and row["has_video"]


def test_corpus_root_resolution(tmp_path, monkeypatch, capsys):
    from hf_avemotion.corpora import default_corpus_root

    monkeypatch.setenv("HF_AVEMOTION_CORPUS", str(tmp_path))
    assert default_corpus_root() == tmp_path
    assert main(["corpora"]) == 2  # no corpus folders under it: one error line
    err = capsys.readouterr().err
    assert err.startswith("error: no corpus folders") and len(err.strip().splitlines()) == 1
    monkeypatch.delenv("HF_AVEMOTION_CORPUS")
    monkeypatch.chdir(tmp_path)  # no ../shared/corpus beside the current folder: the checkout's, if any
    root = default_corpus_root()
    assert root is None or root == (REPO.parent / "shared" / "corpus").resolve()
    assert main(["prepare", "tess", str(tmp_path / "missing"), str(tmp_path / "out")]) == 2
    assert "not a folder" in capsys.readouterr().err
