"""Using a pretrained language model directly: text generation (GPT-2) and fill-mask (BERT)."""

from __future__ import annotations

import numpy as np
from keras import ops

from .models import BertForMaskedLM, GPT2LMHeadModel


def generate(model: GPT2LMHeadModel, tokenizer, prompt: str, max_new_tokens: int = 30, temperature: float = 0.8,
             top_k: int = 20, seed: int = 0) -> str:
    """Continue `prompt` with top-k sampling (temperature 0 means greedy). Returns the new text only."""
    if not isinstance(model, GPT2LMHeadModel):
        raise TypeError(f"generate 需要 GPT-2 语言模型（GPT2LMHeadModel），收到 {type(model).__name__}。")
    if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens 必须是正整数，收到 {max_new_tokens!r}。")
    if not isinstance(temperature, (int, float)) or temperature < 0:
        raise ValueError(f"temperature 不能为负，收到 {temperature!r}；0 表示贪心解码。")
    if not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k 必须是正整数，收到 {top_k!r}。")
    rng = np.random.default_rng(seed)
    limit = model.config.max_positions
    prompt_length = len(tokenizer.tokenize(prompt)) + 1  # + [CLS]
    if prompt_length >= limit:
        raise ValueError(
            f"提示有 {prompt_length} 个 token（含 [CLS]），已达到模型的 max_positions={limit}，没有位置再生成；"
            f"请把提示缩短到 {limit - 1} 个 token 以内。"
        )
    ids = tokenizer.encode(prompt)[:-1]  # drop the closing [SEP]: the text continues
    new_ids = []
    for _ in range(max_new_tokens):
        if len(ids) >= limit:
            break
        logits = np.asarray(model(np.array([ids], dtype=np.int32)))[0, -1].astype(np.float64)
        logits[list(tokenizer.special_ids - {tokenizer.sep_id})] = -np.inf
        if temperature == 0:
            next_id = int(np.argmax(logits))
        else:
            top = np.argsort(logits)[-top_k:]
            scaled = logits[top] / temperature
            probs = np.exp(scaled - scaled.max())
            next_id = int(rng.choice(top, p=probs / probs.sum()))
        if next_id == tokenizer.sep_id:
            break
        ids.append(next_id)
        new_ids.append(next_id)
    return tokenizer.decode(new_ids)


def fill_mask(model: BertForMaskedLM, tokenizer, text: str, top_k: int = 5) -> list[list[tuple[str, float]]]:
    """Return, for every [MASK] in `text`, the `top_k` candidate tokens with their probabilities."""
    if not isinstance(model, BertForMaskedLM):
        raise TypeError(f"fill_mask 需要 BERT 掩码语言模型（BertForMaskedLM），收到 {type(model).__name__}。")
    if "[MASK]" not in text:
        raise ValueError(f"文本 {text!r} 里没有 [MASK]；请用 [MASK] 标出要预测的位置，例如 '今天天气很[MASK]。'")
    batch = tokenizer.encode_batch([text], padding="longest")
    logits = model(batch)  # [1, T, V]
    probs = np.asarray(ops.softmax(logits, axis=-1))[0]
    positions = np.flatnonzero(batch["input_ids"][0] == tokenizer.mask_id)
    if len(positions) == 0:
        raise ValueError(f"文本 {text!r} 编码后没有 [MASK]（可能被截断了）；请缩短文本，让 [MASK] 留在前 {tokenizer.model_max_length} 个 token 内。")
    results = []
    for position in positions:
        best = np.argsort(probs[position])[::-1][:top_k]
        results.append([(tokenizer.vocab[i], float(probs[position, i])) for i in best])
    return results
