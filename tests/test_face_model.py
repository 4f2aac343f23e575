"""Face model (hf_avemotion.face_training): the mechanics on a tiny random DINOv2, and the shipped model on real faces.

The tiny tests build a 3-block Dinov2 at 28 px (2x2 patches of 14) with 2 "cached" blocks: the split forward
(`lower_tokens` + `upper_logits`) equals the model's own, the soft-target loss, token dropout, training on a token
cache with resume, save/load with `AutoModelForImageClassification`, `pipeline("image-classification")`, and the
shipped-head round trip through `backbones.pretrained_path` (head file + backbone folder -> assembled model).
The last test runs the shipped model on real FER+ faces and skips when the cache has no converted dinov2-small.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from hf_avemotion import backbones  # noqa: E402
from hf_avemotion import face_training as ft  # noqa: E402
from hf_avemotion.corpora import EMOTIONS  # noqa: E402

SIZE, CACHED = 28, 2
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


@pytest.fixture(scope="module")
def tiny_backbone(tmp_path_factory) -> Path:
    """A random 3-block Dinov2Model folder (hidden 32), saved like the converted dinov2-small."""
    from transformers import Dinov2Config, Dinov2Model

    torch.manual_seed(0)
    config = Dinov2Config(hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64,
                          image_size=SIZE, patch_size=14)
    folder = tmp_path_factory.mktemp("dinov2-tiny")
    Dinov2Model(config).save_pretrained(folder)
    return folder


def tiny_classifier(backbone: Path, seed: int = 1):
    model = ft.build_model(backbone)
    torch.manual_seed(seed)
    with torch.no_grad():  # a "trained" top block and head, different from the backbone's
        for p in list(model.dinov2.encoder.layer[CACHED:].parameters()) + list(model.classifier.parameters()):
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def faces(n: int = 4, size: int = SIZE) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (n, size, size, 3), dtype=np.uint8)


def test_split_forward_is_the_models_forward(tiny_backbone):
    model = tiny_classifier(tiny_backbone)
    pixels = ft.normalise(faces())
    with torch.no_grad():
        split = ft.upper_logits(model, ft.lower_tokens(model, pixels, CACHED), CACHED)
        whole = model(pixel_values=pixels).logits
    assert split.shape == (4, len(EMOTIONS))
    torch.testing.assert_close(split, whole, atol=1e-5, rtol=1e-5)


def test_processor_matches_normalise():
    views = faces(2, 112)
    from_processor = ft.image_processor()(list(views), return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(from_processor, ft.normalise(views), atol=1e-5, rtol=1e-5)


def test_soft_target_loss():
    logits = torch.randn(5, len(EMOTIONS), requires_grad=True)
    labels = torch.tensor([0, 2, 3, 4, 7])
    one_hot = torch.nn.functional.one_hot(labels, len(EMOTIONS)).float()
    torch.testing.assert_close(ft.soft_target_loss(logits, one_hot), torch.nn.functional.cross_entropy(logits, labels))
    votes = torch.tensor([[6, 0, 4, 0, 0, 0, 0, 0, 0, 0]])  # 6 neutral, 4 surprise
    soft = torch.tensor([ft.soft_label(v) for v in votes.tolist()])
    assert soft[0, EMOTIONS.index("neutral")] == pytest.approx(0.6)
    assert soft[0, EMOTIONS.index("calm")] == 0
    weights = ft.class_weights_from(torch.cat([soft, one_hot]), power=0.5)
    assert weights[EMOTIONS.index("calm")] == 0 and (weights[weights > 0] > 0).all()
    ft.soft_target_loss(logits, one_hot, weights).backward()
    assert torch.isfinite(logits.grad).all()


def test_drop_tokens_keeps_cls():
    tokens = torch.arange(2 * 9 * 3, dtype=torch.float32).view(2, 9, 3)
    kept = ft.drop_tokens(tokens, 0.5, torch.Generator().manual_seed(0))
    assert kept.shape == (2, 5, 3)
    torch.testing.assert_close(kept[:, 0], tokens[:, 0])
    assert ft.drop_tokens(tokens, 1.0) is tokens


def test_face_view_is_a_face_sized_rgb_image():
    grey = np.random.default_rng(1).integers(0, 255, (48, 48), dtype=np.uint8)
    plain = ft.face_view(grey, None)
    assert plain.shape == (112, 112, 3) and plain.dtype == np.uint8 and (plain[..., 0] == plain[..., 1]).all()
    a, b = (ft.face_view(grey, np.random.default_rng(3)) for _ in range(2))
    assert a.shape == (112, 112, 3) and (a == b).all()  # same seed, same view


def test_train_on_cache_resumes_and_saves(tiny_backbone, tmp_path):
    from transformers import AutoModelForImageClassification

    model = ft.build_model(tiny_backbone).eval()
    cache = tmp_path / "cache"
    cache.mkdir()
    g = torch.Generator().manual_seed(0)
    for name, n in (("train0", 64), ("val", 16)):
        labels = torch.randint(0, len(EMOTIONS), (n,), generator=g)
        labels[labels == EMOTIONS.index("calm")] = 0
        with torch.no_grad():
            tokens = ft.lower_tokens(model, ft.normalise(faces(n)), CACHED).half()
        soft = torch.nn.functional.one_hot(labels, len(EMOTIONS)).float()
        torch.save({"tokens": tokens, "soft": soft, "label": labels}, cache / f"{name}-0000.pt")
    recipe = ft.FaceRecipe(epochs=1, batch_size=16, num_cached_blocks=CACHED, keep_tokens=0.75)
    first = ft.train_face_model(tmp_path, tiny_backbone, recipe, log=lambda m: None)
    assert len(first["epochs"]) == 1 and (tmp_path / "checkpoints" / "step-4" / "done").exists()
    torch.save(torch.load(cache / "train0-0000.pt"), cache / "train1-0000.pt")  # a view cached after epoch 1
    recipe.epochs = 2
    second = ft.train_face_model(tmp_path, tiny_backbone, recipe, log=lambda m: None)
    assert [e["epoch"] for e in second["epochs"]] == [1, 2]
    assert [e["view_pass"] for e in second["epochs"]] == ["train0", "train1"]
    assert json.loads((tmp_path / "history.json").read_text())["epochs"][1]["epoch"] == 2
    loaded = AutoModelForImageClassification.from_pretrained(tmp_path / "best")
    assert loaded.config.id2label[EMOTIONS.index("calm")] == "calm"



def test_epochs_cycle_views_and_take_a_newly_cached_one_next():
    views = ["train0", "train1", "train2"]
    assert [ft.least_used_view(views[:2], [{"view_pass": v} for v in done]) for done in ([], ["train0"])] == views[:2]
    # three epochs ran on two views (0, 1, 0); a third view was cached: it comes next, then the less used one
    done = [{"view_pass": v} for v in ("train0", "train1", "train0")]
    assert ft.least_used_view(views, done) == "train2"
    assert ft.least_used_view(views, done + [{"view_pass": "train2"}]) == "train1"


def test_pipeline_loads_the_saved_model(tiny_backbone, tmp_path):
    from PIL import Image
    from transformers import pipeline

    tiny_classifier(tiny_backbone).save_pretrained(tmp_path)
    ft.image_processor(SIZE).save_pretrained(tmp_path)
    classify = pipeline("image-classification", model=str(tmp_path), top_k=len(EMOTIONS))
    out = classify(Image.fromarray(faces(1, 48)[0]))
    assert sorted(o["label"] for o in out) == sorted(EMOTIONS)
    assert sum(o["score"] for o in out) == pytest.approx(1, abs=1e-4)


@pytest.fixture
def shipped_tiny(tiny_backbone, tmp_path, monkeypatch):
    """A tiny "trained" model shipped into a temporary package folder, with the tiny backbone as the cached
    dinov2-small (HF_AVEMOTION_CACHE and backbones.SHIPPED_DIR point into tmp_path)."""
    import shutil

    model = tiny_classifier(tiny_backbone)
    trained = tmp_path / "trained"
    model.save_pretrained(trained)
    monkeypatch.setenv(backbones.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(backbones, "SHIPPED_DIR", tmp_path / "pretrained")
    converted = tmp_path / "cache" / "dinov2-small"
    shutil.copytree(tiny_backbone, converted)  # saved by save_pretrained, as backbones._convert_dinov2 saves it
    (converted / "conversion.json").write_text("{}")
    return model, ft.ship(trained, tmp_path / "pretrained" / "face", num_cached_blocks=CACHED)


def test_ship_writes_only_trained_weights(shipped_tiny):
    from safetensors.torch import load_file

    _, shipped = shipped_tiny
    head = load_file(str(shipped / backbones.HEAD_FILE))
    assert all(v.dtype == torch.float16 for v in head.values())
    assert not any(k.startswith(("dinov2.embeddings.", "dinov2.encoder.layer.0.", "dinov2.encoder.layer.1."))
                   for k in head)
    assert "dinov2.encoder.layer.2.mlp.fc1.weight" in head and "classifier.weight" in head
    assert {"preprocessor_config.json", "README.md", "config.json"} <= {f.name for f in shipped.iterdir()}


def test_assembled_model_equals_trained_one(shipped_tiny):
    from transformers import AutoModelForImageClassification

    model, _ = shipped_tiny
    folder = backbones.pretrained_path("face", log=lambda m: None)
    assembled = AutoModelForImageClassification.from_pretrained(folder).eval()
    pixels = ft.normalise(faces(2))
    with torch.no_grad():
        torch.testing.assert_close(assembled(pixel_values=pixels).logits, model(pixel_values=pixels).logits,
                                   atol=2e-2, rtol=2e-2)  # the trained part went through fp16


def _real_model_available() -> bool:
    return ((backbones.cache_dir() / "dinov2-small" / "conversion.json").exists()
            and (backbones.TRAINED_MODELS["face"].shipped / backbones.HEAD_FILE).exists()
            and (CORPUS / "faces" / "fer").is_dir())


@pytest.mark.skipif(not _real_model_available(), reason="needs the converted dinov2-small, the shipped face head "
                                                         "and ../shared/corpus")
def test_shipped_model_on_real_faces():
    from PIL import Image
    from transformers import pipeline

    rows = [r for r in ft.load_fer(CORPUS, "public_test") if r["label"] >= 0][:40]
    folder = backbones.pretrained_path("face")
    classify = pipeline("image-classification", model=str(folder))
    outputs = classify([Image.fromarray(ft.decode_grey(r["image"])) for r in rows])
    correct = sum(out[0]["label"] == EMOTIONS[r["label"]] for out, r in zip(outputs, rows))
    assert correct / len(rows) >= 0.65  # 0.811 on all 3,121 faces (docs/face_model.md); 40 faces vary
    assert all(out[0]["label"] != "calm" for out in outputs)
