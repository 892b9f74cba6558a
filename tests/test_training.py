"""The trainer with BP and the LLS family: learning on real data, seeding, failures, isolation."""
import pytest
import torch

from llsbench.config import RunConfig
from llsbench.method_registry import create_method
from llsbench.models import create_model
from llsbench.trainer import Trainer

LOCAL_RULES = ["lls", "lls-m", "lls-mxm"]


def fit(**settings):
    config = RunConfig(**{"dataset": "digits", "model": "smallconv", "epochs": 3, "batch_size": 64, **settings})
    return Trainer(config, progress=False).fit()


@pytest.mark.parametrize("method,options", [("bp", {}), ("lls", {"basis": "square"})])
def test_learns_digits_within_seconds(method, options):
    result = fit(method=method, method_options=options, epochs=4)
    assert result.status == "finished"
    assert result.summary["final_test_acc"] >= 90.0, result.history


@pytest.mark.parametrize("method", ["lls-m", "lls-mxm"])
@pytest.mark.parametrize("basis", ["square", "random"])
def test_modulated_variants_learn_digits(method, basis):
    result = fit(method=method, method_options={"basis": basis}, epochs=4)
    assert result.summary["final_test_acc"] >= 85.0, result.history


@pytest.mark.slow
def test_lls_square_passes_95_percent_on_real_mnist(mnist_dir):
    result = fit(method="lls", method_options={"basis": "square"}, dataset="mnist", data_dir=str(mnist_dir),
                 epochs=1, batch_size=128, limit_train_batches=150)
    assert result.summary["final_test_acc"] > 95.0, result.history


def test_same_seed_same_metrics_different_seed_different():
    settings = dict(method="lls", method_options={"basis": "square"}, epochs=2)
    a, b, c = fit(seed=7, **settings), fit(seed=7, **settings), fit(seed=8, **settings)
    keys = ["train_loss", "train_acc", "test_loss", "test_acc"]
    assert [[h[k] for k in keys] for h in a.history] == [[h[k] for k in keys] for h in b.history]
    assert [h["train_loss"] for h in a.history] != [h["train_loss"] for h in c.history]


def test_non_finite_loss_ends_the_run_as_failed_not_a_crash():
    result = fit(method="bp", lr=1e12, optimizer="sgd", epochs=2)
    assert result.status == "failed"
    assert "non-finite loss" in result.reason


@pytest.mark.parametrize("method,expected", [("lls", lambda L, C: 0), ("lls-m", lambda L, C: L * C),
                                             ("lls-mxm", lambda L, C: L * C * C)])
@pytest.mark.parametrize("model,classes", [("smallconv", 10), ("vgg8", 100)])
def test_additional_trainable_parameters(method, expected, model, classes):
    net = create_model(model, in_channels=3, num_classes=classes, image_size=32)
    rule = create_method(method, net, num_classes=classes, input_shape=(3, 32, 32))
    assert rule.extra_parameters() == expected(len(net.blocks), classes)


def _gradients_reaching_block_inputs(method_name):
    torch.manual_seed(0)
    net = create_model("smallconv", in_channels=1, num_classes=10, image_size=8)
    rule = create_method(method_name, net, num_classes=10, input_shape=(1, 8, 8))
    arrived = {}

    def watch(index):
        def pre_hook(_module, args):
            if args[0].requires_grad:
                args[0].register_hook(lambda g: arrived.__setitem__(index, g.abs().sum().item()))
        return pre_hook

    handles = [b.register_forward_pre_hook(watch(i)) for i, b in enumerate(net.blocks)]
    rule.step(torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,)))
    for h in handles:
        h.remove()
    return arrived


@pytest.mark.parametrize("method", LOCAL_RULES)
def test_no_gradient_reaches_an_earlier_block_under_local_rules(method):
    assert _gradients_reaching_block_inputs(method) == {}


def test_under_bp_gradients_reach_every_earlier_block():
    arrived = _gradients_reaching_block_inputs("bp")
    assert sorted(arrived) == [1, 2, 3] and all(v > 0 for v in arrived.values())
