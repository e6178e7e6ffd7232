"""Write notebooks/02_p_tuning.ipynb (unexecuted) from the cells below.

Run `python tools/build_notebook_02.py`, then `tools/execute_notebook.sh 02_p_tuning.ipynb`.
The set-up cell and the notebook metadata are taken from notebook 01 so that every notebook
starts the same way.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from notebook_cells import ROOT, SETUP_SOURCE as setup_source, code, md, write_notebook  # noqa: E402

TARGET = ROOT / "notebooks" / "02_p_tuning.ipynb"

cells = [
    md(r"""
# 第 2 课：P-Tuning——让梯度替我们写提示

上一课的人工模板要靠人一个个去试，换个模型还得重来。P-Tuning（Liu 等 2021，*GPT Understands, Too*）换了个思路：模板里那些字进入模型后，本来就只是词嵌入层输出的一串向量。既然模型只看向量，那就不必从词表里挑字，直接把这几个向量当作参数，用反向传播去学。

这一课在真实的中文评论和两个小模型上把 P-Tuning 从头跑一遍：

- 第 3 节，离散的模板为什么难搜索；
- 第 4 节，提示编码器：伪 token → 嵌入 → 双向 LSTM → MLP，以及各部分的参数量；
- 第 5 节，伪 token 插在输入的哪些位置，GPT 与 BERT 各不相同，补齐（padding）之后位置和注意力掩码是否仍然正确；
- 第 6 节，模板小部件：拖动 s1、s2、s3，切换 GPT / BERT，实时看输入的排布和参数量；
- 第 7 节，小样本（k = 32、256）与全部训练集上的对比：人工提示零样本、冻结主干的 P-Tuning、解冻主干的 P-Tuning、分类头微调，以及 GPT 与 BERT 在 P-Tuning 下谁更好；
- 第 8 节，亲手训练一次冻结主干的 P-Tuning，确认主干一个权重都没变，再看学到的提示向量像不像真实的字；
- 第 9 节，重参数化 lstm / mlp / none 的训练曲线；
- 第 10 节，小结与练习。

带 `# NBVAL_CHECK_OUTPUT` 的单元输出是确定的，测试时逐字比对；其余单元的数字来自训练与打分，每次运行可能略有差别。文中的“正文”指本课程第 10 章的讲义（不在这个仓库里）；它转述的实验结论出自上面这篇 P-Tuning 论文。
"""),
    md("""
## 1. 运行环境

与前两课相同：缺少 `peft_lessons` 包时以可编辑模式安装，然后打印版本与计算设备。
"""),
    code(setup_source),
    md("""
## 2. 选择模型

默认使用课程自带的两个小模型，CPU 上整本 notebook 几分钟跑完。

> **在 Colab GPU 上换用真实模型**：把下面改成 `BERT_MODEL = "bert-base-chinese"`、`GPT_MODEL = "uer/gpt2-chinese-cluecorpussmall"`，并令 `DOWNLOAD = True`。后面的单元不用改；每个结果下面的结论由代码根据数字生成，换了模型，结论会跟着数字变。第 7 节的对比实验会针对新模型重新训练，在 GPU 上也要一段时间。
"""),
    code("""
BERT_MODEL = "tiny-bert-zh"
GPT_MODEL = "tiny-gpt-zh"
DOWNLOAD = False  # 换成 Hugging Face Hub 上的模型时设为 True
MAX_LENGTH = 64   # 伪 token、特殊 token 与评论合计最多占多少个位置
"""),
    code("""
# NBVAL_CHECK_OUTPUT
import matplotlib.pyplot as plt
import numpy as np

from peft_lessons import data, prompting, ptuning, sweeps
from peft_lessons.checkpoints import load_llm, load_tokenizer
from peft_lessons.models.config import ModelConfig
from peft_lessons.models.heads import build_language_model
from peft_lessons.plotting import format_table, setup_chinese_font
from peft_lessons.prompting import Verbalizer
from peft_lessons.training import count_params
from peft_lessons.widgets import PTuningTemplatePanel

setup_chinese_font()
sentiment = data.load_sentiment()
print(f"评论数据：训练 {len(sentiment.train):,} 条，验证 {len(sentiment.validation):,} 条，测试 {len(sentiment.test):,} 条")
"""),
    code("""
# NBVAL_IGNORE_OUTPUT
language_models = {name: load_llm(name, download=DOWNLOAD) for name in (BERT_MODEL, GPT_MODEL)}
tokenizers = {name: load_tokenizer(name, download=DOWNLOAD) for name in (BERT_MODEL, GPT_MODEL)}
for name, model in language_models.items():
    config = model.config
    print(f"{name}：{config.model_type}，{config.num_layers} 层，隐藏维度 H = {config.hidden_size}，"
          f"{model.count_params():,} 个参数")
"""),
    md(r"""
## 3. 离散的模板很难搜索

把人工模板写成一般形式：在评论 $\boldsymbol{X}$ 前后各放几个字 $P_1,\dots,P_m$，标签词 $\boldsymbol{Y}$ 在最后。找模板就是在词表 $V$ 里挑这 $m$ 个字，让语言模型在标签词上的损失最小：

$$\min_{P_1,\dots,P_m \in V} \ \mathcal{L}\big(\mathcal{M}(P_1,\dots,P_i,\ \boldsymbol{X},\ P_{i+1},\dots,P_m),\ \boldsymbol{Y}\big)$$

这是一个离散优化问题：每个 $P_j$ 只能取词表里的某个字，字与字之间没有“沿梯度走一小步”的说法，只能枚举或者启发式地搜索。下面数一数可选的写法有多少种。
"""),
    code("""
