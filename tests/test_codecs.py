"""Tiny codecs, text encoder and the pretraining script's smoke mode, on real toy clips and small tensors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ltxic.models.codecs import AudioCodec, CodecError, VideoCodec
from ltxic.models.latents import AudioGeometry, VideoGeometry, audio_tokens, video_tokens
from ltxic.models.transformer import CheckpointError, load_pretrained_tiny
from ltxic.models.text_encoder import TextEncoder, build_vocab, split_words
from ltxic.models.tiny import load_tiny_assets

SAMPLES_TINY = Path(__file__).resolve().parent.parent / "data_samples" / "tiny"


def test_video_codec_shapes_geometry_and_tokens() -> None:
    torch.manual_seed(0)
    codec = VideoCodec().eval()
    assert codec.geometry == VideoGeometry(temporal=8, spatial=16)
    frames = torch.rand(1, 3, 17, 64, 96) * 2 - 1
    with torch.no_grad():
        z = codec.encode(frames)
        assert z.shape == (1, 16, 3, 4, 6)
        out = codec.decode(z)
    assert out.shape == frames.shape and out.abs().max() <= 1 and torch.isfinite(out).all()
    tokens, pos = video_tokens(z, fps=24.0, geometry=codec.geometry)
    assert tokens.shape == (1, 3 * 4 * 6, 16) and pos.shape == (1, 3, 72, 2)
    with pytest.raises(CodecError, match="8k\\+1"):
        codec.encode(torch.zeros(1, 3, 16, 64, 64))


def test_audio_codec_shapes_geometry_and_griffin_lim() -> None:
    torch.manual_seed(0)
    codec = AudioCodec(griffin_lim_iters=4).eval()
    assert codec.geometry == AudioGeometry()  # 16 kHz, hop 160, 4x: 25 latents/s
    wave = 0.1 * torch.randn(2, 1, 16000)
    with torch.no_grad():
        z = codec.encode(wave)
    assert z.shape == (2, 1, 26, 16) and z.shape[2] == codec.latent_frames(16000)
    assert z.shape[1] * z.shape[3] == 16
    tokens, pos = audio_tokens(z, codec.geometry)
    assert tokens.shape == (2, 26, 16)
    mel = codec.decode_mel(z)
    assert mel.shape == (2, 1, 4 * 26 - 3, 64)
    out = codec.decode(z)
    assert out.shape[:2] == (2, 1) and abs(out.shape[2] - 16000) <= 2 * codec.hop_length and torch.isfinite(out).all()
    with pytest.raises(CodecError, match="mono"):
        codec.encode(torch.zeros(1, 2, 16000))


def test_latent_stats_normalize(tmp_path) -> None:
    torch.manual_seed(1)
    codec = VideoCodec().eval()
    x = torch.rand(2, 3, 9, 32, 32) * 2 - 1
    with torch.no_grad():
        raw = codec.encode(x)
        codec.set_latent_stats(raw.mean((0, 2, 3, 4)), raw.std((0, 2, 3, 4)))
        z = codec.encode(x)
    assert torch.allclose(z.mean((0, 2, 3, 4)), torch.zeros(16), atol=1e-4)
    assert torch.allclose(z.std((0, 2, 3, 4)), torch.ones(16), atol=1e-3)


@pytest.mark.parametrize("cls", [VideoCodec, AudioCodec])
def test_codec_save_load_identical(tmp_path, cls) -> None:
    torch.manual_seed(2)
    codec = cls().eval()
    with torch.no_grad():
        for p in codec.parameters():
            p.add_(0.01 * torch.randn_like(p))
    x = torch.rand(1, 3, 9, 32, 32) * 2 - 1 if cls is VideoCodec else 0.1 * torch.randn(1, 1, 8000)
    codec.save(tmp_path / "full.safetensors", half=False)
    loaded = cls.load(tmp_path / "full.safetensors")
    with torch.no_grad():
        assert torch.equal(codec.encode(x), loaded.encode(x))
    # shipped files are float16; loading upcasts, and a float16 file reloads to identical outputs
    codec.save(tmp_path / "half.safetensors")
    a = cls.load(tmp_path / "half.safetensors")
    a.save(tmp_path / "half2.safetensors")
    b = cls.load(tmp_path / "half2.safetensors")
    assert next(a.parameters()).dtype == torch.float32
    with torch.no_grad():
        za, zb, zf = a.encode(x), b.encode(x), codec.encode(x)
    assert torch.equal(za, zb)
    assert (za - zf).abs().max() < 0.05 * zf.abs().max()
    assert (tmp_path / "half.safetensors").stat().st_size < 0.6 * (tmp_path / "full.safetensors").stat().st_size


def test_codec_load_errors(tmp_path) -> None:
    with pytest.raises(CodecError, match="no such file.*ltxic.models.tiny_pretrain"):
        VideoCodec.load(tmp_path / "nope.safetensors")
    AudioCodec().save(tmp_path / "a.safetensors")
    with pytest.raises(CodecError, match="another model's file"):
        VideoCodec.load(tmp_path / "a.safetensors")


CAPTIONS = ["A person nods while speaking in a bright blue room, close-up.", "A person speaks in a dim teal room, medium shot."]


def test_text_encoder_tokenization_and_unknown_words() -> None:
    vocab = build_vocab(CAPTIONS)
    assert vocab[:3] == ["<pad>", "<unk>", "<bos>"] and "close-up" in vocab and "," in vocab
    assert split_words("Close-up, NODS.") == ["close-up", ",", "nods", "."]
    enc = TextEncoder(vocab=vocab)
    tokens, mask = enc.tokenize(["a person nods", "a purple dragon nods loudly", ""])
    unk = vocab.index("<unk>")
    assert tokens[0, 0] == vocab.index("<bos>") and tokens[0, 1] == vocab.index("a")
    assert tokens[1].tolist() == [2, vocab.index("a"), unk, unk, vocab.index("nods"), unk]
    assert mask.tolist() == [[1, 1, 1, 1, 0, 0], [1] * 6, [1, 0, 0, 0, 0, 0]]
    with pytest.raises(CodecError, match="list of captions"):
        enc.encode("a person nods")


def test_text_encoder_outputs_deterministic_and_save_load(tmp_path) -> None:
    torch.manual_seed(3)
    enc = TextEncoder(vocab=build_vocab(CAPTIONS)).eval()
    with torch.no_grad():
        v, a, m = enc.encode(CAPTIONS)
        v2, a2, _ = enc.encode(CAPTIONS)
        v_alone, _, _ = enc.encode(CAPTIONS[1:])
    assert v.shape == (2, m.shape[1], 128) and a.shape == (2, m.shape[1], 64) and m.dtype == torch.long
    assert torch.equal(v, v2) and torch.equal(a, a2)
    n = int(m[1].sum())
    assert torch.allclose(v[1, :n], v_alone[0, :n], atol=1e-5)  # padding does not leak into real tokens
    assert (v[m == 0] == 0).all()
    assert not torch.allclose(v[0, 1], v[1, 1]) or not torch.allclose(v[0, 4], v[1, 4])
    enc.save(tmp_path / "text_encoder.safetensors", half=False)
    assert json.loads((tmp_path / "vocab.json").read_text()) == enc.vocab
    loaded = TextEncoder.load(tmp_path / "text_encoder.safetensors")
    with torch.no_grad():
        assert torch.equal(loaded.encode(CAPTIONS)[0], v)


def test_missing_tiny_assets_say_which_command(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="python -m ltxic.models.tiny_pretrain"):
        load_pretrained_tiny(tmp_path)
    with pytest.raises(CheckpointError, match="python -m ltxic.models.tiny_pretrain"):
        load_tiny_assets(tmp_path)


def test_pretrain_smoke_runs_all_stages_and_learns(tmp_path) -> None:
    """Every stage for a few steps on real toy clips: losses fall, the kit loads back, and a rerun resumes."""
    from ltxic.models.tiny_pretrain import main

    out = tmp_path / "tiny"
    record = main(["--smoke", "--out", str(out)])
    assert record["codec_eval_after"]["video_psnr_db"] > record["codec_eval_before"]["video_psnr_db"]
    assert record["codec_eval_after"]["mel_l1"] < record["codec_eval_before"]["mel_l1"]
    assert record["fm_eval_after"]["audio_fm_loss"] < record["fm_eval_before"]["audio_fm_loss"]
    assert record["fm_eval_after"]["video_fm_loss"] < record["fm_eval_before"]["video_fm_loss"]
    assert record["total_mb"] < 25
    saved = json.loads((out / "pretrain_record.json").read_text())
    assert saved["command"][:3] == ["python", "-m", "ltxic.models.tiny_pretrain"] and saved["wall_s"] > 0
    assert not (out / "pretrain_checkpoint.pt").exists()

    kit = load_tiny_assets(out).freeze()
    assert not any(p.requires_grad for p in kit.transformer.parameters())
    clip = torch.rand(1, 3, 17, 64, 64) * 2 - 1
    with torch.no_grad():
        z = kit.video_codec.encode(clip)
        v, a, m = kit.text_encoder.encode(["A person nods in a dim grey room, close-up."])
    assert z.shape == (1, 16, 3, 8, 8) and v.shape[-1] == 128 and a.shape[-1] == 64  # the 8x codec by default
    # transformer weights were stored as float16 and load as float32
    assert next(kit.transformer.parameters()).dtype == torch.float32
    assert np.isfinite(record["fm_loss_summary"]["last"]).all()


def test_pretrain_positions_are_the_samplers(tmp_path) -> None:
    """Stage 2 gives the transformer the positions the sampler and the trainer give it: the codec's own geometry
    (16x spatial for the tiny VAE), not the real VAE's 32x. A base pretrained on other positions makes no faces."""
    from ltxic.models.tiny_pretrain import TokenLayout, toy_vocabulary

    video, audio = VideoCodec(), AudioCodec()
    text = TextEncoder(vocab=toy_vocabulary())
    zv, za = torch.randn(2, 16, 4, 8, 8), torch.randn(2, audio.latent_channels, 26, audio.latent_mel_bins)
    layout = TokenLayout.build(video, audio, text, zv, za, ["A person nods in a dim grey room, close-up."] * 2, 24.0, "cpu")
    assert torch.equal(layout.video_positions, video_tokens(zv[:1], fps=24.0, geometry=video.geometry)[1])
    assert not torch.equal(layout.video_positions, video_tokens(zv[:1], fps=24.0, geometry=VideoGeometry())[1])
    assert torch.equal(layout.audio_positions, audio_tokens(za[:1], geometry=audio.geometry)[1])


