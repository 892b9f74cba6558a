"""Local Losses (LLS paper's baseline) and PredSim (Nøkland & Eidnes 2019) against their
equations, their parameter counts, their locality, and on real data."""
import math
import time

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from llsbench.config import RunConfig
from llsbench.errors import ConfigError
from llsbench.method_registry import create_method
from llsbench.models import Block, BlockNet, create_model
from llsbench.models.blocks import conv_body, linear_body, post
from llsbench.trainer import Trainer
from llsbench_methods.local_losses import decoder_pooling, similarity_matrix

C, N, SLOPE = 4, 6, 0.01  # classes, batch, LeakyReLU slope


def leaky_grad(pre):
    return torch.where(pre > 0, 1.0, SLOPE)


def linear_net(fin=5, hidden=7):
    return BlockNet([Block(linear_body(fin, hidden, batch_norm=False))], nn.Linear(hidden, C)).double()


def conv_net(cin=2, cout=5, side=4):
    blocks = [Block(conv_body(cin, cout, batch_norm=False), post(nn.Flatten()), pool_size=2)]
    return BlockNet(blocks, nn.Linear(cout * side * side, C)).double()


def step_without_update(method, x, y):
    with method.updates_off():
        method.step(x, y)


def column_pooling_matrix(length, width):
    """P ∈ R^{length×width} with W P = adaptive_avg_pool1d(W, width): column t of the result
    averages columns floor(t·L/T) … ceil((t+1)·L/T) − 1 of W (bins overlap when T ∤ L)."""
    P = torch.zeros(length, width, dtype=torch.double)
    for t in range(width):
        start, end = (t * length) // width, math.ceil((t + 1) * length / width)
        P[start:end, t] = 1.0 / (end - start)
    return P


# ---- Local Losses ---------------------------------------------------------------------------
@pytest.mark.parametrize("model,classes", [("vgg8", 100), ("mobilenetv1", 2)])
def test_local_losses_adds_L_C_2048_parameters(model, classes):
    net = create_model(model, in_channels=3, num_classes=classes, image_size=32)
    rule = create_method("local-losses", net, num_classes=classes, input_shape=(3, 32, 32))
    assert rule.extra_parameters() == len(net.blocks) * classes * 2048
    assert [head.weight.shape for head in rule.aux] == [(classes, 2048)] * len(net.blocks)


@pytest.mark.parametrize("model,widths", [("smallconv", [512, 256, 512, 512]), ("smallconvl", [1536, 768, 2048, 2048])])
def test_local_classifiers_are_sized_as_the_reference_hidden_dim(model, widths):
    net = create_model(model, in_channels=3, num_classes=10, image_size=32)
    rule = create_method("local-losses", net, num_classes=10, input_shape=(3, 32, 32))
    assert [head.weight.shape[1] for head in rule.aux] == widths


def test_local_losses_linear_block_gradients_are_the_closed_form():
    torch.manual_seed(0)
    tau = 0.3
    model = linear_net(hidden=7)  # T = 7 does not divide 2048: the pooling bins overlap
    method = create_method("local-losses", model, num_classes=C, input_shape=(5,), temperature=tau)
    method.aux.double()
    x, y = torch.randn(N, 5, dtype=torch.double), torch.randint(0, C, (N,))
    step_without_update(method, x, y)

    W = method.aux[0].weight
    P = column_pooling_matrix(2048, 7)
    W_t = W.detach() @ P  # the classifier at the layer's width
    lin = model.blocks[0].body[0]
    pre = x @ lin.weight.T + lin.bias
    h = F.leaky_relu(pre, SLOPE)  # no L2 normalisation
    e = (F.softmax(h @ W_t.T / tau, dim=1) - F.one_hot(y, C).double()) / N
    g_h = e @ W_t / tau  # the error projected back through the pooled W_c
    torch.testing.assert_close(lin.weight.grad, (g_h * leaky_grad(pre)).T @ x)
    torch.testing.assert_close(lin.bias.grad, (g_h * leaky_grad(pre)).sum(0))
    grad_W_t = e.T @ h / tau
    torch.testing.assert_close(W.grad, grad_W_t @ P.T)  # spread back over each bin's columns


