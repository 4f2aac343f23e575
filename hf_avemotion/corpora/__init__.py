"""Real emotion corpora as `datasets`: one module per corpus, one explicit label space (`labels`).

    from hf_avemotion.corpora import get_corpus, prepare_corpus, load_corpus
    corpus = get_corpus("ravdess")          # .kind: "speech" | "faces" | "av"
    items = corpus.scan(source)             # list[dict], one per file or Parquet row (see `base`)
    folds = corpus.folds(items)             # {"fold_1": {"train": [...], "validation": [...], "test": [...]}, ...}
    out = prepare_corpus("ravdess", source, "data/ravdess", num_proc=2)
    splits = load_corpus(out, "fold_1")     # DatasetDict train / validation / test, speaker-independent

Corpora: "ravdess", "tess", "emodb" (speech -> Parquet with 16 kHz audio), "fer", "ckplus" (faces -> Parquet
with images), "av" (the audio-visual items of the shared corpus), "ravdess-av", "crema-d" (face crops + audio from
full video downloads; Arrow, see `hf_avemotion.prepare`). ``source`` is the corpus folder or the corpus root
(``../shared/corpus``) that holds it.
"""

from __future__ import annotations

import os
from pathlib import Path

from datasets import Dataset

from ..prepare import check_data_files, list_folds, load_prepared, read_folds_file, select_fold
from .av import AVItems
from .base import Corpus
from .ckplus import CKPlus
from .crema_d import CremaD
from .emodb import EmoDB
from .fer import Fer
from .labels import BASIC_EMOTIONS, EMOTIONS, to_basic
from .ravdess import RavdessAV, RavdessSpeech
from .tess import Tess

__all__ = [
    "BASIC_EMOTIONS",
    "EMOTIONS",
    "Corpus",
    "corpus_table",
    "default_corpus_root",
    "format_corpus_table",
    "get_corpus",
    "list_corpora",
    "load_corpus",
    "prepare_corpus",
    "to_basic",
]

_CORPORA: dict[str, Corpus] = {c.name: c for c in (RavdessSpeech(), Tess(), EmoDB(), Fer(), CKPlus(), AVItems(),
                                                     RavdessAV(), CremaD())}
CORPUS_ENV = "HF_AVEMOTION_CORPUS"


def list_corpora(kind: str | None = None) -> list[str]:
    """Names of the corpora (of one ``kind``: "speech", "faces" or "av")."""
    return [name for name, c in _CORPORA.items() if kind is None or c.kind == kind]


def get_corpus(name: str) -> Corpus:
    if name not in _CORPORA:
        raise KeyError(f"unknown corpus {name!r}; corpora: {', '.join(_CORPORA)}")
    return _CORPORA[name]


def prepare_corpus(name: str, source, out_dir, **options) -> Path:
    """Prepare corpus ``name`` from ``source`` into ``out_dir`` (options: ``num_proc``, ``max_items``, ``cache_dir``,
    ``overwrite``; audio-visual corpora also ``num_frames``, ``image_size``, ``face_crop``); returns ``out_dir``."""
    return Path(get_corpus(name).prepare(source, out_dir, **options))


def load_corpus(path, fold: str | None = None, *, keep_in_memory: bool = False, cache_dir=None):
    """train / validation / test of ``fold`` (default: the first) of a prepared corpus, as a DatasetDict.

    Rows are selected by the column ``folds.json`` names (speaker, subject, FER's part; ``actor`` for the
    audio-visual Arrow datasets); asserts that no value is in two splits. Data files must lie inside ``path``.
    """
    path = Path(path)
    spec = read_folds_file(path)
    fold = fold or list_folds(path)[0]
    if (path / "state.json").is_file():
        return load_prepared(path, fold, keep_in_memory=keep_in_memory)
    names = sorted(p.relative_to(path).as_posix() for p in (path / "data").glob("*.parquet"))
    if not names:
        raise FileNotFoundError(f"no data/*.parquet in {path}: is it a prepared corpus?")
    files = check_data_files(path, names)
    ds = Dataset.from_parquet([str(f) for f in files], keep_in_memory=keep_in_memory,
                              cache_dir=None if cache_dir is None else str(cache_dir))
    return select_fold(ds, spec["folds"], fold, spec.get("group", "speaker"), path)


# ----------------------------------------------------------------------------- the corpus table


def default_corpus_root() -> Path | None:
    """``$HF_AVEMOTION_CORPUS``, else the first existing ``../shared/corpus`` beside the current folder or beside
    this source checkout; None when there is none."""
    if os.environ.get(CORPUS_ENV):
        return Path(os.environ[CORPUS_ENV])
    for base in (Path.cwd(), Path(__file__).resolve().parents[2]):
        candidate = base.parent / "shared" / "corpus"
        if candidate.is_dir():
            return candidate.resolve()
    return None


def corpus_table(root) -> list[dict]:
    """One `Corpus.describe` row per corpus found under ``root`` (``speech/ravdess``, ``faces/fer``, ...)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"corpus root {root} is not a folder")
    return [c.describe(root) for c in _CORPORA.values() if c.folder and (root / c.folder).is_dir()]


def format_corpus_table(rows: list[dict]) -> str:
    """The corpus table as Markdown: people, items, per-class counts in `EMOTIONS`, dropped labels, duration."""
    head = ["corpus", "kind", "people", "items", *EMOTIONS, "dropped", "duration"]
    text = {"corpus", "kind", "dropped"}
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" if h in text else "---:" for h in head) + "|"]
    for r in rows:
        dropped = ", ".join(f"{word} {n:,}" for word, n in r["dropped"].items()) or "—"
        duration = "—" if r["seconds"] is None else f"{r['seconds'] / 60:.1f} min"
        cells = [r["corpus"], r["kind"], "—" if r["people"] is None else f"{r['people']:,}", f"{r['items']:,}",
                 *(f"{r['by_emotion'][e]:,}" if r["by_emotion"][e] else "·" for e in EMOTIONS), dropped, duration]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
