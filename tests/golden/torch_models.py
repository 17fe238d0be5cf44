"""torch_models.py: the PyTorch twins of mkdseg's three networks (same architectures, same parameter names).

These modules are the specification the C models in engine/models/ follow one-to-one: the same
layers in the same order, the same parameter names (PyTorch state_dict names, so a safetensors
file written by mkdseg loads into these modules with load_state_dict), the same initialisation.
They are shared by tests/golden/gen_models.py (reference data) and tests/bench/torch_bench.py
(the PyTorch peer of `make bench`). Run with /usr/bin/python3 (Debian's python3-torch 1.13).

Layer order (N, C, H, W tensors; "conv KxK sS pP" = Conv2d kernel K, stride S, zero padding P)
------------------------------------------------------------------------------------------

Segmentor(width w, classes k, in_ch 1): residual U-Net, 5 levels, widths c0..c4 = w,2w,4w,8w,16w.
  ResBlock(cin, cout), prefix P:
      P.conv1   conv3x3 s1 p1 cin->cout, no bias      P.bn1  BatchNorm2d(cout)   ReLU
      P.conv2   conv3x3 s1 p1 cout->cout, no bias     P.bn2  BatchNorm2d(cout)
      P.skip    conv1x1 s1 p0 cin->cout, no bias      P.skip_bn BatchNorm2d(cout)
      out = ReLU(bn2(...) + skip_bn(skip(x)))
  (Convolutions followed by BN carry no bias: BN's shift makes it redundant.)
  encoder:  e0 = enc0(x)              ResBlock(in_ch, c0)   at H
            e1 = enc1(maxpool2(e0))   ResBlock(c0, c1)      at H/2
            e2 = enc2(maxpool2(e1))   ResBlock(c1, c2)      at H/4
            e3 = enc3(maxpool2(e2))   ResBlock(c2, c3)      at H/8
            e4 = enc4(maxpool2(e3))   ResBlock(c3, c4)      at H/16 (bottleneck)
            maxpool2 = MaxPool2d(2, 2)
  decoder, for l = 3, 2, 1, 0 (d4 = e4):
            u  = up{l}(d{l+1})        ConvTranspose2d(c{l+1}, c{l}, 2, stride 2), with bias
            d{l} = dec{l}(cat([e{l}, u], dim=1))   ResBlock(2 c{l}, c{l}); the skip comes first
  head:     logits = head(d0)         conv1x1 c0->k, with bias
  Output: logits (N, k, H, W); softmax is part of the loss / inference, not of the network.
  H and W must be multiples of 16.

Generator(ngf, n_blocks, in_ch 1, out_ch 1): CycleGAN's ResnetGenerator with InstanceNorm2d
(affine=False, track_running_stats=False, eps 1e-5), no dropout. All convolutions have a bias.
      stem      ReflectionPad2d(3), conv7x7 s1 p0 in_ch->ngf, IN, ReLU
      down0     conv3x3 s2 p1 ngf->2ngf, IN, ReLU
      down1     conv3x3 s2 p1 2ngf->4ngf, IN, ReLU
      blocks.i  (i = 0..n_blocks-1) x + [ReflectionPad2d(1), conv1 3x3 p0, IN, ReLU,
                                         ReflectionPad2d(1), conv2 3x3 p0, IN]
      up0       ConvTranspose2d(4ngf, 2ngf, 3, stride 2, padding 1, output_padding 1), IN, ReLU
      up1       ConvTranspose2d(2ngf, ngf, 3, stride 2, padding 1, output_padding 1), IN, ReLU
      head      ReflectionPad2d(3), conv7x7 s1 p0 ngf->out_ch, Tanh
  H and W must be multiples of 4 (and > 3 after each downsampling for the reflection pads).

Discriminator(ndf, in_ch 1): CycleGAN's 70x70 PatchGAN (NLayerDiscriminator, n_layers 3).
All convolutions 4x4 with padding 1 and a bias; IN as in the generator; LeakyReLU slope 0.2.
      conv0     s2 in_ch->ndf, LeakyReLU
      conv1     s2 ndf->2ndf, IN, LeakyReLU
      conv2     s2 2ndf->4ndf, IN, LeakyReLU
      conv3     s1 4ndf->8ndf, IN, LeakyReLU
      conv4     s1 8ndf->1
  Output: one patch score per location, (N, 1, H/8-2, W/8-2) for H, W multiples of 8; 30x30 at 256.

Parameter names (state_dict order = the order of named_parameters below):
  segmentor: enc{0..4}.{conv1,bn1,conv2,bn2,skip,skip_bn}.*, then for l = 3..0 up{l}.{weight,bias}
             and dec{l}.*, then head.{weight,bias}. BN: .weight (gamma), .bias (beta); buffers
             .running_mean, .running_var (and PyTorch's .num_batches_tracked).
  generator: stem, down0, down1, blocks.{i}.conv1, blocks.{i}.conv2, up0, up1, head (.weight, .bias)
  discriminator: conv0 .. conv4 (.weight, .bias)

Initialisation:
  Generator and Discriminator: CycleGAN's init_weights (init_type 'normal', gain 0.02), every
  Conv2d / ConvTranspose2d weight ~ N(0, 0.02), every conv bias = 0 (init_cyclegan).
  InstanceNorm2d here has no affine parameters (CycleGAN's default).
  Segmentor: PyTorch's defaults, i.e. what a freshly built Segmentor holds (init_segmentor is a
  no-op kept for symmetry): conv / transposed-conv weights and biases U(-1/sqrt(fan_in),
  1/sqrt(fan_in)), BatchNorm gamma 1, beta 0, running_mean 0, running_var 1. CycleGAN's
  N(0, 0.02) starves the U-Net's decoder of its deep path (see engine/include/models.h).
  (init_cyclegan still applies to any module; the reference data for the tests use it for all
  three networks, since the tests load every parameter from the files anyway.)
BatchNorm2d: eps 1e-5, momentum 0.1; running_var is updated with the unbiased batch variance.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F


class ResBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.skip = nn.Conv2d(cin, cout, 1, bias=False)
        self.skip_bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        return F.relu(h + self.skip_bn(self.skip(x)))


class Segmentor(nn.Module):
    def __init__(self, width=32, classes=8, in_ch=1):
        super().__init__()
        c = [width, 2 * width, 4 * width, 8 * width, 16 * width]
        self.width, self.classes, self.in_ch = width, classes, in_ch
        self.enc0 = ResBlock(in_ch, c[0])
        self.enc1 = ResBlock(c[0], c[1])
        self.enc2 = ResBlock(c[1], c[2])
        self.enc3 = ResBlock(c[2], c[3])
        self.enc4 = ResBlock(c[3], c[4])
        self.up3 = nn.ConvTranspose2d(c[4], c[3], 2, stride=2)
        self.dec3 = ResBlock(2 * c[3], c[3])
        self.up2 = nn.ConvTranspose2d(c[3], c[2], 2, stride=2)
        self.dec2 = ResBlock(2 * c[2], c[2])
        self.up1 = nn.ConvTranspose2d(c[2], c[1], 2, stride=2)
        self.dec1 = ResBlock(2 * c[1], c[1])
        self.up0 = nn.ConvTranspose2d(c[1], c[0], 2, stride=2)
        self.dec0 = ResBlock(2 * c[0], c[0])
        self.head = nn.Conv2d(c[0], classes, 1)

    def forward(self, x):
        e0 = self.enc0(x)
        e1 = self.enc1(F.max_pool2d(e0, 2))
        e2 = self.enc2(F.max_pool2d(e1, 2))
        e3 = self.enc3(F.max_pool2d(e2, 2))
        d = self.enc4(F.max_pool2d(e3, 2))
        d = self.dec3(torch.cat([e3, self.up3(d)], 1))
        d = self.dec2(torch.cat([e2, self.up2(d)], 1))
        d = self.dec1(torch.cat([e1, self.up1(d)], 1))
        d = self.dec0(torch.cat([e0, self.up0(d)], 1))
        return self.head(d)


def _inorm(x):
    # InstanceNorm2d(affine=False, track_running_stats=False): per (n, c) over H, W, biased var.
    return F.instance_norm(x, eps=1e-5)


class GenBlock(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.conv1 = nn.Conv2d(dim, dim, 3)
        self.conv2 = nn.Conv2d(dim, dim, 3)

    def forward(self, x):
        h = F.relu(_inorm(self.conv1(F.pad(x, (1, 1, 1, 1), mode='reflect'))))
        h = _inorm(self.conv2(F.pad(h, (1, 1, 1, 1), mode='reflect')))
        return x + h


class Generator(nn.Module):
    def __init__(self, ngf=64, n_blocks=9, in_ch=1, out_ch=1):
        super().__init__()
        self.ngf, self.n_blocks = ngf, n_blocks
        self.stem = nn.Conv2d(in_ch, ngf, 7)
        self.down0 = nn.Conv2d(ngf, 2 * ngf, 3, stride=2, padding=1)
        self.down1 = nn.Conv2d(2 * ngf, 4 * ngf, 3, stride=2, padding=1)
        self.blocks = nn.ModuleList([GenBlock(4 * ngf) for _ in range(n_blocks)])
        self.up0 = nn.ConvTranspose2d(4 * ngf, 2 * ngf, 3, stride=2, padding=1, output_padding=1)
        self.up1 = nn.ConvTranspose2d(2 * ngf, ngf, 3, stride=2, padding=1, output_padding=1)
        self.head = nn.Conv2d(ngf, out_ch, 7)

    def forward(self, x):
        h = F.relu(_inorm(self.stem(F.pad(x, (3, 3, 3, 3), mode='reflect'))))
        h = F.relu(_inorm(self.down0(h)))
        h = F.relu(_inorm(self.down1(h)))
        for b in self.blocks:
            h = b(h)
        h = F.relu(_inorm(self.up0(h)))
        h = F.relu(_inorm(self.up1(h)))
        return torch.tanh(self.head(F.pad(h, (3, 3, 3, 3), mode='reflect')))


class Discriminator(nn.Module):
    def __init__(self, ndf=64, in_ch=1):
        super().__init__()
        self.ndf = ndf
        self.conv0 = nn.Conv2d(in_ch, ndf, 4, stride=2, padding=1)
        self.conv1 = nn.Conv2d(ndf, 2 * ndf, 4, stride=2, padding=1)
        self.conv2 = nn.Conv2d(2 * ndf, 4 * ndf, 4, stride=2, padding=1)
        self.conv3 = nn.Conv2d(4 * ndf, 8 * ndf, 4, stride=1, padding=1)
        self.conv4 = nn.Conv2d(8 * ndf, 1, 4, stride=1, padding=1)

    def forward(self, x):
        h = F.leaky_relu(self.conv0(x), 0.2)
        h = F.leaky_relu(_inorm(self.conv1(h)), 0.2)
        h = F.leaky_relu(_inorm(self.conv2(h)), 0.2)
        h = F.leaky_relu(_inorm(self.conv3(h)), 0.2)
        return self.conv4(h)


def init_segmentor(net, gen=None):
    """The segmentor's initialisation: PyTorch's defaults, which a new Segmentor already has."""
    return net


def init_cyclegan(net, gen=None):
    """CycleGAN's 'normal' init (see the module docstring). gen: a torch.Generator or None."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            with torch.no_grad():
                m.weight.normal_(0.0, 0.02, generator=gen)
                if m.bias is not None:
                    m.bias.zero_()
        elif isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.normal_(1.0, 0.02, generator=gen)
                m.bias.zero_()
    return net


