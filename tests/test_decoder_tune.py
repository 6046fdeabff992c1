"""Decoder-only fine-tuning of the tiny video codec, on the shipped codec and real toy clips: the encoder (hence
every latent) stays bit for bit, the decoder changes, and a deepened decoder starts where the source was."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ltxic.models.codecs import VideoCodec
from ltxic.models.tiny_decoder_tune import DECODER_RECORD_FILE, grow_decoder, main, raw_encoder_tensors, same_encoder
from ltxic.models.tiny_pretrain import EVAL_SEED_BASE, PretrainConfig, render_clips, to_video_tensor

SAMPLES_TINY = Path(__file__).resolve().parent.parent / "data_samples" / "tiny"
pytestmark = pytest.mark.skipif(not (SAMPLES_TINY / "video_codec.safetensors").is_file(), reason="needs the tiny kit's codecs")


def _clip(frames: int = 9, size: int = 64) -> torch.Tensor:
    cfg = PretrainConfig(width=size, height=size, frames=frames, workers=1)
    ((video, *_),) = list(render_clips(cfg, [EVAL_SEED_BASE + 777], "clip"))
    return to_video_tensor(video[None])


def test_grown_decoder_decodes_as_the_source_until_it_trains() -> None:
    torch.set_num_threads(1)
    source = VideoCodec.load(SAMPLES_TINY / "video_codec.safetensors")
    grown = grow_decoder(source, 1)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(grown.decoder) > count(source.decoder) and count(grown.encoder) == count(source.encoder)
    before = [p["num_layers"] for n, p in source.config["vae"]["decoder_blocks"] if n == "res_x"]
    assert [p["num_layers"] for n, p in grown.config["vae"]["decoder_blocks"] if n == "res_x"] == [n + 1 for n in before]
    with torch.no_grad():
        z = source.encode(_clip())
        assert torch.equal(grown.encode(_clip()), z)
        torch.testing.assert_close(grown.decode(z), source.decode(z), atol=1e-5, rtol=0)
        # the new layers are real: moving one changes the output
        next(p for k, p in grown.named_parameters() if "res_blocks.1.conv2" in k).add_(0.05)
        assert not torch.allclose(grown.decode(z), source.decode(z), atol=1e-3)


def test_same_encoder_sees_one_changed_tensor(tmp_path) -> None:
    codec = VideoCodec.load(SAMPLES_TINY / "video_codec.safetensors")
    codec.save(tmp_path / "copy.safetensors")
    assert same_encoder(SAMPLES_TINY / "video_codec.safetensors", tmp_path / "copy.safetensors")  # fp16 -> fp32 -> fp16 is exact
    with torch.no_grad():
        codec.encoder.conv_in.conv.weight[0, 0, 0, 0, 0] += 0.01
    codec.save(tmp_path / "changed.safetensors")
    assert not same_encoder(SAMPLES_TINY / "video_codec.safetensors", tmp_path / "changed.safetensors")


def test_smoke_tune_changes_the_decoder_only_and_records_it(tmp_path) -> None:
    """A few steps on tiny clips: the new file's encoder is the shipped one bit for bit (same latents), its decoder
    is not, the training loss falls, and the record holds before/after PSNR and the curve."""
    torch.set_num_threads(1)
    out = tmp_path / "dec"
    record = main(["--smoke", "--codecs", str(SAMPLES_TINY), "--out", str(out), "--extra-layers", "1"])
    new_file, old_file = out / "video_codec.safetensors", SAMPLES_TINY / "video_codec.safetensors"
    assert same_encoder(old_file, new_file) and record["encoder_identical"]
    old, new = VideoCodec.load(old_file), VideoCodec.load(new_file)
    clip = _clip()
    with torch.no_grad():
        assert torch.equal(old.encode(clip), new.encode(clip))
        assert not torch.allclose(old.decode(old.encode(clip)), new.decode(new.encode(clip)), atol=1e-3)
    assert raw_encoder_tensors(new_file)["encoder.conv_in.conv.weight"].dtype == torch.float16  # ships as float16
    saved = json.loads((out / DECODER_RECORD_FILE).read_text())
    assert saved["command"][:3] == ["python", "-m", "ltxic.models.tiny_decoder_tune"] and saved["steps_done"] == 6
    assert set(saved["eval_before"]) == set(saved["eval_after"]) == {"video_psnr_db", "mel_l1"}
    assert saved["eval_after"]["mel_l1"] == saved["eval_before"]["mel_l1"]  # the audio codec is untouched
    steps = [s for s, _, _ in saved["curve"]]
    assert steps == [0, 3, 6] and all(np.isfinite(p) for _, p, _ in saved["curve"])
    losses = [loss for _, _, loss in saved["curve"][1:]]
    assert losses[-1] < losses[0], losses
    assert saved["decoder_parameters"] > sum(p.numel() for p in old.decoder.parameters())
    assert not (out / "decoder_checkpoint.pt").exists()


@pytest.mark.skipif(not (SAMPLES_TINY / DECODER_RECORD_FILE).is_file(), reason="the shipped decoder is the pretrained one")
def test_shipped_decoder_is_the_recorded_one_and_the_course_says_its_psnr() -> None:
    """The shipped video codec is the file its decoder record describes; the chain of runs starts from the pretrained
    codec, measured as the pretrain record measured it; the course's facts give the record's PSNR."""
    from ltxic.course.facts import tiny_kit_markdown
    from ltxic.io.files import sha256_file

    record = json.loads((SAMPLES_TINY / DECODER_RECORD_FILE).read_text())
    assert record["sha256"] == sha256_file(SAMPLES_TINY / "video_codec.safetensors") and record["encoder_identical"]
    first = record
    while "record" in first["source"]:
        first = first["source"]["record"]
    pretrain = json.loads((SAMPLES_TINY / "pretrain_record.json").read_text())
    # the same clips and codec, evaluated in two GPU runs: equal up to bf16 noise (8x codec: 28.218 and 28.219 dB)
    assert first["eval_before"]["video_psnr_db"] == pytest.approx(pretrain["codec_eval_after"]["video_psnr_db"], abs=0.01)
    assert record["eval_after"]["video_psnr_db"] > first["eval_before"]["video_psnr_db"]
    assert f"{record['eval_after']['video_psnr_db']:.1f} dB PSNR" in tiny_kit_markdown()
