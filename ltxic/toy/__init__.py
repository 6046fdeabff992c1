"""The toy identity world: procedurally drawn characters with voices, in captioned scenes, as real media files."""

from ltxic.toy.identity import Identity, identity_from_name, make_identity
from ltxic.toy.locate import locate_face
from ltxic.toy.render import ClipTruth, ToyClip, render_clip, render_portrait
from ltxic.toy.scene import Scene, random_scene

__all__ = [
    "ClipTruth", "Identity", "Scene", "ToyClip", "identity_from_name", "locate_face", "make_identity",
    "random_scene", "render_clip", "render_portrait",
]
