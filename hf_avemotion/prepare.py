"""Shared machinery for preparing corpora as `datasets` folders with speaker-independent folds.

The corpus-specific parts (file names, labels, fold schemes) live in `hf_avemotion.corpora`, one module per
corpus; this module holds what they share: the file walk, fold construction and checks, the decoding loop
(`Dataset.map` with ``num_proc``, a progress bar, the `datasets` cache, bad files reported by name), the
atomic write, and the generic ``metadata.csv`` folder preparer.

A *prepared audio-visual dataset* (`prepare_folder`, and `prepare_ravdess` / `prepare_crema_d` from
`hf_avemotion.corpora`) is one folder that ``datasets.load_from_disk`` reads directly (Arrow shards written by
``Dataset.save_to_disk``), plus two JSON files beside them:

* ``folds.json``        -- ``{"scheme": ..., "folds": {"fold_1": {"train": [actors],
  "validation": [actors], "test": [actors]}, ...}}``; the three actor lists of a fold are
  disjoint, and in the k-fold schemes every actor is in exactly one test fold.
* ``prepare_info.json`` -- source, options, counts, clips skipped (with the decoder's
  error message), decoder warnings, package and library versions.

One row per clip (T = ``num_frames``, S = ``image_size``):

=====================  ==========================  =========================================
column                 feature                     meaning
=====================  ==========================  =========================================
``clip_id``            string                      file stem (suffix such as ``_1`` dropped)
``actor``              string                      speaker id as written in the corpus
``emotion``            string                      emotion name
``label``              ClassLabel(emotion names)   class index
``source_path``        string                      clip's file, relative to the source root
``audio_source_path``  string                      file the audio came from ("" when none)
``frames``             Array4D uint8 [T, S, S, 3]  face crops (all zero when no video)
``video_mask``         bool [T]                    frame t exists (short videos: frames repeat)
``face_mask``          bool [T]                    a face was detected in frame t
``audio``              float32 [N]                 16 kHz mono waveform, [] when no audio
``has_video``          bool                        the clip has a video track
``has_audio``          bool                        the clip has an audio track
``duration``           float32                     seconds (0 for frame arrays without audio)
=====================  ==========================  =========================================

Video comes from a media file or from a ``.npz`` file of frames (array ``frames``, uint8 [n, H, W, 3]).
Stored as uint8; note that ``with_format("numpy"/"torch")`` widens integer arrays to int64
(a `datasets` formatter rule), so cast back or use ``with_format("arrow")`` when memory matters.

Clips are decoded in ``Dataset.map`` (``num_proc`` worker processes, progress bar, cached
in the ``datasets`` cache keyed by file sizes and modification times). The output is
written to a hidden sibling folder and renamed into place, so a crash never leaves a
half-written dataset behind.

Generic folders (`prepare_folder`): k = ``min(5, n_actors)`` folds by actor: actors sorted (numerically
when all are integers) and dealt round-robin, actor i into fold ``i % k + 1``; validation is fold k+1's actors
(none when k < 3). Only folds whose test set holds at least one present actor are written, and fold lists hold
present actors only.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
import time
import uuid
import warnings
import zipfile
from collections import Counter, defaultdict
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

import datasets
from datasets import Array4D, ClassLabel, Dataset, DatasetDict, Features, List, Value

from .face_detection import FaceCropper
from .media import MediaError, load_clip

__all__ = [
    "CREMA_D_EMOTIONS",
    "RAVDESS_EMOTIONS",
    "RAVDESS_FOLDS_5X",
    "list_folds",
    "load_prepared",
    "prepare_crema_d",
    "prepare_folder",
    "prepare_ravdess",
    "push_prepared_to_hub",
]

SAMPLING_RATE = 16000

VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".flv", ".m4v", ".mpg", ".mpeg", ".wmv"})
AUDIO_EXTENSIONS = frozenset({".wav", ".mp3", ".flac", ".m4a", ".aac", ".ogg", ".opus"})
MEDIA_EXTENSIONS = VIDEO_EXTENSIONS | AUDIO_EXTENSIONS
FRAME_ARRAY_EXTENSION = ".npz"

# Bump when the decoding below changes, so that cached `map` results are not reused.
_DECODER_VERSION = 2

_INTERNAL_COLUMNS = ("video_file", "audio_file")
_REPORT_COLUMNS = ("error", "warning")

# Names that moved to their corpus module in `hf_avemotion.corpora`; still importable from here.
_MOVED = {
    "RAVDESS_EMOTIONS": "ravdess", "RAVDESS_FOLDS_5X": "ravdess", "RAVDESS_FOLDS_6X4": "ravdess",
    "prepare_ravdess": "ravdess", "_scan_ravdess": "ravdess", "_ravdess_folds": "ravdess",
    "CREMA_D_EMOTIONS": "crema_d", "prepare_crema_d": "crema_d", "_scan_crema_d": "crema_d",
}


def __getattr__(name: str):
    if name in _MOVED:
        import importlib

        return getattr(importlib.import_module(f".corpora.{_MOVED[name]}", __package__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class _Source:
    """One clip to decode: paths are POSIX, relative to the root, "" when absent."""

    clip_id: str
    actor: str
    emotion: str
    video_file: str
    audio_file: str

    @property
    def source_path(self) -> str:
        return self.video_file or self.audio_file


# ----------------------------------------------------------------------------- features


def _clip_columns(emotions: Sequence[str]) -> dict:
    """Columns that describe a clip, shared by the file index and the prepared dataset."""
    return {
        "clip_id": Value("string"),
        "actor": Value("string"),
        "emotion": Value("string"),
        "label": ClassLabel(names=list(emotions)),
        "source_path": Value("string"),
        "audio_source_path": Value("string"),
    }


def prepared_features(emotions: Sequence[str], num_frames: int, image_size: int) -> Features:
    """The schema of a prepared dataset (see the module docstring)."""
    return Features(
        {
            **_clip_columns(emotions),
            "frames": Array4D(shape=(num_frames, image_size, image_size, 3), dtype="uint8"),
            "video_mask": List(Value("bool"), length=num_frames),
            "face_mask": List(Value("bool"), length=num_frames),
            "audio": List(Value("float32")),
            "has_video": Value("bool"),
            "has_audio": Value("bool"),
            "duration": Value("float32"),
        }
    )


def _index_features(emotions: Sequence[str]) -> Features:
    """The schema of the file index that `Dataset.map` decodes."""
    return Features({**_clip_columns(emotions), "video_file": Value("string"), "audio_file": Value("string")})


# ----------------------------------------------------------------------------- scanning


def _walk_media(root: Path, stats: Counter | None = None, extensions=MEDIA_EXTENSIONS) -> Iterable[str]:
    """Relative POSIX paths of files under ``root`` with one of ``extensions``, sorted; hidden files and
    __MACOSX skipped.

    Folder symlinks are not followed (``os.walk``); a file symlink that resolves outside ``root`` (e.g. in an
    untrusted archive, pointing at a private file) is skipped and counted as ``outside_root``.
    """
    real_root = root.resolve()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__MACOSX")
        for name in sorted(filenames):
            if name.startswith(".") or Path(name).suffix.lower() not in extensions:
                continue
            path = Path(dirpath, name)
            if path.is_symlink() and real_root not in path.resolve().parents:
                if stats is not None:
                    stats["outside_root"] += 1
                continue
            yield path.relative_to(root).as_posix()


def _stem(rel: str) -> str:
    return Path(rel).name.rsplit(".", 1)[0]


def source_folder(root, what: str) -> Path:
    """``root`` as a Path; FileNotFoundError naming ``what`` unless it is a folder."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{what} root {root} is not a folder")
    return root


