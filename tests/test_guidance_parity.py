"""ltxic samples LTX-2.3 as ltx-pipelines' own pipelines do: same weights, seed, prompt features -> same latents.

On the miniature of the official files (``ltxic.models.miniature``), in float32 on the CPU, ltxic's sampler is run
beside ``TI2VidOneStagePipeline`` (text only, LTX-2.3 guidance), ``TI2VidTwoStagesPipeline`` (two stages) and
``ICLoraPipeline`` (video IC reference, its stage 1). Final latents must agree to 1e-4, decoded frames and audio
to 1e-3.

What is patched in the pipelines' modules (``monkeypatch``, undone after each test), and why; nothing else:

* ``encode_prompts``: returns the prompt features that ltxic's text encoder computes from the miniature's Gemma and
  embeddings processor (ltx-core's ``ModelLedger`` builds Gemma at the 12B size, which the miniature is not).
* the module's ``torch`` name: a view of ``torch`` whose ``bfloat16`` is ``float32`` (the pipelines hard-code
  bf16 in ``__init__`` and ``__call__``) and whose ``cuda.synchronize`` does nothing (no GPU here); and
  ``cleanup_memory`` -> ``gc.collect`` (it empties and synchronizes CUDA).
* the latent widths the pipelines hard-code for the full-size model: ``PipelineComponents.video_latent_channels``
  (128) and ``AudioLatentShape.from_video_pixel_shape``'s 8 channels, set to the miniature's 16 and 2.
* the fused stage-2 model (two stages; the IC-LoRA model): cast to float32 after loading, since ltx-core's LoRA
  fusion leaves the fused weights in the files' bf16 (ltxic's loader casts them the same way).
* ``vae_decode_video`` / ``vae_decode_audio``: wrapped to record the final latents they are given (then called).

Where ltxic differs on purpose, it is set to the pipelines' choice here: ``schedule_tokens=4096`` (ltxic's default
shifts the schedule by the clip's own token count, as its training does), and the STG block is one the 2-block
miniature has (LTX-2.3's is block 28 of 48). The references are off in all three: with them off, ltxic is the
pipelines.
"""

from __future__ import annotations

import gc
import types
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from ltxic.models import ltx23
from ltxic.models.kit import Models
from ltxic.models.miniature import build_miniature
from ltxic.sampling.guidance import LTX23_STEPS, Guidance, StreamGuidance

pytestmark = pytest.mark.usefixtures("one_thread")
CPU = torch.device("cpu")
PROMPT, NEGATIVE = "A person speaks in a green room.", "blurry, distorted"
MINI_VIDEO_CHANNELS, MINI_AUDIO_CHANNELS = 16, 2


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("parity")
    build_miniature(root, seed=0)
    return root


@pytest.fixture(scope="module")
def models(tree) -> Models:
    return Models.from_comfyui(tree, device="cpu", dtype=torch.float32)


@pytest.fixture(scope="module")
def features(models) -> dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    return {p: models.text_encoder.encode([p]) for p in (PROMPT, NEGATIVE)}


class _Float32Torch(types.ModuleType):
    """``torch`` as the pipelines see it in these tests: bf16 means float32, CUDA syncs are no-ops."""

    bfloat16 = torch.float32
    cuda = types.SimpleNamespace(synchronize=lambda *a, **k: None, empty_cache=lambda: None, is_available=lambda: False)

    def __getattr__(self, name: str):
        return getattr(torch, name)


def official(monkeypatch, module, features) -> dict[str, torch.Tensor]:
    """Patch one ltx-pipelines module as the docstring says; returns the dict the decode spies fill."""
    from ltx_core.text_encoders.gemma.embeddings_processor import EmbeddingsProcessorOutput
    from ltx_core.types import AudioLatentShape
    from ltx_pipelines.utils import helpers

    def encode_prompts(prompts, ledger, **kwargs):
        return [EmbeddingsProcessorOutput(*features[p]) for p in prompts]

    monkeypatch.setattr(module, "encode_prompts", encode_prompts)
    monkeypatch.setattr(module, "torch", _Float32Torch("torch"))
    monkeypatch.setattr(module, "cleanup_memory", gc.collect)
    shape_of = AudioLatentShape.from_video_pixel_shape
    monkeypatch.setattr(helpers, "AudioLatentShape", types.SimpleNamespace(
        from_video_pixel_shape=lambda shape: shape_of(shape, channels=MINI_AUDIO_CHANNELS)))
    seen: dict[str, torch.Tensor] = {}
    decode_video, decode_audio = module.vae_decode_video, module.vae_decode_audio

    def video(latent, *args, **kwargs):
        seen["video"] = latent.clone()
        return decode_video(latent, *args, **kwargs)

    def audio(latent, *args, **kwargs):
        seen["audio"] = latent.clone()
        return decode_audio(latent, *args, **kwargs)

    monkeypatch.setattr(module, "vae_decode_video", video)
    monkeypatch.setattr(module, "vae_decode_audio", audio)
    return seen


