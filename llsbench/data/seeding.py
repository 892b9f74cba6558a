"""Per-epoch random generators: the randomness of epoch e is a pure function of (seed, e)."""
from __future__ import annotations

import numpy as np
import torch

from llsbench.errors import ConfigError


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A fresh CPU generator for one epoch of one run.

    `SeedSequence` mixes (seed, epoch) so that neighbouring seeds and epochs give unrelated
    streams (seed 1 epoch 0 must not replay seed 0 epoch 1). The generator lives on the CPU
    whatever the data device, so a seed gives the same batches on CPU and on CUDA.
    """
    if seed < 0 or epoch < 0:
        raise ConfigError(f"seed and epoch must be >= 0, got seed={seed}, epoch={epoch}")
    state = np.random.SeedSequence((seed, epoch)).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


def fixed_permutation(n: int, salt: int) -> torch.Tensor:
    """A permutation of range(n) that never depends on the run seed (used for subsets)."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(salt))
