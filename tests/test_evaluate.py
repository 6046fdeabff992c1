"""ltxic.identity.evaluate: held-out captions, clip embeddings, summaries; and the CPU recipe's identity claim."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ltxic.identity.evaluate import (
    Condition,
    clip_face_embedding,
    heldout_captions,
    identity_eval,
    mean_pairwise_cosine,
    summarize,
)
from ltxic.toy import Scene, make_identity, render_clip
from ltxic.identity.toy_embedders import HELD_OUT_SEED_BASE, load_embedders
from ltxic.toy.scene import ACTIONS

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data_samples"


pytestmark = pytest.mark.usefixtures("one_thread")


def test_heldout_captions_avoid_training_combinations():
    train = [Scene("blue", "bright", "close-up", a).caption for a in ACTIONS] + ["not a toy caption"]
    picked = heldout_captions(train, 5, seed=0)
    assert len(picked) == len(set(picked)) == 5
    scenes = [Scene.from_caption(c) for c in picked]
    assert all((s.background, s.light) != ("blue", "bright") for s in scenes)
    assert {s.action for s in scenes} == set(ACTIONS)  # round-robin over actions
    assert heldout_captions(train, 5, seed=0) == picked  # deterministic


def test_heldout_captions_refuses_too_many():
    with pytest.raises(ValueError, match="unseen"):
        heldout_captions([], 10_000)


def test_mean_pairwise_cosine():
    assert mean_pairwise_cosine([np.array([1.0, 0.0]), np.array([0.0, 2.0]), None]) == pytest.approx(0.0)
    assert mean_pairwise_cosine([np.array([1.0, 1.0]), np.array([2.0, 2.0]), np.array([-1.0, -1.0])]) == pytest.approx(-1 / 3)
    assert mean_pairwise_cosine([np.array([1.0, 0.0]), None]) is None


def test_clip_face_embedding_separates_identities():
    e = load_embedders()
    a, b = make_identity(HELD_OUT_SEED_BASE + 700_001), make_identity(HELD_OUT_SEED_BASE + 700_002)
    a1 = clip_face_embedding(render_clip(a, Scene("teal", "bright", "close-up", "nods"), seed=1, frames=9).frames, e)
    a2 = clip_face_embedding(render_clip(a, Scene("grey", "dim", "medium shot", "speaks"), seed=2, frames=9).frames, e)
    b1 = clip_face_embedding(render_clip(b, Scene("teal", "bright", "close-up", "nods"), seed=1, frames=9).frames, e)
    assert np.linalg.norm(a1) == pytest.approx(1.0, abs=1e-5)
    assert float(a1 @ a2) > float(a1 @ b1) + 0.3
    assert clip_face_embedding(np.full((3, 64, 64, 3), 90, np.uint8), e) is None  # no face


def test_summarize_groups_and_skips_missing():
    rows = [
        {"identity": "x", "condition": "c1", "face_similarity": 0.2, "voice_similarity": None, "face_found": 1.0,
         "background_match": True, "motion_match": False},
        {"identity": "x", "condition": "c1", "face_similarity": 0.4, "voice_similarity": 0.5, "face_found": 0.5,
         "background_match": True, "motion_match": True},
        {"identity": "x", "condition": "c2", "face_similarity": float("nan"), "voice_similarity": None, "face_found": 0.0,
         "background_match": None, "motion_match": None},
    ]
    out = summarize(rows)
    assert [r["condition"] for r in out] == ["c1", "c2"]
    assert out[0]["face_similarity"] == pytest.approx(0.3)
    assert out[0]["voice_similarity"] == pytest.approx(0.5)
    assert out[0]["motion_match"] == pytest.approx(0.5) and out[0]["samples"] == 2
    assert out[1]["face_similarity"] is None and out[1]["background_match"] is None


def test_identity_eval_needs_a_lora_for_lora_conditions():
    with pytest.raises(ValueError, match="needs a LoRA"):
        identity_eval(None, None, dataset=DATA / "dataset.json", identity="dex", reference_image=DATA / "refs" / "dex.jpg",
                      reference_audio=DATA / "voice" / "dex_0.wav", prompts=["A person nods in a bright grey room, close-up."],
                      seeds=[0], conditions=[Condition("lora", 1.0, True)])


# The acceptance claim of issues 5/6: the CPU recipe's LoRA carries a held-out identity's face and voice into
# the prompt's scene, where the base for the same prompts and seeds draws whoever its noise makes. The base given the
# same references without the LoRA is checked on the scene only: the earlier 16x base pasted the reference portrait
# (grey room) over it; the shipped 8x base, trained with other shots of a person appended, keeps the room, and the
# LoRA must keep it as well. Full numbers: benchmarks/identity_eval.py, whose results
# are in benchmarks/results/identity_eval.json. "Far above": measured +0.88 face / +0.54 voice here (2 prompts x 2
# seeds), +0.66 / +0.64 over identity_eval's 16 clips (the shipped 8x kit's 300-step recipe, 2026-12-06).
ACCEPTANCE_STEPS = 300
ACCEPTANCE_MARGIN = 0.25


@pytest.mark.slow  # about 2 minutes on 2 idle cores: caching 42 clips, 300 steps, 12 sampled clips
def test_cpu_recipe_lora_beats_base_on_held_out_identity(tmp_path):
    from ltxic.training.config import example_config, load_config
    from ltxic.data.dataset import load_dataset
    from ltxic.identity.evaluate import DEFAULT_CONDITIONS, REFERENCE_GUIDANCE_SCALE, summarize
    from ltxic.sampling.generate import GenerateConfig
    from ltxic.sampling.guidance import Guidance
    from ltxic.training.trainer import train

    cfg = load_config(example_config("tiny_cpu"))
    cfg.optimization.steps = ACCEPTANCE_STEPS
    cfg.validation.interval = 0
    cfg.output.dir = tmp_path / "run"
    cfg.output.checkpoint_interval = ACCEPTANCE_STEPS
    result = train(cfg, progress=False)
    assert result.step == ACCEPTANCE_STEPS and result.lora_path.is_file()

    train_captions = [e.caption for e in load_dataset(DATA / "dataset.json").entries if e.split == "train"]
    prompts = heldout_captions(train_captions, 4, seed=1)[:2]
    conditions = [c for c in DEFAULT_CONDITIONS if c.name in ("base_text_only", "base_with_references", "lora_strength_1")]
    rows = identity_eval(
        None, result.lora_path, dataset=DATA / "dataset.json", identity="dex", reference_image=DATA / "refs" / "dex.jpg",
        reference_audio=DATA / "voice" / "dex_0.wav", prompts=prompts, seeds=[0, 1], conditions=conditions,
        config=GenerateConfig(steps=10, guidance=Guidance.tiny().with_overrides(reference_video=REFERENCE_GUIDANCE_SCALE)),
    )
    summary = {r["condition"]: r for r in summarize(rows, ("condition",))}
    base, lora, pasted = summary["base_text_only"], summary["lora_strength_1"], summary["base_with_references"]
    print({k: (round(v["face_similarity"], 3), round(v["voice_similarity"], 3), v["background_match"]) for k, v in summary.items()})
    for key in ("face_similarity", "voice_similarity"):
        assert lora[key] > base[key] + ACCEPTANCE_MARGIN, f"LoRA {key} {lora[key]:.3f} vs base {base[key]:.3f} on held-out dex"
    assert lora["background_match"] >= max(0.75, pasted["background_match"]), "the LoRA should keep the prompt's room"
