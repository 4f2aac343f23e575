"""Gradio Space of hf_avemotion: audio-visual emotion recognition for one talking-face video.

A person uploads a video (or records one with the webcam, sound included) and sees, at a glance:

* the emotion distribution (``gr.Label`` with the top classes + a bar chart of every class);
* a status line: whether an audio track and a face were found, and the duration;
* the face crops the model looked at (gallery);
* the cross-modal attention: how much the audio attended to each of those frames (heatmap);
* with "Timeline" ticked, one prediction per window along the video (coloured spans + scores).

The "Live" tab streams the webcam and the microphone instead (gradio streaming events into
``hf_avemotion.live.LiveStream``, one per browser session): the current emotion every 0.5 s for the last 4 s,
and a timeline that grows; stale hops are dropped, not queued, when the machine is slower than that.

Everything goes through the package's pipeline,
``pipeline("audio-visual-emotion-recognition", model=MODEL)``. Where ``hf_avemotion`` is installed
(local runs, ``avemotion app``) its pipeline module registers the task; on a Space without the package
the same pipeline comes from the model repo's remote code (``trust_remote_code=True``).

Limits (each refused with a message that says what to do): upload size (``max_file_size`` in
``launch`` and again in the handler), duration (``MAX_CLIP_S`` for one prediction, ``MAX_TIMELINE_S``
with the timeline), unreadable media (the pipeline's ``MediaError`` message). Uploads and webcam
recordings are deleted from the server as soon as they have been analysed. A queue runs at most
``CONCURRENCY`` predictions at once and holds at most ``QUEUE_SIZE`` waiting requests.

Run locally::

    python demo/app.py [--model DIR] [--port 7860] [--host 127.0.0.1]

The model defaults to ``$AVEMOTION_MODEL``, else the package's default model (``hf_avemotion`` installed),
else the Hub model ``DEFAULT_HUB_MODEL``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import math
import os
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

import gradio as gr
from matplotlib.figure import Figure

logger = logging.getLogger("avemotion.space")

TASK = "audio-visual-emotion-recognition"
REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_HUB_MODEL = "hf-avemotion/avemotion-demo"
# Third-party clips that sit beside a checkout (never copied into the project or the Space).
SHARED_DATA_DIR = REPO_ROOT.parent / "shared" / "data"
BUNDLED_EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"

MAX_FILE_MB = 50  # upload limit (1 MB = 10^6 bytes), enforced by gradio (launch(max_file_size=...)) and the handler
MAX_CLIP_S = 60.0  # one prediction for the whole clip
MAX_TIMELINE_S = 600.0  # window-by-window predictions
DEFAULT_WINDOW_S = 4.0  # RAVDESS utterances are 3-4 s long
TIMELINE_CROPS_MAX_S = 120.0  # longer timelines skip the per-window face crops (memory)
CONCURRENCY = 2  # predictions running at once (2 CPU cores on a free Space)
QUEUE_SIZE = 32  # requests waiting beyond that are refused with "queue is full"
SWEEP_TRIES = 7200  # an analysed upload still named by a gradio event is looked at again for up to 1 h

TITLE = "Audio-visual emotion recognition"

# Live tab: webcam + microphone streamed to hf_avemotion.live.LiveStream, one prediction per hop.
LIVE_WINDOW_S = 4.0  # each prediction looks at the last 4 s (what the default model hears)
LIVE_HOP_S = 0.5  # ... every 0.5 s
LIVE_VIDEO_EVERY_S = 0.2  # webcam frames sent every 0.2 s (the window samples 8 frames over 4 s: 2 per second)
LIVE_AUDIO_EVERY_S = 0.5  # microphone chunks of 0.5 s
LIVE_MAX_WAIT_S = 1.0  # a window waits up to 1 s for the microphone's chunk (it comes every 0.5 s, plus transport)
LIVE_TIME_LIMIT_S = 600  # one live session streams at most 10 min (then press record again)
LIVE_HISTORY = 1200  # hops kept on the timeline (10 min at 0.5 s)
LIVE_MAX_SESSIONS = 8  # live sessions at once; the oldest is dropped beyond that


class SpaceLimits(NamedTuple):
    """What the Space accepts. ``None`` disables a limit."""

    max_file_mb: float | None = MAX_FILE_MB
    max_clip_s: float | None = MAX_CLIP_S
    max_timeline_s: float | None = MAX_TIMELINE_S

    @classmethod
    def from_env(cls) -> SpaceLimits:
        """Limits from ``AVEMOTION_MAX_FILE_MB``, ``AVEMOTION_MAX_CLIP_S``, ``AVEMOTION_MAX_TIMELINE_S``."""

        def get(name: str, default: float) -> float:
            value = os.environ.get(name)
            return default if value in (None, "") else float(value)

        return cls(
            max_file_mb=get("AVEMOTION_MAX_FILE_MB", MAX_FILE_MB),
            max_clip_s=get("AVEMOTION_MAX_CLIP_S", MAX_CLIP_S),
            max_timeline_s=get("AVEMOTION_MAX_TIMELINE_S", MAX_TIMELINE_S),
        )


# ---------------------------------------------------------------------------------------------- model


def default_model() -> str:
    """``$AVEMOTION_MODEL``, else the package's default model where ``hf_avemotion`` is installed (assembled from
    the registry backbones on first use), else ``DEFAULT_HUB_MODEL`` (a Space with only the runtime
    dependencies: the model's remote code)."""
    env = os.environ.get("AVEMOTION_MODEL")
    if env:
        return env
    try:
        from hf_avemotion import DEFAULT_MODEL, pretrained_path
    except ModuleNotFoundError as err:
        if err.name != "hf_avemotion":
            raise
        return DEFAULT_HUB_MODEL
    return str(pretrained_path(DEFAULT_MODEL))


def load_pipeline(model: str | os.PathLike, allow_pickle: bool = False) -> Callable:
    """The emotion pipeline for ``model`` (a folder or a Hub id).

    With ``hf_avemotion`` installed, its pipeline module registers the task (and loads local folders
    with clear errors); without it (a Space that lists only the runtime dependencies) the pipeline,
    processor and model classes are the remote code stored in the model repo. Weights load from
    safetensors only unless ``allow_pickle`` (then with ``weights_only=True``).
    """
    import torch
    from transformers import pipeline

    device = 0 if torch.cuda.is_available() else -1
    model_kwargs = {"weights_only": True} if allow_pickle else {"weights_only": True, "use_safetensors": True}
    try:
        module = importlib.import_module("hf_avemotion.pipeline_avemotion")
    except ModuleNotFoundError as err:  # the package is not installed (not: one of its dependencies is missing)
        if err.name not in ("hf_avemotion", "hf_avemotion.pipeline_avemotion"):
            raise
        return pipeline(TASK, model=str(model), device=device, trust_remote_code=True, model_kwargs=model_kwargs)
    if Path(model).is_dir():
        return module.load_pipeline(model, device=device, allow_pickle=allow_pickle)
    return pipeline(TASK, model=str(model), device=device, model_kwargs=model_kwargs)


def model_labels(pipe: Any) -> list[str]:
    """Class names in the model's id order (empty when the pipeline does not expose a config)."""
    config = getattr(getattr(pipe, "model", None), "config", None)
    id2label = getattr(config, "id2label", None) or {}
    return [str(id2label[k]) for k in sorted(id2label, key=int)]


# ---------------------------------------------------------------------------------------------- media


def media_error_types(pipe: Any) -> tuple[type[BaseException], ...]:
    """The ``MediaError`` class the pipeline raises for bad input (its own module's, also as remote code).

    Falls back to ``hf_avemotion.media.MediaError``, then to ValueError (which MediaError subclasses).
    """
    error = getattr(sys.modules.get(type(pipe).__module__), "MediaError", None)
    if isinstance(error, type) and issubclass(error, Exception):
        return (error,)
    try:
        from hf_avemotion.media import MediaError
    except ImportError:
        return (ValueError,)
    return (MediaError,)


def probe_duration(path: str) -> float | None:
    """Duration (s) from the container header, or None when unknown (e.g. a webcam WebM) or unreadable.

    Only used to refuse long files before decoding them; the pipeline reports the decoded duration.
    """
    try:
        import av

        with av.open(path) as container:
            if container.duration:
                return container.duration / av.time_base
            spans = [float(s.duration * s.time_base) for s in container.streams if s.duration and s.time_base]
            return max(spans) if spans else None
    except Exception:  # broken or not media: the pipeline raises the precise MediaError
        return None


def find_example_clips(data_dir: str | os.PathLike | None = None, limit: int = 4) -> list[str]:
    """Example clips: the video clips bundled in ``demo/examples`` (licences in its NOTICE.md), then from
    ``data_dir``, ``$AVEMOTION_EXAMPLES_DIR`` or ``../shared/data`` (when present) one RAVDESS MP4 and
    eNTERFACE'05 AVIs of different emotions, referenced by path, never copied."""
    picks = sorted(BUNDLED_EXAMPLES_DIR.glob("*.mp4")) if data_dir is None else []
    root = Path(data_dir or os.environ.get("AVEMOTION_EXAMPLES_DIR") or SHARED_DATA_DIR)
    if not root.is_dir():
        return [str(p) for p in picks[:limit]]
    picks += sorted(root.glob("ravdess_av/*.mp4"))[:1]
    for emotion in ("ha", "an", "di"):
        picks += sorted(root.glob(f"enterface05/s*_{emotion}_1.avi"))[:1]
    return [str(p) for p in picks[:limit]]


# ---------------------------------------------------------------------------------------------- plots


def label_colours(labels: Sequence[str]) -> dict[str, tuple]:
    """One fixed colour per class, shared by every plot."""
    from matplotlib import colormaps

    cmap = colormaps["tab10" if len(labels) <= 10 else "tab20"]
    return {label: cmap(i % cmap.N) for i, label in enumerate(labels)}


def message_figure(text: str, size=(6.0, 1.2)) -> Figure:
    """A figure that only says ``text`` (in place of a plot that cannot be drawn)."""
    fig = Figure(figsize=size, layout="constrained")
    ax = fig.subplots()
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=11, color="0.35", wrap=True)
    return fig


