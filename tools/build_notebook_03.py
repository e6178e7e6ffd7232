"""Write notebooks/03_p_tuning_v2.ipynb (unexecuted) from the cells below.

Run `python tools/build_notebook_03.py`, then
`python benchmarks/run_benchmarks.py --save-executed notebooks/03_p_tuning_v2.ipynb`.
Sections 8 to 10 read docs/results/ptuning_v2_comparison.json, written by
`python scripts/sweep_ptuning_v2.py --workers 2`, and section 11 takes its learning rate from it.
Without that file, or with another model chosen, the comparison cell runs the whole sweep
itself, which takes more than an hour on a 2-core CPU.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from notebook_cells import ROOT, SETUP_SOURCE as setup_source, code, md, write_notebook  # noqa: E402

TARGET = ROOT / "notebooks" / "03_p_tuning_v2.ipynb"

cells = [
    md(r"""
# 第 3 课：P-Tuning v2——每一层都有可训练的前缀

上一课的 P-Tuning（下文叫 v1）只在输入层放几个可训练的向量。它在情感分类这类句子级任务上还行，可论文作者发现，到了命名实体识别（NER）这种要给每个字打标签的任务，它明显不如全量微调。P-Tuning v2（Liu 等 2022，*P-Tuning v2: Prompt Tuning Can Be Comparable to Fine-tuning Universally Across Scales and Tasks*）的改法很直接：不再只改输入，而是给 Transformer 的**每一层**注意力都接上一段可训练的 key 和 value，也就是**前缀**（prefix）；主干模型照旧冻结。

这一课在 `tiny-bert-zh`、真实的评论数据和人民日报 NER 数据上把 v2 跑一遍：

- 第 3 节，从 v1 到 v2 改了什么，可训练参数多了多少；
- 第 4 节，提示编码器 `PromptEncoderV2` 和把它的输出切成每层 key / value 的几步变形；真实 token 用哪些位置编号；
- 第 5 节，验证前缀真的进入了每一层，而主干一个权重都不训练；
- 第 6 节，prompt_len 小部件；
- 第 7 节，NER 的评价指标：实体级 F1；
- 第 8 节，对比实验：v1 式输入层提示、P-Tuning v2 与全量微调，在情感分类和 NER 上；
- 第 9 节，prompt_len 扫描：分类和序列标注各自偏好多长的前缀；
- 第 10 节，重参数化开与关；
- 第 11 节，亲手训练一个 NER 前缀；
- 第 12 节，小结与练习。

带 `# NBVAL_CHECK_OUTPUT` 的单元输出是确定的，测试时逐字比对；其余单元的数字来自训练与打分，每次运行可能略有差别。文中的“正文”指本课程第 10 章的讲义（不在这个仓库里），它转述的实验结论出自上面这篇论文。
"""),
    md("""
## 1. 运行环境

与前几课相同：缺少 `peft_lessons` 包时以可编辑模式安装，然后打印版本与计算设备。
"""),
    code(setup_source),
    md("""
## 2. 选择模型

默认使用课程自带的 `tiny-bert-zh`，CPU 上整本 notebook 几分钟跑完。

> **在 Colab GPU 上换用真实模型**：把下面改成 `BERT_MODEL = "bert-base-chinese"`，并令 `DOWNLOAD = True`。后面的单元不用改；每个结果下面的结论由代码根据数字生成，换了模型，结论会跟着数字变。第 8 节发现结果文件对应的不是当前模型时，会针对新模型把整个对比实验重跑一遍，在 GPU 上也要一段时间。
"""),
    code("""
BERT_MODEL = "tiny-bert-zh"
DOWNLOAD = False  # 换成 Hugging Face Hub 上的模型时设为 True
MAX_LENGTH = 64   # 每句（含 [CLS] 与 [SEP]）最多占的位置数，NER 的句子因此按 MAX_LENGTH - 2 个字切分
PROMPT_LEN = 16   # 第 3 到 7 节演示用的前缀长度，与第 8 节对比实验的默认设置相同
"""),
    code("""
# NBVAL_CHECK_OUTPUT
import datetime
import json
from pathlib import Path

import keras
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator
from seqeval.metrics.sequence_labeling import get_entities

import peft_lessons
from peft_lessons import data, ptuning, ptuning_v2, sweeps
from peft_lessons.checkpoints import load_llm, load_tokenizer
from peft_lessons.models import BertModel, ModelConfig
from peft_lessons.plotting import format_table, setup_chinese_font
from peft_lessons.training import count_params
from peft_lessons.widgets import PrefixLengthPanel

setup_chinese_font()
sentiment = data.load_sentiment()
ner = data.load_ner(max_chars=MAX_LENGTH - 2)
print(f"评论数据：训练 {len(sentiment.train):,} 条，验证 {len(sentiment.validation):,} 条，测试 {len(sentiment.test):,} 条")
print(f"人民日报 NER（每句最多 {MAX_LENGTH - 2} 个字）：训练 {len(ner.train):,} 句，验证 {len(ner.validation):,} 句，"
      f"测试 {len(ner.test):,} 句")
print("测试集里的实体：" + "，".join(f"{kind} {count:,} 个" for kind, count in ner.stats["entities"]["test"].items()))
"""),
    code("""
# NBVAL_IGNORE_OUTPUT
tokenizer = load_tokenizer(BERT_MODEL, download=DOWNLOAD)
language_model = load_llm(BERT_MODEL, download=DOWNLOAD)
config = language_model.config
print(f"{BERT_MODEL}：L = {config.num_layers} 层，隐藏维度 H = {config.hidden_size}，nh = {config.num_heads} 个注意力头，"
      f"每头 hd = {config.head_dim} 维，最多 {config.max_positions} 个位置，{language_model.count_params():,} 个参数")
"""),
    md(r"""
## 3. 从 v1 到 v2：改了什么

正文把 v2 的改动归成四点。

1. **前缀代替模板。** v1 要为不同的模型设计模板：GPT 的伪 token 只能放在答案前面，BERT 的可以包住 `[MASK]`。v2 的作者认为没有必要：注意力对“提示放在序列的哪个位置”并不敏感，如果不算位置编码，放在哪里对注意力都一样。所以 v2 取消了模板，唯一的超参数是前缀长度 `prompt_len`，下文记作 $P$。
2. **每一层，而不是只有输入层。** v1 的提示向量只进入词嵌入之后的第一层，要经过整个冻结的模型才能影响输出；v2 在每一层的注意力里都接上 $P$ 个可训练的 key 和 value。真实 token 在每一层都能“看到”它们，而前缀本身没有 query，也不产生输出。
3. **默认不做重参数化。** v1 用 LSTM 和 MLP 生成提示向量；v2 的作者发现这一步对很多任务没有帮助，有时反而有害，所以只把它留作可选项（这里是一个两层 MLP），默认关掉。
4. **标签用一个新的线性分类头读出**，句子分类接在 `[CLS]` 上，NER 接在每个字上，不再用上一课的标签词。

正文给出 v1 在 NER、抽取式问答这类难任务上落后的两条原因：

- **可训练参数太少。** v1 的提示占输入位置，长度有限，能训练的只有 $P \times H$ 个数，难任务上容易欠拟合。v2 每层一份 key、一份 value，共 $P \times 2LH$ 个数，正文说占比从约 0.01% 提高到 0.1% 到 3%。
- **作用是间接的。** 改变输入层的向量，要穿过所有冻结的层才能影响预测，模型越深越难说清它起了多大作用；v2 的前缀在每一层都直接参与注意力，离输出近得多。

