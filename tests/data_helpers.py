"""Helpers for the fnn.data tests: tiny generated IDX datasets and a local HTTP server.

Nothing here touches the network beyond 127.0.0.1.
"""
from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import http.server
import socket
import threading
from pathlib import Path

import numpy as np

from fnn.data.idx import write_idx
from fnn.data.images import FileSpec, ImageSource

FILENAMES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
N_TRAIN, N_TEST = 20, 10


def sha256_bytes(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def write_tiny_mnist(directory: Path, *, seed: int = 0, n_train: int = N_TRAIN, n_test: int = N_TEST,
                     compress: bool = True) -> dict[str, Path]:
    """Write four small MNIST-format files (28x28 uint8 images, labels 0..9) into ``directory``."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": (np.arange(n_train) % 10).astype(np.uint8),
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": (np.arange(n_test) % 10).astype(np.uint8),
    }
    out = {}
    for role, arr in arrays.items():
        name = FILENAMES[role] if compress else FILENAMES[role][:-3]
        write_idx(directory / name, arr, compress=compress)
        out[role] = directory / name
    return out


def tiny_source(served_dir: Path, *, name: str = "mnist", system_dirs=()) -> ImageSource:
    """An ImageSource whose pinned digests are those of the files in ``served_dir``."""
    files = {}
    for role, fname in FILENAMES.items():
        data = (served_dir / fname).read_bytes()
        files[role] = FileSpec(fname, sha256_bytes(data), sha256_bytes(gzip.decompress(data)))
    return ImageSource(
        name=name,
        mirrors=("http://127.0.0.1:9/never-used/",),
        files=files,
        classes=tuple(str(i) for i in range(10)),
        system_dirs=tuple(system_dirs),
    )


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass


class _TruncatingHandler(_QuietHandler):
    """Announces the full Content-Length, sends half the bytes, then closes."""

    def do_GET(self):
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.wfile.flush()
        self.close_connection = True


@contextlib.contextmanager
def serve_directory(directory: Path, *, truncate: bool = False):
    """Serve ``directory`` over HTTP on 127.0.0.1 (a free port) in a thread; yields the base URL."""
    handler = functools.partial(_TruncatingHandler if truncate else _QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def closed_port_url() -> str:
    """A URL on 127.0.0.1 whose port nothing listens on (connection refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def files_under(directory: Path) -> list[str]:
    """Names of all files (hidden ones included) below ``directory``; [] if it does not exist."""
    if not directory.exists():
        return []
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())
