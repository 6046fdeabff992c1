"""The trained LoRA and the exported workflow in a REAL ComfyUI (its own source, pinned), headless on the CPU.

ComfyUI's core is not on PyPI, so it runs from a source folder (``tests/comfyui_sources.py``: where it is looked for,
the pinned commits, the version check). CI has it at ``../shared/comfyui/ComfyUI`` (read-only; ComfyUI's base, input,
output, temp and user folders point at a temporary base directory), and the README's test command installs its
requirements (the ``test`` extra, without the web UI's three packages: the server starts with an empty
``--front-end-root``). Without the folder these tests are skipped; a folder at another version fails them. Without
ComfyUI-LTXVideo in its ``custom_nodes/`` (or at ``LTXIC_COMFYUI_LTXVIDEO_DIR``) ComfyUI starts without it: what
needs only the core runs, what needs the pack (marked ``needs_pack``: the IC-LoRA loader and guide, their node
definitions, the render) is skipped, naming the folder.

What runs, on the ComfyUI-sized miniature (``build_miniature(scale="comfy")``: ComfyUI's fixed 128 video latent channels
and 8 x 16 audio latents, the miniature's widths inside) and LoRAs made by ``ltxic train`` on it:

0. Core loaders: ComfyUI's checkpoint loader loads the miniature's video VAE and ``LTXVAudioVAELoader`` its audio
   VAE; ``VAEDecode`` and ``LTXVAudioVAEDecode`` decode small empty latents to frames and sound of the right size.
1. LoRA keys: ComfyUI's checkpoint loader detects the miniature transformer (config from the file's metadata), and
   ``LoraLoaderModelOnly`` and ComfyUI-LTXVideo's ``LTXICLoRALoaderModelOnly`` patch it: no "lora key not loaded",
   every module in the file patched, and ComfyUI's patched weights equal ltxic's own merge at the same strength.
2. Reference factor: the IC-LoRA loader's ``latent_downscale_factor`` equals the trained one (1 and 2), and is 1 for a
   file without the ``reference_downscale_factor`` metadata key (ComfyUI-LTXVideo's fallback).
3. Node definitions: every node ``ltxic.sampling.comfyui.NODE_SPECS`` names has, in what ComfyUI serves
   (``/object_info``), the same inputs (names and types, both directions) and outputs (names and types, in order),
   served by core ComfyUI or the pack as ``NodeSpec.pack`` says.
4. The UI form is what ComfyUI's editor loads (its workflow format, version 0.4: nodes, links, ids) and its nodes match
   the served definitions; the API form validates over HTTP (every node and input known, every file name listed).
5. The exported workflow runs to an mp4 with sound: loader, ``LTXICLoRALoaderModelOnly``, ``LTXAddVideoICLoRAGuide``
   with the reference face, ``LTXVReferenceAudio`` with the reference voice, the sampler, the crop, both decoders,
   ``CreateVideo`` and ``SaveVideo`` run unchanged. Only the text encoder nodes are replaced, by a test-only custom
   node (``tests/comfyui_nodes/``) loading the prompts' contexts that ltxic's own text encoder computed on the
   miniature: ComfyUI always builds Gemma 3 12B. The frames and the audio that come out are checked.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from ltxic.cli import main
from ltxic.io import media
from ltxic.models import ltx23
from ltxic.models.lora import load_lora, merge_lora, read_lora_metadata
from ltxic.models.miniature import build_miniature
from ltxic.sampling.comfyui import NODE_SPECS, api_path
from ltxic.training.config import example_config
from tests import comfyui_sources

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data_samples"
PROBE = Path(__file__).resolve().parent / "comfyui_probe.py"
TEST_NODE = Path(__file__).resolve().parent / "comfyui_nodes" / "ltxic_test_conditioning.py"
STRENGTH = 0.7
# the run to a video: small enough for 2 CPU cores (a factor-2 reference needs multiples of 64)
WIDTH, HEIGHT, FRAMES = 64, 64, 9
REFERENCES = (DATA / "refs/ava.jpg", DATA / "voice/ava_1.wav")  # the face and the voice

pytestmark = [pytest.mark.comfyui, pytest.mark.slow]

PACK = "ComfyUI-LTXVideo"
IC_LOADER = "LTXICLoRALoaderModelOnly"
_COMFY = comfyui_sources.comfyui_dir()
# without ComfyUI at all, the `sources` fixture skips everything with its own reason
needs_pack = pytest.mark.skipif(_COMFY is not None and comfyui_sources.ltxvideo_dir(_COMFY) is None,
                                reason=comfyui_sources.no_pack_reason(_COMFY or Path("<ComfyUI>")))


@pytest.fixture(scope="module")
def sources() -> tuple[Path, Path | None]:
    """ComfyUI's folder and the node pack's (``None``: absent, ComfyUI runs without it)."""
    comfy = comfyui_sources.comfyui_dir()
    if comfy is None:
        pytest.skip(comfyui_sources.SKIP_REASON)
    pack = comfyui_sources.ltxvideo_dir(comfy)
    problems = comfyui_sources.problems(comfy, pack)
    if problems:
        pytest.fail("the ComfyUI sources are not the pinned ones (tests/comfyui_sources.py):\n" + "\n".join(problems))
    return comfy, pack


@pytest.fixture(scope="module")
def tree(sources, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mini")
    build_miniature(root, scale="comfy")
    return root


def _train(tree: Path, out: Path, factor: int) -> Path:
    """A LoRA from `ltxic train` on the miniature: the shipped LTX-2.3 config, 2 steps at a high rate (a clear delta)."""
    data = json.loads((DATA / "dataset.json").read_text())
    entries = [e for e in data["entries"] if e["identity"] == "ava"][:2]
    for e in entries:
        for k in ("video_path", "reference_image", "reference_audio"):
            e[k] = str(DATA / e[k])
    data["entries"], data["identities"] = entries, {"ava": data["identities"]["ava"]}
    data["allow_outside_paths"] = True  # the clips stay in data_samples/
    out.mkdir(parents=True)
    (out / "dataset.json").write_text(json.dumps(data))
    cfg = yaml.safe_load(example_config("ltx23_h100").read_text())
    cfg["model"].update(comfyui_root=str(tree), dtype="float32")
    cfg["dataset"].update(dataset_file=str(out / "dataset.json"), resolution_buckets=["64x64x9"])
    cfg["training_strategy"]["reference_downscale_factor"] = factor
    cfg["optimization"].update(steps=2, warmup_steps=1, learning_rate=1e-2, gradient_checkpointing=False)
    cfg["lora"].update(rank=4, alpha=8)
    cfg["validation"].update(interval=0, reference_image=None, reference_audio=None)
    cfg["output"].update(dir=str(out / "run"), checkpoint_interval=2)
    (out / "config.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["train", str(out / "config.yaml")]) == 0
    return out / "run" / "checkpoints" / "step_000002" / "lora.safetensors"


def _without_factor(lora: Path, out: Path) -> Path:
    """The same LoRA with no ``reference_downscale_factor`` in its metadata (a LoRA from another trainer)."""
    with safe_open(str(lora), "pt") as f:
        metadata = dict(f.metadata() or {})
    metadata.pop("reference_downscale_factor")
    save_file(load_file(str(lora)), str(out), metadata=metadata)
    return out


@pytest.fixture(scope="module")
def loras(tree, tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("train")
    out = {str(factor): _train(tree, base / f"factor{factor}", factor) for factor in (1, 2)}
    out["none"] = _without_factor(out["2"], base / "no_factor.safetensors")
    return out


def _contexts(tree: Path, prompts: dict[str, str], out: Path) -> dict[str, Path]:
    """Each prompt's contexts as ltxic's text encoder computes them on the miniature (Gemma, then the checkpoint's
    embeddings processor): video and audio contexts side by side, as ComfyUI's LTX-AV model takes processed ones."""
    encoder = ltx23.TextEncoder(tree / ltx23.GEMMA_DIR, tree / ltx23.CHECKPOINT_FILE, device="cpu", dtype=torch.float32)
    files = {}
    for name, text in prompts.items():
        video, audio, _ = encoder.encode([text])
        files[name] = out / f"{name}.safetensors"
        save_file({"context": torch.cat([video, audio], dim=-1).contiguous()}, str(files[name]))
    encoder.release()
    return files


