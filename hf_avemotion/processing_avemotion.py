"""Processor of the AVEmotion model: face crops + ViT/DINOv2 image processor, AST or Whisper feature extractor.

`AVEmotionProcessor` turns clips (file paths, decoded `Clip`s, frame arrays or PIL lists) and
waveforms into the model inputs::

    videos ──load_clip──> frames [t,H,W,3] ──uniform sample ≤ num_frames──> FaceCropper
           ──ViTImageProcessor──> pixel_values [B,T,3,S,S]           (+ video_mask, face_mask)
    audio  ──mono, resample to 16 kHz──> AST/WhisperFeatureExtractor ──> input_values [B,F,M] (+ audio_mask)

Whisper's extractor gives [M,F]; it is transposed to the same [F,M] layout as AST's, and its ``chunk_length``
(seconds) sets F = 100 x chunk_length (the model runs Whisper on those frames only, not on 30 s).

It is saved with `save_pretrained` into a model folder (``processor_config.json``) and loaded
back with `AVEmotionProcessor.from_pretrained` or, once `register_processor` has run (importing
`hf_avemotion` does it), with ``AutoProcessor.from_pretrained(folder)``.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np
from transformers import ASTFeatureExtractor, BatchFeature, WhisperFeatureExtractor
from transformers.processing_utils import ProcessorMixin
from transformers.utils import is_torchvision_available

from .face_detection import FaceCropper
from .media import Clip, clip_from_arrays, load_clip

__all__ = ["AVEmotionProcessor", "register_processor"]

# ViT checkpoints pre-trained on ImageNet-21k (google/vit-base-patch16-224-in21k) normalise with 0.5.
VIT_IN21K_MEAN = VIT_IN21K_STD = [0.5, 0.5, 0.5]
_MIN_AUDIO_SECONDS = 0.025  # one 25 ms analysis window of the AST filter bank
# The numpy filter bank (used when torchaudio is absent) warns that one of 128 mel filters is empty.
_EMPTY_MEL_FILTER_WARNING = "At least one mel filter has all zero values"


def _default_image_processor(size: int = 224):
    """ViT image processor (224 px, mean = std = 0.5); the PIL backend when torchvision is absent."""
    if is_torchvision_available():
        from transformers import ViTImageProcessor as cls
    else:
        from transformers import ViTImageProcessorPil as cls
    return cls(size={"height": size, "width": size}, image_mean=VIT_IN21K_MEAN, image_std=VIT_IN21K_STD)


def _default_feature_extractor(max_length: int = 1024) -> ASTFeatureExtractor:
    """AST log-mel features: 16 kHz, 128 mel bins, ``max_length`` frames (10 ms hop)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_EMPTY_MEL_FILTER_WARNING)
        return ASTFeatureExtractor(max_length=max_length)


def _is_pil(x: Any) -> bool:
    return hasattr(x, "convert") and hasattr(x, "size") and hasattr(x, "mode")


def _to_numpy(x: Any) -> Any:
    """torch tensors -> numpy; anything else unchanged."""
    if hasattr(x, "detach") and hasattr(x, "cpu") and hasattr(x, "numpy"):
        return x.detach().cpu().numpy()
    return x


def _is_frame_list(x: Any) -> bool:
    """A non-empty list/tuple of PIL images or [H,W,C] arrays: the frames of one clip."""
    if not isinstance(x, (list, tuple)) or not x:
        return False
    return all(_is_pil(f) or (isinstance(_to_numpy(f), np.ndarray) and _to_numpy(f).ndim == 3) for f in x)


