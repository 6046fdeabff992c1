"""Sampling on the tiny transformer: reproducible seeds, target shapes with references stripped,
references that change the result, CFG and reference guidance, LTX-2 schedules."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

import ltxic
from ltxic.sampling.sampler import SamplingConfig, sample_latents, sigma_schedule
from ltxic.models.strategies import EncodedSample, collate, get_strategy

CFG = SamplingConfig(width=96, height=64, frames=17, fps=24.0, steps=4)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model():
    return ltxic.build_transformer("tiny", seed=0)


@pytest.fixture(scope="module")
def inputs():
    g = torch.Generator().manual_seed(0)
    return {
        "video_context": torch.randn(1, 5, 128, generator=g),
        "audio_context": torch.randn(1, 5, 64, generator=g),
        "negative_video_context": torch.zeros(1, 5, 128),
        "negative_audio_context": torch.zeros(1, 5, 64),
        "ref_video_latent": torch.randn(1, 16, 1, 2, 3, generator=g),
        "ref_audio_latent": torch.randn(1, 4, 10, 4, generator=g),
    }


def run(model, inputs, config=CFG, strategy="audio_ref_only_ic", **overrides):
    kwargs = {**inputs, **overrides}
    if strategy == "text_to_video":
        kwargs.pop("ref_video_latent", None)
        kwargs.pop("ref_audio_latent", None)
    return sample_latents(model, strategy=strategy, config=config, **kwargs)


def test_shapes_are_the_targets_with_references_stripped(model, inputs) -> None:
    video, audio = run(model, inputs)
    assert video.shape == (1, 16, 3, 2, 3)  # 17 frames, 64 x 96 px
    assert audio.shape == (1, 4, 18, 4)  # 17 / 24 s at 25 latents/s
    assert torch.isfinite(video).all() and torch.isfinite(audio).all()
    longer = SamplingConfig(width=128, height=64, frames=25, fps=24.0, steps=2, audio_seconds=2.0)
    video, audio = run(model, inputs, longer, strategy="ic", ref_video_latent=torch.randn(1, 16, 1, 2, 4), ref_audio_latent=None)
    assert video.shape == (1, 16, 4, 2, 4) and audio.shape == (1, 4, 50, 4)


def test_same_seed_is_bitwise_equal_other_seed_differs(model, inputs) -> None:
    a = run(model, inputs)
    b = run(model, inputs)
    c = run(model, inputs, replace(CFG, seed=1))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.allclose(a[0], c[0]) and not torch.allclose(a[1], c[1])


def test_references_change_the_result(model, inputs) -> None:
    with_refs = run(model, inputs)
    without = run(model, inputs, strategy="text_to_video")
    assert (with_refs[0] - without[0]).abs().max() > 1e-3
    assert (with_refs[1] - without[1]).abs().max() > 1e-3
    # a different reference voice moves the audio
    other = run(model, inputs, ref_audio_latent=torch.randn(1, 4, 10, 4, generator=torch.Generator().manual_seed(9)))
    assert (other[1] - with_refs[1]).abs().max() > 1e-3


def test_reference_tokens_matter_more_after_training_with_them() -> None:
    """A few IC steps on one example make the sample depend more on its reference than before."""
    g = torch.Generator().manual_seed(0)
    sample = EncodedSample(
        video_latent=torch.randn(16, 3, 2, 3, generator=g),
        video_context=torch.randn(5, 128, generator=g),
        audio_context=torch.randn(5, 64, generator=g),
        audio_latent=torch.randn(4, 18, 4, generator=g),
        ref_video_latent=torch.randn(16, 1, 2, 3, generator=g),
    )
    model = ltxic.build_transformer("tiny", seed=0)
    batch = collate([sample])
    strategy = get_strategy("ic")
    ctx = {"video_context": sample.video_context[None], "audio_context": sample.audio_context[None]}

    def ref_effect() -> float:
        a = sample_latents(model, ref_video_latent=sample.ref_video_latent[None], strategy=strategy, config=CFG, **ctx)
        b = sample_latents(model, ref_video_latent=-sample.ref_video_latent[None], strategy=strategy, config=CFG, **ctx)
        return float((a[0] - b[0]).abs().mean())

    before = ref_effect()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(15):
        loss, _ = strategy.loss(model, batch, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = ref_effect()
    print(f"reference effect {before:.4f} -> {after:.4f}")
    assert after > 2 * before


def with_guidance(config: SamplingConfig, **overrides) -> SamplingConfig:
    return replace(config, guidance=config.guidance.with_overrides(**overrides))


def test_cfg_scale_one_is_unguided_and_other_scales_guide(model, inputs) -> None:
    plain = run(model, inputs, negative_video_context=None, negative_audio_context=None)
    scale_one = run(model, inputs, with_guidance(CFG, video_cfg=1.0, audio_cfg=1.0))
    assert torch.equal(plain[0], scale_one[0]) and torch.equal(plain[1], scale_one[1])
    video_only = run(model, inputs, with_guidance(CFG, video_cfg=3.0))
    assert not torch.allclose(video_only[0], plain[0])
    both = run(model, inputs, with_guidance(CFG, video_cfg=3.0, audio_cfg=7.0))
    assert not torch.allclose(both[1], video_only[1])
    with pytest.raises(ValueError, match="negative_video_context"):
        run(model, inputs, with_guidance(CFG, video_cfg=3.0), negative_video_context=None)


def test_stg_modality_and_rescale_each_guide(model, inputs) -> None:
    """Each of LTX-2.3's guidance terms changes the sample (the tiny transformer has 4 blocks: STG on block 1)."""
    plain = run(model, inputs)
    results = {}
    for name, over in {"stg": dict(video_stg=1.0, video_stg_blocks=(1,)), "audio_stg": dict(audio_stg=1.0, audio_stg_blocks=(1,)),
                       "modality": dict(video_modality=3.0, audio_modality=3.0),
                       "rescale": dict(video_cfg=3.0, video_rescale=0.7)}.items():
        results[name] = run(model, inputs, with_guidance(CFG, **over))
    assert not torch.allclose(results["stg"][0], plain[0])
    assert not torch.allclose(results["audio_stg"][1], plain[1])
    assert not torch.allclose(results["modality"][0], plain[0]) and not torch.allclose(results["modality"][1], plain[1])
    no_rescale = run(model, inputs, with_guidance(CFG, video_cfg=3.0))
    assert not torch.allclose(results["rescale"][0], no_rescale[0])
    with pytest.raises(ValueError, match="stg_blocks"):
        with_guidance(CFG, video_stg=1.0)


