"""PEPITA against its equations (hand-built passes and updates), its no-backward and shared-
dropout guarantees, its conv/BatchNorm mapping, and learning on digits and real MNIST."""
import time

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.grad import conv2d_weight
from torch.utils.flop_counter import FlopCounterMode

from llsbench.config import RunConfig
from llsbench.costs import weight_layer_macs
from llsbench.errors import ConfigError
from llsbench.method_registry import create_method
from llsbench.models import Block, BlockNet, create_model
from llsbench.models.blocks import conv_body, conv_dw_body, post
from llsbench.optim import optimizer_factory
from llsbench.trainer import Callback, Trainer

C, N, SLOPE = 4, 6, 0.01  # classes, batch, LeakyReLU slope
SHAPE = (1, 2, 3)  # input C·H·W, d = 6


def pepita(model, input_shape=SHAPE, lr=0.1, **options):
    return create_method("pepita", model, num_classes=C, input_shape=input_shape,
                         optimizer=optimizer_factory("sgd", lr=lr, momentum=0.0), **options)


def grads_of_one_step(method, x, y):
    """`.grad` of every model parameter after one step with updates off (weights unchanged)."""
    with method.updates_off():
        method.step(x, y)
    return {name: p.grad for name, p in method.model.named_parameters()}


def mlp(hidden=(5, 7), dropout=0.0):
    """Flatten → Linear → ReLU blocks (no bias) and a no-bias head: PEPITA's own kind of net."""
    blocks, fin = [], 6
    for i, width in enumerate(hidden):
        pre = [nn.Flatten()] if i == 0 else []
        blocks.append(Block(nn.Sequential(*pre, nn.Linear(fin, width, bias=False), nn.ReLU()), post(dropout=dropout)))
        fin = width
    return BlockNet(blocks, nn.Linear(fin, C, bias=False)).double()


def data(seed=0, shape=SHAPE):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(N, *shape, generator=g, dtype=torch.double), torch.randint(0, C, (N,), generator=g)


def hand_fc_update(weights, head, proj, x, y, sign, last_layer, masks=None):
    """The spec's formulas with plain tensor ops: both passes, x̃ = x ± F e, then ΔW per layer."""
    onehot = F.one_hot(y, C).double()
    masks = masks or [1.0] * len(weights)

    def forward(inp):
        hs, u = [], inp
        for w, m in zip(weights, masks):
            h = torch.relu(u @ w.T) * m  # the official h: after the nonlinearity and the dropout mask
            hs.append(h)
            u = h
        return hs, torch.softmax(u @ head.T, dim=1) - onehot

    x = x.flatten(1)
    hs, e = forward(x)
    x_mod = x + (1.0 if sign == "plus" else -1.0) * e @ proj.T
    hs_mod, e_mod = forward(x_mod)
    inputs = [x_mod] + hs_mod[:-1]
    deltas = [(h - h_mod).T @ u / N for h, h_mod, u in zip(hs, hs_mod, inputs)]
    err = e_mod if last_layer == "modulated" else e
    return deltas, err.T @ hs_mod[-1] / N


@pytest.mark.parametrize("last_layer", ["modulated", "clean"])
@pytest.mark.parametrize("sign", ["plus", "minus"])
def test_fc_update_is_the_paper_rule(sign, last_layer):
    torch.manual_seed(0)
    model = mlp()
    method = pepita(model, sign=sign, last_layer=last_layer)
    x, y = data()
    grads = grads_of_one_step(method, x, y)
    weights = [b.body[1 if i == 0 else 0].weight for i, b in enumerate(model.blocks)]
    deltas, head_delta = hand_fc_update(weights, model.head.weight, method.aux.projection, x, y, sign, last_layer)
    torch.testing.assert_close(grads["blocks.0.body.1.weight"], deltas[0])  # first layer: (h₁ − h̃₁) x̃ᵀ
    torch.testing.assert_close(grads["blocks.1.body.0.weight"], deltas[1])  # hidden: (h₂ − h̃₂) h̃₁ᵀ
    torch.testing.assert_close(grads["head.weight"], head_delta)  # last: ẽ h̃ᵀ or e h̃ᵀ
    assert deltas[0].abs().max() > 1e-6  # the modulation really changes the activity


