"""LLS against the paper's equations: autograd of the local loss equals the closed forms of
Eq. 4 (weights), Eq. 5 (LLS-M's M) and Eq. 6 (LLS-MxM's M)."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from llsbench.method_registry import create_method
from llsbench.models import Block, BlockNet
from llsbench.models.blocks import conv_body, linear_body, post
from llsbench_methods.lls import make_basis

C, N, TAU, SLOPE = 4, 6, 0.5, 0.01  # classes, batch, temperature, LeakyReLU slope


def leaky_grad(pre):
    return torch.where(pre > 0, 1.0, SLOPE)


def linear_net(fin=5, hidden=7):
    return BlockNet([Block(linear_body(fin, hidden, batch_norm=False))], nn.Linear(hidden, C)).double()


def conv_net(cin=2, cout=3):
    blocks = [Block(conv_body(cin, cout, batch_norm=False), post(nn.Flatten()), pool_size=2)]
    return BlockNet(blocks, nn.Linear(cout * 16, C)).double()


def local_grads(method, x, y):
    """Gradients that one LLS step leaves in the first block (updates off: weights unchanged)."""
    with method.updates_off():
        method.step(x, y)
    return method.model.blocks[0].body[0].weight.grad, method


def softmax_error(z, y):
    return (F.softmax(z, dim=1) - F.one_hot(y, C).double()) / z.shape[0]


@pytest.mark.parametrize("normalize", ["on", "off"])
@pytest.mark.parametrize("basis", ["sin-ref", "square", "cos", "sin-f64", "square-pm1"])
def test_linear_block_gradient_is_eq4(basis, normalize):
    torch.manual_seed(0)
    model = linear_net()
    method = create_method("lls", model, num_classes=C, input_shape=(5,), basis=basis, normalize=normalize)
    method.aux.double()
    x, y = torch.randn(N, 5, dtype=torch.double), torch.randint(0, C, (N,))
    grad, _ = local_grads(method, x, y)

    lin = model.blocks[0].body[0]
    pre = x @ lin.weight.T + lin.bias
    h = F.leaky_relu(pre, SLOPE)
    B = method.aux[0].basis
    a = F.normalize(h, dim=1) if normalize == "on" else h
    e = softmax_error(a @ B.T / TAU, y)
    g_a = e @ B / TAU  # the error projected back through the fixed basis
    if normalize == "on":  # Jacobian of a = h / ||h||
        norm = h.norm(dim=1, keepdim=True)
        g_h = (g_a - a * (a * g_a).sum(1, keepdim=True)) / norm
    else:
        g_h = g_a
    expected = (g_h * leaky_grad(pre)).T @ x  # Eq. 4: ((p − y*) B ⊙ f'(z))ᵀ h(l−1), 1/N inside e
    torch.testing.assert_close(grad, expected)


def test_conv_block_gradient_is_eq4_through_pooling():
    torch.manual_seed(1)
    model = conv_net()
    method = create_method("lls", model, num_classes=C, input_shape=(2, 4, 4), basis="square", normalize="off")
    method.aux.double()
    x, y = torch.randn(N, 2, 4, 4, dtype=torch.double), torch.randint(0, C, (N,))
    grad, _ = local_grads(method, x, y)

    conv = model.blocks[0].body[0]
    pre = F.conv2d(x, conv.weight, conv.bias, padding=1)
    a = F.avg_pool2d(F.leaky_relu(pre, SLOPE), 2).flatten(1)  # 3 channels × 2×2
    B = method.aux[0].basis
    g_a = softmax_error(a @ B.T / TAU, y) @ B / TAU
    g_h = F.interpolate(g_a.view(N, 3, 2, 2), scale_factor=2, mode="nearest") / 4  # back through 2×2 mean
    delta = g_h * leaky_grad(pre)
    expected = torch.nn.grad.conv2d_weight(x, conv.weight.shape, delta, padding=1)
    torch.testing.assert_close(grad, expected)


def test_lls_m_update_is_eq5():
    torch.manual_seed(2)
    model = linear_net()
    method = create_method("lls-m", model, num_classes=C, input_shape=(5,), basis="square")
    method.aux.double()
    x, y = torch.randn(N, 5, dtype=torch.double), torch.randint(0, C, (N,))
    local_grads(method, x, y)
    proj = method.aux[0]
    a = F.normalize(model.blocks[0](x), dim=1).detach()
    s = a @ proj.basis.T  # a Bᵀ
    e = softmax_error(s * proj.m / TAU, y)
    torch.testing.assert_close(proj.m.grad, (e * s).sum(0) / TAU)


def test_lls_mxm_update_is_eq6():
    torch.manual_seed(3)
    model = linear_net()
    method = create_method("lls-mxm", model, num_classes=C, input_shape=(5,), basis="square")
    method.aux.double()
    x, y = torch.randn(N, 5, dtype=torch.double), torch.randint(0, C, (N,))
    local_grads(method, x, y)
    proj = method.aux[0]
    s = F.normalize(model.blocks[0](x), dim=1).detach() @ proj.basis.T
    e = softmax_error(s @ proj.m / TAU, y)
    torch.testing.assert_close(proj.m.grad, s.T @ e / TAU)


def test_float64_bases_have_the_specified_frequencies():
    """The named float64 variants: sin-f64, square-pm1 (±1, sign(0) = +1) and the paper's cos."""
    basis = make_basis("square-pm1", 10, 300)
    assert set(basis.unique().tolist()) == {-1.0, 1.0}
    freqs = torch.linspace(50, 512, 10, dtype=torch.float64)
    t = torch.arange(300, dtype=torch.float64)
    sines = torch.sin(freqs[:, None] * t)
    torch.testing.assert_close(make_basis("sin-f64", 10, 300), sines.float())
    assert torch.equal(basis[:, 1:], torch.sign(sines[:, 1:]).float())
    cos = make_basis("cos", 10, 300)
    torch.testing.assert_close(cos, torch.cos(freqs[:, None] * (t + 1)).float())