def scores_figure(scores: Sequence[dict], colours: dict[str, tuple],
                  title: str = "Emotion probabilities (whole clip)") -> Figure:
    """Horizontal bars, best class on top, each bar labelled with its percentage."""
    ordered = sorted(scores, key=lambda s: s["score"], reverse=True)
    labels = [s["label"] for s in ordered]
    values = np.array([s["score"] for s in ordered]) * 100
    fig = Figure(figsize=(6.0, 0.45 * len(labels) + 0.9), layout="constrained")
    ax = fig.subplots()
    y = np.arange(len(labels))
    ax.barh(y, values, color=[colours.get(l, "0.5") for l in labels], edgecolor="none")
    ax.set_yticks(y, labels, fontsize=11)
    ax.invert_yaxis()
    ax.set_xlim(0, 100 if values.max() <= 80 else 115)
    ax.set_xlabel("probability (%)")
    for yi, v in zip(y, values):
        ax.text(v + 1.0, yi, f"{v:.0f}%", va="center", fontsize=10)
    ax.spines[["top", "right"]].set_visible(False)
    ax.set_title(title, fontsize=12, loc="left")
    return fig


def timeline_figure(segments: Sequence[dict], colours: dict[str, tuple], duration: float | None) -> Figure:
    """Top: the predicted label per window as coloured spans. Bottom: every class's score over time."""
    fig = Figure(figsize=(10.0, 3.6), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[1, 2.2])
    end = max([s["end"] for s in segments] + [duration or 0.0])
    for seg in segments:  # opacity grows with the window's confidence
        colour = colours.get(seg["label"], "0.5")
        top.axvspan(seg["start"], seg["end"], color=colour, alpha=0.35 + 0.65 * float(seg["score"]), lw=0)
    runs: list[list] = []  # consecutive windows with the same label are named once
    for seg in segments:
        if runs and runs[-1][2] == seg["label"]:
            runs[-1][1] = seg["end"]
        else:
            runs.append([seg["start"], seg["end"], seg["label"]])
    for start, stop, label in runs:
        if start > segments[0]["start"]:
            top.axvline(start, color="white", lw=1.5)
        if stop - start >= end / 25:
            top.text((start + stop) / 2, 0.5, label, ha="center", va="center", fontsize=10, weight="bold")
    top.set_yticks([])
    top.set_xlim(0, end)
    top.set_title("Predicted emotion per window", fontsize=12, loc="left")

    mids = np.array([(s["start"] + s["end"]) / 2 for s in segments])
    per_label: dict[str, list[float]] = {}
    for i, seg in enumerate(segments):
        for entry in seg.get("scores") or [{"label": seg["label"], "score": seg["score"]}]:
            per_label.setdefault(entry["label"], [np.nan] * len(segments))[i] = float(entry["score"])
    for label, values in per_label.items():
        bottom.plot(mids, np.asarray(values, dtype=float) * 100, marker="o", ms=3, lw=1.6,
                    color=colours.get(label, "0.5"), label=label)
    bottom.set_ylim(0, 100)
    bottom.set_ylabel("probability (%)")
    bottom.set_xlabel("time (s)")
    bottom.spines[["top", "right"]].set_visible(False)
    bottom.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=9, frameon=False)
    return fig


