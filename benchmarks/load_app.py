"""Load test of the Gradio app: N concurrent ``gradio_client`` clients x M requests on 127.0.0.1.

Starts ``demo/app.py`` (``build_app`` + ``launch_app``, its queue: ``CONCURRENCY`` predictions at once, at most
``QUEUE_SIZE`` waiting) in this process with gradio's temporary folder redirected to a fresh directory, then
runs ``--clients`` threads, each with its own ``gradio_client.Client``, each sending ``--requests`` uploads of
the clip to ``/predict`` one after the other. Every request must end as

* ``ok``    -- the prediction came back (a label with confidences),
* ``busy``  -- the clear refusal of a full queue ("Queue is full"), or
* ``error`` -- anything else (an exception, a timeout, a malformed answer): counted as a failure.

The run is bounded: each request times out after ``--request-timeout`` seconds and the whole run stops
submitting after ``--max-seconds``. It prints and writes (``--json``, default ``benchmarks/load_results.json``):
requests, ok, busy, errors, p50/p95/max latency of the answered requests, throughput, and the temp folder
before/after (uploads are deleted by the handler once analysed, so none may be left; the cached outputs --
face crops, content-hashed -- are listed separately). ``--queue-size`` overrides the app's queue size (e.g. 4,
to see the "busy" answers)::

    python benchmarks/load_app.py                       # 20 clients x 5 requests, runs/demo/model or tiny model
    python benchmarks/load_app.py --queue-size 4 --json benchmarks/load_results_queue4.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"
RAVDESS_CLIP = REPO.parent / "shared" / "data" / "ravdess_av" / "01-01-07-02-02-01-01_1.mp4"


def folder_stats(folder: Path, upload_name: str) -> dict:
    """Bytes and files under ``folder``; uploads are the files named like the uploaded clip."""
    files = [p for p in folder.rglob("*") if p.is_file()]
    uploads = [p for p in files if p.name == upload_name]
    return {"bytes": sum(p.stat().st_size for p in files), "files": len(files),
            "upload_files": len(uploads), "upload_bytes": sum(p.stat().st_size for p in uploads)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def classify(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return "busy" if "queue is full" in text.lower() or "QueueError" in text else "error"


def run_load(url: str, clip: str, clients: int, requests: int, request_timeout: float, max_seconds: float,
             labels: set[str]) -> list[dict]:
    """Send ``clients x requests`` predictions; returns one record per request."""
    from gradio_client import Client, handle_file

    records: list[dict] = []
    lock = threading.Lock()
    deadline = time.monotonic() + max_seconds
    start_barrier = threading.Barrier(clients)

    def client_loop(index: int) -> None:
        try:
            client = Client(url, verbose=False, download_files=False)
        except Exception as exc:  # noqa: BLE001 - counted
            with lock:
                records.extend({"client": index, "outcome": "error", "detail": f"connect: {exc!r}"[:200],
                                "seconds": None} for _ in range(requests))
            return
        try:
            start_barrier.wait(timeout=120)
        except threading.BrokenBarrierError:
            pass
        for _ in range(requests):
            if time.monotonic() > deadline:
                record = {"client": index, "outcome": "error", "detail": "not sent: --max-seconds reached",
                          "seconds": None}
            else:
                started = time.perf_counter()
                try:
                    result = client.submit(handle_file(clip), False, 4.0, api_name="/predict").result(
                        timeout=request_timeout)
                    label = result[0].get("label") if isinstance(result, (list, tuple)) and result else None
                    ok = label in labels if labels else bool(label)
                    record = {"outcome": "ok" if ok else "error", "detail": "" if ok else f"answer {result!r}"[:200]}
                except Exception as exc:  # noqa: BLE001 - classified
                    record = {"outcome": classify(exc), "detail": f"{type(exc).__name__}: {exc}"[:200]}
                record.update(client=index, seconds=round(time.perf_counter() - started, 3))
            with lock:
                records.append(record)
        client.close()

    threads = [threading.Thread(target=client_loop, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(1.0, deadline - time.monotonic() + request_timeout + 30))
    return records


def make_tiny_model(folder: Path) -> str:
    sys.path.insert(0, str(TESTS))
    from tiny_model import save_tiny_model

    return str(save_tiny_model(folder))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="model folder (default: runs/demo/model, else a tiny model)")
    parser.add_argument("--clip", default=None, help="clip to upload (default: the RAVDESS clip in ../shared/data, "
                        "else a generated 2 s clip)")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=5, help="requests per client")
    parser.add_argument("--queue-size", type=int, default=None, help="override the app's QUEUE_SIZE")
    parser.add_argument("--request-timeout", type=float, default=300.0)
    parser.add_argument("--max-seconds", type=float, default=900.0, help="stop sending after this many seconds")
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "load_results.json")
    args = parser.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    work = Path(tempfile.mkdtemp(prefix="avemotion-load-"))
    gradio_tmp = work / "gradio"
    gradio_tmp.mkdir()
    os.environ["GRADIO_TEMP_DIR"] = str(gradio_tmp)  # before gradio is imported

    model = args.model or (str(REPO / "runs" / "demo" / "model")
                           if (REPO / "runs" / "demo" / "model" / "config.json").is_file()
                           else make_tiny_model(work / "tiny_model"))
    if args.clip:
        clip = args.clip
    elif RAVDESS_CLIP.is_file():
        clip = str(RAVDESS_CLIP)
    else:
        sys.path.insert(0, str(TESTS))
        from media_factory import write_media

        clip = str(write_media(work / "clip.mp4", duration=2.0))

    spec = importlib.util.spec_from_file_location("avemotion_load_app", REPO / "demo" / "app.py")
    app = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = app
    spec.loader.exec_module(app)
    if args.queue_size is not None:
        app.QUEUE_SIZE = args.queue_size
    demo = app.build_app(model, examples=[])
    labels = set(demo.space.labels)
    port = free_port()
    app.launch_app(demo, host="127.0.0.1", port=port, prevent_thread_lock=True, quiet=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        before = folder_stats(gradio_tmp, Path(clip).name)
        started = time.perf_counter()
        records = run_load(url, clip, args.clients, args.requests, args.request_timeout, args.max_seconds, labels)
        wall = time.perf_counter() - started
        for _ in range(40):  # the app deletes an upload once the last event naming it has ended
            after = folder_stats(gradio_tmp, Path(clip).name)
            if after["upload_files"] == 0:
                break
            time.sleep(0.25)
    finally:
        demo.close()

    answered = [r["seconds"] for r in records if r["outcome"] == "ok"]
    counts = {k: sum(r["outcome"] == k for r in records) for k in ("ok", "busy", "error")}
    result = {
        "model": ("tiny random model (tests/tiny_model.py)" if model.startswith(str(work)) else
                  os.path.relpath(model, REPO) if Path(model).resolve().is_relative_to(REPO) else model),
        "clip": Path(clip).name, "clip_bytes": Path(clip).stat().st_size,
        "clients": args.clients, "requests_per_client": args.requests,
        "concurrency_limit": app.CONCURRENCY, "queue_size": app.QUEUE_SIZE,
        "requests": len(records), **counts,
        "latency_s": {"p50": percentile(answered, 0.5), "p95": percentile(answered, 0.95),
                      "max": max(answered) if answered else None,
                      "mean": statistics.fmean(answered) if answered else None},
        "wall_s": round(wall, 1), "throughput_per_s": round(counts["ok"] / wall, 3) if wall else None,
        "temp_dir": {"before": before, "after": after, "growth_bytes": after["bytes"] - before["bytes"],
                     "uploads_left": after["upload_files"]},
        "errors_sample": sorted({r["detail"] for r in records if r["outcome"] == "error"})[:5],
        "busy_sample": sorted({r["detail"] for r in records if r["outcome"] == "busy"})[:2],
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU, Python {platform.python_version()}",
    }
    lat = result["latency_s"]
    fmt = lambda x: "-" if x is None else f"{x:.2f} s"  # noqa: E731
    print(f"load: {args.clients} clients x {args.requests} requests on {url} (concurrency {app.CONCURRENCY}, "
          f"queue {app.QUEUE_SIZE}), clip {result['clip']}, {wall:.0f} s")
    print(f"requests {len(records)}  ok {counts['ok']}  busy {counts['busy']}  errors {counts['error']}  "
          f"p50 {fmt(lat['p50'])}  p95 {fmt(lat['p95'])}  max {fmt(lat['max'])}  "
          f"throughput {result['throughput_per_s']}/s")
    print(f"temp dir: {before['bytes']} B / {before['files']} files before, {after['bytes']} B / {after['files']} "
          f"files after (growth {result['temp_dir']['growth_bytes']} B); uploads left: {after['upload_files']}")
    for detail in result["errors_sample"]:
        print(f"  error: {detail}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0 if counts["error"] == 0 and after["upload_files"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
