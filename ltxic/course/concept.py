"""The concept drawn: what an identity IC-LoRA's transformer sees, laid out from a real training batch.

:func:`token_layout` builds one batch the way ``ltxic.train`` does (the training cache of the dataset, encoded by the
kit's codecs and text encoder, collated, then noised and assembled by the strategy's own
``training_step_inputs``) and reads back, per stream, each token's role, timestep and place on the time axis.
:func:`plot_token_layout` draws it: the target tokens at the sampled noise level, the reference face appended to the
video stream and the reference voice appended to the audio stream, both clean (timestep 0), the voice at negative
time. :func:`identity_recipes_markdown` compares this recipe with ID-LoRA's first-frame recipe, with the token counts
of the same batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

SOURCES = {
    "LTX-2 (paper)": "https://arxiv.org/abs/2601.03233",
    "LTX-2 (code: ltx-core, ltx-trainer, ltx-pipelines)": "https://github.com/Lightricks/LTX-2",
    "IC-LoRA (In-Context LoRA for Diffusion Transformers)": "https://arxiv.org/abs/2410.23775",
    "ID-LoRA (paper)": "https://arxiv.org/abs/2603.10256",
    "ID-LoRA (project page)": "https://id-lora.github.io/",
}


@dataclass(frozen=True)
class StreamLayout:
    """One stream of the batch's first example: target tokens first, then the appended reference tokens."""

    name: str
    n_target: int
    n_reference: int
    timesteps: np.ndarray  # (n_target + n_reference,) the per-token timestep the transformer gets
    start_s: np.ndarray  # (n_target + n_reference,) each token's start on the RoPE time axis, in seconds
    end_s: np.ndarray
    in_loss: np.ndarray  # (n_target + n_reference,) bool: the token's prediction counts in the loss

    @property
    def sigma(self) -> float:
        return float(self.timesteps[0])


@dataclass(frozen=True)
class TokenLayout:
    """The token layout of a real training batch (its first example) and where it came from."""

    strategy: str
    video: StreamLayout
    audio: StreamLayout | None
    caption: str
    identity: str
    video_latent_shape: tuple[int, ...]  # (B, C, F, H, W) of the target
    reference_latent_shape: tuple[int, ...] | None  # (B, C, 1, h, w) of the reference portrait
    reference_audio_latent_shape: tuple[int, ...] | None  # (B, C, T, M) of the reference voice


def _stream(name: str, modality: Any, mask: torch.Tensor) -> StreamLayout:
    positions = modality.positions[0, 0].detach().float().cpu().numpy()  # (T, 2): the time axis, [start, end)
    in_loss = mask[0].detach().cpu().numpy().astype(bool)
    n_target = int(in_loss.sum())
    return StreamLayout(name=name, n_target=n_target, n_reference=int(in_loss.size - n_target),
                        timesteps=modality.timesteps[0].detach().float().cpu().numpy(),
                        start_s=positions[:, 0], end_s=positions[:, 1], in_loss=in_loss)


def token_layout(config: Any, *, index: int = 0, sigma: float = 0.7, seed: int = 0, device: str = "cpu") -> TokenLayout:
    """The layout of a batch of ``config``'s dataset (a training config or its path), built as the trainer builds it.

    The cache is the run's own (``dataset.cache_dir``, else ``output.dir/cache``): after ``ltxic.train`` it is
    reused as is, otherwise it is encoded here first. ``index`` picks the cached entry, ``sigma`` the noise level
    of the target tokens (training draws it per step; the layout does not depend on it).
    """
    from ltxic.models.kit import Models
    from ltxic.models.strategies import collate, get_strategy
    from ltxic.training.cache import build_cache, load_cached
    from ltxic.training.config import TrainingConfig, load_config
    from ltxic.training.trainer import sample_from_cache

    cfg = config if isinstance(config, TrainingConfig) else load_config(config)
    models = Models.from_config(cfg.model, device=device, seed=cfg.optimization.seed)
    strategy = get_strategy(cfg.training_strategy.name, cfg.training_strategy.reference_downscale_factor,
                            video_geometry=models.video_codec.geometry, audio_geometry=models.audio_codec.geometry)
    report = build_cache(cfg.dataset.dataset_file, cfg.dataset.cache_dir or Path(cfg.output.dir) / "cache",
                         video_codec=models.video_codec, audio_codec=models.audio_codec, text_encoder=models.text_encoder,
                         buckets=cfg.dataset.resolution_buckets,
                         reference_downscale_factor=cfg.training_strategy.reference_downscale_factor, device=device,
                         progress=False)
    entry = report.entries[index]
    batch = collate([sample_from_cache(*load_cached(entry))])
    generator = torch.Generator().manual_seed(seed)
    noise = (torch.randn(batch.video_latent.shape, generator=generator),
             None if batch.audio_latent is None else torch.randn(batch.audio_latent.shape, generator=generator))
    with torch.no_grad():
        video, audio, _, (mask_v, mask_a) = strategy.training_step_inputs(batch, torch.full((1,), sigma), noise)
    return TokenLayout(
        strategy=strategy.name, video=_stream("video", video, mask_v),
        audio=None if audio is None else _stream("audio", audio, mask_a),
        caption=entry.caption, identity=entry.identity, video_latent_shape=tuple(batch.video_latent.shape),
        reference_latent_shape=None if batch.ref_video_latent is None else tuple(batch.ref_video_latent.shape),
        reference_audio_latent_shape=None if batch.ref_audio_latent is None else tuple(batch.ref_audio_latent.shape),
    )


# ----------------------------------------------------------------------------------------------- the figure
_TARGET, _REFERENCE = "C1", "C0"


