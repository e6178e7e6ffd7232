"""Prompts as cloze tasks: templates, verbalizers, zero-shot scoring, calibration and PET.

A template turns a review into a prompt with one answer slot. A verbalizer names the words
that stand for each label. BERT fills the slot as a masked token, GPT-2 predicts it as the
next token, and the label probabilities come from the language model's logits for the label
words at that position. PET (Schick and Schuetze 2021, "Exploiting Cloze Questions for Few
Shot Text Classification and Natural Language Inference") then fine-tunes the whole language
model through the same template and verbalizer.

Shape legend: N texts, B batch, T tokens, H hidden size, V vocabulary size, L labels,
W label words (all labels together).
"""

from __future__ import annotations

import numbers
import re
import warnings
from dataclasses import dataclass

import keras
import numpy as np
from keras import ops

from . import data
from .checkpoints import load_llm, load_tokenizer
from .models import SequenceClassifier
from .training import fit_with_early_stopping, parameter_report, set_seed, train_classifier

TEXT_SLOT = "{text}"
ANSWER_SLOT = "{answer}"
MODEL_TYPES = ("bert", "gpt2")

# Zhao et al. 2021 ("Calibrate Before Use", arXiv:2102.09690) use "N/A", "" and "[MASK]".
# "[MASK]" would put a second mask into a BERT prompt, so "无" ("none") takes its place.
DEFAULT_CONTENT_FREE_TEXTS = ("N/A", "", "无")


def _check_model_type(model_type) -> str:
    if model_type not in MODEL_TYPES:
        raise ValueError(
            f"model_type 只能是 {MODEL_TYPES} 之一，收到 {model_type!r}；"
            "可以直接用 model.config.model_type。"
        )
    return model_type


def _check_texts(texts, allow_empty: bool = False) -> list[str]:
    if isinstance(texts, str):
        raise TypeError(f"texts 需要文本列表，收到单个字符串 {texts[:20]!r}；请写成 [text]。")
    texts = list(texts)
    if not texts:
        raise ValueError("texts 为空；请至少传入一条文本。")
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"第 {index} 条文本不是字符串，而是 {type(text).__name__}：{text!r}。")
        if not allow_empty and not text.strip():
            raise ValueError(f"第 {index} 条文本为空（{text!r}）；模板需要真实的评论文本，请删去它或填入内容。")
    return texts


def _check_positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} 必须是正整数，收到 {value!r}。")
    return int(value)


def _token_ids(tokenizer, text: str) -> list[int]:
    """Return the token ids of a text without special tokens (none for whitespace-only text)."""
    if not text.strip():
        return []
    ids, _ = tokenizer.tokenize_with_offsets([text])[0]
    return list(ids)


# ---------------------------------------------------------------------------
# Templates
# ---------------------------------------------------------------------------


