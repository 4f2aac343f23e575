"""Core model: config validation, every fusion type learns, masks, save/reload, remote code, Auto classes."""

import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import BLOCK_PACKAGE_IMPORT, TINY_AUDIO, TINY_VISION, tiny_config
from transformers import (AutoConfig, AutoModel, AutoModelForVideoClassification, ASTConfig, ASTModel, ViTConfig,
                          ViTModel)

from hf_avemotion import FUSION_TYPES, RAVDESS_EMOTIONS, AVEmotionConfig, AVEmotionForAudioVisualClassification


def batch(seed=0, size=4):
    generator = torch.Generator().manual_seed(seed)
    return dict(pixel_values=torch.randn(size, 4, 3, 32, 32, generator=generator),
                input_values=torch.randn(size, 64, 16, generator=generator))


def test_default_config_is_vit_b16_and_ast_base_with_ravdess_labels():
    config = AVEmotionConfig()
    assert config.vision_config.model_type == "vit" and config.vision_config.hidden_size == 768
    assert config.vision_config.image_size == 224 and config.vision_config.patch_size == 16
    assert config.audio_config.num_mel_bins == 128 and config.audio_config.max_length == 1024
    assert [config.id2label[i] for i in range(8)] == list(RAVDESS_EMOTIONS)
    assert config.label2id["surprised"] == 7 and config.fusion_type == "cross_attention"


@pytest.mark.parametrize("field,value", [
    ("fusion_type", "attention"), ("fusion_hidden_size", 0), ("fusion_num_heads", 3),
    ("fusion_dropout", 1.5), ("modality_dropout", 0.9), ("num_frames", -1), ("vision_pooling", "max"),
    ("class_weights", [1.0, 2.0]), ("label_smoothing", -0.1),
])
def test_bad_config_values_raise_value_error_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        tiny_config(**{field: value})


def test_audio_config_must_be_ast_or_whisper():
    with pytest.raises(ValueError, match="audio_config"):
        tiny_config(audio_config=dict(TINY_VISION))


@pytest.mark.parametrize("fusion_type", FUSION_TYPES)
def test_fusion_forward_with_and_without_masks(fusion_type):
    model = AVEmotionForAudioVisualClassification(tiny_config(fusion_type=fusion_type)).eval()
    inputs = batch()
    plain = model(**inputs).logits
    assert plain.shape == (4, 8) and torch.isfinite(plain).all()
    masked = model(**inputs, video_mask=torch.tensor([[1, 1, 0, 0]] * 4).bool(),
                   audio_mask=torch.tensor([1, 0, 1, 1]).bool()).logits
    assert torch.isfinite(masked).all()
    if fusion_type != "audio_only":  # masking frames must change what a video-using model sees
        assert not torch.allclose(plain, masked)


@pytest.mark.parametrize("fusion_type", FUSION_TYPES)
def test_single_modality_baselines_do_not_build_the_other_encoder(fusion_type):
    model = AVEmotionForAudioVisualClassification(tiny_config(fusion_type=fusion_type))
    assert (model.avemotion.vision_encoder is None) == (fusion_type == "audio_only")
    assert (model.avemotion.audio_encoder is None) == (fusion_type == "video_only")


@pytest.mark.parametrize("fusion_type", FUSION_TYPES)
def test_loss_on_a_fixed_batch_falls_by_80_percent_within_200_steps(fusion_type):
    torch.manual_seed(0)
    model = AVEmotionForAudioVisualClassification(tiny_config(fusion_type=fusion_type, fusion_dropout=0.0))
    inputs = batch(size=8)
    labels = torch.arange(8) % 8
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for step in range(200):
        loss = model(**inputs, labels=labels).loss
        first = loss.item() if first is None else first
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if loss.item() <= 0.2 * first:
            break
    assert loss.item() <= 0.2 * first, f"{fusion_type}: loss {first:.3f} -> {loss.item():.3f} after {step + 1} steps"


@pytest.mark.parametrize("fusion_type", FUSION_TYPES)
def test_rows_without_video_or_audio_give_finite_logits_and_gradients(fusion_type):
    model = AVEmotionForAudioVisualClassification(tiny_config(fusion_type=fusion_type))
    inputs = batch(size=3)
    video_mask = torch.tensor([[0, 0, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]]).bool()
    audio_mask = torch.tensor([1, 0, 1]).bool()
    out = model(**inputs, video_mask=video_mask, audio_mask=audio_mask, labels=torch.tensor([1, 2, 3]))
    assert torch.isfinite(out.logits).all()
    out.loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_masked_frames_do_not_influence_the_prediction():
    model = AVEmotionForAudioVisualClassification(tiny_config()).eval()
    inputs = batch(size=2)
    mask = torch.tensor([[1, 1, 0, 0]] * 2).bool()
    changed = dict(inputs, pixel_values=inputs["pixel_values"].clone())
    changed["pixel_values"][:, 2:] = torch.randn(2, 2, 3, 32, 32)
    assert torch.allclose(model(**inputs, video_mask=mask).logits, model(**changed, video_mask=mask).logits, atol=1e-6)


