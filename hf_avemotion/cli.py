"""Command-line interface: ``avemotion COMMAND ...`` (``python -m hf_avemotion.cli`` works too).

Commands:
    predict FILE... [--model DIR] [--json] [--timeline] [--window-s S] [--hop-s S] [--top-k K] [--device D]
            [--allow-pickle]
    push [--model DIR] --repo-id NAME [--private] [--dry-run OUT_DIR]
    app [--model DIR] [--port N] [--allow-pickle]
    live (--file FILE [--speed X] | --camera N [--mic DEVICE]) [--model DIR] [--window-s S] [--hop-s S] [--json]
    train ARGS... | cv ARGS... [--folds a,b] | ablation ARGS... --fusion-types a,b,c [--folds a,b]
    evaluate --model DIR --dataset DIR --fold NAME
    prepare CORPUS SOURCE OUT [--num-proc P] [--max-items N] [--num-frames N] [--image-size S]
            (CORPUS: ravdess, tess, emodb, fer, ckplus, av, ravdess-av, crema-d, folder)
    corpora [ROOT] [--json]
    synthetic OUT [--num-actors N] [--seed S]
    demo
    av-train [--out runs/av] [--epochs N] [--ship-to DIR] [--ship-fusion cross_attention|late] [--ship-saved]
    synthetic-demo [--output-dir runs/demo] [--seed S | --seeds N|a,b,c] [--threads T] [--fusion-types a,b]

Model folders load from safetensors only; ``--allow-pickle`` opts in to pickle weights (``pytorch_model.bin``),
read with ``torch.load(weights_only=True)``.

Contract: exit 0 on success (``predict --json``: JSON on stdout); exit 2 with one line ``error: ...`` on
stderr and no traceback for bad input (bad file, bad model folder, bad option). ``predict`` with several
files answers the good ones (printed) and reports each bad one on stderr, then exits 2.
Heavy modules are imported inside the commands, so ``avemotion --help`` stays quick.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

EXIT_OK, EXIT_USAGE = 0, 2
ALLOW_PICKLE_HELP = ("accept a model folder whose weights are only a pickle (pytorch_model.bin); unpickling can run "
                     "code, so only for sources you trust (read with torch.load(weights_only=True))")
PASSTHROUGH = ("train", "cv", "ablation", "av-train")  # their remaining arguments go to their own parsers
# `prepare` corpora (hf_avemotion.corpora); the audio-visual ones take --num-frames / --image-size.
CORPORA = ("ravdess", "tess", "emodb", "fer", "ckplus", "av", "ravdess-av", "crema-d")
AV_CORPORA = ("av", "ravdess-av", "crema-d", "folder")
AV_ONLY = "audio-visual corpora only: " + ", ".join(AV_CORPORA)


class UsageError(Exception):
    """Bad command line: reported as one ``error:`` line, exit 2."""


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line (``error: ...``) and exit 2, instead of usage + message."""

    def error(self, message):
        raise UsageError(f"{self.prog}: {message}")