class Template:
    """A prompt pattern with one text slot `{text}` and one answer slot `{answer}`.

    Example: `Template("{text}总之很{answer}。")`. For BERT the answer slot becomes `[MASK]`
    and may sit anywhere. GPT-2 reads left to right and predicts the answer as the next
    token, so for GPT-2 `{answer}` must end the pattern.
    """

    def __init__(self, pattern: str):
        if not isinstance(pattern, str):
            raise TypeError(f"模板必须是字符串，收到 {type(pattern).__name__}：{pattern!r}。")
        for slot in (TEXT_SLOT, ANSWER_SLOT):
            count = pattern.count(slot)
            if count == 0:
                raise ValueError(
                    f"模板 {pattern!r} 缺少 {slot}；模板需要恰好一个 {TEXT_SLOT} 和一个 {ANSWER_SLOT}，"
                    f"例如 '{{text}}总之很{{answer}}。'。"
                )
            if count > 1:
                raise ValueError(
                    f"模板 {pattern!r} 含有 {count} 个 {slot}；请只保留一个 {slot}。"
                )
        if "[MASK]" in pattern:
            raise ValueError(
                f"模板 {pattern!r} 里直接写了 [MASK]；请用 {ANSWER_SLOT} 标出答案位置，"
                "BERT 会自动把它换成 [MASK]。"
            )
        self.pattern = pattern
        # Alternating literals and slots, e.g. ["", "{text}", "总之很", "{answer}", "。"].
        self.pieces = re.split(r"(\{text\}|\{answer\})", pattern)

    def __repr__(self) -> str:
        return f"Template({self.pattern!r})"

    @property
    def suffix(self) -> str:
        """Literal text after the answer slot (empty when `{answer}` ends the pattern)."""
        return self.pattern.split(ANSWER_SLOT, 1)[1]

    def check_model_type(self, model_type: str) -> str:
        """Raise unless the template can be used with `model_type` ("bert" or "gpt2")."""
        _check_model_type(model_type)
        if model_type == "gpt2" and TEXT_SLOT in self.suffix:
            raise ValueError(
                f"GPT-2 模板 {self.pattern!r} 把 {ANSWER_SLOT} 放在了 {TEXT_SLOT} 前面。GPT-2 从左到右预测，"
                f"只能看到答案之前的文字；请把 {TEXT_SLOT} 移到前面，并让 {ANSWER_SLOT} 结束模板，"
                "例如 '{text}总之很{answer}'。"
            )
        if model_type == "gpt2" and self.suffix:
            fixed = self.pattern[: -len(self.suffix)]
            raise ValueError(
                f"GPT-2 模板 {self.pattern!r} 的 {ANSWER_SLOT} 后面还有 {self.suffix!r}。"
                f"GPT-2 从左到右预测下一个 token，答案必须在模板最后；请改为 {fixed!r}。"
            )
        return model_type

    def render(self, text: str, model_type: str) -> str:
        """Return the prompt string, with `[MASK]` in the answer slot for BERT and ending before the answer for GPT-2."""
        self.check_model_type(model_type)
        (text,) = _check_texts([text])
        answer = "[MASK]" if model_type == "bert" else ""
        filled = {TEXT_SLOT: text, ANSWER_SLOT: answer}
        return "".join(filled.get(piece, piece) for piece in self.pieces)

    def encode(self, tokenizer, texts, model_type: str, max_length: int = 64) -> dict:
        """Encode prompts into int32 features `[N, max_length]` and `answer_positions` `[N]`.

        BERT prompts are `[CLS] prompt [SEP]` and the answer position is the index of
        `[MASK]`. GPT-2 prompts are `[CLS] prompt` without the closing `[SEP]`, and the
        answer position is the last prompt token, whose logits predict the answer. A review
        too long for `max_length` loses its tail, and the template is never cut.
        """
        return self._encode(tokenizer, _check_texts(texts), model_type, max_length)

    def _encode(self, tokenizer, texts: list[str], model_type: str, max_length: int) -> dict:
        self.check_model_type(model_type)
        max_length = _check_positive_int("max_length", max_length)
        if max_length > tokenizer.model_max_length:
            raise ValueError(
                f"max_length={max_length} 超过了模型的 max_positions={tokenizer.model_max_length}；"
                f"请把 max_length 设为不超过 {tokenizer.model_max_length} 的值。"
            )
        is_bert = model_type == "bert"
        # Literal pieces are tokenized on their own, so the review can be cut without touching them.
        # NOTE: a review ending in ASCII letters next to a template starting with ASCII letters is split
        # at the slot here, while tokenizing the rendered string would join them into one word.
        literal_ids = {i: _token_ids(tokenizer, piece) for i, piece in enumerate(self.pieces)
                       if piece not in (TEXT_SLOT, ANSWER_SLOT)}
        fixed = 1 + sum(len(ids) for ids in literal_ids.values()) + (2 if is_bert else 0)  # [CLS], [MASK], [SEP]
        room = max_length - fixed
        if room < 1:
            raise ValueError(
                f"模板 {self.pattern!r} 本身就占 {fixed} 个 token（含特殊 token），max_length={max_length} "
                f"放不下评论；请把 max_length 调到至少 {fixed + 1}，或缩短模板。"
            )

        nonempty = [i for i, text in enumerate(texts) if text.strip()]
        text_ids = [[] for _ in texts]
        if nonempty:
            for i, (ids, _) in zip(nonempty, tokenizer.tokenize_with_offsets([texts[i] for i in nonempty])):
                text_ids[i] = list(ids)[:room]

        input_ids = np.full((len(texts), max_length), tokenizer.pad_id, dtype=np.int32)
        attention_mask = np.zeros((len(texts), max_length), dtype=np.int32)
        answer_positions = np.zeros(len(texts), dtype=np.int32)
        for row, review_ids in enumerate(text_ids):
            ids = [tokenizer.cls_id]
            for i, piece in enumerate(self.pieces):
                if piece == TEXT_SLOT:
                    ids.extend(review_ids)
                elif piece == ANSWER_SLOT:
                    if is_bert:
                        answer_positions[row] = len(ids)
                        ids.append(tokenizer.mask_id)
                    else:
                        answer_positions[row] = len(ids) - 1  # the last prompt token predicts the answer
                else:
                    ids.extend(literal_ids[i])
            if is_bert:
                ids.append(tokenizer.sep_id)
            input_ids[row, : len(ids)] = ids
            attention_mask[row, : len(ids)] = 1
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "token_type_ids": np.zeros_like(input_ids),
            "answer_positions": answer_positions,
        }


