"""What the lessons show across training: face travel (the prompted motion, measured), frame strips over steps,
validation clips by step, the drift verdict, and the 8x tiny video codec."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ltxic.identity.drift_check import drift_summary, lowest_window_frames
from ltxic.identity.metrics import DriftCurve
from ltxic.identity.motion import MOVES_AT_LEAST, STILL_BELOW, expects_travel, face_travel, motion_table
from ltxic.models.codecs import VideoCodec, read_module_file, video_codec_config
from ltxic.models.tiny_pretrain import _windows
from ltxic.sampling.strips import even_picks, frame_strips
from ltxic.toy import Scene, make_identity, render_clip
from ltxic.training.checkpoints import validation_clips

SAMPLES_TINY = Path(__file__).resolve().parent.parent / "data_samples" / "tiny"


def _clip(action: str, framing: str, seed: int = 3):
    return render_clip(make_identity(5), Scene("blue", "bright", framing, action, True), seed=seed, frames=25)


def test_face_travel_separates_a_walk_from_standing_still() -> None:
    walk, still = _clip("walks across", "medium shot"), _clip("speaks", "close-up")
    w, s = face_travel(walk.frames), face_travel(still.frames)
    assert w.found == 1.0 and s.found == 1.0
    assert w.travel >= MOVES_AT_LEAST  # left to right: positive
    assert s.distance < STILL_BELOW
    # the travel follows the renderer's true face centre
    truth = walk.truth.face_centre[:, 0] / walk.frames.shape[2]
    assert w.travel == pytest.approx(truth[-6:].mean() - truth[:6].mean(), abs=0.05)
    # mirrored frames walk the other way by the same distance
    back = face_travel(walk.frames[:, :, ::-1].copy())
    assert back.travel == pytest.approx(-w.travel, abs=0.03)


def test_motion_table_judges_each_caption() -> None:
    walk, still, turn = _clip("walks across", "medium shot"), _clip("nods", "close-up"), _clip("turns head left", "close-up")
    rows = motion_table([("walk", walk.frames, walk.caption), ("nod", still.frames, still.caption),
                         ("turn", turn.frames, turn.caption), ("still frames, walk caption", still.frames, walk.caption)])
    by = {r["clip"]: r for r in rows}
    assert by["walk"]["asks"] == "moves" and by["walk"]["meets"] is True
    assert by["nod"]["asks"] == "stays" and by["nod"]["meets"] is True
    assert by["turn"]["asks"] is None and by["turn"]["meets"] is None  # a turn moves features, not the face box
    assert by["still frames, walk caption"]["meets"] is False
    assert expects_travel("a cat on a mat") is None


def test_face_travel_without_a_face_is_nan() -> None:
    room = np.full((9, 128, 128, 3), (62, 92, 172), np.uint8)
    t = face_travel(room)
    assert t.found == 0.0 and np.isnan(t.travel)
    assert motion_table({"empty": (room, _clip("walks across", "medium shot").caption)})[0]["meets"] is None


def test_frame_strips_rows_and_columns() -> None:
    a, b = _clip("speaks", "close-up").frames, _clip("walks across", "medium shot").frames
    fig = frame_strips({"base": a, "step 100": b}, 24.0, n_frames=4, reference=a[0], title="t")
    assert len(fig.axes) == 2 * 5
    assert [ax.get_title() for ax in fig.axes[:5]] == ["reference", "0.00 s", "0.33 s", "0.67 s", "1.00 s"]
    assert fig.axes[5].get_ylabel() == "step 100"
    assert even_picks(25, 4) == [0, 8, 16, 24]
    with pytest.raises(ValueError, match="outside"):
        frame_strips({"a": a[:5]}, 24.0, picks=[0, 9])


def test_validation_clips_by_step(tmp_path) -> None:
    for step, names in ((300, ["000_b.mp4", "001_a.mp4"]), (100, ["000_a.mp4"]), (200, [])):
        folder = tmp_path / "validation" / f"step_{step:06d}"
        folder.mkdir(parents=True)
        for n in names:
            (folder / n).write_bytes(b"x")
    (tmp_path / "validation" / "notes.txt").write_text("-")
    found = validation_clips(tmp_path)
    assert list(found) == [100, 300] and [p.name for p in found[300]] == ["000_b.mp4", "001_a.mp4"]
    assert validation_clips(tmp_path / "missing") == {}


def _curve(per_frame: np.ndarray, fps: float = 24.0, window_s: float = 0.5) -> DriftCurve:
    win = int(round(window_s * fps))
    starts = np.arange(0, len(per_frame) - win + 1, win // 2)
    sims = np.array([per_frame[s : s + win].mean() for s in starts], np.float32)
    return DriftCurve(((starts + win / 2) / fps).astype(np.float32), sims, per_frame, window_s)


def test_drift_summary_reads_change_against_noise() -> None:
    rng = np.random.default_rng(0)
    steady = _curve(0.7 + 0.02 * rng.standard_normal(120))
    fading = _curve(np.linspace(0.8, 0.4, 120) + 0.02 * rng.standard_normal(120))
    s, f = drift_summary(steady, 24.0), drift_summary(fading, 24.0)
    assert not s["measurable"] and f["measurable"]
    assert f["change"] == pytest.approx(-0.36, abs=0.05) and f["lowest_s"] > 4.0
    assert "drift is measurable" in f["text"] and "5.0 s clip" in f["text"]
    short = drift_summary(_curve(np.linspace(0.8, 0.4, 24), window_s=1.0), 24.0)  # one window
    assert not short["measurable"] and "fewer than two windows" in short["text"]
    slight = drift_summary(_curve(np.linspace(0.78, 0.80, 120)), 24.0)  # steady frames: tiny noise, tiny change
    assert slight["change"] == pytest.approx(0.02, abs=0.005) and not slight["measurable"]
    three = drift_summary(_curve(np.linspace(0.8, 0.4, 24)), 24.0)  # a clear fall, but only three windows
    assert not three["measurable"] and "too short or too steady" in three["text"]
    picks = lowest_window_frames(fading, 24.0, n_frames=4)
    assert len(picks) == 4 and picks[-1] == 119 and picks[-1] - picks[0] == 11


def test_codec_windows_and_8x_geometry() -> None:
    pool = torch.arange(3 * 9).reshape(3, 9, 1, 1, 1).expand(3, 9, 2, 2, 3).to(torch.uint8)
    idx = torch.tensor([2, 0])
    w = _windows(pool, idx, 5, torch.Generator().manual_seed(0))
    assert w.shape == (2, 5, 2, 2, 3)
    first = w[:, :, 0, 0, 0].long()
    assert torch.equal(first[:, 1:] - first[:, :-1], torch.ones(2, 4, dtype=torch.long))  # consecutive frames
    assert first[0, 0] // 9 == 2 and first[1, 0] // 9 == 0  # from the clips asked for
    assert torch.equal(_windows(pool, idx, 9, torch.Generator()), pool[idx])
    codec = VideoCodec(video_codec_config(32, spatial=8))
    assert codec.geometry.spatial == 8 and codec.latent_channels == 32
    grows = [b[1]["multiplier"] for b in codec.config["vae"]["encoder_blocks"] if b[0].startswith("compress")]
    assert grows == [2, 2, 1]  # 32 -> 64 -> 128, then capped


def test_16x_codec_widths_cap_at_128_and_the_shipped_layout_is_the_8x_one() -> None:
    """A wider latent keeps the 16x codec's 8x8 grid with its encoder capped at 128 features; the shipped codec is the
    8x one at 16 channels, as stored in the file the kit loads."""
    _, meta = read_module_file(SAMPLES_TINY / "video_codec.safetensors", VideoCodec.kind)
    assert json.loads(meta["config"]) == video_codec_config(16, spatial=8)
    wide = VideoCodec(video_codec_config(32))
    grows = [b[1]["multiplier"] for b in wide.config["vae"]["encoder_blocks"] if b[0].startswith("compress")]
    assert grows == [2, 2, 1] and wide.geometry.spatial == 16 and wide.latent_channels == 32
    assert sum(p.numel() for p in wide.parameters()) * 2 / 1e6 < 11.5  # MB as float16 weights


def test_stage_1_continues_a_trained_codec(tmp_path) -> None:
    """``--video-codec-from`` starts stage 1 from that codec's weights (encoder and decoder train on), recorded."""
    from ltxic.models.tiny_pretrain import main

    out = tmp_path / "tiny"
    record = main(["--smoke", "--out", str(out), "--video-codec-from", str(SAMPLES_TINY), "--audio-codec-from",
                   str(SAMPLES_TINY), "--latent-noise", "0.02", "--steps", "0"])
    assert record["video_codec_from"]["folder"] == str(SAMPLES_TINY)
    assert record["config"]["latent_noise"] == 0.02
    scratch = main(["--smoke", "--out", str(tmp_path / "scratch"), "--audio-codec-from", str(SAMPLES_TINY), "--steps", "0"])
    # the shipped codec starts where a fresh one cannot: far above it before the first step
    assert record["codec_eval_before"]["video_psnr_db"] > scratch["codec_eval_before"]["video_psnr_db"] + 5


