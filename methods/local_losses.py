"""Local-loss baselines with *trained* per-block heads: the LLS paper's Local Losses and
Nøkland & Eidnes' PredSim.

Both are block-local exactly like LLS (`BlockLocalMethod`: detached block input, the block's
own loss and optimiser, graph freed after the update); only the per-block head differs.

- `local-losses` (LLS paper, Table 3; reference `compute_LocalLosses` in
  `mapolinario94/LLS-DNN`): a(l) pooled as under LLS, logits z = a W̃ᵀ / τ with a trainable
  W_c ∈ R^{C×D} (init 0.1·N(0, 1); D the block's `drawn_width`, the reference's `hidden_dim`:
  2048 in VGG8) resized to the layer's width T(l) by adaptive average pooling over its columns,
  W̃ = pool(W_c); cross-entropy; no L2 normalisation.
- `predsim` (Nøkland & Eidnes 2019, "Training neural networks with local error signals",
  `anokland/local-loss`): (1 − β)·pred + β·sim, β = 0.99. pred: average pool so that
  channels × pooled area ≤ 2048, zero-initialised linear decoder, cross-entropy. sim: a learned
  3×3 conv (c→c) for conv blocks, a c×c linear for linear blocks, then the batch's cosine
  similarity matrix (conv: of each channel's spatial std) regressed (MSE) onto the labels'.
  The output classifier, as in the authors' `train.py`, starts from a zero weight and trains
  on (1 − β)·CE (`head_init`, `head_loss`).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from llsbench.errors import ConfigError
from llsbench.method import SignalCost
from llsbench.options import Option
from llsbench.tuning.spaces import DEFAULT_SPACE, LogUniform, Uniform
from llsbench_methods.lls import BlockLocalMethod, reduce_activation

DECODER_WIDTH = 2048  # PredSim: channels × pooled area in front of the decoder is at most this


# ---- Local Losses ---------------------------------------------------------------------------
class LocalClassifier(nn.Module):
    """One block's trainable W_c ∈ R^{C×D}, used at the layer's width T as W̃ = pool(W_c)
    (adaptive average pooling over columns, as the reference does on every step)."""

    def __init__(self, num_classes: int, width: int, drawn_width: int = 2048):
        super().__init__()
        self.weight = nn.Parameter(0.1 * torch.randn(num_classes, drawn_width))
        self.width = width

    def resized(self) -> torch.Tensor:
        return F.adaptive_avg_pool1d(self.weight, self.width)

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        return a @ self.resized().T


class LocalLosses(BlockLocalMethod):
    """The LLS paper's Local Losses baseline (its Table 3).

    W_c is sized as the reference sizes it per model (`drawn_width`): C×2048 in VGG8 and
    MobileNetV1, C×T(l) in SmallConv. If T(l) > D the pooling repeats columns (the classifier
    then has tied columns).
    """

    name = "local-losses"
    summary = "per-block cross-entropy through a trainable local classifier W_c ∈ R^{C×2048} pooled to T (LLS paper's baseline)"
    complexity = {"time": "O(sum_l C n_l)", "memory": "O(max_l n_l)"}
    options = {"temperature": Option(0.5, "temperature τ of the local cross-entropy (LLS scripts: 0.5)")}
    search_space = {**DEFAULT_SPACE, "temperature": LogUniform(0.05, 5.0)}

    def build_aux(self) -> nn.Module:
        _require_positive(self, "temperature", self.config["temperature"])
        return nn.ModuleList(LocalClassifier(self.num_classes, self.signal_width(i), block.drawn_width)
                             for i, block in enumerate(self.model.blocks))

    def local_logits(self, index: int, h: torch.Tensor) -> torch.Tensor:
        a = reduce_activation(h, self.model.blocks[index].pool_size)
        return self.aux[index](a) / self.config["temperature"]

    def local_loss(self, index, h, y):
        return F.cross_entropy(self.local_logits(index, h), y)

    def learning_signal_cost(self):
        """The local classifier z = a W̃ᵀ (C·T MACs) and the error's way back e W̃ (C·T MACs)."""
        c = self.num_classes
        return [SignalCost(name, 2 * c * self.signal_width(i), f"2·C·T = 2·{c}·{self.signal_width(i)}")
                for i, name in enumerate(self.block_names())]