@pytest.mark.parametrize("sign", ["plus", "minus"])
def test_pepita_fc_model_step_moves_weights_by_minus_lr_delta(sign):
    torch.manual_seed(1)
    model = create_model("pepita-fc", in_channels=1, num_classes=C, image_size=3, hidden=5, dropout=0.0).double()
    method = pepita(model, input_shape=(1, 3, 3), lr=0.5, sign=sign)
    x, y = data(1, (1, 3, 3))
    w1, w2 = model.blocks[0].body[1].weight, model.head.weight
    before = [w1.detach().clone(), w2.detach().clone()]
    deltas, head_delta = hand_fc_update([before[0]], before[1], method.aux.projection, x, y, sign, "modulated")
    method.step(x, y)
    torch.testing.assert_close(w1.detach(), before[0] - 0.5 * deltas[0])
    torch.testing.assert_close(w2.detach(), before[1] - 0.5 * head_delta)


def test_pepita_fc_is_the_official_net():
    model = create_model("pepita-fc", in_channels=3, num_classes=10, image_size=32)
    fc1, fc2 = model.blocks[0].body[1], model.head
    assert (fc1.in_features, fc1.out_features, fc2.out_features) == (3072, 1024, 10)
    assert fc1.bias is None and fc2.bias is None
    assert isinstance(model.blocks[0].body[2], nn.ReLU)
    assert [m.p for m in model.blocks[0].post if isinstance(m, nn.Dropout)] == [0.1]
    for layer in (fc1, fc2):  # He-uniform: U(±√(6/fan_in)), std = bound/√3
        bound = (6.0 / layer.in_features) ** 0.5
        assert layer.weight.abs().max() <= bound
        assert abs(layer.weight.std().item() - bound / 3 ** 0.5) < 0.05 * bound
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_projection_is_fixed_scaled_he_uniform_and_adds_no_parameters():
    torch.manual_seed(2)
    model = create_model("pepita-fc", in_channels=1, num_classes=10, image_size=28)
    method = create_method("pepita", model, num_classes=10, input_shape=(1, 28, 28))
    proj = method.aux.projection
    bound = 0.05 * (6.0 / 784) ** 0.5
    assert proj.shape == (784, 10) and not proj.requires_grad
    assert proj.abs().max() <= bound and proj.abs().max() > 0.95 * bound and abs(proj.mean()) < 0.05 * bound
    assert method.extra_parameters() == 0
    before = proj.clone()
    method.step(torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,)))
    assert torch.equal(method.aux.projection, before)
    with pytest.raises(ConfigError, match="f_scale"):
        create_method("pepita", model, num_classes=10, input_shape=(1, 28, 28), f_scale=0.0)
    with pytest.raises(ConfigError, match="plus, minus"):
        create_method("pepita", model, num_classes=10, input_shape=(1, 28, 28), sign="up")


@pytest.mark.parametrize("model_name", ["pepita-fc", "smallconv"])
def test_no_backward_pass_is_taken(model_name, monkeypatch):
    torch.manual_seed(3)
    model = create_model(model_name, in_channels=1, num_classes=C, image_size=8, dropout=0.1)
    method = pepita(model, input_shape=(1, 8, 8), bn_affine="rule")
    before = [p.detach().clone() for p in model.parameters()]

    def forbidden(*args, **kwargs):
        raise AssertionError("PEPITA must not call autograd")

    monkeypatch.setattr(torch.autograd, "backward", forbidden)
    monkeypatch.setattr(torch.autograd, "grad", forbidden)
    monkeypatch.setattr(torch.Tensor, "backward", forbidden)
    out = method.step(torch.randn(N, 1, 8, 8), torch.randint(0, C, (N,)))
    assert out.loss.grad_fn is None and out.logits.grad_fn is None
    for p, old in zip(model.parameters(), before):
        assert p.grad is not None and p.grad.grad_fn is None and not p.grad.requires_grad
        assert not torch.equal(p.detach(), old)


