"""Render toy clips: an identity in a scene, drawn with vectorized numpy, with speech whose envelope drives the mouth."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ltxic.toy.identity import Identity
from ltxic.toy.scene import Scene
from ltxic.toy.voice import frame_envelope, synthesize_speech

SHIRTS = ((40, 46, 66), (30, 72, 52), (122, 32, 44), (96, 36, 84), (58, 58, 62), (70, 100, 142))
SCLERA, PUPIL, MOUTH = (242, 240, 236), (16, 14, 14), (38, 10, 16)
LIGHT_GAIN = {"bright": 1.0, "dim": 0.56}


@dataclass
class ClipTruth:
    """Per-frame ground truth of a rendered clip (pixels; yaw and pitch in [-1, 1], negative yaw = facing image left)."""

    face_box: np.ndarray  # (F, 4) int x0, y0, x1, y1 (exclusive) of the visible face skin
    face_centre: np.ndarray  # (F, 2) float x, y of the face ellipse
    yaw: np.ndarray  # (F,)
    pitch: np.ndarray  # (F,) positive = looking down
    mouth_open: np.ndarray  # (F,) in [0, 1]
    speech_envelope: np.ndarray  # (F,) audio envelope averaged over each frame's window
    background: tuple[int, int, int]  # the room's colour before lighting
    light_gain: float
    action: str

    def to_dict(self, decimals: int = 3) -> dict:
        out = {}
        for key, value in self.__dict__.items():
            if isinstance(value, np.ndarray):
                value = np.round(value, decimals).tolist() if value.dtype.kind == "f" else value.tolist()
            out[key] = value
        return out


@dataclass
class ToyClip:
    frames: np.ndarray  # uint8 (F, H, W, 3)
    audio: np.ndarray  # float32 (1, N)
    fps: float
    sample_rate: int
    caption: str
    identity: str
    truth: ClipTruth = field(repr=False)


def check_geometry(width: int, height: int, frames: int) -> None:
    """The tiny model's geometry: sides multiples of 32, frame counts 8k+1."""
    for name, value in (("width", width), ("height", height)):
        if value <= 0 or value % 32:
            raise ValueError(f"{name}={value}: must be a positive multiple of 32 (e.g. {max(32, round(value / 32) * 32)})")
    if frames < 1 or (frames - 1) % 8:
        lo = (frames - 1) // 8 * 8 + 1
        raise ValueError(f"frames={frames}: must be 8k+1 (e.g. {max(1, lo)} or {lo + 8})")


