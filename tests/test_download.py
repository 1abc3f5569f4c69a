"""The downloader against a real HTTP server on 127.0.0.1 that the test starts."""
import hashlib
import http.server
import os
import socket
import threading

import pytest

from src.download import MIRROR_ENV, download, mirror_path
from src.errors import DownloadError

BODY = bytes(range(256)) * 400  # 100 KiB


class _Handler(http.server.BaseHTTPRequestHandler):
    requests_seen: list = []
    drops_left = 0

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        type(self).requests_seen.append((self.path, self.headers.get("Range")))
        if self.path == "/missing.txt":
            self.send_error(404)
            return
        start = 0
        if self.headers.get("Range"):
            start = int(self.headers["Range"].split("=")[1].rstrip("-"))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(BODY) - 1}/{len(BODY)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(BODY) - start))
        self.end_headers()
        if self.path == "/flaky.bin" and type(self).drops_left > 0:
            type(self).drops_left -= 1
            self.wfile.write(BODY[start:start + 30_000])  # then the connection drops mid-body
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(BODY[start:])


@pytest.fixture
def server():
    _Handler.requests_seen = []
    _Handler.drops_left = 0
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def no_mirror(monkeypatch):
    monkeypatch.delenv(MIRROR_ENV, raising=False)


def test_plain_download_with_checksum(server, tmp_path):
    dest = download(f"{server}/file.bin", tmp_path / "file.bin", sha256=hashlib.sha256(BODY).hexdigest(),
                    progress=False)
    assert dest.read_bytes() == BODY
    assert not (tmp_path / "file.bin.part").exists()


def test_dropped_connection_is_retried_and_resumed(server, tmp_path):
    _Handler.drops_left = 2
    dest = download(f"{server}/flaky.bin", tmp_path / "flaky.bin", backoff=0, progress=False)
    assert dest.read_bytes() == BODY
    ranges = [r for p, r in _Handler.requests_seen if p == "/flaky.bin"]
    assert len(ranges) == 3 and ranges[0] is None
    offsets = [int(r.split("=")[1].rstrip("-")) for r in ranges[1:]]
    # each retry resumes where the last one broke (less at most the chunk in flight)
    assert 0 < offsets[0] <= 30_000 and offsets[0] < offsets[1] <= offsets[0] + 30_000


def test_checksum_mismatch_is_an_error_and_removes_the_file(server, tmp_path):
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        download(f"{server}/file.bin", tmp_path / "file.bin", sha256="0" * 64, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_http_404_is_final_not_retried(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(f"{server}/missing.txt", tmp_path / "missing.txt", backoff=0, progress=False)
    assert len(_Handler.requests_seen) == 1


def test_mirror_hit_is_used_instead_of_the_network(tmp_path, monkeypatch):
    url = "https://example.invalid/some/dir/data.txt"
    local = tmp_path / "mirror" / "example.invalid" / "some" / "dir" / "data.txt"
    local.parent.mkdir(parents=True)
    local.write_bytes(b"from the mirror\n")
    monkeypatch.setenv(MIRROR_ENV, str(tmp_path / "mirror"))
    assert mirror_path(url) == local
    dest = download(url, tmp_path / "out" / "data.txt", sha256=hashlib.sha256(b"from the mirror\n").hexdigest())
    assert dest.read_bytes() == b"from the mirror\n"


def test_mirror_copy_with_wrong_checksum_is_rejected(tmp_path, monkeypatch):
    local = tmp_path / "mirror" / "example.invalid" / "x.txt"
    local.parent.mkdir(parents=True)
    local.write_bytes(b"tampered")
    monkeypatch.setenv(MIRROR_ENV, str(tmp_path / "mirror"))
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        download("https://example.invalid/x.txt", tmp_path / "x.txt", sha256="1" * 64)
    assert not (tmp_path / "x.txt").exists()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_no_network_and_no_mirror_says_so_and_names_the_variable(tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}/data.txt"
    with pytest.raises(DownloadError) as info:
        download(url, tmp_path / "data.txt", retries=1, backoff=0, progress=False)
    message = str(info.value)
    assert "No network?" in message and "SENTIMENT_MIRROR is not set" in message
    assert os.listdir(tmp_path) == []


def test_mirror_miss_falls_back_to_fetch_and_names_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv(MIRROR_ENV, str(tmp_path / "mirror"))
    url = f"http://127.0.0.1:{_closed_port()}/data.txt"
    with pytest.raises(DownloadError, match="SENTIMENT_MIRROR has no copy at .*mirror/127.0.0.1"):
        download(url, tmp_path / "data.txt", retries=0, progress=False)
