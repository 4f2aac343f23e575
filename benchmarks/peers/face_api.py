"""face-api's FaceExpressionNet (`@vladmandic/face-api@1.7.15`, MIT) re-implemented in PyTorch.

Architecture, as face-api's `FaceFeatureExtractor` + `FaceExpressionNet` define it:

    112x112x3 RGB 0-255 -> subtract mean RGB (122.782, 117.001, 104.298) -> / 255
    dense0: conv 3x3/2 (3->32), then 3 separable convs       -> 56x56x32
    dense1..3: 4 separable convs each, the first stride 2     -> 28x28x64, 14x14x128, 7x7x256
    average pool 7x7 (VALID, stride 2) -> 256-d -> fc 256x7 -> softmax

A dense block: out1 = relu(conv0(x)); out2 = sep1(out1); out3 = sep2(relu(out1 + out2));
out4 = sep3(relu(out1 + out2 + out3)); block = relu(out1 + out2 + out3 + out4). Every separable conv is a 3x3
depthwise conv (no bias) then a 1x1 pointwise conv with bias, TF 'SAME' padding.

Preprocessing (face-api's `NetInput.toBatchTensor(112, isCenterInputs=true)` on a tensor input): zero-pad the
shorter side to a square, `round(diff / 2)` zeros after the image and the rest before it, then TF legacy
bilinear resize to 112x112 when the square is not already that size.

Labels, in face-api's output order: neutral, happy, sad, angry, fearful, disgusted, surprised.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from .tf_ops import as_rgb, conv_weight, depthwise_weight, pad_same, resize_bilinear_legacy
from .tfjs_weights import load_tfjs_weights

PACKAGE = "@vladmandic/face-api@1.7.15"
MANIFEST = "model/face_expression_model-weights_manifest.json"
INPUT_SIZE = 112
MEAN_RGB = (122.782, 117.001, 104.298)
LABELS = ("neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised")
# face-api's words -> the package's words (neutral, happy, sad, angry, fearful, disgust, surprised)
TO_OURS = {"neutral": "neutral", "happy": "happy", "sad": "sad", "angry": "angry", "fearful": "fearful",
           "disgusted": "disgust", "surprised": "surprised"}
OUR_LABELS = tuple(TO_OURS[label] for label in LABELS)


class SeparableConv(nn.Module):
    """3x3 depthwise (no bias) + 1x1 pointwise with bias, TF 'SAME' padding."""

    def __init__(self, channels_in: int, channels_out: int, stride: int = 1):
        super().__init__()
        self.stride = stride
        self.depthwise = nn.Conv2d(channels_in, channels_in, 3, stride=stride, groups=channels_in, bias=False)
        self.pointwise = nn.Conv2d(channels_in, channels_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(pad_same(x, 3, self.stride)))


class DenseBlock(nn.Module):
    """face-api's `denseBlock4`: four convs, each fed the relu of the sum of the previous outputs."""

    def __init__(self, channels_in: int, channels_out: int, first: bool = False):
        super().__init__()
        self.conv0 = nn.Conv2d(channels_in, channels_out, 3, stride=2) if first else \
            SeparableConv(channels_in, channels_out, stride=2)
        self.first = first
        self.convs = nn.ModuleList(SeparableConv(channels_out, channels_out) for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = torch.relu(self.conv0(pad_same(x, 3, 2)) if self.first else self.conv0(x))
        for conv in self.convs:  # relu(total) == total for the first one, which takes relu(conv0) as is
            total = total + conv(torch.relu(total))
        return torch.relu(total)


class FaceExpressionNet(nn.Module):
    """Normalised [N, 3, 112, 112] -> logits [N, 7] (face-api label order); `features` gives the 256-d."""

    def __init__(self):
        super().__init__()
        widths = (3, 32, 64, 128, 256)
        self.dense = nn.ModuleList(DenseBlock(widths[i], widths[i + 1], first=i == 0) for i in range(4))
        self.fc = nn.Linear(256, len(LABELS))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.dense:
            x = block(x)
        if x.shape[-2:] != (7, 7):
            raise ValueError(f"expected a 7x7 map before pooling (112 px input), got {tuple(x.shape[-2:])}")
        return x.mean(dim=(2, 3))  # avgPool 7x7 VALID over a 7x7 map

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))

    def load_tfjs(self, weights: dict[str, np.ndarray]) -> None:
        """Copy face-api's named weights (`dense0/conv0/filters`, ..., `fc/weights`) into this module."""
        state = {"fc.weight": torch.from_numpy(np.ascontiguousarray(weights["fc/weights"].T)),
                 "fc.bias": torch.from_numpy(weights["fc/bias"])}
        used = {"fc/weights", "fc/bias"}
        for b, block in enumerate(self.dense):
            convs = [(f"dense{b}/conv{i + 1}", f"dense.{b}.convs.{i}") for i in range(3)]
            if block.first:
                state[f"dense.{b}.conv0.weight"] = conv_weight(weights[f"dense{b}/conv0/filters"])
                state[f"dense.{b}.conv0.bias"] = torch.from_numpy(weights[f"dense{b}/conv0/bias"])
                used |= {f"dense{b}/conv0/filters", f"dense{b}/conv0/bias"}
            else:
                convs.insert(0, (f"dense{b}/conv0", f"dense.{b}.conv0"))
            for theirs, ours in convs:
                state[f"{ours}.depthwise.weight"] = depthwise_weight(weights[f"{theirs}/depthwise_filter"])
                state[f"{ours}.pointwise.weight"] = conv_weight(weights[f"{theirs}/pointwise_filter"])
                state[f"{ours}.pointwise.bias"] = torch.from_numpy(weights[f"{theirs}/bias"])
                used |= {f"{theirs}/depthwise_filter", f"{theirs}/pointwise_filter", f"{theirs}/bias"}
        if set(weights) != used:
            raise ValueError(f"weights not used by FaceExpressionNet: {sorted(set(weights) - used)}")
        self.load_state_dict(state, strict=True)


