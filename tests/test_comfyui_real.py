"""The trained LoRA and the exported workflow in a REAL ComfyUI (its own source, pinned), headless on the CPU.

ComfyUI's core (``comfy/``, ``nodes.py``, ``server.py``) is not on PyPI at any recent commit (PyPI's ``comfyui`` is a
yanked 0.0.1 of 2024 without LTX-2; ``comfy-cli`` and ``comfy-diffusion`` download the source from GitHub at run time),
so these tests run where a checkout is given, and are skipped otherwise (CI has no GitHub):

    LTXIC_COMFYUI_DIR=/path/to/ComfyUI   # comfyanonymous/ComfyUI at COMFYUI_COMMIT, with Lightricks/ComfyUI-LTXVideo
                                         # at LTXVIDEO_COMMIT in its custom_nodes/ (or LTXIC_COMFYUI_LTXVIDEO_DIR)
    pip install -c constraints.txt -r $LTXIC_COMFYUI_DIR/requirements.txt "kornia==0.8.2"
    pytest -m comfyui

What runs, on the miniature of the official files (``ltxic.models.miniature``) and LoRAs made by ``ltxic train`` on it:

1. LoRA keys: ComfyUI's checkpoint loader detects the miniature transformer (config from the file's metadata), and
   ``LoraLoaderModelOnly`` and ComfyUI-LTXVideo's ``LTXICLoRALoaderModelOnly`` patch it: no "lora key not loaded",
   every module in the file patched, and ComfyUI's patched weights equal ltxic's own merge at the same strength.
2. Reference factor: the IC-LoRA loader's ``latent_downscale_factor`` equals the trained one, for 1 and 2.
3. Workflow: ``ltxic export-comfyui`` writes both forms; the API form POSTed to a ComfyUI server on a loopback port
   validates (every node and input known, every file name listed); the UI form is refused there; the node
   definitions ComfyUI serves match ``ltxic.sampling.comfyui.NODE_SPECS``. The run to a video cannot finish on the
   miniature: ComfyUI builds the LTX-2 latent formats (128 video / 8x16 audio channels) and the Gemma 3 12B text
   encoder (3840 x 48 layers) at fixed sizes, so its loaders reject miniature-sized VAEs and Gemma. That step is
   an expected failure while the error is that size mismatch, and a failure for any other error.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from ltxic.models import ltx23
from ltxic.cli import main
from ltxic.sampling.comfyui import NODE_SPECS, api_path
from ltxic.training.config import example_config
from ltxic.models.lora import load_lora, merge_lora, read_lora_metadata
from ltxic.models.miniature import build_miniature

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data_samples"
PROBE = Path(__file__).resolve().parent / "comfyui_probe.py"

# The pinned sources: ComfyUI 0.20.1 (2026-05-10) and ComfyUI-LTXVideo of 2026-05-11.
COMFYUI_COMMIT = "aa9d2fc713664e9ffe37763f4c9240c0c3eda667"
COMFYUI_VERSION = "0.20.1"
LTXVIDEO_COMMIT = "229437c6b65796d6a7a63ae34be2bd5ba31fa543"
STRENGTH = 0.7


def _sources() -> tuple[Path, Path]:
    comfy = os.environ.get("LTXIC_COMFYUI_DIR")
    if not comfy:
        pytest.skip("no ComfyUI source: ComfyUI's core is not installable from PyPI; set LTXIC_COMFYUI_DIR to a checkout "
                    f"of comfyanonymous/ComfyUI at {COMFYUI_COMMIT} (see this file's docstring)")
    comfy_dir = Path(comfy)
    if not (comfy_dir / "main.py").is_file() or not (comfy_dir / "comfy" / "sd.py").is_file():
        pytest.fail(f"LTXIC_COMFYUI_DIR={comfy}: not a ComfyUI source folder (no main.py / comfy/sd.py)")
    found = re.search(r'__version__\s*=\s*"([^"]+)"', (comfy_dir / "comfyui_version.py").read_text())
    version = found.group(1) if found else None
    if version != COMFYUI_VERSION:
        pytest.fail(f"LTXIC_COMFYUI_DIR={comfy}: ComfyUI {version}, the harness is pinned to "
                    f"{COMFYUI_VERSION} (commit {COMFYUI_COMMIT}); check out that commit")
    pack = Path(os.environ.get("LTXIC_COMFYUI_LTXVIDEO_DIR", comfy_dir / "custom_nodes" / "ComfyUI-LTXVideo"))
    if not (pack / "iclora.py").is_file():
        pytest.fail(f"{pack}: no ComfyUI-LTXVideo node pack there; put Lightricks/ComfyUI-LTXVideo at {LTXVIDEO_COMMIT} "
                    "in ComfyUI's custom_nodes/ or set LTXIC_COMFYUI_LTXVIDEO_DIR")
    missing = [m for m in ("aiohttp", "torchsde", "torchvision", "kornia", "comfy_aimdo", "comfyui_frontend_package")
               if subprocess.run([sys.executable, "-c", f"import {m}"], capture_output=True).returncode]
    if missing:
        pytest.fail(f"ComfyUI's requirements are not installed ({missing}): pip install -c constraints.txt "
                    f"-r {comfy_dir / 'requirements.txt'} kornia==0.8.2")
    return comfy_dir, pack


pytestmark = [pytest.mark.comfyui, pytest.mark.slow]


@pytest.fixture(scope="module")
def sources() -> tuple[Path, Path]:
    return _sources()


@pytest.fixture(scope="module")
def tree(sources, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mini")
    build_miniature(root)
    return root


def _train(tree: Path, out: Path, factor: int) -> Path:
    """A LoRA from `ltxic train` on the miniature: the shipped LTX-2.3 config, 2 steps at a high rate (a clear delta)."""
    data = json.loads((DATA / "dataset.json").read_text())
    entries = [e for e in data["entries"] if e["identity"] == "ava"][:2]
    for e in entries:
        for k in ("video_path", "reference_image", "reference_audio"):
            e[k] = str(DATA / e[k])
    data["entries"], data["identities"] = entries, {"ava": data["identities"]["ava"]}
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


@pytest.fixture(scope="module")
def loras(tree, tmp_path_factory) -> dict[int, Path]:
    base = tmp_path_factory.mktemp("train")
    return {factor: _train(tree, base / f"factor{factor}", factor) for factor in (1, 2)}


@pytest.fixture(scope="module")
def home(sources, tree, loras, tmp_path_factory) -> Path:
    """A ComfyUI base directory: the miniature's files under models/, the trained LoRAs in models/loras/ltxic/."""
    _, pack = sources
    h = tmp_path_factory.mktemp("comfy_home")
    for rel in (ltx23.CHECKPOINT_FILE, ltx23.DISTILLED_LORA_FILE, ltx23.SPATIAL_UPSAMPLER_FILE,
                "models/text_encoders/gemma_3_12B_it_fp4_mixed.safetensors"):
        (h / rel).parent.mkdir(parents=True, exist_ok=True)
        (h / rel).symlink_to(tree / rel)
    (h / "models/loras/ltxic").mkdir(parents=True)
    for factor, lora in loras.items():
        shutil.copy(lora, h / f"models/loras/ltxic/identity_ref{factor}.safetensors")
    (h / "custom_nodes").mkdir()
    (h / "custom_nodes" / "ComfyUI-LTXVideo").symlink_to(pack.resolve())
    (h / "input").mkdir()
    return h


