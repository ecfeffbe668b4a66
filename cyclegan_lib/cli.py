"""The ``cyclegan-anime`` command line: train, translate, evaluate, presets.

Every user mistake (a :class:`~cyclegan_lib.errors.UserError` or an ``OSError``) ends in
one line on stderr and exit status 2.  The only module that imports inside functions:
torch is imported after the options are checked, so a typo fails at once.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import paths
from .config import PRESETS, config_with, describe_presets, parse_override
from .errors import DataError, UserError

__all__ = ["main", "build_parser"]


def _int_at_least(low: int, words: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{words}, got {value}")
        return value
    return parse


_positive_int = _int_at_least(1, "must be a positive integer")
_nonneg_int = _int_at_least(0, "must not be negative")


def _quiet_rank() -> bool:
    """True on ranks other than 0 of a torchrun job: rank 0 alone reports shared mistakes."""
    return os.environ.get("RANK", "0") not in ("", "0") and bool(os.environ.get("MASTER_ADDR"))


def _image_size(text: str) -> int:
    """A size the generator maps to itself: two stride-2 steps down and up."""
    value = _positive_int(text)
    if value < 32 or value % 4:
        raise argparse.ArgumentTypeError(f"must be a multiple of 4 and at least 32, got {value}")
    return value


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        self.exit(2, None if _quiet_rank() else f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="cyclegan-anime",
                     description="CycleGAN for human-to-anime faces (the book's library).")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("train", help="train one experiment into a run directory")
    p.add_argument("--preset", default="stabilized", help=f"one of: {', '.join(PRESETS)}")
    p.add_argument("--profile", default="auto", help="smoke, cpu, full or auto")
    p.add_argument("--data", default=None, help="folder with trainA/trainB (default $CYCLEGAN_DATA)")
    p.add_argument("--out", required=True, help="run directory to create (or resume)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint")
    p.add_argument("--seed", type=_nonneg_int, default=None)
    p.add_argument("--max-steps", type=_positive_int, default=None,
                   help="stop after N steps (the lr schedule is unchanged)")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="stop with a checkpoint after M minutes; --resume continues exactly")
    p.add_argument("--save-every", type=_positive_int, default=None)
    p.add_argument("--keep", type=_positive_int, default=None, help="checkpoints to keep")
    p.add_argument("--device", default=None, help="auto, cpu, cuda or cuda:N")
    p.add_argument("--threads", type=_positive_int, default=None, help="CPU threads for torch")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any setting of the preset/profile, e.g. --set pool_size=0 "
                        "(repeatable; names as listed by `presets` and in config.json)")

    p = sub.add_parser("translate", help="translate images with a trained generator")
    p.add_argument("--checkpoint", required=True, help="run directory or checkpoint file")
    p.add_argument("inputs", nargs="+", help="image files or folders")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--direction", default="AtoB", choices=["AtoB", "BtoA"])
    p.add_argument("--size", type=_image_size, default=None,
                   help="network input size, a multiple of 4, at least 32 "
                        "(default: the run's image size)")
    p.add_argument("--crop-face", action="store_true",
                   help="find the largest face and translate a square crop around it")
    p.add_argument("--no-crop-fallback", action="store_true",
                   help="with --crop-face: skip images where no face is found")
    p.add_argument("--device", default="cpu")

    p = sub.add_parser("evaluate", help="metrics of a run on the test split (JSON)")
    p.add_argument("--checkpoint", required=True, help="run directory or checkpoint file")
    p.add_argument("--data", default=None, help="folder with testA/testB (default $CYCLEGAN_DATA)")
    p.add_argument("--out", default=None, help="metrics.json path (default RUN/metrics.json)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-kid", action="store_true", help="skip KID/FID")
    p.add_argument("--max-images", type=_positive_int, default=None,
                   help="use only the first N test images per domain")
    p.add_argument("--anime-cascade", default=None,
                   help="lbpcascade_animeface.xml (default $CYCLEGAN_ANIME_CASCADE)")
    p.add_argument("--inception-weights", default=None,
                   help="torch-fidelity Inception weights file (default "
                        "$CYCLEGAN_INCEPTION_WEIGHTS, else the torch hub cache or a download)")

    sub.add_parser("presets", help="list presets and profiles with their settings")
    return parser


def _cmd_train(args: argparse.Namespace) -> int:
    # Options are checked before torch is even imported: a typo fails in a fraction of a second.
    overrides = dict(parse_override(text) for text in args.set)
    flags = dict(seed=args.seed, max_steps=args.max_steps, max_minutes=args.max_minutes,
                 save_every=args.save_every,
                 keep_checkpoints=args.keep, device=args.device, threads=args.threads)
    overrides.update({k: v for k, v in flags.items() if v is not None})
    cfg = config_with(args.preset, args.profile, overrides)  # --set KEY=none clears KEY
    from .cyclegan import resolve_device  # torch, only now that the options are valid
    from .distributed import launcher_env, main_train
    from .trainer import train

    env = launcher_env()  # under torchrun: this process's rank (WORLD_SIZE alone is an error)

    resolve_device(cfg.device)  # fail on a bad device before loading any data
    data = paths.data_dir(args.data)
    if not data.is_dir():
        raise DataError(f"data folder not found: {data}")
    if env is not None and env.world_size > 1:
        return main_train(cfg, data, args.out, args.resume, not args.no_progress, env)
    summary = train(cfg, data, args.out, resume=args.resume, progress=not args.no_progress)
    print(f"run directory: {args.out} (step {summary['step']}/{summary['total_steps']}, "
          f"{summary['train_seconds']:.0f} s)")
    return 0


def _cmd_translate(args: argparse.Namespace) -> int:
    from .translate import translate_paths

    results = translate_paths(args.checkpoint, args.inputs, args.out, direction=args.direction,
                              size=args.size, crop_face=args.crop_face,
                              fallback=not args.no_crop_fallback, device=args.device)
    written = sum(1 for r in results if r.output is not None)
    for r in results:
        if r.note:
            print(f"{r.source}: {r.note}")
    if args.crop_face:
        missed = sum(1 for r in results if r.face_found is False)
        print(f"face found in {sum(1 for r in results if r.face_found)} of "
              f"{sum(1 for r in results if r.face_found is not None)} image(s); "
              f"no face in {missed}")
    print(f"wrote {written} image(s) to {args.out}")
    return 0 if written else 1


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluate import evaluate_run

    data = paths.data_dir(args.data)
    metrics = evaluate_run(args.checkpoint, data, device=args.device, kid=not args.no_kid,
                           max_images=args.max_images, anime_cascade=args.anime_cascade,
                           inception_weights=args.inception_weights)
    out = Path(args.out) if args.out else (Path(args.checkpoint) / "metrics.json"
                                           if Path(args.checkpoint).is_dir()
                                           else Path(args.checkpoint).with_suffix(".metrics.json"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(metrics, indent=2))
    print(json.dumps(metrics, indent=2))
    print(f"wrote {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``cyclegan-anime`` console script."""
    args = build_parser().parse_args(argv)
    if args.command == "presets":
        print(describe_presets())
        return 0
    handlers = {"train": _cmd_train, "translate": _cmd_translate, "evaluate": _cmd_evaluate}
    try:
        return handlers[args.command](args)
    except (UserError, OSError) as exc:  # OSError: a missing input, a full disk...
        if not _quiet_rank():  # under torchrun rank 0 alone reports a mistake every rank makes
            print(f"cyclegan-anime {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"cyclegan-anime {args.command}: interrupted (resume with --resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
