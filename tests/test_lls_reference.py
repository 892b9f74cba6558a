"""LLS, LLS-M and LLS-MxM equal the LLS authors' code (mapolinario94/LLS-DNN,
models/layers/lls_layers.py) on fixed seeded activations, for every reference basis, conv and
linear blocks and C = 10, 100, 200.

The reference's formulas are written out below from `generate_frequency_matrix`, `compute_LLS`
and `compute_LocalLosses` (and `LLS_layer`'s draws of its random feedback and modulation); the
reference itself is never imported.
"""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from llsbench.method_registry import create_method
from llsbench.models import Block, BlockNet, create_model
from llsbench.models.blocks import conv_body, linear_body, post

TAU, N = 0.5, 16


# ---- the reference's formulas, transcribed -----------------------------------------------------
def ref_frequency_matrix(num_rows, num_cols, min_freq=50, max_freq=512):
    frequencies = torch.linspace(min_freq, max_freq, num_rows).unsqueeze(1)
    t = torch.arange(num_cols).float().unsqueeze(0)
    return torch.sin(frequencies * t)


def ref_latents(activation, act_size):
    if activation.dim() == 4:
        return F.adaptive_avg_pool2d(activation, (act_size, act_size)).view(activation.size(0), -1)
    return F.adaptive_avg_pool1d(activation, act_size).view(activation.size(0), -1)


def ref_compute_lls(activation, labels, temperature, act_size, n_classes, modulation_term=None, modulation=0,
                    waveform="cosine"):
    latents = ref_latents(activation, act_size)
    basis = ref_frequency_matrix(n_classes, latents.size(1))
    if waveform == "square":
        basis = torch.sign(basis)
    latents = F.normalize(latents, dim=1)
    layer_pred = torch.matmul(latents, basis.T)
    if modulation == 1:
        layer_pred = modulation_term * layer_pred
    if modulation == 2:
        layer_pred = torch.matmul(layer_pred, modulation_term)
    return F.cross_entropy(layer_pred / temperature, labels)


def ref_compute_local_losses(activation, labels, local_classifier, temperature, act_size):
    latents = ref_latents(activation, act_size)
    local_classifier_red = F.adaptive_avg_pool1d(local_classifier, latents.size(1))
    return F.cross_entropy(torch.matmul(latents, local_classifier_red.T) / temperature, labels)


def ref_block_loss(mode, waveform, h, y, act_size, n_classes, hidden_dim):
    """One `LLS_layer`'s loss, its parameters drawn from the global RNG in its constructor's order."""
    if mode.endswith("random"):
        feedback = 0.1 * torch.randn(n_classes, hidden_dim)
        if mode == "lls-m-random":
            feedback = 0.01 * torch.randn(n_classes, 1) * feedback
        elif mode == "lls-mxm-random":
            feedback = torch.matmul(0.01 * torch.randn(n_classes, n_classes), feedback)
        return ref_compute_local_losses(h, y, feedback, TAU, act_size)
    if mode == "lls-m":
        term, modulation = 0.01 * torch.randn(n_classes), 1
    elif mode == "lls-mxm":
        term, modulation = 0.01 * torch.randn(n_classes, n_classes), 2
    else:
        term, modulation = None, 0
    return ref_compute_lls(h, y, TAU, act_size, n_classes, term, modulation, waveform)


# ---- llsbench on the same blocks --------------------------------------------------------------------
# (kind, output shape of h, LLS pool size, reference hidden_dim): a conv block at T = 2048, one at
# T = 64 (random basis pooled 2048 → 64), SmallConvL's linear block (1024 features pooled up to
# 2048) and a linear block used as it is.
BLOCKS = [("conv", (128, 8, 8), 4, 2048), ("conv", (16, 4, 4), 2, 2048), ("linear", (1024,), 2048, 2048),
          ("linear", (512,), 512, 512)]


def net_with(blocks):
    layers, shape = [], (3, 8, 8)
    for kind, out, pool, drawn in blocks:
        if kind == "conv":
            layers.append(Block(conv_body(shape[0], out[0]), post(nn.AdaptiveAvgPool2d(out[1:])), pool_size=pool,
                                drawn_width=drawn))
        else:
            flat = [nn.Flatten()] if len(shape) > 1 else []
            fin = torch.Size(shape).numel()
            layers.append(Block(nn.Sequential(*flat, linear_body(fin, out[0])), pool_size=pool, drawn_width=drawn))
        shape = out
    return BlockNet(layers, nn.Linear(shape[0], 10))


CASES = [("lls", "sin-ref", "lls", "cosine"), ("lls", "square", "lls", "square"),
         ("lls-m", "sin-ref", "lls-m", "cosine"), ("lls-m", "square", "lls-m", "square"),
         ("lls-mxm", "sin-ref", "lls-mxm", "cosine"), ("lls-mxm", "square", "lls-mxm", "square"),
         ("lls", "random", "lls-random", None), ("lls-m", "random", "lls-m-random", None),
         ("lls-mxm", "random", "lls-mxm-random", None)]


@pytest.mark.parametrize("classes", [10, 100, 200])
@pytest.mark.parametrize("rule,basis,ref_mode,waveform", CASES)
def test_local_loss_equals_the_reference(rule, basis, ref_mode, waveform, classes):
    torch.manual_seed(0)
    model = net_with(BLOCKS)
    torch.manual_seed(1)
    method = create_method(rule, model, num_classes=classes, input_shape=(3, 8, 8), basis=basis, temperature=TAU)
    gen = torch.Generator().manual_seed(2)
    hs = [torch.randn(N, *out, generator=gen) for _, out, _, _ in BLOCKS]
    y = torch.randint(0, classes, (N,), generator=gen)
    torch.manual_seed(1)
    for i, (h, (_, _, pool, drawn)) in enumerate(zip(hs, BLOCKS)):
        expected = ref_block_loss(ref_mode, waveform, h, y, pool, classes, drawn)
        got = method.local_loss(i, h, y)
        torch.testing.assert_close(got, expected, rtol=1e-6, atol=0)


def test_smallconvl_linear_block_sees_each_feature_twice():
    net = create_model("smallconvl", in_channels=3, num_classes=10, image_size=32)
    method = create_method("lls", net, num_classes=10, input_shape=(3, 32, 32), basis="square")
    assert method.signal_width(3) == 2048
    h = torch.randn(4, 1024)
    z = method.local_logits(3, h) * TAU
    b = method.aux[3].basis
    torch.testing.assert_close(z, F.normalize(h.repeat_interleave(2, dim=1), dim=1) @ b.T)
    own = create_model("smallconvl", in_channels=3, num_classes=10, image_size=32, linear_pool=0)
    assert create_method("lls", own, num_classes=10, input_shape=(3, 32, 32)).signal_width(3) == 1024


def test_reference_sin_is_float32_and_sin_f64_is_the_clean_phase():
    from llsbench_methods.lls import make_basis
    f32 = make_basis("sin-ref", 10, 1024)
    f64 = make_basis("sin-f64", 10, 1024)
    assert torch.equal(f32, ref_frequency_matrix(10, 1024))
    assert (f32 - f64).abs().max() > 1e-3  # float32's f·t shifts the phase at large t
    assert torch.equal(make_basis("square", 10, 300)[:, 0], torch.zeros(10))
    assert set(make_basis("square-pm1", 10, 300).unique().tolist()) == {-1.0, 1.0}
