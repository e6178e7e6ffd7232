import json
import math

import keras
import numpy as np
import pytest

from conftest import SENTENCES, max_abs_diff, small_config
from peft_lessons import data
from peft_lessons.checkpoints import bundled_models, load_llm, load_tokenizer
from peft_lessons.lora import (
    ADAPTER_CONFIG_FILE,
    ADAPTER_WEIGHTS_FILE,
    TARGETS,
    LoRADense,
    adapter_size_bytes,
    adapter_tensors,
    apply_lora,
    count_lora_params,
    load_adapter,
    lora_info,
    lora_layers,
    merge_lora,
    save_adapter,
    train_lora_classifier,
    unmerge_lora,
)
from peft_lessons.models import SequenceClassifier, TokenClassifier, build_language_model
from peft_lessons.training import count_params, parameter_report

# Small config: hidden 32, intermediate 64, 2 layers, so every target has min(d_in, d_out) = 32.
HIDDEN, INTERMEDIATE, LAYERS = 32, 64, 2


def language_model(tokenizer, model_type="bert", seed=0, **changes):
    keras.utils.set_random_seed(seed)
    return build_language_model(small_config(model_type, tokenizer, **changes))


def classifier(tokenizer, model_type="bert", seed=0, num_labels=2, **changes):
    """Build a classifier on a random base; the same seed gives the same base weights."""
    return SequenceClassifier(language_model(tokenizer, model_type, seed, **changes), num_labels=num_labels)


def features(tokenizer):
    return tokenizer.encode_batch(SENTENCES, max_length=16)


def predict(model, tokenizer):
    return np.asarray(model(features(tokenizer), training=False))


def randomize_lora(model, seed, scale=0.2):
    """Give every LoRA matrix and the head random values, so that the adapter changes the outputs."""
    rng = np.random.default_rng(seed)
    for wrapper in lora_layers(model).values():
        wrapper.lora_a.assign(rng.normal(0, scale, wrapper.lora_a.shape).astype("float32"))
        wrapper.lora_b.assign(rng.normal(0, scale, wrapper.lora_b.shape).astype("float32"))
    head = model.classifier
    head.kernel.assign(rng.normal(0, scale, head.kernel.shape).astype("float32"))
    head.bias.assign(rng.normal(0, scale, head.bias.shape).astype("float32"))


def snapshot(weights):
    return {id(weight): np.array(weight.numpy()) for weight in weights}


