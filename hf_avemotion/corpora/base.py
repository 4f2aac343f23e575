"""What the corpus modules share: the `Corpus` interface and the speech and face preparers.

`Corpus.scan(source)` gives one *item* (dict) per source file or Parquet row:

    path          absolute path of the file; None for a Parquet row, which gives ``file`` and ``row`` instead
    name          how reports name the item (path relative to the corpus folder, or the image's own name)
    label         package word (`EMOTIONS`), None when the corpus label is dropped
    source_label  the corpus's own word
    speaker       person id as the corpus writes it (None when unknown, e.g. FER); faces also give ``subject``
    + the corpus's own fields (RAVDESS intensity, FER vote counts, ...)

`Corpus.folds(items)` gives ``{fold: {"train": [...], "validation": [...], "test": [...]}}`` over the values of
``item[corpus.group]`` (the speaker or subject, or FER's split part); no value is in two splits of a fold.

Prepared speech and faces (`Corpus.prepare`) are Parquet shards ``OUT/data/<corpus>-NNNNN-of-NNNNN.parquet``
plus ``folds.json`` (``group`` names the column its lists select by) and ``prepare_info.json`` (counts, dropped
labels, files skipped with the error, decoder warnings). One row per item, N = samples at 16 kHz:

    speech  clip_id, corpus, speaker, gender, emotion, label ClassLabel(EMOTIONS),
            basic_label ClassLabel(BASIC_EMOTIONS), source_label, path, audio float32 [N],
            sampling_rate int32 (16000), duration float32 (s), + corpus fields
    faces   image_id, corpus, subject (None for FER), emotion, label, basic_label, source_label,
            image Image (the source's PNG bytes), + corpus fields (FER: soft_label float32 [8], ...)

Audio is a float32 list column, not a `datasets.Audio` feature: datasets 5 decodes Audio only through torchcodec,
which the package does not require; the list loads anywhere and is decoded once, here, with `load_clip`.
Items whose label is dropped are counted in ``prepare_info.json``; items that fail to decode are skipped and
listed there by name with the error.
"""

from __future__ import annotations

import io
import os
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from datasets import ClassLabel, Features, Image, List, Value

from ..media import CorruptMediaError, NoUsableStreamError, load_clip
from ..prepare import (
    AUDIO_EXTENSIONS,
    MEDIA_EXTENSIONS,
    SAMPLING_RATE,
    _check_folds,
    _limit,
    _walk_media,
    check_out_dir,
    decode_items,
    file_stamp,
    prepare_info,
    reporting,
    source_folder,
    write_prepared,
)
from .labels import BASIC_EMOTIONS, EMOTIONS, map_label, to_basic

# Bump when the decoding below changes, so that cached `map` results are not reused.
DECODER_VERSION = 1