def test_skip_step_reuses_the_last_guided_prediction(model, inputs) -> None:
    """``skip_step = 1``: steps 0 and 2 of 4 run their passes (conditional + negative), 1 and 3 reuse them."""
    calls = []
    hook = model.register_forward_hook(lambda *a: calls.append(1))
    try:
        guided = run(model, inputs, with_guidance(CFG, video_cfg=3.0, audio_cfg=3.0))
        n_every = len(calls)
        calls.clear()
        skipping = run(model, inputs, with_guidance(CFG, video_cfg=3.0, audio_cfg=3.0, video_skip_step=1, audio_skip_step=1))
    finally:
        hook.remove()
    assert (n_every, len(calls)) == (8, 4)
    assert not torch.allclose(skipping[0], guided[0])


def test_reference_guidance(model, inputs) -> None:
    plain = run(model, inputs)
    off = run(model, inputs, with_guidance(CFG, reference_video=0.0, reference_audio=0.0))
    assert torch.equal(plain[0], off[0])
    on = run(model, inputs, with_guidance(CFG, reference_video=2.0, reference_audio=2.0))
    assert not torch.allclose(on[0], plain[0]) and not torch.allclose(on[1], plain[1])
    # scale s adds s * (with - without references) to each denoised estimate: the one-step sample shows it. Video
    # only, so both runs draw the same noise (the pipelines' order draws the reference tokens' noise too, which
    # shifts the audio noise of a run with references)
    one = replace(CFG, sigmas=(1.0, 0.0), generate_audio=False)
    face = dict(inputs, ref_audio_latent=None)
    w = run(model, face, one, strategy="ic")
    wo = run(model, face, one, strategy="text_to_video")
    g = run(model, face, with_guidance(one, reference_video=2.0), strategy="ic")
    assert torch.allclose(g[0], w[0] + 2.0 * (w[0] - wo[0]), atol=1e-5)
    # per stream, from the same pass without references: the audio scale moves the audio only, linearly
    one = replace(CFG, sigmas=(1.0, 0.0))
    base = run(model, inputs, one)
    half = run(model, inputs, with_guidance(one, reference_audio=0.5))
    two = run(model, inputs, with_guidance(one, reference_audio=2.0))
    assert torch.equal(half[0], base[0]) and torch.equal(two[0], base[0])
    assert torch.allclose((two[1] - base[1]) / 2.0, (half[1] - base[1]) / 0.5, atol=1e-5)
    assert not torch.allclose(two[1], base[1])


