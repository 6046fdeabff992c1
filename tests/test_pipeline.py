"""TwoStagePipeline on the CPU with tiny stand-ins: tiny transformer, ltx-core LatentUpsampler (small config,
random weights), tiny codecs; shapes at every stage, end to end, and the tiled-decode hook."""

from __future__ import annotations

import copy

import pytest
import torch

from ltxic.models.codecs import TINY_VIDEO_CONFIG, VideoCodec
from ltxic.models.kit import Models
from ltxic.sampling.pipeline import STAGE_2_SIGMAS, TwoStagePipeline, build_upsampler, tiny_upsampler_config
from ltxic.sampling.references import consent_for
from tests.inference_kit import DATA, make_lora, make_tiny_dir

IMG, WAV = DATA / "refs" / "ava.jpg", DATA / "voice" / "ava_0.wav"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipe")
    tiny = make_tiny_dir(root / "tiny")
    ic = make_lora(root / "ic.safetensors", factor=2)
    distilled = make_lora(root / "distilled.safetensors", strategy="text_to_video", factor=1, seed=7)
    return tiny, ic, distilled


def test_two_stage_shapes_end_to_end(parts):
    tiny, ic, distilled = parts
    models = Models.tiny(tiny)
    from ltx_core.model.upsampler import LatentUpsampler

    up = build_upsampler(tiny_upsampler_config())
    assert isinstance(up, LatentUpsampler)
    pipe = TwoStagePipeline(models, up, ic_lora=ic, distilled_lora=distilled)
    consent = consent_for(DATA / "dataset.json", "ava")
    out = pipe("a person speaks", reference_image=IMG, reference_audio=WAV, consent=consent, identity="ava",
               width=128, height=128, frames=17, stage1_steps=3)
    # tiny video codec: 16x space, 8x time; 16 latent channels; audio 25 latents/s, (1, T, 16)
    assert out.stage1_video_latent.shape == (1, 16, 3, 4, 4)
    assert out.upscaled_video_latent.shape == (1, 16, 3, 8, 8)
    assert out.video_latent.shape == (1, 16, 3, 8, 8)
    assert out.audio_latent.shape == (1, 1, round(17 / 24 * 25), 16)
    assert out.frames.shape == (17, 128, 128, 3) and out.waveform.shape == (1, round(17 / 24 * 16000))
    assert [s.name for s in out.stages] == ["stage1", "upscale", "stage2"]
    assert torch.isfinite(out.video_latent).all()
    # stage 2 refines: the result is not the upscaled latent itself
    assert not torch.allclose(out.video_latent, out.upscaled_video_latent)
    # stage 2 ran with the distilled LoRA swapped in place of the IC-LoRA (one base copy)
    from ltxic.models.lora import lora_modules

    assert {m.rank for m in lora_modules(models.transformer).values()} == {4}
    assert STAGE_2_SIGMAS[0] == 0.909375


def test_resolution_and_tiling_checks(parts):
    tiny, ic, _ = parts
    models = Models.tiny(tiny)
    pipe = TwoStagePipeline(models, build_upsampler(tiny_upsampler_config()), ic_lora=ic)
    consent = consent_for(DATA / "dataset.json", "ava")
    with pytest.raises(ValueError, match="stage 1 runs at 48x48"):
        pipe("a person speaks", reference_image=IMG, reference_audio=WAV, consent=consent, width=96, height=96, frames=9)
    from ltx_core.model.video_vae import TilingConfig

    pipe.tiling = TilingConfig.default()
    with pytest.raises(ValueError, match="compresses 16x"):
        pipe("a person speaks", reference_image=IMG, reference_audio=WAV, consent=consent, width=128, height=128, frames=9)


def test_tiled_decode_hook_with_a_32x_vae():
    """The hook calls ltx-core's VideoDecoder.tiled_decode; checked on a 32x (real-geometry) small VAE."""
    from ltx_core.model.video_vae import TilingConfig
    from ltx_core.model.video_vae.tiling import SpatialTilingConfig, TemporalTilingConfig

    cfg = copy.deepcopy(TINY_VIDEO_CONFIG)
    r, x = {"num_layers": 1}, {"multiplier": 2}
    cfg["vae"]["encoder_blocks"] = [["res_x", r], ["compress_all_res", x], ["compress_all_res", x], ["compress_all_res", x]]
    cfg["vae"]["decoder_blocks"] = [["res_x", r], ["compress_all", x], ["compress_all", x], ["compress_all", x]]
    torch.manual_seed(0)
    codec = VideoCodec(cfg).eval()
    assert codec.geometry.spatial == 32
    latent = torch.randn(1, 16, 3, 4, 4)
    tiling = TilingConfig(spatial_config=SpatialTilingConfig(64, 32), temporal_config=TemporalTilingConfig(16, 8))
    with torch.no_grad():
        tiled = torch.cat(list(codec.decoder.tiled_decode(latent, tiling)), dim=2)
        whole = codec.decode(latent, clamp=False)
    assert tiled.shape == whole.shape == (1, 3, 17, 128, 128)
