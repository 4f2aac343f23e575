"""The package's default audio-visual model: built from the face and speech models it must agree with, shipped as a
head the package assembles, and what `pipeline(TASK)` (no model), the CLI and `make demo` use."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import BLOCK_PACKAGE_IMPORT, REPO_ROOT

from hf_avemotion import AVEmotionConfig, AVEmotionForAudioVisualClassification

SHARED = REPO_ROOT.parent / "shared"
EXAMPLES = REPO_ROOT / "demo" / "examples"
TINY_WHISPER = dict(model_type="whisper", d_model=32, encoder_layers=1, encoder_attention_heads=2,
                    encoder_ffn_dim=64, decoder_layers=1, decoder_attention_heads=2, decoder_ffn_dim=64,
                    num_mel_bins=80, max_source_positions=200)
TINY_DINOV2 = dict(model_type="dinov2", hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                   intermediate_size=64, image_size=28, patch_size=14)
LABELS = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]


def tiny_model(fusion_type="late", **overrides):
    config = AVEmotionConfig(vision_config=dict(TINY_DINOV2), audio_config=dict(TINY_WHISPER), fusion_type=fusion_type,
                             fusion_hidden_size=32, fusion_num_heads=2, fusion_num_layers=1, num_frames=4,
                             vision_pooling="cls_mean", audio_layer_pooling="weighted", modality_heads=True,
                             video_merged_labels={"calm": "neutral"}, **overrides)
    return AVEmotionForAudioVisualClassification(config).eval()


def log_probs(rows):
    return torch.tensor(rows, dtype=torch.float32).clamp(min=1e-8).log()


def test_late_fusion_splits_the_faces_neutral_between_calm_and_neutral_as_the_voice_does():
    model = tiny_model()
    face = log_probs([[1, 0, 0, 0, 0, 0, 0, 0]] * 3)  # the face: neutral (it cannot tell calm)
    voice = log_probs([[0.25, 0.75, 0, 0, 0, 0, 0, 0]] * 3)
    fused, weights = model.fuse_modality_probs(voice, face, torch.tensor([True, False, True]),
                                               torch.tensor([True, True, False]))
    p = fused.exp()
    # both present: calm = 0.5 * 0.75 (voice) + 0.5 * 0.75 (the face's neutral, split as the voice splits it)
    torch.testing.assert_close(p[0, :2], torch.tensor([0.25, 0.75]))
    # no voice: the face alone, and a face never says calm
    torch.testing.assert_close(p[1, :2], torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(weights[1], torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(p[2, :2], torch.tensor([0.25, 0.75]))  # no face: the voice alone
    assert torch.allclose(p.sum(-1), torch.ones(3), atol=1e-5)


def test_modality_heads_ignore_padding_only_through_the_frame_mask():
    model = tiny_model(fusion_type="cross_attention")
    torch.manual_seed(0)
    inputs = dict(pixel_values=torch.randn(2, 4, 3, 28, 28), input_values=torch.randn(2, 200, 80))
    short = torch.zeros(2, 200, dtype=torch.bool)
    short[:, :60] = True
    with torch.no_grad():
        full = model(**inputs)
        masked = model(**inputs, audio_frame_mask=short)
    assert not torch.allclose(full.audio_logits, masked.audio_logits)  # the speech head pools 60 frames only
    torch.testing.assert_close(full.logits, masked.logits)  # the fusion sees what audio_mask says, unchanged
    torch.testing.assert_close(full.video_logits, masked.video_logits)
    with pytest.raises(ValueError, match="modality_heads"):
        AVEmotionConfig(fusion_type="audio_only", audio_config=dict(TINY_WHISPER), modality_heads=True)
    with pytest.raises(ValueError, match="video_merged_labels"):
        AVEmotionConfig(audio_config=dict(TINY_WHISPER), video_merged_labels={"bored": "neutral"})


def test_processor_marks_the_frames_that_hold_audio():
    from hf_avemotion import AVEmotionProcessor
    from hf_avemotion.processing_avemotion import _default_image_processor
    from transformers import WhisperFeatureExtractor

    processor = AVEmotionProcessor(_default_image_processor(32), WhisperFeatureExtractor(chunk_length=4))
    features = processor(audio=[np.zeros(16000, np.float32), np.zeros(80000, np.float32), None], sampling_rate=16000)
    assert features["audio_frame_mask"].shape == (3, 400)
    assert features["audio_frame_mask"].sum(-1).tolist() == [100, 400, 0]


# ---------------------------------------------------------------------------------------------- the real default


@pytest.fixture(scope="module")
def default_dir():
    from hf_avemotion import DEFAULT_MODEL, pretrained_path

    return pretrained_path(DEFAULT_MODEL)


def test_default_model_keeps_the_face_and_speech_models_answers(default_dir):
    """Its per-modality outputs are the shipped face and speech models' own, on a real voice and real faces."""
    from transformers import AutoModel, AutoModelForAudioClassification, AutoModelForImageClassification, AutoProcessor

    from hf_avemotion import pretrained_path
    from hf_avemotion.media import load_clip

    model = AutoModel.from_pretrained(default_dir).eval()
    processor = AutoProcessor.from_pretrained(default_dir)
    assert model.config.modality_heads and list(model.config.id2label.values()) == LABELS
    clip = load_clip(EXAMPLES / "ravdess_14_angry.mp4")
    features = processor(videos=[clip.frames], audio=[clip.audio], sampling_rate=16000)
    features.pop("face_mask")
    with torch.no_grad():
        out = model(**features)
        speech = AutoModelForAudioClassification.from_pretrained(pretrained_path("speech")).eval()
        extractor = processor.feature_extractor
        mel = extractor([clip.audio], sampling_rate=16000, return_tensors="pt", return_attention_mask=True)
        voice = speech(input_features=mel["input_features"], attention_mask=mel["attention_mask"]).logits
        face = AutoModelForImageClassification.from_pretrained(pretrained_path("face")).eval()
        faces = face(pixel_values=features["pixel_values"][0]).logits.softmax(-1).mean(0)
    torch.testing.assert_close(out.audio_logits[0], voice.log_softmax(-1)[0], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out.video_logits[0].exp(), faces, atol=1e-5, rtol=1e-4)
    assert out.logits.shape == (1, 8) and torch.isfinite(out.logits).all()


