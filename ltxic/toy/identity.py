"""Toy identities: a fixed set of seeded traits (face, hair, eyes, voice) that captions never mention."""

from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass

import numpy as np

RGB = tuple[int, int, int]

SKIN: dict[str, RGB] = {
    "porcelain": (246, 220, 200), "light": (236, 194, 158), "beige": (222, 174, 128), "tan": (196, 140, 96),
    "brown": (152, 100, 66), "dark brown": (108, 68, 44), "deep": (80, 50, 34),
}
HAIR: dict[str, RGB] = {
    "black": (26, 22, 22), "dark brown": (64, 40, 26), "brown": (112, 72, 42), "auburn": (140, 56, 28),
    "red": (200, 74, 36), "blonde": (228, 196, 118), "platinum": (238, 232, 214), "grey": (150, 150, 154),
}
EYES: dict[str, RGB] = {
    "brown": (96, 56, 28), "blue": (52, 116, 206), "green": (52, 150, 76), "grey": (128, 138, 150), "amber": (196, 132, 36),
}
HAIR_STYLES = ("short", "long", "bun", "none")
# neutral-vowel formant centres (Hz) of an average adult tract; identities scale and perturb them
NEUTRAL_FORMANTS = (500.0, 1500.0, 2500.0)


@dataclass(frozen=True)
class Identity:
    """Everything that makes a toy character recognisable; fixed for life by ``seed``."""

    name: str
    seed: int
    face_aspect: float  # face ellipse height / width
    face_scale: float  # face size relative to the framing's nominal size
    skin: str
    hair: str
    eyes: str
    eye_spacing: float  # eye centre offset from the face centre, in face half-widths
    hair_style: str
    f0: float  # mean voice pitch, Hz
    formants: tuple[float, float, float]  # neutral-vowel formant centres, Hz (the timbre)
    breathiness: float  # aspiration noise relative to the voiced source
    speech_rate: float  # syllables run this much faster than average

    @property
    def skin_rgb(self) -> RGB:
        return SKIN[self.skin]

    @property
    def hair_rgb(self) -> RGB:
        return HAIR[self.hair]

    @property
    def eye_rgb(self) -> RGB:
        return EYES[self.eyes]

    def describe(self) -> str:
        """The traits in words: exactly what a caption must NOT say (the reference image and voice carry it)."""
        face = "round" if self.face_aspect < 1.15 else "oval" if self.face_aspect < 1.3 else "long"
        spacing = "close-set" if self.eye_spacing < 0.33 else "wide-set" if self.eye_spacing > 0.4 else "evenly set"
        hair = "bald" if self.hair_style == "none" else f"{self.hair} hair in a {self.hair_style}" if self.hair_style == "bun" else f"{self.hair_style} {self.hair} hair"
        voice = "low" if self.f0 < 130 else "high" if self.f0 > 190 else "medium"
        return f"{face} face, {self.skin} skin, {hair}, {spacing} {self.eyes} eyes, {voice}-pitched voice ({self.f0:.0f} Hz)"

    def to_dict(self) -> dict:
        return asdict(self)


def _rgb_distance(a: RGB, b: RGB) -> float:
    return float(np.linalg.norm(np.subtract(a, b, dtype=float)))


def make_identity(seed: int, name: str | None = None) -> Identity:
    """Draw an identity's traits from ``seed`` (same seed, same character, on every machine)."""
    rng = np.random.default_rng([0x1D, int(seed)])
    skin = str(rng.choice(list(SKIN)))
    # hair must stand out from the skin, or the face has no visible hairline (and the locator no edge)
    hairs = [h for h in HAIR if _rgb_distance(HAIR[h], SKIN[skin]) > 90]
    hair = str(rng.choice(hairs))
    scale = float(rng.uniform(0.84, 1.2))
    formants = tuple(round(float(f * scale * rng.uniform(0.94, 1.06)), 1) for f in NEUTRAL_FORMANTS)
    return Identity(
        name=name or f"id{seed:04d}",
        seed=int(seed),
        face_aspect=round(float(rng.uniform(1.05, 1.45)), 3),
        face_scale=round(float(rng.uniform(0.9, 1.08)), 3),
        skin=skin,
        hair=hair,
        eyes=str(rng.choice(list(EYES))),
        eye_spacing=round(float(rng.uniform(0.28, 0.46)), 3),
        hair_style=str(rng.choice(HAIR_STYLES, p=[0.35, 0.35, 0.18, 0.12])),
        f0=round(float(np.exp(rng.uniform(np.log(85), np.log(255)))), 1),
        formants=formants,  # type: ignore[arg-type]
        breathiness=round(float(rng.uniform(0.02, 0.2)), 3),
        speech_rate=round(float(rng.uniform(0.85, 1.2)), 3),
    )


def identity_from_name(name: str) -> Identity:
    """The identity a name stands for: its seed is a stable hash of the name."""
    return make_identity(zlib.crc32(name.encode("utf-8")) & 0x7FFFFFFF, name=name)