def miniature_widths(pipe) -> None:
    pipe.pipeline_components.video_latent_channels = MINI_VIDEO_CHANNELS


def mini_guidance() -> Guidance:
    """LTX-2.3's guidance with the STG block moved to one the miniature has."""
    g = Guidance.ltx23()
    return replace(g, video=replace(g.video, stg_blocks=(1,)), audio=replace(g.audio, stg_blocks=(1,)),
                   reference_video=0.0, reference_audio=0.0)


def close(a: torch.Tensor, b: torch.Tensor, tol: float) -> None:
    a, b = a.float().cpu(), b.float().cpu()
    assert a.shape == b.shape, (a.shape, b.shape)
    diff = (a - b).abs().max().item()
    print(f"{tuple(a.shape)}: max abs difference {diff:.3g} (tolerance {tol:g})")  # the figures, with pytest -s
    assert diff <= tol, f"max abs difference {diff:.3g} > {tol}"


def decoded_waveform(audio) -> torch.Tensor:
    return audio.waveform if hasattr(audio, "waveform") else audio


def test_real_kit_defaults_are_ltx_pipelines_ltx_2_3_params() -> None:
    from ltx_pipelines.utils.constants import LTX_2_3_PARAMS

    g = Guidance.ltx23()
    assert LTX23_STEPS == LTX_2_3_PARAMS.num_inference_steps
    assert g.video == StreamGuidance.from_params(LTX_2_3_PARAMS.video_guider_params)
    assert g.audio == StreamGuidance.from_params(LTX_2_3_PARAMS.audio_guider_params)
    assert g.video.params() == LTX_2_3_PARAMS.video_guider_params
    assert Guidance.for_kit("ltx-2.3-22b") == g and Guidance.for_kit("tiny") == Guidance.tiny()
    # ID-LoRA's voice guidance on the audio stream; the pipelines' command-line negative prompt
    assert g.reference_audio == 3.0
    from ltx_pipelines.utils.constants import DEFAULT_NEGATIVE_PROMPT

    from ltxic.sampling.guidance import kit_negative_prompt

    assert kit_negative_prompt("ltx-2.3-22b") == DEFAULT_NEGATIVE_PROMPT and kit_negative_prompt("tiny") == ""