def _resolve_inside(root: Path, rel: str, where: str) -> str:
    """``rel`` as a POSIX path inside ``root``; ValueError when absolute or escaping (``..``, symlinks)."""
    if not rel:
        raise ValueError(f"{where}: empty path")
    p = Path(rel)
    if p.is_absolute() or rel.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", rel):
        raise ValueError(f"{where}: path {rel!r} is absolute; paths must be relative to {root}")
    real_root = root.resolve()
    real = (root / p).resolve()
    if real != real_root and real_root not in real.parents:
        raise ValueError(f"{where}: path {rel!r} resolves to {real}, outside the root {real_root}")
    if ".." in p.parts:
        raise ValueError(f"{where}: path {rel!r} contains '..'")
    return p.as_posix()


def _scan_folder(root: Path, labels: Sequence[str] | None) -> tuple[list[_Source], list[str], dict]:
    """Read ``metadata.csv`` (path|file_name, actor|subject|speaker, emotion[, label][, audio_path][, clip_id])."""
    meta = root / "metadata.csv"
    if not meta.is_file():
        raise FileNotFoundError(f"{meta} not found: a folder to prepare needs a metadata.csv")
    with open(meta, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{meta} has no rows")
    cols = set(rows[0])

    def pick(*names: str, required: bool = True) -> str | None:
        for n in names:
            if n in cols:
                return n
        if required:
            raise ValueError(f"{meta} needs a column named one of {names}; it has {sorted(cols)}")
        return None

    path_col = pick("path", "file_name")
    actor_col = pick("actor", "subject", "speaker")
    emotion_col = pick("emotion")
    label_col = pick("label", required=False)
    audio_col = pick("audio_path", required=False)
    id_col = pick("clip_id", required=False)

    if labels is None and label_col is not None:  # label ids fix the class order
        by_id: dict[int, str] = {}
        for i, row in enumerate(rows, start=2):
            lid, emo = int(row[label_col]), row[emotion_col]
            if by_id.setdefault(lid, emo) != emo:
                raise ValueError(f"{meta} row {i}: label {lid} is {by_id[lid]!r} elsewhere but {emo!r} here")
        if sorted(by_id) != list(range(len(by_id))):
            raise ValueError(f"{meta}: label ids must be 0..K-1, got {sorted(by_id)}")
        labels = [by_id[i] for i in range(len(by_id))]
    if labels is None:
        labels = sorted({row[emotion_col] for row in rows})
    labels = list(labels)

    sources, seen = [], set()
    for i, row in enumerate(rows, start=2):  # line numbers as an editor shows them
        where = f"{meta} row {i}"
        rel = _resolve_inside(root, row[path_col].strip(), where)
        audio = _resolve_inside(root, row[audio_col].strip(), where) if audio_col and row[audio_col].strip() else ""
        emotion = row[emotion_col].strip()
        if emotion not in labels:
            raise ValueError(f"{where}: emotion {emotion!r} is not among the labels {labels}")
        actor = row[actor_col].strip()
        if not actor:
            raise ValueError(f"{where}: empty actor (folds are made by actor)")
        clip_id = (row[id_col].strip() if id_col else "") or rel.rsplit(".", 1)[0]
        if clip_id in seen:
            raise ValueError(f"{where}: duplicate clip_id {clip_id!r}")
        seen.add(clip_id)
        suffix = Path(rel).suffix.lower()
        is_audio = suffix in AUDIO_EXTENSIONS
        if audio:
            video = "" if is_audio else rel
        elif suffix == FRAME_ARRAY_EXTENSION:  # frames only
            video = rel
        else:
            video, audio = ("", rel) if is_audio else (rel, rel)
        sources.append(_Source(clip_id, actor, emotion, video, audio))
    return sources, labels, {"rows": len(rows)}


# ----------------------------------------------------------------------------- folds


def _actor_key(actors: Iterable[str]):
    actors = list(actors)
    numeric = all(a.isdigit() for a in actors)
    return (lambda a: (int(a), a)) if numeric else (lambda a: a)


def _sorted_actors(actors: Iterable[str]) -> list[str]:
    actors = sorted(set(actors))
    return sorted(actors, key=_actor_key(actors))


def _folds_from_test_groups(groups: Sequence[Sequence[str]], actors: Iterable[str], *, validation: bool = True) -> dict:
    """fold_k: test = groups[k], validation = groups[k+1] (cyclic), train = every other present actor."""
    present = _sorted_actors(actors)
    present_set = set(present)
    groups = [[a for a in g if a in present_set] for g in groups]
    use_val = validation and len(groups) >= 3
    folds = {}
    for k, test in enumerate(groups):
        if not test:
            continue
        val = groups[(k + 1) % len(groups)] if use_val else []
        held = set(test) | set(val)
        folds[f"fold_{k + 1}"] = {
            "train": [a for a in present if a not in held],
            "validation": list(val),
            "test": list(test),
        }
    return folds


def kfold_by_actor(actors: Iterable[str], k: int) -> list[list[str]]:
    """Deal the sorted actors round-robin into ``k`` test groups (actor i -> group i % k)."""
    present = _sorted_actors(actors)
    return [present[i::k] for i in range(k)]


def default_folds(actors: Iterable[str]) -> dict:
    """k = min(5, number of actors) folds by actor (`kfold_by_actor`); fold k validates on fold k+1's actors."""
    actors = list(actors)
    return _folds_from_test_groups(kfold_by_actor(actors, min(5, len(set(actors)))), actors)


def _folds_from_dict(spec: Mapping, actors: Iterable[str], *, strict: bool = True) -> dict:
    """User folds: ``{name: [test actors]}`` or ``{name: {"test": [...], "validation": [...], "train": [...]}}``;
    train defaults to every other actor. Unknown actors are an error when ``strict``, else dropped
    (after decoding, an actor whose clips all failed is simply absent)."""
    present = _sorted_actors(actors)
    folds = {}
    for name, value in spec.items():
        parts = {"test": value} if not isinstance(value, Mapping) else dict(value)
        unknown = set(parts) - {"train", "validation", "test"}
        if unknown or "test" not in parts:
            raise ValueError(f"fold {name!r}: give a list of test actors or a dict with test[, validation, train]")
        parts = {s: [str(a) for a in parts.get(s, [])] for s in ("train", "validation", "test")}
        missing = set().union(*parts.values()) - set(present)
        if missing and not strict:
            parts = {s: [a for a in v if a not in missing] for s, v in parts.items()}
        elif missing:
            raise ValueError(f"fold {name!r} names actors not in the data: {sorted(missing)}")
        if "train" not in (value if isinstance(value, Mapping) else {}):
            held = set(parts["test"]) | set(parts["validation"])
            parts["train"] = [a for a in present if a not in held]
        folds[str(name)] = parts
    _check_folds(folds)
    return folds


def _check_folds(folds: Mapping) -> None:
    """Raise ValueError unless train/validation/test are actor-disjoint in every fold."""
    for name, f in folds.items():
        tr, va, te = (set(f.get(s, ())) for s in ("train", "validation", "test"))
        clash = (tr & va) | (tr & te) | (va & te)
        if clash:
            raise ValueError(f"fold {name!r} is not actor-independent: {sorted(clash)} in more than one split")


# ----------------------------------------------------------------------------- decoding

_CROPPERS: dict[int, FaceCropper] = {}  # per process, by output size


def _face_cropper(image_size: int):
    """One FaceCropper per process and size (built lazily inside `map` workers)."""
    if image_size not in _CROPPERS:
        _CROPPERS[image_size] = FaceCropper(output_size=image_size)
    return _CROPPERS[image_size]


@contextmanager
def reporting(out: dict):
    """For `Dataset.map` functions: a MediaError raised inside becomes ``out["error"]`` (the item is skipped and
    reported by name); UserWarnings (e.g. damaged packets the decoder skipped) go to ``out["warning"]`` (the item is
    kept and reported). Other errors propagate."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield out
        except MediaError as e:
            out["error"] = f"{type(e).__name__}: {e}"
    out["warning"] = "; ".join(dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, UserWarning)))


def _load_frame_array(path: Path, num_frames: int) -> np.ndarray:
    """uint8 [num_frames,H,W,3] taken at segment midpoints from the ``frames`` array of an ``.npz`` file
    (repeated when it has fewer); CorruptMediaError when unreadable or not uint8 [n,H,W,3]."""
    from .media import CorruptMediaError

    try:
        with np.load(path, allow_pickle=False) as z:
            frames = z["frames"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise CorruptMediaError(f"{str(path)!r} is not a readable frame array ({type(e).__name__}: {e})") from None
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or not len(frames):
        raise CorruptMediaError(f"{str(path)!r}: frames must be uint8 [n,H,W,3], got {frames.dtype} {frames.shape}")
    return frames[((np.arange(num_frames) + 0.5) * len(frames) / num_frames).astype(int)]


def _decode_clip(
    video_file: str,
    audio_file: str,
    *,
    root: str,
    num_frames: int,
    image_size: int,
    face_crop: bool,
    decoder_version: str,
) -> dict:
    """`Dataset.map` function: decode one clip into the prepared columns (plus ``error`` and ``warning``).

    Returns frames uint8 [T,S,S,3], video_mask/face_mask bool [T], audio float32 [N] at 16 kHz.
    A MediaError becomes ``error`` (the row is dropped and reported later); other errors propagate.
    """
    T, S = num_frames, image_size
    out = {
        "frames": np.zeros((T, S, S, 3), np.uint8),
        "video_mask": np.zeros(T, bool),
        "face_mask": np.zeros(T, bool),
        "audio": np.zeros(0, np.float32),
        "has_video": False,
        "has_audio": False,
        "duration": 0.0,
        "error": "",
    }
    clip = audio_clip = frames = None
    with reporting(out):
        if video_file.lower().endswith(FRAME_ARRAY_EXTENSION):
            frames = _load_frame_array(Path(root, video_file), T)
        elif video_file:
            clip = load_clip(Path(root, video_file), num_frames=T, sampling_rate=SAMPLING_RATE)
            frames = np.asarray(clip.frames[:T]) if clip.has_video and len(clip.frames) else None
        if audio_file and audio_file != video_file:
            audio_clip = load_clip(Path(root, audio_file), num_frames=1, sampling_rate=SAMPLING_RATE)
        elif audio_file:
            audio_clip = clip
    if out["error"]:
        return out

    if frames is not None:
        n = len(frames)
        cropper = _face_cropper(S)
        crops = cropper(frames) if face_crop else cropper.centre_crops(frames)
        out["frames"][:n] = crops.crops
        out["face_mask"][:n] = np.asarray(crops.face_found, bool)
        out["video_mask"][:n] = True
        out["has_video"] = True
    if audio_clip is not None and audio_clip.has_audio:
        if audio_clip.sampling_rate != SAMPLING_RATE:
            raise RuntimeError(f"load_clip returned {audio_clip.sampling_rate} Hz, asked for {SAMPLING_RATE}")
        out["audio"] = np.asarray(audio_clip.audio, np.float32)
        out["has_audio"] = True
    main = clip if clip is not None and out["has_video"] else audio_clip
    out["duration"] = float(main.duration) if main is not None else 0.0
    return out


def _generate_index(sources: list[dict], labels: tuple[str, ...]):
    """Generator for `Dataset.from_generator`; each source's ``stamp`` (file sizes and mtimes) only
    feeds the cache fingerprint, so a changed file is decoded again."""
    for s in sources:
        yield {
            "clip_id": s["clip_id"],
            "actor": s["actor"],
            "emotion": s["emotion"],
            "label": labels.index(s["emotion"]),
            "source_path": s["video_file"] or s["audio_file"],
            "audio_source_path": s["audio_file"],
            "video_file": s["video_file"],
            "audio_file": s["audio_file"],
        }


def file_stamp(path) -> str:
    """``size:mtime_ns`` of a file ("missing" when absent): fed to cache fingerprints so that a changed file is
    decoded again."""
    try:
        st = Path(path).stat()
        return f"{st.st_size}:{st.st_mtime_ns}"
    except OSError:
        return "missing"


def _limit(items: list, max_items: int | None, group: Callable = lambda s: s.actor) -> list:
    """At most ``max_items`` items, taken round-robin over ``group(item)`` (the actor; deterministic, order kept)."""
    if max_items is None or max_items >= len(items):
        return items
    by_group: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(items):
        by_group[group(s)].append(i)
    order = _sorted_actors(by_group)
    picked, k = [], 0
    while len(picked) < max_items:
        for g in order:
            if k < len(by_group[g]) and len(picked) < max_items:
                picked.append(by_group[g][k])
        k += 1
    keep = set(picked)
    return [s for i, s in enumerate(items) if i in keep]


# ----------------------------------------------------------------------------- driver


def decode_items(
    generator,
    gen_kwargs: dict,
    *,
    index_features: Features,
    decode: Callable,
    fn_kwargs: dict,
    input_columns: Sequence[str],
    output_features: Features,
    report_columns: Sequence[str],
    num_proc: int,
    cache_dir,
    desc: str,
    writer_batch_size: int | None = None,
) -> tuple[Dataset, list[dict], list[dict]]:
    """Index the items (`Dataset.from_generator`), decode them in `Dataset.map` and split off the failures.

    ``decode`` returns its output columns plus ``error`` and ``warning`` ("" when none; see `reporting`).
    Returns the decoded rows (the ``output_features`` columns only), the skipped items and the items kept with a
    warning, each as ``{report column: value, ..., "error" | "warning": message}``.
    """
    index = Dataset.from_generator(  # tuples: `datasets` would shard list arguments, one generator call per item
        generator, features=index_features, gen_kwargs={k: tuple(v) if isinstance(v, list) else v
                                                        for k, v in gen_kwargs.items()},
        cache_dir=None if cache_dir is None else str(cache_dir),
    )
    features = Features({**index_features, **output_features, **{c: Value("string") for c in _REPORT_COLUMNS}})
    ds = index.map(
        decode,
        input_columns=list(input_columns),
        fn_kwargs=fn_kwargs,
        features=features,
        num_proc=num_proc if num_proc and num_proc > 1 else None,
        writer_batch_size=writer_batch_size,
        desc=desc,
    )
    small = ds.select_columns([*report_columns, *_REPORT_COLUMNS]).to_dict()
    errors, notes = small["error"], small["warning"]

    def entry(i: int, key: str) -> dict:
        return {**{c: small[c][i] for c in report_columns}, key: small[key][i]}

    skipped = [entry(i, "error") for i, e in enumerate(errors) if e]
    warned = [entry(i, "warning") for i, (e, w) in enumerate(zip(errors, notes)) if w and not e]
    if skipped:
        ds = ds.select([i for i, e in enumerate(errors) if not e])
    return ds.select_columns(list(output_features)), skipped, warned


def check_out_dir(out_dir, overwrite: bool) -> Path:
    """``out_dir`` as a Path; FileExistsError when it holds files and ``overwrite`` is False."""
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"{out_dir} exists and is not empty; pass overwrite=True to replace it")
    return out_dir


def prepare_info(source: str, root: Path, options: dict, counts: dict, skipped: list, warned: list,
                 started: float) -> dict:
    """The ``prepare_info.json`` record of a preparation (started = `time.perf_counter()` at the start)."""
    return {
        "source": source,
        "root": str(Path(root).resolve()),
        "options": options,
        "counts": {**counts, "skipped": len(skipped), "warnings": len(warned)},
        "skipped": skipped,
        "warnings": warned,
        "seconds": round(time.perf_counter() - started, 2),
        "package_version": _package_version(),
        "datasets_version": datasets.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _prepare(
    sources: list[_Source],
    *,
    source: str,
    root: Path,
    out_dir,
    labels: Sequence[str],
    make_folds,
    fold_scheme,
    num_frames: int,
    image_size: int,
    num_proc: int,
    max_clips: int | None,
    face_crop: bool,
    cache_dir,
    overwrite: bool,
    scan_stats: dict,
) -> Path:
    """Decode audio-visual ``sources`` into the Arrow dataset of the module docstring, with ``make_folds(actors)``."""
    out_dir = check_out_dir(out_dir, overwrite)
    if num_frames < 1 or image_size < 1:
        raise ValueError("num_frames and image_size must be positive")
    found = len(sources)
    sources = _limit(sources, max_clips)
    if not sources:
        raise ValueError(f"no {source} clips found under {root}")
    t0 = time.perf_counter()

    labels = list(labels)
    records = [dict(asdict(s), stamp=file_stamp(root / s.video_file) + "|" + file_stamp(root / s.audio_file))
               for s in sources]
    ds, skipped, warned = decode_items(
        _generate_index, {"sources": records, "labels": tuple(labels)},
        index_features=_index_features(labels),
        decode=_decode_clip,
        fn_kwargs={
            "root": str(root),
            "num_frames": int(num_frames),
            "image_size": int(image_size),
            "face_crop": bool(face_crop),
            "decoder_version": f"{_DECODER_VERSION}/{_package_version()}",
        },
        input_columns=_INTERNAL_COLUMNS,
        output_features=prepared_features(labels, num_frames, image_size),
        report_columns=("clip_id", "source_path", "audio_source_path"),
        num_proc=num_proc, cache_dir=cache_dir, desc=f"Decoding {source} clips",
        writer_batch_size=16,  # rows are ~1 MB of frames each
    )
    if len(ds) == 0:
        raise ValueError(f"every {source} clip failed to decode; first error: {skipped[0]['error']}")

    small = ds.select_columns(["actor", "emotion", "has_video", "has_audio", "face_mask"]).to_dict()
    actors = small["actor"]
    folds = make_folds(actors)
    _check_folds(folds)
    options = {
        "num_frames": num_frames,
        "image_size": image_size,
        "sampling_rate": SAMPLING_RATE,
        "face_crop": face_crop,
        "max_clips": max_clips,
        "num_proc": num_proc,
        "folds": fold_scheme if isinstance(fold_scheme, str) or fold_scheme is None else "custom",
    }
    counts = {
        "found": found,
        "selected": len(sources),
        "clips": len(ds),
        "actors": len(set(actors)),
        "with_video": int(sum(small["has_video"])),
        "with_audio": int(sum(small["has_audio"])),
        "with_face": int(sum(any(m) for m in small["face_mask"])),
        "by_emotion": dict(sorted(Counter(small["emotion"]).items())),
        "by_actor": {a: n for a, n in sorted(Counter(actors).items(), key=lambda kv: _actor_key(actors)(kv[0]))},
        "scan": scan_stats,
    }
    info = prepare_info(source, root, options, counts, skipped, warned, t0)
    write_prepared(ds, out_dir, {"folds.json": {"scheme": options["folds"], "folds": folds},
                                 "prepare_info.json": info}, overwrite=overwrite)
    return out_dir


def _package_version() -> str:
    from . import __version__

    return __version__


def _save_parquet(ds: Dataset, folder: Path, name: str, max_shard_bytes: int = 256 << 20,
                  row_group_bytes: int = 32 << 20) -> None:
    """``ds`` as ``folder/data/{name}-NNNNN-of-NNNNN.parquet`` shards of at most ~``max_shard_bytes``."""
    nbytes = ds.data.nbytes * len(ds) / max(ds.data.num_rows, 1)
    shards = max(1, math.ceil(nbytes / max_shard_bytes))
    rows_per_group = int(min(1000, max(1, row_group_bytes * len(ds) / max(nbytes, 1))))
    (folder / "data").mkdir(parents=True)
    for i in range(shards):
        ds.shard(shards, i, contiguous=True).to_parquet(
            str(folder / "data" / f"{name}-{i:05d}-of-{shards:05d}.parquet"), batch_size=rows_per_group)


def write_prepared(ds: Dataset, out_dir: Path, files: Mapping[str, object], *, overwrite: bool,
                   parquet_name: str | None = None) -> None:
    """Write ``ds`` (Arrow via ``save_to_disk``, or Parquet shards under ``data/`` when ``parquet_name`` is given)
    and the JSON ``files`` into a hidden sibling of ``out_dir``, then rename it into place."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{uuid.uuid4().hex[:8]}")
    old = None
    try:
        if parquet_name is None:
            ds.save_to_disk(str(tmp))
        else:
            _save_parquet(ds, tmp, parquet_name)
        for name, obj in files.items():
            (tmp / name).write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        if out_dir.exists():
            if any(out_dir.iterdir()) and not overwrite:
                raise FileExistsError(f"{out_dir} appeared while preparing; not replacing it")
            old = out_dir.with_name(f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}")
            out_dir.rename(old)
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not out_dir.exists():
            old.rename(out_dir)
            old = None
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


