"""PEPITA — Present the Error to Perturb the Input To modulate Activity (Dellaferrera & Kreiman,
ICML 2022; official code `GiorgiaD/PEPITA`).

Two forward passes and no backward pass. Pass 1 on x gives the output error e = ŷ − y*
(softmax − one-hot). Pass 2 runs on the modulated input x̃ = x + F·e (`sign=minus`: x − F·e, the
2023 follow-up), F ∈ R^{d×C} a fixed random projection, d = C·H·W, and gives h̃_k and ẽ. Every
weight layer then gets, averaged over the batch, the gradient-like quantity

    first layer   ΔW₁  = (h₁ − h̃₁) x̃ᵀ
    hidden        ΔW_k = (h_k − h̃_k) h̃_{k−1}ᵀ
    last layer    ΔW_L = ẽ h̃_{L−1}ᵀ     (`last_layer=clean`: e h̃_{L−1}ᵀ, the 2023 follow-up)

computed by these formulas under `torch.no_grad()` and written to `.grad`; the rule's optimiser
then steps, so plain SGD moves W by −lr·Δ, as the official code does.

How llsbench applies it to any `BlockNet`:
- A PEPITA *layer* is one weight layer (Conv2d or Linear) with the BatchNorm right after it and
  the parameter-free modules up to the next weight layer. Its h is the output of that stretch,
  after the nonlinearity: for a ConvBlock (Conv→BN→act) the block output; a ConvDW block holds
  two layers (depthwise, pointwise), each with its own h. Its input h̃_{k−1} is what the weight
  layer received in pass 2 (pooled, dropped out, flattened as the model does).
- Conv layers: ΔW is the weight-gradient of the convolution whose output gradient is
  δ = h − h̃ and whose input is h̃_{k−1} (`torch.nn.grad.conv2d_weight`, with the layer's stride,
  padding, dilation and groups), divided by the number of output positions as the official conv
  code (`compute_delta_w_conv`, its default `sqrt_conv=False`) does; `conv_positions=sum` keeps
  the plain sum over positions.
- Biases (the official nets have none): the same rule with the input set to 1, Δb = Σ δ.
- BatchNorm γ, β: left at their initial values by default (`bn_affine=frozen`), as in the
  official code, which only updates tensors of two or more dimensions. `bn_affine=rule` updates
  them by the same difference rule: γ with the normalised pre-activation of pass 2 as its input,
  β with input 1. Both passes run in train mode: each is normalised with its own batch
  statistics, and the running statistics see both passes (the trainer re-estimates them before
  evaluation).
- Dropout: pass 2 replays the RNG state pass 1 started from, so every dropout module draws
  the same mask in both passes. Where a block's post-processing is elementwise (dropout,
  flatten, as in `pepita-fc`), the h of its last layer is taken after the dropout, as the
  official code does: dropped units get no update and kept ones are scaled by 1/keep. Where
  pooling comes before the dropout, the mask acts on the pooled map and enters the update only
  through the two forward passes.

Anchor (quoted from the official CIFAR-10 FC tutorial notebook, not measured by llsbench): the
1×1024 net trained with PEPITA — SGD momentum 0.9, lr 0.01, batch 64, 100 epochs — "ends at
52.58 % test accuracy".
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.grad import conv2d_weight

from llsbench.costs import weight_layer_macs
from llsbench.errors import ConfigError, LLSBenchError
from llsbench.method import Method, SignalCost, StepResult
from llsbench.options import Option

WEIGHT_LAYERS = (nn.Conv2d, nn.Linear)
NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)
ELEMENTWISE = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.Flatten, nn.Identity)


@dataclass
class Layer:
    """One PEPITA layer: parameter-free modules before the weight layer (e.g. Flatten), the
    weight layer, the BatchNorm right after it if any, and the parameter-free modules after."""

    weight: nn.Conv2d | nn.Linear
    pre: list[nn.Module] = field(default_factory=list)
    norm: nn.Module | None = None
    rest: list[nn.Module] = field(default_factory=list)

    def __call__(self, x: torch.Tensor, normalized: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(the weight layer's input, h, the normalised pre-activation if asked and there is a BN)."""
        for module in self.pre:
            x = module(x)
        a = self.weight(x)
        n = None
        h = a
        if self.norm is not None:
            n = _normalized(self.norm, a) if normalized else None
            h = self.norm(a)
        for module in self.rest:
            h = module(h)
        if h.shape != a.shape:
            raise LLSBenchError(f"PEPITA needs the modules between two weight layers to keep the shape: "
                                f"{type(self.weight).__name__} gives {tuple(a.shape)}, its layer ends at {tuple(h.shape)}")
        return x, h, n


