"""Training survives SIGKILL: a run killed at random points and during checkpoint writes resumes and ends
exactly where an uninterrupted run ends.

A tiny model (32 px frames, one layer each, 16 mel bins x 112 frames) trains for 16 epochs on a tiny prepared
synthetic dataset (4 actors x 8 emotions x 1 clip of 1 s). One uninterrupted reference run, then one output
folder taken through a chain of launches of ``python -m hf_avemotion.training --config ... [--resume true]``,
each but the last killed with SIGKILL:

1. in-process, right after the ``epoch_1`` checkpoint is renamed into place and before ``best/`` is written;
2. at a random moment after the process reports an epoch;
3. as soon as a ``.tmp_epoch_*`` folder appears (the checkpoint is being written);
4. in-process, after ``Accelerator.save_state`` has filled the temporary folder, before its rename;
5. at a random moment after start (start-up, data loading, resuming or training);
6. at a random moment after it reports resuming;
7. in-process, after the final ``model.tmp`` folder is written, before its rename;
8. the last launch finishes.

In-process kills send SIGKILL to the process itself from a wrapper around the training module's functions (no
clean-up runs, as with an external kill). After every kill the checkpoint that ``--resume`` would take must be
complete, and the next launch must say it resumed from it. At the end no temporary folder is left and the test
metrics, the training history and the final weights equal the reference run's (training is deterministic on
CPU with a fixed seed and one thread).
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.timeout(600), pytest.mark.filterwarnings("ignore")]

NUM_EPOCHS = 16
CHECKPOINT_FILES = ("trainer_state.json", "model.safetensors", "optimizer.bin", "scheduler.bin",
                    "random_states_0.pkl")
TINY = dict(
    fusion_type="cross_attention", image_size=32, patch_size=16, vision_hidden_size=32, vision_layers=1,
    vision_heads=2, num_mel_bins=16, audio_max_length=112, audio_patch_size=16, audio_stride=10,
    audio_hidden_size=32, audio_layers=1, audio_heads=2, fusion_hidden_size=32, fusion_num_layers=1,
    fusion_num_heads=2, num_frames=2, fold="fold_1", num_epochs=NUM_EPOCHS, batch_size=4, eval_batch_size=8,
    learning_rate=0.001, early_stopping_patience=100, keep_checkpoints=2, seed=0,
)

# Runs the training module; AVEMOTION_TEST_KILL_AT="<point>" makes the process SIGKILL itself at that point.
LAUNCHER = r"""
import os, signal, sys
import hf_avemotion.training as training

point = os.environ.get("AVEMOTION_TEST_KILL_AT", "")

def die():
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)

if point == "after_save_state":
    import accelerate
    real_save_state = accelerate.Accelerator.save_state
    def save_state(self, *args, **kwargs):
        out = real_save_state(self, *args, **kwargs)
        die()
        return out
    accelerate.Accelerator.save_state = save_state
elif point in ("before_best_rename", "before_model_rename"):
    real_replace = training.atomic_replace_dir
    target = "best" if point == "before_best_rename" else "model"
    def atomic_replace_dir(tmp, final):
        if final.name == target:
            die()
        return real_replace(tmp, final)
    training.atomic_replace_dir = atomic_replace_dir
