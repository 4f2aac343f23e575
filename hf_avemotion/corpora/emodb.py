"""Berlin EmoDB (Burkhardt et al. 2005, Interspeech): 10 speakers, 535 items, German.

Names ``SStttEv.ext``: speaker (03..16), text code (a01..b10), emotion letter from the German word (W Wut
anger, L Langeweile boredom, E Ekel disgust, A Angst fear, F Freude happiness, T Trauer sadness, N neutral),
version letter. Boredom has no counterpart in the package's label space and is dropped (81 items). The copy in
``../shared/corpus`` was resampled to 22.05 kHz and cut to 2.000 s before the Opus encoding (not original).
Folds: 5, each testing one male and one female speaker (speakers ordered by sex, then id, and dealt
round-robin); fold k validates on fold k+1's pair.
"""

from __future__ import annotations

import re

from datasets import Value

from ..prepare import _folds_from_test_groups, _stem
from .base import SpeechCorpus

MAPPING = {"anger": "angry", "boredom": None, "disgust": "disgust", "fear": "fearful", "happiness": "happy",
           "sadness": "sad", "neutral": "neutral"}
_CODES = {"W": "anger", "L": "boredom", "E": "disgust", "A": "fear", "F": "happiness", "T": "sadness", "N": "neutral"}
# Sex of the ten speakers, from the EmoDB documentation.
SPEAKER_SEX = {"03": "male", "08": "female", "09": "female", "10": "male", "11": "male", "12": "male",
               "13": "female", "14": "female", "15": "male", "16": "female"}
_NAME = re.compile(r"^(\d{2})([ab]\d{2})([WLEAFTN])([a-z])$")


def speaker_pair_folds(speakers) -> dict:
    """5 folds, each testing one man and one woman (speakers ordered by sex, then id, dealt round-robin)."""
    speakers = sorted(set(speakers), key=lambda s: (SPEAKER_SEX.get(s, ""), s))
    return _folds_from_test_groups([sorted(speakers[k::5]) for k in range(5)], speakers)


class EmoDB(SpeechCorpus):
    name = "emodb"
    folder = "speech/emodb"
    fold_scheme = "5-speaker-pairs"
    make_folds = staticmethod(speaker_pair_folds)
    mapping = MAPPING
    fields = {"text": Value("string"), "version": Value("string")}

    def parse(self, rel: str) -> dict | None:
        m = _NAME.match(_stem(rel))
        if m is None:
            return None
        speaker, text, code, version = m.groups()
        return {"clip_id": _stem(rel), "speaker": speaker, "gender": SPEAKER_SEX.get(speaker),
                "source_label": _CODES[code], "text": text, "version": version}
