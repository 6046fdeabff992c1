"""ltxic.data.assets: the real huggingface_hub download path against a local Hub-like HTTP server (no network)."""

from __future__ import annotations

import errno

import hashlib
import http.server
import socket
import threading
import urllib.parse
from pathlib import Path

import pytest
import yaml

from ltxic.data.assets import (
    AssetError,
    InsufficientDiskSpaceError,
    asset_status,
    download_assets,
    format_status,
    load_manifest,
    plan_download,
)

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any connection that is not to the loopback interface fails the test."""
    real_connect = socket.socket.connect
    refused: list[object] = []

    def guarded(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if host not in ("127.0.0.1", "::1", "localhost"):
            refused.append(address)
            raise OSError(f"test tried to reach the network: {address!r}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    yield refused
    assert not refused, f"non-loopback connections attempted: {refused}"


class FakeHub(http.server.ThreadingHTTPServer):
    """The endpoints hf_hub_download uses: HEAD/GET /{repo}/resolve/{rev}/{file}, with Range support."""

    daemon_threads = True

    def __init__(self, files: dict[tuple[str, str], bytes]):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files = files
        self.events: list[tuple[str, str, int, int]] = []  # (method, filename, range start, bytes sent)
        self.drops: dict[str, list[int]] = {}  # filename -> bytes sent before hanging up, one per GET
        self.corrupt_once: set[str] = set()
        self.corrupt_always: set[str] = set()
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def gets(self, filename: str) -> list[tuple[str, str, int, int]]:
        return [e for e in self.events if e[0] == "GET" and e[1] == filename]


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FakeHub

    def log_message(self, *args):  # keep test output quiet
        pass

    def _lookup(self):
        parts = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path).lstrip("/").split("/")
        if len(parts) < 5 or parts[2] != "resolve":
            return None, None
        repo, filename = f"{parts[0]}/{parts[1]}", "/".join(parts[4:])
        return filename, self.server.files.get((repo, filename))

    def _headers(self, data: bytes, status: int, start: int = 0) -> None:
        sha = hashlib.sha256(data).hexdigest()
        self.send_response(status)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", f'"{sha}"')
        self.send_header("X-Linked-Etag", f'"{sha}"')
        self.send_header("X-Linked-Size", str(len(data)))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()

    def do_HEAD(self):
        filename, data = self._lookup()
        if data is None:
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        with self.server.lock:
            self.server.events.append(("HEAD", filename, 0, 0))
        self._headers(data, 200)

    def do_GET(self):
        filename, data = self._lookup()
        if data is None:
            self.send_error(404)
            return
        start = 0
        rng = self.headers.get("Range")
        if rng:
            start = int(rng.split("=")[1].split("-")[0])
        body = data[start:]
        with self.server.lock:
            plan = self.server.drops.get(filename)
            drop = plan.pop(0) if plan else None
            if filename in self.server.corrupt_always or filename in self.server.corrupt_once:
                self.server.corrupt_once.discard(filename)
                body = bytes(b ^ 0xFF for b in body[:16]) + body[16:]
            sent = body if drop is None else body[:drop]
            # recorded before the first byte leaves: once a client has seen a response, its event is in the list
            self.server.events.append(("GET", filename, start, len(sent)))
        self._headers(data, 206 if start else 200, start)
        self.wfile.write(sent)
        if drop is not None:
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)


def _blob(n: int, seed: int) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:n])


@pytest.fixture()
def hub(tmp_path, monkeypatch):
    import huggingface_hub.constants as hf_constants

    # Small chunks so a 600 KB file crosses several chunk boundaries (the hub default is 10 MB).
    monkeypatch.setattr(hf_constants, "DOWNLOAD_CHUNK_SIZE", 64 * 1024)
    files = {
        ("toy/ltx", "ltx-toy-dev.safetensors"): _blob(600_000, 1),
        ("toy/comfy", "split_files/text_encoders/enc.safetensors"): _blob(50_000, 2),
        ("toy/ltx", "toy-lora.safetensors"): _blob(30_000, 3),
    }
    ckpt = files[("toy/ltx", "ltx-toy-dev.safetensors")]
    manifest = {
        "version": 1,
        "assets": [
            {
                "name": "checkpoint",
                "description": "toy checkpoint, sha256 pinned",
                "files": [
                    {
                        "repo_id": "toy/ltx",
                        "filename": "ltx-toy-dev.safetensors",
                        "target": "models/checkpoints/ltx-toy-dev.safetensors",
                        "size": len(ckpt),
                        "sha256": hashlib.sha256(ckpt).hexdigest(),
                    }
                ],
            },
            {
                "name": "text-encoder",
                "description": "file in a repo subfolder, placed flat",
                "files": [
                    {
                        "repo_id": "toy/comfy",
                        "filename": "split_files/text_encoders/enc.safetensors",
                        "target": "models/text_encoders/enc.safetensors",
                        "size": 50_000,
                    }
                ],
            },
            {
                "name": "distilled-lora",
                "description": "estimated size, no sha256 published: verified against the hub's",
                "files": [
                    {
                        "repo_id": "toy/ltx",
                        "filename": "toy-lora.safetensors",
                        "target": "models/loras/toy-lora.safetensors",
                        "size": 40_000,
                        "size_exact": False,
                        "sha256": None,
                    }
                ],
            },
        ],
    }
    manifest_path = tmp_path / "manifest.yaml"
    manifest_path.write_text(yaml.safe_dump(manifest))
    server = FakeHub(files)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    server.manifest = load_manifest(manifest_path)
    server.manifest_path = manifest_path
    server.cache_dir = tmp_path / "hf-cache"
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _download(hub: FakeHub, root: Path, **kw):
    return download_assets(
        root, manifest=hub.manifest, endpoint=hub.url, cache_dir=hub.cache_dir, progress=False, **kw
    )


def test_shipped_manifest_is_well_formed():
    assets = {a.name: a for a in load_manifest()}
    for name in ("checkpoint", "text-encoder", "spatial-upscaler", "temporal-upscaler", "distilled-lora"):
        assert assets[name].default
    folders = {a.name: Path(a.files[0].target).parts[:2] for a in assets.values()}
    assert folders["checkpoint"] == ("models", "checkpoints")
    assert folders["text-encoder"] == ("models", "text_encoders")
    assert folders["spatial-upscaler"] == folders["temporal-upscaler"] == ("models", "latent_upscale_models")
    assert folders["distilled-lora"] == ("models", "loras")
    assert assets["checkpoint"].files[0].repo_id == "Lightricks/LTX-2.3"
    assert 40e9 < assets["checkpoint"].size < 50e9


@pytest.mark.parametrize("transfer", ["auto", "hub"])
def test_full_download_places_verified_files(hub, tmp_path, transfer):
    root = tmp_path / "comfy"
    rows = _download(hub, root, transfer=transfer)  # "hub": through hf_hub_download, as for Xet-served files
    assert [r.state for r in rows] == ["ok", "ok", "ok"]  # the lora is verified against the hub's sha256
    for (_, filename), data in hub.files.items():
        target = next(root.glob(f"models/*/{Path(filename).name}"))
        assert target.read_bytes() == data
    tree = sorted(p.relative_to(root).as_posix() for p in (root / "models").rglob("*") if p.is_file())
    assert tree == [
        "models/checkpoints/ltx-toy-dev.safetensors",
        "models/loras/toy-lora.safetensors",
        "models/text_encoders/enc.safetensors",
    ]
    status = asset_status(root, manifest=hub.manifest)
    assert [r.state for r in status] == ["ok", "ok", "ok"]
    from ltxic.cli import main

    assert main(["download", "--root", str(root), "--manifest", str(hub.manifest_path), "--status"]) == 0
    (root / "models/loras/toy-lora.safetensors").unlink()
    assert main(["download", "--root", str(root), "--manifest", str(hub.manifest_path), "--status"]) == 1
    _download(hub, root, transfer=transfer)
    assert "3 ok, 0 unverified, 0 missing, 0 corrupt" in format_status(status)
    # a second run fetches nothing
    n_gets = len([e for e in hub.events if e[0] == "GET"])
    _download(hub, root, transfer=transfer)
    assert len([e for e in hub.events if e[0] == "GET"]) == n_gets


def test_interrupted_download_resumes_from_offset(hub, tmp_path):
    name = "ltx-toy-dev.safetensors"
    hub.drops[name] = [300_000]  # the server hangs up mid-file once
    root = tmp_path / "comfy"
    rows = _download(hub, root, only=["checkpoint"])
    assert rows[0].state == "ok"
    first, second = hub.gets(name)
    assert first[2] == 0 and first[3] == 300_000
    offset = second[2]
    assert 0 < offset <= 300_000  # resumed with a Range request, not from scratch
    assert second[3] == len(hub.files[("toy/ltx", name)]) - offset
    assert (root / "models/checkpoints" / name).read_bytes() == hub.files[("toy/ltx", name)]


def test_crashed_run_resumes_from_its_part_file_on_the_next_run(hub, tmp_path, monkeypatch):
    import huggingface_hub.file_download as hf_download

    monkeypatch.setattr(hf_download.time, "sleep", lambda seconds: None)  # skip the back-off between retries
    name = "ltx-toy-dev.safetensors"
    data = hub.files[("toy/ltx", name)]
    # first run: 200 KB arrive, then the connection keeps dropping until huggingface_hub gives up
    hub.drops[name] = [200_000] + [0] * 10
    root = tmp_path / "comfy"
    with pytest.raises(AssetError, match=name):
        _download(hub, root, only=["checkpoint"])
    part = root / ".ltxic/downloads/toy__ltx" / f"{name}.{hashlib.sha256(data).hexdigest()[:16]}.part"
    kept = part.stat().st_size
    assert 0 < kept <= 200_000 and part.read_bytes() == data[:kept]
    assert not (root / "models/checkpoints" / name).exists()
    # second run: one GET, from where the first run stopped
    hub.drops.clear()
    before = len(hub.gets(name))
    rows = _download(hub, root, only=["checkpoint"])
    assert rows[0].state == "ok"
    (get,) = hub.gets(name)[before:]
    assert get[2] == kept and get[3] == len(data) - kept
    assert (root / "models/checkpoints" / name).read_bytes() == data
    assert not part.exists()


class _FillingDisk:
    """A file whose disk fills after ``room`` more bytes: writes then fail as the kernel's do (ENOSPC)."""

    def __init__(self, fh, room: int) -> None:
        self.fh, self.room = fh, room

    def write(self, data) -> int:
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(data)
        return self.fh.write(data)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.fh.close()

    def __getattr__(self, name):
        return getattr(self.fh, name)


