"""Tests of llsbench.data: registry, readers of the real on-disk formats, batching, augmentation.

Real MNIST is found through $LLSBENCH_DATA_DIR (relative paths are taken from the repo root);
every other dataset is written here in its real on-disk format, a few samples large.
"""
from __future__ import annotations

import os
import pickle
import socket
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from llsbench.data import DATASETS, Batches, DataSplits, load_data, resolve_data_dir
from llsbench.data.augment import (
    Augmentation,
    erase_rects,
    flip_where,
    sample_erase_rects,
    translate_crop,
)
from llsbench.errors import ConfigError, DatasetNotFoundError, LLSBenchError, UnknownNameError

REPO_ROOT = Path(__file__).resolve().parents[1]
IMAGENETTE_WNIDS = ["n01440764", "n02102040", "n02979186", "n03000684", "n03028079",
                    "n03394916", "n03417042", "n03425413", "n03445777", "n03888257"]


def epoch_batches(batches, epoch: int | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    if epoch is not None:
        batches.set_epoch(epoch)
    return [(x.clone(), y.clone()) for x, y in batches]


def concat(batches) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*batches)
    return torch.cat(xs), torch.cat(ys)


def unnormalise(x: torch.Tensor, spec) -> torch.Tensor:
    """Back to pixel values in [0, spec.pixel_max]."""
    mean = torch.tensor(spec.mean).view(1, -1, 1, 1)
    std = torch.tensor(spec.std).view(1, -1, 1, 1)
    return (x * std + mean) * spec.pixel_max


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test: loaders must stay offline."""

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


# ---- registry and paths ---------------------------------------------------------------------


def test_registered_names_cover_every_dataset_and_variant():
    expected = {"digits", "synthetic", "mnist", "mnist-plain", "fashionmnist", "fashionmnist-plain",
                "cifar10", "cifar10-plain", "cifar10-aug", "cifar100", "cifar100-plain", "cifar100-aug",
                "imagenette", "imagenette-plain", "imagenette-aug", "tinyimagenet", "tinyimagenet-plain",
                "vww", "vww-plain", "mnist-raw", "fashionmnist-raw", "cifar10-raw", "cifar100-raw"}
    assert expected <= set(DATASETS.names())
    assert DATASETS.names("cifar10-*") == ["cifar10-aug", "cifar10-plain", "cifar10-raw"]
    for name in expected:
        spec = DATASETS.get(name)
        assert spec.name == name and len(spec.mean) == len(spec.std) == spec.in_channels
        assert spec.description


def test_variants_follow_the_paper_recipes():
    def aug(name: str) -> str:
        return DATASETS.get(name).augmentation.describe()

    assert aug("mnist") == "crop(pad=4)"
    assert aug("fashionmnist") == "crop(pad=4)+flip"
    assert aug("cifar10") == aug("cifar100") == "flip"
    assert aug("cifar10-aug") == aug("cifar100-aug") == "crop(pad=4)+flip+erase(p=0.2)"
    assert aug("tinyimagenet") == "flip+erase(p=0.2)"
    assert all(aug(n) == "none" for n in DATASETS.names("*-plain") + DATASETS.names("*-raw") + ["digits", "synthetic"])
    for name in DATASETS.names("*-raw"):
        spec = DATASETS.get(name)
        assert set(spec.mean) == {0.0} and set(spec.std) == {1.0}, name
    assert DATASETS.get("vww").resize == 132 and DATASETS.get("vww").mean == (0.485, 0.456, 0.406)


def test_unknown_name_lists_valid_names():
    with pytest.raises(UnknownNameError) as info:
        load_data("mnsit")
    assert "mnsit" in str(info.value) and "digits" in str(info.value) and "cifar10-aug" in str(info.value)


def test_resolve_data_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("LLSBENCH_DATA_DIR", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_dir(None) == tmp_path / "env"
    monkeypatch.delenv("LLSBENCH_DATA_DIR")
    assert resolve_data_dir(None) == tmp_path / "xdg" / "llsbench" / "data"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_data_dir(None) == tmp_path / "home" / ".cache" / "llsbench" / "data"
    monkeypatch.chdir(tmp_path)
    assert resolve_data_dir("rel") == tmp_path / "rel"


# ---- digits: the bundled quick-start set ------------------------------------------------------


def test_digits_shapes_split_and_normalisation():
    data = load_data("digits", batch_size=100)
    assert isinstance(data, DataSplits) and isinstance(data.train, Batches) and isinstance(data.test, Batches)
    assert (data.train.num_samples, data.test.num_samples) == (1437, 360)
    assert (len(data.train), len(data.test)) == (15, 4)  # 14 full + the partial batch of 37
    x, y = concat(epoch_batches(data.train, 0))
    assert x.shape == (1437, 1, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert abs(x.mean().item()) < 0.01 and abs(x.std().item() - 1) < 0.01
    assert unnormalise(x, data.spec).round().min() >= 0 and unnormalise(x, data.spec).round().max() <= 16
    _, y_test = concat(epoch_batches(data.test))
    counts = torch.bincount(y_test, minlength=10)
    assert counts.sum() == 360 and counts.min() >= 35  # stratified: every class about 36 times


def test_digits_split_does_not_depend_on_seed():
    _, a = concat(epoch_batches(load_data("digits", seed=0).test))
    _, b = concat(epoch_batches(load_data("digits", seed=5).test))
    assert torch.equal(a, b)


def test_last_partial_batch_is_kept_and_every_sample_seen_once():
    data = load_data("digits", batch_size=128)
    batches = epoch_batches(data.train, 0)
    assert [len(y) for _, y in batches] == [128] * 11 + [1437 - 11 * 128]
    x, _ = concat(batches)
    x_other, _ = concat(epoch_batches(data.train, 1))
    # each epoch is a permutation of the same rows
    assert torch.equal(x.flatten(1).sum(1).sort().values, x_other.flatten(1).sum(1).sort().values)
    assert not torch.equal(x, x_other)


def test_seed_and_epoch_determine_the_order():
    a = epoch_batches(load_data("digits", seed=1).train, 0)
    b = epoch_batches(load_data("digits", seed=1).train, 0)
    c = epoch_batches(load_data("digits", seed=2).train, 0)
    assert all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b))
    assert not torch.equal(a[0][1], c[0][1])
    train = load_data("digits", seed=1).train
    e1 = epoch_batches(train, 1)
    assert not torch.equal(e1[0][1], a[0][1])
    assert torch.equal(epoch_batches(train, 0)[0][1], a[0][1])  # epoch 0 again replays epoch 0


def test_train_subset_is_a_fixed_capped_subset():
    a = load_data("digits", train_subset=100, seed=0)
    b = load_data("digits", train_subset=100, seed=9)
    assert a.train.num_samples == 100 and len(a.train) == 1
    xa, _ = concat(epoch_batches(a.train, 0))
    xb, _ = concat(epoch_batches(b.train, 0))
    assert torch.equal(xa.flatten(1).sum(1).sort().values, xb.flatten(1).sum(1).sort().values)
    assert load_data("digits", train_subset=10**6).train.num_samples == 1437
    assert a.describe()["train_subset"] == 100


def test_describe_is_flat_run_metadata():
    d = load_data("digits", batch_size=64, test_batch_size=256).describe()
    assert d["dataset"] == "digits" and d["n_train"] == 1437 and d["n_test"] == 360
    assert d["augmentation"] == "none" and d["batch_size"] == 64 and d["test_batch_size"] == 256
    assert all(isinstance(v, (str, int, float)) for v in d.values())


def test_synthetic_is_deterministic_and_shaped_like_cifar():
    a, b = load_data("synthetic", batch_size=64), load_data("synthetic", batch_size=64)
    xa, ya = concat(epoch_batches(a.test))
    xb, yb = concat(epoch_batches(b.test))
    assert xa.shape == (128, 3, 32, 32) and a.train.num_samples == 512
    assert torch.equal(xa, xb) and torch.equal(ya, yb) and set(ya.tolist()) == set(range(10))


@pytest.mark.parametrize("kwargs, value", [
    ({"batch_size": 0}, "0"), ({"batch_size": -3}, "-3"), ({"batch_size": "64"}, "'64'"),
    ({"test_batch_size": 0}, "0"), ({"train_subset": 0}, "0"), ({"seed": -1}, "-1"),
    ({"num_workers": -1}, "-1"), ({"device": "banana"}, "banana"),
])
def test_bad_arguments_raise_config_error_naming_the_value(kwargs, value):
    with pytest.raises(ConfigError) as info:
        load_data("digits", **kwargs)
    assert value in str(info.value)


# ---- vectorised augmentation ------------------------------------------------------------------


def test_translate_crop_is_a_crop_of_the_zero_padded_image():
    x = torch.randint(0, 256, (5, 3, 8, 8), dtype=torch.uint8)
    shifts = torch.tensor([[0, 0], [8, 8], [2, 5], [4, 4], [7, 1]])
    out = translate_crop(x, 4, shifts)
    assert out.shape == x.shape and out.dtype == torch.uint8
    padded = F.pad(x, (4, 4, 4, 4))
    for i, (top, left) in enumerate(shifts.tolist()):
        assert torch.equal(out[i], padded[i, :, top:top + 8, left:left + 8])
    assert torch.equal(out[3], x[3])  # offset (pad, pad) is the identity
    # sample 2 moved down 2 and left 1: row 2 of the output is row 0 of the input shifted
    assert torch.equal(out[2, :, 2, :7], x[2, :, 0, 1:]) and (out[2, :, :2] == 0).all()


def test_flip_where_flips_exactly_the_chosen_samples():
    x = torch.randn(6, 2, 4, 5)
    mask = torch.tensor([True, False, False, True, True, False])
    out = flip_where(x, mask)
    for i in range(6):
        assert torch.equal(out[i], x[i].flip(-1) if mask[i] else x[i])


def test_erasing_changes_only_one_rectangle_per_erased_sample():
    x = torch.randn(4, 3, 10, 12) + 5  # no pixel is 0 before erasing
    rects = torch.tensor([[1, 2, 3, 4], [0, 0, 0, 0], [7, 9, 3, 3], [0, 0, 10, 1]])
    out = erase_rects(x, rects)
    for i, (top, left, h, w) in enumerate(rects.tolist()):
        inside = torch.zeros(10, 12, dtype=torch.bool)
        inside[top:top + h, left:left + w] = True
        changed = (out[i] != x[i]).any(0)
        assert torch.equal(changed, inside)
        assert (out[i][:, inside] == 0).all()


def test_sampled_erase_rects_fit_and_follow_p():
    g = torch.Generator().manual_seed(0)
    rects = sample_erase_rects(20000, 32, 32, 0.2, g)
    top, left, h, w = rects.T
    erased = h > 0
    assert 0.18 < erased.float().mean() < 0.21
    assert (top + h <= 32).all() and (left + w <= 32).all() and (top >= 0).all() and (left >= 0).all()
    area = (h * w)[erased].float() / (32 * 32)
    assert area.min() >= 0.01 and area.max() <= 0.36
    assert (sample_erase_rects(100, 32, 32, 0.0, g)[:, 2] == 0).all()


def test_augmentation_erases_after_normalisation():
    aug = Augmentation(crop_pad=2, flip=True, erase_p=1.0)
    x = torch.full((64, 1, 8, 8), 200, dtype=torch.uint8)
    params = aug.sample(64, 8, 8, torch.Generator().manual_seed(3))
    out = aug.apply(x, params, lambda v: v.float() / 255 + 1)  # normalised pixels >= 1
    padded = out == 1  # zero padding from the crop, normalised
    erased = out == 0  # erasing writes 0 after normalisation
    assert erased.any() and padded.any() and ((out == 0) | (out == 1) | (out == 200 / 255 + 1)).all()


# ---- MNIST: the real files ------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_data_dir() -> Path:
    """$LLSBENCH_DATA_DIR as CI sets it (default ../shared/data), relative to the repo root."""
    path = Path(os.environ.get("LLSBENCH_DATA_DIR", "../shared/data"))
    return path if path.is_absolute() else (REPO_ROOT / path).resolve()


@pytest.mark.slow
def test_real_mnist_sizes_labels_and_normalisation(shared_data_dir):
    data = load_data("mnist-plain", data_dir=shared_data_dir, batch_size=10000)
    assert (data.train.num_samples, data.test.num_samples) == (60000, 10000)
    data.train.set_epoch(0)
    labels = [y for _, y in data.train]
    assert torch.equal(torch.cat(labels).bincount(),
                       torch.tensor([5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]))
    x, y = concat(epoch_batches(data.test))
    assert x.shape == (10000, 1, 28, 28) and x.dtype == torch.float32
    assert y[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]  # the canonical test order
    pixels = unnormalise(x, data.spec) / 255
    assert abs(pixels.mean().item() - 0.1325) < 1e-3 and abs(pixels.std().item() - 0.3105) < 1e-3
    assert abs(x.mean().item() - (0.1325 - 0.5) / 0.5) < 2e-3  # normalised with the reference's 0.5 / 0.5
    aug = load_data("mnist", data_dir=shared_data_dir, train_subset=256, batch_size=128)
    xb, _ = next(iter(aug.train))
    assert xb.shape == (128, 1, 28, 28) and aug.describe()["augmentation"] == "crop(pad=4)"


# ---- other datasets: tiny files in their real formats ------------------------------------


def write_idx(path: Path, array: np.ndarray) -> None:
    """idx format: magic 0x0000 08 <ndim> (uint8 data), big-endian int32 dims, raw bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def make_fashionmnist(root: Path, rng: np.random.Generator) -> dict[str, np.ndarray]:
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (6, 28, 28)),
        "train-labels-idx1-ubyte": np.array([9, 0, 3, 1, 9, 4]),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (3, 28, 28)),
        "t10k-labels-idx1-ubyte": np.array([2, 8, 5]),
    }
    for name, array in arrays.items():
        write_idx(root / "FashionMNIST" / "raw" / name, array)
    return arrays


