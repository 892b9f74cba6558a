"""Where datasets live on disk."""
from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "LLSBENCH_DATA_DIR"


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path:
    """The data root: explicit argument > $LLSBENCH_DATA_DIR > per-user cache.

    The cache is `$XDG_CACHE_HOME/llsbench/data` (or `~/.cache/llsbench/data`). The result is
    absolute so that error messages name the exact place that was looked at; it need not exist.
    """
    if data_dir is None or str(data_dir) == "":
        data_dir = os.environ.get(DATA_DIR_ENV) or None
    if data_dir is None:
        cache = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
        data_dir = os.path.join(cache, "llsbench", "data")
    return Path(os.path.abspath(os.path.expanduser(os.fspath(data_dir))))
