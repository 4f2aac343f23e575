"""The ``"audio-visual-emotion-recognition"`` pipeline: a file (or clip) in, emotions with scores out.

    pipe = pipeline("audio-visual-emotion-recognition", model=folder)
    pipe("talk.mp4")                  -> [{"label": "happy", "score": 0.71}, ...]     best first
    pipe("talk.mp4", return_metadata=True)
        -> {"scores": [...], "face_found_ratio": 0.9, "has_audio": True, "duration": 3.6}
    pipe("long.mp4", timeline=True, window_s=4, hop_s=2)
        -> {... as above, "segments": [{"start", "end", "label", "score", "scores"}, ...]}

Inputs: a local file path, a decoded `Clip`, a dict ``{"frames": uint8 [T,H,W,3] | None,
"audio": float [N] | None, "sampling_rate": int, "fps": float (optional, default 25)}``, or a
list of these (answered in order; a bad item gets ``{"error": "..."}`` in its place while the
others are answered). A single bad input raises `MediaError` (a `ValueError`) or `ValueError`.

It is a `ChunkPipeline`: one input gives one chunk (the clip) or, with ``timeline=True``, one
chunk per window decoded by `iter_windows` in a single streaming pass, so memory stays flat on
long files; ``batch_size`` batches chunks (windows of one file, or clips of a list).

This file travels to the Hub as remote code beside the processor, media and face-detection
modules: it imports nothing from ``hf_avemotion`` except through relative imports.
"""

from __future__ import annotations

import dataclasses
import math
import os
import pickle
import re
import sys
from typing import Any

import numpy as np
import torch
from transformers import AutoModel, AutoModelForVideoClassification
from transformers.pipelines import PIPELINE_REGISTRY
from transformers.pipelines.base import ChunkPipeline

from .media import Clip, MediaError, MediaTooLongError, check_clip, clip_from_arrays, iter_windows, load_clip

__all__ = ["TASK", "AudioVisualEmotionPipeline", "UnsafeWeightsError", "check_weights", "load_pipeline",
           "register_pipeline"]

TASK = "audio-visual-emotion-recognition"
_DICT_KEYS = {"frames", "audio", "sampling_rate", "fps"}
MAX_TIMELINE_S = 6 * 3600.0  # default longest input with timeline=True (a damaged timestamp can claim years)
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
_UNSET = object()


class _ListItem:
    """Marks an element of a list input: its errors are reported in the result, not raised."""

    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value


def _positive(name: str, value: Any, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)


