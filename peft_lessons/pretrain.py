"""Reproduce the bundled models from scratch: `python -m peft_lessons.pretrain tiny-gpt-zh`.

Pretraining text is the train split of People's Daily (January 1998) plus the train split of
the product reviews, text only. Validation and test paragraphs and reviews never enter it.
tiny-gpt-zh learns next-token prediction. tiny-bert-zh learns masked-token prediction: whole
words are masked in People's Daily, which is word-segmented, and single characters in the
reviews, which are not.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import data
from .checkpoints import ASSETS_DIR, save_llm
from .models import ModelConfig, build_language_model
from .tokenization import SPECIAL_TOKENS, ChineseTokenizer, build_vocab
from .training import set_seed, warmup_cosine

PRESETS = {
    "tiny-gpt-zh": dict(model_type="gpt2", num_layers=4, hidden_size=256, num_heads=4, intermediate_size=1024),
    "tiny-bert-zh": dict(model_type="bert", num_layers=6, hidden_size=256, num_heads=4, intermediate_size=1024),
}
MAX_POSITIONS = 128
VOCAB_SIZE = 4500
MASK_RATE = 0.15
# Post-LayerNorm BERT gets a lower peak and a longer warm-up than pre-LN GPT-2, the usual practice
# for post-LN models. The weight initialisation (see models.attention.weight_init) mattered more.
DEFAULT_LEARNING_RATES = {"tiny-gpt-zh": 1e-3, "tiny-bert-zh": 5e-4}
WARMUP_FRACTIONS = {"tiny-gpt-zh": 0.05, "tiny-bert-zh": 0.1}


@dataclass
class PretrainingExamples:
    """Token windows `[N, T]` with `[CLS]`/`[SEP]`/padding, and the word each token belongs to (-1 for none)."""

    input_ids: np.ndarray
    word_ids: np.ndarray
    is_review: np.ndarray  # [N] bool


def pretraining_texts(seed: int = 0):
    """Return (People's Daily train paragraphs as word lists, train reviews as strings)."""
    words = data.corpus_words("train", seed=seed)
    reviews = list(data.load_sentiment(seed=seed).train.texts)
    return words, reviews


def build_tokenizer(words, reviews) -> ChineseTokenizer:
    texts = ["".join(w) for w in words] + reviews
    return ChineseTokenizer(build_vocab(texts, max_size=VOCAB_SIZE), model_max_length=MAX_POSITIONS)


def make_examples(tokenizer: ChineseTokenizer, words, reviews, seq_len: int = MAX_POSITIONS) -> PretrainingExamples:
    """Tokenize every text and cut it into windows of `seq_len - 2` tokens framed by [CLS] and [SEP]."""
    body = seq_len - 2
    texts, char_words = [], []
    for paragraph in words:
        texts.append("".join(paragraph))
        char_words.append(np.repeat(np.arange(len(paragraph)), [len(w) for w in paragraph]))
    texts.extend(reviews)
    char_words.extend(None for _ in reviews)  # reviews: every token is its own "word"

    rows, word_rows, review_flags = [], [], []
    for index, ((ids, offsets), owners) in enumerate(zip(tokenizer.tokenize_with_offsets(texts), char_words)):
        if owners is None:
            token_words = np.arange(len(ids))
        else:
            token_words = owners[[start for start, _ in offsets]]
        for start in range(0, len(ids), body):
            piece = ids[start:start + body]
            if len(piece) < 8:  # a stub of a few tokens teaches little
                continue
            window = np.full(seq_len, tokenizer.pad_id, dtype=np.int32)
            window[0] = tokenizer.cls_id
            window[1:len(piece) + 1] = piece
            window[len(piece) + 1] = tokenizer.sep_id
            owner = np.full(seq_len, -1, dtype=np.int32)
            local = token_words[start:start + body]
            owner[1:len(piece) + 1] = local - local.min()
            rows.append(window)
            word_rows.append(owner)
            review_flags.append(index >= len(words))
    return PretrainingExamples(np.stack(rows), np.stack(word_rows), np.array(review_flags))


def mask_tokens(input_ids, word_ids, tokenizer, rng, mask_rate: float = MASK_RATE):
    """BERT masking: choose whole words with probability `mask_rate`; of their tokens 80% become
    [MASK], 10% a random token, 10% stay. Returns (masked ids, labels, weights)."""
    word_draw = rng.random((input_ids.shape[0], input_ids.shape[1] + 1))
    owner = np.where(word_ids >= 0, word_ids, input_ids.shape[1])  # index T for specials and padding
    chosen = np.take_along_axis(word_draw, owner, axis=1) < mask_rate
    chosen &= word_ids >= 0
    action = rng.random(input_ids.shape)
    masked = input_ids.copy()
    masked[chosen & (action < 0.8)] = tokenizer.mask_id
    randomize = chosen & (action >= 0.8) & (action < 0.9)
    # Random replacements are ordinary tokens: the special tokens come first in the vocabulary.
    masked[randomize] = rng.integers(len(SPECIAL_TOKENS), tokenizer.vocab_size, size=int(randomize.sum()))
    return masked, input_ids, chosen.astype(np.float32)


def causal_lm_targets(input_ids, pad_id):
    """Next-token targets: position t predicts token t+1; padding targets get weight 0."""
    labels = np.zeros_like(input_ids)
    labels[:, :-1] = input_ids[:, 1:]
    weights = (labels != pad_id).astype(np.float32)
    weights[:, -1] = 0.0
    return labels, weights


def batch_stream(examples: PretrainingExamples, tokenizer, model_type, batch_size, review_repeat, seed):
    """Yield (features, labels, weights) batches forever; reviews appear `review_repeat` times per epoch."""
    rng = np.random.default_rng(seed)
    pool = np.concatenate([np.flatnonzero(~examples.is_review)] + [np.flatnonzero(examples.is_review)] * review_repeat)
    while True:
        order = rng.permutation(pool)
        for start in range(0, len(order) - batch_size + 1, batch_size):
            index = order[start:start + batch_size]
            ids = examples.input_ids[index]
            attention_mask = (ids != tokenizer.pad_id).astype(np.int32)
            if model_type == "gpt2":
                labels, weights = causal_lm_targets(ids, tokenizer.pad_id)
                inputs = ids
            else:
                inputs, labels, weights = mask_tokens(ids, examples.word_ids[index], tokenizer, rng)
            yield {"input_ids": inputs, "attention_mask": attention_mask}, labels, weights


def review_repeat_factor(examples: PretrainingExamples) -> int:
    """Repeat reviews until they give at least as many tokens per epoch as People's Daily."""
    tokens = (examples.input_ids != 0).sum(axis=1)
    review_tokens = tokens[examples.is_review].sum()
    news_tokens = tokens[~examples.is_review].sum()
    return max(1, int(math.ceil(news_tokens / max(review_tokens, 1))))


class WeightedLoss:
    """Cross-entropy averaged over the weighted tokens only (Keras averages over all tokens)."""

    def __init__(self):
        import keras
        self.keras = keras
        self.__name__ = "token_cross_entropy"

    def __call__(self, labels, logits, weights):
        ops = self.keras.ops
        per_token = self.keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
        return ops.sum(per_token * weights) / ops.maximum(ops.sum(weights), 1.0)


def pretrain(name: str, steps: int, batch_size: int = 64, learning_rate: float | None = None, seed: int = 0,
             output: Path | None = None, overwrite: bool = False, log_every: int = 50) -> dict:
    """Pretrain one preset from random weights and save it in the Hugging Face layout. Returns a summary."""
    import keras
    import tensorflow as tf

    if name not in PRESETS:
        raise ValueError(f"未知的预设 {name!r}；可选 {sorted(PRESETS)}。")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps 必须是正整数，收到 {steps!r}。")
    output = Path(output) if output else ASSETS_DIR / name
    if output.exists() and any(output.iterdir()) and not overwrite:
        raise FileExistsError(f"{output} 已存在且不为空；请换一个 --output 目录，或加 --overwrite。")
    if learning_rate is None:
        learning_rate = DEFAULT_LEARNING_RATES[name]
    set_seed(seed)
    started = time.perf_counter()

    words, reviews = pretraining_texts(seed=0)
    tokenizer = build_tokenizer(words, reviews)
    examples = make_examples(tokenizer, words, reviews)
    repeat = review_repeat_factor(examples)
    preset = PRESETS[name]
    config = ModelConfig(vocab_size=tokenizer.vocab_size, max_positions=MAX_POSITIONS,
                         pad_token_id=tokenizer.pad_id, **preset)
    if config.model_type == "gpt2":
        config.extra.update(bos_token_id=tokenizer.cls_id, eos_token_id=tokenizer.sep_id)
    model = build_language_model(config)

    signature = (
        {"input_ids": tf.TensorSpec((batch_size, MAX_POSITIONS), tf.int32),
         "attention_mask": tf.TensorSpec((batch_size, MAX_POSITIONS), tf.int32)},
        tf.TensorSpec((batch_size, MAX_POSITIONS), tf.int32),
        tf.TensorSpec((batch_size, MAX_POSITIONS), tf.float32),
    )
    stream = tf.data.Dataset.from_generator(
        lambda: batch_stream(examples, tokenizer, config.model_type, batch_size, repeat, seed),
        output_signature=signature,
    ).prefetch(4)

    schedule = warmup_cosine(learning_rate, steps, warmup_fraction=WARMUP_FRACTIONS[name])
    optimizer = keras.optimizers.AdamW(learning_rate=schedule, weight_decay=0.01,
                                       clipnorm=1.0)
    optimizer.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
    loss = WeightedLoss()
    model.compile(optimizer=optimizer, jit_compile=True)

    @tf.function(jit_compile=True)
    def train_step(features, labels, weights):
        with tf.GradientTape() as tape:
            value = loss(labels, model(features, training=True), weights)
        gradients = tape.gradient(value, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return value

    history = []
    running = []
    for step, (features, labels, weights) in enumerate(stream.take(steps), start=1):
        running.append(float(train_step(features, labels, weights)))
        if step % log_every == 0 or step == steps:
            elapsed = time.perf_counter() - started
            history.append({"step": step, "loss": float(np.mean(running)), "seconds": round(elapsed, 1)})
            print(f"[{name}] step {step}/{steps}  loss {np.mean(running):.3f}  {elapsed / 60:.1f} min", flush=True)
            running = []
    seconds = time.perf_counter() - started

    save_llm(model, tokenizer, output, overwrite=overwrite)
    summary = {
        "name": name,
        "config": config.to_hf_dict(),
        "parameters": int(model.count_params()),
        "steps": steps,
        "batch_size": batch_size,
        "sequence_length": MAX_POSITIONS,
        "learning_rate": learning_rate,
        "warmup_fraction": WARMUP_FRACTIONS[name],
        "seed": seed,
        "examples": {"peoples_daily_windows": int((~examples.is_review).sum()),
                     "review_windows": int(examples.is_review.sum()),
                     "review_repeat": repeat},
        "tokens_seen": int(steps * batch_size * MAX_POSITIONS),
        "seconds": round(seconds, 1),
        "machine": f"{platform.machine()}, {_cpu_count()} CPU cores, TensorFlow {tf.__version__}",
        "date": time.strftime("%Y-%m-%d"),
        "loss_history": history,
    }
    (output / "pretraining.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return summary


def _cpu_count():
    import os
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def main(argv=None):
    parser = argparse.ArgumentParser(description="Pretrain a bundled model from scratch on this machine.")
    parser.add_argument("name", choices=sorted(PRESETS), help="which preset to train")
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps (default: the preset's)")
    parser.add_argument("--batch-size", type=int, default=64, help="sequences per step, each 128 tokens")
    parser.add_argument("--learning-rate", type=float, default=None,
                        help="peak learning rate of AdamW (default: the preset's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=None, help="checkpoint directory (default: the package's assets)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing checkpoint directory")
    args = parser.parse_args(argv)
    steps = args.steps or DEFAULT_STEPS[args.name]
    summary = pretrain(args.name, steps, batch_size=args.batch_size, learning_rate=args.learning_rate,
                       seed=args.seed, output=args.output, overwrite=args.overwrite)
    print(json.dumps({k: v for k, v in summary.items() if k != "loss_history"}, ensure_ascii=False, indent=2))


DEFAULT_STEPS = {"tiny-gpt-zh": 600, "tiny-bert-zh": 600}

if __name__ == "__main__":
    main()


# ---- held-out evaluation, reported in the model cards ----

def heldout_texts(seed: int = 0) -> dict:
    """Text never used in pretraining: the test reviews and the People's Daily test paragraphs."""
    return {
        "reviews": list(data.load_sentiment(seed=seed).test.texts),
        "news": data.corpus_words("test", seed=seed),
    }


def unigram_log_probs(examples: PretrainingExamples, vocab_size: int) -> np.ndarray:
    """Add-one-smoothed unigram log-probabilities of every token, counted on the pretraining windows."""
    real = examples.input_ids[examples.input_ids != 0]
    real = real[real != SPECIAL_TOKENS.index("[CLS]")]  # [CLS] starts every window and is never predicted
    counts = np.bincount(real, minlength=vocab_size).astype(np.float64) + 1.0
    return np.log(counts / counts.sum())


def evaluate_causal_lm(model, examples: PretrainingExamples, unigram: np.ndarray, batch_size: int = 64) -> dict:
    """Perplexity of next-token prediction on held-out windows, beside the unigram model's."""
    import keras

    nll, unigram_nll, count = 0.0, 0.0, 0
    for start in range(0, len(examples.input_ids), batch_size):
        ids = examples.input_ids[start:start + batch_size]
        labels, weights = causal_lm_targets(ids, pad_id=0)
        logits = model({"input_ids": ids, "attention_mask": (ids != 0).astype(np.int32)})
        log_probs = np.asarray(keras.ops.log_softmax(logits, axis=-1))
        picked = np.take_along_axis(log_probs, labels[..., None], axis=-1)[..., 0]
        nll -= float((picked * weights).sum())
        unigram_nll -= float((unigram[labels] * weights).sum())
        count += int(weights.sum())
    return {"perplexity": math.exp(nll / count), "unigram_perplexity": math.exp(unigram_nll / count),
            "tokens": count}


def evaluate_masked_lm(model, examples: PretrainingExamples, tokenizer, unigram: np.ndarray, seed: int = 0,
                       batch_size: int = 64) -> dict:
    """Masked-token accuracy and cross-entropy on held-out windows, beside the unigram model's.

    The same positions are chosen as in pretraining (15%, whole words in news text), and every
    chosen position is replaced by [MASK]. The unigram baseline always guesses the commonest
    token (accuracy) and scores every token by its training frequency (cross-entropy, in nats).
    """
    import keras

    rng = np.random.default_rng(seed)
    correct, unigram_correct, count = 0, 0, 0
    nll, unigram_nll = 0.0, 0.0
    most_common = int(np.argmax(unigram))
    for start in range(0, len(examples.input_ids), batch_size):
        ids = examples.input_ids[start:start + batch_size]
        _, labels, weights = mask_tokens(ids, examples.word_ids[start:start + batch_size], tokenizer, rng)
        chosen = weights > 0
        masked = np.where(chosen, tokenizer.mask_id, ids)
        logits = model({"input_ids": masked, "attention_mask": (ids != 0).astype(np.int32)})
        log_probs = np.asarray(keras.ops.log_softmax(logits, axis=-1))
        picked = np.take_along_axis(log_probs, labels[..., None], axis=-1)[..., 0]
        correct += int((log_probs.argmax(axis=-1) == labels)[chosen].sum())
        unigram_correct += int((labels[chosen] == most_common).sum())
        nll -= float(picked[chosen].sum())
        unigram_nll -= float(unigram[labels[chosen]].sum())
        count += int(chosen.sum())
    return {"masked_accuracy": correct / count, "unigram_accuracy": unigram_correct / count,
            "masked_cross_entropy": nll / count, "unigram_cross_entropy": unigram_nll / count,
            "masked_tokens": count}
