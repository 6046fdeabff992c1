"""ltxic.data.dataset: schema, consent, validation checks (each with a positive and a negative case), pairing, CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ltxic.data.captions import PLACEHOLDER_CAPTION
from ltxic.data.dataset import ConsentError, DatasetError, ValidationRules, load_dataset, require_consent
from ltxic.data.pairing import identity_from_filename, pair_folder
from ltxic.data.report_plots import plot_report
from ltxic.data.validate import lighting_outliers
from ltxic.identity.dataset_check import validate_dataset
from ltxic.data.faces import FaceDetector, HaarFaceDetector, ToyFaceDetector
from ltxic.io.media import read_audio, write_audio, write_video
from ltxic.data.speech import audio_levels, choose_voice_segments
from ltxic.toy import Scene, identity_from_name, render_clip
from ltxic.toy.make_samples import toy_rules, write_voice

SAMPLES = Path(__file__).resolve().parents[1] / "data_samples"
CONSENT = {"subject": "Ava (synthetic test character)", "granted_by": "ltxic tests", "media": ["face", "voice"],
           "date": "2026-11-24", "scope": "tests", "synthetic": True}
RULES = {"clip_seconds": [1.0, 10.0], "buckets": ["128x128x25"]}
CAPTIONS = ["A person nods in a bright green room, close-up.", "A person speaks in a bright blue room, close-up.",
            "A person slowly turns head left while speaking in a bright teal room, close-up.",
            "A person speaks in a bright grey room, close-up."]


pytestmark = pytest.mark.usefixtures("one_thread")


AVA = identity_from_name("ava")


def _toy(path: Path, scene: Scene, seed: int, frames: int = 25, fps: float = 24.0, gain: float = 1.0,
         no_face: bool = False, noise: int = 0) -> None:
    clip = render_clip(AVA, scene, seed=seed, width=128, height=128, frames=frames, fps=fps)
    video = clip.frames.astype(np.float32)
    if no_face:  # the room only: every pixel the background colour seen in the corner
        video[:] = video[:, :2, :2].mean(axis=(1, 2), keepdims=True)
    if noise:
        video += np.random.default_rng(seed).integers(-noise, noise + 1, video.shape)
    write_video(path, np.clip(video * gain, 0, 255).round().astype(np.uint8), fps, clip.audio, clip.sample_rate)


def _wave(path: Path, wave: np.ndarray, sr: int = 16000) -> None:
    write_audio(path, wave[None].astype(np.float32), sr)


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ds")
    for k, text in enumerate(CAPTIONS):
        _toy(root / "clips" / f"ava_{k}.mp4", Scene.from_caption(text), seed=k)
        (root / "clips" / f"ava_{k}.txt").write_text(text)
    _toy(root / "bad" / "short.mp4", Scene(), seed=9, frames=9)
    write_voice(root / "voice" / "ava_0.wav", AVA, 6.0, seed=1)
    write_voice(root / "voice" / "ava_1.wav", AVA, 7.0, seed=2)
    _wave(root / "bad" / "silent.wav", np.zeros(6 * 16000))
    shutil.copy(root / "clips" / "ava_0.mp4", root / "ref_src.mp4")
    from ltxic.io.media import write_image
    from ltxic.toy import render_portrait

    write_image(root / "refs" / "ava.jpg", render_portrait(AVA))
    return root


def _entry(k: int, **kw) -> dict:
    e = {"identity": "ava", "video_path": f"clips/ava_{k}.mp4", "reference_image": "refs/ava.jpg",
         "reference_audio": f"voice/ava_{k % 2}.wav", "caption": CAPTIONS[k], "split": "train"}
    return {**e, **kw}


def _write(root: Path, name: str, entries: list[dict], identities: dict | None = None, rules: dict | None = RULES) -> Path:
    data = {"version": 1, "identities": identities or {"ava": {"consent": CONSENT}}, "entries": entries}
    if rules is not None:
        data["rules"] = rules
    p = root / name
    p.write_text(json.dumps(data))
    return p


def _found(report) -> set[tuple[int, str, str]]:
    return {(q.entry, q.field, q.problem) for q in report.problems}


def test_schema_errors_name_file_and_field(tmp_path):
    p = _write(tmp_path, "dataset.json", [_entry(0, split="test")],
               {"ava": {"consent": {**CONSENT, "media": ["face", "smell"]}}}, rules={"clip_seconds": [5, 2]})
    with pytest.raises(DatasetError) as err:
        load_dataset(p)
    msg = str(err.value)
    assert str(p) in msg and "identities.ava.consent.media[1]" in msg and "entries[0].split" in msg
    assert "rules.clip_seconds" in msg and "min < max" in msg


def test_clean_small_dataset_has_no_findings_and_rules_matter(media):
    p = _write(media, "clean.json", [_entry(k) for k in range(4)])
    report = validate_dataset(p)
    assert report.problems == [], report.to_markdown()
    assert report.face_detector == "toy" and "dataset.json 'rules'" in report.summary()
    # the same clips under the real-footage defaults (3-10 s, H100 buckets) are too short and too small
    strict = validate_dataset(p, rules=ValidationRules())
    assert {q.problem for q in strict.problems} == {"clip_too_short", "too_few_frames", "resolution_below_buckets"}
    assert "rules (given)" in strict.summary()
    # a bucket list passed in replaces the dataset's
    big = validate_dataset(p, buckets=["256x256x25"])
    assert {q.problem for q in big.problems} == {"resolution_below_buckets"}


def test_validation_finds_exactly_the_planted_problems(media):
    data = [
        _entry(0), _entry(1),
        _entry(2, caption="A woman with red hair speaks in a bright blue room, close-up."),
        _entry(0, caption="A person moving naturally."),
        _entry(1, video_path="bad/short.mp4"),
        _entry(2, reference_audio="bad/silent.wav"),
        _entry(0, video_path="clips/missing.mp4"),
        _entry(1, identity="zed", caption="A person speaks in a dim grey room, medium shot."),
        _entry(3, caption=PLACEHOLDER_CAPTION),
    ]
    p = _write(media, "planted.json", data, {"ava": {"consent": CONSENT}, "zed": {}})
    report = validate_dataset(p)
    assert _found(report) == {
        (2, "caption", "trait_caption"),
        (3, "caption", "vague_motion"),
        (3, "caption", "too_short"),
        (4, "video_path", "clip_too_short"),
        (4, "video_path", "too_few_frames"),
        (5, "reference_audio", "silent_reference_audio"),
        (6, "video_path", "missing_file"),
        (7, "identity", "missing_consent"),
        (8, "caption", "placeholder_caption"),
    }
    assert not report.ok and report.usable_entries() == [0, 1, 2, 3, 8]
    assert "9 frames at 24 fps" in next(q.detail for q in report.problems if q.problem == "clip_too_short")
    assert "| 7 | identity | error | missing_consent |" in report.to_markdown()
    ds = load_dataset(p)
    require_consent(ds, ds.entries[0])
    with pytest.raises(ConsentError, match="'zed'.*add identities.zed.consent"):
        require_consent(ds, ds.entries[7])


@pytest.fixture(scope="module")
def checks(media) -> tuple[Path, object]:
    """One dataset holding a clean case and a planted case of every media check."""
    d = media / "checks"
    base = Scene("blue", "bright", "close-up", "speaks")
    for k in range(4):  # clean, bright, varied rooms
        _toy(d / f"ok_{k}.mp4", Scene(["blue", "green", "grey", "teal"][k], "bright", "close-up", "speaks"), seed=20 + k)
    _toy(d / "dim.mp4", Scene("teal", "dim", "close-up", "nods"), seed=30)  # deliberate dim light: not a problem
    _toy(d / "dark.mp4", base, seed=31, gain=0.2)  # 2.3 stops under: a lighting outlier
    _toy(d / "noface.mp4", base, seed=32, no_face=True)
    shutil.copy(d / "ok_0.mp4", d / "copy_of_ok_0.mp4")  # the same bytes
    _toy(d / "near_ok_1.mp4", Scene("green", "bright", "close-up", "speaks"), seed=21, noise=1)  # re-rendered + noise
    _toy(d / "fps30.mp4", Scene("grey", "bright", "medium shot", "nods"), seed=33, frames=33, fps=30.0)
    _toy(d / "long.mp4", Scene("purple", "bright", "close-up", "speaks"), seed=34, frames=281)  # 11.7 s > 10 s
    v = np.random.default_rng(0)
    sr = 16000
    t = np.arange(8 * sr) / sr
    speech, _ = read_audio(media / "voice" / "ava_1.wav")
    speech = speech.numpy()[0]
    _wave(d / "clipped.wav", np.clip(speech * 12, -1, 1))  # driven into full scale
    _wave(d / "quiet.wav", speech * 10 ** (-30 / 20))  # about -50 dBFS
    _wave(d / "pauses.wav", np.concatenate([speech[: 2 * sr], np.zeros(6 * sr)]) + 1e-4 * v.standard_normal(8 * sr))
    _wave(d / "loud_ok.wav", 0.5 * np.sin(2 * np.pi * 200 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t)) / 1.5)
    names = ["ok_0", "ok_1", "ok_2", "ok_3", "dim", "dark", "noface", "copy_of_ok_0", "near_ok_1", "fps30", "long"]
    entries = [_entry(0, video_path=f"checks/{n}.mp4", caption=CAPTIONS[k % 4]) for k, n in enumerate(names)]
    for i, voice in zip(range(4), ["clipped", "quiet", "pauses", "loud_ok"]):
        entries[i]["reference_audio"] = f"checks/{voice}.wav"
    p = _write(media, "checks.json", entries)
    return p, validate_dataset(p)


def test_each_media_check_flags_its_case_and_only_it(checks):
    _, report = checks
    assert _found(report) == {
        (0, "reference_audio", "clipped_audio"),
        (1, "reference_audio", "quiet_audio"),
        (2, "reference_audio", "mostly_silence"),
        (5, "video_path", "lighting_outlier"),
        (6, "video_path", "face_not_visible"),
        (7, "video_path", "duplicate_clip"),
        (8, "video_path", "duplicate_clip"),
        (9, "video_path", "fps_mismatch"),
        (10, "video_path", "clip_too_long"),
    }, report.to_markdown()
    detail = {q.entry: q.detail for q in report.problems if q.field == "video_path"}
    assert "same bytes as checks/ok_0.mp4" in detail[7] and "nearly the same frames as checks/ok_1.mp4" in detail[8]
    assert "below the dataset median" in detail[5] and "a face was found in 0 of" in detail[6]
    assert "30 fps, most clips are 24 fps" in detail[9]
    stats = {c.path: c for c in report.clips}
    assert stats["checks/noface.mp4"].face_fraction < 0.8 <= stats["checks/ok_0.mp4"].face_fraction
    assert all(q.severity == "warning" for q in report.problems)


def test_report_plots_and_markdown(checks, tmp_path):
    from matplotlib.figure import Figure

    _, report = checks
    fig = plot_report(report)
    assert isinstance(fig, Figure) and len(fig.axes) == 4
    assert fig.axes[0].get_title() == "clip durations" and len(fig.axes[1].patches) == len(report.clips)
    md = report.to_markdown(clip_table=True)
    assert "| checks/dark.mp4 |" in md and "rules (dataset.json 'rules'" in md
    assert json.loads(json.dumps(report.to_dict()))["clips"][0]["path"] == "checks/ok_0.mp4"


def test_lighting_rule_passes_deliberate_variation_and_flags_exposure_errors():
    bright = [100.0, 104.0, 98.0, 101.0, 99.0, 103.0]
    assert lighting_outliers(bright + [56.0]) == []  # a dim room (0.56x, 0.84 stop) among tight bright clips
    assert [i for i, *_ in lighting_outliers(bright + [25.0])] == [6]  # 2 stops under
    assert [i for i, *_ in lighting_outliers(bright + [420.0])] == [6]  # 2 stops over
    assert lighting_outliers([100.0, 25.0, 400.0]) == []  # too few clips to say what is typical


def test_speech_segments_trim_cut_and_join():
    sr = 16000
    rng = np.random.default_rng(0)

    def talk(seconds: float) -> np.ndarray:  # syllable-like bursts with short pauses
        t = np.arange(int(seconds * sr)) / sr
        return (0.3 * np.sin(2 * np.pi * 150 * t) * (np.sin(2 * np.pi * 2.5 * t) > -0.3)).astype(np.float32)

    silence = lambda s: (1e-4 * rng.standard_normal(int(s * sr))).astype(np.float32)  # noqa: E731
    long = np.concatenate([silence(1.5), talk(9), silence(0.8), talk(12), silence(2)])
    segs = choose_voice_segments([("long.wav", long, sr)])
    assert len(segs) == 2 and all(5 <= s.seconds <= 15 for s in segs)
    assert segs[0].sources[0]["start"] == pytest.approx(1.4, abs=0.05)  # leading silence dropped (0.1 s pad)
    short = choose_voice_segments([("a.wav", np.concatenate([silence(1), talk(3)]), sr), ("b.wav", talk(3.5), sr),
                                   ("mute.wav", np.zeros(sr * 3, np.float32), sr)])
    assert len(short) == 1 and [s["file"] for s in short[0].sources] == ["a.wav", "b.wav"]
    assert short[0].seconds == pytest.approx(3.1 + 3.5 + 0.25, abs=0.1)
    lv = audio_levels(np.clip(talk(2) * 10, -1, 1), sr)
    assert lv.clipped_fraction > 0.3 and audio_levels(talk(2), sr).clipped_fraction == 0


def test_face_detectors():
    flat = np.full((128, 128, 3), 120, np.uint8)
    haar = HaarFaceDetector()
    # No real photograph ships with the project, so Haar is only checked to load, to return a list of boxes,
    # and to find nothing in a flat image; whether it finds real faces is OpenCV's cascade's business.
    assert isinstance(haar, FaceDetector) and haar.detect(flat) == [] and isinstance(haar.detect(flat[..., 0]), list)
    toy = ToyFaceDetector()
    frame = render_clip(AVA, Scene(), seed=1, frames=1).frames[0]
    [box] = toy.detect(frame)
    assert 20 < (box[0] + box[2]) / 2 < 108 and toy.detect(flat) == []


def test_identity_from_filename():
    assert identity_from_filename("ava_000.mp4") == "ava"
    assert identity_from_filename("john-smith_take3.mov") == "john-smith"
    assert identity_from_filename("dex.wav") == "dex"


@pytest.fixture(scope="module")
def paired_toy(tmp_path_factory) -> tuple[Path, dict]:
    """The shipped toy footage paired from folders: clips with NAME.txt captions, voice recordings, consent."""
    shipped = json.loads((SAMPLES / "dataset.json").read_text())
    src = tmp_path_factory.mktemp("pair")
    (src / "clips").mkdir()
    for e in shipped["entries"]:
        clip = SAMPLES / e["video_path"]
        shutil.copy(clip, src / "clips" / clip.name)
        (src / "clips" / clip.with_suffix(".txt").name).write_text(e["caption"])
    import yaml

    consent = src / "consent.yaml"
    consent.write_text(yaml.safe_dump({k: v["consent"] for k, v in shipped["identities"].items()}))
    out = src / "out" / "dataset.json"
    pair_folder(src / "clips", out, consent=consent, voice_dir=SAMPLES / "voice", eval_identities=["dex"],
                rules=toy_rules(128, 128, 49), progress=False)
    return out, shipped


@pytest.mark.skipif(not (SAMPLES / "dataset.json").is_file(), reason="data_samples/ comes with the toy world")
def test_pairing_the_toy_footage_reproduces_the_dataset(paired_toy):
    out, shipped = paired_toy
    report = validate_dataset(out)
    assert report.problems == [], report.to_markdown()
    data = json.loads(out.read_text())
    key = lambda e: (e["identity"], Path(e["video_path"]).name, e["caption"], e["split"])  # noqa: E731
    assert sorted(map(key, data["entries"])) == sorted(map(key, shipped["entries"]))
    assert data["identities"] == shipped["identities"] and data["rules"] == shipped["rules"]
    truth = json.loads((SAMPLES / "truth.json").read_text())["clips"]
    for name, how in data["pairing"].items():
        ref = how["reference_image"]
        clip = truth[f"clips/{Path(ref['source']).name}"]
        # the sharpest frontal frame: the head is neither turned nor nodding much
        assert abs(clip["yaw"][ref["frame"]]) < 0.15 and abs(clip["pitch"][ref["frame"]]) < 0.3, (name, ref)
        assert clip["identity"] == name
        for voice in how["reference_audio"]:
            wave, sr = read_audio(out.parent / voice["path"])
            assert 5.0 <= wave.shape[-1] / sr <= 15.0


def test_pairing_refuses_identities_without_consent(tmp_path, media):
    clips = tmp_path / "clips"
    for k, who in enumerate(("ava", "ned")):
        (clips / who).mkdir(parents=True)
        shutil.copy(media / "clips" / f"ava_{k}.mp4", clips / who / "take1.mp4")
    consent = tmp_path / "consent.json"
    consent.write_text(json.dumps({"ava": {**CONSENT, "media": ["face"]}}))
    out = tmp_path / "out" / "dataset.json"
    with pytest.raises(ConsentError) as err:
        pair_folder(clips, out, consent=consent, rules=RULES)
    assert "'ned' (has no consent record" in str(err.value) and str(consent) in str(err.value)
    assert not (tmp_path / "out").exists()  # nothing written, no reference media
    (voices := tmp_path / "voices").mkdir()
    for who in ("ava", "ned"):
        shutil.copy(media / "voice" / "ava_0.wav", voices / f"{who}_0.wav")
    consent.write_text(json.dumps({"ava": {**CONSENT, "media": ["face"]}, "ned": CONSENT}))
    with pytest.raises(ConsentError, match=r"'ava' \(consent covers \['face'\] only; needs \['face', 'voice'\]\)"):
        pair_folder(clips, out, consent=consent, voice_dir=voices, rules=RULES)
    consent.write_text(json.dumps({"ava": CONSENT, "ned": CONSENT}))
    pair_folder(clips, out, consent=consent, voice_dir=voices, rules=RULES, reference="first", progress=False)
    data = json.loads(out.read_text())
    assert sorted(data["identities"]) == ["ava", "ned"] and {e["identity"] for e in data["entries"]} == {"ava", "ned"}
    # no NAME.txt beside these clips: placeholder captions, flagged until written
    report = validate_dataset(out)
    assert {q.problem for q in report.problems} == {"placeholder_caption"} and report.ok


def test_cli_pair_and_validate(media, tmp_path, capsys):
    from ltxic.cli import main

    consent = tmp_path / "consent.json"
    consent.write_text(json.dumps(CONSENT))  # one bare record: --identity names it
    rules = tmp_path / "rules.yaml"
    rules.write_text("clip_seconds: [1.0, 10.0]\nbuckets: [128x128x25]\n")
    out = tmp_path / "cli" / "dataset.json"
    assert main(["pair", str(media / "clips"), "--identity", "ava", "--consent", str(consent), "--out", str(out),
                 "--voices", str(media / "voice"), "--rules", str(rules), "--eval-fraction", "0.25"]) == 0
    data = json.loads(out.read_text())
    assert [e["split"] for e in data["entries"]] == ["train", "train", "train", "eval"]
    assert data["entries"][1]["caption"] == CAPTIONS[1]
    png = tmp_path / "plots.png"
    assert main(["validate", str(out), "--plots", str(png)]) == 0
    assert "4 entries, 0 error(s), 0 warning(s)" in capsys.readouterr().out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["validate-dataset", str(out), "--bucket", "128x128x49"]) == 1  # 25-frame clips < 49
    assert "too_few_frames" in capsys.readouterr().out
    missing = tmp_path / "nope.json"
    assert main(["pair", str(media / "clips"), "--consent", str(missing), "--out", str(out)]) == 1
    assert "consent file not found" in capsys.readouterr().err


@pytest.fixture(scope="module")
def shipped_reports():
    return validate_dataset(SAMPLES / "dataset.json"), validate_dataset(SAMPLES / "dataset_bad.json")


@pytest.mark.skipif(not (SAMPLES / "dataset_bad.json").is_file(), reason="data_samples/ comes with the toy world")
def test_shipped_samples_clean_and_planted(shipped_reports):
    from ltxic.data.captions import check_dataset_captions

    clean, bad_report = shipped_reports
    assert check_dataset_captions(SAMPLES / "dataset.json").flagged == []
    assert clean.problems == [], clean.to_markdown()
    assert len(clean.clips) == 46 and "dataset.json 'rules' (buckets, clip_seconds)" in clean.summary()
    bad = json.loads((SAMPLES / "dataset_bad.json").read_text(encoding="utf-8"))
    planted = {(p["entry"], p["field"], p["problem"]) for p in bad["planted_problems"]}
    captions = check_dataset_captions(SAMPLES / "dataset_bad.json")
    assert {i.entry for i in captions.flagged} == {e for e, f, _ in planted if f == "caption"}
    # the 4-word vague caption is also too short: same entry, same field
    assert _found(bad_report) - {(e, "caption", "too_short") for e, f, _ in planted if f == "caption"} == planted


@pytest.mark.skipif(not (SAMPLES / "tiny" / "video_codec.safetensors").is_file(), reason="needs the pretrained tiny kit")
def test_the_trainer_accepts_the_paired_toy_dataset(paired_toy, tmp_path):
    """What the trainer reads: its cache builds from the paired dataset.json with nothing skipped."""
    from ltxic.training.cache import build_cache, load_cached
    from ltxic.models.tiny import load_tiny_assets

    out, shipped = paired_toy
    kit = load_tiny_assets().freeze()
    report = build_cache(out, tmp_path / "cache", video_codec=kit.video_codec, audio_codec=kit.audio_codec,
                         text_encoder=kit.text_encoder, buckets=["128x128x25"], progress=False)
    n_train = sum(e["split"] == "train" for e in shipped["entries"])
    assert report.skipped == [] and len(report.entries) == report.encoded == n_train
    first, _ = load_cached(report.entries[0])
    assert first["video_latent"].shape[-3:] == (4, 16, 16)  # 25 frames -> 4 latent frames, 128 px / 8 -> 16
    assert first["reference_image_latent"].shape[-3] == 1 and first["reference_audio_latent"].numel() > 0


def test_report_plot_draws_what_its_titles_promise():
    """The planted problems: the luminance title names red only when an outlier is drawn red, and the silent voice
    gets a visible red bar with a label (it used to sit at the axis floor with no width)."""
    import ltxic

    report = ltxic.validate_dataset(Path(__file__).resolve().parents[1] / "data_samples" / "dataset_bad.json")
    fig = plot_report(report)
    lum_ax, voice_ax = fig.axes[1], fig.axes[2]
    reds = [p for p in lum_ax.patches if p.get_facecolor()[:3] == pytest.approx((0.839, 0.153, 0.157), abs=0.01)]
    assert ("red" in lum_ax.get_title()) == bool(reds)
    silent = [i for i, v in enumerate(report.voices) if "silent" in v.path]
    assert silent, "dataset_bad.json plants a silent voice"
    for i in silent:
        bar = voice_ax.patches[i]
        assert bar.get_width() > 5 and bar.get_facecolor()[:3] == pytest.approx((0.839, 0.153, 0.157), abs=0.01)
    assert any(t.get_text().startswith("silent") for t in voice_ax.texts)