# NBVAL_CHECK_OUTPUT
vocab_size = tokenizers[BERT_MODEL].vocab_size
print(f"{BERT_MODEL} 的词表有 {vocab_size:,} 个 token")
for m in (1, 3, 6):
    print(f"  模板里有 {m} 个待定的字：{vocab_size:,} 的 {m} 次方 ≈ {float(vocab_size) ** m:.1e} 种写法")
"""),
    md("""
但模型从来不直接“读”字。每个字先经过词嵌入层，变成一个 H 维向量，后面所有层看到的都只是这些向量。下面查出“好”和“差”两个字的词向量：它们就是嵌入矩阵里的两行。
"""),
    code("""
# NBVAL_CHECK_OUTPUT
gpt_model = language_models[GPT_MODEL]
gpt_tokenizer = tokenizers[GPT_MODEL]
embedding_matrix = np.asarray(gpt_model.backbone.token_embedding.embeddings)  # [V, H]
print(f"{GPT_MODEL} 的嵌入矩阵形状：{embedding_matrix.shape}（词表大小 V × 隐藏维度 H）")
for word in ("好", "差"):
    row = embedding_matrix[gpt_tokenizer.token_to_id[word]]
    print(f"“{word}” → 第 {gpt_tokenizer.token_to_id[word]} 行，前 4 个分量 {np.round(row[:4], 3)}，范数 {np.linalg.norm(row):.3f}")
"""),
    md("""
人工模板只能在这 V 行里挑；而在 H 维空间中，这 V 个点之外还有无穷多个向量，模型同样能“读”。**P-Tuning 的想法**是干脆不挑字：模板中每个位置放一个**伪 token**（pseudo token），它的向量不查嵌入矩阵，而是一个可训练的参数。模板是不是自然语言不再重要，离散搜索变成了连续优化，用普通的反向传播就能求解。
"""),
    md(r"""
## 4. 提示编码器

P-Tuning 的**模板**（template）是 2 到 3 个整数 $(s_1, s_2, s_3)$，表示每一段放几个伪 token，共 $s = s_1 + s_2 + s_3$ 个。伪 token 按 $0, 1, \dots, s-1$ 编号，经过**提示编码器**（prompt encoder）得到 $s$ 个 H 维向量 $h_1, \dots, h_s$：

1. 嵌入层 Embedding(s, H)：每个伪 token 查到自己的一行；
2. 两层双向 LSTM（每个方向 H/2 个单元，两个方向拼起来又是 H 维）：把 $s$ 个向量当作一个序列来加工；
3. 两层 MLP：Dense(H, ReLU)，再 Dense(H)。

$$h_{1..s} = \mathrm{MLP}\big(\mathrm{BiLSTM}(\mathrm{Embedding}(0, 1, \dots, s-1))\big) \in \mathbb{R}^{s \times H}$$

第 2、3 步叫**重参数化**（reparameterization）：训练的不是 $h_j$ 本身，而是生成它们的网络。论文作者给的理由有两条：LSTM 让相邻的伪 token 互相关联，更像自然语言中前后相关的字，而不是 $s$ 个互不相干的向量；实践中它让训练收敛更快、不容易困在局部最优。`peft_lessons.ptuning.PromptEncoder` 还提供 `"mlp"`（去掉 LSTM）和 `"none"`（只有嵌入层）两种做法，第 9 节拿它们对比。

下面用 GPT 的默认模板 (3, 3) 建一个编码器，看它的输出形状和每部分的参数量。
"""),
    code("""
# NBVAL_CHECK_OUTPUT
hidden = gpt_model.config.hidden_size
gpt_template = sweeps.PTUNING_TEMPLATES["gpt2"]
encoder = ptuning.PromptEncoder(gpt_template, hidden, "lstm")
prompts = encoder(training=False)
print(f"模板 {gpt_template}：{encoder.num_tokens} 个伪 token，编号 {list(range(encoder.num_tokens))}")
print(f"编码器输出形状 {tuple(prompts.shape)}：{encoder.num_tokens} 个伪 token，每个 {hidden} 维，与词向量同宽")
parts = [("嵌入层 Embedding(s, H)", encoder.embedding.weights)]
parts += [(f"第 {i + 1} 层双向 LSTM（每个方向 {hidden // 2} 个单元）", layer.weights)
          for i, layer in enumerate(encoder.lstm_layers)]
parts += [("MLP 第 1 层 Dense(H, ReLU)", encoder.mlp_hidden.weights), ("MLP 第 2 层 Dense(H)", encoder.mlp_output.weights)]
rows = [[name, f"{count_params(weights):,}"] for name, weights in parts]
rows.append(["合计", f"{count_params(encoder.weights):,}"])
print(format_table(["部分", "参数量"], rows))
formula = ptuning.prompt_encoder_params(gpt_template, hidden, "lstm")
print(f"按公式计算（ptuning.prompt_encoder_params）：{formula:,}，与实际建出的层" +
      ("一致" if formula == count_params(encoder.weights) else "不一致"))
"""),
    md("""
正文说 P-Tuning 要优化的参数“大约只有整个模型的 0.01%”。这个比例指的是什么？下面分别数三样东西：训练时的整个提示编码器（三种重参数化），以及训练结束后真正需要保存的 $s \\times H$ 个提示向量（编码器只在训练时用，训练完把它的输出存下来即可，推理时不再需要 LSTM 和 MLP）。除了两个小模型，再按 `bert-base-chinese` 的结构（12 层，H = 768，词表 21,128）建一个随机初始化的模型来数参数，不下载任何权重。
"""),
    code("""
# NBVAL_CHECK_OUTPUT
BERT_BASE_SHAPE = ModelConfig("bert", vocab_size=21128, hidden_size=768, num_layers=12, num_heads=12,
                              intermediate_size=3072, max_positions=512)
backbones = {name: (model.config.hidden_size, model.count_params()) for name, model in language_models.items()}
backbones["bert-base-chinese 的结构"] = (768, build_language_model(BERT_BASE_SHAPE).count_params())
template = (3, 3)


