"""generate(): determinism, LoRA strength 0 = base, mp4 with audio, batch prompts, reference checks, consent, CLI.

Random-weight tiny kit (real ltx-core classes, real files); 1 thread, as tests/test_sampler.py does.
"""

from __future__ import annotations

import json

import logging
import math

import numpy as np
import pytest
import torch

from ltxic.data.dataset import ConsentError, ConsentRecord
from ltxic.sampling.generate import GenerateConfig, ResolutionError, generate, preview_figure, side_by_side_frames
from ltxic.models.kit import Models
from ltxic.models.lora import LoRAError
from ltxic.io.media import probe_video, read_image, write_audio, write_image
from ltxic.sampling.references import (
    ReferenceMediaError,
    consent_for,
    prepare_reference_audio,
    prepare_reference_image,
)
from tests.inference_kit import DATA, make_lora, make_tiny_dir

IMG, WAV = DATA / "refs" / "ava.jpg", DATA / "voice" / "ava_0.wav"
SMALL = dict(width=64, height=64, frames=9, steps=3)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    root = tmp_path_factory.mktemp("kit")
    return make_tiny_dir(root / "tiny"), make_lora(root / "ava_identity.safetensors")


@pytest.fixture(scope="module")
def consent():
    return consent_for(DATA / "dataset.json", "ava")


def _gen(kit, consent, **kw):
    tiny, lora = kit
    cfg = GenerateConfig(**{**SMALL, **kw.pop("cfg", {})})
    return generate(Models.tiny(tiny), kw.pop("prompts", "a person speaks in a bright blue room"), lora=kw.pop("lora", lora),
                    reference_image=IMG, reference_audio=WAV, consent=consent, identity="ava", config=cfg, progress=False, **kw)


def test_same_seed_same_output_bitwise(kit, consent):
    a, b = _gen(kit, consent)[0], _gen(kit, consent)[0]
    c = _gen(kit, consent, cfg={"seed": 1})[0]
    assert torch.equal(a.video_latent, b.video_latent) and torch.equal(a.audio_latent, b.audio_latent)
    assert np.array_equal(a.frames, b.frames) and torch.equal(a.waveform, b.waveform)
    assert not torch.equal(a.video_latent, c.video_latent)


def test_strength_zero_equals_base_model(kit, consent):
    off = _gen(kit, consent, cfg={"strength": 0.0})[0]
    base = _gen(kit, consent, lora=None, cfg={"strategy": "audio_ref_only_ic", "reference_downscale_factor": 2})[0]
    on = _gen(kit, consent)[0]
    assert torch.equal(off.video_latent, base.video_latent) and torch.equal(off.audio_latent, base.audio_latent)
    assert not torch.equal(on.video_latent, base.video_latent)


def test_mp4_frames_fps_and_audio_track(kit, consent, tmp_path):
    import av
    from moviepy import VideoFileClip

    gen = _gen(kit, consent, out_dir=tmp_path, cfg={"frames": 17, "fps": 24.0})[0]
    assert gen.frames.shape == (17, 64, 64, 3)
    assert gen.waveform.shape == (1, round(17 / 24 * 16000))
    info = probe_video(gen.path)
    assert (info.frames, info.fps, info.width, info.height, info.has_audio) == (17, 24.0, 64, 64, True)
    with av.open(str(gen.path)) as container:
        audio = container.streams.audio[0]
        samples = sum(f.samples for f in container.decode(audio))
        assert audio.rate == 16000
    assert abs(samples / 16000 - 17 / 24) < 0.06  # AAC pads to whole frames
    clip = VideoFileClip(str(gen.path))
    try:
        assert clip.fps == 24 and clip.audio is not None and abs(clip.duration - 17 / 24) < 0.05
        assert sum(1 for _ in clip.iter_frames()) == 17
    finally:
        clip.close()


def test_batch_prompts_write_one_mp4_each(kit, consent, tmp_path):
    gens = _gen(kit, consent, prompts=["a person nods", "a person speaks"], out_dir=tmp_path)
    assert [g.seed for g in gens] == [0, 1]
    assert [g.path.name for g in gens] == ["000_a_person_nods.mp4", "001_a_person_speaks.mp4"]
    assert (tmp_path / "generations.json").exists()
    assert side_by_side_frames(gens[0].reference_image, gens[0].frames).shape == (9, 64, 64 + 4 + 64, 3)
    fig = preview_figure(gens[0], n_frames=3)
    assert len(fig.axes) == 4


