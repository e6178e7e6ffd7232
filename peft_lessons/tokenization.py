"""BERT-style Chinese tokenizer (one token per Chinese character) on the `tokenizers` library.

It reads the same `vocab.txt` format as bert-base-chinese, so it serves the bundled models and
the public GPT-2 / BERT Chinese checkpoints alike.
"""

from __future__ import annotations

import collections
import numbers
from pathlib import Path

import numpy as np
from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")

# Full-width ASCII (U+FF01..U+FF5E) to half-width, and the ideographic space to a plain space.
# People's Daily writes "１２月" and the reviews "12月": after this both read "12月".
HALFWIDTH_TABLE = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)}
HALFWIDTH_TABLE[0x3000] = 0x20


def to_halfwidth(text: str) -> str:
    """Map full-width ASCII characters and the ideographic space to their half-width forms."""
    return text.translate(HALFWIDTH_TABLE)


def _is_ascii_alnum(char: str) -> bool:
    return char.isascii() and char.isalnum()


def build_vocab(texts, max_size: int = 5000, min_count: int = 2) -> list[str]:
    """Build a character vocabulary from texts: special tokens, then characters by frequency.

    ASCII letters and digits also get a `##` continuation form, so "2010" becomes
    `2 ##0 ##1 ##0` as in bert-base-chinese. Text is lower-cased, as the tokenizer does.
    """
    counts = collections.Counter()
    for text in texts:
        counts.update(to_halfwidth(text).lower())
    counts.pop(" ", None)
    for char in list(counts):
        if char.isspace() or not char.isprintable():
            counts.pop(char)
    vocab = list(SPECIAL_TOKENS)
    continuation = [f"##{c}" for c in "0123456789abcdefghijklmnopqrstuvwxyz"]
    room = max_size - len(vocab) - len(continuation)
    frequent = [char for char, count in counts.most_common() if count >= min_count][:room]
    vocab.extend(sorted(frequent, key=lambda c: (-counts[c], c)))
    vocab.extend(continuation)
    return vocab


def read_vocab(path) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"找不到词表文件 {path}；检查点目录里需要 vocab.txt（每行一个 token）。")
    tokens = path.read_text(encoding="utf-8").split("\n")
    if tokens and tokens[-1] == "":
        tokens.pop()
    return tokens