class AudioVisualEmotionPipeline(ChunkPipeline):
    """Emotion recognition from talking-face video (frames + voice), audio-only or video-only input.

    Call arguments (also accepted by the constructor as defaults):
        top_k (`int`, *optional*): number of labels returned, best first (default: all labels).
        return_metadata (`bool`, defaults to False): return a dict ``{"scores", "face_found_ratio",
            "has_audio", "duration"}`` instead of the bare score list.
        timeline (`bool`, defaults to False): also ``"segments"``: contiguous ``[start, end)`` spans
            covering the whole input, one per window, each ``{"start", "end", "label", "score",
            "scores"}``. ``scores`` of the whole input is then the length-weighted mean of the segments.
            A window is classified on its own; with overlapping windows (``hop_s < window_s``) a
            segment is the central ``hop_s`` part of its window.
        window_s (`float`, defaults to 4.0) / hop_s (`float`, defaults to window_s): timeline windows.
        max_timeline_s (`float`, defaults to 6 h): longer inputs raise `MediaTooLongError` with
            ``timeline=True`` (``None``: no limit); without a timeline the processor's ``max_duration`` applies.
        return_attentions (`bool`, defaults to False): ``"attention"``: the last fusion layer's
            audio-to-video attention averaged over heads and audio tokens, one weight per frame used
            (list of T floats; None for fusion types without cross-modal attention).
        return_face_crops (`bool`, defaults to False): ``"face_crops"``: uint8 numpy [T,S,S,3], the
            crops the model saw (T frames actually present; [0,S,S,3] without video).
        With ``timeline=True`` the attention and face crops are given per segment.
        ``return_attentions`` / ``return_face_crops`` imply the dict form.
    """

    _load_processor = True
    _load_feature_extractor = False
    _load_image_processor = False
    _load_video_processor = False
    _load_tokenizer = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.processor is None:
            raise ValueError(
                "the audio-visual-emotion-recognition pipeline needs the model's AVEmotionProcessor "
                "(processor_config.json in the model folder, or processor=...)"
            )
        # batching collates through the feature extractor's padding value (see pad_collate_fn)
        if self.feature_extractor is None:
            self.feature_extractor = getattr(self.processor, "feature_extractor", None)
        self.model.eval()

    # ---------------------------------------------------------------- parameters

    def _sanitize_parameters(self, top_k=None, return_metadata=None, timeline=None, window_s=None, hop_s=None,
                             return_attentions=None, return_face_crops=None, max_timeline_s=_UNSET, **unknown):
        if unknown:
            raise TypeError(f"unexpected argument(s): {', '.join(sorted(unknown))}")
        preprocess, forward, postprocess = {}, {}, {}
        if top_k is not None:
            if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
                raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
            postprocess["top_k"] = int(top_k)
        if return_metadata is not None:
            postprocess["return_metadata"] = bool(return_metadata)
        if timeline is not None:
            preprocess["timeline"] = postprocess["timeline"] = bool(timeline)
        if window_s is not None:
            preprocess["window_s"] = postprocess["window_s"] = _positive("window_s", window_s)
        if hop_s is not None:
            preprocess["hop_s"] = postprocess["hop_s"] = _positive("hop_s", hop_s)
        if max_timeline_s is not _UNSET:  # None means "no limit"
            preprocess["max_timeline_s"] = _positive("max_timeline_s", max_timeline_s, allow_none=True)
        if return_attentions is not None:
            forward["return_attentions"] = postprocess["return_attentions"] = bool(return_attentions)
        if return_face_crops is not None:
            preprocess["return_face_crops"] = postprocess["return_face_crops"] = bool(return_face_crops)
        return preprocess, forward, postprocess

    def __call__(self, inputs, **kwargs):
        """inputs: path | Clip | dict | list of these. Returns one result, or a list of results for a list."""
        if isinstance(inputs, list):
            if not inputs:
                return []
            inputs = [_ListItem(item) for item in inputs]
        return super().__call__(inputs, **kwargs)

    # ---------------------------------------------------------------- preprocess

    def _clip(self, item: Any) -> Clip:
        """One input -> decoded Clip (frames sampled as the processor does)."""
        p = self.processor
        if _is_clip(item):
            return check_clip(item)
        if isinstance(item, (str, os.PathLike)):
            return load_clip(item, num_frames=p.num_frames, sampling_rate=p.sampling_rate,
                             max_duration=p.max_duration)
        if isinstance(item, dict):
            unknown = set(item) - _DICT_KEYS
            if unknown:
                raise ValueError(f"input dict has unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
                                 f"expected {', '.join(sorted(_DICT_KEYS))}")
            return clip_from_arrays(frames=item.get("frames"), audio=item.get("audio"),
                                    sampling_rate=item.get("sampling_rate"), fps=item.get("fps", 25.0),
                                    target_sampling_rate=p.sampling_rate)
        raise ValueError(f"unsupported input of type {type(item).__name__}: give a file path, a Clip, or a dict "
                         f"with 'frames' and/or 'audio' (and 'sampling_rate')")

    def _windows(self, item: Any, window_s: float, hop_s: float | None, max_s: float | None):
        """One input -> iterator of window Clips (``start`` = offset in the input, seconds); inputs longer than
        ``max_s`` raise `MediaTooLongError` (files: from the header or while decoding, never decoded whole)."""
        if isinstance(item, (str, os.PathLike)):
            return iter_windows(item, window_s=window_s, hop_s=hop_s, num_frames=self.processor.num_frames,
                                sampling_rate=self.processor.sampling_rate, max_duration=max_s)
        clip = self._clip(item)
        if max_s is not None and clip.duration > max_s:
            raise MediaTooLongError(f"the input lasts {clip.duration:.1f} s, above max_timeline_s={max_s:g} s")
        return slice_windows(clip, window_s, hop_s)

    def preprocess(self, inputs, timeline=False, window_s=4.0, hop_s=None, return_face_crops=False,
                   max_timeline_s=MAX_TIMELINE_S):
        """Yields one model-input dict per chunk: pixel_values [1,T,3,S,S], input_values [1,F,M], video_mask
        [1,T], audio_mask [1], ``is_last`` and ``meta`` (start, duration, frame/face counts, crops)."""
        in_list = isinstance(inputs, _ListItem)
        item = inputs.value if in_list else inputs
        try:
            clips = self._windows(item, window_s, hop_s, max_timeline_s) if timeline else iter([self._clip(item)])
            previous = None
            for clip in clips:  # hold one window back to know which is last
                if previous is not None:
                    yield self._encode(previous, False, return_face_crops)
                previous = clip
            if previous is None:
                raise MediaError(f"{item}: no window could be decoded")
            yield self._encode(previous, True, return_face_crops)
        except (ValueError, OSError) as err:  # MediaError is a ValueError
            if not in_list:
                raise
            yield self._error_chunk(err)

    def _processor_clip(self, clip: Clip) -> Clip:
        """The clip as an instance of the `Clip` class the processor checks for. Loaded as Hub remote code, the
        pipeline and the processor each get their own copy of media.py (transformers caches every entry module
        with its relative imports separately), hence two `Clip` classes."""
        cls = getattr(sys.modules.get(type(self.processor).__module__), "Clip", None)
        if cls is None or isinstance(clip, cls):
            return clip
        return cls(**{f.name: getattr(clip, f.name) for f in dataclasses.fields(clip)})

    def _encode(self, clip: Clip, is_last: bool, return_face_crops: bool) -> dict:
        features = self.processor(videos=[self._processor_clip(clip)], return_tensors="pt",
                                  return_face_crops=return_face_crops)
        video_mask, face_mask = features["video_mask"], features["face_mask"]
        meta = {
            "start": float(clip.start),
            "duration": float(clip.duration),
            "has_audio": bool(features["audio_mask"][0]),
            "num_frames": int(video_mask[0].sum()),
            "num_faces": int((face_mask & video_mask)[0].sum()),
        }
        if return_face_crops:  # the crops the processor made (zeros past the clip's frames are dropped)
            meta["face_crops"] = features["face_crops"][0][: meta["num_frames"]]
        return {
            "pixel_values": features["pixel_values"],
            "input_values": features["input_values"],
            "video_mask": video_mask,
            "audio_mask": features["audio_mask"],
            "audio_frame_mask": features["audio_frame_mask"],
            "is_last": is_last,
            "meta": meta,
        }

    def _error_chunk(self, err: Exception) -> dict:
        """Placeholder chunk (nothing present) carrying the error message, so a batch still collates."""
        p = self.processor
        size = p.image_processor.size
        h, w = size.get("height", p.crop_size), size.get("width", p.crop_size)
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return {
            "pixel_values": torch.zeros(1, p.num_frames, 3, h, w),
            "input_values": torch.zeros(1, p.audio_frames, p.mel_bins),
            "video_mask": torch.zeros(1, p.num_frames, dtype=torch.bool),
            "audio_mask": torch.zeros(1, dtype=torch.bool),
            "audio_frame_mask": torch.zeros(1, p.audio_frames, dtype=torch.bool),
            "is_last": True,
            "meta": {"error": message},
        }

    # ---------------------------------------------------------------- forward

    def _forward(self, model_inputs, return_attentions=False):
        """Model on a batch of B chunks -> logits [B,K], frame_attention [B,T] (or None), is_last, meta."""
        dtype = self.model.dtype
        inputs = {k: model_inputs[k] for k in ("pixel_values", "input_values", "video_mask", "audio_mask")}
        modality_heads = getattr(self.model.config, "modality_heads", False)
        if modality_heads:  # the speech head pools real audio frames only
            inputs["audio_frame_mask"] = model_inputs["audio_frame_mask"]
        for k in ("pixel_values", "input_values"):
            inputs[k] = inputs[k].to(dtype)
        outputs = self.model(**inputs, output_attentions=bool(return_attentions))
        result = {"logits": outputs.logits.float(), "is_last": model_inputs["is_last"], "meta": model_inputs["meta"]}
        if modality_heads:  # each modality's own answer, as evidence
            result["face_logits"], result["voice_logits"] = outputs.video_logits.float(), outputs.audio_logits.float()
        if return_attentions:
            result["frame_attention"] = frame_attention(outputs, inputs["audio_mask"])
        return result

    # ---------------------------------------------------------------- postprocess

    def _ranked(self, probs: np.ndarray, top_k: int | None) -> list[dict]:
        id2label = self.model.config.id2label
        order = np.argsort(-probs, kind="stable")[: top_k or len(probs)]
        return [{"label": str(id2label.get(int(i), i)), "score": float(probs[i])} for i in order]

    def postprocess(self, model_outputs, top_k=None, return_metadata=False, timeline=False, window_s=4.0,
                    hop_s=None, return_attentions=False, return_face_crops=False):
        """Chunks of one input -> result (see the class docstring)."""
        errors = [o["meta"]["error"] for o in model_outputs if "error" in o["meta"]]
        if errors:
            return {"error": errors[0]}
        probs = [self._probabilities(o["logits"][0]) for o in model_outputs]
        metas = [o["meta"] for o in model_outputs]
        extras = [self._extras(o, return_attentions, return_face_crops) for o in model_outputs]
        num_frames = sum(m["num_frames"] for m in metas)
        summary = {
            "face_found_ratio": sum(m["num_faces"] for m in metas) / num_frames if num_frames else 0.0,
            "has_audio": any(m["has_audio"] for m in metas),
            "duration": metas[-1]["start"] + metas[-1]["duration"] - metas[0]["start"],
        }
        if not timeline:
            scores = self._ranked(probs[0], top_k)
            if not (return_metadata or return_attentions or return_face_crops):
                return scores
            return {"scores": scores, **summary, **extras[0]}
        bounds = segment_bounds([m["start"] for m in metas], summary["duration"], window_s,
                                window_s if hop_s is None else hop_s)
        segments, weights = [], []
        for (start, end), p, extra in zip(bounds, probs, extras):
            if end <= start:
                continue  # a window wholly covered by its neighbours' segments
            ranked = self._ranked(p, top_k)
            segments.append({"start": start, "end": end, "label": ranked[0]["label"], "score": ranked[0]["score"],
                             "scores": ranked, **extra})
            weights.append((end - start, p))
        total = sum(w for w, _ in weights)
        overall = (sum(w * p for w, p in weights) / total if total > 0 else np.mean(probs, axis=0))
        return {"scores": self._ranked(overall, top_k), **summary, "segments": segments}

    def _probabilities(self, logits: torch.Tensor) -> np.ndarray:
        if self.model.config.problem_type == "multi_label_classification":
            return torch.sigmoid(logits).numpy()
        return torch.softmax(logits, dim=-1).numpy()

    def _extras(self, output: dict, return_attentions: bool, return_face_crops: bool) -> dict:
        extra = {}
        n = output["meta"]["num_frames"]
        if "face_logits" in output:  # {"face": best label + score, or None without a face; "voice": likewise}
            present = {"face": output["meta"]["num_faces"] > 0, "voice": output["meta"]["has_audio"]}
            extra["modalities"] = {
                name: self._ranked(torch.softmax(output[f"{name}_logits"][0], -1).numpy(), 1)[0] if present[name]
                else None for name in ("face", "voice")}
        if return_attentions:
            weights = output.get("frame_attention")
            extra["attention"] = None if weights is None else [float(w) for w in weights[0][:n]]
        if return_face_crops:
            extra["face_crops"] = output["meta"]["face_crops"]
        return extra