def test_reference_image_resized_with_a_note(tmp_path, consent, caplog):
    wide = tmp_path / "wide.png"  # ava's portrait with grey margins left and right
    write_image(wide, np.pad(read_image(IMG), ((0, 0), (40, 40), (0, 0)), constant_values=128))
    with caplog.at_level(logging.WARNING):
        prep = prepare_reference_image(wide, 32, 32, consent=consent, identity="ava")
    assert prep.pixels.shape == (1, 3, 1, 32, 32)
    assert prep.notes == [f"{wide}: reference image is 208x128, resized and center-cropped to the reference resolution 32x32"]
    assert str(wide) in caplog.text
    same = prepare_reference_image(IMG, 128, 128, consent=consent)
    assert same.notes == [] and same.original_size == (128, 128)


def test_reference_without_a_face_is_refused(tmp_path, kit, consent):
    """As ``ltxic validate`` refuses a dataset's reference without a face, ``sample`` refuses one."""
    from ltxic.cli import main

    grey = write_image(tmp_path / "grey.png", np.full((128, 128, 3), 128, np.uint8))
    with pytest.raises(ReferenceMediaError, match="no face was found in the reference image") as err:
        prepare_reference_image(grey, 64, 64, consent=consent, identity="ava")
    assert str(grey) in str(err.value) and "toy face detector" in str(err.value)
    tiny, lora = kit
    out = tmp_path / "out"
    code = main(["sample", "--lora", str(lora), "--reference-image", str(grey), "--reference-audio", str(WAV),
                 "--dataset", str(DATA / "dataset.json"), "--identity", "ava", "--prompt", "a person speaks",
                 "--tiny-dir", str(tiny), "--out", str(out), "--steps", "2", "--frames", "9", "--width", "64",
                 "--height", "64"])
    assert code == 1 and not out.exists()
    # a real photograph without a person: the Haar detector (real consent) finds no face either
    real = ConsentRecord(subject="A person", granted_by="A person", media=["face"], date="2026-11-24", scope="course")
    coffee = write_image(tmp_path / "coffee.png", _skimage("coffee"))
    with pytest.raises(ReferenceMediaError, match="haar face detector"):
        prepare_reference_image(coffee, 64, 64, consent=real)
    astronaut = write_image(tmp_path / "astronaut.png", _skimage("astronaut"))
    assert prepare_reference_image(astronaut, 64, 64, consent=real).original_size == (512, 512)


def _skimage(name: str) -> np.ndarray:
    data = pytest.importorskip("skimage.data")
    return np.ascontiguousarray(getattr(data, name)()[..., :3])


def _tone(seconds: float, sr: int = 16000, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * 180 * t))[None].astype(np.float32)


def test_reference_audio_silent_short_long_and_resampled(tmp_path, consent):
    with pytest.raises(ReferenceMediaError, match="digital silence") as err:
        prepare_reference_audio(DATA / "bad" / "silent_voice.wav", 16000, consent=consent)
    assert "silent_voice.wav" in str(err.value) and "5-15 s" in str(err.value)
    quiet = write_audio(tmp_path / "quiet.wav", _tone(6, amp=0.001), 16000)  # about -63 dBFS
    with pytest.raises(ReferenceMediaError, match="near-silent"):
        prepare_reference_audio(quiet, 16000, consent=consent)
    short = write_audio(tmp_path / "short.wav", _tone(1.5), 16000)
    with pytest.raises(ReferenceMediaError, match=r"lasts 1.50 s, shorter than 2 s"):
        prepare_reference_audio(short, 16000, consent=consent)
    long = np.concatenate([np.zeros((1, 16000), np.float32), _tone(20)], axis=1)  # 1 s of silence, then 20 s
    prep = prepare_reference_audio(write_audio(tmp_path / "long.wav", long, 16000), 16000, consent=consent)
    assert prep.waveform.shape == (1, 1, 15 * 16000) and "from 1.00 s" in prep.notes[0]
    prep = prepare_reference_audio(write_audio(tmp_path / "cd.wav", _tone(6, sr=44100), 44100), 16000, consent=consent)
    assert prep.waveform.shape[-1] == 6 * 16000 and "44100 Hz, resampled" in prep.notes[-1]
    assert math.isclose(prep.seconds, 6.0)


def test_references_refused_without_consent(tmp_path):
    with pytest.raises(ConsentError, match="no consent record"):
        prepare_reference_image(IMG, 32, 32, consent=None, identity="ava")
    face_only = ConsentRecord(subject="Ava", granted_by="Ava", media=["face"], date="2026-11-24", scope="course")
    with pytest.raises(ConsentError, match="not 'voice'"):
        prepare_reference_audio(WAV, 16000, consent=face_only, identity="ava")
    data = tmp_path / "dataset.json"
    data.write_text('{"version": 1, "identities": {"zed": {}}, "entries": [{"identity": "zed", "video_path": "a.mp4", "caption": "x"}]}')
    with pytest.raises(ConsentError, match=r"identity 'zed' has no consent record \(identities.zed.consent\)"):
        consent_for(data, "zed")


