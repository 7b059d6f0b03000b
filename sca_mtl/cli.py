"""The `sca-mtl` command line: train, single-task, eval, compare, boundary, make-synthetic, demo.

Expected failures (a missing path, a corrupt file, an unknown task or config key) end with one line on stderr
and exit status 2; set SCA_MTL_DEBUG=1 to see the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .boundary import DEFAULT_THRESHOLDS, MAX_DIST
from .config import ConfigError, config_path, load_config

DEBUG_ENV = "SCA_MTL_DEBUG"
EXIT_USAGE = 2


def _size(text: str) -> tuple[int, int]:
    height, sep, width = text.lower().partition("x")
    if not sep or not height.isdigit() or not width.isdigit() or int(height) < 1 or int(width) < 1:
        raise argparse.ArgumentTypeError(f"size must look like HxW, e.g. 240x320, got {text!r}")
    return int(height), int(width)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sca-mtl", description=__doc__.splitlines()[0],
                                     epilog=f"Set {DEBUG_ENV}=1 for tracebacks instead of one-line errors.")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a model (DDP under torchrun)")
    _training_arguments(train, out="run folder (default: runs/<config name>)")
    train.add_argument("--resume", action="store_true", help="continue exactly from <out>/last.pt")

    single_task = commands.add_parser(
        "single-task", help="train one single_task model per task of a config and write single_task.json for Δm")
    _training_arguments(single_task, out="folder of the runs and single_task.json (default: runs/<config "
                        "name>-single-task); finished runs are kept, stopped ones resumed")

    evaluate = commands.add_parser("eval", help="evaluate a checkpoint on its config's val split")
    evaluate.add_argument("--checkpoint", required=True, help="a last.pt or best.pt")
    evaluate.add_argument("--out", help="output folder (default: <checkpoint folder>/eval)")
    evaluate.add_argument("--data-root", help="dataset folder (data.root), if not the training one")
    evaluate.add_argument("--single-task", help="JSON {task: headline metric} of single-task models, for Δm")
    evaluate.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides")

    comparison = commands.add_parser("compare", help="runs' final metrics side by side: table, CSV, Δm bar plot")
    comparison.add_argument("runs", nargs="+", metavar="RUN_DIR", help="training run folders (same dataset and tasks)")
    comparison.add_argument("--single-task", help="single_task.json (`sca-mtl single-task`): Δm for every run")
    comparison.add_argument("--paper", help="add the paper's rows: table1..table5, or a YAML file of that layout")
    comparison.add_argument("--out", default="runs/compare", help="output folder (default: runs/compare)")

    boundary = commands.add_parser(
        "boundary", help="SEISM's boundary odsF / oisF / AP of prediction files against ground-truth files")
    boundary.add_argument("--predictions", required=True,
                          help="folder of <id>.png (8-bit, value / 255) or <id>.npy (float in [0, 1])")
    boundary.add_argument("--ground-truth", required=True, help="folder of <id>.npy (0 / 1) or <id>.png (nonzero)")
    tolerance = boundary.add_mutually_exclusive_group(required=True)
    tolerance.add_argument("--dataset", choices=sorted(MAX_DIST), help="the dataset's tolerance (0.011 / 0.0075)")
    tolerance.add_argument("--max-dist", type=float, help="matching tolerance, a fraction of the image diagonal")
    boundary.add_argument("--thresholds", type=int, default=DEFAULT_THRESHOLDS, help="(default 99)")
    boundary.add_argument("--no-nms", action="store_true", help="threshold the maps as given, without SEISM's NMS")
    boundary.add_argument("--workers", type=int, help="processes (default: the CPUs this process may use)")
    boundary.add_argument("--out", help="also write the scores to this JSON file")

    synthetic = commands.add_parser("make-synthetic", help="write synthetic indoor scenes in the NYUD_MT layout")
    synthetic.add_argument("--out", required=True, help="output folder")
    synthetic.add_argument("--n", type=int, required=True, help="number of images")
    synthetic.add_argument("--size", type=_size, default=(240, 320), help="HxW (default 240x320)")
    synthetic.add_argument("--seed", type=int, default=0)

    demo = commands.add_parser("demo", help="synthetic scenes -> train SCA-MTL -> evaluate, on any machine")
    demo.add_argument("--out", default="runs/demo", help="run folder (default: runs/demo)")
    demo.add_argument("--compare", action="store_true",
                      help="the Δm workflow instead: single-task runs, MTL baseline, MTI-Net, SCA-MTL, compared")
    return parser


def _training_arguments(parser: argparse.ArgumentParser, *, out: str) -> None:
    parser.add_argument("--config", required=True, help="a config name under sca_mtl/configs/ or a YAML path")
    parser.add_argument("--out", help=out)
    parser.add_argument("--data-root", help="dataset folder (data.root)")
    parser.add_argument("--amp", choices=["bf16", "fp16"], help="mixed precision (train.amp)")
    parser.add_argument("--kernels", choices=["torch", "triton", "auto"], help="op backend (train.kernels)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the network for training (train.compile)")
    parser.add_argument("--max-steps", type=int, help="stop after this many optimiser steps (train.max_steps)")
    parser.add_argument("--seed", type=int, help="train.seed")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. optim.lr=2e-4")


def _training_config(args: argparse.Namespace) -> dict:
    flags = {"data.root": args.data_root, "train.amp": args.amp, "train.kernels": args.kernels,
             "train.compile": args.compile or None, "train.max_steps": args.max_steps, "train.seed": args.seed}
    overrides = [f"{key}={value}" for key, value in flags.items() if value is not None] + list(args.overrides)
    return load_config(args.config, overrides)


def _train(args: argparse.Namespace) -> None:
    from .engine import runs

    config = _training_config(args)
    out = args.out or Path("runs") / config_path(args.config).stem
    runs.train(config, out, resume=args.resume, progress=not args.no_progress)
    print(f"run folder: {out}")


def _single_task(args: argparse.Namespace) -> None:
    from .engine import runs

    config = _training_config(args)
    out = args.out or Path("runs") / f"{config_path(args.config).stem}-single-task"
    path = runs.train_single_tasks(config, out, progress=not args.no_progress)
    print(f"single-task results: {path} (give it to train/eval as eval.single_task_results, to compare as "
          "--single-task)")


def _compare(args: argparse.Namespace) -> None:
    from .engine import runs

    table, written = runs.compare_runs(args.runs, args.out, single_task=args.single_task, paper=args.paper)
    print(table)
    print("written: " + ", ".join(map(str, written)))


def _eval(args: argparse.Namespace) -> None:
    from .engine import runs

    overrides = ([f"data.root={args.data_root}"] if args.data_root else []) + list(args.overrides)
    out = args.out or Path(args.checkpoint).parent / "eval"
    _, table = runs.evaluate_checkpoint(args.checkpoint, out, overrides=overrides, single_task_path=args.single_task)
    print(table)
    print(f"results in {out}")


def _boundary(args: argparse.Namespace) -> None:
    from .boundary import evaluate
    from .boundary.files import paired_files, read_prediction, read_truth

    pairs = paired_files(args.predictions, args.ground_truth)
    max_dist = MAX_DIST[args.dataset] if args.dataset else args.max_dist
    predictions = (read_prediction(path) for _, path, _ in pairs)
    truths = (read_truth(path) for _, _, path in pairs)
    scores = evaluate(predictions, truths, max_dist=max_dist,
                      thresholds=args.thresholds, nms=not args.no_nms, workers=args.workers,
                      names=[str(path) for _, path, _ in pairs], progress=True)
    scores = {"images": len(pairs), "max_dist": max_dist, **scores}
    print("\n".join(f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}"
                    for key, value in scores.items()))
    if args.out:
        Path(args.out).write_text(json.dumps(scores, indent=2) + "\n")
        print(f"written: {args.out}")


def _make_synthetic(args: argparse.Namespace) -> None:
    from .data.synthetic import write_synthetic_nyud

    root = write_synthetic_nyud(args.out, args.n, size=args.size, seed=args.seed)
    print(f"wrote {args.n} synthetic scenes to {root}")


def _demo(args: argparse.Namespace) -> None:
    from .engine import runs

    print((runs.demo_compare if args.compare else runs.demo)(args.out))


def _one_line(error: BaseException) -> str:
    """The error's message on one line. An error raised in a DataLoader worker arrives with the worker's traceback
    in its message; its last line is the original error."""
    lines = [line for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


COMMANDS = {"train": _train, "single-task": _single_task, "eval": _eval, "compare": _compare,
            "boundary": _boundary, "make-synthetic": _make_synthetic, "demo": _demo}


def _parse(argv: list[str] | None) -> argparse.Namespace:
    """The arguments, with `key=value` overrides accepted anywhere after the command (argparse takes a positional
    list only in one run: those after an option's value come back unknown and join the others here)."""
    parser = _parser()
    args, unknown = parser.parse_known_args(argv)
    overrides = [token for token in unknown if "=" in token and not token.startswith("-")]
    strays = [token for token in unknown if token not in overrides]
    if strays or (overrides and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(strays or overrides)}")
    if overrides:
        args.overrides = list(args.overrides) + overrides
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    try:
        COMMANDS[args.command](args)
    except (ConfigError, ValueError, OSError, NotImplementedError) as error:
        if os.environ.get(DEBUG_ENV):
            raise
        print(f"sca-mtl {args.command}: error: {_one_line(error)}", file=sys.stderr)
        return EXIT_USAGE
    return 0


if __name__ == "__main__":
    sys.exit(main())
