"""Runs INSIDE a real ComfyUI (its source on sys.path): load a checkpoint's MODEL and apply a LoRA through ComfyUI's
own nodes, then report what ComfyUI did. Started by tests/test_comfyui_real.py as a subprocess:

    python tests/comfyui_probe.py --comfyui SRC --base-directory HOME --checkpoint NAME [--lora NAME ...]
        --strength S --out DIR

HOME is a ComfyUI base directory (``models/``, ``custom_nodes/``). For the i-th LoRA (ComfyUI is started once for all)
writes ``DIR/<i>/report.json`` (the "lora key not loaded" lines ComfyUI logged, the factor the IC-LoRA loader returned,
which weights each loader patched) and ``DIR/<i>/<loader>.safetensors`` (the patched weights, float32, under the
diffusion model's own names) plus ``DIR/<i>/base.safetensors`` (the same weights unpatched). Writes
``DIR/vae.json``: what ComfyUI's own loaders and decode nodes made of the checkpoint's video and audio VAEs (the
shapes decoded from small empty latents). Only ComfyUI-LTXVideo's IC-LoRA loader needs that node pack: without it,
the other loaders are still probed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _probe(model, nodes, capture: _Capture, lora: str, strength: float, out: Path) -> None:
    import torch
    from safetensors.torch import save_file

    diffusion = model.model.diffusion_model
    report: dict = {
        "model_class": f"{type(diffusion).__module__}.{type(diffusion).__name__}",
        "image_model": model.model.model_config.unet_config.get("image_model"),
        "loaders": {},
    }

    def weights(names: list[str]) -> dict[str, torch.Tensor]:
        sd = diffusion.state_dict()
        return {n: sd[n].detach().float().contiguous().clone() for n in names}

    runs = {"LoraLoaderModelOnly": lambda: (nodes.LoraLoaderModelOnly().load_lora_model_only(model, lora, strength)[0], None)}
    if "LTXICLoRALoaderModelOnly" in nodes.NODE_CLASS_MAPPINGS:
        ic = nodes.NODE_CLASS_MAPPINGS["LTXICLoRALoaderModelOnly"]

        def run_ic():
            result = ic.execute(model, lora, strength)
            values = getattr(result, "result", result)
            return values[0], float(values[1])

        runs["LTXICLoRALoaderModelOnly"] = run_ic
    patched_names: set[str] = set()
    out.mkdir(parents=True, exist_ok=True)
    for loader, run in runs.items():
        start = len(capture.lines)
        patcher, factor = run()
        names = sorted(k[len("diffusion_model."):] for k in patcher.patches if k.startswith("diffusion_model."))
        other = sorted(k for k in patcher.patches if not k.startswith("diffusion_model."))
        logged = capture.lines[start:]
        patcher.patch_model()  # ComfyUI's own weight update (comfy.lora.calculate_weight), in place
        save_file(weights(names), str(out / f"{loader}.safetensors"))
        patcher.unpatch_model()
        patched_names |= set(names)
        report["loaders"][loader] = {
            "not_loaded": [line for line in logged if "lora key not loaded" in line],
            "patched": names,
            "patched_outside_diffusion_model": other,
            "latent_downscale_factor": factor,
        }
    save_file(weights(sorted(patched_names)), str(out / "base.safetensors"))
    report["log"] = capture.lines
    (out / "report.json").write_text(json.dumps(report, indent=1))


def _vaes(nodes, checkpoint: str, vae, out: Path) -> None:
    """The checkpoint's video VAE (from ComfyUI's checkpoint loader) and audio VAE (``LTXVAudioVAELoader``), each
    decoding a small empty latent through ComfyUI's own decode node."""
    import torch

    def run(node: str, **inputs):
        result = nodes.NODE_CLASS_MAPPINGS[node].execute(**inputs)
        return getattr(result, "result", result)[0]

    images = nodes.VAEDecode().decode(vae, {"samples": torch.zeros(1, vae.latent_channels, 2, 2, 2)})[0]
    audio_vae = run("LTXVAudioVAELoader", ckpt_name=checkpoint)
    latent = run("LTXVEmptyLatentAudio", frames_number=9, frame_rate=24, batch_size=1, audio_vae=audio_vae)
    audio = run("LTXVAudioVAEDecode", samples=latent, audio_vae=audio_vae)
    (out / "vae.json").write_text(json.dumps({
        "video": {"latent_channels": vae.latent_channels, "decoded": list(images.shape)},
        "audio": {"latent": list(latent["samples"].shape), "decoded": list(audio["waveform"].shape),
                  "sample_rate": audio["sample_rate"]},
    }, indent=1))


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--comfyui", required=True, type=Path)
    p.add_argument("--base-directory", required=True, type=Path)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--lora", action="append", default=[])
    p.add_argument("--strength", type=float, default=1.0)
    p.add_argument("--out", required=True, type=Path)
    a = p.parse_args()

    capture = _Capture()
    logging.getLogger().addHandler(capture)
    logging.getLogger().setLevel(logging.INFO)
    # ComfyUI reads its command line at import time (comfy.cli_args), as main.py does.
    sys.argv = [str(a.comfyui / "main.py"), "--cpu", "--base-directory", str(a.base_directory)]
    sys.path.insert(0, str(a.comfyui))
    import utils.install_util  # noqa: F401  ComfyUI's own utils package, first (as main.py does): comfy puts comfy/ on the path
    import comfy.options

    comfy.options.enable_args_parsing()
    import comfy.sd
    import folder_paths
    import nodes

    asyncio.run(nodes.init_extra_nodes(init_custom_nodes=True, init_api_nodes=False))
    ckpt = folder_paths.get_full_path_or_raise("checkpoints", a.checkpoint)
    # MODEL (what the LoRA loaders patch) and VAE; the text encoder is a separate file in ComfyUI
    model, _, vae = comfy.sd.load_checkpoint_guess_config(ckpt, output_vae=True, output_clip=False)[:3]
    a.out.mkdir(parents=True, exist_ok=True)
    _vaes(nodes, a.checkpoint, vae, a.out)
    for i, lora in enumerate(a.lora):
        _probe(model, nodes, capture, lora, a.strength, a.out / str(i))
    return 0


if __name__ == "__main__":
    sys.exit(main())
