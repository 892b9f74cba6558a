"""The command line: user mistakes are one-line errors naming the bad value and the valid ones;
a successful run is recorded in MLflow with its full configuration."""
import pytest
from click.testing import CliRunner
from mlflow import MlflowClient

from llsbench.cli import cli


def invoke(*args, env=None):
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def run_method(*args):
    return invoke("run", "method", *args, "--no-track", "--no-progress", "--epochs", "1")


@pytest.mark.parametrize("args,named,valid", [
    (["nosuch"], "'nosuch'", ["bp", "lls", "lls-mxm"]),
    (["lls", "--model", "resnet9"], "'resnet9'", ["smallconv", "vgg8", "mobilenetv1"]),
    (["lls", "--dataset", "svhn"], "'svhn'", ["digits", "mnist", "cifar10"]),
    (["lls", "--basis", "triangle"], "'triangle'", ["sin-ref", "square", "random", "cos", "sin-f64", "square-pm1", "random-cxt"]),
    (["lls", "-o", "tau=2"], "'tau'", ["basis", "normalize", "temperature"]),
    (["bp", "--basis", "square"], "'basis'", []),
    (["lls", "--activation", "gelu"], "'gelu'", ["leaky_relu", "tanh"]),
])
def test_user_mistakes_exit_2_naming_bad_and_valid_values(args, named, valid):
    result = run_method(*args)
    assert result.exit_code == 2, result.output
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("Error:") and named in line
    assert all(v in line for v in valid), line
    assert "Traceback" not in result.output


def test_missing_data_directory_names_the_path_and_the_fix(tmp_path):
    missing = tmp_path / "nowhere"
    result = run_method("lls", "--dataset", "mnist", "--data-dir", str(missing))
    assert result.exit_code == 2
    assert str(missing) in result.output and "--download" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("args", [["--epochs", "0"], ["--lr-milestones", "ten"], ["--lr-milestones", "5,2"], ["--lr", "-1"], ["--optimizer", "rmsprop"],
                                  ["--device", "tpu"], ["--option", "novalue"]])
def test_bad_option_values_exit_non_zero_with_a_message(args):
    result = invoke("run", "method", "lls", "--no-track", *args)
    assert result.exit_code == 2, result.output
    assert "Error" in result.output and "Traceback" not in result.output


def test_cuda_requested_without_cuda_is_a_clear_error(monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    result = run_method("lls", "--device", "cuda")
    assert result.exit_code == 2 and "CUDA is not available" in result.output


def test_list_prints_every_registry():
    result = invoke("list")
    assert result.exit_code == 0
    for name in ("bp", "lls-mxm", "smallconvl", "mobilenetv1", "digits", "mnist", "tinyimagenet"):
        assert name in result.output
    assert "sin-ref" in invoke("list", "methods", "--pattern", "lls*").output


def test_a_run_is_recorded_in_mlflow_with_config_tags_and_metrics(tracking_uri):
    result = invoke("run", "method", "lls-m", "--basis", "square", "--epochs", "2", "--no-progress", "--lr-milestones", "1",
                    "--tracking-uri", tracking_uri, "--experiment", "cli-test", "--seed", "3")
    assert result.exit_code == 0, result.output
    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name("cli-test")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params["method"] == "lls-m" and params["method.basis"] == "square" and params["seed"] == "3"
    assert params["lr_milestones"] == "[1]"
    assert params["method.temperature"] == "0.5" and params["data.n_train"] == "1437"
    assert run.data.tags["git_dirty"] in ("true", "false")
    for tag in ("git_commit", "version.torch", "version.mlflow", "device", "device_name"):
        assert run.data.tags[tag]
    assert run.data.tags["host_memory"] == "retain"  # the CLI's default policy (llsbench/host_memory.py)
    assert len(client.get_metric_history(run.info.run_id, "test_acc")) == 2
    assert run.data.metrics["extra_parameters"] == 4 * 10
    assert run.data.metrics["final_test_acc"] > 50


def test_momentum_reaches_the_optimiser(monkeypatch):
    from llsbench.trainer import Trainer

    seen = []
    fit = Trainer.fit

    def recording_fit(trainer):
        seen.append([(type(o).__name__, g["momentum"], g["nesterov"]) for o in trainer.method.optimizers
                     for g in o.param_groups])
        return fit(trainer)

    monkeypatch.setattr(Trainer, "fit", recording_fit)
    result = run_method("bp", "--optimizer", "nesterov", "--momentum", "0.5", "--limit-train-batches", "1",
                        "--bn-batches", "0", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert seen == [[("SGD", 0.5, True)]]
    assert run_method("bp", "--momentum", "1.5").exit_code == 2
