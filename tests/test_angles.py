"""The update/gradient angle probe: BP reads 0°, DFA starts near 90° and aligns, and the probe
leaves weights, BatchNorm statistics, gradients and the RNG exactly as it found them."""
import itertools

import pytest
import torch
from click.testing import CliRunner
from mlflow import MlflowClient

from llsbench.cli import cli
from llsbench.config import RunConfig
from llsbench.data import load_data
from llsbench.method_registry import create_method
from llsbench.models import create_model
from llsbench.probes import UpdateAngleProbe, update_angles
from llsbench.trainer import Callback, Trainer


def digits_batches(batch_size=32):
    return load_data("digits", batch_size=batch_size, device="cpu", seed=0).train


def build(rule, model="smallconv", seed=0, **model_options):
    torch.manual_seed(seed)
    net = create_model(model, in_channels=1, num_classes=10, image_size=8, **model_options)
    return create_method(rule, net, num_classes=10, input_shape=(1, 8, 8))


def test_bp_reads_zero_degrees_with_dropout_and_batchnorm():
    method = build("bp", dropout=0.3)
    x, y = next(iter(digits_batches()))
    angles = update_angles(method, x, y)
    assert set(angles) == {f"angle_block{i}" for i in range(4)} | {"angle_head"}
    assert max(angles.values()) < 0.01, angles  # the same dropout masks in both passes


def test_dfa_starts_orthogonal_and_aligns_with_training():
    method = build("dfa", model="drtp-fc")
    batches = digits_batches()
    x, y = next(iter(batches))
    before = update_angles(method, x, y)
    assert before["angle_head"] < 0.01  # the head trains on its true gradient
    for k in ("angle_block0", "angle_block1"):
        assert 80.0 < before[k] < 100.0, before
    steps = 0
    for epoch in itertools.count():
        batches.set_epoch(epoch)
        for x, y in batches:
            method.step(x, y)
            steps += 1
        if steps >= 300:
            break
    after = update_angles(method, x, y)
    assert after["angle_block1"] < 60.0, (before, after)  # the last hidden block aligns first
    assert after["angle_block0"] < 85.0, (before, after)


@pytest.mark.parametrize("rule", ["dfa", "drtp", "bp", "lls"])
def test_probe_leaves_weights_bn_stats_grads_and_rng_unchanged(rule):
    method = build(rule, dropout=0.2)
    model = method.model
    batches = iter(digits_batches())
    method.step(*next(batches))  # gradients and BN statistics that are not the defaults
    state = {k: v.clone() for k, v in model.state_dict().items()}
    aux = {k: v.clone() for k, v in method.aux.state_dict().items()}
    grads = [None if p.grad is None else p.grad.clone() for p in model.parameters()]
    rng = torch.get_rng_state()
    assert any(k.endswith("running_mean") for k in state)

    update_angles(method, *next(batches))

    after = model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in state.items())
    assert all(torch.equal(v, method.aux.state_dict()[k]) for k, v in aux.items())
    assert all((g is None and p.grad is None) or torch.equal(g, p.grad) for g, p in zip(grads, model.parameters()))
    assert torch.equal(rng, torch.get_rng_state())
    assert model.training


class Recorder(Callback):
    """Stands in for `MlflowLogger`: any callback with `log_metrics(metrics, step)`."""

    def __init__(self):
        self.logged = []

    def log_metrics(self, metrics, step):
        self.logged.append((step, dict(metrics)))


def fit(callbacks=()):
    config = RunConfig(method="dfa", model="smallconv", model_options={"dropout": 0.2}, dataset="digits",
                       epochs=1, batch_size=64, limit_train_batches=9, bn_batches=2)
    return Trainer(config, callbacks=callbacks, progress=False).fit()


def test_probe_in_the_trainer_logs_every_n_steps_and_changes_no_result():
    logger = Recorder()
    probe = UpdateAngleProbe(every=4)
    probed = fit([logger, probe])  # the probe finds the logger among the trainer's callbacks
    plain = fit()
    assert [step for step, _ in logger.logged] == [0, 4, 8]
    assert all(set(m) == {"angle_block0", "angle_block1", "angle_block2", "angle_block3", "angle_head"}
               for _, m in logger.logged)
    assert probe.history == logger.logged
    keys = ["train_loss", "train_acc", "test_loss", "test_acc"]
    assert [h[k] for h in probed.history for k in keys] == [h[k] for h in plain.history for k in keys]


def test_cli_angle_every_logs_angles_to_mlflow(tracking_uri):
    result = CliRunner().invoke(cli, ["run", "method", "drtp", "--model", "drtp-fc", "--epochs", "1",
                                      "--limit-train-batches", "7", "--angle-every", "3", "--no-progress",
                                      "--experiment", "angles", "--tracking-uri", tracking_uri])
    assert result.exit_code == 0, result.output
    assert "angles at step 6" in result.output
    client = MlflowClient(tracking_uri)
    run = client.search_runs([client.get_experiment_by_name("angles").experiment_id])[0]
    history = client.get_metric_history(run.info.run_id, "angle_block1")
    assert [m.step for m in history] == [0, 3, 6]
    assert all(0.0 < m.value < 180.0 for m in history)


def test_angle_every_must_be_positive():
    with pytest.raises(ValueError, match="every"):
        UpdateAngleProbe(every=0)
