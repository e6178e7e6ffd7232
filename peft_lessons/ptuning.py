"""P-Tuning: trainable prompt vectors produced by a small prompt encoder.

P-Tuning (Liu et al. 2021, "GPT Understands, Too", arXiv:2103.10385) replaces the words of a
hand-written template with S pseudo tokens. Their input embeddings are not looked up in the
vocabulary. A prompt encoder computes them from S trainable vectors, by default through a
bidirectional LSTM and an MLP, so that neighbouring pseudo tokens share information. The
encoder's layer sizes follow the authors' released code (github.com/THUDM/P-tuning,
LAMA/p_tuning/prompt_encoder.py). The label is read at the answer position through a
verbalizer, as in PET (`prompting.PETModel`).

A template here is a tuple of pseudo-token counts:

- GPT-2, `(s1, s2)`: `[CLS] P*s1 text P*s2`. The token after the last position is the answer.
- BERT, `(s1, s2, s3)`: `[CLS] P*s1 text P*s2 [MASK] P*s3 [SEP]`. `(s1, s2)` means `s3 = 0`.

Shape legend: N texts, B batch, T tokens, H hidden size, V vocabulary size, L labels,
W label words (all labels together), S pseudo tokens (s1 + s2 + s3).
"""

from __future__ import annotations

import numbers
import warnings

import keras
import numpy as np
from keras import ops

from . import data
from .prompting import (
    MODEL_TYPES,
    Verbalizer,
    _check_language_model,
    _check_model_type,
    _check_positive_int,
    _check_split_labels,
    _check_texts,
    _check_verbalizer,
    _few_shot_splits,
    _normalize,
    _resolve_model_and_tokenizer,
    evaluate_probabilities,
    label_logits,
)
from .training import count_params, fit_with_early_stopping, parameter_report, set_seed

REPARAMETERIZATIONS = ("lstm", "mlp", "none")

# Pseudo-token slots in `input_ids` contain [UNK]. The model overwrites their embeddings, so the id
# only matters to code that reads `input_ids` directly. [PAD] is not used because it marks padding.
PROMPT_PLACEHOLDER = "[UNK]"

# Learning rates used when `train_ptuning` gets `learning_rate=None`. They are starting points for
# this project's small models, not tuned and not taken from the paper.
FROZEN_LEARNING_RATE = 1e-3
UNFROZEN_LEARNING_RATE = 5e-5


# ---------------------------------------------------------------------------
# Checking templates and options
# ---------------------------------------------------------------------------


def _check_template(template) -> tuple[int, int, int]:
    """Validate a template of 2 or 3 non-negative ints and return it as `(s1, s2, s3)`."""
    example = "例如 (3, 3) 或 (2, 2, 2)"
    if not isinstance(template, (tuple, list)):
        raise TypeError(
            f"template 需要由 2 或 3 个非负整数组成的元组 (s1, s2) 或 (s1, s2, s3)，{example}；"
            f"收到 {type(template).__name__}：{template!r}。"
        )
    if len(template) not in (2, 3):
        raise ValueError(
            f"template 需要 2 或 3 个数（各段伪 token 的个数），收到 {len(template)} 个：{tuple(template)!r}；{example}。"
        )
    for position, count in enumerate(template):
        if isinstance(count, bool) or not isinstance(count, numbers.Integral) or count < 0:
            raise ValueError(
                f"template 的第 {position} 项必须是非负整数，收到 {count!r}（template={tuple(template)!r}）；{example}。"
            )
    counts = tuple(int(count) for count in template) + (0,) * (3 - len(template))
    if sum(counts) == 0:
        raise ValueError(f"template={tuple(template)!r} 一个伪 token 都没有；请至少放一个，{example}。")
    return counts


def _check_template_for_model(template, model_type) -> tuple[int, int, int]:
    """Validate the template for `model_type` ("gpt2" allows no s3) and return it as `(s1, s2, s3)`."""
    counts = _check_template(template)
    _check_model_type(model_type)
    s1, s2, s3 = counts
    if model_type == "gpt2" and s3 > 0:
        raise ValueError(
            f"GPT-2 从左到右预测，答案之后的伪 token 对预测没有作用，所以 template={tuple(template)!r} 的 s3={s3} "
            f"必须为 0；请改为 ({s1}, {s2})，或把它们移到答案之前，例如 ({s1}, {s2 + s3})。"
        )
    return counts


