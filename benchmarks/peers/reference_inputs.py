"""The real faces the tfjs reference outputs were computed on (tests/data/peers_reference.json).

Nothing is copied into the repository: each input is named by its corpus file and row/frame (and crop), with
the sha256 of its pixels, and is read back from `../shared/corpus`. FER rows are 48x48 grey; RAVDESS frames
are 112x112 RGB face crops; two crops of them are not square, to exercise face-api's centred padding.

    .venv/bin/python benchmarks/peers/reference_inputs.py /tmp/peers_inputs.json

writes the inputs (pixels base64-encoded) and the peers' cache folders for `make_reference.mjs`.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import sys
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]
CORPUS = REPO_ROOT.parent / "shared" / "corpus"

FER_VALIDATION = "faces/fer/validation-00000-of-00001.parquet"
# (corpus file, row or frame, crop as (top, bottom, left, right) or None); rows picked as the first FER+
# PublicTest faces of happiness, sadness, anger and surprise, frames from the middle of each RAVDESS clip
SELECTION = (
    (FER_VALIDATION, 4, None),
    (FER_VALIDATION, 6, None),
    (FER_VALIDATION, 11, None),
    (FER_VALIDATION, 15, None),
    ("av/ravdess_frames/01-01-03-02-02-01-01.npz", 8, None),
    ("av/ravdess_frames/01-01-05-02-01-02-14.npz", 8, None),
    ("av/ravdess_frames/01-01-07-02-02-02-06.npz", 8, None),
    ("av/ravdess_frames/01-01-05-02-01-02-14.npz", 4, (8, 103, 0, 112)),   # 95x112: wider than tall
    ("av/ravdess_frames/01-01-07-02-02-02-06.npz", 12, (0, 112, 10, 100)),  # 112x90: taller than wide
)


def pixels_sha256(image: np.ndarray) -> str:
    """sha256 over the shape and the uint8 pixels (C order)."""
    image = np.ascontiguousarray(image, dtype=np.uint8)
    return hashlib.sha256(repr(image.shape).encode() + image.tobytes()).hexdigest()


def decode_png(data: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("L") if image.mode not in ("L", "RGB") else image).copy()


def read_item(corpus: Path, source: str, index: int, crop) -> np.ndarray:
    path = corpus / source
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        image = decode_png(pq.read_table(path, columns=["image"]).column("image")[index].as_py()["bytes"])
    else:
        with np.load(path) as archive:
            image = archive["frames"][index]
    if crop is not None:
        top, bottom, left, right = crop
        image = image[top:bottom, left:right]
    return np.ascontiguousarray(image)


def load_reference_inputs(corpus: Path = CORPUS) -> list[dict]:
    """The selected inputs as dicts: key, source, index, crop, shape, sha256 and `pixels` (uint8 array)."""
    items = []
    for source, index, crop in SELECTION:
        image = read_item(corpus, source, index, crop)
        key = f"{source}#{index}" + ("" if crop is None else "[{}:{},{}:{}]".format(*crop))
        items.append({"key": key, "source": source, "index": index, "crop": list(crop) if crop else None,
                      "shape": list(image.shape), "sha256": pixels_sha256(image), "pixels": image})
    return items


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[-3], file=sys.stderr)
        return 2
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import fetch_peers

    items = load_reference_inputs()
    for item in items:
        item["pixels_base64"] = base64.b64encode(item.pop("pixels").tobytes()).decode()
    packages = {"face_api": fetch_peers.FACE_API, "human_models": fetch_peers.HUMAN_MODELS}
    for package in packages.values():
        if not fetch_peers.is_complete(package):
            print(f"{package.spec} is not in the cache: run benchmarks/peers/fetch_peers.py", file=sys.stderr)
            return 1
    payload = {"inputs": items,
               "packages": {name: {"spec": package.spec, "dir": str(fetch_peers.package_dir(package))}
                            for name, package in packages.items()}}
    Path(argv[0]).write_text(json.dumps(payload))
    print(f"wrote {len(items)} inputs to {argv[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
