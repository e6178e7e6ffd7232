"""P-Tuning v2: trainable keys and values (a prefix) in every attention layer of a frozen backbone.

P-Tuning v2 (Liu et al. 2022, "P-Tuning v2: Prompt Tuning Can Be Comparable to Fine-tuning
Universally Across Scales and Tasks", ACL 2022, arXiv:2110.07602) is deep prompt tuning.
P-Tuning (`ptuning.py`) only changes the input embeddings of a few pseudo tokens, so its
prompts reach the upper layers only through the frozen lower ones. P-Tuning v2 gives every
layer its own P trainable key and value vectors per head. The real tokens attend to them in
each layer, while the prefix has no query and produces no output. The backbone stays frozen.
This module reads labels through a newly initialised linear head, not a verbalizer. The head
trains together with the prefix, on the pooled vector for classification or on every token
for NER.

A `PromptEncoderV2` produces all prefixes at once as a `[P, 2*L*H]` matrix, which
`prefixes_from_prompts` cuts into one `(key, value)` pair per layer. The module also contains
the NER baselines that the chapter compares against (full fine-tuning, and P-Tuning-v1-style
prompts at the input only) and entity-level scoring with seqeval.

Shape legend: N examples, B batch, T tokens, P prompt length, L layers, H hidden size,
nh attention heads, hd = H / nh, C labels (tags for NER).
"""

from __future__ import annotations

import numbers
import warnings

import keras
import numpy as np
from keras import ops

from . import data
from .models import SequenceClassifier, TokenClassifier
from .models.config import ModelConfig
from .models.heads import _backbone_of
from .prompting import (
    _check_positive_int,
    _classifier_probabilities,
    _few_shot_splits,
    _resolve_model_and_tokenizer,
    evaluate_probabilities,
)
from .ptuning import PromptEncoder, _check_max_length, _check_max_length_for_model
from .training import count_params, fit_with_early_stopping, parameter_report, set_seed, timer

# Prefixes take no positions, so the model sets no limit on prompt_len. This bound is a sanity
# check chosen here, because a longer prefix only slows attention and more likely means that a
# wrong number was passed, such as a text length.
MAX_PROMPT_LEN = 512

# Learning rates used when a training function gets `learning_rate=None`. They are starting
# points for this project's small models, not tuned and not taken from the paper.
PROMPT_LEARNING_RATE = 5e-3
FULL_LEARNING_RATE = 5e-5

NER_ENTITY_TYPES = tuple(data.ENTITY_TYPES.values())  # ("PER", "LOC", "ORG")
_TAG_TO_ID = {tag: index for index, tag in enumerate(data.NER_TAGS)}


# ---------------------------------------------------------------------------
# Checking options
# ---------------------------------------------------------------------------


def _check_prompt_len(prompt_len) -> int:
    """Validate the prefix length P.

    The prefix adds P keys and values to each attention layer but no tokens, so it needs no
    position ids and `max_positions` does not limit P. Only the sanity bound MAX_PROMPT_LEN applies.
    """
    if isinstance(prompt_len, bool) or not isinstance(prompt_len, numbers.Integral) or prompt_len < 1:
        raise ValueError(f"prompt_len 必须是正整数（每层前缀的长度），收到 {prompt_len!r}；例如 16。")
    if prompt_len > MAX_PROMPT_LEN:
        raise ValueError(
            f"prompt_len={prompt_len} 超过了上限 {MAX_PROMPT_LEN}。前缀不占位置编码，这个上限只用来拦截误传的数值；"
            f"请把 prompt_len 设为不超过 {MAX_PROMPT_LEN} 的值，例如 16。"
        )
    return int(prompt_len)


def _check_reparameterization(reparameterization) -> bool:
    if not isinstance(reparameterization, bool):
        raise TypeError(
            f"reparameterization 必须是 True 或 False，收到 {reparameterization!r}；"
            "True 表示用两层 MLP 生成前缀，False 表示直接训练前缀向量。"
        )
    return reparameterization


def _model_config(config_or_model) -> ModelConfig:
    """Return the ModelConfig of a config, a language model or a backbone, after checking its head layout."""
    config = config_or_model if isinstance(config_or_model, ModelConfig) else getattr(config_or_model, "config", None)
    if not isinstance(config, ModelConfig):
        raise TypeError(
            f"需要 ModelConfig 或带 .config 的模型，收到 {type(config_or_model).__name__}；"
            "请传入 load_llm(...) 的返回值或它的 .config。"
        )
    if config.hidden_size % config.num_heads != 0:
        raise ValueError(
            f"hidden_size={config.hidden_size} 不能被 num_heads={config.num_heads} 整除，无法把前缀拆成注意力头；"
            "请让 hidden_size 是 num_heads 的整数倍。"
        )
    return config


# ---------------------------------------------------------------------------
# Prompt encoder
# ---------------------------------------------------------------------------


def prompt_encoder_v2_params(prompt_len: int, config, reparameterization: bool = False) -> int:
    """Count the weights of a `PromptEncoderV2` from its settings, without building it.

    With W = 2*L*H: no reparameterization has the P*W embedding only. With it, the encoder has
    the embedding P*H, the hidden Dense H*H + H and the output Dense H*W + W.
    """
    prompt_len = _check_prompt_len(prompt_len)
    config = _model_config(config)
    reparameterization = _check_reparameterization(reparameterization)
    hidden = config.hidden_size
    width = 2 * config.num_layers * hidden
    if not reparameterization:
        return prompt_len * width
    return prompt_len * hidden + (hidden * hidden + hidden) + (hidden * width + width)


