"""LLS — Local Learning rule inspired by neural activity Synchronization (arXiv 2405.15868).

Every block learns only from its own output h(l): pool and flatten to a(l), L2-normalise,
project on a fixed basis B(l) ∈ R^{C×T(l)} of one periodic waveform per class, and take the
cross-entropy of z = a Bᵀ / τ. No gradient reaches an earlier block, and a block's graph is
freed as soon as it has updated, so peak activation memory is that of the largest block.
LLS-M scales the logits by a trainable M ∈ R^C (Eq. 5); LLS-MxM mixes them with a trainable
M ∈ R^{C×C} (Eq. 6). `BlockLocalMethod` is the step every such block-local rule shares
(Local Losses and PredSim in `local_losses.py` build on it too).
"""
from __future__ import annotations

import abc

import torch
import torch.nn.functional as F
from torch import nn

from llsbench.method import Method, SignalCost, StepResult
from llsbench.models.lean import use_lean_activations
from llsbench.options import Option
from llsbench.tuning.spaces import DEFAULT_SPACE, LogUniform

BASES = ("sin-ref", "square", "random", "cos", "sin-f64", "square-pm1", "random-cxt")
RANDOM_BASES = ("random", "random-cxt")
FREQ_MIN, FREQ_MAX = 50.0, 512.0  # radians per index, as in the reference code


def make_basis(kind: str, num_classes: int, width: int, drawn_width: int = 2048) -> torch.Tensor:
    """The fixed basis B ∈ R^{C×T}: row c is g(f_c · t), f_c = linspace(50, 512, C).

    Reference-exact (`compute_LLS` / `LLS_Random` of mapolinario94/LLS-DNN, the paper's numbers):
    `sin-ref`: sin(f t), t = 0…T−1, f·t formed in float32 as the reference does (the product
    reaches 10⁶ rad, so its float32 rounding shifts the phase: this *is* the reference's basis).
    `square`: torch.sign of `sin-ref` (0 in column t = 0). `random`: 0.1·N(0, 1) drawn at
    C×`drawn_width` (the reference's `hidden_dim`) from the global RNG, then average-pooled over
    columns to T (which shrinks its scale when T < drawn_width).
    Named variants: `sin-f64` the same waveform evaluated in float64 (the clean phase);
    `square-pm1` sign of `sin-f64` with sign(0) = +1, every entry ±1; `cos` the paper text's
    cos(f t), t = 1…T (float64); `random-cxt` 0.1·N(0, 1) drawn directly at C×T.
    """
    if kind == "random":
        return F.adaptive_avg_pool1d(0.1 * torch.randn(num_classes, drawn_width), width)
    if kind == "random-cxt":
        return 0.1 * torch.randn(num_classes, width)
    if kind in ("sin-ref", "square"):
        freqs = torch.linspace(FREQ_MIN, FREQ_MAX, num_classes)[:, None]
        basis = torch.sin(freqs * torch.arange(width).float()[None, :])
        return torch.sign(basis) if kind == "square" else basis
    freqs = torch.linspace(FREQ_MIN, FREQ_MAX, num_classes, dtype=torch.float64)[:, None]
    if kind == "cos":
        basis = torch.cos(freqs * torch.arange(1, width + 1, dtype=torch.float64))
    else:
        basis = torch.sin(freqs * torch.arange(width, dtype=torch.float64))
        if kind == "square-pm1":
            basis = torch.where(basis >= 0, 1.0, -1.0)
    return basis.float()


