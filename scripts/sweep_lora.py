"""Run the LoRA comparison of notebook 04 and save it as JSON.

    python scripts/sweep_lora.py --workers 2             # the notebook's setting on both cores of a 2-core machine
    python scripts/sweep_lora.py --seeds 0 --train-size 64 --test-size 64 --epochs 1 --configs 2 --output /tmp/quick.json

LoRA at several ranks and on several weight matrices, training only the classification head
and full fine-tuning are trained on the same reviews for every seed. Each family's learning
rate is picked on the validation split with the first seed; see
`peft_lessons.sweeps.lora_comparison`. An existing output file is kept unless `--overwrite`
is given. The full setting is about 46 runs of tiny-bert-zh on 2,000 reviews. It is estimated at a
few hours in one process on 2 CPU cores, and `--workers 2` runs two trainings side by side.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from peft_lessons import sweeps  # noqa: E402

import sweep_cli  # noqa: E402

DEFAULT_OUTPUT = ROOT / "docs" / "results" / "lora_comparison.json"

DESCRIPTION = """\
运行 notebook 04 的 LoRA 对比实验，把结果存为 JSON 文件。

对每个随机种子，以下方法都在同一批评论上训练：不同 rank、加在不同权重矩阵上的
LoRA，只训练分类头，以及全量微调。每类方法的学习率用第一个种子在验证集上选出。
完整设置约为 tiny-bert-zh 在 2,000 条评论上的 46 次训练，估计单进程在 2 个 CPU
核上要跑几个小时；--workers 2 让两次训练同时进行。输出文件已存在时，只有加
--overwrite 才会替换它。

示例：
  # notebook 中的设置，用上 2 核机器的两个核
  python scripts/sweep_lora.py --workers 2
  # 缩小规模的快速试跑
  python scripts/sweep_lora.py --seeds 0 --train-size 64 --test-size 64 --epochs 1 --configs 2 --output /tmp/quick.json
"""


def main(argv=None) -> int:
    parser = sweep_cli.make_parser(description=DESCRIPTION)
    parser.add_argument("--model", default="tiny-bert-zh", help="内置模型名或 Hub 模型 id（默认：%(default)s）")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2],
                        help="随机种子，可给多个；每个种子各自决定训练样本和初始化（默认：%(default)s）")
    parser.add_argument("--train-size", type=int, default=2000, help="每个随机种子的有标注训练评论条数（默认：%(default)s）")
    parser.add_argument("--validation-size", type=int, default=512,
                        help="从验证集中固定抽取的评论条数，用于早停和选择学习率（默认：%(default)s）")
    parser.add_argument("--test-size", type=int, default=None,
                        help="评估用的测试评论条数（固定抽样）；不设时用整个测试集")
    parser.add_argument("--epochs", type=int, default=6, help="每次训练的最大 epoch 数，早停通常会让训练更早结束（默认：%(default)s）")
    parser.add_argument("--configs", type=int, default=None,
                        help="要用的 LoRA 设置个数，取 sweeps.LORA_CONFIGS 的前几个；不设时全部使用")
    parser.add_argument("--one-rate", action="store_true", help="每类方法只试学习率候选值中的第一个")
    parser.add_argument("--rescale-below-rank", type=int, default=None,
                        help="对 rank 低于此值的 LoRA 设置，另用“选定学习率 × r / r_tuned”再训练一组，"
                             "使学习率 × alpha / r 与选学习率时相同。r_tuned 是选学习率时所用的 rank，"
                             "默认设置下为 8")
    sweep_cli.add_output_arguments(parser, DEFAULT_OUTPUT, workers=True)
    args = sweep_cli.parse(parser, argv)
    configs = sweeps.LORA_CONFIGS[: args.configs] if args.configs else sweeps.LORA_CONFIGS
    grids = {family: rates[:1] for family, rates in sweeps.LORA_LEARNING_RATE_GRIDS.items()} if args.one_rate else None
    # A bad argument (for example --seeds -1) gets a one-line message instead of a traceback.
    return sweep_cli.run_and_save(parser, args, lambda log: sweeps.lora_comparison(
        args.model, args.seeds, train_size=args.train_size, validation_size=args.validation_size,
        test_size=args.test_size, configs=configs, learning_rate_grids=grids, epochs=args.epochs,
        workers=args.workers, run_log=args.run_log, rescale_below_rank=args.rescale_below_rank,
        download=args.download, log=log))


if __name__ == "__main__":
    raise SystemExit(main())