# ---- PredSim --------------------------------------------------------------------------------
def decoder_pooling(channels: int, height: int, width: int, limit: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """Kernel and zero padding of the average pool in front of PredSim's decoder.

    As the reference (`LocalLossBlockConv`): double the kernel's height, then (if still too
    big) its width, until channels × pooled area ≤ `limit` or the kernel covers the height;
    pooled sizes round up, reached by padding half a kernel (zeros count in the average).
    The alternation can give a non-square pool, e.g. 256 channels at 32×32 → 2×4.
    """
    kh = kw = 1
    oh, ow = height, width
    while channels * oh * ow > limit and kh < height:
        kh *= 2
        oh = math.ceil(height / kh)
        if channels * oh * ow > limit:
            kw *= 2
            ow = math.ceil(width / kw)
    return (kh, kw), ((kh * (oh - height // kh)) // 2, (kw * (ow - width // kw)) // 2)


def similarity_matrix(h: torch.Tensor) -> torch.Tensor:
    """Adjusted cosine similarity of the batch's samples (reference `similarity_matrix`).

    Feature maps with more than 3 channels and height > 1 are first reduced to each channel's
    standard deviation over space (unbiased, as `Tensor.std`); anything else is flattened.
    Each sample's vector is centred and L2-normalised; S = ĥ ĥᵀ clamped to [−1, 1].
    """
    if h.dim() == 4 and h.shape[1] > 3 and h.shape[2] > 1:
        h = h.flatten(2).std(dim=2)
    h = h.flatten(1)
    centred = h - h.mean(dim=1, keepdim=True)
    unit = centred / (1e-8 + centred.norm(dim=1, keepdim=True))
    return (unit @ unit.T).clamp(-1, 1)


def label_similarity(y: torch.Tensor, num_classes: int, dtype: torch.dtype) -> torch.Tensor:
    """S_y: `similarity_matrix` of the one-hot labels."""
    return similarity_matrix(F.one_hot(y, num_classes).to(dtype))


class PredSimHead(nn.Module):
    """One block's PredSim losses. Only the parts β uses are built: β = 0 has no sim layer,
    β = 1 no decoder (the reference's `--loss-sup pred` / `sim`)."""

    def __init__(self, shape: torch.Size, num_classes: int, beta: float, decoder_width: int):
        super().__init__()
        if len(shape) not in (1, 3):
            raise ConfigError(f"predsim needs block outputs of shape (features,) or (channels, H, W), got {tuple(shape)}")
        self.num_classes, self.beta = num_classes, beta
        channels, conv = shape[0], len(shape) == 3
        self.kernel, self.padding = decoder_pooling(*shape, decoder_width) if conv else ((1, 1), (0, 0))
        self.decoder = self.sim = None
        if beta < 1:
            self.decoder = nn.Linear(self.pooled_width(shape), num_classes)
            nn.init.zeros_(self.decoder.weight)
        if beta > 0:
            self.sim = (nn.Conv2d(channels, channels, 3, padding=1, bias=False) if conv
                        else nn.Linear(channels, channels, bias=False))

    def pooled_width(self, shape: torch.Size) -> int:
        if len(shape) == 1:
            return shape[0]
        (kh, kw), (ph, pw) = self.kernel, self.padding
        return shape[0] * ((shape[1] + 2 * ph - kh) // kh + 1) * ((shape[2] + 2 * pw - kw) // kw + 1)

    def pred_logits(self, h: torch.Tensor) -> torch.Tensor:
        if h.dim() == 4 and self.kernel != (1, 1):
            h = F.avg_pool2d(h, self.kernel, padding=self.padding)
        return self.decoder(h.flatten(1))

    def pred_loss(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.pred_logits(h), y)

    def sim_loss(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(similarity_matrix(self.sim(h)), label_similarity(y, self.num_classes, h.dtype))

    def forward(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        parts = []
        if self.decoder is not None:
            parts.append((1 - self.beta) * self.pred_loss(h, y))
        if self.sim is not None:
            parts.append(self.beta * self.sim_loss(h, y))
        return sum(parts)


class PredSim(BlockLocalMethod):
    """Nøkland & Eidnes (2019) predsim, per block (1 − β)·pred + β·sim.

    Their VGG8b test errors, quoted (not reproduced here; with augmentation): CIFAR-10 BP
    5.99 %, pred 8.40 %, sim 7.16 %, predsim 5.58 %; CIFAR-100 BP 26.24 %, predsim 24.07 %;
    MNIST predsim 0.31 %; FashionMNIST 4.65 %. Their VGG8b is [128, 256, M, 256, 512, M, 512,
    M, 512, M] + FC 1024 (ReLU/LeakyReLU, dropout, Adam with step decay, 400 epochs on CIFAR):
    a different network and recipe from the LLS paper's VGG8, so these numbers do not carry
    over to llsbench's `vgg8`.

    The output classifier follows the authors' `train.py` (`anokland/local-loss`): its weight
    is zeroed when the net is built (`layer_out.weight.data.zero_()`; the bias keeps its init)
    and its loss is `F.cross_entropy(output, target) * (1 − β)` (`--loss-sup predsim`; with β = 1,
    their `--loss-sup sim`, it is not scaled). `head_init=model` keeps the model's own init and
    `head_loss=ce` trains it on plain CE (llsbench's behaviour before). The reported training
    loss is the plain CE either way. Deviation kept: the decoder width defaults to 2048 (the
    reference's default is 4096, its CIFAR-10 VGG8b runs use 2048, MNIST/FashionMNIST 1024).
    """

    name = "predsim"
    summary = "per-block (1 − β)·prediction loss + β·similarity-matching loss (Nøkland & Eidnes 2019)"
    complexity = {"time": "O(sum_l (C d_l + k² c_l² HW_l))", "memory": "O(max_l n_l)"}
    options = {
        "beta": Option(0.99, "weight β of the sim loss in (1 − β)·pred + β·sim; 0 = pred only, 1 = sim only"),
        "decoder_width": Option(DECODER_WIDTH, "upper bound on channels × pooled area fed to the pred decoder "
                                               "(reference --dim-in-decoder)"),
        "head_init": Option("zeros", "output classifier's weight: zeros (authors' code) or model (its own init)",
                            ("zeros", "model")),
        "head_loss": Option("scaled", "output classifier's loss: scaled ((1 − β)·CE, authors' code; plain CE "
                                      "at β = 1) or ce (plain CE)", ("scaled", "ce")),
    }
    search_space = {**DEFAULT_SPACE, "beta": Uniform(0.5, 1.0)}

    def build_aux(self) -> nn.Module:
        beta, width = self.config["beta"], self.config["decoder_width"]
        if not 0.0 <= beta <= 1.0:
            raise ConfigError(f"method 'predsim': option beta={beta!r} must lie in [0, 1]")
        _require_positive(self, "decoder_width", width)
        return nn.ModuleList(PredSimHead(shape, self.num_classes, beta, width) for shape in self.block_shapes)

    def __init__(self, model, **kwargs):
        super().__init__(model, **kwargs)
        if self.config["head_init"] == "zeros":
            with torch.no_grad():
                self.model.head.weight.zero_()

    @property
    def head_loss_scale(self) -> float:
        beta = self.config["beta"]
        return 1.0 - beta if self.config["head_loss"] == "scaled" and beta < 1.0 else 1.0

    def local_loss(self, index, h, y):
        return self.aux[index](h, y)

    def learning_signal_cost(self):
        """Per block: the decoder and its transpose (2·C·D, D its input width) and the sim layer
        and its transpose (2·9·c²·H·W for the 3×3 conv, 2·c² for the linear). Not counted: the
        similarity matrix and its gradient, 2·N·c per sample for a batch of N (batch-dependent)."""
        c_cls, costs = self.num_classes, []
        for name, shape, head in zip(self.block_names(), self.block_shapes, self.aux):
            macs, terms = 0, []
            if head.decoder is not None:
                d = head.decoder.in_features
                macs += 2 * c_cls * d
                terms.append(f"2·C·D = 2·{c_cls}·{d}")
            if head.sim is not None:
                c = shape[0]
                if len(shape) == 3:
                    macs += 2 * 9 * c * c * shape[1] * shape[2]
                    terms.append(f"2·9·c²·H·W = 2·9·{c}²·{shape[1]}·{shape[2]}")
                else:
                    macs += 2 * c * c
                    terms.append(f"2·c² = 2·{c}²")
            costs.append(SignalCost(name, macs, " + ".join(terms)))
        return costs


def _require_positive(method: BlockLocalMethod, option: str, value: float) -> None:
    if not value > 0:
        raise ConfigError(f"method {method.name!r}: option {option}={value!r} must be positive")
