"""A tiny random AVEmotion model + matching processor saved to a folder (for pipeline, CLI and sharing tests)."""

import warnings
from pathlib import Path

import torch

from conftest import tiny_config


def tiny_processor(**overrides):
    """AVEmotionProcessor matching `tiny_config`: 32 px crops, 16 mel bins x 64 frames, 4 frames per clip."""
    from transformers import ASTFeatureExtractor

    from hf_avemotion.processing_avemotion import AVEmotionProcessor, _default_image_processor

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        feature_extractor = ASTFeatureExtractor(num_mel_bins=16, max_length=64)
    kwargs = dict(image_processor=_default_image_processor(32), feature_extractor=feature_extractor, num_frames=4)
    kwargs.update(overrides)
    return AVEmotionProcessor(**kwargs)


def save_tiny_model(folder, seed=0, **config_overrides) -> Path:
    """Save a random tiny classifier (8 RAVDESS labels) and its processor to ``folder``; returns it."""
    from hf_avemotion import AVEmotionForAudioVisualClassification

    torch.manual_seed(seed)
    model = AVEmotionForAudioVisualClassification(tiny_config(**config_overrides)).eval()
    folder = Path(folder)
    model.save_pretrained(folder)
    tiny_processor().save_pretrained(folder)
    return folder
