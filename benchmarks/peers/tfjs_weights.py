"""Reader of TensorFlow.js weight manifests: `*.json` + binary shards -> {name: numpy array}.

The format (as tfjs writes and reads it):

- the manifest is either a bare list of weight groups (face-api's `*-weights_manifest.json`) or a model file
  (`model.json` of a graph or layers model) whose `weightsManifest` key holds that list;
- a group is `{"paths": [shard, ...], "weights": [spec, ...]}`; its shards (paths relative to the manifest's
  folder) are concatenated in order, and its weights are laid out one after another in that byte stream,
  little-endian, without padding;
- a spec is `{"name", "shape", "dtype"}` plus, for quantised weights, `"quantization"`:
  `{"dtype": "uint8"|"uint16", "scale", "min"}` (affine: value = q * scale + min; an old manifest may omit the
  dtype, meaning uint8) or `{"dtype": "float16"}` (IEEE half floats). The stored element size is that of the
  quantisation dtype; `dtype` says what the value is once decoded.

Float weights come back as float32 arrays (dequantised in float64 and rounded once, as tfjs does in JS
numbers); int32 and bool weights keep their type (graph models store e.g. reduction axes as int32).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

# bytes per element as stored, and the numpy dtype to read them with
_STORED = {
    "float32": np.dtype("<f4"),
    "int32": np.dtype("<i4"),
    "bool": np.dtype("u1"),
    "uint8": np.dtype("u1"),
    "uint16": np.dtype("<u2"),
    "float16": np.dtype("<f2"),
}


class TfjsFormatError(ValueError):
    pass


def weight_groups(manifest: Any) -> list[dict]:
    """The list of weight groups in a parsed manifest (bare list, or a model file's `weightsManifest`)."""
    groups = manifest.get("weightsManifest") if isinstance(manifest, dict) else manifest
    if not isinstance(groups, list) or not all(isinstance(g, dict) and "paths" in g and "weights" in g
                                               for g in groups):
        raise TfjsFormatError("not a tfjs weights manifest: expected a list of {paths, weights} groups")
    return groups


def _decode(spec: dict, buffer: memoryview, offset: int) -> tuple[np.ndarray, int]:
    name, dtype = spec["name"], spec.get("dtype", "float32")
    shape = tuple(int(d) for d in spec.get("shape", []))
    count = int(np.prod(shape, dtype=np.int64))
    quantization = spec.get("quantization")
    if dtype == "string":
        raise TfjsFormatError(f"{name}: string weights are not supported")
    stored_name = (quantization.get("dtype") or "uint8") if quantization else dtype
    if stored_name not in _STORED or dtype not in ("float32", "int32", "bool"):
        raise TfjsFormatError(f"{name}: unsupported dtype {dtype!r} stored as {stored_name!r}")
    stored = _STORED[stored_name]
    size = count * stored.itemsize
    if offset + size > len(buffer):
        raise TfjsFormatError(f"{name}: needs bytes {offset}..{offset + size} but the shards hold {len(buffer)}")
    raw = np.frombuffer(buffer, dtype=stored, count=count, offset=offset)
    if quantization and stored_name in ("uint8", "uint16"):
        try:
            scale, minimum = float(quantization["scale"]), float(quantization["min"])
        except (KeyError, TypeError, ValueError):
            raise TfjsFormatError(f"{name}: {stored_name} quantisation needs numeric scale and min") from None
        values = raw.astype(np.float64) * scale + minimum
        values = np.round(values).astype(np.int32) if dtype == "int32" else values.astype(np.float32)
    elif quantization:  # float16
        values = raw.astype(np.float32)
        if dtype == "int32":
            values = np.round(values).astype(np.int32)
    elif dtype == "bool":
        values = raw != 0
    else:
        values = raw.astype(stored.newbyteorder("="), copy=True)
    return values.reshape(shape), offset + size


def read_group(group: dict, folder: Path) -> dict[str, np.ndarray]:
    """Decode one weight group whose shard paths are relative to `folder`."""
    data = b"".join((folder / path).read_bytes() for path in group["paths"])
    buffer, offset, weights = memoryview(data), 0, {}
    for spec in group["weights"]:
        if spec["name"] in weights:
            raise TfjsFormatError(f"{spec['name']}: listed twice in one group")
        weights[spec["name"]], offset = _decode(spec, buffer, offset)
    if offset != len(buffer):
        raise TfjsFormatError(f"shards {group['paths']} hold {len(buffer)} bytes but the weights use {offset}")
    return weights


def load_tfjs_weights(manifest_path: str | Path) -> dict[str, np.ndarray]:
    """Read every weight named in a tfjs manifest (`*-weights_manifest.json` or `model.json`).

    Returns a dict name -> array in the manifest's shape (float32 for float weights, dequantised).
    Raises TfjsFormatError on a malformed manifest or shards of the wrong size, OSError on a missing shard.
    """
    manifest_path = Path(manifest_path)
    manifest = json.loads(manifest_path.read_text())
    weights: dict[str, np.ndarray] = {}
    for group in weight_groups(manifest):
        for name, value in read_group(group, manifest_path.parent).items():
            if name in weights:
                raise TfjsFormatError(f"{name}: listed in two groups")
            weights[name] = value
    return weights
