"""ltxic.evaluate: held-out captions, clip embeddings, summaries; and the CPU recipe's identity claim."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ltxic.evaluate import (
    Condition,
    clip_face_embedding,
    heldout_captions,
    identity_eval,
    mean_pairwise_cosine,
    summarize,
)
from ltxic.toy import Scene, make_identity, render_clip
from ltxic.toy.embedders import HELD_OUT_SEED_BASE, load_embedders
from ltxic.toy.scene import ACTIONS

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data_samples"


@pytest.fixture(scope="module", autouse=True)
def two_threads():
    """Two threads as on the CI runners (the recipe's timing assumes them); restored after this module."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


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