def _role_labels(layout: TokenLayout) -> dict[str, tuple[str, str]]:
    labels = {"video": ("target video", "reference face")}
    if layout.audio is not None:
        labels["audio"] = ("target audio", "reference voice")
    return labels


def plot_token_layout(layout: TokenLayout) -> Any:
    """Two panels: each stream's token sequence as the transformer gets it (target tokens, then the appended
    reference, coloured by role, with their counts and timesteps), and every token on the time axis of the positional
    encoding, where the face enters at the clip's start and the voice before it, at negative time."""
    from ltxic.io.figures import new_figure

    fig = new_figure(figsize=(11, 6))
    ax_seq, ax_time = fig.subplots(2, 1, gridspec_kw={"height_ratios": [1, 1.3]})
    streams = [s for s in (layout.video, layout.audio) if s is not None]
    labels = _role_labels(layout)
    for row, stream in enumerate(reversed(streams)):
        target, reference = labels[stream.name]
        total = stream.n_target + stream.n_reference
        ax_seq.barh(row, stream.n_target / total, left=0, color=_TARGET, height=0.6)
        ax_seq.barh(row, stream.n_reference / total, left=stream.n_target / total, color=_REFERENCE, height=0.6)
        ax_seq.text(0.01, row, f"{target}: {stream.n_target} tokens, timestep {stream.sigma:.2f} (noised, in the loss)",
                    va="center", fontsize=9, color="white", fontweight="bold")
        ax_seq.text(0.99, row + 0.42, f"{reference}: {stream.n_reference} tokens, timestep 0 (clean, outside the loss)",
                    va="bottom", ha="right", fontsize=9, color=_REFERENCE)
    ax_seq.set(yticks=range(len(streams)), yticklabels=[f"{s.name} stream" for s in reversed(streams)], xlim=(0, 1),
               ylim=(-0.5, len(streams) - 0.1), xlabel="place in the stream's token sequence (share of its tokens)",
               title=f"One training batch as the transformer sees it ({layout.strategy}; identity {layout.identity!r})")

    for row, stream in enumerate(reversed(streams)):
        target, reference = labels[stream.name]
        for is_ref, color, label in ((False, _TARGET, target), (True, _REFERENCE, reference)):
            pick = ~stream.in_loss if is_ref else stream.in_loss
            starts = np.unique(stream.start_s[pick])
            ax_time.scatter(starts, np.full(starts.shape, row + (0.15 if is_ref else -0.15)), s=14, color=color,
                            label=f"{label} ({int(pick.sum())} tokens)")
    ax_time.axvline(0.0, color="grey", lw=1, ls="--")
    if layout.audio is not None and layout.audio.n_reference:
        voice = layout.audio.start_s[~layout.audio.in_loss]
        ax_time.annotate("the voice enters here: clean tokens at negative time,\nbefore the clip starts",
                         xy=(float(voice.mean()), 0.15), xytext=(float(voice.min()), 0.55), fontsize=8,
                         arrowprops={"arrowstyle": "->", "color": _REFERENCE})
    if layout.video.n_reference:
        face_row = len(streams) - 1
        ax_time.annotate("the face enters here: one clean frame of tokens\nat the clip's start, beside the target",
                         xy=(0.0, face_row + 0.15), xytext=(0.15 * float(layout.video.end_s.max()), face_row + 0.45),
                         fontsize=8, arrowprops={"arrowstyle": "->", "color": _REFERENCE})
    ax_time.set(yticks=range(len(streams)), yticklabels=[f"{s.name} stream" for s in reversed(streams)],
                ylim=(-0.6, len(streams) - 0.2), xlabel="time position of each token in the positional encoding (s)")
    ax_time.legend(loc="lower right", fontsize=8, ncol=2)
    fig.tight_layout()
    return fig


def identity_recipes_markdown(layout: TokenLayout) -> str:
    """ltxic's recipe (the portrait as IC tokens) beside ID-LoRA's (the portrait as the clean first frame), as a
    markdown table; the token counts are this batch's."""
    video = layout.video
    frame_tokens = int(np.prod(layout.video_latent_shape[3:]))
    voice = layout.audio.n_reference if layout.audio is not None else 0
    rows = [
        ("where the face enters", f"{video.n_reference} extra tokens appended to the video stream",
         f"the target's first latent frame ({frame_tokens} of its {video.n_target} tokens) is the portrait, clean"),
        ("its timestep and place in time", "0, on the portrait's own grid at the clip's start",
         "0, at the clip's start: it *is* the opening frame"),
        ("what it fixes", "who appears; pose, framing and background still follow the prompt",
         "who appears, and also the opening shot: the clip starts from the portrait's pose and background"),
        ("in training", "always present, outside the loss",
         "the first frame clean for most examples (`first_frame_conditioning_p` 0.9 in its configs), outside the loss"),
        ("where the voice enters", f"{voice} clean tokens appended to the audio stream at negative time (same in both)",
         "the same: appended at negative time"),
        ("cost", f"{video.n_reference} more video tokens per step", "no extra video tokens"),
        ("in ComfyUI", "`LTXAddVideoICLoRAGuide` (the IC-LoRA guide) and `LTXVReferenceAudio`",
         "image-to-video conditioning on the first frame and `LTXVReferenceAudio`"),
    ]
    lines = ["| | reference as IC tokens (ltxic) | first frame (ID-LoRA) |", "| --- | --- | --- |"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines)


def sources_markdown() -> str:
    """The primary sources, as a markdown list of links."""
    return "\n".join(f"- [{name}]({url})" for name, url in SOURCES.items())


__all__ = ["SOURCES", "StreamLayout", "TokenLayout", "identity_recipes_markdown", "plot_token_layout",
           "sources_markdown", "token_layout"]
