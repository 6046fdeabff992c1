"""Bad inputs (issue 27): each gets one line naming the file and the fix, a non-zero exit, no traceback, and leaves
every file as it was. The inputs are real files the tests make: headers patched to lie, a PNG header with a correct
CRC, a symbolic link loop, invalid UTF-8; a full disk is the library's own error type raised by its writer after it
wrote part of the file (the way ENOSPC presents), since no small disk can be mounted here.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import yaml

from ltxic.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")

TORCH_FULL_DISK = ("[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing file data/0: "
                   "file write failed")


# --------------------------------------------------------------------------------------------- bad files


def claim_frames(mp4: Path, frames: int) -> None:
    """Patch the first track's (the video's) sample table to claim ``frames`` frames: a header that lies."""
    data = bytearray(mp4.read_bytes())
    i = data.find(b"stts")
    data[i + 12:i + 16] = struct.pack(">I", frames)
    mp4.write_bytes(bytes(data))


def claim_wav_seconds(wav: Path, seconds: float) -> None:
    """Patch a PCM wav's RIFF and data sizes to claim ``seconds`` of audio."""
    import soundfile as sf

    info = sf.info(str(wav))
    size = int(seconds * info.samplerate * info.channels * 2)
    data = bytearray(wav.read_bytes())
    i = data.find(b"data")
    data[i + 4:i + 8] = struct.pack("<I", size)
    data[4:8] = struct.pack("<I", size + i)
    wav.write_bytes(bytes(data))


def png_header(path: Path, width: int, height: int) -> Path:
    """A PNG whose IHDR (with a correct CRC) claims ``width`` x ``height``; the pixel data is a few bytes."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    return path


def tree(root: Path, skip: Callable[[Path], bool] = lambda p: False) -> dict[str, str]:
    """sha256 of every file under ``root`` (links by their target), by relative path."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            p = Path(dirpath) / name
            if skip(p):
                continue
            rel = p.relative_to(root).as_posix()
            out[rel] = f"-> {os.readlink(p)}" if p.is_symlink() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


# ------------------------------------------------------------------------------------------------ setup


@dataclass
class Case:
    name: str
    argv: list[str]
    names: str  # the file the message must name
    says: list[str]  # what is wrong and the fix, as the message words them
    patch: Callable[[pytest.MonkeyPatch], None] | None = None
    skip: Callable[[Path], bool] = field(default=lambda p: False)  # files the command may change (run logs)


def _consent(path: Path, identities: list[str], media: list[str]) -> Path:
    record = {"subject": "a synthetic toy character", "granted_by": "ltxic tests", "media": media,
              "date": "2026-12-01", "scope": "tests", "synthetic": True}
    path.write_text(yaml.safe_dump({name: record for name in identities}))
    return path


def _train_config(work: Path, dataset: Path, name: str, steps: int = 2) -> Path:
    from ltxic.training.config import example_config, load_config

    cfg = load_config(example_config("tiny_cpu"), check_files=False).model_dump(mode="json")
    cfg["dataset"].update(dataset_file=str(dataset), resolution_buckets=["64x64x17"], cache_dir=str(work / f"cache_{name}"))
    cfg["optimization"].update(steps=steps, warmup_steps=1)
    cfg["lora"].update(rank=4, alpha=4)
    cfg["validation"].update(interval=0)
    cfg["output"].update(dir=str(work / f"run_{name}"), checkpoint_interval=2, keep_last_n=2)
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _dataset_variant(toy: Path, name: str, edit: Callable[[dict], None]) -> Path:
    data = json.loads(toy.read_text())
    edit(data)
    path = toy.parent / f"{name}.json"
    path.write_text(json.dumps(data, indent=1))
    return path


def _full_disk_soundfile(m: pytest.MonkeyPatch) -> None:
    import soundfile as sf

    real = sf.SoundFile.write

    def write(self, data):  # the first frames fit, then libsndfile's short write: SFE_SYSTEM
        real(self, np.asarray(data)[:100])
        raise sf.LibsndfileError(2, "")

    m.setattr(sf.SoundFile, "write", write)