# ---------------------------------------------------------------------------
# Verbalizers
# ---------------------------------------------------------------------------


class Verbalizer:
    """Label words for each label, e.g. `Verbalizer({0: ["差"], 1: ["好"]}, tokenizer)`.

    Labels must be 0..L-1. Every word must be a single token of the tokenizer's vocabulary
    (one Chinese character for the character-level tokenizers here), and no word may serve
    two labels.
    """

    def __init__(self, mapping: dict, tokenizer):
        if not isinstance(mapping, dict) or not mapping:
            raise TypeError(
                f"verbalizer 需要非空字典 {{标签: 标签词}}，例如 {{0: '差', 1: '好'}}，收到 {mapping!r}。"
            )
        labels = list(mapping)
        bad_keys = [label for label in labels if isinstance(label, bool) or not isinstance(label, numbers.Integral)]
        if bad_keys:
            raise TypeError(f"verbalizer 的标签必须是整数，收到 {bad_keys!r}；例如 {{0: '差', 1: '好'}}。")
        num_labels = max(len(labels), 2)
        missing = sorted(set(range(num_labels)) - set(labels))
        extra = sorted(set(labels) - set(range(num_labels)))
        if missing or extra:
            problems = []
            if missing:
                problems.append(f"缺少 {missing}")
            if extra:
                problems.append(f"多出 {extra}")
            raise ValueError(
                f"verbalizer 的标签应为 0 到 {num_labels - 1} 的每一个整数，{'，'.join(problems)}；"
                "请为每个标签给出标签词，例如 {0: '差', 1: '好'}。"
            )

        self.tokenizer_vocab_size = tokenizer.vocab_size
        self.words: list[list[str]] = []
        self.token_ids: list[list[int]] = []
        owner_of = {}  # token id -> (label, word) that first used it
        for label in range(num_labels):
            words = mapping[label]
            if not isinstance(words, (str, list, tuple)):
                raise TypeError(
                    f"标签 {label} 的标签词应为字符串或字符串列表，收到 {type(words).__name__}：{words!r}；"
                    "例如 '好' 或 ['好', '棒']。"
                )
            words = [words] if isinstance(words, str) else list(words)
            if not words:
                raise ValueError(f"标签 {label} 没有标签词；请至少给出一个，例如 {{ {label}: '好' }}。")
            ids = []
            for word in words:
                token_id = _single_token_id(tokenizer, label, word)
                if token_id in owner_of:
                    other_label, other_word = owner_of[token_id]
                    same = f"标签词 {word!r}" if other_word == word else f"标签词 {word!r}（与 {other_word!r} 是同一个 token）"
                    if other_label == label:
                        message = f"{same} 在标签 {label} 里出现了两次；请删去重复的一个。"
                    else:
                        message = (f"{same} 同时用于标签 {other_label} 和 {label}；"
                                   "每个标签词只能属于一个标签，请从其中一个标签里删去它或换一个词。")
                    raise ValueError(message)
                owner_of[token_id] = (label, word)
                ids.append(token_id)
            self.words.append(words)
            self.token_ids.append(ids)
        self.num_labels = num_labels

    def __repr__(self) -> str:
        return f"Verbalizer({dict(enumerate(self.words))!r})"

    @property
    def flat_token_ids(self) -> np.ndarray:
        """Token ids of all label words `[W]`, label 0's words first."""
        return np.array([i for ids in self.token_ids for i in ids], dtype=np.int32)

    @property
    def word_labels(self) -> np.ndarray:
        """The label of each word in `flat_token_ids`, `[W]`."""
        return np.array([label for label, ids in enumerate(self.token_ids) for _ in ids], dtype=np.int32)

    @property
    def label_word_mask(self) -> np.ndarray:
        """Boolean `[L, W]`: True where word w stands for label l."""
        return self.word_labels[None, :] == np.arange(self.num_labels)[:, None]


def _single_token_id(tokenizer, label: int, word) -> int:
    if not isinstance(word, str):
        raise TypeError(f"标签 {label} 的标签词 {word!r} 不是字符串；请写成一个汉字，例如 '好'。")
    if not word.strip():
        raise ValueError(f"标签 {label} 的标签词 {word!r} 是空字符串；请写成一个汉字，例如 '好'。")
    tokens = tokenizer.tokenize(word)
    if len(tokens) != 1:
        raise ValueError(
            f"标签 {label} 的标签词 {word!r} 被切成了 {len(tokens)} 个 token {tokens}；"
            "标签词必须是单个 token（这里的分词器一个汉字一个 token）；请换成能代表这个标签的单个字，例如 '好' 或 '差'。"
        )
    token = tokens[0]
    if token == "[UNK]" or token not in tokenizer.token_to_id:
        raise ValueError(
            f"标签 {label} 的标签词 {word!r} 不在词表中（会被编码成 [UNK]）；请换一个词表里有的字。"
        )
    return tokenizer.token_to_id[token]


