"""Direct feedback rules: DFA and sDFA (Nøkland 2016) and DRTP (Frenkel, Lefebvre, Bol 2021).

Every hidden block k receives, in place of the gradient backpropagated from above, a signal
projected straight from the output layer through a fixed random matrix B_k ∈ R^{C × dims of h_k}
(dense per position for conv outputs):

    DFA   g_k = (ŷ − y*) B_k          ŷ = softmax of the logits, y* the one-hot target
    sDFA  g_k = sign(ŷ − y*) B_k
    DRTP  g_k = y* B_k                the target alone: no error, no dependence on the output

g_k is injected as ∂L/∂h_k; autograd multiplies it by f'(a_k) and forms the block's weight
gradient. Each block runs on a detached input, so nothing travels from block k+1 to block k.
The head (the output Linear) gets its true gradient: cross-entropy on the detached output of
the last block. B_k are buffers, never trained: these rules add no parameters.

Defaults: each rule computes what the code behind its published numbers computes.
DFA and sDFA follow the LLS reference code (`mapolinario94/LLS-DNN`, `models/layers/
feedback_alignment.py`: `TrainingHook`/`HookFunction`, trained by `main.py` with one
`loss.backward()` of the cross-entropy), which produced the LLS paper's DFA numbers: B_k =
1e-4 · U[0, 1), error softmax(z) − y* (sDFA: its sign), injected per sample, CE head. DRTP follows
its authors' code (`ChFrenkel/DirectRandomTargetProjection`): Kaiming-uniform B_k, BCE on a
sigmoid head. The other behaviours are the options below.

Scaling (`signal_reduction`). The output loss is the batch-mean cross-entropy, whose gradient
at the logits is (ŷ − y*)/N. Both codes inject g_k per sample *without* the 1/N, so with
`sum` (the default) the hidden blocks' weight gradients are Σ_n δ_n x_nᵀ while the head's is
(1/N) Σ_n e_n h_nᵀ: hidden blocks take N-times larger steps than a BP-scaled signal would give
(scale-free optimisers such as Adam barely notice; SGD/NAG do). `mean` injects g_k / N, the
scale BP would have if B_k were the real weights from h_k to the logits.

Initialisation of B_k (`init`). `lls-ref` (default of dfa/sdfa, the LLS reference code):
1e-4 · U[0, 1), non-negative and tiny (the error sums to zero over classes, so only B's spread
around its mean reaches the blocks). `kaiming` (default of drtp, the DRTP authors' code, which
they also use for DFA): U(−√(6/n), +√(6/n)) with n the fan-in over all dims after the first
(n = |h_k|), i.e. `torch.nn.init.kaiming_uniform_` on [C, *dims].

Output loss (`output_loss`). `bce`: the DRTP authors' default for every rule they run (their
`--loss BCE --output-act sigmoid`): the head's loss is the binary cross-entropy of σ(z) against
the one-hot target, averaged over N·C, and DFA's error is σ(z) − y*. `ce`: cross-entropy on
the logits, DFA's error softmax(z) − y*: the LLS reference code's DFA. Defaults: `ce` for
dfa/sdfa, `bce` for drtp. The DRTP authors' DFA is `init=kaiming, output_loss=bce`.

Optimisers: one per block plus one for the head (`block_groups`). SGD, NAG, Adam(W) and the
schedule-free optimisers keep per-parameter state and per-group hyper-parameters, so this is
numerically the same update as one optimiser over the whole network (the authors' setup), and
it lets DRTP update each block as soon as its own forward is done (update-unlocking).

Official recipe (DRTP authors): NAG (SGD momentum 0.9, Nesterov), lr 1e-4, batch 100,
100 epochs, tanh, no BatchNorm, no augmentation, [0, 1] MNIST pixels (`mnist-raw`), on the
`drtp-*` models: ``RunConfig(method="drtp", model="drtp-conv-mnist", dataset="mnist-raw",
optimizer="nesterov", lr=1e-4, batch_size=100, epochs=100)``.
"""
from __future__ import annotations

import abc
import math

import torch
import torch.nn.functional as F
from torch import nn