training.main(sys.argv[1:])
"""


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from hf_avemotion.prepare import prepare_folder
    from hf_avemotion.synthetic import generate_synthetic_benchmark

    root = tmp_path_factory.mktemp("crash")
    raw = generate_synthetic_benchmark(root / "raw", num_actors=4, clips_per_emotion=1, duration=1.0)
    return prepare_folder(raw, root / "prepared", num_frames=2, image_size=32)


class Launch:
    """One training process; its stdout is collected line by line (for "epoch N:" and "resumed from")."""

    def __init__(self, config: Path, output_dir: Path, resume: bool, kill_at: str = ""):
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "PYTHONWARNINGS": "ignore",
               "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
               "AVEMOTION_TEST_KILL_AT": kill_at}
        args = ["--config", str(config), "--output_dir", str(output_dir)] + (["--resume", "true"] if resume else [])
        self.proc = subprocess.Popen([sys.executable, "-c", LAUNCHER, *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)
        self.started = time.monotonic()
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def kill(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)

    def wait(self, timeout: float = 240.0) -> int:
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        self.reader.join(5)
        return code

    def saw(self, pattern: str) -> bool:
        return any(re.search(pattern, line) for line in list(self.lines))

    def output(self) -> str:
        return "\n".join(self.lines[-30:])


def _wait_until(condition, launch: Launch, timeout: float = 240.0, poll: float = 0.0005) -> bool:
    """Poll ``condition`` until it holds (True) or the process exits first (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        if launch.proc.poll() is not None:
            return condition()
        time.sleep(poll)
    raise AssertionError(f"timed out waiting; output:\n{launch.output()}")


def complete(checkpoint: Path) -> bool:
    return all((checkpoint / name).is_file() for name in CHECKPOINT_FILES)


def resumable(output_dir: Path) -> Path | None:
    """The checkpoint `--resume` takes (training.latest_checkpoint); asserted complete."""
    from hf_avemotion.training import latest_checkpoint

    checkpoints = output_dir / "checkpoints"
    last = latest_checkpoint(checkpoints) if checkpoints.is_dir() else None
    if last is not None:
        missing = [n for n in CHECKPOINT_FILES if not (last / n).is_file()]
        assert not missing, f"half-written checkpoint {last} would be resumed (missing {missing})"
        state = json.loads((last / "trainer_state.json").read_text())
        assert state["epoch"] == int(last.name.split("_")[1])
    best = output_dir / "best"
    assert not best.exists() or (best / "model.safetensors").is_file(), "best/ is half-written"
    return last


def test_sigkill_at_random_points_and_during_checkpoint_writes_then_resume(dataset, tmp_path):
    import yaml
    from safetensors.torch import load_file

    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({**TINY, "dataset": str(dataset)}))
    reference_dir, crashed_dir = tmp_path / "reference", tmp_path / "crashed"
    rng = random.Random(int(os.environ.get("AVEMOTION_CRASH_SEED", "0")))

    reference = Launch(config, reference_dir, resume=False)  # runs beside the first trial
    trials = [
        ("in-process: epoch_1 renamed, best/ not yet written", dict(kill_at="before_best_rename"), None),
        ("random moment after an epoch report", {}, "after_epoch"),
        ("a .tmp_epoch_* folder appears (checkpoint being written)", {}, "tmp_checkpoint"),
        ("in-process: save_state done, checkpoint not renamed", dict(kill_at="after_save_state"), None),
        ("random moment after start", {}, "random"),
        ("random moment after resuming", {}, "after_resume"),
        ("in-process: model.tmp written, not renamed", dict(kill_at="before_model_rename"), None),
    ]
    log, expected_resume, kills = [], None, 0
    for i, (what, kwargs, external) in enumerate(trials):
        launch = Launch(config, crashed_dir, resume=i > 0, **kwargs)
        if external == "after_epoch":
            if _wait_until(lambda: launch.saw(r"^epoch \d+:"), launch):
                time.sleep(rng.uniform(0.0, 0.5))
        elif external == "tmp_checkpoint":
            checkpoints = crashed_dir / "checkpoints"
            _wait_until(lambda: checkpoints.is_dir() and any(p.name.startswith(".tmp_epoch_")
                                                             for p in checkpoints.iterdir()), launch)
        elif external == "random":
            time.sleep(rng.uniform(0.3, 6.0))
        elif external == "after_resume":
            if _wait_until(lambda: launch.saw(r"^resumed from"), launch):
                time.sleep(rng.uniform(0.0, 0.6))
        if external:
            launch.kill()
        code = launch.wait()
        resumed = [line for line in launch.lines if line.startswith("resumed from")]
        if expected_resume is not None and (resumed or launch.saw(r"^epoch \d+:")):  # killed before saying it: fine
            assert resumed and resumed[0].startswith(f"resumed from {expected_resume} "), launch.output()
        assert code in (-signal.SIGKILL, 0), f"trial {i + 1} ({what}) exited {code}:\n{launch.output()}"
        last = resumable(crashed_dir)
        kills += code == -signal.SIGKILL
        mid_write = sorted(p.name for p in (crashed_dir / "checkpoints").glob(".tmp_epoch_*")) \
            if (crashed_dir / "checkpoints").is_dir() else []
        log.append(f"trial {i + 1}: {what}: {'killed' if code else 'finished first'}; resumable: "
                   f"{last.name if last else None}" + (f"; left {mid_write} (ignored)" if mid_write else ""))
        if external not in ("random", "after_resume"):  # the other trials must really kill the run
            assert code == -signal.SIGKILL, f"trial {i + 1} ({what}) was not killed:\n{launch.output()}"
        expected_resume = last
        if i == 0:
            assert code == -signal.SIGKILL and last is not None and last.name == "epoch_1"
            assert not (crashed_dir / "best").exists()

    final = Launch(config, crashed_dir, resume=True)
    assert final.wait() == 0, final.output()
    if expected_resume is not None:
        assert final.saw(re.escape(f"resumed from {expected_resume}")), final.output()
    assert reference.wait() == 0, reference.output()
    epoch_seconds = [h["seconds"] for h in json.loads((reference_dir / "metrics.json").read_text())["history"]]
    log.append(f"reference epochs: {np.median(epoch_seconds):.2f} s median")
    print("\n".join(log))
    assert kills >= 5, log

    leftovers = [p.relative_to(crashed_dir) for p in crashed_dir.rglob("*") if ".tmp" in p.name]
    assert not leftovers, f"temporary files left behind: {leftovers}"
    ours = json.loads((crashed_dir / "metrics.json").read_text())
    theirs = json.loads((reference_dir / "metrics.json").read_text())
    for key in ("accuracy", "macro_f1", "uar", "best_epoch", "best_val_macro_f1"):
        assert ours[key] == pytest.approx(theirs[key], abs=1e-6), key
    assert [h["epoch"] for h in ours["history"]] == list(range(1, NUM_EPOCHS + 1))
    for a, b in zip(ours["history"], theirs["history"]):
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-5)
        assert a["val_macro_f1"] == pytest.approx(b["val_macro_f1"], abs=1e-6)
    weights, expected = (load_file(d / "model" / "model.safetensors") for d in (crashed_dir, reference_dir))
    assert weights.keys() == expected.keys()
    for name in expected:
        np.testing.assert_allclose(weights[name].numpy(), expected[name].numpy(), atol=1e-5, err_msg=name)


