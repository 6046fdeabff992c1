#!/usr/bin/env python
"""Real-scale measurements of the LTX-2.3 22B audio-video transformer (random weights) on one GPU.

Sections (``--sections``, all by default):

* ``components``: parameter counts of every model in the LTX-2.3 checkpoint, on the meta device.
* ``build``: the 22B-shaped transformer allocated directly on the GPU in bf16; parameters, weight memory.
* ``inference``: forward time (median of ``--repeats``) and peak memory under ``torch.inference_mode``,
  with IC reference tokens appended (reference image latent at ``--ref-downscale``).
* ``training``: LoRA training step (rank ``--lora-rank`` on attention + FFN, gradient checkpointing,
  AdamW on the LoRA parameters only).
* ``fp8``: the inference settings again with fp8 block weights (``ltxic.models.transformer.quantize_fp8``).
* ``pipeline``: two-stage inference: stage 1 at half resolution, spatial upsampler x2, stage 2 refine,
  video VAE decode (tiled when untiled runs out of memory) and audio decode; models move on and off
  the GPU between stages.

An out-of-memory in any setting is recorded as ``"status": "oom"`` with the setting, and the run goes on.
Results go to ``<out>/results.json`` after every setting (atomically), so a run cut short keeps its numbers.

    PYTHONPATH=. python benchmarks/real_scale.py --out benchmarks/results/h100      # GPU, real shapes
    PYTHONPATH=. python benchmarks/real_scale.py --tiny --out /tmp/bench          # CPU, tiny shapes (test)
"""

from __future__ import annotations

import argparse
import copy
import gc
import importlib.machinery
import importlib.util
import json
import math
import platform
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from ltx_core.components.diffusion_steps import EulerDiffusionStep
from ltx_core.components.patchifiers import AudioPatchifier, VideoLatentPatchifier
from ltx_core.conditioning.types.reference_video_cond import VideoConditionByReferenceLatent
from ltx_core.guidance.perturbations import BatchedPerturbationConfig
from ltx_core.model.transformer.modality import Modality
from ltx_core.model.transformer.model_configurator import LTXModelConfigurator
from ltx_core.tools import AudioLatentTools, VideoLatentTools
from ltx_core.types import AudioLatentShape, VideoLatentShape



def _register_ltxic_without_init() -> None:
    """Make ``ltxic.<module>`` importable without running ``ltxic/__init__.py``.

    The package's ``__init__`` imports the whole course (pydantic, PyYAML, scipy, ...); this script needs only
    ``ltxic.models.transformer``, ``ltxic.models.latents``, ``ltxic.models.lora`` and ``ltxic.io.files``, so the GPU machine needs only
    the wheels in REQUIREMENTS-gpu.txt. If ``ltxic`` is already imported (tests), that module is used.
    """
    if "ltxic" in sys.modules:
        return
    spec = importlib.machinery.ModuleSpec("ltxic", None, is_package=True)
    spec.submodule_search_locations = [str(Path(__file__).resolve().parents[1] / "ltxic")]
    sys.modules["ltxic"] = importlib.util.module_from_spec(spec)


_register_ltxic_without_init()

from ltxic.io.files import write_json_atomic  # noqa: E402
from ltxic.models.latents import AudioGeometry, VideoGeometry  # noqa: E402
from ltxic.models.transformer import build_transformer, count_parameters, preset_config, quantize_fp8  # noqa: E402

GIB = 1024**3