def test_full_disk_mid_download_names_the_file_and_changes_nothing_in_the_tree(hub, tmp_path, monkeypatch, capsys):
    """A full disk is not retried as a dropped connection: one message with the space needed; files already in the tree
    stay as they were, the failed file is not placed, and its bytes stay in the .part for the next run."""
    import builtins

    import ltxic.data.assets as assets_module
    from ltxic.cli import main

    root = tmp_path / "comfy"
    _download(hub, root, only=["distilled-lora"])
    before = {p: p.read_bytes() for p in (root / "models").rglob("*") if p.is_file()}
    assert before
    monkeypatch.setattr(assets_module, "open", lambda path, mode="r", *a, **k: _FillingDisk(
        builtins.open(path, mode, *a, **k), 100_000) if mode == "ab" else builtins.open(path, mode, *a, **k), raising=False)
    argv = ["download", "--root", str(root), "--only", "checkpoint", "--manifest", str(hub.manifest_path)]
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_HUB_CACHE", str(hub.cache_dir))
    assert main(argv) == 1
    err = capsys.readouterr().err
    name = "ltx-toy-dev.safetensors"
    assert "Traceback" not in err and "disk full" in err and name in err and "needed" in err, err
    assert len(hub.gets(name)) == 1  # not retried as a dropped connection
    assert {p: p.read_bytes() for p in (root / "models").rglob("*") if p.is_file()} == before
    assert not (root / "models/checkpoints" / name).exists()
    (part,) = (root / ".ltxic/downloads").rglob(f"{name}.*.part")
    assert 0 < part.stat().st_size <= 100_000


