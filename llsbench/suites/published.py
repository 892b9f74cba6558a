"""Published numbers a suite's cells are compared with (the `published:` list of a suite file).

Each entry names one row of the suite's table — `dataset`, `model` and `method` as the table
labels them — and quotes the number its authors reported:

    published:
      - dataset: mnist-raw
        model: drtp-fc
        method: drtp
        metric: test_error        # or test_acc; in percent
        value: 4.04
        std: 0.12                 # optional: the published spread
        epochs: 100               # the published budget
        source: "Frenkel et al. 2021, ..."
        setup: "784-1000-1000-10 tanh, NAG lr 1e-4, batch 100, 10 trials"
        kind: published           # or authors-code: the authors' own code, run here at llsbench's budget

`llsbench report` puts llsbench's mean ± std beside each quoted number.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

METRICS = ("test_error", "test_acc")
KINDS = ("published", "authors-code")
_KEYS = ("dataset", "model", "method", "metric", "value", "std", "epochs", "source", "setup", "note", "kind")
_REQUIRED = ("dataset", "model", "method", "metric", "value", "epochs", "source", "setup")


@dataclass(frozen=True)
class Published:
    dataset: str
    model: str
    method: str
    metric: str
    value: float
    epochs: int
    source: str
    setup: str
    std: float | None = None
    note: str = ""
    kind: str = "published"

    def accuracy(self) -> float:
        """The quoted number as a test accuracy in percent."""
        return 100.0 - self.value if self.metric == "test_error" else self.value


def parse_published(reader, value: Any, cells: set[tuple[str, str, str]]) -> tuple[Published, ...]:
    """Validate the `published` list; every entry must name a (dataset, model, method) the suite has."""
    if not isinstance(value, list):
        raise reader.fail("published", f"must be a list of quoted numbers; got {type(value).__name__}")
    entries = []
    for i, item in enumerate(value):
        key = f"published[{i}]"
        m = reader.mapping(item, key, _KEYS, _REQUIRED)
        if m["metric"] not in METRICS:
            raise reader.fail(f"{key}.metric", f"{m['metric']!r} is not allowed; valid values: {', '.join(METRICS)}")
        if m.get("kind", "published") not in KINDS:
            raise reader.fail(f"{key}.kind", f"{m['kind']!r} is not allowed; valid values: {', '.join(KINDS)}")
        for number in ("value", "std"):
            if number in m and not isinstance(m[number], (int, float)):
                raise reader.fail(f"{key}.{number}", f"must be a number; got {m[number]!r}")
        if not isinstance(m["epochs"], int) or m["epochs"] < 1:
            raise reader.fail(f"{key}.epochs", f"must be a positive integer; got {m['epochs']!r}")
        cell = (m["dataset"], m["model"], m["method"])
        if cell not in cells:
            raise reader.fail(key, f"{cell} is no (dataset, model, method) of the suite")
        entries.append(Published(dataset=m["dataset"], model=m["model"], method=m["method"], metric=m["metric"],
                                 value=float(m["value"]), epochs=m["epochs"],
                                 source=reader.text(m["source"], f"{key}.source"),
                                 setup=reader.text(m["setup"], f"{key}.setup"),
                                 std=float(m["std"]) if "std" in m else None, note=str(m.get("note", "")),
                                 kind=m.get("kind", "published")))
    return tuple(entries)
