"""Faster CPU inference: bf16 weights where the CPU has AMX tiles, dynamic int8 linear layers elsewhere.

    from hf_avemotion.quantization import quantize_model
    fast = quantize_model(model)                 # "auto": bf16 on CPUs with AMX, else int8
    pipe.model = quantize_model(pipe.model, "int8")

Which path, and why (measured on 1 thread of an AMX-capable Intel Xeon, torch 2.13 CPU, ViT-B/16 on
8 frames, median of 3 after warm-up; `benchmarks/run_benchmarks.py` repeats this for the whole model):

    path                                              seconds   rel. error of the hidden states
    fp32                                              1.88      -
    bf16 weights (`model.to(torch.bfloat16)`)         0.45      0.011
    int8, torch.ao `quantize_dynamic` (per channel)   0.95      0.042
    int8, torchao 0.18 Int8DynamicActivationInt8      1.21      0.025
    int8, torchao + `torch.compile`                   0.77      0.025   (+41 s compiling on first call)

* ``"bf16"`` casts the weights (and, through the pipeline, the inputs) to bfloat16. oneDNN runs the
  matmuls on AMX tiles: a 2048² matmul ran ~4.5x faster than fp32 on that Xeon. AVX512-BF16 alone (no AMX)
  is not enough: on an AMD EPYC with avx512_bf16 and no AMX the whole model took 6.7 s in bf16 and 3.5 s in
  int8 (1 thread, issue 17), and on an AVX2-only EPYC bf16 is emulated (ViT-B/16 on 4 frames, 1 thread,
  best of 3: fp32 6.6 s, bf16 31 s, int8 3.5 s). So ``"auto"`` picks bf16 only where `cpu_has_amx` is true and int8
  everywhere else; `tests/test_quantization.py` (slow, `make release-check`) times all three paths on the
  machine it runs on and fails when ``"auto"`` is not the fastest.
* ``"int8"`` replaces the encoders' `nn.Linear` layers with dynamically quantized ones (int8 weights per
  output channel, activations quantized per call; fbgemm kernels with AVX512-VNNI / AVX2); the small fusion
  head and classifier stay fp32. We use
  `torch.ao.quantization.quantize_dynamic` although torch deprecates it in favour of torchao: torchao's
  int8 dynamic path (the maintained one) was slower in eager mode and beats it only under
  `torch.compile` (41 s of compiling per model and input shape), and importing torchao makes every
  `import transformers` load it (7 ms, warnings on CPU-only wheels). Revisit when torchao's eager CPU
  kernels catch up or torch removes `quantize_dynamic`.
* ONNX Runtime (export + its dynamic int8 quantization) was not adopted: another runtime and export
  step for a path that bf16 already beats on AMX hardware.

The quantized copy is for inference in memory; save and share the fp32 model.
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

__all__ = ["QUANTIZATION_METHODS", "cpu_features", "cpu_has_amx", "cpu_has_bf16_units", "quantize_model",
           "resolve_method"]

QUANTIZATION_METHODS = ("auto", "fp32", "bf16", "int8")

# What torch's CPU probes report (torch.cpu._is_*_supported), by the name /proc/cpuinfo uses for the flag.
_TORCH_PROBES = {"avx2": "_is_avx2_supported", "avx512": "_is_avx512_supported",
                 "avx512_vnni": "_is_vnni_supported", "avx512_bf16": "_is_avx512_bf16_supported",
                 "amx_tile": "_is_amx_tile_supported", "amx_fp16": "_is_amx_fp16_supported"}


def _probe(name: str) -> bool:
    try:
        return bool(getattr(torch.cpu, _TORCH_PROBES[name], lambda: False)())
    except RuntimeError:  # pragma: no cover - unusual builds
        return False


# /proc/cpuinfo flags that decide which kernels run (recorded with benchmark and demo results).
SPEED_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16",
               "avx512_fp16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8", "amx_fp16")


def _cpuinfo() -> tuple[str, list[str] | None]:
    """(CPU model name, the SPEED_FLAGS it has) from the first processor of /proc/cpuinfo; flags None where
    that file is unreadable (not Linux)."""
    import platform

    name, flags = platform.processor() or platform.machine(), None
    try:
        first = open("/proc/cpuinfo", encoding="utf-8", errors="replace").read().split("\n\n", 1)[0]
    except OSError:
        return name, flags
    for line in first.splitlines():
        key, _, value = (part.strip() for part in line.partition(":"))
        if key == "model name":
            name = value
        elif key == "flags":
            present = set(value.split())
            flags = [flag for flag in SPEED_FLAGS if flag in present]
    return name, flags


def cpu_features() -> dict:
    """The CPU features that decide the speed of the fp32 / bf16 / int8 paths:
    ``{"cpu": model name, "cpu_flags": [SPEED_FLAGS present in /proc/cpuinfo] or None, "avx2", "avx512",
    "avx512_vnni", "avx512_bf16", "amx_tile", "amx_fp16": bool (torch's own probes), "capability": str}``
    (``capability``: the kernel set torch dispatches to, e.g. ``"AVX2"`` or ``"AVX512"``)."""
    name, flags = _cpuinfo()
    features = {"cpu": name, "cpu_flags": flags}
    features.update({name: _probe(name) for name in _TORCH_PROBES})
    features["capability"] = torch.backends.cpu.get_cpu_capability()
    return features


def cpu_has_amx() -> bool:
    """True when this CPU has AMX tiles (Intel Sapphire Rapids and later): the only units where bf16 weights
    were measured faster than dynamic int8 (see the module docstring)."""
    return _probe("amx_tile")


def cpu_has_bf16_units() -> bool:
    """True when this CPU has any bf16 matmul instructions (AMX tiles or AVX512-BF16). Recorded with benchmark
    results; ``"auto"`` does not use it (AVX512-BF16 without AMX was slower than int8), see `cpu_has_amx`."""
    return _probe("amx_tile") or _probe("avx512_bf16")


def resolve_method(method: str = "auto") -> str:
    """``"auto"`` -> ``"bf16"`` on CPUs with AMX, else ``"int8"``; other names are checked and returned."""
    if method not in QUANTIZATION_METHODS:
        raise ValueError(f"method must be one of {QUANTIZATION_METHODS}, got {method!r}")
    if method == "auto":
        return "bf16" if cpu_has_amx() else "int8"
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