class PromptEncoderV2(keras.layers.Layer):
    """Trainable keys and values for every layer, as one float32 matrix `[P, 2*L*H]`.

    Call it without inputs: `encoder()` returns row p for prefix position p. Prefix ids
    0..P-1 go through an Embedding:

    - `reparameterization=False`: Embedding(P, 2*L*H), whose rows are the prefixes themselves.
    - `reparameterization=True`: Embedding(P, H), then Dense(H, tanh) and Dense(2*L*H).
      The MLP changes only how the prefix is optimised. After training, its output matrix
      alone defines the prefix.

    `prefixes_from_prompts` explains how a row splits into layers, keys, values and heads.
    Weights and output are float32 even under a mixed-precision policy, as in
    `ptuning.PromptEncoder`, so a `dtype` argument is ignored.
    """

    def __init__(self, prompt_len: int, config, reparameterization: bool = False, **kwargs):
        kwargs.setdefault("name", "prompt_encoder_v2")
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        self.prompt_len = _check_prompt_len(prompt_len)
        self.config = _model_config(config)
        self.reparameterization = _check_reparameterization(reparameterization)
        hidden = self.config.hidden_size
        self.output_width = 2 * self.config.num_layers * hidden

        embedding_width = hidden if self.reparameterization else self.output_width
        self.embedding = keras.layers.Embedding(self.prompt_len, embedding_width, dtype="float32", name="embedding")
        self.embedding.build((self.prompt_len,))
        self.mlp_hidden = None
        self.mlp_output = None
        if self.reparameterization:
            self.mlp_hidden = keras.layers.Dense(hidden, activation="tanh", dtype="float32", name="mlp_hidden")
            self.mlp_hidden.build((None, hidden))
            self.mlp_output = keras.layers.Dense(self.output_width, dtype="float32", name="mlp_output")
            self.mlp_output.build((None, hidden))
        self.built = True

    def call(self, training=None):
        prompts = self.embedding(ops.arange(self.prompt_len, dtype="int32"))  # [P, H] or [P, 2*L*H]
        if self.reparameterization:
            prompts = self.mlp_output(self.mlp_hidden(prompts))  # [P, 2*L*H]
        return prompts

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(prompt_len=self.prompt_len, reparameterization=self.reparameterization)
        return config


# ---------------------------------------------------------------------------
# From one matrix to per-layer keys and values
# ---------------------------------------------------------------------------

# Names of the steps in `prefix_steps` and `prefix_shapes`, shown by the notebook's widget.
STEP_NAMES = (
    "提示编码器输出",
    "按 batch 复制",
    "拆成层、键值与注意力头",
    "转置：层与键值维移到最前",
    "每层的 key 或 value",
)


def _check_batch_size(batch_size):
    # A symbolic batch size (a tensor from ops.shape) is passed through unchecked.
    if isinstance(batch_size, numbers.Number):
        return _check_positive_int("batch_size", batch_size)
    return batch_size


def prefix_steps(prompts, batch_size, config) -> list[tuple[str, object]]:
    """Turn the encoder output `[P, 2*L*H]` into per-layer prefixes, returning every intermediate tensor.

    Returns `(step name, tensor)` for the first four steps of `STEP_NAMES`:

    1. the encoder output `[P, 2*L*H]`;
    2. the same rows for every example, `[B, P, 2*L*H]`, because all examples share one prefix;
    3. each row cut into 2*L vectors of width H, each split into heads: `[B, P, 2*L, nh, hd]`.
       Vector 2k is the key and vector 2k + 1 the value of layer k;
    4. transposed to `[2*L, B, P, nh, hd]`, so that indexing the first axis gives one layer's
       key or value in the `[B, P, nh, hd]` layout that `MultiHeadAttention` expects.
    """
    config = _model_config(config)
    batch_size = _check_batch_size(batch_size)
    num_layers, num_heads, head_dim = config.num_layers, config.num_heads, config.head_dim
    width = 2 * num_layers * config.hidden_size
    if len(prompts.shape) != 2 or prompts.shape[1] != width:
        raise ValueError(
            f"prompts 的形状 {tuple(prompts.shape)} 与骨干模型不匹配：应为 [prompt_len, {width}]"
            f"（2 × num_layers={num_layers} × hidden_size={config.hidden_size}）。"
            "请用同一个模型的配置创建 PromptEncoderV2。"
        )
    prompt_len = prompts.shape[0]

    repeated = ops.broadcast_to(prompts[None, :, :], (batch_size, prompt_len, width))  # [B, P, 2*L*H]
    split = ops.reshape(repeated, (batch_size, prompt_len, 2 * num_layers, num_heads, head_dim))  # [B, P, 2L, nh, hd]
    stacked = ops.transpose(split, (2, 0, 1, 3, 4))  # [2L, B, P, nh, hd]
    return list(zip(STEP_NAMES[:4], (prompts, repeated, split, stacked)))


def prefixes_from_prompts(prompts, batch_size, config) -> list[tuple[object, object]]:
    """Cut the encoder output `[P, 2*L*H]` into L pairs `(key, value)`, each `[B, P, nh, hd]`.

    Pass the list as `prefixes=` to a backbone or task head of `peft_lessons.models`.
    The real tokens keep their position ids 0..T-1 (`models.common.default_positions`),
    because a prefix consists of keys and values only: it never goes through the embedding
    layer, so it has no position and no position embedding. BERT therefore keeps [CLS] at
    position 0, and `max_length` can use all `max_positions`.

    NOTE: Hugging Face transformers starts the position ids at the cache length when a model
    gets `past_key_values` (BertEmbeddings in modeling_bert.py, commit 004ad5f). Code that
    passes a prefix that way without `position_ids` gives the real tokens positions P..P+T-1,
    so its results can differ slightly from this module's.
    """
    _, stacked = prefix_steps(prompts, batch_size, config)[-1]  # [2L, B, P, nh, hd]
    num_layers = stacked.shape[0] // 2
    return [(stacked[2 * layer], stacked[2 * layer + 1]) for layer in range(num_layers)]


def prefix_shapes(prompt_len: int, config, batch_size: int = 1) -> list[tuple[str, tuple[int, ...]]]:
    """List `(step name, shape)` for each step from the encoder output to one layer's key, without building anything.

    The names are `STEP_NAMES`. The last step is the shape of each of the 2*L tensors
    (L keys and L values) that `prefixes_from_prompts` returns.
    """
    prompt_len = _check_prompt_len(prompt_len)
    config = _model_config(config)
    batch_size = _check_positive_int("batch_size", batch_size)
    num_layers, hidden = config.num_layers, config.hidden_size
    heads, head_dim = config.num_heads, config.head_dim
    shapes = [
        (prompt_len, 2 * num_layers * hidden),
        (batch_size, prompt_len, 2 * num_layers * hidden),
        (batch_size, prompt_len, 2 * num_layers, heads, head_dim),
        (2 * num_layers, batch_size, prompt_len, heads, head_dim),
        (batch_size, prompt_len, heads, head_dim),
    ]
    return list(zip(STEP_NAMES, shapes))