class ChineseTokenizer:
    """Character-level Chinese tokenizer with BERT's special tokens.

    Every encoding is `[CLS] text [SEP]` padded with `[PAD]` to a fixed length. GPT-2 models
    use the same layout: `[CLS]` starts a text and `[SEP]` ends it, as the UER Chinese GPT-2
    checkpoints do.
    """

    def __init__(self, vocab, model_max_length: int = 512, do_lower_case: bool = True):
        vocab = list(vocab)
        missing = [token for token in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]") if token not in vocab]
        if missing:
            raise ValueError(f"词表缺少特殊 token {missing}；BERT 风格的 vocab.txt 必须包含 [PAD] [UNK] [CLS] [SEP] [MASK]。")
        if len(set(vocab)) != len(vocab):
            duplicates = [token for token, n in collections.Counter(vocab).items() if n > 1][:5]
            raise ValueError(f"词表中有重复的 token，例如 {duplicates}；每个 token 只能出现一次。")
        self.vocab = vocab
        self.token_to_id = {token: i for i, token in enumerate(vocab)}
        self.model_max_length = int(model_max_length)
        self.do_lower_case = do_lower_case
        self.pad_id = self.token_to_id["[PAD]"]
        self.unk_id = self.token_to_id["[UNK]"]
        self.cls_id = self.token_to_id["[CLS]"]
        self.sep_id = self.token_to_id["[SEP]"]
        self.mask_id = self.token_to_id["[MASK]"]
        self.special_ids = frozenset(self.token_to_id[t] for t in SPECIAL_TOKENS)

        tokenizer = Tokenizer(models.WordPiece(vocab=self.token_to_id, unk_token="[UNK]", max_input_chars_per_word=100))
        tokenizer.normalizer = normalizers.BertNormalizer(
            clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=do_lower_case
        )
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tokenizer.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]",
            pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", self.cls_id), ("[SEP]", self.sep_id)],
        )
        tokenizer.decoder = decoders.WordPiece()
        # Registered special tokens are matched in raw text before normalisation, so "[MASK]"
        # written in a prompt stays one token instead of "[", "mask", "]".
        tokenizer.add_special_tokens([AddedToken(token, special=True, normalized=False) for token in SPECIAL_TOKENS])
        self._tokenizer = tokenizer

    @classmethod
    def from_file(cls, vocab_path, model_max_length: int = 512, do_lower_case: bool = True):
        return cls(read_vocab(vocab_path), model_max_length=model_max_length, do_lower_case=do_lower_case)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def save_vocab(self, path) -> None:
        Path(path).write_text("\n".join(self.vocab) + "\n", encoding="utf-8")

    # ---- encoding ----

    def _check_texts(self, texts):
        if isinstance(texts, str):
            raise TypeError(f"encode_batch 需要文本列表，收到单个字符串 {texts[:20]!r}；请写成 [text]。")
        texts = list(texts)
        if not texts:
            raise ValueError("文本列表为空；请至少传入一条文本。")
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"第 {i} 条输入不是字符串，而是 {type(text).__name__}：{text!r}。")
            if not text.strip():
                raise ValueError(f"第 {i} 条文本为空（{text!r}）；请删去空文本或填入内容。")
        return texts

    def _check_max_length(self, max_length):
        if max_length is None:
            return self.model_max_length
        if isinstance(max_length, bool) or not isinstance(max_length, numbers.Integral) or max_length < 3:
            raise ValueError(f"max_length 必须是不小于 3 的整数（要放下 [CLS] 与 [SEP]），收到 {max_length!r}。")
        if max_length > self.model_max_length:
            raise ValueError(
                f"max_length={max_length} 超过了模型的 max_positions={self.model_max_length}；"
                f"请把 max_length 设为不超过 {self.model_max_length} 的值。"
            )
        return int(max_length)

    def tokenize(self, text: str) -> list[str]:
        """Split one text into tokens, without special tokens."""
        self._check_texts([text])
        return self._tokenizer.encode(to_halfwidth(text), add_special_tokens=False).tokens

    def encode_batch(self, texts, max_length: int | None = None, add_special_tokens: bool = True,
                     padding: str = "max_length") -> dict:
        """Encode texts into int32 arrays `input_ids`, `attention_mask`, `token_type_ids`, each `[N, L]`.

        Texts are truncated to `max_length` tokens (special tokens included). With
        `padding="max_length"` L equals `max_length`; with `padding="longest"` L is the
        longest encoding in the batch.
        """
        texts = self._check_texts(texts)
        max_length = self._check_max_length(max_length)
        if padding not in ("max_length", "longest"):
            raise ValueError(f"padding 只能是 'max_length' 或 'longest'，收到 {padding!r}。")
        encodings = self._tokenizer.encode_batch(
            [to_halfwidth(text) for text in texts], add_special_tokens=add_special_tokens
        )
        rows = []
        for encoding in encodings:
            ids = encoding.ids
            if len(ids) > max_length:
                # Keep the final [SEP] when cutting, as Hugging Face's truncation does.
                ids = ids[: max_length - 1] + [self.sep_id] if add_special_tokens else ids[:max_length]
            rows.append(ids)
        width = max_length if padding == "max_length" else max(len(ids) for ids in rows)
        input_ids = np.full((len(rows), width), self.pad_id, dtype=np.int32)
        attention_mask = np.zeros((len(rows), width), dtype=np.int32)
        for i, ids in enumerate(rows):
            input_ids[i, : len(ids)] = ids
            attention_mask[i, : len(ids)] = 1
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "token_type_ids": np.zeros_like(input_ids),
        }

    def encode(self, text: str, max_length: int | None = None, add_special_tokens: bool = True) -> list[int]:
        """Encode one text into a list of ids, without padding."""
        batch = self.encode_batch([text], max_length=max_length, add_special_tokens=add_special_tokens,
                                  padding="longest")
        return batch["input_ids"][0].tolist()

    def tokenize_with_offsets(self, texts) -> list[tuple[list[int], list[tuple[int, int]]]]:
        """Return, for each text, its token ids and each token's (start, end) character offsets.

        No special tokens are added and nothing is truncated. Offsets refer to the text as
        given (half-width mapping keeps every character in place).
        """
        texts = self._check_texts(texts)
        encodings = self._tokenizer.encode_batch([to_halfwidth(t) for t in texts], add_special_tokens=False)
        return [(list(e.ids), list(e.offsets)) for e in encodings]

    def encode_chars(self, chars, max_length: int | None = None) -> dict:
        """Encode one pre-split character list so that character i lands at position i + 1.

        Used for NER, where labels belong to characters: each character becomes exactly
        one token (unknown ones become `[UNK]`), after `[CLS]`.
        """
        if not chars:
            raise ValueError("字符列表为空；请至少传入一个字符。")
        max_length = self._check_max_length(max_length)
        if len(chars) + 2 > max_length:
            raise ValueError(f"{len(chars)} 个字符加上 [CLS]、[SEP] 超过 max_length={max_length}；请先切短句子。")
        ids = [self.cls_id]
        for char in chars:
            char = to_halfwidth(char)
            if self.do_lower_case:
                char = char.lower()
            ids.append(self.token_to_id.get(char, self.unk_id))
        ids.append(self.sep_id)
        input_ids = np.full((1, max_length), self.pad_id, dtype=np.int32)
        attention_mask = np.zeros((1, max_length), dtype=np.int32)
        input_ids[0, : len(ids)] = ids
        attention_mask[0, : len(ids)] = 1
        return {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": np.zeros_like(input_ids)}

    # ---- decoding ----

    def convert_ids_to_tokens(self, ids) -> list[str]:
        tokens = []
        for i in np.asarray(ids).reshape(-1).tolist():
            if not 0 <= i < len(self.vocab):
                raise ValueError(f"id {i} 超出词表范围 [0, {len(self.vocab) - 1}]。")
            tokens.append(self.vocab[i])
        return tokens

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        """Turn ids back into text. Chinese characters are joined without spaces."""
        pieces = []
        for token in self.convert_ids_to_tokens(ids):
            if skip_special_tokens and token in SPECIAL_TOKENS:
                continue
            if token.startswith("##"):
                pieces.append(token[2:])
            elif pieces and _is_ascii_alnum(pieces[-1][-1:]) and _is_ascii_alnum(token[:1]):
                pieces.append(" " + token)
            else:
                pieces.append(token)
        return "".join(pieces)
