"""Inference time of the shipped speech model on one 4 s clip (the figure in BENCHMARKS.md "Speech model").

    python benchmarks/bench_speech_inference.py [--threads 1] [--repeats 10]

`pipeline("audio-classification")` on the first 4 s of a RAVDESS clip (waveform in, as the model card shows),
median and 90th percentile of ``--repeats`` calls after one warm-up call."""

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import hf_avemotion  # noqa: E402
from hf_avemotion.corpora import default_corpus_root  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from transformers import pipeline

    classify = pipeline("audio-classification", model=str(hf_avemotion.pretrained_path("speech")))
    clip = default_corpus_root() / "speech" / "ravdess" / "03-01-05-02-01-01-01.opus"
    wave = hf_avemotion.load_clip(clip).audio[:64000]
    classify({"raw": wave, "sampling_rate": 16000})
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        classify({"raw": wave, "sampling_rate": 16000})
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    print(f"4 s clip, {args.threads} thread(s): median {median:.3f} s, p90 "
          f"{sorted(times)[int(0.9 * (len(times) - 1))]:.3f} s, real-time factor {median / 4:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