def _check_reparameterization(reparameterization) -> str:
    if reparameterization not in REPARAMETERIZATIONS:
        raise ValueError(
            f"reparameterization 只能是 {REPARAMETERIZATIONS} 之一，收到 {reparameterization!r}；"
            "'lstm' 为论文中的双向 LSTM 加 MLP，'mlp' 只用 MLP，'none' 直接训练伪 token 的向量。"
        )
    return reparameterization


def _check_hidden_size(hidden_size, reparameterization) -> int:
    hidden_size = _check_positive_int("hidden_size", hidden_size)
    if reparameterization == "lstm" and hidden_size < 2:
        raise ValueError(
            f"reparameterization='lstm' 的每个方向有 hidden_size // 2 个单元，hidden_size={hidden_size} 太小；"
            "请让 hidden_size 至少为 2。"
        )
    return hidden_size


def _check_max_length(max_length, tokenizer) -> int:
    max_length = _check_positive_int("max_length", max_length)
    if max_length > tokenizer.model_max_length:
        raise ValueError(
            f"max_length={max_length} 超过了模型的 max_positions={tokenizer.model_max_length}；"
            f"请把 max_length 设为不超过 {tokenizer.model_max_length} 的值。"
        )
    return max_length


def _check_max_length_for_model(max_length, language_model) -> None:
    max_positions = language_model.config.max_positions
    if max_length > max_positions:
        raise ValueError(
            f"max_length={max_length} 超过了模型的 max_positions={max_positions}；"
            f"请把 max_length 设为不超过 {max_positions} 的值。"
        )


def _check_ptuning_language_model(language_model):
    language_model = _check_language_model(language_model)
    model_type = getattr(language_model.config, "model_type", None)
    if model_type not in MODEL_TYPES:
        raise ValueError(
            f"P-Tuning 只支持 GPT-2 和 BERT 结构（model_type 为 {MODEL_TYPES} 之一），这个模型的 model_type 是 "
            f"{model_type!r}；请换用 load_llm('tiny-gpt-zh') 或 load_llm('tiny-bert-zh') 这样的模型。"
        )
    return language_model


# ---------------------------------------------------------------------------
# Prompt encoder
# ---------------------------------------------------------------------------


def prompt_encoder_params(template, hidden_size: int, reparameterization: str = "lstm") -> int:
    """Count the weights of a `PromptEncoder` from its settings, without building it.

    With S pseudo tokens, H = hidden_size and u = H // 2 LSTM units per direction:
    the embedding has S*H weights, the MLP has (I*H + H) + (H*H + H) with input width I
    (2u after the LSTM, H otherwise), and each bidirectional LSTM layer with input width D
    has 2 * 4u(D + u + 1), where D = H for the first layer and 2u for the second.
    Keras LSTMs have one bias per gate. PyTorch's nn.LSTM has two, so the same encoder in
    PyTorch has 16u more weights (2 layers times 2 directions times 4u).
    """
    reparameterization = _check_reparameterization(reparameterization)
    num_tokens = sum(_check_template(template))
    hidden_size = _check_hidden_size(hidden_size, reparameterization)

    total = num_tokens * hidden_size
    mlp_input = hidden_size
    if reparameterization == "lstm":
        units = hidden_size // 2
        for input_width in (hidden_size, 2 * units):
            total += 2 * 4 * units * (input_width + units + 1)
        mlp_input = 2 * units
    if reparameterization in ("lstm", "mlp"):
        total += mlp_input * hidden_size + hidden_size
        total += hidden_size * hidden_size + hidden_size
    return total


