"""Build the LTX-2 audio-video transformer from ``ltx-core`` classes.

Two scales, one code path:

* ``load_transformer(path)`` builds the model from an official checkpoint: the architecture comes
  from the JSON ``config`` stored in the safetensors metadata (as ``ltx-core``'s own loader reads it),
  and both key layouts are accepted: native (``transformer_blocks.0...``) and ComfyUI
  (``model.diffusion_model.transformer_blocks.0...``, which is how the single-file LTX-2.3
  checkpoints ship, next to the VAE and vocoder weights that we skip here).
* ``build_transformer("tiny")`` builds the same ``LTXModel`` class at a small size for the CPU.

The preset dicts use the checkpoint's own config schema, so a preset and a real file go through
``LTXModelConfigurator.from_config`` alike.
"""

from __future__ import annotations

import copy
import json
import math
import os
import struct
from pathlib import Path
from typing import Any

import torch
from ltx_core.model.transformer.model import LTXModel
from ltx_core.model.transformer.model_configurator import LTXModelConfigurator
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ltxic.io.errors import InputError
from ltxic.io.files import atomic_path

COMFY_PREFIX = "model.diffusion_model."

# Values ltx-core's configurator insists on (``check_config_value``); real checkpoints carry them.
_FIXED_TRANSFORMER_KEYS: dict[str, Any] = {
    "dropout": 0.0,
    "attention_bias": True,
    "num_vector_embeds": None,
    "activation_fn": "gelu-approximate",
    "num_embeds_ada_norm": 1000,
    "use_linear_projection": False,
    "only_cross_attention": False,
    "cross_attention_norm": True,
    "double_self_attention": False,
    "upcast_attention": False,
    "standardization_norm": "rms_norm",
    "norm_elementwise_affine": False,
    "qk_norm": "rms_norm",
    "positional_embedding_type": "rope",
    "use_audio_video_cross_attention": True,
    "share_ff": False,
    "av_cross_ada_norm": True,
    "use_middle_indices_grid": True,
}

# LTX-2.3 keeps the caption projection in the text encoder ("caption_proj_before_connector"),
# so the transformer's context dims equal its stream widths.
_LTX23_SHAPE: dict[str, Any] = {
    "num_layers": 48,
    "num_attention_heads": 32,
    "attention_head_dim": 128,
    "in_channels": 128,
    "out_channels": 128,
    "cross_attention_dim": 4096,
    "audio_num_attention_heads": 32,
    "audio_attention_head_dim": 64,
    "audio_in_channels": 128,
    "audio_out_channels": 128,
    "audio_cross_attention_dim": 2048,
    "positional_embedding_theta": 10000.0,
    "positional_embedding_max_pos": [20, 2048, 2048],
    "audio_positional_embedding_max_pos": [20],
    "timestep_scale_multiplier": 1000,
    "av_ca_timestep_scale_multiplier": 1000,
    "rope_type": "split",
    "frequencies_precision": "float64",
    "caption_proj_before_connector": True,
    "cross_attention_adaln": True,
    "apply_gated_attention": True,
}

# The embedded default: the same classes, small enough to train on a 2-core CPU.
# Latent widths (16 video, 16 audio) are the tiny VAE's and tiny audio path's channels.
_TINY_SHAPE: dict[str, Any] = {
    **_LTX23_SHAPE,
    "num_layers": 4,
    "num_attention_heads": 4,
    "attention_head_dim": 32,
    "in_channels": 16,
    "out_channels": 16,
    "cross_attention_dim": 128,
    "audio_num_attention_heads": 4,
    "audio_attention_head_dim": 16,
    "audio_in_channels": 16,
    "audio_out_channels": 16,
    "audio_cross_attention_dim": 64,
    "frequencies_precision": "float32",
}

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"transformer": {**_FIXED_TRANSFORMER_KEYS, **_TINY_SHAPE}},
    "ltx-2.3-22b": {"transformer": {**_FIXED_TRANSFORMER_KEYS, **_LTX23_SHAPE}},
}


class CheckpointError(InputError, ValueError):
    """A checkpoint file cannot be used; the message names the file and the fix."""


def preset_config(name: str) -> dict[str, Any]:
    """The checkpoint-style config dict of a named preset (a deep copy: safe to edit)."""
    if name not in PRESETS:
        raise KeyError(f"unknown model preset {name!r}; choose one of {sorted(PRESETS)}")
    return copy.deepcopy(PRESETS[name])


