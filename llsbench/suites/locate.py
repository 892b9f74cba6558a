"""Finding suite files: the ones shipped in the `llsbench_suites` package by name, or a path."""
from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml

from llsbench.errors import LLSBenchError
from llsbench.suites.schema import Suite, SuiteError, parse_suite

SUITE_PACKAGE = "llsbench_suites"


class SuiteNotFoundError(LLSBenchError):
    """Neither a shipped suite name nor an existing file."""


def shipped_suites() -> dict[str, Path]:
    """Name → file of every suite that ships with llsbench."""
    folder = resources.files(SUITE_PACKAGE)
    return {Path(f.name).stem: Path(str(f)) for f in sorted(folder.iterdir(), key=lambda f: f.name)
            if f.name.endswith((".yaml", ".yml"))}


def suite_path(name_or_path: str | Path) -> Path:
    """A shipped suite's file, or `name_or_path` itself when it is an existing file."""
    shipped = shipped_suites()
    if str(name_or_path) in shipped:
        return shipped[str(name_or_path)]
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    raise SuiteNotFoundError(f"no suite {str(name_or_path)!r}: not a shipped suite ({', '.join(shipped)}) "
                             f"and no such file")


def load_suite(name_or_path: str | Path) -> Suite:
    """Read and validate a suite; every mistake is a `SuiteError` naming the file and key."""
    path = suite_path(name_or_path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise SuiteError(f"{path}: not a UTF-8 text file (byte {exc.object[exc.start]:#04x} at offset {exc.start}); "
                         f"a suite is a YAML file in UTF-8") from None
    except yaml.YAMLError as exc:
        raise SuiteError(f"{path}: not valid YAML: {exc}") from None
    return parse_suite(data, path)
