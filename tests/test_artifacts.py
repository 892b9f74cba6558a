"""Trained models are kept: the params round-trip to the same RunConfig, every rule's aux state
reloads into a rule built with another seed, and `load_run` rebuilds a model whose test
accuracy is the run's logged final accuracy."""
import pytest
import torch
from click.testing import CliRunner
from mlflow import MlflowClient

import llsbench
from llsbench.artifacts import trained_state
from llsbench.cli import cli
from llsbench.config import RunConfig
from llsbench.errors import LLSBenchError
from llsbench.method_registry import METHODS, create_method
from llsbench.models import create_model

BUILT_IN = ["bp", "lls", "lls-m", "lls-mxm", "dfa", "sdfa", "drtp", "pepita", "local-losses", "predsim"]


def test_params_round_trip_to_the_same_config():
    config = RunConfig(method="lls-mxm", method_options={"basis": "square", "temperature": 0.25},
                       model="vgg8", model_options={"dropout": 0.2, "activation": "tanh", "batch_norm": False},
                       dataset="cifar10-aug", data_dir="/data/x", epochs=3, lr_milestones=[2, 5], lr=1e-3,
                       limit_train_batches=7, test_batch_size=None, seed=4, device="cpu")
    params = {**config.to_params(), "data.n_train": "50000", "data.augmentation": "flip"}
    assert RunConfig.from_params(params) == config


def build(rule, seed):
    torch.manual_seed(seed)
    model = create_model("pepita-fc" if rule == "pepita" else "smallconv", in_channels=1, num_classes=10, image_size=8)
    return create_method(rule, model, num_classes=10, input_shape=(1, 8, 8))


@pytest.mark.parametrize("rule", BUILT_IN)
def test_every_rules_kept_state_rebuilds_the_same_network(rule, one_thread):
    assert set(BUILT_IN) <= set(METHODS.names())
    trained, fresh = build(rule, seed=0), build(rule, seed=1)
    x = torch.randn(4, 1, 8, 8)
    trained.model(x)  # BatchNorm statistics that are not the initial ones
    state = trained_state(trained.model, trained)
    fresh.model.load_state_dict(state["model"])
    fresh.aux.load_state_dict(state["aux"])
    for a, b in [(trained.model, fresh.model), (trained.aux, fresh.aux)]:
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    trained.model.eval(), fresh.model.eval()
    assert torch.equal(trained.model(x), fresh.model(x))


def run_method(args, uri):
    result = CliRunner().invoke(cli, ["run", "method", *args, "--no-progress", "--no-profile", "--tracking-uri", uri,
                                      "--experiment", "artifacts"])
    assert result.exit_code == 0, result.output
    return result.output.rsplit("MLflow run ", 1)[1].strip()


def test_load_run_rebuilds_the_model_with_the_runs_final_test_accuracy(tmp_path, monkeypatch, one_thread):
    monkeypatch.chdir(tmp_path)  # MLflow puts a SQLite store's artifacts under ./mlruns
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_id = run_method(["lls-mxm", "--basis", "square", "--epochs", "2", "--limit-train-batches", "6",
                         "--limit-test-batches", "3", "--test-batch-size", "100", "--dropout", "0.1"], uri)
    loaded = llsbench.load_run(run_id, tracking_uri=uri, device="cpu")
    assert loaded.config.method == "lls-mxm" and loaded.config.model_options["dropout"] == 0.1
    assert loaded.config.method_options["basis"] == "square" and loaded.method.aux[0].m.shape == (10, 10)
    logged = MlflowClient(uri).get_run(run_id).data.metrics["final_test_acc"]
    accuracy = loaded.test_accuracy(loaded.load_data())
    assert accuracy == logged
    assert 30.0 < accuracy <= 100.0  # a trained model, not the initial one

    plain = run_method(["bp", "--epochs", "1", "--limit-train-batches", "2", "--no-save-model"], uri)
    with pytest.raises(LLSBenchError, match=f"run {plain} .* has no kept weights .*--no-save-model"):
        llsbench.load_run(plain, tracking_uri=uri)
    with pytest.raises(LLSBenchError, match="no MLflow run 'nope'"):
        llsbench.load_run("nope", tracking_uri=uri)