class PromptEncoder(keras.layers.Layer):
    """Trainable input embeddings `[S, H]` for the S pseudo tokens of a P-Tuning template.

    Call it without inputs: `encoder()` (or `encoder(training=True)`) returns the float32
    prompt embeddings, row j for pseudo token j. Pseudo-token ids 0..S-1 go through an
    Embedding(S, H), then, by `reparameterization`:

    - "lstm": a two-layer bidirectional LSTM with H // 2 units per direction, then the MLP
      Dense(H, relu) and Dense(H), as in the authors' code (without its LSTM dropout).
    - "mlp": the MLP only.
    - "none": the embedding rows themselves.

    Every weight and the output are float32, even under a mixed-precision policy, because
    the prompt is a few vectors and half precision would only lose accuracy. A `dtype`
    argument is therefore ignored.
    """

    def __init__(self, template, hidden_size: int, reparameterization: str = "lstm", **kwargs):
        kwargs.setdefault("name", "prompt_encoder")
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        self.template = _check_template(template)
        self.reparameterization = _check_reparameterization(reparameterization)
        self.hidden_size = _check_hidden_size(hidden_size, reparameterization)
        self.num_tokens = sum(self.template)

        self.embedding = keras.layers.Embedding(self.num_tokens, self.hidden_size, dtype="float32", name="embedding")
        self.embedding.build((self.num_tokens,))

        self.lstm_layers = []
        mlp_input = self.hidden_size
        if self.reparameterization == "lstm":
            units = self.hidden_size // 2
            for index in range(2):
                # use_cudnn=False keeps the model XLA-compilable on a GPU, because Keras 3.15 turns jit_compile
                # off for the whole model when an LSTM may use cuDNN. The LSTM runs over only S steps anyway.
                # NOTE: this XLA-on-GPU path was read in the Keras source but not yet run on a GPU.
                lstm = keras.layers.LSTM(units, return_sequences=True, use_cudnn=False, dtype="float32")
                bidirectional = keras.layers.Bidirectional(lstm, dtype="float32", name=f"lstm_{index}")
                bidirectional.build((1, self.num_tokens, mlp_input))
                self.lstm_layers.append(bidirectional)
                mlp_input = 2 * units

        self.mlp_hidden = None
        self.mlp_output = None
        if self.reparameterization in ("lstm", "mlp"):
            self.mlp_hidden = keras.layers.Dense(self.hidden_size, activation="relu", dtype="float32",
                                                 name="mlp_hidden")
            self.mlp_hidden.build((None, mlp_input))
            self.mlp_output = keras.layers.Dense(self.hidden_size, dtype="float32", name="mlp_output")
            self.mlp_output.build((None, self.hidden_size))
        self.built = True

    def call(self, training=None):
        token_ids = ops.arange(self.num_tokens, dtype="int32")
        prompts = self.embedding(token_ids)  # [S, H]
        if self.lstm_layers:
            sequence = prompts[None, :, :]  # [1, S, H]: the pseudo tokens form one sequence
            for lstm in self.lstm_layers:
                sequence = lstm(sequence, training=training)
            prompts = sequence[0]  # [S, 2 * (H // 2)]
        if self.mlp_hidden is not None:
            prompts = self.mlp_output(self.mlp_hidden(prompts))  # [S, H]
        return prompts

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(template=self.template, hidden_size=self.hidden_size,
                      reparameterization=self.reparameterization)
        return config


# ---------------------------------------------------------------------------
# Input layout
# ---------------------------------------------------------------------------


def _fixed_length(counts, model_type) -> int:
    """Count the positions that are not text: [CLS], the pseudo tokens and, for BERT, [MASK] and [SEP]."""
    return 1 + sum(counts) + (2 if model_type == "bert" else 0)


def _text_room(counts, model_type, max_length) -> int:
    fixed = _fixed_length(counts, model_type)
    room = max_length - fixed
    if room < 1:
        raise ValueError(
            f"template={counts} 的 {sum(counts)} 个伪 token 加上特殊 token 共占 {fixed} 个位置，"
            f"max_length={max_length} 放不下评论；请把 max_length 调到至少 {fixed + 1}，或减少伪 token。"
        )
    return room


