"""Where a training process gets its host memory from: kept for reuse, or glibc's default.

glibc serves every allocation above its mmap threshold (at most 32 MiB) with a fresh `mmap` and
gives it back with `munmap` when freed. A CPU training step allocates tensors that large dozens
of times (SmallConvL's first map at batch 128 is 48 MiB), and the kernel zero-fills each of
their pages on first touch: ~110 000 page faults in every SmallConvL BP step on this project's
CPU, a fifth of the step's CPU time. Under `retain` (the default) glibc never maps memory and
never trims its heap, so a freed block is reused by the next step as it is, without faults.

The numbers are the same (only where memory comes from changes); the process keeps its peak host
memory until it exits, as CUDA's caching allocator keeps GPU memory. `system` leaves glibc's
policy alone. Other C libraries (macOS, musl) are left alone too, and report `system`.
"""
from __future__ import annotations

import ctypes
import os

import click

ENV = "LLSBENCH_HOST_MEMORY"
POLICIES = ("retain", "system")

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4            # mallopt parameters, <malloc.h>
_GLIBC_DEFAULT_MMAP_MAX, _GLIBC_DEFAULT_TRIM_THRESHOLD = 65536, 128 * 1024
_applied: str | None = None


def _glibc() -> ctypes.CDLL | None:
    libc = ctypes.CDLL(None)
    return libc if hasattr(libc, "gnu_get_libc_version") and hasattr(libc, "mallopt") else None


def apply_host_memory_policy(policy: str | None = None) -> str:
    """Apply `policy` (default: $LLSBENCH_HOST_MEMORY, else `retain`) to this process and return
    the policy in force. `system` after `retain` puts glibc's defaults back (without its dynamic
    mmap threshold); blocks already on the heap stay there."""
    global _applied
    source = f"{ENV}=" if policy is None else "host-memory policy "
    policy = os.environ.get(ENV, "retain") if policy is None else policy
    if policy not in POLICIES:
        raise click.UsageError(f"{source}{policy!r} is not a host-memory policy; valid: {', '.join(POLICIES)}")
    libc = _glibc()
    if libc is None:
        return "system"
    if policy == "retain":
        # a trim threshold of (size_t)-1 means never trim
        ok = libc.mallopt(_M_MMAP_MAX, 0) and libc.mallopt(_M_TRIM_THRESHOLD, -1)
    else:
        ok = _applied != "retain" or (libc.mallopt(_M_MMAP_MAX, _GLIBC_DEFAULT_MMAP_MAX)
                                      and libc.mallopt(_M_TRIM_THRESHOLD, _GLIBC_DEFAULT_TRIM_THRESHOLD))
    _applied = policy if ok else "system"
    return _applied


def host_memory_policy() -> str:
    """The policy this process runs under (`system` until one was applied)."""
    return _applied or "system"
