"""A cell: one training run of a suite, as a pure, serialisable description.

A cell carries the resolved experiment (every RunConfig field except where it runs: device,
data directory, download, loader workers) and the budget it runs with. Its key is a stable
hash of the suite name and that configuration: the same cell gets the same key in any
process, on any machine, which is what makes suites resumable and idempotent — and what lets
cells be shipped to other workers later (`Cell.to_dict` / `Cell.from_dict`).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from llsbench.config import RunConfig

KEY_LENGTH = 16


@dataclass(frozen=True)
class Cell:
    suite: str
    block: str
    method_label: str
    model_label: str
    seed: int
    config: dict[str, Any]  # RunConfig fields without the context ones (schema.CONTEXT_FIELDS)
    budget: str  # the suite's own budget name (e.g. `paper`), `shortened` or `modified`
    budget_overrides: dict[str, Any] = field(default_factory=dict)  # what the command line changed

    @property
    def key(self) -> str:
        return cell_key(self.suite, self.config)

    @property
    def dataset(self) -> str:
        return self.config["dataset"]

    @property
    def model(self) -> str:
        return self.config["model"]

    @property
    def method(self) -> str:
        return self.config["method"]

    @property
    def label(self) -> str:
        return f"{self.method_label}/{self.model_label}/{self.dataset}/s{self.seed}"

    @property
    def budget_text(self) -> str:
        """`paper`, or e.g. `shortened (epochs=2, limit_train_batches=5)`."""
        if not self.budget_overrides:
            return self.budget
        return f"{self.budget} ({', '.join(f'{k}={v}' for k, v in sorted(self.budget_overrides.items()))})"

    def run_config(self, *, device: str = "auto", data_dir: str | None = None, download: bool = False,
                   num_workers: int = 0) -> RunConfig:
        return RunConfig(**self.config, device=device, data_dir=data_dir, download=download, num_workers=num_workers)

    def tags(self) -> dict[str, str]:
        """MLflow tags that identify the cell (and let a later invocation find it)."""
        return {"suite": self.suite, "role": "cell", "cell_key": self.key, "cell": self.label, "block": self.block,
                "method_label": self.method_label, "model_label": self.model_label, "seed": str(self.seed),
                "budget": self.budget,
                "budget_overrides": ", ".join(f"{k}={v}" for k, v in sorted(self.budget_overrides.items())) or "none"}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Cell":
        return cls(**data)


def cell_key(suite: str, config: dict[str, Any]) -> str:
    """Stable across processes and Python versions: sorted JSON of plain values, SHA-256."""
    text = json.dumps({"suite": suite, "config": config}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:KEY_LENGTH]