def test_first_frame_conditioning_gives_clean_tokens_at_timestep_0_outside_the_video_loss() -> None:
    """``flow_matching_loss(first_frame=...)``: the chosen clips' first latent frame enters clean at timestep 0 and
    its prediction does not count; the other clips and the audio are untouched."""
    from ltxic.models.tiny_flow import TokenLayout, flow_matching_loss
    from ltxic.models.tiny_pretrain import toy_vocabulary
    from ltxic.models.text_encoder import TextEncoder

    torch.manual_seed(0)
    zv, nv = torch.randn(2, 4, 3, 2, 2), torch.randn(2, 4, 3, 2, 2)
    za, na = torch.randn(2, 8, 5, 4), torch.randn(2, 8, 5, 4)
    text = TextEncoder(vocab=toy_vocabulary())
    tokens, mask = text.tokenize(["A person speaks in a dim green room, close-up."] * 2)
    layout = TokenLayout(torch.zeros(1, 3, 12, 2), torch.zeros(1, 1, 5, 2), tokens, mask)
    seen = {}

    def model(video, audio, _perturbations):  # predicts the input latent: the loss then reads what went in
        seen["video"] = video
        return video.latent, audio.latent

    sigma = torch.tensor([0.7, 0.7])
    plain = flow_matching_loss(model, text, layout, zv, za, tokens, mask, sigma, nv, na)
    first = flow_matching_loss(model, text, layout, zv, za, tokens, mask, sigma, nv, na, torch.tensor([True, False]))
    v0 = zv.permute(0, 2, 3, 4, 1).reshape(2, 12, 4)
    x = seen["video"].latent
    assert torch.equal(x[0, :4], v0[0, :4]) and (seen["video"].timesteps[0, :4] == 0).all()
    assert (seen["video"].timesteps[0, 4:] == 0.7).all() and (seen["video"].timesteps[1] == 0.7).all()
    target = nv.permute(0, 2, 3, 4, 1).reshape(2, 12, 4) - v0
    per_token = (x - target).square().mean(-1)
    keep = torch.ones(2, 12)
    keep[0, :4] = 0
    assert torch.allclose(first[0], (per_token * keep).sum() / keep.sum())
    assert not torch.allclose(first[0], plain[0]) and torch.equal(first[1], plain[1])


