"""Tests of the `avemotion` command line: exit codes, JSON shape, one-line errors, command wiring.

The `predict` contract is checked end to end in subprocesses (``python -m hf_avemotion.cli``), started together
so their start-up (importing torch and transformers) overlaps; the other commands' wiring is checked in-process
with the functions they dispatch to replaced.
"""

import io
import json
import os
import subprocess
import sys
import types

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
from media_factory import write_media
from PIL import Image
from tiny_model import save_tiny_model

import hf_avemotion.cli as cli
from hf_avemotion.cli import main

pytestmark = [pytest.mark.timeout(300), pytest.mark.filterwarnings("ignore:At least one mel filter")]
LABELS = {"neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"}


def _png_bytes():
    buf = io.BytesIO()
    Image.new("RGB", (32, 24), (10, 200, 30)).save(buf, format="PNG")
    return buf.getvalue()


def make_bad_inputs(d):
    """The bad inputs of the media issue: name -> path or URL."""
    (d / "empty.mp4").write_bytes(b"")
    (d / "random.mp4").write_bytes(os.urandom(20_000))
    (d / "picture.mp4").write_bytes(_png_bytes())
    (d / "notes.txt").write_text("hello\nnot a video\n" * 50)
    data = write_media(d / "whole.mp4", duration=2.0).read_bytes()
    (d / "truncated.mp4").write_bytes(data[: len(data) // 2])
    (d / "folder.mp4").mkdir()
    return {"empty": d / "empty.mp4", "random bytes": d / "random.mp4", "png named mp4": d / "picture.mp4",
            "text file": d / "notes.txt", "truncated mp4": d / "truncated.mp4", "directory": d / "folder.mp4",
            "missing": d / "missing.mp4", "http url": "http://example.com/clip.mp4"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    model = save_tiny_model(root / "model")
    good = write_media(root / "good.mp4", duration=1.0)
    voice = write_media(root / "voice.wav", duration=1.0, video_codec=None, audio_codec="pcm_s16le")
    bad = make_bad_inputs(root)
    (root / "not_a_model").mkdir()
    return types.SimpleNamespace(root=root, model=str(model), good=str(good), voice=str(voice),
                                 bad={k: str(v) for k, v in bad.items()})


@pytest.fixture(scope="module")
def runs(setup):
    """Start every subprocess at once; returns {name: CompletedProcess-like (returncode, stdout, stderr)}."""
    m = setup.model
    commands = {
        "good": ["predict", setup.good, setup.voice, "--model", m, "--json", "--top-k", "3", "--timeline",
                 "--window-s", "0.4"],
        "one bad": ["predict", setup.bad["empty"], "--model", m, "--json"],
        "all bad": ["predict", *setup.bad.values(), "--model", m, "--json"],
        "mixed": ["predict", setup.bad["truncated mp4"], setup.good, "--model", m, "--json"],
        "bad option": ["predict", setup.good, "--model", m, "--top-k", "zero"],
    }
    # one OpenMP thread each: the processes share the CPU cores
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    procs = {name: subprocess.Popen([sys.executable, "-m", "hf_avemotion.cli", *args], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True, env=env, cwd=setup.root)
             for name, args in commands.items()}
    results = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=280)
        results[name] = types.SimpleNamespace(returncode=proc.returncode, stdout=out, stderr=err)
    return results


def assert_one_line_error(run, *fragments):
    assert run.returncode == 2, (run.stdout, run.stderr)
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), run.stderr
    assert "Traceback" not in run.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def assert_result(entry, k):
    assert set(entry) >= {"file", "scores", "face_found_ratio", "has_audio", "duration"}
    assert len(entry["scores"]) == k and all(set(s) == {"label", "score"} for s in entry["scores"])
    assert {s["label"] for s in entry["scores"]} <= LABELS
    values = [s["score"] for s in entry["scores"]]
    assert values == sorted(values, reverse=True)


def test_predict_json_with_timeline(runs, setup):
    run = runs["good"]
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    assert [entry["file"] for entry in data] == [setup.good, setup.voice]
    for entry in data:
        assert_result(entry, 3)
        segments = entry["segments"]
        assert len(segments) == 3 and segments[0]["start"] == 0.0
        assert segments[-1]["end"] == pytest.approx(entry["duration"])
        assert all(a["end"] == b["start"] for a, b in zip(segments, segments[1:]))
        assert all(len(s["scores"]) == 3 and s["label"] == s["scores"][0]["label"] for s in segments)
    assert data[0]["has_audio"] is True and data[1]["has_audio"] is True
    assert data[1]["face_found_ratio"] == 0.0 and data[0]["duration"] == pytest.approx(1.0, abs=0.05)


def test_one_bad_file_is_a_one_line_error(runs, setup):
    assert_one_line_error(runs["one bad"], "empty.mp4", "empty")
    assert runs["one bad"].stdout == ""


def test_every_bad_input_of_the_media_issue_is_reported_on_one_line(runs, setup):
    run = runs["all bad"]
    assert run.returncode == 2 and run.stdout == "" and "Traceback" not in run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == len(setup.bad), run.stderr
    for line, (name, path) in zip(lines, setup.bad.items()):
        assert line.startswith("error: ") and os.path.basename(path) in line, (name, line)


def test_good_files_are_answered_beside_a_bad_one(runs, setup):
    run = runs["mixed"]
    assert_one_line_error(run, "truncated.mp4")
    (entry,) = json.loads(run.stdout)
    assert entry["file"] == setup.good
    assert_result(entry, 8)


def test_bad_option(runs):
    assert_one_line_error(runs["bad option"], "--top-k", "zero")
    assert runs["bad option"].stdout == ""


# ------------------------------------------------------------------------------------------ in-process


def run_main(args, capsys):
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("predict", "push", "app", "train", "cv", "ablation", "evaluate", "prepare", "synthetic",
                    "demo"):
        assert command in out


def test_predict_table_and_plain_json(setup, capsys):
    code, out, err = run_main(["predict", setup.good, "--model", setup.model], capsys)
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0].startswith(setup.good) and "audio: yes" in lines[0]
    assert len(lines) == 9 and all(line.split()[0] in LABELS for line in lines[1:])
    code, out, err = run_main(["predict", setup.voice, "--model", setup.model, "--json"], capsys)
    assert code == 0, err
    (entry,) = json.loads(out)
    assert_result(entry, 8)
    assert "segments" not in entry and entry["face_found_ratio"] == 0.0