def percent(part, whole):
    share = 100 * part / whole
    return f"{share:.1f}%" if share >= 1 else f"{share:.2g}%"


rows = []
for name, (width, model_params) in backbones.items():
    row = [name, width, f"{model_params:,}"]
    for reparameterization in ptuning.REPARAMETERIZATIONS:
        count = ptuning.prompt_encoder_params(template, width, reparameterization)
        row.append(f"{count:,}（{percent(count, model_params)}）")
    stored = sum(template) * width
    row.append(f"{stored:,}（{percent(stored, model_params)}）")
    rows.append(row)
print(f"模板 {template}，括号里是占语言模型参数的百分比")
print(format_table(["语言模型", "H", "参数量", "编码器 lstm", "编码器 mlp", "编码器 none", "保存的 s×H 个向量"], rows))
"""),
    code("""
# NBVAL_IGNORE_OUTPUT
tiny_share = {name: 100 * ptuning.prompt_encoder_params(template, width, "lstm") / params
              for name, (width, params) in backbones.items()}
base_name = "bert-base-chinese 的结构"
stored_share = 100 * sum(template) * 768 / backbones[base_name][1]
print(f"带 LSTM 的编码器：在 {GPT_MODEL} 上占 {tiny_share[GPT_MODEL]:.1f}%，在 {BERT_MODEL} 上占 {tiny_share[BERT_MODEL]:.1f}%，"
      f"在 bert-base 大小的模型上占 {tiny_share[base_name]:.1f}%。")
print(f"训练后只保存 s×H 个提示向量时，bert-base 大小的模型上只占 {stored_share:.2g}%" + (
    "，这才是正文“约 0.01%”这个量级所说的部分。" if stored_share < 0.05 else "。"))
"""),
    md("""
这张表说明两件事：

- 编码器的 LSTM 和 MLP 的参数量大致随 $H^2$ 增长，与模型有多少层无关。我们的小模型层数少、H 小，编码器相对于模型就显得很大；在 bert-base 这样的模型上，它的占比小得多。
- 训练时要更新的是整个编码器；训练完成后只需保存 $s \\times H$ 个数，这部分在 bert-base 大小的模型上不到万分之一。说 P-Tuning 参数高效，主要指的是要存下来、随任务切换的东西很少，而训练阶段的开销要看编码器有多大。
"""),
    md("""
## 5. 伪 token 插在哪里

编码器的 $s$ 个向量要按模板插进输入序列。两种模型的做法不同：

- **GPT**（从左到右预测下一个 token）：模板 $(s_1, s_2)$，输入是 `[CLS] P×s1 评论 P×s2`，最后一个位置的输出预测下一个 token，也就是标签词。GPT 看不到右边，所以答案只能在末尾，不能再放第三段伪 token。
- **BERT**（双向，预测 `[MASK]`）：模板 $(s_1, s_2, s_3)$，输入是 `[CLS] P×s1 评论 P×s2 [MASK] P×s3 [SEP]`，标签词在 `[MASK]` 处由 MLM 头预测。

两种情况下标签都通过上一课的标签词（“好 / 差”）读出。在 `input_ids` 里，伪 token 的位置暂时填 `[UNK]` 占位，`prompt_index` 记下这里是第几个伪 token（其余位置为 -1），模型用它把编码器的输出换进去。伪 token 和真实的字一样占用位置编号，所以它们也占用模型的 `max_positions`。一批评论长短不一，短的在右边补 `[PAD]`，`attention_mask` 为 0 的位置不参与注意力。

下面用两条长短不同的评论看编码结果（为了打印得下，这里把长度限制为 20）。表中 `P0`、`P1` …… 是伪 token，`CLS`、`MASK`、`SEP`、`PAD` 是去掉方括号的特殊 token。
"""),
    code("""
# NBVAL_CHECK_OUTPUT
short_reviews = [text for text in sentiment.test.texts if 4 <= len(text) <= 9]
reviews = [short_reviews[0], next(text for text in short_reviews if len(text) != len(short_reviews[0]))]
bert_template = sweeps.PTUNING_TEMPLATES["bert"]
DEMO_LENGTH = 20


def show_encoding(name, template):
    tokenizer = tokenizers[name]
    model_type = language_models[name].config.model_type
    encoded = ptuning.encode_ptuning(tokenizer, reviews, template, model_type, max_length=DEMO_LENGTH)
    print(f"{name}（{model_type}），模板 {template}")
    for row, review in enumerate(reviews):
        tokens = tokenizer.convert_ids_to_tokens(encoded["input_ids"][row])
        tokens = [f"P{j}" if j >= 0 else token.strip("[]") for token, j in zip(tokens, encoded["prompt_index"][row])]
        position = encoded["answer_positions"][row]
        print(f"评论「{review}」，答案位置 {position}")
        print(format_table(["位置", *range(DEMO_LENGTH)],
                           [["token", *tokens], ["prompt_index", *encoded["prompt_index"][row]],
                            ["attention_mask", *encoded["attention_mask"][row]]]))
    print()


show_encoding(GPT_MODEL, gpt_template)
show_encoding(BERT_MODEL, bert_template)
"""),
    md("""
GPT 的答案位置是最后一个真实 token（这里是最后一个伪 token），它的输出预测的是下一个 token；BERT 的答案位置是 `[MASK]`。补齐不改变前面任何 token 的位置编号，所以真实 token 的位置与单独编码时相同。

接下来确认模型真的把编码器的输出放进了伪 token 的位置、别处仍是原来的词向量；再确认补齐不影响结果：同一条评论单独计算与放在一批补齐的评论里计算，标签 logits 应当相同。
"""),
    code("""