def test_pipelines_constants_load_without_the_pipelines() -> None:
    """ltxic reads ltx-pipelines' constants from their file: the same values, without importing every pipeline (a
    fresh interpreter, so nothing else imported them first)."""
    import json
    import subprocess
    import sys

    code = ("import json, sys; from ltxic.sampling.guidance import pipelines_constants as c; m = c(); "
            "print(json.dumps([m.DEFAULT_NEGATIVE_PROMPT, list(m.DISTILLED_SIGMA_VALUES), "
            "'ltx_pipelines' in sys.modules, 'transformers' in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    negative, sigmas, pipelines_imported, transformers_imported = json.loads(out)
    from ltx_pipelines.utils.constants import DEFAULT_NEGATIVE_PROMPT, DISTILLED_SIGMA_VALUES

    assert negative == DEFAULT_NEGATIVE_PROMPT and sigmas == list(DISTILLED_SIGMA_VALUES)
    assert not pipelines_imported and not transformers_imported


def test_one_stage_equals_ti2vid_one_stage_pipeline(tree, models, features, monkeypatch) -> None:
    import ltx_pipelines.ti2vid_one_stage as one

    from ltxic.sampling.generate import GenerateConfig, generate

    seen = official(monkeypatch, one, features)
    guidance, steps, seed = mini_guidance(), 4, 7
    pipe = one.TI2VidOneStagePipeline(str(tree / ltx23.CHECKPOINT_FILE), str(tree / ltx23.GEMMA_DIR), [], device=CPU)
    miniature_widths(pipe)
    frames, audio = pipe(prompt=PROMPT, negative_prompt=NEGATIVE, seed=seed, height=64, width=64, num_frames=9,
                         frame_rate=24.0, num_inference_steps=steps, video_guider_params=guidance.video.params(),
                         audio_guider_params=guidance.audio.params(), images=[])
    frames = torch.cat(list(frames))
    gen = generate(models, PROMPT, config=GenerateConfig(width=64, height=64, frames=9, steps=steps, seed=seed,
                                                         guidance=guidance, negative_prompt=NEGATIVE,
                                                         schedule_tokens=4096), progress=False)[0]
    close(gen.video_latent, seen["video"], 1e-4)
    close(gen.audio_latent, seen["audio"], 1e-4)
    ours = models.video_codec.decode(gen.video_latent, clamp=False)
    theirs = pipe.model_ledger.video_decoder()(seen["video"])
    close(ours, theirs, 1e-3)
    ours_u8 = ((ours[0] + 1) / 2).clamp(0, 1).mul(255).to(torch.uint8).permute(1, 2, 3, 0)
    assert (ours_u8.int() - frames.int()).abs().max() <= 1  # their uint8 frames: one level of rounding at most
    close(models.audio_codec.decode(gen.audio_latent)[0], decoded_waveform(audio), 1e-3)


def test_two_stage_equals_ti2vid_two_stages_pipeline(tree, models, features, monkeypatch) -> None:
    import ltx_pipelines.ti2vid_two_stages as two
    from ltx_core.loader import LTXV_LORA_COMFY_RENAMING_MAP
    from ltx_core.loader.primitives import LoraPathStrengthAndSDOps

    from ltxic.sampling.pipeline import TwoStagePipeline

    seen = official(monkeypatch, two, features)
    guidance, steps, seed = mini_guidance(), 3, 11
    distilled = [LoraPathStrengthAndSDOps(str(tree / ltx23.DISTILLED_LORA_FILE), 1.0, LTXV_LORA_COMFY_RENAMING_MAP)]
    pipe = two.TI2VidTwoStagesPipeline(str(tree / ltx23.CHECKPOINT_FILE), distilled, str(tree / ltx23.SPATIAL_UPSAMPLER_FILE),
                                       str(tree / ltx23.GEMMA_DIR), [], device=CPU)
    miniature_widths(pipe)
    fused = pipe.stage_2_model_ledger.transformer
    monkeypatch.setattr(pipe.stage_2_model_ledger, "transformer", lambda: fused().float())
    frames, audio = pipe(prompt=PROMPT, negative_prompt=NEGATIVE, seed=seed, height=128, width=128, num_frames=9,
                         frame_rate=24.0, num_inference_steps=steps, video_guider_params=guidance.video.params(),
                         audio_guider_params=guidance.audio.params(), images=[])
    frames = torch.cat(list(frames))
    ours = TwoStagePipeline(models, device="cpu", offload_device=None)(
        PROMPT, width=128, height=128, frames=9, seed=seed, stage1_steps=steps, guidance=guidance,
        negative_prompt=NEGATIVE, schedule_tokens=4096)
    close(ours.video_latent, seen["video"], 1e-4)
    close(ours.audio_latent, seen["audio"], 1e-4)
    mine = models.video_codec.decode(ours.video_latent, clamp=False)
    theirs = pipe.stage_2_model_ledger.video_decoder()(seen["video"])
    close(mine, theirs, 1e-3)
    mine_u8 = ((mine[0] + 1) / 2).clamp(0, 1).mul(255).to(torch.uint8).permute(1, 2, 3, 0)
    assert (mine_u8.int() - frames.int()).abs().max() <= 1
    close(models.audio_codec.decode(ours.audio_latent)[0], decoded_waveform(audio), 1e-3)


def test_video_ic_reference_equals_ic_lora_pipeline(tree, models, features, monkeypatch, tmp_path) -> None:
    """Stage 1 of ``ICLoraPipeline`` (``skip_stage_2``: distilled sigmas, no guidance, the reference video appended)
    against ltxic's sampler with strategy ``ic`` and the same reference pixels (their ``load_video_conditioning``)."""
    import ltx_pipelines.ic_lora as ic
    from ltx_core.loader import LTXV_LORA_COMFY_RENAMING_MAP
    from ltx_core.loader.primitives import LoraPathStrengthAndSDOps
    from ltx_pipelines.utils.media_io import load_video_conditioning

    from ltxic.io.media import write_video
    from ltxic.models.lora import LoRAConfig, inject_lora, load_lora, save_lora
    from ltxic.models.strategies import get_strategy
    from ltxic.sampling.sampler import SamplingConfig, sample_latents

    factor, seed = 2, 5
    model = ltx23.load_transformer(tree / ltx23.CHECKPOINT_FILE, dtype=torch.float32)
    inject_lora(model, LoRAConfig(rank=2, alpha=2))
    with torch.no_grad():
        gen = torch.Generator().manual_seed(3)
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(0.05 * torch.randn(p.shape, generator=gen))
    lora = save_lora(model, tmp_path / "ic.safetensors", config=LoRAConfig(rank=2, alpha=2),
                     metadata={"training_strategy": "ic", "reference_downscale_factor": factor})
    clip = (np.random.default_rng(0).random((9, 32, 32, 3)) * 255).astype(np.uint8)
    reference = write_video(tmp_path / "reference.mp4", clip, 24.0)

    seen = official(monkeypatch, ic, features)
    pipe = ic.ICLoraPipeline(str(tree / ltx23.CHECKPOINT_FILE), str(tree / ltx23.SPATIAL_UPSAMPLER_FILE), str(tree / ltx23.GEMMA_DIR),
                             [LoraPathStrengthAndSDOps(str(lora), 1.0, LTXV_LORA_COMFY_RENAMING_MAP)], device=CPU)
    miniature_widths(pipe)
    fused = pipe.stage_1_model_ledger.transformer
    monkeypatch.setattr(pipe.stage_1_model_ledger, "transformer", lambda: fused().float())
    frames, audio = pipe(prompt=PROMPT, seed=seed, height=128, width=128, num_frames=9, frame_rate=24.0, images=[],
                         video_conditioning=[(str(reference), 1.0)], skip_stage_2=True)
    frames = torch.cat(list(frames))

    pixels = load_video_conditioning(video_path=str(reference), height=64 // factor, width=64 // factor, frame_cap=9,
                                     dtype=torch.float32, device=CPU)
    ref_latent = models.video_codec.encode(pixels)
    transformer = models.transformer
    load_lora(transformer, lora, strength=1.0)
    v_ctx, a_ctx, mask = features[PROMPT]
    strategy = get_strategy("ic", factor, video_geometry=models.video_codec.geometry, audio_geometry=models.audio_codec.geometry)
    config = SamplingConfig(width=64, height=64, frames=9, fps=24.0, distilled=True, seed=seed, guidance=Guidance.off(),
                            audio_mel_bins=models.audio_codec.latent_mel_bins, video_geometry=models.video_codec.geometry,
                            audio_geometry=models.audio_codec.geometry)
    video, audio_latent = sample_latents(transformer, v_ctx, a_ctx, context_mask=mask, ref_video_latent=ref_latent,
                                         strategy=strategy, config=config)
    close(video, seen["video"], 1e-4)
    close(audio_latent, seen["audio"], 1e-4)
    mine = models.video_codec.decode(video, clamp=False)
    close(mine, pipe.stage_1_model_ledger.video_decoder()(seen["video"]), 1e-3)
    mine_u8 = ((mine[0] + 1) / 2).clamp(0, 1).mul(255).to(torch.uint8).permute(1, 2, 3, 0)
    assert (mine_u8.int() - frames.int()).abs().max() <= 1
    close(models.audio_codec.decode(audio_latent)[0], decoded_waveform(audio), 1e-3)


class Recorder(torch.nn.Module):
    """The transformer, with every forward's inputs and outputs kept (the calls of one sampling run)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model, self.calls = model, []
        self.ltxic_config = model.ltxic_config

    def forward(self, video, audio, perturbations):
        out = self.model(video, audio, perturbations)
        self.calls.append((video, audio, perturbations, out))
        return out


def test_reference_voice_follows_id_lora_inference(models, features) -> None:
    """With the voice reference on, ltxic samples as ID-LoRA's inference does (facts in ``ltxic.models.strategies`` and
    ``ltxic.sampling.guidance``): the reference voice tokens are appended clean at timestep 0, at negative time
    ending one latent (1/25 s) before the target starts at 0; one extra pass drops the references; and the audio
    stream gets ``3 * (pred_with_ref - pred_without_ref)`` on top of LTX-2.3's guidance, the video stream nothing."""
    from ltx_core.components.guiders import MultiModalGuider
    from ltx_core.utils import to_denoised

    from ltxic.models.latents import audio_tokens, video_tokens
    from ltxic.models.strategies import get_strategy
    from ltxic.sampling.sampler import SamplingConfig, sample_latents

    guidance = replace(mini_guidance(), reference_audio=Guidance.ltx23().reference_audio)
    assert guidance.reference_audio == 3.0 and guidance.reference_video == 0.0
    model = Recorder(models.transformer)
    geo_v, geo_a = models.video_codec.geometry, models.audio_codec.geometry
    strategy = get_strategy("audio_ref_only_ic", video_geometry=geo_v, audio_geometry=geo_a)
    g = torch.Generator().manual_seed(1)
    ref_v = torch.randn(1, MINI_VIDEO_CHANNELS, 1, 2, 2, generator=g)
    ref_a = torch.randn(1, MINI_AUDIO_CHANNELS, 10, models.audio_codec.latent_mel_bins, generator=g)
    (v_ctx, a_ctx, mask), (n_v, n_a, n_mask) = features[PROMPT], features[NEGATIVE]
    config = SamplingConfig(width=64, height=64, frames=9, sigmas=(1.0, 0.0), guidance=guidance,
                            audio_mel_bins=models.audio_codec.latent_mel_bins, video_geometry=geo_v, audio_geometry=geo_a)
    video, audio = sample_latents(model, v_ctx, a_ctx, context_mask=mask, negative_video_context=n_v,
                                  negative_audio_context=n_a, negative_context_mask=n_mask, ref_video_latent=ref_v,
                                  ref_audio_latent=ref_a, strategy=strategy, config=config)
    # one step: conditional, negative prompt, STG, isolated modality, and one pass without references
    assert len(model.calls) == 5
    n_target = audio.shape[2]
    with_refs, bare = model.calls[0], model.calls[4]
    a_in = with_refs[1]
    assert a_in.latent.shape[1] == n_target + ref_a.shape[2] and bare[1].latent.shape[1] == n_target
    assert torch.all(a_in.timesteps[:, n_target:] == 0) and torch.all(a_in.timesteps[:, :n_target] == 1.0)
    ref_pos = a_in.positions[:, :, n_target:]
    assert ref_pos.max() < 0
    latent_s = 1 / geo_a.latents_per_second
    assert torch.isclose(ref_pos[0, 0, -1, 1], torch.tensor(-latent_s), atol=1e-6)  # ends one latent before 0
    own_grid = audio_tokens(ref_a, geo_a)[1]  # the voice's own time grid (ltx-core's AudioPatchifier), shifted whole
    close(ref_pos, own_grid - (own_grid[:, :, -1, 1].amax() + latent_s), 1e-6)
    assert all(c[1].latent.shape[1] == n_target + ref_a.shape[2] for c in model.calls[:4])  # every guidance pass keeps them

    # the sample (one step from sigma 1 lands on the guided estimate) = LTX-2.3's guidance + 3 (with - without refs)
    x_a = model.calls[0][1].latent[:, :n_target]
    den = [to_denoised(x_a, c[3][1][:, :n_target], torch.tensor(1.0)) for c in model.calls]
    guided = MultiModalGuider(guidance.audio.params()).calculate(den[0], den[1], den[2], den[3])
    expected = guided + 3.0 * (den[0] - den[4])
    close(audio_tokens(audio, geo_a)[0], expected, 1e-5)
    x_v = model.calls[0][0].latent[:, : video[0, 0].numel()]
    den_v = [to_denoised(x_v, c[3][0][:, : x_v.shape[1]], torch.tensor(1.0)) for c in model.calls]
    video_expected = MultiModalGuider(guidance.video.params()).calculate(den_v[0], den_v[1], den_v[2], den_v[3])
    close(video_tokens(video, 24.0, geo_v)[0], video_expected, 1e-5)  # reference_video = 0: no identity term