def _row_layout(tokenizer, text_ids, counts, model_type):
    """Lay out one example as parallel lists: token ids, prompt index (-1 for real tokens) and kind."""
    s1, s2, s3 = counts
    ids, prompt_index, kinds = [tokenizer.cls_id], [-1], ["cls"]
    next_prompt = 0

    def add_prompts(count):
        nonlocal next_prompt
        for _ in range(count):
            ids.append(tokenizer.unk_id)
            prompt_index.append(next_prompt)
            kinds.append("prompt")
            next_prompt += 1

    add_prompts(s1)
    ids.extend(text_ids)
    prompt_index.extend([-1] * len(text_ids))
    kinds.extend(["text"] * len(text_ids))
    add_prompts(s2)
    if model_type == "bert":
        ids.append(tokenizer.mask_id)
        prompt_index.append(-1)
        kinds.append("mask")
        add_prompts(s3)
        ids.append(tokenizer.sep_id)
        prompt_index.append(-1)
        kinds.append("sep")
    return ids, prompt_index, kinds


def _text_token_ids(tokenizer, texts, room) -> list[list[int]]:
    return [list(ids)[:room] for ids, _ in tokenizer.tokenize_with_offsets(texts)]


def encode_ptuning(tokenizer, texts, template, model_type: str, max_length: int = 64) -> dict:
    """Encode texts around the pseudo tokens of `template` into int32 arrays.

    Returns `input_ids`, `attention_mask`, `token_type_ids` and `prompt_index`, each
    `[N, max_length]` and right-padded, and `answer_positions` `[N]`. `prompt_index` is j at
    the slot of pseudo token j and -1 elsewhere. Pseudo-token slots hold the [UNK] id in
    `input_ids`, and `PTuningModel` replaces their embeddings. The answer position is the
    [MASK] for BERT and the last real token for GPT-2, whose next-token logits predict the
    label word. A text too long for `max_length` loses its tail, and pseudo tokens are never cut.
    """
    counts = _check_template_for_model(template, model_type)
    texts = _check_texts(texts)
    max_length = _check_max_length(max_length, tokenizer)
    room = _text_room(counts, model_type, max_length)

    input_ids = np.full((len(texts), max_length), tokenizer.pad_id, dtype=np.int32)
    attention_mask = np.zeros((len(texts), max_length), dtype=np.int32)
    prompt_index = np.full((len(texts), max_length), -1, dtype=np.int32)
    answer_positions = np.zeros(len(texts), dtype=np.int32)
    for row, text_ids in enumerate(_text_token_ids(tokenizer, texts, room)):
        ids, indices, kinds = _row_layout(tokenizer, text_ids, counts, model_type)
        input_ids[row, : len(ids)] = ids
        attention_mask[row, : len(ids)] = 1
        prompt_index[row, : len(ids)] = indices
        answer_positions[row] = kinds.index("mask") if model_type == "bert" else len(ids) - 1
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "token_type_ids": np.zeros_like(input_ids),
        "prompt_index": prompt_index,
        "answer_positions": answer_positions,
    }


def layout(tokenizer, text: str, template, model_type: str, max_length: int = 64) -> list[tuple[str, str]]:
    """Return the real tokens of one encoded text as `(token, kind)` pairs, for drawing the input.

    `kind` is "cls", "prompt", "text", "mask" or "sep". Pseudo token j is shown as `[Pj]`,
    counting from 0 as `prompt_index` does. The list matches `encode_ptuning` without the
    padding, so for GPT-2 the last pair is the position that predicts the label word.
    """
    counts = _check_template_for_model(template, model_type)
    (text,) = _check_texts([text])
    max_length = _check_max_length(max_length, tokenizer)
    room = _text_room(counts, model_type, max_length)
    (text_ids,) = _text_token_ids(tokenizer, [text], room)
    ids, indices, kinds = _row_layout(tokenizer, text_ids, counts, model_type)
    tokens = tokenizer.convert_ids_to_tokens(ids)
    return [(f"[P{index}]" if kind == "prompt" else token, kind)
            for token, index, kind in zip(tokens, indices, kinds)]


# ---------------------------------------------------------------------------
# The P-Tuning model
# ---------------------------------------------------------------------------


