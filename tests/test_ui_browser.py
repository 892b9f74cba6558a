"""The MLflow UI as a user sees it, in headless chromium (playwright driving the system browser,
no download) against the real `llsbench ui` over a finished smoke suite: the runs page
`llsbench ui` prints lists the suite's parent run with its cells nested under it, with their
datasets, source and accuracy; Compare on two cells shows their method / model / data params and
their test_acc curves; the report's table shows in the parent run's artifacts.

Screenshots go to pytest's tmp dir and, if LLSBENCH_TEST_ARTIFACTS is set, to
$LLSBENCH_TEST_ARTIFACTS/ui/.
"""
import os
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient
from processes import running_ui

from llsbench.reports import write_report
from llsbench.reports.publish import publish_report
from llsbench.suites import Overrides, RunContext, expand, load_suite, run_suite

pytestmark = [pytest.mark.browser, pytest.mark.slow]

METHODS = ("bp", "lls")
PAGE_MS = 90_000  # a cold React page over a busy 2-core machine; normally a few seconds
STEP_MS = 60_000


@pytest.fixture(scope="module")
def smoke_store(tmp_path_factory, one_thread):
    """bp and lls on digits, 1 seed, 2 short epochs (two points per curve), plus its report."""
    folder = tmp_path_factory.mktemp("ui_browser")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    MlflowClient(uri).create_experiment("llsbench", artifact_location=(folder / "artifacts").as_uri())
    suite = load_suite("smoke")
    cells = [c for c in expand(suite, Overrides(seeds=1, epochs=2, limit_train_batches=2, methods=METHODS))
             if c.method_label in METHODS]
    parent, outcomes = run_suite(suite, cells, RunContext(tracking_uri=uri, run_dir=folder / "runs", device="cpu",
                                                          profile=False), command="test", echo=lambda line: None)
    assert [o.status for o in outcomes] == ["finished"] * len(METHODS)
    report = write_report("smoke", folder / "results", suite=suite, tracking_uri=uri, with_plots=False)
    published = publish_report("smoke", report, tracking_uri=uri)
    return uri, folder, parent, {o.cell.label: o.run_id for o in outcomes}, published


@pytest.fixture(scope="module")
def ui(smoke_store):
    uri, folder, *_ = smoke_store
    with running_ui(uri, folder) as server:
        yield server


@pytest.fixture
def shots(tmp_path):
    """Saves a screenshot under tmp_path/screenshots (and LLSBENCH_TEST_ARTIFACTS/ui)."""
    folder = tmp_path / "screenshots"
    folder.mkdir()
    extra = Path(os.environ["LLSBENCH_TEST_ARTIFACTS"]) / "ui" if os.environ.get("LLSBENCH_TEST_ARTIFACTS") else None

    def save(page, name: str) -> None:
        path = folder / f"{name}.png"
        page.screenshot(path=path)
        if extra is not None:
            extra.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, extra / path.name)
    return save