def _full_disk_torch(m: pytest.MonkeyPatch) -> None:
    import torch

    def save(obj, f, *args, **kwargs):  # what fitted, then torch's zip writer failing as it does on ENOSPC
        Path(f).write_bytes(b"PK\x03\x04" + b"\0" * 4096)
        raise RuntimeError(TORCH_FULL_DISK)

    m.setattr(torch, "save", save)


def _full_disk_pyav(m: pytest.MonkeyPatch) -> None:
    import av

    real_open = av.open

    class FullDisk:  # an output container whose muxer runs out of space after a few packets
        def __init__(self, container, path):
            self.container, self.path, self.packets = container, path, 0

        def __getattr__(self, name):
            return getattr(self.container, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.container.__exit__(*exc)

        def mux(self, packet):
            self.container.mux(packet)
            self.packets += 1
            if self.packets > 2:
                av.error.err_check(-28, self.path)  # PyAV's own error for AVERROR(ENOSPC)

    def open_(file, mode="r", *args, **kwargs):
        container = real_open(file, mode, *args, **kwargs)
        return FullDisk(container, str(file)) if mode == "w" else container

    m.setattr(av, "open", open_)


def make_cases(work: Path, toy: Path) -> list[Case]:
    data = json.loads(toy.read_text())
    clip0 = toy.parent / data["entries"][0]["video_path"]
    who = data["entries"][0]["identity"]
    voice0 = toy.parent / data["entries"][0]["reference_audio"]
    consent = _consent(work / "consent.yaml", [who], ["face", "voice"])
    consent_json = work / "consent.json"
    consent_json.write_text(json.dumps(yaml.safe_load(consent.read_text())[who]))
    bomb = png_header(work / "portrait.png", 30000, 30000)
    cases: list[Case] = []

    def clips_folder(name: str, caption: bytes | None = None, frames: int | None = None) -> Path:
        folder = work / name
        folder.mkdir()
        shutil.copy(clip0, folder / f"{who}_000.mp4")
        if frames:
            claim_frames(folder / f"{who}_000.mp4", frames)
        if caption is not None:
            (folder / f"{who}_000.txt").write_bytes(caption)
        return folder

    # mp4 whose header claims 2 hours (180000 frames at 25 fps)
    long_clips = clips_folder("clips_long", frames=180000)
    cases.append(Case("pair: mp4 claiming 2 hours", ["pair", str(long_clips), "--consent", str(consent), "--out",
                      str(work / "out_long" / "dataset.json"), "--reference", "first"],
                      f"{who}_000.mp4", ["180000 frames", "re-export"]))
    long_clip = toy.parent / "clips" / "long.mp4"
    shutil.copy(long_clips / f"{who}_000.mp4", long_clip)
    ds = _dataset_variant(toy, "long", lambda d: d["entries"][0].update(video_path="clips/long.mp4"))
    cases.append(Case("train: mp4 claiming 2 hours", ["train", str(_train_config(work, ds, "long"))],
                      "long.mp4", ["180000 frames", "re-export"]))

    # wav whose header claims 2 hours
    voices = work / "voices_long"
    voices.mkdir()
    shutil.copy(voice0, voices / f"{who}_0.wav")
    claim_wav_seconds(voices / f"{who}_0.wav", 7200)
    good_clips = clips_folder("clips_good")
    cases.append(Case("pair: wav claiming 2 hours", ["pair", str(good_clips), "--voices", str(voices), "--consent",
                      str(consent), "--out", str(work / "out_wav" / "dataset.json"), "--reference", "first"],
                      f"{who}_0.wav", ["header promises", "re-export"]))

    # PNG header claiming 30000x30000 (a decompression bomb for Pillow)
    cases.append(Case("pair: PNG claiming 30000x30000", ["pair", str(good_clips), "--identity", who, "--consent",
                      str(consent), "--reference-image", str(bomb), "--out", str(work / "out_png" / "dataset.json")],
                      "portrait.png", ["more pixels than pillow opens safely", "resize it"]))
    cases.append(Case("sample: PNG claiming 30000x30000", ["sample", "--reference-image", str(bomb), "--consent",
                      str(consent_json), "--prompt", "A person speaks in a bright room.", "--out", str(work / "samples"),
                      "--width", "64", "--height", "64", "--frames", "9", "--steps", "2"],
                      "portrait.png", ["more pixels than pillow opens safely", "resize it"]))

    # a path leaving the dataset's folder
    ds = _dataset_variant(toy, "escape", lambda d: d["entries"][0].update(reference_image="../../etc/passwd"))
    cases.append(Case("train: ../../etc/passwd in dataset.json", ["train", str(_train_config(work, ds, "escape"))],
                      "../../etc/passwd", ["outside the dataset's folder", "allow_outside_paths"]))

    # a symbolic link loop
    os.symlink("loop.mp4", toy.parent / "clips" / "loop.mp4")
    ds = _dataset_variant(toy, "loop", lambda d: d["entries"][0].update(video_path="clips/loop.mp4"))
    cases.append(Case("train: symlink loop", ["train", str(_train_config(work, ds, "loop"))],
                      "clips/loop.mp4", ["symbolic link loop", "replace the link"]))

    # captions with invalid UTF-8
    bad_caption = clips_folder("clips_caption", caption=b"A person speaks in a caf\xe9, close-up.")
    cases.append(Case("pair: caption not UTF-8", ["pair", str(bad_caption), "--consent", str(consent), "--out",
                      str(work / "out_caption" / "dataset.json"), "--reference", "first"],
                      f"{who}_000.txt", ["not utf-8", "re-save it as utf-8"]))
    raw = toy.read_bytes().replace(data["entries"][0]["caption"].encode(), b"A person speaks in a caf\xe9.", 1)
    (toy.parent / "latin1.json").write_bytes(raw)
    cases.append(Case("train: caption not UTF-8", ["train", str(_train_config(work, toy.parent / "latin1.json", "latin1"))],
                      "latin1.json", ["not utf-8", "re-save it as utf-8"]))

    # dataset.json that is a list of strings
    listed = work / "listed" / "dataset.json"
    listed.parent.mkdir()
    listed.write_text(json.dumps(["clips/a.mp4", "clips/b.mp4"]))
    cases.append(Case("train: dataset.json a list", ["train", str(_train_config(work, listed, "listed"))],
                      "listed/dataset.json", ["json list", "ltxic pair"]))
    cases.append(Case("pair --out onto a list", ["pair", str(good_clips), "--consent", str(consent), "--out", str(listed),
                      "--reference", "first"], "listed/dataset.json", ["json list", "ltxic pair"]))

    # full disk during pair: the second pairing into a folder that already holds a dataset
    paired = work / "out_full" / "dataset.json"
    voices_ok = work / "voices_ok"
    voices_ok.mkdir()
    shutil.copy(voice0, voices_ok / f"{who}_0.wav")
    assert main(["pair", str(good_clips), "--voices", str(voices_ok), "--consent", str(consent), "--out", str(paired),
                 "--reference", "first"]) == 0
    cases.append(Case("pair: full disk (LibsndfileError)", ["pair", str(good_clips), "--voices", str(voices_ok),
                      "--consent", str(consent), "--out", str(paired)],
                      "refs/", ["disk full", "needed", "free some space", "no file of this change was written"],
                      patch=_full_disk_soundfile))

    # full disk during sample: the second run into a folder that holds the first run's clips
    sample = ["sample", "--prompt", "A person speaks in a bright room.", "--out", str(work / "samples_full"),
              "--width", "64", "--height", "64", "--frames", "9", "--steps", "2"]
    assert main(sample) == 0
    cases.append(Case("sample: full disk", sample, ".mp4", ["disk full", "free some space", "previous file"],
                      patch=_full_disk_pyav))

    # full disk during train --resume: the checkpoint of step 4 does not fit
    first = _train_config(work, toy, "resume", steps=2)
    assert main(["train", str(first)]) == 0
    resumed = _train_config(work, toy, "resume", steps=4)
    cases.append(Case("train --resume: full disk", ["train", str(resumed), "--resume"], "checkpoint",
                      ["disk full", "needed", "previous checkpoint is intact", "--resume"], patch=_full_disk_torch,
                      skip=lambda p: p.name in ("metrics.jsonl", "stages.json", "dataset_check.json")))  # the run's records
    return cases


def test_every_bad_input_gets_one_line_and_changes_nothing(tmp_path, tiny_kit, capsys, monkeypatch) -> None:
    work = tmp_path / "work"
    work.mkdir()
    cases = make_cases(work, tiny_kit)
    assert len(cases) == 14
    capsys.readouterr()
    for case in cases:
        before = tree(tmp_path, case.skip)
        with monkeypatch.context() as m:
            if case.patch:
                case.patch(m)
            code = main(case.argv)
        err = capsys.readouterr().err
        lines = [line for line in re.split(r"[\r\n]", err) if line.startswith("ltxic ")]  # after progress bars
        assert code == 1, (case.name, err[-2000:])
        assert "Traceback" not in err, (case.name, err[-2000:])
        assert len(lines) == 1, (case.name, err[-2000:])
        line = lines[0]
        assert case.names in line, (case.name, line)
        for words in case.says:
            assert words in line.lower(), (case.name, words, line)
        after = tree(tmp_path, case.skip)
        assert after == before, (case.name, sorted(set(after.items()) ^ set(before.items())))
    # the run kept its step-2 checkpoint and left no temp folder behind
    checkpoints = sorted(p.name for p in (work / "run_resume" / "checkpoints").iterdir())
    assert checkpoints == ["latest", "step_000002"], checkpoints


def test_debug_shows_the_traceback(tmp_path, capsys) -> None:
    listed = tmp_path / "dataset.json"
    listed.write_text('["a", "b"]')
    assert main(["validate-config", str(tmp_path / "missing.yaml")]) == 1
    assert main(["captions", str(listed)]) == 1
    assert "Traceback" not in capsys.readouterr().err
    assert main(["--debug", "captions", str(listed)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith(f"ltxic captions: {listed}")


# ------------------------------------------------------------------------------------------ the pieces


def test_files_get_the_users_umask(tmp_path) -> None:
    from ltxic.io.files import write_json_atomic
    from ltxic.io.media import write_audio

    old = os.umask(0o022)
    try:
        a = write_json_atomic(tmp_path / "a.json", {"x": 1})
        b = write_audio(tmp_path / "b.wav", np.zeros((1, 160), np.float32), 16000)
        os.umask(0o027)
        c = write_json_atomic(tmp_path / "c.json", {"x": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE(a.stat().st_mode) == 0o644 and stat.S_IMODE(b.stat().st_mode) == 0o644
    assert stat.S_IMODE(c.stat().st_mode) == 0o640


def test_library_write_failures_are_a_full_disk_and_leave_the_old_file(tmp_path) -> None:
    from safetensors import SafetensorError

    from ltxic.io.files import DiskFullError, atomic_path, staged_files

    target = tmp_path / "x.bin"
    target.write_bytes(b"old")
    for error in (RuntimeError(TORCH_FULL_DISK), SafetensorError("Error while serializing: IoError(Os { code: 28, "
                                                                 "kind: StorageFull, message: \"No space left on device\" })"),
                  OSError(28, "No space left on device")):
        with pytest.raises(DiskFullError, match="disk full while writing .* about 1.0 MB needed") as info:
            with atomic_path(target, needed_bytes=1_000_000) as tmp:
                tmp.write_bytes(b"new, half")
                raise error
        assert str(target) in str(info.value)
        assert target.read_bytes() == b"old" and sorted(os.listdir(tmp_path)) == ["x.bin"]
    other = tmp_path / "y.bin"
    with pytest.raises(DiskFullError, match="y.bin: disk full"):
        with staged_files() as stage:
            stage.path(target).write_bytes(b"new")
            stage.path(other).write_bytes(b"half")
            raise OSError(28, f"No space left on device: {stage.pending[-1][0]}")
    assert target.read_bytes() == b"old" and sorted(os.listdir(tmp_path)) == ["x.bin"]
    with staged_files() as stage:
        stage.path(target).write_bytes(b"new")
        stage.path(other).write_bytes(b"new too")
    assert target.read_bytes() == b"new" and other.read_bytes() == b"new too"
    assert sorted(os.listdir(tmp_path)) == ["x.bin", "y.bin"]


def write_rotated(path: Path, frames: np.ndarray, degrees: int) -> Path:
    """An mp4 of ``frames`` (stored as given) whose display matrix rotates them ``degrees`` counter-clockwise."""
    import av

    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.set_display_rotation(degrees)
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_rotation_metadata_is_applied(tmp_path) -> None:
    from ltxic.io.media import probe_video, read_video, sample_frames

    frame = np.zeros((64, 96, 3), np.uint8)
    frame[:16, :16] = 255  # a mark at the top left of the stored (landscape) frame
    # a phone held upright: shown turned 90 degrees counter-clockwise
    path = write_rotated(tmp_path / "phone.mp4", np.stack([frame] * 3), 90)
    info = probe_video(path)
    assert (info.rotation, info.width, info.height) == (90, 64, 96)
    frames = read_video(path)
    assert frames.shape == (3, 96, 64, 3)
    assert frames[0, -8, 8].mean() > 200 and frames[0, 8, 8].mean() < 50  # the mark went to the bottom left
    np.testing.assert_array_equal(sample_frames(path, [0])[0], frames[0])


def test_validate_names_rotation_and_outside_paths(tmp_path, tiny_kit) -> None:
    from ltxic.data.validate import check_dataset

    from ltxic.io.media import read_video

    data = json.loads(tiny_kit.read_text())
    clip = tiny_kit.parent / data["entries"][1]["video_path"]
    write_rotated(clip.with_name("rotated.mp4"), read_video(clip), -90)
    data["entries"][1]["video_path"] = "clips/rotated.mp4"
    data["entries"][0]["reference_image"] = "../outside.jpg"
    path = tiny_kit.parent / "outside.json"
    path.write_text(json.dumps(data))
    report = check_dataset(path)
    rotated = [p for p in report.problems if p.problem == "rotated"]
    assert len(rotated) == 1 and rotated[0].severity == "warning", report.to_markdown()
    assert "rotated.mp4: its metadata rotates it -90 degrees; ltxic applies that" in rotated[0].detail
    outside = [p for p in report.problems if p.problem == "outside_dataset"]
    assert len(outside) == 1 and outside[0].severity == "error" and "allow_outside_paths" in outside[0].detail
    data["allow_outside_paths"] = True
    path.write_text(json.dumps(data))
    report = check_dataset(path, check_media=False)
    assert not [p for p in report.problems if p.problem == "outside_dataset"]
    assert [p.problem for p in report.problems if p.entry == 0 and p.field == "reference_image"] == ["missing_file"]


def test_pair_stores_a_huge_portrait_at_a_sane_size(tmp_path, tiny_kit) -> None:
    from ltxic.data.pairing import pair_folder
    from ltxic.io.media import MAX_STORED_IMAGE_SIDE, read_image, write_image

    data = json.loads(tiny_kit.read_text())
    who = data["entries"][0]["identity"]
    clips = tmp_path / "clips"
    clips.mkdir()
    shutil.copy(tiny_kit.parent / data["entries"][0]["video_path"], clips / f"{who}_000.mp4")
    portrait = write_image(tmp_path / "big.jpg", np.full((3000, 2400, 3), 128, np.uint8))
    consent = _consent(tmp_path / "consent.yaml", [who], ["face"])
    out = pair_folder(clips, tmp_path / "ds" / "dataset.json", consent=consent, identity=who, reference_image=portrait,
                      progress=False)
    stored = read_image(out.parent / "refs" / f"{who}.jpg")
    assert stored.shape == (MAX_STORED_IMAGE_SIDE, 1638, 3)
    how = json.loads(out.read_text())["pairing"][who]["reference_image"]
    assert how["stored"].startswith("scaled from 2400x3000 to 1638x2048")
    assert json.loads(out.read_text())["allow_outside_paths"] is True  # its clips sit beside ds/, not in it


def test_a_large_portraits_face_is_found_and_sizes_are_in_its_own_pixels(tmp_path) -> None:
    """An 8000x8000 photo whose face is about 400 px tall: shrunk to the clip search size (640) the face is ~30 px,
    under dlib's 80 px window; the portrait search goes up to 2560 px and finds it. A blank one of the same size
    names the face size needed in its own pixels."""
    pytest.importorskip("dlib")
    pytest.importorskip("face_recognition_models")
    import cv2
    import matplotlib

    from ltxic.identity.embedders import NoFaceError
    from ltxic.identity.metrics import reference_face_embedding
    from ltxic.io.media import read_image, write_image

    hopper = read_image(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg")
    face = cv2.resize(hopper, (hopper.shape[1] * 2, hopper.shape[0] * 2))
    canvas = np.full((8000, 8000, 3), 128, np.uint8)
    canvas[3000:3000 + face.shape[0], 3000:3000 + face.shape[1]] = face
    big = write_image(tmp_path / "big.jpg", canvas)
    assert reference_face_embedding(big, "real").shape[-1] == 128
    canvas[:] = 128
    blank = write_image(tmp_path / "blank.jpg", canvas)
    with pytest.raises(NoFaceError, match=r"blank\.jpg.*in this 8000x8000 image; .* at least 250 pixels tall"):
        reference_face_embedding(blank, "real")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_named(tmp_path, capsys) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        listed = tmp_path / "dataset.json"
        listed.write_text(json.dumps({"entries": [{"caption": "A person speaks."}]}))
        assert main(["captions", str(listed), "--write-clean", str(folder / "clean.json")]) == 1
    finally:
        folder.chmod(0o700)
    err = capsys.readouterr().err
    assert f"ltxic captions: {folder}: permission denied" in err and "Traceback" not in err


def test_error_types_that_are_about_inputs_and_those_that_are_bugs(tmp_path) -> None:
    from ltxic.io.errors import input_error_message

    loop = tmp_path / "loop.yaml"
    os.symlink(loop.name, loop)
    with pytest.raises(OSError) as info:
        loop.read_text()
    assert input_error_message(info.value) == f"{loop}: a symbolic link loop (the link points back to itself); " \
                                              "replace the link by the real file."
    message = input_error_message(PermissionError(13, "Permission denied", "/srv/clips/a.mp4"))
    assert message.startswith("/srv/clips/a.mp4: permission denied; give your user read (or write) access")
    message = input_error_message(RuntimeError(f"Symlink loop from '{loop}'"))  # pathlib's resolve before 3.13
    assert message == f"'{loop}': a symbolic link loop; replace the link by the real file."
    assert "disk full" in input_error_message(OSError(28, "No space left on device", "/out/x.mp4"))
    for bug in (KeyError("x"), TypeError("unsupported operand"), RuntimeError("CUDA error: an illegal memory access")):
        assert input_error_message(bug) is None  # a bug keeps its traceback
