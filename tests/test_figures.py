"""Figures of what a rule learned, each drawn from a real (short) run on digits and checked on
the data it draws: LLS activity synchronises with its basis and BP's does not, one t-SNE point
per class and block, Grad-CAM maps shaped like the image, probes that beat chance, angles."""
import numpy as np
import pytest
from click.testing import CliRunner
from mlflow import MlflowClient

from llsbench.artifacts import ModelArtifactCallback
from llsbench.cli import cli
from llsbench.config import RunConfig
from llsbench.errors import LLSBenchError
from llsbench.figures import FIGURES, RunSource
from llsbench.figures import angles, gradcam, probes, sync, tsne_m
from llsbench.probes import UpdateAngleProbe
from llsbench.tracking import MlflowLogger
from llsbench.trainer import Trainer

PNG = b"\x89PNG\r\n\x1a\n"


def train(uri, method, epochs=4, angle_every=0, **options):
    config = RunConfig(method=method, method_options=options, dataset="digits", epochs=epochs, batch_size=64,
                       bn_batches=5, device="cpu")
    logger = MlflowLogger("figures", uri)
    probe = [UpdateAngleProbe(angle_every)] if angle_every else []
    result = Trainer(config, callbacks=[ModelArtifactCallback(), logger, *probe], progress=False).fit()
    assert result.status == "finished"
    return logger.run_id


@pytest.fixture(scope="module")
def runs(tmp_path_factory, one_thread):
    uri = f"sqlite:///{tmp_path_factory.mktemp('figures') / 'mlflow.db'}"
    return uri, {"lls": train(uri, "lls", basis="square"), "bp": train(uri, "bp", angle_every=10),
                 "mxm": train(uri, "lls-mxm", epochs=2, basis="square")}


def source(runs, name):
    uri, ids = runs
    return RunSource(ids[name], uri, device="cpu")


def test_lls_activity_peaks_at_its_class_frequency_and_bps_does_not(runs, tmp_path):
    lls = sync.draw(source(runs, "lls"), tmp_path / "lls.png")
    bp = sync.draw(source(runs, "bp"), tmp_path / "bp.png", basis="square")
    assert lls.data["basis"] == bp.data["basis"] == "square"
    for result in (lls, bp):
        assert result.path.read_bytes()[:8] == PNG
        assert result.data["blocks"] == [0, 1, 2, 3]
        for act, ref in zip(result.data["activation_spectra"], result.data["basis_spectra"]):
            assert act.shape == ref.shape and act.shape[0] == 10
    lls_ratio = np.array([r.mean() for r in lls.data["peak_ratio"]])
    bp_ratio = np.array([r.mean() for r in bp.data["peak_ratio"]])
    # Measured: LLS 1.3 / 5.6 / 6.2 / 6.2, BP 1.0 / 1.0 / 1.0 / 0.7 (the first block — a single conv on 8x8
    # digits, 4 epochs — synchronises least); BP's activity ignores the basis frequencies (ratio ~1).
    assert (lls_ratio[1:] > 3.0 * bp_ratio[1:]).all() and lls_ratio[0] > bp_ratio[0], (lls_ratio, bp_ratio)
    assert (bp_ratio < 2.0).all(), bp_ratio


def test_peak_ratio_reads_the_activation_at_the_basis_peak():
    basis = np.array([[0.0, 4.0, 0.0, 0.0], [0.0, 0.0, 0.0, 2.0]])
    activation = np.array([[1.0, 5.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    assert np.allclose(sync.peak_ratio(activation, basis), [5.0 / 2.0, 1.0])


def test_tsne_has_one_point_per_class_and_block_and_needs_an_m(runs, tmp_path):
    result = tsne_m.draw(source(runs, "mxm"), tmp_path / "tsne.png")
    assert len(result.data["coords"]) == 4 and all(xy.shape == (10, 2) for xy in result.data["coords"])
    assert all(np.isfinite(xy).all() and len(np.unique(xy.round(6), axis=0)) == 10 for xy in result.data["coords"])
    assert result.data["classes"] == [str(c) for c in range(10)]
    assert result.path.read_bytes()[:8] == PNG
    with pytest.raises(LLSBenchError, match=r"\(bp\) has no learned M; tsne-m needs an lls-mxm run"):
        tsne_m.draw(source(runs, "bp"), tmp_path / "no.png")


def test_gradcam_maps_are_image_shaped_nonnegative_and_informative(runs, tmp_path):
    result = gradcam.draw(source(runs, "lls"), tmp_path / "cam.png", per_class_images=2)
    maps = result.data["maps"]
    assert maps.shape == (20, 8, 8) and result.data["block"] == 2  # the last block with a spatial output
    assert (maps >= 0).all() and (maps <= 1 + 1e-6).all()
    assert (maps.reshape(20, -1).std(axis=1) > 0).mean() >= 0.9  # maps are not constant
    assert list(result.data["labels"]) == [c for c in range(10) for _ in range(2)]
    assert result.path.read_bytes()[:8] == PNG
    with pytest.raises(LLSBenchError, match="block 3 has no spatial output; blocks with one: 0, 1, 2"):
        gradcam.draw(source(runs, "lls"), tmp_path / "no.png", block=3)


def test_probes_are_accuracies_and_the_last_block_beats_chance(runs, tmp_path):
    result = probes.draw(source(runs, "bp"), tmp_path / "probes.png", samples=600)
    acc = result.data["accuracy"]
    assert len(acc) == 4 and ((acc >= 0) & (acc <= 100)).all()
    assert acc[-1] > 80.0 > 10.0 == result.data["chance"]
    assert result.metrics == {f"probe_acc_block{i}": acc[i] for i in range(4)}
    assert result.path.read_bytes()[:8] == PNG


def test_angles_of_bp_are_zero_and_a_run_without_angles_says_so(runs, tmp_path):
    result = angles.draw(source(runs, "bp"), tmp_path / "angles.png")
    curves = result.data["curves"]
    assert list(curves) == ["angle_block0", "angle_block1", "angle_block2", "angle_block3", "angle_head"]
    steps, values = curves["angle_block0"]
    assert list(steps[:3]) == [0, 10, 20] and (values < 0.01).all()
    with pytest.raises(LLSBenchError, match="has no update/BP-gradient angles .*--angle-every N"):
        angles.draw(source(runs, "lls"), tmp_path / "no.png")


def test_figure_cli_writes_the_png_and_logs_it_and_the_metrics_to_the_run(runs, tmp_path):
    uri, ids = runs
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["figure", "probes", "--run", ids["lls"], "--tracking-uri", uri, "-o", str(out),
                                      "--probe-samples", "300", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    (png,) = out.glob("*/probes.png")
    assert png.read_bytes()[:8] == PNG and "probe_acc_block3" in result.output
    client = MlflowClient(uri)
    assert [a.path for a in client.list_artifacts(ids["lls"], "figures")] == ["figures/probes.png"]
    assert set(client.get_run(ids["lls"]).data.metrics) >= {f"probe_acc_block{i}" for i in range(4)}
    result = CliRunner().invoke(cli, ["figure", "tsne-m", "--run", ids["bp"], "--tracking-uri", uri, "-o", str(out)])
    assert result.exit_code == 2 and "Error: run " in result.output and "has no learned M" in result.output
    result = CliRunner().invoke(cli, ["figure", "sync", "--tracking-uri", uri])
    assert result.exit_code == 2 and "give exactly one of --run RUN_ID or --suite NAME" in result.output
    assert set(FIGURES) == {"sync", "tsne-m", "gradcam", "probes", "angles"}