def test_fashionmnist_reads_idx_files(tmp_path):
    arrays = make_fashionmnist(tmp_path, np.random.default_rng(0))
    data = load_data("fashionmnist-plain", data_dir=tmp_path, batch_size=4)
    x, y = concat(epoch_batches(data.test))
    assert y.tolist() == [2, 8, 5]
    assert torch.allclose(unnormalise(x, data.spec)[:, 0], torch.from_numpy(arrays["t10k-images-idx3-ubyte"]).float(),
                          atol=1e-3)
    raw = load_data("fashionmnist-raw", data_dir=tmp_path, batch_size=4)
    xr, _ = concat(epoch_batches(raw.test))
    torch.testing.assert_close(xr[:, 0], torch.from_numpy(arrays["t10k-images-idx3-ubyte"]).float() / 255)
    aug = load_data("fashionmnist", data_dir=tmp_path, batch_size=4)
    x, y = concat(epoch_batches(aug.train, 0))
    assert x.shape == (6, 1, 28, 28) and sorted(y.tolist()) == [0, 1, 3, 4, 9, 9] and len(aug.train) == 2


def test_corrupt_idx_file_is_a_one_line_error(tmp_path):
    make_fashionmnist(tmp_path, np.random.default_rng(0))
    bad = tmp_path / "FashionMNIST" / "raw" / "t10k-images-idx3-ubyte"
    bad.write_bytes(b"\x00\x00\x00\x00" + bad.read_bytes()[4:])
    with pytest.raises(LLSBenchError, match="could not be read"):
        load_data("fashionmnist", data_dir=tmp_path)