def prefix_summary(model, prompt_len: int, reparameterization: bool = False, batch_size: int = 1) -> dict:
    """Describe the prefix of a model without building an encoder: shapes, encoder size and its share of the backbone.

    Returns `shapes` (from `prefix_shapes`), `encoder_params` (from `prompt_encoder_v2_params`),
    `backbone_params` and `encoder_percent`, the encoder's size as a percentage of the backbone's.
    """
    backbone = _backbone_of(model)
    encoder_params = prompt_encoder_v2_params(prompt_len, backbone.config, reparameterization)
    backbone_params = count_params(backbone.weights)
    return {
        "shapes": prefix_shapes(prompt_len, backbone.config, batch_size),
        "encoder_params": encoder_params,
        "backbone_params": backbone_params,
        "encoder_percent": 100.0 * encoder_params / backbone_params,
    }


def prefix_attention_mask(model, prompt_len: int, length: int = 8, padding: int = 0) -> np.ndarray:
    """Return the boolean attention mask `[T, P+T]` that layer 0 of `model` uses for one example.

    Row t is query token t; the first P columns are the prefix positions, the other T the real
    tokens. The last `padding` of the T tokens are padding (attention_mask 0). The mask comes
    from the attention layer's own code, so it shows exactly what the model does. Every real
    token may attend to the whole prefix and padding is hidden. A GPT-2 model also keeps its
    causal mask among the real tokens.
    """
    prompt_len = _check_prompt_len(prompt_len)
    length = _check_positive_int("length", length)
    if isinstance(padding, bool) or not isinstance(padding, numbers.Integral) or not 0 <= padding < length:
        raise ValueError(f"padding={padding!r} 无效：需要 0 到 length-1={length - 1} 之间的整数（至少留一个真实 token）。")
    backbone = _backbone_of(model)
    layers = getattr(backbone, "encoder_layers", None) or getattr(backbone, "blocks", None)
    attention = layers[0].attention
    real = np.array([[1] * (length - padding) + [0] * padding], dtype="int32")
    mask = attention._attention_mask(ops.convert_to_tensor(real), 1, length, prompt_len)  # [1, 1, T, P+T] or [1, 1, 1, P+T]
    mask = np.asarray(ops.convert_to_numpy(mask))[0, 0]
    return np.broadcast_to(mask, (length, prompt_len + length)).copy()


# ---------------------------------------------------------------------------
# Models: frozen backbone, trainable prompts and head
# ---------------------------------------------------------------------------


def _batch_size_of(inputs):
    reference = inputs.get("input_ids")
    if reference is None:
        reference = inputs["inputs_embeds"]
    return ops.shape(reference)[0]


class _PrefixModel(keras.Model):
    """A task head on a frozen backbone whose attention layers get prefixes from a `PromptEncoderV2`.

    Setting `trainable = False` on the backbone object passed in stays in effect for later
    users of that object. `train_full_ner` and `prompting.train_classifier_baseline` set it back.
    """

    head_class = None

    def __init__(self, model, prompt_len: int, num_labels: int, reparameterization: bool = False,
                 dropout: float | None = None, **kwargs):
        super().__init__(**kwargs)
        self.task_model = self.head_class(model, num_labels=num_labels, dropout=dropout)
        self.num_labels = num_labels
        self.prompt_encoder = PromptEncoderV2(prompt_len, self.task_model.backbone.config, reparameterization)
        # Frozen only after every argument passed its check, so a rejected call leaves the backbone as it was.
        self.task_model.backbone.trainable = False
        self.built = True

    @property
    def backbone(self):
        return self.task_model.backbone

    @property
    def head(self):
        """The Dense layer that maps hidden states to label logits."""
        return self.task_model.classifier

    @property
    def prompt_len(self) -> int:
        return self.prompt_encoder.prompt_len

    def prefixes(self, batch_size, training=None):
        """Return the L `(key, value)` pairs for a batch, from the current encoder weights."""
        prompts = self.prompt_encoder(training=training)
        return prefixes_from_prompts(prompts, batch_size, self.backbone.config)

    def call(self, inputs, training=None):
        prefixes = self.prefixes(_batch_size_of(inputs), training=training)
        return self.task_model(inputs, prefixes=prefixes, training=training)


class PrefixSequenceClassifier(_PrefixModel):
    """P-Tuning v2 for sentence classification: `models.SequenceClassifier` on a frozen backbone with prefixes.

    Input: the tokenizer's feature dict. Output: float32 logits `[B, num_labels]`. Only the
    prompt encoder and the classification head train. For BERT the pooled [CLS] vector goes
    through the frozen pooler, so the pooler is part of the frozen backbone.
    """

    head_class = SequenceClassifier

    def __init__(self, model, prompt_len: int, num_labels: int = 2, reparameterization: bool = False,
                 dropout: float | None = None, **kwargs):
        kwargs.setdefault("name", "prefix_sequence_classifier")
        super().__init__(model, prompt_len, num_labels, reparameterization, dropout, **kwargs)


class PrefixTokenClassifier(_PrefixModel):
    """P-Tuning v2 for NER: `models.TokenClassifier` on a frozen backbone with prefixes.

    Input: the feature dict of `tokenizer.encode_chars`. Output: float32 logits
    `[B, T, num_labels]`, row t for input position t, as in `data.ner_dataset`.
    """

    head_class = TokenClassifier

    def __init__(self, model, prompt_len: int, num_labels: int = len(data.NER_TAGS), reparameterization: bool = False,
                 dropout: float | None = None, **kwargs):
        kwargs.setdefault("name", "prefix_token_classifier")
        super().__init__(model, prompt_len, num_labels, reparameterization, dropout, **kwargs)


