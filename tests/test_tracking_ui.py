"""What the MLflow UI reads from llsbench's runs: the experiment marked as model training with a
shared runs-table view, each run's train/test data as dataset inputs, its source and commit."""
import json

import pytest
from click.testing import CliRunner
from mlflow import MlflowClient

from llsbench.cli import cli
from llsbench.config import RunConfig
from llsbench.tracking import MlflowLogger, ensure_experiment, git_commit
from llsbench.tracking_ui import EXPERIMENT_KIND_TAG, MODEL_TRAINING, VIEW_KEY, VIEW_TAG, runs_page_url
from llsbench.trainer import Trainer


@pytest.fixture
def store(tmp_path):
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_experiment_is_model_training_with_the_accuracy_columns_in_its_shared_view(store):
    client = MlflowClient(store)
    tags = client.get_experiment(ensure_experiment("fresh", store)).tags
    assert tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING == "custom_model_development"  # MLflow 3's UI value
    view = json.loads(tags[VIEW_TAG])
    assert {"metrics.`final_test_acc`", "metrics.`test_acc`", "params.`method`", "params.`model`",
            "attributes.`Dataset`"} <= set(view["selectedColumns"])
    assert set(view["columnOrder"]) >= set(view["selectedColumns"])


def test_an_existing_experiment_gains_the_tags_but_keeps_a_kind_chosen_in_the_ui(store):
    client = MlflowClient(store)
    old = client.create_experiment("old")  # made before llsbench tagged experiments
    client.set_experiment_tag(old, EXPERIMENT_KIND_TAG, "genai_development")  # a user's own choice
    assert ensure_experiment("old", store) == old
    tags = client.get_experiment(old).tags
    assert tags[EXPERIMENT_KIND_TAG] == "genai_development" and VIEW_TAG in tags


def test_a_run_logs_its_train_and_test_data_as_dataset_inputs_and_its_source(store, one_thread):
    config = RunConfig(method="bp", dataset="digits", epochs=1, limit_train_batches=1, device="cpu")
    logger = MlflowLogger("inputs", store)
    Trainer(config, callbacks=[logger], progress=False).fit()
    run = MlflowClient(store).get_run(logger.run_id)
    inputs = {i.tags[0].value: i.dataset for i in run.inputs.dataset_inputs}
    assert set(inputs) == {"train", "test"} and all(i.tags[0].key == "mlflow.data.context"
                                                    for i in run.inputs.dataset_inputs)
    train, test = inputs["train"], inputs["test"]
    assert train.name == test.name == "digits" and train.digest != test.digest
    assert json.loads(train.profile)["num_rows"] == 1437 and json.loads(test.profile)["num_rows"] == 360
    assert train.source_type == "code" and "mlflow_tensorspec" in json.loads(train.schema)
    tags = run.data.tags
    assert tags["mlflow.source.type"] == "LOCAL" and tags["mlflow.source.name"] == "llsbench (Python API)"
    assert tags.get("mlflow.source.git.commit", "unknown") == git_commit()

    again = MlflowLogger("inputs", store)
    Trainer(config, callbacks=[again], progress=False).fit()
    digests = {i.tags[0].value: i.dataset.digest for i in MlflowClient(store).get_run(again.run_id).inputs.dataset_inputs}
    assert digests == {"train": train.digest, "test": test.digest}  # same data, same dataset
    smaller = MlflowLogger("inputs", store)
    Trainer(RunConfig(**{**config.__dict__, "train_subset": 256}), callbacks=[smaller], progress=False).fit()
    subset = {i.tags[0].value: i.dataset.digest for i in MlflowClient(store).get_run(smaller.run_id).inputs.dataset_inputs}
    assert subset["train"] != train.digest and subset["test"] == test.digest


def test_a_cli_run_names_its_command_as_the_source(store, tmp_path, one_thread):
    result = CliRunner().invoke(cli, ["run", "method", "bp", "--dataset", "digits", "--epochs", "1",
                                      "--limit-train-batches", "1", "--device", "cpu", "--tracking-uri", store,
                                      "--experiment", "cli"])
    assert result.exit_code == 0, result.output
    client = MlflowClient(store)
    [run] = client.search_runs([client.get_experiment_by_name("cli").experiment_id])
    assert run.data.tags["mlflow.source.name"] == "llsbench run method"


def test_the_printed_runs_page_opens_the_model_training_view_with_llsbench_columns():
    assert runs_page_url("http://127.0.0.1:5000", "7") == (
        f"http://127.0.0.1:5000/#/experiments/7/runs?workflowType=machine_learning&viewStateShareKey={VIEW_KEY}")
    assert runs_page_url("http://h:1", None) == "http://h:1/#/experiments?workflowType=machine_learning"