def built_dense(units=6, d_in=5, activation=None, seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    dense = keras.layers.Dense(units, activation=activation, **kwargs)
    dense.build((None, d_in))
    return dense


# ---- LoRADense ----

def test_lora_dense_matches_base_at_step_zero():
    dense = built_dense(activation="gelu", bias_initializer="random_normal")
    x = np.random.default_rng(0).normal(size=(3, 4, 5)).astype("float32")
    expected = np.asarray(dense(x))
    wrapper = LoRADense(dense, rank=2, alpha=4)
    np.testing.assert_array_equal(wrapper.lora_b.numpy(), np.zeros((2, 6), dtype="float32"))
    np.testing.assert_array_equal(np.asarray(wrapper(x)), expected)


def test_lora_dense_computes_formula():
    dense = built_dense(activation="relu", bias_initializer="random_normal")
    wrapper = LoRADense(dense, rank=3, alpha=6)
    rng = np.random.default_rng(1)
    a = rng.normal(size=(5, 3)).astype("float32")
    b = rng.normal(size=(3, 6)).astype("float32")
    wrapper.lora_a.assign(a)
    wrapper.lora_b.assign(b)
    x = rng.normal(size=(4, 5)).astype("float32")

    pre_activation = x @ dense.kernel.numpy() + dense.bias.numpy() + (6 / 3) * (x @ a @ b)
    expected = np.maximum(pre_activation, 0.0)
    assert wrapper.scale == 2.0
    assert max_abs_diff(wrapper(x), expected) < 1e-5
    assert max_abs_diff(wrapper.delta_kernel(), 2.0 * a @ b) < 1e-5


def test_lora_dense_freezes_base():
    dense = built_dense()
    wrapper = LoRADense(dense, rank=2, alpha=2)
    assert {id(w) for w in wrapper.trainable_weights} == {id(wrapper.lora_a), id(wrapper.lora_b)}
    assert not dense.trainable
    assert count_params(wrapper.weights) == 5 * 6 + 6 + 2 * (5 + 6)


def test_gaussian_init_std_is_one_over_rank():
    wrapper = LoRADense(built_dense(units=64, d_in=256), rank=16, alpha=16, init="gaussian")
    a = wrapper.lora_a.numpy()
    assert a.shape == (256, 16)
    assert abs(a.std() - 1 / 16) < 0.1 / 16
    assert abs(a.mean()) < 0.1 / 16


def test_kaiming_init_is_uniform_within_bound():
    wrapper = LoRADense(built_dense(units=64, d_in=256), rank=16, alpha=16, init="kaiming")
    a = wrapper.lora_a.numpy()
    bound = 1 / math.sqrt(256)
    assert np.abs(a).max() <= bound
    assert np.abs(a).max() > 0.95 * bound
    assert abs(a.std() - bound / math.sqrt(3)) < 0.05 * bound


def test_lora_weights_float32_under_bfloat16_policy():
    dense = built_dense(dtype="bfloat16")
    wrapper = LoRADense(dense, rank=2, alpha=4)
    assert dense.kernel.dtype == "bfloat16"
    assert wrapper.lora_a.dtype == "float32"
    assert wrapper.lora_b.dtype == "float32"
    assert wrapper(np.ones((2, 5), dtype="float32")).dtype == "bfloat16"


def test_lora_model_under_mixed_precision(small_tokenizer):
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = classifier(small_tokenizer)
        apply_lora(model, rank=2, alpha=4)
        randomize_lora(model, seed=5)
        query = model.backbone.encoder_layers[0].attention.query
        hidden = query(np.ones((1, 3, HIDDEN), dtype="float32"))
        lora_outputs = predict(model, small_tokenizer)
        merge_lora(model)
        merged_outputs = predict(model, small_tokenizer)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert query.lora_a.dtype == "float32"
    assert query.base.kernel.dtype == "float32"
    assert hidden.dtype == "bfloat16"
    assert lora_outputs.dtype == np.float32
    # Both runs compute in bfloat16, which keeps about 3 significant digits.
    assert max_abs_diff(merged_outputs, lora_outputs) < 0.05


def test_lora_dropout_only_on_lora_branch():
    dense = built_dense()
    x = np.random.default_rng(2).normal(size=(8, 5)).astype("float32")
    wrapper = LoRADense(dense, rank=2, alpha=2, dropout=0.9)
    # With B = 0 the LoRA branch adds nothing, so dropout there must leave the output alone.
    np.testing.assert_array_equal(np.asarray(wrapper(x, training=True)), np.asarray(dense(x)))

    wrapper.lora_b.assign(np.ones((2, 6), dtype="float32"))
    inference = np.asarray(wrapper(x, training=False))
    expected = x @ dense.kernel.numpy() + dense.bias.numpy() + x @ wrapper.lora_a.numpy() @ np.ones((2, 6))
    assert max_abs_diff(inference, expected) < 1e-5
    assert max_abs_diff(wrapper(x, training=True), inference) > 1e-3


@pytest.mark.parametrize("rank, alpha", [(1, 1.0), (4, 16.0), (5, 3.0)])
def test_matches_keras_enable_lora(rank, alpha):
    dense = built_dense(units=6, d_in=5, bias_initializer="random_normal")
    keras_dense = built_dense(units=6, d_in=5)
    keras_dense.set_weights(dense.get_weights())
    keras_dense.enable_lora(rank, lora_alpha=alpha)
    wrapper = LoRADense(dense, rank=rank, alpha=alpha)

    rng = np.random.default_rng(rank)
    a = rng.normal(size=(5, rank)).astype("float32")
    b = rng.normal(size=(rank, 6)).astype("float32")
    keras_dense.lora_kernel_a.assign(a)
    keras_dense.lora_kernel_b.assign(b)
    wrapper.lora_a.assign(a)
    wrapper.lora_b.assign(b)
    x = rng.normal(size=(3, 5)).astype("float32")

    # Keras scales its update by lora_alpha / rank, the same factor as LoRADense.
    manual = x @ dense.kernel.numpy() + dense.bias.numpy() + (alpha / rank) * (x @ a @ b)
    assert max_abs_diff(keras_dense(x), manual) < 1e-5
    assert max_abs_diff(wrapper(x), keras_dense(x)) < 1e-5


@pytest.mark.parametrize("options, message", [
    (dict(rank=0), "rank 必须是 1 到 min"),
    (dict(rank=-1), "rank 必须是 1 到 min"),
    (dict(rank=6), r"min\(d_in, d_out\)=5"),
    (dict(rank=2.5), "rank 必须是"),
    (dict(rank=True), "rank 必须是"),
    (dict(alpha=0), "alpha 必须是正数"),
    (dict(alpha=-1.0), "alpha 必须是正数"),
    (dict(alpha=float("nan")), "alpha 必须是正数"),
    (dict(dropout=-0.1), r"dropout 必须在 \[0, 1\)"),
    (dict(dropout=1.0), r"dropout 必须在 \[0, 1\)"),
    (dict(init="xavier"), "init 只能是"),
], ids=["rank-zero", "rank-negative", "rank-above-min", "rank-float", "rank-bool", "alpha-zero", "alpha-negative",
        "alpha-nan", "dropout-negative", "dropout-one", "init-unknown"])
def test_lora_dense_rejects_bad_options(options, message):
    settings = dict(rank=2, alpha=4.0, dropout=0.0, init="gaussian")
    settings.update(options)
    with pytest.raises(ValueError, match=message):
        LoRADense(built_dense(units=6, d_in=5), **settings)


def test_lora_dense_rejects_bad_base():
    wrapper = LoRADense(built_dense(), rank=2, alpha=2)
    with pytest.raises(ValueError, match="已经是 LoRADense"):
        LoRADense(wrapper, rank=2, alpha=2)
    with pytest.raises(ValueError, match="还没有构建"):
        LoRADense(keras.layers.Dense(4), rank=2, alpha=2)
    keras_lora = built_dense()
    keras_lora.enable_lora(2)
    with pytest.raises(ValueError, match="enable_lora"):
        LoRADense(keras_lora, rank=2, alpha=2)
    with pytest.raises(TypeError, match="只能包装 keras.layers.Dense"):
        LoRADense(keras.layers.LayerNormalization(), rank=2, alpha=2)


# ---- apply_lora ----

@pytest.mark.parametrize("model_type", ["bert", "gpt2"])
def test_apply_lora_keeps_outputs_at_step_zero(small_tokenizer, model_type):
    model = classifier(small_tokenizer, model_type)
    before = predict(model, small_tokenizer)
    apply_lora(model, targets=TARGETS, rank=4, alpha=8)
    np.testing.assert_array_equal(predict(model, small_tokenizer), before)


@pytest.mark.parametrize("model_type, layer", [("bert", "layer"), ("gpt2", "block")])
def test_apply_lora_wraps_named_layers(small_tokenizer, model_type, layer):
    model = classifier(small_tokenizer, model_type)
    info = apply_lora(model, targets=("value", "output", "ffn_output"), rank=4, alpha=8)

    assert info.paths == tuple(f"{layer}_{i}/{name}" for i in range(LAYERS)
                               for name in ("attention/value", "attention/output", "ffn_output"))
    assert info.config.targets == ("value", "output", "ffn_output")
    assert info.config.scale == 2.0
    assert not info.merged
    blocks = model.backbone.blocks if model_type == "gpt2" else model.backbone.encoder_layers
    for block in blocks:
        assert isinstance(block.attention.value, LoRADense)
        assert isinstance(block.attention.output_dense, LoRADense)
        assert isinstance(block.ffn_output, LoRADense)
        assert not isinstance(block.attention.query, LoRADense)
        assert not isinstance(block.ffn_intermediate, LoRADense)
    assert list(lora_layers(model)) == list(info.paths)


def test_default_targets_are_query_and_value(small_tokenizer):
    model = classifier(small_tokenizer)
    info = apply_lora(model)
    assert info.config.targets == ("query", "value")
    assert (info.config.rank, info.config.alpha, info.config.dropout, info.config.init) == (8, 16.0, 0.0, "gaussian")
    assert len(info.paths) == 2 * LAYERS


def test_targets_as_string_and_duplicates(small_tokenizer):
    assert apply_lora(classifier(small_tokenizer), targets="key").config.targets == ("key",)
    info = apply_lora(classifier(small_tokenizer), targets=["value", "query", "value"])
    assert info.config.targets == ("query", "value")


def test_trainable_weights_are_lora_and_head(small_tokenizer):
    model = classifier(small_tokenizer)
    base_total = parameter_report(model).total
    apply_lora(model, targets=("query", "value", "ffn_intermediate"), rank=4, alpha=8)

    wrappers = lora_layers(model).values()
    expected = {id(w) for wrapper in wrappers for w in (wrapper.lora_a, wrapper.lora_b)}
    expected |= {id(model.classifier.kernel), id(model.classifier.bias)}
    assert {id(w) for w in model.trainable_weights} == expected

    # Each layer: query and value 4 * (32 + 32), ffn_intermediate 4 * (32 + 64).
    lora_params = LAYERS * (2 * 4 * (HIDDEN + HIDDEN) + 4 * (HIDDEN + INTERMEDIATE))
    head_params = HIDDEN * 2 + 2
    report = parameter_report(model)
    assert count_lora_params(model) == lora_params
    assert report.trainable == lora_params + head_params
    assert report.total == base_total + lora_params


def test_frozen_head_leaves_only_lora_trainable(small_tokenizer):
    model = classifier(small_tokenizer)
    apply_lora(model, rank=2, alpha=2, trainable_head=False)
    assert parameter_report(model).trainable == count_lora_params(model)
    assert not model.classifier.kernel.trainable


def test_apply_lora_on_token_classifier(small_tokenizer):
    model = TokenClassifier(language_model(small_tokenizer), num_labels=5)
    before = predict(model, small_tokenizer)
    apply_lora(model, rank=2, alpha=4)
    np.testing.assert_array_equal(predict(model, small_tokenizer), before)
    assert parameter_report(model).trainable == count_lora_params(model) + HIDDEN * 5 + 5


@pytest.mark.parametrize("model_type", ["bert", "gpt2"])
def test_training_changes_only_lora_and_head(small_tokenizer, model_type):
    model = classifier(small_tokenizer, model_type)
    apply_lora(model, targets=("query", "value"), rank=2, alpha=4)
    trainable_ids = {id(w) for w in model.trainable_weights}
    before = snapshot(model.weights)

    # Adam without weight decay, so that only weights with a gradient can change.
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=False)
    labels = np.array([1, 0, 0, 1], dtype=np.int32)
    model.fit(features(small_tokenizer), labels, batch_size=4, epochs=3, verbose=0)

    for weight in model.weights:
        if id(weight) in trainable_ids:
            continue
        np.testing.assert_array_equal(weight.numpy(), before[id(weight)], err_msg=weight.path)
    for wrapper in lora_layers(model).values():
        assert not np.array_equal(wrapper.lora_b.numpy(), before[id(wrapper.lora_b)])
    assert not np.array_equal(model.classifier.kernel.numpy(), before[id(model.classifier.kernel)])