下面按 $P$ = `PROMPT_LEN` 在我们的模型上数一数，并按 `bert-base-chinese` 的结构（12 层，H = 768，词表 21,128）建一个随机初始化的骨干来对照，不下载任何权重。
"""),
    code("""
# NBVAL_CHECK_OUTPUT
BERT_BASE_SHAPE = ModelConfig("bert", vocab_size=21128, hidden_size=768, num_layers=12, num_heads=12,
                              intermediate_size=3072, max_positions=512)
structures = {BERT_MODEL: language_model, "bert-base-chinese 的结构": BertModel(BERT_BASE_SHAPE)}


def with_share(count, whole):
    return f"{count:,}（{100 * count / whole:.3g}%）"


rows = []
for name, model in structures.items():
    shape = model.config
    whole = ptuning_v2.prefix_summary(model, PROMPT_LEN)["backbone_params"]
    v1_training = ptuning.prompt_encoder_params((PROMPT_LEN, 0), shape.hidden_size, "lstm")
    v1_stored = ptuning.prompt_encoder_params((PROMPT_LEN, 0), shape.hidden_size, "none")
    v2_prefix = ptuning_v2.prompt_encoder_v2_params(PROMPT_LEN, shape, reparameterization=False)
    v2_mlp = ptuning_v2.prompt_encoder_v2_params(PROMPT_LEN, shape, reparameterization=True)
    rows.append([name, f"{whole:,}", with_share(v1_training, whole), with_share(v1_stored, whole),
                 with_share(v2_prefix, whole), with_share(v2_mlp, whole)])
print(f"P = {PROMPT_LEN}，括号里是占骨干模型参数的百分比")
print(format_table(["骨干模型", "参数量", "v1 编码器（LSTM，训练时）", "v1 训练后保存的 P×H",
                    "v2 前缀（默认，不重参数化）", "v2 编码器（MLP 重参数化，训练时）"], rows))
"""),
    md(r"""
第 3、4 列是 v1：训练时要更新整个 LSTM + MLP 编码器，训练完只需保存 $P \times H$ 个向量。第 5 列是 v2 的默认做法：编码器就是前缀本身，训练和保存的是同一批 $P \times 2LH$ 个数。第 6 列是 v2 打开重参数化时训练阶段的编码器，训练完同样只保存 $P \times 2LH$ 个数。

同样的 $P$，v2 比 v1 多出的倍数正好是 $2L$；而且 v1 的提示要占输入位置，v2 的前缀不占：
"""),
    code("""
# NBVAL_CHECK_OUTPUT
v1_vectors = ptuning.prompt_encoder_params((PROMPT_LEN, 0), config.hidden_size, "none")
v2_vectors = ptuning_v2.prompt_encoder_v2_params(PROMPT_LEN, config)
print(f"{BERT_MODEL}：v2 的前缀有 {v2_vectors:,} 个数，v1 的提示向量有 {v1_vectors:,} 个，"
      f"前者是后者的 {v2_vectors // v1_vectors} 倍，等于 2 × L = {2 * config.num_layers}")
print(f"v1：{PROMPT_LEN} 个提示占用位置，{config.max_positions} 个位置里留给文本（含 [CLS]、[SEP]）的只剩 "
      f"{config.max_positions - PROMPT_LEN} 个")
print(f"v2：前缀只是每层注意力里多出来的 key 和 value，不占位置，文本仍可用全部 {config.max_positions} 个位置")
"""),
    md(r"""
## 4. 提示编码器与形状变换

`ptuning_v2.PromptEncoderV2` 一次生成所有层的前缀，输出一个 $[P, 2LH]$ 的矩阵：第 $p$ 行是前缀第 $p$ 个位置在所有层上的 key 和 value 拼在一起。

- 不重参数化（默认）：就是一个 Embedding$(P, 2LH)$，它的每一行直接是前缀，参数量 $P \cdot 2LH$；
- 重参数化：Embedding$(P, H)$ → Dense$(H, \tanh)$ → Dense$(2LH)$，参数量 $PH + (H^2 + H) + (H \cdot 2LH + 2LH)$。MLP 只改变优化的路径，训练结束后把它的输出存下来即可。

先建这两种编码器，看它们的权重，并确认 `prompt_encoder_v2_params` 的公式与实际建出的层一致。
"""),
    code("""
# NBVAL_CHECK_OUTPUT
keras.utils.set_random_seed(0)
encoders = {choice: ptuning_v2.PromptEncoderV2(PROMPT_LEN, config, reparameterization=choice) for choice in (False, True)}
for choice, encoder in encoders.items():
    print(f"reparameterization={choice}，输出形状 {tuple(encoder().shape)}")
    rows = [[weight.path, str(tuple(weight.shape)), f"{count_params([weight]):,}"] for weight in encoder.weights]
    print(format_table(["权重", "形状", "参数量"], rows))
    built = count_params(encoder.weights)
    formula = ptuning_v2.prompt_encoder_v2_params(PROMPT_LEN, config, reparameterization=choice)
    print(f"实际建出 {built:,} 个参数，公式给出 {formula:,}：" + ("一致" if built == formula else "不一致"))
    print()
"""),
    md(r"""
接下来把 $[P, 2LH]$ 变成每层用的 key 和 value。`ptuning_v2.prefix_steps` 按顺序做四件事，并把每一步的结果都交出来：

1. 编码器输出 $[P, 2LH]$；
2. 同一批里所有样本共用一份前缀，所以沿 batch 复制 $B$ 份：$[B, P, 2LH]$；
3. 把每行切成 $2L$ 段，每段 $H$ 维，再按注意力头拆开：$[B, P, 2L, n_h, h_d]$。第 $2k$ 段是第 $k$ 层的 key，第 $2k+1$ 段是它的 value；
4. 转置成 $[2L, B, P, n_h, h_d]$，沿第一维取出来就是某一层的 key 或 value，形状 $[B, P, n_h, h_d]$，正是注意力层要的排布。

`ptuning_v2.prefixes_from_prompts` 做完这四步，返回 $L$ 个 `(key, value)` 对。`ptuning_v2.prefix_shapes` 不建任何张量，只按公式算出每一步的形状。下面用 batch = 2 对照实际形状与预测形状，再检查第 3 步说的切法：第 $k$ 层的 key 是不是编码器输出的第 $2kH$ 到 $(2k+1)H$ 列。

正文的示例代码用的是另一种排法：前 $L$ 段当 key，后 $L$ 段当 value。这只是给各列起名字的方式不同，两种排法训练出的模型是等价的。
"""),
    code("""
# NBVAL_CHECK_OUTPUT
BATCH = 2
hidden = config.hidden_size
prompts = encoders[False]()  # [P, 2LH]
steps = ptuning_v2.prefix_steps(prompts, BATCH, config)
predicted = ptuning_v2.prefix_shapes(PROMPT_LEN, config, BATCH)
prefixes = ptuning_v2.prefixes_from_prompts(prompts, BATCH, config)
rows = [[index, name, str(tuple(tensor.shape)), str(shape)]
        for index, ((name, tensor), (_, shape)) in enumerate(zip(steps, predicted), start=1)]
rows.append([5, predicted[4][0], f"{len(prefixes)} 对，每个 {tuple(prefixes[0][0].shape)}", str(predicted[4][1])])
print(format_table(["步骤", "做了什么", "实际形状", "prefix_shapes 的预测"], rows))
shapes_agree = all(tuple(tensor.shape) == shape for (_, tensor), (_, shape) in zip(steps, predicted))
shapes_agree = shapes_agree and all(tuple(part.shape) == predicted[4][1] for pair in prefixes for part in pair)
print("实际形状与预测一致：", shapes_agree)

