"""The learned face locator: it finds faces in codec-decoded toy frames, where the rule-based one is lost."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ltxic.identity.toy_embedders import DEFAULT_DIR, load_embedders
from ltxic.identity.toy_views import CodecViews
from ltxic.identity.toy_face_locator import (
    HELD_OUT_SEED_BASE,
    LOCATOR_FILE,
    RECORD_FILE,
    LocatorConfig,
    build_pool,
    check,
    load_face_locator,
)
from ltxic.identity.toy_face_locator import main as locator_main

SHIPPED = (DEFAULT_DIR / LOCATOR_FILE).is_file() and (DEFAULT_DIR / "video_codec.safetensors").is_file()
needs_shipped = pytest.mark.skipif(not SHIPPED, reason="shipped face locator or tiny codecs absent (ltxic toy locator)")
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def held_out_pool() -> tuple[np.ndarray, np.ndarray]:
    """Clean frames and their codec round trips of identities neither the locator nor its record's check saw."""
    cfg = LocatorConfig(frames_per_clip=3, workers=1)
    seeds = [HELD_OUT_SEED_BASE + 50_000 + i for i in range(12)]
    return build_pool(cfg, seeds, 77_000, CodecViews(DEFAULT_DIR), "render test clips")


def _views(pool: tuple[np.ndarray, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    frames, targets = pool
    f, t = frames.reshape(-1, 2, 3, *frames.shape[1:]), targets.reshape(-1, 2, 3, 5)
    return {name: (f[:, v].reshape(-1, *frames.shape[1:]), t[:, v].reshape(-1, 5)) for v, name in enumerate(["clean", "decoded"])}


@needs_shipped
def test_learned_locator_finds_faces_where_the_rule_based_one_is_lost(held_out_pool) -> None:
    from ltxic.toy.locate import locate_faces

    locator = load_face_locator()
    views = _views(held_out_pool)
    learned = {k: check(locator.locate, *v) for k, v in views.items()}
    rules = {k: check(locate_faces, *v) for k, v in views.items()}
    assert learned["clean"]["hit_rate_iou_0.5"] >= 0.95 and learned["clean"]["mean_iou"] >= 0.85, learned
    assert learned["decoded"]["hit_rate_iou_0.5"] >= 0.9 and learned["decoded"]["mean_iou"] >= 0.8, learned
    # why it exists: on decoded frames the eyes and mouth the rules look for are blurred. The rules found 0.22 of these
    # faces through the first 16x decoder, 0.67 through its fine-tuned one, 0.86 through the shipped 8x codec
    assert rules["decoded"]["hit_rate_iou_0.5"] < 0.9 < learned["decoded"]["hit_rate_iou_0.5"] - 0.05, (rules, learned)
    assert locator.locate(np.full((2, 128, 128, 3), 90, np.uint8)) == [None, None]  # an empty room has no face


@needs_shipped
def test_face_metric_sees_identity_in_decoded_clips() -> None:
    """A real clip's codec round trip matches its own portrait, not another identity's (the rule-based locator
    boxed the shirt on such frames and scored about 0.3 for the right person)."""
    from ltxic.io.media import read_video
    from ltxic.identity.metrics import face_similarity

    frames = read_video(DEFAULT_DIR.parent / "clips" / "bo_000.mp4")[:25]
    decoded = CodecViews(DEFAULT_DIR).frames(frames[None])[0]
    assert load_embedders().locator is not None
    own = np.nanmean(face_similarity(decoded, DEFAULT_DIR.parent / "refs" / "bo.jpg"))
    other = np.nanmean(face_similarity(decoded, DEFAULT_DIR.parent / "refs" / "ned.jpg"))
    assert own > 0.6 and own > other + 0.4, (own, other)


@needs_shipped
def test_shipped_record_says_what_was_measured() -> None:
    record = json.loads((DEFAULT_DIR / RECORD_FILE).read_text())
    decoded = record["held_out"]["codec_round_trip"]
    assert decoded["learned"]["hit_rate_iou_0.5"] >= 0.95 > decoded["rule_based"]["hit_rate_iou_0.5"]
    assert record["held_out"]["clean"]["learned"]["false_alarms"] == 0


def test_training_cli_writes_loadable_weights_and_record(tmp_path) -> None:
    out = tmp_path / "loc"
    record = locator_main(["--out", str(out), "--clips", "4", "--steps", "3", "--batch", "8", "--held-out-clips", "2",
                           "--workers", "1", "--device", "cpu"])
    assert (out / LOCATOR_FILE).is_file() and json.loads((out / RECORD_FILE).read_text())["config"]["steps"] == 3
    assert set(record["held_out"]) == {"clean"} and set(record["held_out"]["clean"]) == {"learned", "rule_based"}
    boxes = load_face_locator(out).locate(np.zeros((3, 128, 128, 3), np.uint8))
    assert len(boxes) == 3 and all(b is None or len(b) == 4 for b in boxes)


@needs_shipped
def test_motion_reading_uses_the_learned_locator() -> None:
    """With the learned boxes ``motion_direction`` reads every toy action of the dataset's clips (the rule-based
    boxes read 70% of the head turns)."""
    from ltxic.io.media import read_video
    from ltxic.identity.metrics import expected_motion, motion_direction

    root = DEFAULT_DIR.parent
    truth = json.loads((root / "truth.json").read_text())["clips"]
    hits = [motion_direction(read_video(root / path)) == expected_motion(clip["scene"]["action"])
            for path, clip in sorted(truth.items())[::2]]
    assert np.mean(hits) >= 0.95, hits