class PTuningModel(keras.Model):
    """A GPT-2 or BERT language model whose pseudo-token embeddings come from a `PromptEncoder`.

    Input: the dict from `encode_ptuning`. Output: float32 label logits `[B, L]`, computed
    from the label words' logits at the answer position as in `prompting.PETModel`.

    `freeze_backbone=True` sets `language_model.trainable = False`, so only the prompt
    encoder trains. `False` sets it back to True and trains both. The flag is set on the
    language model object passed in, so a later user of that object sees it too.
    """

    def __init__(self, language_model, template, verbalizer: Verbalizer, reparameterization: str = "lstm",
                 freeze_backbone: bool = True, **kwargs):
        kwargs.setdefault("name", "ptuning")
        super().__init__(**kwargs)
        language_model = _check_ptuning_language_model(language_model)
        config = language_model.config
        self.template = _check_template_for_model(template, config.model_type)
        if not isinstance(verbalizer, Verbalizer):
            raise TypeError(f"verbalizer 需要 Verbalizer 对象，收到 {type(verbalizer).__name__}；"
                            "请写成 Verbalizer({0: '差', 1: '好'}, tokenizer)。")
        if not isinstance(freeze_backbone, bool):
            raise TypeError(f"freeze_backbone 必须是 True 或 False，收到 {freeze_backbone!r}。")
        _check_reparameterization(reparameterization)
        fixed = _fixed_length(self.template, config.model_type)
        if fixed >= config.max_positions:
            raise ValueError(
                f"template={self.template} 的伪 token 加上特殊 token 共占 {fixed} 个位置，模型的 "
                f"max_positions={config.max_positions} 放不下评论；请减少伪 token，"
                f"让伪 token 与特殊 token 合计不超过 {config.max_positions - 1} 个。"
            )

        language_model.trainable = not freeze_backbone
        self.language_model = language_model
        self.verbalizer = verbalizer
        self.num_labels = verbalizer.num_labels
        self.freeze_backbone = freeze_backbone
        self.prompt_encoder = PromptEncoder(self.template, config.hidden_size, reparameterization)
        self.built = True

    @property
    def model_type(self) -> str:
        return self.language_model.config.model_type

    def embed_inputs(self, inputs, training=None):
        """Return the input embeddings `[B, T, H]`: the encoder's output at pseudo-token slots, token embeddings elsewhere."""
        token_embeddings = self.language_model.backbone.embed_tokens(inputs["input_ids"])  # [B, T, H]
        prompts = ops.cast(self.prompt_encoder(training=training), token_embeddings.dtype)  # [S, H]
        prompt_index = ops.cast(inputs["prompt_index"], "int32")  # [B, T]
        # Real tokens have index -1. Clamping it to 0 keeps the lookup valid, and ops.where discards the row.
        gathered = ops.take(prompts, ops.maximum(prompt_index, 0), axis=0)  # [B, T, H]
        return ops.where(prompt_index[:, :, None] >= 0, gathered, token_embeddings)

    def call(self, inputs, training=None):
        backbone_inputs = {
            "inputs_embeds": self.embed_inputs(inputs, training=training),
            "attention_mask": inputs["attention_mask"],
        }
        if "token_type_ids" in inputs:
            backbone_inputs["token_type_ids"] = inputs["token_type_ids"]
        hidden = self.language_model.backbone(backbone_inputs, training=training)  # [B, T, H]
        positions = ops.cast(inputs["answer_positions"], "int32")
        answer_hidden = ops.take_along_axis(hidden, positions[:, None, None], axis=1)[:, 0, :]  # [B, H]
        vocab_logits = ops.cast(self.language_model.logits_from_hidden(answer_hidden), "float32")  # [B, V]
        return label_logits(vocab_logits, self.verbalizer)


