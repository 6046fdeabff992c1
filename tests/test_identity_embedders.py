"""Pluggable identity embedders: the real ones (dlib ResNet face, Resemblyzer GE2E voice) measured offline on
package photographs and espeak-ng voices, the toy ones unchanged behind the same interface, user weights, and the
errors every failure path gives."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from ltxic.identity.embedders import MissingExtraError, NoFaceError, SampleRateError, SilentAudioError
from ltxic.identity.select import choose_kind, identity_models

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data_samples"
needs_real = pytest.mark.skipif(
    any(__import__("importlib").util.find_spec(m) is None for m in ("dlib", "face_recognition_models", "resemblyzer")),
    reason='needs the metrics extra: pip install -e ".[metrics]"')
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng (apt-get install espeak-ng)")


def test_toy_kind_gives_the_toy_worlds_own_numbers() -> None:
    from ltxic.io.media import read_image, read_video
    from ltxic.identity.metrics import face_similarity
    from ltxic.identity.toy_embedders import load_embedders, locate_and_crop

    frames = read_video(DATA / "clips" / "ava_000.mp4")
    toy = load_embedders()
    crops, _ = locate_and_crop(read_image(DATA / "refs" / "ava.jpg"))
    ref = toy.face.embed_crops(crops)[0]
    direct = toy.face.embed_frames(frames, toy.locator)[0] @ ref
    assert np.array_equal(face_similarity(frames, DATA / "refs" / "ava.jpg"), direct)
    assert np.array_equal(face_similarity(frames, DATA / "refs" / "ava.jpg", toy), direct)


def test_auto_chooses_by_the_datasets_marker(tmp_path) -> None:
    import json

    assert choose_kind("auto", DATA / "dataset.json") == "toy"
    data = json.loads((DATA / "dataset.json").read_text())
    for ident in data["identities"].values():
        ident["consent"]["synthetic"] = False
    (tmp_path / "d.json").write_text(json.dumps(data))
    assert choose_kind("auto", tmp_path / "d.json") == "real"
    assert choose_kind("toy", tmp_path / "d.json") == "toy"
    with pytest.raises(ValueError, match="use one of auto, real, toy, user"):
        choose_kind("arcface")
    with pytest.raises(ValueError, match="face_weights"):
        identity_models("user")


def test_missing_extra_names_the_package_and_the_fix(monkeypatch) -> None:
    from ltxic.identity.real import DlibFaceLocator, package_file

    with pytest.raises(MissingExtraError, match=r'not_a_package_xyz.*pip install -e "\.\[metrics\]"'):
        package_file("not_a_package_xyz", "models/x.dat", "face embeddings")
    monkeypatch.setitem(sys.modules, "dlib", None)  # as if dlib-bin were not installed
    with pytest.raises(MissingExtraError, match=r'dlib-bin.*pip install -e "\.\[metrics\]"'):
        DlibFaceLocator()


@needs_real
def test_real_face_verification_on_package_photos() -> None:
    from ltxic.identity.embedder_eval import face_verification
    from ltxic.identity.real import FACE_THRESHOLD

    r = face_verification("real", views=6, toy=6)
    print(r)
    assert r["photos"] == ["collins", "hopper"]
    assert int(r["faces_found"].split("/")[0]) >= 10
    people, toy = r["photo_vs_photo"], r["photo_vs_toy"]
    assert people["eer"] == 0.0 and toy["eer"] == 0.0
    # dlib's published point (distance 0.6, a score of 0.82) rejects no genuine view; two degraded views (JPEG, blur,
    # noise) of the two people come close to it (distance 0.598 at most here: benchmarks/README.md)
    assert people["max_impostor"] < people["min_genuine"] and FACE_THRESHOLD <= people["min_genuine"]
    assert people["max_impostor"] < FACE_THRESHOLD + 0.01 and toy["max_impostor"] < FACE_THRESHOLD


@needs_real
def test_real_face_errors_name_the_file(tmp_path) -> None:
    from ltxic.io.media import write_image
    from ltxic.identity.metrics import reference_face_embedding

    blank = write_image(tmp_path / "wall.jpg", np.full((200, 200, 3), 128, np.uint8))
    with pytest.raises(NoFaceError, match=r"wall\.jpg.*no face was located \(by the dlib HOG detector.*frontal"):
        reference_face_embedding(blank, "real")


@needs_real
def test_ge2e_equals_resemblyzers_own_encoder() -> None:
    pytest.importorskip("webrtcvad")
    if shutil.which("espeak-ng") is None:
        pytest.skip("needs espeak-ng")
    from resemblyzer import VoiceEncoder, preprocess_wav

    from ltxic.identity.embedder_eval import espeak
    from ltxic.identity.real import GE2EVoiceEmbedder

    wave, sr = espeak("We walked along the quiet beach until the sun went down.", "en-us+m3")
    pre = preprocess_wav(wave, sr)
    theirs = VoiceEncoder("cpu", verbose=False).embed_utterance(pre)
    ours = GE2EVoiceEmbedder().embed_utterance(pre)
    assert np.abs(theirs - ours).max() < 1e-5
    # our whole path (torchaudio resampling, energy-based silence cut) against theirs (librosa, webrtcvad)
    assert float(identity_models("real").voice_reference(wave, sr) @ theirs) > 0.995


@needs_real
@needs_espeak
def test_real_voice_eer_on_espeak_speakers() -> None:
    from ltxic.identity.embedder_eval import VOICES, voice_verification

    r = voice_verification("real", voices=VOICES[:8], utterances=3)
    print(r["utterance"])
    u = r["utterance"]
    assert u["genuine_pairs"] == 8 * 3 and u["impostor_pairs"] == 8 * 7 / 2 * 9
    assert u["eer"] < 0.15
    assert u["mean_genuine"] > u["mean_impostor"] + 0.1


@needs_real
@needs_espeak
def test_voice_errors_name_the_file_and_fix(tmp_path) -> None:
    from ltxic.identity.embedder_eval import espeak
    from ltxic.io.media import resample, write_audio
    from ltxic.identity.metrics import reference_voice_embedding

    silent = write_audio(tmp_path / "silence.wav", np.zeros((1, 16000 * 3), np.float32), 16000)
    with pytest.raises(SilentAudioError, match=r"silence\.wav.*no speech was found.*5-15 s"):
        reference_voice_embedding(silent, embedders="real")
    wave, sr = espeak("The museum opens at nine.", "en-us+f2")
    phone = write_audio(tmp_path / "phone.wav", resample(wave[None], sr, 8000).numpy(), 8000)
    with pytest.raises(SampleRateError, match=r"phone\.wav.*8000 Hz is below the 16000 Hz.*16000 Hz or more"):
        reference_voice_embedding(phone, embedders="real")
    # the same telephone audio stored at 48 kHz: named as low-rate audio, not scored as another speaker
    up = write_audio(tmp_path / "phone48k.wav", resample(resample(wave[None], sr, 8000), 8000, 48000).numpy(), 48000)
    with pytest.raises(SampleRateError, match=r"phone48k\.wav: stored at 48000 Hz, but it holds no sound between 5 and "
                                              r"7\.2 kHz.*about 10000 Hz or less \(telephone audio: 8000 Hz\)"):
        reference_voice_embedding(up, embedders="real")
    full = write_audio(tmp_path / "full48k.wav", resample(wave[None], sr, 48000).numpy(), 48000)
    assert reference_voice_embedding(full, embedders="real").shape == (256,)  # the same voice at its own band passes
    # the toy world's embedder, too, names the file of a silent reference
    with pytest.raises(SilentAudioError, match=r"silence\.wav"):
        reference_voice_embedding(silent, embedders="toy")


@needs_real
@needs_espeak
def test_user_weights_through_the_same_interface(tmp_path) -> None:
    """ArcFace (ONNX) and ECAPA (speechbrain) from local files: random weights of the real layouts here, since
    the real weights come from a hub; what is checked is the loading, alignment and interface."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    ecapa = pytest.importorskip("speechbrain.lobes.models.ECAPA_TDNN")
    from ltxic.identity.embedder_eval import espeak, package_photos

    torch.manual_seed(0)
    net = ecapa.ECAPA_TDNN(80, channels=[64, 64, 64, 64, 192], kernel_sizes=[5, 3, 3, 3, 1],
                           dilations=[1, 2, 3, 4, 1], attention_channels=16, lin_neurons=32)
    torch.save(net.state_dict(), tmp_path / "embedding_model.ckpt")
    lin = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 112 * 112, 64))
    torch.onnx.export(lin, torch.zeros(1, 3, 112, 112), str(tmp_path / "arc.onnx"), dynamo=False,
                      input_names=["data"], output_names=["embedding"])
    u = identity_models("user", face_weights=tmp_path / "arc.onnx", voice_weights=tmp_path)
    assert u.kind == "user" and u.face.dim == 64 and u.voice.dim == 32
    face = u.face_reference(package_photos()["hopper"])
    assert face.shape == (64,) and abs(np.linalg.norm(face) - 1) < 1e-5
    wave, sr = espeak("The museum opens at nine and closes early.", "en-us+m3")
    voice = u.voice_reference(wave, sr)
    assert voice.shape == (32,) and abs(np.linalg.norm(voice) - 1) < 1e-5
    with pytest.raises(FileNotFoundError, match=r"nope\.onnx.*w600k_r50\.onnx"):
        identity_models("user", face_weights=tmp_path / "nope.onnx")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"embedding_model\.ckpt.*spkrec-ecapa-voxceleb"):
        identity_models("user", voice_weights=tmp_path / "empty")
