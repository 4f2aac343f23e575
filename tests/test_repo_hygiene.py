"""What a new user trips over first (issue 17): absolute paths of a build machine in committed files, `python -m
hf_avemotion`, `make bench` dirtying the checkout, the demo's raw dict, chromium's recommended packages, the
deprecated licence table."""

import hashlib
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from conftest import REPO_ROOT

# Absolute paths that only exist on the machine a file was made on: home folders, this project's build machines'
# /work, random temporary folders (tempfile: prefix + 8 random characters; pytest's tmp_path), macOS per-user temp
# folders, Windows user folders.
MACHINE_PATH = re.compile(
    r"(?<![\w.~-])("
    r"/home/[A-Za-z0-9_.-]+/"
    r"|/Users/[A-Za-z0-9_.-]+/"
    r"|/root/"
    r"|/work/"
    r"|/tmp/(?:tmp[a-z0-9_]{6,}|pytest-of-[^/\s]+|[A-Za-z0-9_.-]+_[a-z0-9_]{8}(?![A-Za-z0-9]))"
    r"|/(?:private/)?var/folders/"
    r"|[A-Za-z]:\\\\?Users\\\\?"
    r")"
)
# Absolute paths a results file may name: devices and pseudo-files used as test input, system programs.
SYSTEM_PREFIXES = ("/dev/", "/proc/", "/sys/", "/usr/", "/bin/", "/etc/")
BINARY_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".mp4", ".avi", ".mkv", ".webm", ".flv", ".wav", ".mp3", ".flac",
                   ".ogg", ".npz", ".npy", ".safetensors", ".bin", ".onnx", ".pt", ".arrow", ".parquet", ".zip",
                   ".gz", ".tar", ".whl", ".so", ".ico", ".woff", ".woff2", ".ttf", ".pdf"}