class _InputPromptModel(keras.Model):
    """A task head on a frozen backbone whose input gets P trainable prompt vectors after [CLS] (P-Tuning v1 style).

    The P prompt vectors from a `ptuning.PromptEncoder` are inserted after [CLS], so [CLS]
    keeps position 0 and character i moves from position i + 1 to i + 1 + P. The prompts take
    real positions, so an input of T tokens needs T + P <= max_positions. Only the prompt
    encoder and the head train.
    """

    head_class = None

    def __init__(self, model, prompt_len: int, num_labels: int, reparameterization: str = "lstm",
                 dropout: float | None = None, **kwargs):
        super().__init__(**kwargs)
        prompt_len = _check_prompt_len(prompt_len)
        self.task_model = self.head_class(model, num_labels=num_labels, dropout=dropout)
        self.num_labels = num_labels
        config = self.task_model.backbone.config
        if prompt_len >= config.max_positions:
            raise ValueError(
                f"输入层提示会占用位置：prompt_len={prompt_len} 已达到模型的 max_positions={config.max_positions}，"
                f"放不下文本；请把 prompt_len 设为小于 {config.max_positions} 的值。"
            )
        self.prompt_encoder = PromptEncoder((prompt_len, 0), config.hidden_size, reparameterization)
        self.task_model.backbone.trainable = False
        self.built = True

    @property
    def backbone(self):
        return self.task_model.backbone

    @property
    def head(self):
        return self.task_model.classifier

    @property
    def prompt_len(self) -> int:
        return self.prompt_encoder.num_tokens

    def task_logits(self, inputs, training=None):
        """Run the backbone and head on the input with the prompts inserted; logits cover P+T positions."""
        prompt_len = self.prompt_len
        max_positions = self.backbone.config.max_positions
        length = inputs["input_ids"].shape[1]
        if length is not None and length + prompt_len > max_positions:
            raise ValueError(
                f"输入有 {length} 个位置，加上 {prompt_len} 个输入层提示超过了 max_positions={max_positions}；"
                f"请把 max_length 设为不超过 {max_positions - prompt_len} 的值。"
            )
        token_embeddings = self.backbone.embed_tokens(inputs["input_ids"])  # [B, T, H]
        batch = ops.shape(token_embeddings)[0]
        prompts = ops.cast(self.prompt_encoder(training=training), token_embeddings.dtype)  # [P, H]
        prompts = ops.broadcast_to(prompts[None, :, :], (batch, prompt_len, ops.shape(prompts)[1]))  # [B, P, H]

        def insert_after_cls(values, inserted):
            return ops.concatenate([values[:, :1], inserted, values[:, 1:]], axis=1)

        attention_mask = inputs.get("attention_mask")
        if attention_mask is None:
            attention_mask = ops.ones(ops.shape(inputs["input_ids"]), dtype="int32")
        attention_mask = insert_after_cls(ops.cast(attention_mask, "int32"), ops.ones((batch, prompt_len), "int32"))
        backbone_inputs = {
            "inputs_embeds": insert_after_cls(token_embeddings, prompts),  # [B, P+T, H]
            "attention_mask": attention_mask,  # [B, P+T]
            "token_type_ids": ops.zeros_like(attention_mask),
        }
        return self.task_model(backbone_inputs, training=training)

    def call(self, inputs, training=None):
        return self.task_logits(inputs, training=training)


class InputPromptSequenceClassifier(_InputPromptModel):
    """Sentence-classification baseline in the style of P-Tuning v1: prompts at the input only, backbone frozen.

    Output: float32 logits `[B, num_labels]` from the pooled [CLS] vector, which stays at position 0.
    """

    head_class = SequenceClassifier

    def __init__(self, model, prompt_len: int, num_labels: int = 2, reparameterization: str = "lstm",
                 dropout: float | None = None, **kwargs):
        kwargs.setdefault("name", "input_prompt_sequence_classifier")
        super().__init__(model, prompt_len, num_labels, reparameterization, dropout, **kwargs)


class InputPromptTokenClassifier(_InputPromptModel):
    """NER baseline in the style of P-Tuning v1: trainable prompt vectors at the input only, backbone frozen.

    The output drops the prompt rows again, giving float32 logits `[B, T, num_labels]` aligned
    with the input like `PrefixTokenClassifier`.
    """

    head_class = TokenClassifier

    def __init__(self, model, prompt_len: int, num_labels: int = len(data.NER_TAGS), reparameterization: str = "lstm",
                 dropout: float | None = None, **kwargs):
        kwargs.setdefault("name", "input_prompt_token_classifier")
        super().__init__(model, prompt_len, num_labels, reparameterization, dropout, **kwargs)

    def call(self, inputs, training=None):
        logits = self.task_logits(inputs, training=training)  # [B, P+T, C]
        return ops.concatenate([logits[:, :1], logits[:, 1 + self.prompt_len:]], axis=1)  # [B, T, C]


PROMPT_MODELS = (PrefixSequenceClassifier, PrefixTokenClassifier, InputPromptSequenceClassifier,
                 InputPromptTokenClassifier)


def parameter_counts(model) -> dict:
    """Count the parameters of a prefix or input-prompt model by part.

    Returns `prompt_encoder`, `head`, `backbone`, `total`, `trainable`,
    `prompt_encoder_percent_of_backbone` (encoder size / backbone size, in percent) and
    `trainable_percent` (trainable / total, in percent).
    """
    if not isinstance(model, PROMPT_MODELS):
        raise TypeError(
            f"需要 PrefixSequenceClassifier、PrefixTokenClassifier、InputPromptSequenceClassifier 或 InputPromptTokenClassifier，"
            f"收到 {type(model).__name__}；完整微调的模型请用 training.parameter_report。"
        )
    encoder = count_params(model.prompt_encoder.weights)
    head = count_params(model.head.weights)
    backbone = count_params(model.backbone.weights)
    total = encoder + head + backbone
    trainable = count_params(model.trainable_weights)
    return {
        "prompt_encoder": encoder,
        "head": head,
        "backbone": backbone,
        "total": total,
        "trainable": trainable,
        "prompt_encoder_percent_of_backbone": 100.0 * encoder / backbone,
        "trainable_percent": 100.0 * trainable / total,
    }


# ---------------------------------------------------------------------------
# NER data and entity-level scores
# ---------------------------------------------------------------------------


def _check_tag_sequence(tags, where: str) -> list[str]:
    if isinstance(tags, str):
        raise TypeError(f"{where}应是标签列表，例如 ['B-LOC', 'I-LOC', 'O']，收到字符串 {tags!r}；"
                        "整个参数需要“每个句子一个标签列表”的列表。")
    if isinstance(tags, tuple) and len(tags) == 2 and all(isinstance(part, (list, tuple)) for part in tags):
        raise TypeError(f"{where}看起来是 load_ner() 里的 (字列表, 标签列表) 对；这里只要标签列表，"
                        "例如 [tags for _, tags in ner.test]。")
    tags = list(tags)
    unknown = sorted({repr(tag) for tag in tags if not isinstance(tag, str) or tag not in _TAG_TO_ID})
    if unknown:
        raise ValueError(f"{where}含有不在标签集中的标签 {', '.join(unknown)}；可用标签是 {data.NER_TAGS}。")
    return tags