# --- Checkpoint facts (see benchmarks/README.md for the sources) -----------------------------------
# Keys of the LTX-2.3 checkpoint's "transformer" config that ltx-core's text connectors read
# (the transformer itself ignores them). Values from the config embedded in ltx-2.3-22b-dev.safetensors.
LTX23_CONNECTOR_KEYS: dict[str, Any] = {
    "connector_attention_head_dim": 128,
    "connector_num_attention_heads": 32,
    "connector_num_layers": 8,
    "connector_positional_embedding_max_pos": [4096],
    "connector_num_learnable_registers": 128,
    "connector_apply_gated_attention": True,
    "audio_connector_attention_head_dim": 64,
    "audio_connector_num_attention_heads": 32,
    "caption_projection_first_linear": False,
    "caption_projection_second_linear": False,
    "caption_proj_input_norm": False,
}
LTX23_VAE: dict[str, Any] = {
    "dims": 3, "in_channels": 3, "out_channels": 3, "latent_channels": 128,
    "encoder_blocks": [
        ["res_x", {"num_layers": 4}], ["compress_space_res", {"multiplier": 2}],
        ["res_x", {"num_layers": 6}], ["compress_time_res", {"multiplier": 2}],
        ["res_x", {"num_layers": 4}], ["compress_all_res", {"multiplier": 2}],
        ["res_x", {"num_layers": 2}], ["compress_all_res", {"multiplier": 1}],
        ["res_x", {"num_layers": 2}],
    ],
    "decoder_blocks": [
        ["res_x", {"num_layers": 4}], ["compress_space", {"multiplier": 2}],
        ["res_x", {"num_layers": 6}], ["compress_time", {"multiplier": 2}],
        ["res_x", {"num_layers": 4}], ["compress_all", {"multiplier": 1}],
        ["res_x", {"num_layers": 2}], ["compress_all", {"multiplier": 2}],
        ["res_x", {"num_layers": 2}],
    ],
    "norm_layer": "pixel_norm", "patch_size": 4, "latent_log_var": "uniform", "causal_decoder": False,
    "timestep_conditioning": False, "encoder_base_channels": 128, "decoder_base_channels": 128,
    "spatial_padding_mode": "zeros",
}
LTX23_AUDIO_VAE: dict[str, Any] = {
    "model": {"params": {"ddconfig": {
        "double_z": True, "mel_bins": 64, "z_channels": 8, "resolution": 256, "downsample_time": False,
        "in_channels": 2, "out_ch": 2, "ch": 128, "ch_mult": [1, 2, 4], "num_res_blocks": 2,
        "attn_resolutions": [], "dropout": 0.0, "mid_block_add_attention": False, "norm_type": "pixel",
        "causality_axis": "height"}, "sampling_rate": 16000}},
    "preprocessing": {"stft": {"filter_length": 1024, "hop_length": 160, "win_length": 1024, "causal": True},
                      "mel": {"n_mel_channels": 64, "mel_fmin": 0, "mel_fmax": 8000}},
}
_AMP = {"resblock": "AMP1", "stereo": True, "use_tanh_at_final": False, "activation": "snakebeta",
        "use_bias_at_final": False, "resblock_kernel_sizes": [3, 7, 11],
        "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]]}
LTX23_VOCODER: dict[str, Any] = {
    "vocoder": {**_AMP, "upsample_initial_channel": 1536, "upsample_rates": [5, 2, 2, 2, 2, 2],
                "upsample_kernel_sizes": [11, 4, 4, 4, 4, 4]},
    "bwe": {**_AMP, "upsample_initial_channel": 512, "upsample_rates": [6, 5, 2, 2, 2],
            "upsample_kernel_sizes": [12, 11, 4, 4, 4], "apply_final_activation": False,
            "input_sampling_rate": 16000, "output_sampling_rate": 48000, "hop_length": 80, "n_fft": 512,
            "win_size": 512, "num_mels": 64},
}
# ltx-2.3-spatial-upscaler-x2 (config in that file's metadata).
LTX23_UPSAMPLER_X2: dict[str, Any] = {
    "in_channels": 128, "mid_channels": 1024, "num_blocks_per_stage": 4, "dims": 3,
    "spatial_upsample": True, "temporal_upsample": False, "spatial_scale": 2.0, "rational_resampler": False,
}
# Distilled schedules of ltx_pipelines.utils.constants (DISTILLED_SIGMA_VALUES, STAGE_2_DISTILLED_SIGMA_VALUES).
STAGE1_SIGMAS = [1.0, 0.99375, 0.9875, 0.98125, 0.975, 0.909375, 0.725, 0.421875, 0.0]
STAGE2_SIGMAS = [0.909375, 0.725, 0.421875, 0.0]

# Same structure at toy widths, for the CPU test of every code path.
TINY_VAE: dict[str, Any] = {
    **LTX23_VAE, "latent_channels": 16, "encoder_base_channels": 16, "decoder_base_channels": 16,
    "encoder_blocks": [["res_x", {"num_layers": 1}], ["compress_space_res", {"multiplier": 2}],
                       ["compress_time_res", {"multiplier": 2}], ["compress_all_res", {"multiplier": 2}],
                       ["compress_all_res", {"multiplier": 1}]],
    "decoder_blocks": [["res_x", {"num_layers": 1}], ["compress_space", {"multiplier": 2}],
                       ["compress_time", {"multiplier": 2}], ["compress_all", {"multiplier": 1}],
                       ["compress_all", {"multiplier": 2}], ["res_x", {"num_layers": 1}]],
}
TINY_AUDIO_VAE: dict[str, Any] = copy.deepcopy(LTX23_AUDIO_VAE)
TINY_AUDIO_VAE["model"]["params"]["ddconfig"].update({"z_channels": 1, "ch": 16, "num_res_blocks": 1})
TINY_VOCODER: dict[str, Any] = copy.deepcopy(LTX23_VOCODER)
TINY_VOCODER["vocoder"].update({"upsample_initial_channel": 128, "resblock_kernel_sizes": [3],
                                "resblock_dilation_sizes": [[1, 3, 5]]})
TINY_VOCODER["bwe"].update({"upsample_initial_channel": 64, "resblock_kernel_sizes": [3],
                            "resblock_dilation_sizes": [[1, 3, 5]]})
TINY_UPSAMPLER: dict[str, Any] = {**LTX23_UPSAMPLER_X2, "in_channels": 16, "mid_channels": 32,
                                  "num_blocks_per_stage": 1}


@dataclass(frozen=True)
class Setting:
    """One measured shape: output pixels, the IC reference image and reference audio appended to it."""

    name: str
    width: int
    height: int
    frames: int
    fps: float = 24.0
    ref_downscale: int | None = 2  # None: no reference tokens
    ref_audio_seconds: float = 0.0
    note: str = ""


@dataclass
class Scale:
    """Everything that differs between the real run and the tiny CPU test."""

    preset: str
    audio_mel_bins: int  # latent mel bins M; audio channels C = audio_in_channels / M
    context_len: int
    inference: list[Setting]
    training: list[Setting]
    pipeline: Setting
    vae: dict[str, Any]
    audio_vae: dict[str, Any]
    vocoder: dict[str, Any]
    upsampler: dict[str, Any]
    tiling_pixels: tuple[int, int, int, int] = (512, 64, 64, 24)  # spatial tile, overlap, temporal tile, overlap
    extra: dict[str, Any] = field(default_factory=dict)


def real_scale(ref_downscale: int, ref_audio_seconds: float) -> Scale:
    r, a = ref_downscale, ref_audio_seconds
    return Scale(
        preset="ltx-2.3-22b",
        audio_mel_bins=16,
        context_len=1024,  # ltx-core pads prompts to 1024 Gemma tokens; connectors fill pads with registers
        inference=[
            Setting("full_960x544x121", 960, 544, 121, ref_downscale=r, ref_audio_seconds=a),
            Setting("stage1_480x288x121", 480, 288, 121, ref_downscale=r, ref_audio_seconds=a,
                    note="half of 960x544 is 480x272, not a multiple of 32; 480x288 is the nearest valid size"),
        ],
        training=[
            Setting("train_768x448x49", 768, 448, 49, ref_downscale=r, ref_audio_seconds=a),
            Setting("train_960x544x121", 960, 544, 121, ref_downscale=r, ref_audio_seconds=a),
        ],
        pipeline=Setting("two_stage_960x576x121", 960, 576, 121, ref_downscale=r, ref_audio_seconds=a,
                         note="two-stage pipelines need multiples of 64 (ltx_pipelines assert_resolution): "
                              "960x544 is invalid there, 960x576 (stage 1 480x288) is the nearest"),
        vae=LTX23_VAE, audio_vae=LTX23_AUDIO_VAE, vocoder=LTX23_VOCODER, upsampler=LTX23_UPSAMPLER_X2,
    )


def tiny_scale(ref_downscale: int, ref_audio_seconds: float) -> Scale:
    r, a = ref_downscale, ref_audio_seconds
    return Scale(
        preset="tiny",
        audio_mel_bins=16,
        context_len=8,
        inference=[Setting("tiny_128x96x17", 128, 96, 17, ref_downscale=r, ref_audio_seconds=a),
                   Setting("tiny_64x64x9", 64, 64, 9, ref_downscale=r, ref_audio_seconds=a)],
        training=[Setting("tiny_train_128x96x17", 128, 96, 17, ref_downscale=r, ref_audio_seconds=a)],
        pipeline=Setting("tiny_two_stage_256x128x17", 256, 128, 17, ref_downscale=r, ref_audio_seconds=a),
        vae=TINY_VAE, audio_vae=TINY_AUDIO_VAE, vocoder=TINY_VOCODER, upsampler=TINY_UPSAMPLER,
        tiling_pixels=(128, 32, 16, 8),
    )


# --- Measurement plumbing -------------------------------------------------------------------------


class Skip(Exception):
    """A setting that cannot run here (missing optional package); recorded as skipped, not failed."""


def is_oom(err: BaseException) -> bool:
    return isinstance(err, torch.cuda.OutOfMemoryError) or "out of memory" in str(err).lower()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def allocated_gib(device: torch.device) -> float | None:
    return torch.cuda.memory_allocated(device) / GIB if device.type == "cuda" else None


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> dict[str, float | None]:
    if device.type != "cuda":
        return {"peak_allocated_gib": None, "peak_reserved_gib": None}
    return {"peak_allocated_gib": torch.cuda.max_memory_allocated(device) / GIB,
            "peak_reserved_gib": torch.cuda.max_memory_reserved(device) / GIB}


def timed(fn: Callable[[], Any], device: torch.device, repeats: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return times


def weight_gib(module: torch.nn.Module) -> float:
    return sum(p.numel() * p.element_size() for p in module.parameters()) / GIB


class Recorder:
    """Runs each setting, catches OOM and errors, and saves results after every setting."""

    def __init__(self, out: Path, device: torch.device, meta: dict[str, Any]) -> None:
        self.out = out
        self.device = device
        self.data: dict[str, Any] = {"meta": meta, "results": []}

    def run(self, section: str, setting: str, fn: Callable[[], dict[str, Any]], **info: Any) -> dict[str, Any]:
        record: dict[str, Any] = {"section": section, "setting": setting, **info}
        print(f"[{section}] {setting} ...", flush=True)
        free_memory(self.device)
        reset_peak(self.device)
        start = time.perf_counter()
        try:
            record.update(fn())
            record["status"] = "ok"
        except Skip as err:
            record.update(status="skipped", reason=str(err))
        except Exception as err:  # noqa: BLE001 - every failure is recorded and the run goes on
            if is_oom(err):
                record.update(status="oom", reason=str(err).splitlines()[0][:400], **peak_gib(self.device))
            else:
                record.update(status="error", reason=f"{type(err).__name__}: {err}"[:2000],
                              traceback=traceback.format_exc()[-4000:])
        record["wall_s"] = round(time.perf_counter() - start, 3)
        free_memory(self.device)
        self.data["results"].append(record)
        write_json_atomic(self.out / "results.json", self.data)
        print(f"[{section}] {setting}: {summarize(record)}", flush=True)
        return record


def summarize(r: dict[str, Any]) -> str:
    if r["status"] != "ok":
        return f"{r['status'].upper()} {r.get('reason', '')[:200]}"
    parts = []
    for key in ("params_b", "weights_gib", "median_s", "step_median_s", "total_s", "peak_allocated_gib",
                "video_tokens", "audio_tokens", "lora_params_m"):
        if r.get(key) is not None:
            val = r[key]
            parts.append(f"{key}={val:.3f}" if isinstance(val, float) else f"{key}={val}")
    if "stages" in r:
        parts.append(" | ".join(
            f"{s['stage']} {s['seconds']:.2f}s peak {s.get('peak_allocated_gib') or 0:.1f}GiB" if "seconds" in s
            else f"{s['stage']} skipped ({s.get('skipped', '')})" for s in r["stages"]))
    return " ".join(parts)


# --- Inputs ---------------------------------------------------------------------------------------


@dataclass
class Inputs:
    video: Modality
    audio: Modality
    video_target: int  # the first tokens are the generated ones; reference tokens follow
    audio_target: int
    video_latent_shape: tuple[int, ...]
    audio_latent_shape: tuple[int, ...]

    def counts(self) -> dict[str, int]:
        return {"video_tokens": self.video.latent.shape[1], "video_target_tokens": self.video_target,
                "audio_tokens": self.audio.latent.shape[1], "audio_target_tokens": self.audio_target,
                "context_tokens": self.video.context.shape[1]}


def reference_latent_size(setting: Setting, geometry: VideoGeometry) -> tuple[int, int]:
    """Latent grid of the reference image: the target size / downscale, rounded to the VAE's 32-pixel grid."""
    assert setting.ref_downscale
    # half-up rounding: 544 / 2 = 272 px -> 288 px (9 latents), the same choice as the stage-1 size
    h = max(1, math.floor(setting.height / setting.ref_downscale / geometry.spatial + 0.5))
    w = max(1, math.floor(setting.width / setting.ref_downscale / geometry.spatial + 0.5))
    return h, w


def make_inputs(cfg: dict[str, Any], scale: Scale, setting: Setting, device: torch.device, dtype: torch.dtype,
                sigma: float = 0.7, seed: int = 0, video_latent: torch.Tensor | None = None,
                audio_latent: torch.Tensor | None = None) -> Inputs:
    """Transformer inputs laid out as the IC pipelines do: target tokens, then clean reference tokens."""
    tcfg = cfg["transformer"]
    geometry, ageo = VideoGeometry(), AudioGeometry()
    gen = torch.Generator(device="cpu").manual_seed(seed)
    frames, lh, lw = geometry.latent_size(setting.frames, setting.height, setting.width)
    vshape = VideoLatentShape(batch=1, channels=tcfg["in_channels"], frames=frames, height=lh, width=lw)
    vtools = VideoLatentTools(VideoLatentPatchifier(patch_size=1), vshape, fps=setting.fps,
                              scale_factors=geometry.scale_factors)
    if video_latent is None:
        video_latent = torch.randn(tuple(vshape.to_torch_shape()), generator=gen)
    state = vtools.create_initial_state(device=device, dtype=dtype, initial_latent=video_latent.to(device, dtype))
    if setting.ref_downscale:
        rh, rw = reference_latent_size(setting, geometry)
        ref = torch.randn(1, tcfg["in_channels"], 1, rh, rw, generator=gen).to(device, dtype)
        state = VideoConditionByReferenceLatent(ref, downscale_factor=setting.ref_downscale).apply_to(state, vtools)
    sig = torch.tensor([sigma], device=device, dtype=torch.float32)
    context = torch.randn(1, scale.context_len, tcfg["cross_attention_dim"], generator=gen).to(device, dtype)
    video = Modality(latent=state.latent, sigma=sig, timesteps=sig * state.denoise_mask[..., 0],
                     positions=state.positions, attention_mask=state.attention_mask, context=context)

    mel = scale.audio_mel_bins
    channels = tcfg["audio_in_channels"] // mel
    patchifier = AudioPatchifier(patch_size=1, sample_rate=ageo.sample_rate, hop_length=ageo.hop_length,
                                 audio_latent_downsample_factor=ageo.latent_downsample)

    def audio_state(seconds: float, latent: torch.Tensor | None = None):
        shape = AudioLatentShape.from_duration(batch=1, duration=seconds, channels=channels, mel_bins=mel)
        if latent is None:
            latent = torch.randn(tuple(shape.to_torch_shape()), generator=gen)
        return shape, AudioLatentTools(patchifier, shape).create_initial_state(
            device=device, dtype=dtype, initial_latent=latent.to(device, dtype))

    ashape, astate = audio_state(setting.frames / setting.fps, audio_latent)
    tokens, positions, timesteps = astate.latent, astate.positions.float(), sig * astate.denoise_mask[..., 0]
    if setting.ref_audio_seconds > 0:
        # audio_ref_only_ic: clean reference-voice tokens appended to the audio sequence (timestep 0)
        _, ref = audio_state(setting.ref_audio_seconds)
        tokens = torch.cat([tokens, ref.latent], dim=1)
        positions = torch.cat([positions, ref.positions.float()], dim=2)
        timesteps = torch.cat([timesteps, torch.zeros_like(ref.denoise_mask[..., 0])], dim=1)
    audio = Modality(latent=tokens, sigma=sig, timesteps=timesteps, positions=positions,
                     context=torch.randn(1, scale.context_len, tcfg["audio_cross_attention_dim"],
                                         generator=gen).to(device, dtype))
    return Inputs(video, audio, vtools.target_shape.token_count(), ashape.frames,
                  tuple(vshape.to_torch_shape()), tuple(ashape.to_torch_shape()))


def forward(model: torch.nn.Module, inputs: Inputs) -> tuple[torch.Tensor, torch.Tensor]:
    return model(inputs.video, inputs.audio, BatchedPerturbationConfig.empty(1))


# --- LoRA -----------------------------------------------------------------------------------------


class LoraUnavailable(Exception):
    pass


LORA_TARGETS = ("attn+ffn", "attn")


def attach_lora(model: torch.nn.Module, rank: int, alpha: float, targets: str = "attn+ffn",
                lora_dtype: str = "float32") -> str:
    """Freeze the base model and add ``ltxic.models.lora`` adapters; returns a description of what was attached."""
    try:
        from ltxic.models.lora import DEFAULT_TARGET_MODULES, LoRAConfig, inject_lora, lora_parameters
    except ImportError as err:
        raise LoraUnavailable(f"lora not available: ltxic.models.lora cannot be imported ({err})") from err
    patterns = DEFAULT_TARGET_MODULES  # q, k, v, out of all six attentions + video and audio FFN, every block
    if targets == "attn":
        patterns = tuple(p for p in patterns if ".ff.net." not in p and ".audio_ff.net." not in p)
    inject_lora(model, LoRAConfig(rank=rank, alpha=alpha, target_modules=patterns))
    if lora_dtype == "float32":  # fp32 adapters over bf16 base weights, the usual mixed-precision setup
        for param in lora_parameters(model):
            param.data = param.data.float()
    return f"ltxic.models.lora.inject_lora ({targets}, adapters {lora_dtype})"


# --- Sections -------------------------------------------------------------------------------------


def full_config(scale: Scale) -> dict[str, Any]:
    cfg = preset_config(scale.preset)
    return {**cfg, "vae": scale.vae, "audio_vae": scale.audio_vae, "vocoder": scale.vocoder}


def section_components(rec: Recorder, args: argparse.Namespace) -> None:
    """Parameter counts of the checkpoint's models on the meta device (always the real LTX-2.3 config)."""

    def count(builder: Callable[[], torch.nn.Module]) -> Callable[[], dict[str, Any]]:
        def run() -> dict[str, Any]:
            with torch.device("meta"):
                n = count_parameters(builder())
            return {"params": n, "params_b": n / 1e9, "bf16_gib": n * 2 / GIB}
        return run

    cfg = full_config(real_scale(2, 0.0))
    cfg["transformer"] = {**cfg["transformer"], **LTX23_CONNECTOR_KEYS}

    def connectors() -> torch.nn.Module:
        try:
            from ltx_core.text_encoders.gemma.encoders.encoder_configurator import EmbeddingsProcessorConfigurator
        except ImportError as err:  # needs transformers, which the GPU run does not carry
            raise Skip(f"text connectors need {err.name} (ltx_core.text_encoders imports transformers)") from err
        return EmbeddingsProcessorConfigurator.from_config(cfg)

    def audio_part(name: str) -> Callable[[], torch.nn.Module]:
        def build() -> torch.nn.Module:
            try:
                from ltx_core.model.audio_vae import model_configurator as audio_cfg
            except ImportError as err:
                raise Skip(f"the audio VAE needs {err.name}") from err
            return getattr(audio_cfg, name).from_config(cfg)
        return build

    from ltx_core.model.upsampler.model_configurator import LatentUpsamplerConfigurator
    from ltx_core.model.video_vae.model_configurator import VideoDecoderConfigurator, VideoEncoderConfigurator

    parts: list[tuple[str, Callable[[], torch.nn.Module]]] = [
        ("transformer", lambda: LTXModelConfigurator.from_config(cfg)),
        ("text_projection_and_connectors", connectors),
        ("video_vae_encoder", lambda: VideoEncoderConfigurator.from_config(cfg)),
        ("video_vae_decoder", lambda: VideoDecoderConfigurator.from_config(cfg)),
        ("audio_vae_encoder", audio_part("AudioEncoderConfigurator")),
        ("audio_vae_decoder", audio_part("AudioDecoderConfigurator")),
        ("vocoder_with_bwe", audio_part("VocoderConfigurator")),
        ("spatial_upsampler_x2 (separate file)", lambda: LatentUpsamplerConfigurator.from_config(LTX23_UPSAMPLER_X2)),
    ]
    for name, builder in parts:
        rec.run("components", name, count(builder))


def build_model(scale: Scale, device: torch.device, dtype: torch.dtype, seed: int) -> torch.nn.Module:
    return build_transformer(scale.preset, seed=seed, device=device, dtype=dtype)


def section_build(rec: Recorder, scale: Scale, device: torch.device, dtype: torch.dtype, seed: int) -> None:
    def run() -> dict[str, Any]:
        sync(device)
        start = time.perf_counter()
        model = build_model(scale, device, dtype, seed)
        sync(device)
        seconds = time.perf_counter() - start
        n = count_parameters(model)
        out = {"params": n, "params_b": n / 1e9, "weights_gib": weight_gib(model), "build_s": seconds,
               "allocated_gib": allocated_gib(device), **peak_gib(device)}
        del model
        return out

    rec.run("build", f"{scale.preset}_{str(dtype).removeprefix('torch.')}", run, device=str(device))


def section_inference(rec: Recorder, scale: Scale, device: torch.device, dtype: torch.dtype, args: argparse.Namespace,
                      fp8: bool = False) -> None:
    section = "fp8" if fp8 else "inference"
    holder: dict[str, torch.nn.Module] = {}

    def get_model() -> torch.nn.Module:
        if "model" not in holder:
            model = build_model(scale, device, dtype, args.seed).eval()
            if fp8:
                quantize_fp8(model)
            holder["model"] = model
        return holder["model"]

    for setting in scale.inference:
        def run(setting: Setting = setting) -> dict[str, Any]:
            model = get_model()
            weights = allocated_gib(device)
            cfg = model.ltxic_config
            inputs = make_inputs(cfg, scale, setting, device, dtype, seed=args.seed)
            reset_peak(device)
            with torch.inference_mode():
                times = timed(lambda: forward(model, inputs), device, args.repeats, args.warmup)
                vx, ax = forward(model, inputs)
            finite = bool(torch.isfinite(vx).all() and torch.isfinite(ax).all())
            return {**inputs.counts(), "times_s": times, "median_s": statistics.median(times),
                    "weights_gib": weight_gib(model), "allocated_before_gib": weights, **peak_gib(device),
                    "outputs_finite": finite,
                    "block_linear_dtype": str(model.transformer_blocks[0].attn1.to_q.weight.dtype)}

        rec.run(section, setting.name, run, shape=asdict(setting), dtype=str(dtype), fp8=fp8)
    holder.clear()


def section_training(rec: Recorder, scale: Scale, device: torch.device, dtype: torch.dtype,
                     args: argparse.Namespace) -> None:
    for setting in scale.training:
        def run(setting: Setting = setting) -> dict[str, Any]:
            model = build_model(scale, device, dtype, args.seed)
            try:
                impl = attach_lora(model, args.lora_rank, args.lora_alpha, args.lora_targets, args.lora_dtype)
            except LoraUnavailable as err:
                print(str(err), flush=True)
                raise Skip(str(err)) from err
            model.to(device)
            model.train()
            model.set_gradient_checkpointing(True)
            params = [p for p in model.parameters() if p.requires_grad]
            if not params:
                raise RuntimeError("LoRA injection left no trainable parameter")
            n_lora = sum(p.numel() for p in params)
            optimizer = torch.optim.AdamW(params, lr=1e-4)
            inputs = make_inputs(model.ltxic_config, scale, setting, device, dtype, seed=args.seed)
            gen = torch.Generator(device="cpu").manual_seed(args.seed + 1)
            v_target = torch.randn(inputs.video.latent[:, : inputs.video_target].shape, generator=gen).to(device, dtype)
            a_target = torch.randn(inputs.audio.latent[:, : inputs.audio_target].shape, generator=gen).to(device, dtype)
            losses: list[float] = []

            def step() -> None:
                vx, ax = forward(model, inputs)
                loss = F.mse_loss(vx[:, : inputs.video_target].float(), v_target.float()) + F.mse_loss(
                    ax[:, : inputs.audio_target].float(), a_target.float())
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                losses.append(loss.item())

            weights = allocated_gib(device)
            reset_peak(device)
            times = timed(step, device, args.repeats, args.warmup)
            return {**inputs.counts(), "lora_impl": impl, "lora_rank": args.lora_rank,
                    "lora_params_m": n_lora / 1e6, "gradient_checkpointing": True, "optimizer": "AdamW",
                    "step_times_s": times, "step_median_s": statistics.median(times), "losses": losses,
                    "allocated_before_steps_gib": weights, **peak_gib(device)}

        rec.run("training", setting.name, run, shape=asdict(setting), dtype=str(dtype))


def _build_aux(builder: Callable[[], torch.nn.Module], device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """Small models (VAE, upsampler, vocoder): PyTorch's default init on the CPU, unit latent statistics."""
    module = builder()
    for name, buf in module.named_buffers():
        if name.endswith("std-of-means"):
            buf.fill_(1.0)
        elif name.endswith("mean-of-means"):
            buf.zero_()
    return module.to(device=device, dtype=dtype).eval()


def _stage_timer(device: torch.device, stages: list[dict[str, Any]]):
    class Stage:
        def __init__(self, name: str, **info: Any) -> None:
            self.record = {"stage": name, **info}

        def __enter__(self) -> dict[str, Any]:
            sync(device)
            reset_peak(device)
            self.start = time.perf_counter()
            return self.record

        def __exit__(self, *exc: Any) -> None:
            sync(device)
            self.record["seconds"] = time.perf_counter() - self.start
            self.record.update(peak_gib(device))
            self.record["allocated_after_gib"] = allocated_gib(device)
            self.record["ok"] = exc[0] is None
            stages.append(self.record)

    return Stage


def _denoise(model: torch.nn.Module, inputs: Inputs, sigmas: list[float], seed: int) -> torch.Tensor:
    """Distilled Euler loop on the target video and audio tokens; reference tokens stay clean (timestep 0)."""
    stepper = EulerDiffusionStep()
    device = inputs.video.latent.device
    sig = torch.tensor(sigmas, device=device, dtype=torch.float32)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    video, audio = inputs.video, inputs.audio
    nv, na = inputs.video_target, inputs.audio_target

    def noised(tokens: torch.Tensor) -> torch.Tensor:
        noise = torch.randn(tokens.shape, generator=gen).to(tokens)
        return (1 - sigmas[0]) * tokens + sigmas[0] * noise

    v_lat = torch.cat([noised(video.latent[:, :nv]), video.latent[:, nv:]], dim=1)
    a_lat = torch.cat([noised(audio.latent[:, :na]), audio.latent[:, na:]], dim=1)
    v_mask = (video.timesteps > 0).to(torch.float32)
    a_mask = (audio.timesteps > 0).to(torch.float32)
    for i in range(len(sigmas) - 1):
        s = sig[i : i + 1]
        video_i = Modality(latent=v_lat, sigma=s, timesteps=s * v_mask, positions=video.positions,
                           context=video.context, attention_mask=video.attention_mask)
        audio_i = Modality(latent=a_lat, sigma=s, timesteps=s * a_mask, positions=audio.positions,
                           context=audio.context)
        vx, ax = model(video_i, audio_i, BatchedPerturbationConfig.empty(1))
        v_new = stepper.step(v_lat[:, :nv], v_lat[:, :nv] - sig[i] * vx[:, :nv], sig, i)
        a_new = stepper.step(a_lat[:, :na], a_lat[:, :na] - sig[i] * ax[:, :na], sig, i)
        v_lat = torch.cat([v_new, v_lat[:, nv:]], dim=1)
        a_lat = torch.cat([a_new, a_lat[:, na:]], dim=1)
    return v_lat[:, :nv], a_lat[:, :na]


def section_pipeline(rec: Recorder, scale: Scale, device: torch.device, dtype: torch.dtype,
                     args: argparse.Namespace) -> None:
    from ltx_core.model.upsampler.model import upsample_video
    from ltx_core.model.upsampler.model_configurator import LatentUpsamplerConfigurator
    from ltx_core.model.video_vae.model_configurator import VideoDecoderConfigurator, VideoEncoderConfigurator
    from ltx_core.model.video_vae.tiling import SpatialTilingConfig, TemporalTilingConfig, TilingConfig

    full = scale.pipeline
    half = Setting(f"stage1_{full.width // 2}x{full.height // 2}x{full.frames}", full.width // 2, full.height // 2,
                   full.frames, full.fps, full.ref_downscale, full.ref_audio_seconds)
    cfg = full_config(scale)
    offload = torch.device("cpu") if device.type == "cuda" and args.offload else None

    def run() -> dict[str, Any]:
        stages: list[dict[str, Any]] = []
        Stage = _stage_timer(device, stages)
        # no_grad rather than inference_mode: models are built (parameters created) inside this block
        with torch.no_grad():
            with Stage("build_transformer"):
                model = build_model(scale, device, dtype, args.seed).eval()
            with Stage("stage1_denoise", steps=len(STAGE1_SIGMAS) - 1, shape=asdict(half)) as r:
                inputs = make_inputs(model.ltxic_config, scale, half, device, dtype, seed=args.seed)
                r.update(inputs.counts())
                v_tok, a_tok = _denoise(model, inputs, STAGE1_SIGMAS, args.seed)
                v_lat = VideoLatentPatchifier(patch_size=1).unpatchify(
                    v_tok, VideoLatentShape.from_torch_shape(inputs.video_latent_shape))
                a_lat = AudioPatchifier(patch_size=1).unpatchify(
                    a_tok, AudioLatentShape.from_torch_shape(inputs.audio_latent_shape))
            if offload is not None:
                with Stage("transformer_to_cpu"):
                    model.to(offload)
            with Stage("upsample_x2") as r:
                encoder = _build_aux(lambda: VideoEncoderConfigurator.from_config(cfg), device, dtype)
                upsampler = _build_aux(lambda: LatentUpsamplerConfigurator.from_config(scale.upsampler), device, dtype)
                r["upsampler_params_m"] = count_parameters(upsampler) / 1e6
                v_up = upsample_video(v_lat, encoder, upsampler)
                r["latent_in"], r["latent_out"] = list(v_lat.shape), list(v_up.shape)
                del encoder, upsampler
                free_memory(device)
            if offload is not None:
                with Stage("transformer_to_gpu"):
                    model.to(device)
            with Stage("stage2_denoise", steps=len(STAGE2_SIGMAS) - 1, shape=asdict(full)) as r:
                inputs = make_inputs(model.ltxic_config, scale, full, device, dtype, seed=args.seed,
                                     sigma=STAGE2_SIGMAS[0], video_latent=v_up, audio_latent=a_lat)
                r.update(inputs.counts())
                v_tok, a_tok = _denoise(model, inputs, STAGE2_SIGMAS, args.seed + 1)
                v_lat = VideoLatentPatchifier(patch_size=1).unpatchify(
                    v_tok, VideoLatentShape.from_torch_shape(inputs.video_latent_shape))
                a_lat = AudioPatchifier(patch_size=1).unpatchify(
                    a_tok, AudioLatentShape.from_torch_shape(inputs.audio_latent_shape))
            with Stage("free_transformer"):
                del model
                free_memory(device)
            decoder = _build_aux(lambda: VideoDecoderConfigurator.from_config(cfg), device, dtype)
            frames = None
            if not args.tiled_decode_only:
                try:
                    with Stage("video_decode_untiled") as r:
                        frames = decoder(v_lat)
                        r["frames_shape"] = list(frames.shape)
                except Exception as err:  # noqa: BLE001
                    if not is_oom(err):
                        raise
                    stages[-1]["oom"] = str(err).splitlines()[0][:300]
                    frames = None
                    free_memory(device)
            if frames is None:
                sp, spo, tp, tpo = scale.tiling_pixels
                tiling = TilingConfig(SpatialTilingConfig(sp, spo), TemporalTilingConfig(tp, tpo))
                with Stage("video_decode_tiled", tiling=[sp, spo, tp, tpo]) as r:
                    chunks = [c.to("cpu") for c in decoder.tiled_decode(v_lat, tiling)]
                    r["frames"] = sum(c.shape[2] for c in chunks)
            del decoder, frames
            free_memory(device)
            try:
                from ltx_core.model.audio_vae.audio_vae import decode_audio
                from ltx_core.model.audio_vae.model_configurator import AudioDecoderConfigurator, VocoderConfigurator
            except ImportError as err:
                stages.append({"stage": "audio_decode", "skipped": f"needs {err.name}"})
            else:
                with Stage("audio_decode", dtype="float32") as r:
                    audio_decoder = _build_aux(lambda: AudioDecoderConfigurator.from_config(cfg), device, torch.float32)
                    vocoder = _build_aux(lambda: VocoderConfigurator.from_config(cfg), device, torch.float32)
                    audio = decode_audio(a_lat.float(), audio_decoder, vocoder)
                    r["waveform_shape"] = list(audio.waveform.shape)
                    r["sampling_rate"] = audio.sampling_rate
        total = sum(s.get("seconds", 0.0) for s in stages)
        return {"stages": stages, "total_s": total, "offload": offload is not None}

    rec.run("pipeline", full.name, run, shape=asdict(full), stage1=asdict(half), dtype=str(dtype))


# --- Main -----------------------------------------------------------------------------------------

SECTIONS = ("components", "build", "inference", "training", "fp8", "pipeline")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="folder for results.json")
    p.add_argument("--tiny", action="store_true", help="tiny preset and shapes on the CPU (tests every path)")
    p.add_argument("--device", default=None, help="default: cuda, or cpu with --tiny")
    p.add_argument("--sections", default=",".join(SECTIONS), help=f"comma list of {', '.join(SECTIONS)}")
    p.add_argument("--dtype", choices=["auto", "bfloat16", "float32"], default="auto",
                   help="auto: bfloat16 on CUDA, float32 on the CPU")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ref-downscale", type=int, default=2, help="IC reference downscale factor; 0: no reference")
    p.add_argument("--ref-audio-seconds", type=float, default=5.0, help="reference voice appended to the audio stream")
    p.add_argument("--lora-rank", type=int, default=128)
    p.add_argument("--lora-alpha", type=float, default=128.0)
    p.add_argument("--lora-targets", choices=LORA_TARGETS, default="attn+ffn",
                   help="attn+ffn: q/k/v/out of every attention (video, audio, both AV directions) and both FFNs")
    p.add_argument("--lora-dtype", choices=["float32", "base"], default="float32",
                   help="adapter parameters in float32 (mixed precision) or in the base weights' dtype")
    p.add_argument("--no-offload", dest="offload", action="store_false",
                   help="pipeline: keep the transformer on the GPU between stages")
    p.add_argument("--tiled-decode-only", action="store_true", help="pipeline: skip the untiled VAE decode attempt")
    args = p.parse_args(argv)
    unknown = set(args.sections.split(",")) - set(SECTIONS)
    if unknown:
        p.error(f"--sections: unknown {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device or ("cpu" if args.tiny else "cuda"))
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: run on a GPU, or pass --tiny for the CPU test", file=sys.stderr)
        return 2
    if args.dtype == "auto":
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    else:
        dtype = getattr(torch, args.dtype)
    ref = args.ref_downscale or None
    scale = (tiny_scale if args.tiny else real_scale)(ref, args.ref_audio_seconds)
    import ltx_core

    meta = {"argv": sys.argv[1:], "tiny": args.tiny, "device": str(device), "dtype": str(dtype),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
            "torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
            "ltx_core": getattr(ltx_core, "__version__", None), "preset": scale.preset,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    if device.type == "cuda":
        meta["gpu_total_gib"] = torch.cuda.get_device_properties(device).total_memory / GIB
    rec = Recorder(args.out, device, meta)
    wanted = args.sections.split(",")
    print(json.dumps(meta), flush=True)
    if "components" in wanted:
        section_components(rec, args)
    if "build" in wanted:
        section_build(rec, scale, device, dtype, args.seed)
    if "inference" in wanted:
        section_inference(rec, scale, device, dtype, args)
    if "training" in wanted:
        section_training(rec, scale, device, dtype, args)
    if "fp8" in wanted:
        section_inference(rec, scale, device, dtype, args, fp8=True)
    if "pipeline" in wanted:
        section_pipeline(rec, scale, device, dtype, args)

    print("\n=== summary ===")
    for r in rec.data["results"]:
        print(f"{r['section']:>11} | {r['setting']:<38} | {summarize(r)}")
    errors = [r for r in rec.data["results"] if r["status"] == "error"]
    print(f"results: {args.out / 'results.json'}; {len(errors)} error(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