def parameter_counts(model: PTuningModel) -> dict:
    """Count the parameters of a P-Tuning model by part.

    Returns `prompt_encoder`, `language_model` (backbone and LM head), `total`, `trainable`,
    and `prompt_encoder_percent`, the encoder's share of `total` in percent.
    """
    if not isinstance(model, PTuningModel):
        raise TypeError(f"需要 PTuningModel，收到 {type(model).__name__}；请先用 PTuningModel(...) 建模型。")
    encoder = count_params(model.prompt_encoder.weights)
    language_model = count_params(model.language_model.weights)
    total = encoder + language_model
    return {
        "prompt_encoder": encoder,
        "language_model": language_model,
        "total": total,
        "trainable": count_params(model.trainable_weights),
        "prompt_encoder_percent": 100.0 * encoder / total,
    }


def template_summary(language_model, tokenizer, text: str, template, reparameterization: str = "lstm",
                     max_length: int = 64) -> dict:
    """Describe a P-Tuning template on a real text without building or training anything.

    Returns `layout` (the `(token, kind)` pairs of `layout`), `encoder_output_shape` `(S, H)`,
    `encoder_params` (from `prompt_encoder_params`), `language_model_params` and
    `encoder_percent`, the encoder's size as a percentage of the language model's.
    This is what the template widget of notebook 02 draws.
    """
    language_model = _check_ptuning_language_model(language_model)
    model_type = language_model.config.model_type
    counts = _check_template_for_model(template, model_type)
    hidden_size = language_model.config.hidden_size
    encoder_params = prompt_encoder_params(counts, hidden_size, reparameterization)
    language_model_params = count_params(language_model.weights)
    return {
        "layout": layout(tokenizer, text, counts, model_type, max_length),
        "encoder_output_shape": (sum(counts), hidden_size),
        "encoder_params": encoder_params,
        "language_model_params": language_model_params,
        "encoder_percent": 100.0 * encoder_params / language_model_params,
    }


# ---------------------------------------------------------------------------
# Scoring and training
# ---------------------------------------------------------------------------


def _scoring_function(model: PTuningModel):
    """Return a graph-compiled forward pass of `model`, traced once per model and batch shape.

    Scoring eagerly costs a Python pass through the LSTM encoder and the backbone per batch,
    which made scoring the 1,736 test reviews take about 30 s on 2 CPU cores. The function
    reads the model's variables, so it stays correct while training changes them.
    """
    import tensorflow as tf

    function = getattr(model, "_label_logits_function", None)
    if function is None:
        function = tf.function(lambda batch: model(batch, training=False))
        model._label_logits_function = function
    return function


def label_probabilities(model: PTuningModel, tokenizer, texts, max_length: int = 64, batch_size: int = 64) -> np.ndarray:
    """Return the label probabilities `[N, L]` of a P-Tuning model: the softmax over its label logits.

    The texts go through a compiled forward pass in batches of `batch_size`. The last batch is
    padded with copies of its last row, so every call has the same shape and is traced once.
    """
    if not isinstance(model, PTuningModel):
        raise TypeError(f"需要 PTuningModel，收到 {type(model).__name__}；请传入 train_ptuning(...)['model']。")
    _check_verbalizer(model.verbalizer, tokenizer)
    batch_size = _check_positive_int("batch_size", batch_size)
    features = encode_ptuning(tokenizer, texts, model.template, model.model_type, max_length)
    _check_max_length_for_model(features["input_ids"].shape[1], model.language_model)

    forward = _scoring_function(model)
    logits = []
    for start in range(0, len(features["input_ids"]), batch_size):
        batch = {key: value[start:start + batch_size] for key, value in features.items()}
        count = len(batch["input_ids"])
        if count < batch_size:
            batch = {key: np.concatenate([value, np.repeat(value[-1:], batch_size - count, axis=0)])
                     for key, value in batch.items()}
        logits.append(np.asarray(forward(batch), dtype=np.float64)[:count])
    logits = np.concatenate(logits)
    return _normalize(np.exp(logits - logits.max(axis=1, keepdims=True)))


def _ptuning_dataset(tokenizer, template, model_type, split, max_length, batch_size, shuffle, seed):
    """Build tf.data batches of (P-Tuning features, labels, sample_weight) with a fixed batch shape."""
    import tensorflow as tf

    features = encode_ptuning(tokenizer, split.texts, template, model_type, max_length)
    labels = np.asarray(split.labels, dtype=np.int32)
    weights = np.ones(len(split), dtype=np.float32)
    dataset = tf.data.Dataset.from_tensor_slices((features, labels, weights))
    return data.fixed_size_batches(dataset, batch_size, shuffle, seed, len(split))