class Trace(NamedTuple):
    layer: Layer
    input: torch.Tensor  # what the weight layer received
    activity: torch.Tensor  # h, after the block's dropout where that is elementwise; h's shape
    normalized: torch.Tensor | None


def _normalized(norm: nn.Module, a: torch.Tensor) -> torch.Tensor:
    """BatchNorm's output before its affine map, with the statistics the module uses right now."""
    batch_stats = norm.training or norm.running_mean is None
    return F.batch_norm(a, None if batch_stats else norm.running_mean, None if batch_stats else norm.running_var,
                        training=batch_stats, eps=norm.eps)


def _modules(module: nn.Module) -> list[nn.Module]:
    if isinstance(module, nn.Sequential):
        return [m for child in module for m in _modules(child)]
    return [module]


def split_layers(body: nn.Module, where: str) -> list[Layer]:
    """A block body cut into PEPITA layers; anything else with parameters is a `ConfigError`."""
    layers: list[Layer] = []
    pending: list[nn.Module] = []
    for module in _modules(body):
        if isinstance(module, WEIGHT_LAYERS):
            _check_weight_layer(module, where)
            layers.append(Layer(module, pre=pending))
            pending = []
        elif isinstance(module, NORMS) and layers and layers[-1].norm is None and not layers[-1].rest:
            layers[-1].norm = module
        elif next(module.parameters(), None) is not None:
            raise ConfigError(f"PEPITA cannot train {where}: {type(module).__name__} has parameters but is not a "
                              f"Conv2d, a Linear or a BatchNorm right after one")
        elif layers:
            layers[-1].rest.append(module)
        else:
            pending.append(module)
    if not layers:
        raise ConfigError(f"PEPITA found no Conv2d or Linear layer in {where}")
    return layers


def _check_weight_layer(layer: nn.Module, where: str) -> None:
    if isinstance(layer, nn.Conv2d) and (isinstance(layer.padding, str) or layer.padding_mode != "zeros"):
        raise ConfigError(f"PEPITA supports Conv2d with numeric zero padding only; {where} has "
                          f"padding={layer.padding!r}, padding_mode={layer.padding_mode!r}")


def _is_elementwise(post: nn.Module) -> bool:
    return all(isinstance(m, ELEMENTWISE) for m in _modules(post))