from llsbench.method import Method, SignalCost, StepResult
from llsbench.options import Option
from llsbench.tuning.spaces import DEFAULT_SPACE, Choice

INITS = ("kaiming", "lls-ref")
REDUCTIONS = ("sum", "mean")
OUTPUT_LOSSES = ("ce", "bce")


def output_loss_option(default: str) -> Option:
    return Option(default, "output loss: ce (cross-entropy on the logits; DFA error softmax(z) − y*) or bce "
                           "(DRTP authors' code: BCE on sigmoid(z), mean over N·C; DFA error sigmoid(z) − y*)",
                  OUTPUT_LOSSES)


def init_option(default: str) -> Option:
    return Option(default, "feedback matrices B: lls-ref (LLS reference code's DFA/sDFA, 1e-4·U[0,1)) or kaiming "
                           "(DRTP authors' code, U(±√(6/n)))", INITS)


def make_feedback(init: str, num_classes: int, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """B ∈ R^{C × shape}: `kaiming` U(±√(6/n)), n = prod(shape); `lls-ref` 1e-4 · U[0, 1)."""
    matrix = torch.empty(num_classes, *shape, dtype=dtype)
    if init == "kaiming":
        bound = math.sqrt(6.0 / math.prod(shape))
        return matrix.uniform_(-bound, bound)
    return matrix.uniform_(0.0, 1.0).mul_(1e-4)


class Feedback(nn.Module):
    """One block's fixed feedback matrix B_k (a buffer) and its projection signal → g_k."""

    def __init__(self, matrix: torch.Tensor):
        super().__init__()
        self.register_buffer("matrix", matrix)

    def forward(self, signal: torch.Tensor) -> torch.Tensor:
        """[N, C] @ B_k → [N, *dims of h_k]; N is whatever the batch is (the last one is smaller)."""
        return (signal @ self.matrix.flatten(1)).view(signal.shape[0], *self.matrix.shape[1:])


class DirectFeedback(Method, abc.ABC):
    """What DFA, sDFA and DRTP share: the matrices B_k, their options and their cost."""

    complexity = {"time": "O(sum_l C n_l)", "memory": "O(sum_l n_l) activations + O(C sum_l n_l) fixed B"}
    options = {
        "init": init_option("lls-ref"),
        "signal_reduction": Option("sum", "sum (official): inject g = s·B per sample, no 1/N; mean: g/N, "
                                          "the scale of the mean-reduced output loss", REDUCTIONS),
        "output_loss": output_loss_option("ce"),
    }

    search_space = {**DEFAULT_SPACE, "init": Choice(*INITS)}
    cost_note = ""  # appended to each block's cost formula

    def build_aux(self) -> nn.Module:
        dtype = next(self.model.parameters()).dtype
        return nn.ModuleList(Feedback(make_feedback(self.config["init"], self.num_classes, tuple(shape), dtype))
                             for shape in self.block_shapes)

    def parameter_groups(self):
        return self.block_groups()

    @abc.abstractmethod
    def signal(self, logits: torch.Tensor | None, target: torch.Tensor) -> torch.Tensor:
        """The [N, C] signal that B_k projects (`target` is one-hot)."""

    def injected(self, index: int, signal: torch.Tensor) -> torch.Tensor:
        """g_k, the gradient put at h_k: signal · B_k, divided by N for `signal_reduction=mean`."""
        g = self.aux[index](signal)
        return g / signal.shape[0] if self.config["signal_reduction"] == "mean" else g

    def one_hot(self, y: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return F.one_hot(y, self.num_classes).to(like.dtype)

    def output(self, logits: torch.Tensor) -> torch.Tensor:
        """ŷ: the output the error is measured on, softmax (ce) or sigmoid (bce) of the logits."""
        return torch.sigmoid(logits) if self.config["output_loss"] == "bce" else F.softmax(logits, dim=1)

    def head_step(self, h: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The head's true gradient from the output loss on the detached last block output; returns
        loss, logits. BCE is taken on the logits (`binary_cross_entropy_with_logits`: the same value
        and gradient (σ(z) − y*)/(N·C) as BCE on σ(z), without its log clamp)."""
        logits = self.model.head(h.detach())
        if self.config["output_loss"] == "bce":
            return F.binary_cross_entropy_with_logits(logits, self.one_hot(y, logits)), logits
        return F.cross_entropy(logits, y), logits

    def zero_grad(self) -> None:
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=True)

    def learning_signal_cost(self):
        """s · B_k: C·|h_k| MACs per sample per block (|h_k| every value of the block output)."""
        c = self.num_classes
        return [SignalCost(name, c * shape.numel(), f"C·|h| = {c}·{shape.numel()}" + self.cost_note)
                for name, shape in zip(self.block_names(), self.block_shapes)]


class DFA(DirectFeedback):
    """Direct feedback alignment: g_k = (ŷ − y*) B_k needs the output, so every block's graph is
    kept until the forward pass ends, then one multi-root backward forms all the updates."""

    name = "dfa"
    summary = "direct feedback alignment: output error (ŷ − y*) projected to every block by a fixed random B_k"

    def signal(self, logits, target):
        return self.output(logits.detach()) - target

    def step(self, x, y):
        self.zero_grad()
        outputs, inp = [], x
        for block in self.model.blocks:
            h = block(inp)
            outputs.append(h)
            inp = block.post(h.detach())  # detached: nothing flows from block k+1 to block k
        loss, logits = self.head_step(inp, y)
        signal = self.signal(logits, self.one_hot(y, logits))
        grads = [self.injected(i, signal) for i in range(len(outputs))]
        torch.autograd.backward([loss, *outputs], [None, *grads])
        for opt in self.optimizers:
            self.update(opt)
        return StepResult(loss.detach(), logits.detach())


class SDFA(DFA):
    """DFA with the sign of the error. With a softmax output ŷ − y* is negative exactly at the
    target class and positive elsewhere, so the signal is 1 − 2y*: in practice label-only."""

    name = "sdfa"
    summary = "sign-DFA: sign(ŷ − y*) projected to every block by a fixed random B_k"

    def signal(self, logits, target):
        return torch.sign(super().signal(logits, target))


class DRTP(DirectFeedback):
    """Direct random target projection: g_k = y* B_k. The signal needs only the label, so each
    block updates right after its own forward (update-unlocked) and its graph is freed then:
    peak activation memory is that of the largest block. Block k+1 runs on h_k computed before
    block k's update, exactly as in the authors' single forward / single backward.

    Reported test errors (the DRTP authors' talk slides, talks/LightOnAIMeetUp.pdf of their
    repository, slides 15 and 18; mean ± std, NAG, lr 1e-4, batch 100, 100 epochs): MNIST
    `drtp-conv-mnist` (32c5-pool-1000-10, trained conv layers) 1.81 ± 0.14 %; CIFAR-10
    `drtp-conv-cifar` (64c3-pool-256c3-pool-1000-1000-10) 35.45 ± 0.76 %; `drtp-fc` (FC
    1000-1000-10) MNIST 4.04 ± 0.12 %, CIFAR-10 52.83 ± 0.44 %. `suites/anchors.yaml` runs the
    MNIST ones.
    """

    name = "drtp"
    summary = "direct random target projection: one-hot target y* projected to every block by a fixed random B_k"
    options = {**DirectFeedback.options, "init": init_option("kaiming"), "output_loss": output_loss_option("bce")}
    complexity = {"time": "O(sum_l C n_l)", "memory": "O(max_l n_l) activations + O(C sum_l n_l) fixed B"}
    cost_note = " (dense product; y* is one-hot, so it only selects a row of B: |h| copies)"

    def signal(self, logits, target):
        return target

    def step(self, x, y):
        inp = x
        for i, (block, opt) in enumerate(zip(self.model.blocks, self.optimizers)):
            opt.zero_grad(set_to_none=True)
            h = block(inp)
            signal = self.signal(None, self.one_hot(y, h))
            h.backward(self.injected(i, signal))  # frees this block's graph
            self.update(opt)
            inp = block.post(h.detach())
        head_opt = self.optimizers[-1]
        head_opt.zero_grad(set_to_none=True)
        loss, logits = self.head_step(inp, y)
        loss.backward()
        self.update(head_opt)
        return StepResult(loss.detach(), logits.detach())