@pytest.mark.parametrize("factor", [1, 2])
def test_lora_loads_with_every_key_and_patches_like_ltxic(sources, tree, loras, home, tmp_path, factor) -> None:
    comfy_dir, _ = sources
    out = tmp_path / "probe"
    name = f"ltxic/identity_ref{factor}.safetensors"
    proc = subprocess.run([sys.executable, str(PROBE), "--comfyui", str(comfy_dir), "--base-directory", str(home),
                           "--checkpoint", Path(ltx23.CHECKPOINT_FILE).name, "--lora", name, "--strength", str(STRENGTH),
                           "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads((out / "report.json").read_text())
    assert report["image_model"] == "ltxav" and report["model_class"].endswith("av_model.LTXAVModel")
    assert set(report["loaders"]) == {"LoraLoaderModelOnly", "LTXICLoRALoaderModelOnly"}

    # ltxic's own merge of the same file at the same strength, in float32 (the miniature is bf16: exact)
    model = ltx23.load_transformer(tree / ltx23.CHECKPOINT_FILE, dtype=torch.float32)
    modules = load_lora(model, loras[factor], strength=STRENGTH)
    merged = merge_lora(model).state_dict()
    base = load_file(str(out / "base.safetensors"))
    assert read_lora_metadata(loras[factor])["reference_downscale_factor"] == str(factor)
    for loader, r in report["loaders"].items():
        assert r["not_loaded"] == [], (loader, r["not_loaded"][:5])
        assert r["patched_outside_diffusion_model"] == [], loader
        assert r["patched"] == sorted(f"{m}.weight" for m in modules), loader  # every module in the file, nothing else
        got = load_file(str(out / f"{loader}.safetensors"))
        for key, w in got.items():
            assert not torch.equal(merged[key], base[key]), key  # the LoRA changes this weight...
            assert torch.allclose(w, merged[key], rtol=0, atol=1e-6), (loader, key, (w - merged[key]).abs().max())
    # 2. the factor ComfyUI-LTXVideo's IC-LoRA loader reads (and feeds to LTXAddVideoICLoRAGuide)
    assert report["loaders"]["LTXICLoRALoaderModelOnly"]["latent_downscale_factor"] == float(factor)


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
                                 "--base-directory", str(home), "--disable-auto-launch"],
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


def test_node_definitions_served_match_ours(server) -> None:
    url, _ = server
    status, info = _request(f"{url}/object_info")
    assert status == 200
    for node_type, spec in NODE_SPECS.items():
        assert node_type in info, f"ComfyUI has no node {node_type}"
        node = info[node_type]
        order = node["input_order"].get("required", []) + node["input_order"].get("optional", [])
        for name, _ in spec.inputs + spec.widgets:
            assert name in order or name in spec.ui_only_widgets, (node_type, name, order)
        widgets = [n for n, _ in spec.widgets if n not in spec.ui_only_widgets]
        assert [n for n in order if n in widgets] == widgets, (node_type, order)  # widgets_values order
        assert list(node["output_name"]) == [n for n, _ in spec.outputs] or list(node["output"]) == [t for _, t in spec.outputs], node_type


def test_exported_workflow_validates_and_runs(server, home, loras, tmp_path, capsys) -> None:
    url, log = server
    ui = tmp_path / "workflow.json"
    ref_image, ref_audio = DATA / "refs/ava.jpg", DATA / "voice/ava_1.wav"
    lora = home / "models/loras/ltxic/identity_ref2.safetensors"
    assert main(["export-comfyui", "--lora", str(lora), "--out", str(ui), "--reference-image", str(ref_image),
                 "--reference-audio", str(ref_audio), "--lora-subfolder", "ltxic"]) == 0
    for ref in (ref_image, ref_audio):
        shutil.copy(ref, home / "input" / ref.name)
    prompt = json.loads(api_path(ui).read_text())
    # small enough for a CPU: 64x64, 9 frames
    for node in prompt.values():
        if node["class_type"] == "EmptyLTXVLatentVideo":
            node["inputs"].update(width=64, height=64, length=9)
        elif node["class_type"] == "LTXVEmptyLatentAudio":
            node["inputs"].update(frames_number=9)

    status, answer = _request(f"{url}/prompt", {"prompt": json.loads(ui.read_text())})
    assert status >= 400, answer  # the UI form is for the editor: the HTTP API refuses it (this ComfyUI: 500)
    status, answer = _request(f"{url}/prompt", {"prompt": prompt})
    assert status == 200 and answer.get("node_errors") == {}, answer  # 3. validates: nodes, inputs, file names
    prompt_id = answer["prompt_id"]

    deadline = time.monotonic() + 540
    while True:
        _, history = _request(f"{url}/history/{prompt_id}")
        if prompt_id in history and history[prompt_id]["status"].get("completed") is not None and \
                history[prompt_id]["status"].get("status_str") in ("success", "error"):
            break
        assert time.monotonic() < deadline, f"no result after 540 s:\n{log.read_text()[-3000:]}"
        time.sleep(1)
    status = history[prompt_id]["status"]
    errors = [m[1] for m in status["messages"] if m[0] == "execution_error"]
    if errors:
        err = errors[0]
        message = f"{err['node_type']} (node {err['node_id']}): {err['exception_message'].strip()}"
        if "size mismatch" in err["exception_message"] and err["node_type"] in (
                "CheckpointLoaderSimple", "LTXVAudioVAELoader", "LTXAVTextEncoderLoader"):
            pytest.xfail(f"ComfyUI's LTX-2 loaders are fixed-size, the miniature is not: {message}")
        pytest.fail(message)
    videos = list((home / "output").rglob("*.mp4"))
    assert videos, "the workflow finished but wrote no video"
    from ltxic.io import media

    assert media.probe_video(videos[0]).has_audio