def attention_figure(attention: Any, crops: np.ndarray | None, where: str = "") -> Figure:
    """Cross-modal attention (audio -> video frames) as a heatmap, under the face crops it refers to.

    ``attention``: floats [T] (one weight per frame) or [R,T] (e.g. per head or layer).
    """
    att = np.atleast_2d(np.asarray(attention, dtype=float))
    rows, num_frames = att.shape
    show_crops = crops is not None and len(crops) == num_frames and num_frames > 0
    fig = Figure(figsize=(min(10.0, max(6.0, 1.0 + 1.1 * num_frames)), 2.4 + 0.35 * rows + (1.2 if show_crops else 0)),
                 layout="constrained")
    if show_crops:
        ax_img, ax = fig.subplots(2, 1, sharex=True, height_ratios=[1.6, 0.6 + 0.3 * rows])
        strip = np.concatenate(list(crops), axis=1)
        ax_img.imshow(strip, extent=(-0.5, num_frames - 0.5, 0, 1), aspect="auto")
        ax_img.set_yticks([])
        ax_img.set_title("Audio-to-frame attention" + (f", window {where}" if where else ""), fontsize=12, loc="left")
    else:
        ax = fig.subplots()
        ax.set_title("Audio-to-frame attention" + (f", window {where}" if where else ""), fontsize=12, loc="left")
    image = ax.imshow(att, cmap="magma", aspect="auto", extent=(-0.5, num_frames - 0.5, rows - 0.5, -0.5),
                      vmin=0.0, vmax=max(float(np.nanmax(att)), 1e-6))
    if rows * num_frames <= 64:
        vmax = max(float(np.nanmax(att)), 1e-6)
        for r in range(rows):
            for t in range(num_frames):
                ax.text(t, r, f"{att[r, t]:.2f}", ha="center", va="center", fontsize=8,
                        color="black" if att[r, t] > 0.6 * vmax else "white")
    ax.set_xticks(range(num_frames), [str(t + 1) for t in range(num_frames)])
    ax.set_xlabel("frame")
    ax.set_yticks([] if rows == 1 else range(rows))
    fig.colorbar(image, ax=ax, label="weight", fraction=0.04, pad=0.01)
    return fig


# ---------------------------------------------------------------------------------------------- handler


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def status_markdown(meta: dict, timeline: bool) -> str:
    """One line a person reads first: audio found? face found? how long? plus a hint if any is off."""
    has_audio = meta.get("has_audio")
    ratio = meta.get("face_found_ratio")
    duration = meta.get("duration")
    parts = []
    if has_audio is not None:
        parts.append("**Audio:** found" if has_audio else "**Audio:** none — video only")
    if ratio is not None:
        ratio = float(ratio)
        if ratio >= 0.5:
            parts.append(f"**Face:** found in {_pct(ratio)} of frames")
        elif ratio > 0:
            parts.append(f"**Face:** found in only {_pct(ratio)} of frames")
        else:
            parts.append("**Face:** none found — centre crops used")
    if duration is not None:
        parts.append(f"**Duration:** {float(duration):.1f} s")
    if timeline and meta.get("segments") is not None:
        parts.append(f"**Windows:** {len(meta['segments'])}")
    modalities = meta.get("modalities")  # models with per-modality heads: what the face and the voice each said
    if modalities:
        said = [f"{name} says {m['label']} ({_pct(m['score'])})" for name, m in modalities.items() if m]
        if said:
            parts.append("**Evidence:** " + ", ".join(said))
    line = " · ".join(parts) or "done"
    hints = []
    if ratio is not None and ratio < 0.5:
        hints.append("Face the camera in good light for a better video signal.")
    if has_audio is False:
        hints.append("Record with the microphone on: the voice carries much of the emotion.")
    if not timeline and duration and float(duration) > 12:
        hints.append("For clips longer than a sentence, tick **Timeline** to see the emotion change over time.")
    return line + ("\n\n" + " ".join(hints) if hints else "")