@pytest.mark.parametrize("options, message", [
    (dict(targets=("attn",)), r"没有匹配到任何层。可用的目标层名是 \('query', 'key', 'value', 'output'"),
    (dict(targets=("query", "dense")), r"\['dense'\] 没有匹配到任何层"),
    (dict(targets=()), "targets 为空"),
    (dict(rank=0), "rank 必须是 1 到 min"),
    (dict(rank=HIDDEN + 1), r"min\(d_in, d_out\)=32"),
    (dict(alpha=0), "alpha 必须是正数"),
    (dict(alpha=-2), "alpha 必须是正数"),
    (dict(dropout=1.0), r"dropout 必须在 \[0, 1\)"),
    (dict(dropout=-0.5), r"dropout 必须在 \[0, 1\)"),
    (dict(init="normal"), "init 只能是"),
], ids=["target-unknown", "one-target-unknown", "targets-empty", "rank-zero", "rank-above-min", "alpha-zero",
        "alpha-negative", "dropout-one", "dropout-negative", "init-unknown"])
def test_apply_lora_rejects_bad_options(small_tokenizer, options, message):
    model = classifier(small_tokenizer)
    before = predict(model, small_tokenizer)
    with pytest.raises(ValueError, match=message):
        apply_lora(model, **options)
    assert lora_info(model) is None
    assert parameter_report(model).trainable == count_params(model.weights)
    np.testing.assert_array_equal(predict(model, small_tokenizer), before)