def _smooth_noise(rng: np.random.Generator, n: int, width: float) -> np.ndarray:
    """Smooth zero-mean noise of unit-ish amplitude (Gaussian-filtered white noise)."""
    k = np.exp(-0.5 * (np.arange(-3 * width, 3 * width + 1) / width) ** 2)
    x = np.convolve(rng.standard_normal(n + len(k)), k / np.sqrt((k**2).sum()), "same")[len(k) // 2 : len(k) // 2 + n]
    return x


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


class _Canvas:
    """Frames (F, h, w, 3) float32 and their pixel coordinates; shapes are composited with soft edges.

    The coordinates are kept separable (x: (F|1, 1, w), y: (F|1, h, 1)) so each shape costs one full-size pass,
    and a canvas can be a per-frame window onto a bigger one (the head is drawn in a window that follows it).
    """

    def __init__(self, img: np.ndarray, X: np.ndarray, Y: np.ndarray):
        self.img, self.X, self.Y = img, X, Y

    @classmethod
    def blank(cls, frames: int, height: int, width: int, colour: np.ndarray) -> _Canvas:
        img = np.broadcast_to(np.asarray(colour, np.float32), (frames, height, width, 3)).copy()
        return cls(img, np.arange(width, dtype=np.float32)[None, None], np.arange(height, dtype=np.float32)[None, :, None])

    def window(self, x0: np.ndarray, y0: np.ndarray, w: int, h: int) -> _Canvas:
        """A per-frame (F, h, w) window whose top-left corners are (x0, y0) (clipped into the frame)."""
        n, H, W, _ = self.img.shape
        w, h = min(w, W), min(h, H)
        x0 = np.clip(np.round(x0).astype(int), 0, W - w)
        y0 = np.clip(np.round(y0).astype(int), 0, H - h)
        self._index = (np.arange(n)[:, None, None], y0[:, None, None] + np.arange(h)[None, :, None],
                       x0[:, None, None] + np.arange(w)[None, None, :])
        sub = _Canvas(self.img[self._index], (x0[:, None, None] + np.arange(w)[None, None]).astype(np.float32),
                      (y0[:, None, None] + np.arange(h)[None, :, None]).astype(np.float32))
        sub.origin = (x0, y0)
        return sub

    def put_back(self, sub: _Canvas) -> None:
        self.img[self._index] = sub.img

    @staticmethod
    def _col(v) -> np.ndarray:
        return np.asarray(v, np.float32).reshape(-1, 1, 1)

    def ellipse(self, cx, cy, rx, ry) -> np.ndarray:
        """Alpha (F, h, w) of axis-aligned ellipses; parameters are scalars or (F,) arrays."""
        cx, cy, rx, ry = (self._col(v) for v in (cx, cy, rx, ry))
        q = np.sqrt(((self.X - cx) / rx) ** 2 + ((self.Y - cy) / ry) ** 2)
        q -= 1.0
        q *= -np.minimum(rx, ry)
        q += 0.5
        return np.clip(q, 0.0, 1.0, out=q)

    def box(self, x0, x1, y0, y1) -> np.ndarray:
        x0, x1, y0, y1 = (self._col(v) for v in (x0, x1, y0, y1))
        ax = np.clip(np.minimum(self.X - x0, x1 - self.X) + 0.5, 0, 1)
        ay = np.clip(np.minimum(self.Y - y0, y1 - self.Y) + 0.5, 0, 1)
        return ax * ay

    def paint(self, alpha: np.ndarray, colour) -> None:
        colour = np.asarray(colour, np.float32)
        self.img += alpha[..., None] * (colour - self.img)


def _pose(identity: Identity, scene: Scene, rng: np.random.Generator, n: int, width: int, height: int, rx: float, ry: float):
    u = np.linspace(0.0, 1.0, n)
    close = scene.framing == "close-up"
    cx = np.full(n, width / 2 + rng.uniform(-0.04, 0.04) * width)
    cy = np.full(n, (0.47 if close else 0.37) * height + rng.uniform(-0.02, 0.02) * height)
    cx += 0.012 * width * _smooth_noise(rng, n, 6)
    cy += 0.008 * height * _smooth_noise(rng, n, 6)
    yaw = rng.uniform(-0.08, 0.08) + 0.05 * _smooth_noise(rng, n, 8)
    pitch = 0.04 * _smooth_noise(rng, n, 8)
    if scene.action == "speaks":
        yaw += 0.12 * np.sin(2 * np.pi * u * rng.uniform(0.4, 1.0) + rng.uniform(0, 2 * np.pi))
    elif scene.action in ("turns head left", "turns head right"):
        sign = -1.0 if scene.action.endswith("left") else 1.0
        start, end = rng.uniform(0.05, 0.2), rng.uniform(0.75, 0.92)
        yaw = 0.5 * yaw + sign * 0.85 * _smoothstep((u - start) / (end - start))
    elif scene.action == "nods":
        pitch += 0.75 * np.sin(np.pi * int(rng.integers(2, 4)) * u) ** 2
    elif scene.action == "walks across":
        margin = rx * 1.3 + 2
        cx = margin + (width - 2 * margin) * (u * 0.96 + 0.02) + 0.5 * (cx - cx.mean())
        cy += 0.025 * height * np.abs(np.sin(2 * np.pi * 2.5 * u))
        yaw = 0.5 * yaw + 0.3
    return cx, cy, np.clip(yaw, -1, 1), np.clip(pitch, -1, 1)


def _draw(
    identity: Identity, scene: Scene, n: int, width: int, height: int, rx: float, ry: float,
    cx: np.ndarray, cy: np.ndarray, yaw: np.ndarray, pitch: np.ndarray, mouth: np.ndarray, blink: np.ndarray,
    shirt: tuple[int, int, int],
) -> tuple[_Canvas, np.ndarray]:
    """Composite background, body, hair, face and features; returns the canvas and the visible face boxes."""
    skin = np.asarray(identity.skin_rgb, np.float32)
    hair = np.asarray(identity.hair_rgb, np.float32)
    bg = np.asarray(scene.background_rgb, np.float32)
    full = _Canvas.blank(n, height, width, bg)
    # floor: the lower part of the room is a little darker
    full.img *= (1.0 - 0.18 * np.clip((full.Y - 0.8 * height) / 2 + 0.5, 0, 1))[..., None]

    ay = np.abs(yaw)
    rxf = rx * (1 - 0.08 * ay)  # a turned head looks narrower
    fx = cx + yaw * 0.42 * rx  # where the features sit: they move with the turn
    fy = cy + pitch * 0.2 * ry
    style = identity.hair_style
    # the head is drawn in a window that follows it: far fewer pixels than the whole frame
    wx0, wy0 = cx - 1.4 * rx - 2, cy - 1.2 * ry - 0.45 * rx - 2
    ww, wh = int(2.8 * rx + 5), int(2.85 * ry + 0.45 * rx + 5)
    if style == "long":
        c = full.window(wx0, wy0, ww, wh)
        c.paint(c.ellipse(cx - yaw * 0.12 * rx, cy + 0.32 * ry, rx * 1.28, ry * 1.3), hair)
        full.put_back(c)
    neck_w = 0.42 * rx
    full.paint(full.box(cx - neck_w, cx + neck_w, cy + 0.5 * ry, cy + 1.6 * ry), skin * 0.7)
    full.paint(full.ellipse(cx, cy + 2.15 * ry, rx * 2.1, ry * 1.05), shirt)

    c = full.window(wx0, wy0, ww, wh)
    face = c.ellipse(cx, cy, rxf, ry)
    c.paint(face, skin)
    hair_alpha = np.zeros_like(face)
    if style != "none":
        # hair cap: the head ellipse above a hairline that dips at the temples and follows the turn and nod
        hx = cx - yaw * 0.1 * rx
        cap = c.ellipse(hx, cy - 0.02 * ry, rxf * 1.08, ry * 1.08)
        dx = (c.X - c._col(fx)) / rx
        hairline = c._col(cy - 0.42 * ry + pitch * 0.14 * ry) + 0.32 * ry * dx**2
        hair_alpha = cap * np.clip(hairline - c.Y + 0.5, 0, 1)
        if style == "bun":
            hair_alpha = np.maximum(hair_alpha, c.ellipse(hx, cy - 1.12 * ry, 0.4 * rx, 0.36 * rx))
        c.paint(hair_alpha, hair)
    visible = (face > 0.5) & (hair_alpha < 0.5)

    # eyes: the one on the side the head turns towards is foreshortened
    ey = fy - 0.12 * ry
    for side in (-1.0, 1.0):
        squeeze = 1.0 - 0.5 * np.clip(side * yaw, 0, 1)
        ex = fx + side * identity.eye_spacing * rx * (1 - 0.25 * ay)
        ew, eh = 0.19 * rx * squeeze, 0.1 * ry
        c.paint(c.ellipse(ex, ey - 0.2 * ry, ew * 1.15, 0.035 * ry), hair)  # brow
        sclera = c.ellipse(ex, ey, ew, eh * blink)
        c.paint(sclera, SCLERA)
        iris_x = ex + yaw * 0.05 * rx
        c.paint(c.ellipse(iris_x, ey, 0.085 * rx * squeeze, 0.085 * rx) * sclera, identity.eye_rgb)
        c.paint(c.ellipse(iris_x, ey, 0.04 * rx * squeeze, 0.04 * rx) * sclera, PUPIL)
    c.paint(c.ellipse(cx + yaw * 0.6 * rx, fy + 0.14 * ry, 0.075 * rx, 0.13 * ry), skin * 0.82)  # nose
    mx, my = cx + yaw * 0.45 * rx, fy + 0.45 * ry
    lips = skin * np.array([0.78, 0.5, 0.52], np.float32) + np.array([30, 0, 8], np.float32)
    mw = 0.3 * rx * (1 - 0.2 * ay)
    c.paint(c.ellipse(mx, my, mw, (0.045 + 0.2 * mouth) * ry), lips)
    c.paint(c.ellipse(mx, my, mw * 0.82, np.maximum(0.2 * mouth * ry, 1e-3)) * c._col(mouth > 0.02), MOUTH)
    full.put_back(c)
    ox, oy = c.origin

    boxes = np.zeros((n, 4), np.int32)
    rows, cols = visible.any(axis=2), visible.any(axis=1)
    for i in range(n):
        ys, xs = np.flatnonzero(rows[i]), np.flatnonzero(cols[i])
        if len(ys) and len(xs):
            boxes[i] = (ox[i] + xs[0], oy[i] + ys[0], ox[i] + xs[-1] + 1, oy[i] + ys[-1] + 1)
    return full, boxes


def render_clip(
    identity: Identity,
    scene: Scene,
    *,
    seed: int,
    width: int = 128,
    height: int = 128,
    frames: int = 49,
    fps: float = 24.0,
    sample_rate: int = 16000,
) -> ToyClip:
    """Draw ``identity`` doing ``scene.action`` and synthesize its speech; the mouth follows the speech envelope."""
    check_geometry(width, height, frames)
    rng = np.random.default_rng([0xC11, int(seed), identity.seed])
    n_audio = round(frames / fps * sample_rate)
    audio, env = synthesize_speech(identity, n_audio, rng, sample_rate, speaking=scene.speaking)
    speech = frame_envelope(env, frames, fps, sample_rate)
    mouth = np.clip(speech * 1.15, 0.0, 1.0)

    ry = (0.29 if scene.framing == "close-up" else 0.165) * height * identity.face_scale
    rx = ry / identity.face_aspect
    cx, cy, yaw, pitch = _pose(identity, scene, rng, frames, width, height, rx, ry)
    blink = np.ones(frames)
    if rng.random() < 0.6 and frames > 6:
        b = int(rng.integers(2, frames - 3))
        blink[b : b + 2] = 0.15
    gain = LIGHT_GAIN[scene.light] * rng.uniform(0.95, 1.05)
    gradient = rng.uniform(-0.12, 0.12)
    shirt = SHIRTS[int(rng.integers(len(SHIRTS)))]
    canvas, boxes = _draw(identity, scene, frames, width, height, rx, ry, cx, cy, yaw, pitch, mouth, blink, shirt)
    # lighting: a global level and a gentle left-right gradient (per clip, not identity)
    light = gain * (1.0 + gradient * (canvas.X / width - 0.5))  # (1, 1, W)
    video = np.clip(canvas.img * light[..., None] + 0.5, 0, 255).astype(np.uint8)
    truth = ClipTruth(
        face_box=boxes, face_centre=np.stack([cx, cy], 1).astype(np.float32), yaw=yaw.astype(np.float32),
        pitch=pitch.astype(np.float32), mouth_open=mouth.astype(np.float32), speech_envelope=speech,
        background=scene.background_rgb, light_gain=round(float(gain), 4), action=scene.action,
    )
    return ToyClip(video, audio[None], float(fps), sample_rate, scene.caption, identity.name, truth)


def render_portrait(identity: Identity, width: int = 128, height: int = 128) -> np.ndarray:
    """A frontal, neutral, evenly lit close-up on a grey wall: the reference image (uint8 (H, W, 3))."""
    n = 1
    ry = 0.29 * height * identity.face_scale
    rx = ry / identity.face_aspect
    z = np.zeros(n)
    scene = Scene(background="grey", light="bright", framing="close-up", action="speaks")
    canvas, _ = _draw(identity, scene, n, width, height, rx, ry, z + width / 2, z + 0.47 * height, z, z, z, z + 1, SHIRTS[4])
    return np.clip(canvas.img[0] + 0.5, 0, 255).astype(np.uint8)