class EmotionSpace:
    """The prediction function of the Space: a video path in, everything the page shows out.

    ``pipe`` is the emotion pipeline (or any callable with its contract). ``protected`` paths are
    never deleted (the cached copies of the example clips); any other file inside gradio's upload
    folder is deleted once analysed -- by the last request that needs it: gradio stores identical
    uploads under one content-hashed path, so a file is kept while another running request, or one
    waiting in the queue of ``blocks`` (set by `build_app`), names it.
    """

    def __init__(self, pipe: Callable, limits: SpaceLimits | None = None, labels: Sequence[str] | None = None):
        self.pipe = pipe
        self.limits = limits or SpaceLimits()
        self.labels = list(labels) if labels else model_labels(pipe)
        self.protected: set[Path] = set()
        self.blocks: gr.Blocks | None = None
        self._running: dict[str, int] = {}  # path -> requests analysing it now
        self._sweeping: set[str] = set()  # analysed uploads waiting for the last event naming them to end
        self._lock = threading.Lock()

    # -- temp files

    def protect(self, paths: Sequence[str | os.PathLike]) -> None:
        self.protected.update(Path(p).resolve() for p in paths)

    def _is_upload(self, path: str) -> bool:
        """A file gradio stored for this request (an upload or webcam recording), not an example."""
        from gradio.utils import get_upload_folder

        try:
            resolved = Path(path).resolve()
        except (OSError, ValueError):  # a path the OS refuses (NUL byte, symlink loop): not an upload
            return False
        return resolved.is_relative_to(Path(get_upload_folder()).resolve()) and resolved not in self.protected

    def _claim(self, path: str) -> None:
        with self._lock:
            self._running[path] = self._running.get(path, 0) + 1

    def _release(self, path: str) -> None:
        """End of a request: delete the upload once no running or queued request needs it.

        Called directly (no gradio queue: tests, scripts), the file goes at once. Under gradio, this
        request's own event is still active for a moment, so a sweeper looks again every 0.5 s and deletes
        the file when no event (waiting or started) names it any more.
        """
        with self._lock:
            self._running[path] -= 1
            if self._running[path] > 0:
                return
            del self._running[path]
            if self._gradio_uses(path) is None:
                self._discard(path)
            elif path not in self._sweeping:
                self._sweeping.add(path)
                self._sweep_later(path, 0)

    def _sweep_later(self, path: str, tries: int) -> None:
        timer = threading.Timer(0.5, self._sweep, (path, tries))
        timer.daemon = True
        timer.start()

    def _sweep(self, path: str, tries: int) -> None:
        with self._lock:
            if path in self._running:  # a new request took it: its own release takes over
                self._sweeping.discard(path)
                return
            if self._gradio_uses(path) and tries < SWEEP_TRIES:
                self._sweep_later(path, tries + 1)
                return
            self._sweeping.discard(path)
            self._discard(path)

    def _gradio_uses(self, path: str) -> int | None:
        """gradio events (waiting, or started) whose inputs name ``path``; None without a readable queue."""
        queue = getattr(self.blocks, "_queue", None)
        try:
            events = [e for q in queue.event_queue_per_concurrency_id.values() for e in list(q.queue)]
            events += [e for job in list(queue.active_jobs) if job for e in job]
        except (AttributeError, TypeError):  # no queue, or gradio's internals changed
            return None
        return sum(path in _paths_in(getattr(e.data, "data", None)) for e in events)

    def _discard(self, path: str) -> None:
        if not self._is_upload(path):
            return
        try:
            Path(path).unlink(missing_ok=True)
            Path(path).parent.rmdir()  # gradio keeps each upload in its own hash folder
        except OSError:
            pass

    # -- checks

    def _fail(self, message: str) -> gr.Error:
        return gr.Error(message, title="Cannot analyse this video", print_exception=False)

    def _check_before(self, path: str, timeline: bool) -> float | None:
        """Size and (header) duration checks before decoding; returns the header duration (or None)."""
        name = Path(path).name
        try:
            size_mb = Path(path).stat().st_size / 1e6 if Path(path).is_file() else None
        except (OSError, ValueError):  # name too long, NUL byte, no permission, ...
            size_mb = None
        if size_mb is None:
            raise self._fail(
                f"{name!r} is no longer on the server (uploads are deleted after analysis). Upload it again."
            )
        if self.limits.max_file_mb is not None and size_mb > self.limits.max_file_mb:
            raise self._fail(
                f"{name!r} is {size_mb:.0f} MB; this Space accepts files up to {self.limits.max_file_mb:g} MB. "
                "Trim or re-encode it (e.g. 720p H.264) and try again."
            )
        duration = probe_duration(path)
        self._check_duration(name, duration, timeline)
        return duration

    def _check_duration(self, name: str, duration: float | None, timeline: bool) -> None:
        if duration is None:
            return
        lim = self.limits
        if timeline and lim.max_timeline_s is not None and duration > lim.max_timeline_s:
            raise self._fail(
                f"{name!r} is {duration:.0f} s long; the timeline analyses up to {lim.max_timeline_s / 60:g} min. "
                "Cut it into shorter parts."
            )
        if not timeline and lim.max_clip_s is not None and duration > lim.max_clip_s:
            longest = "" if lim.max_timeline_s is None else f" up to {lim.max_timeline_s / 60:g} min"
            raise self._fail(
                f"{name!r} is {duration:.0f} s long; one prediction covers at most {lim.max_clip_s:g} s. "
                f"Tick \"Timeline\" to analyse it window by window{longest}, or trim it."
            )

    # -- prediction

    def _run(self, path: str, timeline: bool, window_s: float, duration: float | None) -> dict:
        kwargs: dict[str, Any] = dict(return_metadata=True, return_attentions=True, return_face_crops=True)
        if timeline:
            window_s = float(window_s)
            kwargs.update(timeline=True, window_s=window_s, hop_s=window_s / 2)
            # crops come per window: keep memory bounded on long videos
            kwargs["return_face_crops"] = duration is not None and duration <= TIMELINE_CROPS_MAX_S
        result = self.pipe(path, **kwargs)
        if isinstance(result, list) and len(result) == 1 and isinstance(result[0], dict):
            result = result[0]
        if not isinstance(result, dict) or "scores" not in result:
            raise TypeError(f"the pipeline returned {type(result).__name__}, expected a dict with 'scores'")
        return result

    def predict(self, video: str | None, timeline: bool = False, window_s: float = DEFAULT_WINDOW_S):
        """Analyse ``video``; returns the values of (label, scores plot, timeline plot, face crops,
        attention plot, status). Raises ``gr.Error`` with a readable message for bad input."""
        if not video:
            raise self._fail("No video yet: upload a file, record one with the webcam, or pick an example.")
        path = str(video)
        name = Path(path).name
        timeline = bool(timeline)
        self._claim(path)
        try:
            duration = self._check_before(path, timeline)
            try:
                result = self._run(path, timeline, window_s, duration)
            except media_error_types(self.pipe) as exc:
                message = str(exc).replace(str(Path(path).resolve()), name).replace(path, name)
                raise self._fail(message) from None
            # a header without duration (e.g. a webcam WebM) is only checked after decoding
            self._check_duration(name, result.get("duration"), timeline)
            return self._render(result, timeline)
        except gr.Error:
            raise
        except Exception as exc:  # a bug, not the user's fault: log it, say so plainly
            logger.exception("prediction failed for %s", name)
            raise gr.Error(
                f"Internal error while analysing {name!r} ({type(exc).__name__}). Please try another clip.",
                title="Something went wrong",
            ) from None
        finally:
            self._release(path)

    @staticmethod
    def _representative(result: dict) -> dict | None:
        """The timeline segment shown in the gallery and heatmap: the most confident one of the overall label."""
        segments = result.get("segments") or []
        if not segments:
            return None
        top = result["scores"][0]["label"] if result.get("scores") else None
        same = [s for s in segments if s["label"] == top] or segments
        return max(same, key=lambda s: s["score"])

    def _render(self, result: dict, timeline: bool):
        scores = [{"label": str(s["label"]), "score": float(s["score"])} for s in result["scores"]]
        labels = self.labels or [s["label"] for s in scores]
        colours = label_colours(labels)
        label_value = {s["label"]: s["score"] for s in scores}

        source, where = result, ""
        segments = result.get("segments")
        if timeline and segments:
            timeline_plot = timeline_figure(segments, colours, result.get("duration"))
            source = self._representative(result)
            where = f"{source['start']:.1f}–{source['end']:.1f} s"
        elif timeline:
            timeline_plot = message_figure("The video gave no windows to predict on.")
        else:
            timeline_plot = message_figure("Tick “Timeline” to see the emotion window by window (long videos).")

        crops = source.get("face_crops")
        crops = None if crops is None else np.asarray(crops)
        gallery = [] if crops is None else [(c, f"frame {i + 1}") for i, c in enumerate(crops)]

        attention = source.get("attention")
        if attention is not None and np.size(attention) > 0:
            attention_plot = attention_figure(attention, crops, where)
        else:
            attention_plot = message_figure(
                "No cross-modal attention: the clip has no audio or video, or the model's fusion has none."
            )
        status = status_markdown(result, timeline)
        if where:
            status += f"\n\nFace crops and attention: window {where} (most confident “{source['label']}”)."
            if crops is None:
                status += f" Face crops are not kept for timelines over {TIMELINE_CROPS_MAX_S / 60:g} min."
        title = "Emotion probabilities (mean over windows)" if where else "Emotion probabilities (whole clip)"
        return label_value, scores_figure(scores, colours, title), timeline_plot, gallery, attention_plot, status


