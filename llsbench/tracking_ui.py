"""What the MLflow UI shows of llsbench runs: the experiment marked as model training (so it
opens on the training-runs table, not MLflow 3's GenAI overview), a shared runs-table view with
the accuracy metrics and the method / model / dataset params as columns, each run's Source, and
its train and test data as MLflow dataset inputs (the Dataset column).

The tag names and values are MLflow's own (3.x UI): `mlflow.experimentKind`,
`mlflow.sharedViewState.<key>` (what the UI's Share button writes), `mlflow.source.*`.
"""
from __future__ import annotations

import getpass
import hashlib
import json

import click
import numpy as np
from mlflow.data.code_dataset_source import CodeDatasetSource
from mlflow.data.schema import TensorDatasetSchema
from mlflow.entities import Dataset, DatasetInput, InputTag
from mlflow.types import Schema, TensorSpec

from llsbench.data.splits import DataSplits

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"  # the UI's "Machine learning" kind: lands on the runs table
VIEW_KEY = "llsbench"  # open it with `?viewStateShareKey=llsbench` on the experiment's runs page
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"
VIEW_METRICS = ("final_test_acc", "test_acc", "best_test_acc")
VIEW_PARAMS = ("method", "model", "dataset", "seed")
CONTEXT_TAG = "mlflow.data.context"


def runs_view_state() -> dict:
    """The runs-table view the experiment shares: run name, the accuracy metrics, the params
    that tell cells apart and the datasets first, then source, commit and models; newest first."""
    metrics = [f"metrics.`{m}`" for m in VIEW_METRICS]
    params = [f"params.`{p}`" for p in VIEW_PARAMS]
    dataset, *others = [f"attributes.`{name}`" for name in ("Dataset", "Source", "Version", "Models")]
    order = ["attributes.`Run Name`", *metrics, *params, dataset, *others, "attributes.`Duration`"]
    return {"selectedColumns": [dataset, *others, *metrics, *params], "columnOrder": order,
            "columnWidths": {"attributes.`Run Name`": 240, dataset: 300},
            "orderByKey": "attributes.start_time", "orderByAsc": False, "runsHiddenMode": "SHOW_ALL"}


def runs_page_url(base: str, experiment_id: str | None) -> str:
    """Where a user lands on the experiment's runs table in the model-training view. MLflow 3.17
    chooses GenAI or model training from the browser's own toggle (the `workflowType` URL
    parameter or the last choice, GenAI by default), not from the experiment's kind tag."""
    if experiment_id is None:
        return f"{base}/#/experiments?workflowType=machine_learning"
    return f"{base}/#/experiments/{experiment_id}/runs?workflowType=machine_learning&viewStateShareKey={VIEW_KEY}"


def experiment_tags() -> dict[str, str]:
    return {EXPERIMENT_KIND_TAG: MODEL_TRAINING, VIEW_TAG: json.dumps(runs_view_state())}


def missing_experiment_tags(existing: dict[str, str]) -> dict[str, str]:
    """The experiment tags still to set; a kind or view someone changed in the UI is kept."""
    return {k: v for k, v in experiment_tags().items() if k not in existing}


def source_tags(commit: str) -> dict[str, str]:
    """Source / Version / User columns: the llsbench command that made the run and its commit."""
    context = click.get_current_context(silent=True)
    command = " ".join(["llsbench", *context.command_path.split()[1:]]) if context else "llsbench (Python API)"
    tags = {"mlflow.source.type": "LOCAL", "mlflow.source.name": command,
            "mlflow.user": _user()}
    if commit != "unknown":
        tags["mlflow.source.git.commit"] = commit
    return tags


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return "unknown"


def dataset_inputs(data: DataSplits) -> list[DatasetInput]:
    """The run's train and test splits as MLflow dataset inputs (context `train` / `test`)."""
    return [_dataset_input(data, split) for split in ("train", "test")]


def _dataset_input(data: DataSplits, split: str) -> DatasetInput:
    spec = data.spec
    batches = data.train if split == "train" else data.test
    identity = {"dataset": spec.name, "family": spec.family, "split": split, "n": batches.num_samples,
                "image_size": spec.image_size, "preprocess": spec.preprocess,
                "mean": list(spec.mean), "std": list(spec.std)}
    if split == "train":
        identity |= {"augmentation": spec.augmentation.describe(),
                     "subset": data.train_subset if data.train_subset is not None else "all"}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:8]
    location = spec.source.location(data.data_dir) if data.data_dir is not None else None
    if location is not None:
        source_type, source = "local", json.dumps({"uri": str(location)})
    else:
        source_type, source = "code", CodeDatasetSource({"llsbench.dataset": spec.description}).to_json()
    schema = TensorDatasetSchema(
        Schema([TensorSpec(np.dtype("float32"), (-1, spec.in_channels, spec.image_size, spec.image_size), "image")]),
        Schema([TensorSpec(np.dtype("int64"), (-1,), "label")]))
    profile = {"num_rows": batches.num_samples, "num_classes": spec.num_classes, **identity}
    dataset = Dataset(name=spec.name, digest=digest, source_type=source_type, source=source,
                      schema=json.dumps(schema.to_dict()), profile=json.dumps(profile))
    return DatasetInput(dataset, tags=[InputTag(CONTEXT_TAG, split)])
