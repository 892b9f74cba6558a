"""Profiling: MAC counters against textbook formulas, declared learning-signal costs against
what FlopCounterMode counts, memory held for backward, and that profiling changes nothing."""
import json
import re

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from mlflow import MlflowClient
from torch import nn

from llsbench.cli import cli
from llsbench.config import RunConfig
from llsbench.costs import weight_layer_macs
from llsbench.method_registry import create_method
from llsbench.models import create_model
from llsbench.models.pooling import use_aten_max_pool
from llsbench.profiling import (SavedTensorTracker, forward_macs, mac_counter, profile_method, random_batch,
                                step_macs)
from llsbench.profiling.callback import ProfileCallback
from llsbench.profiling.macs import counted_macs
from llsbench.profiling.memory import held_for_backward_bytes
from llsbench.tracking import MlflowLogger
from llsbench.trainer import Trainer

N = 4  # batch


pytestmark = pytest.mark.usefixtures("one_thread")


def counted(fn) -> int:
    """MACs (all samples) FlopCounterMode counts while `fn` runs."""
    counter = mac_counter()
    with counter:
        fn()
    return sum(counted_macs(counter).values())


def forward_backward(layer, x):
    layer(x).sum().backward()


# ---- textbook MACs ----------------------------------------------------------------------
def test_linear_macs_are_in_times_out():
    layer = nn.Linear(7, 5)
    assert forward_macs(layer, (7,)).per_sample == 7 * 5
    x = torch.randn(N, 7, requires_grad=True)
    assert counted(lambda: layer(x)) == N * 7 * 5
    # backward: input-gradient and weight-gradient, each as many MACs as the forward
    assert counted(lambda: forward_backward(layer, x)) == 3 * N * 7 * 5


