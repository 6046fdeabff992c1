"""The ``real`` identity embedders: pretrained models that PyPI packages ship, loaded from the installed files.

* Face: dlib's HOG frontal face detector finds faces; its 5-point landmark model aligns each one and its ResNet
  face recognition model (``dlib_face_recognition_resnet_model_v1.dat``, 99.38% on LFW by its author) maps it to
  128 numbers, kept as dlib returns them (not unit length: norms of about 1.2-1.6) and compared by Euclidean
  distance, as dlib documents. The 68-point landmark model measures mouth opening for lip sync.
  Files from ``face_recognition_models``, code from ``dlib-bin``.
* Voice: Resemblyzer's GE2E speaker encoder (3-layer LSTM over 40 mel bands, 256-d), its ``pretrained.pt``
  read with ``torch.load(weights_only=True)`` into a module defined here. Resemblyzer's own loader and
  preprocessing (librosa, webrtcvad) are not imported: the mel features are computed with torchaudio (equal to
  librosa's to 1e-6) and silences are cut by energy.

Both come with ``pip install -e ".[metrics]"``. Neither package is imported to find its files (their
``__init__`` pulls in ``pkg_resources``, librosa and webrtcvad); the files are found through the import system.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ltxic.identity.embedders import METRICS_EXTRA, Box, IdentityModels, MissingExtraError

PORTRAIT_MAX_SIDE = 2560  # a single reference portrait is searched up to this size when the clip size finds no face
MIN_FACE_SIDE = 80  # dlib's HOG window: the smallest face it finds, in the searched image's pixels

# Face: dlib's documented operating point, same person when the Euclidean distance of two raw 128-d descriptors is
# below 0.6 (dlib's dnn_face_recognition_ex.cpp and face_recognition's default tolerance). Descriptors are not unit
# length, so no fixed cosine equals it; ltxic scores a pair as 1 - d**2/2 (IdentityModels.face_score), and d < 0.6 is
# a score above 0.82. Margins on real photographs: benchmarks/README.md, "Identity embedders".
FACE_DISTANCE = 0.6
FACE_THRESHOLD = 1.0 - FACE_DISTANCE**2 / 2
# Voice: Resemblyzer's authors publish no verification operating point (their README compares cosines; demo 05 draws
# 0.84 for fake-speech detection on one speaker, averaged over 6 references). Calibrated here instead, on espeak-ng
# speakers in four conditions (benchmarks/README.md, ltxic.identity.margins): at 0.80 no genuine pair is rejected clean or
# 20 dB quieter, 1 of 36 with noise at 20 dB SNR. Synthetic speakers: a weak calibration, stated as such.
VOICE_THRESHOLD = 0.80
THRESHOLD_SOURCES = (f"face: dlib's published operating point, Euclidean distance < {FACE_DISTANCE} (score > "
                     f"{FACE_THRESHOLD:.2f}); voice: cosine >= {VOICE_THRESHOLD}, calibrated on espeak-ng speakers (Resemblyzer "
                     "publishes no verification threshold); benchmarks/README.md, 'Identity embedders'")
DETECT_MAX_SIDE = 640  # frames are searched for faces at most this large (HOG time grows with pixels)


def package_file(package: str, relative: str, needed_for: str) -> Path:
    """A data file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError(f"{needed_for} needs the package {package!r}, which is not installed. Fix: {METRICS_EXTRA}")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise MissingExtraError(f"{path}: missing from the installed {package!r} ({needed_for}); reinstall it: "
                                f"pip install --force-reinstall {package}")
    return path


def _dlib():  # noqa: ANN202
    try:
        import dlib
    except ImportError as err:
        raise MissingExtraError(f"the real face embedder needs dlib (the 'dlib-bin' wheel), which is not installed "
                                f"({err}). Fix: {METRICS_EXTRA}") from err
    return dlib


def _models_file(name: str, needed_for: str) -> Path:
    return package_file("face_recognition_models", f"models/{name}", needed_for)


