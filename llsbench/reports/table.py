"""The paper-style table: per (dataset, model, method, budget) the mean ± std of the final test
accuracy over seeds, the number of seeds, the gap to BP on the same dataset, model and budget,
the rule's declared learning-signal complexity, the measured costs where runs logged them, and
the linear-probe accuracy of each block where `llsbench figure probes` measured it."""
from __future__ import annotations

import math

import pandas as pd

from llsbench.accelerate import Acceleration
from llsbench.errors import LLSBenchError
from llsbench.method_registry import METHODS

GROUP = ["dataset", "model", "method", "budget"]
# Metrics logged once per run by the profiler (and `extra_parameters` by the trainer): column
# name → heading. A column appears only when some run has the metric.
COST_METRICS = {
    "signal_macs": "signal MACs", "forward_macs": "forward MACs", "step_macs": "step MACs",
    "held_memory_bytes": "held memory", "cuda_peak_bytes": "CUDA peak memory", "extra_parameters": "extra params",
}
REFERENCE_RULE = "bp"
PROBE_PREFIX = "probe_acc_block"
PROBE_HEADING = "probe acc. by block (%)"


def cell_frame(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per cell run with plain column names (from `collect.finished_cells`)."""
    frame = pd.DataFrame({
        "run_id": runs["run_id"], "cell_key": runs["tags.cell_key"], "dataset": runs["tags.dataset"],
        "model": runs["tags.model_label"], "method": runs["tags.method_label"], "rule": runs["tags.method"],
        "budget": [_budget_label(b, o) + _accelerators(runs, i)
                   for i, (b, o) in enumerate(zip(runs["tags.budget"], runs["tags.budget_overrides"]))],
        "seed": runs["tags.seed"].astype(int), "test_acc": runs["metrics.final_test_acc"].astype(float),
    })
    for metric in [*COST_METRICS, *probe_metrics(runs.columns.str.removeprefix("metrics."))]:
        column = f"metrics.{metric}"
        if column in runs and runs[column].notna().any():
            frame[metric] = runs[column].astype(float)
    return frame


def probe_metrics(columns) -> list[str]:
    """The `probe_acc_block{i}` metrics (logged by `llsbench figure probes`) among `columns`, by block."""
    found = [c for c in columns if c.startswith(PROBE_PREFIX) and c[len(PROBE_PREFIX):].isdigit()]
    return sorted(found, key=lambda c: int(c[len(PROBE_PREFIX):]))


def summarise(cells: pd.DataFrame) -> pd.DataFrame:
    """The numeric table, rows in the order cells first appear (`cells` from `cell_frame`)."""
    if cells.empty:
        raise LLSBenchError("no finished cells to summarise")
    costs = [m for m in COST_METRICS if m in cells] + probe_metrics(cells.columns)
    grouped = cells.groupby(GROUP, sort=False)
    table = grouped.agg(rule=("rule", "first"), n_seeds=("test_acc", "count"), test_acc_mean=("test_acc", "mean"),
                        test_acc_std=("test_acc", "std"), **{m: (m, "mean") for m in costs}).reset_index()
    reference = table[table["rule"] == REFERENCE_RULE].drop_duplicates(["dataset", "model", "budget"])
    bp = reference.set_index(["dataset", "model", "budget"])["test_acc_mean"]
    table.insert(table.columns.get_loc("test_acc_std") + 1, "gap_to_bp", [
        row.test_acc_mean - bp[(row.dataset, row.model, row.budget)]
        if (row.dataset, row.model, row.budget) in bp.index else math.nan for row in table.itertuples()])
    complexity = {rule: getattr(_method(rule), "complexity", {}) for rule in table["rule"].unique()}
    for kind in ("time", "memory"):
        values = [complexity[rule].get(kind, "") for rule in table["rule"]]
        if any(values):
            table[f"signal_{kind}_complexity"] = values
    return table


def formatted(table: pd.DataFrame) -> pd.DataFrame:
    """Text cells for Markdown/LaTeX: `mean ± std`, signed gaps, SI units; the budget column
    only when the rows differ in budget."""
    out = pd.DataFrame({"dataset": table["dataset"], "model": table["model"], "method": table["method"]})
    if table["budget"].nunique() > 1:
        out["budget"] = table["budget"]
    out["seeds"] = table["n_seeds"].astype(int)
    out["test acc. (%)"] = [_mean_std(m, s) for m, s in zip(table["test_acc_mean"], table["test_acc_std"])]
    out["Δ vs BP (pp)"] = [_gap(g, rule) for g, rule in zip(table["gap_to_bp"], table["rule"])]
    for kind in ("time", "memory"):
        if f"signal_{kind}_complexity" in table:
            out[f"signal {kind}"] = table[f"signal_{kind}_complexity"]
    for metric, heading in COST_METRICS.items():
        if metric in table:
            out[heading] = [_cost(metric, v) for v in table[metric]]
    probes = probe_metrics(table.columns)
    if probes:
        out[PROBE_HEADING] = [_probe_text(row) for row in table[probes].itertuples(index=False)]
    return out


def _probe_text(accuracies) -> str:
    """`91.2 / 95.0 / 97.3` from block 0 on (mean over the seeds probed); `–` for a row never probed."""
    shown = [f"{a:.1f}" if not math.isnan(a) else "–" for a in accuracies]
    return "–" if all(s == "–" for s in shown) else " / ".join(shown)


def _method(rule: str):
    try:
        return METHODS.get(rule)
    except LLSBenchError:
        return None  # a rule uninstalled since the run: no complexity to show


def _budget_label(budget: str, overrides: str) -> str:
    return budget if overrides in ("", "none") else f"{budget} ({overrides})"


def _accelerators(runs: pd.DataFrame, row: int) -> str:
    """' [compile+bf16]' for a run with opt-in accelerators (kept apart from exact runs), else ''."""
    def param(name: str, default: str) -> str:
        column = f"params.{name}"
        value = runs[column].iloc[row] if column in runs else None
        return default if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)

    label = Acceleration(compile=param("compile", "False") == "True", precision=param("precision", "fp32"),
                         channels_last=param("channels_last", "False") == "True").label
    return "" if label == Acceleration().label else f" [{label}]"


def _gap(gap: float, rule: str) -> str:
    if math.isnan(gap):
        return "–"
    return "ref." if rule == REFERENCE_RULE and gap == 0.0 else f"{gap:+.2f}"


def _mean_std(mean: float, std: float) -> str:
    return f"{mean:.2f}" if math.isnan(std) else f"{mean:.2f} ± {std:.2f}"


def _cost(metric: str, value: float) -> str:
    if math.isnan(value):
        return "–"
    if metric.endswith("_bytes"):
        return f"{value / 2**20:.2f} MiB"
    if metric == "extra_parameters":
        return f"{int(value):,}"
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value:.0f}"
