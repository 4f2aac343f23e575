"""Live mode (hf_avemotion.live, ``avemotion live``, the Space's Live tab).

A file streamed through `LiveStream` must give the offline timeline's predictions on the same windows; odd input
(no face, silence, no audio, dropped frames, 44.1 kHz, gaps) is flagged, never a crash; a consumer slower than the
stream gets the newest window and a count of the dropped ones, not a queue. The browser test feeds Chromium's
fake camera and microphone with a real clip from ../shared/data and watches the Live tab's timeline grow.
"""

from __future__ import annotations

import io
import math
import re
import sys
import time
import wave
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO_ROOT, SHARED_DATA
from media_factory import write_media
from tiny_model import save_tiny_model

from hf_avemotion.live import LiveStream, play_file, stream_file
from hf_avemotion.pipeline_avemotion import load_pipeline

RAVDESS_CLIP = SHARED_DATA / "ravdess_av" / "01-01-07-02-02-01-01_1.mp4"
WINDOW_S, HOP_S = 2.0, 0.5
RATE = 16000


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("tiny_live"), seed=0)


@pytest.fixture(scope="module")
def pipe(model_dir):
    torch.manual_seed(0)
    np.random.seed(0)
    return load_pipeline(model_dir)


@pytest.fixture(scope="module")
def clip_4s(tmp_path_factory):
    """4 s, 25 fps grey ramp (no face) + a 440 Hz tone at 44.1 kHz (AAC)."""
    return write_media(tmp_path_factory.mktemp("live_clip") / "ramp.mp4", duration=4.0, fps=25)


def _scores(scores: list[dict]) -> dict[str, float]:
    return {s["label"]: s["score"] for s in scores}


def _frames(seconds: float, fps: float = 25.0, level: int = 120, size=(48, 64)):
    """Grey frames uint8 [H,W,3] with their times: [(t, frame)]."""
    return [(i / fps, np.full((*size, 3), level, np.uint8)) for i in range(int(round(seconds * fps)))]