def test_apply_lora_twice_raises(small_tokenizer):
    model = classifier(small_tokenizer)
    apply_lora(model, targets=("query",), rank=2, alpha=2)
    with pytest.raises(ValueError, match=r"\['layer_0/attention/query', 'layer_1/attention/query'\] 等层已经被包装"):
        apply_lora(model, targets=("query",), rank=2, alpha=2)
    with pytest.raises(ValueError, match="模型已经应用过 LoRA"):
        apply_lora(model, targets=("value",), rank=2, alpha=2)
    assert lora_info(model).paths == ("layer_0/attention/query", "layer_1/attention/query")


def test_lora_functions_need_lora(small_tokenizer):
    model = classifier(small_tokenizer)
    assert lora_info(model) is None
    for function in (lora_layers, merge_lora, unmerge_lora, count_lora_params):
        with pytest.raises(ValueError, match="没有 LoRA；请先调用 apply_lora"):
            function(model)


# ---- merging ----

@pytest.mark.parametrize("model_type", ["bert", "gpt2"])
def test_merge_gives_plain_model_with_same_outputs(small_tokenizer, model_type):
    model = classifier(small_tokenizer, model_type)
    base_weight_count = len(model.weights)
    base_total = parameter_report(model).total
    apply_lora(model, targets=TARGETS, rank=4, alpha=8)
    randomize_lora(model, seed=0)
    lora_outputs = predict(model, small_tokenizer)

    info = merge_lora(model)
    assert info.merged
    blocks = model.backbone.blocks if model_type == "gpt2" else model.backbone.encoder_layers
    for block in blocks:
        for layer in (block.attention.query, block.attention.key, block.attention.value, block.attention.output_dense,
                      block.ffn_intermediate, block.ffn_output):
            assert isinstance(layer, keras.layers.Dense)
            assert not isinstance(layer, LoRADense)
    assert len(model.weights) == base_weight_count
    assert parameter_report(model).total == base_total
    assert max_abs_diff(predict(model, small_tokenizer), lora_outputs) < 1e-5


