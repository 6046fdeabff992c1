"""ComfyUI workflow export: node types, input names and types, links, LoRA name.

The expected names below were written down from the sources, not from ltxic.sampling.comfyui:
* ComfyUI ``comfy_extras/nodes_lt.py`` (LTXVReferenceAudio, LTXVConditioning, EmptyLTXVLatentVideo,
  LTXVConcatAVLatent, LTXVSeparateAVLatent, LTXVCropGuides), ``comfy_extras/nodes_lt_audio.py``
  (LTXVAudioVAELoader, LTXVEmptyLatentAudio, LTXVAudioVAEDecode, LTXAVTextEncoderLoader),
  ``comfy_extras/nodes_custom_sampler.py`` (RandomNoise, CFGGuider, KSamplerSelect, ManualSigmas,
  SamplerCustomAdvanced), ``comfy_extras/nodes_video.py`` (CreateVideo, SaveVideo), ``nodes.py``.
* Lightricks/ComfyUI-LTXVideo ``iclora.py`` (LTXICLoRALoaderModelOnly, LTXAddVideoICLoRAGuide) and its
  ``example_workflows/2.3/LTX-2.3_ICLoRA_Union_Control_Distilled.json`` (the loader's FLOAT output wired to the
  guide's ``latent_downscale_factor``; widget order frame_idx, strength, latent_downscale_factor, crop,
  use_tiled_encode, tile_size, tile_overlap).
"""

from __future__ import annotations

import json

import pytest

from ltxic.sampling.comfyui import DISTILLED_LORA_NAME, DISTILLED_SIGMAS, build_workflow, export_workflow, to_api_prompt
from ltxic.sampling.generate import GenerateConfig
from ltxic.sampling.sampler import SamplingConfig, sigma_schedule
from tests.inference_kit import DATA, make_lora

# node type -> (linked inputs, widget inputs, outputs), from the sources named above
SOURCE = {
    "LTXICLoRALoaderModelOnly": (["model"], ["lora_name", "strength_model"], ["model", "latent_downscale_factor"]),
    "LTXAddVideoICLoRAGuide": (["positive", "negative", "vae", "latent", "image"],
                               ["frame_idx", "strength", "latent_downscale_factor", "crop", "use_tiled_encode", "tile_size", "tile_overlap"],
                               ["positive", "negative", "latent"]),
    "LTXVReferenceAudio": (["model", "positive", "negative", "reference_audio", "audio_vae"],
                           ["identity_guidance_scale", "start_percent", "end_percent"], ["MODEL", "positive", "negative"]),
    "LTXVAudioVAELoader": ([], ["ckpt_name"], ["Audio VAE"]),
    "LTXVEmptyLatentAudio": (["audio_vae"], ["frames_number", "frame_rate", "batch_size"], ["Latent"]),
    "LTXVAudioVAEDecode": (["samples", "audio_vae"], [], ["Audio"]),
    "LTXAVTextEncoderLoader": ([], ["text_encoder", "ckpt_name", "device"], ["CLIP"]),
    "CheckpointLoaderSimple": ([], ["ckpt_name"], ["MODEL", "CLIP", "VAE"]),
    "LoraLoaderModelOnly": (["model"], ["lora_name", "strength_model"], ["MODEL"]),
    "CLIPTextEncode": (["clip"], ["text"], ["CONDITIONING"]),
    "LTXVConditioning": (["positive", "negative"], ["frame_rate"], ["positive", "negative"]),
    "EmptyLTXVLatentVideo": ([], ["width", "height", "length", "batch_size"], ["LATENT"]),
    "LoadImage": ([], ["image", "upload"], ["IMAGE", "MASK"]),
    "LoadAudio": ([], ["audio"], ["AUDIO"]),
    "LTXVConcatAVLatent": (["video_latent", "audio_latent"], [], ["latent"]),
    "RandomNoise": ([], ["noise_seed"], ["NOISE"]),
    "CFGGuider": (["model", "positive", "negative"], ["cfg"], ["GUIDER"]),
    "KSamplerSelect": ([], ["sampler_name"], ["SAMPLER"]),
    "ManualSigmas": ([], ["sigmas"], ["SIGMAS"]),
    "SamplerCustomAdvanced": (["noise", "guider", "sampler", "sigmas", "latent_image"], [], ["output", "denoised_output"]),
    "LTXVSeparateAVLatent": (["av_latent"], [], ["video_latent", "audio_latent"]),
    "LTXVCropGuides": (["positive", "negative", "latent"], [], ["positive", "negative", "latent"]),
    "VAEDecode": (["samples", "vae"], [], ["IMAGE"]),
    "CreateVideo": (["images", "audio"], ["fps"], ["VIDEO"]),
    "SaveVideo": (["video"], ["filename_prefix", "format", "codec"], []),
}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("comfy")
    lora = make_lora(root / "ava_identity_step_002000.safetensors", factor=2)
    path = export_workflow(lora, root / "workflow.json", reference_image=DATA / "refs" / "ava.jpg",
                           reference_audio=DATA / "voice" / "ava_0.wav", prompt="A person speaks.", lora_subfolder="ltxic")
    return json.loads(path.read_text()), lora


