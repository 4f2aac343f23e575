"""Prepare emotion corpora as `datasets` folders with actor-independent folds.

A *prepared dataset* is one folder that ``datasets.load_from_disk`` reads directly
(Arrow shards written by ``Dataset.save_to_disk``), plus two JSON files beside them:

* ``folds.json``        -- ``{"scheme": ..., "folds": {"fold_1": {"train": [actors],
  "validation": [actors], "test": [actors]}, ...}}``; the three actor lists of a fold are
  disjoint, and in the k-fold schemes every actor is in exactly one test fold.
* ``prepare_info.json`` -- source, options, counts, clips skipped (with the decoder's
  error message), package and library versions.

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
``duration``           float32                     seconds
=====================  ==========================  =========================================

Stored as uint8; note that ``with_format("numpy"/"torch")`` widens integer arrays to int64
(a `datasets` formatter rule), so cast back or use ``with_format("arrow")`` when memory matters.

RAVDESS: speech only (song files are counted and left out). Per recording, a full-AV ``01``
file is used; else a video-only ``02`` file with the ``03`` audio-only file of the same
recording (frames from the first, audio from the second); a lone ``02`` or ``03`` file gives a
video-only or audio-only clip. Files may sit anywhere under the root (``Actor_01/``,
``Video_Speech_Actor_01/Actor_01/``, ``Audio_Speech_Actors_01-24/Actor_01/``, ...).

Clips are decoded in ``Dataset.map`` (``num_proc`` worker processes, progress bar, cached
in the ``datasets`` cache keyed by file sizes and modification times). The output is
written to a hidden sibling folder and renamed into place, so a crash never leaves a
half-written dataset behind.

Fold schemes
------------
RAVDESS (actors 01-24):

* ``"6x4"``  -- fold k (k = 1..6) tests actors 4k-3..4k, validates on fold k+1's actors
  (fold 6 validates on fold 1's), trains on the other 16.
* ``"5x"``   -- the published subject-wise 5-fold split of Luna-Jimenez et al., "A Proposal
  for Multimodal Emotion Recognition Using Aural Transformers and Action Units on RAVDESS
  Dataset", Applied Sciences 12(1):327, 2021 (README and ``generate_train_test`` in
  github.com/cristinalunaj/MMEmotionRecognition): test actors (2,5,14,15,16),
  (3,6,7,13,18), (10,11,12,19,20), (8,17,21,23,24), (1,4,9,22). The paper has no separate
  validation set; here fold k validates on fold k+1's test actors (our choice) so that the
  test actors are never used for model selection.

CREMA-D and generic folders: k folds by actor (k = 5 for CREMA-D, ``min(5, n_actors)``
for a folder): actors sorted (numerically when all are integers) and dealt round-robin,
actor i into fold ``i % k + 1``; validation is fold k+1's actors (none when k < 3).

Only folds whose test set holds at least one present actor are written, and fold lists
hold present actors only; fold names keep their meaning (``fold_3`` of ``"6x4"`` always
tests actors 09-12).
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

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

RAVDESS_EMOTIONS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
CREMA_D_EMOTIONS = ("anger", "disgust", "fear", "happy", "neutral", "sad")
_CREMA_D_CODES = {"ANG": "anger", "DIS": "disgust", "FEA": "fear", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}

# Test actors of the published subject-wise 5-fold split (Luna-Jimenez et al. 2021, see module docstring).
RAVDESS_FOLDS_5X = (
    (2, 5, 14, 15, 16),
    (3, 6, 7, 13, 18),
    (10, 11, 12, 19, 20),
    (8, 17, 21, 23, 24),
    (1, 4, 9, 22),
)
RAVDESS_FOLDS_6X4 = tuple(tuple(range(4 * k + 1, 4 * k + 5)) for k in range(6))

VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".flv", ".m4v", ".mpg", ".mpeg", ".wmv"})
AUDIO_EXTENSIONS = frozenset({".wav", ".mp3", ".flac", ".m4a", ".aac", ".ogg", ".opus"})
MEDIA_EXTENSIONS = VIDEO_EXTENSIONS | AUDIO_EXTENSIONS

# Bump when the decoding below changes, so that cached `map` results are not reused.
_DECODER_VERSION = 1

_RAVDESS_NAME = re.compile(r"^(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})(?:_[^.]*)?$")
_CREMA_D_NAME = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{1,2})(?:_[^.]*)?$")
_INTERNAL_COLUMNS = ("video_file", "audio_file", "error")


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


def _walk_media(root: Path, stats: Counter | None = None) -> Iterable[str]:
    """Relative POSIX paths of media files under ``root``, sorted; hidden files and __MACOSX skipped.

    Folder symlinks are not followed (``os.walk``); a file symlink that resolves outside ``root`` (e.g. in an
    untrusted archive, pointing at a private file) is skipped and counted as ``outside_root``.
    """
    real_root = root.resolve()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__MACOSX")
        for name in sorted(filenames):
            if name.startswith(".") or Path(name).suffix.lower() not in MEDIA_EXTENSIONS:
                continue
            path = Path(dirpath, name)
            if path.is_symlink() and real_root not in path.resolve().parents:
                if stats is not None:
                    stats["outside_root"] += 1
                continue
            yield path.relative_to(root).as_posix()


def _stem(rel: str) -> str:
    return Path(rel).name.rsplit(".", 1)[0]


def _scan_ravdess(root: Path) -> tuple[list[_Source], dict]:
    """Group RAVDESS speech files by recording (all fields but modality) and pick the sources.

    A full-AV ``01`` file wins; otherwise a video-only ``02`` file is paired with the audio-only
    ``03`` file of the same recording; a lone ``02`` or ``03`` file gives a video- or audio-only clip.
    """
    groups: dict[tuple, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    stats = Counter()
    for rel in _walk_media(root, stats):
        m = _RAVDESS_NAME.match(_stem(rel))
        if m is None:
            stats["unrecognised_names"] += 1
            continue
        modality, channel, emotion = m.group(1), m.group(2), m.group(3)
        if modality not in ("01", "02", "03") or not 1 <= int(emotion) <= len(RAVDESS_EMOTIONS):
            stats["unrecognised_names"] += 1
            continue
        if channel != "01":
            stats["song_excluded"] += 1
            continue
        ext = Path(rel).suffix.lower()
        if (modality == "03") != (ext in AUDIO_EXTENSIONS):
            stats["unrecognised_names"] += 1  # e.g. an "audio-only" .mp4 or a "video" .wav
            continue
        groups[m.groups()[1:]][modality].append(rel)

    sources = []
    for key in sorted(groups):
        files = groups[key]
        stats["duplicates"] += sum(len(v) - 1 for v in files.values())
        emotion = RAVDESS_EMOTIONS[int(key[1]) - 1]
        actor = key[5]
        if "01" in files:
            video = audio = files["01"][0]
            stats["av"] += 1
            stats["redundant_02_03"] += len(files.get("02", ())) + len(files.get("03", ()))
        elif "02" in files and "03" in files:
            video, audio = files["02"][0], files["03"][0]
            stats["paired_02_03"] += 1
        elif "02" in files:
            video, audio = files["02"][0], ""
            stats["video_only"] += 1
        else:
            video, audio = "", files["03"][0]
            stats["audio_only"] += 1
        clip_id = _RAVDESS_NAME.match(_stem(video or audio)).group(0).split("_")[0]
        sources.append(_Source(clip_id, actor, emotion, video, audio))
    return sources, dict(stats)


def _scan_crema_d(root: Path) -> tuple[list[_Source], dict]:
    """Group CREMA-D files by stem: video from a video file (``VideoFlash/*.flv``), audio from
    ``AudioWAV/*.wav``, else ``AudioMP3/*.mp3``, else the video file's own track."""
    groups: dict[str, list[str]] = defaultdict(list)
    stats = Counter()
    for rel in _walk_media(root, stats):
        m = _CREMA_D_NAME.match(_stem(rel))
        if m is None or m.group(3) not in _CREMA_D_CODES:
            stats["unrecognised_names"] += 1
            continue
        groups["_".join(m.groups())].append(rel)

    def rank(rel: str) -> int:
        order = [".wav", ".flac", ".mp3"]
        ext = Path(rel).suffix.lower()
        return order.index(ext) if ext in order else len(order)

    sources = []
    for clip_id in sorted(groups):
        files = groups[clip_id]
        videos = [f for f in files if Path(f).suffix.lower() in VIDEO_EXTENSIONS]
        audios = sorted((f for f in files if Path(f).suffix.lower() in AUDIO_EXTENSIONS), key=rank)
        stats["duplicates"] += max(len(videos) - 1, 0) + max(len(audios) - 1, 0)
        video = videos[0] if videos else ""
        audio = audios[0] if audios else video
        stats["with_video_file" if video else "audio_only"] += 1
        actor, _, code, _ = clip_id.split("_")
        sources.append(_Source(clip_id, actor, _CREMA_D_CODES[code], video, audio))
    return sources, dict(stats)


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
        is_audio = Path(rel).suffix.lower() in AUDIO_EXTENSIONS
        if audio:
            video = "" if is_audio else rel
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


def _ravdess_folds(scheme, actors: Iterable[str], *, strict: bool = False) -> dict:
    if isinstance(scheme, Mapping):
        return _folds_from_dict(scheme, actors, strict=strict)
    groups = {"6x4": RAVDESS_FOLDS_6X4, "5x": RAVDESS_FOLDS_5X}.get(scheme)
    if groups is None:
        raise ValueError(f"unknown RAVDESS fold scheme {scheme!r}; use '6x4', '5x' or a dict")
    return _folds_from_test_groups([[f"{a:02d}" for a in g] for g in groups], actors)


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


def _decode_clip(
    video_file: str,
    audio_file: str,
    rank: int | None = None,
    *,
    root: str,
    num_frames: int,
    image_size: int,
    face_crop: bool,
    decoder_version: str,
) -> dict:
    """`Dataset.map` function: decode one clip into the prepared columns (plus ``error``).

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
    try:
        clip = audio_clip = None
        if video_file:
            clip = load_clip(Path(root, video_file), num_frames=T, sampling_rate=SAMPLING_RATE)
        if audio_file and audio_file != video_file:
            audio_clip = load_clip(Path(root, audio_file), num_frames=1, sampling_rate=SAMPLING_RATE)
        elif audio_file:
            audio_clip = clip
    except MediaError as e:
        out["error"] = f"{type(e).__name__}: {e}"
        return out

    if clip is not None and clip.has_video and len(clip.frames):
        frames = np.asarray(clip.frames[:T])
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
    main = clip if out["has_video"] else audio_clip
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


def _stamp(root: Path, rel: str) -> str:
    if not rel:
        return ""
    try:
        st = (root / rel).stat()
        return f"{st.st_size}:{st.st_mtime_ns}"
    except OSError:
        return "missing"


def _limit(sources: list[_Source], max_clips: int | None) -> list[_Source]:
    """At most ``max_clips`` sources, taken round-robin over actors (deterministic)."""
    if max_clips is None or max_clips >= len(sources):
        return sources
    by_actor: dict[str, list[_Source]] = defaultdict(list)
    for s in sources:
        by_actor[s.actor].append(s)
    order = _sorted_actors(by_actor)
    picked, i = [], 0
    while len(picked) < max_clips:
        for a in order:
            if i < len(by_actor[a]) and len(picked) < max_clips:
                picked.append(by_actor[a][i])
        i += 1
    keep = {s.clip_id for s in picked}
    return [s for s in sources if s.clip_id in keep]


# ----------------------------------------------------------------------------- driver


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
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"{out_dir} exists and is not empty; pass overwrite=True to replace it")
    if num_frames < 1 or image_size < 1:
        raise ValueError("num_frames and image_size must be positive")
    found = len(sources)
    sources = _limit(sources, max_clips)
    if not sources:
        raise ValueError(f"no {source} clips found under {root}")
    t0 = time.perf_counter()

    labels = list(labels)
    records = [dict(asdict(s), stamp=_stamp(root, s.video_file) + "|" + _stamp(root, s.audio_file)) for s in sources]
    index = Dataset.from_generator(
        _generate_index,
        features=_index_features(labels),
        gen_kwargs={"sources": records, "labels": tuple(labels)},
        cache_dir=None if cache_dir is None else str(cache_dir),
    )
    features = _index_features(labels)
    features.update(prepared_features(labels, num_frames, image_size))
    features["error"] = Value("string")
    ds = index.map(
        _decode_clip,
        input_columns=["video_file", "audio_file"],
        with_rank=True,
        fn_kwargs={
            "root": str(root),
            "num_frames": int(num_frames),
            "image_size": int(image_size),
            "face_crop": bool(face_crop),
            "decoder_version": f"{_DECODER_VERSION}/{_package_version()}",
        },
        features=features,
        num_proc=num_proc if num_proc and num_proc > 1 else None,
        writer_batch_size=16,  # rows are ~1 MB of frames each
        desc=f"Decoding {source} clips",
    )

    small = ds.select_columns(["clip_id", "actor", "emotion", "source_path", "audio_source_path", "error"]).to_dict()
    bad = [i for i, e in enumerate(small["error"]) if e]
    skipped = [
        {k: small[k][i] for k in ("clip_id", "source_path", "audio_source_path", "error")} for i in bad
    ]
    kept = [i for i, e in enumerate(small["error"]) if not e]
    if bad:
        ds = ds.select(kept)
    ds = ds.remove_columns(list(_INTERNAL_COLUMNS))
    ds = ds.select_columns(list(prepared_features(labels, num_frames, image_size)))
    if len(ds) == 0:
        raise ValueError(f"every {source} clip failed to decode; first error: {skipped[0]['error']}")

    actors = [small["actor"][i] for i in kept]
    folds = make_folds(actors)
    _check_folds(folds)
    flags = ds.select_columns(["has_video", "has_audio", "face_mask"]).to_dict()
    info = {
        "source": source,
        "root": str(root.resolve()),
        "options": {
            "num_frames": num_frames,
            "image_size": image_size,
            "sampling_rate": SAMPLING_RATE,
            "face_crop": face_crop,
            "max_clips": max_clips,
            "num_proc": num_proc,
            "folds": fold_scheme if isinstance(fold_scheme, str) or fold_scheme is None else "custom",
        },
        "labels": labels,
        "counts": {
            "found": found,
            "selected": len(sources),
            "clips": len(ds),
            "skipped": len(skipped),
            "actors": len(set(actors)),
            "with_video": int(sum(flags["has_video"])),
            "with_audio": int(sum(flags["has_audio"])),
            "with_face": int(sum(any(m) for m in flags["face_mask"])),
            "by_emotion": dict(sorted(Counter(small["emotion"][i] for i in kept).items())),
            "by_actor": {a: n for a, n in sorted(Counter(actors).items(), key=lambda kv: _actor_key(actors)(kv[0]))},
            "scan": scan_stats,
        },
        "skipped": skipped,
        "seconds": round(time.perf_counter() - t0, 2),
        "package_version": _package_version(),
        "datasets_version": datasets.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    _write_atomically(ds, out_dir, {"folds.json": {"scheme": info["options"]["folds"], "folds": folds},
                                    "prepare_info.json": info}, overwrite=overwrite)
    return out_dir


def _package_version() -> str:
    from . import __version__

    return __version__


def _write_atomically(ds: Dataset, out_dir: Path, files: dict, *, overwrite: bool) -> None:
    """save_to_disk into a hidden sibling, add the JSON files, then rename into place."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{uuid.uuid4().hex[:8]}")
    old = None
    try:
        ds.save_to_disk(str(tmp))
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


def prepare_ravdess(
    root,
    out_dir,
    *,
    num_frames: int = 8,
    image_size: int = 224,
    num_proc: int = 1,
    folds="6x4",
    max_clips: int | None = None,
    face_crop: bool = True,
    cache_dir=None,
    overwrite: bool = False,
) -> Path:
    """Prepare RAVDESS speech clips found anywhere under ``root`` (``MM-VV-EE-II-SS-RR-AA[_x].ext``).

    ``folds``: "6x4", "5x" (published, Luna-Jimenez et al. 2021) or a dict (see `prepare_folder`).
    Returns ``out_dir``; rows are [T=num_frames, S=image_size] face crops + 16 kHz audio.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"RAVDESS root {root} is not a folder")
    sources, stats = _scan_ravdess(root)
    _ravdess_folds(folds, [s.actor for s in sources], strict=True)  # reject a bad scheme before decoding
    return _prepare(
        sources, source="ravdess", root=root, out_dir=out_dir, labels=RAVDESS_EMOTIONS,
        make_folds=lambda actors: _ravdess_folds(folds, actors), fold_scheme=folds,
        num_frames=num_frames, image_size=image_size, num_proc=num_proc, max_clips=max_clips,
        face_crop=face_crop, cache_dir=cache_dir, overwrite=overwrite, scan_stats=stats,
    )


def prepare_crema_d(
    root,
    out_dir,
    *,
    num_frames: int = 8,
    image_size: int = 224,
    num_proc: int = 1,
    max_clips: int | None = None,
    face_crop: bool = True,
    cache_dir=None,
    overwrite: bool = False,
) -> Path:
    """Prepare CREMA-D (``VideoFlash/*.flv`` + ``AudioWAV/*.wav``, or audio-only trees) with 5 actor folds."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"CREMA-D root {root} is not a folder")
    sources, stats = _scan_crema_d(root)
    return _prepare(
        sources, source="crema_d", root=root, out_dir=out_dir, labels=CREMA_D_EMOTIONS,
        make_folds=lambda actors: _folds_from_test_groups(kfold_by_actor(actors, 5), actors),
        fold_scheme="5-by-actor", num_frames=num_frames, image_size=image_size, num_proc=num_proc,
        max_clips=max_clips, face_crop=face_crop, cache_dir=cache_dir, overwrite=overwrite, scan_stats=stats,
    )


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
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder")
    sources, labels, stats = _scan_folder(root, labels)
    if folds is not None:
        _folds_from_dict(folds, [s.actor for s in sources])

    def make_folds(actors):
        if folds is not None:
            return _folds_from_dict(folds, actors, strict=False)
        k = min(5, len(set(actors)))
        return _folds_from_test_groups(kfold_by_actor(actors, k), actors)

    return _prepare(
        sources, source="folder", root=root, out_dir=out_dir, labels=labels, make_folds=make_folds,
        fold_scheme=None if folds is None else "custom", num_frames=num_frames, image_size=image_size,
        num_proc=num_proc, max_clips=max_clips, face_crop=face_crop, cache_dir=cache_dir,
        overwrite=overwrite, scan_stats=stats,
    )


def _read_folds(path) -> dict:
    f = Path(path) / "folds.json"
    if not f.is_file():
        raise FileNotFoundError(f"{f} not found: is {path} a prepared dataset?")
    return json.loads(f.read_text(encoding="utf-8"))["folds"]


def list_folds(path) -> list[str]:
    """Fold names of a prepared dataset, in numeric order (``fold_1``, ``fold_2``, ...)."""
    names = list(_read_folds(path))
    return sorted(names, key=lambda n: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", n)])


def _check_prepared_files(path) -> None:
    """ValueError when the dataset's ``state.json`` names data files outside ``path`` (``..``, absolute, symlink)."""
    root = Path(path).resolve()
    state = Path(path) / "state.json"
    try:
        files = [f["filename"] for f in json.loads(state.read_text(encoding="utf-8"))["_data_files"]]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{state} is missing or not a datasets state file ({err})") from None
    for name in files:
        if not isinstance(name, str) or not name or Path(name).is_absolute() or ".." in Path(name).parts:
            raise ValueError(f"{state}: data file {name!r} must be a plain relative name inside {root}")
        real = (root / name).resolve()
        if root not in real.parents:
            raise ValueError(f"{state}: data file {name!r} resolves to {real}, outside {root}")


def load_prepared(path, fold: str = "fold_1", *, keep_in_memory: bool = False) -> DatasetDict:
    """train/validation/test of ``fold``, selected by actor; asserts the splits share no actor.

    The data files named in ``state.json`` must lie inside ``path`` (ValueError otherwise)."""
    folds = _read_folds(path)
    if fold not in folds:
        raise KeyError(f"no fold {fold!r} in {path}; folds: {list_folds(path)}")
    spec = folds[fold]
    _check_folds({fold: spec})
    _check_prepared_files(path)
    ds = datasets.load_from_disk(str(path), keep_in_memory=keep_in_memory)
    actors = np.asarray(ds.data.column("actor").to_pylist(), dtype=object)
    splits, seen = {}, {}
    for split in ("train", "validation", "test"):
        wanted = set(spec.get(split, ()))
        idx = [i for i, a in enumerate(actors) if a in wanted]
        splits[split] = ds.select(idx)
        seen[split] = set(actors[idx].tolist())
    tr, va, te = seen["train"], seen["validation"], seen["test"]
    overlap = (tr & va) | (tr & te) | (va & te)
    assert not overlap, f"fold {fold} of {path} is not actor-independent: {sorted(overlap)}"
    return DatasetDict(splits)


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
