"""LTX-2.3 asset manifest, download (huggingface_hub), verification and status, in a ComfyUI-style tree.

The manifest is data (``assets_manifest.yaml`` beside this module). Files are fetched into a staging folder under
``<root>/.ltxic/downloads``, verified (size, then sha256 against the manifest or the hub's LFS sha256), and only then
moved to their ComfyUI place (``<root>/models/checkpoints/...``): the tree never holds a half-written or unverified
file.

Transfers: files the hub serves through Xet go through ``hf_hub_download`` (Xet's own chunked transfer). Plain HTTP
files (and every file when ``HF_HUB_DISABLE_XET=1``) go through huggingface_hub's ``http_get`` into a persistent
``.part`` file: a dropped connection resumes with a Range request in the same run, and a crashed or interrupted
run resumes from the ``.part`` on the next one (``hf_hub_download`` 2.x deletes its partial file on failure).
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ltxic.io.errors import InputError, disk_full_message, human_bytes, is_disk_full
from ltxic.io.files import DiskFullError, sha256_file, write_json_atomic

MANIFEST_PATH = Path(__file__).with_name("assets_manifest.yaml")
STATE_DIR = ".ltxic"
_SHA256 = re.compile(r"[0-9a-f]{64}")


class AssetError(InputError, RuntimeError):
    """A download or verification failed; the message names the file and what to do."""


class InsufficientDiskSpaceError(InputError, OSError):
    """Not enough free space for the planned downloads; names needed and free bytes and the folder."""


@dataclass(frozen=True)
class AssetFile:
    asset: str
    repo_id: str
    filename: str
    target: str  # relative to the download root
    size: int  # bytes; an estimate when size_exact is False
    size_exact: bool = True
    sha256: str | None = None
    revision: str = "main"


@dataclass(frozen=True)
class Asset:
    name: str
    description: str
    default: bool
    files: tuple[AssetFile, ...]

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


def load_manifest(path: str | os.PathLike[str] | None = None) -> list[Asset]:
    """Read a manifest YAML (the shipped one by default); errors name the file and the entry."""
    path = Path(path) if path is not None else MANIFEST_PATH
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("assets"), list):
        raise AssetError(f"{path}: expected a mapping with an 'assets' list")
    assets = []
    for i, entry in enumerate(data["assets"]):
        where = f"{path}: assets[{i}]"
        try:
            name = str(entry["name"])
            files = []
            for j, f in enumerate(entry["files"]):
                sha = f.get("sha256")
                if sha is not None and not _SHA256.fullmatch(str(sha).lower()):
                    raise AssetError(f"{where}.files[{j}].sha256 must be 64 hex digits or null, got {sha!r}")
                target = str(f["target"])
                if Path(target).is_absolute() or ".." in Path(target).parts:
                    raise AssetError(f"{where}.files[{j}].target must be a relative path inside the root: {target!r}")
                files.append(
                    AssetFile(
                        asset=name,
                        repo_id=str(f["repo_id"]),
                        filename=str(f["filename"]),
                        target=target,
                        size=int(f["size"]),
                        size_exact=bool(f.get("size_exact", True)),
                        sha256=str(sha).lower() if sha else None,
                        revision=str(f.get("revision", "main")),
                    )
                )
        except KeyError as err:
            raise AssetError(f"{where}: missing field {err.args[0]!r}") from err
        assets.append(Asset(name, str(entry.get("description", "")), bool(entry.get("default", True)), tuple(files)))
    return assets


def select_assets(assets: Sequence[Asset], only: Iterable[str] | None = None) -> list[Asset]:
    """The default assets, or exactly those named in ``only`` (unknown names raise, listing the known ones)."""
    if not only:
        return [a for a in assets if a.default]
    names = {a.name: a for a in assets}
    wanted = list(only)
    unknown = [n for n in wanted if n not in names]
    if unknown:
        raise AssetError(f"unknown asset name(s) {unknown}; known: {sorted(names)}")
    return [names[n] for n in dict.fromkeys(wanted)]


# ---------------------------------------------------------------- verification records and status


def _records_path(root: Path) -> Path:
    return root / STATE_DIR / "verified.json"


def _read_records(root: Path) -> dict[str, dict]:
    path = _records_path(root)
    if not path.is_file():
        return {}
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, TypeError):
        return {}  # a damaged record file only costs a re-hash


@dataclass
class FileStatus:
    """One file of the manifest as found under the root.

    ``state``: ``ok`` (size and sha256 match), ``unverified`` (present, size plausible, no sha256 known yet),
    ``missing``, ``corrupt`` (wrong size or sha256).
    """

    asset: str
    target: Path
    state: str
    expected_size: int
    size_exact: bool
    found_size: int | None = None
    detail: str = ""


def _check_file(
    path: Path, expected_size: int | None, expected_sha: str | None, record: dict | None
) -> tuple[str, str, str | None]:
    """Return (state, detail, actual_sha or None); reuses a record when size and mtime are unchanged."""
    st = path.stat()
    if expected_size is not None and st.st_size != expected_size:
        return "corrupt", f"size {st.st_size} != expected {expected_size}", None
    if record and record.get("size") == st.st_size and record.get("mtime_ns") == st.st_mtime_ns:
        actual = record.get("sha256")
    else:
        actual = sha256_file(path) if expected_sha else None
    if expected_sha is None:
        return "unverified", "no sha256 known yet (run `ltxic download` to check against the hub)", actual
    if actual != expected_sha:
        return "corrupt", f"sha256 {actual} != expected {expected_sha}", actual
    return "ok", "", actual


def asset_status(
    root: str | os.PathLike[str],
    only: Iterable[str] | None = None,
    manifest: Sequence[Asset] | None = None,
    verify: bool = True,
) -> list[FileStatus]:
    """What is present, missing or corrupt under ``root``; reads only, never writes or touches the network.

    With ``verify`` the sha256 of each present file is checked (against the manifest, or the hub sha256 recorded by
    an earlier download); unchanged files reuse the recorded hash instead of re-reading tens of gigabytes.
    """
    root = Path(root)
    records = _read_records(root)
    rows = []
    for asset in select_assets(manifest if manifest is not None else load_manifest(), only):
        for f in asset.files:
            target = root / f.target
            row = FileStatus(f.asset, target, "missing", f.size, f.size_exact)
            if target.is_file():
                rec = records.get(f.target)
                row.found_size = target.stat().st_size
                exp_sha = f.sha256 or (rec or {}).get("expected_sha256")
                exp_size = f.size if f.size_exact else (rec or {}).get("expected_size")
                if verify:
                    row.state, row.detail, _ = _check_file(target, exp_size, exp_sha, rec)
                elif exp_size is not None and row.found_size != exp_size:
                    row.state, row.detail = "corrupt", f"size {row.found_size} != expected {exp_size}"
                else:
                    row.state = "unverified"
            rows.append(row)
    return rows


def format_status(rows: Sequence[FileStatus]) -> str:
    """A fixed-width table of :func:`asset_status` rows."""
    lines = [f"{'asset':<18} {'state':<10} {'size':>10}  path"]
    for r in rows:
        size = ("" if r.size_exact else "~") + human_bytes(r.expected_size, 2)
        lines.append(f"{r.asset:<18} {r.state:<10} {size:>10}  {r.target}" + (f"  ({r.detail})" if r.detail else ""))
    counts = {s: sum(r.state == s for r in rows) for s in ("ok", "unverified", "missing", "corrupt")}
    lines.append(", ".join(f"{v} {k}" for k, v in counts.items()))
    return "\n".join(lines)


# ---------------------------------------------------------------- plan and disk space


def _free_bytes(path: Path) -> int:
    probe = path
    while not probe.exists():  # the root may not exist yet: ask the disk it will live on
        probe = probe.parent
    return shutil.disk_usage(probe).free


@dataclass
class DownloadPlan:
    root: Path
    rows: list[FileStatus]
    to_fetch: list[FileStatus]
    need_bytes: int
    free_bytes: int
    files: list[AssetFile] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return self.need_bytes <= self.free_bytes


def plan_download(
    root: str | os.PathLike[str],
    only: Iterable[str] | None = None,
    manifest: Sequence[Asset] | None = None,
    free_space: Callable[[Path], int] = _free_bytes,
) -> DownloadPlan:
    """What a download would fetch and the space it needs; no network, no writes (sizes only, no hashing)."""
    root = Path(root)
    assets = select_assets(manifest if manifest is not None else load_manifest(), only)
    rows = asset_status(root, only=[a.name for a in assets], manifest=assets, verify=False)
    to_fetch = [r for r in rows if r.state in ("missing", "corrupt")]
    need = sum(r.expected_size - (r.found_size or 0) for r in to_fetch)
    files = [f for a in assets for f in a.files]
    return DownloadPlan(root, rows, to_fetch, max(need, 0), free_space(root), files)


def format_plan(plan: DownloadPlan) -> str:
    lines = [f"download root: {plan.root}"]
    for f, r in zip(plan.files, plan.rows):
        size = ("" if f.size_exact else "~") + human_bytes(f.size, 2)
        action = "fetch" if r in plan.to_fetch else "keep"
        lines.append(f"  {action:<5} {f.asset:<18} {size:>10}  {f.repo_id}/{f.filename} -> {r.target}")
    verdict = "fits" if plan.fits else "DOES NOT FIT"
    lines.append(
        f"needed: {human_bytes(plan.need_bytes, 2)} for {len(plan.to_fetch)} file(s); "
        f"free: {human_bytes(plan.free_bytes, 2)} on the disk of {plan.root} ({verdict})"
    )
    return "\n".join(lines)


def check_disk_space(plan: DownloadPlan) -> None:
    if not plan.fits:
        raise InsufficientDiskSpaceError(
            f"not enough disk space under {plan.root}: the download needs {plan.need_bytes} bytes "
            f"({human_bytes(plan.need_bytes, 2)}) but only {plan.free_bytes} bytes ({human_bytes(plan.free_bytes, 2)}) are free. "
            "Free some space, pick another --root, or fetch fewer assets with --only NAME."
        )


# ---------------------------------------------------------------- download


def _staging_dir(root: Path, f: AssetFile) -> Path:
    return root / STATE_DIR / "downloads" / f.repo_id.replace("/", "__")


def _http_download(
    url: str, part: Path, expected_size: int | None, token: str | None, same_host: bool, restart: bool
) -> Path:
    """Append the missing bytes of ``url`` to ``part`` (a Range request from its current size); return ``part``."""
    from huggingface_hub.file_download import http_get
    from huggingface_hub.utils import WeakFileLock, build_hf_headers

    part.parent.mkdir(parents=True, exist_ok=True)
    with WeakFileLock(part.with_name(part.name + ".lock")):
        if restart or (expected_size is not None and part.is_file() and part.stat().st_size > expected_size):
            part.unlink(missing_ok=True)
        headers = build_hf_headers(token=token)
        if not same_host:
            headers.pop("authorization", None)  # signed CDN urls must not receive the hub token
        for attempt in range(_RESUMES + 1):
            with open(part, "ab") as fh:
                try:
                    http_get(url, fh, resume_size=fh.tell(), headers=dict(headers), expected_size=expected_size,
                             displayed_filename=part.name.rsplit(".", 2)[0])
                    break
                except Exception as err:  # a dropped connection (the hub client's error types differ by version)
                    if is_disk_full(err):  # not transient: say so, with the space the rest of the file needs
                        left = expected_size - fh.tell() if expected_size is not None else None
                        raise DiskFullError(errno.ENOSPC, disk_full_message(
                            part, left, intact=f"Nothing was placed in the tree; the {fh.tell()} bytes that arrived stay "
                                               f"in {part.name} and the next `ltxic download` resumes from them.")) from err
                    if attempt == _RESUMES or not _is_transient(err):
                        raise
            # the bytes that arrived stay in the part file; the next request asks for the rest (Range)
    return part


_RESUMES = 3  # how often one file's transfer is resumed after the connection drops


def _is_transient(err: BaseException) -> bool:
    text = f"{type(err).__name__}: {err}"
    return isinstance(err, (ConnectionError, TimeoutError, OSError)) or any(
        word in text for word in ("Connection broken", "IncompleteRead", "ChunkedEncoding", "RemoteProtocol",
                                  "ReadTimeout", "ConnectionError", "ReadError")
    )


def _fetch_one(
    f: AssetFile,
    root: Path,
    records: dict[str, dict],
    lock: threading.Lock,
    endpoint: str | None,
    token: str | None,
    cache_dir: str | None,
    transfer: str = "auto",
) -> FileStatus:
    from importlib.util import find_spec
    from urllib.parse import urlsplit

    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_download, hf_hub_url

    url = hf_hub_url(f.repo_id, f.filename, revision=f.revision, endpoint=endpoint)
    meta = get_hf_file_metadata(url, token=token, endpoint=endpoint)
    xet = meta.xet_file_data is not None and find_spec("hf_xet") is not None and not constants.HF_HUB_DISABLE_XET
    use_hub = transfer == "hub" or (transfer == "auto" and xet)
    hub_sha = (meta.etag or "").lower()
    expected_sha = f.sha256 or (hub_sha if _SHA256.fullmatch(hub_sha) else None)
    expected_size = meta.size if meta.size is not None else (f.size if f.size_exact else None)
    if f.sha256 and _SHA256.fullmatch(hub_sha) and hub_sha != f.sha256:
        raise AssetError(
            f"{f.repo_id}/{f.filename}: the hub now serves sha256 {hub_sha}, the manifest pins {f.sha256}. "
            "The file changed upstream: update the manifest entry (sha256, size) after checking the release notes."
        )
    target = root / f.target

    def record(path: Path, actual_sha: str | None) -> None:
        st = path.stat()
        with lock:
            records[f.target] = {
                "size": st.st_size,
                "mtime_ns": st.st_mtime_ns,
                "sha256": actual_sha or sha256_file(path),
                "expected_sha256": expected_sha,
                "expected_size": expected_size,
                "repo_id": f.repo_id,
                "filename": f.filename,
                "commit": meta.commit_hash,
            }

    if target.is_file():
        state, detail, actual = _check_file(target, expected_size, expected_sha, records.get(f.target))
        if state in ("ok", "unverified"):
            record(target, actual)
            return FileStatus(f.asset, target, state, f.size, f.size_exact, target.stat().st_size, "already present")
        target.unlink()  # corrupt: remove before fetching again
    last = ""
    part = _staging_dir(root, f) / f"{Path(f.filename).name}.{(meta.etag or 'noetag')[:16]}.part"
    for attempt in range(2):  # a corrupted transfer is deleted and fetched once more
        if use_hub:
            staged = Path(
                hf_hub_download(
                    f.repo_id,
                    f.filename,
                    revision=f.revision,
                    local_dir=_staging_dir(root, f),
                    endpoint=endpoint,
                    token=token,
                    cache_dir=cache_dir,
                    force_download=attempt > 0,
                )
            )
        else:
            same_host = urlsplit(meta.location).netloc == urlsplit(url).netloc
            staged = _http_download(meta.location, part, expected_size, token, same_host, restart=attempt > 0)
        state, last, actual = _check_file(staged, expected_size, expected_sha, None)
        if state in ("ok", "unverified"):
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged, target)
            record(target, actual)
            detail = "downloaded" + (" after one re-fetch" if attempt else "")
            return FileStatus(f.asset, target, state, f.size, f.size_exact, target.stat().st_size, detail)
        staged.unlink(missing_ok=True)
    raise AssetError(
        f"{f.repo_id}/{f.filename}: the download failed verification twice ({last}). "
        "Check the network or proxy, then run `ltxic download` again; nothing unverified was placed in the tree."
    )


def download_assets(
    root: str | os.PathLike[str],
    only: Iterable[str] | None = None,
    manifest: Sequence[Asset] | None = None,
    *,
    endpoint: str | None = None,
    token: str | None = None,
    max_workers: int = 4,
    free_space: Callable[[Path], int] = _free_bytes,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
    transfer: str = "auto",
) -> list[FileStatus]:
    """Fetch the selected assets into ``root`` (ComfyUI layout), in parallel, verified; return their status.

    The token comes from ``token`` or the ``HF_TOKEN`` environment variable (gated repos such as Gemma need one).
    Raises :class:`InsufficientDiskSpaceError` before any transfer when the files cannot fit. ``transfer``:
    ``auto`` (Xet-served files through ``hf_hub_download``, the rest through the resumable ``.part`` path),
    ``hub`` (always ``hf_hub_download``) or ``http`` (always the resumable path).
    """
    if transfer not in ("auto", "hub", "http"):
        raise ValueError(f"transfer must be 'auto', 'hub' or 'http', got {transfer!r}")
    from ltxic.io.progress import progress as tqdm

    root = Path(root)
    assets = select_assets(manifest if manifest is not None else load_manifest(), only)
    plan = plan_download(root, only=[a.name for a in assets], manifest=assets, free_space=free_space)
    check_disk_space(plan)
    token = token or os.environ.get("HF_TOKEN") or None
    records = _read_records(root)
    lock = threading.Lock()
    files = [f for a in assets for f in a.files]
    results: dict[str, FileStatus] = {}
    errors: list[str] = []
    try:
        with ThreadPoolExecutor(max_workers=max(1, max_workers)) as pool, tqdm(
            total=len(files), desc="ltxic download", unit="file", disable=not progress
        ) as bar:
            futures = {
                pool.submit(
                    _fetch_one, f, root, records, lock, endpoint, token, str(cache_dir) if cache_dir else None, transfer
                ): f
                for f in files
            }
            for fut in as_completed(futures):
                f = futures[fut]
                try:
                    results[f.target] = fut.result()
                except Exception as err:  # keep the other files going; report all failures at the end
                    errors.append(f"{f.repo_id}/{f.filename} -> {root / f.target}: {err}")
                bar.update(1)
    finally:
        if records:
            write_json_atomic(_records_path(root), records)
    if errors:
        raise AssetError("some downloads failed:\n  " + "\n  ".join(errors))
    return [results[f.target] for f in files]
