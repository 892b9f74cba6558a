"""Every figure from short real MNIST runs: LLS-square synchronises with its basis, LLS-MxM's M
embeds one point per class, Grad-CAM maps are 28x28, probes beat chance, angles are logged."""
import numpy as np
import pytest

from llsbench.artifacts import ModelArtifactCallback, load_run
from llsbench.config import RunConfig
from llsbench.figures import FIGURES, RunSource
from llsbench.probes import UpdateAngleProbe
from llsbench.tracking import MlflowLogger
from llsbench.trainer import Trainer

PNG = b"\x89PNG\r\n\x1a\n"


def train(uri, data_dir, method, batches=40, angle_every=0, **options):
    config = RunConfig(method=method, method_options=options, dataset="mnist", data_dir=str(data_dir), epochs=1,
                       batch_size=128, limit_train_batches=batches, limit_test_batches=10, bn_batches=5, device="cpu")
    logger = MlflowLogger("figures-mnist", uri)
    probe = [UpdateAngleProbe(angle_every)] if angle_every else []
    result = Trainer(config, callbacks=[ModelArtifactCallback(), logger, *probe], progress=False).fit()
    assert result.status == "finished"
    return logger.run_id, result.summary["final_test_acc"]


@pytest.mark.slow
def test_every_figure_from_short_mnist_runs(mnist_dir, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    lls, lls_acc = train(uri, mnist_dir, "lls", angle_every=10, basis="square")
    mxm, _ = train(uri, mnist_dir, "lls-mxm", batches=10, basis="square")
    loaded = load_run(lls, uri, device="cpu")
    assert loaded.test_accuracy(loaded.load_data()) == lls_acc > 50.0  # 40 batches: ~70% measured

    source = RunSource(lls, uri, device="cpu")
    sync = FIGURES["sync"](source, tmp_path / "sync.png")
    assert all(r.shape == (10,) for r in sync.data["peak_ratio"])
    ratio = [r.mean() for r in sync.data["peak_ratio"]]
    print("sync peak ratios", ratio)
    assert np.mean(ratio[1:]) > 2.5, ratio  # measured 0.9 / 3.5 / 4.3 / 5.0; BP reads ~1 (tests/test_figures.py)
    cam = FIGURES["gradcam"](source, tmp_path / "cam.png", per_class_images=2)
    assert cam.data["maps"].shape == (20, 28, 28) and (cam.data["maps"] >= 0).all()
    # A map is all zero when nothing in the block's output supports the true class (seen once in 20
    # after 40 batches): most maps must still vary over the image.
    assert (cam.data["maps"].reshape(20, -1).std(axis=1) > 0).mean() >= 0.9
    probes = FIGURES["probes"](source, tmp_path / "probes.png", samples=500)
    assert ((probes.data["accuracy"] >= 0) & (probes.data["accuracy"] <= 100)).all()
    print("probe accuracies", probes.data["accuracy"])
    assert probes.data["accuracy"][-1] > 50.0  # chance is 10
    angles = FIGURES["angles"](source, tmp_path / "angles.png")
    assert [int(s) for s in angles.data["curves"]["angle_block0"][0]] == [0, 10, 20, 30]
    tsne = FIGURES["tsne-m"](RunSource(mxm, uri, device="cpu"), tmp_path / "tsne.png")
    assert [xy.shape for xy in tsne.data["coords"]] == [(10, 2)] * 4
    for result in (sync, cam, probes, angles, tsne):
        assert result.path.read_bytes()[:8] == PNG
