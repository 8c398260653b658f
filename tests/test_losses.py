"""Losses against values computed by hand: the papers' product form, the official averaged form, LSGAN,
L1, perceptual, Gram/style, and the image pool's history rule and resumability."""
from __future__ import annotations

import math

import pytest
import torch

from posetransfer.losses import (ImagePool, PerceptualLoss, StyleLoss, discriminator_adversarial,
                                 generator_adversarial, gan_term, gram_matrix, l1)


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def scores(*probabilities: float, logits: bool = True) -> torch.Tensor:
    """A 1×1×1×N score map holding these probabilities (as logits or as probabilities)."""
    values = [logit(p) for p in probabilities] if logits else list(probabilities)
    return torch.tensor(values, dtype=torch.float64).view(1, 1, 1, -1)


def test_product_form_is_log_of_product_of_the_two_discriminators():
    # D_A, D_S probabilities per score-map element
    a_real, s_real = [0.8, 0.6], [0.5, 0.9]
    a_fake, s_fake = [0.3, 0.2], [0.4, 0.1]
    d = discriminator_adversarial([scores(*a_real), scores(*s_real)], [scores(*a_fake), scores(*s_fake)],
                                  mode="bce", form="product")
    # −E log(D_A·D_S)(real) − E log((1−D_A)(1−D_S))(fake), expectation = mean over the map elements
    real = -sum(math.log(a * s) for a, s in zip(a_real, s_real)) / 2
    fake = -sum(math.log((1 - a) * (1 - s)) for a, s in zip(a_fake, s_fake)) / 2
    assert d.item() == pytest.approx(real + fake, rel=1e-6)

    g = generator_adversarial([scores(*a_fake), scores(*s_fake)], mode="bce", form="product")
    assert g.item() == pytest.approx(-sum(math.log(a * s) for a, s in zip(a_fake, s_fake)) / 2, rel=1e-6)


def test_probabilities_and_logits_give_the_same_bce():
    p = [0.7, 0.2, 0.95]
    from_logits = gan_term(scores(*p), True, "bce", logits=True)
    from_probs = gan_term(scores(*p, logits=False), True, "bce", logits=False)
    assert from_logits.item() == pytest.approx(-sum(math.log(x) for x in p) / 3, rel=1e-6)
    assert from_probs.item() == pytest.approx(from_logits.item(), rel=1e-6)
    # one discriminator with a sigmoid layer, one without
    mixed = generator_adversarial([scores(0.7), scores(0.2, logits=False)], logits=[True, False])
    assert mixed.item() == pytest.approx(-math.log(0.7) - math.log(0.2), rel=1e-6)


def test_official_average_form_halves_the_terms():
    a_real, s_real, a_fake, s_fake = 0.8, 0.5, 0.3, 0.4
    g = generator_adversarial([scores(a_fake), scores(s_fake)], form="average")
    assert g.item() == pytest.approx((-math.log(a_fake) - math.log(s_fake)) / 2, rel=1e-6)
    d = discriminator_adversarial([scores(a_real), scores(s_real)], [scores(a_fake), scores(s_fake)], form="average")
    # each D: 0.5 · (BCE(real, 1) + BCE(fake, 0)); summed over the two discriminators
    expected = 0.5 * (-math.log(a_real) - math.log(1 - a_fake)) + 0.5 * (-math.log(s_real) - math.log(1 - s_fake))
    assert d.item() == pytest.approx(expected, rel=1e-6)


def test_lsgan_is_mean_squared_error_against_one_and_zero():
    real = torch.tensor([[0.5, 2.0]]).view(1, 1, 1, 2)
    fake = torch.tensor([[-1.0, 0.25]]).view(1, 1, 1, 2)
    d = discriminator_adversarial([real], [fake], mode="lsgan", form="product")
    assert d.item() == pytest.approx(((0.5 - 1) ** 2 + (2 - 1) ** 2) / 2 + ((-1) ** 2 + 0.25 ** 2) / 2)
    g = generator_adversarial([fake], mode="lsgan", form="average")
    assert g.item() == pytest.approx(((-1 - 1) ** 2 + (0.25 - 1) ** 2) / 2)
    d_avg = discriminator_adversarial([real], [fake], mode="lsgan", form="average")
    assert d_avg.item() == pytest.approx(d.item() / 2)


