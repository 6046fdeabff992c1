"""Measure what the issues claim: an identity IC-LoRA against its base, and the base's text-only behaviour.

* :func:`heldout_captions` picks toy captions that no training entry used (scene and action combinations the
  LoRA never saw).
* :func:`identity_eval` generates clips for each :class:`Condition` (base text-only, base with the references
  appended, the LoRA at strengths 1 and 0) over prompts x seeds and scores face / voice similarity to the
  reference and caption adherence (:mod:`ltxic.identity.metrics`); :func:`summarize` averages them per condition.
* :func:`seed_spread` is the base's text-only picture: caption adherence and how much the face changes from
  seed to seed (mean pairwise cosine of per-clip face embeddings), against :func:`real_identity_similarity`,
  the same statistic on real clips of one identity.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ltxic.identity.select import identity_models
from ltxic.identity.metrics import Embedders, caption_adherence, identity_scores

PathLike = str | os.PathLike[str]

__all__ = [
    "Condition", "DEFAULT_CONDITIONS", "REFERENCE_GUIDANCE_SCALE", "clip_face_embedding", "conditions_table", "heldout_captions",
    "identity_eval", "mean_pairwise_cosine", "plot_conditions", "real_identity_similarity", "seed_spread", "summarize",
]


@dataclass(frozen=True)
class Condition:
    """One way of sampling: ``lora_strength`` None = the base (no LoRA loaded); ``references`` = append the
    reference face and voice (strategy ``audio_ref_only_ic``) or sample from text only;
    ``reference_guidance_scale`` None = the generate config's; a number sets both streams' scales."""

    name: str
    lora_strength: float | None
    references: bool
    reference_guidance_scale: float | None = None


DEFAULT_CONDITIONS = (
    Condition("base_text_only", None, False),
    Condition("base_with_references", None, True),
    Condition("lora_strength_1", 1.0, True),
    Condition("lora_strength_0", 0.0, True),
    Condition("lora_strength_1_no_reference_guidance", 1.0, True, 0.0),
)
# ComfyUI's LTXVReferenceAudio default: the identity LoRA needs it (see benchmarks/results/identity_eval.json)
REFERENCE_GUIDANCE_SCALE = 3.0


def heldout_captions(train_captions: Sequence[str], n: int, seed: int = 0) -> list[str]:
    """``n`` toy captions whose (background, light, action) combination no training caption has.

    Chosen round-robin over actions and backgrounds (so every action and colour appears when ``n`` allows),
    shuffled with ``seed``; raises if fewer than ``n`` unseen combinations exist.
    """
    from ltxic.toy.scene import ACTIONS, BACKGROUNDS, FRAMINGS, LIGHTS, Scene

    seen = set()
    for caption in train_captions:
        try:
            s = Scene.from_caption(caption)
        except ValueError:
            continue
        seen.add((s.background, s.light, s.action))
    rng = np.random.default_rng(seed)
    unseen = [c for c in itertools.product(BACKGROUNDS, LIGHTS, ACTIONS) if c not in seen]
    if len(unseen) < n:
        raise ValueError(f"heldout_captions: only {len(unseen)} unseen (background, light, action) combinations, asked for {n}")
    order = [unseen[i] for i in rng.permutation(len(unseen))]
    picked: list[tuple[str, str, str]] = []
    used_actions: set[str] = set()
    used_bgs: set[str] = set()
    while len(picked) < n:
        # prefer a new action, then a new background; reset the sets once every value has appeared
        if len(used_actions) == len(ACTIONS):
            used_actions = set()
        if len(used_bgs) == len(BACKGROUNDS):
            used_bgs = set()
        rest = [c for c in order if c not in picked]
        best = max(rest, key=lambda c: (c[2] not in used_actions, c[0] not in used_bgs))
        picked.append(best)
        used_actions.add(best[2])
        used_bgs.add(best[0])
    return [Scene(background=b, light=li, framing=FRAMINGS[i % 2], action=a).caption for i, (b, li, a) in enumerate(picked)]


def clip_face_embedding(frames: np.ndarray, embedders: Embedders | None = None) -> np.ndarray | None:
    """The unit-norm mean face embedding of a clip's frames where a face was found; None if none was."""
    e = identity_models(embedders)
    emb, found = e.face_frames(np.asarray(frames))
    found = np.asarray(found, bool)
    if not found.any():
        return None
    m = np.asarray(emb)[found].mean(0)
    return m / (np.linalg.norm(m) + 1e-12)


