"""`probes`: how linearly decodable is the class from each block? A linear probe per block.

With the model frozen (eval mode), every block's pooled output a(l) (as local rules see it) is
computed on a training subset — the run's training batches, with its augmentation — and a
multinomial logistic regression (scikit-learn, standardised features) is fitted on it, then
scored on the test set (the run's `limit_test_batches` applies). The accuracies are logged on
the run as `probe_acc_block{i}` (what reports read) and drawn beside chance and the model's
own test accuracy.
"""
from __future__ import annotations

import itertools
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from llsbench.figures.features import pooled_features
from llsbench.figures.source import FigureResult, RunSource, save, title

TRAIN_SAMPLES = 5000
MAX_ITER = 500


def training_subset(source: RunSource, samples: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first `samples` images of the run's first-epoch training order."""
    train = source.data.train
    train.set_epoch(0)
    xs, ys, seen = [], [], 0
    for x, y in train:
        xs.append(x), ys.append(y)
        seen += len(y)
        if seen >= samples:
            break
    return torch.cat(xs)[:samples], torch.cat(ys)[:samples]


def test_set(source: RunSource) -> tuple[torch.Tensor, torch.Tensor]:
    limit = source.loaded.config.limit_test_batches
    batches = itertools.islice(source.data.test, limit) if limit else source.data.test
    xs, ys = zip(*batches)
    return torch.cat(xs), torch.cat(ys)


def probe_accuracies(source: RunSource, samples: int = TRAIN_SAMPLES) -> list[float]:
    """Test accuracy (%) of a linear probe on every block's pooled features."""
    model = source.loaded.model
    x_train, y_train = training_subset(source, samples)
    x_test, y_test = test_set(source)
    train_features, test_features = pooled_features(model, x_train), pooled_features(model, x_test)
    accuracies = []
    for f_train, f_test in zip(train_features, test_features):
        probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=MAX_ITER))
        probe.fit(f_train.cpu().double().numpy(), y_train.cpu().numpy())
        accuracies.append(100.0 * probe.score(f_test.cpu().double().numpy(), y_test.cpu().numpy()))
    return accuracies


def draw(source: RunSource, path: Path, *, samples: int = TRAIN_SAMPLES) -> FigureResult:
    accuracies = probe_accuracies(source, samples)
    chance = 100.0 / source.data.spec.num_classes
    final = source.run.data.metrics.get("final_test_acc")
    data = {"accuracy": np.array(accuracies), "chance": chance, "model_test_acc": final,
            "train_samples": min(samples, source.data.train.num_samples)}
    fig, ax = plt.subplots(figsize=(1.0 * len(accuracies) + 3.5, 3.6))
    blocks = np.arange(len(accuracies))
    ax.bar(blocks, accuracies, color="tab:blue", alpha=0.8, label="linear probe")
    for b, acc in zip(blocks, accuracies):
        ax.annotate(f"{acc:.1f}", (b, acc), ha="center", va="bottom", fontsize=8)
    ax.axhline(chance, color="gray", linestyle=":", label="chance")
    if final is not None:
        ax.axhline(final, color="tab:red", linestyle="--", label="model test acc.")
    ax.set(xticks=blocks, xticklabels=[f"block {b}" for b in blocks], ylabel="test accuracy (%)", ylim=(0, 105),
           title=f"Linear probes ({data['train_samples']} training images)\n{title(source)}")
    ax.title.set_fontsize(9)
    ax.legend(fontsize="small", loc="lower right")
    save(fig, path)
    return FigureResult(path, data, {f"probe_acc_block{i}": a for i, a in enumerate(accuracies)})
