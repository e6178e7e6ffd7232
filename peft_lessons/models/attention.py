"""Multi-head self-attention with separate projections and an optional per-layer prefix.

Shape legend: B batch, T real tokens, P prefix length, H hidden size, nh heads, hd = H / nh.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops


def weight_init():
    """Return the initializer Hugging Face uses for GPT-2 and BERT weights: normal with std 0.02.

    Keras' default Glorot init is about three times larger at width 256. With post-LayerNorm
    BERT that larger noise drowned the token signal, and pretraining stalled at the unigram loss.
    """
    return keras.initializers.RandomNormal(stddev=0.02)


def activation_fn(name: str):
    """Return the activation that Hugging Face calls `name`."""
    if name == "gelu":
        return lambda x: keras.activations.gelu(x, approximate=False)
    if name in ("gelu_new", "gelu_pytorch_tanh"):
        return lambda x: keras.activations.gelu(x, approximate=True)
    if name == "relu":
        return keras.activations.relu
    raise ValueError(f"不支持的激活函数 {name!r}。")


class MultiHeadAttention(keras.layers.Layer):
    """Self-attention whose query, key, value and output projections are separate Dense layers.

    The sub-layers are named `query`, `key`, `value` and `output`, so PEFT code (LoRA) finds
    them by name.

    Call arguments:
        hidden: `[B, T, H]`.
        attention_mask: `[B, T]`, 1 for real tokens and 0 for padding, or None.
        prefix: optional `(prefix_key, prefix_value)`, each `[B, P, nh, hd]` (P-Tuning v2).
            Every real token may attend to every prefix position; causal masking, when on,
            applies among the real tokens only.

    Returns `[B, T, H]`.
    """

    def __init__(self, hidden_size, num_heads, dropout=0.0, causal=False, **kwargs):
        super().__init__(**kwargs)
        if hidden_size % num_heads != 0:
            raise ValueError(
                f"hidden_size={hidden_size} 不能被 num_heads={num_heads} 整除；请让 hidden_size 是 num_heads 的整数倍。"
            )
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        self.causal = causal
        self.query = keras.layers.Dense(hidden_size, kernel_initializer=weight_init(), name="query")
        self.key = keras.layers.Dense(hidden_size, kernel_initializer=weight_init(), name="key")
        self.value = keras.layers.Dense(hidden_size, kernel_initializer=weight_init(), name="value")
        # `output` is a read-only property of keras.layers.Layer, hence the attribute name.
        self.output_dense = keras.layers.Dense(hidden_size, kernel_initializer=weight_init(), name="output")
        self.attention_dropout = keras.layers.Dropout(dropout)

    def build(self, input_shape):
        for dense in (self.query, self.key, self.value):
            dense.build(input_shape)
        self.output_dense.build(input_shape[:-1] + (self.hidden_size,))
        self.built = True

    def _split_heads(self, x, batch, length):
        # [B, T, H] -> [B, T, nh, hd]
        return ops.reshape(x, (batch, length, self.num_heads, self.head_dim))

    def _check_prefix(self, prefix, batch):
        if not (isinstance(prefix, (tuple, list)) and len(prefix) == 2):
            raise ValueError("prefix 必须是 (prefix_key, prefix_value) 二元组，每个形状为 [batch, prefix_len, num_heads, head_dim]。")
        for name, tensor in zip(("prefix_key", "prefix_value"), prefix):
            shape = tuple(tensor.shape)
            expected_tail = (self.num_heads, self.head_dim)
            if len(shape) != 4 or tuple(shape[2:]) != expected_tail:
                raise ValueError(
                    f"{name} 的形状 {shape} 与本层不匹配：应为 [batch, prefix_len, {self.num_heads}, {self.head_dim}]"
                    f"（num_heads={self.num_heads}，head_dim={self.head_dim}）。请按骨干模型的配置生成前缀。"
                )
            if shape[0] is not None and isinstance(batch, int) and shape[0] != batch:
                raise ValueError(f"{name} 的 batch 维是 {shape[0]}，而输入的 batch 是 {batch}；两者必须相等。")
        if tuple(prefix[0].shape) != tuple(prefix[1].shape):
            raise ValueError(
                f"prefix_key 形状 {tuple(prefix[0].shape)} 与 prefix_value 形状 {tuple(prefix[1].shape)} 不同；两者必须一致。"
            )

    def call(self, hidden, attention_mask=None, prefix=None, training=None):
        batch = ops.shape(hidden)[0]
        length = ops.shape(hidden)[1]

        q = self._split_heads(self.query(hidden), batch, length)  # [B, T, nh, hd]
        k = self._split_heads(self.key(hidden), batch, length)
        v = self._split_heads(self.value(hidden), batch, length)

        prefix_len = 0
        if prefix is not None:
            self._check_prefix(prefix, hidden.shape[0])
            prefix_key = ops.cast(prefix[0], k.dtype)
            prefix_value = ops.cast(prefix[1], v.dtype)
            prefix_len = prefix[0].shape[1]
            k = ops.concatenate([prefix_key, k], axis=1)  # [B, P+T, nh, hd]
            v = ops.concatenate([prefix_value, v], axis=1)

        # Scores and softmax run in float32, so masking with the float32 minimum cannot overflow
        # under mixed precision.
        scores = ops.einsum("bqhd,bkhd->bhqk", q, k)  # [B, nh, T, P+T]
        scores = ops.cast(scores, "float32") / math.sqrt(self.head_dim)

        mask = self._attention_mask(attention_mask, batch, length, prefix_len)  # bool, broadcastable
        if mask is not None:
            scores = ops.where(mask, scores, np.finfo(np.float32).min)
        probs = ops.softmax(scores, axis=-1)
        probs = self.attention_dropout(probs, training=training)
        probs = ops.cast(probs, v.dtype)

        context = ops.einsum("bhqk,bkhd->bqhd", probs, v)  # [B, T, nh, hd]
        context = ops.reshape(context, (batch, length, self.hidden_size))  # [B, T, H]
        return self.output_dense(context)

    def _attention_mask(self, attention_mask, batch, length, prefix_len):
        """Return a boolean mask `[B or 1, 1, T, P+T]`: True where a query may look at a key."""
        mask = None
        if attention_mask is not None:
            key_mask = ops.cast(attention_mask, "bool")  # [B, T]
            if prefix_len:
                key_mask = ops.concatenate([ops.ones((batch, prefix_len), dtype="bool"), key_mask], axis=1)
            mask = key_mask[:, None, None, :]  # [B, 1, 1, P+T]
        if self.causal:
            rows = ops.arange(length)[:, None]
            cols = ops.arange(length)[None, :]
            causal = rows >= cols  # [T, T]
            if prefix_len:
                causal = ops.concatenate([ops.ones((length, prefix_len), dtype="bool"), causal], axis=1)
            causal = causal[None, None, :, :]  # [1, 1, T, P+T]
            mask = causal if mask is None else ops.logical_and(mask, causal)
        return mask

    def get_config(self):
        config = super().get_config()
        config.update(hidden_size=self.hidden_size, num_heads=self.num_heads, causal=self.causal)
        return config