rows_of_prompts = np.asarray(prompts)
heads = (PROMPT_LEN, config.num_heads, config.head_dim)
layout_holds = True
for k, (key, value) in enumerate(prefixes):
    key_columns = rows_of_prompts[:, 2 * k * hidden:(2 * k + 1) * hidden].reshape(heads)
    value_columns = rows_of_prompts[:, (2 * k + 1) * hidden:(2 * k + 2) * hidden].reshape(heads)
    for sample in range(BATCH):
        layout_holds = layout_holds and np.array_equal(np.asarray(key[sample]), key_columns)
        layout_holds = layout_holds and np.array_equal(np.asarray(value[sample]), value_columns)
print(f"全部 {config.num_layers} 层：key 取自第 2kH 到 (2k+1)H 列，value 取自其后的 H 列，batch 里每个样本相同：",
      layout_holds)
"""),
    md("""
**真实 token 用哪些位置编号？** 前缀只有 key 和 value，从不经过词嵌入层，所以它没有位置，也不加位置编码。真实 token 照常编号 0, 1, …, T-1：BERT 的 `[CLS]` 仍在预训练时的位置 0，`max_length` 也能用满 `max_positions`。Hugging Face transformers 在收到 `past_key_values` 时默认从缓存长度开始编号（见 `prefixes_from_prompts` 的文档字符串），那样真实 token 的编号是 P, …, P+T-1，结果会与这里略有不同。

下面在真实的一句话上确认：不传 `position_ids` 与显式传 0..T-1 完全相同；改用 P..P+T-1，输出就变了。
"""),
    code("""
# NBVAL_CHECK_OUTPUT
sentence = "新华社记者在北京报道了这次会议"
encoded = tokenizer.encode_batch([sentence], max_length=MAX_LENGTH, padding="longest")
length = encoded["input_ids"].shape[1]
backbone = language_model.backbone
one_prefixes = ptuning_v2.prefixes_from_prompts(prompts, 1, config)
reference = np.asarray(backbone(encoded, prefixes=one_prefixes))  # [1, T, H]
from_zero = np.arange(length, dtype="int32")[None, :]
explicit = np.asarray(backbone({**encoded, "position_ids": from_zero}, prefixes=one_prefixes))
shifted = np.asarray(backbone({**encoded, "position_ids": from_zero + PROMPT_LEN}, prefixes=one_prefixes))
print(f"“{sentence}”编码后 T = {length} 个 token，前缀 P = {PROMPT_LEN}")
print("不传 position_ids 与显式传 0..T-1 的输出相同：", np.array_equal(reference, explicit))
print("改用 P..P+T-1 后输出改变：", not np.allclose(reference, shifted, atol=1e-4))
"""),
    md("""
前缀怎样进入注意力，可以从注意力掩码上看出来。`ptuning_v2.prefix_attention_mask` 取出第 0 层实际使用的掩码：行是发出查询的 token，前 P 列是前缀，后 T 列是真实 token；1 表示能看到。这里用 P = 3、T = 6，最后 2 个 token 是补齐的 `[PAD]`。
"""),
    code("""
# NBVAL_CHECK_OUTPUT
mask = ptuning_v2.prefix_attention_mask(language_model, prompt_len=3, length=6, padding=2)
columns = [f"P{p}" for p in range(3)] + [f"t{t}" for t in range(6)]
print(format_table(["查询", *columns], [[f"t{t}", *row.astype(int)] for t, row in enumerate(mask)]))
print("每个真实 token 都能看到全部前缀：", bool(mask[:4, :3].all()))
print("补齐位置对所有 token 都不可见：", not mask[:, -2:].any())
"""),
    md("""
## 5. 前缀进入每一层，主干保持冻结

如果前缀真的接在每一层上，那么只改第 k 层的前缀、其余各层不动，模型的输出也应当改变，而且对每一个 k 都如此。下面逐层试一遍：给第 k 层的 key 和 value 加上随机扰动，与第 4 节的输出比较。
"""),
    code("""
# NBVAL_CHECK_OUTPUT
rng = np.random.default_rng(0)
rows = []
for k in range(config.num_layers):
    key, value = (np.asarray(part) for part in one_prefixes[k])
    edited = list(one_prefixes)
    edited[k] = (key + rng.normal(size=key.shape).astype("float32"),
                 value + rng.normal(size=value.shape).astype("float32"))
    changed = np.asarray(backbone(encoded, prefixes=edited))
    rows.append([f"第 {k} 层", "是" if np.abs(changed - reference).max() > 1e-4 else "否"])
print(format_table(["只改这一层的前缀", "最后一层的输出改变了吗"], rows))
"""),
    md("""
对比 v1：它的提示只在第 0 层之前进入，后面每一层看到的都是前面冻结的层加工过的结果；v2 的最后一层也有自己的前缀，离输出只隔一层注意力。

再看哪些参数会被训练。`PrefixTokenClassifier` 是 NER 用的 v2 模型：冻结的骨干、提示编码器和一个逐字的分类头。注意它会把传入的骨干就地设为不可训练，所以第 11 节训练时另外加载一份模型。
"""),
    code("""
# NBVAL_CHECK_OUTPUT
keras.utils.set_random_seed(0)
tagger = ptuning_v2.PrefixTokenClassifier(language_model, PROMPT_LEN)
counts = ptuning_v2.parameter_counts(tagger)
encoder_weights = {id(weight) for weight in tagger.prompt_encoder.weights}
print("可训练的权重：")
print(format_table(["部分", "权重", "形状"], [["提示编码器" if id(weight) in encoder_weights else "分类头", weight.path,
                                          str(tuple(weight.shape))] for weight in tagger.trainable_weights]))
print(f"骨干 backbone.trainable = {tagger.backbone.trainable}，它的 {counts['backbone']:,} 个参数都不训练")
print(f"可训练 {counts['trainable']:,} = 提示编码器 {counts['prompt_encoder']:,} + 分类头 {counts['head']:,}：",
      counts["trainable"] == counts["prompt_encoder"] + counts["head"])
print(f"可训练参数占全部参数的 {counts['trainable_percent']:.2f}%")
"""),
    md("""
## 6. prompt_len 小部件

拖动滑块改变 prompt_len，勾选或取消重参数化，面板会实时显示编码器的参数量和它占骨干的比例、从编码器输出到一层 key 的每一步形状，以及第 0 层的注意力掩码（8 个 token，最后 2 个是补齐）。面板调用的是 `ptuning_v2.prefix_summary` 和 `ptuning_v2.prefix_attention_mask`，与本 notebook 的单元是同样的函数。
"""),
    code("""
# NBVAL_IGNORE_OUTPUT
panel = PrefixLengthPanel({BERT_MODEL: language_model})
panel.widget
"""),
    md("""
在没有前端的环境里（例如自动测试），也可以直接给控件赋值，再从 `panel.summary` 和 `panel.mask` 读回面板算出的数字。下面把它们与真正建出来的编码器对照：参数量要相同，掩码的前缀列数要等于 prompt_len，网页上也要显示这个参数量。运行这个单元，上面的面板也会跟着变。
"""),
    code("""