def entity_scores(true_tags, predicted_tags) -> dict:
    """Compute entity-level precision, recall and F1 of BIO tag sequences with seqeval.

    An entity counts as correct only when its type, start and end all match, so a partly
    found name is one miss and one false positive. This uses seqeval's default mode, which
    the seqeval 1.2.2 documentation calls compatible with the CoNLL script conlleval. In it,
    an I- tag that does not continue an entity of the same type starts a new one, so
    `I-LOC I-LOC` is one LOC and `B-LOC I-ORG` is a LOC followed by an ORG.

    Returns `{"overall": {...}, "PER": {...}, "LOC": {...}, "ORG": {...}}`, each with
    `precision`, `recall`, `f1` and `support` (the number of true entities). "overall" is
    the micro average over all entities. A score with a zero denominator is 0.0.
    """
    from seqeval.metrics import classification_report

    if isinstance(true_tags, str) or isinstance(predicted_tags, str):
        raise TypeError("true_tags 和 predicted_tags 需要“标签列表的列表”，每个句子一个列表，例如 [['B-PER', 'I-PER', 'O']]。")
    true_tags, predicted_tags = list(true_tags), list(predicted_tags)
    if len(true_tags) != len(predicted_tags):
        raise ValueError(
            f"true_tags 有 {len(true_tags)} 个句子，predicted_tags 有 {len(predicted_tags)} 个；两者必须一一对应。"
        )
    if not true_tags:
        raise ValueError("true_tags 为空；请至少传入一个句子的标签。")
    for index, (truth, prediction) in enumerate(zip(true_tags, predicted_tags)):
        truth = _check_tag_sequence(truth, f"true_tags 的第 {index} 个句子")
        prediction = _check_tag_sequence(prediction, f"predicted_tags 的第 {index} 个句子")
        if len(truth) != len(prediction):
            raise ValueError(
                f"第 {index} 个句子的真实标签有 {len(truth)} 个，预测标签有 {len(prediction)} 个；"
                "每个字符需要一个预测标签。"
            )
        true_tags[index], predicted_tags[index] = truth, prediction

    with warnings.catch_warnings():
        # Without any true or predicted entity, seqeval's macro and weighted averages take the mean
        # of an empty array, and NumPy warns. Those averages are not returned here.
        warnings.simplefilter("ignore", RuntimeWarning)
        report = classification_report(true_tags, predicted_tags, output_dict=True, zero_division=0)

    def scores(name):
        row = report.get(name)
        if row is None:
            return {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
        return {"precision": float(row["precision"]), "recall": float(row["recall"]),
                "f1": float(row["f1-score"]), "support": int(row["support"])}

    return {"overall": scores("micro avg"), **{entity_type: scores(entity_type) for entity_type in NER_ENTITY_TYPES}}


def _sentence_chars(sentence, where: str) -> list[str]:
    chars = list(sentence)
    if not all(isinstance(char, str) and len(char) == 1 for char in chars):
        raise TypeError(f"{where}需要字符串或单字符列表，收到 {sentence!r}。")
    if not chars:
        raise ValueError(f"{where}为空；请删去它。")
    return chars


def _check_token_classifier(model) -> None:
    if not isinstance(model, (PrefixTokenClassifier, InputPromptTokenClassifier, TokenClassifier)):
        raise TypeError(
            f"需要 PrefixTokenClassifier、InputPromptTokenClassifier 或 TokenClassifier，收到 {type(model).__name__}。"
        )
    if model.num_labels != len(data.NER_TAGS):
        raise ValueError(
            f"模型输出 {model.num_labels} 个标签，而 NER 标签集 NER_TAGS 有 {len(data.NER_TAGS)} 个；"
            f"请用 num_labels={len(data.NER_TAGS)} 创建模型。"
        )


def predict_tags(model, tokenizer, sentences, max_length: int = 128, batch_size: int = 32) -> list[list[str]]:
    """Predict one BIO tag per character for each sentence, returning lists of tags from `data.NER_TAGS`.

    A sentence is a string or a list of characters. Character i is input position i + 1,
    after [CLS], as in `data.ner_dataset`. Each tag is the argmax of the model's logits, so
    the sequence may contain an I- tag without a B- tag before it (`entity_scores` explains
    how such a tag is read). The last batch is filled up to `batch_size` so every batch has
    the same shape, and the filler rows are dropped.
    """
    _check_token_classifier(model)
    if isinstance(sentences, str):
        raise TypeError(f"sentences 需要句子列表，收到单个字符串 {sentences[:20]!r}；请写成 [sentence]。")
    sentences = [_sentence_chars(sentence, f"第 {index} 个句子") for index, sentence in enumerate(sentences)]
    if not sentences:
        raise ValueError("sentences 为空；请至少传入一个句子。")
    max_length = _check_max_length(max_length, tokenizer)
    batch_size = _check_positive_int("batch_size", batch_size)
    for index, chars in enumerate(sentences):
        if len(chars) > max_length - 2:
            raise ValueError(
                f"第 {index} 个句子有 {len(chars)} 个字符，超过 max_length - 2 = {max_length - 2}；"
                f"请用 load_ner(max_chars={max_length - 2}) 切分句子，或调大 max_length。"
            )

    rows = [tokenizer.encode_chars(chars, max_length) for chars in sentences]
    features = {key: np.concatenate([row[key] for row in rows]) for key in rows[0]}
    filler = -len(sentences) % batch_size
    if filler:
        features = {key: np.concatenate([value, np.repeat(value[:1], filler, axis=0)]) for key, value in features.items()}
    logits = model.predict(features, batch_size=batch_size, verbose=0)[: len(sentences)]  # [N, T, C]
    tag_ids = np.argmax(logits, axis=-1)
    return [[data.NER_TAGS[tag_id] for tag_id in tag_ids[row, 1:1 + len(chars)]] for row, chars in enumerate(sentences)]


def _check_ner_sentences(sentences, name: str, max_length: int) -> list[tuple[list[str], list[str]]]:
    if isinstance(sentences, str) or not hasattr(sentences, "__len__"):
        raise TypeError(f"{name} 需要 (字符列表, 标签列表) 对组成的列表，例如 load_ner().{name}，收到 {type(sentences).__name__}。")
    if len(sentences) == 0:
        raise ValueError(f"{name} 中没有句子；请至少放入一个句子。")
    checked = []
    for index, sentence in enumerate(sentences):
        if not (isinstance(sentence, (tuple, list)) and len(sentence) == 2):
            raise TypeError(f"{name} 的第 {index} 项需要 (字符列表, 标签列表) 二元组，收到 {sentence!r}。")
        chars = _sentence_chars(sentence[0], f"{name} 的第 {index} 个句子")
        tags = _check_tag_sequence(sentence[1], f"{name} 的第 {index} 个句子")
        if len(chars) != len(tags):
            raise ValueError(f"{name} 的第 {index} 个句子有 {len(chars)} 个字符却有 {len(tags)} 个标签；两者必须一一对应。")
        if len(chars) > max_length - 2:
            raise ValueError(
                f"{name} 的第 {index} 个句子有 {len(chars)} 个字符，超过 max_length - 2 = {max_length - 2}；"
                f"请用 load_ner(max_chars={max_length - 2}) 切分句子，或调大 max_length。"
            )
        checked.append((chars, tags))
    return checked


def _ner_splits(ner_data_or_splits, max_length: int):
    """Return checked (train, validation, test or None) from an NERData, a dict or a tuple of splits."""
    source = ner_data_or_splits
    if isinstance(source, data.NERData):
        splits = [source.train, source.validation, source.test]
    elif isinstance(source, dict):
        missing = [name for name in ("train", "validation") if name not in source]
        if missing:
            raise ValueError(f"NER 数据字典缺少 {missing}；需要 'train' 和 'validation'，'test' 可选。")
        splits = [source["train"], source["validation"], source.get("test")]
    elif isinstance(source, (tuple, list)) and len(source) in (2, 3):
        splits = list(source) + [None] * (3 - len(source))
    else:
        raise TypeError(
            f"ner_data_or_splits 需要 load_ner() 的结果、{{'train': ..., 'validation': ..., 'test': ...}} 字典"
            f"或 (train, validation[, test]) 元组，收到 {type(source).__name__}。"
        )
    train = _check_ner_sentences(splits[0], "train", max_length)
    validation = _check_ner_sentences(splits[1], "validation", max_length)
    test = _check_ner_sentences(splits[2], "test", max_length) if splits[2] is not None else None
    return train, validation, test


def _subsample(sentences, train_size, seed):
    if train_size is None:
        return sentences
    train_size = _check_positive_int("train_size", train_size)
    if train_size > len(sentences):
        raise ValueError(
            f"train_size={train_size} 超过了训练集的句子数 {len(sentences)}；请把 train_size 设为不超过 {len(sentences)} 的值，"
            "或设为 None 使用全部句子。"
        )
    chosen = np.sort(np.random.default_rng(seed).choice(len(sentences), size=train_size, replace=False))
    return [sentences[index] for index in chosen]


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------


def _check_learning_rate(learning_rate, default: float) -> float:
    if learning_rate is None:
        return default
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, numbers.Real) or not learning_rate > 0:
        raise ValueError(f"learning_rate 必须是正数或 None（使用默认值 {default:g}），收到 {learning_rate!r}。")
    return float(learning_rate)


