"""hf_avemotion: audio-visual emotion recognition on the Hugging Face stack.

Importing the package registers the model with transformers' Auto classes:
`AutoConfig`, `AutoModel` and `AutoModelForVideoClassification` resolve `model_type="avemotion"`, and
`AutoProcessor` gives `AVEmotionProcessor`.
"""

from transformers import AutoConfig, AutoModel, AutoModelForAudioClassification, AutoModelForVideoClassification

from .backbones import pretrained_path
from .configuration_avemotion import FUSION_TYPES, RAVDESS_EMOTIONS, AVEmotionConfig, AVEmotionSpeechConfig
from .media import Clip, MediaError, clip_from_arrays, iter_windows, load_clip
from .modeling_avemotion import (
    AVEmotionClassifierOutput,
    AVEmotionForAudioVisualClassification,
    AVEmotionForSpeechClassification,
    AVEmotionModel,
    AVEmotionModelOutput,
)
from .processing_avemotion import AVEmotionProcessor, register_processor

__version__ = "0.1.0"

AutoConfig.register(AVEmotionConfig.model_type, AVEmotionConfig, exist_ok=True)
# The product card: AutoModel.from_pretrained(folder) gives the classifier, whose output has `logits`.
AutoModel.register(AVEmotionConfig, AVEmotionForAudioVisualClassification, exist_ok=True)
AutoModelForVideoClassification.register(AVEmotionConfig, AVEmotionForAudioVisualClassification, exist_ok=True)
# The speech model (Whisper encoder + head): AutoModelForAudioClassification and pipeline("audio-classification").
AutoConfig.register(AVEmotionSpeechConfig.model_type, AVEmotionSpeechConfig, exist_ok=True)
AutoModelForAudioClassification.register(AVEmotionSpeechConfig, AVEmotionForSpeechClassification, exist_ok=True)
register_processor()  # AutoProcessor.from_pretrained(folder) -> AVEmotionProcessor
from . import pipeline_avemotion  # noqa: E402
from .backbones import DEFAULT_MODEL, DefaultPipelineModel  # noqa: E402

# pipeline("audio-visual-emotion-recognition") with no model: the shipped default, assembled on first use
pipeline_avemotion.register_pipeline(default=DefaultPipelineModel())

__all__ = [
    "pretrained_path",
    "DEFAULT_MODEL",
    "AVEmotionProcessor",
    "Clip",
    "MediaError",
    "clip_from_arrays",
    "iter_windows",
    "load_clip",
    "AVEmotionConfig",
    "AVEmotionSpeechConfig",
    "AVEmotionForSpeechClassification",
    "AVEmotionModel",
    "AVEmotionForAudioVisualClassification",
    "AVEmotionModelOutput",
    "AVEmotionClassifierOutput",
    "FUSION_TYPES",
    "RAVDESS_EMOTIONS",
]
