"""Run the P-Tuning v2 comparison of notebook 03 and save it as JSON.

    python scripts/sweep_ptuning_v2.py --workers 2        # the notebook's setting on both cores of a 2-core machine
    python scripts/sweep_ptuning_v2.py --tasks ner --seeds 0 --train-size 64 --epochs 1 --prompt-lens 4 --output /tmp/quick.json

On the sentiment task and on People's Daily NER, P-Tuning v2 (a prefix in every layer),
P-Tuning-v1-style prompts at the input and full fine-tuning train on the same examples for
every seed. The v2 prefix is also trained at several prompt lengths and with
reparameterization. Each family's learning rate is picked per task on validation with the
first seed; see `peft_lessons.sweeps.ptuning_v2_comparison`. An existing output file is kept
unless `--overwrite` is given. The full setting is about 54 runs of tiny-bert-zh; `--workers 2`
runs two trainings side by side, and `--run-log` lets an interrupted sweep resume.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from peft_lessons import sweeps  # noqa: E402

import sweep_cli  # noqa: E402

DEFAULT_OUTPUT = ROOT / "docs" / "results" / "ptuning_v2_comparison.json"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny-bert-zh", help="bundled model name or hub id")
    parser.add_argument("--tasks", nargs="+", default=list(sweeps.V2_TASKS), help="sentiment and/or ner")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2],
                        help="random seeds; each picks its own sample and initialisation")
    parser.add_argument("--prompt-len", type=int, default=16, help="prompt length of the method comparison")
    parser.add_argument("--prompt-lens", nargs="+", type=int, default=[1, 4, 16, 64, 128],
                        help="prefix lengths of the v2 prompt_len sweep")
    parser.add_argument("--train-size", type=int, default=2000, help="training examples per seed and task")
    parser.add_argument("--validation-size", type=int, default=512,
                        help="validation examples used for early stopping and learning-rate choice")
    parser.add_argument("--test-size", type=int, default=None, help="score on the first N test examples only")
    parser.add_argument("--epochs", type=int, default=6,
                        help="maximum epochs per run (early stopping usually ends a run sooner)")
    parser.add_argument("--one-rate", action="store_true", help="try only the first learning rate of each grid")
    sweep_cli.add_output_arguments(parser, DEFAULT_OUTPUT, workers=True)
    args = sweep_cli.parse(parser, argv)
    grids = ({family: rates[:1] for family, rates in sweeps.V2_LEARNING_RATE_GRIDS.items()}
             if args.one_rate else None)
    # A bad argument (for example --tasks pos) gets a one-line message instead of a traceback.
    return sweep_cli.run_and_save(parser, args, lambda log: sweeps.ptuning_v2_comparison(
        args.model, args.tasks, args.seeds, prompt_len=args.prompt_len, prompt_lens=args.prompt_lens,
        train_size=args.train_size, validation_size=args.validation_size, test_size=args.test_size,
        learning_rate_grids=grids, epochs=args.epochs, workers=args.workers, run_log=args.run_log,
        download=args.download, log=log))


if __name__ == "__main__":
    raise SystemExit(main())
