"""`make bench`: every performance figure of issue 6 in one run -> benchmarks/results.json + the table in
BENCHMARKS.md.

    python benchmarks/run_benchmarks.py                 # all sections, torch's default thread count
    python benchmarks/run_benchmarks.py --threads 1     # on a machine shared with other jobs
    python benchmarks/run_benchmarks.py --only e2e,ast  # some sections (the JSON keeps the others' last values)

Each figure is the median of ``--repeats`` runs after a warm-up; ratios (speedups, utilisation, vs naive)
are formed from timings taken in this same run, so they survive a noisy machine better than seconds do.
Sections: e2e (end to end + stages + quantized paths + FLOP utilisation + naive baseline), ast, cache
(embedding cache), synthetic (prepare throughput + quantized accuracy), memory (peak RSS in child processes).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import torch  # noqa: E402

import bench_inference as inference  # noqa: E402
import bench_training as training  # noqa: E402

SECTIONS = ("e2e", "ast", "cache", "synthetic", "memory")
RESULTS = ROOT / "benchmarks" / "results.json"
REPORT = ROOT / "BENCHMARKS.md"
TABLE_START, TABLE_END = "<!-- results table: written by benchmarks/run_benchmarks.py -->", "<!-- end of table -->"


def machine_info(threads: int) -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from hf_avemotion.quantization import cpu_has_bf16_units

    return {
        "cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__,
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(), "bf16_units": cpu_has_bf16_units(),
        "threads": threads, "python": platform.python_version(), "platform": platform.platform(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def targets(r: dict) -> dict:
    """The issue's "Must show" list evaluated on the results (None when the section did not run)."""
    def get(*keys):
        node = r
        for k in keys:
            if not isinstance(node, dict) or k not in node:
                return None
            node = node[k]
        return node

    rtf = [get("e2e", "precisions", p, "e2e_rtf") for p in ("fp32", "bf16", "int8")]
    rtf = [x for x in rtf if x is not None]
    checks = {
        "e2e_rtf <= 0.5 (best path)": (min(rtf) <= 0.5) if rtf else None,
        "vs_naive_ratio <= 1.0 (fp32)": None if get("e2e", "vs_naive_ratio") is None else get("e2e", "vs_naive_ratio") <= 1.0,
        "flop_utilization >= 0.6 (fp32)": None if get("e2e", "flop_utilization") is None else get("e2e", "flop_utilization") >= 0.6,
        "embedding_cache_speedup >= 20": None if get("cache", "embedding_cache_speedup") is None
        else get("cache", "embedding_cache_speedup") >= 20,
        "|int8_accuracy_delta| <= 1 point": None if get("synthetic", "accuracy", "int8_accuracy_delta") is None
        else abs(get("synthetic", "accuracy", "int8_accuracy_delta")) <= 1.0,
        "timeline peak RSS 10 min <= 1.5x 1 min": None if get("memory", "timeline_10min_over_1min") is None
        else get("memory", "timeline_10min_over_1min") <= 1.5,
    }
    return checks


def table(r: dict) -> str:
    """Markdown table of the headline figures."""
    rows = []

    def add(name, value, note=""):
        rows.append(f"| {name} | {value} | {note} |")

    e = r.get("e2e")
    if e:
        for p, v in e["precisions"].items():
            add(f"e2e_rtf ({p})", f"{v['e2e_rtf']:.3f}", f"{v['e2e_seconds']:.2f} s for a 4 s 720p clip; model {v['model_seconds']:.2f} s")
        st = e["stages_seconds"]
        add("stages (s)", " / ".join(f"{v:.3f}" for v in st.values()), " / ".join(st))
        add("vs_naive_ratio (fp32)", f"{e['vs_naive_ratio']:.3f}",
            f"ours {e['precisions']['fp32']['e2e_seconds']:.2f} s vs ViT + AST-1024 pipelines {e['naive']['seconds']:.2f} s (no decode)")
        add("vs_naive_ratio (bf16 / int8)", f"{e['vs_naive_ratio_bf16']:.3f} / {e['vs_naive_ratio_int8']:.3f}", "")
        f = e["flops"]
        add("flop_utilization (fp32)", f"{e['flop_utilization']:.3f}",
            f"{f['model_forward_gflop']:.0f} GFLOP in {f['forward_seconds']:.2f} s = {f['achieved_gflops']:.0f} GFLOP/s; "
            f"2048² matmul {f['matmul_2048_fp32_gflops']:.0f} GFLOP/s")
        add("int8_speedup (model forward)", f"{e['int8_speedup']:.2f}", "torch.ao dynamic int8 linears, per channel")
        add("bf16_speedup (model forward)", f"{e['bf16_speedup']:.2f}",
            f"bf16 weights; CPU bf16 units: {e['cpu_has_bf16_units']}; 2048² bf16 matmul {f['matmul_2048_bf16_gflops']:.0f} GFLOP/s")
    a = r.get("ast")
    if a:
        add("ast_short_speedup", f"{a['ast_short_speedup']:.2f}", f"AST-base {a['max_length']} vs 1024 frames: "
            f"{a['seconds_short']:.2f} s vs {a['seconds_1024']:.2f} s")
    c = r.get("cache")
    if c:
        add("embedding_cache_speedup", f"{c['embedding_cache_speedup']:.0f}",
            f"epoch of {c['num_clips']} clips: {c['epoch_full_seconds']:.1f} s re-encoding vs "
            f"{1000 * c['epoch_cached_seconds']:.1f} ms cached (cache built once in {c['cache_build_seconds']:.1f} s)")
    s = r.get("synthetic")
    if s:
        acc = s["accuracy"]
        for p in ("int8", "bf16"):
            add(f"{p}_accuracy_delta (points)", f"{acc[f'{p}_accuracy_delta']:+.2f}",
                f"test accuracy fp32 {acc['fp32']['test_accuracy']:.1f} % vs {p} {acc[p]['test_accuracy']:.1f} % "
                f"({acc['test_clips']} clips); agreement on all {acc['all_clips']} clips {acc[p]['agreement_with_fp32']:.1f} %")
        for n in (1, 2):
            v = s["prepare"][f"num_proc_{n}"]
            add(f"prepare_clips_per_s (num_proc {n})", f"{v['clips_per_s']:.1f}", f"{v['clips']} synthetic clips, 4 frames, 64 px")
    m = r.get("memory")
    if m:
        for p, v in m["inference"].items():
            add(f"peak_rss_mb inference ({p})", f"{v['peak_rss_mb']:.0f}",
                f"base model loaded + one 4 s clip; during the call alone {v['call_peak_rss_mb']} MB")
        for k, v in m["timeline"].items():
            add(f"peak_rss_mb timeline {k}", f"{v['peak_rss_mb']:.0f}",
                f"{v['precision']}, {v['segments']} windows of {v['window_s']:.0f} s in {v['seconds']:.0f} s; "
                f"growth over a 4 s call {v['growth_mb']:.0f} MB")
        add("timeline 10 min / 1 min peak RSS", f"{m['timeline_10min_over_1min']:.3f}", "")
    return "| figure | value | detail |\n|---|---:|---|\n" + "\n".join(rows)