class _EvenAveragePool(torch.autograd.Function):
    """`adaptive_avg_pool2d` of a map whose sides divide by the pool size, keeping only the
    input's shape for backward (`adaptive_avg_pool2d` keeps its whole input, h(l), alive until
    the backward pass: a third more memory held per block)."""

    @staticmethod
    def forward(ctx, h: torch.Tensor, pool_size: int) -> torch.Tensor:
        ctx.input_shape = h.shape
        return F.adaptive_avg_pool2d(h, pool_size)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        n, c, height, width = ctx.input_shape
        p = grad.shape[-1]
        kh, kw = height // p, width // p
        # Spread along the width first (a map 1/kh of the input's size), then copy whole rows:
        # one 6-d broadcast copy [n, c, p, kh, p, kw] moves the same values ~25% slower.
        rows = (grad / (kh * kw))[..., None].expand(n, c, p, p, kw).reshape(n, c, p, width)
        return rows[:, :, :, None, :].expand(n, c, p, kh, width).reshape(n, c, height, width), None


def reduce_activation(h: torch.Tensor, pool_size: int | None) -> torch.Tensor:
    """a(l): conv outputs average-pooled to pool×pool and flattened; linear outputs average-pooled
    over features to length `pool_size` if one is set (the reference's `adaptive_avg_pool1d`, which
    repeats features when pool_size exceeds their number), else as they are.
    A map already pool×pool is used as it is; one that divides evenly goes through `_EvenAveragePool`."""
    if h.dim() == 2:
        return pool_features(h, pool_size)
    if h.dim() == 4 and pool_size is not None:
        height, width = h.shape[-2:]
        if height % pool_size or width % pool_size:
            h = F.adaptive_avg_pool2d(h, pool_size)
        elif (height, width) != (pool_size, pool_size):
            h = _EvenAveragePool.apply(h, pool_size)
    return h.flatten(1)


def pool_features(h: torch.Tensor, length: int | None) -> torch.Tensor:
    """[N, F] → [N, length] by adaptive average pooling over features (identity if None or F)."""
    if length is None or length == h.shape[1]:
        return h
    return F.adaptive_avg_pool1d(h, length)


class Projection(nn.Module):
    """One block's fixed basis (a buffer) and, for LLS-M / LLS-MxM, its trainable M.

    LLS-MxM mixes the logits as the reference does for each kind of basis: z M for the waveform
    bases (`compute_LLS`, modulation 2), z Mᵀ for the random ones (`LLS_MxM_Random` projects on
    the mixed basis M B, and a (M B)ᵀ = z Mᵀ). LLS-M's z ⊙ m is the same for both.
    """

    def __init__(self, basis: torch.Tensor, modulation: str | None, mix_transposed: bool = False):
        super().__init__()
        self.register_buffer("basis", basis)
        c = basis.shape[0]
        self.modulation = modulation
        self.mix_transposed = mix_transposed
        shape = {None: None, "m": (c,), "mxm": (c, c)}[modulation]
        self.m = nn.Parameter(0.01 * torch.randn(shape)) if shape else None

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        z = a @ self.basis.T
        if self.modulation == "m":
            z = z * self.m
        elif self.modulation == "mxm":
            z = z @ (self.m.T if self.mix_transposed else self.m)
        return z