@pytest.fixture(scope="module")
def home(sources, tree, loras, tmp_path_factory) -> Path:
    """A ComfyUI base directory: the miniature's files under models/, the trained LoRAs in models/loras/ltxic/,
    ComfyUI-LTXVideo (when there is one) and the test-only conditioning node in custom_nodes/."""
    _, pack = sources
    h = tmp_path_factory.mktemp("comfy_home")
    for rel in (ltx23.CHECKPOINT_FILE, ltx23.DISTILLED_LORA_FILE, ltx23.SPATIAL_UPSAMPLER_FILE,
                "models/text_encoders/gemma_3_12B_it_fp4_mixed.safetensors"):
        (h / rel).parent.mkdir(parents=True, exist_ok=True)
        (h / rel).symlink_to(tree / rel)
    (h / "models/loras/ltxic").mkdir(parents=True)
    for name, lora in loras.items():
        shutil.copy(lora, h / f"models/loras/ltxic/identity_ref{name}.safetensors")
    (h / "custom_nodes").mkdir()
    if pack is not None:
        (h / "custom_nodes" / PACK).symlink_to(pack.resolve())
    shutil.copy(TEST_NODE, h / "custom_nodes" / TEST_NODE.name)
    (h / "input").mkdir()
    for ref in REFERENCES:  # where LoadImage and LoadAudio find them
        shutil.copy(ref, h / "input" / ref.name)
    (h / "front_end").mkdir()  # empty: the web UI's packages are not installed
    return h


