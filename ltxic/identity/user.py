"""The ``user`` identity embedders: ArcFace and ECAPA from weights the user already has on disk.

Their weights come from model hubs, which ltxic never contacts; a user who has them points ltxic at the files:

* **ArcFace**: an insightface recognition model in ONNX (``w600k_r50.onnx`` of the ``buffalo_l`` pack, or any
  ArcFace ONNX with a (1, 3, 112, 112) input), run with ``onnxruntime``. Faces are found by dlib's detector and
  aligned to ArcFace's 112x112 five-point template (eye centres, nose tip, mouth corners) from dlib's 68 landmarks,
  so the ``metrics`` extra is needed as well.
* **ECAPA**: speechbrain's ECAPA-TDNN speaker model, a folder holding ``embedding_model.ckpt`` (as in
  ``spkrec-ecapa-voxceleb``). The network is built from speechbrain's classes with sizes read from the checkpoint,
  and the weights read with ``torch.load(weights_only=True)``; the folder's ``hyperparams.yaml`` is never
  executed. Features: speechbrain's 80-band filterbank with per-utterance mean normalisation.

Whatever is not given (the face or the voice) comes from the ``real`` kind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ltxic.identity.embedders import Box, IdentityModels, MissingExtraError

# ArcFace's 112x112 alignment template: image-left eye, image-right eye, nose tip, left and right mouth corner
ARCFACE_TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                             [41.5493, 92.3655], [70.7299, 92.2041]], np.float32)
# thresholds for user models: the values their authors' evaluations commonly use (not measured here)
ARCFACE_THRESHOLD = 0.35
ECAPA_THRESHOLD = 0.25


class ArcFaceOnnx:
    """An ArcFace recogniser in ONNX on five-point aligned 112x112 RGB crops scaled to [-1, 1]."""

    dim = 512

    def __init__(self, path: Path, locator: Any) -> None:
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise MissingExtraError(f"{path}: running an ArcFace ONNX model needs onnxruntime. Fix: pip install onnxruntime") from err
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: ArcFace weights not found; give the .onnx recognition file "
                                    "(insightface's buffalo_l/w600k_r50.onnx) with --face-weights / validation.face_weights")
        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        inp = self.session.get_inputs()[0]
        if list(inp.shape[1:]) != [3, 112, 112]:
            raise ValueError(f"{path}: input shape {inp.shape} is not (N, 3, 112, 112); this is not an ArcFace "
                             "recognition model (insightface's detection model det_10g.onnx is the other file)")
        self.input_name = inp.name
        self.locator = locator
        self.name = f"ArcFace ONNX ({Path(path).name})"
        out = self.session.get_outputs()[0].shape
        self.dim = int(out[-1]) if isinstance(out[-1], int) else 512

    def align(self, frame: np.ndarray, box: Box) -> np.ndarray:
        import cv2

        p = self.locator.landmarks68(frame, box)
        five = np.stack([p[36:42].mean(0), p[42:48].mean(0), p[30], p[48], p[54]]).astype(np.float32)
        m, _ = cv2.estimateAffinePartial2D(five, ARCFACE_TEMPLATE, method=cv2.LMEDS)
        return cv2.warpAffine(np.ascontiguousarray(frame), m, (112, 112), borderValue=0.0)

    def embed(self, frames: np.ndarray, boxes: Any) -> np.ndarray:
        emb = np.full((len(frames), self.dim), np.nan, np.float32)
        idx = [i for i, b in enumerate(boxes) if b is not None]
        for i in idx:
            crop = self.align(frames[i], boxes[i]).astype(np.float32)
            x = ((crop - 127.5) / 127.5).transpose(2, 0, 1)[None]
            v = np.asarray(self.session.run(None, {self.input_name: x})[0], np.float32).reshape(-1)
            emb[i] = v / (np.linalg.norm(v) + 1e-12)
        return emb


class EcapaVoiceEmbedder:
    """speechbrain's ECAPA-TDNN from a folder with ``embedding_model.ckpt``; 16 kHz, 3 s windows."""

    sample_rate = 16000
    min_sample_rate = 16000
    window_s = 3.0

    def __init__(self, folder: Path, device: str = "cpu") -> None:
        try:
            from speechbrain.lobes.features import Fbank
            from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN
        except ImportError as err:
            raise MissingExtraError(f"{folder}: the ECAPA speaker model needs speechbrain. Fix: pip install speechbrain") from err
        ckpt = Path(folder) / "embedding_model.ckpt" if Path(folder).is_dir() else Path(folder)
        if not ckpt.is_file():
            raise FileNotFoundError(f"{ckpt}: not found; give the folder of speechbrain's spkrec-ecapa-voxceleb "
                                    "(it holds embedding_model.ckpt) with --voice-weights / validation.voice_weights")
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        try:
            sizes = dict(
                input_size=state["blocks.0.conv.conv.weight"].shape[1],
                channels=[state["blocks.0.conv.conv.weight"].shape[0]]
                + [state[f"blocks.{i}.tdnn1.conv.conv.weight"].shape[0] for i in (1, 2, 3)]
                + [state["mfa.conv.conv.weight"].shape[0]],
                kernel_sizes=[state["blocks.0.conv.conv.weight"].shape[2]]
                + [state[f"blocks.{i}.res2net_block.blocks.0.conv.conv.weight"].shape[2] for i in (1, 2, 3)] + [1],
                attention_channels=state["asp.tdnn.conv.conv.weight"].shape[0],
                lin_neurons=state["fc.conv.weight"].shape[0],
            )
        except KeyError as err:
            raise ValueError(f"{ckpt}: not a speechbrain ECAPA_TDNN state dict (missing {err}); give spkrec-ecapa-voxceleb's "
                             "embedding_model.ckpt") from err
        model = ECAPA_TDNN(dilations=[1, 2, 3, 4, 1], **sizes)
        model.load_state_dict(state, strict=True)
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.features = Fbank(n_mels=sizes["input_size"])
        self.dim = int(sizes["lin_neurons"])
        self.name = f"ECAPA-TDNN ({ckpt.parent.name}, {self.dim}-d)"

    @torch.no_grad()
    def _embed(self, waves: torch.Tensor) -> np.ndarray:
        feats = self.features(waves)
        feats = feats - feats.mean(1, keepdim=True)  # sentence-level mean normalisation
        e = self.model(feats.to(self.device), torch.ones(len(waves), device=self.device)).reshape(len(waves), -1).cpu()
        return torch.nn.functional.normalize(e, dim=-1).numpy().astype(np.float32)

    def embed(self, windows: np.ndarray) -> np.ndarray:
        return self._embed(torch.as_tensor(np.asarray(windows, np.float32))) if len(windows) else \
            np.zeros((0, self.dim), np.float32)

    def embed_utterance(self, wave: np.ndarray) -> np.ndarray:
        return self._embed(torch.as_tensor(np.asarray(wave, np.float32))[None])[0]


def user_models(face_weights: Path | None, voice_weights: Path | None, device: str = "cpu") -> IdentityModels:
    from ltxic.identity.real import DlibFaceEmbedder, DlibFaceLocator, FACE_THRESHOLD, VOICE_THRESHOLD, GE2EVoiceEmbedder

    locator = DlibFaceLocator()
    face = ArcFaceOnnx(face_weights, locator) if face_weights else DlibFaceEmbedder(locator)
    voice = EcapaVoiceEmbedder(voice_weights, device) if voice_weights else GE2EVoiceEmbedder(device)
    return IdentityModels(
        "user", face, voice, locator, ARCFACE_THRESHOLD if face_weights else FACE_THRESHOLD,
        ECAPA_THRESHOLD if voice_weights else VOICE_THRESHOLD,
        notes={"weights": f"face {face_weights or 'real (dlib)'}, voice {voice_weights or 'real (GE2E)'}",
               "thresholds": "user models' thresholds are common published values, not measured by ltxic"},
        decisive=not (face_weights or voice_weights),  # ltxic cannot vouch for thresholds of weights it never saw
    )