def test_predict_after_merge_and_unmerge(small_tokenizer):
    # model.predict caches a traced function; a stale one would add the update twice after merging.
    model = classifier(small_tokenizer)
    apply_lora(model, rank=4, alpha=8)
    randomize_lora(model, seed=4)
    encoded = features(small_tokenizer)
    lora_outputs = model.predict(encoded, verbose=0)

    merge_lora(model)
    assert max_abs_diff(model.predict(encoded, verbose=0), lora_outputs) < 1e-5
    unmerge_lora(model)
    assert max_abs_diff(model.predict(encoded, verbose=0), lora_outputs) < 1e-5


def test_merged_kernel_is_base_plus_update(small_tokenizer):
    model = classifier(small_tokenizer)
    apply_lora(model, rank=4, alpha=8)
    randomize_lora(model, seed=1)
    query = model.backbone.encoder_layers[0].attention.query
    base_kernel = query.base.kernel.numpy().copy()
    update = 2.0 * query.lora_a.numpy().astype(np.float64) @ query.lora_b.numpy()

    merge_lora(model)
    merged = model.backbone.encoder_layers[0].attention.query
    assert merged is query.base
    assert max_abs_diff(merged.kernel, base_kernel + update) < 1e-6


def test_unmerge_restores_kernels_and_wrappers(small_tokenizer):
    model = classifier(small_tokenizer, "gpt2")
    apply_lora(model, targets=TARGETS, rank=4, alpha=8)
    randomize_lora(model, seed=2)
    wrappers = lora_layers(model)
    kernels = {path: wrapper.base.kernel.numpy().copy() for path, wrapper in wrappers.items()}
    lora_outputs = predict(model, small_tokenizer)
    weight_ids = [id(w) for w in model.weights]

    merge_lora(model)
    info = unmerge_lora(model)

    assert not info.merged
    for path, wrapper in wrappers.items():
        assert max_abs_diff(wrapper.base.kernel, kernels[path]) <= 1e-6, path
    block = model.backbone.blocks[0]
    assert block.attention.query is wrappers["block_0/attention/query"]
    assert block.ffn_output is wrappers["block_0/ffn_output"]
    assert [id(w) for w in model.weights] == weight_ids
    assert max_abs_diff(predict(model, small_tokenizer), lora_outputs) < 1e-5


