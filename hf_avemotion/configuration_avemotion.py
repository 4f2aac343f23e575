"""Configuration of the AVEmotion audio-visual emotion model.

This file travels to the Hub as remote code next to ``modeling_avemotion.py``: it imports
nothing from ``hf_avemotion``.
"""

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

FUSION_TYPES = ("cross_attention", "joint_transformer", "concat", "late", "audio_only", "video_only")
VISION_POOLING = ("cls", "mean", "cls_mean")
AUDIO_ENCODER_TYPES = ("audio-spectrogram-transformer", "whisper")
AUDIO_LAYER_POOLING = ("last", "weighted")
# The eight RAVDESS emotions, in the order of the dataset's emotion code 01..08.
RAVDESS_EMOTIONS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")


class AVEmotionConfig(PreTrainedConfig):
    r"""
    Configuration of [`AVEmotionModel`] / [`AVEmotionForAudioVisualClassification`].

    vision_config (`dict` or `PreTrainedConfig`, *optional*):
        Config of the per-frame image encoder; a dict needs a `model_type`. Any vision encoder whose model returns
        token hidden states works. Defaults to ViT-B/16 at 224 px (`google/vit-base-patch16-224-in21k`).
    audio_config (`dict` or `PreTrainedConfig`, *optional*):
        Config of the audio encoder: an AST (`model_type` "audio-spectrogram-transformer") or Whisper (its encoder
        only; `model_type` "whisper", e.g. `openai/whisper-base`). Defaults to AST-base, 16 kHz / 128 mel bins /
        1024 frames (`MIT/ast-finetuned-audioset-10-10-0.4593`). A shorter AST `max_length` suits 3-4 s clips;
        Whisper runs on the clip's own frames (no padding to 30 s).
    fusion_type (`str`, *optional*, defaults to `"cross_attention"`):
        One of `cross_attention`, `joint_transformer`, `concat`, `late`, `audio_only`, `video_only`.
    fusion_hidden_size (`int`, *optional*, defaults to 256):
        Width of the fusion head; both encoders are projected to it.
    fusion_num_layers (`int`, *optional*, defaults to 2):
        Number of fusion blocks (cross-attention and joint-transformer fusions).
    fusion_num_heads (`int`, *optional*, defaults to 4):
        Attention heads in the fusion blocks; must divide `fusion_hidden_size`.
    fusion_intermediate_size (`int`, *optional*):
        MLP width in the fusion blocks; defaults to `4 * fusion_hidden_size`.
    fusion_dropout (`float`, *optional*, defaults to 0.1):
        Dropout in the fusion head.
    num_frames (`int`, *optional*, defaults to 8):
        Maximum number of video frames per clip (size of the temporal position embedding).
    modality_dropout (`float`, *optional*, defaults to 0.0):
        In training, probability of dropping a whole modality of a row (never both).
    vision_pooling (`str`, *optional*, defaults to `"cls"`):
        How a frame's token sequence becomes one frame embedding: `cls` (first token), `mean`, or `cls_mean`
        (first token and the mean of the others, concatenated: DINOv2's classification features, 2x width).
    audio_layer_pooling (`str`, *optional*, defaults to `"last"`):
        Which audio encoder states feed the fusion: `last` (final layer) or `weighted` (a learned softmax-weighted
        sum of the embeddings and every layer's output; Whisper only; middle layers carry most of the emotion).
    class_weights (`list[float]`, *optional*):
        Per-class weights of the cross-entropy loss (e.g. inverse class frequency).
    label_smoothing (`float`, *optional*, defaults to 0.0):
        Label smoothing of the cross-entropy loss.
    late_fusion_aux_weight (`float`, *optional*, defaults to 0.5):
        Late fusion only: weight of the per-modality losses added to the fused loss, so that both heads learn
        even when the learned fusion weights favour one of them.
    modality_heads (`bool`, *optional*, defaults to False):
        Carry the unimodal models' own classifiers (the face model's linear head on each frame's `cls_mean`
        embedding; the speech model's linear read-out of the per-layer statistics of the Whisper states). Their
        scores are returned as `video_logits` / `audio_logits` (per-modality evidence), and with
        `fusion_type="late"` they are what is fused: a weighted average of the two modalities' probabilities (no
        head on the fusion width is built). Needs a Whisper audio encoder.
    video_merged_labels (`dict[str, str]`, *optional*):
        Labels the face cannot tell apart, as `{label: stands_for}`: e.g. `{"calm": "neutral"}` (FER has no
        calm; a calm face looks neutral). In late fusion the face's probability of `stands_for` is shared
        between the two in the proportion the voice gives them (without audio all of it stays on `stands_for`).

    The label maps default to the 8 RAVDESS emotions. `problem_type="regression"` with `num_labels` targets
    (e.g. valence and arousal) trains with a concordance-correlation (CCC) loss.

    Example:

    ```python
    >>> from hf_avemotion import AVEmotionConfig, AVEmotionForAudioVisualClassification
    >>> config = AVEmotionConfig(fusion_type="late")
    >>> model = AVEmotionForAudioVisualClassification(config)
    ```"""

    model_type = "avemotion"
    sub_configs_defaults = {
        "vision_config": SubConfigSpec(config_class=AutoConfig, model_type="vit"),
        "audio_config": SubConfigSpec(config_class=AutoConfig, model_type="audio-spectrogram-transformer"),
    }

    vision_config: dict | PreTrainedConfig | None = None
    audio_config: dict | PreTrainedConfig | None = None
    fusion_type: str = "cross_attention"
    fusion_hidden_size: int = 256
    fusion_num_layers: int = 2
    fusion_num_heads: int = 4
    fusion_intermediate_size: int | None = None
    fusion_dropout: float = 0.1
    num_frames: int = 8
    modality_dropout: float = 0.0
    vision_pooling: str = "cls"
    audio_layer_pooling: str = "last"
    class_weights: list[float] | None = None
    label_smoothing: float = 0.0
    late_fusion_aux_weight: float = 0.5
    modality_heads: bool = False
    video_merged_labels: dict[str, str] | None = None

    def __post_init__(self, **kwargs):
        if self.id2label is None and kwargs.get("num_labels") is None and self.problem_type != "regression":
            self.id2label = dict(enumerate(RAVDESS_EMOTIONS))
            self.label2id = {label: i for i, label in self.id2label.items()}
        super().__post_init__(**kwargs)
        if self.fusion_intermediate_size is None:
            self.fusion_intermediate_size = 4 * self.fusion_hidden_size
        self._validate_fields()

    def _validate_fields(self):
        def fail(field, message):
            raise ValueError(f"AVEmotionConfig.{field}: {message} (got {getattr(self, field)!r})")

        if self.fusion_type not in FUSION_TYPES:
            fail("fusion_type", f"must be one of {', '.join(FUSION_TYPES)}")
        if self.vision_pooling not in VISION_POOLING:
            fail("vision_pooling", f"must be one of {', '.join(VISION_POOLING)}")
        for field in ("fusion_hidden_size", "fusion_num_layers", "fusion_num_heads", "fusion_intermediate_size",
                      "num_frames"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                fail(field, "must be a positive integer")
        if self.fusion_hidden_size % self.fusion_num_heads:
            fail("fusion_num_heads", f"must divide fusion_hidden_size={self.fusion_hidden_size}")
        for field in ("fusion_dropout", "label_smoothing"):
            if not 0.0 <= getattr(self, field) < 1.0:
                fail(field, "must be in [0, 1)")
        if not 0.0 <= self.modality_dropout <= 0.5:
            fail("modality_dropout", "must be in [0, 0.5] (a row always keeps one modality)")
        if self.late_fusion_aux_weight < 0:
            fail("late_fusion_aux_weight", "must be >= 0")
        if self.num_labels < 1:
            fail("num_labels", "must be >= 1")
        if self.class_weights is not None:
            if len(self.class_weights) != self.num_labels:
                fail("class_weights", f"needs one weight per label ({self.num_labels})")
            if any(w < 0 for w in self.class_weights):
                fail("class_weights", "weights must be >= 0")
        if self.audio_config.model_type not in AUDIO_ENCODER_TYPES:
            fail("audio_config", f"model_type must be one of {', '.join(AUDIO_ENCODER_TYPES)}")
        if self.audio_layer_pooling not in AUDIO_LAYER_POOLING:
            fail("audio_layer_pooling", f"must be one of {', '.join(AUDIO_LAYER_POOLING)}")
        if self.audio_layer_pooling == "weighted" and self.audio_config.model_type != "whisper":
            fail("audio_layer_pooling", "'weighted' needs a Whisper audio encoder")
        if self.modality_heads and (self.audio_config.model_type != "whisper" or self.fusion_type in
                                    ("audio_only", "video_only")):
            fail("modality_heads", "needs a Whisper audio encoder and both modalities")
        for label, stands_for in (self.video_merged_labels or {}).items():
            if label not in self.label2id or stands_for not in self.label2id:
                fail("video_merged_labels", f"{label!r} and {stands_for!r} must both be labels of the model")

    @property
    def uses_video(self) -> bool:
        return self.fusion_type != "audio_only"

    @property
    def uses_audio(self) -> bool:
        return self.fusion_type != "video_only"

    @property
    def audio_is_whisper(self) -> bool:
        return self.audio_config.model_type == "whisper"

    @property
    def frame_embedding_size(self) -> int:
        """Width of one frame's embedding out of the vision encoder (doubled by `cls_mean` pooling)."""
        return self.vision_config.hidden_size * (2 if self.vision_pooling == "cls_mean" else 1)


class AVEmotionSpeechConfig(PreTrainedConfig):
    r"""
    Configuration of [`AVEmotionForSpeechClassification`]: Whisper's encoder, the mean and standard deviation over
    time of each of its hidden states, and a linear read-out of them.

    audio_config (`dict` or `PreTrainedConfig`, *optional*):
        The Whisper config (`model_type` "whisper"; only the encoder is built). Defaults to Whisper base's shape
        (`openai/whisper-base`: 6 layers, d 512, 80 mel bins).
    classifier_dropout (`float`, *optional*, defaults to 0.2):
        Dropout before the linear read-out.
    class_weights (`list[float]`, *optional*) and label_smoothing (`float`, *optional*, defaults to 0.0):
        As in [`AVEmotionConfig`].

    Labels default to the package's 8 emotions."""

    model_type = "avemotion-speech"
    sub_configs_defaults = {"audio_config": SubConfigSpec(config_class=AutoConfig, model_type="whisper")}

    audio_config: dict | PreTrainedConfig | None = None
    classifier_dropout: float = 0.2
    class_weights: list[float] | None = None
    label_smoothing: float = 0.0

    def __post_init__(self, **kwargs):
        if self.id2label is None and kwargs.get("num_labels") is None:
            self.id2label = dict(enumerate(RAVDESS_EMOTIONS))
            self.label2id = {label: i for i, label in self.id2label.items()}
        super().__post_init__(**kwargs)
        if self.audio_config.model_type != "whisper":
            raise ValueError(f"AVEmotionSpeechConfig.audio_config: must be a Whisper config, got model_type "
                             f"{self.audio_config.model_type!r}")
        if self.class_weights is not None and len(self.class_weights) != self.num_labels:
            raise ValueError(f"AVEmotionSpeechConfig.class_weights: needs one weight per label ({self.num_labels})")


__all__ = ["AVEmotionConfig", "AVEmotionSpeechConfig", "FUSION_TYPES", "RAVDESS_EMOTIONS"]
