"""llsbench: train, measure and compare learning rules for deep networks on equal terms."""

__version__ = "0.1.0"
