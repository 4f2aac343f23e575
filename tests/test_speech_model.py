"""The speech emotion model: Whisper encoder + per-layer mean/std statistics + a linear read-out.

Tiny random Whisper checkpoints test the mechanics (cached statistics = raw path, padding left out, Auto classes,
pipeline with its attention mask, remote code, head training); the shipped model is tested on real speech from speakers in
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
from hf_avemotion import AVEmotionForSpeechClassification, backbones
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
    model = AVEmotionForSpeechClassification.from_backbone(tiny_whisper(tmp_path / "whisper"))
    torch.manual_seed(1)
    model.head.set_feature_scale(torch.randn(16, 4, 64) * 2 + 1)  # a non-trivial scale, as training sets
    return model.eval()


def test_cached_statistics_give_the_raw_path_logits(tiny_speech):
    from hf_avemotion.modeling_avemotion import layer_statistics, whisper_encode

    features = torch.randn(2, 80, 200)
    with torch.no_grad():
        raw = tiny_speech(input_features=features).logits
        statistics = tiny_speech.statistics(features)
        assert statistics.shape == (2, 4, 64)  # L+1 = 4 hidden states, [mean; std] of width 32 each
        states = torch.stack(whisper_encode(tiny_speech.encoder, features), 1)
        torch.testing.assert_close(statistics[..., :32], states.mean(2))
        torch.testing.assert_close(statistics[..., 32:], states.std(2, unbiased=False), atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(tiny_speech(layer_statistics=statistics).logits, raw)
        mask = torch.zeros(2, 100, dtype=torch.bool)
        mask[:, :30] = True
        torch.testing.assert_close(layer_statistics(states, mask), layer_statistics(states[:, :, :30]))
    assert tiny_speech.frozen_backbone_prefixes() == ("encoder.",)


def test_soft_labels_class_weights_and_padding_mask(tiny_speech):
    features = torch.randn(3, 80, 200)
    soft = torch.softmax(torch.randn(3, 8), -1)
    assert torch.isfinite(tiny_speech(input_features=features, labels=soft).loss)
    assert torch.isfinite(tiny_speech(input_features=features, labels=torch.tensor([0, 3, 7])).loss)
    mask = torch.ones(3, 200, dtype=torch.long)
    mask[:, 100:] = 0
    with torch.no_grad():
        masked = tiny_speech(input_features=features, attention_mask=mask).logits
        assert not torch.allclose(tiny_speech(input_features=features).logits, masked)
        # the per-sample mask the feature extractor returns when the mask comes from its config: same answer
        per_sample = mask.repeat_interleave(160, dim=1)
        torch.testing.assert_close(tiny_speech(input_features=features, attention_mask=per_sample).logits, masked)
    with pytest.raises(ValueError, match="input_features must be"):
        tiny_speech(input_features=torch.randn(1, 200, 80))


def test_auto_class_pipeline_and_remote_code(tiny_speech, tmp_path):
    folder = tmp_path / "speech"
    tiny_speech.save_pretrained(folder)
    WhisperFeatureExtractor(chunk_length=2, return_attention_mask=True).save_pretrained(folder)
    loaded = AutoModelForAudioClassification.from_pretrained(folder)
    assert type(loaded) is AVEmotionForSpeechClassification
    torch.testing.assert_close(loaded.head.feature_std, tiny_speech.head.feature_std)  # the scale is saved
    classify = pipeline("audio-classification", model=str(folder))
    wave = np.sin(np.linspace(0, 1000, 16000)).astype(np.float32)  # 1 s in a 2 s window: half of it padding
    result = classify({"raw": wave, "sampling_rate": 16000}, top_k=8)
    assert len(result) == 8 and {r["label"] for r in result} == set(EMOTIONS)
    with torch.no_grad():
        features = classify.feature_extractor(wave, sampling_rate=16000, return_tensors="pt",
                                              return_attention_mask=True)
        expected = tiny_speech(input_features=features["input_features"]).logits
        masked = tiny_speech(**features).logits
    # the pipeline leaves the padding out of the statistics, as training does
    best = max(result, key=lambda r: r["score"])
    assert best["label"] == EMOTIONS[int(masked.argmax())]
    assert abs(best["score"] - float(torch.softmax(masked, -1).max())) < 1e-5
    features = features["input_features"]
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


def test_head_training_on_cached_statistics_learns_a_separable_task(tmp_path):
    """Two classes whose cached statistics differ in a few features, on a large random offset and scale: the
    trained head separates speakers it never saw."""
    from hf_avemotion.speech_training import SpeechRecipe, StatisticsCache, predict_proba, train_speech_head

    generator = torch.Generator().manual_seed(0)
    labels = ["happy", "sad"] * 40
    statistics = torch.randn(80, 4, 64, generator=generator) * 0.5
    statistics[0::2, :, :4] += 2.0
    cache = StatisticsCache.__new__(StatisticsCache)
    cache.columns = {"corpus": ["x"] * 80, "clip_id": [str(i) for i in range(80)],
                     "speaker": [f"x:{i % 8}" for i in range(80)], "label": labels}
    cache.statistics = statistics * 30 + 100  # standardisation must undo this
    train, test = cache.select(exclude_speakers={"x:6", "x:7"}), cache.select(speakers={"x:6", "x:7"})
    recipe = SpeechRecipe(epochs=15, batch_size=16, learning_rate=3e-3)
    model, history = train_speech_head(cache, train, tiny_whisper(tmp_path / "whisper"), recipe, log=lambda _: None)
    accuracy = (predict_proba(model, cache, test).argmax(-1) == cache.targets(test).numpy()).mean()
    assert accuracy >= 0.9 and history[-1]["train_loss"] < history[0]["train_loss"]


# ---------------------------------------------------------------------------------------------- the shipped model


def test_shipped_speech_model_names_emotions_of_an_unseen_speaker(shared_data):
    """CREMA-D actor 1002 is in no corpus we train on: the shipped model must name his emotions well above chance
    (1 in 6). Measured: 2 of 6 for the shipped head (3 of 6 for the previous one; both call his angry and happy
    clips fearful): six clips, an anecdote kept as a floor (docs/speech_model.md)."""
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
    assert len(clips) == 6 and hits >= 2, f"{hits}/6 right"