def _classification_num_labels(num_labels, splits) -> int:
    """Return the label count: `num_labels`, or max label + 1 (at least 2), after checking every label of every split."""
    observed = sorted({int(label) for _, split in splits for label in np.asarray(split.labels).tolist()})
    if observed and observed[0] < 0:
        raise ValueError(f"标签必须是从 0 开始的非负整数，收到负数标签 {[label for label in observed if label < 0]}。")
    if num_labels is None:
        return max(2, observed[-1] + 1 if observed else 2)
    if isinstance(num_labels, bool) or not isinstance(num_labels, numbers.Integral) or num_labels < 2:
        raise ValueError(f"num_labels 必须是不小于 2 的整数或 None（按数据推断），收到 {num_labels!r}。")
    for name, split in splits:
        bad = sorted({int(label) for label in np.asarray(split.labels).tolist()} - set(range(num_labels)))
        if bad:
            raise ValueError(
                f"{name} 中有标签 {bad}，而 num_labels={num_labels} 只允许 0 到 {num_labels - 1}；"
                f"请把 num_labels 设为 {max(bad) + 1} 或设为 None，或检查数据的标签。"
            )
    return int(num_labels)


def _train_classifier(method, build_model, model_name_or_model, tokenizer, train_split, validation_split, *,
                      test_split, k, num_labels, max_length, batch_size, epochs, learning_rate, patience, seed,
                      jit_compile, verbose) -> dict:
    language_model, tokenizer = _resolve_model_and_tokenizer(model_name_or_model, tokenizer)
    train_split = _few_shot_splits(train_split, validation_split, test_split, k, seed)
    splits = [("train_split", train_split), ("validation_split", validation_split)]
    if test_split is not None:
        splits.append(("test_split", test_split))
    num_labels = _classification_num_labels(num_labels, splits)
    max_length = _check_max_length(max_length, tokenizer)
    _check_max_length_for_model(max_length, language_model)
    batch_size = _check_positive_int("batch_size", batch_size)

    set_seed(seed)
    model = build_model(language_model, num_labels)
    train_ds = data.classification_dataset(tokenizer, train_split, max_length, batch_size, shuffle=True, seed=seed)
    validation_ds = data.classification_dataset(tokenizer, validation_split, max_length, batch_size, shuffle=False)
    fit = fit_with_early_stopping(model, train_ds, validation_ds, epochs=epochs, learning_rate=learning_rate,
                                  patience=patience, jit_compile=jit_compile, verbose=verbose)

    def metrics(split):
        probabilities = _classifier_probabilities(model, tokenizer, split, max_length, batch_size)
        return evaluate_probabilities(split.labels, probabilities)

    return {
        "method": method,
        "model": model,
        "history": fit["history"],
        "best_epoch": fit["best_epoch"],
        "train_size": len(train_split),
        "trainable_params": parameter_report(model).trainable,
        "seconds": fit["seconds"],
        "validation": metrics(validation_split),
        "test": metrics(test_split) if test_split is not None else None,
    }