def test_reference_bases_are_float32_sin_its_sign_and_pooled_noise():
    freqs = torch.linspace(50, 512, 10)[:, None]
    sines = torch.sin(freqs * torch.arange(300).float())
    assert torch.equal(make_basis("sin-ref", 10, 300), sines)
    assert torch.equal(make_basis("square", 10, 300), torch.sign(sines))
    torch.manual_seed(0)
    drawn = 0.1 * torch.randn(10, 2048)
    torch.manual_seed(0)
    torch.testing.assert_close(make_basis("random", 10, 300), F.adaptive_avg_pool1d(drawn, 300))
    torch.manual_seed(0)
    direct = 0.1 * torch.randn(10, 300)
    torch.manual_seed(0)
    assert torch.equal(make_basis("random-cxt", 10, 300), direct)


def test_basis_is_a_buffer_built_once(monkeypatch):
    torch.manual_seed(0)
    model = conv_net().float()
    method = create_method("lls", model, num_classes=C, input_shape=(2, 4, 4), basis="square")
    ptr = method.aux[0].basis.data_ptr()
    assert "basis" in dict(method.aux[0].named_buffers())

    def fail(*_):
        raise AssertionError("basis rebuilt during a step")

    monkeypatch.setattr("llsbench_methods.lls.make_basis", fail)
    method.step(torch.randn(N, 2, 4, 4), torch.randint(0, C, (N,)))
    assert method.aux[0].basis.data_ptr() == ptr


def test_random_basis_differs_per_layer_and_is_not_trainable():
    torch.manual_seed(0)
    model = BlockNet([Block(linear_body(5, 7)), Block(linear_body(7, 7))], nn.Linear(7, C))
    method = create_method("lls", model, num_classes=C, input_shape=(5,), basis="random")
    b0, b1 = method.aux[0].basis, method.aux[1].basis
    assert b0.shape == b1.shape == (C, 7) and not torch.equal(b0, b1)
    assert method.extra_parameters() == 0