# ---------------------------------------------------------------------------------------------- live


def live_stream_class(pipe: Any) -> type | None:
    """`LiveStream` beside the pipeline's own module (the package's, or the model repo's remote code when it
    ships ``live.py``), else ``hf_avemotion.live``'s; None when neither exists (the Live tab then says so)."""
    package = type(pipe).__module__.rpartition(".")[0]
    for name in ([f"{package}.live"] if package else []) + ["hf_avemotion.live"]:
        try:
            return importlib.import_module(name).LiveStream
        except (ImportError, AttributeError):
            continue
    return None


class _LiveSession:
    """One browser's live stream: its `LiveStream`, its clocks and the hops shown so far."""

    def __init__(self, live: Any):
        import time

        self.live = live
        self.t0 = time.monotonic()  # the session's clock: frames and chunks are stamped on arrival
        self.audio_t0: float | None = None  # stream time of the first audio sample
        self.audio_rate: int | None = None
        self.audio_samples = 0  # samples received at audio_rate (chunks follow each other)
        self.history: list[Any] = []  # LivePrediction, oldest first
        self.last_frame: float | None = None  # when the last webcam frame came
        self.used = self.t0

    def now(self) -> float:
        import time

        self.used = time.monotonic()
        return self.used - self.t0


class LiveSpace:
    """The Live tab's handlers: webcam frames and microphone chunks of each browser session go into that
    session's `LiveStream`; the webcam's events (every 0.2 s) answer the newest prediction or leave the outputs as
    they are. Microphone events (gradio sends 0.1 s chunks) only buffer, so they never queue behind the model;
    they answer only while no webcam frame comes.

    Frames and sound stay in memory: a microphone chunk gradio wrote to its upload folder is read and deleted
    at once, frames arrive as in-memory images. Old windows are dropped by `LiveStream` itself when the
    machine is slower than the hop (stale hops are skipped, not queued)."""

    def __init__(self, pipe: Any, labels: Sequence[str] = (), window_s: float = LIVE_WINDOW_S,
                 hop_s: float = LIVE_HOP_S):
        self.pipe = pipe
        self.labels = list(labels)
        self.window_s, self.hop_s = float(window_s), float(hop_s)
        self.stream_class = live_stream_class(pipe)
        self.sessions: dict[str, _LiveSession] = {}
        self._lock = threading.Lock()

    @property
    def available(self) -> bool:
        return self.stream_class is not None

    def _session(self, request: gr.Request | None) -> _LiveSession:
        key = getattr(request, "session_hash", None) or "default"
        with self._lock:
            session = self.sessions.get(key)
            if session is None:
                while len(self.sessions) >= LIVE_MAX_SESSIONS:  # forget the least recently used
                    oldest = min(self.sessions, key=lambda k: self.sessions[k].used)
                    del self.sessions[oldest]
                live = self.stream_class(self.pipe, window_s=self.window_s, hop_s=self.hop_s,
                                         max_wait_s=LIVE_MAX_WAIT_S)
                live.set_origin(0.0)
                session = self.sessions[key] = _LiveSession(live)
            return session

    def forget(self, request: gr.Request | None = None) -> None:
        """Drop this browser's stream and timeline (a page closed)."""
        with self._lock:
            self.sessions.pop(getattr(request, "session_hash", None) or "default", None)

    def reset(self, request: gr.Request | None = None):
        """The Reset button: a new stream, an empty timeline."""
        self.forget(request)
        return None, LIVE_WAITING, live_timeline_html([], self.labels, self.hop_s), None

    def on_frame(self, frame: np.ndarray | None, request: gr.Request | None = None):
        """A webcam frame uint8 [H,W,3] (RGB) -> the outputs (label, status, timeline, plot) or skips."""
        if frame is None or not self.available:
            return self._skip()
        session = self._session(request)
        frame = np.asarray(frame)
        if frame.ndim == 3 and frame.shape[-1] == 4:
            frame = frame[..., :3]
        session.last_frame = session.now()
        session.live.push_video(np.ascontiguousarray(frame, dtype=np.uint8), session.last_frame)
        return self._answer(session)

    def on_audio(self, chunk: Any, request: gr.Request | None = None):
        """A microphone chunk (a file gradio wrote, deleted here; or ``(rate, samples)``) -> outputs or skips."""
        if chunk is None or not self.available:
            return self._skip()
        if isinstance(chunk, (str, os.PathLike)):
            try:
                rate, samples = read_audio_chunk(chunk)
            except (OSError, ValueError) as exc:  # a chunk already consumed (gradio re-sends a path), or cut short
                logger.debug("live: microphone chunk skipped (%s)", exc)
                return self._skip()
            finally:
                _delete_upload(chunk)  # nothing of the sound stays on the server
                _sweep_chunks(chunk)
        else:
            rate, samples = chunk
        samples = np.asarray(samples)
        if samples.size == 0:
            return self._skip()
        session = self._session(request)
        now = session.now()
        length = samples.shape[0] if samples.ndim == 1 or samples.shape[0] > samples.shape[-1] else samples.shape[-1]
        if session.audio_rate != rate or session.audio_t0 is None \
                or abs(session.audio_t0 + session.audio_samples / rate - (now - length / rate)) > 1.0:
            # first chunk, a new rate, or the arrival clock and the sample count disagree by > 1 s: re-anchor
            session.audio_t0, session.audio_rate, session.audio_samples = now - length / rate, int(rate), 0
        start = session.audio_t0 + session.audio_samples / rate
        session.audio_samples += length
        session.live.push_audio(samples, int(rate), start)
        if session.last_frame is not None and now - session.last_frame < 1.0:
            return self._skip()  # the webcam's events answer: the microphone's 0.1 s chunks must not wait for the model
        return self._answer(session)

    def _skip(self):
        return gr.skip(), gr.skip(), gr.skip(), gr.skip()

    def _answer(self, session: _LiveSession):
        try:
            prediction = session.live.poll(block=False)  # busy with the other stream's event: answer later
        except Exception:  # a bug: log it, keep streaming
            logger.exception("live prediction failed")
            return self._skip()
        if prediction is None:
            return self._skip()
        session.history = (session.history + [prediction])[-LIVE_HISTORY:]
        label = {s["label"]: float(s["score"]) for s in prediction.scores}
        return (label, live_status_markdown(prediction, len(session.history), session.live.skipped_total),
                live_timeline_html(session.history, self.labels, self.hop_s), live_plot_frame(session.history))


