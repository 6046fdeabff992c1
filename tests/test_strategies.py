"""Strategies on the tiny transformer: clean reference tokens at timestep 0, target-grid positions,
loss on target tokens only, LTX-2's sigma shift, and a loss that really trains."""

from __future__ import annotations

import math

import pytest
import torch
from ltx_core.components.schedulers import LTX2Scheduler
from ltx_core.guidance.perturbations import BatchedPerturbationConfig
from ltx_core.model.transformer.modality import Modality

import ltxic
from ltxic.models.strategies import (
    EncodedSample,
    collate,
    flow_matching_loss,
    get_strategy,
    sample_sigmas,
    sigma_shift,
)

FPS = 24.0


def make_sample(seed: int = 0, *, ref_hw: tuple[int, int] = (2, 3), ref_frames: int = 1) -> EncodedSample:
    """A 17-frame 64x96 clip's latent grid (3x2x3), 0.68 s of audio, a reference image and 0.4 s of voice."""
    g = torch.Generator().manual_seed(seed)
    return EncodedSample(
        video_latent=torch.randn(16, 3, 2, 3, generator=g),
        video_context=torch.randn(5, 128, generator=g),
        audio_context=torch.randn(5, 64, generator=g),
        context_mask=torch.tensor([1, 1, 1, 1, 0]),
        audio_latent=torch.randn(4, 17, 4, generator=g),
        ref_video_latent=torch.randn(16, ref_frames, *ref_hw, generator=g),
        ref_audio_latent=torch.randn(4, 10, 4, generator=g),
        fps=FPS,
    )


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model():
    return ltxic.build_transformer("tiny", seed=0)


def fixed_noise(batch, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch.batch_size, generator=g) * 0.8 + 0.1, (
        torch.randn(batch.video_latent.shape, generator=g),
        torch.randn(batch.audio_latent.shape, generator=g),
    )


@pytest.mark.parametrize(
    ("name", "n_video", "n_audio"),
    [("text_to_video", 18, 17), ("ic", 18 + 6, 17), ("audio_ref_only_ic", 18 + 6, 17 + 10)],
)
def test_token_counts_timesteps_and_clean_references(name: str, n_video: int, n_audio: int) -> None:
    batch = collate([make_sample(0), make_sample(1)])
    sigmas, noise = fixed_noise(batch)
    video, audio, targets, masks = get_strategy(name).training_step_inputs(batch, sigmas, noise)
    assert isinstance(video, Modality) and isinstance(audio, Modality)
    assert video.latent.shape == (2, n_video, 16) and audio.latent.shape == (2, n_audio, 16)
    assert video.positions.shape == (2, 3, n_video, 2) and audio.positions.shape == (2, 1, n_audio, 2)
    assert targets[0].shape == video.latent.shape and targets[1].shape == audio.latent.shape
    # target tokens: the sampled sigma, noised as (1 - s) x0 + s eps; reference tokens: timestep 0, clean
    x0_v, _ = ltxic.video_tokens(batch.video_latent, FPS)
    eps_v, _ = ltxic.video_tokens(noise[0], FPS)
    s = sigmas.view(-1, 1, 1)
    assert torch.allclose(video.latent[:, :18], (1 - s) * x0_v + s * eps_v)
    assert torch.equal(video.timesteps[:, :18], sigmas[:, None].expand(2, 18))
    assert torch.equal(masks[0], torch.arange(n_video)[None].expand(2, -1) < 18)
    assert torch.equal(masks[1], torch.arange(n_audio)[None].expand(2, -1) < 17)
    assert torch.equal(video.sigma, sigmas) and torch.equal(audio.sigma, sigmas)
    if n_video > 18:
        ref_v, _ = ltxic.video_tokens(batch.ref_video_latent, FPS)
        assert torch.equal(video.latent[:, 18:], ref_v)
        assert torch.equal(video.timesteps[:, 18:], torch.zeros(2, n_video - 18))
        assert torch.equal(targets[0][:, 18:], torch.zeros_like(targets[0][:, 18:]))
    if n_audio > 17:
        ref_a, _ = ltxic.audio_tokens(batch.ref_audio_latent)
        assert torch.equal(audio.latent[:, 17:], ref_a)
        assert torch.equal(audio.timesteps[:, 17:], torch.zeros(2, n_audio - 17))


