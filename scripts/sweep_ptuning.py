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

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from peft_lessons import sweeps  # noqa: E402

import sweep_cli  # noqa: E402

DEFAULT_OUTPUT = ROOT / "docs" / "results" / "ptuning_comparison.json"

DESCRIPTION = """\
运行 notebook 02 的 P-Tuning 对比实验，把结果存为 JSON 文件。

对每个模型、每个 k 和每个随机种子，冻结主干的 P-Tuning、解冻主干的 P-Tuning
和分类头都在同一批 k 条评论上训练；每种方法还会在整个训练集上训练一次。用
--merge 可以把分别运行的单模型结果合并成一个文件。输出文件已存在时，只有加
--overwrite 才会替换它。

示例：
  # notebook 中的设置，在 2 个 CPU 核上约需一小时
  python scripts/sweep_ptuning.py
  # 缩小规模的快速试跑
  python scripts/sweep_ptuning.py --ks 8 --seeds 0 --models tiny-gpt-zh --no-full-train --test-size 64 --output /tmp/quick.json
  # 合并并行运行的单模型结果
  python scripts/sweep_ptuning.py --merge bert.json gpt.json
"""


def main(argv=None) -> int:
    parser = sweep_cli.make_parser(description=DESCRIPTION)
    parser.add_argument("--models", nargs="+", default=["tiny-bert-zh", "tiny-gpt-zh"],
                        help="一个或多个内置模型名或 Hub 模型 id（默认：两个内置模型）")
    parser.add_argument("--ks", nargs="+", type=int, default=[32, 256],
                        help="有标注训练评论的条数 k，可给多个，每个至少为 2（默认：%(default)s）")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2],
                        help="随机种子，可给多个；每个种子各自决定训练样本和初始化（默认：%(default)s）")
    parser.add_argument("--no-full-train", action="store_true", help="跳过在整个训练集上的训练")
    parser.add_argument("--full-train-epochs", type=int, default=1,
                        help="在整个训练集上训练时的最大 epoch 数（默认：%(default)s）")
    parser.add_argument("--validation-size", type=int, default=256,
                        help="从验证集中固定抽取的评论条数，用于早停和选择学习率（默认：%(default)s）")
    parser.add_argument("--test-size", type=int, default=None,
                        help="评估用的测试评论条数（固定抽样）；不设时用整个测试集")
    parser.add_argument("--epochs", type=int, default=20, help="每次训练的最大 epoch 数，早停通常会让训练更早结束（默认：%(default)s）")
    parser.add_argument("--frozen-learning-rates", nargs="+", type=float,
                        default=list(sweeps.FROZEN_LEARNING_RATE_GRID),
                        help="冻结主干时的学习率候选值，每个模型按验证集准确率选一个（默认：%(default)s）")
    parser.add_argument("--merge", nargs="+", type=Path,
                        help="不训练，而是把几个单模型的结果文件合并后写入 --output")
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