# NBVAL_CHECK_OUTPUT
rows = []
for prompt_len, reparameterization in ((4, False), (PROMPT_LEN, False), (PROMPT_LEN, True), (64, True)):
    panel.prompt_len.value = prompt_len
    panel.reparameterization.value = reparameterization
    shown_params = panel.summary["encoder_params"]
    # 对照：真的建一个这样的编码器，数它的权重
    built = count_params(ptuning_v2.PromptEncoderV2(prompt_len, config, reparameterization=reparameterization).weights)
    prefix_columns = panel.mask.shape[1] - panel.length
    on_page = f"{shown_params:,}" in panel.output.value
    same = shown_params == built and prefix_columns == prompt_len and on_page
    rows.append([prompt_len, "开" if reparameterization else "关", f"{shown_params:,}", f"{built:,}",
                 f"{panel.summary['encoder_percent']:.3g}%", str(panel.summary["shapes"][0][1]), prefix_columns,
                 "一致" if same else "不一致"])
print(format_table(["prompt_len", "重参数化", "面板上的参数量", "实际建出的编码器", "占骨干", "编码器输出",
                    "掩码里的前缀列数", "对照"], rows))
"""),
    md("""
表里有两点值得注意：不重参数化时，参数量与 prompt_len 成正比；打开重参数化后，MLP 第二层 Dense(H, 2LH) 的 $H \\times 2LH$ 个权重与 prompt_len 无关，在 H 小的模型上它远大于前缀本身。这部分只在训练时存在，训练结束后保存的仍是 $P \\times 2LH$ 个数。
"""),
    md("""
## 7. 实体级 F1

NER 的输出是每个字一个 BIO 标签：`B-PER` 表示人名的第一个字，`I-PER` 表示人名的后续字，`O` 表示不属于任何实体；地名是 LOC，机构名是 ORG。

评价时不按字数对错，而按**实体**：一个实体只有类型、起点、终点都对才算找对。`ptuning_v2.entity_scores` 用 seqeval 计算每类实体和全部实体（micro 平均）的精确率、召回率和 F1。下面用手写的两句话看看为什么要这样算：第一句的人名找对了，机构名只标出前两个字，类型还标成了地名；第二句的地名少标了一个字；第三组“预测”全标成 `O`。
"""),
    code("""
# NBVAL_CHECK_OUTPUT
true_tags = [
    ["B-PER", "I-PER", "O", "B-ORG", "I-ORG", "I-ORG", "I-ORG", "O", "O"],  # 王芳在北京大学工作
    ["O", "O", "B-LOC", "I-LOC", "O", "O"],                                  # 今天上海下雨
]
sentences = ["王芳在北京大学工作", "今天上海下雨"]
guesses = {
    "一个模型的预测": [
        ["B-PER", "I-PER", "O", "B-LOC", "I-LOC", "O", "O", "O", "O"],
        ["O", "O", "B-LOC", "O", "O", "O"],
    ],
    "全部标 O": [["O"] * len(tags) for tags in true_tags],
}


def entity_text(chars, tags):
    return "、".join(f"{''.join(chars[start:end + 1])}（{kind}）" for kind, start, end in get_entities(tags)) or "（无）"


for name, predicted in guesses.items():
    print(f"【{name}】")
    for chars, truth, guess in zip(sentences, true_tags, predicted):
        print(f"  {chars}：真实实体 {entity_text(chars, truth)}；预测实体 {entity_text(chars, guess)}")
    flat_truth = [tag for tags in true_tags for tag in tags]
    flat_guess = [tag for tags in predicted for tag in tags]
    char_accuracy = np.mean([a == b for a, b in zip(flat_truth, flat_guess)])
    scores = ptuning_v2.entity_scores(true_tags, predicted)
    rows = [[kind, f"{score['precision']:.3f}", f"{score['recall']:.3f}", f"{score['f1']:.3f}", score["support"]]
            for kind, score in scores.items()]
    print(format_table(["实体类型", "精确率", "召回率", "F1", "真实实体数"], rows))
    print(f"  按字算的准确率 {char_accuracy:.3f}，实体级 F1 {scores['overall']['f1']:.3f}")
    print()
test_tags = [tag for _, tags in ner.test for tag in tags]
print(f"在人民日报测试集上全部标 O：按字算的准确率 {np.mean([tag == 'O' for tag in test_tags]):.3f}，实体级 F1 为 0")
"""),
    md("""
手写的两句话实体很密；在真实的测试集上，大多数字不属于任何实体，全部标 `O` 按字算的准确率很高（上面最后一行），可它一个实体都没找到，F1 为 0。边界差一个字（“上海”只标了“上”）在按字的准确率里只扣一点，在实体级指标里却同时算一次漏报和一次误报。所以下面比较 NER 时一律用实体级 F1。
"""),
    md("""
## 8. 对比实验：v1 式输入层提示、P-Tuning v2 与全量微调

正文说 v1 在序列标注这类难任务上远不如全量微调，而 v2 能在更多任务上追平全量微调。我们在两个任务上检验这件事：

- **情感分类**：每个种子抽 1,000 条评论训练，报告测试准确率；
- **NER**：每个种子抽人民日报的 1,000 个句子（每句最多 `MAX_LENGTH - 2` 个字）训练，报告测试集上的实体级 F1。

训练样本数写在结果文件里，下面的单元会把它打印出来。

三种方法都接一个新的线性分类头，在同样的样本上训练：

- **输入层提示（P-Tuning v1 式）**：P 个提示向量插在 `[CLS]` 之后，编码器是 v1 的 LSTM 重参数化，骨干冻结；
- **P-Tuning v2**：每层 P 个前缀，不重参数化，骨干冻结；
- **全量微调**：骨干与分类头一起训练。

两种提示方法用同样的 P = 16。每种方法在每个任务上用 3 个随机种子（种子决定抽到哪些样本和初始权重；同一个种子下三种方法看到同样的样本），按验证集（准确率或实体 F1）早停。学习率对每个任务、每种方法从几个候选中按第一个种子的验证结果选出；prompt_len 扫描和重参数化的运行沿用 v2 选出的学习率。

旁边放两种不用神经网络的传统方法作参照：

- 情感分类用字符 n-gram 的朴素贝叶斯，一次用全部训练集，一次用每个种子同样的训练样本；
- NER 用条件随机场（CRF，`data.train_crf_tagger`）：每个字的特征是它自己、左右各两个字和它与邻字组成的两个二元组，CRF 再学习标签之间的转移。它用每个种子同样的训练句子。

完整实验有 60 次训练（其中 18 次用来选学习率），在 2 核 CPU 上约两个小时，所以由脚本 `python scripts/sweep_ptuning_v2.py --workers 2` 运行，结果存为 `docs/results/ptuning_v2_comparison.json`（含随机种子、机器与日期），这里读取。把 `RUN_SWEEP` 改成 `True`，或者在第 2 节换了模型，下面的单元会用当前模型重新跑一遍，结果另存为带时间戳的新文件，不覆盖仓库里的结果。
"""),
    code("""
# NBVAL_IGNORE_OUTPUT
RUN_SWEEP = False
SWEEP_FILE = Path(peft_lessons.__file__).resolve().parents[1] / "docs" / "results" / "ptuning_v2_comparison.json"
saved = sweeps.load_results(SWEEP_FILE) if SWEEP_FILE.is_file() else None
stale = saved is None or saved["settings"]["models"] != [BERT_MODEL] or set(saved["settings"]["tasks"]) != set(sweeps.V2_TASKS)
if RUN_SWEEP or stale:
    comparison = sweeps.ptuning_v2_comparison(BERT_MODEL, download=DOWNLOAD, workers=2)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    print("结果已保存到", sweeps.save_results(comparison, Path(f"ptuning_v2_comparison_{stamp}.json")))
else:
    comparison = saved