def test_first_frame_conditioning_gives_frame_0_clean_and_outside_the_loss() -> None:
    """ltx-trainer's first-frame conditioning: per example, latent frame 0 (the first H*W tokens) clean, at
    timestep 0 and masked out of the loss; the other examples and frames unchanged."""
    batch = collate([make_sample(0), make_sample(1)])
    sigmas, noise = fixed_noise(batch)
    strategy = get_strategy("audio_ref_only_ic")
    plain = strategy.training_step_inputs(batch, sigmas, noise)
    video, audio, targets, masks = strategy.training_step_inputs(batch, sigmas, noise, first_frame=torch.tensor([True, False]))
    x0_v, _ = ltxic.video_tokens(batch.video_latent, FPS)
    first = 2 * 3  # latent height x width
    assert torch.equal(video.latent[0, :first], x0_v[0, :first])
    assert torch.equal(video.timesteps[0, :first], torch.zeros(first))
    assert not masks[0][0, :first].any() and masks[0][0, first:18].all()
    # example 1, later frames of example 0, references and audio: as without it
    assert torch.equal(video.latent[1], plain[0].latent[1]) and torch.equal(video.latent[0, first:], plain[0].latent[0, first:])
    assert torch.equal(video.timesteps[0, first:], plain[0].timesteps[0, first:]) and torch.equal(masks[0][1], plain[3][0][1])
    assert torch.equal(audio.latent, plain[1].latent) and torch.equal(masks[1], plain[3][1])
    with pytest.raises(ValueError, match="first_frame_conditioning_p"):
        get_strategy("ic", first_frame_conditioning_p=1.5)


def test_first_frame_conditioning_p_in_the_loss(model) -> None:
    """p = 1 conditions every example, after the same sigmas and noise as p = 0; p = 0 draws nothing extra."""
    batch = collate([make_sample(0), make_sample(1)])

    def loss(p: float, first_frame: torch.Tensor | None = None) -> torch.Tensor:
        g = torch.Generator().manual_seed(3)
        strategy = get_strategy("audio_ref_only_ic", first_frame_conditioning_p=p)
        with torch.no_grad():
            if first_frame is None:
                return strategy.loss(model, batch, g)[0]
            sigmas = sample_sigmas(2, math.prod(batch.video_latent.shape[2:]), g)
            noise = (torch.randn(batch.video_latent.shape, generator=g), torch.randn(batch.audio_latent.shape, generator=g))
            video, audio, targets, masks = strategy.training_step_inputs(batch, sigmas, noise, first_frame=first_frame)
            return flow_matching_loss(*model(video, audio, BatchedPerturbationConfig.empty(2)), targets, masks)[0]

    assert torch.equal(loss(1.0), loss(0.0, torch.tensor([True, True])))
    assert torch.equal(loss(0.0), loss(0.0, torch.tensor([False, False])))
    assert not torch.equal(loss(1.0), loss(0.0))


def test_reference_video_positions_factor_1_and_2() -> None:
    """Hand-computed bounds: latent row i covers pixels [32 i, 32 (i+1)) of the target, a one-frame
    reference covers [0, 1/fps) in time (causal first frame); at factor 2 each reference latent covers 64 px."""
    target = (1, 16, 3, 4, 6)
    for factor, ref_hw in ((1, (4, 6)), (2, (2, 3))):
        strategy = get_strategy("ic", reference_downscale_factor=factor)
        ref = torch.zeros(1, 16, 1, *ref_hw)
        _, pos = strategy.reference_video(ref, target, FPS)
        h, w = ref_hw
        rows = torch.arange(h).repeat_interleave(w).float()
        cols = torch.arange(w).repeat(h).float()
        step = 32.0 * factor
        expected_h = torch.stack([rows * step, (rows + 1) * step], dim=-1)
        expected_w = torch.stack([cols * step, (cols + 1) * step], dim=-1)
        expected_t = torch.tensor([0.0, 1.0 / FPS]).expand(h * w, 2)
        assert torch.allclose(pos[0, 0], expected_t)
        assert torch.equal(pos[0, 1], expected_h)
        assert torch.equal(pos[0, 2], expected_w)
        # the reference spans the target's extent: 4 x 6 latents = 128 x 192 px either way
        assert pos[0, 1].max() == 128 and pos[0, 2].max() == 192
    # factor 1 with a same-size reference: exactly the target's first-frame positions
    _, target_pos = ltxic.video_tokens(torch.zeros(target), FPS)
    _, ref_pos = get_strategy("ic").reference_video(torch.zeros(1, 16, 1, 4, 6), target, FPS)
    assert torch.equal(ref_pos, target_pos[:, :, :24])


