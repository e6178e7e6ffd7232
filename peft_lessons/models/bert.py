"""BERT architecture: a post-LayerNorm Transformer encoder with token types, a pooler and an MLM head.

Shape legend: B batch, T tokens, H hidden size, V vocabulary size.
"""

from __future__ import annotations

import keras
from keras import ops

from .attention import MultiHeadAttention, activation_fn, weight_init
from .common import check_prefixes, default_positions, unpack_inputs
from .config import ModelConfig


class BertLayer(keras.layers.Layer):
    """One encoder layer: x = LN(x + attn(x)), then x = LN(x + ffn(x))."""

    def __init__(self, config: ModelConfig, **kwargs):
        super().__init__(**kwargs)
        eps = config.layer_norm_eps
        self.attention = MultiHeadAttention(
            config.hidden_size, config.num_heads, dropout=config.attention_dropout, causal=False, name="attention"
        )
        self.attention_norm = keras.layers.LayerNormalization(epsilon=eps, name="attention_norm")
        self.ffn_intermediate = keras.layers.Dense(
            config.intermediate_size, activation=activation_fn(config.hidden_act), kernel_initializer=weight_init(), name="ffn_intermediate"
        )
        self.ffn_output = keras.layers.Dense(config.hidden_size, kernel_initializer=weight_init(), name="ffn_output")
        self.output_norm = keras.layers.LayerNormalization(epsilon=eps, name="output_norm")
        self.dropout = keras.layers.Dropout(config.dropout)

    def build(self, input_shape):
        self.attention.build(input_shape)
        self.attention_norm.build(input_shape)
        self.ffn_intermediate.build(input_shape)
        self.ffn_output.build(input_shape[:-1] + (self.ffn_intermediate.units,))
        self.output_norm.build(input_shape)
        self.built = True

    def call(self, x, attention_mask=None, prefix=None, training=None):
        attended = self.attention(x, attention_mask=attention_mask, prefix=prefix, training=training)
        x = self.attention_norm(x + self.dropout(attended, training=training))
        hidden = self.ffn_output(self.ffn_intermediate(x))
        return self.output_norm(x + self.dropout(hidden, training=training))


class BertModel(keras.Model):
    """BERT backbone: returns the sequence output `[B, T, H]`; `pool()` gives the pooled `[CLS]` vector.

    Inputs: a tensor of ids `[B, T]` or a dict with `input_ids` or `inputs_embeds`
    (`[B, T, H]`, used by P-Tuning), and optional `attention_mask`, `token_type_ids` and
    `position_ids`. `prefixes` is an optional list with one `(key, value)` pair per layer
    (P-Tuning v2).
    """

    def __init__(self, config: ModelConfig, **kwargs):
        kwargs.setdefault("name", "bert")
        super().__init__(**kwargs)
        self.config = config
        self.token_embedding = keras.layers.Embedding(config.vocab_size, config.hidden_size, embeddings_initializer=weight_init(), name="token_embedding")
        self.position_embedding = keras.layers.Embedding(
            config.max_positions, config.hidden_size, embeddings_initializer=weight_init(), name="position_embedding"
        )
        self.token_type_embedding = keras.layers.Embedding(
            config.type_vocab_size, config.hidden_size, embeddings_initializer=weight_init(), name="token_type_embedding"
        )
        self.embedding_norm = keras.layers.LayerNormalization(epsilon=config.layer_norm_eps, name="embedding_norm")
        self.embedding_dropout = keras.layers.Dropout(config.dropout)
        self.encoder_layers = [BertLayer(config, name=f"layer_{i}") for i in range(config.num_layers)]
        self.pooler = keras.layers.Dense(config.hidden_size, activation="tanh", kernel_initializer=weight_init(), name="pooler")
        self.build_all()

    def build_all(self):
        """Create every weight now, so that loading and counting parameters need no forward pass."""
        hidden_shape = (None, None, self.config.hidden_size)
        for embedding in (self.token_embedding, self.position_embedding, self.token_type_embedding):
            embedding.build((None, None))
        self.embedding_norm.build(hidden_shape)
        for layer in self.encoder_layers:
            layer.build(hidden_shape)
        self.pooler.build((None, self.config.hidden_size))
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
        token_types = inputs.get("token_type_ids")
        if token_types is None:
            token_types = ops.zeros((batch, length), dtype="int32")
        x = embeddings + self.position_embedding(positions) + self.token_type_embedding(token_types)
        x = self.embedding_dropout(self.embedding_norm(x), training=training)

        attention_mask = inputs.get("attention_mask")
        for layer, prefix in zip(self.encoder_layers, check_prefixes(prefixes, len(self.encoder_layers))):
            x = layer(x, attention_mask=attention_mask, prefix=prefix, training=training)
        return x

    def pool(self, sequence_output):
        """Return the pooled output `[B, H]`: tanh(Dense(hidden state of [CLS]))."""
        return self.pooler(sequence_output[:, 0, :])


class BertForMaskedLM(keras.Model):
    """BERT with its masked-language-model head (decoder tied to the token embedding).

    Returns logits `[B, T, V]` in float32.
    """

    def __init__(self, config: ModelConfig, **kwargs):
        kwargs.setdefault("name", "bert_mlm")
        super().__init__(**kwargs)
        self.config = config
        self.backbone = BertModel(config, name="bert")
        self.mlm_dense = keras.layers.Dense(
            config.hidden_size, activation=activation_fn(config.hidden_act), kernel_initializer=weight_init(), name="mlm_dense"
        )
        self.mlm_norm = keras.layers.LayerNormalization(epsilon=config.layer_norm_eps, name="mlm_norm")
        self.mlm_dense.build((None, None, config.hidden_size))
        self.mlm_norm.build((None, None, config.hidden_size))
        self.mlm_bias = self.add_weight(shape=(config.vocab_size,), initializer="zeros", name="mlm_bias")
        self.built = True

    def logits_from_hidden(self, hidden):
        """Project hidden states `[B, T, H]` (or `[B, H]`) onto the vocabulary."""
        transformed = self.mlm_norm(self.mlm_dense(hidden))
        embedding_matrix = ops.cast(self.backbone.token_embedding.embeddings, transformed.dtype)
        logits = ops.matmul(transformed, ops.transpose(embedding_matrix))  # [..., V]
        return ops.cast(logits, "float32") + ops.cast(self.mlm_bias, "float32")

    def call(self, inputs, prefixes=None, training=None):
        hidden = self.backbone(inputs, prefixes=prefixes, training=training)
        return self.logits_from_hidden(hidden)