# ----------------------------------------------------------------------------- public API


def prepare_folder(
    root,
    out_dir,
    *,
    num_frames: int = 8,
    image_size: int = 224,
    num_proc: int = 1,
    labels: Sequence[str] | None = None,
    folds: Mapping | None = None,
    max_clips: int | None = None,
    face_crop: bool = True,
    cache_dir=None,
    overwrite: bool = False,
) -> Path:
    """Prepare any folder with a ``metadata.csv`` (columns path, actor, emotion[, label][, audio_path]).

    Paths must be relative and stay inside ``root`` (ValueError naming the row otherwise).
    ``labels`` fixes the class order (default: from ``label`` ids, else sorted emotions).
    ``folds``: ``{name: [test actors]}`` or ``{name: {"test":[..], "validation":[..], "train":[..]}}``;
    default k = min(5, n_actors) folds by actor.
    """
    root = source_folder(root, "folder")
    sources, labels, stats = _scan_folder(root, labels)
    if folds is not None:
        _folds_from_dict(folds, [s.actor for s in sources])

    def make_folds(actors):
        if folds is not None:
            return _folds_from_dict(folds, actors, strict=False)
        return default_folds(actors)

    return _prepare(
        sources, source="folder", root=root, out_dir=out_dir, labels=labels, make_folds=make_folds,
        fold_scheme=None if folds is None else "custom", num_frames=num_frames, image_size=image_size,
        num_proc=num_proc, max_clips=max_clips, face_crop=face_crop, cache_dir=cache_dir,
        overwrite=overwrite, scan_stats=stats,
    )


