"""Toy scenes and their captions: a small vocabulary of scene and action, never of the person's traits."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "blue": (62, 92, 172), "green": (72, 140, 82), "grey": (128, 128, 128), "purple": (112, 72, 152), "teal": (46, 138, 140),
}
LIGHTS = ("bright", "dim")
FRAMINGS = ("close-up", "medium shot")
ACTIONS = ("speaks", "turns head left", "turns head right", "nods", "walks across")
_ACTION_PHRASES = {
    "speaks": "speaks",
    "turns head left": "slowly turns head left",
    "turns head right": "slowly turns head right",
    "nods": "nods",
    "walks across": "walks across from left to right",
}
_CAPTION_RE = re.compile(
    r"^\s*a person (?P<action>speaks|(?:slowly )?turns (?:(?:his|her|their) )?head (?:to the )?(?:left|right)|nods"
    r"|walks across(?: from left to right)?)(?P<speaking> while speaking)? in an? (?P<light>\w+) (?P<bg>\w+) room"
    r"(?:,\s*|\s+in\s+)(?:an? )?(?P<framing>close-up|medium shot)\s*\.?\s*$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Scene:
    """What varies from clip to clip and what the caption says: background, light, framing, action."""

    background: str = "blue"
    light: str = "bright"
    framing: str = "close-up"
    action: str = "speaks"
    speaking: bool = True

    def __post_init__(self) -> None:
        for field, value, allowed in (
            ("background", self.background, tuple(BACKGROUNDS)), ("light", self.light, LIGHTS),
            ("framing", self.framing, FRAMINGS), ("action", self.action, ACTIONS),
        ):
            if value not in allowed:
                raise ValueError(f"Scene.{field}: {value!r} is not in the toy vocabulary; use one of {', '.join(allowed)}")
        if self.action == "speaks" and not self.speaking:
            raise ValueError("Scene.speaking: the action 'speaks' needs speaking=True")

    @property
    def background_rgb(self) -> tuple[int, int, int]:
        return BACKGROUNDS[self.background]

    @property
    def caption(self) -> str:
        while_speaking = " while speaking" if self.speaking and self.action != "speaks" else ""
        return (
            f"A person {_ACTION_PHRASES[self.action]}{while_speaking} in a {self.light} {self.background} room, "
            f"{self.framing}."
        )

    @classmethod
    def from_caption(cls, caption: str) -> Scene:
        """Parse a caption of the toy vocabulary (the inverse of :attr:`caption`)."""
        m = _CAPTION_RE.match(caption)
        if not m:
            raise ValueError(
                f"caption {caption!r} is outside the toy vocabulary; write it like {cls().caption!r} "
                f"(actions: {', '.join(_ACTION_PHRASES.values())}; backgrounds: {', '.join(BACKGROUNDS)}; "
                f"light: {', '.join(LIGHTS)}; framing: {', '.join(FRAMINGS)})"
            )
        text = m["action"].lower()
        if "turns" in text:
            action = "turns head left" if text.endswith("left") else "turns head right"
        else:
            action = "walks across" if text.startswith("walks") else text  # speaks | nods
        speaking = action == "speaks" or bool(m["speaking"])
        return cls(m["bg"].lower(), m["light"].lower(), m["framing"].lower(), action, speaking)


def random_scene(rng: np.random.Generator, action: str | None = None, speaking_prob: float = 0.85) -> Scene:
    """A random scene of the vocabulary (``action`` fixed if given)."""
    action = action or str(rng.choice(ACTIONS))
    return Scene(
        background=str(rng.choice(list(BACKGROUNDS))),
        light=str(rng.choice(LIGHTS, p=[0.65, 0.35])),
        framing=str(rng.choice(FRAMINGS, p=[0.6, 0.4])),
        action=action,
        speaking=action == "speaks" or bool(rng.random() < speaking_prob),
    )