def _tone(seconds: float, rate: int, amplitude: float = 0.5, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def _push(live: LiveStream, seconds: float, *, video=True, audio: np.ndarray | None = None, rate: int = RATE,
          chunk_s: float = 0.1, poll=True, skip_video: tuple[float, float] | None = None,
          skip_audio: tuple[float, float] | None = None) -> list:
    """Push ``seconds`` of frames (25 fps) and audio chunks in time order, polling after each; the predictions."""
    items = []
    if video:
        items += [(t, 0, f) for t, f in _frames(seconds) if not (skip_video and skip_video[0] <= t < skip_video[1])]
    if audio is not None:
        n = int(round(chunk_s * rate))
        for i in range(0, len(audio), n):
            t = i / rate
            if not (skip_audio and skip_audio[0] <= t < skip_audio[1]):
                items.append((t, 1, audio[i:i + n]))
    out = []
    for t, kind, data in sorted(items, key=lambda x: (x[0], x[1])):
        if kind == 0:
            live.push_video(data, t)
        else:
            live.push_audio(data, rate, t)
        if poll and (p := live.poll()) is not None:
            out.append(p)
    return out


# ------------------------------------------------------------------------------------------ same as offline


@pytest.mark.parametrize("which, crops", [("synthetic", "per_frame"), ("ravdess", "window")])
def test_streaming_a_file_gives_the_offline_timeline(which, crops, pipe, clip_4s):
    """The default per-frame crops equal the offline ones when there is no face to track (centre crops); with a
    real face, crops="window" reproduces the offline crops (boxes smoothed within each window)."""
    clip = clip_4s if which == "synthetic" else RAVDESS_CLIP
    if not Path(clip).is_file():
        pytest.skip(f"{clip} is absent")
    offline = pipe(str(clip), timeline=True, window_s=WINDOW_S, hop_s=HOP_S, return_metadata=True)["segments"]
    live = LiveStream(pipe, window_s=WINDOW_S, hop_s=HOP_S, crops=crops)
    predictions = list(stream_file(live, str(clip), speed=0))

    assert len(predictions) == len(offline) >= 3
    assert [p.index for p in predictions] == list(range(len(offline)))
    assert [p.start for p in predictions] == pytest.approx([k * HOP_S for k in range(len(offline))])
    assert predictions[-1].end == pytest.approx(offline[-1]["end"], abs=0.05)
    assert all(p.skipped == 0 for p in predictions) and live.skipped_total == 0
    # every window before the last: the same frames and samples, so the same numbers
    for p, segment in zip(predictions[:-1], offline[:-1]):
        assert p.label == segment["label"]
        live_scores, offline_scores = _scores(p.scores), _scores(segment["scores"])
        for label, score in offline_scores.items():
            assert live_scores[label] == pytest.approx(score, abs=1e-4)
    # the last window ends with the file; offline re-chooses its frames among those planned from the header
    last_live, last_offline = _scores(predictions[-1].scores), _scores(offline[-1]["scores"])
    assert max(abs(last_live[k] - v) for k, v in last_offline.items()) < 0.02


def test_face_detection_and_frame_encoding_run_only_on_new_frames(pipe, clip_4s):
    clip = RAVDESS_CLIP if RAVDESS_CLIP.is_file() else clip_4s  # a real face when there is one
    live = LiveStream(pipe, window_s=WINDOW_S, hop_s=HOP_S)
    predictions = list(stream_file(live, str(clip), speed=0))
    n = live.num_frames  # 4 frames per 2 s window: one new frame per 0.5 s hop
    new_per_hop = math.ceil(n * HOP_S / WINDOW_S)
    assert predictions[0].detections == n and predictions[0].frames_encoded == n
    assert all(p.detections <= new_per_hop and p.frames_encoded <= new_per_hop for p in predictions[1:])
    assert sum(p.detections for p in predictions) < n * len(predictions) / 2
    assert "embed_frames" not in vars(pipe.model.avemotion), "the caller's model is left as it was"
    if clip == RAVDESS_CLIP:
        assert all(p.face_ratio == 1.0 and "no_face" not in p.flags for p in predictions)
    window = list(stream_file(LiveStream(pipe, window_s=WINDOW_S, hop_s=HOP_S, crops="window"), str(clip), speed=0))
    assert [p.detections for p in window] == [p.detections for p in predictions]  # detections memoised in both
    if clip == RAVDESS_CLIP:  # window-smoothed boxes move the crops of a frame from hop to hop: no reuse
        assert sum(p.frames_encoded for p in window) > sum(p.frames_encoded for p in predictions)
    assert len(live._frames) <= n + 2, "only frames a future window can show are kept"


# ------------------------------------------------------------------------------------------ odd input


def test_no_face_is_flagged(pipe):
    live = LiveStream(pipe, window_s=WINDOW_S)
    predictions = _push(live, 3.0, audio=_tone(3.0, RATE))
    assert predictions and all("no_face" in p.flags and p.face_ratio == 0.0 for p in predictions)
    assert all(p.audio_dbfs == pytest.approx(-9.0, abs=0.5) for p in predictions)  # a 0.5 sine: -9 dBFS
    assert all("silence" not in p.flags and "no_audio" not in p.flags for p in predictions)


def test_silence_and_missing_audio_are_flagged(pipe):
    silent = _push(LiveStream(pipe, window_s=WINDOW_S), 3.0, audio=np.zeros(3 * RATE, np.float32))
    assert silent and all("silence" in p.flags for p in silent)
    assert all(p.audio_dbfs <= -100 for p in silent)

    # a camera without microphone: predictions come max_wait_s after the video passed a window, not never
    video_only = _push(LiveStream(pipe, window_s=WINDOW_S, max_wait_s=0.5), 4.0)
    assert len(video_only) >= 2 and all("no_audio" in p.flags and p.audio_dbfs is None for p in video_only)

    audio_only = _push(LiveStream(pipe, window_s=WINDOW_S), 3.0, video=False, audio=_tone(3.0, RATE))
    assert len(audio_only) >= 2 and all("no_video" in p.flags for p in audio_only)


def test_dropped_frames_and_audio_gaps_are_flagged(pipe):
    live = LiveStream(pipe, window_s=WINDOW_S)
    predictions = _push(live, 4.0, audio=_tone(4.0, RATE), skip_video=(1.0, 1.5), skip_audio=(2.5, 3.0))
    by_window = {(p.start, p.end): p for p in predictions}
    hit = by_window[(0.0, 2.0)]  # frames 1.0-1.5 s missing
    assert "dropped_frames" in hit.flags and hit.frames_dropped == 13  # 1.00, 1.04, ... 1.48 s
    assert hit.frames_received == 50 - 13
    clean = by_window.get((2.0, 4.0)) or live.finish()[-1]
    assert "dropped_frames" not in clean.flags
    gap = [p for p in predictions if p.start < 3.0 and p.end > 2.5]
    assert gap and all("audio_gap" in p.flags for p in gap)
    assert live.audio_gap_s == pytest.approx(0.5, abs=0.01)


def test_audio_at_44k1_is_resampled_like_16k(pipe):
    at_16k = _push(LiveStream(pipe, window_s=WINDOW_S), 3.0, audio=_tone(3.0, 16000), rate=16000)
    at_44k = _push(LiveStream(pipe, window_s=WINDOW_S), 3.0, audio=_tone(3.0, 44100), rate=44100, chunk_s=1024 / 44100)
    assert [p.index for p in at_44k] == [p.index for p in at_16k] and at_16k
    for a, b in zip(at_16k, at_44k):
        assert b.label == a.label
        assert max(abs(_scores(a.scores)[k] - v) for k, v in _scores(b.scores).items()) < 0.01
        assert b.audio_dbfs == pytest.approx(a.audio_dbfs, abs=0.2)


def test_bad_input_is_refused_clearly_and_late_frames_ignored(pipe):
    live = LiveStream(pipe, window_s=WINDOW_S)
    with pytest.raises(ValueError, match="uint8 RGB"):
        live.push_video(np.zeros((48, 64, 3), np.float32), 0.0)
    with pytest.raises(ValueError, match="sampling_rate"):
        live.push_audio(np.zeros(160, np.float32), 0, 0.0)
    with pytest.raises(ValueError, match="timestamp"):
        live.push_video(np.zeros((48, 64, 3), np.uint8), float("nan"))
    with pytest.raises(ValueError, match="window_s"):
        LiveStream(pipe, window_s=0)
    with pytest.raises(ValueError, match="needs the audio-visual-emotion-recognition pipeline"):
        LiveStream(object())
    assert LiveStream.from_model(pipe.model, pipe.processor).num_frames == 4  # a model + processor work too
    live.push_video(np.zeros((48, 64, 3), np.uint8), 1.0)
    live.push_video(np.zeros((48, 64, 3), np.uint8), 0.5)  # out of order: ignored, counted
    assert live.late_frames == 1
    live.push_audio(np.zeros(0, np.float32), 16000, 1.0)  # an empty chunk is nothing, not an error
    assert live.poll() is None  # nothing is 2 s long yet


# ------------------------------------------------------------------------------------------ stale hops


def test_a_slow_consumer_gets_the_newest_window_not_a_queue(pipe):
    live = LiveStream(pipe, window_s=WINDOW_S)
    assert _push(live, 5.0, audio=_tone(5.0, RATE), poll=False) == []
    prediction = live.poll()  # windows 0..5 are ready (ends 2.0 .. 4.5; the last frame is at 4.96 s): the newest only
    assert prediction.index == 5 and (prediction.start, prediction.end) == (2.5, 4.5)
    assert prediction.skipped == 5 and "skipped_stale" in prediction.flags and live.skipped_total == 5
    assert live.poll() is None, "the dropped windows are gone, not queued"
    rest = live.finish()  # the stream ends at 5.0 s: window 6 (3.0-5.0) is the last
    assert [p.index for p in rest] == [6] and rest[-1].end == pytest.approx(5.0, abs=0.01)


def test_real_time_playback_with_a_slow_model_drops_stale_hops(pipe, clip_4s):
    """Played at real speed with a model 3x slower than the hop, the stream stays current: hops are dropped."""
    forward = pipe.forward

    def slow_forward(*args, **kwargs):
        time.sleep(0.75)
        return forward(*args, **kwargs)

    pipe.forward = slow_forward
    try:
        slow = LiveStream(pipe, window_s=WINDOW_S, hop_s=0.25)
        predictions = []
        slow.set_origin(0.0)
        for batch in play_file(str(clip_4s), speed=1.0):  # what came while the model was busy, then one poll
            for item in batch:
                slow.push(item)
            if (p := slow.poll()) is not None:
                predictions.append(p)
    finally:
        del pipe.forward
    assert predictions and slow.skipped_total >= 2
    assert sum(p.skipped for p in predictions) == slow.skipped_total
    assert len(predictions) + slow.skipped_total == predictions[-1].index + 1


# ------------------------------------------------------------------------------------------ CLI


def test_cli_live_file_prints_one_line_per_hop(model_dir, pipe, clip_4s):
    from hf_avemotion.cli import main

    out = io.StringIO()
    with redirect_stdout(out):
        code = main(["live", "--file", str(clip_4s), "--speed", "0", "--window-s", "2", "--model", str(model_dir)])
    assert code == 0
    lines = out.getvalue().splitlines()
    hops = [re.match(r"^\s*(\d+\.\d\d)-\s*(\d+\.\d\d) s\s+(\w+)\s+([\d.]+)\s+\d+ ms", line) for line in lines]
    hops = [m for m in hops if m]
    # 4 s, 2 s windows every 0.5 s: as many lines as the offline timeline has windows, in order
    offline = pipe(str(clip_4s), timeline=True, window_s=2.0, hop_s=0.5)["segments"]
    assert len(hops) == len(offline) == 5, out.getvalue()
    assert [float(m.group(1)) for m in hops] == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert [m.group(3) for m in hops] == [s["label"] for s in offline]
    assert all("[no_face]" in line for line in lines[1:-1])
    assert lines[0].startswith("live:") and lines[-1] == "live: 5 predictions, 0 stale hops dropped"


def test_cli_live_bad_camera_and_options_fail_clearly(model_dir, capsys):
    from hf_avemotion.cli import main

    assert main(["live", "--camera", "97", "--model", str(model_dir)]) == 2
    assert "cannot open camera" in capsys.readouterr().err
    assert main(["live", "--file", "missing.mp4", "--model", str(model_dir)]) == 2
    assert "missing.mp4" in capsys.readouterr().err
    assert main(["live", "--model", str(model_dir)]) == 2  # neither --file nor --camera
    assert "--file" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ Space handlers


def _wav_chunk(path: Path, seconds: float = 0.1, rate: int = 48000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((_tone(seconds, rate) * 32767).astype("<i2").tobytes())
    return path


def test_space_live_handlers_answer_per_hop_and_keep_no_sound(pipe, tmp_path, monkeypatch):
    """The Live tab's handlers without a browser: webcam frames + microphone chunk files (as gradio hands them
    over) give a label, a status line and a timeline that grows; every chunk file is deleted once read."""
    from test_app import _load_app_module

    app = _load_app_module()
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "uploads"))
    space = app.LiveSpace(pipe, app.model_labels(pipe), window_s=1.0, hop_s=0.5)
    assert space.available
    frame = np.full((48, 64, 3), 120, np.uint8)
    answers, chunks = [], []
    start = time.monotonic()
    while time.monotonic() - start < 2.2:
        out = space.on_frame(frame)
        chunk = _wav_chunk(tmp_path / "uploads" / f"{len(chunks):04d}" / "audio.wav")
        chunks.append(chunk)
        space.on_audio(str(chunk))
        if isinstance(out[0], dict) and out[0].get("__type__") != "update":
            answers.append(out)
        time.sleep(0.1)
    assert not any(c.exists() for c in chunks), "microphone chunks must not stay on disk"
    assert len(answers) >= 2
    label, status, timeline, plot = answers[-1]
    assert set(label) == set(LABELS_8) and abs(sum(label.values()) - 1) < 1e-4
    assert f"**Hop {len(answers)}**" in status and "no face found" in status and "dBFS" in status
    assert timeline.count('class="live-seg"') == len(answers)
    assert len(plot) == 8 * len(answers) and set(plot.columns) == {"time (s)", "probability", "emotion"}
    assert space.on_audio(str(chunks[0]))[0] == app.gr.skip()  # an already consumed chunk: skipped, no error
    label, status, timeline, _ = space.reset()
    assert label is None and "live-seg" not in timeline and not space.sessions