def test_local_losses_conv_block_uses_the_lls_pooling():
    torch.manual_seed(1)
    model = conv_net()
    method = create_method("local-losses", model, num_classes=C, input_shape=(2, 4, 4))
    method.aux.double()
    x, y = torch.randn(N, 2, 4, 4, dtype=torch.double), torch.randint(0, C, (N,))
    conv = model.blocks[0].body[0]
    a = F.avg_pool2d(F.leaky_relu(F.conv2d(x, conv.weight, conv.bias, padding=1), SLOPE), 2).flatten(1)
    expected = a @ (method.aux[0].weight @ column_pooling_matrix(2048, 5 * 2 * 2)).T / 0.5
    torch.testing.assert_close(method.local_logits(0, model.blocks[0](x)), expected)


@pytest.mark.parametrize("method,options", [("local-losses", {"temperature": 0.0}),
                                            ("predsim", {"beta": 1.5}), ("predsim", {"decoder_width": 0})])
def test_bad_options_name_the_value(method, options):
    with pytest.raises(ConfigError, match=f"{next(iter(options))}="):
        create_method(method, linear_net(), num_classes=C, input_shape=(5,), **options)


# ---- PredSim --------------------------------------------------------------------------------
def predsim(model, input_shape, **options):
    method = create_method("predsim", model, num_classes=C, input_shape=input_shape, **options)
    method.aux.double()
    return method


def test_similarity_matrix_is_cosine_of_centred_channel_stds():
    torch.manual_seed(0)
    h = torch.randn(N, 5, 3, 3, dtype=torch.double)
    s = h.flatten(2).std(dim=2)
    s = s - s.mean(dim=1, keepdim=True)
    expected = F.cosine_similarity(s[:, None, :], s[None, :, :], dim=2)
    torch.testing.assert_close(similarity_matrix(h), expected)


def test_sim_loss_is_zero_iff_representation_similarity_is_label_similarity():
    torch.manual_seed(0)
    y = torch.tensor([0, 1, 1, 3, 2, 0])
    head = predsim(linear_net(hidden=C), (5,)).aux[0]
    with torch.no_grad():
        head.sim.weight.copy_(torch.eye(C))
    one_hot = F.one_hot(y, C).double()
    assert head.sim_loss(one_hot, y).item() < 1e-12
    assert head.sim_loss(3.0 * one_hot + 1.0, y).item() < 1e-12  # invariant to scale and shift
    assert head.sim_loss(torch.randn(N, C, dtype=torch.double), y).item() > 1e-3
    assert head.sim_loss(one_hot, y[torch.randperm(N)]).item() > 1e-3

    conv_head = predsim(conv_net(cout=C), (2, 4, 4)).aux[0]
    with torch.no_grad():
        conv_head.sim.weight.zero_()
        conv_head.sim.weight[:, :, 1, 1] = torch.eye(C)  # identity 3×3 conv
    h = torch.ones(N, C, 4, 4, dtype=torch.double)
    h[torch.arange(N), y] = torch.tensor([[1.0, -1.0] * 2, [-1.0, 1.0] * 2] * 2, dtype=torch.double)
    assert conv_head.sim_loss(h, y).item() < 1e-12  # channel stds ∝ one-hot labels
    h[torch.arange(N), (y + 1) % C] *= torch.linspace(0.5, 2.0, 16, dtype=torch.double).view(4, 4)
    assert conv_head.sim_loss(h, y).item() > 1e-3


def block_grads(method, model, x, y):
    step_without_update(method, x, y)
    return [p.grad.clone() for p in model.blocks[0].parameters()]


def autograd_block_grads(model, loss):
    return list(torch.autograd.grad(loss, list(model.blocks[0].parameters()), retain_graph=True))


