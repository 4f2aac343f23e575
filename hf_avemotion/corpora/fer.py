"""FER2013 faces (Goodfellow et al. 2013) with FER+ votes (Barsoum et al. 2016, MIT): 48x48 grey web images.

Source: `datasets` Parquet files whose rows give ``image``, ``label`` (FER2013's word), ``ferplus_votes`` (10
annotator counts over `VOTE_WORDS`), ``ferplus_label`` (FER+'s majority word, null when no emotion has a
majority or the majority is unknown / not a face) and ``split`` ("train" or "public_test").

The label is the FER+ majority, mapped by `MAPPING`; contempt and rows without a majority are dropped.
``soft_label`` float32 [8] is the vote distribution over `EMOTIONS` (votes for contempt, unknown and not-a-face
left out, the rest normalised to sum 1; calm is always 0); ``ferplus_votes`` keeps the raw counts.
Folds: one, ``"official"``: test = FER2013 PublicTest (FER+ "Valid"), validation = the 10 % of Train whose PNG
bytes hash (sha1) to 0 mod 10, train = the rest of Train. The copy in ``../shared/corpus`` has no image in two
splits (exact duplicates of test images were removed); hashing keeps equal images in one part.
"""

from __future__ import annotations

import hashlib

from datasets import List, Value

from .base import FaceCorpus
from .labels import EMOTIONS

VOTE_WORDS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF")
MAPPING = {"neutral": "neutral", "happiness": "happy", "surprise": "surprised", "sadness": "sad", "anger": "angry",
           "disgust": "disgust", "fear": "fearful", "contempt": None, "unknown": None, "NF": None, None: None}
PARTS = {"train": "train", "validation": "validation", "test": "public_test"}  # split of the official fold -> part


def soft_label(votes) -> list[float]:
    """FER+ vote counts [10] -> distribution [8] over `EMOTIONS` (unmapped votes left out; zeros when none)."""
    soft = [0.0] * len(EMOTIONS)
    for word, n in zip(VOTE_WORDS, votes or ()):
        if MAPPING[word] is not None:
            soft[EMOTIONS.index(MAPPING[word])] += n
    total = sum(soft)
    return [v / total for v in soft] if total else soft


def part_of(split: str, image_bytes: bytes | None) -> str:
    """"public_test", or Train's "train" / "validation" (sha1 of the PNG bytes = 0 mod 10); other splits keep
    their name and are in no fold."""
    if split != "train":
        return split
    return "validation" if int(hashlib.sha1(image_bytes or b"").hexdigest()[:8], 16) % 10 == 0 else "train"


def official_fold(parts) -> dict:
    """The one fold over the items' parts: train, validation (carved from Train), test (PublicTest)."""
    present = set(parts)
    return {"official": {split: [p] if p in present else [] for split, p in PARTS.items()}}


class Fer(FaceCorpus):
    name = "fer"
    folder = "faces/fer"
    group = "part"
    fold_scheme = "official"
    make_folds = staticmethod(official_fold)
    null_label = "(no majority)"
    mapping = MAPPING
    fields = {"part": Value("string"), "split": Value("string"), "fer2013_label": Value("string"),
              "ferplus_votes": List(Value("int32"), length=len(VOTE_WORDS)),
              "soft_label": List(Value("float32"), length=len(EMOTIONS))}

    def parse_row(self, row: dict) -> dict:
        image = row.get("image") or {}
        return {"name": image.get("path") or row["source_id"], "subject": None, "source_label": row["ferplus_label"],
                "part": part_of(row["split"], image.get("bytes")), "split": row["split"],
                "fer2013_label": row["label"], "ferplus_votes": row["ferplus_votes"],
                "soft_label": soft_label(row["ferplus_votes"])}
