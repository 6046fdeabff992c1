"""Stage 6: generating clips with a trained IC-LoRA, a reference face and a reference voice.

* :mod:`~ltxic.sampling.generate`: ``generate(models, prompts, lora=..., reference_image=..., reference_audio=...)``;
* :mod:`~ltxic.sampling.pipeline`: the two-stage LTX-2.3 pipeline (``generate_two_stage``);
* :mod:`~ltxic.sampling.guidance`: the guidance settings (``Guidance``: LTX-2.3's official defaults, the tiny kit's);
* :mod:`~ltxic.sampling.sampler`: the denoising loop (``sample_latents``, ``SamplingConfig``);
* :mod:`~ltxic.sampling.references`: reference image and voice prepared, consent checked;
* :mod:`~ltxic.sampling.comfyui`: the same settings as a ComfyUI workflow (``export_workflow``).
"""