def read_audio_chunk(path: str | os.PathLike) -> tuple[int, np.ndarray]:
    """A microphone chunk file -> (rate, float32 mono [N]) with PyAV. OSError/ValueError when unreadable."""
    import av

    try:
        with av.open(str(path)) as container:
            rate, parts = None, []
            for frame in container.decode(audio=0):
                if rate is None:
                    rate = int(frame.sample_rate)
                    resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
                parts += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
            if rate is None:
                raise ValueError(f"{Path(path).name}: no audio")
            parts += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    except av.error.FFmpegError as exc:
        raise ValueError(f"{Path(path).name}: {exc}") from None
    return rate, np.concatenate(parts) if parts else np.zeros(0, np.float32)


def _delete_upload(path: str | os.PathLike) -> None:
    """Delete a file gradio stored in its upload folder (and its content-hash folder once empty)."""
    from gradio.utils import get_upload_folder

    try:
        resolved = Path(path).resolve()
        if resolved.is_relative_to(Path(get_upload_folder()).resolve()):
            resolved.unlink(missing_ok=True)  # (its folder stays: an identical chunk may be uploading into it)
    except OSError:
        pass


def _sweep_chunks(chunk: str | os.PathLike, older_than_s: float = 30.0) -> None:
    """Delete microphone chunks gradio uploaded but never handed to `LiveSpace.on_audio` (it skips chunks while
    the server lags): files of the same name (``audio.wav``) and a chunk's size (< 1 MB) in its upload folder,
    older than ``older_than_s``."""
    import time

    from gradio.utils import get_upload_folder

    name = Path(chunk).name
    try:
        root = Path(get_upload_folder()).resolve()
        if not Path(chunk).resolve().is_relative_to(root):
            return
        limit = time.time() - older_than_s
        for path in root.glob(f"*/{name}"):
            info = path.stat()
            if info.st_size < 1_000_000 and info.st_mtime < limit:
                path.unlink(missing_ok=True)
    except OSError:
        pass


LIVE_WAITING = "Press **Record** on the camera and the microphone, face the camera and talk."
FLAG_TEXT = {
    "no_video": "no camera frames", "no_face": "no face found", "dropped_frames": "camera dropped frames",
    "no_audio": "no microphone sound yet", "silence": "silence", "audio_gap": "microphone gaps",
    "skipped_stale": "stale hops dropped",
}


def live_status_markdown(prediction: Any, hops: int, skipped_total: int) -> str:
    """One line per hop: hop count, window, latency, face/audio facts, dropped stale hops."""
    parts = [f"**Hop {hops}**", f"window {prediction.start:.1f}–{prediction.end:.1f} s",
             f"{prediction.latency_ms:.0f} ms"]
    parts.append(f"face in {prediction.face_ratio:.0%} of frames" if "no_video" not in prediction.flags
                 else "no video")
    if prediction.audio_dbfs is not None:
        parts.append(f"sound {prediction.audio_dbfs:.0f} dBFS")
    parts.append(f"stale hops dropped: {skipped_total}")
    line = " · ".join(parts)
    flags = [FLAG_TEXT.get(f, f) for f in prediction.flags]
    return line + (f"\n\n⚠ {', '.join(flags)}" if flags else "")