# -------------------------------------------------------------------- helpers


def _is_clip(x: Any) -> bool:
    """A `Clip`, also one from another copy of media.py (remote code)."""
    return isinstance(x, Clip) or (dataclasses.is_dataclass(x) and type(x).__name__ == "Clip"
                                   and hasattr(x, "frames") and hasattr(x, "audio"))


def frame_attention(outputs, audio_mask: torch.Tensor) -> torch.Tensor | None:
    """Last fusion layer's audio->video attention [B,H,1+N,1+T] -> per-frame weights [B,T]: mean over heads and
    audio tokens (the learned null query alone for rows without audio); the null key is dropped."""
    attentions = getattr(outputs, "audio_to_video_attentions", None)
    if not attentions:
        return None
    weights = attentions[-1].float().mean(1)  # [B,1+N,1+T]
    per_query = torch.where(audio_mask.bool()[:, None], weights[:, 1:].mean(1), weights[:, 0])
    return per_query[:, 1:]


def segment_bounds(starts: list[float], end: float, window_s: float, hop_s: float) -> list[tuple[float, float]]:
    """Window starts -> contiguous segments [(start, end)] covering [starts[0], end].

    Back-to-back or gapped windows (hop_s >= window_s): a segment runs from its window's start to the next one's.
    Overlapping windows: from the middle of the overlap with the previous window to that with the next.
    """
    shift = max(0.0, window_s - hop_s) / 2
    cuts = [starts[0]] + [min(max(s + shift, starts[0]), end) for s in starts[1:]] + [end]
    for i in range(1, len(cuts)):  # keep them monotone
        cuts[i] = max(cuts[i], cuts[i - 1])
    return list(zip(cuts[:-1], cuts[1:]))


