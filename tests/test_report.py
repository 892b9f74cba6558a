"""`llsbench report`: the table read back from MLflow matches the child runs' own metrics, and
it states the budget; cost columns and figures appear exactly when runs measured them."""
import math
import re
import statistics

import pandas as pd
import pytest
from click.testing import CliRunner
from mlflow import MlflowClient

from llsbench.cli import cli
from llsbench.reports import write_report
from llsbench.suites import Overrides, RunContext, expand, load_suite, run_suite

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def finished_smoke(tmp_path_factory, one_thread):
    """A finished (shortened) smoke suite in its own tracking store: 3 methods × 2 seeds, not
    profiled (a test below adds the cost metrics itself)."""
    folder = tmp_path_factory.mktemp("report")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    MlflowClient(uri).create_experiment("llsbench", artifact_location=(folder / "artifacts").as_uri())  # not ./mlruns
    suite = load_suite("smoke")
    cells = expand(suite, Overrides(epochs=2, limit_train_batches=3, methods=("bp", "lls-square", "dfa")))
    _, outcomes = run_suite(suite, cells, RunContext(tracking_uri=uri, run_dir=folder / "runs", device="cpu", profile=False),
                            command="llsbench run suite smoke --epochs 2", echo=lambda line: None)
    assert [o.status for o in outcomes] == ["finished"] * 6
    return suite, uri, folder


def child_runs(uri: str) -> pd.DataFrame:
    """The cells' own final accuracies, straight from MLflow's client."""
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("llsbench").experiment_id
    runs = client.search_runs([experiment], "tags.suite = 'smoke' and tags.role = 'cell'")
    return pd.DataFrame([{"method": r.data.tags["method_label"], "run_id": r.info.run_id,
                          "acc": r.data.metrics["final_test_acc"]} for r in runs])


def test_report_rows_are_mean_and_std_over_seeds_of_the_child_runs(finished_smoke, tmp_path):
    suite, uri, _ = finished_smoke
    report = write_report("smoke", tmp_path, suite=suite, tracking_uri=uri)
    table = pd.read_csv(tmp_path / "smoke.csv")
    assert list(table["method"]) == ["bp", "dfa", "lls-square"]  # one row per method, in suite order
    runs = child_runs(uri)
    bp_mean = statistics.mean(runs[runs["method"] == "bp"]["acc"])
    for row in table.itertuples():
        accs = list(runs[runs["method"] == row.method]["acc"])
        assert row.n_seeds == len(accs) == 2
        assert math.isclose(row.test_acc_mean, statistics.mean(accs), abs_tol=1e-9)
        assert math.isclose(row.test_acc_std, statistics.stdev(accs), abs_tol=1e-9)
        assert math.isclose(row.gap_to_bp, statistics.mean(accs) - bp_mean, abs_tol=1e-9)
        assert row.budget == "shortened (epochs=2, limit_train_batches=3)"
    assert report.table["n_seeds"].tolist() == [2, 2, 2]

    md = (tmp_path / "smoke.md").read_text()
    assert "shortened (epochs=2, limit_train_batches=3): changed on the command line, NOT the suite's own budget" in md
    assert "`llsbench run suite smoke --epochs 2`" in md and "git commit" in md and "torch 2." in md
    square = table[table["method"] == "lls-square"].iloc[0]
    cells = ["lls-square", "2", f"{square.test_acc_mean:.2f} ± {square.test_acc_std:.2f}", f"{square.gap_to_bp:+.2f}"]
    row = r"\|\s*" + r"\s*\|\s*".join(map(re.escape, cells)) + r"\s*\|"
    assert re.search(row, md), md
    tex = (tmp_path / "smoke.tex").read_text()
    assert "\\begin{tabular}" in tex and f"{square.test_acc_mean:.2f} $\\pm$ {square.test_acc_std:.2f}" in tex
    assert (tmp_path / "smoke_curves.png").read_bytes()[:8] == PNG
    assert "signal_macs" not in table and not list(tmp_path.glob("*_acc_vs_*.png"))  # nothing measured them


def test_measured_costs_become_columns_and_figures(finished_smoke, tmp_path):
    suite, uri, _ = finished_smoke
    client = MlflowClient(uri)
    runs = child_runs(uri)
    macs = {"bp": 4.0e6, "dfa": 2.0e5, "lls-square": 1.0e4}
    for run in runs.itertuples():
        client.log_metric(run.run_id, "signal_macs", macs[run.method])  # what the profiler logs once per run
    write_report("smoke", tmp_path, suite=suite, tracking_uri=uri)
    table = pd.read_csv(tmp_path / "smoke.csv")
    assert dict(zip(table["method"], table["signal_macs"])) == macs
    assert "held_memory_bytes" not in table
    md = (tmp_path / "smoke.md").read_text()
    assert "signal MACs" in md and "4 M" in md and "held memory" not in md
    assert (tmp_path / "smoke_acc_vs_signal_macs.png").read_bytes()[:8] == PNG
    assert not (tmp_path / "smoke_acc_vs_held_memory.png").exists()


