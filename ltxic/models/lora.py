"""LoRA adapters for the ltx-core LTX-2 transformer: inject, train, save, load, merge.

Files we write load unchanged in ComfyUI (native LoRA loader and ``LTXICLoRALoaderModelOnly``) and in
ltx-core / ltx-pipelines (``SingleGPUModelBuilder.lora``). Facts this rests on, read from the sources:

Key names
    * ComfyUI ``comfy/lora.py`` ``model_lora_keys_unet``: for LTXV/LTXAV models every diffusion-model weight
      ``diffusion_model.<name>.weight`` is reachable under the LoRA prefix ``diffusion_model.<name>`` (the
      generic mapping) and under the bare ``<name>`` (the LTXV/LTXAV branch). ComfyUI's LTXAV blocks
      (``comfy/ldm/lightricks/av_model.py``) use the same module names as ltx-core and the official
      checkpoints: ``transformer_blocks.N.{attn1,attn2,audio_attn1,audio_attn2,audio_to_video_attn,
      video_to_audio_attn}.{to_q,to_k,to_v,to_out.0}``, ``...{ff,audio_ff}.net.{0.proj,2}``.
    * ComfyUI ``comfy/weight_adapter/lora.py`` ``LoRAAdapter.load`` accepts ``<prefix>.lora_B.weight`` (up,
      ``(out, r)``) with ``<prefix>.lora_A.weight`` (down, ``(r, in)``), and an optional ``<prefix>.alpha``.
    * Lightricks' trainer (``packages/ltx-trainer/src/ltx_trainer/trainer.py``) saves peft's state dict with
      ``base_model.model.`` removed and ``diffusion_model.`` prepended, i.e. exactly
      ``diffusion_model.transformer_blocks.0.attn1.to_q.lora_A.weight``; it writes no ``.alpha`` keys.
    * ltx-core ``loader/sd_ops.py`` ``LTXV_LORA_COMFY_RENAMING_MAP`` strips ``diffusion_model.``, which is
      what ltx-pipelines passes for every LoRA (``ltx_pipelines/utils/args.py``).

Scaling
    * ComfyUI (``weight_adapter/lora.py`` ``calculate_weight``): ``W += strength * (alpha / r) * B @ A`` when
      an ``.alpha`` key exists, else ``W += strength * B @ A`` (``r`` = rows of ``lora_A``).
    * ltx-core (``loader/fuse_loras.py`` ``_prepare_deltas``): ``W += (B * strength) @ A``; it never reads alpha.
    * So we bake ``alpha / rank`` into the saved ``lora_B`` and write no ``.alpha`` key: both loaders then apply
      ``strength * B_saved @ A``, the same delta our ``LoRALinear`` computes. ``load_lora`` divides the factor
      back out (using ``lora_rank``/``lora_alpha`` from the metadata), so training can resume in the
      original parametrization. Foreign files with ``.alpha`` keys are read with ComfyUI's rule.
    * ltx-core only fuses into bf16 or fp8 weights (``_fuse_deltas`` raises for float32), as in real checkpoints.

Metadata (safetensors ``__metadata__``, all values strings)
    * ``reference_downscale_factor``: ComfyUI-LTXVideo ``iclora.py`` ``LTXICLoRALoaderModelOnly`` reads
      ``float(metadata["reference_downscale_factor"])`` (default 1.0) and returns it as its FLOAT output
      ``latent_downscale_factor`` (checked against a running ComfyUI 0.20.1 by tests/test_comfyui_real.py); ComfyUI
      core ``comfy_extras/nodes_lt.py`` ``GetICLoRAParameters``, where a ComfyUI version has it (0.20.1 does not),
      reads the same key from the ``lora_metadata`` attachment as ``round(float(...))``; ltx-pipelines ``ic_lora.py``
      ``_read_lora_reference_downscale_factor`` reads ``int(metadata.get("reference_downscale_factor", 1))``,
      which fails on ``"2.0"``: we therefore always write an integer string such as ``"1"`` or ``"2"``.
    * Lightricks' trainer (``training_strategies/flexible.py``) also writes ``reference_spatial_scale_factor``
      and ``reference_temporal_scale_factor``; we pass those through when given.
    * Ours: ``ltxic_version``, ``lora_rank``, ``lora_alpha``, ``lora_dropout``, ``lora_target_modules`` (JSON),
      ``lora_scale_in_weights`` (``"alpha/rank"``), ``training_strategy``, ``base_model`` (preset or checkpoint
      file name), ``base_model_arch`` (JSON of the shape-defining config fields) and ``base_model_arch_hash``.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import math
import os
import re
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from ltxic.io.errors import InputError
from ltxic.io.files import atomic_path
from ltxic.models.transformer import FLOAT8, PRESETS, read_safetensors_header

COMFY_LORA_PREFIX = "diffusion_model."
FORMAT = "ltxic-lora/1"

_ATTENTIONS = ("attn1", "attn2", "audio_attn1", "audio_attn2", "audio_to_video_attn", "video_to_audio_attn")
_ATTN_PROJ = ("to_q", "to_k", "to_v", "to_out.0")
_FEED_FORWARD = ("ff.net.0.proj", "ff.net.2", "audio_ff.net.0.proj", "audio_ff.net.2")

DEFAULT_TARGET_MODULES: tuple[str, ...] = tuple(
    [f"transformer_blocks.*.{a}.{p}" for a in _ATTENTIONS for p in _ATTN_PROJ]
    + [f"transformer_blocks.*.{f}" for f in _FEED_FORWARD]
)

# Config fields that decide weight shapes; a LoRA fits any checkpoint that agrees on these.
_ARCH_KEYS = (
    "num_layers", "num_attention_heads", "attention_head_dim", "in_channels", "out_channels",
    "cross_attention_dim", "audio_num_attention_heads", "audio_attention_head_dim", "audio_in_channels",
    "audio_out_channels", "audio_cross_attention_dim", "caption_proj_before_connector",
    "cross_attention_adaln", "apply_gated_attention",
)


class LoRAError(InputError, ValueError):
    """A LoRA cannot be injected, saved or loaded; the message names the file or field and the fix."""


@dataclass
class LoRAConfig:
    """Which linears get adapters and how they are scaled.

    ``target_modules`` are matched against full module names (``transformer_blocks.3.attn1.to_q``):
    an ``fnmatch`` pattern matches the whole name or a dotted suffix of it (so peft-style ``"to_q"`` works),
    and a pattern starting with ``re:`` is a regular expression that must match the whole name.
    """

    rank: int = 128
    alpha: float = 128.0
    dropout: float = 0.0
    target_modules: tuple[str, ...] = DEFAULT_TARGET_MODULES
    seed: int = 0

    def __post_init__(self) -> None:
        if int(self.rank) != self.rank or self.rank < 1:
            raise LoRAError(f"lora.rank must be a positive integer, got {self.rank!r}")
        if not self.alpha > 0:
            raise LoRAError(f"lora.alpha must be > 0, got {self.alpha!r} (alpha = rank gives scale 1)")
        if not 0.0 <= self.dropout < 1.0:
            raise LoRAError(f"lora.dropout must be in [0, 1), got {self.dropout!r}")
        if isinstance(self.target_modules, str):
            raise LoRAError("lora.target_modules must be a list of patterns, not one string")
        self.rank = int(self.rank)
        self.target_modules = tuple(self.target_modules)
        if not self.target_modules:
            raise LoRAError("lora.target_modules is empty; give at least one module pattern")


@torch.library.custom_op("ltxic::upcast_linear", mutates_args=())
def upcast_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``F.linear`` over a frozen weight stored narrower than the input (fp8), upcast per call.

    ``F.linear(x, w.to(bf16))`` would keep the bf16 copy until backward: about 0.9 GB for each 22B block that does
    not recompute, which undoes what fp8 storage saves. This keeps the stored weight (an alias, no copy) and upcasts
    it again in backward; the alias stays valid when block offloading moves the parameter back to the host. It is a
    custom op so that ``torch.compile`` treats it as one opaque call: traced through, the compiler's partitioner
    chose to keep the bf16 copies again (``benchmarks/block_memory.py``).
    """
    return F.linear(x, weight.to(x.dtype), bias.to(x.dtype) if bias is not None else None)