@pytest.mark.skipif(not (SAMPLES_TINY / "transformer.safetensors").is_file(), reason="needs the pretrained tiny kit")
def test_shipped_base_denoises_best_at_the_samplers_positions() -> None:
    """The shipped base predicts the velocity of held-out toy clips better with the sampler's positions (the
    codec's geometry) than with the real VAE's: it was pretrained on the positions it is sampled with."""
    from ltxic.models.tiny_flow import TokenLayout, flow_matching_loss
    from ltxic.models.tiny_pretrain import EVAL_SEED_BASE, PretrainConfig, render_clips, to_video_tensor

    torch.set_num_threads(1)
    kit = load_tiny_assets(SAMPLES_TINY).freeze()
    cfg = PretrainConfig(frames=25, workers=1)
    clips = list(render_clips(cfg, [EVAL_SEED_BASE + 500 + i for i in range(4)], "clips"))
    with torch.no_grad():
        zv = kit.video_codec.encode(to_video_tensor(np.stack([c[0] for c in clips])))
        za = kit.audio_codec.encode(torch.from_numpy(np.stack([c[1] for c in clips])))
        caps = [c[2] for c in clips]
        gen = torch.Generator().manual_seed(0)
        nv, na = torch.randn(zv.shape, generator=gen), torch.randn(za.shape, generator=gen)
        sigma = torch.full((4,), 0.6)
        losses = {}
        for name, geometry in (("sampler", kit.video_codec.geometry), ("real_vae", VideoGeometry())):
            layout = TokenLayout(video_tokens(zv[:1], 24.0, geometry)[1], audio_tokens(za[:1], kit.audio_codec.geometry)[1],
                                 *kit.text_encoder.tokenize(caps))
            losses[name] = flow_matching_loss(kit.transformer, kit.text_encoder, layout, zv, za, layout.tokens, layout.mask,
                                              sigma, nv, na)[0].item()
    assert losses["sampler"] < 0.8 * losses["real_vae"], losses