@pytest.mark.parametrize("args, fragment", [
    ([], "required"),
    (["bogus"], "invalid choice"),
    (["predict"], "FILE"),
    (["predict", "x.mp4", "--model", "m", "--window-s", "-1"], "--window-s"),
    (["predict", "x.mp4", "--model", "m", "--extra"], "unrecognized arguments: --extra"),
    (["push", "--model", "m"], "--repo-id"),
    (["prepare", "imagenet", "a", "b"], "invalid choice"),
    (["ablation", "--dataset", "d"], "--fusion-types"),
    (["synthetic", "out", "--num-actors", "0"], "--num-actors"),
])
def test_bad_options_are_one_line_errors(args, fragment, capsys):
    code, out, err = run_main(args, capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ") and fragment in err, err


def test_bad_model_folders(setup, tmp_path, capsys):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    for folder in (tmp_path / "missing", broken, setup.root / "not_a_model"):
        code, out, err = run_main(["predict", setup.good, "--model", str(folder)], capsys)
        assert code == 2 and out == "" and err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
        assert str(folder) in err


def test_push_dry_run_and_upload(setup, tmp_path, capsys, monkeypatch):
    out_dir = tmp_path / "staged"
    code, out, err = run_main(["push", "--model", setup.model, "--repo-id", "me/tiny", "--dry-run", str(out_dir)],
                              capsys)
    assert code == 0, err
    assert "model.safetensors" in out and "nothing uploaded" in out and (out_dir / "README.md").is_file()
    code, out, err = run_main(["push", "--model", setup.model, "--repo-id", "me/tiny", "--dry-run", str(out_dir)],
                              capsys)
    assert code == 2 and "already exists" in err

    calls = []
    from huggingface_hub import HfApi

    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kw: calls.append(("create", repo_id, kw)))
    monkeypatch.setattr(HfApi, "upload_folder", lambda self, **kw: calls.append(
        ("upload", kw["repo_id"], sorted(os.listdir(kw["folder_path"])))))
    code, out, err = run_main(["push", "--model", setup.model, "--repo-id", "me/tiny", "--private"], capsys)
    assert code == 0, err
    assert calls[0][:2] == ("create", "me/tiny") and calls[0][2]["private"] is True
    assert calls[1][:2] == ("upload", "me/tiny") and "model.safetensors" in calls[1][2]
    code, out, err = run_main(["push", "--model", str(tmp_path / "none"), "--repo-id", "me/tiny"], capsys)
    assert code == 2 and "not found" in err


