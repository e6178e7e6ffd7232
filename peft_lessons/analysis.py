"""Linear-algebra views of trained LoRA updates: subspace similarity and projections onto singular directions.

The measures follow the analysis in Hu et al. 2021 ("LoRA: Low-Rank Adaptation of Large
Language Models", arXiv:2106.09685) of how many directions a LoRA update needs and how the
update relates to the pretrained weight. Inputs are numpy arrays, tensors or Keras variables
and are computed in float64.

Layout: matrices are in this project's (Keras) layout. A LoRA down-projection `lora_a` is
`[d_in, r]`, the transpose of the paper's A `[r, d_in]`, and a kernel or update is
`[d_in, d_out]`, the transpose of the paper's W `[d_out, d_in]`. Singular directions are
ordered by decreasing singular value.
"""

from __future__ import annotations

import numbers

import numpy as np

SIDES = ("left", "right")


def _as_matrix(name: str, value) -> np.ndarray:
    try:
        matrix = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} 需要一个数值矩阵（numpy 数组、张量或 Keras 变量），收到 {type(value).__name__}。") from error
    if matrix.ndim != 2:
        raise ValueError(f"{name} 必须是二维矩阵，收到形状 {matrix.shape}；LoRA 的 A 应为 [d_in, r]，kernel 应为 [d_in, d_out]。")
    if matrix.size == 0:
        raise ValueError(f"{name} 是空矩阵（形状 {matrix.shape}）；请传入训练后的权重。")
    if not np.all(np.isfinite(matrix)):
        raise ValueError(f"{name} 含有 NaN 或无穷大；请检查训练是否发散。")
    return matrix