def mean_pairwise_cosine(embeddings: Sequence[np.ndarray | None]) -> float | None:
    """Mean cosine over all pairs of the given vectors (None entries skipped); None with fewer than two."""
    vs = [np.asarray(v, np.float64) / np.linalg.norm(v) for v in embeddings if v is not None and np.linalg.norm(v) > 0]
    if len(vs) < 2:
        return None
    return float(np.mean([a @ b for a, b in itertools.combinations(vs, 2)]))


def _mean(values: Sequence[Any]) -> float | None:
    vals = [float(v) for v in values if v is not None and np.isfinite(float(v))]
    return float(np.mean(vals)) if vals else None


def _std(values: Sequence[Any]) -> float | None:
    vals = [float(v) for v in values if v is not None and np.isfinite(float(v))]
    return float(np.std(vals)) if vals else None


def _consent(dataset: PathLike, identity: str) -> Any:
    from ltxic.sampling.references import consent_for

    return consent_for(dataset, identity)


def identity_eval(
    base_dir: PathLike | None, lora: PathLike | None, *, dataset: PathLike, identity: str, reference_image: PathLike,
    reference_audio: PathLike, prompts: Sequence[str], seeds: Sequence[int], conditions: Sequence[Condition] = DEFAULT_CONDITIONS,
    config: Any = None, embedders: Embedders | None = None,
) -> list[dict]:
    """One row per (condition, prompt, seed): face and voice similarity to the references, lip sync, caption
    adherence (toy embedders only), and the embedders used (``embedders``: a kind or models; ``"auto"`` chooses by
    ``dataset``'s synthetic marker).

    Each condition gets a freshly loaded base (``base_dir``, default ``data_samples/tiny``), so a loaded LoRA
    never leaks into a base condition. Rows carry the video latent checksum-free; the generated latents of the
    conditions are compared by the caller via ``row["_video_latent"]`` (dropped before saving).
    """
    from ltxic.sampling.generate import GenerateConfig, generate
    from ltxic.sampling.guidance import Guidance
    from ltxic.models.kit import Models

    e = identity_models(embedders, dataset=dataset)
    consent = _consent(dataset, identity)
    base_cfg = config if config is not None else GenerateConfig()
    rows: list[dict] = []
    for cond in conditions:
        if cond.lora_strength is not None and lora is None:
            raise ValueError(f"condition {cond.name!r} needs a LoRA file (lora=None was given)")
        models = Models.tiny(base_dir)
        for seed in seeds:
            over = {"seed": seed, "strength": cond.lora_strength if cond.lora_strength is not None else 1.0}
            if cond.reference_guidance_scale is not None:
                over["guidance"] = (base_cfg.guidance or Guidance.for_kit(models.name)).with_overrides(
                    reference_video=cond.reference_guidance_scale, reference_audio=cond.reference_guidance_scale)
            cfg = replace(base_cfg, **over)
            for prompt in prompts:
                # one prompt per call: generate() seeds prompt i with config.seed + i
                gen = generate(
                    models, [prompt], lora=lora if cond.lora_strength is not None else None,
                    reference_image=reference_image if cond.references else None,
                    reference_audio=reference_audio if cond.references else None,
                    consent=consent if cond.references else None, identity=identity, config=cfg, progress=False,
                )[0]
                scores = identity_scores((gen.frames, gen.waveform, gen.sample_rate, gen.fps), reference_image,
                                         reference_audio, embedders=e)
                adh = caption_adherence(gen.frames, prompt) if e.kind == "toy" else dict.fromkeys(
                    ("background_match", "motion_match", "motion", "background"))
                rows.append({
                    "condition": cond.name, "identity": identity, "prompt": prompt, "seed": seed,
                    "face_similarity": scores["face_similarity"], "voice_similarity": scores["voice_similarity"],
                    "face_found": scores["face_found"], "lip_sync_offset_ms": scores["lip_sync_offset_ms"],
                    "lip_sync_correlation": scores["lip_sync_correlation"], "embedders": scores["embedders"],
                    "background_match": adh["background_match"],
                    "motion_match": adh["motion_match"], "motion": adh["motion"], "background": adh["background"],
                    "_video_latent": gen.video_latent, "_audio_latent": gen.audio_latent, "_frames": gen.frames,
                })
    return rows


