"""What this machine can run: versions, accelerator, free disk. The first cell of the course prints it."""

from __future__ import annotations

import platform
import shutil
from importlib import metadata


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def environment_report(path: str = ".") -> dict[str, str]:
    import torch

    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        device = f"cuda: {props.name}, {props.total_memory / 2**30:.0f} GiB"
    else:
        device = "cpu only (the tiny model runs here; the 22B model needs a GPU)"
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchaudio": _version("torchaudio"),
        "ltx-core": _version("ltx-core"),
        "safetensors": _version("safetensors"),
        "moviepy": _version("moviepy"),
        "device": device,
        "cpu threads": str(torch.get_num_threads()),
        "free disk": f"{shutil.disk_usage(path).free / 2**30:.1f} GiB",
    }