def test_generate_refuses_missing_consent(kit):
    with pytest.raises(ConsentError):
        _gen(kit, None)


def test_lora_for_another_base_or_strategy(kit, consent, tmp_path):
    from ltxic.models.transformer import preset_config

    config = preset_config("tiny")
    config["transformer"]["num_layers"] = 2
    other = make_lora(tmp_path / "other_base.safetensors", config=config)
    with pytest.raises(LoRAError, match="num_layers"):
        _gen(kit, consent, lora=other)
    with pytest.raises(LoRAError, match="trained with strategy 'audio_ref_only_ic'"):
        _gen(kit, consent, cfg={"strategy": "ic"})
    face_only = make_lora(tmp_path / "face.safetensors", strategy="ic", factor=1)
    with pytest.raises(ValueError, match="does not use one"):
        _gen(kit, consent, lora=face_only)


def test_invalid_resolution_suggests_a_valid_one(kit, consent):
    with pytest.raises(ResolutionError, match=r"multiples of 32 .*Use --width 96 --height 64 --frames 9"):
        _gen(kit, consent, cfg={"width": 100, "height": 64, "frames": 10})


def test_cli_sample(kit, tmp_path, capsys):
    from ltxic.cli import main

    tiny, lora = kit
    base = ["sample", "--lora", str(lora), "--reference-image", str(IMG), "--reference-audio", str(WAV),
            "--prompt", "a person speaks", "--tiny-dir", str(tiny), "--out", str(tmp_path),
            "--width", "64", "--height", "64", "--frames", "9", "--steps", "2"]
    assert main(base + ["--dataset", str(DATA / "dataset.json"), "--identity", "ava"]) == 0
    assert (tmp_path / "000_a_person_speaks.mp4").exists()
    # no guidance flag: the tiny kit's defaults (ltxic.sampling.guidance.Guidance.tiny)
    from ltxic.sampling.guidance import Guidance

    recorded = json.loads((tmp_path / "generations.json").read_text())["config"]["guidance"]
    assert recorded == Guidance.tiny().as_dict()
    flags = ["--video-cfg", "2", "--audio-cfg", "5", "--stg", "1", "--stg-blocks", "1", "2", "--modality", "3",
             "--rescale", "0.5", "--reference-guidance", "0", "--audio-reference-guidance", "2", "--negative-prompt", "blur"]
    assert main(base + ["--dataset", str(DATA / "dataset.json"), "--identity", "ava", *flags]) == 0
    recorded = Guidance.from_dict(json.loads((tmp_path / "generations.json").read_text())["config"]["guidance"])
    assert recorded.video == recorded.audio.__class__(cfg=2.0, stg=1.0, stg_blocks=(1, 2), modality=3.0, rescale=0.5)
    assert recorded.audio.cfg == 5.0 and recorded.audio.stg_blocks == (1, 2)
    assert (recorded.reference_video, recorded.reference_audio) == (0.0, 2.0)
    assert main(base + ["--stg", "1"]) == 1  # the tiny kit has no STG blocks by default: the error says to name them
    assert "stg_blocks" in capsys.readouterr().err
    assert main(base) == 1
    assert "no consent record" in capsys.readouterr().err


def test_frames_figure_reads_a_written_clip(tmp_path):
    from ltxic.sampling.generate import frames_figure
    from ltxic.io.media import read_video, write_video

    frames = np.zeros((25, 32, 32, 3), np.uint8)
    frames[:, :, :, 0] = np.arange(25, dtype=np.uint8)[:, None, None] * 10  # red ramps up over time
    clip = read_video(write_video(tmp_path / "ramp.mp4", frames, 24.0, None, 16000))
    fig = frames_figure(clip, 24.0, n_frames=4, reference=frames[0], title="ramp")
    assert [ax.get_title() for ax in fig.axes] == ["reference", "frame 0 (0.00 s)", "frame 8 (0.33 s)",
                                                   "frame 16 (0.67 s)", "frame 24 (1.00 s)"]
    # the last panel shows the last frame: red near 240, not the first frame's 0
    assert fig.axes[-1].images[0].get_array()[..., 0].mean() > 200
    assert fig.get_suptitle() == "ramp"
    with pytest.raises(ValueError, match="no frames"):
        frames_figure(clip[:0], 24.0)
