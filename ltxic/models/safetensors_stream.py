"""Write a safetensors file tensor by tensor, without holding the whole file in memory.

``safetensors.torch.save_file`` serializes every tensor into one buffer first: for the 46 GB LTX-2.3 checkpoint
(``ltxic.models.miniature`` at full scale) that is the file twice over in host memory. :class:`StreamingSafetensorsWriter`
computes the header from names, dtypes and shapes (safetensors' own layout: tensors ordered by dtype, then name),
and writes each tensor's bytes at its offset as it arrives, in any order; the file appears atomically and only when
every tensor was written.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

from ltxic.io.files import atomic_path

TensorSpec = tuple[torch.dtype, tuple[int, ...]]

# torch dtype -> safetensors dtype name
_ST_NAMES: dict[torch.dtype, str] = {
    torch.bool: "BOOL", torch.uint8: "U8", torch.int8: "I8", torch.float8_e5m2: "F8_E5M2",
    torch.float8_e4m3fn: "F8_E4M3", torch.int16: "I16", torch.uint16: "U16", torch.float16: "F16",
    torch.bfloat16: "BF16", torch.int32: "I32", torch.uint32: "U32", torch.float32: "F32", torch.float64: "F64",
    torch.int64: "I64", torch.uint64: "U64",
}
# safetensors' Dtype enum order: serialize() lays tensors out by descending dtype, then by name (largest alignment first)
_ST_ENUM_ORDER = ("BOOL", "F4", "F6_E2M3", "F6_E3M2", "U8", "I8", "F8_E5M2", "F8_E4M3", "F8_E8M0", "I16", "U16",
                  "F16", "BF16", "I32", "U32", "F32", "F64", "I64", "U64")


def spec_nbytes(spec: TensorSpec) -> int:
    dtype, shape = spec
    return math.prod(shape) * dtype.itemsize


def safetensors_layout(
    specs: Mapping[str, TensorSpec], metadata: Mapping[str, str] | None = None
) -> tuple[bytes, dict[str, tuple[int, int]]]:
    """What precedes the data (8-byte little-endian length + JSON header padded with spaces to a multiple of 8) and
    each tensor's ``[begin, end)`` in the data section, laid out exactly as ``safetensors.torch.save_file`` does."""
    for name, (dtype, _) in specs.items():
        if dtype not in _ST_NAMES:
            raise TypeError(f"{name}: dtype {dtype} has no safetensors name here")
    order = sorted(specs, key=lambda n: (-_ST_ENUM_ORDER.index(_ST_NAMES[specs[n][0]]), n))
    header: dict[str, Any] = {}
    if metadata is not None:
        header["__metadata__"] = {str(k): str(v) for k, v in sorted(metadata.items())}
    offsets: dict[str, tuple[int, int]] = {}
    pos = 0
    for name in order:
        dtype, shape = specs[name]
        end = pos + spec_nbytes(specs[name])
        offsets[name] = (pos, end)
        header[name] = {"dtype": _ST_NAMES[dtype], "shape": list(shape), "data_offsets": [pos, end]}
        pos = end
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text, offsets


def safetensors_size(specs: Mapping[str, TensorSpec], metadata: Mapping[str, str] | None = None) -> int:
    """The exact size in bytes of the file :func:`safetensors_layout` describes."""
    prefix, _ = safetensors_layout(specs, metadata)
    return len(prefix) + sum(spec_nbytes(s) for s in specs.values())


def _pwrite_all(fd: int, data: Any, offset: int) -> None:
    view = memoryview(data).cast("B")
    while view:
        if hasattr(os, "pwrite"):
            n = os.pwrite(fd, view, offset)
        else:  # one writer thread per file, so seek + write is safe
            os.lseek(fd, offset, os.SEEK_SET)
            n = os.write(fd, view)
        view, offset = view[n:], offset + n


