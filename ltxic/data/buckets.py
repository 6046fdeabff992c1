"""Resolution buckets: the clip sizes the LTX-2 video VAE accepts (width and height multiples of 32, 8k+1 frames).

Training configs, dataset validation and sampling all check sizes against these rules, so they live with the data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pydantic_core import PydanticCustomError, core_schema

# The LTX-2 video VAE compresses 32x in space and 8x in time, keeping the first frame on its own.
SPATIAL_MULTIPLE = 32
TEMPORAL_MULTIPLE = 8



def _nearest_multiple(value: int, multiple: int, offset: int = 0) -> tuple[int, int]:
    """The valid values ``offset + k * multiple`` just below and just above ``value`` (at least one k=1/0)."""
    lowest = offset if offset > 0 else multiple
    below = max(lowest, offset + ((value - offset) // multiple) * multiple)
    above = max(lowest, offset + math.ceil((value - offset) / multiple) * multiple)
    return below, above


def _pick(value: int, below: int, above: int) -> int:
    """Nearest of the two; a tie goes up (more pixels, never fewer than asked)."""
    return below if value - below < above - value else above


@dataclass(frozen=True)
class ResolutionBucket:
    """A training or sampling size in pixels and frames, written ``"WIDTHxHEIGHTxFRAMES"`` (``768x448x49``).

    Valid when width and height are multiples of 32 and frames is 8k+1 (the VAE's compression).
    Constructing one directly does not validate; :meth:`parse` and :meth:`problems` do.
    """

    width: int
    height: int
    frames: int

    def __str__(self) -> str:
        return f"{self.width}x{self.height}x{self.frames}"

    @classmethod
    def parse(cls, text: str | ResolutionBucket | list[int] | tuple[int, ...]) -> ResolutionBucket:
        """Parse ``"768x448x49"`` (or ``[768, 448, 49]``); raise ``ValueError`` naming the fix if invalid."""
        bucket = coerce_bucket(text)
        problems = bucket.problems()
        if problems:
            raise ValueError(bucket_message(bucket, problems))
        return bucket

    def problems(self) -> list[str]:
        """What makes this bucket invalid (spatial, then temporal); empty when valid."""
        out = []
        bad = [
            f"{name} {value} = {value / SPATIAL_MULTIPLE:g} x {SPATIAL_MULTIPLE}"
            for name, value in (("width", self.width), ("height", self.height))
            if value < SPATIAL_MULTIPLE or value % SPATIAL_MULTIPLE
        ]
        if bad:
            out.append(
                f"{' and '.join(bad)}, but width and height must be multiples of {SPATIAL_MULTIPLE} "
                f"(the video VAE compresses {SPATIAL_MULTIPLE}x in space)"
            )
        if self.frames < 1 or (self.frames - 1) % TEMPORAL_MULTIPLE:
            out.append(
                f"frames {self.frames} is not {TEMPORAL_MULTIPLE}k+1 (the VAE compresses {TEMPORAL_MULTIPLE}x in "
                "time and keeps the first frame on its own: 1, 9, 17, 25, ..., 49, ..., 121)"
            )
        return out

    @property
    def is_valid(self) -> bool:
        return not self.problems()

    @property
    def latent_size(self) -> tuple[int, int, int]:
        """(frames, height, width) of the latent grid this bucket encodes to."""
        return (
            (self.frames - 1) // TEMPORAL_MULTIPLE + 1,
            self.height // SPATIAL_MULTIPLE,
            self.width // SPATIAL_MULTIPLE,
        )

    @property
    def num_latent_tokens(self) -> int:
        f, h, w = self.latent_size
        return f * h * w

    def alternatives(self) -> list[ResolutionBucket]:
        """Valid buckets near this one: the nearest first, then every bad dimension rounded up, then down."""
        ws = _nearest_multiple(self.width, SPATIAL_MULTIPLE)
        hs = _nearest_multiple(self.height, SPATIAL_MULTIPLE)
        fs = _nearest_multiple(self.frames, TEMPORAL_MULTIPLE, offset=1)
        nearest = nearest_valid_bucket(self.width, self.height, self.frames)
        up = ResolutionBucket(ws[1], hs[1], fs[1])
        down = ResolutionBucket(ws[0], hs[0], fs[0])
        out: list[ResolutionBucket] = []
        for b in (nearest, up, down):
            if b not in out and b != self:
                out.append(b)
        return out

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            validate_bucket,
            # Dumps (Python and JSON alike) write the "768x448x49" form, which validates back to the same bucket.
            serialization=core_schema.plain_serializer_function_ser_schema(str),
        )

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: Any, handler: Any) -> dict[str, Any]:
        return {"type": "string", "pattern": r"^\d+x\d+x\d+$", "examples": ["768x448x49"]}


def nearest_valid_bucket(width: int, height: int, frames: int) -> ResolutionBucket:
    """The valid bucket nearest to ``width x height x frames``: each dimension to its nearest valid value
    (width/height: multiple of 32, at least 32; frames: 8k+1), ties rounding up."""
    w = _pick(width, *_nearest_multiple(width, SPATIAL_MULTIPLE))
    h = _pick(height, *_nearest_multiple(height, SPATIAL_MULTIPLE))
    f = _pick(frames, *_nearest_multiple(frames, TEMPORAL_MULTIPLE, offset=1))
    return ResolutionBucket(w, h, f)


def coerce_bucket(value: Any) -> ResolutionBucket:
    if isinstance(value, ResolutionBucket):
        return value
    if isinstance(value, (list, tuple)) and len(value) == 3 and all(isinstance(v, int) for v in value):
        return ResolutionBucket(*value)
    if isinstance(value, str):
        parts = value.strip().lower().split("x")
        if len(parts) == 3 and all(p.strip().isdigit() for p in parts):
            return ResolutionBucket(*(int(p) for p in parts))
    raise ValueError(
        f"{value!r} is not a resolution bucket: write WIDTHxHEIGHTxFRAMES in pixels and frames, e.g. '768x448x49'"
    )


def bucket_message(bucket: ResolutionBucket, problems: list[str]) -> str:
    offers = " or ".join(f"'{b}'" for b in bucket.alternatives())
    return f"'{bucket}' is not a valid bucket: {'; '.join(problems)}. Use {offers}"


def validate_bucket(value: Any) -> ResolutionBucket:
    try:
        bucket = coerce_bucket(value)
    except ValueError as err:
        raise PydanticCustomError("bucket_format", str(err)) from None
    problems = bucket.problems()
    if problems:
        # The message is built here and passed as a context value so that braces never need escaping.
        raise PydanticCustomError("bucket_invalid", "{detail}", {"detail": bucket_message(bucket, problems)})
    return bucket


__all__ = ["SPATIAL_MULTIPLE", "TEMPORAL_MULTIPLE", "ResolutionBucket", "bucket_message", "coerce_bucket", "nearest_valid_bucket", "validate_bucket"]