def slice_windows(clip: Clip, window_s: float, hop_s: float | None = None):
    """In-memory counterpart of `iter_windows` for a decoded Clip: windows every ``hop_s`` seconds lasting
    ``window_s`` (the last one ends with the clip). Frames are those shown in each window (the last earlier
    frame when none starts inside it); audio is cut to the window."""
    hop = window_s if hop_s is None else hop_s
    end = float(clip.duration)
    sr = clip.sampling_rate
    k = 0
    while True:
        start = k * hop
        if k > 0 and (start >= end - 1e-9 or start - hop + window_s >= end - 1e-9):
            return
        stop = min(start + window_s, end)
        frames, stamps = clip.frames[:0], clip.timestamps[:0]
        if clip.has_video and clip.num_frames:
            inside = (clip.timestamps >= start) & (clip.timestamps < stop)
            if not inside.any():
                earlier = np.flatnonzero(clip.timestamps < start)
                inside = np.zeros_like(inside)
                inside[earlier[-1] if len(earlier) else 0] = True
            frames, stamps = clip.frames[inside], np.maximum(clip.timestamps[inside] - start, 0.0)
        audio = clip.audio[int(round(start * sr)): int(round(stop * sr))] if clip.has_audio else clip.audio
        yield Clip(frames=frames, timestamps=stamps, audio=audio, sampling_rate=sr, has_video=clip.has_video,
                   has_audio=clip.has_audio, duration=stop - start, path=clip.path, start=start)
        k += 1


