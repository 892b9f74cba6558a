"""The tuned-vs-fixed report of a tuning study, from its fragment (`tuned/<study>.yaml`)."""
from __future__ import annotations

import shlex
from pathlib import Path

from llsbench.tuning.output import read_fragment, tuned_markdown, tuned_table

TUNED_DIR = "tuned"


def fragment_path(study_or_path: str) -> Path:
    """`tuned/STUDY.yaml` for a study name, or the path itself when it names a file."""
    path = Path(study_or_path)
    return path if path.suffix in (".yaml", ".yml") or path.is_file() else Path(TUNED_DIR) / f"{study_or_path}.yaml"


def write_tuned_report(study_or_path: str, output_dir: str | Path) -> list[Path]:
    data = read_fragment(fragment_path(study_or_path))
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    md, csv = out / f"{data['study']}-tuned.md", out / f"{data['study']}-tuned.csv"
    tuned_table(data).to_csv(csv, index=False)
    md.write_text(tuned_markdown(data, command=shlex.join(["llsbench", "report", "--tuned", study_or_path])))
    return [md, csv]
