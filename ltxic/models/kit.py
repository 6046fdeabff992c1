"""The model kit: one bundle (transformer, video and audio codecs, text encoder, optional upsampler) with two
constructors, the embedded tiny kit and LTX-2.3 22B from its official files. The trainer, the sampler, the cache and
the metrics use only this interface, so they never ask which scale they run at."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

PathLike = str | os.PathLike[str]


class Models:
    """The model kit: a transformer, a video codec, an audio codec and a text encoder (plus, for two stages, an
    upsampler and the distilled LoRA). One bundle, two constructors:

    * :meth:`tiny`: the embedded tiny kit (``data_samples/tiny``, see :func:`ltxic.models.tiny.load_tiny_assets`);
    * :meth:`ltx23`: LTX-2.3 22B from its official files (:mod:`ltxic.models.ltx23`), or :meth:`from_comfyui` from a
      ComfyUI tree.

    The sampler, the trainer and the cache use only this interface. ``transformer`` may be given as a function that
    builds it: it is then built on first use, so the encoders can run and be freed (:meth:`release_encoders`) before
    the transformer takes their memory.
    """

    def __init__(
        self,
        transformer: torch.nn.Module | Callable[[], torch.nn.Module],
        video_codec: Any,
        audio_codec: Any,
        text_encoder: Any,
        *,
        upsampler: torch.nn.Module | Callable[[], torch.nn.Module] | None = None,
        distilled_lora: PathLike | None = None,
        device: str | torch.device | None = None,
        name: str = "custom",
    ) -> None:
        self._transformer = transformer if isinstance(transformer, torch.nn.Module) else None
        self._build_transformer = None if isinstance(transformer, torch.nn.Module) else transformer
        built = upsampler is None or isinstance(upsampler, torch.nn.Module)
        self._upsampler = upsampler if built else None
        self._build_upsampler = None if built else upsampler
        self.video_codec = video_codec
        self.audio_codec = audio_codec
        self.text_encoder = text_encoder
        self.distilled_lora = Path(distilled_lora) if distilled_lora is not None else None
        self._device = torch.device(device) if device is not None else None
        self.name = name

    @classmethod
    def tiny(cls, dir: PathLike | None = None, device: str | torch.device = "cpu") -> Models:
        """The embedded tiny kit (pretrained on the toy identity world; runs on a CPU)."""
        from ltxic.models.tiny import load_tiny_assets

        assets = load_tiny_assets(dir, device=device).freeze()
        return cls(assets.transformer, assets.video_codec, assets.audio_codec, assets.text_encoder, device=device, name="tiny")

    @classmethod
    def ltx23(
        cls,
        checkpoint: PathLike,
        gemma_root: PathLike | None = None,
        *,
        spatial_upsampler: PathLike | None = None,
        distilled_lora: PathLike | None = None,
        device: str | torch.device | None = None,
        dtype: torch.dtype = torch.bfloat16,
        fp8: bool = False,
        offload_text_encoder: bool = False,
    ) -> Models:
        """LTX-2.3 22B from the official checkpoint and the Gemma 3 folder; every part is built when first used.

        ``fp8`` stores the transformer's block weights in fp8 and ``offload_text_encoder`` streams Gemma's layers
        from host memory (24 GB cards). The checkpoint (version, parts) and the Gemma folder (layout) are checked at
        once; the weights load when first used.
        """
        from ltxic.models import ltx23
        from ltxic.models.devices import device_for

        config = ltx23.check_checkpoint(checkpoint)
        dev = torch.device(device) if device is not None else device_for()
        if gemma_root is not None:
            text = ltx23.TextEncoder(gemma_root, checkpoint, device=dev, dtype=dtype, offload=offload_text_encoder)
        else:
            text = _MissingTextEncoder()

        def transformer(loras: Sequence[tuple[PathLike, float]] = ()) -> torch.nn.Module:
            return ltx23.load_transformer(checkpoint, device=dev, dtype=dtype, fp8=fp8, loras=loras)

        def upsampler() -> torch.nn.Module:
            return ltx23.load_upsampler(spatial_upsampler, device=dev, dtype=dtype)

        return cls(
            transformer, ltx23.VideoCodec(checkpoint, device=dev, dtype=dtype),
            ltx23.AudioCodec(checkpoint, config, device=dev, dtype=dtype), text,
            upsampler=upsampler if spatial_upsampler is not None else None, distilled_lora=distilled_lora,
            device=dev, name="ltx-2.3-22b",
        )

    @classmethod
    def from_comfyui(cls, root: PathLike, **kwargs: Any) -> Models:
        """:meth:`ltx23` with the files at their places in a ComfyUI tree (``ltxic download --root ROOT``).

        ``checkpoint``, ``gemma_root``, ``spatial_upsampler`` and ``distilled_lora`` override single files; the
        rest of ``kwargs`` go to :meth:`ltx23`.
        """
        from ltxic.models.ltx23 import LTX23Files

        names = ("checkpoint", "gemma_root", "spatial_upsampler", "distilled_lora")
        files = LTX23Files.from_comfyui(root, **{k: kwargs.pop(k) for k in names if k in kwargs})
        return cls.ltx23(files.checkpoint, files.gemma_root, spatial_upsampler=files.spatial_upsampler,
                         distilled_lora=files.distilled_lora, **kwargs)

    @classmethod
    def from_config(cls, model: Any, *, device: str | torch.device | None = None, seed: int = 0) -> Models:
        """The kit a training config's ``model`` section (:class:`ltxic.training.config.ModelConfig`) names.

        ``preset: ltx-2.3-22b``: LTX-2.3 from ``comfyui_root`` (the tree ``ltxic download`` fills) and/or
        ``checkpoint`` + ``text_encoder`` (the Gemma folder). ``preset: tiny``: the embedded kit, whose transformer
        ``checkpoint`` and ``text_encoder`` replace when given (a random base, with a warning, when the shipped
        weights are absent).
        """
        import warnings

        from ltxic.models.devices import device_for
        from ltxic.models.transformer import CheckpointError

        dev = torch.device(device) if device is not None else device_for()
        dtype = torch.float32 if model.dtype == "float32" else torch.bfloat16
        if model.preset == "ltx-2.3-22b" or getattr(model, "comfyui_root", None) is not None:
            if model.comfyui_root is not None:
                return cls.from_comfyui(model.comfyui_root, checkpoint=model.checkpoint, gemma_root=model.text_encoder,
                                        device=dev, dtype=dtype, fp8=model.fp8,
                                        offload_text_encoder=model.text_encoder_offload)
            if model.checkpoint is None:
                raise CheckpointError(
                    "model.checkpoint: LTX-2.3 trains from its official files; set model.comfyui_root to the ComfyUI "
                    "tree that `ltxic download --root DIR` filled, or model.checkpoint and model.text_encoder"
                )
            return cls.ltx23(model.checkpoint, model.text_encoder, device=dev, dtype=dtype, fp8=model.fp8,
                             offload_text_encoder=model.text_encoder_offload)

        from ltxic.models.codecs import AudioCodec, VideoCodec
        from ltxic.models.transformer import build_transformer, default_tiny_dir, load_pretrained_tiny, load_transformer, quantize_fp8
        from ltxic.models.text_encoder import TextEncoder
        from ltxic.models.tiny import AUDIO_CODEC_FILE, TEXT_ENCODER_FILE, VIDEO_CODEC_FILE

        root = default_tiny_dir()
        if model.checkpoint is not None:
            transformer = load_transformer(model.checkpoint, dtype=dtype)
        elif (root / "transformer.safetensors").exists():
            transformer = load_pretrained_tiny(root).to(dtype)
        else:
            warnings.warn(f"model.checkpoint is null and {root} holds no tiny weights: training on a randomly "
                          "initialized 'tiny' base", stacklevel=2)
            transformer = build_transformer("tiny", seed=seed, dtype=dtype)
        if model.fp8:
            transformer = quantize_fp8(transformer)
        if not (root / VIDEO_CODEC_FILE).exists():
            raise CheckpointError(f"{root}: the tiny codecs are missing; create them with `ltxic toy pretrain --out {root}`")
        parts = (VideoCodec.load(root / VIDEO_CODEC_FILE, device=dev), AudioCodec.load(root / AUDIO_CODEC_FILE, device=dev),
                 TextEncoder.load(model.text_encoder or root / TEXT_ENCODER_FILE, device=dev))
        for part in parts:
            part.eval().requires_grad_(False)
        return cls(transformer.eval().requires_grad_(False), *parts, device=dev, name="tiny")

    @property
    def transformer(self) -> torch.nn.Module:
        if self._transformer is None:
            if self._build_transformer is None:
                raise RuntimeError("the transformer was released; build a new Models")
            self._transformer = self._build_transformer()
        return self._transformer

    @property
    def upsampler(self) -> torch.nn.Module | None:
        """The spatial upsampler, built on first use when the kit was made with a builder (:meth:`release_upsampler`)."""
        if self._upsampler is None and self._build_upsampler is not None:
            self._upsampler = self._build_upsampler()
        return self._upsampler

    @property
    def has_upsampler(self) -> bool:
        """Whether the kit has (or can build) a spatial upsampler, without building it."""
        return self._upsampler is not None or self._build_upsampler is not None

    def release_upsampler(self) -> None:
        """Drop the upsampler where the kit builds it on demand (it is rebuilt on next use), so it does not sit on
        the GPU beside the transformer."""
        if self._build_upsampler is not None and self._upsampler is not None:
            self._upsampler = None
            _free_cuda()

    @property
    def device(self) -> torch.device:
        if self._device is None:
            self._device = next(self.transformer.parameters()).device
        return self._device

    def release_encoders(self) -> None:
        """Free what only encoding needs (Gemma, the VAE encoders) where the kit builds its parts on demand."""
        for release in (getattr(self.text_encoder, "release", None), getattr(self.video_codec, "release_encoder", None),
                        getattr(self.audio_codec, "release_encoder", None)):
            if release is not None:
                release()

    @property
    def can_fuse_loras(self) -> bool:
        """Whether :meth:`transformer_with_loras` can build a second transformer with LoRAs fused in."""
        return self._build_transformer is not None

    def transformer_with_loras(self, loras: Sequence[tuple[PathLike, float]]) -> torch.nn.Module:
        """A fresh base transformer with ``loras`` (path, strength) fused into its weights while loading.

        The two-stage pipeline's stage 2 uses it for the distilled LoRA, as ltx-pipelines do; release the
        kit's own transformer first (:meth:`release_transformer`) where memory is short.
        """
        if self._build_transformer is None:
            raise RuntimeError("this kit holds a built transformer and cannot build another; load LoRAs as adapters (load_lora)")
        return self._build_transformer(loras)

    def release_decoders(self) -> None:
        """Free the VAE decoders and the vocoder where the kit builds its parts on demand."""
        for codec in (self.video_codec, self.audio_codec):
            release = getattr(codec, "release", None)
            if release is not None:
                release()

    def release_transformer(self) -> None:
        """Drop the transformer (it is rebuilt on next use when the kit was made with a builder)."""
        if self._build_transformer is not None:
            self._transformer = None
            _free_cuda()


def _free_cuda() -> None:
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class _MissingTextEncoder:
    """Stands in when no Gemma folder was given: cached captions need none; new prompts do."""

    fingerprint = "none"

    def encode(self, texts: Sequence[str]) -> Any:
        from ltxic.models.transformer import CheckpointError

        raise CheckpointError(
            "encoding a prompt needs the Gemma 3 folder: pass gemma_root= (ltxic sample --gemma DIR) or use a ComfyUI "
            "tree holding it; fetch it with `ltxic download --only gemma-3-12b-hf`"
        )

    def encode_each(self, texts: Sequence[str], *, release: bool = False) -> Any:
        return self.encode(texts)


__all__ = ["Models"]
