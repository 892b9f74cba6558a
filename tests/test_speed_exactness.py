"""Speed and memory changes that must not change a single number: lean activations, the LLS
pooling backward, and block-local rules stepping every optimiser after the walk."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from llsbench.method_registry import create_method
from llsbench.models import create_model
from llsbench.models.lean import LeanLeakyReLU, LeanReLU, use_lean_activations
from llsbench.profiling import SavedTensorTracker
from llsbench_methods.lls import reduce_activation

pytestmark = pytest.mark.usefixtures("one_thread")


def conv_bn_act(act) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), act(), nn.Conv2d(8, 4, 1), act())


@pytest.mark.parametrize("act", [lambda: nn.LeakyReLU(0.1), nn.ReLU])
def test_lean_activations_give_bit_identical_values_and_gradients(act):
    plain = conv_bn_act(act)
    lean = copy.deepcopy(plain)
    assert use_lean_activations(lean) == 2
    assert all(type(m) in (LeanLeakyReLU, LeanReLU) for m in lean.modules() if isinstance(m, (nn.LeakyReLU, nn.ReLU)))
    x = torch.randn(6, 3, 5, 5)
    x[:, :, 0] = 0.0  # exact zeros: the gradient's x > 0 boundary
    outs = []
    for net in (plain, lean):
        xi = x.clone().requires_grad_()
        out = net(xi)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        outs.append([out, xi.grad, *(p.grad for p in net.parameters())])
    assert all(torch.equal(a, b) for a, b in zip(*outs, strict=True))


def test_lean_activation_holds_a_one_byte_mask():
    x = torch.randn(64, 1000, requires_grad=True)
    held = {}
    for act in (nn.LeakyReLU(), LeanLeakyReLU()):
        with SavedTensorTracker() as tracker:
            act(x * 2.0)
        held[type(act).__name__] = tracker.peak_bytes
    assert held == {"LeakyReLU": 4 * 64000, "LeanLeakyReLU": 64000}


@pytest.mark.parametrize("shape,pool", [((3, 5, 16, 16), 4), ((2, 4, 8, 12), 2), ((2, 3, 6, 6), 3)])
def test_lls_pooling_gradient_equals_adaptive_avg_pool_backward(shape, pool):
    h = torch.randn(shape, requires_grad=True)
    g = torch.randn(shape[0], shape[1] * pool * pool)
    ours = torch.autograd.grad(reduce_activation(h, pool), h, g)[0]
    reference = torch.autograd.grad(F.adaptive_avg_pool2d(h, pool).flatten(1), h, g)[0]
    torch.testing.assert_close(ours, reference, rtol=0, atol=0)


def per_block_step(rule, x, y):
    """The block-local step as it was: each block's optimiser steps right after its backward."""
    h = x
    for i, (block, opt) in enumerate(zip(rule.model.blocks, rule.optimizers)):
        out = block(h.detach())
        loss = rule.local_loss(i, out, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        h = block.post(out.detach())
    opt = rule.optimizers[-1]
    opt.zero_grad(set_to_none=True)
    rule.head_objective(F.cross_entropy(rule.model.head(h), y)).backward()  # predsim: (1 − β)·CE
    opt.step()


@pytest.mark.parametrize("method", ["lls", "lls-mxm", "local-losses", "predsim"])
@pytest.mark.parametrize("optimizer", ["adamw-sf", "adam", "sgd"])
def test_stepping_after_the_walk_is_the_per_block_update_exactly(method, optimizer):
    from llsbench.optim import optimizer_factory

    rules = []
    for _ in range(2):
        torch.manual_seed(0)
        net = create_model("smallconv", in_channels=1, num_classes=10, image_size=8)
        rules.append(create_method(method, net, num_classes=10, input_shape=(1, 8, 8),
                                   optimizer=optimizer_factory(optimizer)))
    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        x, y = torch.randn(16, 1, 8, 8, generator=g), torch.randint(0, 10, (16,), generator=g)
        rules[0].step(x, y)
        per_block_step(rules[1], x, y)
    for a, b in zip(rules[0].model.state_dict().values(), rules[1].model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    for a, b in zip(rules[0].aux.state_dict().values(), rules[1].aux.state_dict().values(), strict=True):
        assert torch.equal(a, b)
