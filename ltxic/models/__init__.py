"""The model at two scales, one interface: Lightricks' ``ltx-core`` classes, tiny on a CPU or LTX-2.3 22B on a GPU.

* :mod:`~ltxic.models.kit`: ``Models``, the bundle the trainer and sampler use (``Models.tiny()``, ``Models.ltx23()``,
  ``Models.from_comfyui()``);
* :mod:`~ltxic.models.transformer`: the ``LTXModel`` presets (``build_transformer``, ``load_transformer``,
  ``quantize_fp8``); :mod:`~ltxic.models.ltx23` loads the official files, :mod:`~ltxic.models.tiny` the tiny kit,
  pretrained on the toy world by :mod:`~ltxic.models.tiny_pretrain` (stage 2's objective in
  :mod:`~ltxic.models.tiny_flow`; its video decoder then sharpened on the same latents by
  :mod:`~ltxic.models.tiny_decoder_tune`);
* :mod:`~ltxic.models.codecs` and :mod:`~ltxic.models.text_encoder`: the tiny kit's VAEs and text encoder;
* :mod:`~ltxic.models.latents`: latents to tokens and positions; :mod:`~ltxic.models.strategies`: how references
  become tokens (``text_to_video``, ``ic``, ``audio_ref_only_ic``), shared by training and sampling;
* :mod:`~ltxic.models.lora`: inject, save, load and merge LoRAs (ComfyUI-compatible keys and metadata);
* :mod:`~ltxic.models.offload`, :mod:`~ltxic.models.devices`, :mod:`~ltxic.models.safetensors_stream`: memory,
  placement and streaming writes; :mod:`~ltxic.models.miniature` writes the official files at tiny sizes (CI).
"""
