"""`make bench`: every performance figure of issue 6 in one run -> runs/bench/results.json + runs/bench/BENCHMARKS.md
(git-ignored: a user's run leaves the checkout clean). `make bench-publish` (``--publish``) writes the published
benchmarks/results.json and the results table of BENCHMARKS.md instead.

    python benchmarks/run_benchmarks.py                 # all sections, torch's default thread count
    python benchmarks/run_benchmarks.py --threads 1     # on a machine shared with other jobs
    python benchmarks/run_benchmarks.py --only e2e,ast  # some sections (the JSON keeps the others' last values)
    python benchmarks/run_benchmarks.py --publish --render-only   # redraw BENCHMARKS.md's table from results.json

Each figure is the median of ``--repeats`` runs after a warm-up; ratios (speedups, utilisation, vs naive)
are formed from timings taken in this same run, so they survive a noisy machine better than seconds do. The table
gives each figure's spread (min-max over the rounds, or "one run"). Results record the machine (CPU, its
speed-relevant flags such as avx512_bf16 / amx_tile, torch's kernel set, thread count) and no absolute path.
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
RESULTS = ROOT / "benchmarks" / "results.json"  # published (make bench-publish)
REPORT = ROOT / "BENCHMARKS.md"
LOCAL = ROOT / "runs" / "bench"  # make bench (git-ignored)
TABLE_START, TABLE_END = "<!-- results table: written by benchmarks/run_benchmarks.py -->", "<!-- end of table -->"


def machine_info(threads: int) -> dict:
    """The machine a run measured: CPU, the /proc/cpuinfo flags that pick kernels (avx2, avx512_bf16, amx_tile,
    ...), torch's kernel set, what ``quantize_model("auto")`` resolves to there, thread count, load."""
    from hf_avemotion.quantization import cpu_features, cpu_has_bf16_units, resolve_method

    features = cpu_features()
    return {
        "cpu": features["cpu"], "cpu_flags": features["cpu_flags"], "cores": os.cpu_count(), "torch": torch.__version__,
        "torch_cpu_capability": features["capability"], "avx512_bf16": features["avx512_bf16"],
        "amx_tile": features["amx_tile"], "bf16_units": cpu_has_bf16_units(), "auto_quantization": resolve_method("auto"),
        "threads": threads, "python": platform.python_version(), "platform": platform.platform(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def portable(obj, prefixes: dict):
    """``obj`` with every string that starts with one of ``prefixes`` (absolute folders of this machine) rewritten
    to its replacement: results must not name the folders they were made in."""
    if isinstance(obj, dict):
        return {k: portable(v, prefixes) for k, v in obj.items()}
    if isinstance(obj, list):
        return [portable(v, prefixes) for v in obj]
    if isinstance(obj, str):
        for prefix, replacement in prefixes.items():
            if prefix and obj.startswith(prefix):
                rest = obj[len(prefix):].lstrip("/")
                if replacement == ".":
                    return rest or "."
                return f"{replacement}/{rest}" if rest else replacement
    return obj


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


ONE_RUN = "one run"


def spread(values, digits: int = 3) -> str:
    """``min–max (n rounds)`` of per-round values; ``one run`` when there is a single value."""
    values = [v for v in (values or []) if v is not None]
    if len(values) < 2:
        return ONE_RUN
    return f"{min(values):.{digits}f}–{max(values):.{digits}f} ({len(values)} rounds)"


def per_round(fn, *lists):
    """fn applied round by round to raw timings taken in the same interleaved rounds ([] when any is missing)."""
    if not lists or any(not x for x in lists) or len({len(x) for x in lists}) != 1:
        return []
    return [fn(*values) for values in zip(*lists)]


def table(r: dict) -> str:
    """Markdown table of the headline figures: value (median over rounds, or the one measurement), its spread,
    and what it is."""
    rows = []
    repeats = r.get("repeats")

    def add(name, value, spread_text, note=""):
        rows.append(f"| {name} | {value} | {spread_text} | {note} |")

    e = r.get("e2e")
    if e:
        clip_s = e.get("clip_seconds", 4.0)
        pr = e["precisions"]
        for p, v in pr.items():
            add(f"e2e_rtf ({p})", f"{v['e2e_rtf']:.3f}", spread([x / clip_s for x in v.get("e2e_raw", [])]),
                f"{v['e2e_seconds']:.2f} s for a 4 s 720p clip; model {v['model_seconds']:.2f} s")
        st, raw = e["stages_seconds"], e.get("stages_raw", {})
        stage_raw = {"decode": raw.get("decode"), "face_detection": raw.get("face_detection"),
                     "model fp32": pr["fp32"].get("model_raw"), "model bf16": pr.get("bf16", {}).get("model_raw"),
                     "model int8": pr.get("int8", {}).get("model_raw")}
        for name, value in st.items():
            if name.startswith("processor"):  # median(processor) - median(detection): no per-round value
                total = raw.get("processor_total")
                add("stage: processor (s)", f"{value:.3f}", spread(total).replace("rounds", "rounds, with detection"),
                    "image processor + log-mel: median of the whole processor minus median of face detection")
                continue
            add(f"stage: {name} (s)", f"{value:.3f}", spread(stage_raw.get(name)), "")
        naive = e["naive"]
        naive_rounds = per_round(lambda a, b: a + b, naive.get("image_raw"), naive.get("audio_raw"))
        for p, key in (("fp32", "vs_naive_ratio"), ("bf16", "vs_naive_ratio_bf16"), ("int8", "vs_naive_ratio_int8")):
            if key in e:
                add(f"vs_naive_ratio ({p})", f"{e[key]:.3f}",
                    spread(per_round(lambda a, b: a / b, pr[p].get("e2e_raw"), naive_rounds)),
                    f"ours {pr[p]['e2e_seconds']:.2f} s vs ViT + AST-1024 pipelines {naive['seconds']:.2f} s (no decode)"
                    if p == "fp32" else "")
        f = e["flops"]
        gflop = f["model_forward_gflop"]
        add("flop_utilization (fp32)", f"{e['flop_utilization']:.3f}",
            spread(per_round(lambda s, m: gflop / s / m, pr["fp32"].get("model_raw"), f.get("matmul_raw_gflops"))),
            f"{gflop:.0f} GFLOP in {f['forward_seconds']:.2f} s = {f['achieved_gflops']:.0f} GFLOP/s; "
            f"2048² matmul {f['matmul_2048_fp32_gflops']:.0f} GFLOP/s")
        for p, note in (("int8", "torch.ao dynamic int8 linears, per channel"),
                        ("bf16", f"bf16 weights; CPU bf16 units: {e['cpu_has_bf16_units']}; 2048² bf16 matmul "
                                 f"{f['matmul_2048_bf16_gflops']:.0f} GFLOP/s")):
            add(f"{p}_speedup (model forward)", f"{e[f'{p}_speedup']:.2f}",
                spread(per_round(lambda a, b: a / b, pr["fp32"].get("model_raw"), pr[p].get("model_raw")), 2), note)
    a = r.get("ast")
    if a:
        short, full = a.get("raw_short") or [], a.get("raw_1024") or []
        bounds = [min(full) / max(short), max(full) / min(short)] if len(short) > 1 and len(full) > 1 else []
        add("ast_short_speedup", f"{a['ast_short_speedup']:.2f}",
            f"{bounds[0]:.2f}–{bounds[1]:.2f} (bounds from {len(short)} + {len(full)} runs)" if bounds else ONE_RUN,
            f"AST-base {a['max_length']} vs 1024 frames: {a['seconds_short']:.2f} s vs {a['seconds_1024']:.2f} s")
    c = r.get("cache")
    if c:
        cached = c.get("epoch_cached_raw") or []
        add("embedding_cache_speedup", f"{c['embedding_cache_speedup']:.0f}",
            spread([c["epoch_full_seconds"] / x for x in cached], 0).replace("rounds", "cached epochs, 1 full epoch"),
            f"epoch of {c['num_clips']} clips: {c['epoch_full_seconds']:.1f} s re-encoding vs "
            f"{1000 * c['epoch_cached_seconds']:.1f} ms cached (cache built once in {c['cache_build_seconds']:.1f} s)")
    s = r.get("synthetic")
    if s:
        acc = s["accuracy"]
        for p in ("int8", "bf16"):
            add(f"{p}_accuracy_delta (points)", f"{acc[f'{p}_accuracy_delta']:+.2f}", "one trained model",
                f"test accuracy fp32 {acc['fp32']['test_accuracy']:.1f} % vs {p} {acc[p]['test_accuracy']:.1f} % "
                f"({acc['test_clips']} clips); agreement on all {acc['all_clips']} clips {acc[p]['agreement_with_fp32']:.1f} %")
        for n in (1, 2):
            v = s["prepare"][f"num_proc_{n}"]
            add(f"prepare_clips_per_s (num_proc {n})", f"{v['clips_per_s']:.1f}", ONE_RUN,
                f"{v['clips']} synthetic clips, 4 frames, 64 px")
    m = r.get("memory")
    if m:
        for p, v in m["inference"].items():
            add(f"peak_rss_mb inference ({p})", f"{v['peak_rss_mb']:.0f}", ONE_RUN,
                f"base model loaded + one 4 s clip; during the call alone {v['call_peak_rss_mb']} MB")
        for k, v in m["timeline"].items():
            add(f"peak_rss_mb timeline {k}", f"{v['peak_rss_mb']:.0f}", ONE_RUN,
                f"{v['precision']}, {v['segments']} windows of {v['window_s']:.0f} s in {v['seconds']:.0f} s; "
                f"growth over a 4 s call {v['growth_mb']:.0f} MB")
        add("timeline 10 min / 1 min peak RSS", f"{m['timeline_10min_over_1min']:.3f}", ONE_RUN, "")
    head = (f"Value: median over {repeats} timed rounds after a warm-up (timings), or the one measurement. "
            "Spread: min–max over those rounds; ratios are taken round by round.\n\n" if repeats else "")
    return head + "| figure | value | spread | detail |\n|---|---:|---|---|\n" + "\n".join(rows)


def describe_machine(m: dict) -> str:
    flags = m.get("cpu_flags")
    flag_text = f"CPU flags {', '.join(flags)}" if flags else "CPU flags not recorded"
    amx = m.get("amx_tile")
    return (f"{m['cpu']} ({m['cores']} cores; {flag_text}; torch kernels {m['torch_cpu_capability']}; "
            f"bf16 units: {m['bf16_units']}" + ("" if amx is None else f", AMX: {amx}")
            + (f"; \"auto\" quantization: {m['auto_quantization']}" if m.get("auto_quantization") else "") + ")")


def write_report(r: dict, report: Path = REPORT):
    m = r["machine"]
    checks = targets(r)
    lines = [
        TABLE_START,
        f"Run {m['date']} on {describe_machine(m)}, torch {m['torch']}, {m['threads']} thread(s), "
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
    # a local report starts as a copy of the published one, so the two can be compared side by side
    text = report.read_text() if report.exists() else (REPORT.read_text() if REPORT.exists() else "")
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
    parser.add_argument("--out", type=Path, default=None,
                        help="results JSON (default runs/bench/results.json; --publish: benchmarks/results.json)")
    parser.add_argument("--report", type=Path, default=None,
                        help="markdown file whose results table is replaced (default runs/bench/BENCHMARKS.md, a "
                             "copy of the published one; --publish: BENCHMARKS.md)")
    parser.add_argument("--publish", action="store_true",
                        help="write the published benchmarks/results.json and BENCHMARKS.md (maintainers)")
    parser.add_argument("--render-only", action="store_true",
                        help="measure nothing: redraw the report's table from the results JSON")
    args = parser.parse_args(argv)
    args.out = args.out or (RESULTS if args.publish else LOCAL / "results.json")
    args.report = args.report or (REPORT if args.publish else LOCAL / "BENCHMARKS.md")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    if args.render_only:
        results = json.loads(args.out.read_text())
        write_report(results, args.report)
        print(table(results))
        print(f"redrew the table of {args.report} from {args.out}")
        return
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
    results["command"] = " ".join(["python benchmarks/run_benchmarks.py",
                                   *(a for a in (argv if argv is not None else sys.argv[1:]) if a != "--publish")])
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
                results["memory"] = inference.bench_memory(tmp, clip, threads,
                                                           precision=results["machine"]["auto_quantization"])
            results.setdefault("section_seconds", {})[section] = round(time.perf_counter() - start, 1)
    results["total_seconds"] = round(time.perf_counter() - started, 1)
    results["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["targets"] = targets(results)
    results = portable(results, {str(tmp): "<tmp>", str(ROOT): ".", str(Path.home()): "~"})
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    write_report(results, args.report)
    print(table(results))
    for name, ok in results["targets"].items():
        print(f"{'holds' if ok else ('not run' if ok is None else 'DOES NOT HOLD')}: {name}")
    print(f"wrote {args.out} and {args.report} in {results['total_seconds']:.0f} s")


if __name__ == "__main__":
    main()