class BlockLocalMethod(Method):
    """A rule under which every block learns only from a loss on its own output h(l).

    `step` walks the blocks: detached input (nothing flows to an earlier block), the block's
    `local_loss`, backward (which frees that block's graph, so only one block's activations
    live at a time), the block's own optimiser; then the head with cross-entropy on the
    detached last block output. Subclasses define `local_loss` and, in `build_aux`, one aux
    module per block (its trainable parameters join that block's optimiser).
    """

    def __init__(self, model, **kwargs):
        use_lean_activations(model)  # same values and gradients; a 1-byte mask held per activation
        super().__init__(model, **kwargs)

    def parameter_groups(self):
        return self.block_groups()

    @property
    def head_loss_scale(self) -> float:
        """The factor on the head's cross-entropy in its update (the reported loss is the plain CE)."""
        return 1.0

    def head_objective(self, loss: torch.Tensor) -> torch.Tensor:
        """What the head's optimiser minimises: its cross-entropy `loss`, scaled by `head_loss_scale`."""
        scale = self.head_loss_scale
        return loss if scale == 1.0 else scale * loss

    @abc.abstractmethod
    def local_loss(self, index: int, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Block `index`'s loss from its output `h` and the labels `y`."""

    def step(self, x, y):
        local, h = {}, x
        for i, (block, opt) in enumerate(zip(self.model.blocks, self.optimizers)):
            out = block(h.detach())  # detached input: nothing flows to earlier blocks
            loss = self.local_loss(i, out, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()  # frees this block's graph: only one block's activations live at a time
            local[f"block{i}"] = loss.detach()
            h = block.post(out.detach())
        head_opt = self.optimizers[-1]
        logits = self.model.head(h)
        loss = F.cross_entropy(logits, y)
        head_opt.zero_grad(set_to_none=True)
        self.head_objective(loss).backward()
        # Block l+1's input was computed before any update, so stepping every optimiser after
        # the walk is the same update as stepping each right after its block's backward.
        for opt in self.optimizers:
            self.update(opt)
        return StepResult(loss.detach(), logits.detach(), local)


class LLS(BlockLocalMethod):
    name = "lls"
    summary = "local loss per block on a fixed periodic (or random) basis; no extra parameters"
    complexity = {"time": "O(sum_l C n_l)", "memory": "O(max_l n_l)"}
    modulation: str | None = None
    options = {
        "basis": Option("sin-ref", "fixed basis g(·), reference-exact: sin-ref (the reference's 'cosine'), "
                                   "square, random (C×2048 drawn, pooled to T); variants: cos (paper text), "
                                   "sin-f64, square-pm1 (±1), random-cxt (drawn at C×T)", BASES),
        "temperature": Option(0.5, "temperature τ of the local cross-entropy"),
        "normalize": Option("auto", "L2-normalise a(l) before projecting; auto = reference behaviour "
                                    "(on for waveform bases, off for random)", ("auto", "on", "off")),
    }

    search_space = {**DEFAULT_SPACE, "temperature": LogUniform(0.05, 5.0)}

    def build_aux(self) -> nn.Module:
        kind = self.config["basis"]
        return nn.ModuleList(
            Projection(make_basis(kind, self.num_classes, self.signal_width(i), block.drawn_width), self.modulation,
                       mix_transposed=kind in RANDOM_BASES)
            for i, block in enumerate(self.model.blocks))

    @property
    def normalizes(self) -> bool:
        mode = self.config["normalize"]
        return mode == "on" or (mode == "auto" and self.config["basis"] not in RANDOM_BASES)

    def local_logits(self, index: int, h: torch.Tensor) -> torch.Tensor:
        a = reduce_activation(h, self.model.blocks[index].pool_size)
        if self.normalizes:
            a = F.normalize(a, dim=1)
        return self.aux[index](a) / self.config["temperature"]

    def local_loss(self, index, h, y):
        return F.cross_entropy(self.local_logits(index, h), y)

    def modulation_macs(self) -> tuple[int, str]:
        return 0, ""

    def learning_signal_cost(self):
        """The projection z = a Bᵀ (C·T MACs) and the error's way back e B (C·T MACs)."""
        extra, extra_formula = self.modulation_macs()
        costs = []
        for i, name in enumerate(self.block_names()):
            t = self.signal_width(i)
            costs.append(SignalCost(name, 2 * self.num_classes * t + extra, f"2·C·T = 2·{self.num_classes}·{t}"
                                    + extra_formula))
        return costs


class LLSM(LLS):
    name = "lls-m"
    summary = "LLS with a trainable per-class scale M ∈ R^C per block (Eq. 5)"
    modulation = "m"

    def modulation_macs(self):
        return 2 * self.num_classes, " + 2·C"


class LLSMxM(LLS):
    name = "lls-mxm"
    summary = "LLS with a trainable class-mixing matrix M ∈ R^{C×C} per block (Eq. 6)"
    modulation = "mxm"

    def modulation_macs(self):
        return 2 * self.num_classes ** 2, " + 2·C²"


