"""Training: YAML + overrides, a tiny run end to end, resume = uninterrupted, embedding cache, 2-process
Accelerate launch, cross-validation / ablation table."""

import json
import os
import subprocess
import sys

import pytest
import torch
import yaml
from conftest import REPO_ROOT, tiny_config

from hf_avemotion import AVEmotionForAudioVisualClassification
from hf_avemotion.training import class_balanced_weights, parse_training_args, train

TINY_MODEL = dict(image_size=32, patch_size=16, vision_hidden_size=32, vision_layers=1, vision_heads=2,
                  vision_pooling="mean", num_mel_bins=16, audio_max_length=112, audio_patch_size=16,
                  audio_stride=10, audio_hidden_size=32, audio_layers=1, audio_heads=2, fusion_hidden_size=32,
                  fusion_num_layers=1, fusion_num_heads=2, num_frames=2, modality_dropout=0.2,
                  fusion_type="cross_attention")
TINY_TRAIN = dict(num_epochs=3, batch_size=8, eval_batch_size=16, learning_rate=1e-3, warmup_ratio=0.1,
                  early_stopping_patience=10, seed=0, fold="fold_1")


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    """4 synthetic actors x 8 emotions x 1 clip of 1 s, prepared with 3 actor folds (2 frames, 32 px)."""
    from hf_avemotion.prepare import prepare_folder
    from hf_avemotion.synthetic import generate_synthetic_benchmark

    root = tmp_path_factory.mktemp("synthetic")
    generate_synthetic_benchmark(root / "clips", num_actors=4, clips_per_emotion=1, duration=1.0, seed=1)
    folds = {"fold_1": {"test": ["1"], "validation": ["2"]}, "fold_2": {"test": ["3"], "validation": ["4"]}}
    return prepare_folder(root / "clips", root / "prepared", num_frames=2, image_size=32, folds=folds)


@pytest.fixture
def tiny_yaml(tmp_path, tiny_dataset):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({**TINY_MODEL, **TINY_TRAIN, "dataset": str(tiny_dataset)}))
    return path


def run(yaml_path, output_dir, *extra):
    return train(*parse_training_args(["--config", str(yaml_path), "--output_dir", str(output_dir), *extra]))


def test_yaml_defaults_and_command_line_overrides(tiny_yaml):
    model_args, data_args, train_args = parse_training_args(
        ["--config", str(tiny_yaml), "--fusion_type", "late", "--learning_rate", "0.5"])
    assert model_args.fusion_type == "late" and train_args.learning_rate == 0.5
    assert model_args.image_size == 32 and train_args.num_epochs == 3 and data_args.fold == "fold_1"


def test_unknown_yaml_setting_is_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("learning_rat: 0.1\n")
    with pytest.raises(ValueError, match="learning_rat"):
        parse_training_args(["--config", str(bad)])


def test_class_balanced_weights_upweight_rare_classes():
    weights = class_balanced_weights(torch.tensor([0, 0, 0, 1]).numpy(), 3)
    assert weights[1] > weights[0] and weights[2] == 0.0


def test_tiny_training_writes_a_loadable_model_metrics_and_plots(tiny_yaml, tmp_path):
    from transformers import AutoModel, AutoProcessor

    out = tmp_path / "run"
    results = run(tiny_yaml, out)
    assert 0.0 <= results["accuracy"] <= 1.0 and len(results["history"]) == 3
    assert json.loads((out / "metrics.json").read_text())["fold"] == "fold_1"
    for plot in ("confusion_matrix.png", "roc_pr.png", "training_curves.png"):
        assert (out / "plots" / plot).stat().st_size > 5000
    model = AutoModel.from_pretrained(out / "model")
    processor = AutoProcessor.from_pretrained(out / "model")
    assert model.config.id2label[0] == "neutral" and processor.num_frames == 2
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["epoch_2", "epoch_3"]  # keep 2, no temp
    # the saved model reproduces the test metrics through the evaluate command's code path
    from hf_avemotion.experiments import evaluate_model
    again = evaluate_model(out / "model", results["dataset"], "fold_1", output_dir=tmp_path / "eval")
    assert again["accuracy"] == pytest.approx(results["accuracy"])