GAP_PATTERN = "repeating-linear-gradient(45deg,#ccc 0 3px,#eee 3px 6px)"  # dropped hops on the timeline


def live_timeline_html(history: Sequence[Any], labels: Sequence[str], hop_s: float) -> str:
    """The running timeline: one coloured block per hop (the newest ``hop_s`` of its window), grey gaps where
    stale hops were dropped; the label is written on each run of equal labels."""
    if not history:
        return '<div id="live-timeline-empty" style="color:#888">The timeline grows here, one block per hop.</div>'
    from html import escape

    from matplotlib.colors import to_hex

    colours = {k: to_hex(v) for k, v in label_colours(list(labels) or sorted({p.label for p in history})).items()}
    blocks, previous = [], None
    for p in history:
        if p.skipped:
            blocks.append(f'<div class="live-gap" title="{p.skipped} stale hop(s) dropped" style="flex:0 0 '
                          f'{6 * p.skipped}px;background:{GAP_PATTERN}"></div>')
        text = escape(p.label) if p.label != previous else ""
        previous = p.label
        flags = f" ({', '.join(p.flags)})" if p.flags else ""
        title = escape(f"{p.start:.1f}–{p.end:.1f} s: {p.label} {p.score:.0%}{flags}")
        blocks.append(f'<div class="live-seg" data-label="{escape(p.label)}" title="{title}" style="flex:0 0 24px;'
                      f'background:{colours.get(p.label, "#999")};opacity:{0.45 + 0.55 * float(p.score):.2f};'
                      f'font-size:11px;overflow:visible;white-space:nowrap;color:#000;padding-top:8px">{text}</div>')
    end = history[-1].end
    return (f'<div id="live-timeline-strip" style="display:flex;gap:1px;height:38px;overflow-x:auto;'
            f'flex-direction:row">{"".join(blocks)}</div>'
            f'<div style="color:#666;font-size:12px">{len(history)} hops, {end:.1f} s of stream; '
            f'one block = {hop_s:g} s</div>')


def live_plot_frame(history: Sequence[Any]):
    """Every class's probability per hop (x: window end, s) for the growing line plot."""
    import pandas as pd

    rows = [{"time (s)": round(p.end, 2), "probability": float(s["score"]), "emotion": s["label"]}
            for p in history for s in p.scores]
    return pd.DataFrame(rows, columns=["time (s)", "probability", "emotion"])


LIVE_DESCRIPTION = """\
Turn on the webcam and the microphone: every {hop:g} s the model answers for the last {window:g} s of face and
voice, and the timeline below grows. Frames and sound are analysed in memory on this server and never stored.
When this machine is slower than one answer every {hop:g} s, **stale segments are dropped instead of queued**:
the page stays current, the timeline shows the dropped hops as grey hatched gaps and the status line counts them.
"""


# ---------------------------------------------------------------------------------------------- layout

DESCRIPTION = """\
Upload a short video of a person speaking — or record one with your webcam, **with sound** — and the model
tells you which emotion it sees and hears: a face model on the face crops and a voice model on the sound, fused
(for a whole clip, the line above the result says what each one said). Its model card says what it was trained on and how well it
does on people it never saw; acted
emotions are not everyday feelings, so treat the output as a demo, not a measurement of anyone's state.
Limits: {max_mb:g} MB per file, {clip:g} s for one prediction, {tl:g} min with the timeline.
Uploads are deleted from the server right after analysis.
"""


def _fmt_limit(value: float | None, scale: float = 1.0) -> float:
    return math.inf if value is None else value / scale


def build_app(
    model_dir: str | os.PathLike | None = None,
    pipe: Callable | None = None,
    *,
    limits: SpaceLimits | None = None,
    examples: Sequence[str] | None = None,
    allow_pickle: bool = False,
) -> gr.Blocks:
    """The Space's ``gr.Blocks``, queue configured (launch it with `launch_app` or ``.launch(...)``).

    Args:
        model_dir: model folder or Hub id (default: `default_model`); ignored when ``pipe`` is given.
        pipe: a ready pipeline (or a callable with its contract), e.g. in tests.
        limits: upload/duration limits (default: `SpaceLimits.from_env`).
        examples: example clip paths (default: `find_example_clips`; none when the data is absent).
        allow_pickle: accept pickle-only weights (``pytorch_model.bin``; read with ``weights_only=True``).
    """
    limits = limits or SpaceLimits.from_env()
    if pipe is None:
        pipe = load_pipeline(model_dir or default_model(), allow_pickle=allow_pickle)
    space = EmotionSpace(pipe, limits)
    live = LiveSpace(pipe, space.labels)
    example_paths = find_example_clips() if examples is None else [str(p) for p in examples]
    top_k = min(len(space.labels), 3) if space.labels else 3

    # no telemetry: the app makes no network request of its own (tests block sockets to check it)
    with gr.Blocks(title=TITLE, delete_cache=(1800, 3600), analytics_enabled=False) as demo:
        gr.Markdown(f"# {TITLE}")
        gr.Markdown(DESCRIPTION.format(
            max_mb=_fmt_limit(limits.max_file_mb), clip=_fmt_limit(limits.max_clip_s),
            tl=_fmt_limit(limits.max_timeline_s, 60)))
        with gr.Tab("Upload", id="upload-tab"):
            with gr.Row(equal_height=False):
                with gr.Column(scale=5):
                    video = gr.Video(
                        label="Video (upload or webcam, with sound)",
                        sources=["upload", "webcam"],
                        include_audio=True,
                        height=320,
                        elem_id="input-video",
                    )
                    with gr.Row():
                        timeline = gr.Checkbox(label="Timeline (long videos: one prediction per window)", value=False,
                                               elem_id="timeline-toggle", scale=3)
                        window = gr.Slider(2.0, 10.0, value=DEFAULT_WINDOW_S, step=0.5, label="Window (s)", scale=2,
                                           elem_id="window-slider")
                    with gr.Row():
                        clear = gr.ClearButton(value="Clear")
                        submit = gr.Button("Analyse", variant="primary", elem_id="analyse-button")
                    if example_paths:
                        ex = gr.Examples(
                            examples=[[p, False] for p in example_paths],
                            inputs=[video, timeline],
                            label="Example clips (RAVDESS, eNTERFACE'05)",
                            cache_examples=False,
                            example_labels=[Path(p).name for p in example_paths],
                        )
                        space.protect(example_paths)
                        space.protect(_paths_in(getattr(ex, "non_none_processed_examples", {})))
                    face_crops = gr.Gallery(label="Face crops the model used", columns=8, height=190,
                                            object_fit="contain", elem_id="face-crops")
                with gr.Column(scale=5):
                    status = gr.Markdown("Upload a clip and press **Analyse**.", elem_id="status-line")
                    label = gr.Label(label="Emotion", num_top_classes=top_k, elem_id="emotion-label")
                    scores_plot = gr.Plot(label="All emotions", show_label=False, format="png", elem_id="scores-plot")
                    attention_plot = gr.Plot(label="Cross-modal attention (audio → frames)", show_label=False,
                                             format="png", elem_id="attention-plot")
            timeline_plot = gr.Plot(label="Timeline", show_label=False, format="png", elem_id="timeline-plot")

            outputs = [label, scores_plot, timeline_plot, face_crops, attention_plot, status]
            clear.add([video, *outputs])
            submit.click(space.predict, inputs=[video, timeline, window], outputs=outputs, api_name="predict")
        with gr.Tab("Live", id="live-tab", elem_id="live-tab"):
            _live_tab(live)
        demo.unload(live.forget)

    demo.queue(default_concurrency_limit=CONCURRENCY, max_size=QUEUE_SIZE)
    space.blocks = demo  # its queue tells which uploads waiting requests still need
    demo.space = space  # the prediction function, for tests and scripts
    demo.live = live
    demo.limits = limits
    demo.example_paths = example_paths
    return demo