def test_corrupted_file_on_disk_is_detected_and_refetched(hub, tmp_path):
    root = tmp_path / "comfy"
    _download(hub, root)
    lora = root / "models/loras/toy-lora.safetensors"
    data = bytearray(lora.read_bytes())
    data[100] ^= 0x01  # same size, one bit flipped
    lora.write_bytes(bytes(data))
    states = {r.asset: r.state for r in asset_status(root, manifest=hub.manifest)}
    assert states == {"checkpoint": "ok", "text-encoder": "ok", "distilled-lora": "corrupt"}
    before = len(hub.gets("toy-lora.safetensors"))
    rows = _download(hub, root)
    assert all(r.state == "ok" for r in rows)
    assert len(hub.gets("toy-lora.safetensors")) == before + 1
    assert lora.read_bytes() == hub.files[("toy/ltx", "toy-lora.safetensors")]


@pytest.mark.parametrize("transfer", ["auto", "hub"])
def test_corrupted_transfer_is_deleted_and_fetched_once_more(hub, tmp_path, transfer):
    root = tmp_path / "comfy"
    hub.corrupt_once.add("split_files/text_encoders/enc.safetensors")
    rows = _download(hub, root, only=["text-encoder"], transfer=transfer)
    assert rows[0].state == "ok" and "re-fetch" in rows[0].detail
    assert len(hub.gets("split_files/text_encoders/enc.safetensors")) == 2

    root2 = tmp_path / "comfy2"
    hub.corrupt_always.add("ltx-toy-dev.safetensors")
    with pytest.raises(AssetError, match="ltx-toy-dev.safetensors.*failed verification twice"):
        _download(hub, root2, only=["checkpoint"], transfer=transfer)
    assert not (root2 / "models/checkpoints/ltx-toy-dev.safetensors").exists()  # nothing unverified placed


def test_dry_run_touches_nothing(hub, tmp_path, capsys):
    from ltxic.cli import main

    root = tmp_path / "not-created"
    assert main(["download", "--root", str(root), "--manifest", str(hub.manifest_path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert not root.exists()
    assert hub.events == []
    assert str(root / "models/checkpoints/ltx-toy-dev.safetensors") in out
    assert "needed:" in out and "free:" in out
    assert "~40.00 KB" in out  # estimated sizes are marked


def test_not_enough_disk_space_raises_clear_error(hub, tmp_path):
    root = tmp_path / "comfy"
    plan = plan_download(root, manifest=hub.manifest)
    with pytest.raises(InsufficientDiskSpaceError) as err:
        _download(hub, root, free_space=lambda path: 1000)
    msg = str(err.value)
    assert str(plan.need_bytes) in msg and "1000 bytes" in msg and str(root) in msg
    assert hub.events == []  # checked before any transfer
    assert not root.exists()


def test_network_guard_is_live(no_network):
    with pytest.raises(OSError, match="reach the network"):
        socket.create_connection(("10.255.255.1", 443), timeout=0.5)
    assert no_network == [("10.255.255.1", 443)]
    no_network.clear()  # this attempt was deliberate
