"""Untrusted files and the network: safetensors only (pickle on opt-in, then ``weights_only=True``), prepared
datasets that cannot point outside their folder, and no network access with ``HF_HUB_OFFLINE=1``.

The network test replaces ``socket.socket.connect``/``connect_ex``/``sendto``, ``socket.create_connection`` and
``socket.getaddrinfo`` with versions that record and refuse every destination but the loopback interface (the
app's own server), then runs ``avemotion predict`` (``hf_avemotion.cli.main`` in-process), a one-epoch training
(``hf_avemotion.training.main``) and the Gradio app (launched on 127.0.0.1 and called through
``gradio_client``, plus its handler directly). Nothing may even try.
"""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import io
import json
import os
import shutil
import socket
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from conftest import REPO_ROOT
from media_factory import write_media
from tiny_model import save_tiny_model

import hf_avemotion.cli as cli
from hf_avemotion import prepare as P
from hf_avemotion.pipeline_avemotion import UnsafeWeightsError, load_pipeline

pytestmark = [pytest.mark.timeout(300), pytest.mark.filterwarnings("ignore")]


class Evil:
    """Unpickling this runs ``open(marker, "w")``: the payload of a malicious checkpoint."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("security")
    model = save_tiny_model(root / "model")
    pickled = root / "pickled"
    shutil.copytree(model, pickled)
    torch.save(load_file(pickled / "model.safetensors"), pickled / "pytorch_model.bin")
    (pickled / "model.safetensors").unlink()
    evil = root / "evil"
    shutil.copytree(pickled, evil)
    marker = root / "PAYLOAD_RAN"
    torch.save({"weights": Evil(str(marker))}, evil / "pytorch_model.bin")
    clip = write_media(root / "clip.mp4", duration=1.0)
    return dict(root=root, model=model, pickled=pickled, evil=evil, marker=marker, clip=str(clip))


def _load_app():
    spec = importlib.util.spec_from_file_location("avemotion_security_app", REPO_ROOT / "demo" / "app.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _run_cli(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(argv))
    return code, out.getvalue(), err.getvalue()


# ----------------------------------------------------------------------------------------- weights


def test_pipeline_refuses_pickle_only_weights_unless_opted_in(folders):
    with pytest.raises(UnsafeWeightsError, match="allow_pickle=True"):
        load_pipeline(folders["pickled"])
    reference = load_pipeline(folders["model"])(folders["clip"])
    opted_in = load_pipeline(folders["pickled"], allow_pickle=True)(folders["clip"])
    assert [r["label"] for r in opted_in] == [r["label"] for r in reference]
    np.testing.assert_allclose([r["score"] for r in opted_in], [r["score"] for r in reference], atol=1e-6)


def test_opted_in_pickles_are_read_with_weights_only(folders, monkeypatch):
    calls = []
    real_load = torch.load

    def recording_load(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", recording_load)
    load_pipeline(folders["pickled"], allow_pickle=True)
    assert calls and all(flag is True for flag in calls), calls


def test_malicious_pickle_never_runs(folders):
    """With the opt-in, with transformers' own loader, and with the model class: refused, payload not run."""
    from hf_avemotion import AVEmotionForAudioVisualClassification

    with pytest.raises(UnsafeWeightsError, match="objects other than tensors"):
        load_pipeline(folders["evil"], allow_pickle=True)
    with pytest.raises(Exception):  # noqa: B017 - transformers' error type is not ours to fix
        AVEmotionForAudioVisualClassification.from_pretrained(folders["evil"])
    assert not folders["marker"].exists(), "the pickle payload ran"


def test_cli_refuses_pickle_only_weights_unless_opted_in(folders):
    code, out, err = _run_cli("predict", folders["clip"], "--model", str(folders["pickled"]), "--json")
    lines = err.strip().splitlines()
    assert code == 2 and out == "" and len(lines) == 1 and lines[0].startswith("error: "), err
    assert "pickle" in lines[0] and "--allow-pickle" in lines[0]
    code, out, err = _run_cli("predict", folders["clip"], "--model", str(folders["pickled"]), "--json",
                              "--allow-pickle")
    assert code == 0 and json.loads(out)[0]["scores"], err
    code, out, err = _run_cli("predict", folders["clip"], "--model", str(folders["evil"]), "--allow-pickle")
    assert code == 2 and "objects other than tensors" in err and not folders["marker"].exists()


def test_app_refuses_pickle_only_weights_unless_opted_in(folders):
    app = _load_app()
    with pytest.raises(UnsafeWeightsError):
        app.build_app(str(folders["pickled"]), examples=[])
    pipe = app.load_pipeline(str(folders["pickled"]), allow_pickle=True)
    assert app.EmotionSpace(pipe).predict(folders["clip"])[0]