# NBVAL_CHECK_OUTPUT
verbalizers = {name: Verbalizer({0: "差", 1: "好"}, tokenizers[name]) for name in (BERT_MODEL, GPT_MODEL)}
for name, template in ((GPT_MODEL, gpt_template), (BERT_MODEL, bert_template)):
    model = ptuning.PTuningModel(language_models[name], template, verbalizers[name])
    model_type = model.model_type
    encoded = ptuning.encode_ptuning(tokenizers[name], reviews, template, model_type, max_length=DEMO_LENGTH)
    inputs_embeds = np.asarray(model.embed_inputs(encoded))
    token_embeds = np.asarray(language_models[name].backbone.embed_tokens(encoded["input_ids"]))
    prompt_rows = np.asarray(model.prompt_encoder(training=False))
    is_prompt = encoded["prompt_index"] >= 0
    prompt_gap = np.abs(inputs_embeds[is_prompt] - prompt_rows[encoded["prompt_index"][is_prompt]]).max()
    token_gap = np.abs(inputs_embeds[~is_prompt] - token_embeds[~is_prompt]).max()
    batch_logits = np.asarray(model(encoded))
    alone = ptuning.encode_ptuning(tokenizers[name], reviews[:1], template, model_type,
                                   max_length=int(encoded["attention_mask"][0].sum()))
    alone_logits = np.asarray(model(alone))
    same = np.allclose(batch_logits[0], alone_logits[0], atol=1e-4)
    print(f"{name}：伪 token 位置与编码器输出相差 {prompt_gap}，其余位置与词向量相差 {token_gap}；"
          f"补齐前后标签 logits {'一致' if same else '不一致'}（容差 1e-4）")
"""),
    md("""
## 6. 模板小部件

拖动滑块改变 s1、s2、s3，切换 GPT / BERT 和重参数化方式，下面会实时重画一条真实评论的输入排布（伪 token、评论、`[MASK]` 用不同颜色标出）、编码器的输出形状，以及编码器与语言模型的参数量。GPT 不能在答案之后放伪 token，所以选 GPT 时 s3 滑块不可用。把三个滑块都拖到 0 试试，面板会显示包里给出的错误提示。

面板不自己计算任何东西，它调用的是 `ptuning.template_summary`，与本 notebook 的单元是同一个函数。
"""),
    code("""
# NBVAL_IGNORE_OUTPUT
panel_models = {f"GPT（{GPT_MODEL}）": (gpt_model, gpt_tokenizer),
                f"BERT（{BERT_MODEL}）": (language_models[BERT_MODEL], tokenizers[BERT_MODEL])}
panel = PTuningTemplatePanel(panel_models, text=reviews[0], max_length=MAX_LENGTH)
panel.widget
"""),
    md("""
在没有前端的环境里（例如自动测试），也可以直接给控件赋值，再读面板算出的东西。运行下面的单元，上面的面板也会跟着变成 BERT、模板 (2, 2, 2)。
"""),
    code("""
# NBVAL_CHECK_OUTPUT
panel.architecture.value = f"BERT（{BERT_MODEL}）"
panel.s1.value, panel.s2.value, panel.s3.value = bert_template
summary = ptuning.template_summary(language_models[BERT_MODEL], tokenizers[BERT_MODEL], reviews[0], panel.template,
                                   panel.reparameterization.value, MAX_LENGTH)
print(f"面板上的模板：{panel.template}，重参数化：{panel.reparameterization.value}")
print("输入排布：", " ".join(token for token, _ in summary["layout"]))
print(f"编码器输出形状 {summary['encoder_output_shape']}，编码器 {summary['encoder_params']:,} 个参数，"
      f"约为语言模型的 {summary['encoder_percent']:.2f}%")
print("面板显示的参数量与这里一致：", f"{summary['encoder_params']:,}" in panel.output.value)
"""),
    md("""
## 7. 对比实验：小样本与全部训练集

正文把 P-Tuning 的训练分成两种情况：

- **标注数据少（小样本）**：冻结语言模型的全部参数，包括词嵌入层，只训练提示编码器；
- **标注数据多**：解冻语言模型，与提示编码器一起训练，否则可训练的参数太少，容易欠拟合。

我们在情感分类上把这两种做法与两个参照放在一起比较：不训练的人工提示零样本（上一课的模板“总之很__”，校准前后），以及最常见的微调方式——在语言模型上接一个**分类头**，整体微调。每种方法在 k = 32、256 条评论上各用 3 个随机种子（同一个 k 和种子下，各方法看到的是同一批评论），另外在全部训练集上各训练一次（1 轮，单次运行）。学习率：冻结主干时只有编码器在学，需要大得多的步长，它的学习率对每个模型从 1e-3、3e-3、1e-2 中按验证准确率选出；解冻主干的 P-Tuning 和分类头都更新整个语言模型，沿用上一课在验证集上为 PET 和分类头选出的 1e-4，这里没有重新挑选。k 条评论的训练按验证准确率早停；全部训练集只训练 1 轮。最右边的参照是用全部训练集的传统朴素贝叶斯。

GPT 的模板是 (3, 3)，BERT 的是 (2, 2, 2)：两者都是 6 个伪 token。

完整实验在 2 核 CPU 上要一个多小时，所以由脚本 `python scripts/sweep_ptuning.py` 运行，结果存为 `docs/results/ptuning_comparison.json`（含随机种子、机器与日期），这里读取。把 `RUN_SWEEP` 改成 `True`，或者在第 2 节换了模型，下面的单元会用当前模型重新跑一遍（结果另存为新文件，不覆盖仓库里的结果）。
"""),
    code("""
# NBVAL_IGNORE_OUTPUT
import datetime
from pathlib import Path

import peft_lessons

RUN_SWEEP = False
SWEEP_FILE = Path(peft_lessons.__file__).resolve().parents[1] / "docs" / "results" / "ptuning_comparison.json"