def test_app_launches_the_demo_on_localhost(setup, capsys, monkeypatch):
    launched = []

    class FakeApp:
        def launch(self, **kwargs):
            launched.append(("launch", kwargs))

    demo_module = types.SimpleNamespace(build_app=lambda model_dir: launched.append(("build", model_dir)) or FakeApp())
    monkeypatch.setattr(cli, "_load_demo_app", lambda: demo_module)
    code, out, err = run_main(["app", "--model", setup.model, "--port", "7999"], capsys)
    assert code == 0, err
    assert launched == [("build", setup.model), ("launch", {"server_name": "127.0.0.1", "server_port": 7999})]
    demo_module.launch_app = lambda demo, host, port: launched.append(("launch_app", host, port))
    code, out, err = run_main(["app", "--model", setup.model], capsys)
    assert code == 0, err
    assert launched[-1] == ("launch_app", "127.0.0.1", 7860)
    code, out, err = run_main(["app", "--model", str(setup.root / "not_a_model")], capsys)
    assert code == 2 and "config.json" in err


def test_app_loads_demo_app_py():
    module = cli._load_demo_app()
    assert callable(module.build_app)


def test_training_and_data_commands_dispatch(monkeypatch, capsys, tmp_path):
    import hf_avemotion.experiments as experiments
    import hf_avemotion.prepare as prepare
    import hf_avemotion.synthetic as synthetic
    import hf_avemotion.training as training

    calls = []
    monkeypatch.setattr(training, "main", lambda argv: calls.append(("train", argv)))
    monkeypatch.setattr(experiments, "cross_validate", lambda m, d, t, folds=None: calls.append(
        ("cv", m.fusion_type, d.dataset, folds)) or {"summary": {"accuracy": {"mean": 1.0, "std": 0.0}}})
    monkeypatch.setattr(experiments, "ablation", lambda m, d, t, fusion_types, folds=None: calls.append(
        ("ablation", fusion_types, d.dataset, t.num_epochs)) or ({}, "| table |"))
    monkeypatch.setattr(experiments, "evaluate_model", lambda model, dataset, fold: calls.append(
        ("evaluate", model, dataset, fold)) or {"accuracy": 0.5}, raising=False)
    monkeypatch.setattr(prepare, "prepare_crema_d", lambda root, out, **kw: calls.append(
        ("prepare", root, out, kw)) or out)
    monkeypatch.setattr(synthetic, "generate_synthetic_benchmark", lambda out, **kw: calls.append(
        ("synthetic", out, kw)) or out)
    default_demo = types.ModuleType("hf_avemotion.default_demo")
    default_demo.main = lambda: calls.append(("demo",)) or 0
    monkeypatch.setitem(sys.modules, "hf_avemotion.default_demo", default_demo)
    av_training = types.ModuleType("hf_avemotion.av_training")
    av_training.main = lambda argv: calls.append(("av-train", argv)) or 0
    monkeypatch.setitem(sys.modules, "hf_avemotion.av_training", av_training)

    assert main(["train", "--config", "c.yaml", "--num_epochs", "2"]) == 0
    assert main(["cv", "--dataset", "d", "--fusion_type", "late", "--folds", "fold_1,fold_2"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"]["mean"] == 1.0
    assert main(["ablation", "--dataset", "d", "--fusion-types", "late,concat", "--num_epochs", "3"]) == 0
    assert "| table |" in capsys.readouterr().out
    assert main(["evaluate", "--model", "m", "--dataset", "d", "--fold", "fold_2"]) == 0
    assert main(["prepare", "crema-d", "root", "out", "--num-frames", "4", "--image-size", "64"]) == 0
    assert main(["synthetic", "bench", "--num-actors", "3", "--seed", "7"]) == 0
    assert main(["demo"]) == 0
    assert main(["av-train", "--out", "runs/av", "--epochs", "2"]) == 0
    assert calls == [
        ("train", ["--config", "c.yaml", "--num_epochs", "2"]),
        ("cv", "late", "d", ["fold_1", "fold_2"]),
        ("ablation", ["late", "concat"], "d", 3),
        ("evaluate", "m", "d", "fold_2"),
        ("prepare", "root", "out", {"num_frames": 4, "image_size": 64, "num_proc": 1}),
        ("synthetic", "bench", {"num_actors": 3, "seed": 7}),
        ("demo",),
        ("av-train", ["--out", "runs/av", "--epochs", "2"]),
    ]
    capsys.readouterr()

    def failing(argv):
        raise FileNotFoundError("config file not found: c.yaml")

    monkeypatch.setattr(training, "main", failing)
    code, out, err = run_main(["train", "--config", "c.yaml"], capsys)
    assert code == 2 and err == "error: config file not found: c.yaml\n"
    code, out, err = run_main(["prepare", "ravdess", str(tmp_path / "none"), str(tmp_path / "out")], capsys)
    assert code == 2 and "not a folder" in err and len(err.splitlines()) == 1