class AVEmotionProcessor(ProcessorMixin):
    r"""
    Image processor + feature extractor of [`AVEmotionForAudioVisualClassification`].

    Args:
        image_processor (`ViTImageProcessor`, *optional*):
            Rescales and normalises the face crops. Default: 224 px, mean = std = 0.5 (ViT in21k).
            The crop side is its ``size["height"]``.
        feature_extractor (`ASTFeatureExtractor` or `WhisperFeatureExtractor`, *optional*):
            Log-mel features. Default: AST's, 16 kHz, 128 mel bins, ``max_length=1024`` frames (10.24 s);
            pass e.g. ``ASTFeatureExtractor(max_length=400)`` for 3-4 s clips, or
            ``WhisperFeatureExtractor(chunk_length=4)`` for a Whisper audio encoder on 4 s clips.
        num_frames (`int`, *optional*, defaults to 8):
            Frames per clip T. Longer clips are sampled uniformly, shorter ones zero-padded
            (``video_mask`` False).
        detect_faces (`bool`, *optional*, defaults to `True`):
            Crop the face found by `FaceCropper` (YuNet); if False, take a centre square crop.
        face_margin (`float`, *optional*, defaults to 0.25):
            Margin on every side of the face box, as a fraction of its longer side.
        max_duration (`float`, *optional*, defaults to 600.0):
            Files longer than this (seconds) are refused by `load_clip` (`MediaTooLongError`).
    """

    def __init__(
        self,
        image_processor=None,
        feature_extractor=None,
        num_frames: int = 8,
        detect_faces: bool = True,
        face_margin: float = 0.25,
        max_duration: float | None = 600.0,
    ):
        if image_processor is None:
            image_processor = _default_image_processor()
        if feature_extractor is None:
            feature_extractor = _default_feature_extractor()
        if not isinstance(num_frames, (int, np.integer)) or isinstance(num_frames, bool) or num_frames < 1:
            raise ValueError(f"num_frames must be a positive int, got {num_frames!r}")
        if face_margin < 0:
            raise ValueError(f"face_margin must be >= 0, got {face_margin!r}")
        if max_duration is not None and not max_duration > 0:
            raise ValueError(f"max_duration must be positive or None, got {max_duration!r}")
        self.num_frames = int(num_frames)
        self.detect_faces = bool(detect_faces)
        self.face_margin = float(face_margin)
        self.max_duration = None if max_duration is None else float(max_duration)
        super().__init__(image_processor, feature_extractor)
        self._face_cropper = None

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """Load from a folder saved with `save_pretrained` (``processor_config.json``)."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_EMPTY_MEL_FILTER_WARNING)
            return super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)

    @classmethod
    def from_sizes(cls, image_size: int = 224, num_mel_bins: int = 128, max_length: int = 1024, **kwargs):
        """Processor for a model with ``image_size`` px frames and an AST of ``num_mel_bins`` x ``max_length``
        (e.g. the tiny demo model); ``kwargs`` go to the constructor (num_frames, detect_faces, ...)."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_EMPTY_MEL_FILTER_WARNING)
            extractor = ASTFeatureExtractor(num_mel_bins=num_mel_bins, max_length=max_length)
        return cls(_default_image_processor(image_size), extractor, **kwargs)

    @classmethod
    def from_backbones(cls, vision=None, audio=None, image_size: int = 224, audio_seconds: float = 4.0, **kwargs):
        """The processor matching `AVEmotionForAudioVisualClassification.from_backbones(vision, audio)`: the
        vision checkpoint's normalisation at ``image_size`` px (face crops are square: no resize-and-crop), and
        the audio checkpoint's feature extractor over ``audio_seconds`` per clip. ``kwargs`` go to the
        constructor (num_frames, detect_faces, ...)."""
        from transformers import AutoFeatureExtractor, AutoImageProcessor

        image_processor = _default_image_processor(image_size)
        if vision is not None:
            source = AutoImageProcessor.from_pretrained(vision)
            image_processor.image_mean, image_processor.image_std = list(source.image_mean), list(source.image_std)
        feature_extractor = _default_feature_extractor(int(round(audio_seconds * 100)))
        if audio is not None:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=_EMPTY_MEL_FILTER_WARNING)
                source = AutoFeatureExtractor.from_pretrained(audio)
                settings = source.to_dict()
                if isinstance(source, WhisperFeatureExtractor):
                    if audio_seconds != int(audio_seconds):  # its chunk_length must be whole seconds
                        raise ValueError(f"a Whisper feature extractor takes whole seconds, got {audio_seconds}")
                    feature_extractor = WhisperFeatureExtractor(feature_size=source.feature_size,
                                                                chunk_length=int(audio_seconds))
                else:
                    settings.update(max_length=int(round(audio_seconds * 100)))
                    feature_extractor = type(source)(**{k: v for k, v in settings.items()
                                                        if k not in ("feature_extractor_type", "processor_class")})
        return cls(image_processor, feature_extractor, **kwargs)

    # ------------------------------------------------------------------ prepared-data fast paths (training)

    def normalize_frames(self, frames):
        """Face crops already at ``crop_size`` (uint8 torch tensor [..., 3, S, S]) -> pixel_values float32 of the
        same shape, with the image processor's own rescale factor, mean and std.

        Training batches come from prepared datasets whose crops are stored at the model's size, so resizing
        is a no-op; doing the remaining rescale + normalise in torch on the whole batch avoids the per-image
        PIL path (tests check both give the same values).
        """
        import torch

        if frames.shape[-1] != self.crop_size or frames.shape[-2] != self.crop_size:
            raise ValueError(f"frames are {tuple(frames.shape[-2:])} px; this processor expects "
                             f"{self.crop_size}x{self.crop_size} crops (prepare the dataset with that image_size)")
        ip = self.image_processor
        mean = torch.tensor(ip.image_mean, dtype=torch.float32).view(3, 1, 1)
        std = torch.tensor(ip.image_std, dtype=torch.float32).view(3, 1, 1)
        return (frames.float() * float(ip.rescale_factor) - mean) / std

    def audio_features(self, waveform):
        """One 16 kHz mono waveform float [N] (or None) -> AST features float32 torch [F,M] (zeros for None)."""
        import torch

        if waveform is None or len(waveform) == 0:
            return torch.zeros(self.audio_frames, self.mel_bins)
        return torch.from_numpy(self.log_mel([np.asarray(waveform, dtype=np.float32)])[0])

    def log_mel(self, waves: list[np.ndarray]) -> np.ndarray:
        """16 kHz mono waveforms -> features float32 [n, F, M] (padded or cut to F = `audio_frames`)."""
        fe = self.feature_extractor
        waves = [self._pad_short(w) for w in waves]
        if isinstance(fe, WhisperFeatureExtractor):
            feats = fe(waves, sampling_rate=self.sampling_rate, return_tensors="np")["input_features"]
            return np.ascontiguousarray(feats.transpose(0, 2, 1), dtype=np.float32)
        return fe(waves, sampling_rate=self.sampling_rate, return_tensors="np")["input_values"]

    def _pad_short(self, wave: np.ndarray) -> np.ndarray:
        """Zero-pad a waveform [N] shorter than one 25 ms analysis window (AST's filter bank fails on it)."""
        min_len = int(np.ceil(_MIN_AUDIO_SECONDS * self.sampling_rate)) + 1
        return np.pad(wave, (0, max(0, min_len - len(wave))))

    # ------------------------------------------------------------------ properties

    @property
    def crop_size(self) -> int:
        """Side S (pixels) of the square face crops, from the image processor's size."""
        size = self.image_processor.size
        return int(size["height"] if "height" in size else size["shortest_edge"])

    @property
    def face_cropper(self) -> FaceCropper:
        """The `FaceCropper` (built on first use) producing ``crop_size`` crops with ``face_margin``."""
        cropper = self._face_cropper
        if cropper is None or cropper.output_size != self.crop_size or cropper.margin != self.face_margin:
            cropper = self._face_cropper = FaceCropper(output_size=self.crop_size, margin=self.face_margin)
        return cropper

    @property
    def sampling_rate(self) -> int:
        return int(self.feature_extractor.sampling_rate)

    @property
    def audio_frames(self) -> int:
        """F: spectrogram frames per clip (10 ms each)."""
        fe = self.feature_extractor
        return int(fe.nb_max_frames if isinstance(fe, WhisperFeatureExtractor) else fe.max_length)

    @property
    def mel_bins(self) -> int:
        """M: mel bins per frame."""
        fe = self.feature_extractor
        return int(fe.feature_size if isinstance(fe, WhisperFeatureExtractor) else fe.num_mel_bins)

    @property
    def model_input_names(self) -> list[str]:
        return ["pixel_values", "input_values", "video_mask", "face_mask", "audio_mask"]

    # ------------------------------------------------------------------ input normalisation

    def _video_rows(self, videos: Any) -> list[Any]:
        """``videos`` argument -> list of per-row items (path | Clip | frames | None)."""
        videos = _to_numpy(videos)
        if isinstance(videos, (str, os.PathLike, Clip)):
            return [videos]
        if isinstance(videos, np.ndarray):
            if videos.ndim == 4:
                return [videos]
            if videos.ndim == 5:
                return list(videos)
            raise ValueError(
                f"videos array must be frames [T,H,W,3] or a batch [B,T,H,W,3], got shape {videos.shape}"
                + (" (a single image: pass it as [1,H,W,3])" if videos.ndim == 3 else "")
            )
        if _is_pil(videos):
            raise ValueError("videos is a single PIL image; pass a list of PIL images (the frames of one clip)")
        if isinstance(videos, (list, tuple)):
            if len(videos) == 0:
                raise ValueError("videos is an empty list")
            if _is_frame_list(videos):
                return [list(videos)]
            return list(videos)
        raise ValueError(
            f"videos must be a path, a Clip, frames (uint8 array [T,H,W,3] or list of PIL images) or a list "
            f"of these, got {type(videos).__name__}"
        )

    @staticmethod
    def _audio_rows(audio: Any) -> list[Any]:
        """``audio`` argument -> list of per-row waveforms (array [N] | None)."""
        audio = _to_numpy(audio)
        if isinstance(audio, (np.ndarray, dict)):
            return [audio]
        if isinstance(audio, (list, tuple)):
            if len(audio) == 0:
                raise ValueError("audio is an empty list")
            if all(isinstance(a, (int, float, np.number)) and not isinstance(a, bool) for a in audio):
                return [np.asarray(audio, dtype=np.float32)]  # one waveform given as a list of numbers
            return [_to_numpy(a) for a in audio]
        raise ValueError(
            "audio must be a waveform (float array [N], or a `datasets` Audio dict with 'array' and "
            f"'sampling_rate') or a list of waveforms, got {type(audio).__name__}"
        )

    def _row_clip(self, item: Any, index: int) -> Clip | None:
        """One video row -> Clip (None for a row without video)."""
        item = _to_numpy(item)
        where = f"videos[{index}]"
        if item is None:
            return None
        if isinstance(item, Clip):
            return item
        if isinstance(item, (str, os.PathLike)):
            return load_clip(item, num_frames=self.num_frames, max_duration=self.max_duration)
        if isinstance(item, np.ndarray):
            if item.ndim != 4:
                raise ValueError(f"{where} must be frames [T,H,W,3], got shape {item.shape}")
            if item.shape[0] == 0:
                return None
        elif _is_frame_list(item):
            pass
        elif isinstance(item, (list, tuple)) and len(item) == 0:
            raise ValueError(f"{where} is an empty list of frames")
        else:
            raise ValueError(
                f"{where} must be a path, a Clip, a uint8 array [T,H,W,3] or a list of PIL images, "
                f"got {type(item).__name__}"
            )
        try:
            return clip_from_arrays(frames=item)
        except ValueError as err:
            raise type(err)(f"{where}: {err}") from err

    def _row_waveform(self, wave: Any, sampling_rate: int | None, index: int) -> np.ndarray:
        """One waveform [N] at ``sampling_rate`` -> float32 [N'] mono at the feature extractor's rate.

        ``wave`` may also be a `datasets` Audio dict ``{"array": [N], "sampling_rate": int}``.
        """
        where = f"audio[{index}]"
        if isinstance(wave, dict):
            if "array" not in wave:
                raise ValueError(f"{where} is a dict without an 'array' key")
            sampling_rate = wave.get("sampling_rate", sampling_rate)
            wave = wave["array"]
        wave = _to_numpy(wave)
        if isinstance(wave, (list, tuple)):
            wave = np.asarray(wave, dtype=np.float32)
        if not isinstance(wave, np.ndarray):
            raise ValueError(f"{where} must be a float array [N], got {type(wave).__name__}")
        if wave.ndim != 1:
            raise ValueError(f"{where} must be a mono waveform [N], got shape {wave.shape}")
        if sampling_rate is None:
            raise ValueError("sampling_rate is required when audio is given (the rate of the waveforms, in Hz)")
        try:
            clip = clip_from_arrays(audio=wave, sampling_rate=sampling_rate, target_sampling_rate=self.sampling_rate)
            return clip.audio
        except ValueError as err:
            raise type(err)(f"{where}: {err}") from err

    def _clip_waveform(self, clip: Clip) -> np.ndarray | None:
        if not clip.has_audio or clip.audio.size == 0:
            return None
        if clip.sampling_rate == self.sampling_rate:
            return np.asarray(clip.audio, dtype=np.float32)
        return clip_from_arrays(
            audio=clip.audio, sampling_rate=clip.sampling_rate, target_sampling_rate=self.sampling_rate
        ).audio

    def _sample_frames(self, clip: Clip) -> np.ndarray:
        """Clip frames -> at most ``num_frames`` distinct frames uint8 [t,H,W,3], sampled uniformly.

        Frames `load_clip` repeated to fill ``num_frames`` (equal timestamps) count once.
        """
        frames = clip.frames
        if not clip.has_video or frames.shape[0] == 0:
            return frames[:0]
        if len(clip.timestamps) == len(frames) and len(frames) > 1:
            keep = np.concatenate([[True], np.diff(clip.timestamps) > 0])
            frames = frames[keep]
        if len(frames) > self.num_frames:
            frames = frames[np.linspace(0, len(frames) - 1, self.num_frames).round().astype(int)]
        return frames

    # ------------------------------------------------------------------ call

    def __call__(
        self,
        videos: Any = None,
        audio: Any = None,
        sampling_rate: int | None = None,
        return_tensors: str | None = "pt",
        return_face_crops: bool = False,
        **kwargs,
    ) -> BatchFeature:
        """Prepare a batch of B clips.

        Args:
            videos: a path (decoded with `load_clip`, giving frames and the file's audio), a `Clip`,
                frames (uint8 array [T,H,W,3] or list of PIL images), a batch array [B,T,H,W,3], or a
                list of these (None entries: rows without video).
            audio: a waveform float [N] (or a `datasets` Audio dict with its own sampling rate), or a list
                of B of them (None entries: use the clip's own audio). Replaces the audio of the
                videos' files/Clips when given.
            sampling_rate: rate (Hz) of ``audio``; waveforms are resampled to 16 kHz. Required with ``audio``.
            return_tensors: "pt", "np" or None (numpy).
            return_face_crops: also return ``face_crops`` uint8 numpy [B,T,S,S,3], the crops behind
                ``pixel_values`` (zeros where ``video_mask`` is False), so a caller showing them need
                not detect faces again. It is not a model input and stays numpy whatever
                ``return_tensors`` is: pop it before ``model(**features)``.

        Returns:
            `BatchFeature` with ``pixel_values`` float32 [B,T,3,S,S], ``input_values`` float32 [B,F,M],
            ``video_mask`` bool [B,T] (frame exists), ``face_mask`` bool [B,T] (face detected in it),
            ``audio_mask`` bool [B] (row has audio), ``audio_frame_mask`` bool [B,F] (spectrogram frames that
            hold the clip's audio rather than padding). Rows without video have zero pixels and an all-False
            video mask; rows without audio zero features and ``audio_mask`` False.
        """
        if kwargs:
            raise TypeError(f"unexpected keyword argument(s): {', '.join(sorted(kwargs))}")
        if videos is None and audio is None:
            raise ValueError("give videos, audio, or both")
        video_items = self._video_rows(videos) if videos is not None else None
        audio_items = self._audio_rows(audio) if audio is not None else None
        if video_items is not None and audio_items is not None and len(video_items) != len(audio_items):
            raise ValueError(
                f"videos and audio have different batch sizes ({len(video_items)} and {len(audio_items)})"
            )
        batch = len(video_items) if video_items is not None else len(audio_items)

        clips = [self._row_clip(v, i) for i, v in enumerate(video_items)] if video_items else [None] * batch
        waves: list[np.ndarray | None] = []
        for i in range(batch):
            given = audio_items[i] if audio_items is not None else None
            if given is not None:
                waves.append(self._row_waveform(given, sampling_rate, i))
            elif clips[i] is not None:
                waves.append(self._clip_waveform(clips[i]))
            else:
                waves.append(None)

        t, s = self.num_frames, self.crop_size
        video_mask = np.zeros((batch, t), dtype=bool)
        face_mask = np.zeros((batch, t), dtype=bool)
        crops, where = [], []
        face_crops = np.zeros((batch, t, s, s, 3), dtype=np.uint8) if return_face_crops else None
        for i, clip in enumerate(clips):
            if clip is None:
                continue
            frames = self._sample_frames(clip)
            if len(frames) == 0:
                continue
            cropped = self.face_cropper(frames) if self.detect_faces else self.face_cropper.centre_crops(frames)
            n = len(frames)
            if face_crops is not None:
                face_crops[i, :n] = cropped.crops
            video_mask[i, :n] = True
            face_mask[i, :n] = cropped.face_found
            crops.extend(cropped.crops)
            where.extend((i, k) for k in range(n))
        if crops:
            pixels = self.image_processor(crops, return_tensors="np")["pixel_values"]
            pixel_values = np.zeros((batch, t) + pixels.shape[1:], dtype=np.float32)
            rows, cols = zip(*where)
            pixel_values[list(rows), list(cols)] = pixels
        else:
            size = self.image_processor.size
            h, w = size.get("height", s), size.get("width", s)
            pixel_values = np.zeros((batch, t, 3, h, w), dtype=np.float32)

        audio_mask = np.array([w is not None for w in waves], dtype=bool)
        input_values = np.zeros((batch, self.audio_frames, self.mel_bins), dtype=np.float32)
        audio_frame_mask = np.zeros((batch, self.audio_frames), dtype=bool)
        if audio_mask.any():
            input_values[audio_mask] = self.log_mel([w for w in waves if w is not None])
            hop = int(getattr(self.feature_extractor, "hop_length", 160))  # samples per spectrogram frame
            for i, w in enumerate(waves):
                if w is not None:
                    audio_frame_mask[i, : max(1, -(-len(w) // hop))] = True

        data = {
            "pixel_values": pixel_values,
            "input_values": input_values,
            "video_mask": video_mask,
            "face_mask": face_mask,
            "audio_mask": audio_mask,
            "audio_frame_mask": audio_frame_mask,
        }
        if face_crops is not None:
            data["face_crops"] = face_crops
            return BatchFeature(data=data, tensor_type=return_tensors, skip_tensor_conversion=["face_crops"])
        return BatchFeature(data=data, tensor_type=return_tensors)


def register_processor() -> None:
    """Make ``AutoProcessor.from_pretrained(folder)`` return an `AVEmotionProcessor` (idempotent)."""
    from transformers import AutoProcessor

    from .configuration_avemotion import AVEmotionConfig

    AutoProcessor.register(AVEmotionConfig, AVEmotionProcessor, exist_ok=True)