def test_an_appended_frame_enters_clean_at_timestep_0_at_its_frames_positions_and_outside_the_loss() -> None:
    """``flow_matching_loss(append=(latent, k))``: one latent frame per clip goes after the video tokens, clean, at
    timestep 0 and at the positions of latent frame ``k`` (keyframe or IC-reference layout); only the target's
    tokens are scored, so a model that ignores the extra tokens has the plain loss."""
    from ltxic.models.tiny_flow import TokenLayout, flow_matching_loss
    from ltxic.models.tiny_pretrain import toy_vocabulary
    from ltxic.models.text_encoder import TextEncoder

    torch.manual_seed(0)
    zv, nv = torch.randn(2, 4, 3, 2, 2), torch.randn(2, 4, 3, 2, 2)
    za, na = torch.randn(2, 8, 5, 4), torch.randn(2, 8, 5, 4)
    text = TextEncoder(vocab=toy_vocabulary())
    tokens, mask = text.tokenize(["A person walks across in a dim teal room, medium shot."] * 2)
    positions = torch.arange(12.0)[None, None, :, None].expand(1, 3, 12, 2).clone()
    layout = TokenLayout(positions, torch.zeros(1, 1, 5, 2), tokens, mask)
    seen = {}

    def model(video, audio, _perturbations):
        seen["video"] = video
        return video.latent, audio.latent

    sigma = torch.tensor([0.6, 0.6])
    other = torch.randn(2, 4, 1, 2, 2)
    plain = flow_matching_loss(model, text, layout, zv, za, tokens, mask, sigma, nv, na)
    extra = flow_matching_loss(model, text, layout, zv, za, tokens, mask, sigma, nv, na, append=(other, 2))
    v = seen["video"]
    assert v.latent.shape[1] == 16 and torch.equal(v.latent[:, 12:], other.permute(0, 2, 3, 4, 1).reshape(2, 4, 4))
    assert (v.timesteps[:, 12:] == 0).all() and (v.timesteps[:, :12] == 0.6).all()
    assert torch.equal(v.positions[0, :, 12:], positions[0, :, 8:12])  # latent frame 2 holds tokens 8..11
    assert torch.allclose(extra[0], plain[0]) and torch.equal(extra[1], plain[1])


