"""`llsbench ui`: the MLflow UI on 127.0.0.1, reading the same tracking store as the runs."""
from __future__ import annotations

import os
import sys

import click
import mlflow

HOST = "127.0.0.1"  # local only: the tracking store is not meant to be served to the network


@click.command("ui")
@click.option("--port", type=click.IntRange(1, 65535), default=5000, show_default=True)
@click.option("--tracking-uri", envvar="MLFLOW_TRACKING_URI",
              help="MLflow tracking URI (default: MLflow's own, ./mlflow.db).")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Server worker processes.")
def ui_cmd(port: int, tracking_uri: str | None, workers: int) -> None:
    """Start the MLflow UI (and its REST API) on 127.0.0.1 to compare runs and suites."""
    store = tracking_uri or mlflow.get_tracking_uri()
    click.echo(f"MLflow UI for {store} at http://{HOST}:{port} (Ctrl-C stops it)")
    sys.stdout.flush()
    args = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store, "--host", HOST,
            "--port", str(port), "--workers", str(workers)]
    os.execv(sys.executable, args)  # become the server: signals reach it directly, nothing is left behind
