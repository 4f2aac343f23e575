"""The audio-visual items of ``../shared/corpus/av``: 22 clips of 9 people, for smoke tests and qualitative checks
(too few for numbers; no bulk audio-visual corpus is obtainable here).

    mead/SPK_emotion_level_index.mp4   MEAD (Wang et al. 2020): video + audio (1 clip, M030 sad)
    ravdess_frames/<RAVDESS name>.npz  RAVDESS: face frames uint8 [16,112,112,3]; audio from the matching ``03-``
                                       file in ``../speech/ravdess`` when it is there
    crema_d_frames/<CREMA-D name>.npz  CREMA-D: face frames uint8 [8,112,112,3], no audio

Labels come from the file names (RAVDESS codes, CREMA-D codes, MEAD words) and are mapped by `MAPPING`.
Prepared like ``"ravdess-av"`` (face crops + 16 kHz audio, Arrow of `hf_avemotion.prepare`, labels `EMOTIONS`,
person column ``actor``); folds: k = min(5, people) by speaker.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import replace
from pathlib import Path

from ..prepare import (
    AUDIO_EXTENSIONS,
    FRAME_ARRAY_EXTENSION,
    MEDIA_EXTENSIONS,
    _prepare,
    _Source,
    _stem,
    _walk_media,
    default_folds,
    source_folder,
)
from . import crema_d, ravdess
from .base import AVCorpus
from .labels import EMOTIONS

MEAD_MAPPING = {"angry": "angry", "disgusted": "disgust", "contempt": None, "fear": "fearful", "happy": "happy",
                "neutral": "neutral", "sad": "sad", "surprised": "surprised"}
MAPPING = {**ravdess.RavdessSpeech.mapping, **crema_d.MAPPING, **MEAD_MAPPING}
_MEAD_NAME = re.compile(r"^([MW]\d{3})_([a-z]+)_(\d)_(\d{3})$")


def _parse(stem: str) -> dict | None:
    """speaker and source_label from a RAVDESS, CREMA-D or MEAD stem; None when it is none of them."""
    fields = ravdess.parse_name(stem) or crema_d.parse_name(stem)
    if fields is None and (m := _MEAD_NAME.match(stem)) and m.group(2) in MEAD_MAPPING:
        fields = {"speaker": m.group(1), "source_label": m.group(2)}
    return fields


def _ravdess_audio(root: Path, stem: str) -> str:
    """The audio-only ``03-`` file of a RAVDESS recording in ``../speech/ravdess``, relative to ``root``; "" if none."""
    speech = root.parent / "speech" / "ravdess"
    for path in sorted(speech.glob("03-" + stem[3:] + ".*")) if speech.is_dir() else ():
        if path.suffix.lower() in AUDIO_EXTENSIONS:
            return Path("..", "speech", "ravdess", path.name).as_posix()
    return ""


def _scan_av(root: Path) -> tuple[list[_Source], dict]:
    """One `_Source` per media or frame file (emotion = the corpus's word)."""
    stats, sources = Counter(), []
    for rel in _walk_media(root, stats, MEDIA_EXTENSIONS | {FRAME_ARRAY_EXTENSION}):
        stem = _stem(rel)
        fields = _parse(stem)
        if fields is None:
            stats["unrecognised_names"] += 1
            continue
        if Path(rel).suffix.lower() in AUDIO_EXTENSIONS:
            video, audio = "", rel
        elif rel.endswith(FRAME_ARRAY_EXTENSION):
            video, audio = rel, _ravdess_audio(root, stem) if ravdess.parse_name(stem) else ""
        else:
            video = audio = rel
        stats["with_audio" if audio else "without_audio"] += 1
        sources.append(_Source(stem, fields["speaker"], fields["source_label"], video, audio))
    return sources, dict(stats)


def prepare_av_items(root, out_dir, *, num_frames: int = 8, image_size: int = 224, num_proc: int = 1,
                     max_clips: int | None = None, face_crop: bool = True, cache_dir=None,
                     overwrite: bool = False) -> Path:
    """Prepare the av folder as face crops [num_frames, image_size, image_size, 3] + 16 kHz audio per clip."""
    root = source_folder(root, "av")
    sources, stats = _scan_av(root)
    stats["dropped_labels"] = dict(Counter(s.emotion for s in sources if MAPPING[s.emotion] is None))
    kept = [replace(s, emotion=MAPPING[s.emotion]) for s in sources if MAPPING[s.emotion] is not None]
    return _prepare(
        kept, source="av", root=root, out_dir=out_dir, labels=EMOTIONS, make_folds=default_folds,
        fold_scheme="by-speaker", num_frames=num_frames, image_size=image_size, num_proc=num_proc,
        max_clips=max_clips, face_crop=face_crop, cache_dir=cache_dir, overwrite=overwrite, scan_stats=stats,
    )


class AVItems(AVCorpus):
    name = "av"
    folder = "av"
    fold_scheme = "by-speaker"
    make_folds = staticmethod(default_folds)
    mapping = MAPPING
    sources = staticmethod(_scan_av)
    prepare_clips = staticmethod(prepare_av_items)
