"""Rebuild the bundled example clips from ../shared (run from the repo root: `python demo/examples/make_examples.py`).

Three small items whose licences allow redistribution with attribution (see NOTICE.md):
* ravdess_01_disgust.mp4: ../shared/data/ravdess_av/01-01-07-02-02-01-01_1.mp4 re-encoded at 320x240, 15 fps;
* ravdess_14_angry.mp4: the 16 face frames of ../shared/corpus/av/ravdess_frames/01-01-05-02-01-02-14.npz with the
  matching RAVDESS speech file (03-01-05-02-01-02-14), muxed at 16 frames over the speech's duration;
* crema_d_1002_happy.mp3: ../shared/data/crema_d/1002_DFA_HAP_XX.mp3 copied as is (audio only).
"""

import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[2] / "shared"


def write_mp4(path: Path, frames: np.ndarray, fps: Fraction, audio: np.ndarray, rate: int) -> None:
    """uint8 frames [T,H,W,3] at ``fps`` + mono float audio [N] at ``rate`` -> H.264 + AAC MP4."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        video.options = {"crf": "28", "preset": "veryslow"}
        sound = out.add_stream("aac", rate=rate)
        sound.layout = "mono"
        for frame in frames:
            out.mux(video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(video.encode())
        samples = audio.astype(np.float32)[None]
        for start in range(0, samples.shape[1], 1024):
            chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, start:start + 1024]), format="fltp",
                                               layout="mono")
            chunk.sample_rate = rate
            chunk.pts = start
            out.mux(sound.encode(chunk))
        out.mux(sound.encode())


def main() -> None:
    from PIL import Image

    from hf_avemotion.media import load_clip

    clip = load_clip(SHARED / "data" / "ravdess_av" / "01-01-07-02-02-01-01_1.mp4", fps=15)
    frames = np.stack([np.asarray(Image.fromarray(f).resize((320, 240))) for f in clip.frames])
    write_mp4(HERE / "ravdess_01_disgust.mp4", frames, Fraction(15), clip.audio, 16000)

    faces = np.load(SHARED / "corpus" / "av" / "ravdess_frames" / "01-01-05-02-01-02-14.npz")["frames"]
    voice = next((SHARED / "corpus" / "speech" / "ravdess").rglob("03-01-05-02-01-02-14.*"))
    audio = load_clip(voice).audio
    fps = Fraction(len(faces) * 16000, len(audio)).limit_denominator(1000)
    write_mp4(HERE / "ravdess_14_angry.mp4", faces, fps, audio, 16000)

    shutil.copyfile(SHARED / "data" / "crema_d" / "1002_DFA_HAP_XX.mp3", HERE / "crema_d_1002_happy.mp3")


if __name__ == "__main__":
    main()