FACTORS = ("1", "2", "none")


@pytest.fixture(scope="module")
def probed(sources, home, tmp_path_factory) -> Path:
    """ComfyUI's checkpoint and audio VAE loaders, and the LoRA loaders (the IC-LoRA one with the pack) on each
    trained LoRA (one ComfyUI start for all of them)."""
    comfy_dir, _ = sources
    out = tmp_path_factory.mktemp("probe")
    args = [sys.executable, str(PROBE), "--comfyui", str(comfy_dir), "--base-directory", str(home),
            "--checkpoint", Path(ltx23.CHECKPOINT_FILE).name, "--strength", str(STRENGTH), "--out", str(out)]
    for factor in FACTORS:
        args += ["--lora", f"ltxic/identity_ref{factor}.safetensors"]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out


def test_checkpoint_video_and_audio_vae_load_and_decode_in_comfyuis_nodes(probed) -> None:
    vae = json.loads((probed / "vae.json").read_text())
    assert vae["video"] == {"latent_channels": 128, "decoded": [9, 64, 64, 3]}  # 2 x 2 x 2 latents -> 9 frames of 64 x 64
    (batch, channels, _, bins), (_, stereo, samples) = vae["audio"]["latent"], vae["audio"]["decoded"]
    assert (batch, channels, bins, stereo) == (1, 8, 16, 2)
    assert abs(samples / vae["audio"]["sample_rate"] - 9 / 24) < 0.05  # as long as 9 frames at 24 fps


@pytest.fixture(scope="module")
def merged(tree, loras) -> dict[str, tuple[dict[str, torch.Tensor], list[str]]]:
    """ltxic's own merge of each LoRA at the probe's strength, in float32 (the miniature is bf16: exact), and the
    modules it patches."""
    out = {}
    for factor, lora in loras.items():
        model = ltx23.load_transformer(tree / ltx23.CHECKPOINT_FILE, dtype=torch.float32)
        modules = load_lora(model, lora, strength=STRENGTH)
        out[factor] = merge_lora(model).state_dict(), modules
    return out


