"""Tests of hf_avemotion.sharing: the staged Hub folder, its model card, remote code without the package, upload."""

import json
import os
import re
import subprocess
import sys
import textwrap

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
from conftest import BLOCK_PACKAGE_IMPORT
from huggingface_hub import HfApi, ModelCard
from media_factory import write_media
from PIL import Image
from tiny_model import save_tiny_model

import hf_avemotion.sharing as sharing
from hf_avemotion.pipeline_avemotion import TASK, load_pipeline
from hf_avemotion.sharing import push_to_hub, stage_model_folder

pytestmark = [pytest.mark.timeout(300), pytest.mark.filterwarnings("ignore:At least one mel filter")]
REMOTE_FILES = {"configuration_avemotion.py", "modeling_avemotion.py", "processing_avemotion.py",
                "pipeline_avemotion.py", "media.py", "face_detection.py"}
CV_METRICS = {
    "summary": {"accuracy": {"mean": 0.61, "std": 0.04}, "macro_f1": {"mean": 0.58, "std": 0.05},
                "uar": {"mean": 0.6, "std": 0.03}},
    "folds": ["fold_1", "fold_2", "fold_3"], "dataset": "runs/demo/synthetic_prepared",
    "backbones": "ViT 2x64 @ 64px + AST 2x64, trained from scratch", "fusion_type": "cross_attention",
}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A training run: model/ (+ processor), metrics.json and plots/ beside it."""
    run = tmp_path_factory.mktemp("run")
    save_tiny_model(run / "model")
    (run / "metrics.json").write_text(json.dumps(CV_METRICS))
    (run / "plots").mkdir()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(run / "plots" / "confusion_matrix.png")
    return run


@pytest.fixture(scope="module")
def staged(run_dir, tmp_path_factory):
    return stage_model_folder(run_dir / "model", tmp_path_factory.mktemp("stage") / "hub")


def test_staged_folder_contents(staged):
    names = {p.name for p in staged.iterdir()}
    assert {"model.safetensors", "config.json", "processor_config.json", "README.md", "plots"} | REMOTE_FILES <= names
    assert not [n for n in names if n.endswith((".bin", ".pt", ".pth", ".ckpt", ".pkl"))]
    assert (staged / "plots" / "confusion_matrix.png").is_file()
    assert not [p for p in staged.parent.iterdir() if ".tmp" in p.name]
    config = json.loads((staged / "config.json").read_text())
    assert config["auto_map"] == {
        "AutoConfig": "configuration_avemotion.AVEmotionConfig",
        "AutoModel": "modeling_avemotion.AVEmotionForAudioVisualClassification",
        "AutoModelForVideoClassification": "modeling_avemotion.AVEmotionForAudioVisualClassification",
        "AutoProcessor": "processing_avemotion.AVEmotionProcessor",
    }
    assert config["custom_pipelines"][TASK]["impl"] == "pipeline_avemotion.AudioVisualEmotionPipeline"
    assert "AutoModelForVideoClassification" in config["custom_pipelines"][TASK]["pt"]
    processor = json.loads((staged / "processor_config.json").read_text())
    assert processor["auto_map"] == {"AutoProcessor": "processing_avemotion.AVEmotionProcessor"}
    for name in REMOTE_FILES:  # remote code: only relative imports among the package's modules
        source = (staged / name).read_text()
        assert not re.search(r"^\s*(from|import)\s+hf_avemotion\b", source, re.M), name
        for module in re.findall(r"^\s*from\s+\.(\w+)\s+import", source, re.M):
            assert f"{module}.py" in names, (name, module)


def test_model_card_has_model_index_with_protocol_and_licences(staged):
    card = ModelCard.load(staged / "README.md")
    results = card.data.eval_results
    assert {r.metric_type for r in results} == {"accuracy", "f1", "recall"}
    accuracy = next(r for r in results if r.metric_type == "accuracy")
    assert accuracy.metric_value == pytest.approx(0.61) and accuracy.metric_args == {"std_over_folds": 0.04}
    assert accuracy.dataset_type == "synthetic" and accuracy.dataset_split == "test"
    assert accuracy.dataset_args["folds"] == ["fold_1", "fold_2", "fold_3"]
    assert "trained from scratch" in accuracy.dataset_args["backbones"]
    assert "actor-independent" in accuracy.dataset_config
    assert card.data.pipeline_tag == "video-classification" and card.data.library_name == "transformers"
    text = card.text
    assert "synthetic benchmark only" in text and "0.610 ± 0.040" in text
    assert "CC BY-NC-SA 4.0" in text and "ODbL" in text
    assert "## Intended use" in text and "## Limitations" in text
    assert "![confusion matrix](plots/confusion_matrix.png)" in text
    assert 'trust_remote_code=True' in text


def test_card_for_real_data_and_for_no_metrics():
    config = {"fusion_type": "late", "id2label": {"0": "neutral", "1": "happy"}}
    card = sharing.build_model_card(config, {"accuracy": 0.7, "macro_f1": 0.65, "uar": 0.66, "fold": "fold_2",
                                             "dataset": "data/ravdess_prepared", "num_test_clips": 240})
    assert card.data.license == "cc-by-nc-sa-4.0"
    (accuracy, *_) = card.data.eval_results
    assert accuracy.dataset_name == "RAVDESS" and "fold_2" in accuracy.dataset_config
    assert "synthetic benchmark only" not in card.text and "shared under its licence, CC BY-NC-SA 4.0" in card.text
    crema = sharing.build_model_card(config, {"accuracy": 0.5, "fold": "fold_1", "dataset_name": "CREMA-D"})
    assert crema.data.license == "odbl"
    empty = sharing.build_model_card(config, None)
    assert empty.data.eval_results is None and "No evaluation results" in empty.text


def test_refuses_pickle_weights_bad_folders_and_existing_output(run_dir, tmp_path):
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    for name in ("config.json", "processor_config.json"):
        (pickled / name).write_bytes((run_dir / "model" / name).read_bytes())
    (pickled / "pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    with pytest.raises(ValueError, match="pickle"):
        stage_model_folder(pickled, tmp_path / "out")
    with pytest.raises(FileNotFoundError):
        stage_model_folder(tmp_path / "missing", tmp_path / "out")
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "file").write_text("x")
    with pytest.raises(FileExistsError):
        stage_model_folder(run_dir / "model", occupied)
    assert not (tmp_path / "out").exists()


def test_failure_while_staging_leaves_nothing(run_dir, tmp_path, monkeypatch):
    def broken_card(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(sharing, "build_model_card", broken_card)
    with pytest.raises(RuntimeError):
        stage_model_folder(run_dir / "model", tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_push_to_hub_uploads_the_staged_folder(run_dir, monkeypatch):
    calls = []

    def create_repo(self, repo_id, **kwargs):
        calls.append(("create_repo", repo_id, kwargs))

    def upload_folder(self, **kwargs):
        folder = kwargs["folder_path"]
        calls.append(("upload_folder", kwargs["repo_id"], kwargs.get("repo_type"), sorted(os.listdir(folder)),
                      ModelCard.load(os.path.join(folder, "README.md")).data.model_name))
        return "commit"

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    assert push_to_hub(run_dir / "model", "someone/avemotion-tiny", private=True, token="hf_fake") == "commit"
    (create, upload) = calls
    assert create[1] == "someone/avemotion-tiny" and create[2]["private"] is True and create[2]["exist_ok"]
    assert upload[1] == "someone/avemotion-tiny" and upload[2] == "model"
    assert {"model.safetensors", "config.json", "README.md", "plots"} | REMOTE_FILES <= set(upload[3])
    assert upload[4] == "avemotion-tiny"


REMOTE_CHECK = BLOCK_PACKAGE_IMPORT + textwrap.dedent("""
    import json
    import torch
    from transformers import AutoModel, AutoProcessor, pipeline
    folder, media = sys.argv[1], sys.argv[2:]
    model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
    assert "hf_avemotion" not in type(model).__module__ + type(processor).__module__
    with torch.no_grad():
        inputs = processor(videos=media[0], return_tensors="pt")
        logits = model(**{k: inputs[k] for k in ("pixel_values", "input_values", "video_mask", "audio_mask")}).logits
    pipe = pipeline("audio-visual-emotion-recognition", model=folder, trust_remote_code=True)
    assert "hf_avemotion" not in type(pipe).__module__, type(pipe).__module__
    results = pipe(media, return_metadata=True)
    timeline = pipe(media[0], timeline=True, window_s=0.5)
    print("REMOTE_RESULT " + json.dumps({"logits": logits.tolist(), "results": results, "timeline": timeline}))
