"""ltxic.io.media: deterministic mp4/wav/jpg writing, reading back through PyAV and moviepy, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ltxic.io.media import (
    MediaError,
    probe_video,
    read_audio,
    read_image,
    read_video,
    read_video_audio,
    resample,
    write_audio,
    write_image,
    write_video,
)


def moving_square(frames: int = 49, size: int = 64) -> np.ndarray:
    video = np.full((frames, size, size, 3), 40, np.uint8)
    for i in range(frames):
        x = i * (size - 16) // max(1, frames - 1)
        video[i, 20:36, x : x + 16] = (220, 120, 60)
    return video


def noise_audio(samples: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # band-limited noise well inside AAC's passband, so the codec keeps it
    x = np.convolve(rng.standard_normal(samples), np.ones(8) / 8, "same")
    return (0.3 * x / np.abs(x).max()).astype(np.float32)[None]


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> tuple[Path, np.ndarray, np.ndarray]:
    video, audio = moving_square(), noise_audio(round(49 / 24 * 16000))
    path = write_video(tmp_path_factory.mktemp("m") / "clip.mp4", video, 24, audio, 16000)
    return path, video, audio


def test_same_input_gives_identical_bytes(tmp_path, clip):
    path, video, audio = clip
    again = write_video(tmp_path / "sub" / "other_name.mp4", video, 24, audio, 16000)
    assert path.read_bytes() == again.read_bytes()
    write_audio(tmp_path / "a.wav", audio, 16000)
    write_audio(tmp_path / "b.wav", audio, 16000)
    assert (tmp_path / "a.wav").read_bytes() == (tmp_path / "b.wav").read_bytes()
    write_image(tmp_path / "a.jpg", video[10])
    write_image(tmp_path / "b.jpg", video[10])
    assert (tmp_path / "a.jpg").read_bytes() == (tmp_path / "b.jpg").read_bytes()
    # and a different input really gives different bytes
    video2 = video.copy()
    video2[5, 0, 0] = 255
    assert write_video(tmp_path / "c.mp4", video2, 24, audio, 16000).read_bytes() != path.read_bytes()


def test_video_round_trip_pyav(clip):
    path, video, audio = clip
    info = probe_video(path)
    assert (info.frames, info.fps, info.width, info.height) == (49, 24.0, 64, 64)
    assert info.has_audio and info.audio_sample_rate == 16000
    assert info.duration == pytest.approx(49 / 24, abs=1e-3)
    frames = read_video(path)
    assert frames.shape == video.shape and frames.dtype == np.uint8
    assert np.abs(frames.astype(int) - video).mean() < 3.0
    # the square's position survives per frame (motion is not smeared across frames)
    cols = (frames[:, 28, :, 0] > 150).argmax(axis=1)
    assert np.abs(cols - np.arange(49)).max() <= 2  # x = i * 48 // 48

    wav = read_video_audio(path)
    assert wav.dtype == torch.float32 and wav.shape[0] == 1
    assert audio.shape[1] <= wav.shape[1] <= audio.shape[1] + 16000 // 50
    ref = audio[0]
    got = wav[0, : ref.size].numpy()
    assert np.corrcoef(ref, got)[0, 1] > 0.95  # aligned: AAC priming is removed
    assert float(np.abs(wav[0, ref.size :].numpy()).max(initial=0.0)) < 0.02  # padding is silence
    wav22 = read_video_audio(path, 22050)
    assert abs(wav22.shape[1] - wav.shape[1] * 22050 / 16000) <= 2


@pytest.mark.parametrize(("frames", "fps"), [(49, 24), (97, 24), (25, 12), (49, 25)])
def test_moviepy_sees_every_frame(tmp_path, frames, fps):
    from moviepy import VideoFileClip
    from moviepy.video.io.ffmpeg_reader import ffmpeg_parse_infos

    path = write_video(tmp_path / "c.mp4", moving_square(frames, 32), fps, noise_audio(round(frames / fps * 16000)), 16000)
    clip = VideoFileClip(str(path))
    try:
        assert clip.fps == fps and list(clip.size) == [32, 32]
        assert clip.n_frames == frames
        got = list(clip.iter_frames())
        assert len(got) == frames
        assert np.abs(got[-1].astype(int) - read_video(path)[-1]).mean() < 2
        assert clip.audio is not None
    finally:
        clip.close()
    assert ffmpeg_parse_infos(str(path))["audio_fps"] == 16000


def test_audio_image_round_trip(tmp_path):
    audio = noise_audio(16000, seed=1)
    path = write_audio(tmp_path / "v.wav", audio, 16000)
    wav, sr = read_audio(path)
    assert sr == 16000 and wav.shape == (1, 16000) and wav.dtype == torch.float32
    assert np.abs(wav.numpy() - audio).max() < 1e-4  # 16-bit PCM
    wav8, sr8 = read_audio(path, 8000)
    assert sr8 == 8000 and wav8.shape == (1, 8000)

    stereo = np.concatenate([audio, -audio])
    wav2, _ = read_audio(write_audio(tmp_path / "s.wav", torch.from_numpy(stereo), 16000))
    assert wav2.shape == (2, 16000)

    img = moving_square(1, 64)[0]
    assert np.array_equal(read_image(write_image(tmp_path / "i.png", img)), img)
    jpg = read_image(write_image(tmp_path / "i.jpg", img))
    assert jpg.shape == img.shape and np.abs(jpg.astype(int) - img).mean() < 3


def test_resample_keeps_a_tone():
    t = np.arange(16000) / 16000
    tone = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    out = resample(tone[None], 16000, 24000)[0].numpy()
    assert out.shape == (24000,)
    spectrum = np.abs(np.fft.rfft(out))
    assert abs(np.argmax(spectrum) * 24000 / out.size - 440) < 2


def test_missing_corrupt_truncated_files_name_the_file(tmp_path, clip):
    path, video, audio = clip
    missing = tmp_path / "nope.mp4"
    for fn in (probe_video, read_video, read_video_audio):
        with pytest.raises(MediaError, match=r"nope\.mp4.*not found"):
            fn(missing)
    with pytest.raises(MediaError, match="not found"):
        read_audio(tmp_path / "nope.wav")
    with pytest.raises(MediaError, match="not found"):
        read_image(tmp_path / "nope.jpg")

    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"this is not a video" * 50)
    with pytest.raises(MediaError, match=r"garbage\.mp4.*corrupt"):
        read_video(garbage)
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(MediaError, match=r"empty\.mp4.*empty"):
        probe_video(tmp_path / "empty.mp4")

    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    for fn in (probe_video, read_video, read_video_audio):
        with pytest.raises(MediaError, match=r"cut\.mp4.*truncated"):
            fn(cut)

    wav = write_audio(tmp_path / "v.wav", audio, 16000).read_bytes()
    (tmp_path / "cut.wav").write_bytes(wav[: len(wav) // 2])
    with pytest.raises(MediaError, match=r"cut\.wav.*truncated"):
        read_audio(tmp_path / "cut.wav")
    (tmp_path / "bad.wav").write_bytes(b"RIFX" + bytes(100))
    with pytest.raises(MediaError, match=r"bad\.wav"):
        read_audio(tmp_path / "bad.wav")

    jpg = write_image(tmp_path / "i.jpg", video[0]).read_bytes()
    (tmp_path / "cut.jpg").write_bytes(jpg[: len(jpg) // 2])
    with pytest.raises(MediaError, match=r"cut\.jpg"):
        read_image(tmp_path / "cut.jpg")


def test_bad_inputs_are_rejected_with_the_field(tmp_path):
    with pytest.raises(ValueError, match="frames: expected uint8"):
        write_video(tmp_path / "x.mp4", np.zeros((3, 32, 32, 3), np.float32), 24)
    with pytest.raises(ValueError, match="even width/height"):
        write_video(tmp_path / "x.mp4", np.zeros((3, 33, 32, 3), np.uint8), 24)
    with pytest.raises(ValueError, match="audio: contains NaN"):
        write_video(tmp_path / "x.mp4", np.zeros((3, 32, 32, 3), np.uint8), 24, np.full((1, 100), np.nan, np.float32))
    assert not (tmp_path / "x.mp4").exists()  # nothing half-written
