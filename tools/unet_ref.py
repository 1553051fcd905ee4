"""The reference U-Net in PyTorch, for the offline tools (export, fixtures, demo training).

Module names match the reference model exactly, so ``state_dict()`` keys are the ones wunet
reads: ``downs.{i}.conv{1,2}.weight``, ``downs.{i}.bn{1,2}.*``, ``bottleneck.*``,
``ups.{2k}.weight/bias`` (ConvTranspose2d), ``ups.{2k+1}.conv{1,2}/bn{1,2}.*``,
``final_conv.weight/bias``.
"""
import torch
from torch import nn
from torch.nn import functional as F


class DoubleConv(nn.Module):
    """(3x3 conv, no bias -> BatchNorm -> ReLU) twice."""

    def __init__(self, cin, cout, bn_eps=1e-5):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout, eps=bn_eps)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout, eps=bn_eps)
        self.relu2 = nn.ReLU(inplace=True)

    def forward(self, x):
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.relu2(self.bn2(self.conv2(x)))
        return x


class UNet(nn.Module):
    """Encoder of DoubleConv + 2x2 max-pool per level, a 2x-wide bottleneck, and a decoder of
    stride-2 transposed convs whose output is concatenated after the skip (skip first)."""

    def __init__(self, in_channels=3, out_channels=1, features=(64, 128, 256, 512), bn_eps=1e-5):
        super().__init__()
        features = list(features)
        for a, b in zip(features, features[1:]):
            if b != 2 * a:
                raise ValueError(f"features must double level to level, got {features}")
        self.downs = nn.ModuleList()
        self.ups = nn.ModuleList()
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        cin = in_channels
        for f in features:
            self.downs.append(DoubleConv(cin, f, bn_eps))
            cin = f
        self.bottleneck = DoubleConv(features[-1], 2 * features[-1], bn_eps)
        for f in features[::-1]:
            self.ups.append(nn.ConvTranspose2d(2 * f, f, kernel_size=2, stride=2))
            self.ups.append(DoubleConv(2 * f, f, bn_eps))
        self.final_conv = nn.Conv2d(features[0], out_channels, kernel_size=1)

    def forward(self, x):
        skips = []
        for block in self.downs:
            x = block(x)
            skips.append(x)
            x = self.pool(x)  # floor: an odd size drops its last row/column
        x = self.bottleneck(x)
        for level, skip in enumerate(reversed(skips)):
            x = self.ups[2 * level](x)
            if x.shape[-2:] != skip.shape[-2:]:
                x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=True)
            x = self.ups[2 * level + 1](torch.cat((skip, x), dim=1))
        return self.final_conv(x)


def features_of(state_dict):
    """Infer (in_channels, out_channels, features) from a reference state_dict."""
    feats = []
    i = 0
    while f"downs.{i}.conv1.weight" in state_dict:
        feats.append(int(state_dict[f"downs.{i}.conv1.weight"].shape[0]))
        i += 1
    cin = int(state_dict["downs.0.conv1.weight"].shape[1])
    cout = int(state_dict["final_conv.weight"].shape[0])
    return cin, cout, feats


@torch.no_grad()
def randomize_bn(model, seed=0):
    """Give every BatchNorm non-trivial running stats and affine parameters (drawn from their
    own generator), so that a reader which mishandles BatchNorm shows it."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=gen) * 0.5 + 0.75)
            m.weight.copy_(torch.rand(n, generator=gen) * 0.5 + 0.75)
            m.bias.copy_(torch.randn(n, generator=gen) * 0.1)
    return model
