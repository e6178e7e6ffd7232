import math

import numpy as np
import pytest

from peft_lessons.analysis import (
    amplification_factor,
    direction_similarity,
    projection_norms,
    similarity_grid,
    subspace_similarity,
)


def orthonormal(rows, columns, seed):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(rows, columns)))
    return q


def matrix_with_singular_values(values, rows, columns, seed=0):
    """Return W = U diag(values) V^T with random orthonormal U and V, and U, V themselves."""
    u = orthonormal(rows, len(values), seed)
    v = orthonormal(columns, len(values), seed + 1)
    return u @ np.diag(values) @ v.T, u, v


# ---- subspace similarity of LoRA matrices ----

def test_identical_matrices_have_similarity_one():
    a = np.random.default_rng(0).normal(size=(32, 8))
    grid = similarity_grid(a, a)
    assert grid.shape == (8, 8)
    np.testing.assert_allclose(grid, np.ones((8, 8)), atol=1e-12)
    assert subspace_similarity(a, a, 3, 7) == pytest.approx(1.0)


def test_orthogonal_subspaces_have_similarity_zero():
    basis = orthonormal(32, 8, seed=1)
    rng = np.random.default_rng(2)
    a1 = basis[:, :4] @ rng.normal(size=(4, 4))
    a2 = basis[:, 4:] @ rng.normal(size=(4, 4))
    np.testing.assert_allclose(similarity_grid(a1, a2), np.zeros((4, 4)), atol=1e-12)


def test_rotated_copy_has_similarity_one():
    # A Q with orthogonal Q has the same singular values and input-space singular vectors as A.
    a = np.random.default_rng(3).normal(size=(32, 6))
    rotated = a @ orthonormal(6, 6, seed=4)
    for i in range(1, 7):
        assert subspace_similarity(a, rotated, i, i) == pytest.approx(1.0, abs=1e-9)


def test_mixed_columns_span_same_subspace():
    # A M with invertible M spans the same column space, so all r directions together match.
    rng = np.random.default_rng(5)
    a = rng.normal(size=(32, 6))
    mixed = a @ rng.normal(size=(6, 6))
    assert subspace_similarity(a, mixed, 6, 6) == pytest.approx(1.0, abs=1e-9)


def test_smaller_rank_inside_larger_rank():
    # Top directions of a rank-2 matrix lie inside a rank-8 matrix that contains its columns.
    rng = np.random.default_rng(6)
    small = rng.normal(size=(40, 2))
    large = np.concatenate([small, rng.normal(size=(40, 6))], axis=1)
    assert subspace_similarity(small, large, 2, 8) == pytest.approx(1.0, abs=1e-9)
    assert subspace_similarity(small, large, 2, 1) < 1.0


def test_random_pairs_average_max_i_j_over_d():
    d, r = 64, 8
    rng = np.random.default_rng(7)
    for i, j in [(4, 4), (2, 8)]:
        values = [subspace_similarity(rng.normal(size=(d, r)), rng.normal(size=(d, r)), i, j) for _ in range(60)]
        assert all(0.0 < value < 1.0 for value in values)
        assert np.mean(values) == pytest.approx(max(i, j) / d, abs=0.02)


def test_grid_matches_pointwise_similarity():
    rng = np.random.default_rng(8)
    a1 = rng.normal(size=(20, 5))
    a2 = rng.normal(size=(20, 7))
    grid = similarity_grid(a1, a2, max_i=4, max_j=6)
    assert grid.shape == (4, 6)
    for i in range(1, 5):
        for j in range(1, 7):
            assert grid[i - 1, j - 1] == pytest.approx(subspace_similarity(a1, a2, i, j), abs=1e-12)


def test_similarity_accepts_float32_tensors():
    a = np.random.default_rng(9).normal(size=(16, 4)).astype(np.float32)
    assert subspace_similarity(a, a, 4, 4) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("i, j, message", [
    pytest.param(0, 1, "i 必须是 1 到 4 之间的整数", id="i-zero"),
    pytest.param(5, 1, "i 必须是 1 到 4 之间的整数", id="i-above-rank"),
    pytest.param(1, 7, "j 必须是 1 到 6 之间的整数", id="j-above-rank"),
    pytest.param(1, -1, "j 必须是 1 到 6 之间的整数", id="j-negative"),
    pytest.param(1.5, 1, "i 必须是 1 到 4 之间的整数", id="i-float"),
    pytest.param(True, 1, "i 必须是 1 到 4 之间的整数", id="i-bool"),
])
def test_similarity_rejects_index_out_of_range(i, j, message):
    rng = np.random.default_rng(10)
    with pytest.raises(ValueError, match=message):
        subspace_similarity(rng.normal(size=(16, 4)), rng.normal(size=(16, 6)), i, j)


def test_grid_rejects_size_out_of_range():
    rng = np.random.default_rng(11)
    a1, a2 = rng.normal(size=(16, 4)), rng.normal(size=(16, 6))
    with pytest.raises(ValueError, match="max_i 必须是 1 到 4 之间的整数"):
        similarity_grid(a1, a2, max_i=5)
    with pytest.raises(ValueError, match="max_j 必须是 1 到 6 之间的整数"):
        similarity_grid(a1, a2, max_j=0)