saved = sweeps.load_results(SWEEP_FILE) if SWEEP_FILE.is_file() else None
if RUN_SWEEP or saved is None or saved["settings"]["models"] != [BERT_MODEL, GPT_MODEL]:
    comparison = sweeps.ptuning_comparison([BERT_MODEL, GPT_MODEL], download=DOWNLOAD)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    print("结果已保存到", sweeps.save_results(comparison, Path(f"ptuning_comparison_{stamp}.json")))
else:
    comparison = saved
machine = comparison["machine"]
settings = comparison["settings"]
print(f"实验日期 {comparison['created'][:10]}，用时 {comparison['minutes']} 分钟（各模型的时间相加），"
      f"机器：{machine['cpu']}，{machine['cores']} 核，TensorFlow {machine['tensorflow']}")
print(f"k = {settings['ks']}，随机种子 {settings['seeds']}，全部训练集 {settings['full_train_size']:,} 条，"
      f"测试集 {settings['test_size']:,} 条")
for name, choice in settings["learning_rates"]["P-Tuning（冻结主干）"].items():
    tried = "，".join(f"{rate} → 验证 {accuracy:.3f}" for rate, accuracy in choice["candidates"].items())
    print(f"{name} 冻结主干的学习率：{tried}；选 {choice['chosen']:g}")
"""),
    code("""
# NBVAL_IGNORE_OUTPUT
METHODS = ["P-Tuning（冻结主干）", "P-Tuning（解冻主干）", "分类头"]
models = settings["models"]
ks = settings["ks"]
full_k = settings["full_train_size"]
summary = sweeps.summarize(comparison["runs"])


def lookup(name, method, k):
    return next(r for r in summary if r["model"] == name and r["method"] == method and r["k"] == k)


def reference(name, method):
    return next(r for r in comparison["references"] if r["model"] == name and r["method"] == method)


rows = []
for name in models:
    for method in METHODS:
        row = [name, method]
        for k in ks:
            cell = lookup(name, method, k)
            row.append(f"{cell['mean']:.3f} ± {cell['std']:.3f}")
        row.append(f"{lookup(name, method, full_k)['mean']:.3f}")
        runs = [r for r in comparison["runs"] if r["model"] == name and r["method"] == method]
        row.append(f"{runs[0]['trainable_params']:,}")
        rows.append(row)
    for method in ("人工提示零样本", "人工提示零样本（校准后）"):
        rows.append([name, method] + ["-"] * len(ks) + [f"{reference(name, method)['test']['accuracy']:.3f}", "0"])
bayes = reference("-", "朴素贝叶斯（全部训练集）")
rows.append(["-", "朴素贝叶斯", *["-"] * len(ks), f"{bayes['test']['accuracy']:.3f}", "-"])
header = ["模型", "方法", *[f"k={k}（3 个种子）" for k in ks], f"全部 {full_k:,} 条（单次）", "可训练参数"]
print("测试准确率（均值 ± 标准差）；零样本不训练，写在“全部”一列")
print(format_table(header, rows))
"""),
    code("""
# NBVAL_IGNORE_OUTPUT
colors = {"P-Tuning（冻结主干）": "tab:red", "P-Tuning（解冻主干）": "tab:purple", "分类头": "tab:blue"}
x_positions = list(range(len(ks) + 1))
x_labels = [f"k={k}" for k in ks] + [f"全部\\n{full_k:,}"]
fig, axes = plt.subplots(1, len(models), figsize=(5.8 * len(models), 4.4), sharey=True, squeeze=False)
for ax, name in zip(axes[0], models):
    for offset, method in zip((-0.08, 0.0, 0.08), METHODS):
        cells = [lookup(name, method, k) for k in [*ks, full_k]]
        ax.errorbar([x + offset for x in x_positions], [c["mean"] for c in cells], yerr=[c["std"] for c in cells],
                    marker="o", capsize=4, color=colors[method], label=method)
    zero = reference(name, "人工提示零样本（校准后）")["test"]["accuracy"]
    ax.axhline(zero, color="tab:orange", linestyle="--", label="人工提示零样本（校准后）")
    ax.axhline(bayes["test"]["accuracy"], color="black", linestyle=":", label="朴素贝叶斯（全部训练集）")
    ax.set_xticks(x_positions, x_labels)
    ax.set_xlabel("训练样本数")
    ax.set_title(name)
axes[0, 0].set_ylabel("测试准确率")
axes[0, -1].legend(fontsize=8, loc="upper left")
fig.suptitle("情感分类：P-Tuning 与分类头（k 条时为 3 个种子的均值 ± 标准差，全部训练集为单次运行）")
fig.tight_layout()
plt.show()
"""),
    md("""
下面的结论由上面的数字生成。判断“明显高于 / 低于”的规则与上一课相同：两个均值之差要超过两者标准差之和，否则算作在噪声范围内。另一个参照是“全判成多数类”：把所有评论都判成测试集里较多的那一类，就有这个准确率；高不过它的方法等于什么都没学会。全部训练集上每种方法只跑了一次（1 轮），没有标准差，只有差距远大于小样本时种子间的波动才提一句。
"""),
    code("""
# NBVAL_IGNORE_OUTPUT
def relation(a, b, b_name):
    verdict = sweeps.compare_means(a, b)
    b_text = f"{b_name}（{b['mean']:.3f} ± {b['std']:.3f}）"
    return f"与{b_text}的差距在噪声范围内" if verdict == "在噪声范围内" else f"{verdict}{b_text}"


