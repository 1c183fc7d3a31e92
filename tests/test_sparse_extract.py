"""lib.sparse.extract beyond nn.Sequential chains: residual blocks, transposed convolutions,
InstanceNorm and reflection padding (the extracted network must compute the masked one's
output exactly)."""

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from lib.energy.counts import layer_costs, total_macs
from lib.sparse.extract import Residual, attach_channel_mask, extract_channel_pruned


def _block(c: int, m: int) -> Residual:
    return Residual(nn.Sequential(
        nn.ReflectionPad2d(1), nn.Conv2d(c, m, 3), nn.InstanceNorm2d(m, affine=True),
        nn.ReLU(), nn.Conv2d(m, c, 3, padding=1, padding_mode="reflect"),
        nn.InstanceNorm2d(c, affine=True)))


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.ReflectionPad2d(2), nn.Conv2d(3, 6, 5), nn.InstanceNorm2d(6, affine=True), nn.ReLU(),
        nn.Conv2d(6, 8, 3, stride=2, padding=1), nn.InstanceNorm2d(8, affine=True), nn.ReLU(),
        _block(8, 5), _block(8, 7),
        nn.ConvTranspose2d(8, 6, 3, stride=2, padding=1, output_padding=1),
        nn.InstanceNorm2d(6, affine=True), nn.ReLU(),
        nn.ReflectionPad2d(1), nn.Conv2d(6, 3, 3), nn.Tanh())
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.InstanceNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return net.eval()


def _mask(net: nn.Sequential, stream_dead: list[int]) -> None:
    b1, b2 = net[7].body, net[8].body
    attach_channel_mask(net[1], torch.tensor([1, 0, 1, 1, 0, 1]), norm=net[2])
    keep = torch.ones(8)
    keep[stream_dead] = 0
    attach_channel_mask(net[4], keep, norm=net[5])          # the stream's three writers
    attach_channel_mask(b1[4], keep, norm=b1[5])
    partly = keep.clone()
    partly[stream_dead[0]] = 1                              # block 2 still writes channel 0
    attach_channel_mask(b2[4], partly if len(stream_dead) > 1 else keep, norm=b2[5])
    attach_channel_mask(b1[1], torch.tensor([1, 1, 0, 1, 0]), norm=b1[2])
    attach_channel_mask(b2[1], torch.tensor([0, 1, 1, 0, 1, 1, 0]), norm=b2[2])
    attach_channel_mask(net[9], torch.tensor([1, 0, 1, 1, 0, 0]), norm=net[10])


def test_residual_transposed_instance_norm_network_extracts_to_the_same_function():
    net = _net()
    _mask(net, stream_dead=[1, 3, 6])
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    small = extract_channel_pruned(net, x)
    assert torch.allclose(small(x), net(x), atol=1e-5)
    # stream: channels 3 and 6 dead in all three writers go; channel 1 (written by block 2)
    # stays in every writer and every reader
    assert small[4].weight.shape[0] == 6
    assert small[7].body[1].weight.shape[1] == 6 and small[7].body[4].weight.shape[0] == 6
    assert small[8].body[4].weight.shape[0] == 6
    assert small[9].weight.shape == (6, 3, 3, 3)            # ConvTranspose: (in, out, k, k)
    assert small[13].weight.shape == (3, 3, 3, 3)
    assert [small[7].body[1].weight.shape[0], small[8].body[1].weight.shape[0]] == [3, 4]
    assert isinstance(small[7], Residual) and small[10].num_features == 3


def test_a_stream_channel_dead_in_one_writer_only_is_kept():
    net = _net()
    with torch.no_grad():  # the first block alone zeroes channel 2 of the stream
        attach_channel_mask(net[7].body[4], torch.tensor([1, 1, 0, 1, 1, 1, 1, 1]),
                            norm=net[7].body[5])
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    small = extract_channel_pruned(net, x)
    assert small[4].weight.shape[0] == 8 and small[7].body[4].weight.shape[0] == 8
    assert torch.allclose(small(x), net(x), atol=1e-5)


def test_nonzero_constants_fold_through_reflection_padding_not_through_convtranspose():
    torch.manual_seed(2)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(),
                        nn.Conv2d(4, 5, 3, padding=1, padding_mode="reflect"), nn.ReLU(),
                        nn.ReflectionPad2d(1), nn.Conv2d(5, 2, 3)).eval()
    with torch.no_grad():  # rows zeroed, biases kept: the channels carry relu(bias) > 0
        net[0].bias.fill_(0.4)
        net[2].bias.fill_(0.3)
        net[0].weight[1:3] = 0
        net[2].weight[0] = 0
    x = torch.randn(2, 3, 9, 9)
    small = extract_channel_pruned(net, x)
    assert small[0].weight.shape[0] == 2 and small[2].weight.shape[0] == 4
    assert torch.allclose(small(x), net(x), atol=1e-5)
    up = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU(),
                       nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1)).eval()
    with torch.no_grad():
        up[0].bias.fill_(0.4)
        up[0].weight[1] = 0
    with pytest.raises(ValueError, match="transposed"):
        extract_channel_pruned(up, x)
    with torch.no_grad():
        up[0].bias[1] = 0.0  # a zero constant is removed outright
    small = extract_channel_pruned(up, x)
    assert small[2].weight.shape == (3, 2, 3, 3)
    assert torch.allclose(small(x), up(x), atol=1e-5)


def test_convtranspose_channel_mask_is_on_weight_dim_1():
    conv = nn.ConvTranspose2d(4, 3, 3)
    attach_channel_mask(conv, torch.tensor([1, 0, 1]))
    assert conv.weight[:, 1].abs().sum() == 0 and conv.weight[:, 0].abs().sum() > 0
    assert conv.bias[1] == 0
    with pytest.raises(ValueError, match="3 output channels"):
        attach_channel_mask(nn.ConvTranspose2d(4, 3, 3), torch.ones(4))
    with pytest.raises(ValueError, match="nn.Sequential"):
        extract_channel_pruned(Residual(nn.Sequential(nn.Conv2d(2, 2, 1))), torch.ones(1, 2, 2, 2))


def test_convtranspose_macs_match_torch_flop_counter():
    net = _net()
    _mask(net, stream_dead=[1, 3, 6])
    x = torch.rand(1, 3, 16, 16)
    small = extract_channel_pruned(net, x)
    alone = nn.Sequential(nn.ConvTranspose2d(6, 4, 3, stride=2, padding=1, output_padding=1))
    for model, inp in ((net, x), (small, x), (alone, torch.rand(1, 6, 5, 7))):
        with FlopCounterMode(display=False) as counter:
            model(inp)
        assert total_macs(layer_costs(model, inp)) * 2 == counter.get_total_flops()