def summarize(rows: Sequence[dict], by: Sequence[str] = ("identity", "condition")) -> list[dict]:
    """Mean face / voice similarity, face-found rate and caption-match rates per group, in first-seen order."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in by), []).append(r)
    out = []
    for key, rs in groups.items():
        face = [r["face_similarity"] for r in rs]
        out.append({
            **dict(zip(by, key)),
            "face_similarity": _mean(face),
            "face_similarity_std": _std(face),
            "voice_similarity": _mean([r.get("voice_similarity") for r in rs]),
            "face_found": _mean([r.get("face_found") for r in rs]),
            "lip_sync_correlation": _mean([r.get("lip_sync_correlation") for r in rs]),
            "background_match": _mean([r.get("background_match") for r in rs]),
            "motion_match": _mean([r.get("motion_match") for r in rs]),
            "samples": len(rs),
            **({"embedders": rs[0]["embedders"]} if "embedders" in rs[0] else {}),
        })
    return out


def seed_spread(
    base_dir: PathLike | None, captions: Sequence[str], seeds: Sequence[int], *, config: Any = None,
    embedders: Embedders | None = None,
) -> dict:
    """The base from text only: caption match rates, and the mean pairwise face similarity between the seeds
    of each caption (identity consistency across seeds; low = the face changes with the seed)."""
    from ltxic.sampling.generate import GenerateConfig, generate
    from ltxic.models.kit import Models

    e = identity_models(embedders)
    models = Models.tiny(base_dir)
    base_cfg = config if config is not None else GenerateConfig()
    bg, motion, per_caption, rows, all_embs = [], [], [], [], []
    for caption in captions:
        embs = []
        for seed in seeds:
            cfg = replace(base_cfg, seed=seed)
            gen = generate(models, [caption], config=cfg, progress=False)[0]
            adh = caption_adherence(gen.frames, caption)
            bg.append(adh["background_match"])
            motion.append(adh["motion_match"])
            embs.append(clip_face_embedding(gen.frames, e))
            rows.append({"caption": caption, "seed": seed, "background": adh["background"], "motion": adh["motion"],
                         "background_match": adh["background_match"], "motion_match": adh["motion_match"],
                         "face_found": embs[-1] is not None})
        per_caption.append(mean_pairwise_cosine(embs))
        all_embs.append(embs)
    # pairs of clips of different captions: a face that is the same everywhere scores as high here as between seeds
    across = [float(a @ b) for (i, ea), (j, eb) in itertools.combinations(enumerate(all_embs), 2)
              for a in ea for b in eb if a is not None and b is not None]
    return {
        "background_match": _mean(bg), "motion_match": _mean(motion),
        "between_seed_face_similarity": _mean(per_caption), "per_caption_between_seed": per_caption,
        "between_caption_face_similarity": _mean(across),
        "captions": len(captions), "seeds": list(seeds), "rows": rows, "embedders": e.label(),
    }


def real_identity_similarity(dataset: PathLike, embedders: Embedders | None = None) -> dict:
    """Mean pairwise face similarity of real clips of the same identity, and of clips of different identities:
    the levels that "same person" and "different person" reach with these embedders."""
    from ltxic.data.dataset import load_dataset
    from ltxic.io.media import read_video

    ds = load_dataset(dataset)
    e = identity_models(embedders, dataset=ds)
    root = Path(dataset).parent
    by_id: dict[str, list[np.ndarray]] = {}
    for entry in ds.entries:
        emb = clip_face_embedding(read_video(root / entry.video_path), e)
        if emb is not None:
            by_id.setdefault(entry.identity, []).append(emb)
    same = {k: mean_pairwise_cosine(v) for k, v in by_id.items()}
    means = {k: np.mean(v, 0) for k, v in by_id.items()}
    diff = []
    for a, b in itertools.combinations(sorted(by_id), 2):
        diff += [float(x @ y) for x in by_id[a] for y in by_id[b]]
    return {"same_identity": _mean(list(same.values())), "per_identity": same,
            "different_identity": _mean(diff), "identities": sorted(means), "embedders": e.label()}


# ----------------------------------------------------------------------------------------------- the result, shown
#: How the course names the conditions to a reader.
CONDITION_LABELS = {
    "base_text_only": "base, text only",
    "base_with_references": "base + references",
    "lora_strength_0": "LoRA at strength 0",
    "lora_strength_1": "IC-LoRA",
    "lora_strength_1_no_reference_guidance": "IC-LoRA, no reference guidance",
}
_SCORES = (("face_similarity", "face"), ("voice_similarity", "voice"), ("background_match", "scene"))


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}"


def conditions_table(rows: Sequence[dict]) -> str:
    """A markdown table of :func:`summarize` per condition: face and voice similarity to the reference, the share
    of clips in the caption's room, and the number of clips averaged."""
    lines = ["| condition | face similarity | voice similarity | scene kept | clips |", "| --- | ---: | ---: | ---: | ---: |"]
    for r in summarize(rows, ("condition",)):
        lines.append(f"| {CONDITION_LABELS.get(r['condition'], r['condition'])} | {_fmt(r['face_similarity'])} | "
                     f"{_fmt(r['voice_similarity'])} | {_fmt(r['background_match'])} | {r['samples']} |")
    return "\n".join(lines)


