"""The package's one label space: 8 RAVDESS-style emotions, and a 7-class basic view without calm.

Every corpus module maps its own words onto `EMOTIONS` with a dict ``{corpus word: package word or None}``;
None drops the item (it is counted and reported, never silently lost). Decisions (see docs/corpora.md):

* RAVDESS **calm** stays a class of its own in the 8-class space (RAVDESS, the package's home corpus, poses it
  as a distinct emotion); `to_basic` merges it into neutral for cross-corpus numbers, since no other corpus has it.
* EmoDB **boredom**, FER+/CK+/MEAD **contempt**: dropped; no counterpart, and folding them into neutral or
  disgust would invent labels.
* FER+ rows without a majority label (no emotion with > 50 % of the votes, or unknown / not a face): dropped.
"""

from __future__ import annotations

from typing import Mapping

from ..configuration_avemotion import RAVDESS_EMOTIONS

EMOTIONS: tuple[str, ...] = RAVDESS_EMOTIONS
BASIC_EMOTIONS: tuple[str, ...] = tuple(e for e in EMOTIONS if e != "calm")


def to_basic(emotion: str) -> str:
    """The 7-class basic word for a package word: calm -> neutral, the others unchanged."""
    if emotion not in EMOTIONS:
        raise ValueError(f"{emotion!r} is not one of the package's emotions {EMOTIONS}")
    return "neutral" if emotion == "calm" else emotion


def map_label(mapping: Mapping[str, str | None], word, corpus: str) -> str | None:
    """The package word for a corpus word (None when the corpus label is dropped); ValueError for a word the
    corpus's mapping does not know, so that no label is ever guessed."""
    if word not in mapping:
        raise ValueError(f"{corpus}: label {word!r} is not in the corpus's label mapping {list(mapping)}")
    target = mapping[word]
    if target is not None and target not in EMOTIONS:
        raise ValueError(f"{corpus}: {word!r} maps to {target!r}, which is not a package emotion")
    return target