class StreamingSafetensorsWriter:
    """Write a safetensors file tensor by tensor, in any order, without holding the file in memory.

    The header comes from the planned names / dtypes / shapes (``specs``), so the result is byte-identical to
    ``safetensors.torch.save_file`` on the same tensors and metadata. :meth:`write` copies one tensor to the CPU
    (converting it to its planned dtype first, on its own device) and hands the bytes to a background thread that
    writes them at their offset; at most ``max_pending_bytes`` wait there. The file appears atomically (a temp file
    beside it is renamed on success); leaving the ``with`` block with tensors unwritten is an error.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        specs: Mapping[str, TensorSpec],
        metadata: Mapping[str, str] | None = None,
        *,
        on_write: Callable[[int], Any] | None = None,
        max_pending_bytes: int = 1 << 30,
    ) -> None:
        self.path = Path(path)
        self.specs = {k: (dtype, tuple(int(d) for d in shape)) for k, (dtype, shape) in specs.items()}
        self._prefix, offsets = safetensors_layout(self.specs, metadata)
        self._offsets = {k: (len(self._prefix) + b, len(self._prefix) + e) for k, (b, e) in offsets.items()}
        self.nbytes = len(self._prefix) + sum(spec_nbytes(s) for s in self.specs.values())
        self._missing = set(self.specs)
        self._on_write = on_write
        self._max_pending = max_pending_bytes
        self._pending: deque[tuple[Future[None], int]] = deque()
        self._pending_bytes = 0
        self._atomic: Any = None
        self._fd: int | None = None
        self._pool: ThreadPoolExecutor | None = None

    @property
    def complete(self) -> bool:
        return not self._missing

    def __enter__(self) -> StreamingSafetensorsWriter:
        self._atomic = atomic_path(self.path)
        tmp = self._atomic.__enter__()
        try:
            self._fd = os.open(tmp, os.O_WRONLY | getattr(os, "O_BINARY", 0))
            _pwrite_all(self._fd, self._prefix, 0)
            if self._on_write:
                self._on_write(len(self._prefix))
        except BaseException:
            if self._fd is not None:
                os.close(self._fd)
            self._atomic.__exit__(*sys.exc_info())
            raise
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="safetensors-writer")
        return self

    def _job(self, data: Any, offset: int, nbytes: int) -> None:
        assert self._fd is not None
        _pwrite_all(self._fd, data, offset)
        if self._on_write:
            self._on_write(nbytes)

    def _wait_oldest(self) -> None:
        future, n = self._pending.popleft()
        self._pending_bytes -= n
        future.result()

    def write(self, name: str, tensor: torch.Tensor) -> None:
        if self._pool is None:
            raise RuntimeError("use StreamingSafetensorsWriter as a context manager")
        if name not in self.specs:
            raise KeyError(f"{self.path.name}: {name} is not in the planned tensors")
        if name not in self._missing:
            raise ValueError(f"{self.path.name}: {name} written twice")
        dtype, shape = self.specs[name]
        if tuple(tensor.shape) != shape:
            raise ValueError(f"{self.path.name}: {name} has shape {tuple(tensor.shape)}, planned {shape}")
        t = tensor.detach()
        if t.dtype != dtype:
            t = t.to(dtype)
        t = t.contiguous()
        if t.device.type != "cpu":
            t = t.to("cpu")
        data = t.reshape(-1).view(torch.uint8).numpy()
        begin, end = self._offsets[name]
        self._missing.discard(name)
        if end == begin:
            return
        while self._pending and self._pending_bytes + data.nbytes > self._max_pending:
            self._wait_oldest()
        self._pending.append((self._pool.submit(self._job, data, begin, data.nbytes), data.nbytes))
        self._pending_bytes += data.nbytes

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        error: BaseException | None = exc
        try:
            while self._pending:
                try:
                    self._wait_oldest()
                except BaseException as e:  # noqa: BLE001 (re-raised below, through atomic_path)
                    error = error or e
            if error is None and self._missing:
                error = ValueError(f"{self.path.name}: {len(self._missing)} planned tensors never written, "
                                   f"e.g. {sorted(self._missing)[:3]}")
            if error is None:
                os.ftruncate(self._fd, self.nbytes)  # type: ignore[arg-type]
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
        if error is None:
            self._atomic.__exit__(None, None, None)
            return False
        if error is exc:
            self._atomic.__exit__(exc_type, exc, tb)
            return False
        try:
            raise error
        except BaseException:
            if not self._atomic.__exit__(*sys.exc_info()):
                raise
        return False


def save_streaming(path: str | os.PathLike[str], tensors: Mapping[str, torch.Tensor],
                   metadata: Mapping[str, str] | None = None) -> Path:
    """``safetensors.torch.save_file`` through :class:`StreamingSafetensorsWriter` (same bytes)."""
    specs = {k: (v.dtype, tuple(v.shape)) for k, v in tensors.items()}
    with StreamingSafetensorsWriter(path, specs, metadata) as w:
        for k, v in tensors.items():
            w.write(k, v)
    return Path(path)