def one_conv_block_net():
    """Conv → BN → LeakyReLU, flattened into the head (elementwise post: h is the block output)."""
    model = BlockNet([Block(conv_body(2, 3), post(nn.Flatten()))], nn.Linear(3 * 16, C)).double()
    bn = model.blocks[0].body[1]
    with torch.no_grad():  # non-trivial affine parameters, so frozen vs trained is visible
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
    return model


def hand_conv_block(model, x):
    """(h, normalised pre-activation) of the one-conv-block net, by hand, with batch statistics."""
    conv, bn = model.blocks[0].body[0], model.blocks[0].body[1]
    a = F.conv2d(x, conv.weight, conv.bias, padding=1)
    mean, var = a.mean((0, 2, 3), keepdim=True), a.var((0, 2, 3), unbiased=False, keepdim=True)
    n = (a - mean) / torch.sqrt(var + bn.eps)
    return F.leaky_relu(n * bn.weight[:, None, None] + bn.bias[:, None, None], SLOPE), n


@pytest.mark.parametrize("positions", ["sum", "mean"])
@pytest.mark.parametrize("bn_affine", ["frozen", "rule"])
def test_conv_update_is_conv2d_weight_of_the_difference(bn_affine, positions):
    torch.manual_seed(4)
    model = one_conv_block_net()
    method = pepita(model, input_shape=(2, 4, 4), bn_affine=bn_affine, conv_positions=positions)
    x, y = data(4, (2, 4, 4))
    grads = grads_of_one_step(method, x, y)

    onehot = F.one_hot(y, C).double()
    h, _ = hand_conv_block(model, x)
    e = torch.softmax(model.head(h.flatten(1)), 1) - onehot
    x_mod = x + (e @ method.aux.projection.T).view_as(x)
    h_mod, n_mod = hand_conv_block(model, x_mod)
    delta = h - h_mod
    scale = 1 / N / (16 if positions == "mean" else 1)
    conv = model.blocks[0].body[0]
    torch.testing.assert_close(grads["blocks.0.body.0.weight"],
                               conv2d_weight(x_mod, conv.weight.shape, delta, padding=1) * scale)
    torch.testing.assert_close(grads["blocks.0.body.0.bias"], delta.sum((0, 2, 3)) * scale)
    e_mod = torch.softmax(model.head(h_mod.flatten(1)), 1) - onehot
    torch.testing.assert_close(grads["head.weight"], e_mod.T @ h_mod.flatten(1) / N)
    torch.testing.assert_close(grads["head.bias"], e_mod.mean(0))
    if bn_affine == "frozen":
        assert grads["blocks.0.body.1.weight"] is None and grads["blocks.0.body.1.bias"] is None
        trained = {id(p) for group in method.optimizers[0].param_groups for p in group["params"]}
        assert id(model.blocks[0].body[1].weight) not in trained
    else:  # γ with the normalised pre-activation of pass 2 as input, β with input 1
        torch.testing.assert_close(grads["blocks.0.body.1.weight"], (delta * n_mod).sum((0, 2, 3)) * scale)
        torch.testing.assert_close(grads["blocks.0.body.1.bias"], delta.sum((0, 2, 3)) * scale)