class Corpus:
    """One corpus: where it sits, how its items and labels are read, how it is split and prepared."""

    name = ""
    kind = ""  # "speech" | "faces" | "av"
    folder: str | None = None  # where it sits under the shared corpus root, e.g. "speech/ravdess"
    person = "speaker"  # item key of the person
    group = "speaker"  # item key the folds split by
    fold_scheme = ""
    make_folds = None  # staticmethod: list of group values (one per item) -> named folds
    mapping: Mapping[Any, str | None] = {}  # corpus word -> package word (None: dropped)
    fields: Mapping[str, Any] = {}  # corpus-specific item fields kept as columns: name -> datasets feature
    null_label = "(no label)"  # how an item without a source label is counted

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} ({self.kind})>"

    def locate(self, source) -> Path:
        """The corpus folder: ``source`` itself, or ``source/<folder>`` when ``source`` is the corpus root."""
        source = Path(source)
        if self.folder and (source / self.folder).is_dir():
            return source / self.folder
        return source_folder(source, self.name)

    def scan(self, source) -> list[dict]:
        """One item per source file or row (see the module docstring); nothing is decoded."""
        return self._scan(self.locate(source))[0]

    def _scan(self, root: Path) -> tuple[list[dict], dict]:
        """Items and scan statistics (unrecognised files, named) of the corpus folder ``root``."""
        raise NotImplementedError

    def folds(self, items: list[dict]) -> dict:
        """Named folds over the ``group`` values of ``items``."""
        return self.make_folds([i[self.group] for i in items])

    def label(self, word) -> str | None:
        return map_label(self.mapping, word, self.name)

    def seconds(self, item: dict) -> float:
        """Duration of an item from its file header (0 when it has no media file)."""
        path = item.get("audio_path") or item.get("path")
        return media_seconds(path) if path and Path(path).suffix.lower() in MEDIA_EXTENSIONS else 0.0

    def describe(self, source) -> dict:
        """The corpus-table row: people, items, per-class counts in `EMOTIONS`, dropped labels, seconds."""
        items = self.scan(source)
        people = {i[self.person] for i in items if i.get(self.person) is not None}
        return {
            "corpus": self.name,
            "kind": self.kind,
            "people": len(people) or None,
            "items": len(items),
            "by_emotion": {e: sum(i["label"] == e for i in items) for e in EMOTIONS},
            "dropped": self.dropped(items),
            "seconds": sum(self.seconds(i) for i in items) if self.kind != "faces" else None,
        }

    # ------------------------------------------------------------------ preparation (speech and faces)

    def prepare(self, source, out_dir, *, num_proc: int = 1, max_items: int | None = None, cache_dir=None,
                overwrite: bool = False) -> Path:
        """Decode every labelled item into the Parquet dataset of the module docstring; returns ``out_dir``.

        ``max_items`` takes that many items round-robin over the fold groups (quick runs)."""
        out_dir = check_out_dir(out_dir, overwrite)
        root = self.locate(source)
        t0 = time.perf_counter()
        items, stats = self._scan(root)
        labelled = [i for i in items if i["label"] is not None]
        selected = _limit(labelled, max_items, group=lambda i: i[self.group])
        if not selected:
            raise ValueError(f"no {self.name} items with a package label under {root}")
        ds, skipped, warned = decode_items(
            self._generate, {"records": [self._record(i) for i in selected], "stamps": self._stamps(selected)},
            index_features=self._index_features(),
            decode=self._decode,
            fn_kwargs={"decoder_version": f"{DECODER_VERSION}"},
            input_columns=self._decode_inputs,
            output_features=self.features(),
            report_columns=("name",),
            num_proc=num_proc, cache_dir=cache_dir, desc=f"Preparing {self.name}",
            writer_batch_size=self._writer_batch_size,
        )
        if len(ds) == 0:
            raise ValueError(f"every {self.name} item failed to decode; first error: {skipped[0]['error']}")
        small = ds.select_columns(list(dict.fromkeys([self.group, self.person, "emotion"]))).to_dict()
        folds = self.make_folds(small[self.group])
        _check_folds(folds)
        counts = {
            "found": len(items),
            "labelled": len(labelled),
            "selected": len(selected),
            "items": len(ds),
            "people": len({p for p in small[self.person] if p is not None}),
            "by_emotion": {e: n for e, n in Counter(small["emotion"]).most_common()},
            "dropped_labels": self.dropped(items),
            "scan": stats,
        }
        info = prepare_info(self.name, root, {"num_proc": num_proc, "max_items": max_items}, counts, skipped,
                            warned, t0)
        files = {"folds.json": {"scheme": self.fold_scheme, "group": self.group, "folds": folds},
                 "prepare_info.json": info}
        write_prepared(ds, out_dir, files, overwrite=overwrite, parquet_name=self.name)
        return out_dir

    def dropped(self, items: list[dict]) -> dict:
        """``{source label: count}`` of the items whose label is dropped, most frequent first."""
        words = (self.null_label if i["source_label"] is None else str(i["source_label"])
                 for i in items if i["label"] is None)
        return dict(Counter(words).most_common())

    def _common_features(self) -> dict:
        return {
            "corpus": Value("string"),
            "emotion": Value("string"),
            "label": ClassLabel(names=list(EMOTIONS)),
            "basic_label": ClassLabel(names=list(BASIC_EMOTIONS)),
            "source_label": Value("string"),
        }

    def _labels(self, item: dict) -> dict:
        return {"corpus": self.name, "emotion": item["label"], "label": EMOTIONS.index(item["label"]),
                "basic_label": BASIC_EMOTIONS.index(to_basic(item["label"])),
                "source_label": item["source_label"], **{f: item[f] for f in self.fields}}