def test_reference_size_must_match_factor() -> None:
    with pytest.raises(ValueError, match="reference_downscale_factor=2"):
        get_strategy("ic", reference_downscale_factor=2).reference_video(torch.zeros(1, 16, 1, 4, 6), (1, 16, 3, 4, 6), FPS)
    with pytest.raises(ValueError, match="whole number"):
        get_strategy("ic", reference_downscale_factor=1.5)
    with pytest.raises(ValueError, match="unknown"):
        get_strategy("video_to_video")


def test_reference_audio_sits_before_the_target() -> None:
    """ID-LoRA layout: the reference's own grid shifted so it ends one latent (40 ms) before t = 0."""
    strategy = get_strategy("audio_ref_only_ic")
    _, own = ltxic.audio_tokens(torch.zeros(1, 4, 10, 4))
    _, pos = strategy.reference_audio(torch.zeros(1, 4, 10, 4), 16)
    assert pos[0, 0, -1, 1].item() == pytest.approx(-0.04, abs=1e-6)
    assert torch.allclose(pos[..., 1] - pos[..., 0], own[..., 1] - own[..., 0])  # same spacing
    # own grid ends at 0.01 + 9 * 0.04 = 0.37 s, so every bound moves by -0.41 s
    assert torch.allclose(pos, own - 0.41, atol=1e-6)
    _, target = ltxic.audio_tokens(torch.zeros(1, 4, 17, 4))
    assert pos.max() < target.min() + 1e-9


def test_missing_reference_is_named() -> None:
    sample = make_sample()
    sample.ref_audio_latent = None
    batch = collate([sample])
    sigmas, noise = fixed_noise(batch)
    with pytest.raises(ValueError, match="ref_audio_latent"):
        get_strategy("audio_ref_only_ic").training_step_inputs(batch, sigmas, noise)
    get_strategy("ic").training_step_inputs(batch, sigmas, noise)  # ic needs only the image


def test_collate_errors_name_the_field() -> None:
    a, b = make_sample(0), make_sample(1)
    b.ref_audio_latent = None
    with pytest.raises(ValueError, match="'ref_audio_latent'"):
        collate([a, b])
    b = make_sample(1)
    b.video_latent = torch.zeros(16, 3, 4, 6)
    with pytest.raises(ValueError, match="'video_latent'.*bucket"):
        collate([a, b])


def test_loss_ignores_reference_outputs(model) -> None:
    """Perturbing the model output on reference tokens leaves the loss unchanged; on a target token it does not."""
    batch = collate([make_sample(0)])
    sigmas, noise = fixed_noise(batch)
    strategy = get_strategy("audio_ref_only_ic")
    video, audio, targets, masks = strategy.training_step_inputs(batch, sigmas, noise)
    with torch.no_grad():
        v_pred, a_pred = model(video, audio, BatchedPerturbationConfig.empty(1))
    base, logs = flow_matching_loss(v_pred, a_pred, targets, masks)
    assert set(logs) == {"loss", "loss_video", "loss_audio"}
    assert float(logs["loss"]) == pytest.approx(float(logs["loss_video"] + logs["loss_audio"]), rel=1e-6)
    v_bad, a_bad = v_pred.clone(), a_pred.clone()
    v_bad[:, 18:] += 100.0 * torch.randn_like(v_bad[:, 18:])
    a_bad[:, 17:] += 100.0 * torch.randn_like(a_bad[:, 17:])
    assert torch.equal(flow_matching_loss(v_bad, a_bad, targets, masks)[0], base)
    v_bad[:, 0] += 1.0
    assert flow_matching_loss(v_bad, a_bad, targets, masks)[0] > base