# ---------------------------------------------------------------------------
# Scoring the answer slot
# ---------------------------------------------------------------------------


def _check_language_model(model):
    """Return the GPT-2 or BERT language model inside `model` (a PETModel is unwrapped)."""
    if isinstance(model, PETModel):
        return model.language_model
    if not (hasattr(model, "backbone") and hasattr(model, "logits_from_hidden") and hasattr(model, "config")):
        raise TypeError(
            f"需要带语言模型头的模型（GPT2LMHeadModel 或 BertForMaskedLM），收到 {type(model).__name__}；"
            "请传入 load_llm(...) 的返回值。"
        )
    return model


def answer_logits(language_model, features: dict, training=None):
    """Return the vocabulary logits `[B, V]` (float32) at each example's answer position.

    `features` contains the tokenizer arrays and `answer_positions` `[B]`, as `Template.encode`
    returns them. Only the answer position goes through the LM head.
    """
    model_inputs = {key: value for key, value in features.items() if key != "answer_positions"}
    hidden = language_model.backbone(model_inputs, training=training)  # [B, T, H]
    positions = ops.cast(features["answer_positions"], "int32")
    answer_hidden = ops.take_along_axis(hidden, positions[:, None, None], axis=1)[:, 0, :]  # [B, H]
    return ops.cast(language_model.logits_from_hidden(answer_hidden), "float32")  # [B, V]


def _logsumexp(values: np.ndarray, axis: int) -> np.ndarray:
    top = np.max(values, axis=axis, keepdims=True)
    return np.squeeze(top, axis=axis) + np.log(np.sum(np.exp(values - top), axis=axis))


@dataclass(frozen=True)
class LabelScores:
    """Zero-shot scores of N texts.

    `probabilities` `[N, L]`: the softmax over the label words' logits at the answer
    position, with the probabilities of a label's words summed. `label_log_probs` `[N, L]`
    and `word_log_probs` `[N, W]`: log-probabilities over the whole vocabulary, before any
    restriction to the label words.
    """

    probabilities: np.ndarray
    label_log_probs: np.ndarray
    word_log_probs: np.ndarray

    @property
    def predictions(self) -> np.ndarray:
        """The most probable label of each text, `[N]`."""
        return np.argmax(self.probabilities, axis=1)


def score_labels(model, tokenizer, template: Template, verbalizer: Verbalizer, texts, max_length: int = 64,
                 batch_size: int = 32) -> LabelScores:
    """Score every label for each text by the language model's logits for its label words.

    BERT is read at `[MASK]` (a cloze), GPT-2 at the last prompt token (the next token).
    A label with several words gets the sum of its words' probabilities, so a synonym adds
    evidence for its label instead of competing with it.
    """
    return _score(model, tokenizer, template, verbalizer, _check_texts(texts), max_length, batch_size)


def _score(model, tokenizer, template, verbalizer, texts, max_length, batch_size) -> LabelScores:
    _check_verbalizer(verbalizer, tokenizer)
    word_log_probs = _answer_log_probs(model, tokenizer, template, verbalizer.flat_token_ids, texts, max_length,
                                       batch_size)
    return _label_scores(word_log_probs, verbalizer)


def _answer_log_probs(model, tokenizer, template, token_ids, texts, max_length, batch_size) -> np.ndarray:
    """Log-probabilities `[N, len(token_ids)]` of the given tokens at each prompt's answer position."""
    language_model = _check_language_model(model)
    batch_size = _check_positive_int("batch_size", batch_size)
    features = template._encode(tokenizer, texts, language_model.config.model_type, max_length)
    chunks = []
    for start in range(0, len(texts), batch_size):
        batch = {key: value[start:start + batch_size] for key, value in features.items()}
        logits = np.asarray(answer_logits(language_model, batch, training=False), dtype=np.float64)  # [B, V]
        log_probs = logits - _logsumexp(logits, axis=1)[:, None]
        chunks.append(log_probs[:, token_ids])
    return np.concatenate(chunks)


def _label_scores(word_log_probs: np.ndarray, verbalizer: Verbalizer) -> LabelScores:
    """Combine the log-probabilities `[N, W]` of a verbalizer's words into label scores."""
    mask = verbalizer.label_word_mask  # [L, W]
    masked = np.where(mask[None, :, :], word_log_probs[:, None, :], -np.inf)  # [N, L, W]
    label_log_probs = _logsumexp(masked, axis=2)  # [N, L]
    return LabelScores(
        probabilities=_normalize(np.exp(label_log_probs - label_log_probs.max(axis=1, keepdims=True))),
        label_log_probs=label_log_probs,
        word_log_probs=word_log_probs,
    )