# ---- Losses, exactly as engine/include/nn.h defines them ----------------------------------

def seg_loss(logits, labels):
    """Segmentor loss: nn_loss_cross_entropy(logits, labels, NULL) +
    nn_loss_dice(softmax(logits), labels, first_class 0, smooth 1), i.e. F.cross_entropy (mean)
    plus 1 - mean over all K classes of (2 sum p g + 1) / (sum p + sum g + 1), sums over the
    whole batch (N, H, W)."""
    ce = F.cross_entropy(logits, labels)
    p = torch.softmax(logits, 1)
    g = F.one_hot(labels, logits.shape[1]).permute(0, 3, 1, 2).to(p.dtype)
    inter = (p * g).sum(dim=(0, 2, 3))
    den = p.sum(dim=(0, 2, 3)) + g.sum(dim=(0, 2, 3))
    return ce + 1 - ((2 * inter + 1) / (den + 1)).mean()


def l1_loss(y, target):
    """nn_loss_l1: mean |y - target|."""
    return (y - target).abs().mean()


def lsgan_loss(y, target):
    """nn_loss_lsgan: mean (y - target)^2 (target 1 real, 0 fake)."""
    return ((y - target) ** 2).mean()


# ---- FLOP counts ----------------------------------------------------------------------------
# Counted from the architecture: 2 FLOPs per multiply-add of every convolution and transposed
# convolution (norms, activations, pooling, losses and Adam are not counted: they are O(size)
# and well under 2% of the total for these networks). A training step (forward + backward) costs
# the forward, plus the data gradient of every layer but the first (the input needs none), plus
# the weight gradient of every layer: 3x forward minus the first layer's data gradient.

def conv_flops(net, x_shape):
    """Returns (forward_flops, first_layer_flops) for input shape x_shape, via forward hooks."""
    total = [0]
    first = [None]

    def hook(m, inp, out):
        x = inp[0]
        if isinstance(m, nn.Conv2d):
            kh, kw = m.kernel_size
            f = 2 * out.numel() * (m.in_channels // m.groups) * kh * kw
        else:  # ConvTranspose2d: every input pixel scatters a Cout*kh*kw patch
            kh, kw = m.kernel_size
            f = 2 * x.numel() * (m.out_channels // m.groups) * kh * kw
        total[0] += f
        if first[0] is None:
            first[0] = f

    hs = [m.register_forward_hook(hook) for m in net.modules()
          if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    with torch.no_grad():
        was = net.training
        net.eval()
        net(torch.zeros(x_shape))
        net.train(was)
    for h in hs:
        h.remove()
    return total[0], first[0]


def train_flops(net, x_shape):
    fwd, first = conv_flops(net, x_shape)
    return 3 * fwd - first