def test_report_cli_writes_the_files_and_explains_a_missing_suite(finished_smoke, tmp_path):
    _, uri, _ = finished_smoke
    result = CliRunner().invoke(cli, ["report", "smoke", "--tracking-uri", uri, "--output-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert {p.name for p in tmp_path.iterdir()} >= {"smoke.md", "smoke.csv", "smoke.tex", "smoke_curves.png"}
    assert "| dfa " in result.output
    result = CliRunner().invoke(cli, ["report", "table2", "--tracking-uri", uri, "--output-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "Error: no finished runs of suite 'table2'" in result.output and "llsbench run suite table2" in result.output
    result = CliRunner().invoke(cli, ["report", "smoke", "--tracking-uri", uri, "-o", str(tmp_path), "--budget", "paper"])
    assert result.exit_code == 2 and "its budgets: shortened (epochs=2, limit_train_batches=3)" in result.output


def test_report_puts_the_measured_number_beside_each_published_one(finished_smoke, tmp_path):
    from dataclasses import replace

    from llsbench.suites.published import Published
    suite, uri, _ = finished_smoke
    quoted = Published("digits", "smallconv", "dfa", "test_error", 0.5, 100, "a paper, Table 9", "their net", 0.01)
    write_report("smoke", tmp_path, suite=replace(suite, published=(quoted,)), tracking_uri=uri, with_plots=False)
    dfa = pd.read_csv(tmp_path / "smoke.csv").set_index("method").loc["dfa"]
    md = (tmp_path / "smoke.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| digits") and "a paper, Table 9" in line)
    assert "## Beside the published numbers" in md
    assert f"{100 - dfa.test_acc_mean:.2f} ± {dfa.test_acc_std:.2f}" in row and "0.50 ± 0.01" in row
    assert "NO: off by" in row and "shorter budget: 2 epoch(s) of 3 batches vs 100 epochs" in row


def test_report_logs_its_table_and_files_to_the_suites_latest_parent_run(finished_smoke, tmp_path):
    """Last in this module: it adds a suite invocation (every cell skipped) to the shared store."""
    suite, uri, folder = finished_smoke
    client = MlflowClient(uri)
    latest, _ = run_suite(suite, expand(suite, Overrides(epochs=2, limit_train_batches=3,
                                                         methods=("bp", "lls-square", "dfa"))),
                          RunContext(tracking_uri=uri, run_dir=folder / "runs", device="cpu", profile=False),
                          command="again", echo=lambda line: None)
    result = CliRunner().invoke(cli, ["report", "smoke", "--tracking-uri", uri, "-o", str(tmp_path / "one")])
    assert result.exit_code == 0, result.output
    assert f"to MLflow run {latest}" in result.output
    first = client.get_run(latest).data.tags["report_latest"]
    written = {p.name for p in (tmp_path / "one").iterdir()}
    assert written >= {"smoke.md", "smoke.csv", "smoke.tex", "smoke_curves.png"}
    assert {a.path.rsplit("/", 1)[-1] for a in client.list_artifacts(latest, first)} == written | {"smoke_table.json"}
    experiment = client.get_run(latest).info.experiment_id
    table = client.load_table(experiment, f"{first}/smoke_table.json", run_ids=[latest])
    csv = pd.read_csv(tmp_path / "one" / "smoke.csv")
    assert list(table["method"]) == list(csv["method"]) == ["bp", "dfa", "lls-square"]
    assert list(table["test acc (%)"]) == [f"{m:.2f} ± {s:.2f}" for m, s in zip(csv["test_acc_mean"], csv["test_acc_std"])]

    result = CliRunner().invoke(cli, ["report", "smoke", "--tracking-uri", uri, "-o", str(tmp_path / "two"), "--no-plots"])
    assert result.exit_code == 0, result.output
    second = client.get_run(latest).data.tags["report_latest"]
    assert second != first  # a snapshot of its own: MLflow would append to a table logged twice under one name
    assert len(client.load_table(experiment, f"{first}/smoke_table.json", run_ids=[latest])) == 3
    assert len(client.load_table(experiment, f"{second}/smoke_table.json", run_ids=[latest])) == 3