def top_answers(model, tokenizer, template: Template, text: str, top_k: int = 5, max_length: int = 64) -> list:
    """Return the `top_k` most probable tokens `[(token, probability), ...]` for the answer slot of one prompt.

    Unlike `score_labels`, this looks at the whole vocabulary, so it shows what the model
    would put in the slot if no verbalizer restricted it (often punctuation for a small model).
    """
    language_model = _check_language_model(model)
    top_k = _check_positive_int("top_k", top_k)
    (text,) = _check_texts([text])
    features = template._encode(tokenizer, [text], language_model.config.model_type, max_length)
    logits = np.asarray(answer_logits(language_model, features, training=False), dtype=np.float64)[0]  # [V]
    probabilities = np.exp(logits - _logsumexp(logits, axis=0))
    best = np.argsort(-probabilities)[:top_k]
    tokens = tokenizer.convert_ids_to_tokens([int(i) for i in best])
    return [(token, float(probabilities[i])) for token, i in zip(tokens, best)]


def _check_verbalizer(verbalizer, tokenizer) -> None:
    if not isinstance(verbalizer, Verbalizer):
        raise TypeError(f"verbalizer 需要 Verbalizer 对象，收到 {type(verbalizer).__name__}；"
                        "请写成 Verbalizer({0: '差', 1: '好'}, tokenizer)。")
    if verbalizer.tokenizer_vocab_size != tokenizer.vocab_size:
        raise ValueError(
            f"verbalizer 是用词表大小为 {verbalizer.tokenizer_vocab_size} 的分词器建的，这里的分词器有 "
            f"{tokenizer.vocab_size} 个 token；换了模型就要用它的分词器重新建 Verbalizer。"
        )


def _normalize(values: np.ndarray) -> np.ndarray:
    return values / values.sum(axis=-1, keepdims=True)


# ---------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------


def _check_labels_and_probabilities(labels, probabilities):
    labels = np.asarray(labels).reshape(-1)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2 or probabilities.shape[0] != len(labels):
        raise ValueError(
            f"probabilities 的形状应为 [文本数, 标签数] = [{len(labels)}, L]，收到 {probabilities.shape}。"
        )
    return labels, probabilities


def accuracy(labels, probabilities) -> float:
    """Return the share of texts whose most probable label is the true one."""
    labels, probabilities = _check_labels_and_probabilities(labels, probabilities)
    return float(np.mean(np.argmax(probabilities, axis=1) == labels))


def roc_auc(labels, probabilities) -> float:
    """Compute ROC AUC with scikit-learn: of label 1's probability for 2 labels, one-vs-rest macro average for more.

    Returns NaN when `labels` contains a single class, because AUC is undefined then.
    """
    from sklearn.metrics import roc_auc_score

    labels, probabilities = _check_labels_and_probabilities(labels, probabilities)
    if len(np.unique(labels)) < 2:
        return float("nan")
    if probabilities.shape[1] == 2:
        return float(roc_auc_score(labels, probabilities[:, 1]))
    return float(roc_auc_score(labels, probabilities, multi_class="ovr", labels=np.arange(probabilities.shape[1])))


def label_shares(probabilities) -> np.ndarray:
    """Return the share of texts predicted as each label, `[L]`. A biased prompt gives one label most texts."""
    probabilities = np.asarray(probabilities)
    if probabilities.ndim != 2:
        raise ValueError(f"probabilities 的形状应为 [文本数, 标签数]，收到 {probabilities.shape}。")
    counts = np.bincount(np.argmax(probabilities, axis=1), minlength=probabilities.shape[1])
    return counts / len(probabilities)


def evaluate_probabilities(labels, probabilities) -> dict:
    """Compute accuracy, ROC AUC and label shares of predicted probabilities `[N, L]` as one dict."""
    return {
        "accuracy": accuracy(labels, probabilities),
        "roc_auc": roc_auc(labels, probabilities),
        "label_shares": [float(share) for share in label_shares(probabilities)],
    }


# ---------------------------------------------------------------------------
# Content-free calibration
# ---------------------------------------------------------------------------


def label_prior(model, tokenizer, template: Template, verbalizer: Verbalizer,
                content_free_texts=DEFAULT_CONTENT_FREE_TEXTS, max_length: int = 64) -> np.ndarray:
    """Return the probability `[L]` that the prompt alone gives each label, averaged over content-free texts.

    A content-free text such as "N/A" or "" carries no sentiment, so an unbiased
    prompt would give it equal label probabilities. Empty strings are allowed here.
    """
    texts = _check_texts(content_free_texts, allow_empty=True)
    scores = _score(model, tokenizer, template, verbalizer, texts, max_length, batch_size=len(texts))
    return scores.probabilities.mean(axis=0)


