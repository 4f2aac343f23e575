"""The Gradio Space (demo/app.py): its prediction function, its limits, and the app in a real browser.

Handler tests call `EmotionSpace.predict` directly with the real pipeline on a tiny random model (and, where
a pipeline behaviour is hard to produce on demand, a clearly named stand-in). The browser test starts
``demo/app.py`` in a subprocess on 127.0.0.1, drives Debian's Chromium with Playwright (never
``playwright install``), uploads a clip, waits for the label and saves a screenshot to
``tests/artifacts/app_screenshot.png`` (also ``docs/app_screenshot.png`` with ``AVEMOTION_UPDATE_SCREENSHOT=1``;
``AVEMOTION_SCREENSHOT_MODEL=runs/demo/model`` shows a trained model instead of the tiny one).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO_ROOT, SHARED_DATA
from media_factory import write_media
from tiny_model import save_tiny_model

gr = pytest.importorskip("gradio")

APP_PATH = REPO_ROOT / "demo" / "app.py"
RAVDESS_CLIP = SHARED_DATA / "ravdess_av" / "01-01-07-02-02-01-01_1.mp4"
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO_ROOT / "tests" / "artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


def _load_app_module():
    """demo/app.py is a script, not part of the package: import it by path."""
    spec = importlib.util.spec_from_file_location("avemotion_space_app", APP_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def app():
    return _load_app_module()


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("tiny_model"))


@pytest.fixture(scope="module")
def pipe(app, tiny_model_dir):
    return app.load_pipeline(tiny_model_dir)


@pytest.fixture(scope="module")
def clip_2s(tmp_path_factory):
    """2 s talking-head-less clip: H.264 64x48 + AAC tone (no face: the crops are centre crops)."""
    return write_media(tmp_path_factory.mktemp("clips") / "clip.mp4", duration=2.0)


@pytest.fixture(scope="module")
def clip_4s(tmp_path_factory):
    return write_media(tmp_path_factory.mktemp("clips4") / "long.mp4", duration=4.0, fps=10)


LABELS = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]


def _error_message(excinfo) -> str:
    return str(excinfo.value.message if hasattr(excinfo.value, "message") else excinfo.value)


# ----------------------------------------------------------------------------------------- handler


def test_predict_good_clip_gives_label_plots_crops_and_status(app, pipe, clip_2s):
    space = app.EmotionSpace(pipe)
    label, scores_plot, timeline_plot, crops, attention_plot, status = space.predict(str(clip_2s))

    assert space.labels == LABELS
    assert set(label) == set(LABELS) and abs(sum(label.values()) - 1) < 1e-4
    for fig in (scores_plot, timeline_plot, attention_plot):
        assert fig.__class__.__name__ == "Figure"
    assert len(crops) == 4  # the tiny processor samples 4 frames
    image, caption = crops[0]
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8 and caption == "frame 1"
    assert "**Audio:** found" in status and "**Duration:** 2.0 s" in status and "**Face:** none found" in status
    # the attention heatmap has one column per frame, drawn under the crops
    heatmap = attention_plot.axes[1].images[0].get_array()
    assert heatmap.shape == (1, 4)
    assert clip_2s.exists(), "a file outside gradio's upload folder must never be deleted"


def test_status_line_says_what_the_face_and_the_voice_each_said(app):
    meta = {"has_audio": True, "face_found_ratio": 1.0, "duration": 3.0,
            "modalities": {"face": {"label": "happy", "score": 0.82}, "voice": {"label": "disgust", "score": 0.91}}}
    assert "**Evidence:** face says happy (82%), voice says disgust (91%)" in app.status_markdown(meta, False)
    meta["modalities"]["face"] = None  # no face detected: only the voice is quoted
    assert "**Evidence:** voice says disgust (91%)" in app.status_markdown(meta, False)
    assert "Evidence" not in app.status_markdown({"has_audio": True}, False)


@pytest.mark.skipif(not RAVDESS_CLIP.is_file(), reason=f"{RAVDESS_CLIP} is absent")
def test_predict_real_clip_finds_the_face(app, pipe):
    label, *_, status = app.EmotionSpace(pipe).predict(str(RAVDESS_CLIP))
    assert max(label, key=label.get) in LABELS
    assert "**Face:** found in 100% of frames" in status and "**Audio:** found" in status


def test_timeline_plots_one_span_per_window(app, pipe, clip_4s):
    space = app.EmotionSpace(pipe)
    label, _, timeline_plot, crops, attention_plot, status = space.predict(str(clip_4s), True, 2.0)
    assert set(label) == set(LABELS)
    spans = timeline_plot.axes[0].patches  # one axvspan per segment
    assert len(spans) >= 3  # 2 s windows every 1 s over 4 s
    assert "**Windows:**" in status and "Face crops and attention: window" in status
    assert crops and crops[0][1] == "frame 1"
    assert "window" in attention_plot.axes[0].get_title(loc="left")
    assert attention_plot.axes[1].images[0].get_array().shape == (1, 4)


def test_webcam_recording_webm_with_sound(app, pipe, tmp_path):
    """The webcam records WebM (VP8 + Opus in Chromium's MediaRecorder); include_audio=True keeps the sound."""
    recording = write_media(tmp_path / "webcam.webm", duration=1.5, video_codec="libvpx", audio_codec="libopus",
                            sample_rate=48000)
    label, *_, status = app.EmotionSpace(pipe).predict(str(recording))
    assert set(label) == set(LABELS) and "**Audio:** found" in status


def test_bad_file_is_refused_with_the_media_error_message(app, pipe, tmp_path):
    bad = tmp_path / "notes.mp4"
    bad.write_text("this is not a video\n")
    with pytest.raises(gr.Error) as excinfo:
        app.EmotionSpace(pipe).predict(str(bad))
    message = _error_message(excinfo)
    assert "notes.mp4" in message and "text file" in message
    assert str(tmp_path) not in message, "server paths must not leak into the message"


def test_missing_video_is_refused(app, pipe):
    with pytest.raises(gr.Error, match="No video yet"):
        app.EmotionSpace(pipe).predict(None)


def test_too_long_is_refused_before_decoding(app, clip_4s):
    calls = []
    space = app.EmotionSpace(lambda *a, **k: calls.append(a), app.SpaceLimits(max_clip_s=3, max_timeline_s=3.5))
    with pytest.raises(gr.Error) as excinfo:
        space.predict(str(clip_4s))
    assert "4 s long" in _error_message(excinfo) and "Timeline" in _error_message(excinfo)
    with pytest.raises(gr.Error) as excinfo:
        space.predict(str(clip_4s), True, 2.0)
    assert "timeline analyses up to" in _error_message(excinfo)
    assert calls == [], "the pipeline must not run on a file over the limit"


def test_too_large_is_refused(app, pipe, clip_2s):
    space = app.EmotionSpace(pipe, app.SpaceLimits(max_file_mb=0.001))
    with pytest.raises(gr.Error, match=r"accepts files up to 0.001 MB"):
        space.predict(str(clip_2s))


class StandInPipeline:
    """Stand-in for the emotion pipeline: fixed scores, a duration the header did not give, no attention
    (as for a fusion type without cross-modal attention)."""

    class _Config:
        id2label = {0: "happy", 1: "sad"}

    class _Model:
        pass

    def __init__(self, duration=3.0):
        self.model = self._Model()
        self.model.config = self._Config()
        self.duration = duration
        self.calls = []

    def __call__(self, path, **kwargs):
        self.calls.append(kwargs)
        return {"scores": [{"label": "sad", "score": 0.7}, {"label": "happy", "score": 0.3}],
                "face_found_ratio": 0.25, "has_audio": False, "duration": self.duration,
                "attention": None, "face_crops": np.zeros((0, 8, 8, 3), np.uint8)}


def test_stand_in_without_attention_or_audio_or_face(app, clip_2s):
    stand_in = StandInPipeline()
    label, _, _, crops, attention_plot, status = app.EmotionSpace(stand_in).predict(str(clip_2s))
    assert label == {"sad": 0.7, "happy": 0.3} and crops == []
    assert "No cross-modal attention" in attention_plot.axes[0].texts[0].get_text()
    assert "**Audio:** none" in status and "found in only 25%" in status and "microphone" in status
    assert stand_in.calls[0]["return_metadata"] and "timeline" not in stand_in.calls[0]


def test_decoded_duration_is_checked_when_the_header_has_none(app, clip_2s, monkeypatch):
    """A webcam WebM often has no duration in its header: the decoded one is checked afterwards."""
    monkeypatch.setattr(app, "probe_duration", lambda path: None)
    space = app.EmotionSpace(StandInPipeline(duration=75.0))
    with pytest.raises(gr.Error, match="75 s long"):
        space.predict(str(clip_2s))


def test_uploads_are_deleted_after_use_but_examples_are_kept(app, pipe, clip_2s, tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    upload = tmp_path / "gradio" / "abc123" / "webcam.mp4"
    example = tmp_path / "gradio" / "def456" / "example.mp4"
    for dst in (upload, example):
        dst.parent.mkdir(parents=True)
        shutil.copy(clip_2s, dst)
    space = app.EmotionSpace(pipe)
    space.protect([example])
    space.predict(str(upload))
    space.predict(str(example))
    assert not upload.exists() and not upload.parent.exists()
    assert example.exists()
    with pytest.raises(gr.Error, match="no longer on the server"):  # a second submit of a deleted upload
        space.predict(str(upload))


def test_build_app_has_inputs_outputs_and_a_bounded_queue(app, pipe, tmp_path):
    demo = app.build_app(pipe=pipe, examples=[])
    assert isinstance(demo, gr.Blocks)
    assert demo._queue.max_size == 32 and demo._queue.default_concurrency_limit == 2
    videos = [b for b in demo.blocks.values() if isinstance(b, gr.Video)]
    assert len(videos) == 1 and videos[0].include_audio and videos[0].sources == ["upload", "webcam"]
    assert any(isinstance(b, gr.Label) for b in demo.blocks.values())
    assert any(isinstance(b, gr.Gallery) for b in demo.blocks.values())
    assert sum(isinstance(b, gr.Plot) for b in demo.blocks.values()) == 3


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"{SHARED_DATA} is absent")
def test_examples_are_the_bundled_clips_then_the_shared_ones(app):
    clips = [Path(c) for c in app.find_example_clips(limit=10)]
    bundled = [c for c in clips if c.is_relative_to(app.BUNDLED_EXAMPLES_DIR)]
    assert [c.name for c in bundled] == ["ravdess_01_disgust.mp4", "ravdess_14_angry.mp4"]
    assert clips[len(bundled):] and all(c.is_file() and c.is_relative_to(SHARED_DATA) for c in clips[len(bundled):])
    assert app.find_example_clips(SHARED_DATA.parent / "does-not-exist") == []


REMOTE_CODE_SCRIPT = r"""
import importlib.abc, importlib.util, sys

class NoPackage(importlib.abc.MetaPathFinder):  # as on a Space: hf_avemotion is not installed
    def find_spec(self, name, path=None, target=None):
        if name == "hf_avemotion" or name.startswith("hf_avemotion."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, NoPackage())
app_path, model, clip, bad = sys.argv[1:]
spec = importlib.util.spec_from_file_location("space_app", app_path)
app = importlib.util.module_from_spec(spec)
sys.modules["space_app"] = app
spec.loader.exec_module(app)
pipe = app.load_pipeline(model)
assert type(pipe).__module__.startswith("transformers_modules."), type(pipe).__module__
space = app.EmotionSpace(pipe)
label, *_, status = space.predict(clip)
print("LABEL", max(label, key=label.get))
try:
    space.predict(bad)
except app.gr.Error as err:
    print("ERROR", err.message)
"""


def test_space_without_the_package_loads_the_remote_code(app, tiny_model_dir, clip_2s, tmp_path):
    """On a Space hf_avemotion is not installed: the app runs the pipeline from the model repo's remote code."""
    from hf_avemotion.sharing import stage_model_folder

    staged = stage_model_folder(tiny_model_dir, tmp_path / "repo")
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video\n")
    run = subprocess.run([sys.executable, "-c", REMOTE_CODE_SCRIPT, str(APP_PATH), str(staged), str(clip_2s), str(bad)],
                         capture_output=True, text=True, timeout=300, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert run.returncode == 0, run.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in run.stdout.splitlines() if line.startswith(("LABEL", "ERROR")))
    assert lines["LABEL"] in LABELS
    assert "notes.mp4" in lines["ERROR"] and "text file" in lines["ERROR"]  # the remote MediaError, not a crash


# ----------------------------------------------------------------------------------------- browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _model_for_browser(tiny_model_dir) -> Path:
    """The package's default model (what the Space shows), or ``$AVEMOTION_SCREENSHOT_MODEL``."""
    from hf_avemotion import DEFAULT_MODEL, pretrained_path

    chosen = os.environ.get("AVEMOTION_SCREENSHOT_MODEL")
    return Path(chosen) if chosen else pretrained_path(DEFAULT_MODEL)


@contextlib.contextmanager
def app_server(model_dir: Path, workdir: Path, env_overrides: dict | None = None):
    """``python demo/app.py --model DIR --port N`` on 127.0.0.1, waited for; yields (url, log path)."""
    port = _free_port()
    log = workdir / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AVEMOTION_MAX_")}  # the default limits
    env.update(HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False", GRADIO_TEMP_DIR=str(workdir / "gradio_tmp"),
               **(env_overrides or {}))
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, str(APP_PATH), "--model", str(model_dir), "--port", str(port),
                                 "--host", "127.0.0.1"], stdout=out, stderr=subprocess.STDOUT, env=env,
                                cwd=str(REPO_ROOT))
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the app exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the app did not answer on {url} within 120 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url, log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    """The app on the browser test's model; yields (url, model_dir, log path)."""
    model_dir = _model_for_browser(tiny_model_dir)
    with app_server(model_dir, tmp_path_factory.mktemp("server")) as (url, log):
        yield url, model_dir, log