def test_nodes_and_input_names_match_the_sources(exported):
    wf, _ = exported
    for node in wf["nodes"]:
        linked, widgets, outputs = SOURCE[node["type"]]
        names = [i["name"] for i in node["inputs"]]
        assert names[: len(linked)] == linked, node["type"]
        assert all(n in widgets for n in names[len(linked):]), node["type"]  # widgets turned into inputs
        assert [o["name"] for o in node["outputs"]] == outputs, node["type"]
        extra = 1 if node["type"] == "RandomNoise" else 0  # control_after_generate
        assert len(node["widgets_values"]) == len(widgets) + extra, node["type"]
    types = {n["type"] for n in wf["nodes"]}
    assert {"LTXICLoRALoaderModelOnly", "LTXAddVideoICLoRAGuide", "LTXVReferenceAudio", "CheckpointLoaderSimple",
            "CLIPTextEncode", "SamplerCustomAdvanced", "VAEDecode", "SaveVideo"} <= types


def test_links_are_consistent(exported):
    wf, _ = exported
    nodes = {n["id"]: n for n in wf["nodes"]}
    assert wf["last_link_id"] == len(wf["links"]) and wf["last_node_id"] == max(nodes)
    for link_id, src, src_slot, dst, dst_slot, ltype in wf["links"]:
        out, inp = nodes[src]["outputs"][src_slot], nodes[dst]["inputs"][dst_slot]
        assert link_id in out["links"] and inp["link"] == link_id
        assert out["type"] == inp["type"] == ltype
    # every required linked input is connected (CreateVideo's audio is optional, but wired here)
    for node in wf["nodes"]:
        for slot in node["inputs"][: len(SOURCE[node["type"]][0])]:
            assert slot["link"] is not None, (node["type"], slot["name"])


def test_lora_name_factor_and_wiring(exported):
    wf, lora = exported
    by_type = {}
    for n in wf["nodes"]:
        by_type.setdefault(n["type"], []).append(n)
    loader = by_type["LTXICLoRALoaderModelOnly"][0]
    assert loader["widgets_values"][0] == f"ltxic/{lora.name}"
    guide = by_type["LTXAddVideoICLoRAGuide"][0]
    assert guide["widgets_values"][2] == 2.0 and guide["widgets_values"][3] == "center"
    api = to_api_prompt(wf)
    g = api[str(guide["id"])]["inputs"]
    assert g["latent_downscale_factor"] == [str(loader["id"]), 1]  # the FLOAT output drives the guide
    ref = api[str(by_type["LTXVReferenceAudio"][0]["id"])]["inputs"]
    assert ref["model"] == [str(loader["id"]), 0]
    assert api[str(by_type["LoadImage"][0]["id"])]["inputs"] == {"image": "ava.jpg"}
    assert api[str(by_type["LoadAudio"][0]["id"])]["inputs"] == {"audio": "ava_0.wav"}
    assert api[str(by_type["RandomNoise"][0]["id"])]["inputs"] == {"noise_seed": 42}


