import pytest
import torch

from sweepkit.train.model import ConvNet


@pytest.mark.parametrize("kernel", [1, 3, 5, 7, 9, 13])
def test_shapes_hold_for_every_odd_kernel(kernel):
    model = ConvNet(l1_size=4, l2_size=6, conv_kernel=kernel)
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 10)
    assert model.fc.in_features == 7 * 7 * 6


def test_even_kernel_is_refused():
    with pytest.raises(ValueError, match="conv_kernel"):
        ConvNet(conv_kernel=4)


def test_default_model_is_the_seeds():
    model = ConvNet()
    assert model.layer1[0].out_channels == 32 and model.layer2[0].out_channels == 64
    assert model.layer1[0].kernel_size == (5, 5) and model.fc.in_features == 3136


def test_pooling_before_relu_computes_the_seeds_function():
    torch.manual_seed(0)
    ours = ConvNet(l1_size=8, l2_size=12, conv_kernel=3)
    seed = ConvNet(l1_size=8, l2_size=12, conv_kernel=3)
    seed.load_state_dict(ours.state_dict())  # same parameter names: a seed checkpoint loads as is
    for layer in (seed.layer1, seed.layer2):  # the seed's order: ReLU, then pool
        layer[2], layer[3] = torch.nn.ReLU(), torch.nn.MaxPool2d(kernel_size=2, stride=2)
    x = torch.randn(5, 1, 28, 28)
    for mode in ("train", "eval"):
        getattr(ours, mode)(), getattr(seed, mode)()
        assert torch.allclose(ours(x), seed(x), atol=1e-6)