def calibrate(probabilities, prior) -> np.ndarray:
    """Divide label probabilities `[N, L]` by the content-free prior `[L]` and renormalise each row.

    This is contextual calibration (Zhao et al. 2021, "Calibrate Before Use", arXiv:2102.09690)
    with their W = diag(prior)^-1 and b = 0. The paper applies softmax(W p) where this code
    renormalises W p. Both predict the same label, and renormalising maps the prior itself to
    uniform probabilities. With two labels the calibrated probability of label 1 rises
    monotonically with the uncalibrated one, so ROC AUC stays the same and only the decision
    threshold moves.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    prior = np.asarray(prior, dtype=np.float64).reshape(-1)
    if probabilities.ndim != 2 or probabilities.shape[1] != len(prior):
        raise ValueError(
            f"probabilities 的形状 {probabilities.shape} 与 prior 的长度 {len(prior)} 不匹配；"
            "两者的标签数必须相同（probabilities 为 [文本数, 标签数]）。"
        )
    if np.any(prior <= 0) or not np.all(np.isfinite(prior)):
        raise ValueError(f"prior 的每一项都必须是正数，收到 {prior.tolist()}；请传入 label_prior(...) 的结果。")
    return _normalize(probabilities / prior[None, :])


def prompt_sensitivity(model, tokenizer, templates, verbalizers: dict, split, *, max_length: int = 64,
                       batch_size: int = 64, content_free_texts=DEFAULT_CONTENT_FREE_TEXTS) -> list[dict]:
    """Score every template with every verbalizer zero-shot on a labelled split, before and after calibration.

    `templates` contains `Template` objects or pattern strings; `verbalizers` maps a display name
    to a `Verbalizer`. The verbalizers share one forward pass per template. Returns one row per
    template, verbalizer and calibration setting, with the keys `template`, `verbalizer`,
    `calibrated`, `accuracy`, `roc_auc`, `label_shares` and `prior` (the content-free label
    probabilities that calibration divides out).
    """
    if isinstance(templates, (str, Template)):
        raise TypeError("templates 需要模板列表，例如 ['{text}总之很{answer}']；单个模板请写成 [template]。")
    templates = [template if isinstance(template, Template) else Template(template) for template in templates]
    if not templates:
        raise ValueError("templates 为空；请至少给出一个模板。")
    if not isinstance(verbalizers, dict) or not verbalizers:
        raise TypeError(f"verbalizers 需要非空字典 {{名称: Verbalizer}}，收到 {verbalizers!r}。")
    for verbalizer in verbalizers.values():
        _check_verbalizer(verbalizer, tokenizer)
    if not isinstance(split, data.TextSplit):
        raise TypeError(f"split 需要 TextSplit（例如 load_sentiment().test），收到 {type(split).__name__}。")
    texts = _check_texts(split.texts)
    free_texts = _check_texts(content_free_texts, allow_empty=True)
    language_model = _check_language_model(model)
    model_type = language_model.config.model_type
    for template in templates:
        template.check_model_type(model_type)

    # Columns of the shared forward pass: every word of every verbalizer, each token once.
    token_ids = np.unique(np.concatenate([v.flat_token_ids for v in verbalizers.values()]))
    column = {int(token): index for index, token in enumerate(token_ids)}
    rows = []
    for template in templates:
        text_log_probs = _answer_log_probs(language_model, tokenizer, template, token_ids, texts, max_length,
                                           batch_size)
        free_log_probs = _answer_log_probs(language_model, tokenizer, template, token_ids, free_texts, max_length,
                                           batch_size)
        for name, verbalizer in verbalizers.items():
            columns = [column[int(token)] for token in verbalizer.flat_token_ids]
            probabilities = _label_scores(text_log_probs[:, columns], verbalizer).probabilities
            prior = _label_scores(free_log_probs[:, columns], verbalizer).probabilities.mean(axis=0)
            for calibrated, scores in ((False, probabilities), (True, calibrate(probabilities, prior))):
                rows.append({"template": template.pattern, "verbalizer": name, "calibrated": calibrated,
                             **evaluate_probabilities(split.labels, scores), "prior": prior.tolist()})
    return rows


# ---------------------------------------------------------------------------
# PET: fine-tuning through the template and verbalizer
# ---------------------------------------------------------------------------


def label_logits(vocab_logits, verbalizer: Verbalizer):
    """Reduce vocabulary logits `[B, V]` to label logits `[B, L]`: the log of the summed exponentials of each label's words."""
    word_logits = ops.take(vocab_logits, verbalizer.flat_token_ids, axis=1)  # [B, W]
    # Words of other labels get the float32 minimum, which exp() turns into 0 as it would -inf,
    # without putting an infinity into the graph.
    floor = float(np.finfo(np.float32).min)
    masked = ops.where(verbalizer.label_word_mask[None, :, :], word_logits[:, None, :], floor)  # [B, L, W]
    return ops.logsumexp(masked, axis=-1)  # [B, L]