@pytest.mark.parametrize("stride,groups", [(1, 1), (2, 2)])
def test_conv_macs_are_output_positions_times_kernel_volume(stride, groups):
    cin, cout, k, side = 4, 6, 3, 8
    layer = nn.Conv2d(cin, cout, k, stride=stride, padding=1, groups=groups)
    out_side = (side + 2 - k) // stride + 1
    textbook = out_side * out_side * cout * (cin // groups) * k * k
    assert forward_macs(layer, (cin, side, side)).per_sample == textbook
    x = torch.randn(N, cin, side, side, requires_grad=True)
    assert counted(lambda: layer(x)) == N * textbook
    assert counted(lambda: forward_backward(layer, x)) == 3 * N * textbook


def test_matrix_vector_products_are_counted_too():
    a, v = torch.randn(6, 9), torch.randn(9)
    assert counted(lambda: a @ v) == 6 * 9
    assert counted(lambda: v @ v) == 9


def test_fvcore_lists_ops_it_cannot_count():
    model = create_model("smallconv", in_channels=1, num_classes=10, image_size=8)
    assert forward_macs(model, (1, 8, 8)).unsupported_ops == {"aten::leaky_relu": 4, "aten::max_pool2d": 2}


# ---- declared learning-signal MACs against FlopCounterMode --------------------------------
def small_model(image_size=8):
    torch.manual_seed(0)
    return create_model("smallconv", in_channels=1, num_classes=10, image_size=image_size)


def rule(name, model, **options):
    return create_method(name, model, num_classes=10, input_shape=(1, 8, 8), **options)


def test_bp_signal_cost_is_the_activation_gradient_part_of_backward():
    """Freezing every weight and starting backward at a leaf h(l) leaves exactly the
    activation-gradient ops (conv input-grads, mm for grad_input) between the loss and h(l):
    their MACs must equal the declared cost of blocks l, l+1, …"""
    model = small_model().eval()
    costs = rule("bp", model).learning_signal_cost()
    for p in model.parameters():
        p.requires_grad_(False)
    x, y = torch.randn(N, 1, 8, 8), torch.randint(0, 10, (N,))
    with torch.no_grad():
        hs = [h for h in model.block_outputs(x)[:-1]]
    for i, h in enumerate(hs):
        leaf = h.clone().requires_grad_(True)

        def above(i=i, leaf=leaf):
            out = model.blocks[i].post(leaf)
            for block in model.blocks[i + 1:]:
                out = block.post(block(out))
            return F.cross_entropy(model.head(out), y)

        loss = above()
        assert counted(loss.backward) == N * sum(c.macs for c in costs[i:]), f"from block{i}"


@pytest.mark.parametrize("name", ["bp", "lls"])
def test_step_macs_are_forward_plus_weight_gradients_plus_declared_signal(name):
    """A whole step's counted MACs = forward (W) + weight-gradients (W) + the declared signal,
    for BP (signal = activation-gradients) and LLS (signal = projection and its transpose)."""
    model = small_model().train()
    method = rule(name, model)
    w = sum(layer.macs for layer in weight_layer_macs(model, (1, 8, 8)))
    signal = sum(c.macs for c in method.learning_signal_cost())
    x, y = random_batch(method, N)
    with method.updates_off():
        assert step_macs(method, x, y).per_sample == 2 * w + signal


@pytest.mark.parametrize("name", ["lls", "lls-mxm"])
def test_lls_signal_cost_is_the_projection_and_its_transpose(name):
    """Per block: z = a Bᵀ (C·T) forward and e B (C·T) back to a (plus M's C² each way for
    LLS-MxM, with M frozen so that its own weight-gradient is not part of the count)."""
    model = small_model()
    method = rule(name, model)
    for p in method.aux.parameters():
        p.requires_grad_(False)
    y = torch.randint(0, 10, (N,))
    for i, cost in enumerate(method.learning_signal_cost()):
        h = torch.randn(N, *method.block_shapes[i], requires_grad=True)
        assert counted(lambda: F.cross_entropy(method.local_logits(i, h), y).backward()) == N * cost.macs


# ---- memory -----------------------------------------------------------------------------
def test_saved_tensors_count_once_and_are_released_with_their_graph():
    a = torch.randn(1000, requires_grad=True)
    with SavedTensorTracker() as held:
        (a * a).sum().backward()  # a saved twice: one storage
        a.exp().sum().backward()  # a new graph after the first was freed
    assert held.peak_bytes == 4000 and held.live_bytes == 0
    with SavedTensorTracker(exclude=[a]) as held:
        (a * a).sum().backward()
    assert held.peak_bytes == 0


def test_vgg8_lls_holds_at_most_a_quarter_of_what_bp_holds():
    held = {}
    for name, pooling in (("bp", "aten"), ("bp", "MaxPool2x2"), ("lls", "MaxPool2x2")):
        torch.manual_seed(0)
        model = create_model("vgg8", in_channels=3, num_classes=10, image_size=32)
        if pooling == "aten":
            use_aten_max_pool(model)
        method = create_method(name, model, num_classes=10, input_shape=(3, 32, 32))
        x, y = random_batch(method, 32)
        with method.updates_off():
            held[name, pooling] = held_for_backward_bytes(method, x, y)
    # the target, against BP as other PyTorch code runs it (0.333 before lean activations)
    assert held["lls", "MaxPool2x2"] <= 0.25 * held["bp", "aten"], held
    # llsbench's own BP holds two bool masks per max-pool instead of its input and int64 indices,
    # so against it LLS's share is larger (README, Performance)
    assert held["bp", "MaxPool2x2"] < 0.8 * held["bp", "aten"], held


# ---- profiling changes nothing ------------------------------------------------------------
def trained_rule(name):
    torch.manual_seed(0)
    model = create_model("smallconv", in_channels=1, num_classes=10, image_size=8, dropout=0.2)  # dropout: uses RNG
    method = rule(name, model)
    for seed in range(2):  # optimiser state, BN statistics and schedule-free averages exist
        method.step(*random_batch(method, N, seed))
    return method


def states_equal(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(u, v) for u, v in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


@pytest.mark.parametrize("name", ["bp", "lls"])
def test_profiling_leaves_weights_statistics_optimiser_and_rng_unchanged(name):
    profiled, control = trained_rule(name), trained_rule(name)
    assert states_equal(profiled.model, control.model)
    torch.manual_seed(123)
    profile_method(profiled, 8)
    after = torch.rand(3)
    torch.manual_seed(123)
    assert torch.equal(after, torch.rand(3)), "global RNG moved"
    assert states_equal(profiled.model, control.model), "weights or BN statistics changed"
    assert all(p.grad is None or torch.equal(p.grad, q.grad)
               for p, q in zip(profiled.model.parameters(), control.model.parameters()))
    batch = random_batch(profiled, N, seed=7)
    for method in (profiled, control):  # optimiser state and schedule-free mode were restored too
        torch.manual_seed(5)
        method.step(*batch)
    assert states_equal(profiled.model, control.model), "training after profiling diverges"


def test_training_run_logs_its_profile_to_mlflow(tracking_uri):
    config = RunConfig(method="lls", model="smallconv", dataset="digits", epochs=1, batch_size=48,
                       limit_train_batches=2, limit_test_batches=1, bn_batches=1, device="cpu")
    logger = MlflowLogger("profiling-test", tracking_uri)
    profile = ProfileCallback()
    Trainer(config, callbacks=[profile, logger], progress=False).fit()  # profile first: logged once the run exists
    metrics = MlflowClient(tracking_uri).get_run(logger.run_id).data.metrics
    expected = {"forward_macs", "step_macs", "signal_macs", "signal_macs_bp_ratio", "held_for_backward_bytes",
                "held_memory_bytes", "profile_batch_size"}
    assert expected <= set(metrics) and "cuda_peak_bytes" not in metrics
    assert metrics["profile_batch_size"] == 32
    assert metrics["signal_macs"] == profile.profile.signal.macs > 0
    assert metrics["held_memory_bytes"] > metrics["held_for_backward_bytes"] > 0


# ---- command line -----------------------------------------------------------------------
def test_profile_command_prints_every_figure_per_rule():
    result = CliRunner().invoke(cli, ["profile", "--model", "smallconv", "--dataset", "digits", "--methods",
                                      "bp,lls", "--batch-size", "4", "--format", "json", "-o", "lls.basis=square",
                                      "--device", "cpu"])
    assert result.exit_code == 0, result.output
    bp, lls = json.loads(result.output)
    assert bp["signal_macs_bp_ratio"] == 1.0 and lls["signal_macs_bp_ratio"] == bp["signal_macs"] / lls["signal_macs"]
    assert lls["held_for_backward_bytes"] < bp["held_for_backward_bytes"]
    assert lls["profile_batch_size"] == 4 and lls["forward_unsupported_ops"]


def test_bench_command_reports_ratios_to_the_first_rule():
    result = CliRunner().invoke(cli, ["bench", "--model", "smallconv", "--dataset", "digits", "--methods", "lls,bp",
                                      "--batch-size", "4", "--steps", "3", "--warmup", "1", "--format", "json",
                                      "--device", "cpu"])
    assert result.exit_code == 0, result.output
    lls, bp = json.loads(result.output)
    assert lls["ratio_to_lls"] == 1.0 and bp["ratio_to_lls"] == bp["median_step_s"] / lls["median_step_s"]
    assert lls["min_step_s"] <= lls["median_step_s"] <= lls["max_step_s"]


def test_overhead_command_reports_trainer_and_bench_images_per_s_and_their_ratio(one_thread):
    args = ["overhead", "--model", "smallconv", "--dataset", "digits", "--methods", "bp,lls", "--batch-size", "8",
            "--steps", "2", "--rounds", "2", "--warmup", "0", "--device", "cpu"]
    result = CliRunner().invoke(cli, [*args, "--format", "json"])
    assert result.exit_code == 0, result.output
    bp, lls = json.loads(result.output)
    for row in (bp, lls):
        assert row["trainer_images_per_s"] > 0 and row["bench_images_per_s"] > 0
        assert row["ratio"] == row["trainer_images_per_s"] / row["bench_images_per_s"]
        assert row["round_ratio_min"] <= row["round_ratio_median"] <= row["round_ratio_max"] and 0 <= row["trainer_data_share"] < 1
    assert [bp["method"], lls["method"]] == ["bp", "lls"]
    table = CliRunner().invoke(cli, args)
    assert table.exit_code == 0, table.output
    assert "| ratio " in table.output and "target ≥ 0.95" in table.output
    assert re.search(r"\| lls +\| [\d.]+ +\| [\d.]+ +\| \d\.\d{3} ", table.output), table.output


@pytest.mark.parametrize("option", ["basis=square", "dfa.basis=square", "lls.nope=1"])
def test_bad_rule_options_are_one_line_errors(option):
    result = CliRunner().invoke(cli, ["profile", "--model", "smallconv", "--dataset", "digits", "--methods",
                                      "bp,lls", "-o", option])
    assert result.exit_code == 2 and "Error:" in result.output, result.output
