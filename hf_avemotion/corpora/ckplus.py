"""CK+48 (Lucey et al. 2010): 981 48x48 grey faces, the last frames of posed sequences of 118 subjects.

**Research only, no redistribution**: evaluate on it, never ship a model trained on it. Source: a `datasets`
Parquet file whose rows give ``image``, ``label_original`` (CK+'s folder word: anger, contempt, disgust, fear,
happy, sadness, surprise), ``subject`` (S005...), ``sequence`` and ``frame``. Contempt (54 items) has no
counterpart and is dropped. Folds: one, ``"eval"``, with every subject in ``test`` (evaluation only).
"""

from __future__ import annotations

from datasets import Value

from .base import FaceCorpus

MAPPING = {"anger": "angry", "contempt": None, "disgust": "disgust", "fear": "fearful", "happy": "happy",
           "sadness": "sad", "surprise": "surprised"}


def evaluation_fold(subjects) -> dict:
    """One fold, "eval", with every subject in ``test``."""
    return {"eval": {"train": [], "validation": [], "test": sorted(set(subjects))}}


class CKPlus(FaceCorpus):
    name = "ckplus"
    folder = "faces/ckplus"
    fold_scheme = "eval"
    make_folds = staticmethod(evaluation_fold)
    mapping = MAPPING
    fields = {"sequence": Value("int32"), "frame": Value("int32")}

    def parse_row(self, row: dict) -> dict:
        return {"name": row["source_id"], "subject": row["subject"], "source_label": row["label_original"],
                "sequence": row["sequence"], "frame": row["frame"]}