def plot_conditions(rows: Sequence[dict], reference_image: Any, n_frames: int = 4, title: str = ""):
    """The comparison in one picture: the reference, then per condition ``n_frames`` frames of its first clip
    (first prompt and seed) and its scores averaged over every clip of that condition. ``rows`` are
    :func:`identity_eval`'s (with their ``_frames``)."""
    from ltxic.io.figures import new_figure
    from ltxic.io.media import read_image

    reference = read_image(reference_image) if isinstance(reference_image, (str, os.PathLike)) else np.asarray(reference_image)
    summary = {r["condition"]: r for r in summarize(rows, ("condition",))}
    first = {}
    for r in rows:
        first.setdefault(r["condition"], r)
    if any("_frames" not in r for r in first.values()):
        raise ValueError("plot_conditions: rows need their '_frames' (identity_eval's rows, before saving)")
    fig = new_figure(figsize=(1.7 * (n_frames + 1) + 1.6, 1.9 * len(first) + 0.5), layout="constrained")
    axes = fig.subplots(len(first), n_frames + 1, squeeze=False)
    for i, (name, row) in enumerate(first.items()):
        frames = np.asarray(row["_frames"])
        picks = np.unique(np.linspace(0, len(frames) - 1, n_frames).round().astype(int))
        ax = axes[i, 0]
        ax.imshow(reference)
        s = summary[name]
        ax.set_ylabel(CONDITION_LABELS.get(name, name), fontsize=9)
        ax.set_title("reference" if i == 0 else "", fontsize=9)
        for j, idx in enumerate(picks):
            axes[i, j + 1].imshow(frames[idx])
            if i == 0:
                axes[i, j + 1].set_title(f"frame {idx}", fontsize=8)
        scores = "\n".join(f"{label} {_fmt(s[key])}" for key, label in _SCORES)
        axes[i, -1].text(1.06, 0.5, f"{scores}\n({s['samples']} clips)", transform=axes[i, -1].transAxes, va="center", fontsize=9)
        for ax in axes[i]:
            ax.set_xticks([])
            ax.set_yticks([])
    if title:
        fig.suptitle(title[:100], fontsize=10)
    return fig