class UnsafeWeightsError(ValueError):
    """A model folder holds only pickle weights (``.bin``/``.pt``...), refused without ``allow_pickle=True``."""


def check_weights(folder, allow_pickle: bool = False) -> list[str]:
    """Names of the weight files `from_pretrained` would read in a local model ``folder``.

    safetensors files are preferred. A folder with only pickle files raises `UnsafeWeightsError` unless
    ``allow_pickle`` (unpickling can run arbitrary code; with the opt-in they are still read with
    ``torch.load(weights_only=True)``); a folder without weights raises ValueError.
    """
    names = sorted(os.listdir(folder))
    safe = [n for n in names if n.endswith(".safetensors")]
    if safe:
        return safe
    pickles = [n for n in names if n.endswith(PICKLE_SUFFIXES) and os.path.isfile(os.path.join(folder, n))]
    if not pickles:
        raise ValueError(f"{folder} has no model weights (*.safetensors)")
    if not allow_pickle:
        raise UnsafeWeightsError(
            f"{folder} has only pickle weights ({', '.join(pickles)}), which can run arbitrary code when loaded; "
            "refusing. Re-save the model with save_pretrained (safetensors), or, if you trust the source, opt in "
            "with allow_pickle=True (CLI: --allow-pickle); they are then read with torch.load(weights_only=True)")
    return pickles


