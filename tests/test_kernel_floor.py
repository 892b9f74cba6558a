"""`llsbench floor`: the kernels of a step are recorded with their layouts and flags, replayed
alone (nothing else of the step), and set against the step and the reference's step."""
import collections
import textwrap
import time

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from llsbench.cli import cli
from llsbench.profiling.kernel_floor import BATCH_NORM, MATMUL, KernelReplay, floor_rounds, record_kernels

pytestmark = pytest.mark.usefixtures("one_thread")
aten = torch.ops.aten


def tiny_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1),
                         nn.Flatten(), nn.Linear(4 * 6 * 6, 5))


def bp_step(net, x):
    return lambda: net(x).square().mean().backward()


def test_a_backprop_step_records_its_convolutions_products_and_batch_norm_with_their_flags():
    net, x = tiny_net(), torch.randn(2, 3, 6, 6)
    calls = record_kernels(bp_step(net, x))
    ops = collections.Counter(c.op for c in calls)
    assert ops[aten.convolution.default] == 2 and ops[aten.convolution_backward.default] == 2
    assert ops[aten.native_batch_norm.default] == 1 and ops[aten.native_batch_norm_backward.default] == 1
    assert ops[aten.addmm.default] == 1 and ops[aten.mm.default] == 2  # linear: forward, input and weight grads
    masks = [c.args[-1] for c in calls if c.op == aten.convolution_backward.default]
    assert masks == [[True, True, True], [False, True, True]]  # the first conv's input needs no gradient
    assert net[0].weight.grad is not None  # the recorded step ran for real


def test_a_replay_makes_the_same_calls_on_fresh_tensors_of_the_same_layout():
    net, x = tiny_net(), torch.randn(2, 3, 6, 6)
    calls = record_kernels(bp_step(net, x))
    matmul = KernelReplay(calls, MATMUL)
    assert [op for op, _, _ in matmul.calls] == [c.op for c in calls if c.op in MATMUL]
    for (op, args, _), call in zip(matmul.calls, (c for c in calls if c.op in MATMUL)):
        for fresh, layout in zip(args, call.args):
            if isinstance(fresh, torch.Tensor):
                assert (tuple(fresh.shape), fresh.stride(), fresh.dtype) == (layout.shape, layout.stride, layout.dtype)
    transposed = [a for op, args, _ in matmul.calls for a in args
                  if isinstance(a, torch.Tensor) and a.dim() == 2 and not a.is_contiguous()]
    assert transposed  # the linear layer's weight goes in as a transposed view, and is replayed as one
    assert len(KernelReplay(calls, BATCH_NORM).calls) == 2
    net.zero_grad()
    KernelReplay(calls)()
    assert net[0].weight.grad is None  # the replay touches nothing of the model


def test_the_floor_times_only_the_kernels():
    net, x = tiny_net(), torch.randn(2, 3, 6, 6)
    step = bp_step(net, x)

    def slow_step():
        time.sleep(0.05)
        step()

    (times,) = floor_rounds({"slow": slow_step}, rounds=2, warmup=1)
    assert len(times.step_s) == len(times.matmul_s) == len(times.matmul_bn_s) == 2
    assert times.matmul_calls == 7
    row = times.row()
    assert row["median_step_s"] >= 0.05 > row["matmul_bn_s"]
    assert row["rest_s"] >= 0.04


FAKE_REFERENCE = textwrap.dedent("""
    import torch
    REF_CLASS = {"smallconv": "LLS_SmallConv"}
    def reference_step(model_name, mode, classes):
        conv = torch.nn.Conv2d(3, 2, 3)
        def step(x, y):
            conv(x).sum().backward()
        return step
""")


def test_the_command_sets_each_rule_against_its_kernels_and_the_reference(tmp_path):
    script = tmp_path / "ref.py"
    script.write_text(FAKE_REFERENCE)
    args = ["floor", "--model", "smallconv", "--dataset", "cifar10", "--methods", "bp,lls", "--batch-size", "4",
            "--rounds", "1", "--warmup", "1", "--device", "cpu"]
    result = CliRunner().invoke(cli, [*args, "--reference-script", str(script)])
    assert result.exit_code == 0, result.output
    lines = {line.split("|")[1].strip(): line for line in result.output.splitlines() if line.startswith("| ")}
    assert set(lines) == {"step", "bp", "lls", "reference-bp", "reference-lls"}
    assert "reference_over_matmul_bn" in lines["step"]
    assert f"torch {torch.__version__}" in result.output and "llsbench " in result.output
    cells = [c.strip() for c in lines["reference-bp"].split("|")[1:-1]]
    assert cells[-3:] == ["", "", ""] and all(cells[:-3])  # no ratio of the reference to itself
    assert all(c.strip() for c in lines["lls"].split("|")[1:-1])

    bad = CliRunner().invoke(cli, [*args[:2], "vgg8", *args[3:], "--reference-script", str(script)])
    assert bad.exit_code != 0
    assert "no model 'vgg8'; it has smallconv" in bad.output
    other = CliRunner().invoke(cli, [*args[:6], "dfa", *args[7:], "--reference-script", str(script)])
    assert "the reference has bp and lls only; --methods gave dfa" in other.output
    grey = CliRunner().invoke(cli, [*args[:4], "mnist", *args[5:], "--reference-script", str(script)])
    assert grey.exit_code != 0 and "3-channel inputs; --dataset gives 1" in grey.output
