"""The speech emotion model: Whisper encoder + layer weights + attention pooling + classifier.

Tiny random Whisper checkpoints test the mechanics (cached states = raw path, fine-tuned top layers on the cache,
Auto classes, pipeline, remote code, head training); the shipped model is tested on real speech from speakers in
no training folder (CREMA-D actor 1002 in ../shared/data)."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import BLOCK_PACKAGE_IMPORT, SHARED_DATA
from transformers import (AutoModelForAudioClassification, WhisperConfig, WhisperFeatureExtractor, WhisperModel,
                          pipeline)

import hf_avemotion  # noqa: F401  registers the Auto classes
from hf_avemotion import AVEmotionForSpeechClassification, AVEmotionSpeechConfig, backbones
from hf_avemotion.corpora import EMOTIONS


def tiny_whisper(folder):
    torch.manual_seed(0)
    WhisperModel(WhisperConfig(d_model=32, encoder_layers=3, decoder_layers=1, encoder_attention_heads=2,
                               decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, vocab_size=100,
                               pad_token_id=1, bos_token_id=1, eos_token_id=1, decoder_start_token_id=2,
                               num_mel_bins=80)).save_pretrained(folder)
    return str(folder)


@pytest.fixture
def tiny_speech(tmp_path):
    model = AVEmotionForSpeechClassification.from_backbone(tiny_whisper(tmp_path / "whisper"),
                                                           pooling_hidden_size=16, classifier_hidden_size=16)
    return model.eval()


def test_cached_states_give_the_raw_path_logits_and_time_pooling_averages(tiny_speech):
    features = torch.randn(2, 80, 200)
    with torch.no_grad():
        raw = tiny_speech(input_features=features).logits
        states = tiny_speech.encoder_states(features)
        assert states.shape == (2, 4, 13, 32)  # 100 encoder steps averaged 8 by 8 (the last window holds 4)
        torch.testing.assert_close(tiny_speech(layer_states=states).logits, raw)
        unpooled = torch.randn(1, 4, 100, 32)
        pooled = tiny_speech.pool_time(unpooled)
        torch.testing.assert_close(pooled[0, :, 0], unpooled[0, :, :8].mean(1))
        torch.testing.assert_close(pooled[0, :, -1], unpooled[0, :, 96:].mean(1))
    assert tiny_speech.frozen_backbone_prefixes() == ("encoder.",)


def test_soft_labels_class_weights_and_padding_mask(tiny_speech):
    features = torch.randn(3, 80, 200)
    soft = torch.softmax(torch.randn(3, 8), -1)
    assert torch.isfinite(tiny_speech(input_features=features, labels=soft).loss)
    assert torch.isfinite(tiny_speech(input_features=features, labels=torch.tensor([0, 3, 7])).loss)
    mask = torch.ones(3, 200, dtype=torch.long)
    mask[:, 100:] = 0
    with torch.no_grad():
        assert not torch.allclose(tiny_speech(input_features=features).logits,
                                  tiny_speech(input_features=features, attention_mask=mask).logits)
    with pytest.raises(ValueError, match="input_features must be"):
        tiny_speech(input_features=torch.randn(1, 200, 80))
    with pytest.raises(ValueError, match="time_pooling"):
        AVEmotionSpeechConfig(audio_config=tiny_speech.config.audio_config, time_pooling=0)


def test_auto_class_pipeline_and_remote_code(tiny_speech, tmp_path):
    folder = tmp_path / "speech"
    tiny_speech.save_pretrained(folder)
    WhisperFeatureExtractor(chunk_length=2).save_pretrained(folder)
    assert type(AutoModelForAudioClassification.from_pretrained(folder)) is AVEmotionForSpeechClassification
    classify = pipeline("audio-classification", model=str(folder))
    wave = np.sin(np.linspace(0, 2000, 32000)).astype(np.float32)
    result = classify({"raw": wave, "sampling_rate": 16000}, top_k=3)
    assert len(result) == 3 and all(r["label"] in EMOTIONS for r in result)
    with torch.no_grad():
        features = classify.feature_extractor(wave, sampling_rate=16000, return_tensors="pt")["input_features"]
        expected = tiny_speech(input_features=features).logits
    torch.save({"features": features, "logits": expected}, tmp_path / "reference.pt")
    check = BLOCK_PACKAGE_IMPORT + (
        "import torch, sys\nfrom transformers import AutoModelForAudioClassification\n"
        "ref = torch.load(sys.argv[2])\n"
        "model = AutoModelForAudioClassification.from_pretrained(sys.argv[1], trust_remote_code=True).eval()\n"
        "torch.testing.assert_close(model(input_features=ref['features']).logits, ref['logits'], atol=1e-5, rtol=0)\n"
        "print('REMOTE_OK')\n")
    result = subprocess.run([sys.executable, "-c", check, str(folder), str(tmp_path / "reference.pt")],
                            capture_output=True, text=True, timeout=300,
                            env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HF_HOME": str(tmp_path / "hf")})
    assert "REMOTE_OK" in result.stdout, result.stderr[-3000:]


def test_head_training_on_cached_states_learns_a_separable_task(tmp_path):
    """Two classes whose cached states differ by a shift in a few time steps: the trained head separates them."""
    from hf_avemotion.speech_training import SpeechRecipe, StateCache, predict_proba, train_speech_head

    generator = torch.Generator().manual_seed(0)
    labels = ["happy", "sad"] * 40
    states = torch.randn(80, 4, 20, 32, generator=generator) * 0.5
    states[0::2, :, 5:15, :4] += 1.0
    cache = StateCache.__new__(StateCache)
    cache.time_pooling = 1
    cache.columns = {"corpus": ["x"] * 80, "clip_id": [str(i) for i in range(80)],
                     "speaker": [f"x:{i % 8}" for i in range(80)], "label": labels}
    cache.states = states
    train, test = cache.select(exclude_speakers={"x:6", "x:7"}), cache.select(speakers={"x:6", "x:7"})
    recipe = SpeechRecipe(epochs=15, batch_size=16, learning_rate=3e-3, time_mask_tokens=3, patience=15)
    model, history = train_speech_head(cache, train, test, tiny_whisper(tmp_path / "whisper"), recipe,
                                       log=lambda _: None)
    accuracy = (predict_proba(model, cache, test).argmax(-1) == cache.targets(test).numpy()).mean()
    assert accuracy >= 0.9 and history[-1]["train_loss"] < history[0]["train_loss"]


# ---------------------------------------------------------------------------------------------- the shipped model


def test_shipped_speech_model_names_emotions_of_an_unseen_speaker(shared_data):
    """CREMA-D actor 1002 is in no corpus we train on: the shipped model must get most of his clips right."""
    if not (backbones.TRAINED_MODELS["speech"].shipped / backbones.HEAD_FILE).is_file():
        pytest.skip("no shipped speech head")
    if not (backbones.cache_dir() / "whisper-base" / backbones._DONE_MARKER).is_file():
        pytest.skip("whisper-base is not converted: run `make backbones`")
    from hf_avemotion import load_clip

    classify = pipeline("audio-classification", model=str(hf_avemotion.pretrained_path("speech")))
    words = {"ANG": "angry", "DIS": "disgust", "FEA": "fearful", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}
    clips = sorted((shared_data / "crema_d").glob("*.mp3"))
    hits = 0
    for clip in clips:
        result = classify({"raw": load_clip(clip).audio, "sampling_rate": 16000}, top_k=8)
        assert {r["label"] for r in result} == set(EMOTIONS)
        hits += result[0]["label"] == words[clip.stem.split("_")[2]]
    assert len(clips) == 6 and hits >= 3, f"{hits}/6 right"