def test_merge_twice_raises(small_tokenizer):
    model = classifier(small_tokenizer)
    apply_lora(model, rank=2, alpha=2)
    randomize_lora(model, seed=3)
    merge_lora(model)
    merged_outputs = predict(model, small_tokenizer)
    with pytest.raises(ValueError, match="已经合并进基座权重了，不能再合并一次"):
        merge_lora(model)
    np.testing.assert_array_equal(predict(model, small_tokenizer), merged_outputs)


def test_unmerge_unmerged_raises(small_tokenizer):
    model = classifier(small_tokenizer)
    apply_lora(model, rank=2, alpha=2)
    with pytest.raises(ValueError, match="没有合并，无需 unmerge"):
        unmerge_lora(model)


# ---- adapters ----

@pytest.fixture()
def trained(small_tokenizer):
    """A BERT classifier with LoRA (rank 4, query and value) and random adapter values."""
    model = classifier(small_tokenizer)
    apply_lora(model, targets=("query", "value"), rank=4, alpha=8)
    randomize_lora(model, seed=10)
    return model


def test_save_adapter_writes_config_and_tensors(trained, tmp_path):
    directory = save_adapter(trained, tmp_path / "adapter")
    config = json.loads((directory / ADAPTER_CONFIG_FILE).read_text(encoding="utf-8"))

    assert config["rank"] == 4
    assert config["alpha"] == 8.0
    assert config["targets"] == ["query", "value"]
    assert config["init"] == "gaussian"
    assert config["paths"] == list(lora_info(trained).paths)
    assert config["base_model"]["hidden_size"] == HIDDEN
    assert config["base_model"]["num_layers"] == LAYERS
    assert config["base_model"]["model_type"] == "bert"
    assert len(config["base_model"]["token_embedding_sha256"]) == 64
    assert config["head"] == {"model_class": "SequenceClassifier", "kernel_shape": [HIDDEN, 2], "use_bias": True}

    tensors = adapter_tensors(trained)
    assert set(tensors) == {f"{path}/lora_{part}" for path in config["paths"] for part in "ab"} | {
        "classifier/kernel", "classifier/bias"}
    lora_bytes = 4 * count_lora_params(trained)
    head_bytes = 4 * (HIDDEN * 2 + 2)
    assert adapter_size_bytes(trained) == lora_bytes + head_bytes
    file_size = (directory / ADAPTER_WEIGHTS_FILE).stat().st_size
    assert adapter_size_bytes(trained) < file_size < adapter_size_bytes(trained) + 4096


def test_load_adapter_onto_fresh_model(trained, tmp_path, small_tokenizer):
    directory = save_adapter(trained, tmp_path / "adapter")
    expected = predict(trained, small_tokenizer)
    fresh = classifier(small_tokenizer)
    assert lora_info(fresh) is None

    info = load_adapter(fresh, directory)
    assert info.config == lora_info(trained).config
    assert info.paths == lora_info(trained).paths
    assert max_abs_diff(predict(fresh, small_tokenizer), expected) < 1e-5
    assert parameter_report(fresh).trainable == parameter_report(trained).trainable