frozen, unfrozen, head = METHODS
positive_share = sentiment.test.labels.mean()
majority = max(positive_share, 1 - positive_share)
print(f"全判成多数类（{'正面' if positive_share > 0.5 else '负面'}）的准确率：{majority:.3f}")
for name in models:
    zero = reference(name, "人工提示零样本（校准后）")["test"]["accuracy"]
    print(f"【{name}】人工提示零样本（校准后）{zero:.3f}")
    for k in ks:
        a, b, c = (lookup(name, method, k) for method in METHODS)
        print(f"  k={k:>4}：冻结主干 {a['mean']:.3f} ± {a['std']:.3f}，{relation(a, c, '分类头')}；"
              f"解冻主干 {b['mean']:.3f} ± {b['std']:.3f}，{relation(b, c, '分类头')}")
        floor = max(zero, majority)
        above = a["mean"] - a["std"] > floor
        print(f"          冻结主干{'高于' if above else '没有明显高于'}零样本与“全判成多数类”中较高的那个（{floor:.3f}）")
    full = {method: lookup(name, method, full_k)["mean"] for method in METHODS}
    best = max(full, key=full.get)
    print("  全部训练集（单次）：" + "，".join(f"{m} {v:.3f}" for m, v in full.items()))
    gap = full[unfrozen] - full[frozen]
    seed_noise = max(lookup(name, method, k)["std"] for method in METHODS for k in ks)
    print(f"  数据充足时，解冻主干比冻结主干高 {gap:+.3f}" + (
        f"，远大于小样本时种子间最大的标准差 {seed_noise:.3f}：只训练 6 个提示向量远远不够，"
        "这与正文“数据多时应解冻”的建议一致。" if gap > 2 * seed_noise else
        f"，没有超过小样本时种子间最大标准差 {seed_noise:.3f} 的两倍，一次运行说明不了谁更好。"))
    grows = lookup(name, frozen, ks[-1])["mean"] - lookup(name, frozen, ks[0])["mean"]
    print(f"  冻结主干从 k={ks[0]} 到 k={ks[-1]} 变化 {grows:+.3f}；"
          f"分类头变化 {lookup(name, head, ks[-1])['mean'] - lookup(name, head, ks[0])['mean']:+.3f}")
best_neural = max((lookup(name, method, full_k)["mean"], name, method) for name in models for method in METHODS)
gap = best_neural[0] - bayes["test"]["accuracy"]
print(f"参照：全部训练集上的朴素贝叶斯 {bayes['test']['accuracy']:.3f}；最好的神经方法是 {best_neural[1]} 的{best_neural[2]}，"
      f"{best_neural[0]:.3f}，比它{'高' if gap > 0 else '低'} {abs(gap):.3f}（单次运行）。")
"""),
    md("""
**GPT 与 BERT**：论文的一个重要结论是，用了 P-Tuning 之后，GPT 在自然语言理解任务上追上甚至超过了同等规模的 BERT。我们的两个模型规模不同（见第 2 节的参数量），预训练也都很短，所以这里的比较只能说明这两个小模型，而不是两种结构。
"""),
    code("""
# NBVAL_IGNORE_OUTPUT
bert_name, gpt_name = models
for method in METHODS:
    parts = []
    for k in ks:
        g, b = lookup(gpt_name, method, k), lookup(bert_name, method, k)
        verdict = sweeps.compare_means(g, b)
        parts.append(f"k={k}：GPT {g['mean']:.3f} 对 BERT {b['mean']:.3f}，"
                     + ("在噪声范围内" if verdict == "在噪声范围内" else f"GPT {verdict} BERT"))
    g_full, b_full = lookup(gpt_name, method, full_k)["mean"], lookup(bert_name, method, full_k)["mean"]
    parts.append(f"全部训练集（单次）：GPT {g_full:.3f} 对 BERT {b_full:.3f}")
    print(f"{method}：" + "；".join(parts))
gpt_wins = [k for k in ks if sweeps.compare_means(lookup(gpt_name, frozen, k), lookup(bert_name, frozen, k)) == "高于"]
bert_wins = [k for k in ks if sweeps.compare_means(lookup(gpt_name, frozen, k), lookup(bert_name, frozen, k)) == "低于"]
if gpt_wins and not bert_wins:
    print(f"冻结主干的 P-Tuning 下，{gpt_name} 在 k = {gpt_wins} 时明显好于 {bert_name}，方向与论文一致。")
elif bert_wins and not gpt_wins:
    print(f"冻结主干的 P-Tuning 下，{bert_name} 在 k = {bert_wins} 时明显好于 {gpt_name}，与论文的结论相反。")
else:
    print(f"冻结主干的 P-Tuning 下，两个模型在各个 k 上的差距都在噪声范围内（或方向不一），看不出谁追上了谁。")
"""),
    md("""
**我们的小模型与正文的差别**：

- 正文说 P-Tuning 在小样本上效果最好，在部分任务上能达到甚至超过全量微调。上面的结论列出了我们在每个 k 上量到的情况。要记住，论文用的是几亿参数、充分预训练的模型，提示只需要“唤醒”模型已经会的东西；我们的小模型在第 1 课里零样本几乎是随机的，冻结主干时，6 个提示向量能撬动的知识很有限。
- 正文建议数据充足时解冻主干。上面“全部训练集”一行给出了我们量到的差距（单次运行）。
- 朴素贝叶斯给出了传统方法的水平，上面的结论最后一行打印了最好的神经方法与它的差距。在几百万参数的模型上，这个差距要如实看待。
"""),
    md("""
## 8. 亲手训练一次：冻结主干的 P-Tuning

用 GPT、k = 128 条评论、第 7 节为它选出的学习率，训练冻结主干的 P-Tuning。训练前后各拍一张语言模型权重的“快照”，确认主干一个数都没变，变的只有提示编码器。为了第 9 节能画出完整的训练曲线，这里不早停，固定训练 5 轮（仍然保留验证准确率最好的那一轮的权重）。
"""),
    code("""