def pad_to_square(image: np.ndarray) -> np.ndarray:
    """face-api's centred `padToSquare`: round(diff / 2) zero rows/columns after, the rest before."""
    height, width = image.shape[:2]
    diff = abs(height - width)
    if diff == 0:
        return image
    after = int(np.floor(diff * 0.5 + 0.5))  # JS Math.round
    before = diff - after
    padding = [(0, 0)] * image.ndim
    padding[0 if height < width else 1] = (before, after)
    return np.pad(image, padding)


def preprocess(images: list[np.ndarray]) -> torch.Tensor:
    """HxWx3 uint8 RGB (or HxW grey) face crops -> normalised [N, 3, 112, 112] float32."""
    batch = []
    for image in images:
        square = pad_to_square(as_rgb(image).astype(np.float32))
        if square.shape[:2] != (INPUT_SIZE, INPUT_SIZE):
            square = resize_bilinear_legacy(square, INPUT_SIZE, INPUT_SIZE)
        batch.append((square - np.asarray(MEAN_RGB, dtype=np.float32)) / np.float32(255))
    return torch.from_numpy(np.stack(batch).transpose(0, 3, 1, 2).copy())


class FaceApiExpression:
    """face-api's expression classifier: `predict(images) -> probabilities [N, 7]` in `LABELS` order."""

    labels = LABELS
    our_labels = OUR_LABELS

    def __init__(self, net: FaceExpressionNet):
        # channels-last runs the depthwise convs about twice as fast on CPU (same results to float rounding)
        self.net = net.eval().to(memory_format=torch.channels_last)

    @torch.no_grad()
    def predict(self, images: list[np.ndarray], batch_size: int = 64) -> np.ndarray:
        out = []
        for i in range(0, len(images), batch_size):
            x = preprocess(images[i:i + batch_size]).to(memory_format=torch.channels_last)
            out.append(torch.softmax(self.net(x), dim=-1))
        return torch.cat(out).numpy() if out else np.zeros((0, len(LABELS)), np.float32)


def load_face_api(cache_dir: str | Path) -> FaceApiExpression:
    """Build the net from `<cache_dir>/model/face_expression_model-weights_manifest.json` (+ its .bin).

    `cache_dir` is the package folder written by `fetch_peers.py` (`.../peers/@vladmandic/face-api@1.7.15`).
    """
    net = FaceExpressionNet()
    net.load_tfjs(load_tfjs_weights(Path(cache_dir) / MANIFEST))
    return FaceApiExpression(net)