def test_pipeline_without_a_model_uses_the_default(default_dir):
    code = ("import json, hf_avemotion; from transformers import pipeline; "
            "pipe = pipeline('audio-visual-emotion-recognition'); "
            f"r = pipe({str(EXAMPLES / 'ravdess_14_angry.mp4')!r}, return_metadata=True); "
            "print(json.dumps({'path': pipe.model.name_or_path, 'r': r}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["path"] == str(default_dir)
    result = out["r"]
    assert sorted(s["label"] for s in result["scores"]) == sorted(LABELS)
    assert abs(sum(s["score"] for s in result["scores"]) - 1) < 1e-4
    assert result["has_audio"] and result["face_found_ratio"] > 0.5
    assert set(result["modalities"]) == {"face", "voice"} and result["modalities"]["voice"]["label"] in LABELS


def test_cli_predict_and_push_default_to_the_default_model(default_dir, tmp_path):
    avemotion = [sys.executable, "-m", "hf_avemotion"]
    done = subprocess.run(avemotion + ["predict", str(EXAMPLES / "crema_d_1002_happy.mp3"), "--json"],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)[0]
    assert result["has_audio"] and result["face_found_ratio"] == 0.0
    assert result["modalities"]["face"] is None and result["modalities"]["voice"]["label"] in LABELS
    staged = tmp_path / "staged"
    done = subprocess.run(avemotion + ["push", "--repo-id", "someone/avemotion", "--dry-run", str(staged)],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    names = {p.name for p in staged.rglob("*") if p.is_file()}
    assert {"config.json", "model.safetensors", "modeling_avemotion.py", "configuration_avemotion.py",
            "README.md"} <= names
    card = (staged / "README.md").read_text()
    assert "cross-corpus pairs" in card and "| real AV items, face + voice |" in card
    # self-contained: the staged folder runs in a Python without this package, through its remote code
    script = BLOCK_PACKAGE_IMPORT + (
        "import json\nfrom transformers import pipeline\n"
        f"pipe = pipeline('audio-visual-emotion-recognition', model={str(staged)!r}, trust_remote_code=True)\n"
        f"r = pipe({str(EXAMPLES / 'ravdess_14_angry.mp4')!r}, return_metadata=True)\n"
        "print(json.dumps({'module': type(pipe.model).__module__, 'r': r}))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    remote = json.loads(done.stdout.strip().splitlines()[-1])
    assert not remote["module"].startswith("hf_avemotion")
    assert remote["r"]["modalities"]["voice"]["label"] in LABELS and len(remote["r"]["scores"]) == 8


@pytest.mark.skipif(not (SHARED / "corpus" / "av").is_dir(), reason="../shared is absent")
def test_every_real_item_is_counted():
    from hf_avemotion.av_training import real_items

    items = real_items(SHARED / "corpus", SHARED / "data")
    by_source = {}
    for item in items:
        by_source[item["source"]] = by_source.get(item["source"], 0) + 1
    assert by_source == {"enterface05": 6, "ravdess_av": 1, "mead": 1, "ravdess_frames": 3, "crema_d_frames": 18,
                         "crema_d_audio": 6}
    assert all(item["audio"] is not None and item["audio"].is_file() for item in items
               if item["source"] == "ravdess_frames")
    assert {item["label"] for item in items} <= set(LABELS)


def test_every_system_answers_from_one_forward_of_a_cross_attention_model():
    from hf_avemotion.av_training import SYSTEMS, system_outputs

    model = tiny_model(fusion_type="cross_attention")
    torch.manual_seed(0)
    inputs = dict(frame_embeds=torch.randn(3, 4, 64), video_mask=torch.tensor([[1, 1, 0, 0], [0] * 4, [1] * 4]).bool(),
                  audio_states=torch.randn(3, 100, 32), audio_layer_statistics=torch.randn(3, 2, 64),
                  audio_mask=torch.tensor([True, True, False]),
                  audio_frame_mask=torch.ones(3, 200, dtype=torch.bool))
    probs = system_outputs(model, inputs)
    assert set(probs) == set(SYSTEMS)
    for p in probs.values():
        assert p.shape == (3, 8) and np.allclose(p.sum(-1), 1, atol=1e-4)
    np.testing.assert_allclose(probs["late_fusion"][1], probs["voice_only"][1], atol=1e-5)  # no face: the voice
    assert probs["late_fusion"][2][1] == pytest.approx(0, abs=1e-6)  # no voice: the face, which never says calm