def train_ptuning(model_name_or_model, tokenizer, template, verbalizer: Verbalizer, train_split, validation_split, *,
                  test_split=None, k: int | None = None, reparameterization: str = "lstm",
                  freeze_backbone: bool = True, max_length: int = 64, batch_size: int = 16, epochs: int = 10,
                  learning_rate: float | None = None, patience: int = 2, seed: int = 0, jit_compile: bool = True,
                  verbose: int = 0) -> dict:
    """Train a P-Tuning prompt encoder, and with `freeze_backbone=False` the language model too, with AdamW.

    The loss is cross-entropy over the labels' word logits at the answer position, as in
    `prompting.train_pet`. `learning_rate=None` uses 1e-3 with a frozen language model and
    5e-5 without, this project's defaults for its small models. `k`, `patience` and
    early stopping work as in `train_pet`. A model passed as an object is trained in place
    and its `trainable` flag is set as `PTuningModel` describes, while a name loads a fresh copy.

    Returns a dict with the keys of `train_pet`: the PTuningModel, history, best epoch,
    training size, trainable parameter count, seconds, and metrics (`evaluate_probabilities`)
    on the validation and, if given, test split.
    """
    language_model, tokenizer = _resolve_model_and_tokenizer(model_name_or_model, tokenizer)
    language_model = _check_ptuning_language_model(language_model)
    _check_verbalizer(verbalizer, tokenizer)
    model_type = language_model.config.model_type
    template = _check_template_for_model(template, model_type)
    _check_reparameterization(reparameterization)
    max_length = _check_max_length(max_length, tokenizer)
    _check_max_length_for_model(max_length, language_model)
    train_split = _few_shot_splits(train_split, validation_split, test_split, k, seed)
    for name, split in (("train_split", train_split), ("validation_split", validation_split)):
        _check_split_labels(split, verbalizer.num_labels, name)
    batch_size = _check_positive_int("batch_size", batch_size)
    if learning_rate is None:
        learning_rate = FROZEN_LEARNING_RATE if freeze_backbone else UNFROZEN_LEARNING_RATE
    elif isinstance(learning_rate, bool) or not isinstance(learning_rate, numbers.Real) or not learning_rate > 0:
        raise ValueError(f"learning_rate 必须是正数或 None（按是否冻结主干自动选择），收到 {learning_rate!r}。")

    set_seed(seed)
    model = PTuningModel(language_model, template, verbalizer, reparameterization, freeze_backbone)
    train_ds = _ptuning_dataset(tokenizer, template, model_type, train_split, max_length, batch_size, True, seed)
    validation_ds = _ptuning_dataset(tokenizer, template, model_type, validation_split, max_length, batch_size,
                                     False, seed)
    with warnings.catch_warnings():
        # BERT's pooler is not on the MLM path, so an unfrozen BERT would warn on every fit.
        warnings.filterwarnings("ignore", message=r"Gradients do not exist for variables \['pooler")
        fit = fit_with_early_stopping(model, train_ds, validation_ds, epochs=epochs, learning_rate=learning_rate,
                                      patience=patience, jit_compile=jit_compile, verbose=verbose)

    def metrics(split):
        # Scoring needs no gradients, so it uses larger batches than training.
        probabilities = label_probabilities(model, tokenizer, split.texts, max_length, max(batch_size, 64))
        return evaluate_probabilities(split.labels, probabilities)

    return {
        "method": "P-Tuning（冻结主干）" if freeze_backbone else "P-Tuning（解冻主干）",
        "model": model,
        "history": fit["history"],
        "best_epoch": fit["best_epoch"],
        "train_size": len(train_split),
        "trainable_params": parameter_report(model).trainable,
        "seconds": fit["seconds"],
        "validation": metrics(validation_split),
        "test": metrics(test_split) if test_split is not None else None,
    }