settings = comparison["settings"]
machine = comparison["machine"]
TASKS = list(sweeps.V2_TASKS)
V2, V1, FULL = sweeps.V2_FAMILIES
TASK_NAMES = {"sentiment": "情感分类", "ner": "NER"}
METRIC_NAMES = {"sentiment": "测试准确率", "ner": "测试集实体 F1"}
task_runs = {task: [run for run in comparison["runs"] if run["task"] == task] for task in TASKS}
print(f"实验日期 {comparison['created'][:10]}，{len(comparison['runs'])} 次训练，用时 {comparison['minutes']} 分钟；"
      f"机器：{machine['cpu']}，{machine['cores']} 核，TensorFlow {machine['tensorflow']}")
test_size = "全部" if settings["test_size"] is None else f"前 {settings['test_size']:,} 条"
print(f"随机种子 {settings['seeds']}，每个任务训练 {settings['train_size']:,} 个样本，验证 {settings['validation_size']:,} 个，"
      f"测试集用{test_size}；最多 {settings['epochs']} 轮，耐心 {settings['patience']} 轮；max_length {settings['max_length']}")
print(f"方法对比的 prompt_len = {settings['prompt_len']}，v2 的 prompt_len 扫描 {settings['prompt_lens']}")
for task in TASKS:
    for family, choice in settings["learning_rates"][task].items():
        tried = "，".join(f"{rate} → 验证 {score:.3f}" for rate, score in choice["candidates"].items())
        print(f"{TASK_NAMES[task]} · {family} 的学习率：{tried}；选 {choice['chosen']:g}")
        grid = [float(rate) for rate in choice["candidates"]]
        if len(grid) > 1 and choice["chosen"] == max(grid):
            print("    注意：选中的是候选里最大的学习率，更大的值也许更好，但实验没有试。")
        elif len(grid) > 1 and choice["chosen"] == min(grid):
            print("    注意：选中的是候选里最小的学习率，更小的值也许更好，但实验没有试。")
"""),
    md("""
`sweeps.summarize` 按方法分组，算测试结果的均值和标准差（样本标准差）。情感分类读准确率；NER 的每次运行存的是 `{"overall": {...}, "PER": {...}, ...}` 这样的嵌套结果，用 `metric="overall.f1"` 读全部实体的 F1，`metric="PER.f1"` 读人名的 F1。
"""),
    code("""
# NBVAL_IGNORE_OUTPUT
def summary_by(task, by="method", runs=None, entity_type="overall"):
    runs = task_runs[task] if runs is None else runs
    metric = "accuracy" if task == "sentiment" else f"{entity_type}.f1"
    rows = sweeps.summarize(runs, by=(by,), metric=metric)
    return {row[by]: row for row in rows}


def shown(row):
    return f"{row['mean']:.3f} ± {row['std']:.3f}"


def relation(a_name, a, b_name, b):
    verdict = sweeps.compare_means(a, b)
    space = " " if b_name[0].isascii() else ""
    if verdict == "在噪声范围内":
        return f"{a_name}（{shown(a)}）与{space}{b_name}（{shown(b)}）的差距在噪声范围内"
    return f"{a_name}（{shown(a)}）{verdict}{space}{b_name}（{shown(b)}）"


backbone_params = ptuning_v2.prefix_summary(language_model, 1)["backbone_params"]
label_counts = {"sentiment": 2, "ner": len(data.NER_TAGS)}


def trainable_percent(run):
    # 全部参数 = 骨干 + 分类头 + 提示编码器。提示方法训练编码器和分类头，全量微调没有编码器。
    head = (config.hidden_size + 1) * label_counts[run["task"]]
    encoder = 0 if run["family"] == FULL else run["trainable_params"] - head
    return 100 * run["trainable_params"] / (backbone_params + head + encoder)


method_rows = {task: summary_by(task) for task in TASKS}
# 传统方法：朴素贝叶斯（情感分类）和 CRF（NER）。用同样训练样本的那一种每个种子一次，给出均值 ± 标准差。
reference_rows = {task: summary_by(task, runs=[ref for ref in comparison["references"] if ref["task"] == task])
                  for task in TASKS}
BAYES_FULL, BAYES_SAME, CRF = "朴素贝叶斯（全部训练集）", "朴素贝叶斯（同样的训练样本）", "CRF（同样的训练样本）"
TRADITIONAL = {"sentiment": BAYES_SAME, "ner": CRF}
rows = []
for task in TASKS:
    for method in (V1, V2, FULL):
        row = method_rows[task][method]
        runs = [run for run in task_runs[task] if run["method"] == method]
        rows.append([TASK_NAMES[task], method, f"{shown(row)}（{row['n']} 个种子）", f"{runs[0]['trainable_params']:,}",
                     f"{trainable_percent(runs[0]):.3g}%", f"{np.mean([run['best_epoch'] for run in runs]):.1f}",
                     f"{np.mean([run['seconds'] for run in runs]):.0f}"])
    for method, row in reference_rows[task].items():
        seeds_note = f"{row['n']} 个种子" if row["n"] > 1 else "单次"
        rows.append([TASK_NAMES[task], method, f"{shown(row)}（{seeds_note}）", "-", "-", "-", "-"])
print("情感分类报告测试准确率，NER 报告测试集实体 F1（全部实体的 micro 平均）；均值 ± 标准差")
print(format_table(["任务", "方法", "测试结果", "可训练参数", "可训练 %", "平均最好轮次", "平均秒数"], rows))
"""),
    md("""
NER 按实体类型拆开看。测试集里机构名（ORG）远少于人名和地名，它的 F1 波动也会大一些。
"""),
    code("""
# NBVAL_IGNORE_OUTPUT
ENTITY_TYPES = ptuning_v2.NER_ENTITY_TYPES
type_rows = {kind: summary_by("ner", entity_type=kind) for kind in ("overall", *ENTITY_TYPES)}
supports = task_runs["ner"][0]["test"]
crf_refs = [ref for ref in comparison["references"] if ref["method"] == CRF]
crf_types = {kind: summary_by("ner", runs=crf_refs, entity_type=kind)[CRF] for kind in ("overall", *ENTITY_TYPES)}
rows = [[method, *[shown(type_rows[kind][method]) for kind in ("overall", *ENTITY_TYPES)]] for method in (V1, V2, FULL)]
rows.append([CRF, *[shown(crf_types[kind]) for kind in ("overall", *ENTITY_TYPES)]])
header = ["方法", f"全部（{supports['overall']['support']:,} 个）",
          *[f"{kind}（{supports[kind]['support']:,} 个）" for kind in ENTITY_TYPES]]
print("NER 测试集实体 F1，均值 ± 标准差；括号里是测试集中该类实体的个数")
print(format_table(header, rows))

fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
colors = {V1: "tab:orange", V2: "tab:red", FULL: "tab:blue"}
methods = (V1, V2, FULL)
sentiment_rows = method_rows["sentiment"]
axes[0].bar(range(3), [sentiment_rows[m]["mean"] for m in methods], yerr=[sentiment_rows[m]["std"] for m in methods],
            capsize=4, color=[colors[m] for m in methods])
axes[0].axhline(reference_rows["sentiment"][BAYES_SAME]["mean"], color="black", linestyle=":", label=BAYES_SAME)
axes[0].set_xticks(range(3), methods)
axes[0].set_ylabel(METRIC_NAMES["sentiment"])
axes[0].set_title(TASK_NAMES["sentiment"])
axes[0].legend(fontsize=8, loc="lower right")
kinds = ("overall", *ENTITY_TYPES)
x_ticks = np.arange(len(kinds))
for offset, method in zip((-0.25, 0.0, 0.25), methods):
    axes[1].bar(x_ticks + offset, [type_rows[kind][method]["mean"] for kind in kinds], width=0.25,
                yerr=[type_rows[kind][method]["std"] for kind in kinds], capsize=3, color=colors[method], label=method)
