"""Toy identity embedders: EER arithmetic, shipped weights on held-out identities, missing-weights error, training."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ltxic.identity.toy_embedders import DEFAULT_DIR, FACE_FILE, HELD_OUT_SEED_BASE, RECORD_FILE, SAMPLE_RATE, VOICE_FILE, equal_error_rate, face_pool, load_embedders, train_embedders, voice_pool

SHIPPED = (DEFAULT_DIR / FACE_FILE).is_file() and (DEFAULT_DIR / VOICE_FILE).is_file()
needs_shipped = pytest.mark.skipif(not SHIPPED, reason="shipped toy embedders absent (python -m ltxic.identity.toy_embedders)")
# identities far from both the training seeds (0..N-1) and the ones the record's evaluation used
TEST_SEEDS = [HELD_OUT_SEED_BASE + 500_000 + i for i in range(6)]


def test_eer_perfect_separation_is_zero():
    eer, thr = equal_error_rate([0.9, 0.8, 0.95, 0.7], [0.1, 0.2, 0.3, -0.4])
    assert eer == 0.0
    assert 0.3 < thr <= 0.7


def test_eer_identical_distributions_is_one_half():
    scores = np.linspace(-1, 1, 101)
    eer, _ = equal_error_rate(scores, scores)
    assert eer == pytest.approx(0.5, abs=0.01)


def test_eer_hand_computed_partial_overlap():
    # at threshold 0.6: one same pair (0.2) rejected of 4, one different pair (0.65) accepted of 4
    eer, thr = equal_error_rate([0.2, 0.6, 0.7, 0.9], [0.1, 0.3, 0.4, 0.65])
    assert eer == pytest.approx(0.25)
    assert thr == pytest.approx(0.6)
    # fully reversed scores: everything is an error
    assert equal_error_rate([0.0, 0.1], [0.8, 0.9])[0] == pytest.approx(1.0)


def test_eer_rejects_empty_and_nan():
    with pytest.raises(ValueError, match="at least one"):
        equal_error_rate([], [0.1])
    with pytest.raises(ValueError, match="finite"):
        equal_error_rate([0.5, float("nan")], [0.1])


def test_missing_weights_name_the_command(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"python -m ltxic\.identity\.toy_embedders") as err:
        load_embedders(tmp_path)
    assert FACE_FILE in str(err.value)


@needs_shipped
def test_shipped_record_meets_issue_targets():
    record = json.loads((DEFAULT_DIR / RECORD_FILE).read_text())
    assert record["held_out"]["face"]["eer_frame_vs_frame"] < 0.05
    assert record["held_out"]["voice"]["eer_window_vs_window"] < 0.05
    total = (DEFAULT_DIR / FACE_FILE).stat().st_size + (DEFAULT_DIR / VOICE_FILE).stat().st_size
    assert total < 2_000_000
    assert record["steps"] > 0 and record["command"].startswith("python -m ltxic.identity.toy_embedders")


def _pairs(emb: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sim = emb @ emb.T
    iu = np.triu_indices(len(emb), 1)
    same = (labels[:, None] == labels[None])[iu]
    return sim[iu][same], sim[iu][~same]


@needs_shipped
def test_shipped_face_embedder_separates_held_out_identities():
    emb = load_embedders()
    crops, _ = face_pool(TEST_SEEDS, clips=3, per_clip=1, seed=42, workers=1)  # 3 random scenes each
    labels = np.repeat(np.arange(len(TEST_SEEDS)), 3)
    z = emb.face.embed_crops(crops.reshape(-1, *crops.shape[2:]))
    assert np.allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-4)
    same, diff = _pairs(z, labels)
    assert same.mean() > diff.mean() + 0.5, (same.mean(), diff.mean())
    assert equal_error_rate(same, diff)[0] < 0.15


@needs_shipped
def test_shipped_voice_embedder_separates_held_out_identities():
    emb = load_embedders()
    utts = voice_pool(TEST_SEEDS, n=3, seconds=1.0, seed=42, workers=1).astype(np.float32)
    labels = np.repeat(np.arange(len(TEST_SEEDS)), 3)
    z = emb.voice.embed_waves(utts.reshape(-1, SAMPLE_RATE))
    same, diff = _pairs(z, labels)
    assert same.mean() > diff.mean() + 0.5, (same.mean(), diff.mean())
    assert equal_error_rate(same, diff)[0] < 0.15


@pytest.mark.slow
def test_training_writes_loadable_weights_and_record(tmp_path):
    record = train_embedders(tmp_path, steps=3, identities=6, clips=4, device="cpu", seed=0, workers=1, eval_identities=3)
    assert (tmp_path / RECORD_FILE).is_file() and record["steps"] == 3
    assert set(record["held_out"]) >= {"face", "voice"}
    assert 0.0 <= record["held_out"]["face"]["eer_frame_vs_frame"] <= 1.0
    emb = load_embedders(tmp_path)
    assert emb.face.embed_crops(np.zeros((2, 48, 48, 3), np.uint8)).shape == (2, 64)
    # fine-tuning one embedder keeps the other exactly
    ft = tmp_path / "ft"
    ft_record = train_embedders(ft, steps=2, identities=6, clips=4, device="cpu", seed=1, workers=1, eval_identities=3,
                                init=tmp_path, only="voice")
    # the fine-tune's record keeps the record of the weights it started from (the first run had none)
    assert "init_record" not in record
    assert ft_record["init_record"] == json.loads((tmp_path / RECORD_FILE).read_text())
    assert json.loads((ft / RECORD_FILE).read_text())["init_record"]["steps"] == 3
    tuned = load_embedders(ft)
    for a, b in zip(emb.face.state_dict().values(), tuned.face.state_dict().values()):
        assert np.array_equal(a.numpy(), b.numpy())
    assert any(not np.array_equal(a.numpy(), b.numpy()) for a, b in zip(emb.voice.state_dict().values(), tuned.voice.state_dict().values()))


@needs_shipped
def test_shipped_embedders_see_identity_through_the_codecs():
    """Generated clips reach the metric only through the tiny codecs' decoders: the shipped embedders (trained
    with codec views) still tell held-out identities apart on codec round trips, against the clean reference."""
    from ltxic.identity.toy_views import CodecViews

    emb = load_embedders()
    codec = CodecViews(DEFAULT_DIR)
    crops, _ = face_pool(TEST_SEEDS, clips=2, per_clip=1, seed=42, workers=1, codec=codec)
    assert crops.shape == (len(TEST_SEEDS), 4, 48, 48, 3)  # clean views first, then their round trips
    assert not np.array_equal(crops[:, :2], crops[:, 2:])
    clean = emb.face.embed_crops(crops[:, :2].reshape(-1, 48, 48, 3))
    through = emb.face.embed_crops(crops[:, 2:].reshape(-1, 48, 48, 3))
    labels = np.repeat(np.arange(len(TEST_SEEDS)), 2)
    sim = through @ clean.T
    same = labels[:, None] == labels[None]
    assert sim[same].mean() > sim[~same].mean() + 0.5, (sim[same].mean(), sim[~same].mean())

    utts = voice_pool(TEST_SEEDS[:4], n=2, seconds=1.0, seed=42, workers=1, codec=codec).astype(np.float32)
    assert utts.shape == (4, 4, SAMPLE_RATE)
    clean_v = emb.voice.embed_waves(utts[:, :2].reshape(-1, SAMPLE_RATE))
    through_v = emb.voice.embed_waves(utts[:, 2:].reshape(-1, SAMPLE_RATE))
    labels = np.repeat(np.arange(4), 2)
    sim = through_v @ clean_v.T
    same = labels[:, None] == labels[None]
    assert sim[same].mean() > sim[~same].mean() + 0.4, (sim[same].mean(), sim[~same].mean())