@pytest.mark.parametrize("factor", FACTORS)
@pytest.mark.parametrize("loader", ["LoraLoaderModelOnly", pytest.param(IC_LOADER, marks=needs_pack)])
def test_lora_loads_with_every_key_and_patches_like_ltxic(loras, probed, merged, loader, factor) -> None:
    out = probed / str(FACTORS.index(factor))
    report = json.loads((out / "report.json").read_text())
    assert report["image_model"] == "ltxav" and report["model_class"].endswith("av_model.LTXAVModel")
    assert read_lora_metadata(loras[factor]).get("reference_downscale_factor") == (None if factor == "none" else factor)
    r = report["loaders"][loader]
    weights, modules = merged[factor]
    base = load_file(str(out / "base.safetensors"))
    assert r["not_loaded"] == [], r["not_loaded"][:5]
    assert r["patched_outside_diffusion_model"] == []
    assert r["patched"] == sorted(f"{m}.weight" for m in modules)  # every module in the file, nothing else
    for key, w in load_file(str(out / f"{loader}.safetensors")).items():
        assert not torch.equal(weights[key], base[key]), key  # the LoRA changes this weight...
        assert torch.allclose(w, weights[key], rtol=0, atol=1e-6), (key, (w - weights[key]).abs().max())
    if loader == IC_LOADER:  # 2. the factor it reads (and feeds to LTXAddVideoICLoRAGuide); 1 without the key
        assert r["latent_downscale_factor"] == (1.0 if factor == "none" else float(factor))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(url: str, payload: dict | None = None) -> tuple[int, dict]:
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            status, body = r.status, r.read()
    except urllib.error.HTTPError as err:
        status, body = err.code, err.read()
    try:
        return status, json.loads(body or b"{}")
    except json.JSONDecodeError:
        return status, {"text": body.decode(errors="replace")}


@pytest.fixture(scope="module")
def server(sources, home, tmp_path_factory):
    comfy_dir, _ = sources
    port = _free_port()
    log = tmp_path_factory.mktemp("server") / "comfyui.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
                                 "--base-directory", str(home), "--front-end-root", str(home / "front_end"),
                                 "--disable-auto-launch"],
                                cwd=comfy_dir, stdout=fh, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if _request(f"{url}/system_stats")[0] == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"ComfyUI did not start on {url}:\n{log.read_text()[-4000:]}")
            time.sleep(0.5)
        yield url, log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def object_info(server) -> dict:
    url, _ = server
    status, info = _request(f"{url}/object_info")
    assert status == 200
    return info


def _served_inputs(node: dict) -> dict[str, str]:
    """A served node's inputs, name -> type (a list of options is a COMBO, as the editor treats it)."""
    out = {}
    for section in ("required", "optional"):
        for name, spec in node["input"].get(section, {}).items():
            kind = spec[0]
            out[name] = "COMBO" if isinstance(kind, list) else kind
    return out


def _nodes(where: str) -> list[str]:
    """The exporter's nodes of ComfyUI's core or of the pack (``NodeSpec.pack``)."""
    return [n for n, spec in NODE_SPECS.items() if (spec.pack == PACK) == (where == "pack")]


WHERE = ["core", pytest.param("pack", marks=needs_pack)]


@pytest.mark.parametrize("where", WHERE)
def test_node_definitions_served_match_ours(object_info, where) -> None:
    for node_type in _nodes(where):
        assert node_type in object_info, f"ComfyUI has no node {node_type}"
        spec, node = NODE_SPECS[node_type], object_info[node_type]
        assert (node["python_module"] == f"custom_nodes.{PACK}") == (where == "pack"), (node_type, node["python_module"])
        served = _served_inputs(node)
        ours = {name: kind for name, kind in spec.inputs + spec.widgets if name not in spec.ui_only_widgets}
        assert ours == served, (node_type, sorted(set(ours.items()) ^ set(served.items())))  # names and types, both ways
        order = node["input_order"].get("required", []) + node["input_order"].get("optional", [])
        widgets = [n for n, _ in spec.widgets if n not in spec.ui_only_widgets]
        assert [n for n in order if n in widgets] == widgets, (node_type, order)  # widgets_values order
        assert list(node["output_name"]) == [n for n, _ in spec.outputs], node_type
        assert list(node["output"]) == [t for _, t in spec.outputs], node_type