def train_prefix_classifier(model_name_or_model, tokenizer, train_split, validation_split, *, test_split=None,
                            k: int | None = None, prompt_len: int = 16, reparameterization: bool = False,
                            num_labels: int | None = None, max_length: int = 64, batch_size: int = 16,
                            epochs: int = 10, learning_rate: float | None = None, patience: int = 2, seed: int = 0,
                            jit_compile: bool = True, verbose: int = 0) -> dict:
    """Train a P-Tuning v2 prefix and a classification head on a frozen backbone, with AdamW.

    `k`, `patience` and early stopping on validation accuracy work as in `prompting.train_pet`.
    `num_labels=None` uses the largest label in the splits plus one (at least 2).
    `learning_rate=None` uses PROMPT_LEARNING_RATE. A model passed as an object has its
    backbone frozen in place, and a name loads a fresh copy.

    Returns a dict with the keys of `ptuning.train_ptuning`: method "P-Tuning v2", the
    PrefixSequenceClassifier, history, best epoch, training size, trainable parameter count,
    seconds, and metrics (`evaluate_probabilities`) on the validation and, if given, test split.
    """
    prompt_len = _check_prompt_len(prompt_len)
    _check_reparameterization(reparameterization)
    learning_rate = _check_learning_rate(learning_rate, PROMPT_LEARNING_RATE)

    def build(language_model, num_labels):
        return PrefixSequenceClassifier(language_model, prompt_len, num_labels, reparameterization)

    return _train_classifier("P-Tuning v2", build, model_name_or_model, tokenizer, train_split, validation_split,
                             test_split=test_split, k=k, num_labels=num_labels, max_length=max_length,
                             batch_size=batch_size, epochs=epochs, learning_rate=learning_rate, patience=patience,
                             seed=seed, jit_compile=jit_compile, verbose=verbose)


def train_input_prompt_classifier(model_name_or_model, tokenizer, train_split, validation_split, *, test_split=None,
                                  k: int | None = None, prompt_len: int = 16, reparameterization: str = "lstm",
                                  num_labels: int | None = None, max_length: int = 64, batch_size: int = 16,
                                  epochs: int = 10, learning_rate: float | None = None, patience: int = 2,
                                  seed: int = 0, jit_compile: bool = True, verbose: int = 0) -> dict:
    """Train P-Tuning-v1-style input prompts and a classification head on a frozen backbone.

    Takes the arguments of `train_prefix_classifier` and returns a dict with the same keys
    (`method` is "输入层提示（P-Tuning v1 式）"). The prompts take real positions, so
    `max_length + prompt_len` must not exceed the model's `max_positions`.
    `reparameterization` is "lstm", "mlp" or "none", as in `ptuning.PromptEncoder`.
    """
    prompt_len = _check_prompt_len(prompt_len)
    learning_rate = _check_learning_rate(learning_rate, PROMPT_LEARNING_RATE)
    language_model, tokenizer = _resolve_model_and_tokenizer(model_name_or_model, tokenizer)
    _check_input_prompt_room(max_length, prompt_len, language_model)

    def build(language_model, num_labels):
        return InputPromptSequenceClassifier(language_model, prompt_len, num_labels, reparameterization)

    return _train_classifier("输入层提示（P-Tuning v1 式）", build, language_model, tokenizer, train_split,
                             validation_split, test_split=test_split, k=k, num_labels=num_labels,
                             max_length=max_length, batch_size=batch_size, epochs=epochs, learning_rate=learning_rate,
                             patience=patience, seed=seed, jit_compile=jit_compile, verbose=verbose)


def _check_input_prompt_room(max_length, prompt_len: int, language_model, hint: str = "或减小 prompt_len") -> int:
    """Check that `max_length` real tokens and `prompt_len` input prompts fit in the model's positions."""
    max_positions = language_model.config.max_positions
    max_length = _check_positive_int("max_length", max_length)
    if max_length + prompt_len > max_positions:
        raise ValueError(
            f"输入层提示占用位置：max_length={max_length} 加上 prompt_len={prompt_len} 超过了模型的 "
            f"max_positions={max_positions}；请把 max_length 设为不超过 {max_positions - prompt_len} 的值，{hint}。"
        )
    return max_length


class EntityF1Callback(keras.callbacks.Callback):
    """Write the validation entity F1 into the epoch logs as `val_entity_f1`, so EarlyStopping can monitor it.

    Place it before EarlyStopping in the callback list, because Keras calls callbacks in list order.
    """

    def __init__(self, tokenizer, sentences, max_length: int, batch_size: int):
        super().__init__()
        self.tokenizer = tokenizer
        self.chars = [chars for chars, _ in sentences]
        self.tags = [tags for _, tags in sentences]
        self.max_length = max_length
        self.batch_size = batch_size

    def on_epoch_end(self, epoch, logs=None):
        predicted = predict_tags(self.model, self.tokenizer, self.chars, self.max_length, self.batch_size)
        if logs is not None:
            logs["val_entity_f1"] = entity_scores(self.tags, predicted)["overall"]["f1"]


def _fit_ner(model, tokenizer, train, validation, *, max_length, batch_size, epochs, learning_rate, patience, seed,
             jit_compile, verbose) -> dict:
    """Fit a token classifier with AdamW and stop early on the validation entity F1, keeping the best epoch.

    The loss is the mean cross-entropy per real character: [CLS], [SEP], padding and filler
    rows have sample weight 0 and are left out of numerator and denominator. The history also
    contains the token-level accuracy over real characters (`accuracy`, `val_accuracy`).
    `seconds` includes the validation tagging after each epoch.
    """
    epochs = _check_positive_int("epochs", epochs)
    patience = _check_positive_int("patience", patience)
    train_ds = data.ner_dataset(tokenizer, train, max_length, batch_size, shuffle=True, seed=seed)
    validation_ds = data.ner_dataset(tokenizer, validation, max_length, batch_size, shuffle=False)
    model.compile(
        optimizer=keras.optimizers.AdamW(learning_rate=learning_rate, weight_decay=0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="mean_with_sample_weight"),
        weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        jit_compile=jit_compile,
    )
    callbacks = [
        EntityF1Callback(tokenizer, validation, max_length, batch_size),
        keras.callbacks.EarlyStopping(monitor="val_entity_f1", mode="max", patience=patience,
                                      restore_best_weights=True),
    ]
    with warnings.catch_warnings(), timer() as clock:
        # BERT's pooler is not on the token-classification path, so a trainable BERT would warn on every step.
        warnings.filterwarnings("ignore", message=r"Gradients do not exist for variables \['pooler")
        history = model.fit(train_ds, validation_data=validation_ds, epochs=epochs, callbacks=callbacks,
                            shuffle=False, verbose=verbose)
    return {
        "history": {key: [float(value) for value in values] for key, values in history.history.items()},
        "best_epoch": int(np.argmax(history.history["val_entity_f1"])) + 1,
        "seconds": clock["seconds"],
    }


