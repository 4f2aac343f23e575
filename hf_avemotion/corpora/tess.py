"""TESS, Toronto Emotional Speech Set (Dupuis & Pichora-Fuller 2010, CC BY-NC-ND 4.0): 2 speakers, 2800 items.

Names ``SPK_word_emotion.ext``: speaker OAF (older) or YAF (younger adult female; one original file is named
``OA_bite_neutral``, read as OAF), the target word said in "Say the word ...", and the emotion word: angry,
disgust, fear, happy, neutral, ps (pleasant surprise), sad. Folds: by speaker, fold_1 tests OAF and trains on
YAF, fold_2 the reverse; no validation speaker is left, so ``validation`` is empty.
"""

from __future__ import annotations

import re

from datasets import Value

from ..prepare import _stem, default_folds
from .base import SpeechCorpus

MAPPING = {"angry": "angry", "disgust": "disgust", "fear": "fearful", "happy": "happy", "neutral": "neutral",
           "ps": "surprised", "sad": "sad"}
_NAME = re.compile(r"^(OAF|YAF|OA)_([A-Za-z]+)_([A-Za-z]+)$", re.IGNORECASE)


class Tess(SpeechCorpus):
    name = "tess"
    folder = "speech/tess"
    fold_scheme = "by-speaker"
    make_folds = staticmethod(default_folds)  # 2 speakers: 2 folds, no validation
    mapping = MAPPING
    fields = {"word": Value("string")}

    def parse(self, rel: str) -> dict | None:
        m = _NAME.match(_stem(rel))
        if m is None:
            return None
        speaker = "OAF" if m.group(1).upper() == "OA" else m.group(1).upper()
        return {"clip_id": _stem(rel), "speaker": speaker, "gender": "female", "source_label": m.group(3).lower(),
                "word": m.group(2).lower()}
