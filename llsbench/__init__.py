"""llsbench: train, measure and compare learning rules for deep networks on equal terms."""

__version__ = "0.1.0"

__all__ = ["__version__", "load_run"]


def __getattr__(name: str):
    """`llsbench.load_run` without importing MLflow and torch on every `import llsbench`."""
    if name == "load_run":
        from llsbench.artifacts import load_run

        return load_run
    raise AttributeError(f"module 'llsbench' has no attribute {name!r}")
