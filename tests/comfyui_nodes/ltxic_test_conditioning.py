"""A test-only ComfyUI custom node: precomputed text conditioning in place of the text encoder nodes.

ComfyUI's ``LTXAVTextEncoderLoader`` always builds Gemma 3 12B (whatever the file holds), which a 2-core CI machine
cannot run, so the run-to-video test replaces the two ``CLIPTextEncode`` nodes of the exported workflow with this
node and drops the loader. It loads ``context`` from a safetensors file: the prompt's contexts as ltxic's own text
encoder computes them on the miniature (video context, audio context concatenated on the last axis, after the
embeddings connectors), which ComfyUI's LTX-AV model takes as already processed. Loaded by ComfyUI from a temporary
base directory's ``custom_nodes/`` (tests/test_comfyui_real.py); never part of the package.
"""

from safetensors.torch import load_file


class LTXICPrecomputedConditioning:
    CATEGORY = "ltxic/testing"
    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):  # noqa: N802 (ComfyUI's name)
        return {"required": {"path": ("STRING", {"default": ""})}}

    def load(self, path):
        context = load_file(path)["context"].float()
        return ([[context, {}]],)


NODE_CLASS_MAPPINGS = {"LTXICPrecomputedConditioning": LTXICPrecomputedConditioning}