@pytest.mark.skipif(not (SAMPLES_TINY / "video_codec.safetensors").is_file(), reason="needs the pretrained tiny kit")
def test_cli_toy_pretrain_from_shipped_codecs(tmp_path) -> None:
    """``ltxic toy pretrain --from-codecs`` skips stage 1, copies the codecs bit for bit and records where they came
    from; ``--max-train-seconds`` ends stage 2 early and says so."""
    from ltxic.cli import main
    from ltxic.io.files import sha256_file

    out = tmp_path / "tiny"
    assert main(["toy", "pretrain", "--smoke", "--out", str(out), "--from-codecs", str(SAMPLES_TINY),
                 "--steps", "400", "--max-train-seconds", "1"]) == 0
    record = json.loads((out / "pretrain_record.json").read_text())
    for name in ("video_codec.safetensors", "audio_codec.safetensors"):
        assert sha256_file(out / name) == sha256_file(SAMPLES_TINY / name) == record["codecs_from"]["sha256"][name]
    assert "codec_losses" not in record and record["codec_eval_after"]["video_psnr_db"] > 15
    assert record["stopped_early"]["of"] == 400 and 0 < record["stopped_early"]["step"] < 400
    assert len(record["fm_curve"]["values"]) > 0 and (out / "transformer.safetensors").is_file()
