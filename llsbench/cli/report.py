"""`llsbench report NAME`: a suite's runs from MLflow → paper-style table and figures."""
from __future__ import annotations

import shlex

import click

from llsbench.reports import formatted, write_report
from llsbench.reports.publish import publish_report
from llsbench.suites import SuiteNotFoundError, load_suite
from llsbench.tracking import DEFAULT_EXPERIMENT


@click.command("report")
@click.argument("name")
@click.option("--output-dir", "-o", default="results", show_default=True, type=click.Path(file_okay=False),
              help="Where NAME.md, NAME.csv, NAME.tex and the PNG figures go.")
@click.option("--tracking-uri", envvar="MLFLOW_TRACKING_URI",
              help="MLflow tracking URI (default: MLflow's own, ./mlflow.db).")
@click.option("--experiment", default=DEFAULT_EXPERIMENT, show_default=True, help="MLflow experiment.")
@click.option("--budget", help="Only runs with this budget (as the table's budget column writes it).")
@click.option("--no-plots", is_flag=True, help="Tables only.")
def report_cmd(name, output_dir, tracking_uri, experiment, budget, no_plots) -> None:
    """Write the comparison table of suite NAME (mean ± std over seeds, gap to BP, measured
    costs) as Markdown, CSV and LaTeX, plus accuracy and cost figures, and log the table and
    files to the suite's latest parent run in MLflow."""
    try:
        suite = load_suite(name)
    except SuiteNotFoundError:
        suite = None  # a suite file that is gone: its runs still carry its name
    suite_name = suite.name if suite else name
    words = ["llsbench", "report", name] + (["--output-dir", output_dir] if output_dir != "results" else []) + \
        (["--budget", budget] if budget else []) + (["--no-plots"] if no_plots else [])
    report = write_report(suite_name, output_dir, suite=suite, tracking_uri=tracking_uri, experiment=experiment,
                          budget=budget, command=shlex.join(words), with_plots=not no_plots)
    click.echo(formatted(report.table).to_markdown(index=False, disable_numparse=True))
    click.echo("\n".join(f"wrote {path}" for path in report.files))
    click.echo(publish_report(suite_name, report, tracking_uri=tracking_uri, experiment=experiment).describe())
