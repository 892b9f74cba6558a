"""Reading a user's YAML file: an unreadable or malformed file is one line naming it."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from llsbench.errors import LLSBenchError


def read_yaml(path: Path, what: str, error: type[LLSBenchError]) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except OSError as exc:
        raise error(f"{what} {path}: cannot be read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise error(f"{what} {path}: not valid YAML: {str(exc).splitlines()[0]}") from None