def test_per_frame_audio_mask_ignores_padding():
    model = AVEmotionForAudioVisualClassification(tiny_config()).eval()
    inputs = batch(size=2)
    frame_mask = torch.zeros(2, 64, dtype=torch.bool)
    frame_mask[:, :32] = True
    changed = dict(inputs, input_values=inputs["input_values"].clone())
    changed["input_values"][:, 48:] = 5.0  # only patches starting at frame >= 32 see this region
    a = model(**inputs, audio_mask=frame_mask).logits
    b = model(**changed, audio_mask=frame_mask).logits
    assert torch.allclose(a, b, atol=1e-6)


def test_attentions_are_returned_for_the_demo():
    model = AVEmotionForAudioVisualClassification(tiny_config()).eval()
    out = model(**batch(size=2), output_attentions=True)
    (a2v,), (v2a,) = out.audio_to_video_attentions, out.video_to_audio_attentions
    assert a2v.shape[:2] == (2, 2) and a2v.shape[-1] == 1 + 4  # null token + 4 frames
    assert torch.allclose(a2v.sum(-1), torch.ones_like(a2v.sum(-1)), atol=1e-5)
    assert v2a.shape[2] == 1 + 4


def test_late_fusion_returns_per_modality_logits_and_uses_the_present_one():
    model = AVEmotionForAudioVisualClassification(tiny_config(fusion_type="late")).eval()
    out = model(**batch(size=2), audio_mask=torch.tensor([0, 1]).bool())
    assert out.audio_logits.shape == out.video_logits.shape == (2, 8)
    assert torch.allclose(out.logits[0], out.video_logits[0], atol=1e-6)  # row 0 has no audio
    assert torch.allclose(out.fusion_weights.sum(-1), torch.ones(2))


def test_regression_uses_ccc_loss():
    model = AVEmotionForAudioVisualClassification(tiny_config(problem_type="regression", num_labels=2))
    targets = torch.randn(4, 2)
    out = model(**batch(), labels=targets)
    assert out.logits.shape == (4, 2)
    assert 0.0 <= out.loss.item() <= 2.0
    perfect = model.compute_loss(targets * 1.0, targets)
    assert perfect.item() == pytest.approx(0.0, abs=1e-4)


def test_class_weights_and_label_smoothing_change_the_loss():
    torch.manual_seed(0)
    plain = AVEmotionForAudioVisualClassification(tiny_config())
    weighted = AVEmotionForAudioVisualClassification(tiny_config(class_weights=[1.0] * 7 + [5.0], label_smoothing=0.1))
    weighted.load_state_dict(plain.state_dict())
    inputs, labels = batch(), torch.tensor([7, 7, 0, 1])
    assert plain(**inputs, labels=labels).loss.item() != pytest.approx(weighted(**inputs, labels=labels).loss.item())


def test_modality_dropout_only_in_training():
    model = AVEmotionForAudioVisualClassification(tiny_config(modality_dropout=0.5))
    inputs = batch(size=32)
    model.train()
    out = model.avemotion(**inputs)
    dropped = (~out.audio_mask).sum() + (~out.video_mask.any(-1)).sum()
    assert dropped > 0 and (out.audio_mask | out.video_mask.any(-1)).all()  # never both
    model.eval()
    out = model.avemotion(**inputs)
    assert out.audio_mask.all() and out.video_mask.all()


def test_bad_tensor_shapes_raise_clear_errors():
    model = AVEmotionForAudioVisualClassification(tiny_config())
    with pytest.raises(ValueError, match="pixel_values"):
        model(pixel_values=torch.randn(2, 3, 32, 32), input_values=torch.randn(2, 64, 16))
    with pytest.raises(ValueError, match="num_frames"):
        model(pixel_values=torch.randn(2, 6, 3, 32, 32), input_values=torch.randn(2, 64, 16))
    with pytest.raises(ValueError, match="audio_mask"):
        model(**batch(size=2), audio_mask=torch.ones(3, dtype=torch.bool))


@pytest.mark.parametrize("fusion_type", ["cross_attention", "late"])
def test_save_and_reload_gives_equal_outputs(tmp_path, fusion_type):
    model = AVEmotionForAudioVisualClassification(tiny_config(fusion_type=fusion_type)).eval()
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    assert not list(tmp_path.glob("*.bin"))
    for loader in (AutoModel, AutoModelForVideoClassification, AVEmotionForAudioVisualClassification):
        reloaded = loader.from_pretrained(tmp_path).eval()
        assert type(reloaded) is AVEmotionForAudioVisualClassification
        inputs = batch(seed=3)
        torch.testing.assert_close(model(**inputs).logits, reloaded(**inputs).logits, atol=1e-5, rtol=0)
    assert AutoConfig.from_pretrained(tmp_path).fusion_type == fusion_type