def test_strided_depthwise_and_pointwise_layers_each_get_their_own_rule():
    """A ConvDW block holds two PEPITA layers; each update equals the weight-gradient (here
    from autograd, independently of conv2d_weight) of its conv with output gradient h − h̃."""
    torch.manual_seed(5)
    model = BlockNet([Block(conv_dw_body(2, 4, stride=2), post(nn.Flatten()))], nn.Linear(4 * 4, C)).double()
    method = pepita(model, input_shape=(2, 4, 4), conv_positions="sum")
    x, y = data(5, (2, 4, 4))
    grads = grads_of_one_step(method, x, y)

    body = model.blocks[0].body  # dw conv, BN, act, pw conv, BN, act
    def passes(inp):
        h1 = body[2](body[1](body[0](inp)))
        return h1, body[5](body[4](body[3](h1)))
    with torch.no_grad():
        h1, h2 = passes(x)
        e = torch.softmax(model.head(h2.flatten(1)), 1) - F.one_hot(y, C).double()
        x_mod = x + (e @ method.aux.projection.T).view_as(x)
        h1_mod, h2_mod = passes(x_mod)
    for conv, inp, delta, name in [(body[0], x_mod, h1 - h1_mod, "0"), (body[3], h1_mod, h2 - h2_mod, "3")]:
        w = conv.weight.detach().clone().requires_grad_()
        out = F.conv2d(inp, w, None, conv.stride, conv.padding, conv.dilation, conv.groups)
        expected, = torch.autograd.grad((out * delta).sum() / N, w)
        torch.testing.assert_close(grads[f"blocks.0.body.{name}.weight"], expected)


def test_dropout_masks_are_shared_by_both_passes_and_mask_the_difference():
    model = mlp(hidden=(9,), dropout=0.5)
    method = pepita(model)
    x, y = data(6)
    torch.manual_seed(6)
    mask = F.dropout(torch.ones(N, 9, dtype=torch.double), 0.5)  # what the step's dropout will draw
    torch.manual_seed(6)
    grads = grads_of_one_step(method, x, y)
    deltas, head_delta = hand_fc_update([model.blocks[0].body[1].weight], model.head.weight, method.aux.projection,
                                        x, y, "plus", "modulated", masks=[mask])
    torch.testing.assert_close(grads["blocks.0.body.1.weight"], deltas[0])  # m ⊙ (h − h̃), as the official code
    torch.testing.assert_close(grads["head.weight"], head_delta)

    # With F = 0 both passes see the same input: only differing masks could make h ≠ h̃.
    method.aux.projection.zero_()
    seen = []
    model.blocks[0].post.register_forward_hook(lambda mod, inp, out: seen.append(out != 0))
    for _ in range(3):
        grads = grads_of_one_step(method, x, y)
        assert torch.count_nonzero(grads["blocks.0.body.1.weight"]) == 0
    assert all(torch.equal(seen[i], seen[i + 1]) for i in range(0, 6, 2))  # pass 1 and pass 2 of each step
    assert not torch.equal(seen[0], seen[2])  # a fresh mask every step


def test_learning_signal_cost_is_the_second_forward_plus_f_times_e():
    model = create_model("pepita-fc", in_channels=1, num_classes=10, image_size=28, hidden=32)
    modulated = create_method("pepita", model, num_classes=10, input_shape=(1, 28, 28)).learning_signal_cost()
    clean = create_method("pepita", model, num_classes=10, input_shape=(1, 28, 28),
                          last_layer="clean").learning_signal_cost()
    assert [c.macs for c in modulated] == [784 * 10 + 784 * 32 + 32 * 10]
    assert [c.macs for c in clean] == [784 * 10 + 784 * 32]

    # FlopCounterMode over a whole step: pass 1 + (pass 2 + F·e) + the updates (δ ⊗ input, as
    # many MACs as the forward), 2 FLOPs per MAC.
    model = create_model("smallconv", in_channels=1, num_classes=10, image_size=8)
    method = create_method("pepita", model, num_classes=10, input_shape=(1, 8, 8))
    forward = sum(m.macs for m in weight_layer_macs(model, (1, 8, 8)))
    signal = sum(c.macs for c in method.learning_signal_cost())
    x, y = torch.randn(4, 1, 8, 8), torch.randint(0, 10, (4,))
    with FlopCounterMode(display=False) as counter:
        method.step(x, y)
    assert counter.get_total_flops() == 2 * 4 * (forward + signal + forward)


