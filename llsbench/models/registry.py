"""The model registry: name → factory(in_channels, num_classes, image_size, **options) → BlockNet."""
from llsbench.models.net import BlockNet
from llsbench.registry import Registry

MODELS: Registry = Registry("model")