class SpeechCorpus(Corpus):
    """A folder of audio files whose names (`parse`) give speaker and label."""

    kind = "speech"
    _decode_inputs = ("file",)
    _writer_batch_size = 64  # rows are ~100-300 KB of samples

    def parse(self, rel: str) -> dict | None:
        """``{"clip_id", "speaker", "gender", "source_label", **fields}`` from a file's relative path; None when the
        name does not follow the corpus's convention."""
        raise NotImplementedError

    def _scan(self, root: Path) -> tuple[list[dict], dict]:
        items, unrecognised = [], []
        for rel in _walk_media(root, extensions=AUDIO_EXTENSIONS):
            parsed = self.parse(rel)
            if parsed is None or parsed["source_label"] not in self.mapping:
                unrecognised.append(rel)
                continue
            items.append(self.item(root, rel, parsed))
        return items, {"unrecognised": unrecognised}

    def item(self, root: Path, rel: str, parsed: dict) -> dict:
        label = self.label(parsed["source_label"])
        return {"path": str((root / rel).absolute()), "name": rel, **parsed, "label": label}

    def features(self) -> Features:
        return Features({
            "clip_id": Value("string"), "speaker": Value("string"), "gender": Value("string"),
            **self._common_features(), "path": Value("string"), **self.fields,
            "audio": List(Value("float32")), "sampling_rate": Value("int32"), "duration": Value("float32"),
        })

    def _index_features(self) -> Features:
        keep = {k: v for k, v in self.features().items() if k not in ("audio", "sampling_rate", "duration")}
        return Features({**keep, "name": Value("string"), "file": Value("string")})

    def _record(self, item: dict) -> dict:
        return {"clip_id": item["clip_id"], "speaker": item["speaker"], "gender": item.get("gender"),
                **self._labels(item), "path": item["name"], "name": item["name"], "file": item["path"]}

    @staticmethod
    def _stamps(items: list[dict]) -> list[str]:
        return [file_stamp(i["path"]) for i in items]

    @staticmethod
    def _generate(records: list[dict], stamps: list[str]):
        """Index rows for `Dataset.from_generator`; ``stamps`` only feed the cache fingerprint."""
        yield from records

    @staticmethod
    def _decode(file: str, *, decoder_version: str) -> dict:
        """`Dataset.map` function: one file -> audio float32 [N] at 16 kHz, duration (+ error, warning)."""
        out = {"audio": np.zeros(0, np.float32), "sampling_rate": SAMPLING_RATE, "duration": 0.0, "error": ""}
        with reporting(out):
            check_ogg_complete(file)
            clip = load_clip(file, num_frames=1, sampling_rate=SAMPLING_RATE)
            if not clip.has_audio:
                raise NoUsableStreamError(f"{file!r} has no audio track")
            out["audio"] = np.asarray(clip.audio, np.float32)
            out["duration"] = float(clip.duration)
        return out


class FaceCorpus(Corpus):
    """Face images in `datasets` Parquet files (an ``image`` column of PNG bytes) whose rows (`parse_row`) give
    subject and label."""

    kind = "faces"
    person = "subject"
    group = "subject"
    _decode_inputs = ("image",)
    _writer_batch_size = 1000

    def parse_row(self, row: dict) -> dict:
        """``{"name", "subject", "source_label", **fields}`` from one Parquet row (``image`` = {bytes, path})."""
        raise NotImplementedError

    def _scan(self, root: Path) -> tuple[list[dict], dict]:
        import pyarrow.parquet as pq

        files = sorted(root.glob("*.parquet"))
        if not files:
            raise FileNotFoundError(f"no Parquet files in {root}")
        items = []
        for file in files:
            for row_index, row in enumerate(pq.read_table(file).to_pylist()):
                parsed = self.parse_row(row)
                items.append({"path": None, "file": str(file.absolute()), "row": row_index, **parsed,
                              "speaker": parsed["subject"], "label": self.label(parsed["source_label"])})
        return items, {"files": [f.name for f in files]}

    def features(self) -> Features:
        return Features({"image_id": Value("string"), "subject": Value("string"), **self._common_features(),
                         "image": Image(), **self.fields})

    def _index_features(self) -> Features:
        return Features({**self.features(), "image": Image(decode=False), "name": Value("string")})

    def _record(self, item: dict) -> dict:
        return {"image_id": item["name"], "subject": item["subject"], **self._labels(item), "name": item["name"],
                "file": item["file"], "row": item["row"]}

    @staticmethod
    def _stamps(items: list[dict]) -> dict:
        return {f: file_stamp(f) for f in sorted({i["file"] for i in items})}

    @staticmethod
    def _generate(records: list[dict], stamps: dict):
        """Index rows with the image bytes read from the source Parquet files, one file at a time."""
        import pyarrow.parquet as pq

        by_file = defaultdict(list)
        for r in records:
            by_file[r["file"]].append(r)
        for file, rows in by_file.items():
            images = pq.read_table(file, columns=["image"]).column("image").to_pylist()
            for r in rows:
                row = {k: v for k, v in r.items() if k not in ("file", "row")}
                yield {**row, "image": {"bytes": images[r["row"]]["bytes"], "path": r["name"]}}

    @staticmethod
    def _decode(image: dict, *, decoder_version: str) -> dict:
        """`Dataset.map` function: check that the image decodes (error, warning); the bytes are kept as they are."""
        out = {"error": ""}
        with reporting(out):
            check_image(image["bytes"], image["path"])
        return out


