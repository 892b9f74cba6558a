"""Architectures as `BlockNet`s, built by name through `MODELS` / `create_model`."""
from __future__ import annotations

import inspect

from llsbench.errors import ConfigError
from llsbench.models import mobilenet, smallconv, vgg  # noqa: F401  (register the built-ins)
from llsbench.models import pepita_fc  # noqa: F401  (the PEPITA paper's FC net)
from llsbench.models import drtp_nets  # noqa: F401  (the DRTP authors' reference nets)
from llsbench.models.blocks import ACTIVATIONS, Block
from llsbench.models.net import BlockNet, block_output_shapes
from llsbench.models.registry import MODELS

__all__ = ["MODELS", "Block", "BlockNet", "block_output_shapes", "create_model", "model_options"]


def model_options(name: str) -> dict[str, object]:
    """The keyword options a model factory takes, with their defaults."""
    sig = inspect.signature(MODELS.get(name))
    return {p.name: p.default for p in sig.parameters.values() if p.kind is p.KEYWORD_ONLY}


def create_model(name: str, *, in_channels: int, num_classes: int, image_size: int, **options) -> BlockNet:
    """Build a registered model; unknown or badly typed options are a `ConfigError`."""
    valid = model_options(name)
    for key, value in options.items():
        if key not in valid:
            raise ConfigError(f"model {name!r} has no option {key!r}; valid options: {', '.join(valid)}")
        if key == "activation" and value not in ACTIVATIONS:
            raise ConfigError(f"activation {value!r} is not one of: {', '.join(ACTIVATIONS)}")
        if key == "dropout" and not 0.0 <= float(value) < 1.0:
            raise ConfigError(f"dropout {value!r} must be in [0, 1)")
    return MODELS.get(name)(in_channels, num_classes, image_size, **options)
