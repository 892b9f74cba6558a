"""Figures of a suite's runs: `llsbench figure --suite` draws every finished cell (skipping, with a
reason, those a figure does not apply to), and the report gains the probe column and embeds one
seed's figures per row."""
import statistics

import pandas as pd
import pytest
from click.testing import CliRunner
from mlflow import MlflowClient

from llsbench.cli import cli
from llsbench.reports import write_report
from llsbench.reports.table import PROBE_HEADING
from llsbench.suites import Overrides, RunContext, expand, load_suite, run_suite

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def probed_smoke(tmp_path_factory, one_thread):
    """bp and lls-square × 2 seeds (short), probes drawn for every cell, sync for lls-square seed 1."""
    folder = tmp_path_factory.mktemp("report-figures")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    suite = load_suite("smoke")
    cells = expand(suite, Overrides(epochs=2, limit_train_batches=4, methods=("bp", "lls-square")))
    _, outcomes = run_suite(suite, cells, RunContext(tracking_uri=uri, run_dir=folder / "runs", device="cpu",
                                                     profile=False), command="test", echo=lambda line: None)
    assert [o.status for o in outcomes] == ["finished"] * 4
    runner = CliRunner()
    drawn = runner.invoke(cli, ["figure", "probes", "--suite", "smoke", "--tracking-uri", uri, "-o", str(folder / "f"),
                                "--probe-samples", "300", "--device", "cpu"])
    assert drawn.exit_code == 0, drawn.output
    assert drawn.output.count("wrote ") == 4
    lls1 = next(o.run_id for o in outcomes if o.cell.method_label == "lls-square" and o.cell.seed == 1)
    drawn = runner.invoke(cli, ["figure", "sync", "--run", lls1, "--tracking-uri", uri, "-o", str(folder / "f")])
    assert drawn.exit_code == 0, drawn.output
    return suite, uri, outcomes


def test_figure_for_a_suite_skips_the_cells_it_does_not_apply_to(probed_smoke, tmp_path):
    _, uri, _ = probed_smoke
    result = CliRunner().invoke(cli, ["figure", "tsne-m", "--suite", "smoke", "--tracking-uri", uri, "-o", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert result.output.count("has no learned M") == 4 and result.output.count("skipped ") == 4
    assert "Error: no cell of suite 'smoke' could be drawn as tsne-m" in result.output


def test_report_has_the_probe_column_and_one_seeds_figures_per_row(probed_smoke, tmp_path):
    suite, uri, outcomes = probed_smoke
    report = write_report("smoke", tmp_path, suite=suite, tracking_uri=uri)
    table = pd.read_csv(tmp_path / "smoke.csv")
    client = MlflowClient(uri)
    metrics = {o.run_id: client.get_run(o.run_id).data.metrics for o in outcomes}
    for row in table.itertuples():
        runs = [o.run_id for o in outcomes if o.cell.method_label == row.method]
        for block in range(4):
            expected = statistics.mean(metrics[r][f"probe_acc_block{block}"] for r in runs)
            assert getattr(row, f"probe_acc_block{block}") == pytest.approx(expected)
    md = (tmp_path / "smoke.md").read_text()
    assert PROBE_HEADING in md
    lls = table[table["method"] == "lls-square"].iloc[0]
    assert " / ".join(f"{lls[f'probe_acc_block{b}']:.1f}" for b in range(4)) in md
    figures = md.split("## Figures per row", 1)[1]
    lls1 = next(o.run_id for o in outcomes if o.cell.method_label == "lls-square" and o.cell.seed == 1)
    bp0 = next(o.run_id for o in outcomes if o.cell.method_label == "bp" and o.cell.seed == 0)
    assert f"Seed 1, MLflow run `{lls1}`" in figures  # the seed with the most figures
    assert f"Seed 0, MLflow run `{bp0}`" in figures  # a tie goes to the lowest seed
    links = [line[line.index("(") + 1:-1] for line in figures.splitlines() if line.startswith("![")]
    assert len(links) == 3 and sum("_sync.png" in link for link in links) == 1
    assert all((tmp_path / link).read_bytes()[:8] == PNG for link in links)
    assert all(tmp_path / link in report.files for link in links)