class PEPITA(Method):
    name = "pepita"
    summary = "two forward passes, the second on the input modulated by a fixed projection F·e of the error; no backward"
    complexity = {"time": "O(sum_l n_l n_{l+1})", "memory": "O(sum_l n_l)"}
    options = {
        "sign": Option("plus", "modulated input x ± F·e: plus = 2022 code, minus = 2023 follow-up", ("plus", "minus")),
        "last_layer": Option("modulated", "error in the last layer's update: modulated ẽ (2022 code) or clean e "
                                          "(2023 follow-up)", ("modulated", "clean")),
        "f_scale": Option(0.05, "F = f_scale · U(±√(6/d)), d = input size (paper: 0.05)"),
        "bn_affine": Option("frozen", "BatchNorm γ, β: frozen at init (official code) or trained by the same "
                                      "difference rule", ("frozen", "rule")),
        "conv_positions": Option("mean", "conv update over output positions: mean (official conv code, "
                                         "compute_delta_w_conv) or sum (plain conv2d_weight)", ("mean", "sum")),
    }

    def build_aux(self) -> nn.Module:
        scale = self.config["f_scale"]
        if not scale > 0:
            raise ConfigError(f"method 'pepita': option f_scale={scale!r} must be positive")
        d = math.prod(self.input_shape)
        bound = math.sqrt(6.0 / d)
        dtype = next(self.model.parameters()).dtype
        aux = nn.Module()
        aux.register_buffer("projection", scale * torch.empty(d, self.num_classes, dtype=dtype).uniform_(-bound, bound))
        return aux

    @cached_property
    def layers(self) -> list[list[Layer]]:
        """The PEPITA layers of every block, in order."""
        return [split_layers(block.body, f"block{i}") for i, block in enumerate(self.model.blocks)]

    @cached_property
    def _activity_after_post(self) -> list[bool]:
        return [_is_elementwise(block.post) for block in self.model.blocks]

    def parameter_groups(self):
        frozen: set[int] = set()
        if self.config["bn_affine"] == "frozen":
            frozen = {id(p) for block in self.layers for layer in block if layer.norm is not None
                      for p in layer.norm.parameters()}
        return [[p for p in self.model.parameters() if id(p) not in frozen]]

    # ---- the rule ---------------------------------------------------------------------------
    def step(self, x, y):
        opt = self.optimizers[0]
        opt.zero_grad(set_to_none=True)
        with torch.no_grad():
            # Pass 1 runs on a fork of the RNG; pass 2 then draws the same dropout masks from the
            # untouched state and advances it.
            with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
                clean, logits = self._clean_pass(x)
            target = F.one_hot(y, self.num_classes).to(logits.dtype)
            error = logits.softmax(dim=1) - target
            sign = 1.0 if self.config["sign"] == "plus" else -1.0
            x_mod = x + sign * (error @ self.aux.projection.T).view_as(x)
            self._modulated_pass(x_mod, clean, error, target)
        self.update(opt)
        return StepResult(F.cross_entropy(logits, y), logits)

    def _block_pass(self, index: int, x: torch.Tensor, normalized: bool) -> tuple[list[Trace], torch.Tensor]:
        """Block `index` layer by layer: a trace per layer, and the block's output after `post`."""
        traces = []
        for layer in self.layers[index]:
            inp, x, n = layer(x, normalized)
            traces.append(Trace(layer, inp, x, n))
        out = self.model.blocks[index].post(x)
        if self._activity_after_post[index]:
            traces[-1] = traces[-1]._replace(activity=out.reshape(x.shape))
        return traces, out

    def _clean_pass(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        activities = []
        for i in range(len(self.model.blocks)):
            traces, x = self._block_pass(i, x, normalized=False)
            activities += [t.activity for t in traces]
        return activities, self.model.head(x)

    def _modulated_pass(self, x: torch.Tensor, clean: list[torch.Tensor], error: torch.Tensor,
                        target: torch.Tensor) -> None:
        """Pass 2 on x̃, setting every layer's `.grad` as soon as its h̃ is known."""
        train_norm = self.config["bn_affine"] == "rule"
        k = 0
        for i in range(len(self.model.blocks)):
            traces, x = self._block_pass(i, x, normalized=train_norm)
            for t in traces:
                self._set_grads(t.layer, t.input, clean[k] - t.activity, t.normalized if train_norm else None)
                k += 1
        head = self.model.head
        if self.config["last_layer"] == "modulated":
            error = head(x).softmax(dim=1) - target
        self._set_grads(Layer(head), x, error, None)

    def _set_grads(self, layer: Layer, inp: torch.Tensor, delta: torch.Tensor, normalized: torch.Tensor | None) -> None:
        """`.grad` = δ ⊗ input averaged over the batch (and over positions with conv_positions=mean)."""
        w = layer.weight
        scale = 1.0 / delta.shape[0]
        if self.config["conv_positions"] == "mean":
            scale /= delta[0].numel() // delta.shape[1]
        if isinstance(w, nn.Conv2d):
            w.weight.grad = conv2d_weight(inp, w.weight.shape, delta, w.stride, w.padding, w.dilation, w.groups) * scale
            over = [d for d in range(delta.dim()) if d != 1]
        else:
            w.weight.grad = delta.reshape(-1, w.out_features).T @ inp.reshape(-1, w.in_features) * scale
            over = list(range(delta.dim() - 1))
        if w.bias is not None:
            w.bias.grad = delta.sum(over) * scale
        if normalized is not None and layer.norm.affine:
            over = [d for d in range(delta.dim()) if d != 1]
            layer.norm.weight.grad = (delta * normalized).sum(over) * scale
            layer.norm.bias.grad = delta.sum(over) * scale

    # ---- costs ------------------------------------------------------------------------------
    def learning_signal_cost(self):
        """F·e (d·C MACs) on block 0, and each block's own modulated forward on that block; the
        head's modulated forward (for ẽ) is counted on the last block unless last_layer=clean."""
        macs = weight_layer_macs(self.model, self.input_shape)
        d, c, n = math.prod(self.input_shape), self.num_classes, len(self.model.blocks)
        costs = []
        for i, name in enumerate(self.block_names()):
            own = [m for m in macs if m.block == i]
            if i == n - 1 and self.config["last_layer"] == "modulated":
                own += [m for m in macs if m.block is None]
            formula = "modulated forward of " + ", ".join(m.name for m in own)
            total = sum(m.macs for m in own)
            if i == 0:
                total += d * c
                formula = f"F·e (d·C = {d}·{c}) + {formula}"
            costs.append(SignalCost(name, total, formula))
        return costs
