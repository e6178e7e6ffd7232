"""Run the P-Tuning comparison of notebook 02 and save it as JSON.

    python scripts/sweep_ptuning.py                      # the notebook's setting, about an hour on 2 CPU cores
    python scripts/sweep_ptuning.py --ks 8 --seeds 0 --models tiny-gpt-zh --no-full-train --test-size 64 --output /tmp/quick.json
    python scripts/sweep_ptuning.py --merge bert.json gpt.json   # combine per-model runs made in parallel

P-Tuning with the backbone frozen, P-Tuning with it unfrozen and a classification head are
trained on the same k reviews for every model, k and seed. Each also trains once on the whole
train split. `peft_lessons.sweeps.ptuning_comparison` documents the settings. An existing output
file is kept unless `--overwrite` is given.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from peft_lessons import sweeps  # noqa: E402

import sweep_cli  # noqa: E402

DEFAULT_OUTPUT = ROOT / "docs" / "results" / "ptuning_comparison.json"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["tiny-bert-zh", "tiny-gpt-zh"],
                        help="bundled model names or hub ids (default: both bundled models)")
    parser.add_argument("--ks", nargs="+", type=int, default=[32, 256],
                        help="numbers of labelled training reviews, each at least 2")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2],
                        help="random seeds; each picks its own sample and initialisation")
    parser.add_argument("--no-full-train", action="store_true", help="skip the runs on the whole train split")
    parser.add_argument("--full-train-epochs", type=int, default=1,
                        help="epochs of the runs on the whole train split")
    parser.add_argument("--validation-size", type=int, default=256,
                        help="validation reviews used for early stopping and learning-rate choice")
    parser.add_argument("--test-size", type=int, default=None, help="score on a fixed sample of the test split")
    parser.add_argument("--epochs", type=int, default=20, help="maximum epochs per run (early stopping usually ends a run sooner)")
    parser.add_argument("--frozen-learning-rates", nargs="+", type=float,
                        default=list(sweeps.FROZEN_LEARNING_RATE_GRID),
                        help="candidates for the frozen-backbone learning rate, picked on validation")
    parser.add_argument("--merge", nargs="+", type=Path, help="combine result files of single models instead of running")
    sweep_cli.add_output_arguments(parser, DEFAULT_OUTPUT)
    args = sweep_cli.parse(parser, argv)
    if args.merge:
        try:
            merged = sweeps.merge_results([sweeps.load_results(path) for path in args.merge])
        except (ValueError, OSError) as error:
            parser.error(str(error))
        path = sweeps.save_results(merged, args.output, overwrite=args.overwrite)
        print(f"wrote {path} ({len(merged['runs'])} runs from {len(args.merge)} files)")
        return 0
    # A bad argument (for example --ks 1) gets a one-line message instead of a traceback.
    return sweep_cli.run_and_save(parser, args, lambda log: sweeps.ptuning_comparison(
        args.models, args.ks, args.seeds, full_train=not args.no_full_train,
        full_train_epochs=args.full_train_epochs, validation_size=args.validation_size, test_size=args.test_size,
        epochs=args.epochs, frozen_learning_rates=args.frozen_learning_rates, download=args.download, log=log))


if __name__ == "__main__":
    raise SystemExit(main())
