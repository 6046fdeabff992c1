"""The latent cache: content-hashed reuse (counting encodes), bucket choice and skip report, bad-input messages.

Files are real mp4/wav/jpg written by ``ltxic.io.media``. Until the codecs branch lands, small stand-in codecs
defined here (fixed random weights, the contract's shapes, 32x spatial like LTX-2's VAE) play its part.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ltxic.training.cache import DatasetError, build_cache, choose_bucket, load_cached, read_dataset
from ltxic.models.latents import AudioGeometry, VideoGeometry

FPS, SR = 24.0, 16000
BUCKETS = ["64x64x9", "64x64x17", "96x64x17"]


# ------------------------------------------------------------------------------------- stand-ins (temporary)


@pytest.fixture(scope="module")
def media():
    import ltxic.io.media

    return ltxic.io.media


class StandInVideoCodec(torch.nn.Module):
    """(B,3,F,H,W) -> (B,16,(F-1)/8+1,H/32,W/32): first frame alone, then groups of 8, pooled, projected."""

    geometry = VideoGeometry()

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(3, 16)
        torch.nn.init.normal_(self.proj.weight, generator=torch.Generator().manual_seed(seed))
        self.calls = 0

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        b, c, f, h, w = x.shape
        rest = x[:, :, 1:].reshape(b, c, (f - 1) // 8, 8, h, w).mean(3) if f > 1 else x[:, :, :0]
        x = torch.cat([x[:, :, :1], rest], 2)
        x = torch.nn.functional.avg_pool3d(x, (1, 32, 32))
        return self.proj(x.permute(0, 2, 3, 4, 1)).permute(0, 4, 1, 2, 3)


class StandInAudioCodec(torch.nn.Module):
    geometry = AudioGeometry()

    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(640, 16)
        self.calls = 0

    def encode(self, wave: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        t = wave.shape[-1] // 640
        return self.proj(wave[..., : t * 640].reshape(wave.shape[0], t, 640)).reshape(wave.shape[0], t, 4, 4).permute(0, 2, 1, 3)


class StandInTextEncoder(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.v = torch.nn.Embedding(256, 128)
        self.a = torch.nn.Embedding(256, 64)
        self.calls = 0

    def encode(self, texts: list[str]):
        self.calls += 1
        ids = torch.tensor([[min(ord(ch), 255) for ch in t[:16].ljust(16)] for t in texts])
        return self.v(ids), self.a(ids), torch.ones_like(ids, dtype=torch.bool)


def encoders(seed: int = 0) -> dict:
    torch.manual_seed(seed)
    return {"video_codec": StandInVideoCodec(seed), "audio_codec": StandInAudioCodec(), "text_encoder": StandInTextEncoder()}


def encode_count(enc: dict) -> int:
    return enc["video_codec"].calls


# ------------------------------------------------------------------------------------------------- data


CONSENT = {"subject": "Ava (synthetic)", "granted_by": "test", "media": ["face", "voice"], "date": "2026-11-24",
           "scope": "tests", "synthetic": True}


def make_dataset(root: Path, media, clips: dict[str, tuple[int, int, int]] | None = None) -> Path:
    """Clips (name -> (width, height, frames)) with audio, a reference image and voice, and dataset.json."""
    clips = clips or {"a": (64, 64, 17), "b": (96, 64, 20), "c": (128, 128, 12), "short": (64, 64, 5)}
    rng = np.random.default_rng(0)
    for sub in ("clips", "refs", "voice"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    entries = []
    for name, (w, h, f) in clips.items():
        frames = rng.integers(0, 255, size=(f, h, w, 3), dtype=np.uint8)
        audio = (0.1 * np.sin(np.arange(int(f / FPS * SR) + 400) * 0.05)).astype(np.float32)
        media.write_video(root / "clips" / f"{name}.mp4", frames, FPS, audio[None], SR)
        entries.append({"identity": "ava", "video_path": f"clips/{name}.mp4", "reference_image": "refs/ava.jpg",
                        "reference_audio": "voice/ava_0.wav", "caption": f"A person speaks in room {name}.", "split": "train"})
    media.write_image(root / "refs" / "ava.jpg", rng.integers(0, 255, size=(80, 80, 3), dtype=np.uint8))
    media.write_audio(root / "voice" / "ava_0.wav", (0.1 * rng.standard_normal(SR)).astype(np.float32)[None], SR)
    path = root / "dataset.json"
    path.write_text(json.dumps({"version": 1, "identities": {"ava": {"consent": CONSENT}}, "entries": entries}))
    return path


def edit(path: Path, fn) -> None:
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data))


# ------------------------------------------------------------------------------------------------ tests


def test_choose_bucket_largest_fit_and_reasons() -> None:
    assert choose_bucket(96, 64, 20, BUCKETS) == ((96, 64, 17), "")
    assert choose_bucket(64, 64, 12, BUCKETS) == ((64, 64, 9), "")
    assert choose_bucket(128, 128, 40, BUCKETS) == ((64, 64, 17), "")  # downscaled, square
    bucket, why = choose_bucket(64, 64, 5, BUCKETS)
    assert bucket is None and "5 frames, fewer than the shortest bucket's 9" in why
    bucket, why = choose_bucket(200, 40, 30, BUCKETS)
    assert bucket is None and "200x40 fits no bucket" in why


def test_build_encode_once_then_reuse(tmp_path, media) -> None:
    dataset = make_dataset(tmp_path / "data", media)
    enc = encoders()
    report = build_cache(dataset, tmp_path / "cache", buckets=BUCKETS, progress=False, **enc)
    assert report.encoded == 3 and report.reused == 0
    assert [e.bucket for e in report.entries] == [(64, 64, 17), (96, 64, 17), (64, 64, 9)]
    assert [s.index for s in report.skipped] == [3] and "fewer than the shortest" in report.skipped[0].reason
    index = json.loads((tmp_path / "cache" / "index.json").read_text())
    assert [e["bucket"] for e in index["entries"]] == ["64x64x17", "96x64x17", "64x64x9"]
    assert index["skipped"][0]["video_path"].endswith("short.mp4")

    tensors, meta = load_cached(report.entries[1])
    assert tensors["video_latent"].shape == (1, 16, 3, 2, 3)  # 96x64x17 -> 3 latent frames of 2x3
    assert tensors["reference_image_latent"].shape == (1, 16, 1, 2, 3)  # reference at the bucket's size
    assert tensors["audio_latent"].shape[:2] == (1, 4) and tensors["audio_latent"].shape[2] == 17  # 17/24 s at 25/s
    assert tensors["reference_audio_latent"].shape[2] == 25  # 1 s of voice
    assert tensors["video_context"].shape[-1] == 128 and tensors["audio_context"].shape[-1] == 64
    assert meta["caption"] == "A person speaks in room b." and meta["bucket"] == [96, 64, 17]

    calls = encode_count(enc)
    again = build_cache(dataset, tmp_path / "cache", buckets=BUCKETS, progress=False, **enc)
    assert (again.encoded, again.reused, encode_count(enc)) == (0, 3, calls)
    assert [e.key for e in again.entries] == [e.key for e in report.entries]


def test_shared_references_are_encoded_once_per_size(tmp_path, media) -> None:
    from ltxic.training.cache import mono_waveform, video_pixels

    dataset = make_dataset(tmp_path / "data", media)  # three usable clips of ava, one reference image and voice
    enc = encoders()
    report = build_cache(dataset, tmp_path / "cache", buckets=BUCKETS, progress=False, **enc)
    # clips at 64x64, 96x64 and 64x64: three clip encodes plus the reference at two sizes; the voice once
    assert enc["video_codec"].calls == 3 + 2
    assert enc["audio_codec"].calls == 3 + 1
    image = media.read_image(tmp_path / "data" / "refs" / "ava.jpg")
    voice, _ = media.read_audio(tmp_path / "data" / "voice" / "ava_0.wav", 16000)
    with torch.no_grad():
        for entry in report.entries:
            tensors, _ = load_cached(entry)
            width, height, _ = entry.bucket
            expect = enc["video_codec"].encode(video_pixels(image[None], width, height))
            torch.testing.assert_close(tensors["reference_image_latent"], expect)
            torch.testing.assert_close(tensors["reference_audio_latent"], enc["audio_codec"].encode(mono_waveform(voice)))


def test_changed_caption_or_clip_reencodes_only_that_entry(tmp_path, media) -> None:
    dataset = make_dataset(tmp_path / "data", media)
    enc = encoders()
    first = build_cache(dataset, tmp_path / "cache", buckets=BUCKETS, progress=False, **enc)

    edit(dataset, lambda d: d["entries"][1].__setitem__("caption", "A person nods in a dim green room."))
    enc["video_codec"].calls = 0
    second = build_cache(dataset, tmp_path / "cache", buckets=BUCKETS, progress=False, **enc)
    assert (second.encoded, second.reused) == (1, 2)
    assert enc["video_codec"].calls == 2  # that clip and its reference image, nothing else
    changed = [a.key != b.key for a, b in zip(first.entries, second.entries)]
    assert changed == [False, True, False]
    assert load_cached(second.entries[1])[1]["caption"] == "A person nods in a dim green room."

    frames = np.full((17, 64, 64, 3), 7, np.uint8)
    media.write_video(tmp_path / "data" / "clips" / "a.mp4", frames, FPS, np.zeros((1, 12000), np.float32), SR)
    third = build_cache(dataset, tmp_path / "cache", buckets=BUCKETS, progress=False, **enc)
    assert (third.encoded, third.reused) == (1, 2)
    assert [a.key != b.key for a, b in zip(second.entries, third.entries)] == [True, False, False]


def test_other_encoder_weights_reencode_everything(tmp_path, media) -> None:
    dataset = make_dataset(tmp_path / "data", media)
    build_cache(dataset, tmp_path / "cache", buckets=BUCKETS, progress=False, **encoders(0))
    report = build_cache(dataset, tmp_path / "cache", buckets=BUCKETS, progress=False, **encoders(1))
    assert (report.encoded, report.reused) == (3, 0)


def _expect(tmp_path, media, change, *patterns: str) -> dict:
    dataset = make_dataset(tmp_path / "data", media)
    change(dataset)
    enc = encoders()
    with pytest.raises(DatasetError) as info:
        build_cache(dataset, tmp_path / "cache", buckets=BUCKETS, progress=False, **enc)
    message = str(info.value)
    assert str(dataset) in message
    for pattern in patterns:
        assert pattern in message, message
    return enc


def test_missing_clip(tmp_path, media) -> None:
    _expect(tmp_path, media, lambda d: (d.parent / "clips" / "b.mp4").unlink(),
            "entries[1].video_path: 'clips/b.mp4' does not exist")


def test_corrupt_clip(tmp_path, media) -> None:
    def corrupt(d):
        (d.parent / "clips" / "a.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 garbage" * 3)

    _expect(tmp_path, media, corrupt, "entries[0].video_path", "a.mp4")


def test_missing_reference(tmp_path, media) -> None:
    _expect(tmp_path, media, lambda d: edit(d, lambda j: j["entries"][2].__setitem__("reference_audio", "voice/nobody.wav")),
            "entries[2].reference_audio: 'voice/nobody.wav' does not exist")


def test_empty_caption(tmp_path, media) -> None:
    _expect(tmp_path, media, lambda d: edit(d, lambda j: j["entries"][0].__setitem__("caption", "  ")),
            "entries[0].caption: empty")


def test_identity_without_consent_encodes_nothing(tmp_path, media) -> None:
    def drop(d):
        edit(d, lambda j: j["identities"]["ava"].pop("consent"))

    enc = _expect(tmp_path, media, drop, "entries[0].identity: 'ava' has no consent record", "consent is required")
    assert enc["video_codec"].calls == 0 and enc["audio_codec"].calls == 0


def test_consent_must_cover_the_voice(tmp_path, media) -> None:
    _expect(tmp_path, media, lambda d: edit(d, lambda j: j["identities"]["ava"]["consent"].__setitem__("media", ["face"])),
            "entries[0].reference_audio: the consent of 'ava' does not cover 'voice'")


def test_schema_error_names_the_field(tmp_path, media) -> None:
    from ltxic.data.dataset import DatasetError as SchemaError

    dataset = make_dataset(tmp_path / "data", media)
    edit(dataset, lambda j: j["entries"][1].__setitem__("split", "dev"))
    with pytest.raises(SchemaError, match=r"entries\[1\]\.split"):
        build_cache(dataset, tmp_path / "cache", buckets=BUCKETS, progress=False, **encoders())


def test_every_problem_reported_at_once(tmp_path, media) -> None:
    def two(d):
        edit(d, lambda j: (j["entries"][0].__setitem__("caption", ""), j["entries"][3].__setitem__("video_path", "x.mp4")))

    with pytest.raises(DatasetError) as info:
        dataset = make_dataset(tmp_path / "data", media)
        two(dataset)
        read_dataset(dataset)
    assert len(info.value.problems) == 2


def test_no_clip_fits_any_bucket(tmp_path, media) -> None:
    dataset = make_dataset(tmp_path / "data", media, {"tiny": (32, 32, 17), "short": (64, 64, 5)})
    with pytest.raises(DatasetError, match=r"no clip fits any of the buckets") as info:
        build_cache(dataset, tmp_path / "cache", buckets=BUCKETS, progress=False, **encoders())
    assert "entries[0].video_path: 32x32 fits no bucket" in str(info.value)
    assert "entries[1].video_path: 5 frames" in str(info.value)


def test_shipped_bad_dataset_names_each_problem() -> None:
    """data_samples/dataset_bad.json (made by the toy generator): a missing clip and an identity without consent."""
    bad = Path(__file__).resolve().parent.parent / "data_samples" / "dataset_bad.json"
    if not bad.exists():
        pytest.skip("data_samples/ is not in this checkout")
    with pytest.raises(DatasetError) as info:
        read_dataset(bad)
    message = str(info.value)
    assert "'clips/missing_clip.mp4' does not exist" in message
    assert "'zed' has no consent record" in message