def cifar_row(image: np.ndarray) -> np.ndarray:
    """The CIFAR row format: the 1024 red values, then green, then blue, each 32x32 row-major."""
    return np.concatenate([image[..., c].ravel() for c in range(3)])


def write_cifar_pickle(path: Path, images: list[np.ndarray], labels: list[int], label_key: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {b"batch_label": b"testing batch", label_key: labels,
             b"data": np.stack([cifar_row(im) for im in images]).astype(np.uint8),
             b"filenames": [f"img_{i}.png".encode() for i in range(len(labels))]}
    if label_key == b"fine_labels":
        entry[b"coarse_labels"] = [label // 5 for label in labels]
    with open(path, "wb") as f:
        pickle.dump(entry, f, protocol=2)


def hwc_images(rng: np.random.Generator, n: int) -> list[np.ndarray]:
    return [rng.integers(0, 256, (32, 32, 3)).astype(np.uint8) for _ in range(n)]


def test_cifar10_reads_pickle_batches_in_order(tmp_path):
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar-10-batches-py"
    train_images, train_labels = [], []
    for i in range(1, 6):
        images, labels = hwc_images(rng, 2), [(2 * i) % 10, (2 * i + 1) % 10]
        write_cifar_pickle(folder / f"data_batch_{i}", images, labels, b"labels")
        train_images += images
        train_labels += labels
    test_images = hwc_images(rng, 3)
    write_cifar_pickle(folder / "test_batch", test_images, [3, 1, 4], b"labels")

    spec = DATASETS.get("cifar10-aug")
    train, _ = spec.source.load(tmp_path)
    assert train.y.tolist() == train_labels
    assert torch.equal(train.x, torch.from_numpy(np.stack(train_images)).permute(0, 3, 1, 2))

    data = load_data("cifar10-plain", data_dir=tmp_path, batch_size=2)
    x, y = concat(epoch_batches(data.test))
    assert y.tolist() == [3, 1, 4] and x.shape == (3, 3, 32, 32)
    expected = torch.from_numpy(np.stack(test_images)).permute(0, 3, 1, 2).float()
    assert torch.allclose(unnormalise(x, data.spec), expected, atol=1e-3)
    xr, _ = concat(epoch_batches(load_data("cifar10-raw", data_dir=tmp_path, batch_size=2).test))
    torch.testing.assert_close(xr, expected / 255)
    aug = load_data("cifar10-aug", data_dir=tmp_path, batch_size=4)
    xa, ya = concat(epoch_batches(aug.train, 0))
    assert xa.shape == (10, 3, 32, 32) and sorted(ya.tolist()) == sorted(train_labels)


def test_cifar100_uses_fine_labels(tmp_path):
    rng = np.random.default_rng(2)
    folder = tmp_path / "cifar-100-python"
    write_cifar_pickle(folder / "train", hwc_images(rng, 4), [99, 0, 57, 12], b"fine_labels")
    write_cifar_pickle(folder / "test", hwc_images(rng, 2), [42, 98], b"fine_labels")
    data = load_data("cifar100", data_dir=tmp_path, batch_size=8)
    assert data.spec.num_classes == 100
    _, y = concat(epoch_batches(data.test))
    assert y.tolist() == [42, 98]
    _, y_train = concat(epoch_batches(data.train, 0))
    assert sorted(y_train.tolist()) == [0, 12, 57, 99]


def test_deterministic_augmented_batches_on_tensor_sets(tmp_path):
    rng = np.random.default_rng(3)
    folder = tmp_path / "cifar-10-batches-py"
    for i in range(1, 6):
        write_cifar_pickle(folder / f"data_batch_{i}", hwc_images(rng, 8), [i] * 8, b"labels")
    write_cifar_pickle(folder / "test_batch", hwc_images(rng, 2), [0, 1], b"labels")
    def run(seed: int, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        return concat(epoch_batches(load_data("cifar10-aug", data_dir=tmp_path, seed=seed, batch_size=16).train, epoch))

    (a, ya), (b, yb), (c, _), (d, _) = run(0, 0), run(0, 0), run(1, 0), run(0, 1)
    assert torch.equal(a, b) and torch.equal(ya, yb)
    assert not torch.equal(a, c) and not torch.equal(a, d)


def write_jpeg(path: Path, size: tuple[int, int], colour: tuple[int, int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, quality=95)


def class_colour(i: int) -> tuple[int, int, int]:
    return (20 * i + 10, 255 - 20 * i, (90 * i) % 256)


def assert_solid_colours(x: torch.Tensor, labels: list[int], spec) -> None:
    """Each image decodes to its class colour (JPEG keeps flat colours within a few levels)."""
    pixels = unnormalise(x, spec)
    for img, label in zip(pixels, labels):
        colour = torch.tensor(class_colour(label), dtype=torch.float32).view(3, 1, 1)
        assert (img - colour).abs().max() < 4


def test_imagenette_folder_tree(tmp_path):
    for i, wnid in enumerate(IMAGENETTE_WNIDS):
        for split in ("train", "val"):
            write_jpeg(tmp_path / "imagenette2-160" / split / wnid / f"{wnid}_{split}.JPEG", (200, 160), class_colour(i))
    data = load_data("imagenette", data_dir=tmp_path, batch_size=4)
    assert (data.train.num_samples, data.test.num_samples, len(data.train)) == (10, 10, 3)
    x, y = concat(epoch_batches(data.test))
    assert x.shape == (10, 3, 128, 128) and y.tolist() == list(range(10))
    assert_solid_colours(x, y.tolist(), data.spec)
    xt, yt = concat(epoch_batches(data.train, 0))
    assert xt.shape == (10, 3, 128, 128) and sorted(yt.tolist()) == list(range(10))
    assert_solid_colours(xt, yt.tolist(), data.spec)  # crop and flip keep a flat colour flat


def test_folder_batches_are_seeded_per_sample(tmp_path):
    rng = np.random.default_rng(4)
    for i, wnid in enumerate(IMAGENETTE_WNIDS):
        for split in ("train", "val"):
            path = tmp_path / "imagenette2-160" / split / wnid / f"{wnid}.JPEG"
            path.parent.mkdir(parents=True)
            Image.fromarray(rng.integers(0, 256, (130, 140, 3)).astype(np.uint8)).save(path)
    first = load_data("imagenette-aug", data_dir=tmp_path, seed=0, batch_size=5).train
    again = load_data("imagenette-aug", data_dir=tmp_path, seed=0, batch_size=5).train
    torch.manual_seed(0)
    a, ya = concat(epoch_batches(first, 0))
    torch.manual_seed(1)
    b, yb = concat(epoch_batches(again, 0))
    assert torch.equal(a, b) and torch.equal(ya, yb)  # the global RNG state plays no part
    global_state = torch.get_rng_state()
    c, _ = concat(epoch_batches(first, 1))
    assert not torch.equal(a, c)
    assert torch.equal(torch.get_rng_state(), global_state)  # the global RNG is left alone


def test_tinyimagenet_real_layout_with_val_annotations(tmp_path):
    base = tmp_path / "tiny-imagenet-200"
    wnids = [f"n{9000000 - 7 * i:08d}" for i in range(200)]  # listed out of sorted order, as in the real file
    base.mkdir(parents=True)
    (base / "wnids.txt").write_text("\n".join(wnids) + "\n")
    order = sorted(wnids)
    for wnid in wnids:
        label = order.index(wnid)
        write_jpeg(base / "train" / wnid / "images" / f"{wnid}_0.JPEG", (64, 64), class_colour(label % 12))
        (base / "train" / wnid / f"{wnid}_boxes.txt").write_text(f"{wnid}_0.JPEG\t0\t0\t63\t63\n")
    val_wnids = [wnids[5], wnids[0], wnids[199]]
    lines = []
    for i, wnid in enumerate(val_wnids):
        write_jpeg(base / "val" / "images" / f"val_{i}.JPEG", (64, 64), class_colour(order.index(wnid) % 12))
        lines.append(f"val_{i}.JPEG\t{wnid}\t0\t0\t63\t63")
    (base / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")

    data = load_data("tinyimagenet-plain", data_dir=tmp_path, batch_size=2)
    assert data.spec.num_classes == 200 and data.train.num_samples == 200
    x, y = concat(epoch_batches(data.test))
    assert x.shape == (3, 3, 64, 64) and y.tolist() == [order.index(w) for w in val_wnids]
    assert_solid_colours(x, [label % 12 for label in y.tolist()], data.spec)
    aug = load_data("tinyimagenet", data_dir=tmp_path, batch_size=64, train_subset=20)
    xt, yt = concat(epoch_batches(aug.train, 0))
    assert xt.shape == (20, 3, 64, 64) and len(set(yt.tolist())) == 20

    for path in (base / "train" / wnids[7] / "images").iterdir():
        path.unlink()
    with pytest.raises(LLSBenchError, match="1 of 200 classes have no images"):
        load_data("tinyimagenet", data_dir=tmp_path)


def test_vww_person_folders(tmp_path):
    for split, n in (("train", 3), ("val", 2)):
        for label, cls in enumerate(("non_person", "person")):
            for i in range(n):
                write_jpeg(tmp_path / "vww" / split / cls / f"COCO_{split}_{i}.jpg", (180, 140), class_colour(label))
    data = load_data("vww", data_dir=tmp_path, batch_size=4)
    assert isinstance(data.train, Batches)
    x, y = concat(epoch_batches(data.test))
    assert x.shape == (4, 3, 128, 128) and y.tolist() == [0, 0, 1, 1]
    assert_solid_colours(x, y.tolist(), data.spec)
    assert data.train.num_samples == 6 and len(data.train) == 2


def test_folder_with_wrong_class_count_is_reported(tmp_path):
    for split in ("train", "val"):
        for cls in ("non_person", "person", "dog"):
            write_jpeg(tmp_path / "vww" / split / cls / "a.jpg", (140, 140), (0, 0, 0))
    with pytest.raises(LLSBenchError, match="3 classes, expected 2"):
        load_data("vww", data_dir=tmp_path)


# ---- missing data -------------------------------------------------------------------------------


@pytest.mark.parametrize("name, folder", [
    ("mnist", "MNIST/raw"), ("fashionmnist-plain", "FashionMNIST/raw"), ("cifar10", "cifar-10-batches-py"),
    ("cifar100-aug", "cifar-100-python"), ("imagenette", "imagenette2-160"),
    ("tinyimagenet", "tiny-imagenet-200"), ("vww", "vww"),
])
def test_missing_dataset_names_path_and_remedy(tmp_path, name, folder):
    with pytest.raises(DatasetNotFoundError) as info:
        load_data(name, data_dir=tmp_path)
    message = str(info.value)
    assert repr(name) in message and str(tmp_path / folder) in message and "\n" not in message
    assert "LLSBENCH_DATA_DIR" in message
    assert ("cannot be downloaded automatically" if name == "vww" else "--download") in message


def test_missing_dataset_found_through_env(monkeypatch, tmp_path):
    monkeypatch.setenv("LLSBENCH_DATA_DIR", str(tmp_path / "from-env"))
    with pytest.raises(DatasetNotFoundError, match="from-env"):
        load_data("cifar10")


def test_vww_download_explains_the_manual_build(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="pyvww"):
        load_data("vww", data_dir=tmp_path, download=True)


@pytest.mark.cuda
def test_cuda_batches_match_cpu_batches(tmp_path):
    cpu = epoch_batches(load_data("synthetic", device="cpu", seed=3).train, 2)
    gpu = epoch_batches(load_data("synthetic", device="cuda", seed=3).train, 2)
    assert gpu[0][0].is_cuda
    assert all(torch.allclose(a.cpu(), b, atol=1e-6) and torch.equal(ya.cpu(), yb)
               for (a, ya), (b, yb) in zip(gpu, cpu))
