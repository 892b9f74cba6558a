import importlib.util
import os
import shutil
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def _data_dir() -> Path:
    """Real MNIST in torchvision layout: LLSBENCH_DATA_DIR (relative to the repo root if relative)."""
    value = os.environ.get("LLSBENCH_DATA_DIR", "../shared/data")
    path = Path(value)
    return path if path.is_absolute() else (REPO / path).resolve()


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    path = _data_dir()
    if not (path / "MNIST" / "raw" / "train-images-idx3-ubyte").exists():
        pytest.fail(f"real MNIST not found under {path}; set LLSBENCH_DATA_DIR to the shared data folder")
    return path


@pytest.fixture(scope="session")
def tracking_uri(tmp_path_factory) -> str:
    """One SQLite MLflow store per test session (creating one takes seconds)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: on a shared 2-core machine extra intra-op threads only add barrier waits."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _chromium() -> str | None:
    return os.environ.get("LLSBENCH_CHROMIUM") or shutil.which("chromium")


def _browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    if importlib.util.find_spec("playwright") is None:
        return "playwright is not installed (pip install -e \".[test]\")"
    if _chromium() is None:
        return "no chromium on PATH (Debian: apt-get install chromium; or set LLSBENCH_CHROMIUM)"
    return None


def _unavailable() -> dict[str, str]:
    """Marker -> why its tests cannot run on this machine."""
    missing = {}
    if not torch.cuda.is_available():
        missing["cuda"] = "no GPU here (run `nox -s cuda` on one)"
    browser = _browser_missing()
    if browser:
        missing["browser"] = browser
    return missing


@pytest.fixture(scope="session")
def chromium() -> str:
    return _chromium()


def pytest_collection_modifyitems(config, items):
    """Tests that need what this machine lacks (a GPU, a browser) are deselected visibly, never
    silently skipped, and the summary says why and how to run them."""
    notes = []
    for marker, reason in _unavailable().items():
        lacking = [item for item in items if item.get_closest_marker(marker)]
        if lacking:
            items[:] = [item for item in items if not item.get_closest_marker(marker)]
            config.hook.pytest_deselected(items=lacking)
            notes.append(f"{len(lacking)} {marker} tests deselected: {reason}")
    config._llsbench_deselected = notes


def pytest_terminal_summary(terminalreporter, config):
    for note in getattr(config, "_llsbench_deselected", []):
        terminalreporter.write_line(note)
