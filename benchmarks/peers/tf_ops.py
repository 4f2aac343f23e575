"""TensorFlow conventions in PyTorch/numpy: SAME padding, NHWC filter layouts, legacy bilinear resize."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF 'SAME' padding along one axis: (before, after), the odd pixel going after."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def pad_same(x: torch.Tensor, kernel: int, stride: int, value: float = 0.0) -> torch.Tensor:
    """Pad an NCHW tensor so a VALID conv/pool with (kernel, stride) gives TF's SAME output."""
    top, bottom = same_padding(x.shape[-2], kernel, stride)
    left, right = same_padding(x.shape[-1], kernel, stride)
    if top == bottom == left == right == 0:
        return x
    return F.pad(x, (left, right, top, bottom), value=value)


def conv_weight(filters: np.ndarray) -> torch.Tensor:
    """TF conv filters [kh, kw, in, out] -> torch [out, in, kh, kw]."""
    return torch.from_numpy(np.ascontiguousarray(filters.transpose(3, 2, 0, 1)))


def depthwise_weight(filters: np.ndarray) -> torch.Tensor:
    """TF depthwise filters [kh, kw, in, multiplier=1] -> torch grouped conv [in, 1, kh, kw]."""
    if filters.shape[3] != 1:
        raise ValueError(f"depthwise multiplier {filters.shape[3]} != 1 is not supported")
    return torch.from_numpy(np.ascontiguousarray(filters.transpose(2, 3, 0, 1)))


def resize_bilinear_legacy(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """`tf.image.resizeBilinear(x, [h, w], alignCorners=false, halfPixelCenters=false)` on an HxWxC array.

    Source coordinate = destination index * (in / out), neighbours floor and min(ceil, in - 1), interpolated
    across columns first, then rows, in float64 as the tfjs CPU kernel computes it in JS numbers, then float32.
    """
    image = np.asarray(image, dtype=np.float64)
    in_h, in_w = image.shape[:2]

    def axis(size_in: int, size_out: int):
        source = np.arange(size_out, dtype=np.float64) * (size_in / size_out)
        low = np.maximum(np.floor(source), 0).astype(np.int64)
        high = np.minimum(np.ceil(source), size_in - 1).astype(np.int64)
        return low, high, source - low

    row_lo, row_hi, row_frac = axis(in_h, height)
    col_lo, col_hi, col_frac = axis(in_w, width)
    col_frac = col_frac[None, :, None]
    top = image[row_lo][:, col_lo] + (image[row_lo][:, col_hi] - image[row_lo][:, col_lo]) * col_frac
    bottom = image[row_hi][:, col_lo] + (image[row_hi][:, col_hi] - image[row_hi][:, col_lo]) * col_frac
    return (top + (bottom - top) * row_frac[:, None, None]).astype(np.float32)


def as_rgb(image: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 RGB as is; HxW (or HxWx1) grey repeated into three channels."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB or HxW grey image, got shape {image.shape}")
    return image
