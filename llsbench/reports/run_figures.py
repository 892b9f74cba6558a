"""The figures drawn for a suite's runs (`llsbench figure`, kept as each run's `figures/*.png`
artifacts), one seed's per table row, fetched next to the report and embedded in its Markdown."""
from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from llsbench import tracking
from llsbench.artifacts import FIGURE_ARTIFACTS, FIGURE_NAMES
ROW = ["dataset", "model", "method", "budget"]


@dataclass
class RowFigures:
    row: tuple[str, str, str, str]  # dataset, model, method, budget
    run_id: str
    seed: int
    files: list[Path] = field(default_factory=list)


def fetch_row_figures(cells: pd.DataFrame, folder: Path, *, tracking_uri: str | None = None) -> list[RowFigures]:
    """Per row, the seed whose run has the most figures (the lowest seed on ties), its PNGs
    copied to `folder`; rows without any figure are left out, and `folder` is only made if needed."""
    client = tracking.client(tracking_uri)
    found = []
    for row, group in cells.groupby(ROW, sort=False):
        runs = [(_figure_names(client, r.run_id), r.seed, r.run_id) for r in group.sort_values("seed").itertuples()]
        names, seed, run_id = max(runs, key=lambda item: (len(item[0]), -item[1]))
        if names:
            found.append(RowFigures(tuple(row), run_id, int(seed), _download(client, run_id, names, folder, row, seed)))
    return found


def _figure_names(client, run_id: str) -> list[str]:
    names = {Path(a.path).stem for a in client.list_artifacts(run_id, FIGURE_ARTIFACTS) if a.path.endswith(".png")}
    return [n for n in FIGURE_NAMES if n in names] + sorted(names - set(FIGURE_NAMES))


def _download(client, run_id: str, names: list[str], folder: Path, row: tuple, seed: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    dataset, model, method, _ = row
    stem = "".join(ch if ch.isalnum() or ch in "-." else "_" for ch in f"{method}_{model}_{dataset}_s{seed}_{run_id[:8]}")
    files = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            local = client.download_artifacts(run_id, f"{FIGURE_ARTIFACTS}/{name}.png", tmp)
            target = folder / f"{stem}_{name}.png"
            shutil.copyfile(local, target)
            files.append(target)
    return files


def markdown_section(rows: list[RowFigures], relative_to: Path) -> list[str]:
    """`## Figures per row`: one heading per row (which seed and run) and its images."""
    if not rows:
        return []
    lines = ["## Figures per row (one seed each, from `llsbench figure`)", ""]
    for r in rows:
        dataset, model, method, budget = r.row
        lines += [f"### {method} · {model} · {dataset}" + ("" if budget == "paper" else f" · {budget}"), "",
                  f"Seed {r.seed}, MLflow run `{r.run_id}`.", ""]
        lines += [f"![{f.stem.rsplit('_', 1)[-1]}]({f.relative_to(relative_to).as_posix()})" for f in r.files] + [""]
    return lines
