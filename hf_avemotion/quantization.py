"""Faster CPU inference: bf16 weights where the CPU has bf16 matrix units, dynamic int8 linear layers elsewhere.

    from hf_avemotion.quantization import quantize_model
    fast = quantize_model(model)                 # "auto": bf16 on AMX / AVX512-BF16 CPUs, else int8
    pipe.model = quantize_model(pipe.model, "int8")

Which path, and why (measured here: 1 thread of an AMX-capable Xeon, torch 2.13 CPU, ViT-B/16 on
8 frames, median of 3 after warm-up; `benchmarks/run_benchmarks.py` repeats this for the whole model):

    path                                              seconds   rel. error of the hidden states
    fp32                                              1.88      -
    bf16 weights (`model.to(torch.bfloat16)`)         0.45      0.011
    int8, torch.ao `quantize_dynamic` (per channel)   0.95      0.042
    int8, torchao 0.18 Int8DynamicActivationInt8      1.21      0.025
    int8, torchao + `torch.compile`                   0.77      0.025   (+41 s compiling on first call)

* ``"bf16"`` casts the weights (and, through the pipeline, the inputs) to bfloat16. oneDNN runs the
  matmuls on AMX / AVX512-BF16 units: a 2048² matmul ran ~4.5x faster than fp32 here. On CPUs without
  bf16 units bf16 is emulated and slower than fp32, so ``"auto"`` only picks it where
  `cpu_has_bf16_units` is true.
* ``"int8"`` replaces the encoders' `nn.Linear` layers with dynamically quantized ones (int8 weights per
  output channel, activations quantized per call; fbgemm kernels with AVX512-VNNI / AVX2); the small fusion
  head and classifier stay fp32. We use
  `torch.ao.quantization.quantize_dynamic` although torch deprecates it in favour of torchao: torchao's
  int8 dynamic path (the maintained one) was slower in eager mode and beats it only under
  `torch.compile` (41 s of compiling per model and input shape), and importing torchao makes every
  `import transformers` load it (7 ms, warnings on CPU-only wheels). Revisit when torchao's eager CPU
  kernels catch up or torch removes `quantize_dynamic`.
* ONNX Runtime (export + its dynamic int8 quantization) was not adopted: another runtime and export
  step for a path that bf16 already beats on this hardware.

The quantized copy is for inference in memory; save and share the fp32 model.
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

__all__ = ["QUANTIZATION_METHODS", "cpu_has_bf16_units", "quantize_model", "resolve_method"]

QUANTIZATION_METHODS = ("auto", "fp32", "bf16", "int8")


def cpu_has_bf16_units() -> bool:
    """True when this CPU runs bf16 matmuls natively (AMX tiles or AVX512-BF16), so bf16 beats fp32."""
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    try:
        return any(getattr(torch.cpu, name, lambda: False)() for name in probes)
    except RuntimeError:  # pragma: no cover - unusual builds
        return False


def resolve_method(method: str = "auto") -> str:
    """``"auto"`` -> ``"bf16"`` on CPUs with bf16 units, else ``"int8"``; other names are checked and returned."""
    if method not in QUANTIZATION_METHODS:
        raise ValueError(f"method must be one of {QUANTIZATION_METHODS}, got {method!r}")
    if method == "auto":
        return "bf16" if cpu_has_bf16_units() else "int8"
    return method


def _encoders(model: nn.Module) -> list[nn.Module]:
    """The ViT / AST encoders of an AVEmotion model (the modules int8 applies to); [model] for other modules."""
    core = getattr(model, "avemotion", model)
    found = [getattr(core, name, None) for name in ("vision_encoder", "audio_encoder")]
    found = [m for m in found if m is not None]
    return found or [model]


def _dynamic_int8(model: nn.Module) -> nn.Module:
    """The encoders' nn.Linear layers -> dynamically quantized int8 linears (weights per output channel), in
    place. The fusion head and classifier stay fp32: <2 % of the base model's FLOPs, and keeping them halved
    the logit error of the synthetic-benchmark model (mean |delta logit| 0.0068 -> 0.0030)."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with warnings.catch_warnings():  # deprecation notices of torch.ao (see the module docstring)
        warnings.simplefilter("ignore")
        targets = _encoders(model)
        if targets == [model]:
            return quantize_dynamic(model, {nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8, inplace=True)
        for encoder in targets:
            quantize_dynamic(encoder, {nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8, inplace=True)
        return model


def quantize_model(model: nn.Module, method: str = "auto", inplace: bool = False) -> nn.Module:
    """A copy of ``model`` (or ``model`` itself with ``inplace=True``) for faster CPU inference, in eval mode.

    Args:
        model: an [`AVEmotionForAudioVisualClassification`] (any torch module works) on the CPU.
        method: ``"auto"``, ``"fp32"`` (unchanged), ``"bf16"`` (bfloat16 weights; feed bfloat16
            ``pixel_values`` / ``input_values``, as the pipeline does by casting to ``model.dtype``) or
            ``"int8"`` (dynamic int8 linear layers in the encoders; inputs stay float32). See the module docstring.
        inplace: modify ``model`` instead of a deep copy (saves the memory of a second model).

    Returns:
        The model, ready for ``model(**features)``; logits are float32 for ``"int8"``, bfloat16 for ``"bf16"``.
    """
    method = resolve_method(method)
    if any(p.device.type != "cpu" for p in model.parameters()):
        raise ValueError("quantize_model is a CPU path; move the model to the CPU first")
    if not inplace:
        model = copy.deepcopy(model)
    model.eval()
    if method == "bf16":
        model.to(torch.bfloat16)
    elif method == "int8":
        model = _dynamic_int8(model)
    return model