def _complete_config(config: dict[str, Any]) -> dict[str, Any]:
    """Fill the fixed keys ltx-core checks, so partial configs (older files, tests) still build."""
    config = copy.deepcopy(config)
    config["transformer"] = {**_FIXED_TRANSFORMER_KEYS, **config.get("transformer", {})}
    return config


def init_transformer_weights(model: LTXModel, seed: int = 0) -> LTXModel:
    """Random initialization of every parameter, deterministic in ``seed`` (per device type).

    ``LTXModel`` allocates its scale-shift tables with ``torch.empty``; linears get PyTorch's default.
    We re-draw all of them from one generator so two builds with the same seed are identical.
    The generator lives on the parameters' device, so a model allocated on a GPU is initialized there
    (a CPU round trip of 19 B parameters would take minutes); CPU and GPU draws differ.
    """
    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("norm.weight") or name.endswith("_norm.weight"):
                param.fill_(1.0)
            elif "scale_shift_table" in name:
                draw = torch.randn(param.shape, generator=gen, device=device)
                param.copy_(draw / math.sqrt(param.shape[-1]))
            elif param.ndim >= 2:
                bound = 1.0 / math.sqrt(param.shape[1])
                param.copy_(torch.empty(param.shape, device=device).uniform_(-bound, bound, generator=gen))
            else:
                param.zero_()
    return model


def build_transformer(
    preset_or_config: str | dict[str, Any] = "tiny",
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    allocate_direct: bool | None = None,
) -> LTXModel:
    """Build a randomly initialized ``LTXModel`` from a preset name or a checkpoint-style config.

    With ``allocate_direct`` (the default on a non-CPU ``device``) the model is laid out on the meta
    device, allocated directly on ``device`` in ``dtype`` and initialized there: the 22B preset in
    bf16 (38 GB) never passes through CPU memory.
    """
    config = preset_config(preset_or_config) if isinstance(preset_or_config, str) else preset_or_config
    config = _complete_config(config)
    device = torch.device(device)
    if allocate_direct is None:
        allocate_direct = device.type != "cpu"
    if not allocate_direct:
        model = LTXModelConfigurator.from_config(config)
        init_transformer_weights(model, seed)
        model = model.to(dtype=dtype)
    else:
        with torch.device("meta"):
            model = LTXModelConfigurator.from_config(config)
        model = model.to(dtype=dtype).to_empty(device=device)
        init_transformer_weights(model, seed)
    model.ltxic_config = config
    return model


def model_config(model: LTXModel) -> dict[str, Any]:
    """The config a model was built with, as stored in checkpoints (``ltxic`` attaches it)."""
    config = getattr(model, "ltxic_config", None)
    if config is None:
        raise ValueError("this model has no attached config; build it with ltxic.build_transformer or load_transformer")
    return copy.deepcopy(config)


def read_safetensors_header(path: Path) -> tuple[list[str], dict[str, str]]:
    """Keys and metadata of a safetensors file, with errors that say what is wrong with it."""
    if not path.exists():
        raise CheckpointError(f"{path}: no such file. Check the path, or download it with `ltxic download`.")
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(8)
    if len(head) < 8:
        raise CheckpointError(f"{path}: {size} bytes is too small to be a safetensors file (truncated download?).")
    header_len = struct.unpack("<Q", head)[0]
    if header_len > size - 8 or header_len > 100_000_000:
        raise CheckpointError(
            f"{path}: not a safetensors file (its first bytes do not describe a safetensors header). "
            "ltxic loads weights only from .safetensors; convert other formats with safetensors first."
        )
    try:
        with safe_open(str(path), framework="pt") as fh:
            keys = list(fh.keys())
            meta = fh.metadata() or {}
    except SafetensorError as err:
        raise CheckpointError(f"{path}: unreadable safetensors file ({err}); it is likely truncated: download it again.") from err
    return keys, meta


def checkpoint_layout(keys: list[str]) -> str:
    """``"comfyui"`` when transformer keys carry ComfyUI's ``model.diffusion_model.`` prefix, else ``"native"``."""
    return "comfyui" if any(k.startswith(COMFY_PREFIX) for k in keys) else "native"


