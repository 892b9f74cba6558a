"""`MaxPool2x2` against aten's `nn.MaxPool2d(2)`: the same outputs, gradients and updates."""
import copy

import pytest
import torch
from torch import nn

from llsbench.method_registry import create_method
from llsbench.models import create_model
from llsbench.models.pooling import MaxPool2x2, use_aten_max_pool
from llsbench.optim import optimizer_factory
from llsbench.profiling import SavedTensorTracker

pytestmark = pytest.mark.usefixtures("one_thread")


def outputs_and_gradient(pool: nn.Module, x: torch.Tensor, seed: int = 1):
    xi = x.clone().requires_grad_()
    out = pool(xi)
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed))
    out.backward(g)
    return out, xi.grad


def assert_same(a: torch.Tensor, b: torch.Tensor) -> None:
    assert a.shape == b.shape and a.stride() == b.stride()
    assert torch.equal(a, b)  # -0.0 == 0.0: the only difference allowed (module docstring)


@pytest.mark.parametrize("shape", [(4, 3, 8, 8), (2, 5, 6, 10), (1, 1, 2, 2), (3, 7, 32, 32)])
def test_random_maps_give_aten_values_and_gradients(shape):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    for ours, theirs in zip(outputs_and_gradient(MaxPool2x2(), x), outputs_and_gradient(nn.MaxPool2d(2), x)):
        assert_same(ours, theirs)


@pytest.mark.parametrize("values", [3, 2, 1])
def test_ties_send_the_gradient_to_the_first_maximum_as_aten_does(values):
    # integer maps tie in most windows; a constant map ties everywhere
    x = torch.randint(0, values, (4, 6, 8, 8), generator=torch.Generator().manual_seed(0)).float()
    ours, theirs = outputs_and_gradient(MaxPool2x2(), x), outputs_and_gradient(nn.MaxPool2d(2), x)
    assert_same(ours[0], theirs[0])
    assert_same(ours[1], theirs[1])
    assert (ours[1] != 0).sum() == ours[0].numel()  # one element per window gets the gradient


def test_without_gradient_the_values_are_aten_values():
    x = torch.randn(3, 4, 16, 12)
    with torch.no_grad():
        assert_same(MaxPool2x2()(x), nn.MaxPool2d(2)(x))
    assert_same(MaxPool2x2()(x), nn.MaxPool2d(2)(x))  # grad enabled, x not requiring it


@pytest.mark.parametrize("case", ["channels_last", "odd", "3d"])
def test_other_maps_go_to_aten(case):
    x = {"channels_last": torch.randn(2, 4, 8, 8).contiguous(memory_format=torch.channels_last),
         "odd": torch.randn(2, 4, 7, 9), "3d": torch.randn(4, 8, 8)}[case]
    for ours, theirs in zip(outputs_and_gradient(MaxPool2x2(), x), outputs_and_gradient(nn.MaxPool2d(2), x)):
        assert torch.equal(ours, theirs)


def test_a_traced_model_still_shows_aten_max_pool():
    graph = torch.jit.trace(MaxPool2x2(), torch.randn(1, 2, 4, 4)).graph
    assert "aten::max_pool2d" in str(graph)


def test_backward_holds_two_bool_masks_instead_of_input_and_indices():
    x = torch.randn(8, 16, 32, 32, requires_grad=True)
    held = {}
    for pool in (MaxPool2x2(), nn.MaxPool2d(2)):
        with SavedTensorTracker() as tracker:
            pool(x * 2.0)
        held[type(pool).__name__] = tracker.peak_bytes
    n = x.numel()
    assert held == {"MaxPool2x2": n // 2 + n // 4, "MaxPool2d": 4 * n + 8 * (n // 4)}


@pytest.mark.parametrize("method", ["bp", "lls", "dfa"])
def test_a_training_step_is_unchanged(method):
    torch.manual_seed(0)
    fast = create_model("smallconv", in_channels=3, num_classes=10, image_size=16)
    assert sum(isinstance(m, MaxPool2x2) for m in fast.modules()) == 2
    aten = copy.deepcopy(fast)
    assert use_aten_max_pool(aten) == 2
    x, y = torch.randn(16, 3, 16, 16), torch.randint(0, 10, (16,))
    states = []
    for model in (fast, aten):
        torch.manual_seed(1)
        rule = create_method(method, model, num_classes=10, input_shape=(3, 16, 16),
                             optimizer=optimizer_factory("adamw-sf"))
        rule.train()
        for _ in range(2):
            rule.step(x, y)
        states.append(list(model.state_dict().values()))
    assert all(torch.equal(a, b) for a, b in zip(*states, strict=True))