def test_unknown_mode_and_form_are_rejected():
    with pytest.raises(ValueError, match="GAN mode"):
        gan_term(scores(0.5), True, mode="wgan")
    with pytest.raises(ValueError, match="GAN form"):
        generator_adversarial([scores(0.5)], form="sum")


def test_l1_is_the_mean_absolute_difference():
    a = torch.tensor([[1.0, -1.0], [0.5, 0.0]])
    b = torch.tensor([[0.0, -1.0], [-0.5, 0.25]])
    assert l1(a, b).item() == pytest.approx((1 + 0 + 1 + 0.25) / 4)


def test_gram_matrix_by_hand():
    # one image, 2 channels, 1×2 pixels: F = [[1, 2], [3, 4]]
    f = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 2, 1, 2)
    gram = gram_matrix(f)[0]
    # F Fᵀ / (C·H·W) = [[1+4, 3+8], [3+8, 9+16]] / 4
    assert torch.allclose(gram, torch.tensor([[5.0, 11.0], [11.0, 25.0]]) / 4)


class Identity(torch.nn.Module):
    """Stand-in feature extractor: the "features" are the image itself and its square."""

    def forward(self, x):
        return {"relu1_2": x, "relu2_2": x * x}


def test_perceptual_loss_is_weighted_l1_on_features_with_detached_target():
    gen = torch.tensor([1.0, 2.0]).view(1, 1, 1, 2).requires_grad_(True)
    tgt = torch.tensor([0.0, 4.0]).view(1, 1, 1, 2).requires_grad_(True)
    loss = PerceptualLoss(Identity(), ["relu1_2", "relu2_2"], weights=[1.0, 0.5])(gen, tgt)
    expected = (1 + 2) / 2 + 0.5 * (abs(1 - 0) + abs(4 - 16)) / 2
    assert loss.item() == pytest.approx(expected)
    loss.backward()
    assert gen.grad is not None and tgt.grad is None


def test_style_loss_is_l1_between_grams():
    gen = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 2, 1, 2)
    tgt = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).view(1, 2, 1, 2)
    loss = StyleLoss(Identity(), ["relu1_2"])(gen, tgt)
    g_gen = torch.tensor([[5.0, 11.0], [11.0, 25.0]]) / 4
    g_tgt = torch.tensor([[1.0, 0.0], [0.0, 1.0]]) / 4
    assert loss.item() == pytest.approx((g_gen - g_tgt).abs().mean().item())
    assert StyleLoss(Identity(), ["relu1_2"])(gen, gen).item() == 0.0


def test_image_pool_fills_then_swaps_and_resumes_exactly():
    assert torch.equal(ImagePool(0).query(torch.ones(3, 1, 2, 2)), torch.ones(3, 1, 2, 2))
    pool = ImagePool(4, seed=3)
    first = torch.arange(4.0).view(4, 1, 1, 1)
    assert torch.equal(pool.query(first), first)          # not full yet: everything is stored and returned
    state, images = pool.state_dict()
    assert state["count"] == 4 and torch.equal(images, first)
    batches = [torch.full((4, 1, 1, 1), 10.0 * (i + 1)) + torch.arange(4.0).view(4, 1, 1, 1) for i in range(3)]
    outputs = [pool.query(b) for b in batches]
    returned = torch.cat(outputs).flatten().tolist()
    assert any(v < 4 for v in returned), "a full pool returns some stored images"
    assert any(v >= 10 for v in returned), "and some new ones"
    # restoring the saved state replays the same choices
    clone = ImagePool(4, seed=99)
    clone.load_state_dict(state, images)
    assert all(torch.equal(clone.query(b), o) for b, o in zip(batches, outputs))