# NBVAL_IGNORE_OUTPUT
K_DEMO = 128
DEMO_EPOCHS = 5
frozen_rate = settings["learning_rates"][frozen][GPT_MODEL]["chosen"]
few = data.sample_split(sentiment.train, K_DEMO, seed=0)
validation_sample = data.sample_split(sentiment.validation, settings["validation_size"], seed=0)


def train_demo(reparameterization, language_model=None):
    # 只训练几十步时，XLA 编译的时间比省下的计算还多，所以这里关掉 jit_compile；第 7 节的长时间训练开着它。
    return ptuning.train_ptuning(language_model or load_llm(GPT_MODEL, download=DOWNLOAD), gpt_tokenizer,
                                 gpt_template, verbalizers[GPT_MODEL], few, validation_sample,
                                 test_split=sentiment.test, reparameterization=reparameterization,
                                 freeze_backbone=True, max_length=MAX_LENGTH, epochs=DEMO_EPOCHS,
                                 patience=DEMO_EPOCHS, learning_rate=frozen_rate, seed=0, jit_compile=False)


backbone = load_llm(GPT_MODEL, download=DOWNLOAD)
before = [w.numpy().copy() for w in backbone.weights]
lstm_run = train_demo("lstm", backbone)
changed = sum(not np.array_equal(old, new.numpy()) for old, new in zip(before, backbone.weights))
counts = ptuning.parameter_counts(lstm_run["model"])
print(f"学习率 {frozen_rate:g}，训练 {DEMO_EPOCHS} 轮，用时 {lstm_run['seconds']:.0f} 秒")
print(f"语言模型的 {len(before)} 个权重张量中，训练后改变的有 {changed} 个")
print(f"可训练参数 {counts['trainable']:,}，即提示编码器的 {counts['prompt_encoder']:,} 个"
      f"（占全部参数的 {counts['prompt_encoder_percent']:.1f}%）；语言模型 {counts['language_model']:,} 个参数全部冻结")
test = lstm_run["test"]
print(f"测试准确率 {test['accuracy']:.3f}，AUC {test['roc_auc']:.3f}，判为正面 {test['label_shares'][1]:.1%}"
      f"（测试集里正面占 {positive_share:.1%}，全判成多数类的准确率 {majority:.3f}）")
if test["roc_auc"] < 0.6:
    print("AUC 接近 0.5：这次训练主要改变了模型偏向哪个标签，区分正负面的能力几乎没有提高。")
sweep_cells = "，".join(f"k={k} 时 {lookup(GPT_MODEL, frozen, k)['mean']:.3f} ± {lookup(GPT_MODEL, frozen, k)['std']:.3f}"
                        for k in ks)
print(f"作为对照，第 7 节冻结主干的 {GPT_MODEL}（按验证早停，3 个种子）：{sweep_cells}")
"""),
    md("""
学到的提示向量像哪些字？对每个伪 token 的向量，在嵌入矩阵里找余弦相似度最高的 3 个字。作为对照，再看真实的字与它最近的**另一个**字有多相似。
"""),
    code("""
# NBVAL_IGNORE_OUTPUT
learned = np.asarray(lstm_run["model"].prompt_encoder(training=False))  # [s, H]
vocabulary = embedding_matrix / np.linalg.norm(embedding_matrix, axis=1, keepdims=True)
similarity = (learned / np.linalg.norm(learned, axis=1, keepdims=True)) @ vocabulary.T  # [s, V]
rows = []
for j, scores in enumerate(similarity):
    best = np.argsort(-scores)[:3]
    words = " ".join(f"{gpt_tokenizer.vocab[i]}({scores[i]:.2f})" for i in best)
    rows.append([f"[P{j}]", f"{np.linalg.norm(learned[j]):.2f}", words])
print(format_table(["伪 token", "范数", "最相近的 3 个字（余弦相似度）"], rows))
word_ids = [gpt_tokenizer.token_to_id[w] for w in "好差快慢贵便宜质量不错" if w in gpt_tokenizer.token_to_id]
word_similarity = vocabulary[word_ids] @ vocabulary.T
word_similarity[np.arange(len(word_ids)), word_ids] = -1  # 不算自己
typical_word = np.median(word_similarity.max(axis=1))
typical_prompt = np.median(similarity.max(axis=1))
norms = np.linalg.norm(embedding_matrix, axis=1)
print(f"真实的字与最近的另一个字：余弦相似度中位数 {typical_word:.2f}；伪 token 与最近的字：中位数 {typical_prompt:.2f}")
print(f"词向量范数的中位数 {np.median(norms):.2f}，提示向量范数的中位数 {np.median(np.linalg.norm(learned, axis=1)):.2f}")
print("学到的提示向量离任何一个字都比真实的字之间更远：它们不是词表里的字。" if typical_prompt < typical_word else
      "学到的提示向量与某些字的相似程度不低于真实的字之间，但这不说明它们“就是”那些字。")
ratio = np.median(np.linalg.norm(learned, axis=1)) / np.median(norms)
if ratio > 2 or ratio < 0.5:
    print(f"提示向量的范数约是词向量的 {ratio:.1f} 倍：它们不受“必须是某个字”的约束，长度也可以与任何词向量都不同。")
else:
    print(f"提示向量的范数约是词向量的 {ratio:.1f} 倍，长度与词向量相当；它们与字的区别在方向上。")
"""),
    md("""
## 9. 重参数化：lstm、mlp 与 none

同一个任务、同一批 128 条评论、同一个随机种子和学习率，只换重参数化方式，比较每轮的训练损失和验证准确率。lstm 那一次就是第 8 节的运行。

随机种子固定了抽样和初始权重，但 TensorFlow 在 CPU 上用多线程做求和，累加顺序每次可能不同，所以同一个种子重跑一次，损失和准确率也会有小的出入。这种出入本身就是噪声的一部分。两个标签的交叉熵损失等于 $\ln 2 \approx 0.693$ 时，相当于对两个标签各给一半的概率，也就是什么都没学到。
"""),
    code("""