class PETModel(keras.Model):
    """A language model read through a verbalizer: label logits from the label words at the answer position.

    Input: the dict from `Template.encode` (`input_ids`, `attention_mask`,
    `token_type_ids` `[B, T]` and `answer_positions` `[B]`). Output: float32 label logits
    `[B, L]`. A label with several words gets the log of the summed exponentials of their
    logits, so a softmax over the output equals `score_labels(...).probabilities`.
    """

    def __init__(self, language_model, verbalizer: Verbalizer, **kwargs):
        kwargs.setdefault("name", "pet")
        super().__init__(**kwargs)
        self.language_model = _check_language_model(language_model)
        if not isinstance(verbalizer, Verbalizer):
            raise TypeError(f"verbalizer 需要 Verbalizer 对象，收到 {type(verbalizer).__name__}。")
        self.verbalizer = verbalizer
        self.num_labels = verbalizer.num_labels
        self.built = True

    @property
    def model_type(self) -> str:
        return self.language_model.config.model_type

    def call(self, inputs, training=None):
        vocab_logits = answer_logits(self.language_model, inputs, training=training)  # [B, V]
        return label_logits(vocab_logits, self.verbalizer)  # [B, L]


def _prompt_dataset(tokenizer, template, model_type, split, max_length, batch_size, shuffle, seed):
    """Build tf.data batches of (prompt features, labels, sample_weight) with a fixed batch shape."""
    import tensorflow as tf

    features = template.encode(tokenizer, split.texts, model_type, max_length)
    labels = np.asarray(split.labels, dtype=np.int32)
    weights = np.ones(len(split), dtype=np.float32)
    dataset = tf.data.Dataset.from_tensor_slices((features, labels, weights))
    return data.fixed_size_batches(dataset, batch_size, shuffle, seed, len(split))


def _resolve_model_and_tokenizer(model_name_or_model, tokenizer):
    if isinstance(model_name_or_model, str):
        language_model = load_llm(model_name_or_model)
        if tokenizer is None:
            tokenizer = load_tokenizer(model_name_or_model)
        return language_model, tokenizer
    if tokenizer is None:
        raise ValueError("传入模型对象时必须同时传入它的分词器 tokenizer；或者直接传模型名，例如 'tiny-bert-zh'。")
    return _check_language_model(model_name_or_model), tokenizer


def _few_shot_splits(train_split, validation_split, test_split, k, seed):
    for name, split in (("train_split", train_split), ("validation_split", validation_split)):
        if not isinstance(split, data.TextSplit):
            raise TypeError(f"{name} 需要 TextSplit（例如 load_sentiment().train），收到 {type(split).__name__}。")
    if test_split is not None and not isinstance(test_split, data.TextSplit):
        raise TypeError(f"test_split 需要 TextSplit 或 None，收到 {type(test_split).__name__}。")
    if k is not None:
        k = _check_positive_int("k", k)
        if k > len(train_split):
            raise ValueError(
                f"k={k} 超过了 train_split 的 {len(train_split)} 条样本；请把 k 设为不超过 {len(train_split)} 的值，"
                "或者传入更大的 train_split。"
            )
        train_split = data.sample_split(train_split, k, seed=seed)
    return train_split


def _check_split_labels(split, num_labels, name):
    bad = sorted(set(np.asarray(split.labels).tolist()) - set(range(num_labels)))
    if bad:
        raise ValueError(f"{name} 中有标签 {bad}，而 verbalizer 只定义了标签 0 到 {num_labels - 1}；请为它们补上标签词。")


