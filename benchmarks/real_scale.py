#!/usr/bin/env python
"""Real-scale measurements of the LTX-2.3 22B audio-video transformer (random weights) on one GPU.

Sections (``--sections``, all by default):

* ``components``: parameter counts of every model in the LTX-2.3 checkpoint, on the meta device.
* ``build``: the 22B-shaped transformer allocated directly on the GPU in bf16; parameters, weight memory.
* ``inference``: forward time (median of ``--repeats``) and peak memory under ``torch.inference_mode``,
  with IC reference tokens appended (reference image latent at ``--ref-downscale``).
* ``fp8``: the inference settings again with fp8 block weights (``ltxic.models.transformer.quantize_fp8``).

Two earlier sections were retired: ``training`` (LoRA step) is measured by ``benchmarks/train_speed.py``, which
times the trainer's own step (``ltxic.training.loop.run_training``) against a plain ltx-core loop in one run;
``pipeline`` (hand-written two-stage inference) by ``benchmarks/ltx23_real_path.py``, which times ``ltxic train``
and ``ltxic sample --two-stage`` on the full-size official-format tree. Their H100 numbers stay in
``benchmarks/results/h100/results.json``.

An out-of-memory in any setting is recorded as ``"status": "oom"`` with the setting, and the run goes on.
Results go to ``<out>/results.json`` after every setting (atomically), so a run cut short keeps its numbers.

    PYTHONPATH=. python benchmarks/real_scale.py --out benchmarks/results/h100      # GPU, real shapes
    PYTHONPATH=. python benchmarks/real_scale.py --tiny --out /tmp/bench          # CPU, tiny shapes (test)
"""

from __future__ import annotations

import argparse
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
    ``ltxic.models.transformer``, ``ltxic.models.latents`` and ``ltxic.io.files``, so the GPU machine needs only
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
    )


def tiny_scale(ref_downscale: int, ref_audio_seconds: float) -> Scale:
    r, a = ref_downscale, ref_audio_seconds
    return Scale(
        preset="tiny",
        audio_mel_bins=16,
        context_len=8,
        inference=[Setting("tiny_128x96x17", 128, 96, 17, ref_downscale=r, ref_audio_seconds=a),
                   Setting("tiny_64x64x9", 64, 64, 9, ref_downscale=r, ref_audio_seconds=a)],
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
    for key in ("params_b", "weights_gib", "median_s", "peak_allocated_gib", "video_tokens", "audio_tokens"):
        if r.get(key) is not None:
            val = r[key]
            parts.append(f"{key}={val:.3f}" if isinstance(val, float) else f"{key}={val}")
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
                sigma: float = 0.7, seed: int = 0) -> Inputs:
    """Transformer inputs laid out as the IC pipelines do: target tokens, then clean reference tokens."""
    tcfg = cfg["transformer"]
    geometry, ageo = VideoGeometry(), AudioGeometry()
    gen = torch.Generator(device="cpu").manual_seed(seed)
    frames, lh, lw = geometry.latent_size(setting.frames, setting.height, setting.width)
    vshape = VideoLatentShape(batch=1, channels=tcfg["in_channels"], frames=frames, height=lh, width=lw)
    vtools = VideoLatentTools(VideoLatentPatchifier(patch_size=1), vshape, fps=setting.fps,
                              scale_factors=geometry.scale_factors)
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

    def audio_state(seconds: float):
        shape = AudioLatentShape.from_duration(batch=1, duration=seconds, channels=channels, mel_bins=mel)
        latent = torch.randn(tuple(shape.to_torch_shape()), generator=gen)
        return shape, AudioLatentTools(patchifier, shape).create_initial_state(
            device=device, dtype=dtype, initial_latent=latent.to(device, dtype))

    ashape, astate = audio_state(setting.frames / setting.fps)
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


# --- Sections -------------------------------------------------------------------------------------


def full_config() -> dict[str, Any]:
    """The checkpoint's config: the LTX-2.3 transformer preset with its video VAE, audio VAE and vocoder sections."""
    cfg = preset_config("ltx-2.3-22b")
    return {**cfg, "vae": LTX23_VAE, "audio_vae": LTX23_AUDIO_VAE, "vocoder": LTX23_VOCODER}


def section_components(rec: Recorder, args: argparse.Namespace) -> None:
    """Parameter counts of the checkpoint's models on the meta device (always the real LTX-2.3 config)."""

    def count(builder: Callable[[], torch.nn.Module]) -> Callable[[], dict[str, Any]]:
        def run() -> dict[str, Any]:
            with torch.device("meta"):
                n = count_parameters(builder())
            return {"params": n, "params_b": n / 1e9, "bf16_gib": n * 2 / GIB}
        return run

    cfg = full_config()
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


# --- Main -----------------------------------------------------------------------------------------

SECTIONS = ("components", "build", "inference", "fp8")


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
    if "fp8" in wanted:
        section_inference(rec, scale, device, dtype, args, fp8=True)

    print("\n=== summary ===")
    for r in rec.data["results"]:
        print(f"{r['section']:>11} | {r['setting']:<38} | {summarize(r)}")
    errors = [r for r in rec.data["results"] if r["status"] == "error"]
    print(f"results: {args.out / 'results.json'}; {len(errors)} error(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