@pytest.fixture(scope="module")
def exported(home, loras, tmp_path_factory) -> Path:
    """``ltxic export-comfyui`` for the factor-2 LoRA, the reference face and voice, at the test's small size."""
    ui = tmp_path_factory.mktemp("export") / "workflow.json"
    ref_image, ref_audio = REFERENCES
    lora = home / "models/loras/ltxic/identity_ref2.safetensors"
    assert main(["export-comfyui", "--lora", str(lora), "--out", str(ui), "--reference-image", str(ref_image),
                 "--reference-audio", str(ref_audio), "--lora-subfolder", "ltxic", "--width", str(WIDTH),
                 "--height", str(HEIGHT), "--frames", str(FRAMES)]) == 0
    return ui


def test_ui_form_is_what_the_editor_loads(exported) -> None:
    """The editor's workflow format (ComfyUI frontend's schema, version 0.4; the frontend package is not installed,
    so its required keys are checked here): nodes, ids, links."""
    wf = json.loads(exported.read_text())
    assert {"last_node_id", "last_link_id", "nodes", "links", "version"} <= set(wf) and wf["version"] == 0.4
    nodes = {}
    for node in wf["nodes"]:
        assert {"id", "type", "pos", "size", "flags", "order", "mode", "inputs", "outputs", "properties",
                "widgets_values"} <= set(node), node.get("type")
        assert isinstance(node["id"], int) and node["id"] not in nodes
        assert len(node["pos"]) == 2 and len(node["size"]) == 2
        nodes[node["id"]] = node
    assert wf["last_node_id"] == max(nodes)
    assert {node["type"] for node in wf["nodes"]} <= set(NODE_SPECS)  # each checked against ComfyUI's below
    assert wf["last_link_id"] == max(link[0] for link in wf["links"])
    for link in wf["links"]:
        assert isinstance(link, list) and len(link) == 6  # [id, origin, origin slot, target, target slot, type]
        link_id, src, src_slot, dst, dst_slot, kind = link
        out, inp = nodes[src]["outputs"][src_slot], nodes[dst]["inputs"][dst_slot]
        assert link_id in out["links"] and inp["link"] == link_id and out["type"] == inp["type"] == kind


@pytest.mark.parametrize("where", WHERE)
def test_ui_form_nodes_match_the_served_definitions(exported, object_info, where) -> None:
    """Each node of the UI form (core or pack) against the definition ComfyUI serves: slots, widget values, choices."""
    wf = json.loads(exported.read_text())
    checked = [node for node in wf["nodes"] if node["type"] in _nodes(where)]
    assert checked
    for node in checked:
        served = object_info[node["type"]]
        inputs = _served_inputs(served)
        for slot in node["inputs"]:
            assert inputs[slot["name"]] == slot["type"], (node["type"], slot["name"])
            if "widget" not in slot:
                assert slot["link"] is not None or slot["name"] in served["input"].get("optional", {}), (node["type"], slot)
        outputs = [(o["name"], o["type"]) for o in node["outputs"]]
        assert outputs == list(zip(served["output_name"], served["output"])), node["type"]
        # one value per widget, plus the seed's control_after_generate and LoadImage's upload button
        widgets = [n for n in served["input_order"].get("required", []) + served["input_order"].get("optional", [])
                   if inputs[n] in ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO") and not any(
                       s["name"] == n and "widget" not in s for s in node["inputs"])]
        extra = sum(1 for n in widgets if served["input"].get("required", {}).get(n, [None, {}])[-1].get("control_after_generate"))
        extra += 1 if node["type"] == "LoadImage" else 0
        assert len(node["widgets_values"]) == len(widgets) + extra, (node["type"], widgets, node["widgets_values"])
        for name, value in zip(widgets, [v for v in node["widgets_values"] if v != "fixed"]):
            options = served["input"].get("required", {}).get(name, served["input"].get("optional", {}).get(name))[0]
            if isinstance(options, list):
                assert value in options, (node["type"], name, value)  # a file name ComfyUI lists, a known choice