def test_the_face_mask_covers_the_rendered_face_and_weighs_the_loss() -> None:
    """``face_token_mask`` marks the latent cells the clip's face boxes touch (frame 0 alone, then each latent frame's
    pixel frames), and ``flow_matching_loss(weight=mask)`` is the loss on those tokens alone."""
    from ltxic.models.tiny_flow import TokenLayout, face_token_mask, flow_matching_loss
    from ltxic.models.tiny_pretrain import EVAL_SEED_BASE, PretrainConfig, render_clips, toy_vocabulary
    from ltxic.models.text_encoder import TextEncoder

    boxes = np.zeros((17, 4), int)
    boxes[0] = (0, 0, 9, 9)  # frame 0: the top-left 2x2 cells of an 8-pixel grid
    boxes[5] = (56, 56, 64, 64)  # latent frame 1 (pixel frames 1..8): the bottom-right cell
    mask = face_token_mask(boxes, (3, 8, 8), (64, 64))
    assert mask[0, :2, :2].all() and mask[0].sum() == 4 and mask[1].sum() == 1 and mask[1, 7, 7] and not mask[2].any()
    cfg = PretrainConfig(width=64, height=64, frames=17, workers=1)
    ((frames, _, caption, face_box),) = list(render_clips(cfg, [EVAL_SEED_BASE + 3], "clip"))
    real = face_token_mask(face_box, (3, 8, 8), (64, 64))
    assert 0 < real.mean() < 0.5 and real.all(axis=0).any()  # a face, smaller than the frame, seen throughout

    torch.manual_seed(0)
    zv, nv = torch.randn(1, 4, 3, 8, 8), torch.randn(1, 4, 3, 8, 8)
    za, na = torch.randn(1, 8, 5, 4), torch.randn(1, 8, 5, 4)
    text = TextEncoder(vocab=toy_vocabulary())
    tokens, tmask = text.tokenize([caption])
    layout = TokenLayout(torch.zeros(1, 3, 192, 2), torch.zeros(1, 1, 5, 2), tokens, tmask)

    def model(video, audio, _perturbations):
        return video.latent, audio.latent

    sigma = torch.tensor([0.5])
    w = torch.from_numpy(real).flatten()[None].float()
    face = flow_matching_loss(model, text, layout, zv, za, tokens, tmask, sigma, nv, na, weight=w)[0]
    v0, n0 = (z.permute(0, 2, 3, 4, 1).reshape(1, 192, 4) for z in (zv, nv))
    per_token = (0.5 * v0 + 0.5 * n0 - (n0 - v0)).square().mean(-1)
    assert torch.allclose(face, per_token[w > 0].mean())
    plain = flow_matching_loss(model, text, layout, zv, za, tokens, tmask, sigma, nv, na)[0]
    assert torch.allclose(flow_matching_loss(model, text, layout, zv, za, tokens, tmask, sigma, nv, na, weight=torch.ones(1, 192))[0], plain)


def test_stage_2_continues_a_pretrained_base(tmp_path) -> None:
    """``--transformer-from`` starts stage 2 from the shipped base (recorded), well below a fresh one's loss (on the smoke run's 64x64 clips)."""
    from ltxic.models.tiny_pretrain import main

    record = main(["--smoke", "--out", str(tmp_path / "more"), "--from-codecs", str(SAMPLES_TINY), "--transformer-from",
                   str(SAMPLES_TINY), "--first-frame-p", "0.5", "--keyframe-p", "0.4", "--other-shot-p", "0.4", "--face-weight", "5", "--other-shot-closeup", "--steps", "2"])
    scratch = main(["--smoke", "--out", str(tmp_path / "scratch"), "--from-codecs", str(SAMPLES_TINY), "--steps", "2"])
    assert record["transformer_from"]["folder"] == str(SAMPLES_TINY) and record["config"]["first_frame_p"] == 0.5
    before = record["fm_eval_before"]
    assert before["video_fm_loss"] < 0.7 * scratch["fm_eval_before"]["video_fm_loss"]
    # the shipped base reads a clean frame 0 appended after the clip (it lowers the loss): the way in for an IC reference
    assert before["video_fm_loss_frame0_appended"] < before["video_fm_loss"]
    assert "video_fm_loss_other_shot_appended" in before and record["config"]["other_shot_p"] == 0.4
    assert record["config"]["other_shot_closeup"] is True
    assert before["video_fm_loss_face"] > 0 and before["video_fm_loss_face_other_shot_appended"] > 0