def test_similarity_rejects_bad_matrices():
    rng = np.random.default_rng(12)
    with pytest.raises(ValueError, match="行数不同.*请先转置"):
        subspace_similarity(rng.normal(size=(16, 4)), rng.normal(size=(4, 16)), 1, 1)
    with pytest.raises(ValueError, match="必须是二维矩阵"):
        subspace_similarity(rng.normal(size=16), rng.normal(size=(16, 4)), 1, 1)
    with pytest.raises(ValueError, match="NaN"):
        subspace_similarity(np.full((16, 4), np.nan), rng.normal(size=(16, 4)), 1, 1)


# ---- Delta W against W ----

def test_projection_onto_own_directions():
    values = np.array([9.0, 5.0, 3.0, 2.0, 1.0])
    w, _, _ = matrix_with_singular_values(values, 20, 12)
    delta_w = np.random.default_rng(13).normal(size=(20, 12))
    for r in (1, 3, 5):
        norms = projection_norms(delta_w, w, r)
        assert norms["w"] == pytest.approx(math.sqrt(np.sum(values[:r] ** 2)))
        assert norms["w_norm"] == pytest.approx(math.sqrt(np.sum(values ** 2)))
        assert norms["random"] < norms["w"]
        assert norms["delta_w"] <= norms["w"] + 1e-9


def test_update_along_top_direction():
    values = np.array([9.0, 5.0, 3.0, 2.0, 1.0])
    w, u, v = matrix_with_singular_values(values, 20, 12)
    delta_w = 0.5 * np.outer(u[:, 0], v[:, 0])
    norms = projection_norms(delta_w, w, 1)
    assert norms["delta_w"] == pytest.approx(9.0)
    assert norms["delta_w_norm"] == pytest.approx(0.5)
    assert norms["amplification_factor"] == pytest.approx(0.5 / 9.0)
    assert amplification_factor(delta_w, w, 1) == pytest.approx(0.5 / 9.0)
    assert direction_similarity(delta_w, w, 1, 1) == pytest.approx(1.0)
    assert direction_similarity(delta_w, w, 1, 1, side="right") == pytest.approx(1.0)


def test_update_along_weak_direction_is_amplified():
    values = np.array([9.0, 5.0, 3.0, 2.0, 1.0])
    w, u, v = matrix_with_singular_values(values, 20, 12)
    delta_w = 0.5 * np.outer(u[:, 4], v[:, 4])
    assert amplification_factor(delta_w, w, 1) == pytest.approx(0.5 / 1.0)
    assert direction_similarity(delta_w, w, 1, 4) == pytest.approx(0.0, abs=1e-12)
    assert direction_similarity(delta_w, w, 1, 5) == pytest.approx(1.0)


def test_projection_norms_ignore_layout():
    rng = np.random.default_rng(14)
    w = rng.normal(size=(16, 24))
    delta_w = rng.normal(size=(16, 3)) @ rng.normal(size=(3, 24))
    norms = projection_norms(delta_w, w, 3)
    transposed = projection_norms(delta_w.T, w.T, 3)
    for key in ("delta_w", "w", "w_norm", "delta_w_norm", "amplification_factor"):
        assert transposed[key] == pytest.approx(norms[key]), key


def test_random_directions_depend_on_seed():
    rng = np.random.default_rng(15)
    w, delta_w = rng.normal(size=(16, 16)), rng.normal(size=(16, 16))
    assert projection_norms(delta_w, w, 2, seed=1)["random"] == projection_norms(delta_w, w, 2, seed=1)["random"]
    assert projection_norms(delta_w, w, 2, seed=1)["random"] != projection_norms(delta_w, w, 2, seed=2)["random"]


def test_zero_projection_gives_infinite_amplification():
    w = np.zeros((6, 6))
    w[0, 0] = 1.0
    delta_w = np.zeros((6, 6))
    delta_w[5, 5] = 2.0
    assert amplification_factor(delta_w, w, 1) == math.inf


@pytest.mark.parametrize("r", [0, 13, 2.0, False])
def test_projection_rejects_r_out_of_range(r):
    rng = np.random.default_rng(16)
    with pytest.raises(ValueError, match="r 必须是 1 到 12 之间的整数"):
        projection_norms(rng.normal(size=(20, 12)), rng.normal(size=(20, 12)), r)


def test_weight_functions_reject_bad_inputs():
    rng = np.random.default_rng(17)
    w = rng.normal(size=(8, 6))
    with pytest.raises(ValueError, match="形状 \\(6, 8\\) 与 w 的形状 \\(8, 6\\) 不同"):
        projection_norms(w.T, w, 1)
    with pytest.raises(ValueError, match="seed 必须是非负整数"):
        projection_norms(w, w, 1, seed=-1)
    with pytest.raises(ValueError, match="side 只能是"):
        direction_similarity(w, w, 1, 1, side="input")
    with pytest.raises(ValueError, match="j 必须是 1 到 6 之间的整数"):
        direction_similarity(w, w, 1, 7)
