"""`llsbench ui`: the MLflow UI on 127.0.0.1, reading the same tracking store as the runs."""
from __future__ import annotations

import os
import sys

import click
import mlflow

from llsbench import tracking
from llsbench.tracking_ui import runs_page_url

HOST = "127.0.0.1"  # local only: the tracking store is not meant to be served to the network


@click.command("ui")
@click.option("--port", type=click.IntRange(1, 65535), default=5000, show_default=True)
@click.option("--tracking-uri", envvar="MLFLOW_TRACKING_URI",
              help="MLflow tracking URI (default: MLflow's own, ./mlflow.db).")
@click.option("--experiment", default=tracking.DEFAULT_EXPERIMENT, show_default=True,
              help="MLflow experiment whose runs page to print.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Server worker processes.")
def ui_cmd(port: int, tracking_uri: str | None, experiment: str, workers: int) -> None:
    """Start the MLflow UI (and its REST API) on 127.0.0.1 to compare runs and suites."""
    store = tracking_uri or mlflow.get_tracking_uri()
    base = f"http://{HOST}:{port}"
    click.echo(f"MLflow UI for {store} at {base} (Ctrl-C stops it)")
    click.echo(f"Runs of experiment {experiment!r}: {runs_page_url(base, _experiment_id(store, experiment))}")
    sys.stdout.flush()
    # MLflow's job runner (7 huey processes) serves GenAI jobs only (scorers, prompt optimisation,
    # issue detection); without it the server starts in half the time on a small machine.
    # MLFLOW_SERVER_ENABLE_JOB_EXECUTION=true keeps it.
    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    args = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store, "--host", HOST,
            "--port", str(port), "--workers", str(workers)]
    os.execv(sys.executable, args)  # become the server: signals reach it directly, nothing is left behind


def _experiment_id(store: str, name: str) -> str | None:
    """The experiment's id (its UI tags added if an older llsbench made it); None if absent."""
    if tracking.client(store).get_experiment_by_name(name) is None:
        return None
    return tracking.ensure_experiment(name, store)