def test_resume_after_first_epoch_ends_with_the_same_weights(tiny_yaml, tmp_path):
    run(tiny_yaml, tmp_path / "straight")
    stopped = run(tiny_yaml, tmp_path / "split", "--stop_after_epoch", "1")
    assert stopped["stopped_at_epoch"] == 1 and not (tmp_path / "split" / "model").exists()
    resumed = run(tiny_yaml, tmp_path / "split", "--resume", "true")
    a = AVEmotionForAudioVisualClassification.from_pretrained(tmp_path / "straight" / "model").state_dict()
    b = AVEmotionForAudioVisualClassification.from_pretrained(tmp_path / "split" / "model").state_dict()
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6, msg=key)
    straight = json.loads((tmp_path / "straight" / "metrics.json").read_text())
    assert [h["train_loss"] for h in resumed["history"]] == pytest.approx([h["train_loss"] for h in straight["history"]])


def test_frozen_backbones_with_cached_embeddings_train_only_the_head(tiny_yaml, tmp_path):
    results = run(tiny_yaml, tmp_path / "cached", "--freeze_backbones", "true", "--cache_embeddings", "true")
    assert len(results["history"]) == 3
    with pytest.raises(ValueError, match="freeze_backbones"):
        run(tiny_yaml, tmp_path / "bad", "--cache_embeddings", "true")


def test_cached_encoder_outputs_give_the_same_logits_as_raw_inputs():
    model = AVEmotionForAudioVisualClassification(tiny_config()).eval()
    pixel_values, input_values = torch.randn(2, 4, 3, 32, 32), torch.randn(2, 64, 16)
    video_mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]]).bool()
    audio_mask = torch.tensor([1, 0]).bool()
    core = model.avemotion
    frame_embeds = core.embed_frames(pixel_values, video_mask)
    audio_states = core.embed_audio(input_values, audio_mask[:, None].expand(2, 64))
    raw = model(pixel_values, input_values, video_mask, audio_mask).logits
    cached = model(video_mask=video_mask, audio_mask=audio_mask, frame_embeds=frame_embeds,
                   audio_states=audio_states).logits
    torch.testing.assert_close(raw, cached, rtol=0, atol=1e-5)


def test_accelerate_launch_with_two_cpu_processes(tiny_yaml, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2", "--num_machines", "1",
         "--mixed_precision", "no", "--dynamo_backend", "no", "--cpu", "-m", "hf_avemotion.training",
         "--config", str(tiny_yaml), "--output_dir", str(out), "--num_epochs", "2"],
        capture_output=True, text=True, timeout=600, env=env, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["history"]) == 2 and metrics["num_test_clips"] == 8  # gathered from both processes
    AVEmotionForAudioVisualClassification.from_pretrained(out / "model")


def test_ablation_writes_a_table_with_one_row_per_fusion_type(tiny_yaml, tmp_path):
    from hf_avemotion.experiments import ablation

    args = parse_training_args(["--config", str(tiny_yaml), "--output_dir", str(tmp_path / "abl"), "--num_epochs", "1"])
    results, table = ablation(*args, fusion_types=["late", "audio_only"], folds=["fold_1", "fold_2"])
    assert set(results) == {"late", "audio_only"}
    assert "| late |" in table and "| audio_only |" in table and "±" in table
    assert results["late"]["folds"] == ["fold_1", "fold_2"]
    assert (tmp_path / "abl" / "ablation.md").read_text() == table


@pytest.mark.parametrize("config", sorted((REPO_ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_parses(config):
    model_args, data_args, train_args = parse_training_args(["--config", str(config)])
    assert model_args.fusion_type and train_args.num_epochs > 0
    if model_args.vision_model:  # real-benchmark configs name the checkpoints the docs promise
        assert model_args.vision_model == "google/vit-base-patch16-224-in21k"
        assert model_args.audio_model == "MIT/ast-finetuned-audioset-10-10-0.4593"