def load_transformer(
    path: str | os.PathLike[str],
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    fp8: bool = False,
    config: dict[str, Any] | None = None,
) -> LTXModel:
    """Load the LTX-2 transformer from a safetensors checkpoint.

    Args:
        path: native or ComfyUI-layout file; other components in the file (VAE, vocoder) are skipped.
        dtype: cast floating weights (e.g. ``torch.bfloat16``); ``None`` keeps the file's dtype.
        fp8: store linear weights of the transformer blocks as ``float8_e4m3fn`` and upcast per matmul
            (ltx-core's ``fp8_cast`` policy): halves weight memory, the way a 24 GB card fits the 22B model.
        config: override the config stored in the file's metadata.
    """
    path = Path(path)
    keys, meta = read_safetensors_header(path)
    if config is None:
        if "config" not in meta:
            raise CheckpointError(
                f"{path}: no 'config' entry in the safetensors metadata, so the architecture is unknown. "
                "Pass config=ltxic.preset_config('ltx-2.3-22b') (or the matching preset) to load it."
            )
        config = json.loads(meta["config"])
    layout = checkpoint_layout(keys)
    prefix = COMFY_PREFIX if layout == "comfyui" else ""

    with torch.device("meta"):
        model = LTXModelConfigurator.from_config(_complete_config(config))
    expected = set(model.state_dict().keys())
    file_keys = {k[len(prefix):]: k for k in keys if k.startswith(prefix)}
    missing = sorted(expected - set(file_keys))
    if missing:
        found = sorted(set(file_keys) - expected)[:3]
        raise CheckpointError(
            f"{path}: these are not the weights of the configured LTX-2 transformer: {len(missing)} of "
            f"{len(expected)} expected keys are missing (first: {missing[:3]}; the file has e.g. {found}). "
            "Check that the file is an LTX-2 audio-video checkpoint and that its config matches it."
        )

    state: dict[str, torch.Tensor] = {}
    with safe_open(str(path), framework="pt", device="cpu") as fh:
        for name in expected:
            tensor = fh.get_tensor(file_keys[name])
            if dtype is not None and tensor.is_floating_point():
                tensor = tensor.to(dtype)
            state[name] = tensor
    model.load_state_dict(state, strict=True, assign=True)
    model.ltxic_config = config
    if fp8:
        quantize_fp8(model)
    return model.to(device)


FLOAT8 = (torch.float8_e4m3fn, torch.float8_e5m2)  # the dtypes of fp8-stored weights, upcast per matmul


def quantize_fp8(model: LTXModel) -> LTXModel:
    """Apply ltx-core's fp8-cast policy to a built model: the block Linears' weights and biases it names are stored
    as ``float8_e4m3fn`` and every Linear upcasts per call.

    The same policy :func:`ltxic.models.ltx23.load_transformer` applies while loading a checkpoint, so the tiny kit and the
    22B model quantize exactly the same tensors (not, for instance, the attention gates).
    """
    from ltx_core.quantization import QuantizationPolicy

    policy = QuantizationPolicy.fp8_cast()
    with torch.no_grad():
        state = {}
        for key, value in model.state_dict().items():
            for result in policy.sd_ops.apply_to_key_value(key, value):
                state[result.new_key] = result.new_value
        model.load_state_dict(state, assign=True)
    for op in policy.module_ops:
        if op.matcher(model):
            model = op.mutator(model)
    return model


def save_transformer(
    model: LTXModel,
    path: str | os.PathLike[str],
    *,
    config: dict[str, Any] | None = None,
    layout: str = "native",
) -> Path:
    """Write the transformer as safetensors with its config in the metadata (atomically)."""
    if layout not in ("native", "comfyui"):
        raise ValueError(f"layout must be 'native' or 'comfyui', not {layout!r}")
    config = config if config is not None else model_config(model)
    prefix = COMFY_PREFIX if layout == "comfyui" else ""
    tensors = {prefix + k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"config": json.dumps(config)})
    return path


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# The shipped tiny weights live beside the package in a source checkout; LTXIC_TINY_DIR points elsewhere.
TINY_DIR = Path(__file__).resolve().parents[2] / "data_samples" / "tiny"
TINY_TRANSFORMER_FILE = "transformer.safetensors"
PRETRAIN_COMMAND = "python -m ltxic.models.tiny_pretrain --out data_samples/tiny"


def default_tiny_dir() -> Path:
    return Path(os.environ.get("LTXIC_TINY_DIR", TINY_DIR))


def load_pretrained_tiny(dir: str | os.PathLike[str] | None = None, *, device: str | torch.device = "cpu") -> LTXModel:
    """The tiny preset transformer with its toy-world pretrained weights (float32), from ``dir`` (no download)."""
    path = Path(dir if dir is not None else default_tiny_dir()) / TINY_TRANSFORMER_FILE
    if not path.exists():
        raise CheckpointError(
            f"{path}: no pretrained tiny transformer there. Create it with `{PRETRAIN_COMMAND}` "
            "(about 10 min on a GPU), or pass dir= where the tiny assets are."
        )
    return load_transformer(path, device=device, dtype=torch.float32)
