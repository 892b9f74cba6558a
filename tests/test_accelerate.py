"""Opt-in accelerators change kernels or precision, never the rule: one update under each
matches the eager fp32 update within the tolerance stated per accelerator."""
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from llsbench.accelerate import Acceleration
from llsbench.cli import cli
from llsbench.config import RunConfig
from llsbench.errors import ConfigError
from llsbench.method_registry import create_method
from llsbench.models import create_model
from llsbench.models.blocks import Block, conv_body, linear_body, post
from llsbench.models.net import BlockNet
from llsbench.optim import optimizer_factory

pytestmark = pytest.mark.usefixtures("one_thread")

# relative error ‖Δw − Δw_fp32‖ / ‖Δw_fp32‖ of one plain-SGD update (Δw = −lr·gradient), all weights
TOLERANCE = {"channels_last": 1e-4, "compile": 1e-4, "bf16": 0.15}  # bf16: measured 0.12 (BP), 0.08 (LLS)


def tiny_net() -> BlockNet:
    """One conv block and one linear block: few kernels, so compiling stays short on a CPU."""
    return BlockNet([Block(conv_body(3, 8), post(nn.MaxPool2d(4), nn.Flatten()), pool_size=2),
                     Block(linear_body(8 * 4 * 4, 32))], nn.Linear(32, 10))


def update(method: str, acceleration: Acceleration, model: str = "smallconv") -> torch.Tensor:
    torch.manual_seed(0)
    net = tiny_net() if model == "tiny" else create_model(model, in_channels=3, num_classes=10, image_size=16)
    model = acceleration.prepare(net)
    rule = create_method(method, model, num_classes=10, input_shape=(3, 16, 16),
                         optimizer=optimizer_factory("sgd", lr=0.1, momentum=0.0))
    before = [p.detach().clone() for p in model.parameters()]
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(32, 3, 16, 16, generator=g), torch.randint(0, 10, (32,), generator=g)
    acceleration.step(rule, x, y)
    return torch.cat([(p.detach() - b).flatten() for p, b in zip(model.parameters(), before, strict=True)])


def relative_error(method: str, model: str = "smallconv", **accel) -> float:
    exact, fast = update(method, Acceleration(), model), update(method, Acceleration(**accel), model)
    return ((fast - exact).norm() / exact.norm()).item()


@pytest.mark.parametrize("method", ["bp", "lls"])
def test_channels_last_update_matches_eager_fp32(method):
    assert relative_error(method, channels_last=True) < TOLERANCE["channels_last"]


@pytest.mark.parametrize("method", ["bp", "lls"])
def test_bf16_autocast_update_matches_eager_fp32(method):
    error = relative_error(method, precision="bf16")
    assert 0 < error < TOLERANCE["bf16"]  # > 0: autocast really ran in bf16


@pytest.mark.slow
def test_compiled_update_matches_eager_fp32():
    assert relative_error("lls", "tiny", compile=True) < TOLERANCE["compile"]


def test_accelerators_are_run_params_and_bad_precision_is_one_line():
    params = RunConfig(precision="bf16", channels_last=True).validate().to_params()
    assert (params["precision"], params["channels_last"], params["compile"]) == ("bf16", "True", "False")
    with pytest.raises(ConfigError, match="unknown precision 'fp16'; valid precisions: fp32, bf16"):
        RunConfig(precision="fp16").validate()
    result = CliRunner().invoke(cli, ["run", "method", "bp", "--precision", "fp16", "--no-track"])
    assert result.exit_code == 2 and "fp16" in result.output


def test_report_keeps_accelerated_runs_apart_and_labels_them():
    import pandas as pd

    from llsbench.reports.table import cell_frame

    runs = pd.DataFrame({"run_id": ["a", "b"], "tags.cell_key": ["k", "k2"], "tags.dataset": ["digits"] * 2,
                         "tags.model_label": ["smallconv"] * 2, "tags.method_label": ["lls"] * 2,
                         "tags.method": ["lls"] * 2, "tags.budget": ["full"] * 2, "tags.budget_overrides": ["none"] * 2,
                         "tags.seed": ["0", "0"], "metrics.final_test_acc": [90.0, 91.0],
                         "params.precision": [None, "bf16"], "params.channels_last": [None, "True"]})
    assert list(cell_frame(runs)["budget"]) == ["full", "full [bf16+channels-last]"]