def committed_text_files() -> list[Path]:
    """Tracked files plus new files that are not git-ignored (about to be committed); text files only."""
    if not (REPO_ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    listed = set()
    for extra in ([], ["--others", "--exclude-standard"]):
        out = subprocess.run(["git", "ls-files", "-z", *extra], cwd=REPO_ROOT, capture_output=True, check=True)
        listed.update(name for name in out.stdout.decode().split("\0") if name)
    files = []
    for name in sorted(listed):
        path = REPO_ROOT / name
        if path.resolve() == Path(__file__).resolve():  # holds the patterns themselves
            continue
        if path.suffix.lower() in BINARY_SUFFIXES or not path.is_file() or path.is_symlink():
            continue
        head = path.read_bytes()[:8192]
        if b"\0" in head:
            continue
        files.append(path)
    return files


def machine_paths(text: str, own_root: str = str(REPO_ROOT)) -> list[str]:
    """Absolute paths of a build machine in ``text``: the generic patterns, and this checkout's own folder."""
    found = [m.group(0) for m in MACHINE_PATH.finditer(text)]
    if len(own_root) > 1 and own_root in text:
        found.append(own_root)
    return found


def absolute_strings(obj) -> list[str]:
    """String values (and keys) of a JSON document that hold an absolute path outside SYSTEM_PREFIXES."""
    found = []
    if isinstance(obj, dict):
        for key, value in obj.items():
            found += absolute_strings(key) + absolute_strings(value)
    elif isinstance(obj, list):
        for value in obj:
            found += absolute_strings(value)
    elif isinstance(obj, str):
        for m in re.finditer(r"(?:^|[\s'\"(=:])((?:/[A-Za-z0-9_.<>-]+){2,}|[A-Za-z]:\\[^\s'\"]+)", obj):
            path = m.group(1)
            if not path.startswith(SYSTEM_PREFIXES):
                found.append(path)
    return found


def test_the_pattern_catches_results_that_name_their_folder():
    examples = ["work/main/runs/demo/model", "tmp/avemotion_bench_10crtewi/prepared_2", "home/alice/src/x",
                "Users/bob/x", "tmp/pytest-of-root/pytest-3/a", "tmp/tmpk2j3h4l5/x"]
    text = json.dumps({**{str(i): "/" + e for i, e in enumerate(examples)}, "win": "C:" + "\\Users\\carol\\x"})
    assert len(machine_paths(text, own_root="/nowhere")) == 7
    assert machine_paths(f"made in {REPO_ROOT}/runs", own_root=str(REPO_ROOT))
    harmless = ("runs/demo/model, ../shared/data, /usr/bin/chromium, /dev/null, /proc/self/clear_refs, "
                "~/data/RAVDESS, https://huggingface.co/google/vit, <tmp>/prepared_2, --out runs/bench/r.json")
    assert machine_paths(harmless, own_root="/nowhere") == []
    assert absolute_strings({"case": "/dev/null", "msg": "'/dev/zero' is not a regular file"}) == []
    assert absolute_strings({"model": "/srv/build/runs/demo/model"}) == ["/srv/build/runs/demo/model"]


def test_no_committed_text_file_names_a_build_machine_folder():
    offenders = {}
    for path in committed_text_files():
        hits = machine_paths(path.read_text(errors="replace"))
        if hits:
            offenders[str(path.relative_to(REPO_ROOT))] = sorted(set(hits))[:3]
    assert not offenders, f"absolute paths of a build machine in committed files: {offenders}"


def test_benchmark_results_hold_no_absolute_path_and_record_the_machine():
    results = sorted((REPO_ROOT / "benchmarks").glob("*.json"))
    assert results
    for path in results:
        data = json.loads(path.read_text())
        assert absolute_strings(data) == [], path.name
    # the results of `make bench` / `make bench-publish` say which machine made them
    machine = json.loads((REPO_ROOT / "benchmarks" / "results.json").read_text())["machine"]
    assert {"cpu", "cpu_flags", "threads", "torch_cpu_capability", "bf16_units"} <= set(machine)
    if machine["cpu_flags"] is None:
        assert machine.get("cpu_flags_note")


# ------------------------------------------------------------------------------------------ entry points


def test_python_dash_m_hf_avemotion_is_the_cli():
    done = subprocess.run([sys.executable, "-m", "hf_avemotion", "--help"], capture_output=True, text=True,
                          timeout=120, env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr
    assert "synthetic-demo" in done.stdout and "predict" in done.stdout


def test_demo_prints_its_table_not_a_raw_dict(monkeypatch, capsys):
    import types

    from hf_avemotion import cli

    demo_job = types.ModuleType("hf_avemotion.demo_job")
    demo_job.run_demo = lambda output_dir, **kw: {"cross_attention": {"accuracy": 1.0, "macro_f1": 1.0}}
    monkeypatch.setitem(sys.modules, "hf_avemotion.demo_job", demo_job)
    assert cli.main(["synthetic-demo", "--output-dir", "runs/x"]) == 0
    assert "{" not in capsys.readouterr().out


def test_synthetic_demo_command_routes_seeds_and_threads(monkeypatch):
    from hf_avemotion import cli, demo_job

    calls = []
    monkeypatch.setattr(demo_job, "run_demo", lambda out, seed=None, threads=None: calls.append(("one", out, seed,
                                                                                                 threads)))
    monkeypatch.setattr(demo_job, "run_demo_seeds", lambda out, seeds, threads=None, fusion_types=None: calls.append(
        ("seeds", out, seeds, threads, fusion_types)))
    assert cli.main(["synthetic-demo"]) == 0
    assert cli.main(["synthetic-demo", "--seed", "3", "--threads", "1", "--output-dir", "runs/y"]) == 0
    assert cli.main(["synthetic-demo", "--seeds", "5", "--threads", "1"]) == 0
    assert cli.main(["synthetic-demo", "--seeds", "0,4", "--fusion-types", "late,concat"]) == 0
    assert cli.main(["synthetic-demo", "--seeds", "2", "--seed", "1"]) == 2
    assert cli.main(["synthetic-demo", "--seeds", "0,0"]) == 2
    assert calls == [("one", "runs/demo", None, None), ("one", "runs/y", 3, 1),
                     ("seeds", "runs/demo", [0, 1, 2, 3, 4], 1, demo_job.DEMO_FUSION_TYPES),
                     ("seeds", "runs/demo", [0, 4], None, ("late", "concat"))]


# ------------------------------------------------------------------------------------------ make targets


def _make_recipe(target: str) -> str:
    """The recipe lines of a Makefile target."""
    lines = (REPO_ROOT / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{target}:"))
    recipe = []
    for line in lines[start + 1:]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return "\n".join(recipe)


def test_make_targets_install_lean_and_keep_slow_tests_apart():
    assert "--no-install-recommends" in _make_recipe("system-deps")
    assert '-m "not slow"' in _make_recipe("test")
    assert "-m slow" in _make_recipe("release-check")
    assert "synthetic-demo" in _make_recipe("synthetic-demo")
    assert "--seeds" in _make_recipe("demo-seeds")
    bench = _make_recipe("bench")
    assert "--publish" not in bench and "runs/bench" in bench
    assert "--publish" in _make_recipe("bench-publish")


def test_licence_is_an_spdx_string():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"
    markers = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["markers"]
    assert any(m.startswith("slow:") for m in markers)


def _digest(paths) -> dict:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths if p.exists()}


def test_make_bench_writes_only_under_runs_bench(tmp_path, monkeypatch):
    """`make bench` runs benchmarks/run_benchmarks.py without --publish: its default outputs are git-ignored and a
    run (sections stubbed: the measuring is not what this test is about) leaves every tracked file as it was."""
    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
    try:
        import run_benchmarks as rb
    finally:
        sys.path.remove(str(REPO_ROOT / "benchmarks"))
    assert rb.LOCAL == REPO_ROOT / "runs" / "bench"
    ignored = subprocess.run(["git", "check-ignore", "-q", "runs/bench/results.json"], cwd=REPO_ROOT)
    assert ignored.returncode == 0, "runs/bench must be git-ignored"

    monkeypatch.setattr(rb, "LOCAL", tmp_path / "bench")
    monkeypatch.setattr(rb.inference, "make_clip", lambda folder: (Path(folder) / "clip.mp4", "stub"))
    monkeypatch.setattr(rb.inference, "bench_ast_short", lambda repeats: {
        "ast_short_speedup": 3.0, "max_length": 400, "seconds_short": 1.0, "raw_short": [1.0, 1.1],
        "seconds_1024": 3.0, "raw_1024": [3.0, 3.2], "where": str(REPO_ROOT / "runs" / "x")})
    published = [rb.RESULTS, rb.REPORT, REPO_ROOT / "benchmarks" / "parameter_counts.json"]
    before = _digest(published)
    rb.main(["--only", "ast", "--repeats", "2"])
    assert _digest(published) == before
    results = json.loads((tmp_path / "bench" / "results.json").read_text())
    assert "| ast_short_speedup | 3.00 |" in (tmp_path / "bench" / "BENCHMARKS.md").read_text()
    assert results["ast"]["where"] == "runs/x"  # made relative
    assert absolute_strings(results) == []
    machine = results["machine"]
    assert machine["threads"] >= 1 and isinstance(machine["cpu_flags"], (list, type(None)))
    assert machine["auto_quantization"] in ("bf16", "int8")