def test_wrong_reference_for_strategy_is_refused(model, inputs) -> None:
    with pytest.raises(ValueError, match="ref_audio_latent.*audio_ref_only_ic"):
        run(model, inputs, strategy="ic")
    with pytest.raises(ValueError, match="ref_video_latent"):
        run(model, inputs, ref_video_latent=None)


def test_schedules() -> None:
    s = sigma_schedule(SamplingConfig(steps=8), 18)
    assert len(s) == 9 and s[0] == 1 and s[-1] == 0 and s[-2] == pytest.approx(0.1)
    assert torch.all(s[1:] < s[:-1])
    # more tokens, more shift: higher sigmas mid-schedule
    assert sigma_schedule(SamplingConfig(steps=8), 6144)[4] > s[4]
    pipelines = sigma_schedule(SamplingConfig(steps=8, schedule_tokens=4096), 18)
    from ltx_core.components.schedulers import LTX2Scheduler

    assert torch.equal(pipelines, LTX2Scheduler().execute(steps=8))
    distilled = sigma_schedule(SamplingConfig(distilled=True), 18)
    assert len(distilled) == 9 and distilled[5].item() == pytest.approx(0.909375)
    with pytest.raises(ValueError, match="steps must be >= 2"):
        sigma_schedule(SamplingConfig(steps=1), 18)
    with pytest.raises(ValueError, match="descend"):
        sigma_schedule(SamplingConfig(sigmas=(0.5, 0.7, 0.0)), 18)


def test_refine_from_an_initial_latent(model, inputs) -> None:
    """Stage-2 style: start from a latent noised to the first sigma of a short schedule."""
    from ltx_pipelines.utils.constants import STAGE_2_DISTILLED_SIGMA_VALUES

    video, audio = run(model, inputs)
    refine = SamplingConfig(**{**CFG.__dict__, "sigmas": tuple(STAGE_2_DISTILLED_SIGMA_VALUES)})
    v2, a2 = run(model, inputs, refine, initial_video_latent=video, initial_audio_latent=audio)
    assert v2.shape == video.shape and a2.shape == audio.shape
    fresh, _ = run(model, inputs, refine)
    # the refined sample stays nearer its starting latent than a sample from pure noise does
    assert (v2 - video).norm() < (fresh - video).norm()
    with pytest.raises(ValueError, match="initial_video_latent"):
        run(model, inputs, refine, initial_video_latent=video[:, :, :2])


def test_distilled_path_and_video_only(model, inputs) -> None:
    video, audio = run(model, inputs, SamplingConfig(**{**CFG.__dict__, "distilled": True}))
    assert video.shape == (1, 16, 3, 2, 3) and audio.shape == (1, 4, 18, 4)
    video, audio = run(model, inputs, SamplingConfig(**{**CFG.__dict__, "generate_audio": False}), strategy="ic", ref_audio_latent=None)
    assert audio is None and video.shape == (1, 16, 3, 2, 3)


def test_batched_guidance_passes_equal_the_passes_one_by_one(model, inputs) -> None:
    """LTX-2.3's four passes (conditional, negative, STG, modality) in one batch give the sequential result.

    One forward a step instead of four; the identity pass (fewer tokens) still runs on its own.
    """
    guided = with_guidance(CFG, video_cfg=3.0, audio_cfg=7.0, video_stg=1.0, video_stg_blocks=(1,), audio_stg=1.0,
                           audio_stg_blocks=(1,), video_modality=3.0, audio_modality=3.0, video_rescale=0.7,
                           audio_rescale=0.7, reference_audio=3.0)
    calls = []
    hook = model.register_forward_hook(lambda module, args, out: calls.append(args[0].latent.shape[0]))
    try:
        one_by_one = run(model, inputs, replace(guided, batch_guidance=False))
        sequential_calls = list(calls)
        calls.clear()
        batched = run(model, inputs, replace(guided, batch_guidance=True))
    finally:
        hook.remove()
    steps = CFG.steps
    assert sequential_calls == [1] * (5 * steps)
    assert calls == [4, 1] * steps
    torch.testing.assert_close(batched[0], one_by_one[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(batched[1], one_by_one[1], atol=1e-5, rtol=0)
    # a negative prompt of another length cannot share the batch: the passes then run one by one
    calls.clear()
    hook = model.register_forward_hook(lambda module, args, out: calls.append(args[0].latent.shape[0]))
    try:
        longer_negative = run(model, inputs, replace(guided, batch_guidance=True),
                              negative_video_context=torch.zeros(1, 7, 128), negative_audio_context=torch.zeros(1, 7, 64))
    finally:
        hook.remove()
    assert calls == [1] * (5 * steps) and torch.isfinite(longer_negative[0]).all()