def train_pet(model_name_or_model, tokenizer, template: Template, verbalizer: Verbalizer, train_split,
              validation_split, *, test_split=None, k: int | None = None, max_length: int = 64,
              batch_size: int = 16, epochs: int = 10, learning_rate: float = 5e-5, patience: int = 2,
              seed: int = 0, jit_compile: bool = True, verbose: int = 0) -> dict:
    """Fine-tune the whole language model through the template and verbalizer (PET) with AdamW.

    The loss is cross-entropy over the labels' word logits at the answer position. With `k`,
    training uses `data.sample_split(train_split, k, seed)`, the same examples that
    `train_classifier_baseline` draws for the same `k` and `seed`. Training stops after
    `patience` epochs without a better validation accuracy and keeps the best epoch.
    A model passed as an object is trained in place; a name loads a fresh copy.

    This is PET's core step only: the paper's auxiliary MLM loss, ensembles over several
    templates and distillation on unlabelled data are left out.

    Returns the PETModel, history, best epoch, training size, trainable parameter count,
    seconds, and metrics (`evaluate_probabilities`) on the validation and, if given, test split.
    """
    language_model, tokenizer = _resolve_model_and_tokenizer(model_name_or_model, tokenizer)
    _check_verbalizer(verbalizer, tokenizer)
    model_type = template.check_model_type(language_model.config.model_type)
    train_split = _few_shot_splits(train_split, validation_split, test_split, k, seed)
    for name, split in (("train_split", train_split), ("validation_split", validation_split)):
        _check_split_labels(split, verbalizer.num_labels, name)
    batch_size = _check_positive_int("batch_size", batch_size)

    set_seed(seed)
    language_model.trainable = True  # PET trains every weight, even of a model that P-Tuning froze before
    model = PETModel(language_model, verbalizer)
    train_ds = _prompt_dataset(tokenizer, template, model_type, train_split, max_length, batch_size, True, seed)
    validation_ds = _prompt_dataset(tokenizer, template, model_type, validation_split, max_length, batch_size,
                                    False, seed)
    with warnings.catch_warnings():
        # BERT's pooler is not on the MLM path, so it gets no gradient and Keras would warn on every fit.
        warnings.filterwarnings("ignore", message=r"Gradients do not exist for variables \['pooler")
        fit = fit_with_early_stopping(model, train_ds, validation_ds, epochs=epochs, learning_rate=learning_rate,
                                      patience=patience, jit_compile=jit_compile, verbose=verbose)

    def metrics(split):
        scores = score_labels(language_model, tokenizer, template, verbalizer, split.texts, max_length, batch_size)
        return evaluate_probabilities(split.labels, scores.probabilities)

    return {
        "method": "PET",
        "model": model,
        "history": fit["history"],
        "best_epoch": fit["best_epoch"],
        "train_size": len(train_split),
        "trainable_params": parameter_report(model).trainable,
        "seconds": fit["seconds"],
        "validation": metrics(validation_split),
        "test": metrics(test_split) if test_split is not None else None,
    }


def _classifier_probabilities(classifier, tokenizer, split, max_length, batch_size) -> np.ndarray:
    dataset = data.classification_dataset(tokenizer, split, max_length, batch_size, shuffle=False)
    logits = np.concatenate([np.asarray(classifier(features, training=False)) for features, _, _ in dataset])
    logits = logits[: len(split)].astype(np.float64)  # drop the zero-weight rows that fill the last batch
    return _normalize(np.exp(logits - logits.max(axis=1, keepdims=True)))


def train_classifier_baseline(model_name_or_model, tokenizer, train_split, validation_split, *, test_split=None,
                              k: int | None = None, max_length: int = 64, batch_size: int = 16, epochs: int = 10,
                              learning_rate: float = 5e-5, patience: int = 2, seed: int = 0,
                              jit_compile: bool = True, verbose: int = 0) -> dict:
    """Fine-tune the language model's backbone with a new classification head, the baseline for PET.

    Takes the same arguments as `train_pet` without template and verbalizer, trains with
    `training.train_classifier` and returns a dict with the same keys as `train_pet`.
    """
    language_model, tokenizer = _resolve_model_and_tokenizer(model_name_or_model, tokenizer)
    train_split = _few_shot_splits(train_split, validation_split, test_split, k, seed)
    num_labels = max(2, int(np.max(train_split.labels)) + 1)

    set_seed(seed)
    language_model.trainable = True  # full fine-tuning, even of a model that P-Tuning froze before
    classifier = SequenceClassifier(language_model, num_labels=num_labels)
    result = train_classifier(classifier, tokenizer, train_split, validation_split, max_length=max_length,
                              batch_size=batch_size, epochs=epochs, learning_rate=learning_rate,
                              patience=patience, seed=seed, jit_compile=jit_compile, verbose=verbose)

    def metrics(split):
        probabilities = _classifier_probabilities(classifier, tokenizer, split, max_length, batch_size)
        return evaluate_probabilities(split.labels, probabilities)

    return {
        "method": "分类头",
        "model": classifier,
        "history": result["history"],
        "best_epoch": result["best_epoch"],
        "train_size": len(train_split),
        "trainable_params": parameter_report(classifier).trainable,
        "seconds": result["seconds"],
        "validation": metrics(validation_split),
        "test": metrics(test_split) if test_split is not None else None,
    }
