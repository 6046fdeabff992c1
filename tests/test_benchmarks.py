"""benchmarks/real_scale.py: every section runs in --tiny mode on the CPU; real shapes and facts are right."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import ltxic

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("real_scale", ROOT / "benchmarks" / "real_scale.py")
real_scale = importlib.util.module_from_spec(spec)
sys.modules["real_scale"] = real_scale
spec.loader.exec_module(real_scale)


def by_setting(results: list[dict], section: str) -> dict[str, dict]:
    return {r["setting"]: r for r in results if r["section"] == section}


def test_tiny_inference_and_fp8_quick(tmp_path: Path) -> None:
    code = real_scale.main(["--tiny", "--out", str(tmp_path), "--sections", "build,inference,fp8",
                            "--repeats", "1", "--warmup", "0"])
    results = json.loads((tmp_path / "results.json").read_text())["results"]
    assert code == 0 and [r["status"] for r in results] == ["ok"] * 5
    assert by_setting(results, "fp8")["tiny_64x64x9"]["block_linear_dtype"] == "torch.float8_e4m3fn"


# Everything ltx-core declares but the script must not need (the GPU run carries only REQUIREMENTS-gpu.txt).
HIDDEN = ["transformers", "accelerate", "scipy", "torchaudio", "tqdm", "PIL", "huggingface_hub", "tokenizers",
          "ltx_pipelines", "av", "soundfile", "cv2", "matplotlib", "moviepy", "pydantic", "yaml"]


@pytest.mark.slow  # ~20 s alone, up to a minute on a loaded 2-core machine
def test_every_section_with_only_the_gpu_wheels(tmp_path: Path) -> None:
    """All sections run in --tiny mode with the packages outside REQUIREMENTS-gpu.txt hidden.

    If this fails with an ImportError after a merge, something on the import path needs another wheel:
    add its pin to benchmarks/REQUIREMENTS-gpu.txt (and drop it from HIDDEN).
    """
    argv = ["--tiny", "--out", str(tmp_path), "--repeats", "2", "--warmup", "0", "--ref-audio-seconds", "1"]
    code = (f"import sys, runpy\nfor name in {HIDDEN!r}: sys.modules[name] = None\n"
            f"sys.argv = ['real_scale.py'] + {argv!r}\n"
            "runpy.run_path('benchmarks/real_scale.py', run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())["results"]
    assert {r["section"] for r in results} == set(real_scale.SECTIONS)
    skipped = {r["setting"] for r in results if r["status"] == "skipped"}
    assert skipped == {"text_projection_and_connectors", "audio_vae_encoder", "audio_vae_decoder", "vocoder_with_bwe"}
    assert all(r["status"] == "ok" for r in results if r["setting"] not in skipped)
    assert by_setting(results, "components")["transformer"]["params"] == 18_988_838_144

    inference = by_setting(results, "inference")
    first = inference["tiny_128x96x17"]
    # 17 frames of 96x128 -> 3x3x4 latents; the 48x64 reference image (downscale 2) adds 2x2 tokens
    assert first["video_target_tokens"] == 36 and first["video_tokens"] == 40
    assert first["audio_target_tokens"] == 18 and first["audio_tokens"] == 18 + 25
    assert len(first["times_s"]) == 2 and first["median_s"] > 0 and first["outputs_finite"]

    fp8 = by_setting(results, "fp8")["tiny_128x96x17"]
    assert fp8["block_linear_dtype"] == "torch.float8_e4m3fn"
    assert fp8["weights_gib"] < first["weights_gib"]


def test_components_add_up_to_22b(tmp_path: Path) -> None:
    """The 22B of the name = 18.99 B transformer + 3.17 B text projection and connectors in the same file."""
    rec = real_scale.Recorder(tmp_path, torch.device("cpu"), {})
    real_scale.section_components(rec, None)
    comp = by_setting(rec.data["results"], "components")
    assert comp["transformer"]["params"] == 18_988_838_144
    text = comp["text_projection_and_connectors"]["params"]
    assert 3.1e9 < text < 3.25e9
    assert 22.0e9 < comp["transformer"]["params"] + text < 22.3e9
    audio_decode = importlib.util.find_spec("torchaudio") is not None
    assert comp["vocoder_with_bwe"]["status"] == ("ok" if audio_decode else "skipped")


def test_out_of_memory_is_recorded_and_the_run_goes_on(tmp_path: Path) -> None:
    rec = real_scale.Recorder(tmp_path, torch.device("cpu"), {})

    def too_big() -> dict:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB")

    rec.run("inference", "huge", too_big, shape={"width": 4096})
    rec.run("inference", "small", lambda: {"median_s": 0.1})
    saved = json.loads((tmp_path / "results.json").read_text())["results"]
    assert [(r["setting"], r["status"]) for r in saved] == [("huge", "oom"), ("small", "ok")]
    assert saved[0]["shape"] == {"width": 4096} and "80.00 GiB" in saved[0]["reason"]


def test_real_shapes_token_counts() -> None:
    """960x544x121 at 24 fps is 16x17x30 = 8160 video tokens and 126 audio tokens (5.04 s)."""
    scale = real_scale.real_scale(2, 5.0)
    cfg = ltxic.preset_config("ltx-2.3-22b")
    for setting in scale.inference:
        ltxic.VideoGeometry().latent_size(setting.frames, setting.height, setting.width)  # valid VAE sizes
    full = real_scale.make_inputs(cfg, scale, scale.inference[0], torch.device("cpu"), torch.bfloat16)
    assert full.video_target == 8160 and full.audio_target == 126
    assert full.video.latent.shape == (1, 8160 + 9 * 15, 128)  # reference image: 480x288 -> 9x15 latents
    assert full.audio.latent.shape == (1, 126 + 125, 128)  # + 5 s of reference voice
    assert full.video.context.shape == (1, 1024, 4096) and full.audio.context.shape == (1, 1024, 2048)
    assert torch.all(full.video.timesteps[0, 8160:] == 0) and torch.all(full.video.timesteps[0, :8160] > 0)
    # reference positions are scaled onto the target grid: its last column sits near the target's right edge
    assert full.video.positions[0, 2, 8160:].max() >= 0.9 * full.video.positions[0, 2, :8160].max()
    assert scale.inference[1].height == 288