@pytest.mark.parametrize("net,shape", [(linear_net, (5,)), (conv_net, (2, 4, 4))])
def test_beta_mixes_pred_and_sim_and_its_ends_drop_the_other_loss(net, shape):
    torch.manual_seed(0)
    x, y = torch.randn(N, *shape, dtype=torch.double), torch.randint(0, C, (N,))
    grads = {}
    for beta in (0.0, 0.3, 1.0):
        torch.manual_seed(1)
        model = net()
        method = predsim(model, shape, beta=beta, decoder_width=20)  # conv: 5×4×4 = 80 > 20 → 2×2 kernel
        head = method.aux[0]
        assert (head.decoder is None) == (beta == 1.0) and (head.sim is None) == (beta == 0.0)
        if head.decoder is not None:
            assert torch.count_nonzero(head.decoder.weight) == 0  # zero-initialised decoder
            with torch.no_grad():
                head.decoder.weight.normal_()  # else no pred gradient reaches the block
        torch.manual_seed(2)
        ref = net()
        ref.load_state_dict(model.state_dict())
        h = ref.blocks[0](x)
        if beta < 1:
            pooled = F.avg_pool2d(h, 2).flatten(1) if h.dim() == 4 else h
            grads[("pred", beta)] = autograd_block_grads(ref, F.cross_entropy(head.decoder(pooled), y))
        if beta > 0:
            s_h = similarity_matrix(head.sim(h))
            s_y = similarity_matrix(F.one_hot(y, C).double())
            grads[("sim", beta)] = autograd_block_grads(ref, F.mse_loss(s_h, s_y))
        grads[beta] = block_grads(method, model, x, y)
    for got, pred in zip(grads[0.0], grads[("pred", 0.0)]):
        torch.testing.assert_close(got, pred)
    for got, sim in zip(grads[1.0], grads[("sim", 1.0)]):
        torch.testing.assert_close(got, sim)
    for got, pred, sim in zip(grads[0.3], grads[("pred", 0.3)], grads[("sim", 0.3)]):
        torch.testing.assert_close(got, 0.7 * pred + 0.3 * sim)


def output_classifier_after_one_step(beta=0.99, **options):
    """llsbench's head weight/bias at build, its gradients after one step, and the authors'
    (`train.py`: `F.cross_entropy(output, target) * (1 - beta)` for --loss-sup predsim, plain for
    sim) from the head's starting weights and the same last block output."""
    torch.manual_seed(0)
    model = linear_net()
    model_init = model.head.weight.detach().clone()
    method = predsim(model, (5,), beta=beta, **options)
    start = [p.detach().clone() for p in model.head.parameters()]
    x, y = torch.randn(N, 5, dtype=torch.double), torch.randint(0, C, (N,))
    h = model.blocks[0](x).detach()
    weight, bias = (p.clone().requires_grad_() for p in start)
    ce = F.cross_entropy(h @ weight.T + bias, y)
    scale = 1.0 - beta if beta < 1.0 else 1.0
    want = torch.autograd.grad(scale * ce, [weight, bias])
    with method.updates_off():
        result = method.step(x, y)
    torch.testing.assert_close(result.loss, ce.detach())  # the reported loss is the plain CE
    return model_init, start, [p.grad for p in model.head.parameters()], want


@pytest.mark.parametrize("beta", [0.99, 0.5, 0.0, 1.0])
def test_output_classifier_starts_at_zero_and_trains_on_one_minus_beta_ce_as_the_authors(beta):
    _, (weight, bias), got, want = output_classifier_after_one_step(beta)
    assert torch.count_nonzero(weight) == 0 and torch.count_nonzero(bias) > 0  # only the weight is zeroed
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w)


def test_output_classifier_options_give_the_model_init_and_plain_ce():
    model_init, (weight, _), got, want = output_classifier_after_one_step(head_init="model")
    torch.testing.assert_close(weight, model_init)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w)
    *_, got, want = output_classifier_after_one_step(head_loss="ce")
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w / 0.01)  # plain CE: 1/(1 − β) times the authors' gradient


def test_decoder_pooling_follows_the_reference_rule():
    assert decoder_pooling(128, 32, 32, 2048) == ((8, 8), (0, 0))  # 4×4
    assert decoder_pooling(256, 32, 32, 2048) == ((16, 8), (0, 0))  # 2×4: not square
    assert decoder_pooling(64, 14, 14, 2048) == ((4, 2), (2, 0))  # 14 → ceil(14/4) = 4 by padding
    assert decoder_pooling(128, 7, 7, 2048) == ((2, 2), (1, 1))  # 4×4
    assert decoder_pooling(16, 8, 8, 2048) == ((1, 1), (0, 0))  # small enough already


