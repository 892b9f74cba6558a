"""llsbench's measured numbers beside the numbers the authors published (a suite's `published:`).

For each quoted number: llsbench's mean ± std over seeds in the quoted metric (test error or
accuracy, %), the budget both ran at, the difference, and whether llsbench lies within 2 std
(√(std_llsbench² + std_published²), the spread of the difference of two means) of the quote;
where it does not, the line says so and why: a shorter budget than the authors', or the
entry's own note.
"""
from __future__ import annotations

import math

import pandas as pd

from llsbench.suites.published import Published

HEADERS = ["dataset", "model", "method", "metric", "llsbench (mean ± std)", "seeds", "llsbench budget",
           "quoted", "quoted epochs", "Δ (pp)", "within 2 std?", "source", "setup"]
ORIGIN = {"published": "published", "authors-code": "authors' code run here"}


Budget = tuple[int, "int | None"]  # epochs, and the cap on training batches per epoch if any


def comparison(published: tuple[Published, ...], table: pd.DataFrame, budgets: dict[tuple[str, str, str], Budget]
               ) -> pd.DataFrame:
    """One row per quoted number; `table` from `summarise`, `budgets` what each row ran."""
    rows = []
    for p in published:
        match = table[(table["dataset"] == p.dataset) & (table["model"] == p.model) & (table["method"] == p.method)]
        if match.empty:
            rows.append(_row(p, None, None, 0, None, "not run"))
            continue
        row = match.iloc[0]
        mean = row.test_acc_mean if p.metric == "test_acc" else 100.0 - row.test_acc_mean
        std = 0.0 if math.isnan(row.test_acc_std) else float(row.test_acc_std)
        ran = budgets.get((p.dataset, p.model, p.method))
        rows.append(_row(p, mean, std, int(row.n_seeds), ran, verdict(p, mean, std, ran)))
    return pd.DataFrame(rows, columns=HEADERS)


def verdict(p: Published, mean: float, std: float, ran: Budget | None) -> str:
    spread = math.sqrt(std ** 2 + (p.std or 0.0) ** 2)
    gap = mean - p.value
    if abs(gap) <= 2 * spread:
        return "yes"
    why = []
    if ran is not None and (ran[0] < p.epochs or ran[1] is not None):
        why.append(f"shorter budget: {_budget(ran)} vs {p.epochs} epochs")
    if p.note:
        why.append(p.note)
    return f"NO: off by {abs(gap):.2f} pp > 2 std ({2 * spread:.2f})" + (f"; {'; '.join(why)}" if why else "")


def _budget(ran: Budget) -> str:
    epochs, cap = ran
    return f"{epochs} epoch(s)" + (f" of {cap} batches" if cap is not None else "")


def _row(p: Published, mean, std, seeds, ran, judged) -> list:
    quoted = f"{p.value:.2f}" + (f" ± {p.std:.2f}" if p.std is not None else "")
    measured = "—" if mean is None else f"{mean:.2f} ± {std:.2f}"
    delta = "—" if mean is None else f"{mean - p.value:+.2f}"
    metric = "test error %" if p.metric == "test_error" else "test accuracy %"
    return [p.dataset, p.model, p.method, metric, measured, seeds, "—" if ran is None else _budget(ran),
            quoted, p.epochs, delta, judged, f"[{ORIGIN[p.kind]}] " + " ".join(p.source.split()), p.setup]


def budgets_per_row(runs: pd.DataFrame) -> dict[tuple[str, str, str], Budget]:
    """(epochs, batch cap) each (dataset, model, method) row trained with, from the runs' logged
    config (`params.epochs`, `params.limit_train_batches`); the smallest if seeds differ."""
    out: dict[tuple[str, str, str], Budget] = {}
    for _, r in runs.iterrows():
        key = (r["tags.dataset"], r["tags.model_label"], r["tags.method_label"])
        cap = str(r.get("params.limit_train_batches", "None"))
        ran = (int(r["params.epochs"]), None if cap in ("None", "nan", "") else int(cap))
        out[key] = min(out.get(key, ran), ran, key=lambda b: (b[0], b[1] or 0))
    return out


def markdown(frame: pd.DataFrame) -> list[str]:
    """The section `write_report` adds to NAME.md."""
    lines = ["## Beside the published numbers", "",
             "Each quoted number (from the suite file's `published:`: a published one, or the authors' own code "
             "run here at llsbench's budget) beside llsbench's mean ± sample std over seeds in the same metric. "
             "Δ = llsbench − quoted. `within 2 std?` compares |Δ| with 2·√(std_llsbench² + std_quoted²); where "
             "llsbench is off, the reason is given.", "",
             frame.to_markdown(index=False, disable_numparse=True), ""]
    off = frame[frame["within 2 std?"].str.startswith("NO")]
    if not off.empty:
        lines += [f"{len(off)} of {len(frame)} quoted numbers are more than 2 std away from llsbench's; "
                  "see the reasons in the table.", ""]
    return lines
