"""`llsbench ui` and `llsbench server`: the real MLflow server over llsbench's tracking store.

`ui` is for one person on one machine: the UI and REST API on 127.0.0.1 over the same store
the runs use. `server` is the tracking server for a team or a cluster: its own backend store,
artifact proxying on (so checkpoints and files of runs are reachable from every node), bound
to 127.0.0.1 unless `--host` says otherwise. Either way the store is created safely first.
"""
from __future__ import annotations

import os
import sys

import click
import mlflow

from llsbench import tracking
from llsbench.store import prepare_store
from llsbench.tracking_ui import runs_page_url

HOST = "127.0.0.1"  # local only unless asked: the tracking store is not meant to be served to the network
WORKERS = click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
                       help="Server worker processes.")
PORT = click.option("--port", type=click.IntRange(1, 65535), default=5000, show_default=True)


@click.command("ui")
@PORT
@click.option("--tracking-uri", envvar="MLFLOW_TRACKING_URI",
              help="MLflow tracking URI (default: MLflow's own, ./mlflow.db).")
@click.option("--experiment", default=tracking.DEFAULT_EXPERIMENT, show_default=True,
              help="MLflow experiment whose runs page to print.")
@WORKERS
def ui_cmd(port: int, tracking_uri: str | None, experiment: str, workers: int) -> None:
    """Start the MLflow UI (and its REST API) on 127.0.0.1 to compare runs and suites."""
    store = tracking_uri or mlflow.get_tracking_uri()
    base = f"http://{HOST}:{port}"
    click.echo(f"MLflow UI for {store} at {base} (Ctrl-C stops it)")
    click.echo(f"Runs of experiment {experiment!r}: {runs_page_url(base, _experiment_id(store, experiment))}")
    serve(store, HOST, port, workers)


def _experiment_id(store: str, name: str) -> str | None:
    """The experiment's id (its UI tags added if an older llsbench made it); None if absent."""
    if tracking.client(store).get_experiment_by_name(name) is None:
        return None
    return tracking.ensure_experiment(name, store)


@click.command("server")
@click.option("--host", default=HOST, show_default=True,
              help="Interface to bind: 0.0.0.0 serves the network (then see MLflow's --allowed-hosts).")
@PORT
@click.option("--backend-store-uri", help="Where runs are kept (default: ./mlflow.db, a SQLite store).")
@click.option("--artifacts-destination", type=click.Path(file_okay=False), default="mlartifacts", show_default=True,
              help="Where the server keeps the runs' artifacts (checkpoints of interrupted cells among them).")
@WORKERS
def server_cmd(host: str, port: int, backend_store_uri: str | None, artifacts_destination: str, workers: int) -> None:
    """Start the MLflow tracking server for a team or a cluster; point runs at it with
    MLFLOW_TRACKING_URI=http://HOST:PORT."""
    store = backend_store_uri or f"sqlite:///{os.path.abspath('mlflow.db')}"
    click.echo(f"MLflow tracking server for {store} at http://{host}:{port}, artifacts in "
               f"{os.path.abspath(artifacts_destination)} (Ctrl-C stops it)")
    serve(store, host, port, workers, ["--serve-artifacts", "--artifacts-destination", artifacts_destination],
          artifact_root="mlflow-artifacts:/")


def serve(store: str, host: str, port: int, workers: int, extra: list[str] = (), artifact_root: str | None = None):
    """Become `mlflow server` on this store (created safely first): signals reach it directly."""
    prepare_store(store, artifact_root)
    sys.stdout.flush()
    # MLflow's job runner (7 huey processes) serves GenAI jobs only (scorers, prompt optimisation,
    # issue detection); without it the server starts in half the time on a small machine.
    # MLFLOW_SERVER_ENABLE_JOB_EXECUTION=true keeps it.
    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    args = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store, "--host", host,
            "--port", str(port), "--workers", str(workers), *extra]
    os.execv(sys.executable, args)