axes[1].plot(x_ticks, [crf_types[kind]["mean"] for kind in kinds], "k_", markersize=40, markeredgewidth=2,
             label=CRF)
axes[1].set_xticks(x_ticks, ["全部实体", *ENTITY_TYPES])
axes[1].set_ylabel(METRIC_NAMES["ner"])
axes[1].set_title(f"{TASK_NAMES['ner']}，按实体类型")
axes[1].legend(fontsize=8)
fig.suptitle(f"{BERT_MODEL}：v1 式输入层提示、P-Tuning v2 与全量微调（{len(settings['seeds'])} 个种子的均值 ± 标准差）")
fig.tight_layout()
plt.show()
"""),
    md("""
下面的结论由上面的数字生成。判断“明显高于 / 低于”的规则与前几课相同：两个均值之差要超过两者标准差之和，否则算作在噪声范围内（`sweeps.compare_means`）。

两个任务的指标尺度不同（随便猜的分类准确率约为 0.5，全标 `O` 的 NER F1 是 0），直接比差值没有意义。为了粗略比较“v1 在哪个任务上落后得更多”，再算一个比例：v1 拿到了全量微调超出平凡基线那部分的多少。情感分类的平凡基线是全判成多数类的准确率，NER 的是 0。这个比例没有计入种子间的波动，只作参考。
"""),
    code("""
# NBVAL_IGNORE_OUTPUT
test_labels = np.asarray(sentiment.test.labels if settings["test_size"] is None else
                         data.sample_split(sentiment.test, settings["test_size"], seed=0).labels)
majority = max(test_labels.mean(), 1 - test_labels.mean())
floors = {"sentiment": majority, "ner": 0.0}


def recovered_share(task):
    v1, full = method_rows[task][V1]["mean"], method_rows[task][FULL]["mean"]
    room = full - floors[task]
    return (v1 - floors[task]) / room if room > 0 else float("nan")


for task in TASKS:
    rows = method_rows[task]
    print(f"【{TASK_NAMES[task]}，{METRIC_NAMES[task]}】")
    print("  " + relation("v1 式", rows[V1], "全量微调", rows[FULL]))
    print("  " + relation("v2", rows[V2], "v1 式", rows[V1]))
    print("  " + relation("v2", rows[V2], "全量微调", rows[FULL]))
    traditional = reference_rows[task][TRADITIONAL[task]]
    print("  " + relation("全量微调", rows[FULL], TRADITIONAL[task], traditional))
    if task == "sentiment":
        print(f"  全判成多数类的准确率：{majority:.3f}")
    share = recovered_share(task)
    print(f"  v1 拿到了全量微调超出平凡基线部分的 {share:.0%}" if np.isfinite(share) else
          "  全量微调没有超过平凡基线，算不出 v1 拿到了其中多少")

for kind in ENTITY_TYPES:
    rows = type_rows[kind]
    print(f"NER · {kind}：" + relation("v2", rows[V2], "v1 式", rows[V1]) + "；" + relation("v2", rows[V2], "全量微调", rows[FULL]))
"""),
    md("""
把上面的数字归结成正文关心的两个问题：v1 在序列标注上是否明显弱？v2 有没有补上差距？
"""),
    code("""
# NBVAL_IGNORE_OUTPUT
ner_rows, sentiment_rows = method_rows["ner"], method_rows["sentiment"]
v1_on_ner = sweeps.compare_means(ner_rows[V1], ner_rows[FULL])
v1_on_sentiment = sweeps.compare_means(sentiment_rows[V1], sentiment_rows[FULL])
share_ner, share_sentiment = recovered_share("ner"), recovered_share("sentiment")
if v1_on_ner == "低于":
    answer = "是：v1 式输入层提示在 NER 上明显低于全量微调"
    if v1_on_sentiment == "低于":
        answer += "，在情感分类上同样明显低于全量微调"
    else:
        answer += "，而在情感分类上没有明显低于全量微调，弱点集中在序列标注上"
else:
    answer = f"否：在我们的模型上，v1 式输入层提示在 NER 上没有明显低于全量微调（{v1_on_ner}）"
print(f"1. v1 在序列标注上弱吗？{answer}。")
if not (np.isfinite(share_ner) and np.isfinite(share_sentiment)):
    print("   全量微调在某个任务上没有超过平凡基线，无法比较 v1 在哪个任务上落后得更多。")
elif share_ner < share_sentiment:
    print(f"   粗略地看，v1 在 NER 上只拿到全量微调超出平凡基线部分的 {share_ner:.0%}，"
          f"在情感分类上拿到 {share_sentiment:.0%}，在 NER 上落后得更多。")
else:
    print(f"   粗略地看，v1 在 NER 上拿到全量微调超出平凡基线部分的 {share_ner:.0%}，"
          f"在情感分类上拿到 {share_sentiment:.0%}，在 NER 上并没有落后得更多。")

v2_vs_full = sweeps.compare_means(ner_rows[V2], ner_rows[FULL])
if v2_vs_full == "在噪声范围内":
    answer = "是：v2 在 NER 上与全量微调的差距在噪声范围内"
elif v2_vs_full == "高于":
    answer = "是，而且更多：v2 在 NER 上明显高于全量微调"
else:
    gap = ner_rows[FULL]["mean"] - ner_rows[V1]["mean"]
    answer = "没有完全补上：v2 在 NER 上仍明显低于全量微调"
    closed = (ner_rows[V2]["mean"] - ner_rows[V1]["mean"]) / gap if gap > 0 else 0.0
    if closed > 0:
        answer += f"，按均值算它补上了 v1 与全量微调之间差距的 {closed:.0%}"
    else:
        answer += "，按均值算也没有比 v1 更好"
print(f"2. v2 补上了差距吗？{answer}。")
print("   " + relation("v2", ner_rows[V2], "v1 式", ner_rows[V1]) + "。")
print(f"   可训练参数：v2 占全部参数的 {trainable_percent(next(r for r in task_runs['ner'] if r['method'] == V2)):.3g}%，"
      f"全量微调是 100%。")
crf_row = reference_rows["ner"][CRF]
best_neural = max((V1, V2, FULL), key=lambda method: ner_rows[method]["mean"])
print(f"3. 传统方法：CRF 在同样的句子上得到 {shown(crf_row)}，"
      + ("高于" if crf_row["mean"] > ner_rows[best_neural]["mean"] else "不高于")
      + f"最好的神经网络方法（{best_neural}，{shown(ner_rows[best_neural])}）。")
if crf_row["mean"] > 0:
    full_share, v2_share = ner_rows[FULL]["mean"] / crf_row["mean"], ner_rows[V2]["mean"] / crf_row["mean"]
    print(f"   全量微调的 F1 是 CRF 的 {full_share:.0%}，v2 是 CRF 的 {v2_share:.0%}。")
    if full_share < 0.5:
        print("   连全量微调都不到 CRF 的一半：在这么少的句子上，这个小模型还比不上手工特征加 CRF。"
              "第 1、2 条比较的是几种神经网络方法之间的差距，要放在这个背景下读。")
    else:
        print("   全量微调达到了 CRF 的一半以上，神经网络方法之间的差距有参考意义。")
"""),
    md("""