@pytest.mark.parametrize("model_name", ["smallconvl", "vgg8", "mobilenetv1"])
def test_runs_on_the_paper_models(model_name):
    torch.manual_seed(7)
    model = create_model(model_name, in_channels=3, num_classes=C, image_size=8, dropout=0.1)
    method = pepita(model, input_shape=(3, 8, 8), lr=0.01, bn_affine="rule")
    before = [p.detach().clone() for p in model.parameters()]
    out = method.step(torch.randn(4, 3, 8, 8), torch.randint(0, C, (4,)))
    assert torch.isfinite(out.loss)
    assert all(torch.isfinite(p).all() and not torch.equal(p.detach(), b) for p, b in zip(model.parameters(), before))
    assert len(method.learning_signal_cost()) == len(model.blocks)


def test_unsupported_layers_are_a_config_error():
    body = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.LayerNorm(5))
    model = BlockNet([Block(nn.Sequential(nn.Flatten(), body))], nn.Linear(5, C))
    with pytest.raises(ConfigError, match="LayerNorm"):
        pepita(model)


@pytest.mark.parametrize("model_name, epochs", [("pepita-fc", 3), ("smallconv", 2)])
def test_learns_digits(model_name, epochs):
    config = RunConfig(method="pepita", model=model_name, dataset="digits", epochs=epochs, batch_size=64,
                       optimizer="sgd", lr=0.01, momentum=0.9, bn_batches=10, device="cpu")
    start = time.perf_counter()
    result = Trainer(config, progress=False).fit()
    acc = result.summary["final_test_acc"]
    print(f"pepita {model_name} digits: {acc:.1f}% after {epochs} epochs in {time.perf_counter() - start:.1f}s")
    assert result.status == "finished"
    assert acc > 75.0  # chance: 10 %


def test_lr_milestones_decay_every_optimiser_through_the_trainer():
    lrs = {}  # epoch → the lrs its steps ran with

    class Record(Callback):
        def on_step_end(self, trainer, step, x, y):
            lrs.setdefault(trainer.epoch, set()).update(g["lr"] for o in trainer.method.optimizers for g in o.param_groups)

    config = RunConfig(method="pepita", model="pepita-fc", dataset="digits", epochs=3, optimizer="sgd", lr=0.01,
                       lr_milestones=[1, 2], lr_gamma=0.1, limit_train_batches=2, bn_batches=0, device="cpu")
    Trainer(config, callbacks=[Record()], progress=False).fit()
    assert [sorted(lrs[e]) for e in range(3)] == [[pytest.approx(1e-2)], [pytest.approx(1e-3)], [pytest.approx(1e-4)]]
    for bad in ([90, 60], [0], "60"):
        with pytest.raises(ConfigError, match="lr_milestones"):
            RunConfig(lr_milestones=bad).validate()


@pytest.mark.slow
def test_pepita_fc_learns_real_mnist(mnist_dir):
    """Paper recipe (SGD momentum 0.9, lr 0.01, batch 64) for 400 batches of real MNIST. The data
    layer normalises inputs to [-1, 1]; the official code feeds [0, 1] pixels."""
    config = RunConfig(method="pepita", model="pepita-fc", dataset="mnist-plain", data_dir=str(mnist_dir), epochs=1,
                       batch_size=64, optimizer="sgd", lr=0.01, momentum=0.9, limit_train_batches=400, bn_batches=0,
                       device="cpu")
    start = time.perf_counter()
    result = Trainer(config, progress=False).fit()
    acc, seconds = result.summary["final_test_acc"], time.perf_counter() - start
    print(f"pepita-fc mnist-plain: {acc:.2f}% test after 400 batches of 64 in {seconds:.1f}s")
    assert acc > 85.0