def test_predsim_extra_parameters_are_decoders_plus_sim_layers():
    net = create_model("vgg8", in_channels=3, num_classes=10, image_size=32)
    rule = create_method("predsim", net, num_classes=10, input_shape=(3, 32, 32))
    decoders = 6 * (2048 * 10 + 10) + (1024 * 10 + 10)  # every conv block pools to 2048, FC 1024
    sims = 9 * (128**2 + 3 * 256**2 + 2 * 512**2) + 1024**2
    assert rule.extra_parameters() == decoders + sims
    assert create_method("predsim", net, num_classes=10, input_shape=(3, 32, 32), beta=0.0).extra_parameters() \
        == decoders


def test_predsim_decoder_widths_on_28_pixel_inputs_match_the_pooled_maps():
    torch.manual_seed(0)
    net = create_model("smallconv", in_channels=1, num_classes=10, image_size=28)
    rule = create_method("predsim", net, num_classes=10, input_shape=(1, 28, 28))
    assert [head.decoder.in_features for head in rule.aux] == [32 * 7 * 7, 64 * 4 * 7, 128 * 4 * 4, 512]
    rule.step(torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,)))  # the pooled maps fit the decoders


# ---- Locality -------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["bp", "lls", "local-losses", "predsim"])
def test_no_gradient_reaches_an_earlier_block(method):
    torch.manual_seed(0)
    net = create_model("smallconv", in_channels=1, num_classes=C, image_size=8)
    rule = create_method(method, net, num_classes=C, input_shape=(1, 8, 8))
    input_tracked, output_grads = [], [0] * len(net.blocks)

    def watch_input(module, args):
        input_tracked.append(args[0].requires_grad)

    def watch_output(index):
        def hook(module, args, out):
            out.register_hook(lambda g: output_grads.__setitem__(index, output_grads[index] + 1))
        return hook

    for i, block in enumerate(net.blocks):
        block.register_forward_pre_hook(watch_input)
        block.register_forward_hook(watch_output(i))
    net.head.register_forward_pre_hook(watch_input)
    step_without_update(rule, torch.randn(N, 1, 8, 8), torch.randint(0, C, (N,)))
    if method == "bp":  # the control: end-to-end, every block's input carries gradient
        assert input_tracked == [False] + [True] * len(net.blocks)
    else:
        assert input_tracked == [False] * (len(net.blocks) + 1)
        assert output_grads == [1] * len(net.blocks)  # each h(l) gets its own loss's gradient once


# ---- Learning on real data ------------------------------------------------------------------
def fit(**settings):
    config = RunConfig(**{"dataset": "digits", "model": "smallconv", "epochs": 2, "batch_size": 64,
                          "device": "cpu", **settings})
    start = time.perf_counter()
    result = Trainer(config, progress=False).fit()
    return result, time.perf_counter() - start


@pytest.mark.parametrize("method,options", [("local-losses", {}), ("predsim", {}), ("predsim", {"beta": 0.0})])
def test_learns_digits_within_seconds(method, options):
    result, seconds = fit(method=method, method_options=options)
    assert result.status == "finished"
    assert result.summary["final_test_acc"] >= 90.0, (result.history, seconds)  # chance: 10 %


@pytest.mark.slow
def test_local_losses_passes_95_percent_on_real_mnist(mnist_dir):
    result, seconds = fit(method="local-losses", dataset="mnist", data_dir=str(mnist_dir), epochs=1,
                          batch_size=128, limit_train_batches=150)
    assert result.summary["final_test_acc"] > 95.0, (result.history, seconds)


@pytest.mark.slow
def test_predsim_passes_95_percent_on_real_mnist(mnist_dir):
    """The default (the authors' zero-initialised output classifier on (1 − β)·CE) learns real MNIST."""
    result, seconds = fit(method="predsim", dataset="mnist", data_dir=str(mnist_dir), epochs=1,
                          batch_size=128, limit_train_batches=100)
    assert result.summary["final_test_acc"] > 95.0, (result.history, seconds)