def _run(url: str, log: Path, prompt: dict, timeout: float = 540) -> dict:
    status, answer = _request(f"{url}/prompt", {"prompt": prompt})
    assert status == 200 and answer.get("node_errors") == {}, answer  # validates: nodes, inputs, file names
    prompt_id = answer["prompt_id"]
    deadline = time.monotonic() + timeout
    while True:
        _, history = _request(f"{url}/history/{prompt_id}")
        entry = history.get(prompt_id)
        if entry and entry["status"].get("completed") is not None and entry["status"].get("status_str") in ("success", "error"):
            break
        assert time.monotonic() < deadline, f"no result after {timeout} s:\n{log.read_text()[-3000:]}"
        time.sleep(1)
    errors = [m[1] for m in entry["status"]["messages"] if m[0] == "execution_error"]
    assert not errors, "{node_type} (node {node_id}): {exception_message}\n".format(**errors[0]) + \
        "".join(errors[0].get("traceback", []))[-3000:]
    return entry


@needs_pack
def test_exported_workflow_renders_an_mp4_with_sound(server, exported, tree, home, tmp_path) -> None:
    url, log = server
    prompt = json.loads(api_path(exported).read_text())
    # the text encoder nodes only: contexts precomputed by ltxic's text encoder, loaded by the test-only node
    by_type: dict[str, list[str]] = {}
    for node_id, node in prompt.items():
        by_type.setdefault(node["class_type"], []).append(node_id)
    (te,) = by_type.pop("LTXAVTextEncoderLoader")
    del prompt[te]
    texts = {node_id: prompt[node_id]["inputs"]["text"] for node_id in by_type["CLIPTextEncode"]}
    contexts = _contexts(tree, texts, tmp_path)
    for node_id, path in contexts.items():
        prompt[node_id] = {"class_type": "LTXICPrecomputedConditioning", "inputs": {"path": str(path)}}
    assert not any(v == [te, 0] for node in prompt.values() for v in node["inputs"].values())
    ran = {node["class_type"] for node in prompt.values()}
    assert {"CheckpointLoaderSimple", "LTXICLoRALoaderModelOnly", "LTXAddVideoICLoRAGuide", "LTXVReferenceAudio",
            "LoadImage", "LoadAudio", "SamplerCustomAdvanced", "LTXVCropGuides", "VAEDecode", "LTXVAudioVAEDecode",
            "CreateVideo", "SaveVideo"} <= ran

    _run(url, log, prompt)
    videos = sorted((home / "output").rglob("*.mp4"))
    assert len(videos) == 1, videos
    info = media.probe_video(videos[0])
    assert info.has_audio and (info.width, info.height, info.frames) == (WIDTH, HEIGHT, FRAMES), info
    frames = media.read_video(videos[0]).astype(np.float32)
    assert frames.shape == (FRAMES, HEIGHT, WIDTH, 3)
    assert frames.std() > 1.0 and np.abs(np.diff(frames, axis=0)).mean() > 0.0  # not one flat colour, not a still
    waveform = media.read_video_audio(videos[0]).numpy()
    seconds = waveform.shape[-1] / info.audio_sample_rate
    assert abs(seconds - FRAMES / 24) < 0.15, seconds  # about as long as the video
    assert np.sqrt(np.mean(waveform ** 2)) > 1e-4 and waveform.std() > 1e-4  # not silent, not constant