# NBVAL_IGNORE_OUTPUT
reparameterization_runs = {"lstm": lstm_run}
for choice in ("mlp", "none"):
    reparameterization_runs[choice] = train_demo(choice)

fig, axes = plt.subplots(1, 2, figsize=(11, 4))
epochs_axis = np.arange(1, DEMO_EPOCHS + 1)
for choice, run in reparameterization_runs.items():
    axes[0].plot(epochs_axis, run["history"]["loss"], marker="o", label=choice)
    axes[1].plot(epochs_axis, run["history"]["val_accuracy"], marker="o", label=choice)
axes[0].set_title("训练损失")
axes[1].set_title("验证准确率")
for ax in axes:
    ax.set_xticks(epochs_axis)
    ax.set_xlabel("轮次")
    ax.legend(title="重参数化")
fig.suptitle(f"{GPT_MODEL}，冻结主干，k={K_DEMO}，学习率 {frozen_rate:g}，随机种子 0")
fig.tight_layout()
plt.show()

rows = [[choice, f"{ptuning.parameter_counts(run['model'])['prompt_encoder']:,}", f"{run['history']['loss'][0]:.3f}",
         f"{run['history']['loss'][-1]:.3f}", f"{max(run['history']['val_accuracy']):.3f}",
         f"{run['test']['accuracy']:.3f}", f"{run['seconds']:.0f}"] for choice, run in reparameterization_runs.items()]
print(format_table(["重参数化", "编码器参数", "第 1 轮损失", f"第 {DEMO_EPOCHS} 轮损失", "最好的验证准确率",
                    "测试准确率", "秒"], rows))
"""),
    code("""
# NBVAL_IGNORE_OUTPUT
final_losses = {choice: run["history"]["loss"][-1] for choice, run in reparameterization_runs.items()}
tests = {choice: run["test"]["accuracy"] for choice, run in reparameterization_runs.items()}
stds = [lookup(GPT_MODEL, frozen, k)["std"] for k in ks]
noise = max(stds)
lowest = min(final_losses, key=final_losses.get)
spread = max(tests.values()) - min(tests.values())
print(f"第 {DEMO_EPOCHS} 轮训练损失最低的是 {lowest}（{final_losses[lowest]:.3f}，ln 2 = {np.log(2):.3f}）；"
      f"三种做法的测试准确率最多相差 {spread:.3f}。")
chance_level = [choice for choice, loss in final_losses.items() if loss > np.log(2) - 0.01]
if chance_level:
    print(f"{chance_level} 最后的训练损失离 ln 2 不到 0.01：在这么少的数据上，它们几乎没有学到东西。")
print(f"第 7 节里冻结主干的 {GPT_MODEL} 换随机种子时，测试准确率的标准差在 {min(stds):.3f} 到 {noise:.3f} 之间。" + (
    "三者的差距没有超过两倍的最大标准差，这一个种子分不出高下。" if spread <= 2 * noise else
    "三者的差距超过了两倍的最大标准差，但这只是一个种子，要下结论还得多跑几个种子（见练习 3）。"))
"""),
    md("""
论文说 LSTM 重参数化让训练收敛更快、更稳定。读上面的图和结论时注意三点：

- 这是一个种子、一个学习率，重跑一次连谁的损失最低都可能改变。学习率是为 lstm 选的，mlp 和 none 换个学习率也许表现不同；要比较重参数化，应当像第 7 节那样给每种做法各自选学习率、跑多个种子。
- 我们的模板只有 6 个伪 token，模型又小，提示向量彼此“关联”能带来的好处有限。
- 重参数化只影响训练过程。训练完成后三种做法都只留下 $s \\times H$ 个提示向量，推理时的开销完全相同。
"""),
    md("""
## 10. 小结与练习

- P-Tuning 把人工模板中的字换成可训练的伪 token 向量，离散的模板搜索变成了连续优化，只需改动模型的输入。
- 提示编码器（嵌入 → 双向 LSTM → MLP）是训练用的重参数化；训练后只需保存 $s \\times H$ 个数。在 bert-base 大小的模型上这不到万分之一，但训练时的编码器并不小，在我们 H 小、层数少的小模型上占比更高（第 4 节）。
- GPT 的伪 token 只能放在答案之前；BERT 可以包住 `[MASK]`。补齐后位置编号和注意力掩码都不受影响（第 5 节）。
- 在我们的小模型上，第 7 节的结论给出了冻结主干、解冻主干与分类头的实际差距；朴素贝叶斯是每次都要对照的传统基线。

P-Tuning 只在输入层加提示，提示要穿过整个模型才能影响输出，模型越小、任务越难（例如逐个字打标签的命名实体识别），这个影响越弱。下一课的 **P-Tuning v2** 把可训练的前缀放进每一层。

### 练习

1. 在第 6 节的面板上把 GPT 的模板从 (3, 3) 调到 (10, 10)，编码器的参数量变了多少？对照第 4 节的分项表，哪一部分随 s 变化，哪一部分不变，为什么？
2. 把第 8 节的 `K_DEMO` 改成 32 或 256 再运行第 8、9 节，训练曲线有什么变化？与第 7 节同一个 k 的均值 ± 标准差比较，你的一次运行落在哪里？
3. 把第 8 节的 `train_demo` 换成 3 个随机种子（`seed=0, 1, 2`）各跑一次，给三种重参数化各算均值 ± 标准差，再用 `sweeps.compare_means` 判断 lstm 是否真的更好。
4. BERT 的模板 (2, 2, 2) 与 (6, 0, 0) 伪 token 数相同，位置不同。用 `ptuning.train_ptuning` 在同一批 k = 128 条评论上各训练一次，哪一个更好？这个差距可信吗？
"""),
]

write_notebook(cells, TARGET)
