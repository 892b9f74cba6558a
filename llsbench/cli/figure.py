"""`llsbench figure NAME`: draw what a trained rule learned, for one run or every finished cell
of a suite; PNGs go to the output folder and to each run's `figures/` artifacts."""
from __future__ import annotations

from pathlib import Path

import click

from llsbench.artifacts import FIGURE_NAMES
from llsbench.cli.common import UserError
from llsbench.errors import LLSBenchError
from llsbench.tracking import DEFAULT_EXPERIMENT


@click.command("figure")
@click.argument("name", type=click.Choice(FIGURE_NAMES))
@click.option("--run", "run_id", help="MLflow run id of a finished run.")
@click.option("--suite", help="Every finished cell of this suite instead of one run.")
@click.option("--output-dir", "-o", default="results/figures", show_default=True, type=click.Path(file_okay=False),
              help="Where the PNGs go (one folder per run).")
@click.option("--tracking-uri", envvar="MLFLOW_TRACKING_URI",
              help="MLflow tracking URI (default: MLflow's own, ./mlflow.db).")
@click.option("--experiment", default=DEFAULT_EXPERIMENT, show_default=True, help="MLflow experiment (with --suite).")
@click.option("--data-dir", envvar="LLSBENCH_DATA_DIR", type=click.Path(file_okay=False),
              help="Dataset root, if not where the run found it (env LLSBENCH_DATA_DIR).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--block", type=click.IntRange(min=0), help="sync, gradcam: only this block (default: all / last spatial).")
@click.option("--basis", default="sin-ref", show_default=True,
              help="sync: the LLS basis to compare a non-LLS rule with (LLS runs use their own).")
@click.option("--per-class", type=click.IntRange(min=1), default=3, show_default=True,
              help="gradcam: test images per class.")
@click.option("--probe-samples", type=click.IntRange(min=10), default=5000, show_default=True,
              help="probes: training images the linear probes are fitted on.")
@click.option("--no-log", is_flag=True, help="Write the PNGs only; log nothing to MLflow.")
def figure_cmd(name, run_id, suite, output_dir, tracking_uri, experiment, data_dir, device, block, basis, per_class,
               probe_samples, no_log) -> None:
    """Draw figure NAME: sync (activity/basis spectra, paper Fig. 2), tsne-m (t-SNE of LLS-MxM's M,
    Fig. 3), gradcam (Grad-CAM maps, Fig. 4), probes (linear probe per block), angles
    (update/BP-gradient angles logged with --angle-every)."""
    from llsbench.figures import FIGURES, RunSource  # torch, matplotlib and scikit-learn only when drawing

    if (run_id is None) == (suite is None):
        raise UserError("give exactly one of --run RUN_ID or --suite NAME")
    options = {"sync": {"block": block, "basis": basis}, "gradcam": {"block": block, "per_class_images": per_class},
               "probes": {"samples": probe_samples}}.get(name, {})
    runs = [(run_id, None)] if run_id else _suite_runs(suite, tracking_uri, experiment)
    drawn = 0
    for rid, cell in runs:
        source = RunSource(rid, tracking_uri, device=device, data_dir=data_dir)
        try:
            path = Path(output_dir) / source.slug / f"{name}.png"
            result = FIGURES[name](source, path, **options)
        except LLSBenchError as exc:
            if suite is None:
                raise
            click.echo(f"skipped {cell}: {exc}")
            continue
        if not no_log:
            source.publish(result)
        drawn += 1
        metrics = "".join(f"  {k} {v:.2f}" for k, v in result.metrics.items())
        click.echo(f"wrote {result.path}{metrics}")
    if not drawn:
        raise UserError(f"no cell of suite {suite!r} could be drawn as {name}")


def _suite_runs(suite: str, tracking_uri: str | None, experiment: str) -> list[tuple[str, str]]:
    from llsbench.reports import finished_cells

    runs = finished_cells(suite, tracking_uri=tracking_uri, experiment=experiment)
    return list(zip(runs["run_id"], runs["tags.cell"]))