def test_switching_adapters_on_one_model(small_tokenizer, tmp_path):
    model = classifier(small_tokenizer)
    apply_lora(model, rank=4, alpha=8)
    randomize_lora(model, seed=20)
    save_adapter(model, tmp_path / "a")
    randomize_lora(model, seed=21)
    save_adapter(model, tmp_path / "b")

    load_adapter(model, tmp_path / "a")
    first_a = predict(model, small_tokenizer)
    load_adapter(model, tmp_path / "b")
    b = predict(model, small_tokenizer)
    load_adapter(model, tmp_path / "a")
    second_a = predict(model, small_tokenizer)

    assert max_abs_diff(first_a, b) > 1e-3
    np.testing.assert_array_equal(second_a, first_a)


def test_save_adapter_keeps_existing_directory(trained, tmp_path):
    directory = save_adapter(trained, tmp_path / "adapter")
    saved = (directory / ADAPTER_WEIGHTS_FILE).read_bytes()
    randomize_lora(trained, seed=30)

    with pytest.raises(FileExistsError, match="已存在且不为空.*overwrite=True"):
        save_adapter(trained, directory)
    assert (directory / ADAPTER_WEIGHTS_FILE).read_bytes() == saved

    save_adapter(trained, directory, overwrite=True)
    assert (directory / ADAPTER_WEIGHTS_FILE).read_bytes() != saved


def test_save_adapter_rejects_file_path(trained, tmp_path):
    path = tmp_path / "adapter.txt"
    path.write_text("x")
    with pytest.raises(FileExistsError, match="已存在且是文件"):
        save_adapter(trained, path)


@pytest.mark.parametrize("options, message", [
    (dict(targets=("query", "value"), rank=2, alpha=8), r"rank=4（当前模型 2）"),
    (dict(targets=("query", "key"), rank=4, alpha=8), r"targets=\('query', 'value'\)（当前模型 \('query', 'key'\)）"),
    (dict(targets=("query", "value"), rank=4, alpha=16), r"alpha=8.0（当前模型 16.0）"),
], ids=["rank", "targets", "alpha"])
def test_load_adapter_rejects_other_lora_settings(trained, tmp_path, small_tokenizer, options, message):
    directory = save_adapter(trained, tmp_path / "adapter")
    model = classifier(small_tokenizer)
    apply_lora(model, **options)
    before = predict(model, small_tokenizer)
    with pytest.raises(ValueError, match=message):
        load_adapter(model, directory)
    np.testing.assert_array_equal(predict(model, small_tokenizer), before)


@pytest.mark.parametrize("changes, message", [
    (dict(hidden_size=16), r"hidden_size=32（当前模型为 16）"),
    (dict(num_layers=3), r"num_layers=2（当前模型为 3）"),
    (dict(model_type="gpt2"), r"model_type='bert'（当前模型为 'gpt2'）"),
], ids=["hidden_size", "num_layers", "model_type"])
def test_load_adapter_rejects_other_base_config(trained, tmp_path, small_tokenizer, changes, message):
    directory = save_adapter(trained, tmp_path / "adapter")
    model = classifier(small_tokenizer, **changes)
    with pytest.raises(ValueError, match=f"是为另一个基座模型训练的.*{message}"):
        load_adapter(model, directory)
    assert lora_info(model) is None


def test_load_adapter_checks_base_weights(trained, tmp_path, small_tokenizer):
    directory = save_adapter(trained, tmp_path / "adapter")
    other_weights = classifier(small_tokenizer, seed=99)
    with pytest.raises(ValueError, match="词嵌入的校验和不同"):
        load_adapter(other_weights, directory)
    assert lora_info(other_weights) is None

    info = load_adapter(other_weights, directory, verify_base_weights=False)
    assert info.config == lora_info(trained).config