def _train_ner(method, build_model, model_name_or_model, tokenizer, ner_data_or_splits, *, max_length, batch_size,
               epochs, learning_rate, patience, seed, train_size, jit_compile, verbose) -> dict:
    language_model, tokenizer = _resolve_model_and_tokenizer(model_name_or_model, tokenizer)
    max_length = _check_max_length(max_length, tokenizer)
    _check_max_length_for_model(max_length, language_model)
    batch_size = _check_positive_int("batch_size", batch_size)
    train, validation, test = _ner_splits(ner_data_or_splits, max_length)
    train = _subsample(train, train_size, seed)

    set_seed(seed)
    model = build_model(language_model)
    fit = _fit_ner(model, tokenizer, train, validation, max_length=max_length, batch_size=batch_size, epochs=epochs,
                   learning_rate=learning_rate, patience=patience, seed=seed, jit_compile=jit_compile,
                   verbose=verbose)

    def metrics(sentences):
        predicted = predict_tags(model, tokenizer, [chars for chars, _ in sentences], max_length, batch_size)
        return entity_scores([tags for _, tags in sentences], predicted)

    return {
        "method": method,
        "model": model,
        "history": fit["history"],
        "best_epoch": fit["best_epoch"],
        "train_size": len(train),
        "trainable_params": parameter_report(model).trainable,
        "seconds": fit["seconds"],
        "validation": metrics(validation),
        "test": metrics(test) if test is not None else None,
    }


def train_prefix_ner(model_name_or_model, tokenizer, ner_data_or_splits, *, prompt_len: int = 16,
                     reparameterization: bool = False, max_length: int = 128, batch_size: int = 16, epochs: int = 10,
                     learning_rate: float | None = None, patience: int = 2, seed: int = 0,
                     train_size: int | None = None, jit_compile: bool = True, verbose: int = 0) -> dict:
    """Train a P-Tuning v2 prefix and a token-classification head for NER on a frozen backbone.

    `ner_data_or_splits` is the result of `data.load_ner()`, a dict with "train", "validation"
    and optionally "test", or a tuple `(train, validation[, test])` of (characters, tags) lists.
    Every sentence must fit in `max_length - 2` characters. `train_size` draws that many
    training sentences with `seed`. Training stops after `patience` epochs without a better
    validation entity F1 and keeps the best epoch. `learning_rate=None` uses
    PROMPT_LEARNING_RATE. A model passed as an object has its backbone frozen in place, and a
    name loads a fresh copy.

    Returns `method` ("P-Tuning v2"), `model`, `history` (loss, token accuracy and
    `val_entity_f1` per epoch), `best_epoch`, `train_size`, `trainable_params`, `seconds`,
    and `entity_scores` on the validation and, if given, test split.
    """
    prompt_len = _check_prompt_len(prompt_len)
    _check_reparameterization(reparameterization)
    learning_rate = _check_learning_rate(learning_rate, PROMPT_LEARNING_RATE)

    def build(language_model):
        return PrefixTokenClassifier(language_model, prompt_len, reparameterization=reparameterization)

    return _train_ner("P-Tuning v2", build, model_name_or_model, tokenizer, ner_data_or_splits,
                      max_length=max_length, batch_size=batch_size, epochs=epochs, learning_rate=learning_rate,
                      patience=patience, seed=seed, train_size=train_size, jit_compile=jit_compile, verbose=verbose)


def train_full_ner(model_name_or_model, tokenizer, ner_data_or_splits, *, max_length: int = 128, batch_size: int = 16,
                   epochs: int = 10, learning_rate: float | None = None, patience: int = 2, seed: int = 0,
                   train_size: int | None = None, jit_compile: bool = True, verbose: int = 0) -> dict:
    """Fine-tune the whole backbone with a token-classification head for NER, the baseline for P-Tuning v2.

    Takes the arguments of `train_prefix_ner` without the prompt options and returns a dict
    with the same keys (`method` is "全量微调"). `learning_rate=None` uses FULL_LEARNING_RATE.
    A model passed as an object is trained in place, even if a prompt method froze it before.
    """
    learning_rate = _check_learning_rate(learning_rate, FULL_LEARNING_RATE)

    def build(language_model):
        _backbone_of(language_model).trainable = True
        return TokenClassifier(language_model, num_labels=len(data.NER_TAGS))

    return _train_ner("全量微调", build, model_name_or_model, tokenizer, ner_data_or_splits, max_length=max_length,
                      batch_size=batch_size, epochs=epochs, learning_rate=learning_rate, patience=patience, seed=seed,
                      train_size=train_size, jit_compile=jit_compile, verbose=verbose)


def train_input_prompt_ner(model_name_or_model, tokenizer, ner_data_or_splits, *, prompt_len: int = 16,
                           reparameterization: str = "lstm", max_length: int | None = None, batch_size: int = 16,
                           epochs: int = 10, learning_rate: float | None = None, patience: int = 2, seed: int = 0,
                           train_size: int | None = None, jit_compile: bool = True, verbose: int = 0) -> dict:
    """Train P-Tuning-v1-style input prompts and a token-classification head for NER on a frozen backbone.

    Takes the arguments of `train_prefix_ner` and returns a dict with the same keys
    (`method` is "输入层提示（P-Tuning v1 式）"). The prompts take real positions, so
    `max_length + prompt_len` must not exceed the model's `max_positions`. `max_length=None`
    uses `max_positions - prompt_len`, and sentences must then fit in `max_length - 2`
    characters, for example through `load_ner(max_chars=...)`. `reparameterization` is
    "lstm", "mlp" or "none", as in `ptuning.PromptEncoder`.
    """
    prompt_len = _check_prompt_len(prompt_len)
    language_model, tokenizer = _resolve_model_and_tokenizer(model_name_or_model, tokenizer)
    max_positions = language_model.config.max_positions
    if max_length is None:
        max_length = max_positions - prompt_len
    max_length = _check_input_prompt_room(max_length, prompt_len, language_model,
                                          hint=f"并用 load_ner(max_chars={max_positions - prompt_len - 2}) 切分句子")
    learning_rate = _check_learning_rate(learning_rate, PROMPT_LEARNING_RATE)

    def build(language_model):
        return InputPromptTokenClassifier(language_model, prompt_len, reparameterization=reparameterization)

    return _train_ner("输入层提示（P-Tuning v1 式）", build, language_model, tokenizer, ner_data_or_splits,
                      max_length=max_length, batch_size=batch_size, epochs=epochs, learning_rate=learning_rate,
                      patience=patience, seed=seed, train_size=train_size, jit_compile=jit_compile, verbose=verbose)
