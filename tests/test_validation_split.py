"""The validation split carved from the training set, and the sealed test set."""
from __future__ import annotations

import pytest
import torch

from llsbench.config import RunConfig
from llsbench.data import load_data
from llsbench.data.validation import SealedTestSet, SealedTestSetError, carve_validation
from llsbench.errors import ConfigError
from llsbench.tuning.validation import ValidationTrainer
from test_data import IMAGENETTE_WNIDS, class_colour, concat, epoch_batches, write_jpeg

pytestmark = pytest.mark.usefixtures("one_thread")


def rows(batches) -> set[tuple]:
    x, _ = concat(epoch_batches(batches, 0))
    return {tuple(r) for r in x.flatten(1).tolist()}


def test_split_is_a_fixed_disjoint_partition_of_the_training_set():
    data = load_data("digits", seed=3)
    split = carve_validation(data, 0.2, seed=0)
    assert split.validation.num_samples == round(0.2 * data.train.num_samples)
    assert split.train.num_samples + split.validation.num_samples == data.train.num_samples
    train, val, full = rows(split.train), rows(split.validation), rows(data.train)
    assert not train & val and train | val == full
    again = carve_validation(load_data("digits", seed=7), 0.2, seed=0)  # the run seed plays no part
    assert torch.equal(again.validation.x, split.validation.x)
    other = carve_validation(load_data("digits"), 0.2, seed=1)
    assert not torch.equal(other.validation.x, split.validation.x)
    d = split.describe()
    assert (d["n_train"], d["n_val"], d["val_fraction"], d["val_seed"]) == (split.train.num_samples,
                                                                            split.validation.num_samples, 0.2, 0)


def test_validation_stream_is_neither_shuffled_nor_augmented():
    split = carve_validation(load_data("digits"), 0.1)
    assert not split.validation.shuffle and split.validation.augmentation is None
    a, _ = concat(epoch_batches(split.validation, 0))
    b, _ = concat(epoch_batches(split.validation, 5))
    assert torch.equal(a, b)


def test_sealed_test_set_raises_when_read():
    split = carve_validation(load_data("digits"), 0.1)
    assert split.test.num_samples == 360
    with pytest.raises(SealedTestSetError, match="sealed while tuning"):
        next(iter(split.test))


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1e-6])
def test_bad_fraction_names_the_value(fraction):
    with pytest.raises(ConfigError, match="val_fraction"):
        carve_validation(load_data("digits"), fraction)


def test_image_folder_split_uses_the_test_transform(tmp_path):
    for i, wnid in enumerate(IMAGENETTE_WNIDS):
        for k in range(2):
            write_jpeg(tmp_path / "imagenette2-160" / "train" / wnid / f"{wnid}_{k}.JPEG", (200, 160), class_colour(i))
        write_jpeg(tmp_path / "imagenette2-160" / "val" / wnid / f"{wnid}.JPEG", (200, 160), class_colour(i))
    split = carve_validation(load_data("imagenette-aug", data_dir=tmp_path, batch_size=4), 0.25)
    assert (split.train.num_samples, split.validation.num_samples) == (15, 5)
    _, yv = concat(epoch_batches(split.validation, 0))
    _, yt = concat(epoch_batches(split.train, 0))
    assert sorted(yv.tolist() + yt.tolist()) == sorted(2 * list(range(10)))
    assert not split.validation.sampler.shuffle


def test_validation_trainer_scores_on_validation_and_never_on_test():
    trainer = ValidationTrainer(RunConfig(method="bp", epochs=1, device="cpu", bn_batches=2), val_fraction=0.1)
    result = trainer.fit()
    assert result.status == "finished"
    last = result.history[-1]
    assert "val_acc" in last and not any(k.startswith("test_") for k in last)
    assert result.summary["final_val_acc"] == last["val_acc"] > 20  # learns something in one epoch
    assert isinstance(trainer.data.test, SealedTestSet)
