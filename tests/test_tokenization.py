import numpy as np
import pytest

from peft_lessons.tokenization import ChineseTokenizer, build_vocab, to_halfwidth


def test_one_token_per_chinese_character(small_tokenizer):
    assert small_tokenizer.tokenize("今天天气很好") == ["今", "天", "天", "气", "很", "好"]


def test_fullwidth_digits_read_as_halfwidth(small_tokenizer):
    assert small_tokenizer.tokenize("１２月") == small_tokenizer.tokenize("12月")
    assert to_halfwidth("１２月，ＡＢ") == "12月,AB"


def test_ascii_words_split_into_word_pieces(small_tokenizer):
    assert small_tokenizer.tokenize("iPhone 2010") == ["i", "##p", "##h", "##o", "##n", "##e", "2", "##0", "##1", "##0"]


def test_unknown_character_maps_to_unk(small_tokenizer):
    assert small_tokenizer.tokenize("龘") == ["[UNK]"]


def test_encode_batch_layout(small_tokenizer):
    batch = small_tokenizer.encode_batch(["今天", "好"], max_length=6)
    cls, sep, pad = small_tokenizer.cls_id, small_tokenizer.sep_id, small_tokenizer.pad_id
    ids = small_tokenizer.token_to_id
    assert batch["input_ids"].tolist() == [[cls, ids["今"], ids["天"], sep, pad, pad], [cls, ids["好"], sep, pad, pad, pad]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 0, 0], [1, 1, 1, 0, 0, 0]]
    assert batch["token_type_ids"].sum() == 0
    assert batch["input_ids"].dtype == np.int32


def test_truncation_keeps_final_sep(small_tokenizer):
    ids = small_tokenizer.encode_batch(["今天天气很好我们去公园"], max_length=5)["input_ids"][0]
    assert ids[-1] == small_tokenizer.sep_id
    assert small_tokenizer.decode(ids) == "今天天"


def test_padding_longest(small_tokenizer):
    batch = small_tokenizer.encode_batch(["今天天气", "好"], padding="longest")
    assert batch["input_ids"].shape == (2, 6)


def test_decode_round_trip(small_tokenizer):
    text = "今天天气很好,我们去公园散步。"
    assert small_tokenizer.decode(small_tokenizer.encode(text)) == text


def test_decode_keeps_space_between_ascii_words(small_tokenizer):
    assert small_tokenizer.decode(small_tokenizer.encode("iphone 2010")) == "iphone 2010"


def test_encode_chars_aligns_characters(small_tokenizer):
    batch = small_tokenizer.encode_chars(list("国家主席"), max_length=8)
    assert small_tokenizer.convert_ids_to_tokens(batch["input_ids"][0, 1:5]) == list("国家主席")
    assert batch["attention_mask"][0].tolist() == [1, 1, 1, 1, 1, 1, 0, 0]


def test_tokenize_with_offsets_points_at_characters(small_tokenizer):
    [(ids, offsets)] = small_tokenizer.tokenize_with_offsets(["１２月好"])
    assert offsets == [(0, 1), (1, 2), (2, 3), (3, 4)]
    assert len(ids) == 4


def test_empty_text_rejected(small_tokenizer):
    with pytest.raises(ValueError, match="第 1 条文本为空"):
        small_tokenizer.encode_batch(["好", "  "])


def test_empty_batch_rejected(small_tokenizer):
    with pytest.raises(ValueError, match="文本列表为空"):
        small_tokenizer.encode_batch([])


def test_single_string_rejected(small_tokenizer):
    with pytest.raises(TypeError, match=r"请写成 \[text\]"):
        small_tokenizer.encode_batch("今天")


def test_max_length_above_model_limit_rejected(small_tokenizer):
    with pytest.raises(ValueError, match="超过了模型的 max_positions=32"):
        small_tokenizer.encode_batch(["今天"], max_length=64)


def test_vocab_without_special_tokens_rejected():
    with pytest.raises(ValueError, match="缺少特殊 token"):
        ChineseTokenizer(["a", "b"])


def test_build_vocab_orders_by_frequency():
    vocab = build_vocab(["的的的了了我"], min_count=1)
    assert vocab[:8] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "的", "了", "我"]
    assert "##0" in vocab


def test_build_vocab_respects_max_size():
    vocab = build_vocab(["".join(chr(0x4E00 + i) for i in range(500))], max_size=100, min_count=1)
    assert len(vocab) == 100


def test_vocab_file_round_trip(small_tokenizer, tmp_path):
    small_tokenizer.save_vocab(tmp_path / "vocab.txt")
    again = ChineseTokenizer.from_file(tmp_path / "vocab.txt", model_max_length=32)
    assert again.vocab == small_tokenizer.vocab


def test_special_tokens_in_text_stay_whole(small_tokenizer):
    assert small_tokenizer.tokenize("今天很[MASK]。") == ["今", "天", "很", "[MASK]", "。"]
    assert small_tokenizer.encode("好[MASK]")[2] == small_tokenizer.mask_id


def test_numpy_integer_max_length_accepted(small_tokenizer):
    assert small_tokenizer.encode_batch(["你好"], max_length=np.int64(6))["input_ids"].shape == (1, 6)