def read_folds_file(path) -> dict:
    """The parsed ``folds.json`` of a prepared dataset folder."""
    f = Path(path) / "folds.json"
    if not f.is_file():
        raise FileNotFoundError(f"{f} not found: is {path} a prepared dataset?")
    return json.loads(f.read_text(encoding="utf-8"))


def _natural(names: Iterable[str]) -> list[str]:
    return sorted(names, key=lambda n: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", n)])


def list_folds(path) -> list[str]:
    """Fold names of a prepared dataset, in numeric order (``fold_1``, ``fold_2``, ...)."""
    return _natural(read_folds_file(path)["folds"])


def check_data_files(path, names: Iterable) -> list[Path]:
    """The data files ``names`` of the dataset folder ``path``, resolved; ValueError when one is not a plain
    relative name or resolves outside ``path`` (``..``, absolute, symlink)."""
    root = Path(path).resolve()
    files = []
    for name in names:
        if not isinstance(name, str) or not name or Path(name).is_absolute() or ".." in Path(name).parts:
            raise ValueError(f"{path}: data file {name!r} must be a plain relative name inside {root}")
        real = (root / name).resolve()
        if root not in real.parents:
            raise ValueError(f"{path}: data file {name!r} resolves to {real}, outside {root}")
        files.append(real)
    return files


def _check_prepared_files(path) -> None:
    """ValueError when the dataset's ``state.json`` names data files outside ``path`` (``..``, absolute, symlink)."""
    state = Path(path) / "state.json"
    try:
        files = [f["filename"] for f in json.loads(state.read_text(encoding="utf-8"))["_data_files"]]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{state} is missing or not a datasets state file ({err})") from None
    check_data_files(path, files)


def select_fold(ds: Dataset, folds: Mapping, fold: str, column: str, where) -> DatasetDict:
    """train/validation/test of ``fold``: the rows whose ``column`` value is in each list; asserts the splits
    share no value."""
    if fold not in folds:
        raise KeyError(f"no fold {fold!r} in {where}; folds: {_natural(folds)}")
    spec = folds[fold]
    _check_folds({fold: spec})
    values = np.asarray(ds.data.column(column).to_pylist(), dtype=object)
    splits, seen = {}, {}
    for split in ("train", "validation", "test"):
        wanted = set(spec.get(split, ()))
        idx = [i for i, v in enumerate(values) if v in wanted]
        splits[split] = ds.select(idx)
        seen[split] = set(values[idx].tolist())
    tr, va, te = seen["train"], seen["validation"], seen["test"]
    overlap = (tr & va) | (tr & te) | (va & te)
    assert not overlap, f"fold {fold} of {where} is not {column}-independent: {sorted(overlap)}"
    return DatasetDict(splits)


def load_prepared(path, fold: str = "fold_1", *, keep_in_memory: bool = False) -> DatasetDict:
    """train/validation/test of ``fold``, selected by actor; asserts the splits share no actor.

    The data files named in ``state.json`` must lie inside ``path`` (ValueError otherwise)."""
    folds = read_folds_file(path)["folds"]
    _check_prepared_files(path)
    ds = datasets.load_from_disk(str(path), keep_in_memory=keep_in_memory)
    return select_fold(ds, folds, fold, "actor", path)


def push_prepared_to_hub(path, repo_id: str, *, private: bool = True, token: str | None = None, **push_kwargs):
    """Upload a prepared dataset (Parquet, one ``clips`` split) plus folds.json and prepare_info.json.

    Private by default: RAVDESS is CC BY-NC-SA 4.0 and CREMA-D ODbL; check the licence before sharing.
    """
    from huggingface_hub import HfApi

    path = Path(path)
    ds = datasets.load_from_disk(str(path))
    commit = ds.push_to_hub(repo_id, split="clips", private=private, token=token, **push_kwargs)
    api = HfApi(token=token)
    for name in ("folds.json", "prepare_info.json"):
        api.upload_file(
            path_or_fileobj=str(path / name), path_in_repo=name, repo_id=repo_id, repo_type="dataset",
            commit_message=f"Add {name}",
        )
    return commit