def test_attn_implementation_reaches_the_sub_encoders(tmp_path):
    AVEmotionForAudioVisualClassification(tiny_config()).save_pretrained(tmp_path)
    model = AutoModel.from_pretrained(tmp_path, attn_implementation="eager")
    assert model.avemotion.vision_encoder.config._attn_implementation == "eager"
    assert model.avemotion.audio_encoder.config._attn_implementation == "eager"
    sdpa = AutoModel.from_pretrained(tmp_path)
    assert sdpa.config._attn_implementation == "sdpa"
    inputs = batch()
    torch.testing.assert_close(model.eval()(**inputs).logits, sdpa.eval()(**inputs).logits, atol=1e-5, rtol=0)


REMOTE_CODE_CHECK = BLOCK_PACKAGE_IMPORT + textwrap.dedent("""
    import torch
    from transformers import AutoModel, AutoModelForVideoClassification
    folder = sys.argv[1]
    ref = torch.load(folder + "/reference.pt")
    for loader in (AutoModel, AutoModelForVideoClassification):
        model = loader.from_pretrained(folder, trust_remote_code=True).eval()
        assert type(model).__name__ == "AVEmotionForAudioVisualClassification", type(model)
        assert "hf_avemotion" not in type(model).__module__, type(model).__module__
        logits = model(pixel_values=ref["pixel_values"], input_values=ref["input_values"]).logits
        torch.testing.assert_close(logits, ref["logits"], atol=1e-5, rtol=0)
    print("REMOTE_OK")
""")


def test_remote_code_loads_without_the_package(tmp_path):
    model = AVEmotionForAudioVisualClassification(tiny_config()).eval()
    model.save_pretrained(tmp_path)
    assert {"configuration_avemotion.py", "modeling_avemotion.py"} <= {p.name for p in tmp_path.iterdir()}
    config = (tmp_path / "config.json").read_text()
    assert "modeling_avemotion.AVEmotionForAudioVisualClassification" in config and "auto_map" in config
    inputs = batch(seed=5)
    with torch.no_grad():
        torch.save(dict(inputs, logits=model(**inputs).logits), tmp_path / "reference.pt")
    result = subprocess.run([sys.executable, "-c", REMOTE_CODE_CHECK, str(tmp_path)], capture_output=True,
                            text=True, timeout=300, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin",
                                                         "HF_HOME": str(tmp_path / "hf_home")})
    assert "REMOTE_OK" in result.stdout, result.stderr[-3000:]


def test_from_backbones_loads_local_checkpoints_and_interpolates_ast_positions(tmp_path):
    vit = ViTModel(ViTConfig(**{k: v for k, v in TINY_VISION.items() if k != "model_type"}))
    ast = ASTModel(ASTConfig(**{k: v for k, v in TINY_AUDIO.items() if k != "model_type"}, ))
    with torch.no_grad():
        ast.embeddings.position_embeddings.normal_()
    vit.save_pretrained(tmp_path / "vit")
    ast.save_pretrained(tmp_path / "ast")
    model = AVEmotionForAudioVisualClassification.from_backbones(
        vision=str(tmp_path / "vit"), audio=str(tmp_path / "ast"), audio_max_length=32, freeze_backbones=True,
        fusion_hidden_size=32, fusion_num_heads=2, fusion_num_layers=1, num_frames=4)
    encoder = model.avemotion.vision_encoder
    torch.testing.assert_close(encoder.embeddings.patch_embeddings.projection.weight,
                               vit.embeddings.patch_embeddings.projection.weight)
    assert model.config.audio_config.max_length == 32
    positions = model.avemotion.audio_encoder.embeddings.position_embeddings
    assert positions.shape[1] == 2 + 2 * 4  # 2 special + 2 freq x 4 time patches (was 2 x 8)
    torch.testing.assert_close(positions[:, :2], ast.embeddings.position_embeddings[:, :2])
    assert not any(p.requires_grad for p in encoder.parameters())
    assert all(p.requires_grad for p in model.classifier.parameters())
    logits = model(pixel_values=torch.randn(1, 4, 3, 32, 32), input_values=torch.randn(1, 32, 16)).logits
    assert torch.isfinite(logits).all()


def test_from_backbones_rejects_mismatched_mel_bins(tmp_path):
    ASTModel(ASTConfig(**{k: v for k, v in TINY_AUDIO.items() if k != "model_type"})).save_pretrained(tmp_path)
    from hf_avemotion.modeling_avemotion import interpolate_ast_positions
    source = ASTConfig(**{k: v for k, v in TINY_AUDIO.items() if k != "model_type"})
    target = ASTConfig(**{**{k: v for k, v in TINY_AUDIO.items() if k != "model_type"}, "num_mel_bins": 32})
    with pytest.raises(ValueError, match="mel bins"):
        interpolate_ast_positions(torch.zeros(1, 18, 32), source, target)
