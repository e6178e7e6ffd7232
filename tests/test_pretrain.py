import json

import numpy as np
import pytest

from peft_lessons import data
from peft_lessons.checkpoints import load_llm, load_tokenizer
from peft_lessons.pretrain import (
    PretrainingExamples,
    causal_lm_targets,
    evaluate_causal_lm,
    evaluate_masked_lm,
    make_examples,
    mask_tokens,
    pretrain,
    pretraining_texts,
    unigram_log_probs,
)


@pytest.fixture(scope="module")
def corpus():
    return pretraining_texts()


def test_pretraining_text_excludes_held_out_reviews(corpus):
    _, reviews = corpus
    sentiment = data.load_sentiment()
    held_out = set(sentiment.validation.texts) | set(sentiment.test.texts)
    assert not held_out & set(reviews)
    assert len(reviews) == len(sentiment.train)


def test_pretraining_text_excludes_held_out_news(corpus):
    words, _ = corpus
    train = {"".join(w) for w in words}
    for split in ("validation", "test"):
        assert not train & set(data.corpus_texts(split))


def test_windows_are_framed_and_bounded(small_tokenizer):
    words = [["国家", "主席", "发表", "新年", "讲话"] * 10]
    reviews = ["这本书写得很好，推荐购买。" * 4]
    examples = make_examples(small_tokenizer, words, reviews, seq_len=32)
    assert examples.input_ids.shape[1] == 32
    assert (examples.input_ids[:, 0] == small_tokenizer.cls_id).all()
    assert ((examples.input_ids == small_tokenizer.sep_id).sum(axis=1) == 1).all()
    assert examples.is_review.tolist() == [False] * 4 + [True] * 2


def test_word_ids_follow_word_boundaries(small_tokenizer):
    examples = make_examples(small_tokenizer, [["国家", "主席", "发表", "新年", "讲话"]], [], seq_len=32)
    assert examples.word_ids[0, :12].tolist() == [-1, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, -1]


def test_whole_word_masking_masks_words_together(small_tokenizer):
    examples = make_examples(small_tokenizer, [["国家", "主席", "发表", "新年", "讲话"] * 10] * 50, [], seq_len=32)
    rng = np.random.default_rng(0)
    masked, labels, weights = mask_tokens(examples.input_ids, examples.word_ids, small_tokenizer, rng)
    chosen = weights > 0
    for row in range(len(chosen)):
        for word in np.unique(examples.word_ids[row][examples.word_ids[row] >= 0]):
            flags = chosen[row][examples.word_ids[row] == word]
            assert flags.all() or not flags.any()
    assert not chosen[examples.word_ids < 0].any()
    assert np.array_equal(labels, examples.input_ids)
    rate = chosen.sum() / (examples.word_ids >= 0).sum()
    assert 0.12 < rate < 0.18
    replaced = (masked == small_tokenizer.mask_id)[chosen].mean()
    assert 0.7 < replaced < 0.9


def test_causal_targets_shift_by_one():
    ids = np.array([[2, 10, 11, 3, 0, 0]])
    labels, weights = causal_lm_targets(ids, pad_id=0)
    assert labels.tolist() == [[10, 11, 3, 0, 0, 0]]
    assert weights.tolist() == [[1, 1, 1, 0, 0, 0]]


def test_unigram_perplexity_of_uniform_text():
    ids = np.array([[2, 5, 6, 7, 8, 3]])
    examples = PretrainingExamples(ids, np.zeros_like(ids), np.array([False]))
    log_probs = unigram_log_probs(examples, vocab_size=10)
    # 5 counted tokens (5, 6, 7, 8, [SEP]) each seen once, plus add-one smoothing over 10 ids.
    assert np.isclose(np.exp(log_probs[5]), 2 / 15)
    assert np.isclose(np.exp(log_probs[9]), 1 / 15)


@pytest.mark.parametrize("name", ["tiny-gpt-zh", "tiny-bert-zh"])
def test_bundled_model_beats_unigram_on_held_out_reviews(name, corpus):
    model, tokenizer = load_llm(name), load_tokenizer(name)
    words, reviews = corpus
    unigram = unigram_log_probs(make_examples(tokenizer, words[:2000], reviews[:2000]), tokenizer.vocab_size)
    held_out = make_examples(tokenizer, [], list(data.load_sentiment().test.texts[:100]))
    if model.config.model_type == "gpt2":
        metrics = evaluate_causal_lm(model, held_out, unigram)
        assert metrics["perplexity"] < 0.5 * metrics["unigram_perplexity"]
    else:
        metrics = evaluate_masked_lm(model, held_out, tokenizer, unigram)
        # The small BERT's top guess is still mostly the commonest character, so accuracy barely moves.
        # Its probabilities at the masked positions are clearly better than the unigram ones.
        assert metrics["masked_cross_entropy"] < metrics["unigram_cross_entropy"] - 0.2
        assert metrics["masked_accuracy"] >= metrics["unigram_accuracy"]


def test_pretrain_writes_loadable_checkpoint(tmp_path):
    output = tmp_path / "gpt"
    summary = pretrain("tiny-gpt-zh", steps=2, batch_size=4, output=output, log_every=1)
    assert summary["steps"] == 2
    assert len(summary["loss_history"]) == 2
    model = load_llm(output)
    assert model.config.num_layers == 4
    record = json.loads((output / "pretraining.json").read_text())
    assert record["tokens_seen"] == 2 * 4 * 128
    with pytest.raises(FileExistsError, match="--overwrite"):
        pretrain("tiny-gpt-zh", steps=1, batch_size=4, output=output)


def test_pretrain_rejects_unknown_preset(tmp_path):
    with pytest.raises(ValueError, match="未知的预设"):
        pretrain("huge-gpt", steps=1, output=tmp_path / "x")