读这些结论时要记住：论文里的模型有几亿到上百亿参数，充分预训练过；我们的小模型只有几百万参数、预训练很短，冻结的骨干里可供“唤醒”的知识有限。上面的结论只说明这个模型、这些样本、这几个种子上的情况。

骨干到底学会了多少？`scripts/evaluate_pretrained.py` 量过课程自带模型的掩码语言模型：把一些字遮住，看模型能猜对多少，并与“永远猜最常见的字”（unigram）比较。
"""),
    code("""
# NBVAL_IGNORE_OUTPUT
EVALUATION_FILE = SWEEP_FILE.with_name(f"{BERT_MODEL}.json")
if EVALUATION_FILE.is_file():
    evaluation = json.loads(EVALUATION_FILE.read_text(encoding="utf-8"))["language_model"]
    for corpus, name in (("reviews", "评论"), ("news", "人民日报")):
        scores = evaluation[corpus]
        print(f"{name}：被遮住的字猜对 {scores['masked_accuracy']:.1%}，按字频猜对 {scores['unigram_accuracy']:.1%}")
    gain = max(evaluation[corpus]["masked_accuracy"] - evaluation[corpus]["unigram_accuracy"] for corpus in evaluation)
    if gain < 0.05:
        print(f"{BERT_MODEL} 比按字频猜最多只高 {gain:.1%}：它的预训练很浅，冻结的骨干能提供的上下文知识很少。"
              "只训练提示或前缀的方法在这样的骨干上吃亏最大，全量微调可以改写骨干，传统方法则完全不依赖它。")
    else:
        print(f"{BERT_MODEL} 比按字频猜最多高 {gain:.1%}：它的预训练学到了一些上下文知识。")
else:
    print(f"没有 {EVALUATION_FILE.name}：{BERT_MODEL} 的掩码语言模型没有在这里评估过。")
"""),
    md("""
## 9. prompt_len 扫描

正文说 prompt_len 是 v2 最重要的超参数，而且不同任务偏好不同：简单的分类任务偏好短前缀（通常小于 20），序列标注这类复杂任务偏好长前缀（约 100）。下面是 v2（不重参数化）在两个任务上、各个 prompt_len 下的结果。我们的扫描没有 100 这一点，判断时把 P ≥ 64 算作“长前缀”。
"""),
    code("""
# NBVAL_IGNORE_OUTPUT
def length_rows(task):
    runs = [run for run in task_runs[task] if run["family"] == V2 and not run["reparameterization"]]
    return dict(sorted(summary_by(task, by="prompt_len", runs=runs).items()))


by_length = {task: length_rows(task) for task in TASKS}
fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
for ax, task, color in zip(axes, TASKS, ("tab:red", "tab:purple")):
    lengths = list(by_length[task])
    ax.errorbar(lengths, [by_length[task][p]["mean"] for p in lengths], yerr=[by_length[task][p]["std"] for p in lengths],
                marker="o", capsize=4, color=color, label="P-Tuning v2")
    ax.axhline(method_rows[task][FULL]["mean"], color="tab:blue", linestyle="--", label="全量微调")
    ax.axhline(method_rows[task][V1]["mean"], color="tab:orange", linestyle=":",
               label=f"v1 式（P = {settings['prompt_len']}）")
    ax.set_xscale("log", base=2)
    ax.set_xticks(lengths, [str(p) for p in lengths])
    ax.set_xlabel("prompt_len（对数坐标）")
    ax.set_ylabel(METRIC_NAMES[task])
    ax.set_title(f"{TASK_NAMES[task]}")
    ax.legend(fontsize=8)
fig.suptitle(f"{BERT_MODEL}：P-Tuning v2 的前缀长度（{len(settings['seeds'])} 个种子的均值 ± 标准差）")
fig.tight_layout()
plt.show()
print(format_table(["prompt_len", *[f"{TASK_NAMES[task]}（{METRIC_NAMES[task]}）" for task in TASKS]],
                   [[p, *[shown(by_length[task][p]) if p in by_length[task] else "-" for task in TASKS]]
                    for p in sorted(set(by_length["sentiment"]) | set(by_length["ner"]))]))
"""),
    code("""
# NBVAL_IGNORE_OUTPUT
CHAPTER_PREFERENCE = {
    "sentiment": ("简单的分类任务偏好短前缀（P < 20）", lambda p: p < 20),
    "ner": ("序列标注偏好长前缀（约 100，这里按 P ≥ 64 算）", lambda p: p >= 64),
}
for task in TASKS:
    rows = by_length[task]
    best = max(rows, key=lambda p: rows[p]["mean"])
    others = [p for p in rows if p != best]
    tied = [p for p in others if sweeps.compare_means(rows[best], rows[p]) == "在噪声范围内"]
    beaten = [p for p in others if p not in tied]
    wording, preferred = CHAPTER_PREFERENCE[task]
    print(f"【{TASK_NAMES[task]}】均值最高的是 P = {best}（{shown(rows[best])}）。")
    if tied:
        beaten_text = f"它明显高于 P = {beaten}，" if beaten else "它没有明显高于任何一个长度，"
        print(f"  {beaten_text}与 P = {tied} 的差距在噪声范围内：这些长度分不出高下。")
    else:
        print(f"  它明显高于其余所有长度 {others}，领先超出了噪声。")
    leaders = [best, *tied]
    if all(preferred(p) for p in leaders):
        print(f"  与正文“{wording}”的说法一致。")
    elif not any(preferred(p) for p in leaders):
        print(f"  与正文“{wording}”的说法不一致：表现最好的长度都不在这个范围里。")
    else:
        print(f"  既不支持也不否定正文“{wording}”的说法：与最高者持平的长度里，"
              "有的在这个范围里，有的不在。")
"""),
    md("""
## 10. 重参数化：开与关

v1 默认用 LSTM + MLP 生成提示；v2 的作者认为这一步对很多任务不必要，有时还有害，所以默认关掉。下面在同样的 P = 16、同样的学习率（为不重参数化的 v2 选出）下比较两者，再画出每次运行的训练损失。要注意：学习率是为“关”选的，“开”的那一组没有自己调学习率，这对它略为不利。
"""),
    code("""
# NBVAL_IGNORE_OUTPUT
REPARAMETERIZED = "P-Tuning v2（重参数化）"
rows = []
for task in TASKS:
    for method in (V2, REPARAMETERIZED):
        stats = method_rows[task][method]
        runs = [run for run in task_runs[task] if run["method"] == method]
        rows.append([TASK_NAMES[task], "开" if runs[0]["reparameterization"] else "关", shown(stats),
                     f"{runs[0]['trainable_params']:,}", f"{np.mean([run['best_epoch'] for run in runs]):.1f}",
                     f"{np.mean([run['seconds'] for run in runs]):.0f}"])
print(format_table(["任务", "重参数化", "测试结果", "训练时的可训练参数", "平均最好轮次", "平均秒数"], rows))
for task in TASKS:
    on, off = method_rows[task][REPARAMETERIZED], method_rows[task][V2]
    verdict = sweeps.compare_means(on, off)
    print(f"{TASK_NAMES[task]}：" + relation("重参数化", on, "不重参数化", off) + "。" + {
        "在噪声范围内": "看不出重参数化的好处，与正文“多数任务上不必要”的说法一致。",
        "低于": "重参数化反而更差，与正文“有时有害”的说法一致。",
        "高于": "在这个任务上重参数化有帮助，与 v2 默认关掉它的做法相反。",
    }[verdict])

