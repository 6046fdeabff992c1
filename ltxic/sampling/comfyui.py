"""Export a ComfyUI workflow that runs a trained identity IC-LoRA on LTX-2.3 with a face and a voice reference.

Two forms are written (:func:`export_workflow`): the UI ("workflow") form -- ``nodes`` with typed input/output
slots, a ``links`` table and ``widgets_values`` -- which users load by dragging the .json onto the canvas (or via
Workflow > Open), as Lightricks' own example workflows ship; and beside it the API ("prompt") form
(``<name>_api.json``, :func:`to_api_prompt`), ``{id: {class_type, inputs}}``, which a headless ComfyUI runs when it is
POSTed to ``/prompt`` as ``{"prompt": ...}``. The editor does not open the API form; the HTTP API does not take the
UI form.

The graph follows Lightricks' single-stage IC-LoRA example
(``ComfyUI-LTXVideo/example_workflows/2.3/LTX-2.3_ICLoRA_Union_Control_Distilled.json``): dev checkpoint,
IC-LoRA loader whose FLOAT ``latent_downscale_factor`` feeds the guide node, ``ManualSigmas``, ``CFGGuider``,
``SamplerCustomAdvanced`` on the concatenated audio-video latent, guides cropped before decoding. Added for identity:
ComfyUI's ``LTXVReferenceAudio`` (the voice) between the guide node and the guider.

Same settings, same meaning (:func:`sample_settings`): the steps, sigmas, CFG and reference scale are those
``ltxic sample`` uses for LTX-2.3, read from :meth:`ltxic.sampling.generate.GenerateConfig.for_kit` (LTX-2.3's
official guidance, :meth:`ltxic.sampling.guidance.Guidance.ltx23`) and ltxic's own schedule (``sigma_schedule``:
ltx-core's ``LTX2Scheduler`` shifted for the workflow's video token count), so a change there changes the export.
ComfyUI's ``CFGGuider`` takes one text scale for both streams: it gets the video stream's (LTX-2.3: 3; ltxic uses 7
on the audio stream) and this graph has no STG, modality guidance or rescale. ComfyUI's ``identity_guidance_scale`` is
ltxic's ``reference_audio`` (ID-LoRA's voice guidance, 3): ComfyUI's extra pass drops only the voice reference, as
ltxic's LTX-2.3 default does (``reference_video`` 0). The distilled LoRA (Lightricks' 8-step recipe at 0.5 with
``DISTILLED_SIGMAS``) is an option (``distilled_lora=``), off by default as in ``ltxic sample``.

Node and input names, checked in the sources (reads noted in the test docstring too):

* ComfyUI ``comfy_extras/nodes_lt.py``: ``EmptyLTXVLatentVideo`` (width, height, length, batch_size),
  ``LTXVConditioning`` (positive, negative, frame_rate), ``LTXVConcatAVLatent`` (video_latent, audio_latent),
  ``LTXVSeparateAVLatent`` (av_latent -> video_latent, audio_latent), ``LTXVCropGuides`` (positive, negative,
  latent), ``LTXVReferenceAudio`` (model, positive, negative, reference_audio, audio_vae,
  identity_guidance_scale=3.0, start_percent, end_percent -> MODEL, positive, negative).
* ComfyUI ``comfy_extras/nodes_lt_audio.py``: ``LTXVAudioVAELoader`` (ckpt_name -> "Audio VAE"),
  ``LTXVAudioVAEDecode`` (samples, audio_vae), ``LTXVEmptyLatentAudio`` (frames_number, frame_rate INT,
  batch_size, audio_vae), ``LTXAVTextEncoderLoader`` (text_encoder, ckpt_name, device).
* ComfyUI ``comfy_extras/nodes_custom_sampler.py``: ``RandomNoise`` (noise_seed, control_after_generate),
  ``KSamplerSelect`` (sampler_name), ``CFGGuider`` (model, positive, negative, cfg), ``ManualSigmas`` (sigmas
  STRING), ``SamplerCustomAdvanced`` (noise, guider, sampler, sigmas, latent_image -> output, denoised_output).
* ComfyUI ``nodes.py``: ``CheckpointLoaderSimple`` (ckpt_name -> MODEL, CLIP, VAE), ``LoraLoaderModelOnly``
  (model, lora_name, strength_model), ``CLIPTextEncode`` (text, clip), ``LoadImage`` (image, upload),
  ``VAEDecode`` (samples, vae); ``comfy_extras/nodes_audio.py`` ``LoadAudio`` (audio);
  ``comfy_extras/nodes_video.py`` ``CreateVideo`` (images, fps FLOAT, audio optional), ``SaveVideo`` (video,
  filename_prefix, format, codec).
* ComfyUI-LTXVideo ``iclora.py`` (Lightricks' node pack, not ComfyUI core): ``LTXICLoRALoaderModelOnly``
  (model, lora_name, strength_model -> model, FLOAT latent_downscale_factor read from the LoRA's
  ``reference_downscale_factor`` metadata); ``LTXAddVideoICLoRAGuide`` (positive, negative, vae, latent, image,
  frame_idx, strength, latent_downscale_factor, crop ["disabled", "center"], use_tiled_encode, tile_size,
  tile_overlap -> positive, negative, latent).
* File names: those ``ltxic download`` puts in the ComfyUI tree (``ltxic/data/assets_manifest.yaml``), since ComfyUI
  rejects a file name it does not list: ``ltx-2.3-22b-dev.safetensors`` (checkpoint and audio VAE),
  ``gemma_3_12B_it_fp4_mixed.safetensors`` (the Comfy-Org single-file text encoder; the example workflows name
  ``comfy_gemma_3_12B_it.safetensors``, a file the download does not fetch),
  ``ltx-2.3-22b-distilled-lora-384-1.1.safetensors`` (distilled LoRA, strength 0.5); distilled sigmas from the
  example workflows: ``1.0, 0.99375, 0.9875, 0.98125, 0.975, 0.909375, 0.725, 0.421875, 0.0``.

``crop`` is ``center`` because ltxic trains on cover-resized, center-cropped reference portraits.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ltxic.io.files import staged_files, write_json_atomic

PathLike = str | os.PathLike[str]
LTX23_KIT = "ltx-2.3-22b"  # the kit the exported workflow runs (ltxic.models.kit.Models.name)

DISTILLED_SIGMAS = "1.0, 0.99375, 0.9875, 0.98125, 0.975, 0.909375, 0.725, 0.421875, 0.0"
# The names `ltxic download` gives these files in the ComfyUI tree (tests check them against the manifest).
CHECKPOINT_NAME = "ltx-2.3-22b-dev.safetensors"
TEXT_ENCODER_NAME = "gemma_3_12B_it_fp4_mixed.safetensors"
DISTILLED_LORA_NAME = "ltx-2.3-22b-distilled-lora-384-1.1.safetensors"


@dataclass(frozen=True)
class NodeSpec:
    """A node's slots: linked inputs (name, type), widgets in ``widgets_values`` order, outputs (name, type).

    ``seed_widgets`` carry ComfyUI's extra ``control_after_generate`` value in the UI format.
    ``ui_only_widgets`` (e.g. LoadImage's upload button) appear in ``widgets_values`` but not in the API inputs.
    """

    inputs: tuple[tuple[str, str], ...]
    widgets: tuple[tuple[str, str], ...]
    outputs: tuple[tuple[str, str], ...]
    seed_widgets: tuple[str, ...] = ()
    ui_only_widgets: tuple[str, ...] = ()
    pack: str = "comfy-core"


NODE_SPECS: dict[str, NodeSpec] = {
    "CheckpointLoaderSimple": NodeSpec((), (("ckpt_name", "COMBO"),), (("MODEL", "MODEL"), ("CLIP", "CLIP"), ("VAE", "VAE"))),
    "LoraLoaderModelOnly": NodeSpec((("model", "MODEL"),), (("lora_name", "COMBO"), ("strength_model", "FLOAT")), (("MODEL", "MODEL"),)),
    "LTXAVTextEncoderLoader": NodeSpec((), (("text_encoder", "COMBO"), ("ckpt_name", "COMBO"), ("device", "COMBO")), (("CLIP", "CLIP"),)),
    "LTXVAudioVAELoader": NodeSpec((), (("ckpt_name", "COMBO"),), (("Audio VAE", "VAE"),)),
    "LTXICLoRALoaderModelOnly": NodeSpec(
        (("model", "MODEL"),), (("lora_name", "COMBO"), ("strength_model", "FLOAT")),
        (("model", "MODEL"), ("latent_downscale_factor", "FLOAT")), pack="ComfyUI-LTXVideo"),
    "CLIPTextEncode": NodeSpec((("clip", "CLIP"),), (("text", "STRING"),), (("CONDITIONING", "CONDITIONING"),)),
    "LTXVConditioning": NodeSpec(
        (("positive", "CONDITIONING"), ("negative", "CONDITIONING")), (("frame_rate", "FLOAT"),),
        (("positive", "CONDITIONING"), ("negative", "CONDITIONING"))),
    "LoadImage": NodeSpec((), (("image", "COMBO"), ("upload", "IMAGEUPLOAD")), (("IMAGE", "IMAGE"), ("MASK", "MASK")),
                          ui_only_widgets=("upload",)),
    "LoadAudio": NodeSpec((), (("audio", "COMBO"),), (("AUDIO", "AUDIO"),)),
    "EmptyLTXVLatentVideo": NodeSpec((), (("width", "INT"), ("height", "INT"), ("length", "INT"), ("batch_size", "INT")),
                                     (("LATENT", "LATENT"),)),
    "LTXAddVideoICLoRAGuide": NodeSpec(
        (("positive", "CONDITIONING"), ("negative", "CONDITIONING"), ("vae", "VAE"), ("latent", "LATENT"), ("image", "IMAGE")),
        (("frame_idx", "INT"), ("strength", "FLOAT"), ("latent_downscale_factor", "FLOAT"), ("crop", "COMBO"),
         ("use_tiled_encode", "BOOLEAN"), ("tile_size", "INT"), ("tile_overlap", "INT")),
        (("positive", "CONDITIONING"), ("negative", "CONDITIONING"), ("latent", "LATENT")), pack="ComfyUI-LTXVideo"),
    "LTXVReferenceAudio": NodeSpec(
        (("model", "MODEL"), ("positive", "CONDITIONING"), ("negative", "CONDITIONING"), ("reference_audio", "AUDIO"),
         ("audio_vae", "VAE")),
        (("identity_guidance_scale", "FLOAT"), ("start_percent", "FLOAT"), ("end_percent", "FLOAT")),
        (("MODEL", "MODEL"), ("positive", "CONDITIONING"), ("negative", "CONDITIONING"))),
    "LTXVEmptyLatentAudio": NodeSpec((("audio_vae", "VAE"),), (("frames_number", "INT"), ("frame_rate", "INT"), ("batch_size", "INT")),
                                     (("Latent", "LATENT"),)),
    "LTXVConcatAVLatent": NodeSpec((("video_latent", "LATENT"), ("audio_latent", "LATENT")), (), (("latent", "LATENT"),)),
    "RandomNoise": NodeSpec((), (("noise_seed", "INT"),), (("NOISE", "NOISE"),), seed_widgets=("noise_seed",)),
    "CFGGuider": NodeSpec((("model", "MODEL"), ("positive", "CONDITIONING"), ("negative", "CONDITIONING")), (("cfg", "FLOAT"),),
                          (("GUIDER", "GUIDER"),)),
    "KSamplerSelect": NodeSpec((), (("sampler_name", "COMBO"),), (("SAMPLER", "SAMPLER"),)),
    "ManualSigmas": NodeSpec((), (("sigmas", "STRING"),), (("SIGMAS", "SIGMAS"),)),
    "SamplerCustomAdvanced": NodeSpec(
        (("noise", "NOISE"), ("guider", "GUIDER"), ("sampler", "SAMPLER"), ("sigmas", "SIGMAS"), ("latent_image", "LATENT")), (),
        (("output", "LATENT"), ("denoised_output", "LATENT"))),
    "LTXVSeparateAVLatent": NodeSpec((("av_latent", "LATENT"),), (), (("video_latent", "LATENT"), ("audio_latent", "LATENT"))),
    "LTXVCropGuides": NodeSpec((("positive", "CONDITIONING"), ("negative", "CONDITIONING"), ("latent", "LATENT")), (),
                               (("positive", "CONDITIONING"), ("negative", "CONDITIONING"), ("latent", "LATENT"))),
    "VAEDecode": NodeSpec((("samples", "LATENT"), ("vae", "VAE")), (), (("IMAGE", "IMAGE"),)),
    "LTXVAudioVAEDecode": NodeSpec((("samples", "LATENT"), ("audio_vae", "VAE")), (), (("Audio", "AUDIO"),)),
    "CreateVideo": NodeSpec((("images", "IMAGE"), ("audio", "AUDIO")), (("fps", "FLOAT"),), (("VIDEO", "VIDEO"),)),
    "SaveVideo": NodeSpec((("video", "VIDEO"),), (("filename_prefix", "STRING"), ("format", "COMBO"), ("codec", "COMBO")), ()),
}


def sample_settings(width: int, height: int, frames: int) -> dict[str, Any]:
    """What ``ltxic sample`` uses for LTX-2.3 at this size (:meth:`GenerateConfig.for_kit`), as the workflow's widgets
    take it: ``steps``, ``sigmas`` (ManualSigmas' comma-separated string), ``cfg`` (CFGGuider: the video stream's text
    guidance; ComfyUI's CFGGuider has one scale for both streams) and ``identity_guidance_scale`` (LTXVReferenceAudio:
    the voice reference's scale, :attr:`Guidance.reference_audio`)."""
    from ltxic.models.latents import VideoGeometry
    from ltxic.sampling.generate import GenerateConfig
    from ltxic.sampling.sampler import SamplingConfig, sigma_schedule

    g = GenerateConfig(width=width, height=height, frames=frames).for_kit(LTX23_KIT)
    f, h, w = VideoGeometry().latent_size(frames, height, width)
    sigmas = sigma_schedule(SamplingConfig(width=width, height=height, frames=frames, steps=g.steps,
                                           distilled=g.distilled, schedule_tokens=g.schedule_tokens), f * h * w)
    return {
        "steps": len(sigmas) - 1,
        "sigmas": ", ".join(f"{float(x):.6g}" for x in sigmas),
        "cfg": g.guidance.video.cfg,
        "identity_guidance_scale": g.guidance.reference_audio,
    }


@dataclass
class _Graph:
    nodes: list[dict[str, Any]] = field(default_factory=list)
    links: list[list[Any]] = field(default_factory=list)

    def add(self, type_: str, widgets: dict[str, Any], pos: tuple[int, int], title: str | None = None) -> int:
        spec = NODE_SPECS[type_]
        unknown = set(widgets) - {w for w, _ in spec.widgets}
        if unknown:
            raise ValueError(f"{type_}: unknown widget(s) {sorted(unknown)}")
        values: list[Any] = []
        for name, _ in spec.widgets:
            values.append(widgets[name])
            if name in spec.seed_widgets:
                values.append("fixed")
        node_id = len(self.nodes) + 1
        node = {
            "id": node_id, "type": type_, "pos": list(pos), "size": [320, 120], "flags": {}, "order": node_id - 1, "mode": 0,
            "inputs": [{"name": n, "type": t, "link": None} for n, t in spec.inputs],
            "outputs": [{"name": n, "type": t, "links": [], "slot_index": i} for i, (n, t) in enumerate(spec.outputs)],
            "properties": {"Node name for S&R": type_, "cnr_id": spec.pack},
            "widgets_values": values,
        }
        if title:
            node["title"] = title
        self.nodes.append(node)
        return node_id

    def link(self, src: int, output: str, dst: int, input_: str) -> None:
        s, d = self.nodes[src - 1], self.nodes[dst - 1]
        out_slot = next(i for i, o in enumerate(s["outputs"]) if o["name"] == output)
        slots = [i for i, x in enumerate(d["inputs"]) if x["name"] == input_]
        if not slots:  # a widget turned into an input (ComfyUI keeps its value in widgets_values)
            wtype = dict(NODE_SPECS[d["type"]].widgets)[input_]
            d["inputs"].append({"name": input_, "type": wtype, "widget": {"name": input_}, "link": None})
            slots = [len(d["inputs"]) - 1]
        in_slot = slots[0]
        link_id = len(self.links) + 1
        ltype = s["outputs"][out_slot]["type"]
        self.links.append([link_id, src, out_slot, dst, in_slot, ltype])
        s["outputs"][out_slot]["links"].append(link_id)
        d["inputs"][in_slot]["link"] = link_id


def build_workflow(
    lora_name: str,
    *,
    reference_image: str = "reference.jpg",
    reference_audio: str = "reference.wav",
    prompt: str = "A person speaks to the camera in a bright room.",
    negative_prompt: str = "pc game, console game, video game, cartoon, childish, ugly",
    lora_strength: float = 1.0,
    reference_downscale_factor: float = 1.0,
    width: int = 768,
    height: int = 448,
    frames: int = 121,
    fps: float = 24.0,
    seed: int = 42,
    checkpoint: str = CHECKPOINT_NAME,
    text_encoder: str = TEXT_ENCODER_NAME,
    distilled_lora: str | None = None,
    distilled_lora_strength: float = 0.5,
    filename_prefix: str = "video/ltxic",
) -> dict[str, Any]:
    """The UI-format workflow dict (see the module docstring for the graph and its sources).

    Steps, sigmas, CFG and the reference scale are :func:`sample_settings` (``ltxic sample``'s); with
    ``distilled_lora`` the distilled recipe instead (8 steps, ``DISTILLED_SIGMAS``, cfg 1)."""
    settings = sample_settings(width, height, frames)
    if distilled_lora:
        settings.update(steps=8, sigmas=DISTILLED_SIGMAS, cfg=1.0)
    g = _Graph()
    ckpt = g.add("CheckpointLoaderSimple", {"ckpt_name": checkpoint}, (-1200, 0))
    model_src, model_out = ckpt, "MODEL"
    if distilled_lora:
        dl = g.add("LoraLoaderModelOnly", {"lora_name": distilled_lora, "strength_model": distilled_lora_strength}, (-800, 0),
                   title="Distilled LoRA")
        g.link(ckpt, "MODEL", dl, "model")
        model_src = dl
    ic = g.add("LTXICLoRALoaderModelOnly", {"lora_name": lora_name, "strength_model": lora_strength}, (-400, 0),
               title="Identity IC-LoRA (ltxic)")
    g.link(model_src, model_out, ic, "model")
    te = g.add("LTXAVTextEncoderLoader", {"text_encoder": text_encoder, "ckpt_name": checkpoint, "device": "default"}, (-1200, 300))
    avae = g.add("LTXVAudioVAELoader", {"ckpt_name": checkpoint}, (-1200, 500))
    pos = g.add("CLIPTextEncode", {"text": prompt}, (-800, 300), title="Prompt (scene and action, not the face)")
    neg = g.add("CLIPTextEncode", {"text": negative_prompt}, (-800, 500), title="Negative prompt")
    g.link(te, "CLIP", pos, "clip")
    g.link(te, "CLIP", neg, "clip")
    cond = g.add("LTXVConditioning", {"frame_rate": fps}, (-400, 300))
    g.link(pos, "CONDITIONING", cond, "positive")
    g.link(neg, "CONDITIONING", cond, "negative")
    img = g.add("LoadImage", {"image": reference_image, "upload": "image"}, (-1200, 700), title="Reference face")
    latent = g.add("EmptyLTXVLatentVideo", {"width": width, "height": height, "length": frames, "batch_size": 1}, (-800, 700))
    guide = g.add("LTXAddVideoICLoRAGuide", {
        "frame_idx": 0, "strength": 1.0, "latent_downscale_factor": reference_downscale_factor, "crop": "center",
        "use_tiled_encode": False, "tile_size": 256, "tile_overlap": 64}, (0, 300))
    g.link(cond, "positive", guide, "positive")
    g.link(cond, "negative", guide, "negative")
    g.link(ckpt, "VAE", guide, "vae")
    g.link(latent, "LATENT", guide, "latent")
    g.link(img, "IMAGE", guide, "image")
    g.link(ic, "latent_downscale_factor", guide, "latent_downscale_factor")
    voice = g.add("LoadAudio", {"audio": reference_audio}, (-1200, 900), title="Reference voice (5-15 s of speech)")
    ref = g.add("LTXVReferenceAudio", {"identity_guidance_scale": settings["identity_guidance_scale"], "start_percent": 0.0,
                                        "end_percent": 1.0}, (400, 300))
    g.link(ic, "model", ref, "model")
    g.link(guide, "positive", ref, "positive")
    g.link(guide, "negative", ref, "negative")
    g.link(voice, "AUDIO", ref, "reference_audio")
    g.link(avae, "Audio VAE", ref, "audio_vae")
    alat = g.add("LTXVEmptyLatentAudio", {"frames_number": frames, "frame_rate": int(round(fps)), "batch_size": 1}, (0, 700))
    g.link(avae, "Audio VAE", alat, "audio_vae")
    av = g.add("LTXVConcatAVLatent", {}, (400, 700))
    g.link(guide, "latent", av, "video_latent")
    g.link(alat, "Latent", av, "audio_latent")
    noise = g.add("RandomNoise", {"noise_seed": seed}, (800, 0))
    guider = g.add("CFGGuider", {"cfg": settings["cfg"]}, (800, 200))
    g.link(ref, "MODEL", guider, "model")
    g.link(ref, "positive", guider, "positive")
    g.link(ref, "negative", guider, "negative")
    sampler = g.add("KSamplerSelect", {"sampler_name": "euler"}, (800, 400))
    sigmas = g.add("ManualSigmas", {"sigmas": settings["sigmas"]}, (800, 500),
                   title=f"Sigmas ({settings['steps']} steps{', distilled' if distilled_lora else ', as ltxic sample'})")
    run = g.add("SamplerCustomAdvanced", {}, (1200, 300))
    for src, out, inp in ((noise, "NOISE", "noise"), (guider, "GUIDER", "guider"), (sampler, "SAMPLER", "sampler"),
                          (sigmas, "SIGMAS", "sigmas"), (av, "latent", "latent_image")):
        g.link(src, out, run, inp)
    sep = g.add("LTXVSeparateAVLatent", {}, (1600, 300))
    g.link(run, "output", sep, "av_latent")
    crop = g.add("LTXVCropGuides", {}, (1600, 500))
    g.link(ref, "positive", crop, "positive")
    g.link(ref, "negative", crop, "negative")
    g.link(sep, "video_latent", crop, "latent")
    vdec = g.add("VAEDecode", {}, (2000, 300))
    g.link(crop, "latent", vdec, "samples")
    g.link(ckpt, "VAE", vdec, "vae")
    adec = g.add("LTXVAudioVAEDecode", {}, (2000, 500))
    g.link(sep, "audio_latent", adec, "samples")
    g.link(avae, "Audio VAE", adec, "audio_vae")
    video = g.add("CreateVideo", {"fps": fps}, (2400, 300))
    g.link(vdec, "IMAGE", video, "images")
    g.link(adec, "Audio", video, "audio")
    save = g.add("SaveVideo", {"filename_prefix": filename_prefix, "format": "auto", "codec": "auto"}, (2800, 300))
    g.link(video, "VIDEO", save, "video")
    return {
        "last_node_id": len(g.nodes), "last_link_id": len(g.links), "nodes": g.nodes, "links": g.links,
        "groups": [], "config": {}, "extra": {"ltxic": {"lora": lora_name, "reference_downscale_factor": reference_downscale_factor,
                                               "sampling": settings}},
        "version": 0.4,
    }


def to_api_prompt(workflow: dict[str, Any]) -> dict[str, Any]:
    """The API ("prompt") form of a UI workflow built here: ``{id: {class_type, inputs}}``."""
    links = {lk[0]: lk for lk in workflow["links"]}
    prompt: dict[str, Any] = {}
    for node in workflow["nodes"]:
        spec = NODE_SPECS[node["type"]]
        inputs: dict[str, Any] = {}
        values = iter(node["widgets_values"])
        for name, _ in spec.widgets:
            value = next(values)
            if name in spec.seed_widgets:
                next(values)
            if name not in spec.ui_only_widgets:
                inputs[name] = value
        for slot in node["inputs"]:
            if slot["link"] is not None:
                lk = links[slot["link"]]
                inputs[slot["name"]] = [str(lk[1]), lk[2]]
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return prompt


def export_workflow(
    lora: PathLike,
    out: PathLike,
    *,
    reference_image: PathLike | None = None,
    reference_audio: PathLike | None = None,
    prompt: str | None = None,
    lora_subfolder: str = "",
    **options: Any,
) -> Path:
    """Write the workflow for the LoRA file ``lora`` to ``out`` (UI form) and :func:`api_path` of it (API form),
    each atomically, and return ``out``.

    ``lora_name`` in the workflow is ``<lora_subfolder>/<file name>`` as ComfyUI lists it from
    ``ComfyUI/models/loras/``; the reference image and voice are referenced by file name, as ComfyUI's
    ``LoadImage`` / ``LoadAudio`` find them in ``ComfyUI/input/``. The LoRA's reference downscale factor is
    read from its metadata (the IC-LoRA loader node reads the same key at run time and drives the guide).
    """
    from ltxic.sampling.generate import lora_settings

    lora = Path(lora)
    if lora.suffix != ".safetensors":
        raise ValueError(f"{lora}: ComfyUI loads LoRAs from .safetensors files; export the trained LoRA file (lora.safetensors)")
    settings = lora_settings(lora)
    name = f"{lora_subfolder.strip('/')}/{lora.name}" if lora_subfolder else lora.name
    kwargs: dict[str, Any] = dict(options)
    if reference_image is not None:
        kwargs["reference_image"] = Path(reference_image).name
    if reference_audio is not None:
        kwargs["reference_audio"] = Path(reference_audio).name
    if prompt is not None:
        kwargs["prompt"] = prompt
    workflow = build_workflow(name, reference_downscale_factor=float(settings["reference_downscale_factor"]), **kwargs)
    out = Path(out)
    with staged_files() as stage:  # both forms or neither
        write_json_atomic(stage.path(out), workflow)
        write_json_atomic(stage.path(api_path(out)), to_api_prompt(workflow))
    return out


def api_path(ui_path: PathLike) -> Path:
    """Where :func:`export_workflow` writes the API form beside the UI form: ``workflow.json`` -> ``workflow_api.json``."""
    p = Path(ui_path)
    return p.with_name(f"{p.stem}_api{p.suffix or '.json'}")


__all__ = [
    "CHECKPOINT_NAME", "DISTILLED_LORA_NAME", "DISTILLED_SIGMAS", "NODE_SPECS", "NodeSpec", "TEXT_ENCODER_NAME", "api_path",
    "build_workflow", "export_workflow", "sample_settings", "to_api_prompt",
]