def test_kill_between_checkpoint_and_best_weights_keeps_the_best_weights(dataset, tmp_path):
    """One epoch (always an improvement): killed after ``epoch_1`` is committed but before ``best/`` is in place,
    the resumed run must still end with epoch 1's weights as its model."""
    import yaml
    from safetensors.torch import load_file

    config = tmp_path / "one_epoch.yaml"
    config.write_text(yaml.safe_dump({**TINY, "dataset": str(dataset), "num_epochs": 1}))
    out = tmp_path / "run"
    first = Launch(config, out, resume=False, kill_at="before_best_rename")
    assert first.wait() == -signal.SIGKILL, first.output()
    checkpoint = resumable(out)
    assert checkpoint is not None and checkpoint.name == "epoch_1"
    epoch_1 = load_file(checkpoint / "model.safetensors")  # the model's state_dict at the end of epoch 1
    second = Launch(config, out, resume=True)
    assert second.wait() == 0, second.output()
    from hf_avemotion import AVEmotionForAudioVisualClassification

    final = AVEmotionForAudioVisualClassification.from_pretrained(out / "model").state_dict()
    assert set(epoch_1) <= set(final)
    for name, value in epoch_1.items():
        np.testing.assert_allclose(final[name].numpy(), value.numpy(), atol=1e-6, err_msg=name)
    assert json.loads((out / "metrics.json").read_text())["best_epoch"] == 1
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]