fig, axes = plt.subplots(1, 2, figsize=(12, 4))
for ax, task in zip(axes, TASKS):
    for method, color in ((V2, "tab:red"), (REPARAMETERIZED, "tab:green")):
        legend_label = "重参数化" if method == REPARAMETERIZED else "不重参数化"
        for run in (run for run in task_runs[task] if run["method"] == method):
            ax.plot(range(1, len(run["loss"]) + 1), run["loss"], marker="o", color=color, alpha=0.7, label=legend_label)
            legend_label = None  # 每种做法在图例里只出现一次
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("轮次")
    ax.set_ylabel("训练损失")
    ax.set_title(f"{TASK_NAMES[task]}：每个种子一条线，画到早停为止")
    ax.legend()
fig.tight_layout()
plt.show()
"""),
    md("""
## 11. 亲手训练一个 NER 前缀

最后在 CPU 上亲手训练一次 v2 的 NER 前缀。为了让它在 2 核 CPU 上很快跑完，只用 300 个训练句子、2 轮、200 个验证句子和 300 个测试句子，学习率取第 8 节为 v2 在 NER 上选出的值。第 8 节的实验每个种子用的句子更多、最多训练 6 轮、在完整的测试集上打分（设置见那里的输出），所以这里的 F1 会低一些，只用来看流程。训练前后各拍一张骨干权重的快照，确认它一个数都没变。

同样的 300 个句子再训练一个 CRF 作对照，它在 CPU 上只要几秒。
"""),
        code("""
# NBVAL_IGNORE_OUTPUT
LIVE_PROMPT_LEN = PROMPT_LEN
LIVE_TRAIN_SIZE = 300
LIVE_EPOCHS = 2
LIVE_VALIDATION_SIZE = 200
LIVE_TEST_SIZE = 300
live_rate = settings["learning_rates"]["ner"][V2]["chosen"]
# ner.train 按语料顺序排列，前几百句都出自同几天的报道，所以随机抽句子
chosen = np.sort(np.random.default_rng(0).choice(len(ner.train), size=LIVE_TRAIN_SIZE, replace=False))
live_train = [ner.train[index] for index in chosen]
live_splits = (live_train, ner.validation[:LIVE_VALIDATION_SIZE], ner.test[:LIVE_TEST_SIZE])
live_model = load_llm(BERT_MODEL, download=DOWNLOAD)
before = [weight.numpy().copy() for weight in live_model.backbone.weights]
# 只训练几十步时，XLA 编译花的时间比省下的计算还多，所以关掉 jit_compile
live = ptuning_v2.train_prefix_ner(live_model, tokenizer, live_splits, prompt_len=LIVE_PROMPT_LEN, max_length=MAX_LENGTH,
                                   epochs=LIVE_EPOCHS, patience=LIVE_EPOCHS, learning_rate=live_rate,
                                   seed=0, jit_compile=False)
changed = sum(not np.array_equal(old, new.numpy()) for old, new in zip(before, live_model.backbone.weights))
counts = ptuning_v2.parameter_counts(live["model"])
print(f"学习率 {live_rate:g}，{LIVE_TRAIN_SIZE} 个句子，{LIVE_EPOCHS} 轮，用时 {live['seconds']:.0f} 秒；"
      f"每轮验证实体 F1：{[round(f1, 3) for f1 in live['history']['val_entity_f1']]}")
print(f"骨干的 {len(before)} 个权重张量中，训练后改变的有 {changed} 个")
print(f"可训练 {counts['trainable']:,} 个参数（提示编码器 {counts['prompt_encoder']:,}，分类头 {counts['head']:,}），"
      f"占全部 {counts['total']:,} 个的 {counts['trainable_percent']:.2f}%")
live_crf = data.train_crf_tagger(live_train)
live_test = ner.test[:LIVE_TEST_SIZE]
crf_test = ptuning_v2.entity_scores([tags for _, tags in live_test], live_crf.predict([chars for chars, _ in live_test]))
print(format_table(["实体类型", "v2 精确率", "v2 召回率", "v2 F1", "CRF F1", "真实实体数"],
                   [[kind, f"{score['precision']:.3f}", f"{score['recall']:.3f}", f"{score['f1']:.3f}",
                     f"{crf_test[kind]['f1']:.3f}", score["support"]] for kind, score in live["test"].items()]))
print(f"作为对照，第 8 节的 v2（{settings['train_size']:,} 个句子，{len(settings['seeds'])} 个种子）："
      f"测试集实体 F1 {shown(method_rows['ner'][V2])}")
"""),
    md("""
挑一句含有两类实体的测试句子，看两个模型给每个字的标签（✗ 表示与真实标签不同）。
"""),
    code("""
# NBVAL_IGNORE_OUTPUT
chars, tags = next((chars, tags) for chars, tags in ner.test[:LIVE_TEST_SIZE]
                   if 8 <= len(chars) <= 24 and len({tag[2:] for tag in tags if tag != "O"}) >= 2)
predicted_tags = ptuning_v2.predict_tags(live["model"], tokenizer, [chars], max_length=MAX_LENGTH)[0]
crf_tags = live_crf.predict([chars])[0]
print("句子：", "".join(chars))
print(format_table(["字", "真实标签", "v2 的预测", "CRF 的预测"],
                   [[char, truth, guess + ("" if guess == truth else " ✗"), crf + ("" if crf == truth else " ✗")]
                    for char, truth, guess, crf in zip(chars, tags, predicted_tags, crf_tags)]))
print("真实实体：", entity_text(chars, tags))
print("v2 找到的实体：", entity_text(chars, predicted_tags))
print("CRF 找到的实体：", entity_text(chars, crf_tags))
"""),
    md("""
## 12. 小结与练习

- P-Tuning v2 去掉了模板，在每一层注意力里接上 P 个可训练的 key 和 value；主干冻结，只训练前缀和一个线性分类头。同样的 P，可训练参数是 v1 提示向量的 2L 倍，而且前缀不占输入位置（第 3 节）。
- 提示编码器输出 $[P, 2LH]$，经过复制、切分、转置得到每层的 key 和 value；真实 token 的位置编号仍从 0 开始（第 4 节）。只改任意一层的前缀，输出都会变，骨干不参与训练（第 5 节）。
- NER 用实体级 F1 评价：类型和边界都对才算找对（第 7 节）。
- 第 8 到 10 节的结论由数字生成：v1 在序列标注上是否明显落后、v2 是否补上了差距、各任务偏好多长的前缀、重参数化有没有用，都以我们的小模型上量到的为准。

正文还提到多任务联合训练能提高 v2 的泛化能力，这里没有做这个实验。下一课的 LoRA 换了一个方向：不加前缀，直接用低秩矩阵修改权重。

### 练习

1. 在第 6 节的面板上把 prompt_len 从 16 拖到 64，分别在重参数化开和关时记下参数量。不重参数化时参数量翻了几倍？重参数化时呢？对照第 4 节的公式，说明哪一项随 P 变化、哪一项不变。
2. 在第 11 节把 `ptuning_v2.train_prefix_ner` 换成 `ptuning_v2.train_input_prompt_ner`（v1 式输入层提示，其余参数不变），比较实体 F1 和可训练参数。再把 `max_length` 设成 `config.max_positions`，读一读报错信息：为什么 v1 式提示会有这个限制，而 v2 没有？
3. 在第 11 节把 `LIVE_PROMPT_LEN` 改成 64 再训练一次，F1 变了多少？与第 9 节同一长度的均值 ± 标准差相比，一次运行的差别可信吗？
"""),
]

write_notebook(cells, TARGET)