def test_server_refuses_uploads_over_max_file_size(server, tmp_path):
    """launch(max_file_size=...) makes gradio itself refuse an oversized upload (default cap: 50 MB)."""
    url, _, _ = server
    boundary = "avemotionboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"big.mp4\"\r\n"
            f"Content-Type: video/mp4\r\n\r\n").encode() + b"\0" * (51 * 1024 * 1024) + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(url + "gradio_api/upload", data=body, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with pytest.raises(urllib.error.HTTPError) as excinfo:
        urllib.request.urlopen(request, timeout=30)
    assert excinfo.value.code == 413


def _browser_labels(model_dir: Path) -> list[str]:
    config = json.loads((model_dir / "config.json").read_text())
    return [str(v) for _, v in sorted(config["id2label"].items(), key=lambda kv: int(kv[0]))]


def playwright_api():
    """Playwright's sync API with Debian's chromium present; skips (fails under CI) when either is missing."""
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing under CI: install Debian's chromium (apt-get install -y chromium)")
        pytest.skip(f"{CHROMIUM} is absent (install Debian's chromium; under CI this test must run)")
    try:
        from playwright import sync_api
    except ImportError as err:
        if os.environ.get("CI"):
            pytest.fail(f"playwright is missing under CI ({err}): pip install playwright (no `playwright install`)")
        pytest.skip(f"playwright is not installed ({err})")
    return sync_api


def test_browser_upload_shows_label_and_screenshot(app, server, tmp_path):
    sync_api = playwright_api()
    url, model_dir, log = server
    labels = _browser_labels(model_dir)
    clip = REPO_ROOT / "demo" / "examples" / "ravdess_01_disgust.mp4"  # a real clip, bundled (see its NOTICE.md)

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url, wait_until="domcontentloaded", timeout=60_000)
            page.locator("#input-video input[type=file]").set_input_files(str(clip), timeout=60_000)
            page.locator("#input-video video").wait_for(state="attached", timeout=60_000)  # upload done
            # the timeline path too: 2 s windows every 1 s
            page.locator("#timeline-toggle input[type=checkbox]").check()
            number = page.locator("#window-slider input[type=number]")
            number.fill("2")
            number.press("Enter")
            page.locator("#analyse-button").click()
            top = page.locator('#emotion-label [data-testid="label-output-value"]')
            try:
                top.wait_for(state="visible", timeout=90_000)
            except sync_api.TimeoutError:
                page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
                pytest.fail(f"no label within 90 s; server log:\n{log.read_text()[-3000:]}")
            label = top.inner_text().strip()
            assert label in labels
            # the page shows what the model answers for this clip (2 s windows, 1 s hop, as set above)
            expected = app.load_pipeline(model_dir)(str(clip), timeline=True, window_s=2.0, hop_s=1.0)
            assert label == expected["scores"][0]["label"]
            page.wait_for_function(
                "() => document.querySelector('#status-line')?.innerText.includes('Audio: found')", timeout=30_000)
            page.wait_for_function(
                "() => document.querySelector('#status-line')?.innerText.includes('Windows:')", timeout=30_000)
            page.locator("#face-crops img").first.wait_for(state="visible", timeout=30_000)
            page.locator("#timeline-plot img").first.wait_for(state="visible", timeout=30_000)
            page.locator("#attention-plot img").first.wait_for(state="visible", timeout=30_000)
            page.wait_for_timeout(500)  # let the plot images finish painting
            ARTIFACTS.mkdir(exist_ok=True)
            shot = ARTIFACTS / "app_screenshot.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
    if os.environ.get("AVEMOTION_UPDATE_SCREENSHOT") == "1":
        (REPO_ROOT / "docs").mkdir(exist_ok=True)
        shutil.copy(shot, REPO_ROOT / "docs" / "app_screenshot.png")


# ----------------------------------------------------------------------------------------- Space files


def test_space_readme_front_matter_and_requirements():
    from huggingface_hub import SpaceCard
    from packaging.requirements import Requirement

    card = SpaceCard.load(REPO_ROOT / "demo" / "README.md")  # parses the YAML front matter
    meta = card.data.to_dict()
    for key in ("title", "emoji", "colorFrom", "colorTo", "sdk", "sdk_version", "app_file", "models",
                "short_description", "license"):
        assert meta.get(key), f"front matter lacks {key}"
    assert meta["sdk"] == "gradio" and meta["sdk_version"] == gr.__version__ and meta["app_file"] == "app.py"
    assert len(meta["short_description"]) <= 60  # the Hub's limit

    lines = (REPO_ROOT / "demo" / "requirements.txt").read_text().splitlines()
    names = {Requirement(line).name.lower() for line in lines if line.strip() and not line.startswith("#")}
    # what the remote code (and the app's plots) import; gradio comes from sdk_version
    assert {"torch", "transformers", "av", "numpy", "pillow", "yuface", "matplotlib"} <= names
    assert "hf_avemotion" not in names and "gradio" not in names
