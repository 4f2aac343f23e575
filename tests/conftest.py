"""Shared fixtures: tiny configs (hidden 32, one layer, 32 px frames, 16 mel bins) built locally, no Hub."""

import os
import textwrap
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

TINY_VISION = dict(model_type="vit", hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                   intermediate_size=64, image_size=32, patch_size=8)
TINY_AUDIO = dict(model_type="audio-spectrogram-transformer", hidden_size=32, num_hidden_layers=1,
                  num_attention_heads=2, intermediate_size=64, num_mel_bins=16, max_length=64,
                  patch_size=8, frequency_stride=8, time_stride=8)


def tiny_config(**overrides):
    from hf_avemotion import AVEmotionConfig

    kwargs = dict(vision_config=dict(TINY_VISION), audio_config=dict(TINY_AUDIO), fusion_hidden_size=32,
                  fusion_num_layers=1, fusion_num_heads=2, num_frames=4)
    kwargs.update(overrides)
    return AVEmotionConfig(**kwargs)


@pytest.fixture
def shared_data():
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is absent")
    return SHARED_DATA


# Preamble of subprocess checks: `import hf_avemotion` fails there, as in a Python without the package, so
# only the remote code saved in a model folder can be used.
BLOCK_PACKAGE_IMPORT = textwrap.dedent("""
    import builtins, sys
    real_import = builtins.__import__
    def guarded(name, *args, **kwargs):
        if name == "hf_avemotion" or name.startswith("hf_avemotion."):
            raise ImportError("hf_avemotion is not installed here")
        return real_import(name, *args, **kwargs)
    builtins.__import__ = guarded
    try:
        import hf_avemotion
        sys.exit("hf_avemotion was importable")
    except ImportError:
        pass
""")