def write_report(r: dict, report: Path = REPORT):
    m = r["machine"]
    checks = targets(r)
    lines = [
        TABLE_START,
        f"Run {m['date']} on {m['cpu']} ({m['cores']} cores, torch CPU capability {m['torch_cpu_capability']}, "
        f"bf16 units: {m['bf16_units']}), torch {m['torch']}, {m['threads']} thread(s), "
        f"load average at start {m['loadavg_at_start'][0]}; `{r['command']}` took {r['total_seconds']:.0f} s.",
        "",
        table(r),
        "",
        "Targets (issue 6, \"Must show\"):",
        "",
        *[f"- {'holds' if ok else ('not run' if ok is None else 'DOES NOT HOLD')}: {name}" for name, ok in checks.items()],
        TABLE_END,
    ]
    block = "\n".join(lines)
    text = report.read_text() if report.exists() else ""
    if TABLE_START in text and TABLE_END in text:
        head, rest = text.split(TABLE_START, 1)
        text = head + block + rest.split(TABLE_END, 1)[1]
    else:
        text = text + "\n" + block + "\n"
    report.write_text(text)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's own, = cores)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated subset of {SECTIONS}")
    parser.add_argument("--train-epochs", type=int, default=0,
                        help="epochs of the demo model trained when runs/demo is absent (0: configs/demo.yaml's)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--report", type=Path, default=REPORT, help="markdown file whose results table is replaced")
    args = parser.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(only) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {sorted(unknown)}; choose from {SECTIONS}")
    inference.quiet()
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    started = time.perf_counter()
    results = json.loads(args.out.read_text()) if args.out.exists() and set(only) != set(SECTIONS) else {}
    results["machine"] = machine_info(threads)
    results["command"] = "python benchmarks/run_benchmarks.py " + " ".join(argv if argv is not None else sys.argv[1:])
    results["repeats"] = args.repeats
    with tempfile.TemporaryDirectory(prefix="avemotion_bench_") as tmp:
        tmp = Path(tmp)
        clip, content = inference.make_clip(tmp)
        results["clip"] = {"seconds": inference.CLIP_SECONDS, "size": [1280, 720], "codecs": ["h264", "aac"],
                           "content": content}
        for section in SECTIONS:
            if section not in only:
                continue
            print(f"[{section}]", flush=True)
            start = time.perf_counter()
            if section == "e2e":
                results["e2e"] = inference.bench_end_to_end(clip, args.repeats)
            elif section == "ast":
                results["ast"] = inference.bench_ast_short(args.repeats)
            elif section == "cache":
                results["cache"] = training.bench_embedding_cache(repeats=args.repeats)
            elif section == "synthetic":
                results["synthetic"] = training.bench_synthetic(tmp, threads, args.train_epochs)
            elif section == "memory":
                results["memory"] = inference.bench_memory(tmp, clip, threads, precision="bf16"
                                                           if results["machine"]["bf16_units"] else "int8")
            results.setdefault("section_seconds", {})[section] = round(time.perf_counter() - start, 1)
    results["total_seconds"] = round(time.perf_counter() - started, 1)
    results["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["targets"] = targets(results)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    write_report(results, args.report)
    print(table(results))
    for name, ok in results["targets"].items():
        print(f"{'holds' if ok else ('not run' if ok is None else 'DOES NOT HOLD')}: {name}")
    print(f"wrote {args.out} and {args.report} in {results['total_seconds']:.0f} s")


if __name__ == "__main__":
    main()
