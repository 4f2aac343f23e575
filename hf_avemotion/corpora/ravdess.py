"""RAVDESS (Livingstone & Russo 2018, CC BY-NC-SA 4.0): 24 actors, file names ``MM-VV-EE-II-SS-RR-AA[_x].ext``.

Fields: modality (01 full AV, 02 video only, 03 audio only), vocal channel (01 speech, 02 song: left out),
emotion (01..08 = `EMOTIONS`, the package's own label space: no mapping needed), intensity (01 normal,
02 strong; neutral has no strong), statement (01/02), repetition (01/02), actor (odd = male). Files may sit
anywhere under the root (``Actor_01/``, ``Audio_Speech_Actors_01-24/Actor_01/``, a flat folder...).

Two preparers:

* ``"ravdess"`` (speech, Parquet of `base`): the audio of every speech recording, from its ``03`` audio-only
  file or else its ``01`` AV file's track; speaker = actor ("01").
* ``"ravdess-av"`` (`prepare_ravdess`, Arrow of `hf_avemotion.prepare`): per recording a full-AV ``01`` file;
  else a video-only ``02`` file with the ``03`` audio-only file of the same recording (frames from the first,
  audio from the second); a lone ``02`` or ``03`` file gives a video-only or audio-only clip.

Fold schemes (test actors; fold k validates on fold k+1's test actors, the last on the first's):

* ``"5x"``  -- the published subject-wise 5-fold split of Luna-Jimenez et al., "A Proposal for Multimodal
  Emotion Recognition Using Aural Transformers and Action Units on RAVDESS Dataset", Applied Sciences
  12(1):327, 2021 (README and ``generate_train_test`` in github.com/cristinalunaj/MMEmotionRecognition): test
  actors (2,5,14,15,16), (3,6,7,13,18), (10,11,12,19,20), (8,17,21,23,24), (1,4,9,22). The paper has no
  separate validation set; validating on the next fold's test actors is our choice, so that test actors are
  never used for model selection. Default of ``"ravdess"``.
* ``"6x4"`` -- fold k (k = 1..6) tests actors 4k-3..4k. Default of ``"ravdess-av"``.

Only folds whose test set holds a present actor are written, and fold lists hold present actors only; fold
names keep their meaning (``fold_3`` of ``"6x4"`` always tests actors 09-12). In ``../shared/corpus`` actors 05
and 24 are held back, so ``"5x"`` has 22 actors.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from functools import partial
from pathlib import Path
from typing import Iterable, Mapping

from datasets import Value

from ..prepare import (
    AUDIO_EXTENSIONS,
    _folds_from_dict,
    _folds_from_test_groups,
    _prepare,
    _Source,
    _stem,
    _walk_media,
    source_folder,
)
from .base import AVCorpus, SpeechCorpus
from .labels import EMOTIONS

RAVDESS_EMOTIONS = EMOTIONS  # emotion code k is RAVDESS_EMOTIONS[k - 1]
_MAPPING = {e: e for e in EMOTIONS}
_INTENSITIES = {"01": "normal", "02": "strong"}

# Test actors of the published subject-wise 5-fold split (Luna-Jimenez et al. 2021, see the module docstring).
RAVDESS_FOLDS_5X = (
    (2, 5, 14, 15, 16),
    (3, 6, 7, 13, 18),
    (10, 11, 12, 19, 20),
    (8, 17, 21, 23, 24),
    (1, 4, 9, 22),
)
RAVDESS_FOLDS_6X4 = tuple(tuple(range(4 * k + 1, 4 * k + 5)) for k in range(6))

_RAVDESS_NAME = re.compile(r"^(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})(?:_[^.]*)?$")


def parse_name(stem: str) -> dict | None:
    """The fields of a RAVDESS file stem (``03-01-05-02-01-01-14`` or with a ``_1`` suffix); None when it is not one."""
    m = _RAVDESS_NAME.match(stem)
    if m is None or not 1 <= int(m.group(3)) <= len(EMOTIONS) or m.group(4) not in _INTENSITIES:
        return None
    modality, channel, emotion, intensity, statement, repetition, actor = m.groups()
    return {"clip_id": "-".join(m.groups()), "modality": modality, "channel": channel, "speaker": actor,
            "gender": "male" if int(actor) % 2 else "female", "source_label": EMOTIONS[int(emotion) - 1],
            "intensity": _INTENSITIES[intensity], "statement": statement, "repetition": repetition}


def _scan_ravdess(root: Path) -> tuple[list[_Source], dict]:
    """Group RAVDESS speech files by recording (all fields but modality) and pick the sources.

    A full-AV ``01`` file wins; otherwise a video-only ``02`` file is paired with the audio-only
    ``03`` file of the same recording; a lone ``02`` or ``03`` file gives a video- or audio-only clip.
    """
    groups: dict[tuple, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    stats = Counter()
    for rel in _walk_media(root, stats):
        fields = parse_name(_stem(rel))
        if fields is None or fields["modality"] not in ("01", "02", "03"):
            stats["unrecognised_names"] += 1
            continue
        if fields["channel"] != "01":
            stats["song_excluded"] += 1
            continue
        if (fields["modality"] == "03") != (Path(rel).suffix.lower() in AUDIO_EXTENSIONS):
            stats["unrecognised_names"] += 1  # e.g. an "audio-only" .mp4 or a "video" .wav
            continue
        groups[tuple(fields["clip_id"].split("-")[1:])][fields["modality"]].append(rel)

    sources = []
    for key in sorted(groups):
        files = groups[key]
        stats["duplicates"] += sum(len(v) - 1 for v in files.values())
        emotion = EMOTIONS[int(key[1]) - 1]
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
        clip_id = parse_name(_stem(video or audio))["clip_id"]
        sources.append(_Source(clip_id, actor, emotion, video, audio))
    return sources, dict(stats)


def _ravdess_folds(scheme, actors: Iterable[str], *, strict: bool = False) -> dict:
    """Folds of a scheme ("5x", "6x4" or a dict, as for `prepare_folder`) over the present actors."""
    if isinstance(scheme, Mapping):
        return _folds_from_dict(scheme, actors, strict=strict)
    groups = {"6x4": RAVDESS_FOLDS_6X4, "5x": RAVDESS_FOLDS_5X}.get(scheme)
    if groups is None:
        raise ValueError(f"unknown RAVDESS fold scheme {scheme!r}; use '6x4', '5x' or a dict")
    return _folds_from_test_groups([[f"{a:02d}" for a in g] for g in groups], actors)


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
    """Prepare RAVDESS speech clips found anywhere under ``root`` (``MM-VV-EE-II-SS-RR-AA[_x].ext``) as face crops
    + audio.

    ``folds``: "6x4", "5x" (published, Luna-Jimenez et al. 2021) or a dict (see `prepare_folder`).
    Returns ``out_dir``; rows are [T=num_frames, S=image_size] face crops + 16 kHz audio.
    """
    root = source_folder(root, "RAVDESS")
    sources, stats = _scan_ravdess(root)
    _ravdess_folds(folds, [s.actor for s in sources], strict=True)  # reject a bad scheme before decoding
    return _prepare(
        sources, source="ravdess", root=root, out_dir=out_dir, labels=EMOTIONS,
        make_folds=lambda actors: _ravdess_folds(folds, actors), fold_scheme=folds,
        num_frames=num_frames, image_size=image_size, num_proc=num_proc, max_clips=max_clips,
        face_crop=face_crop, cache_dir=cache_dir, overwrite=overwrite, scan_stats=stats,
    )


class RavdessSpeech(SpeechCorpus):
    name = "ravdess"
    folder = "speech/ravdess"
    fold_scheme = "5x"
    mapping = _MAPPING
    make_folds = staticmethod(partial(_ravdess_folds, "5x"))
    fields = {"intensity": Value("string"), "statement": Value("string"), "repetition": Value("string")}

    def parse(self, rel: str) -> dict | None:
        fields = parse_name(_stem(rel))
        return None if fields is None else {k: v for k, v in fields.items() if k not in ("modality", "channel")}

    def _scan(self, root: Path) -> tuple[list[dict], dict]:
        sources, stats = _scan_ravdess(root)  # video-only recordings (no audio file) are counted there
        return [self.item(root, s.audio_file, self.parse(s.audio_file)) for s in sources if s.audio_file], stats


class RavdessAV(AVCorpus):
    name = "ravdess-av"
    fold_scheme = "6x4"
    make_folds = staticmethod(partial(_ravdess_folds, "6x4"))
    mapping = _MAPPING
    sources = staticmethod(_scan_ravdess)
    prepare_clips = staticmethod(prepare_ravdess)
