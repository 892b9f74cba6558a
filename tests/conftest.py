import os
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


def pytest_collection_modifyitems(config, items):
    """CUDA tests cannot run without a GPU: deselect them visibly (never a silent skip) and
    say how to run them (`nox -s cuda` on a machine with CUDA)."""
    if torch.cuda.is_available():
        return
    cuda = [item for item in items if item.get_closest_marker("cuda")]
    if cuda:
        items[:] = [item for item in items if not item.get_closest_marker("cuda")]
        config.hook.pytest_deselected(items=cuda)
        config._llsbench_cuda_deselected = len(cuda)


def pytest_terminal_summary(terminalreporter, config):
    count = getattr(config, "_llsbench_cuda_deselected", 0)
    if count:
        terminalreporter.write_line(f"{count} CUDA tests deselected: no GPU here (run `nox -s cuda` on one)")
