"""Task heads on top of a backbone: sequence classification and token classification."""

from __future__ import annotations

import keras
from keras import ops

from .attention import weight_init
from .bert import BertForMaskedLM, BertModel
from .config import ModelConfig
from .gpt2 import GPT2LMHeadModel, GPT2Model


def build_language_model(config: ModelConfig):
    """Create a randomly initialised GPT2LMHeadModel or BertForMaskedLM for `config`."""
    if config.model_type == "gpt2":
        return GPT2LMHeadModel(config)
    return BertForMaskedLM(config)


def _backbone_of(model):
    backbone = getattr(model, "backbone", model)
    if not isinstance(backbone, (GPT2Model, BertModel)):
        raise TypeError(
            f"需要 GPT2Model / BertModel 或带 .backbone 的语言模型，收到 {type(model).__name__}；"
            "请传入 load_llm(...) 的返回值。"
        )
    return backbone


def _check_num_labels(num_labels):
    if not isinstance(num_labels, int) or isinstance(num_labels, bool) or num_labels < 2:
        raise ValueError(f"num_labels 必须是不小于 2 的整数，收到 {num_labels!r}。")


class SequenceClassifier(keras.Model):
    """Sentence classifier: one vector per input, then dropout and a Dense layer to `num_labels` logits.

    BERT uses its pooled `[CLS]` vector (as BertForSequenceClassification does); GPT-2
    uses the hidden state of the last real token (as GPT2ForSequenceClassification does).
    Input: the backbone's feature dict. Output: float32 logits `[B, num_labels]`.
    """

    def __init__(self, model, num_labels: int = 2, dropout: float | None = None, **kwargs):
        kwargs.setdefault("name", "sequence_classifier")
        super().__init__(**kwargs)
        _check_num_labels(num_labels)
        self.backbone = _backbone_of(model)
        config = self.backbone.config
        self.num_labels = num_labels
        self.dropout = keras.layers.Dropout(config.dropout if dropout is None else dropout)
        self.classifier = keras.layers.Dense(num_labels, kernel_initializer=weight_init(), name="classifier")
        self.classifier.build((None, config.hidden_size))
        self.built = True

    def features(self, hidden, attention_mask):
        """Return one vector `[B, H]` per example from the hidden states `[B, T, H]`."""
        if isinstance(self.backbone, BertModel):
            return self.backbone.pool(hidden)
        if attention_mask is None:
            return hidden[:, -1, :]
        last = ops.sum(ops.cast(attention_mask, "int32"), axis=1) - 1  # index of the last real token
        last = ops.maximum(last, 0)
        return ops.take_along_axis(hidden, last[:, None, None], axis=1)[:, 0, :]

    def call(self, inputs, prefixes=None, training=None):
        hidden = self.backbone(inputs, prefixes=prefixes, training=training)
        mask = inputs.get("attention_mask") if isinstance(inputs, dict) else None
        pooled = self.dropout(self.features(hidden, mask), training=training)
        return ops.cast(self.classifier(pooled), "float32")


class TokenClassifier(keras.Model):
    """Token classifier (for NER): dropout and a Dense layer on every hidden state, logits `[B, T, num_labels]`."""

    def __init__(self, model, num_labels: int, dropout: float | None = None, **kwargs):
        kwargs.setdefault("name", "token_classifier")
        super().__init__(**kwargs)
        _check_num_labels(num_labels)
        self.backbone = _backbone_of(model)
        config = self.backbone.config
        self.num_labels = num_labels
        self.dropout = keras.layers.Dropout(config.dropout if dropout is None else dropout)
        self.classifier = keras.layers.Dense(num_labels, kernel_initializer=weight_init(), name="classifier")
        self.classifier.build((None, None, config.hidden_size))
        self.built = True

    def call(self, inputs, prefixes=None, training=None):
        hidden = self.backbone(inputs, prefixes=prefixes, training=training)
        return ops.cast(self.classifier(self.dropout(hidden, training=training)), "float32")