def _live_tab(live: LiveSpace) -> None:
    """The Live tab: webcam + microphone streaming in, the current emotion, a status line, a growing timeline."""
    gr.Markdown(LIVE_DESCRIPTION.format(hop=live.hop_s, window=live.window_s))
    if not live.available:
        gr.Markdown("Live mode needs the `hf_avemotion` package (its `live` module) beside this app.")
        return
    top_k = min(len(live.labels), 3) if live.labels else 3
    with gr.Row(equal_height=False):
        with gr.Column(scale=4):
            webcam = gr.Image(label="Webcam", sources=["webcam"], streaming=True, type="numpy", height=300,
                              elem_id="live-webcam")
            mic = gr.Audio(label="Microphone", sources=["microphone"], streaming=True, type="filepath",
                           elem_id="live-mic")
            reset = gr.Button("Reset timeline", elem_id="live-reset")
        with gr.Column(scale=5):
            status = gr.Markdown(LIVE_WAITING, elem_id="live-status")
            label = gr.Label(label="Emotion now", num_top_classes=top_k, elem_id="live-label")
    timeline = gr.HTML(live_timeline_html([], live.labels, live.hop_s), elem_id="live-timeline")
    plot = gr.LinePlot(x="time (s)", y="probability", color="emotion", y_lim=[0, 1], height=260,
                       label="Probabilities over time", elem_id="live-plot")
    outputs = [label, status, timeline, plot]
    common = dict(outputs=outputs, time_limit=LIVE_TIME_LIMIT_S, concurrency_limit=2 * LIVE_MAX_SESSIONS,
                  concurrency_id="live", show_progress="hidden", api_visibility="private")
    webcam.stream(live.on_frame, inputs=[webcam], stream_every=LIVE_VIDEO_EVERY_S, **common)
    mic.stream(live.on_audio, inputs=[mic], stream_every=LIVE_AUDIO_EVERY_S, **common)
    reset.click(live.reset, outputs=[label, status, timeline, plot], api_visibility="private")


def _paths_in(value: Any) -> list[str]:
    """Every ``path`` inside gradio's processed example values (nested dicts/lists)."""
    found: list[str] = []
    if isinstance(value, dict):
        if isinstance(value.get("path"), str):
            found.append(value["path"])
        for v in value.values():
            found += _paths_in(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            found += _paths_in(v)
    elif hasattr(value, "values") and callable(value.values):  # gradio's UnhashableKeyDict
        for v in value.values():
            found += _paths_in(v)
    return found


def launch_app(demo: gr.Blocks, host: str | None = None, port: int | None = None, **kwargs):
    """``demo.launch`` with the Space's upload limit; the example folder is readable when present."""
    limits: SpaceLimits = getattr(demo, "limits", SpaceLimits())
    allowed = sorted({str(Path(p).resolve().parent) for p in getattr(demo, "example_paths", [])})
    return demo.launch(
        server_name=host or os.environ.get("GRADIO_SERVER_NAME") or "127.0.0.1",
        server_port=port,
        max_file_size=None if limits.max_file_mb is None else int(limits.max_file_mb * 1_000_000),
        allowed_paths=allowed or None,
        theme=gr.themes.Soft(),
        **kwargs,
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the hf_avemotion Gradio app.")
    parser.add_argument("--model", default=None, help="model folder or Hub id (default: $AVEMOTION_MODEL, "
                        f"the package's default model, {DEFAULT_HUB_MODEL})")
    parser.add_argument("--host", default=None, help="address to bind (default: $GRADIO_SERVER_NAME or 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None,
                        help="port (default: $PORT, $GRADIO_SERVER_PORT, or the first free one from 7860)")
    parser.add_argument("--allow-pickle", action="store_true",
                        help="accept pickle-only weights (pytorch_model.bin), read with weights_only=True")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    port = args.port or int(os.environ.get("PORT") or os.environ.get("GRADIO_SERVER_PORT") or 0) or None
    launch_app(build_app(args.model, allow_pickle=args.allow_pickle), host=args.host, port=port)


if __name__ == "__main__":
    main(sys.argv[1:])