LABELS_8 = {"neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"}


# ------------------------------------------------------------------------------------------ browser


def _fake_media(clip: Path, out_dir: Path, seconds: float = 4.0) -> tuple[Path, Path]:
    """A real clip -> Chromium's fake camera (.y4m, 320x240, 15 fps, I420) and microphone (.wav, 16-bit 48 kHz)."""
    import av

    y4m, wav_path = out_dir / "camera.y4m", out_dir / "microphone.wav"
    with av.open(str(clip)) as src, av.open(str(y4m), "w", format="yuv4mpegpipe") as dst:
        stream = dst.add_stream("rawvideo", rate=15)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        shown = -1.0
        for frame in src.decode(video=0):
            if frame.time > seconds:
                break
            if frame.time < shown + 1 / 15 - 1e-6:
                continue
            shown = frame.time
            small = frame.reformat(width=320, height=240, format="yuv420p")
            small.pts = None
            for packet in stream.encode(small):
                dst.mux(packet)
        for packet in stream.encode(None):
            dst.mux(packet)
    resampler = av.AudioResampler(format="s16", layout="mono", rate=48000)
    parts = []
    with av.open(str(clip)) as src:
        for frame in src.decode(audio=0):
            parts += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
        parts += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    pcm = np.concatenate(parts)[: int(seconds * 48000)].astype("<i2")
    with wave.open(str(wav_path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(48000)
        w.writeframes(pcm.tobytes())
    return y4m, wav_path


@pytest.fixture(scope="module")
def live_server(model_dir, tmp_path_factory):
    """``python demo/app.py --model DIR --port N`` on 127.0.0.1; yields (url, log path)."""
    from test_app import app_server

    with app_server(model_dir, tmp_path_factory.mktemp("live_server")) as (url, log):
        yield url, log


def test_browser_live_tab_shows_successive_predictions_and_a_growing_timeline(live_server, tmp_path):
    from test_app import CHROMIUM, CHROMIUM_ARGS, playwright_api

    if not RAVDESS_CLIP.is_file():
        pytest.skip(f"{RAVDESS_CLIP} is absent (the fake camera plays a real clip)")
    sync_api = playwright_api()

    url, log = live_server
    y4m, wav_path = _fake_media(RAVDESS_CLIP, tmp_path)
    args = CHROMIUM_ARGS + ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                            f"--use-file-for-fake-video-capture={y4m}", f"--use-file-for-fake-audio-capture={wav_path}"]
    labels = {"neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"}
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=args)
        try:
            page = browser.new_context(viewport={"width": 1280, "height": 1000},
                                       permissions=["camera", "microphone"]).new_page()
            page.goto(url, wait_until="domcontentloaded", timeout=60_000)
            page.get_by_role("tab", name="Live").click()
            assert "stale segments are dropped" in page.locator("#live-tab").inner_text()
            page.locator("#live-webcam").get_by_text("Click to Access Webcam").click()
            page.locator("#live-webcam button[aria-label='capture photo']").click(timeout=30_000)  # start streaming
            page.locator("#live-mic button.record-button").click(timeout=30_000)
            seen: list[tuple[int, int, str]] = []  # (hop number, timeline blocks, label)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and len({s[0] for s in seen}) < 3:
                page.wait_for_timeout(500)
                # one read of the page (one JS task): status, timeline and label of the same update
                state = page.evaluate("""() => ({
                    status: document.querySelector('#live-status')?.innerText || '',
                    blocks: document.querySelectorAll('#live-timeline .live-seg').length,
                    label: document.querySelector('#live-label [data-testid="label-output-value"]')?.innerText || ''
                })""")
                match = re.search(r"Hop (\d+)", state["status"])
                if match:
                    seen.append((int(match.group(1)), state["blocks"], state["label"].strip()))
            page.screenshot(path=str(tmp_path / "live.png"), full_page=True)
            # the log while the stream runs: closing the browser mid-stream makes the server log the websocket's
            # disconnect (Gradio's streaming route), which is the client leaving, not a failed prediction
            log_while_streaming = log.read_text()
        finally:
            browser.close()
    hops = sorted({s[0] for s in seen})
    assert len(hops) >= 3, f"fewer than 3 predictions within 60 s: {seen}\n{log.read_text()[-3000:]}"
    blocks = [s[1] for s in seen]
    assert blocks == sorted(blocks) and blocks[-1] > blocks[0], f"the timeline did not grow: {seen}"
    assert blocks[-1] == seen[-1][0], "one timeline block per prediction"
    assert all(s[2] in labels for s in seen)
    assert "Traceback" not in log_while_streaming