@upcast_linear.register_fake
def _(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return x.new_empty((*x.shape[:-1], weight.shape[0]))


def _upcast_linear_setup(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
    ctx.save_for_backward(inputs[1].detach())  # an alias of today's storage, whatever later becomes of param.data


def _upcast_linear_backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:
    (weight,) = ctx.saved_tensors
    return (grad @ weight.to(grad.dtype) if ctx.needs_input_grad[0] else None), None, None


upcast_linear.register_autograd(_upcast_linear_backward, setup_context=_upcast_linear_setup)


class LoRALinear(nn.Module):
    """A frozen linear plus a low-rank update: ``y = base(x) + strength * (alpha / rank) * B(A(dropout(x)))``.

    The base ``weight``/``bias`` are the very parameters of the wrapped ``nn.Linear`` and keep their names,
    so the model's state-dict keys do not change. A base weight stored in float8 is upcast per call to the
    input's dtype (ltx-core's fp8-cast policy); the update is computed in the adapters' own dtype.
    """

    def __init__(
        self,
        base: nn.Linear,
        rank: int,
        alpha: float,
        dropout: float = 0.0,
        *,
        dtype: torch.dtype | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if type(base) is not nn.Linear:
            raise LoRAError(f"LoRALinear wraps a plain torch.nn.Linear, got {type(base).__name__}")
        self.in_features, self.out_features = base.in_features, base.out_features
        self.weight = base.weight
        self.bias = base.bias
        self.weight.requires_grad_(False)
        if self.bias is not None:
            self.bias.requires_grad_(False)
        self.rank, self.alpha, self.strength = int(rank), float(alpha), 1.0
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        if dtype is None:
            dtype = base.weight.dtype if base.weight.dtype in (torch.float32, torch.bfloat16, torch.float16) else torch.float32
        device = base.weight.device
        self.lora_A = nn.Parameter(torch.empty(self.rank, self.in_features, device=device, dtype=dtype))
        self.lora_B = nn.Parameter(torch.zeros(self.out_features, self.rank, device=device, dtype=dtype))
        with torch.no_grad():
            a = torch.empty(self.rank, self.in_features)
            nn.init.kaiming_uniform_(a, a=math.sqrt(5), generator=generator)
            self.lora_A.copy_(a)
        # ltx-core's fp8 upcast replaces Linear.forward per instance; keep it to restore on merge.
        self._upcast = "forward" in base.__dict__

    @property
    def scale(self) -> float:
        """Multiplier of ``B @ A``: ``alpha / rank`` times the runtime ``strength``."""
        return self.alpha / self.rank * self.strength

    def base_forward(self, x: torch.Tensor) -> torch.Tensor:
        w, b = self.weight, self.bias
        if w.dtype == x.dtype:
            return F.linear(x, w, b)
        if w.dtype in FLOAT8:
            return upcast_linear(x, w, b)
        return F.linear(x, w.to(x.dtype), b.to(x.dtype) if b is not None else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base_forward(x)
        if self.strength == 0.0:
            return out
        x = self.dropout(x)
        if not torch.is_autocast_enabled(x.device.type):
            x = x.to(self.lora_A.dtype)  # under autocast the matmuls cast float32 adapters to bf16 themselves
        delta = F.linear(F.linear(x, self.lora_A), self.lora_B) * self.scale
        return out + delta.to(out.dtype)

    def delta_weight(self) -> torch.Tensor:
        """``scale * B @ A`` in float32, shaped like the base weight."""
        return (self.lora_B.detach().float() @ self.lora_A.detach().float()) * self.scale

    def extra_repr(self) -> str:
        return (f"in={self.in_features}, out={self.out_features}, rank={self.rank}, alpha={self.alpha}, "
                f"strength={self.strength}, base_dtype={self.weight.dtype}")


# ----------------------------------------------------------------------------------------------- helpers


def _matches(name: str, pattern: str) -> bool:
    if pattern.startswith("re:"):
        return re.fullmatch(pattern[3:], name) is not None
    return fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(name, "*." + pattern)


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


def lora_modules(model: nn.Module) -> dict[str, LoRALinear]:
    """The adapted modules of ``model`` by name."""
    return {n: m for n, m in model.named_modules() if isinstance(m, LoRALinear)}


def lora_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The trainable LoRA parameters (give these to the optimizer)."""
    return [p for m in lora_modules(model).values() for p in (m.lora_A, m.lora_B)]


def architecture(model_or_config: nn.Module | dict[str, Any]) -> dict[str, Any]:
    """The shape-defining fields of a transformer config (``model.ltxic_config`` or a config dict)."""
    config = getattr(model_or_config, "ltxic_config", model_or_config)
    if not isinstance(config, dict) or "transformer" not in config:
        raise LoRAError(
            "the model has no ltxic_config, so its base-model identity is unknown; build it with "
            "ltxic.build_transformer or ltxic.load_transformer"
        )
    t = config["transformer"]
    return {k: t.get(k) for k in _ARCH_KEYS}


def architecture_hash(model_or_config: nn.Module | dict[str, Any]) -> str:
    blob = json.dumps(architecture(model_or_config), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _base_model_name(model: nn.Module) -> str:
    own = getattr(model, "ltxic_base_model", None)
    if own:
        return str(own)
    arch = architecture(model)
    for name, preset in PRESETS.items():
        if architecture(preset) == arch:
            return name
    return "unknown"


# ----------------------------------------------------------------------------------------------- inject


def inject_lora(model: nn.Module, config: LoRAConfig | None = None) -> list[str]:
    """Replace the target linears with ``LoRALinear`` in place and freeze everything else.

    Returns the adapted module names. Raises ``LoRAError`` if the patterns match no linear layer.
    """
    config = config or LoRAConfig()
    if lora_modules(model):
        raise LoRAError(
            "this model already has LoRA adapters; merge them with ltxic.merge_lora(model) or start from a "
            "fresh base model before injecting again"
        )
    linears = {n: m for n, m in model.named_modules() if type(m) is nn.Linear}
    targets: list[str] = []
    unmatched = []
    for pattern in config.target_modules:
        hits = [n for n in linears if _matches(n, pattern)]
        if not hits:
            unmatched.append(pattern)
        targets.extend(h for h in hits if h not in targets)
    if not targets:
        examples = list(linears)[:4]
        raise LoRAError(
            f"lora.target_modules {list(config.target_modules)[:4]}... match no linear layer of this model. "
            f"Its linears are named like {examples}; use fnmatch patterns such as "
            "'transformer_blocks.*.attn1.to_q', a suffix such as 'to_q', or 're:<regex>'."
        )
    if unmatched:
        warnings.warn(f"LoRA target patterns matched nothing and were skipped: {unmatched}", stacklevel=2)
    model.requires_grad_(False)
    gen = torch.Generator().manual_seed(config.seed)
    targets.sort(key=lambda n: list(linears).index(n))
    for name in targets:
        _set_submodule(model, name, LoRALinear(linears[name], config.rank, config.alpha, config.dropout, generator=gen))
    model.ltxic_lora_config = config
    return targets


def set_lora_strength(model: nn.Module, strength: float) -> None:
    """Set the runtime multiplier of every adapter (0 gives the base model exactly)."""
    mods = lora_modules(model)
    if not mods:
        raise LoRAError("this model has no LoRA adapters; inject_lora or load_lora first")
    for m in mods.values():
        m.strength = float(strength)


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold ``scale * B @ A`` into the base weights and put plain ``nn.Linear`` layers back.

    The merge is computed in float32 and stored in the base weight's dtype (re-rounding fp8 weights).
    """
    from ltx_core.quantization.fp8_cast import UPCAST_DURING_INFERENCE

    for name, mod in lora_modules(model).items():
        w = mod.weight
        merged = (w.detach().float() + mod.delta_weight().to(w.device)).to(w.dtype)
        linear = nn.Linear(mod.in_features, mod.out_features, bias=mod.bias is not None, device="meta")
        linear.weight = nn.Parameter(merged, requires_grad=False)
        if mod.bias is not None:
            linear.bias = mod.bias
        if mod._upcast or w.dtype in FLOAT8:
            UPCAST_DURING_INFERENCE.mutator(linear)
        _set_submodule(model, name, linear)
    if hasattr(model, "ltxic_lora_config"):
        del model.ltxic_lora_config
    return model


def _unwrap(model: nn.Module, name: str, mod: LoRALinear) -> None:
    """Remove an adapter without merging it (the base weights were never touched)."""
    from ltx_core.quantization.fp8_cast import UPCAST_DURING_INFERENCE

    linear = nn.Linear(mod.in_features, mod.out_features, bias=mod.bias is not None, device="meta")
    linear.weight = mod.weight
    if mod.bias is not None:
        linear.bias = mod.bias
    if mod._upcast:
        UPCAST_DURING_INFERENCE.mutator(linear)
    _set_submodule(model, name, linear)


# ----------------------------------------------------------------------------------------------- save


def lora_state_dict(model: nn.Module, *, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """The adapters under ComfyUI / ltx-core keys, ``alpha / rank`` baked into ``lora_B`` (strength is not)."""
    mods = lora_modules(model)
    if not mods:
        raise LoRAError("this model has no LoRA adapters to save; call ltxic.inject_lora(model, config) first")
    out: dict[str, torch.Tensor] = {}
    for name, m in mods.items():
        a = m.lora_A.detach().float()
        b = m.lora_B.detach().float() * (m.alpha / m.rank)
        dt = dtype or m.lora_A.dtype
        out[f"{COMFY_LORA_PREFIX}{name}.lora_A.weight"] = a.to(dt).contiguous().cpu()
        out[f"{COMFY_LORA_PREFIX}{name}.lora_B.weight"] = b.to(dt).contiguous().cpu()
    return out


def _meta_str(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def save_lora(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    config: LoRAConfig | None = None,
    metadata: dict[str, Any] | None = None,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write the adapters as a ComfyUI- and ltx-core-loadable safetensors file (atomically).

    ``metadata`` may set ``training_strategy``, ``reference_downscale_factor`` (an integer >= 1),
    ``base_model`` (preset or checkpoint file name) and any extra string fields.
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        raise LoRAError(f"{path}: LoRA files are written as .safetensors; give a path ending in .safetensors")
    config = config or getattr(model, "ltxic_lora_config", None)
    if config is None:
        raise LoRAError("save_lora needs config=LoRAConfig(...) (the model carries none)")
    tensors = lora_state_dict(model, dtype=dtype)
    user = dict(metadata or {})
    factor = user.pop("reference_downscale_factor", 1)
    try:
        factor_int = int(factor)
        ok = factor_int >= 1 and float(factor) == factor_int
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise LoRAError(
            f"metadata['reference_downscale_factor'] must be an integer >= 1 (ltx-pipelines reads it with int()), "
            f"got {factor!r}"
        )
    from ltxic.version import __version__

    ranks = {(m.rank, m.alpha) for m in lora_modules(model).values()}
    uniform = len(ranks) == 1
    rank, alpha = next(iter(ranks)) if uniform else (config.rank, config.alpha)
    meta: dict[str, str] = {
        "format": FORMAT,
        "ltxic_version": __version__,
        "reference_downscale_factor": str(factor_int),
        "training_strategy": str(user.pop("training_strategy", "unspecified")),
        "base_model": str(user.pop("base_model", _base_model_name(model))),
        "base_model_arch": json.dumps(architecture(model), sort_keys=True),
        "base_model_arch_hash": architecture_hash(model),
        "lora_rank": str(rank) if uniform else "mixed",
        "lora_alpha": str(alpha) if uniform else "mixed",
        "lora_dropout": str(config.dropout),
        "lora_target_modules": json.dumps(list(config.target_modules)),
        "lora_adapted_modules": str(len(tensors) // 2),
        "lora_scale_in_weights": "alpha/rank",
    }
    for key, value in user.items():
        meta[str(key)] = _meta_str(value)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return path


# ----------------------------------------------------------------------------------------------- load


def read_lora_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The safetensors metadata of a LoRA file (strings, as ComfyUI and ltx-pipelines see them)."""
    _, meta = read_safetensors_header(Path(path))
    return dict(meta)


def _group_keys(path: Path, keys: list[str]) -> dict[str, dict[str, str]]:
    """Module name -> {'A'|'B'|'alpha': file key}; accepts ``diffusion_model.``-prefixed and bare keys."""
    groups: dict[str, dict[str, str]] = {}
    for key in keys:
        name = key[len(COMFY_LORA_PREFIX):] if key.startswith(COMFY_LORA_PREFIX) else key
        for suffix, part in ((".lora_A.weight", "A"), (".lora_B.weight", "B"), (".alpha", "alpha")):
            if name.endswith(suffix):
                groups.setdefault(name[: -len(suffix)], {})[part] = key
                break
        else:
            raise LoRAError(
                f"{path}: key {key!r} is not a LoRA weight; ltxic reads peft-style "
                "'diffusion_model.<module>.lora_A.weight' / '.lora_B.weight' (and optional '.alpha') keys"
            )
    for name, parts in groups.items():
        if "A" not in parts or "B" not in parts:
            raise LoRAError(f"{path}: module {name!r} has {sorted(parts)} but needs both lora_A and lora_B")
    return groups


def load_lora(model: nn.Module, path: str | os.PathLike[str], strength: float = 1.0) -> list[str]:
    """Load a LoRA file into ``model`` (injecting adapters where needed); returns the adapted module names.

    Checks that the file was trained for this base architecture (``base_model_arch_hash``) and that every
    tensor fits its module, and raises ``LoRAError`` naming the file, the field and the fix otherwise.
    Adapters already in the model but absent from the file are removed, so the result is base + this file.
    """
    path = Path(path)
    keys, meta = read_safetensors_header(path)
    if not keys:
        raise LoRAError(f"{path}: the file holds no tensors; it is not a LoRA")
    want = meta.get("base_model_arch_hash")
    have = architecture_hash(model)
    if want is not None and want != have:
        ours = architecture(model)
        try:
            theirs = json.loads(meta.get("base_model_arch", "{}"))
        except json.JSONDecodeError:
            theirs = {}
        diff = {k: (theirs.get(k), ours.get(k)) for k in ours if theirs.get(k) != ours.get(k)}
        raise LoRAError(
            f"{path}: this LoRA was trained for base model {meta.get('base_model', '?')!r} "
            f"(base_model_arch_hash {want}), but the model you load it into has architecture {have} "
            f"({_base_model_name(model)!r}); differing fields (lora file, model): {diff}. "
            "Load the base model it was trained for, or retrain the LoRA on this one."
        )
    groups = _group_keys(path, keys)
    modules = dict(model.named_modules())
    unknown = [n for n in groups if n not in modules]
    if unknown:
        raise LoRAError(
            f"{path}: {len(unknown)} LoRA modules do not exist in this model (first: {unknown[:3]}); "
            "the LoRA belongs to another model. Load it into the base model it was trained for."
        )
    try:
        file_rank, file_alpha = int(meta["lora_rank"]), float(meta["lora_alpha"])
        baked = meta.get("lora_scale_in_weights") == "alpha/rank"
    except (KeyError, ValueError):
        file_rank, file_alpha, baked = -1, 0.0, False

    with safe_open(str(path), framework="pt", device="cpu") as fh:
        tensors = {k: fh.get_tensor(k) for k in keys}
    plans: list[tuple[str, torch.Tensor, torch.Tensor, int, float]] = []
    for name, parts in groups.items():
        mod = modules[name]
        if not isinstance(mod, (nn.Linear, LoRALinear)) or (isinstance(mod, nn.Linear) and type(mod) is not nn.Linear):
            raise LoRAError(f"{path}: LoRA module {name!r} targets a {type(mod).__name__}, not a linear layer")
        a, b = tensors[parts["A"]], tensors[parts["B"]]
        r = a.shape[0]
        if a.ndim != 2 or b.ndim != 2 or a.shape[1] != mod.in_features or b.shape != (mod.out_features, r):
            raise LoRAError(
                f"{path}: shape mismatch at {name!r}: lora_A {tuple(a.shape)} / lora_B {tuple(b.shape)} do not fit a "
                f"linear of in={mod.in_features}, out={mod.out_features} (expected lora_A (r, {mod.in_features}), "
                f"lora_B ({mod.out_features}, r)). The LoRA was trained for another base model."
            )
        if "alpha" in parts:  # foreign file: ComfyUI's rule, scale = alpha / r, kept as the module's alpha
            rank, alpha = r, float(tensors[parts["alpha"]].item())
        elif baked and r == file_rank:
            rank, alpha = file_rank, file_alpha
            b = b.float() * (rank / alpha)
        else:
            rank, alpha = r, float(r)
        plans.append((name, a, b, rank, alpha))

    for name, mod in list(lora_modules(model).items()):
        if name not in groups:
            _unwrap(model, name, mod)
    modules = dict(model.named_modules())
    model.requires_grad_(False)
    for name, a, b, rank, alpha in plans:
        mod = modules[name]
        if not isinstance(mod, LoRALinear):
            mod = LoRALinear(mod, rank, alpha, generator=torch.Generator())  # A is overwritten below
            _set_submodule(model, name, mod)
        dt, dev = mod.lora_A.dtype, mod.weight.device
        mod.rank, mod.alpha, mod.strength = rank, alpha, float(strength)
        mod.lora_A = nn.Parameter(a.to(device=dev, dtype=dt).clone())
        mod.lora_B = nn.Parameter(b.to(device=dev, dtype=dt).clone())
    if not hasattr(model, "ltxic_lora_config") and file_rank > 0:
        try:
            targets = tuple(json.loads(meta.get("lora_target_modules", "[]"))) or tuple(groups)
            model.ltxic_lora_config = LoRAConfig(rank=file_rank, alpha=file_alpha,
                                                 dropout=float(meta.get("lora_dropout", 0.0)), target_modules=targets)
        except (LoRAError, ValueError):
            pass
    return [p[0] for p in plans]


def lora_config_dict(config: LoRAConfig) -> dict[str, Any]:
    """``LoRAConfig`` as a plain dict (for YAML/JSON logs)."""
    d = asdict(config)
    d["target_modules"] = list(d["target_modules"])
    return d


__all__ = [
    "COMFY_LORA_PREFIX",
    "DEFAULT_TARGET_MODULES",
    "LoRAConfig",
    "LoRAError",
    "LoRALinear",
    "architecture_hash",
    "inject_lora",
    "load_lora",
    "lora_config_dict",
    "lora_modules",
    "lora_parameters",
    "lora_state_dict",
    "merge_lora",
    "read_lora_metadata",
    "save_lora",
    "set_lora_strength",
]