# ----------------------------------------------------------------------------- checks and helpers


def check_image(data: bytes | None, name: str) -> None:
    """CorruptMediaError unless ``data`` is an image PIL can fully decode."""
    import PIL.Image

    try:
        with PIL.Image.open(io.BytesIO(data or b"")) as im:
            im.load()
    except (OSError, SyntaxError, ValueError, PIL.Image.DecompressionBombError) as e:
        raise CorruptMediaError(f"{name!r} is not a readable image ({type(e).__name__}: {e})") from None


def check_ogg_complete(path) -> None:
    """CorruptMediaError when an Ogg file (``OggS`` magic) is not a chain of whole pages ending with an
    end-of-stream page: the decoder plays a truncated Ogg file without complaint, shorter."""
    size = os.path.getsize(path)
    pos, flags = 0, None
    with open(path, "rb") as f:
        if f.read(4) != b"OggS":
            return
        while pos < size:
            f.seek(pos)
            head = f.read(27)
            table = f.read(head[26]) if len(head) == 27 and head[:4] == b"OggS" else b""
            if len(head) < 27 or head[:4] != b"OggS" or len(table) < head[26]:
                raise CorruptMediaError(f"{str(path)!r}: broken Ogg page at byte {pos} of {size} (truncated?)")
            pos += 27 + len(table) + sum(table)
            flags = head[5]
    if pos != size or not flags & 0x04:
        raise CorruptMediaError(f"{str(path)!r} is truncated: its last Ogg page is incomplete or not end-of-stream")


def media_seconds(path) -> float:
    """Duration of a media file from its header (no decoding); 0 when the header has none."""
    import av

    with av.open(str(path)) as container:
        if container.duration:
            return container.duration / 1e6
        streams = [s for s in container.streams if s.duration and s.time_base]
        return max((float(s.duration * s.time_base) for s in streams), default=0.0)


class AVCorpus(Corpus):
    """Audio-visual clips, prepared as face crops + 16 kHz audio into the Arrow dataset of `hf_avemotion.prepare`
    (``load_prepared`` / `load_corpus` read it; its person column is ``actor``)."""

    kind = "av"

    @staticmethod
    def sources(root: Path) -> tuple[list, dict]:
        """The clips under ``root`` as `hf_avemotion.prepare._Source` records (emotion = the corpus's word), and
        scan statistics."""
        raise NotImplementedError

    def _scan(self, root: Path) -> tuple[list[dict], dict]:
        sources, stats = self.sources(root)
        items = [{"path": str((root / s.source_path).resolve()),
                  "audio_path": str((root / s.audio_file).resolve()) if s.audio_file else None,
                  "name": s.source_path, "clip_id": s.clip_id, "speaker": s.actor, "source_label": s.emotion,
                  "label": self.label(s.emotion)} for s in sources]
        return items, stats

    @staticmethod
    def prepare_clips(root, out_dir, **options) -> Path:
        """The corpus's preparer (``prepare_ravdess``-like: ``num_frames``, ``image_size``, ``max_clips``, ...)."""
        raise NotImplementedError

    def prepare(self, source, out_dir, *, num_frames: int = 8, image_size: int = 224, num_proc: int = 1,
                max_items: int | None = None, face_crop: bool = True, cache_dir=None, overwrite: bool = False) -> Path:
        """Face crops [num_frames, image_size, image_size, 3] + 16 kHz audio per clip; returns ``out_dir``."""
        return self.prepare_clips(self.locate(source), out_dir, num_frames=num_frames, image_size=image_size,
                                  num_proc=num_proc, max_clips=max_items, face_crop=face_crop, cache_dir=cache_dir,
                                  overwrite=overwrite)