def load_pipeline(model, device=None, *, allow_pickle: bool = False, **kwargs) -> AudioVisualEmotionPipeline:
    """`pipeline(TASK, model=...)` with this package's pipeline class, also for folders staged for the Hub
    (whose config names the remote-code pipeline). ``model``: a local folder, a Hub id, or a loaded model.

    Weights load from safetensors only; pickle weights (``pytorch_model.bin``, ``.pt``) need
    ``allow_pickle=True`` and are then read with ``weights_only=True`` (see `check_weights`).
    Raises FileNotFoundError for a missing folder, `UnsafeWeightsError` for pickle-only weights and ValueError
    for a folder that does not hold a model."""
    from huggingface_hub import constants
    from transformers import pipeline

    if isinstance(model, (str, os.PathLike)):
        name = os.fspath(model)
        hub_id = re.fullmatch(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?", name) is not None
        if os.path.exists(name) or not hub_id or constants.HF_HUB_OFFLINE:
            if not os.path.isdir(name):
                raise FileNotFoundError(f"model folder {name} not found")
            if not os.path.isfile(os.path.join(name, "config.json")):
                raise ValueError(f"{name} is not a model folder (no config.json)")
            check_weights(name, allow_pickle)
        model = name
    model_kwargs = dict(kwargs.pop("model_kwargs", None) or {})
    model_kwargs.setdefault("weights_only", True)
    if not allow_pickle:
        model_kwargs.setdefault("use_safetensors", True)
    try:
        return pipeline(TASK, model=model, pipeline_class=AudioVisualEmotionPipeline, device=device,
                        model_kwargs=model_kwargs, **kwargs)
    except pickle.UnpicklingError as err:  # weights_only=True met something that is not a tensor
        found = re.search(r"(?i)unsupported GLOBAL [\w.]+", str(err))
        raise UnsafeWeightsError(f"refusing the pickle weights in {model}: they hold objects other than tensors"
                                 + (f" ({found.group(0)})" if found else "")) from err
    except (OSError, KeyError, TypeError, RuntimeError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"cannot load the model from {model}: {first}") from err


def register_pipeline(default: dict | None = None) -> None:
    """Make ``pipeline("audio-visual-emotion-recognition", model=...)`` use this class; ``default``: transformers'
    task default (``{"model": (folder or Hub id, revision)}``), the model used when none is given."""
    PIPELINE_REGISTRY.register_pipeline(TASK, pipeline_class=AudioVisualEmotionPipeline,
                                        pt_model=(AutoModelForVideoClassification, AutoModel), default=default,
                                        type="multimodal")


if __name__.startswith("hf_avemotion."):  # the installed package (as Hub remote code, the config names the class)
    from .processing_avemotion import register_processor

    register_processor()  # the pipeline itself is registered by the package's __init__, with its default model