def _one_line(err: BaseException) -> str:
    text = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def _csv(value: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return items


def _positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return n


def _seeds(value: str) -> list[int]:
    from .demo_job import parse_seeds

    try:
        return parse_seeds(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seeds or comma-separated seeds, got {value!r}") from None


def _positive_float(value: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value!r}") from None
    if not (x > 0 and x != float("inf")):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value!r}")
    return x


def build_parser() -> _Parser:
    parser = _Parser(prog="avemotion", allow_abbrev=False,
                     description="Audio-visual emotion recognition on the Hugging Face stack.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name, help, **kwargs):
        return sub.add_parser(name, help=help, description=help, allow_abbrev=False, **kwargs)

    p = add("predict", "predict the emotions in audio/video files")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--model", default=None, metavar="DIR",
                   help="model folder (saved model + processor; default: the package's default model)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--timeline", action="store_true", help="also classify window by window")
    p.add_argument("--window-s", type=_positive_float, default=4.0, metavar="S", help="timeline window (s)")
    p.add_argument("--hop-s", type=_positive_float, default=None, metavar="S", help="timeline hop (s)")
    p.add_argument("--top-k", type=_positive_int, default=None, metavar="K", help="labels per result")
    p.add_argument("--batch-size", type=_positive_int, default=1, metavar="B", help="timeline windows per batch")
    p.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda:0 (default: GPU if any)")
    p.add_argument("--allow-pickle", action="store_true", help=ALLOW_PICKLE_HELP)

    p = add("push", "upload a model folder to the Hugging Face Hub (or stage it with --dry-run)")
    p.add_argument("--model", default=None, metavar="DIR", help="model folder (default: the package's default model)")
    p.add_argument("--repo-id", required=True, metavar="NAME")
    p.add_argument("--private", action="store_true")
    p.add_argument("--dry-run", metavar="OUT_DIR", default=None, help="write the folder that would be uploaded")

    p = add("app", "start the Gradio demo on 127.0.0.1")
    p.add_argument("--model", default=None, metavar="DIR", help="model folder (default: the package's default model)")
    p.add_argument("--port", type=_positive_int, default=7860)
    p.add_argument("--allow-pickle", action="store_true", help=ALLOW_PICKLE_HELP)

    _add_live_parser(add)

    add("train", "train a model: --config FILE.yaml [--field value ...]", add_help=False)
    p = add("cv", "cross-validate over the folds of a prepared dataset (training arguments as for train)",
            add_help=False)
    p.add_argument("--folds", type=_csv, default=None, help="comma-separated fold names (default: all)")
    p = add("ablation", "cross-validate several fusion types (training arguments as for train)", add_help=False)
    p.add_argument("--fusion-types", type=_csv, required=True, help="comma-separated, e.g. late,concat")
    p.add_argument("--folds", type=_csv, default=None)

    p = add("evaluate", "evaluate a model folder on the test split of a fold")
    p.add_argument("--model", required=True, metavar="DIR")
    p.add_argument("--dataset", required=True, metavar="DIR")
    p.add_argument("--fold", required=True, metavar="NAME")

    p = add("prepare", "decode a corpus into a prepared `datasets` folder with speaker-independent folds")
    p.add_argument("source", choices=(*CORPORA, "folder"), metavar="CORPUS",
                   help=f"one of {', '.join(CORPORA)}, or folder (any folder with a metadata.csv)")
    p.add_argument("root", metavar="SOURCE", help="the corpus folder, or the corpus root that holds it")
    p.add_argument("out", metavar="OUT")
    p.add_argument("--num-proc", type=_positive_int, default=1, help="decoding processes")
    p.add_argument("--max-items", type=_positive_int, default=None, help="at most N items, round-robin by speaker")
    p.add_argument("--num-frames", type=_positive_int, default=None, help=f"frames per clip ({AV_ONLY}; default 8)")
    p.add_argument("--image-size", type=_positive_int, default=None, help=f"face crop side ({AV_ONLY}; default 224)")

    p = add("corpora", "print the table of the corpora under ROOT (people, items, classes, duration)")
    p.add_argument("root", nargs="?", default=None, metavar="ROOT",
                   help="default: $HF_AVEMOTION_CORPUS, else ../shared/corpus beside the current folder or checkout")
    p.add_argument("--json", action="store_true", help="print JSON instead of a Markdown table")

    p = add("synthetic", "write the synthetic benchmark (cartoon faces + synthetic voices)")
    p.add_argument("out", metavar="OUT")
    p.add_argument("--num-actors", type=_positive_int, default=12)
    p.add_argument("--seed", type=int, default=0)

    add("demo", "the default model on the bundled example clips and on every real item in ../shared")

    add("av-train", "train the default audio-visual model's fusion on cross-corpus pairs and evaluate it "
                    "(python -m hf_avemotion.av_training --help)", add_help=False)

    p = add("synthetic-demo", "the demo on the synthetic benchmark; with --seeds, its spread over training seeds")
    p.add_argument("--output-dir", default="runs/demo")
    p.add_argument("--seed", type=int, default=None, help="training seed of a single run (default: the config's, 0)")
    p.add_argument("--seeds", type=_seeds, default=None, metavar="N|a,b,c",
                   help="train over seeds 0..N-1 (or the listed ones); print mean ± std and min–max per model")
    p.add_argument("--threads", type=_positive_int, default=None, metavar="T",
                   help="torch threads (default: torch's own); a result repeats only with the same machine and T")
    p.add_argument("--fusion-types", type=_csv, default=None, metavar="a,b",
                   help="with --seeds: models to train (default: cross_attention,audio_only,video_only)")
    _add_models_parser(add)
    _add_speech_parser(add)
    return parser


def _add_speech_parser(add) -> None:
    p = add("speech", "train and evaluate the speech emotion model on the real corpora (speaker-independent)")
    p.add_argument("--corpus-root", default=None, metavar="DIR",
                   help="folder holding speech/ravdess, speech/tess, speech/emodb (default: ../shared/corpus)")
    p.add_argument("--output-dir", default="runs/speech/whisper-base", metavar="DIR")
    p.add_argument("--backbone", default="whisper-base", help="whisper-base, whisper-tiny.en or a Whisper folder")
    p.add_argument("--protocols", default="cv,emodb,tess", help="comma list of cv, emodb, tess, ship")
    p.add_argument("--ship-to", default=None, metavar="DIR",
                   help="with 'ship': write the shipped head here (the repo's is hf_avemotion/pretrained/speech)")
    p.add_argument("--epochs", type=_positive_int, default=None)
    p.add_argument("--folds", default=None, help="comma list of RAVDESS folds (default: all 5)")


def _add_live_parser(add) -> None:
    p = add("live", "live emotion recognition on a camera, or a file played back: one line per hop")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--file", metavar="FILE", help="play this audio/video file back as if it were live")
    source.add_argument("--camera", type=int, metavar="N", help="camera device number (/dev/videoN)")
    p.add_argument("--mic", default=None, metavar="DEVICE",
                   help="with --camera: microphone as an FFmpeg input, e.g. pulse:default or alsa:hw:0 "
                        "(default: video only)")
    p.add_argument("--speed", type=float, default=1.0, metavar="X",
                   help="with --file: playback speed (1 = real time, 0 = as fast as the model answers)")
    p.add_argument("--model", default=None, metavar="DIR",
                   help="model folder (default: the package's default model)")
    p.add_argument("--window-s", type=_positive_float, default=4.0, metavar="S",
                   help="window length (s; default 4, what the default model hears)")
    p.add_argument("--hop-s", type=_positive_float, default=0.5, metavar="S", help="one prediction every S s")
    p.add_argument("--seconds", type=_positive_float, default=None, metavar="S",
                   help="stop after S seconds of stream (default: the end of the file; a camera runs until Ctrl-C)")
    p.add_argument("--json", action="store_true", help="one JSON object per line instead of text")
    p.add_argument("--threads", type=_positive_int, default=None, metavar="T", help="torch threads")
    p.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda:0")
    p.add_argument("--allow-pickle", action="store_true", help=ALLOW_PICKLE_HELP)


def _add_models_parser(add) -> None:
    p = add("models", "list the pretrained models this package can build locally (and build them with --prepare)")
    p.add_argument("--prepare", nargs="*", metavar="NAME", default=None,
                   help="convert these models now (no NAME: all of them); a ready model is left as it is")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args, rest = build_parser().parse_known_args(argv)
        if rest and args.command not in PASSTHROUGH:
            raise UsageError(f"avemotion {args.command}: unrecognized arguments: {' '.join(rest)}")
        return COMMANDS[args.command](args, rest)
    except UsageError as err:
        return _fail(str(err))
    except (ValueError, OSError, KeyError) as err:  # MediaError is a ValueError; FileNotFoundError an OSError
        return _fail(_one_line(err))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _quiet_transformers() -> None:
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()


def _print_json(data) -> None:
    json.dump(data, sys.stdout, indent=2, default=_json_default)
    sys.stdout.write("\n")


def _json_default(obj):
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


# --------------------------------------------------------------------------------------- predict


def model_or_default(model: str | None) -> str:
    """``--model`` as given, else the package's default model folder (assembled on first use)."""
    if model is not None:
        return model
    from .backbones import DEFAULT_MODEL, pretrained_path

    return str(pretrained_path(DEFAULT_MODEL, log=lambda message: print(message, file=sys.stderr)))


def cmd_predict(args, rest) -> int:
    _quiet_transformers()
    from .pipeline_avemotion import load_pipeline

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe = load_pipeline(model_or_default(args.model), device=args.device, allow_pickle=args.allow_pickle)
    options = dict(return_metadata=True, top_k=args.top_k, timeline=args.timeline, batch_size=args.batch_size)
    if args.timeline:
        options.update(window_s=args.window_s, hop_s=args.hop_s)
    results, failures = [], []
    for path in args.files:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                result = pipe(path, **options)
            except (ValueError, OSError) as err:
                message = _one_line(err)
                failures.append(message if path in message else f"{path}: {message}")
                continue
        results.append({"file": path, **result})
        for w in (w for w in caught if issubclass(w.category, UserWarning)):  # decoding oddities of a file that still loaded (e.g. one damaged packet)
            print(f"warning: {path}: {_one_line(Exception(str(w.message)))}", file=sys.stderr)
    if results:
        if args.json:
            _print_json(results)
        else:
            print(format_table(results))
    for message in failures:
        print(f"error: {message}", file=sys.stderr)
    return EXIT_USAGE if failures else EXIT_OK


def format_table(results: list[dict]) -> str:
    """Human-readable summary of `predict` results."""
    blocks = []
    for r in results:
        faces = f"faces in {r['face_found_ratio']:.0%} of frames"
        head = f"{r['file']}  ({r['duration']:.2f} s, audio: {'yes' if r['has_audio'] else 'no'}, {faces})"
        rows = [f"  {s['label']:<12} {s['score']:6.3f}  {'#' * round(20 * s['score'])}" for s in r["scores"]]
        if "segments" in r:
            rows.append("  timeline:")
            rows += [f"    {s['start']:8.2f} - {s['end']:8.2f} s  {s['label']:<12} {s['score']:.3f}"
                     for s in r["segments"]]
        blocks.append("\n".join([head, *rows]))
    return "\n\n".join(blocks)


# --------------------------------------------------------------------------------------- sharing, app


def cmd_push(args, rest) -> int:
    _quiet_transformers()
    from .sharing import push_to_hub, stage_model_folder

    args.model = model_or_default(args.model)
    if args.dry_run:
        out = stage_model_folder(args.model, args.dry_run, model_name=args.repo_id.split("/")[-1])
        files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
        print(f"staged {len(files)} files for {args.repo_id} in {out} (nothing uploaded):")
        for name in files:
            print(f"  {name}")
        return EXIT_OK
    commit = push_to_hub(args.model, args.repo_id, private=args.private)
    print(f"uploaded {args.model} to {getattr(commit, 'commit_url', None) or args.repo_id}")
    return EXIT_OK


def _load_demo_app():
    """The module demo/app.py (beside the package in a source checkout, or under the current folder)."""
    import importlib.util

    for root in (Path(__file__).resolve().parents[1], Path.cwd()):
        path = root / "demo" / "app.py"
        if path.is_file():
            spec = importlib.util.spec_from_file_location("avemotion_demo_app", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module
    raise FileNotFoundError("demo/app.py not found (run from a source checkout of hf_avemotion)")


def cmd_app(args, rest) -> int:
    model = Path(model_or_default(args.model))
    if not (model / "config.json").is_file():
        raise ValueError(f"{model} is not a model folder (no config.json)")
    try:
        app_module = _load_demo_app()
    except ImportError as err:
        raise ValueError(f"the demo needs gradio (pip install 'hf_avemotion[demo]'): {_one_line(err)}") from None
    demo = app_module.build_app(str(model), **({"allow_pickle": True} if args.allow_pickle else {}))
    if hasattr(app_module, "launch_app"):  # the Space's upload limit and theme
        app_module.launch_app(demo, host="127.0.0.1", port=args.port)
    else:
        demo.launch(server_name="127.0.0.1", server_port=args.port)
    return EXIT_OK


# --------------------------------------------------------------------------------------- live


def cmd_live(args, rest) -> int:
    """Stream a file (at ``--speed``) or a camera through `LiveStream`; print one line per hop as it comes."""
    _quiet_transformers()
    from .live import LiveStream, play_camera, play_file

    if args.speed < 0 or args.speed != args.speed or args.speed == float("inf"):
        raise UsageError(f"avemotion live: --speed must be a number >= 0, got {args.speed}")
    if args.file is not None and args.mic:
        raise UsageError("avemotion live: --mic goes with --camera (a file plays its own sound)")
    if args.file is not None and not Path(args.file).exists():
        raise FileNotFoundError(f"{args.file}: no such file")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    items = None if args.file is not None else play_camera(args.camera, mic=args.mic)  # a bad device fails first
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from .pipeline_avemotion import load_pipeline

        pipe = load_pipeline(model_or_default(args.model), device=args.device, allow_pickle=args.allow_pickle)
    live = LiveStream(pipe, window_s=args.window_s, hop_s=args.hop_s)
    if args.file is not None:
        live.set_origin(0.0)
        items = play_file(args.file, speed=args.speed)
        what = f"{args.file} at {'full' if args.speed == 0 else f'{args.speed:g}x'} speed"
    else:
        what = f"camera {args.camera}" + (f" + {args.mic}" if args.mic else " (no microphone)")
    if not args.json:
        print(f"live: {what}; {args.window_s:g} s windows every {args.hop_s:g} s (Ctrl-C stops)", flush=True)

    def show(prediction) -> None:
        if args.json:
            print(json.dumps(prediction.to_dict(), default=_json_default), flush=True)
        else:
            print(prediction.format_line(), flush=True)

    count = 0
    try:
        for batch in items:  # everything that arrived while the model was busy, then one prediction
            batch = [item for item in batch if args.seconds is None or item[-1] <= args.seconds]
            if not batch:
                break
            for item in batch:
                live.push(item)
            prediction = live.poll()
            if prediction is not None:
                show(prediction)
                count += 1
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()
    for prediction in live.finish():
        show(prediction)
        count += 1
    if not args.json:
        print(f"live: {count} predictions, {live.skipped_total} stale hops dropped", flush=True)
    return EXIT_OK


# --------------------------------------------------------------------------------------- training & data


def cmd_train(args, rest) -> int:
    from .training import main as train_main

    train_main(rest)
    return EXIT_OK


def cmd_cv(args, rest) -> int:
    from .experiments import cross_validate
    from .training import parse_training_args

    report = cross_validate(*parse_training_args(rest), folds=args.folds)
    _print_json(report.get("summary", report))
    return EXIT_OK


def cmd_ablation(args, rest) -> int:
    from .experiments import ablation
    from .training import parse_training_args

    _, table = ablation(*parse_training_args(rest), fusion_types=args.fusion_types, folds=args.folds)
    print(table)
    return EXIT_OK


def cmd_evaluate(args, rest) -> int:
    from .experiments import evaluate_model

    _print_json(evaluate_model(args.model, args.dataset, args.fold))
    return EXIT_OK


def cmd_prepare(args, rest) -> int:
    """Prepare a corpus; prints the output folder and a summary, and names every skipped file on stderr."""
    from . import prepare
    from .corpora import prepare_corpus

    options = {"num_proc": args.num_proc}
    if args.max_items is not None:
        options["max_items"] = args.max_items
    if args.source in AV_CORPORA:
        options.update(num_frames=args.num_frames or 8, image_size=args.image_size or 224)
    elif args.num_frames is not None or args.image_size is not None:
        raise UsageError(f"avemotion prepare {args.source}: --num-frames/--image-size are for {AV_ONLY}")
    legacy = {"ravdess-av": "prepare_ravdess", "crema-d": "prepare_crema_d", "folder": "prepare_folder"}
    if args.source in legacy:  # the documented functions of hf_avemotion.prepare
        if "max_items" in options:
            options["max_clips"] = options.pop("max_items")
        out = getattr(prepare, legacy[args.source])(args.root, args.out, **options)
    else:
        out = prepare_corpus(args.source, args.root, args.out, **options)
    print(out)
    _report_prepared(Path(out))
    return EXIT_OK


def _report_prepared(out: Path) -> None:
    """Summary of ``prepare_info.json``: counts on stdout, each skipped file and decoder warning on stderr."""
    info_file = out / "prepare_info.json"
    if not info_file.is_file():
        return
    info = json.loads(info_file.read_text(encoding="utf-8"))
    counts = info.get("counts", {})
    kept = counts.get("items", counts.get("clips"))
    dropped = ", ".join(f"{word} {n}" for word, n in counts.get("dropped_labels", {}).items())
    print(f"{kept} of {counts.get('found')} items prepared in {info.get('seconds')} s; skipped "
          f"{counts.get('skipped', 0)}, warnings {counts.get('warnings', 0)}"
          + (f"; labels dropped (no package emotion): {dropped}" if dropped else ""))
    for entry in info.get("skipped", []):
        name = entry.get("name") or entry.get("source_path")
        print(f"warning: skipped {name}: {_one_line(Exception(entry['error']))}", file=sys.stderr)
    for entry in info.get("warnings", []):
        name = entry.get("name") or entry.get("source_path")
        print(f"warning: {name}: {_one_line(Exception(entry['warning']))}", file=sys.stderr)


def cmd_corpora(args, rest) -> int:
    """The corpus table (people, items, per-class counts in the package's label space, duration)."""
    from .corpora import corpus_table, default_corpus_root, format_corpus_table

    root = args.root or default_corpus_root()
    if root is None:
        raise UsageError("avemotion corpora: no ../shared/corpus found; pass ROOT or set HF_AVEMOTION_CORPUS")
    rows = corpus_table(root)
    if not rows:
        raise ValueError(f"no corpus folders (speech/ravdess, faces/fer, ...) under {root}")
    if args.json:
        _print_json(rows)
    else:
        print(format_corpus_table(rows))
    return EXIT_OK


def cmd_synthetic(args, rest) -> int:
    from .synthetic import generate_synthetic_benchmark

    print(generate_synthetic_benchmark(args.out, num_actors=args.num_actors, seed=args.seed))
    return EXIT_OK


def cmd_demo(args, rest) -> int:
    from .default_demo import main

    return main()


def cmd_av_train(args, rest) -> int:
    from .av_training import main

    return main(rest)


def cmd_synthetic_demo(args, rest) -> int:
    from . import demo_job

    if args.seeds is not None and args.seed is not None:
        raise UsageError("avemotion synthetic-demo: give --seed or --seeds, not both")
    if args.seeds is not None:
        demo_job.run_demo_seeds(args.output_dir, seeds=args.seeds, threads=args.threads,
                                fusion_types=tuple(args.fusion_types or demo_job.DEMO_FUSION_TYPES))
    else:
        if args.fusion_types:
            raise UsageError("avemotion synthetic-demo: --fusion-types goes with --seeds")
        demo_job.run_demo(args.output_dir, seed=args.seed, threads=args.threads)
    return EXIT_OK


def cmd_models(args, rest) -> int:
    """Table (or JSON) of the named pretrained models; ``--prepare`` fetches and converts them first."""
    from .backbones import RegistryError, list_pretrained, pretrained_path

    if args.prepare is not None:
        # default: every backbone, then every model trained here (assembled from them)
        for name in args.prepare or [row["name"] for row in list_pretrained()]:
            try:
                pretrained_path(name, log=lambda message: print(message, file=sys.stderr))
            except RegistryError as err:
                return _fail(_one_line(err))
    rows = list_pretrained()
    if args.json:
        _print_json(rows)
        return 0
    print(f"{'name':<18} {'ready':<6} {'same model on the Hub':<24} source packages")
    for row in rows:
        print(f"{row['name']:<18} {'yes' if row['ready'] else 'no':<6} {row['hub_id']:<24} "
              f"{', '.join(row['packages'])}")
    return 0


def cmd_speech(args, rest) -> int:
    """Run the speech model's protocols; print the results table."""
    _quiet_transformers()
    from .corpora import default_corpus_root
    from .speech_training import PROTOCOLS, SpeechRecipe, run_speech_experiments, speech_results_table

    protocols = [p.strip() for p in args.protocols.split(",") if p.strip()]
    unknown = sorted(set(protocols) - set(PROTOCOLS))
    if unknown:
        raise UsageError(f"avemotion speech: unknown protocol(s) {', '.join(unknown)}; choose from {', '.join(PROTOCOLS)}")
    recipe = SpeechRecipe() if not args.epochs else SpeechRecipe(epochs=args.epochs)
    root = args.corpus_root or default_corpus_root()
    if root is None:
        raise UsageError("avemotion speech: no corpus folder found (../shared/corpus); pass --corpus-root DIR")
    results = run_speech_experiments(root, args.output_dir,
                                     backbone=args.backbone, protocols=protocols, recipe=recipe,
                                     ship_to=args.ship_to, folds=args.folds.split(",") if args.folds else None,
                                     log=lambda message: print(message, file=sys.stderr, flush=True))
    print(speech_results_table(results))
    return 0


COMMANDS = {
    "speech": cmd_speech,
    "models": cmd_models,
    "predict": cmd_predict, "push": cmd_push, "app": cmd_app, "live": cmd_live, "train": cmd_train, "cv": cmd_cv,
    "ablation": cmd_ablation, "evaluate": cmd_evaluate, "prepare": cmd_prepare, "synthetic": cmd_synthetic,
    "corpora": cmd_corpora,
    "demo": cmd_demo, "synthetic-demo": cmd_synthetic_demo, "av-train": cmd_av_train,
}


if __name__ == "__main__":
    sys.exit(main())
