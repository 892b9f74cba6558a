"""`llsbench ui` serves the MLflow UI and REST API on 127.0.0.1 over the suite's tracking store."""
import json

import pytest
from processes import get, running_ui

from llsbench.suites import Overrides, RunContext, expand, load_suite, run_suite


@pytest.fixture
def suite_store(tmp_path, one_thread):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    suite = load_suite("smoke")
    cells = expand(suite, Overrides(seeds=1, epochs=1, limit_train_batches=1, methods=("bp",)))
    parent, outcomes = run_suite(suite, cells, RunContext(tracking_uri=uri, run_dir=tmp_path / "runs", device="cpu"),
                                 command="test", echo=lambda line: None)
    return uri, parent, outcomes[0].run_id


def test_ui_serves_the_suite_runs_over_http_on_localhost(suite_store, tmp_path):
    uri, parent_id, cell_id = suite_store
    with running_ui(uri, tmp_path) as ui:
        status, page = get(f"{ui.base}/")
        assert status == 200 and b"<html" in page.lower()
        _, body = get(f"{ui.base}/api/2.0/mlflow/experiments/get-by-name?experiment_name=llsbench")
        experiment_id = json.loads(body)["experiment"]["experiment_id"]
        _, body = get(f"{ui.base}/api/2.0/mlflow/runs/search",
                      {"experiment_ids": [experiment_id], "filter": "tags.suite = 'smoke'"})
        runs = {r["info"]["run_id"]: {t["key"]: t["value"] for t in r["data"]["tags"]} for r in json.loads(body)["runs"]}
        assert set(runs) == {parent_id, cell_id}
        assert runs[cell_id]["mlflow.parentRunId"] == parent_id and runs[parent_id]["role"] == "suite"