def test_reference_order_does_not_matter(model) -> None:
    """Why appending (ltx-core) equals prepending (ltx-trainer, ID-LoRA): attention has no causal mask and
    RoPE reads positions, so moving the references to the front leaves the target outputs unchanged."""
    batch = collate([make_sample(0)])
    sigmas, noise = fixed_noise(batch)
    video, audio, _, _ = get_strategy("audio_ref_only_ic").training_step_inputs(batch, sigmas, noise)

    def to_front(m: Modality, n: int) -> Modality:
        order = torch.cat([torch.arange(n, m.latent.shape[1]), torch.arange(n)])
        return Modality(
            latent=m.latent[:, order], sigma=m.sigma, timesteps=m.timesteps[:, order],
            positions=m.positions[:, :, order], context=m.context, context_mask=m.context_mask,
        )

    with torch.no_grad():
        v1, a1 = model(video, audio, BatchedPerturbationConfig.empty(1))
        v2, a2 = model(to_front(video, 18), to_front(audio, 17), BatchedPerturbationConfig.empty(1))
    assert torch.allclose(v1[:, :18], v2[:, -18:], atol=1e-5)
    assert torch.allclose(a1[:, :17], a2[:, -17:], atol=1e-5)


def test_sigma_shift_follows_ltx2_scheduler() -> None:
    assert sigma_shift(1024) == pytest.approx(0.95) and sigma_shift(4096) == pytest.approx(2.05)
    assert sigma_shift(18) < sigma_shift(1024) < sigma_shift(6144)
    # the same line ltx-core's LTX2Scheduler shifts its schedule with
    for tokens in (18, 1024, 3000, 6144):
        got = LTX2Scheduler().execute(steps=8, latent=torch.empty(1, 1, tokens, device="meta"), stretch=False)
        t = torch.linspace(1.0, 0.0, 9)[:-1]
        shift = math.exp(sigma_shift(tokens))
        assert torch.allclose(got[:-1], shift / (shift + (1 / t - 1)), atol=1e-6)
    # the training sampler moves toward high noise as the token count grows
    means = [float(sample_sigmas(4000, n, torch.Generator().manual_seed(0)).mean()) for n in (64, 1024, 4096, 8192)]
    assert means == sorted(means) and means[-1] - means[0] > 0.2
    s = sample_sigmas(4000, 1024, torch.Generator().manual_seed(0))
    assert s.min() >= 0 and s.max() <= 1
    assert torch.equal(s, sample_sigmas(4000, 1024, torch.Generator().manual_seed(0)))


def test_loss_decreases_when_overfitting_one_example() -> None:
    """30 AdamW steps on one example: the loss at fixed sigmas and noise falls clearly."""
    model = ltxic.build_transformer("tiny", seed=0)
    batch = collate([make_sample(0)])
    strategy = get_strategy("audio_ref_only_ic")

    def fixed_loss() -> float:
        with torch.no_grad():
            total = 0.0
            for seed in range(4):
                loss, _ = strategy.loss(model, batch, torch.Generator().manual_seed(100 + seed))
                total += float(loss)
            return total / 4

    start = fixed_loss()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(30):
        loss, logs = strategy.loss(model, batch, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        assert math.isfinite(float(logs["loss"])) and 0 <= float(logs["sigma"]) <= 1
    end = fixed_loss()
    print(f"overfit: fixed-noise loss {start:.3f} -> {end:.3f}")
    assert end < 0.7 * start, (start, end)


def test_checkpoint_metadata_carries_the_factor() -> None:
    meta = get_strategy("audio_ref_only_ic", reference_downscale_factor=2).checkpoint_metadata()
    assert meta == {"ltxic_strategy": "audio_ref_only_ic", "reference_downscale_factor": "2"}
    assert "reference_downscale_factor" not in get_strategy("text_to_video").checkpoint_metadata()
