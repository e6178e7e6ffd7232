"""GPT-2 architecture: a pre-LayerNorm Transformer decoder with learned positions.

Shape legend: B batch, T tokens, H hidden size, V vocabulary size.
"""

from __future__ import annotations

import keras
from keras import ops

from .attention import MultiHeadAttention, activation_fn, weight_init
from .common import check_prefixes, default_positions, unpack_inputs
from .config import ModelConfig


class GPT2Block(keras.layers.Layer):
    """One decoder block: x + attn(ln_1(x)), then x + mlp(ln_2(x))."""

    def __init__(self, config: ModelConfig, **kwargs):
        super().__init__(**kwargs)
        eps = config.layer_norm_eps
        self.ln_1 = keras.layers.LayerNormalization(epsilon=eps, name="ln_1")
        self.attention = MultiHeadAttention(
            config.hidden_size, config.num_heads, dropout=config.attention_dropout, causal=True, name="attention"
        )
        self.ln_2 = keras.layers.LayerNormalization(epsilon=eps, name="ln_2")
        self.ffn_intermediate = keras.layers.Dense(
            config.intermediate_size, activation=activation_fn(config.hidden_act), kernel_initializer=weight_init(), name="ffn_intermediate"
        )
        self.ffn_output = keras.layers.Dense(config.hidden_size, kernel_initializer=weight_init(), name="ffn_output")
        self.dropout = keras.layers.Dropout(config.dropout)

    def build(self, input_shape):
        self.ln_1.build(input_shape)
        self.attention.build(input_shape)
        self.ln_2.build(input_shape)
        self.ffn_intermediate.build(input_shape)
        self.ffn_output.build(input_shape[:-1] + (self.ffn_intermediate.units,))
        self.built = True

    def call(self, x, attention_mask=None, prefix=None, training=None):
        attended = self.attention(self.ln_1(x), attention_mask=attention_mask, prefix=prefix, training=training)
        x = x + self.dropout(attended, training=training)
        hidden = self.ffn_output(self.ffn_intermediate(self.ln_2(x)))
        return x + self.dropout(hidden, training=training)


class GPT2Model(keras.Model):
    """GPT-2 backbone: returns the final hidden states `[B, T, H]` (after `ln_f`).

    Inputs: a tensor of ids `[B, T]` or a dict with `input_ids` or `inputs_embeds`
    (`[B, T, H]`, used by P-Tuning), and optional `attention_mask` and `position_ids`.
    `prefixes` is an optional list with one `(key, value)` pair per layer (P-Tuning v2).
    """

    def __init__(self, config: ModelConfig, **kwargs):
        kwargs.setdefault("name", "gpt2")
        super().__init__(**kwargs)
        self.config = config
        self.token_embedding = keras.layers.Embedding(config.vocab_size, config.hidden_size, embeddings_initializer=weight_init(), name="token_embedding")
        self.position_embedding = keras.layers.Embedding(
            config.max_positions, config.hidden_size, embeddings_initializer=weight_init(), name="position_embedding"
        )
        self.embedding_dropout = keras.layers.Dropout(config.dropout)
        self.blocks = [GPT2Block(config, name=f"block_{i}") for i in range(config.num_layers)]
        self.ln_f = keras.layers.LayerNormalization(epsilon=config.layer_norm_eps, name="ln_f")
        self.build_all()

    def build_all(self):
        """Create every weight now, so that loading and counting parameters need no forward pass."""
        hidden_shape = (None, None, self.config.hidden_size)
        self.token_embedding.build((None, None))
        self.position_embedding.build((None, None))
        for block in self.blocks:
            block.build(hidden_shape)
        self.ln_f.build(hidden_shape)
        self.built = True

    def embed_tokens(self, input_ids):
        """Look up token embeddings `[B, T, H]`; P-Tuning mixes its prompt vectors into these."""
        return self.token_embedding(input_ids)

    def call(self, inputs, prefixes=None, training=None):
        inputs = unpack_inputs(inputs, self.config.max_positions)
        if inputs.get("input_ids") is not None:
            embeddings = self.embed_tokens(inputs["input_ids"])
        else:
            embeddings = inputs["inputs_embeds"]
        batch, length = ops.shape(embeddings)[0], ops.shape(embeddings)[1]
        positions = inputs.get("position_ids")
        if positions is None:
            positions = default_positions(batch, length)
        x = embeddings + self.position_embedding(positions)
        x = self.embedding_dropout(x, training=training)

        attention_mask = inputs.get("attention_mask")
        for block, prefix in zip(self.blocks, check_prefixes(prefixes, len(self.blocks))):
            x = block(x, attention_mask=attention_mask, prefix=prefix, training=training)
        return self.ln_f(x)


class GPT2LMHeadModel(keras.Model):
    """GPT-2 with its language-model head, tied to the token embedding: returns logits `[B, T, V]` in float32."""

    def __init__(self, config: ModelConfig, **kwargs):
        kwargs.setdefault("name", "gpt2_lm")
        super().__init__(**kwargs)
        self.config = config
        self.backbone = GPT2Model(config, name="gpt2")
        self.built = True

    def logits_from_hidden(self, hidden):
        """Project hidden states `[B, T, H]` onto the vocabulary with the tied embedding matrix."""
        embedding_matrix = ops.cast(self.backbone.token_embedding.embeddings, hidden.dtype)
        logits = ops.matmul(hidden, ops.transpose(embedding_matrix))  # [B, T, V]
        return ops.cast(logits, "float32")

    def call(self, inputs, prefixes=None, training=None):
        hidden = self.backbone(inputs, prefixes=prefixes, training=training)
        return self.logits_from_hidden(hidden)