def test_other_shots_as_close_ups_enlarge_the_face_and_keep_the_rest_of_the_shot() -> None:
    """``--other-shot-closeup`` frames every other shot as a close-up: shots drawn as close-ups anyway are unchanged,
    medium shots become close-ups of the same person in the same room (the face larger, as in a reference portrait)."""
    from ltxic.models.tiny_pretrain import PretrainConfig, render_other_shots
    from ltxic.toy.identity import make_identity
    from ltxic.toy.locate import locate_face
    from ltxic.toy.scene import random_scene

    def face_area(frame: np.ndarray, seed: int) -> int:
        x0, y0, x1, y1 = locate_face(frame[0], make_identity(seed).skin_rgb)
        return (x1 - x0) * (y1 - y0)

    seeds = list(range(8))
    framings = [random_scene(np.random.default_rng([0x5407, s])).framing for s in seeds]
    assert set(framings) == {"close-up", "medium shot"}
    cfg = PretrainConfig(out=".", device="cpu", width=64, height=64, workers=1)
    anyway = render_other_shots(cfg, seeds, "shots")
    cfg.other_shot_closeup = True
    close = render_other_shots(cfg, seeds, "close-ups")
    for seed, framing in zip(seeds, framings):
        if framing == "close-up":
            assert np.array_equal(close[seed], anyway[seed])
        else:
            assert face_area(close[seed], seed) > 1.5 * face_area(anyway[seed], seed)


def test_shipped_kit_is_what_its_records_describe() -> None:
    """The shipped 8x video codec is the one ``decoder_record.json`` tuned past 30 dB (its encoder kept from stage 1,
    ``pretrain_record.json``); the shipped transformer and text encoder are the files ``transformer_record.json``
    describes, trained on that codec's latents (its chain of stage-2 calls ends in the other-shot, face-weighted one)."""
    from ltxic.io.files import sha256_file
    from ltxic.models.tiny_pretrain import TRANSFORMER_RECORD_FILE

    codec_sha = sha256_file(SAMPLES_TINY / "video_codec.safetensors")
    stage1 = json.loads((SAMPLES_TINY / "pretrain_record.json").read_text())
    dec = json.loads((SAMPLES_TINY / "decoder_record.json").read_text())
    record = json.loads((SAMPLES_TINY / TRANSFORMER_RECORD_FILE).read_text())
    assert stage1["config"]["spatial"] == 8 and dec["encoder_identical"] and dec["sha256"] == codec_sha
    assert dec["eval_after"]["video_psnr_db"] >= 30.0 > stage1["codec_eval_after"]["video_psnr_db"]
    assert record["codecs_from"]["sha256"]["video_codec.safetensors"] == codec_sha
    for name in ("transformer.safetensors", "text_encoder.safetensors"):
        assert record["sha256"][name] == sha256_file(SAMPLES_TINY / name), name
    assert record["config"]["other_shot_p"] > 0 and record["config"]["other_shot_closeup"] and record["config"]["face_weight"] > 1
    after = record["fm_eval_after"]
    assert after["video_fm_loss"] < record["fm_eval_before"]["video_fm_loss"]
    assert after["video_fm_loss_face_other_shot_appended"] < after["video_fm_loss_face"]  # the appended person helps the face
    assert VideoCodec.load(SAMPLES_TINY / "video_codec.safetensors").geometry.spatial == 8


def test_the_8x_kit_waiting_in_benchmarks_is_what_its_records_describe() -> None:
    """``benchmarks/results/tiny_kit_8x`` holds the files its records name: ``dec_record.json`` the 8x codec whose
    decoder was fine-tuned past 30 dB, with its encoder kept (now the shipped codec, so it is kept only in
    ``data_samples/tiny``), and ``kit/`` the transformer trained on that codec's latents (call C's, continued by call
    D: ``kit/pretrain_record.json``), where the shipped transformer's last calls started."""
    from ltxic.io.files import sha256_file

    folder = SAMPLES_TINY.parents[1] / "benchmarks" / "results" / "tiny_kit_8x"
    dec = json.loads((folder / "dec_record.json").read_text())
    more = json.loads((folder / "more_record.json").read_text())
    latest = json.loads((folder / "kit" / "pretrain_record.json").read_text())
    assert dec["sha256"] == sha256_file(SAMPLES_TINY / "video_codec.safetensors") and dec["encoder_identical"]
    assert dec["eval_after"]["video_psnr_db"] >= 30.0
    assert latest["transformer_from"]["sha256"] == more["sha256"]["transformer.safetensors"]
    for name in ("transformer.safetensors", "text_encoder.safetensors"):
        assert latest["sha256"][name] == sha256_file(folder / "kit" / name), name
    codec = VideoCodec.load(SAMPLES_TINY / "video_codec.safetensors")
    assert codec.geometry.spatial == 8 and codec.latent_channels == 16
