"""Command-line interface: ``avemotion COMMAND ...`` (``python -m hf_avemotion.cli`` works too).

Commands:
    predict FILE... --model DIR [--json] [--timeline] [--window-s S] [--hop-s S] [--top-k K] [--device D]
            [--allow-pickle]
    push --model DIR --repo-id NAME [--private] [--dry-run OUT_DIR]
    app --model DIR [--port N] [--allow-pickle]
    train ARGS... | cv ARGS... [--folds a,b] | ablation ARGS... --fusion-types a,b,c [--folds a,b]
    evaluate --model DIR --dataset DIR --fold NAME
    prepare {ravdess,crema-d,folder} ROOT OUT [--num-frames N] [--image-size S] [--num-proc P]
    synthetic OUT [--num-actors N] [--seed S]
    demo [--output-dir runs/demo]

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
PASSTHROUGH = ("train", "cv", "ablation")  # their remaining arguments go to training.parse_training_args


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
    p.add_argument("--model", required=True, metavar="DIR", help="model folder (saved model + processor)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--timeline", action="store_true", help="also classify window by window")
    p.add_argument("--window-s", type=_positive_float, default=4.0, metavar="S", help="timeline window (s)")
    p.add_argument("--hop-s", type=_positive_float, default=None, metavar="S", help="timeline hop (s)")
    p.add_argument("--top-k", type=_positive_int, default=None, metavar="K", help="labels per result")
    p.add_argument("--batch-size", type=_positive_int, default=1, metavar="B", help="timeline windows per batch")
    p.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda:0 (default: GPU if any)")
    p.add_argument("--allow-pickle", action="store_true", help=ALLOW_PICKLE_HELP)

    p = add("push", "upload a model folder to the Hugging Face Hub (or stage it with --dry-run)")
    p.add_argument("--model", required=True, metavar="DIR")
    p.add_argument("--repo-id", required=True, metavar="NAME")
    p.add_argument("--private", action="store_true")
    p.add_argument("--dry-run", metavar="OUT_DIR", default=None, help="write the folder that would be uploaded")

    p = add("app", "start the Gradio demo on 127.0.0.1")
    p.add_argument("--model", required=True, metavar="DIR")
    p.add_argument("--port", type=_positive_int, default=7860)
    p.add_argument("--allow-pickle", action="store_true", help=ALLOW_PICKLE_HELP)

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

    p = add("prepare", "decode a dataset into a prepared Arrow dataset with actor-independent folds")
    p.add_argument("source", choices=("ravdess", "crema-d", "folder"))
    p.add_argument("root", metavar="ROOT")
    p.add_argument("out", metavar="OUT")
    p.add_argument("--num-frames", type=_positive_int, default=8)
    p.add_argument("--image-size", type=_positive_int, default=224)
    p.add_argument("--num-proc", type=_positive_int, default=1)

    p = add("synthetic", "write the synthetic benchmark (cartoon faces + synthetic voices)")
    p.add_argument("out", metavar="OUT")
    p.add_argument("--num-actors", type=_positive_int, default=12)
    p.add_argument("--seed", type=int, default=0)

    p = add("demo", "run the built-in demo job (synthetic benchmark, train, evaluate)")
    p.add_argument("--output-dir", default="runs/demo")
    return parser


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


def cmd_predict(args, rest) -> int:
    _quiet_transformers()
    from .pipeline_avemotion import load_pipeline

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe = load_pipeline(args.model, device=args.device, allow_pickle=args.allow_pickle)
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
    model = Path(args.model)
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
    from . import prepare

    function = {"ravdess": prepare.prepare_ravdess, "crema-d": prepare.prepare_crema_d,
                "folder": prepare.prepare_folder}[args.source]
    out = function(args.root, args.out, num_frames=args.num_frames, image_size=args.image_size,
                   num_proc=args.num_proc)
    print(out)
    return EXIT_OK


def cmd_synthetic(args, rest) -> int:
    from .synthetic import generate_synthetic_benchmark

    print(generate_synthetic_benchmark(args.out, num_actors=args.num_actors, seed=args.seed))
    return EXIT_OK


def cmd_demo(args, rest) -> int:
    from .demo_job import run_demo

    result = run_demo(args.output_dir)
    if result is not None:
        print(result)
    return EXIT_OK


COMMANDS = {
    "predict": cmd_predict, "push": cmd_push, "app": cmd_app, "train": cmd_train, "cv": cmd_cv,
    "ablation": cmd_ablation, "evaluate": cmd_evaluate, "prepare": cmd_prepare, "synthetic": cmd_synthetic,
    "demo": cmd_demo,
}


if __name__ == "__main__":
    sys.exit(main())
