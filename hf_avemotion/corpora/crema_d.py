"""CREMA-D (Cao et al. 2014, ODbL 1.0 / DbCL 1.0): 91 actors (1001-1091), names ``AAAA_SSS_EEE_II[_x].ext``.

Fields: actor, sentence code, emotion code (ANG anger, DIS disgust, FEA fear, HAP happy, NEU neutral, SAD sad),
intensity (LO, MD, HI, XX unspecified). ``"crema-d"`` (`prepare_crema_d`, Arrow of `hf_avemotion.prepare`) takes
video from a video file (``VideoFlash/*.flv``) and audio from ``AudioWAV/*.wav``, else ``AudioMP3/*.mp3``, else
the video file's own track; labels stay CREMA-D's 6 words (`CREMA_D_EMOTIONS`), and the mapping onto the
package's `EMOTIONS` is `MAPPING`. Folds: 5 by actor (actors sorted numerically and dealt round-robin; fold k
validates on fold k+1's test actors).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from pathlib import Path

from ..prepare import (
    AUDIO_EXTENSIONS,
    VIDEO_EXTENSIONS,
    _folds_from_test_groups,
    _prepare,
    _Source,
    _stem,
    _walk_media,
    kfold_by_actor,
    source_folder,
)
from .base import AVCorpus

CREMA_D_EMOTIONS = ("anger", "disgust", "fear", "happy", "neutral", "sad")
_CREMA_D_CODES = {"ANG": "anger", "DIS": "disgust", "FEA": "fear", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}
MAPPING = {"anger": "angry", "disgust": "disgust", "fear": "fearful", "happy": "happy", "neutral": "neutral",
           "sad": "sad"}

_CREMA_D_NAME = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{1,2})(?:_[^.]*)?$")


def parse_name(stem: str) -> dict | None:
    """``{"clip_id", "speaker", "sentence", "source_label", "intensity"}`` of a CREMA-D stem; None if it is not one."""
    m = _CREMA_D_NAME.match(stem)
    if m is None or m.group(3) not in _CREMA_D_CODES:
        return None
    actor, sentence, code, intensity = m.groups()
    return {"clip_id": "_".join(m.groups()), "speaker": actor, "sentence": sentence,
            "source_label": _CREMA_D_CODES[code], "intensity": intensity}


def _scan_crema_d(root: Path) -> tuple[list[_Source], dict]:
    """Group CREMA-D files by stem: video from a video file (``VideoFlash/*.flv``), audio from
    ``AudioWAV/*.wav``, else ``AudioMP3/*.mp3``, else the video file's own track."""
    groups: dict[str, list[str]] = defaultdict(list)
    stats = Counter()
    for rel in _walk_media(root, stats):
        fields = parse_name(_stem(rel))
        if fields is None:
            stats["unrecognised_names"] += 1
            continue
        groups[fields["clip_id"]].append(rel)

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
        fields = parse_name(clip_id)
        sources.append(_Source(clip_id, fields["speaker"], fields["source_label"], video, audio))
    return sources, dict(stats)


def _crema_d_folds(actors) -> dict:
    return _folds_from_test_groups(kfold_by_actor(actors, 5), actors)


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
    root = source_folder(root, "CREMA-D")
    sources, stats = _scan_crema_d(root)
    return _prepare(
        sources, source="crema_d", root=root, out_dir=out_dir, labels=CREMA_D_EMOTIONS,
        make_folds=_crema_d_folds, fold_scheme="5-by-actor", num_frames=num_frames, image_size=image_size,
        num_proc=num_proc, max_clips=max_clips, face_crop=face_crop, cache_dir=cache_dir, overwrite=overwrite,
        scan_stats=stats,
    )


class CremaD(AVCorpus):
    name = "crema-d"
    fold_scheme = "5-by-actor"
    make_folds = staticmethod(_crema_d_folds)
    mapping = MAPPING
    sources = staticmethod(_scan_crema_d)
    prepare_clips = staticmethod(prepare_crema_d)
