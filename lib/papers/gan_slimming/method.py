"""GAN Slimming (Wang et al., ECCV 2020): distillation, channel pruning and quantization of
an image-to-image generator in one minimax problem.

With ``G0`` the dense teacher, ``G(W, gamma)`` the student (its weights ``W`` and the channel
scales ``gamma`` of its normalization layers) and ``D`` a discriminator, GS solves (Eq. 4)

    min_{W, gamma} max_D  L_GAN(G, D) + beta * L_dist(G(x), G0(x)) + rho * |gamma|_1 ,

* ``L_GAN``: the LSGAN loss, ``D`` telling the teacher's outputs ``G0(x)`` (real) from the
  student's ``G(x)`` (fake, through a replay buffer);
* ``L_dist``: the distillation loss to the teacher's outputs (here ``|G(x) - G0(x)|_1``
  plus a perceptual feature + Gram loss);
* ``rho |gamma|_1``: sparsity of the channel scales, so channels with ``gamma = 0`` drop;
* the forward pass quantizes ``W`` (8 bits, signed, scale ``max|W| / 127``, straight-through
  gradient) and the post-ReLU activations (8 bits over ``[0, 4]``, clipped
  straight-through).

Per batch (Alg. 1): a gradient step of ``W`` by Adam and of ``gamma`` by SGD on the smooth
part, then the proximal step of the l1 term, ``gamma <- soft_threshold(gamma, rho * lr)``;
then a step of ``D`` by Adam. Afterwards the zero-gamma channels are physically removed
(``lib.vision.gan.extract_slim_generator``) and the slim generator is fine-tuned.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lib.quant.fake_quant import attach_fake_quant
from lib.sparse.projections import soft_threshold
from lib.vision.gan import (
    ImagePool,
    ResnetGenerator,
    gamma_parameters,
    lsgan_loss,
    perceptual_loss,
    set_activation_bits,
)


@dataclass(frozen=True)
class GSKnobs:
    """The hyper-parameters of one GS run (``rho = 0``: plain quantized fine-tuning)."""

    lr_w: float          # Adam, weights and shifts of the generator
    lr_gamma: float      # SGD, channel scales
    lr_d: float          # Adam, discriminator
    rho: float           # l1 weight of gamma
    beta: float = 1.0    # weight of L_dist (0: the "no distillation" ablation)
    gan: float = 1.0     # weight of L_GAN (0: distillation-only slimming)
    style: float = 1.0   # Gram-matrix weight inside the perceptual loss
    bits: int = 8        # weights and activations
    act_max: float = 4.0


def quantize_generator(gen: ResnetGenerator, bits: int, act_max: float = 4.0) -> None:
    """Attach the weight fake quantizer (signed, per tensor, ``max|W| / (2^(b-1) - 1)``,
    straight-through) to every convolution and turn the activation quantizers on."""
    for m in gen.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            attach_fake_quant(m, bits, symmetric=True)
    set_activation_bits(gen, bits, act_max)


def distillation_loss(student_out: torch.Tensor, teacher_out: torch.Tensor,
                      features: nn.Module, style: float) -> torch.Tensor:
    """``L_dist``: pixel l1 to the teacher's output plus the perceptual loss."""
    return ((student_out - teacher_out).abs().mean()
            + perceptual_loss(features, student_out, teacher_out, style))


@torch.no_grad()
def gamma_prox(gen: ResnetGenerator, threshold: float) -> None:
    """The proximal step of ``rho |gamma|_1``: ``gamma <- soft_threshold(gamma, rho lr)``."""
    for g in gamma_parameters(gen):
        g.copy_(soft_threshold(g, threshold))


class GSState:
    """The student, the discriminator, their three optimizers and the replay buffer."""

    def __init__(self, student: ResnetGenerator, disc: nn.Module, knobs: GSKnobs,
                 pool_size: int, seed: int):
        gammas = {id(p) for p in gamma_parameters(student)}
        self.student, self.disc, self.knobs = student, disc, knobs
        self.opt_w = torch.optim.Adam([p for p in student.parameters() if id(p) not in gammas],
                                      lr=knobs.lr_w, betas=(0.5, 0.999))
        self.opt_gamma = torch.optim.SGD(gamma_parameters(student), lr=knobs.lr_gamma)
        self.opt_d = torch.optim.Adam(disc.parameters(), lr=knobs.lr_d, betas=(0.5, 0.999))
        self.pool = ImagePool(pool_size, seed)

    def state_dict(self) -> dict:
        return {k: getattr(self, k).state_dict()
                for k in ("student", "disc", "opt_w", "opt_gamma", "opt_d")}

    def load_state_dict(self, state: dict) -> None:
        for k, v in state.items():
            getattr(self, k).load_state_dict(v)


def gs_step(state: GSState, teacher: nn.Module, x: torch.Tensor, features: nn.Module
            ) -> dict[str, float]:
    """One GS iteration on batch ``x`` (the steps of Alg. 1)."""
    k, student, disc = state.knobs, state.student, state.disc
    with torch.no_grad():
        target = teacher(x)                                    # G0(x)
    out = student(x)                                           # G(W, gamma)(x), quantized
    # min over (W, gamma) of  L_GAN + beta * L_dist  (the smooth part)
    loss_gan = lsgan_loss(disc(out), real=True) if k.gan else out.new_zeros(())
    loss_dist = distillation_loss(out, target, features, k.style) if k.beta else out.new_zeros(())
    loss_g = k.gan * loss_gan + k.beta * loss_dist
    state.opt_w.zero_grad(set_to_none=True)
    state.opt_gamma.zero_grad(set_to_none=True)
    loss_g.backward()
    state.opt_w.step()                                         # W: Adam (straight-through)
    state.opt_gamma.step()                                     # gamma: SGD
    if k.rho:
        gamma_prox(student, k.rho * k.lr_gamma)                # prox of rho |gamma|_1
    # max over D: LSGAN, teacher outputs real, (replayed) student outputs fake
    loss_d = out.new_zeros(())
    if k.gan:
        fake = state.pool.query(out.detach())
        loss_d = 0.5 * (lsgan_loss(disc(target), real=True) + lsgan_loss(disc(fake), real=False))
        state.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        state.opt_d.step()
    gam = torch.cat([g.detach().abs() for g in gamma_parameters(student)])
    return {"loss_gan": float(loss_gan.detach()), "loss_dist": float(loss_dist.detach()),
            "loss_d": float(loss_d.detach()),
            "gamma_l1": float(gam.sum()), "gamma_zero": float((gam == 0).float().mean())}


def bit_macs(macs: int, bits: int) -> int:
    """The cost that the compression ratio divides: MACs times the weights' bit width."""
    return int(macs) * int(bits)


def compression_ratio(dense_macs: int, slim_macs: int, bits: int, dense_bits: int = 32
                      ) -> float:
    """``(32 x MACs of the dense generator) / (bits x MACs of the extracted one)``."""
    return bit_macs(dense_macs, dense_bits) / bit_macs(slim_macs, bits)