def test_load_adapter_rejects_other_head(trained, tmp_path, small_tokenizer):
    directory = save_adapter(trained, tmp_path / "adapter")
    three_labels = classifier(small_tokenizer, num_labels=3)
    with pytest.raises(ValueError, match=r"kernel 形状 \[32, 2\].*kernel 形状 \[32, 3\]"):
        load_adapter(three_labels, directory)
    assert lora_info(three_labels) is None

    token_head = TokenClassifier(three_labels.backbone, num_labels=2)
    with pytest.raises(ValueError, match="分类头来自 SequenceClassifier.*当前模型是 TokenClassifier"):
        load_adapter(token_head, directory)


def test_load_adapter_rejects_merged_model(trained, tmp_path):
    directory = save_adapter(trained, tmp_path / "adapter")
    merge_lora(trained)
    with pytest.raises(ValueError, match="请先调用 unmerge_lora"):
        load_adapter(trained, directory)


def test_load_adapter_rejects_missing_files(trained, tmp_path):
    with pytest.raises(FileNotFoundError, match="找不到 adapter 目录"):
        load_adapter(trained, tmp_path / "missing")
    directory = save_adapter(trained, tmp_path / "adapter")
    (directory / ADAPTER_WEIGHTS_FILE).unlink()
    with pytest.raises(FileNotFoundError, match="adapter_model.safetensors"):
        load_adapter(trained, directory)


# ---- training ----

def test_train_lora_classifier_result(small_tokenizer):
    split = data.TextSplit(["很好", "今天天气很差", "不推荐购买", "今天天气很好"], [1, 0, 0, 1])
    lm = language_model(small_tokenizer, seed=1)
    before = snapshot(lm.backbone.weights)

    result = train_lora_classifier(lm, small_tokenizer, split, split, test_split=split, rank=2, alpha=4,
                                   max_length=16, batch_size=4, epochs=2, learning_rate=1e-2, jit_compile=True)

    assert result.keys() == {"method", "model", "history", "best_epoch", "train_size", "trainable_params",
                             "seconds", "validation", "test", "lora"}
    assert result["method"] == "LoRA"
    assert result["train_size"] == 4
    assert len(result["history"]["loss"]) == 2
    assert result["lora"].config.targets == ("query", "value")
    assert result["trainable_params"] == LAYERS * 2 * 2 * (HIDDEN + HIDDEN) + HIDDEN * 2 + 2
    assert result["test"].keys() == {"accuracy", "roc_auc", "label_shares"}
    frozen = [w for w in lm.backbone.weights if not w.trainable]
    assert len(frozen) == len(before)
    for weight in frozen:
        np.testing.assert_array_equal(weight.numpy(), before[id(weight)], err_msg=weight.path)


@pytest.mark.skipif("tiny-bert-zh" not in bundled_models(),
                    reason="the bundled tiny-bert-zh checkpoint is not in peft_lessons/assets")
def test_lora_on_bundled_bert_by_name(tmp_path):
    tokenizer = load_tokenizer("tiny-bert-zh")
    texts = ["质量很好，推荐购买", "太差了，不推荐", "很满意", "非常失望", "物流很快，东西不错", "包装破损，很差"]
    split = data.TextSplit(texts, [1, 0, 1, 0, 1, 0])
    result = train_lora_classifier("tiny-bert-zh", None, split, split, rank=4, alpha=8, max_length=24,
                                   batch_size=6, epochs=2, jit_compile=False)
    model = result["model"]
    # 6 layers, query and value 256 x 256 each: 6 * 2 * 4 * (256 + 256), plus the head 256 * 2 + 2.
    assert result["trainable_params"] == 6 * 2 * 4 * 512 + 514
    save_adapter(model, tmp_path / "adapter")

    fresh = SequenceClassifier(load_llm("tiny-bert-zh"), num_labels=2)
    load_adapter(fresh, tmp_path / "adapter")
    encoded = tokenizer.encode_batch(texts, max_length=24)
    assert max_abs_diff(fresh(encoded, training=False), model(encoded, training=False)) < 1e-5