@pytest.fixture
def page(chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page(viewport={"width": 2200, "height": 1400})
            page.set_default_timeout(STEP_MS)
            page.set_default_navigation_timeout(PAGE_MS)
            yield page
        finally:
            browser.close()


def runs_page_link(ui) -> str:
    """The runs-page address `llsbench ui` prints for the user to open."""
    found = re.search(r"Runs of experiment 'llsbench': (\S+)", ui.output())
    assert found, ui.output()
    return found.group(1)


def test_the_runs_page_nests_the_cells_under_the_suite_and_compare_shows_params_and_test_acc_curves(
        smoke_store, ui, page, shots):
    from playwright.sync_api import expect

    uri, _, parent, cells, _ = smoke_store
    client = MlflowClient(uri)
    page.goto(runs_page_link(ui))
    parent_row = page.locator(".ag-row").filter(has_text="suite smoke").first
    expect(parent_row).to_be_visible(timeout=PAGE_MS)
    expect(parent_row.get_by_role("link", name="suite smoke")).to_have_attribute("href", re.compile(f"/runs/{parent}$"))
    for label in cells:  # folded under their parent: not listed until it is expanded
        expect(page.get_by_role("link", name=label, exact=True)).to_have_count(0)
    shots(page, "1-runs-folded")

    parent_row.locator("button").first.click()  # the expander in the run-name cell
    for label in cells:
        expect(page.get_by_role("link", name=label, exact=True)).to_be_visible()
    columns = ["attributes.`Dataset`", "attributes.`Source`", "attributes.`Version`", "metrics.`final_test_acc`",
               "metrics.`test_acc`", "params.`method`", "params.`model`"]
    for column in columns:  # llsbench's shared view of the runs table
        expect(page.locator(f'.ag-header-cell[col-id="{column}"]')).to_be_visible()
    table = page.locator(".ag-root-wrapper")
    expect(table.get_by_text("digits (").first).to_be_visible()  # the dataset inputs, train and test
    for context in ("train", "test"):  # each cell's splits, by their mlflow.data.context
        expect(table.get_by_text(re.compile(f"^{context}$", re.I)).first).to_be_visible()
    expect(table.get_by_text("llsbench (Python API)").first).to_be_visible()  # Source: the test ran the suite
    shots(page, "2-runs-nested")

    for label in cells:
        row_index = page.locator(".ag-row").filter(
            has=page.get_by_role("link", name=label, exact=True)).first.get_attribute("row-index")
        page.locator(f'.ag-row[row-index="{row_index}"] input.ag-checkbox-input').first.check(force=True)
    page.get_by_role("button", name="Compare", exact=True).click()
    expect(page.get_by_text(f"Comparing {len(cells)} Runs")).to_be_visible(timeout=PAGE_MS)
    body = page.locator("body")
    for run_id in cells.values():
        for key in client.get_run(run_id).data.params:
            if key.startswith(("method.", "model.", "data.")):
                expect(body).to_contain_text(key)
    expect(body).to_contain_text("method.temperature")  # lls's own option, beside bp's blank
    page.get_by_text("Parameters", exact=True).first.scroll_into_view_if_needed()
    shots(page, "3-compare-params")

    open_metric(page, "test_acc")
    chart = page.locator(".js-plotly-plot").first
    expect(chart).to_be_visible(timeout=PAGE_MS)
    expect(chart.locator(".scatterlayer path.js-line").first).to_be_attached()
    lines = {path.get_attribute("d") for path in chart.locator(".scatterlayer path.js-line").all()}
    assert len(lines) == len(cells), lines  # one curve per run (plotly draws each twice)
    assert all(line.count("L") == 1 for line in lines), lines  # through the 2 logged epochs
    for label, run_id in cells.items():
        expect(body).to_contain_text(f"{label} (test_acc)")
        history = client.get_metric_history(run_id, "test_acc")
        assert len(history) == 2
        last = max(history, key=lambda m: m.step)
        expect(body).to_contain_text(f"{js_number(last.value)} (step={last.step})")  # the curve is the run's
    shots(page, "4-test-acc-curves")


def test_the_report_table_shows_in_the_suites_parent_run(smoke_store, ui, page, shots):
    from playwright.sync_api import expect

    uri, folder, parent, _, published = smoke_store
    accuracies = pd.read_csv(folder / "results" / "smoke.csv")["test_acc_mean"]
    experiment = MlflowClient(uri).get_run(parent).info.experiment_id
    page.goto(f"{ui.base}/#/experiments/{experiment}/runs/{parent}/artifacts?workflowType=machine_learning")
    tree = page.get_by_text("reports", exact=True).first
    expect(tree).to_be_visible(timeout=PAGE_MS)
    tree.click()
    page.get_by_text(published.folder.split("/")[-1], exact=True).click()
    page.get_by_text("smoke_table.json", exact=True).click()
    expect(page.get_by_text("test acc (%)", exact=True)).to_be_visible()
    body = page.locator("body")
    for accuracy in accuracies:  # every row's accuracy cell is filled in
        expect(body).to_contain_text(f"{accuracy:.2f}")
    shots(page, "5-report-table")


def js_number(value: float) -> str:
    """A float as JavaScript prints it (shortest round-trip, no '.0')."""
    return str(int(value)) if value.is_integer() else repr(value)


def open_metric(page, metric: str) -> None:
    """Click the metric's link in Compare's metrics list, a virtualised grid 300 px high."""
    from playwright.sync_api import expect

    first = page.locator(".ReactVirtualized__Grid").filter(has=page.get_by_role("link", name="best_test_acc"))
    grid = first.first.element_handle()
    link = page.get_by_role("link", name=metric, exact=True)
    for _ in range(40):
        if link.count():
            break
        grid.evaluate("g => { g.scrollTop += 120; }")
        page.wait_for_timeout(250)
    expect(link).to_have_count(1)
    link.click()
