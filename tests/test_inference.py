import pytest

from peft_lessons.checkpoints import load_llm, load_tokenizer
from peft_lessons.inference import fill_mask, generate


@pytest.fixture(scope="module")
def gpt():
    return load_llm("tiny-gpt-zh"), load_tokenizer("tiny-gpt-zh")


@pytest.fixture(scope="module")
def bert():
    return load_llm("tiny-bert-zh"), load_tokenizer("tiny-bert-zh")


def test_greedy_generation_is_repeatable(gpt):
    model, tokenizer = gpt
    first = generate(model, tokenizer, "国务院", max_new_tokens=5, temperature=0)
    assert first == generate(model, tokenizer, "国务院", max_new_tokens=5, temperature=0)
    assert 0 < len(tokenizer.tokenize(first)) <= 5


def test_generation_rejects_too_long_prompt(gpt):
    model, tokenizer = gpt
    with pytest.raises(ValueError, match="max_positions=128"):
        generate(model, tokenizer, "好" * 200)


def test_generation_rejects_bert(bert):
    model, tokenizer = bert
    with pytest.raises(TypeError, match="GPT2LMHeadModel"):
        generate(model, tokenizer, "你好")


def test_fill_mask_returns_probabilities_per_mask(bert):
    model, tokenizer = bert
    results = fill_mask(model, tokenizer, "今天[MASK]气很[MASK]。", top_k=3)
    assert len(results) == 2
    for candidates in results:
        probabilities = [p for _, p in candidates]
        assert probabilities == sorted(probabilities, reverse=True)
        assert all(0.0 < p < 1.0 for p in probabilities)


def test_fill_mask_requires_mask(bert):
    model, tokenizer = bert
    with pytest.raises(ValueError, match="没有 \\[MASK\\]"):
        fill_mask(model, tokenizer, "今天天气很好。")
