"""`write_report`: a suite's finished runs → `NAME.md`, `NAME.csv`, `NAME.tex`, PNG figures and
the figures drawn of one seed per row (`NAME_figures/`), each stating the budget, the commands,
the code version and the environment they came from."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from llsbench.errors import LLSBenchError
from llsbench.reports import anchors
from llsbench.reports.collect import finished_cells, metric_curves, suite_invocations
from llsbench.reports.run_figures import RowFigures, fetch_row_figures, markdown_section
from llsbench.reports.table import cell_frame, formatted, summarise
from llsbench.suites.schema import Suite
from llsbench.tracking import DEFAULT_EXPERIMENT

EXPLANATION = (
    "Test accuracy: at the final epoch, mean ± sample standard deviation over seeds. Δ vs BP: difference of "
    "the mean to BP's on the same dataset, model and budget, in percentage points. Signal time/memory: the "
    "rule's declared complexity of producing its learning signal. Measured costs appear only where runs "
    "logged them: MACs per sample; memory per training step (held = saved tensors + parameters + gradients + "
    "optimiser state; CUDA peak = allocator peak); extra params = trainable parameters the rule adds. Probe acc.: "
    "test accuracy of a linear probe on each block's pooled output, model frozen (`llsbench figure probes`)."
)


@dataclass
class Report:
    table: pd.DataFrame  # numeric, as in the CSV
    files: list[Path] = field(default_factory=list)


def write_report(suite_name: str, output_dir: str | Path, *, suite: Suite | None = None,
                 tracking_uri: str | None = None, experiment: str = DEFAULT_EXPERIMENT, budget: str | None = None,
                 command: str = "", with_plots: bool = True) -> Report:
    runs = finished_cells(suite_name, tracking_uri=tracking_uri, experiment=experiment)
    cells = cell_frame(runs)
    if budget is not None:
        budgets = sorted(cells["budget"].unique())
        cells = cells[cells["budget"] == budget]
        if cells.empty:
            raise LLSBenchError(f"suite {suite_name!r} has no finished runs with budget {budget!r}; "
                                f"its budgets: {'; '.join(budgets)}")
        runs = runs[runs["run_id"].isin(cells["run_id"])]
    table = summarise(cells)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = Report(table)
    csv = out / f"{suite_name}.csv"
    table.to_csv(csv, index=False)
    figures = _figures(suite_name, cells, table, out, tracking_uri) if with_plots else []
    rows = fetch_row_figures(cells, out / f"{suite_name}_figures", tracking_uri=tracking_uri) if with_plots else []
    text = formatted(table)
    tex = out / f"{suite_name}.tex"
    tex.write_text(_latex(text, suite_name, table))
    md = out / f"{suite_name}.md"
    quoted = anchors.comparison(suite.published, table, anchors.budgets_per_row(runs)) \
        if suite is not None and suite.published else None
    md.write_text(_markdown(suite_name, suite, runs, text, table, figures, command, experiment, tracking_uri,
                            quoted) + _row_figures_markdown(rows, out))
    report.files = [md, csv, tex, *figures, *(f for r in rows for f in r.files)]
    return report


def _row_figures_markdown(rows: list[RowFigures], out: Path) -> str:
    lines = markdown_section(rows, out)
    return "\n" + "\n".join(lines) + "\n" if lines else ""


def _figures(name: str, cells: pd.DataFrame, table: pd.DataFrame, out: Path, tracking_uri: str | None) -> list[Path]:
    from llsbench.reports import plots  # matplotlib only when figures are wanted

    curves = metric_curves(list(cells["run_id"]), "test_acc", tracking_uri=tracking_uri)
    files = [plots.accuracy_curves(cells, curves, out / f"{name}_curves.png")]
    for metric, (suffix, _) in plots.COST_AXES.items():
        if metric in table and (table[metric] > 0).any():
            files.append(plots.accuracy_vs_cost(table, metric, out / f"{name}_{suffix}.png"))
    return files


def _markdown(name: str, suite: Suite | None, runs: pd.DataFrame, text: pd.DataFrame, table: pd.DataFrame,
              figures: list[Path], command: str, experiment: str, tracking_uri: str | None,
              quoted: pd.DataFrame | None = None) -> str:
    invocations = suite_invocations(runs, tracking_uri=tracking_uri)
    lines = [f"# Suite `{name}`", ""]
    if suite is not None:
        lines += [suite.description, ""]
    lines += [f"- **Budget**: {_budget_statement(table, suite)}",
              f"- **Seeds**: {_seeds_statement(table, suite)}",
              f"- **Runs**: {len(runs)} finished cells in MLflow experiment `{experiment}`",
              "- **Produced by**: " + ("; ".join(f"`{c}`" for c in dict.fromkeys(
                  i.get("command", "") for i in invocations) if c) or "(command not recorded)"),
              f"- **Report**: `{command or 'llsbench report ' + name}`",
              f"- **Code**: git commit {_values(runs, 'tags.git_commit')}, "
              f"llsbench {_values(runs, 'tags.version.llsbench')}",
              f"- **Environment**: {_environment(runs)}", "",
              text.to_markdown(index=False, disable_numparse=True), "", EXPLANATION, ""]
    if quoted is not None:
        lines += anchors.markdown(quoted)
    if figures:
        lines += ["## Figures", ""] + [f"![{f.stem}]({f.name})" for f in figures] + [""]
    if suite is not None and suite.notes:
        lines += ["## Notes from the suite file", ""] + [f"- **{k}**: {v}" for k, v in suite.notes.items()] + [""]
    return "\n".join(lines) + "\n"


def _latex(text: pd.DataFrame, name: str, table: pd.DataFrame) -> str:
    budgets = "; ".join(dict.fromkeys(table["budget"]))
    caption = (f"Suite {name}: final test accuracy (\\%), mean $\\pm$ std over seeds; gap to BP in percentage "
               f"points. Budget: {_escape_tex(budgets)}.")
    body = text.to_latex(index=False, escape=True, caption=caption, label=f"tab:{name}")
    return body.replace("±", "$\\pm$").replace("Δ", "$\\Delta$").replace("–", "--")


def _budget_statement(table: pd.DataFrame, suite: Suite | None) -> str:
    parts = []
    for budget in dict.fromkeys(table["budget"]):
        if suite is not None and budget == suite.budget:
            parts.append(f"{budget} (the suite file's own budget)")
        elif budget.startswith(("shortened", "modified")):
            parts.append(f"{budget}: changed on the command line, NOT the suite's own budget")
        else:
            parts.append(budget)
    return "; ".join(parts)


def _seeds_statement(table: pd.DataFrame, suite: Suite | None) -> str:
    counts = sorted(set(table["n_seeds"].astype(int)))
    found = ", ".join(map(str, counts))
    declared = f"the suite declares {len(suite.seeds)}; " if suite is not None else ""
    return f"{declared}rows have {found} finished seed(s) (column `seeds`)"


def _environment(runs: pd.DataFrame) -> str:
    return (f"device {_values(runs, 'tags.device')} ({_values(runs, 'tags.device_name')}); "
            f"Python {_values(runs, 'tags.python')}; torch {_values(runs, 'tags.version.torch')}; "
            f"{_values(runs, 'tags.platform')}")


def _values(runs: pd.DataFrame, column: str) -> str:
    if column not in runs:
        return "unknown"
    return ", ".join(str(v) for v in dict.fromkeys(runs[column].dropna())) or "unknown"


def _escape_tex(text: str) -> str:
    for char, escaped in (("\\", "\\textbackslash{}"), ("_", "\\_"), ("%", "\\%"), ("&", "\\&"), ("#", "\\#")):
        text = text.replace(char, escaped)
    return text