def test_sharing_stages_safetensors_only(folders, tmp_path):
    from hf_avemotion.sharing import stage_model_folder

    with pytest.raises(ValueError, match="only pickle weights"):
        stage_model_folder(folders["pickled"], tmp_path / "staged")
    staged = stage_model_folder(folders["model"], tmp_path / "ok")
    assert not [p for p in staged.rglob("*") if p.suffix in (".bin", ".pt", ".pth", ".pkl", ".ckpt")]


# ----------------------------------------------------------------------------------------- prepared data


def _rel_media(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_media(path, duration=0.3, size=(32, 32))


def test_folder_metadata_through_a_symlinked_folder_is_rejected(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "private"
    _rel_media(root / "a" / "clip.mp4")
    _rel_media(outside / "secret.mp4")
    os.symlink(outside, root / "linked")
    with open(root / "metadata.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerows([["path", "actor", "emotion"], ["a/clip.mp4", "1", "happy"], ["linked/secret.mp4", "2", "sad"]])
    with pytest.raises(ValueError, match="outside the root"):
        P.prepare_folder(root, tmp_path / "out", num_frames=2, image_size=32)
    for bad in ("a/../../private/secret.mp4", "a/../a/clip.mp4", "/etc/passwd", "C:/x.mp4", "linked"):
        with open(root / "metadata.csv", "w", newline="") as f:
            csv.writer(f).writerows([["path", "actor", "emotion"], [bad, "1", "happy"]])
        with pytest.raises(ValueError):
            P._scan_folder(root, None)


def test_dataset_scanners_skip_file_symlinks_leaving_the_root(tmp_path):
    """An untrusted archive's symlink to a private file is not decoded (nor pushed with the dataset)."""
    root, outside = tmp_path / "ravdess", tmp_path / "private"
    _rel_media(root / "Actor_01" / "01-01-03-01-01-01-01.mp4")
    _rel_media(outside / "01-01-04-01-01-01-02.mp4")
    os.symlink(outside / "01-01-04-01-01-01-02.mp4", root / "Actor_01" / "01-01-04-01-01-01-02.mp4")
    os.symlink(root / "Actor_01" / "01-01-03-01-01-01-01.mp4", root / "01-01-05-01-01-01-01.mp4")  # inside: kept
    sources, stats = P._scan_ravdess(root)
    assert sorted(s.clip_id for s in sources) == ["01-01-03-01-01-01-01", "01-01-05-01-01-01-01"]
    assert stats["outside_root"] == 1
    (root / "1001_DFA_ANG_XX.wav").symlink_to(outside / "01-01-04-01-01-01-02.mp4")
    assert P._scan_crema_d(root)[1]["outside_root"] == 2  # both links leaving the root


def test_prepared_dataset_files_must_stay_inside_its_folder(tmp_path):
    import datasets

    ds_dir = tmp_path / "prepared"
    datasets.Dataset.from_dict({"actor": ["1", "2", "3"], "label": [0, 1, 0]}).save_to_disk(str(ds_dir))
    (ds_dir / "folds.json").write_text(json.dumps(
        {"scheme": None, "folds": {"fold_1": {"train": ["1"], "validation": ["2"], "test": ["3"]}}}))
    assert len(P.load_prepared(ds_dir)["train"]) == 1
    state = json.loads((ds_dir / "state.json").read_text())
    arrow = state["_data_files"][0]["filename"]
    shutil.copy(ds_dir / arrow, tmp_path / "elsewhere.arrow")
    os.symlink(tmp_path / "elsewhere.arrow", ds_dir / "link.arrow")
    for bad in ("../elsewhere.arrow", str(tmp_path / "elsewhere.arrow"), "link.arrow", "sub/../../elsewhere.arrow"):
        state["_data_files"] = [{"filename": bad}]
        (ds_dir / "state.json").write_text(json.dumps(state))
        with pytest.raises(ValueError, match="data file"):
            P.load_prepared(ds_dir)


# ----------------------------------------------------------------------------------------- network


LOCAL_HOSTS = {"127.0.0.1", "::1", "localhost", "0.0.0.0", "::ffff:127.0.0.1"}


class NetworkGuard:
    """Records (and refuses) every connection or name lookup that is not for the loopback interface."""

    def __init__(self):
        self.attempts: list[str] = []

    def _allowed(self, address) -> bool:
        if isinstance(address, (str, bytes)):  # AF_UNIX path
            return True
        host = address[0] if isinstance(address, tuple) and address else address
        return host in LOCAL_HOSTS or host is None

    def _refuse(self, what: str, address) -> None:
        self.attempts.append(f"{what} {address!r}")
        raise OSError(f"network access blocked by test_security: {what} {address!r}")

    def install(self, monkeypatch) -> NetworkGuard:
        guard = self
        real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
        real_sendto, real_getaddrinfo = socket.socket.sendto, socket.getaddrinfo
        real_create = socket.create_connection

        def connect(sock, address):
            if not guard._allowed(address):
                guard._refuse("connect", address)
            return real_connect(sock, address)

        def connect_ex(sock, address):
            if not guard._allowed(address):
                guard._refuse("connect_ex", address)
            return real_connect_ex(sock, address)

        def sendto(sock, data, *args):
            address = args[-1]
            if not guard._allowed(address):
                guard._refuse("sendto", address)
            return real_sendto(sock, data, *args)

        def getaddrinfo(host, *args, **kwargs):
            name = host.decode() if isinstance(host, bytes) else host
            if name not in LOCAL_HOSTS and name is not None:
                guard._refuse("getaddrinfo", name)
            return real_getaddrinfo(host, *args, **kwargs)

        def create_connection(address, *args, **kwargs):
            if not guard._allowed(address):
                guard._refuse("create_connection", address)
            return real_create(address, *args, **kwargs)

        monkeypatch.setattr(socket.socket, "connect", connect)
        monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
        monkeypatch.setattr(socket.socket, "sendto", sendto)
        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
        monkeypatch.setattr(socket, "create_connection", create_connection)
        return self


def test_network_guard_blocks_the_outside_world(monkeypatch):
    guard = NetworkGuard().install(monkeypatch)
    with pytest.raises(OSError, match="blocked"):
        socket.create_connection(("huggingface.co", 443), timeout=1)
    with pytest.raises(OSError, match="blocked"):
        socket.socket().connect(("10.1.2.3", 80))
    import httpx

    with pytest.raises(httpx.ConnectError):  # what huggingface_hub and gradio use
        httpx.get("https://huggingface.co/api/models", timeout=2)
    assert len(guard.attempts) == 3 and "huggingface.co" in guard.attempts[-1]


TINY_TRAINING = dict(
    image_size=32, patch_size=16, vision_hidden_size=32, vision_layers=1, vision_heads=2, num_mel_bins=16,
    audio_max_length=112, audio_patch_size=16, audio_stride=10, audio_hidden_size=32, audio_layers=1,
    audio_heads=2, fusion_hidden_size=32, fusion_num_layers=1, fusion_num_heads=2, num_frames=2, fold="fold_1",
    num_epochs=1, batch_size=8, eval_batch_size=8, learning_rate=0.001, seed=0,
)


def test_predict_train_and_app_make_no_network_access(folders, tmp_path, monkeypatch):
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    guard = NetworkGuard().install(monkeypatch)
    import yaml

    from hf_avemotion.synthetic import generate_synthetic_benchmark
    from hf_avemotion.training import main as train_main

    # predict (the CLI in-process)
    code, out, err = _run_cli("predict", folders["clip"], "--model", str(folders["model"]), "--json")
    assert code == 0 and json.loads(out)[0]["scores"], err

    # a tiny training run: synthetic data -> prepared dataset -> one epoch -> model folder
    raw = generate_synthetic_benchmark(tmp_path / "raw", num_actors=3, clips_per_emotion=1, duration=1.0)
    prepared = P.prepare_folder(raw, tmp_path / "prepared", num_frames=2, image_size=32)
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({**TINY_TRAINING, "dataset": str(prepared), "output_dir": str(tmp_path / "run")}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metrics = train_main(["--config", str(config)])
    assert "accuracy" in metrics and (tmp_path / "run" / "model" / "model.safetensors").is_file()

    # the app: its handler, then the server on 127.0.0.1 driven by gradio_client
    app = _load_app()
    demo = app.build_app(str(folders["model"]), examples=[])
    assert demo.space.predict(folders["clip"])[0]
    from gradio_client import Client, handle_file

    demo_server = app.launch_app(demo, host="127.0.0.1", port=None, prevent_thread_lock=True, quiet=True)
    try:
        url = demo.local_url if hasattr(demo, "local_url") else demo_server[1]
        client = Client(url, verbose=False, download_files=False)
        result = client.predict(handle_file(folders["clip"]), False, 4.0, api_name="/predict")
        assert result[0]["label"] in {"neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"}
        client.close()
    finally:
        demo.close()
    assert guard.attempts == [], guard.attempts
