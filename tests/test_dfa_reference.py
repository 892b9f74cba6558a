"""The default dfa and sdfa update equals the LLS authors' DFA (mapolinario94/LLS-DNN) on a small
seeded net, one optimiser step at a time.

The reference is written out below from `models/layers/feedback_alignment.py` (`TrainingHook`,
`HookFunction`) and `main.py`'s training loop; it is never imported. There, every block output
passes through a hook that is the identity forward and, backward, replaces the gradient with
(softmax(z) − y*) · B (sDFA: sign(softmax(z) − y*) · B), B = 1e-4 · U[0, 1) of shape [C, *h];
the network is trained by one `CrossEntropyLoss()(z, y).backward()` and one optimiser over all
parameters. The one known difference is where B is drawn from the global RNG (README,
Faithfulness): the test draws the reference's B in block order from the seed llsbench draws from.
"""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from llsbench.method_registry import create_method
from llsbench.models import Block, BlockNet
from llsbench.models.blocks import conv_body, linear_body, post

C, N, SHAPE, B_SEED = 5, 8, (2, 8, 8), 7


def small_net() -> BlockNet:
    """The reference's block kinds: Conv → BN → LeakyReLU (+ pool), Linear → BN → LeakyReLU, head."""
    torch.manual_seed(0)
    blocks = [Block(conv_body(2, 4), post(nn.MaxPool2d(2)), pool_size=2),
              Block(conv_body(4, 4), post(nn.MaxPool2d(2), nn.Flatten()), pool_size=2),
              Block(linear_body(16, 12))]
    return BlockNet(blocks, nn.Linear(12, C))


def batches(count: int):
    g = torch.Generator().manual_seed(3)
    return [(torch.randn(N, *SHAPE, generator=g), torch.randint(0, C, (N,), generator=g)) for _ in range(count)]


# ---- the reference's DFA, transcribed ---------------------------------------------------------
def ref_feedback_matrices(shapes) -> list[torch.Tensor]:
    """`TrainingHook.reset_weights`: 1e-4 * torch.rand_like(torch.Tensor(torch.Size([C, *shape])))."""
    torch.manual_seed(B_SEED)
    return [1e-4 * torch.rand(C, *shape) for shape in shapes]


def ref_step(model: BlockNet, matrices, optimizer, x, y, mode: str) -> None:
    """`HookFunction.backward` at every block output, then `main.py`'s CE backward and step."""
    labels = F.one_hot(y, C).float()
    logits_seen = {}

    def estimate(b):
        def hook(grad):
            error = torch.softmax(logits_seen["z"], dim=1) - labels
            if mode == "sDFA":
                error = torch.sign(error)
            return error.mm(b.view(C, -1)).view(grad.shape)
        return hook

    optimizer.zero_grad()
    h = x
    for block, b in zip(model.blocks, matrices, strict=True):
        out = block(h)
        out.register_hook(estimate(b))
        h = block.post(out)
    z = model.head(h)
    logits_seen["z"] = z.detach()  # the model's `self.y.data.copy_(y_pred.data)`
    nn.CrossEntropyLoss()(z, y).backward()
    optimizer.step()


def recording_sgd(model: nn.Module, log: dict[str, list[torch.Tensor]]):
    """An SGD factory (momentum 0.9, lr 0.1) whose optimisers log every gradient they apply, by name."""
    names = {id(p): name for name, p in model.named_parameters()}

    def record(optimizer, _args, _kwargs):
        for group in optimizer.param_groups:
            for p in group["params"]:
                log.setdefault(names[id(p)], []).append(p.grad.clone())

    def make(params):
        optimizer = torch.optim.SGD(list(params), lr=0.1, momentum=0.9)
        optimizer.register_step_pre_hook(record)
        return optimizer
    return make


def train_both(rule: str, steps: int, **options):
    """The gradients each parameter was updated with over `steps` steps: llsbench's rule (its B
    drawn at B_SEED), then the reference's."""
    ours, theirs = small_net(), small_net()
    ours_log, theirs_log = {}, {}
    torch.manual_seed(B_SEED)
    method = create_method(rule, ours, num_classes=C, input_shape=SHAPE, optimizer=recording_sgd(ours, ours_log),
                           **options)
    matrices = ref_feedback_matrices(method.block_shapes)
    optimizer = recording_sgd(theirs, theirs_log)(theirs.parameters())
    for x, y in batches(steps):
        method.step(x, y)
        ref_step(theirs, matrices, optimizer, x, y, "sDFA" if rule == "sdfa" else "DFA")
    assert sorted(ours_log) == sorted(theirs_log) and all(len(g) == steps for g in ours_log.values())
    return ours_log, theirs_log


@pytest.mark.parametrize("rule", ["dfa", "sdfa"])
def test_default_update_equals_the_lls_reference_dfa(rule):
    ours, theirs = train_both(rule, steps=3)
    for name, grads in ours.items():
        for a, b in zip(grads, theirs[name], strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-9 + 1e-5 * b.abs().max().item(), msg=name)


@pytest.mark.parametrize("options", [{"init": "kaiming"}, {"output_loss": "bce"}, {"signal_reduction": "mean"}])
def test_the_old_default_and_the_other_options_are_not_the_reference(options):
    """`init=kaiming` (the old default) and the other options change every block's update, so the
    equality above is not vacuous."""
    ours, theirs = train_both("dfa", steps=1, **options)
    blocks = [name for name in ours if name.startswith("blocks.0.") or name.startswith("blocks.2.")]
    assert blocks
    for name in blocks:
        assert not torch.allclose(ours[name][0], theirs[name][0], rtol=1e-3, atol=0), name