""")


def test_staged_folder_works_without_the_package_and_matches_it(staged, tmp_path):
    media = [str(write_media(tmp_path / "av.mp4", duration=1.2)),
             str(write_media(tmp_path / "voice.wav", duration=1.0, video_codec=None, audio_codec="pcm_s16le"))]
    env = {"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HF_HOME": str(tmp_path / "hf_home"),
           "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", REMOTE_CHECK, str(staged), *media], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    # meanwhile, the same with the package
    import torch
    from transformers import AutoModel

    from hf_avemotion.processing_avemotion import AVEmotionProcessor

    model = AutoModel.from_pretrained(staged).eval()
    with torch.no_grad():
        inputs = AVEmotionProcessor.from_pretrained(staged)(videos=media[0], return_tensors="pt")
        logits = model(**{k: inputs[k] for k in ("pixel_values", "input_values", "video_mask", "audio_mask")}).logits
    pipe = load_pipeline(staged)
    expected = pipe(media, return_metadata=True)
    expected_timeline = pipe(media[0], timeline=True, window_s=0.5)
    out, err = proc.communicate(timeout=280)
    line = next((x for x in out.splitlines() if x.startswith("REMOTE_RESULT ")), None)
    assert line is not None, err[-3000:]
    remote = json.loads(line[len("REMOTE_RESULT "):])
    torch.testing.assert_close(torch.tensor(remote["logits"]), logits, atol=1e-5, rtol=0)
    for got, want in zip(remote["results"] + [remote["timeline"]], expected + [expected_timeline]):
        assert [s["label"] for s in got["scores"]] == [s["label"] for s in want["scores"]]
        assert [s["score"] for s in got["scores"]] == pytest.approx([s["score"] for s in want["scores"]], abs=1e-6)
        assert {k: got[k] for k in ("face_found_ratio", "has_audio")} == \
            {k: want[k] for k in ("face_found_ratio", "has_audio")}
        assert got["duration"] == pytest.approx(want["duration"])
    assert [(s["start"], s["end"], s["label"]) for s in remote["timeline"]["segments"]] == \
        [(s["start"], s["end"], s["label"]) for s in expected_timeline["segments"]]