def _check_count(name: str, value, limit: int, description: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 1 <= value <= limit:
        raise ValueError(f"{name} 必须是 1 到 {limit} 之间的整数（{description}），收到 {value!r}。")
    return int(value)


def _check_side(side) -> str:
    if side not in SIDES:
        raise ValueError(
            f"side 只能是 {SIDES} 之一，收到 {side!r}；对 [d_in, d_out] 的 kernel，'left' 是输入空间的方向，"
            "'right' 是输出空间的方向。"
        )
    return side


def _singular_vectors(matrix: np.ndarray, side: str = "left") -> np.ndarray:
    """Return the orthonormal singular vectors of one side as columns, by decreasing singular value."""
    u, _, vh = np.linalg.svd(matrix, full_matrices=False)
    return u if side == "left" else vh.T


def _overlap(u1: np.ndarray, u2: np.ndarray, i: int, j: int) -> float:
    """Return ||u1[:, :i]^T u2[:, :j]||_F^2 / min(i, j) for orthonormal columns u1 and u2."""
    cross = u1[:, :i].T @ u2[:, :j]
    return float(np.sum(cross ** 2) / min(i, j))


# ---------------------------------------------------------------------------
# Subspace similarity of two LoRA matrices
# ---------------------------------------------------------------------------


def _lora_a_pair(a1, a2) -> tuple[np.ndarray, np.ndarray]:
    a1 = _as_matrix("A1", a1)
    a2 = _as_matrix("A2", a2)
    if a1.shape[0] != a2.shape[0]:
        raise ValueError(
            f"A1 的形状 {a1.shape} 与 A2 的形状 {a2.shape} 行数不同；两者都应是同一层的 lora_a，形状 [d_in, r]。"
            "如果你的矩阵是论文里的 [r, d_in] 形状，请先转置。"
        )
    return _singular_vectors(a1), _singular_vectors(a2)


def subspace_similarity(a1, a2, i: int, j: int) -> float:
    """Return the normalized subspace similarity phi(A1, A2, i, j) of two LoRA down-projections.

    phi = ||U1[:, :i]^T U2[:, :j]||_F^2 / min(i, j), where U1 and U2 hold the singular
    vectors of `a1` and `a2` (each `lora_a`, `[d_in, r]`) that live in the d_in-dimensional
    input space. These are the left singular vectors of `lora_a` and thus the right singular
    vectors of the paper's A `[r, d_in]`. phi lies in [0, 1]: 1 when the top-i directions of
    one lie in the span of the top-j directions of the other (for i <= j), 0 when they are
    orthogonal. For random subspaces of R^d its expected value is max(i, j) / d.
    `i` ranges over 1..min(d_in, r1) and `j` over 1..min(d_in, r2).
    """
    u1, u2 = _lora_a_pair(a1, a2)
    i = _check_count("i", i, u1.shape[1], "A1 的奇异向量个数 min(d_in, r1)")
    j = _check_count("j", j, u2.shape[1], "A2 的奇异向量个数 min(d_in, r2)")
    return _overlap(u1, u2, i, j)


def similarity_grid(a1, a2, max_i: int | None = None, max_j: int | None = None) -> np.ndarray:
    """Return phi(A1, A2, i, j) for i = 1..max_i and j = 1..max_j as an array `[max_i, max_j]`, for a heatmap.

    Entry `[i - 1, j - 1]` equals `subspace_similarity(a1, a2, i, j)`. `max_i` and `max_j`
    default to all singular directions of `a1` and `a2`.
    """
    u1, u2 = _lora_a_pair(a1, a2)
    max_i = u1.shape[1] if max_i is None else _check_count("max_i", max_i, u1.shape[1], "A1 的奇异向量个数 min(d_in, r1)")
    max_j = u2.shape[1] if max_j is None else _check_count("max_j", max_j, u2.shape[1], "A2 的奇异向量个数 min(d_in, r2)")
    squared = (u1[:, :max_i].T @ u2[:, :max_j]) ** 2  # [max_i, max_j]
    # Entry [i-1, j-1] of the double cumulative sum is ||U1[:, :i]^T U2[:, :j]||_F^2.
    totals = np.cumsum(np.cumsum(squared, axis=0), axis=1)
    smaller = np.minimum.outer(np.arange(1, max_i + 1), np.arange(1, max_j + 1))
    return totals / smaller


# ---------------------------------------------------------------------------
# The update Delta W against the pretrained W
# ---------------------------------------------------------------------------


def _weight_pair(delta_w, w) -> tuple[np.ndarray, np.ndarray]:
    delta_w = _as_matrix("delta_w", delta_w)
    w = _as_matrix("w", w)
    if delta_w.shape != w.shape:
        raise ValueError(
            f"delta_w 的形状 {delta_w.shape} 与 w 的形状 {w.shape} 不同；两者应是同一层的更新和预训练 kernel。"
        )
    return delta_w, w


def direction_similarity(delta_w, w, i: int, j: int, side: str = "left") -> float:
    """Return how much the top-i singular directions of `delta_w` overlap the top-j of `w`.

    The measure is the one of `subspace_similarity`, ||U_dw[:, :i]^T U_w[:, :j]||_F^2 /
    min(i, j), with U_dw and U_w the singular vectors of `delta_w` and `w` on `side`. For a
    Keras kernel `[d_in, d_out]`, "left" is the input space and "right" the output space.
    A value near 0 means the update works on directions that W does not emphasize.
    """
    delta_w, w = _weight_pair(delta_w, w)
    side = _check_side(side)
    u_delta = _singular_vectors(delta_w, side)
    u_w = _singular_vectors(w, side)
    i = _check_count("i", i, u_delta.shape[1], "矩阵的奇异向量个数 min(d_in, d_out)")
    j = _check_count("j", j, u_w.shape[1], "矩阵的奇异向量个数 min(d_in, d_out)")
    return _overlap(u_delta, u_w, i, j)


def _projection_norm(w: np.ndarray, left: np.ndarray, right: np.ndarray) -> float:
    """Return ||left^T W right||_F, the size of W inside the span of the given directions."""
    return float(np.linalg.norm(left.T @ w @ right))


def _top_directions(matrix: np.ndarray, r: int) -> tuple[np.ndarray, np.ndarray]:
    u, _, vh = np.linalg.svd(matrix, full_matrices=False)
    return u[:, :r], vh[:r].T


def projection_norms(delta_w, w, r: int, seed: int = 0) -> dict:
    """Measure W inside the top-r singular directions of Delta W, of W itself and of random directions.

    With U `[m, r]` and V `[n, r]` the top-r left and right singular vectors of a matrix,
    each value is ||U^T W V||_F, the Frobenius norm of W projected onto those directions
    (the paper writes U^T W V^T with V^T as the `[r, n]` factor of the SVD). Returns floats:

    - "delta_w": U, V from `delta_w`.
    - "w": U, V from `w`. This equals sqrt(s_1^2 + ... + s_r^2) for W's singular values s.
    - "random": r random orthonormal directions on each side (QR of a Gaussian matrix drawn
      with `np.random.default_rng(seed)`).
    - "w_norm" and "delta_w_norm": ||W||_F and ||Delta W||_F.
    - "amplification_factor": ||Delta W||_F / "delta_w", see `amplification_factor`.

    The value does not depend on the layout, because transposing both matrices swaps U and V.
    `r` ranges over 1..min(m, n).
    """
    delta_w, w = _weight_pair(delta_w, w)
    rows, columns = w.shape
    r = _check_count("r", r, min(rows, columns), "矩阵的奇异向量个数 min(d_in, d_out)")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed 必须是非负整数，收到 {seed!r}。")

    rng = np.random.default_rng(seed)
    random_left, _ = np.linalg.qr(rng.standard_normal((rows, r)))
    random_right, _ = np.linalg.qr(rng.standard_normal((columns, r)))
    on_delta = _projection_norm(w, *_top_directions(delta_w, r))
    delta_norm = float(np.linalg.norm(delta_w))
    return {
        "delta_w": on_delta,
        "w": _projection_norm(w, *_top_directions(w, r)),
        "random": _projection_norm(w, random_left, random_right),
        "w_norm": float(np.linalg.norm(w)),
        "delta_w_norm": delta_norm,
        "amplification_factor": delta_norm / on_delta if on_delta > 0 else float("inf"),
    }


def amplification_factor(delta_w, w, r: int) -> float:
    """Return ||Delta W||_F / ||U^T W V||_F, with U and V the top-r singular directions of Delta W.

    It measures how strongly the update amplifies the directions of W it acts on: a large value
    means Delta W is big compared with what W already does in those directions. It is
    infinite when W has no component in those directions.
    """
    return projection_norms(delta_w, w, r)["amplification_factor"]