# ---------------------------------------------------------------------------------------------- face
class DlibFaceLocator:
    """dlib's HOG frontal face detector (the strongest detection per frame) and its 68-point landmarks for the mouth."""

    name = "dlib HOG detector"

    def __init__(self) -> None:
        dlib = _dlib()
        self._dlib = dlib
        self.detector = dlib.get_frontal_face_detector()
        self.shape5 = dlib.shape_predictor(str(_models_file("shape_predictor_5_face_landmarks.dat", "face alignment")))
        self._shape68 = None

    @property
    def shape68(self):  # noqa: ANN201
        # loaded on first use: 100 MB, only lip sync needs it
        if self._shape68 is None:
            path = _models_file("shape_predictor_68_face_landmarks.dat", "mouth landmarks (lip sync)")
            self._shape68 = self._dlib.shape_predictor(str(path))
        return self._shape68

    def locate(self, frames: np.ndarray) -> list[Box | None]:
        """The strongest face per frame. A single image (a reference portrait) that shows none at the clip search
        size is searched again at up to :data:`PORTRAIT_MAX_SIDE`: a large photo's face is not lost to shrinking."""
        sides = (DETECT_MAX_SIDE, 2 * DETECT_MAX_SIDE, PORTRAIT_MAX_SIDE) if len(frames) == 1 else (DETECT_MAX_SIDE,)
        out: list[Box | None] = []
        for frame in frames:
            box = None
            for side in sides:
                box = self._locate_at(frame, side)
                if box is not None or max(frame.shape[:2]) <= side:
                    break
            out.append(box)
        return out

    def min_face_pixels(self, height: int, width: int) -> int:
        """The smallest face (in the image's own pixels) :meth:`locate` finds in a single image of this size."""
        return int(np.ceil(MIN_FACE_SIDE / min(1.0, PORTRAIT_MAX_SIDE / max(height, width))))

    def _locate_at(self, frame: np.ndarray, max_side: int) -> Box | None:
        import cv2

        h, w = frame.shape[:2]
        scale = min(1.0, max_side / max(h, w))
        img = frame if scale == 1.0 else cv2.resize(frame, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        # small images: search one octave up as well, so faces of ~40 px are found
        rects, scores, _ = self.detector.run(np.ascontiguousarray(img), 1 if max(img.shape[:2]) <= 400 else 0, 0.0)
        if len(rects) == 0:
            return None
        # the most face-like detection: a photo's badge or print can be a weaker face of the same size
        r = rects[int(np.argmax(scores))]
        box = (r.left() / scale, r.top() / scale, r.right() / scale, r.bottom() / scale)
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        return (max(0, x0), max(0, y0), min(w, x1 + 1), min(h, y1 + 1))

    def rect(self, box: Box):  # noqa: ANN201
        x0, y0, x1, y1 = box
        return self._dlib.rectangle(int(x0), int(y0), int(x1) - 1, int(y1) - 1)

    def landmarks68(self, frame: np.ndarray, box: Box) -> np.ndarray:
        """(68, 2) landmark coordinates (iBUG 300-W order) of the face in ``box``."""
        s = self.shape68(np.ascontiguousarray(frame), self.rect(box))
        return np.array([(s.part(i).x, s.part(i).y) for i in range(68)], np.float32)

    def mouth_aperture(self, frames: np.ndarray, boxes: Sequence[Box | None]) -> np.ndarray:
        """Inner-lip gap (mean of the three vertical inner-lip distances) over the distance between the eyes."""
        out = np.full(len(frames), np.nan, np.float32)
        for i, (frame, box) in enumerate(zip(frames, boxes)):
            if box is None:
                continue
            p = self.landmarks68(frame, box)
            eyes = float(np.linalg.norm(p[36:42].mean(0) - p[42:48].mean(0)))
            gap = np.mean([np.linalg.norm(p[a] - p[b]) for a, b in ((61, 67), (62, 66), (63, 65))])
            out[i] = gap / eyes if eyes > 1 else np.nan
        return out


class DlibFaceEmbedder:
    """dlib's ResNet face recognition model on 150x150 chips aligned by the 5-point landmarks: dlib's raw 128-d
    descriptors, compared by Euclidean distance (``metric``)."""

    name = "dlib ResNet face recognition v1 (128-d)"
    dim = 128
    metric = "euclidean"

    def __init__(self, locator: DlibFaceLocator) -> None:
        dlib = _dlib()
        self.locator = locator
        self.model = dlib.face_recognition_model_v1(str(_models_file("dlib_face_recognition_resnet_model_v1.dat", "face embeddings")))
        self._dlib = dlib

    def embed(self, frames: np.ndarray, boxes: Sequence[Box | None]) -> np.ndarray:
        emb = np.full((len(frames), self.dim), np.nan, np.float32)
        idx = [i for i, b in enumerate(boxes) if b is not None]
        chips = []
        for i in idx:
            frame = np.ascontiguousarray(frames[i])
            shape = self.locator.shape5(frame, self.locator.rect(boxes[i]))
            chips.append(self._dlib.get_face_chip(frame, shape, size=150, padding=0.25))
        for start in range(0, len(chips), 32):
            emb[idx[start:start + 32]] = np.array(self.model.compute_face_descriptor(chips[start:start + 32]), np.float32)
        return emb


# ---------------------------------------------------------------------------------------------- voice
class GE2E(nn.Module):
    """Resemblyzer's speaker encoder: LSTM (40 -> 256, 3 layers), linear 256 -> 256, ReLU, L2 norm."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(40, 256, 3, batch_first=True)
        self.linear = nn.Linear(256, 256)

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        """mels (B, frames, 40) -> (B, 256) unit vectors (non-negative: ReLU before the norm)."""
        _, (hidden, _) = self.lstm(mels)
        e = torch.relu(self.linear(hidden[-1]))
        return e / torch.linalg.vector_norm(e, dim=1, keepdim=True).clamp_min(1e-12)


class GE2EVoiceEmbedder:
    """Resemblyzer's GE2E encoder on 1.6 s partials of 40-band mel power spectra (25 ms windows, 10 ms hop)."""

    name = "Resemblyzer GE2E speaker encoder (256-d)"
    dim = 256
    sample_rate = 16000
    min_sample_rate = 16000
    window_s = 1.6
    partial_frames = 160
    target_dbfs = -30.0

    def __init__(self, device: str = "cpu") -> None:
        import torchaudio

        path = package_file("resemblyzer", "pretrained.pt", "the real voice embedder (GE2E weights)")
        state = torch.load(path, map_location="cpu", weights_only=True)
        model = GE2E()
        weights = {k: v for k, v in state["model_state"].items() if not k.startswith("similarity_")}
        model.load_state_dict(weights, strict=True)
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=16000, n_fft=400, win_length=400, hop_length=160, f_min=0.0, f_max=8000.0, n_mels=40,
            power=2.0, center=True, pad_mode="constant", norm="slaney", mel_scale="slaney")

    def prepare(self, wave: np.ndarray) -> np.ndarray:
        """Raise quiet recordings to -30 dBFS (never lower), as the encoder was trained: its input is mel power."""
        rms = float(np.sqrt(np.mean(np.asarray(wave, np.float64) ** 2))) if len(wave) else 0.0
        if rms <= 1e-9:
            return wave
        gain_db = self.target_dbfs - 20 * np.log10(rms)
        return (wave * 10 ** (gain_db / 20)).astype(np.float32) if gain_db > 0 else wave

    def _mels(self, wave: np.ndarray) -> torch.Tensor:
        return self.mel(torch.as_tensor(np.asarray(wave, np.float32))).T  # (frames, 40)

    @torch.no_grad()
    def embed(self, windows: np.ndarray) -> np.ndarray:
        """One partial per window (a window shorter than 1.6 s is zero-padded, a longer one averaged over partials)."""
        return np.stack([self.embed_utterance(w) for w in np.asarray(windows, np.float32)]) if len(windows) else \
            np.zeros((0, self.dim), np.float32)

    @torch.no_grad()
    def embed_utterance(self, wave: np.ndarray, rate: float = 1.3, min_coverage: float = 0.75) -> np.ndarray:
        """Resemblyzer's utterance embedding: the normalised mean of 1.6 s partials taken ``rate`` times a second."""
        wave = np.asarray(wave, np.float32)
        hop = 160
        n_frames = int(np.ceil((len(wave) + 1) / hop))
        step = max(1, int(round(self.sample_rate / rate / hop)))
        starts = list(range(0, max(1, n_frames - self.partial_frames + step + 1), step))
        last = starts[-1] * hop
        coverage = (len(wave) - last) / (self.partial_frames * hop)
        if coverage < min_coverage and len(starts) > 1:
            starts = starts[:-1]
        need = (starts[-1] + self.partial_frames) * hop
        if need >= len(wave):
            wave = np.pad(wave, (0, need - len(wave)))
        mel = self._mels(wave)
        batch = torch.stack([mel[s:s + self.partial_frames] for s in starts]).to(self.device)
        partials = self.model(batch).cpu().numpy()
        m = partials.mean(0)
        return (m / np.linalg.norm(m)).astype(np.float32)


def real_models(device: str = "cpu") -> IdentityModels:
    locator = DlibFaceLocator()
    return IdentityModels(
        "real", DlibFaceEmbedder(locator), GE2EVoiceEmbedder(device), locator, FACE_THRESHOLD, VOICE_THRESHOLD,
        notes={"thresholds": THRESHOLD_SOURCES,
               "measured": "benchmarks/README.md, 'Identity embedders' (small offline sets: read the limits there)",
               "licences": "dlib (Boost), face models CC0 (68-point landmarks: trained on iBUG 300-W, "
                           "no commercial use), Resemblyzer (Apache-2.0)"},
    )
