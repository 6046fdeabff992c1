"""The toy identity world, the bottom layer beside io: procedurally drawn characters with voices, in captioned
scenes, as real media files (``make_samples`` writes ``data_samples/``). What learns from this world lives with its
stage: the tiny kit's pretraining in :mod:`ltxic.models.tiny_pretrain`, the toy face and voice embedders and the
face locator in :mod:`ltxic.identity.toy_embedders` and :mod:`ltxic.identity.toy_face_locator`."""

from ltxic.toy.identity import Identity, identity_from_name, make_identity
from ltxic.toy.locate import locate_face
from ltxic.toy.render import ClipTruth, ToyClip, render_clip, render_portrait
from ltxic.toy.scene import Scene, random_scene

__all__ = [
    "ClipTruth", "Identity", "Scene", "ToyClip", "identity_from_name", "locate_face", "make_identity",
    "random_scene", "render_clip", "render_portrait",
]
