"""`RunConfig`: everything that defines one training run, validated, and flattened for MLflow."""
from __future__ import annotations

import ast
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch

from llsbench.accelerate import Acceleration
from llsbench.errors import ConfigError
from llsbench.optim import OPTIMIZERS


@dataclass
class RunConfig:
    method: str = "lls"
    method_options: dict[str, Any] = field(default_factory=dict)
    model: str = "smallconv"
    model_options: dict[str, Any] = field(default_factory=dict)
    dataset: str = "digits"
    data_dir: str | None = None
    download: bool = False
    epochs: int = 10
    batch_size: int = 128
    test_batch_size: int | None = None
    optimizer: str = "adamw-sf"
    lr: float = 5e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    lr_milestones: list[int] = field(default_factory=list)  # epochs after which every lr is multiplied by lr_gamma
    lr_gamma: float = 0.1
    seed: int = 0
    device: str = "auto"
    limit_train_batches: int | None = None  # cap on training batches per epoch (a shortened budget)
    limit_test_batches: int | None = None
    train_subset: int | None = None
    bn_batches: int = 50  # training batches used to re-estimate BatchNorm statistics before each evaluation
    num_workers: int = 0
    compile: bool = False  # torch.compile the model's block bodies and head (opt-in: not bit-exact)
    precision: str = "fp32"  # fp32 or bf16 (autocast around each step; opt-in)
    channels_last: bool = False  # NHWC layout for the model and its inputs (opt-in: other kernels)
    sync_every: int | None = None  # read the device-side loss sums (and non-finite check) every N steps; None: once per epoch

    def validate(self) -> "RunConfig":
        for name in ("epochs", "batch_size"):
            _positive(name, getattr(self, name))
        for name in ("test_batch_size", "limit_train_batches", "limit_test_batches", "train_subset", "sync_every"):
            if getattr(self, name) is not None:
                _positive(name, getattr(self, name))
        if self.bn_batches < 0:
            raise ConfigError(f"bn_batches must be >= 0, got {self.bn_batches}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {self.optimizer!r}; valid optimizers: {', '.join(OPTIMIZERS)}")
        if not self.lr > 0:
            raise ConfigError(f"lr must be positive, got {self.lr}")
        _milestones(self.lr_milestones)
        if not self.lr_gamma > 0:
            raise ConfigError(f"lr_gamma must be positive, got {self.lr_gamma}")
        resolve_device(self.device)
        self.acceleration()
        return self

    def acceleration(self) -> Acceleration:
        return Acceleration(compile=self.compile, precision=self.precision, channels_last=self.channels_last)

    def to_params(self) -> dict[str, str]:
        """Flat string params for MLflow: nested option maps become `method.basis=...`."""
        flat: dict[str, str] = {}
        for key, value in asdict(self).items():
            if isinstance(value, dict):
                flat.update({f"{key.split('_')[0]}.{k}": str(v) for k, v in value.items()})
            else:
                flat[key] = str(value)
        return flat

    @classmethod
    def from_params(cls, params: dict[str, str]) -> "RunConfig":
        """The inverse of `to_params`, from a run's MLflow params: `method.*` / `model.*` become the
        option maps, other keys with a dot (`data.*`, logged beside) are descriptions and ignored."""
        data: dict[str, Any] = {"method_options": {}, "model_options": {}}
        known = {f.name for f in fields(cls)}
        for key, text in params.items():
            prefix, dot, name = key.partition(".")
            if dot and prefix in ("method", "model"):
                data[f"{prefix}_options"][name] = _literal(text)
            elif not dot and key in known:
                data[key] = _literal(text)
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown run setting {unknown[0]!r}; valid settings: {', '.join(sorted(known))}")
        return cls(**data)


def _literal(text: str) -> Any:
    """A param as logged by `str(value)`: Python literals (numbers, booleans, None, lists) back to
    values, anything else (`sin-ref`, `leaky_relu`) stays text."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _positive(name: str, value: int) -> None:
    if not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")


def _milestones(value: list[int]) -> None:
    ok = isinstance(value, (list, tuple)) and all(isinstance(m, int) and not isinstance(m, bool) and m > 0 for m in value)
    if not ok or list(value) != sorted(set(value)):
        raise ConfigError(f"lr_milestones must be a list of increasing positive epochs (e.g. [60, 90]), got {value!r}")


def resolve_device(name: str) -> torch.device:
    """`auto` → CUDA when available, else CPU; an unavailable or malformed device is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device {name!r} is not valid; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available here; use --device cpu or auto")
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"device {name!r} is not supported; use auto, cpu, cuda or cuda:N")
    return device
