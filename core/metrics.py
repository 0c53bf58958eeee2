"""Evaluation metrics (pure numpy): accuracy, macro-F1, per-class recall, confusion matrix,
counterfactual consistency, an accuracy's interval when its answers come in clusters. Shared by
``ruledrive evaluate``, training and the replay report."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = [
    "classification_report",
    "clustered_interval",
    "confusion_matrix",
    "counterfactual_consistency",
    "plot_confusion",
]


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n: int) -> np.ndarray:
    """[n,n] counts; rows = true class, columns = predicted class."""
    cm = np.zeros((n, n), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return cm


def classification_report(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str]) -> dict:
    n = len(labels)
    cm = confusion_matrix(y_true, y_pred, n)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    tp = np.diag(cm)
    recall = np.divide(tp, support, out=np.zeros(n), where=support > 0)
    precision = np.divide(tp, predicted, out=np.zeros(n), where=predicted > 0)
    f1 = np.divide(
        2 * precision * recall, precision + recall, out=np.zeros(n), where=(precision + recall) > 0
    )
    present = support > 0
    return {
        "n": int(len(y_true)),
        "accuracy": float(tp.sum() / max(len(y_true), 1)),
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "per_class_recall": {labels[i]: float(recall[i]) for i in range(n) if present[i]},
        "support": {labels[i]: int(support[i]) for i in range(n)},
        "confusion_matrix": cm.tolist(),
    }


def counterfactual_consistency(
    correct: np.ndarray, pairs: Sequence[tuple[int, int]]
) -> float | None:
    """Share of counterfactual pairs (indices) where BOTH members are decided right."""
    if not pairs:
        return None
    return float(np.mean([bool(correct[a] and correct[b]) for a, b in pairs]))


def plot_confusion(cm: np.ndarray, labels: Sequence[str], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 6))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=40, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    hi = cm.max() if cm.size else 0
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(
                j,
                i,
                str(cm[i, j]),
                ha="center",
                va="center",
                fontsize=8,
                color="white" if cm[i, j] > hi / 2 else "black",
            )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def clustered_interval(
    clusters: Sequence[tuple[int, int]], z: float = 1.96
) -> tuple[float, float] | None:
    """A 95 % interval (z = 1.96) for an accuracy whose answers come in clusters that are not
    independent: ``clusters`` holds (answers, right) per cluster, e.g. the frames of one rule
    text, which a model reads the same way on most of them. Wilson's score interval on the
    effective sample size: the answers divided by the design effect, from the cluster-robust
    (ratio-estimator) variance. Where that variance is zero because every answer is right (or
    every one wrong), each cluster counts once. Distinct clusters of one answer each give
    Wilson's interval on the answers; a single cluster is a single reading. None when there are
    no answers."""
    f = np.array([c[0] for c in clusters], dtype=np.float64)
    r = np.array([c[1] for c in clusters], dtype=np.float64)
    n, k = float(f.sum()), len(clusters)
    if n == 0:
        return None
    p = float(r.sum()) / n
    if k < 2:
        n_eff = 1.0
    else:
        var = k / (k - 1) * float(((r - p * f) ** 2).sum()) / n**2
        if p in (0.0, 1.0):  # no variance to estimate: each cluster once
            n_eff = float(k)
        elif var == 0:  # every cluster at the same share: as good as independent answers
            n_eff = n
        else:
            n_eff = min(n, p * (1 - p) / var)
    z2 = z * z / n_eff
    centre = (p + z2 / 2) / (1 + z2)
    half = z * np.sqrt(p * (1 - p) / n_eff + z2 / (4 * n_eff)) / (1 + z2)
    return max(0.0, float(centre - half)), min(1.0, float(centre + half))