def test_cli_export(tmp_path, capsys):
    from ltxic.cli import main

    lora = make_lora(tmp_path / "me.safetensors")
    assert main(["export-comfyui", "--lora", str(lora), "--out", str(tmp_path / "wf.json")]) == 0
    out = capsys.readouterr().out
    assert "ComfyUI/models/loras/me.safetensors" in out and "wf_api.json (API form" in out
    ui, api = json.loads((tmp_path / "wf.json").read_text()), json.loads((tmp_path / "wf_api.json").read_text())
    assert "nodes" in ui and "links" in ui  # the editor's form
    assert api == to_api_prompt(ui) and all(set(n) == {"class_type", "inputs"} for n in api.values())  # /prompt's form
    assert main(["export-comfyui", "--lora", str(tmp_path / "missing.safetensors"), "--out", str(tmp_path / "x.json")]) == 1


def test_file_names_are_those_the_download_fetches(exported):
    """ComfyUI rejects a file name it does not list ("Value not in list"): each model file the workflow names must be
    the one `ltxic download` puts in the tree. (It named comfy_gemma_3_12B_it.safetensors, which nothing fetches.)"""
    from pathlib import PurePosixPath

    from ltxic.data.assets import load_manifest

    targets = {f.target for asset in load_manifest() if asset.default for f in asset.files}
    wf, lora = exported
    # with the distilled recipe too: its LoRA file is named as well
    distilled = build_workflow(f"ltxic/{lora.name}", distilled_lora=DISTILLED_LORA_NAME)
    api = {**to_api_prompt(wf), **{f"d{k}": v for k, v in to_api_prompt(distilled).items()}}
    named = {
        ("checkpoints", n["inputs"]["ckpt_name"]) for n in api.values() if n["class_type"] == "CheckpointLoaderSimple"
    } | {("checkpoints", n["inputs"]["ckpt_name"]) for n in api.values() if n["class_type"] in ("LTXVAudioVAELoader", "LTXAVTextEncoderLoader")
    } | {("text_encoders", n["inputs"]["text_encoder"]) for n in api.values() if n["class_type"] == "LTXAVTextEncoderLoader"
    } | {("loras", n["inputs"]["lora_name"]) for n in api.values() if n["class_type"] == "LoraLoaderModelOnly"}
    assert len(named) == 3
    for folder, name in named:
        assert str(PurePosixPath("models", folder, name)) in targets, (folder, name)


def test_settings_are_those_ltxic_sample_uses(exported):
    """Steps, sigmas, CFG and the reference scale in the workflow are ``ltxic sample``'s for LTX-2.3 (GenerateConfig's
    kit defaults: 30 steps, video CFG 3, voice guidance 3; ltx-core's LTX2Scheduler for the workflow's 768x448x121,
    i.e. 16 x 14 x 24 video tokens); the distilled recipe only when asked for."""
    wf, _ = exported
    g = GenerateConfig().for_kit("ltx-2.3-22b")
    values = {n["type"]: n["widgets_values"] for n in wf["nodes"]}
    sigmas = [float(x) for x in values["ManualSigmas"][0].split(",")]
    expected = sigma_schedule(SamplingConfig(steps=g.steps, distilled=g.distilled), 16 * 14 * 24).tolist()
    assert len(sigmas) == g.steps + 1 and sigmas == pytest.approx(expected, abs=1e-5)
    assert sigmas[0] == 1.0 and sigmas[-1] == 0.0
    assert g.steps == 30 and values["CFGGuider"] == [g.guidance.video.cfg] == [3.0]
    assert values["LTXVReferenceAudio"][0] == g.guidance.reference_audio == 3.0
    assert "LoraLoaderModelOnly" not in values  # ltxic sample's single stage has no distilled LoRA
    assert wf["extra"]["ltxic"]["sampling"]["steps"] == g.steps

    distilled = {n["type"]: n["widgets_values"] for n in build_workflow("x.safetensors", distilled_lora=DISTILLED_LORA_NAME)["nodes"]}
    assert distilled["ManualSigmas"] == [DISTILLED_SIGMAS] and distilled["CFGGuider"] == [1.0]
    assert distilled["LoraLoaderModelOnly"] == [DISTILLED_LORA_NAME, 0.5]
