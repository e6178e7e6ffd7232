"""Input handling shared by the GPT-2 and BERT backbones."""

from __future__ import annotations

from keras import ops


def unpack_inputs(inputs, max_positions):
    """Turn a tensor of ids or a dict of features into a dict with the keys every backbone reads.

    Accepted keys: `input_ids` or `inputs_embeds` (one of them), `attention_mask`,
    `token_type_ids`, `position_ids`.
    """
    if not isinstance(inputs, dict):
        inputs = {"input_ids": inputs}
    has_ids = inputs.get("input_ids") is not None
    has_embeds = inputs.get("inputs_embeds") is not None
    if has_ids == has_embeds:
        raise ValueError("输入必须恰好包含 input_ids 与 inputs_embeds 之一；请检查传给模型的字典。")
    reference = inputs["input_ids"] if has_ids else inputs["inputs_embeds"]
    if len(reference.shape) < 2:
        raise ValueError(f"输入应至少是二维 [batch, seq_len]，收到形状 {tuple(reference.shape)}；单条文本请先放进列表再编码。")
    length = reference.shape[1]
    if length is not None and length > max_positions:
        raise ValueError(
            f"序列长度 {length} 超过了模型的 max_positions={max_positions}；请截断输入"
            f"（例如 tokenizer.encode_batch(texts, max_length={max_positions})）。"
        )
    if reference.shape[0] == 0:
        raise ValueError("输入的 batch 为空；请至少传入一条文本。")
    return inputs


def default_positions(batch, length):
    """Return position ids 0..T-1 for every row, `[B, T]`."""
    positions = ops.arange(length, dtype="int32")[None, :]
    return ops.broadcast_to(positions, (batch, length))


def check_prefixes(prefixes, num_layers):
    if prefixes is None:
        return [None] * num_layers
    if len(prefixes) != num_layers:
        raise ValueError(
            f"prefixes 有 {len(prefixes)} 组，而模型有 {num_layers} 层；每一层需要一组 (key, value)。"
        )
    return list(prefixes)
