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


def classification_metrics(model, dataset, labels) -> dict:
    """Accuracy and ROC AUC of a 2-class classifier on a dataset built by `data.classification_dataset`.

    The dataset must be unshuffled; its zero-weight padding rows at the end are dropped.
    """
    from sklearn.metrics import roc_auc_score

    logits = np.concatenate([np.asarray(model(features, training=False)) for features, _, _ in dataset])
    logits = logits[: len(labels)]
    shifted = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    labels = np.asarray(labels)
    accuracy = float(np.mean(probs.argmax(axis=1) == labels))
    auc = float(roc_auc_score(labels, probs[:, 1])) if len(np.unique(labels)) == 2 else float("nan")
    return {"accuracy": accuracy, "roc_auc": auc}


def train_classifier(model, tokenizer, train_split, validation_split, *, max_length: int = 64, batch_size: int = 32,
                     epochs: int = 3, learning_rate: float = 1e-4, patience: int = 1, seed: int = 0,
                     jit_compile: bool = True, verbose: int = 0) -> dict:
    """Fit a sequence classifier with AdamW, keeping the epoch with the best validation accuracy.

    Training stops early after `patience` epochs without improvement on the validation split.
    Returns the history, the best epoch, validation metrics and the training time in seconds.
    """
    from . import data

    set_seed(seed)
    train_ds = data.classification_dataset(tokenizer, train_split, max_length, batch_size, shuffle=True, seed=seed)
    validation_ds = data.classification_dataset(tokenizer, validation_split, max_length, batch_size, shuffle=False)
    fit = fit_with_early_stopping(model, train_ds, validation_ds, epochs=epochs, learning_rate=learning_rate,
                                  patience=patience, jit_compile=jit_compile, verbose=verbose)
    return dict(fit, validation=classification_metrics(model, validation_ds, validation_split.labels))


def fit_with_early_stopping(model, train_ds, validation_ds, *, epochs: int, learning_rate: float, patience: int = 1,
                            jit_compile: bool = True, verbose: int = 0) -> dict:
    """Compile a classifier that outputs logits and fit it with AdamW, keeping the best validation epoch.

    The datasets yield (features, labels, sample_weight) with fixed batch shapes. Returns the
    history, the best epoch (counted from 1) and the training time in seconds.
    """
    model.compile(
        optimizer=keras.optimizers.AdamW(learning_rate=learning_rate, weight_decay=0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        jit_compile=jit_compile,
    )
    stopper = keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=patience,
                                            restore_best_weights=True)
    with timer() as clock:
        history = model.fit(train_ds, validation_data=validation_ds, epochs=epochs, callbacks=[stopper],
                            shuffle=False, verbose=verbose)
    return {
        "history": {key: [float(v) for v in values] for key, values in history.history.items()},
        "best_epoch": int(np.argmax(history.history["val_accuracy"])) + 1,
        "seconds": clock["seconds"],
    }
