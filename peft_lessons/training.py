"""Training helpers shared by every chapter: seeds, parameter counts, timing, the optimizer."""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass

import keras
import numpy as np


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and the backend (TensorFlow) in one call, so a run can be repeated."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed 必须是非负整数，收到 {seed!r}。")
    keras.utils.set_random_seed(seed)


def count_params(weights) -> int:
    return int(sum(np.prod(w.shape) for w in weights))


@dataclass(frozen=True)
class ParameterReport:
    """Trainable and total parameter counts of a model, in the form HF PEFT prints."""

    trainable: int
    total: int

    @property
    def trainable_percent(self) -> float:
        return 100.0 * self.trainable / self.total if self.total else 0.0

    def __str__(self) -> str:
        return (f"trainable params: {self.trainable:,} || all params: {self.total:,} "
                f"|| trainable%: {self.trainable_percent:.4f}")


def parameter_report(model) -> ParameterReport:
    return ParameterReport(trainable=count_params(model.trainable_weights), total=count_params(model.weights))


def warmup_cosine(peak_learning_rate: float, total_steps: int, warmup_fraction: float = 0.05, final_fraction: float = 0.1):
    """Learning-rate schedule: linear warm-up to the peak, then cosine decay to `final_fraction` of it."""
    if total_steps < 1:
        raise ValueError(f"total_steps 必须是正整数，收到 {total_steps!r}。")
    warmup_steps = max(1, int(total_steps * warmup_fraction))
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0,
        decay_steps=max(1, total_steps - warmup_steps),
        alpha=final_fraction,
        warmup_target=peak_learning_rate,
        warmup_steps=warmup_steps,
    )


@contextmanager
def timer():
    """Measure wall time: `with timer() as t: ...`, then read `t["seconds"]`."""
    result = {"seconds": 0.0}
    start = time.perf_counter()
    try:
        yield result
    finally:
        result["seconds"] = time.perf_counter() - start
