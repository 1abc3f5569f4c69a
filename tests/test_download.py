"""The downloader against a real HTTP server on 127.0.0.1 that the test starts."""

import hashlib
import os
import socket

import pytest

from src.core.errors import DownloadError
from src.data import download as download_module
from src.data.download import MIRROR_ENV, download, mirror_path
from tests.fixtures import BODY, DownloadHandler


@pytest.fixture(autouse=True)
def no_mirror(monkeypatch):
    monkeypatch.delenv(MIRROR_ENV, raising=False)


def test_plain_download_with_checksum(server, tmp_path):
    dest = download(
        f"{server}/file.bin", tmp_path / "file.bin", sha256=hashlib.sha256(BODY).hexdigest(), progress=False
    )
    assert dest.read_bytes() == BODY
    assert not (tmp_path / "file.bin.part").exists()


def test_dropped_connection_is_retried_and_resumed(server, tmp_path):
    DownloadHandler.drops_left = 2
    dest = download(f"{server}/flaky.bin", tmp_path / "flaky.bin", backoff=0, progress=False)
    assert dest.read_bytes() == BODY
    ranges = [r for p, r in DownloadHandler.requests_seen if p == "/flaky.bin"]
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
    assert len(DownloadHandler.requests_seen) == 1


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


# ---- containment, file:// and reuse (issue 10) ------------------------------------------------------
def test_destination_outside_its_directory_is_refused_before_any_fetch(server, tmp_path):
    raw = tmp_path / "data" / "raw"
    for dest in (raw / ".." / "x.txt", tmp_path / "elsewhere.txt", raw / "a" / ".." / ".." / "x.txt"):
        with pytest.raises(DownloadError, match="outside"):
            download(f"{server}/file.bin", dest, within=raw, progress=False)
    with pytest.raises(DownloadError, match="outside"):  # without `within`: no '..' ever
        download(f"{server}/file.bin", raw / ".." / "x.txt", progress=False)
    assert DownloadHandler.requests_seen == [] and not (tmp_path / "x.txt").exists()


def test_destination_through_a_symlink_out_of_its_directory_is_refused(server, tmp_path):
    raw, outside = tmp_path / "raw", tmp_path / "outside"
    raw.mkdir(), outside.mkdir()
    (raw / "sub").symlink_to(outside)
    with pytest.raises(DownloadError, match="outside"):
        download(f"{server}/file.bin", raw / "sub" / "x.bin", within=raw, progress=False)
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize(
    "path", ["a/../../../secret.txt", "a/%2e%2e/%2E%2E/%2e%2e/secret.txt", "..%2f..%2fsecret.txt", "a/%00/x.txt"]
)
def test_mirror_path_never_leaves_the_mirror(tmp_path, path):
    (tmp_path / "secret.txt").write_text("not in the mirror")
    (tmp_path / "mirror" / "example.invalid" / "a").mkdir(parents=True)
    with pytest.raises(DownloadError, match="would lead outside the mirror"):
        mirror_path(f"https://example.invalid/{path}", tmp_path / "mirror")
    with pytest.raises(DownloadError, match="would lead outside the mirror"):
        mirror_path("https://../secret.txt", tmp_path / "mirror")


def test_mirror_file_that_is_a_symlink_out_of_the_mirror_is_refused(tmp_path, monkeypatch):
    (tmp_path / "secret.txt").write_text("not in the mirror")
    (tmp_path / "mirror" / "example.invalid").mkdir(parents=True)
    (tmp_path / "mirror" / "example.invalid" / "data.txt").symlink_to(tmp_path / "secret.txt")
    monkeypatch.setenv(MIRROR_ENV, str(tmp_path / "mirror"))
    with pytest.raises(DownloadError, match="outside"):
        download("https://example.invalid/data.txt", tmp_path / "out" / "data.txt")
    assert not (tmp_path / "out" / "data.txt").exists()


def test_file_url_outside_the_mirror_is_read(tmp_path, monkeypatch):
    source = tmp_path / "my data" / "train_text.txt"
    source.parent.mkdir()
    source.write_bytes(b"a local tweet\n")
    monkeypatch.setenv(MIRROR_ENV, str(tmp_path / "mirror"))  # a mirror without the file
    url = (tmp_path / "my data").as_uri() + "/train_text.txt"  # file:///.../my%20data/train_text.txt
    dest = download(url, tmp_path / "raw" / "train_text.txt", sha256=hashlib.sha256(b"a local tweet\n").hexdigest())
    assert dest.read_bytes() == b"a local tweet\n"
    with pytest.raises(DownloadError, match=r"no such file .*missing.txt"):
        download(url.replace("train_text", "missing"), tmp_path / "raw" / "missing.txt")


def test_reuse_keeps_a_whole_download_from_the_same_url_only(server, tmp_path):
    dest = tmp_path / "downloads" / "file.bin"
    download(f"{server}/file.bin", dest, progress=False, reuse=True)
    assert (tmp_path / "downloads" / "file.bin.source").read_text() == f"{server}/file.bin\n"
    download(f"{server}/file.bin", dest, progress=False, reuse=True)
    download(f"{server}/file.bin", dest, progress=False, reuse=True, sha256=hashlib.sha256(BODY).hexdigest())
    assert len(DownloadHandler.requests_seen) == 1  # the second and third calls fetched nothing

    dest.write_bytes(b"damaged")  # no longer matches the pinned sha256: fetched again
    download(f"{server}/file.bin", dest, progress=False, reuse=True, sha256=hashlib.sha256(BODY).hexdigest())
    assert len(DownloadHandler.requests_seen) == 2 and dest.read_bytes() == BODY
    download(f"{server}/flaky.bin", dest, progress=False, reuse=True)  # another URL: fetched again
    assert len(DownloadHandler.requests_seen) == 3


def test_switching_glove_dimension_extracts_from_the_kept_archive(tmp_path, monkeypatch, capsys):
    """download_glove twice (25d, then 100d): the archive is fetched once, both members are extracted."""
    from src.core.params import load_params
    from stages import download_glove
    from tests.fixtures import write_mirror

    params = load_params("params.yaml")
    write_mirror(tmp_path / "mirror", dims=(25, 100))
    monkeypatch.setenv(MIRROR_ENV, str(tmp_path / "mirror"))
    monkeypatch.chdir(tmp_path)
    copies = []
    real_copy = download_module.shutil.copyfile
    monkeypatch.setattr(download_module.shutil, "copyfile", lambda *a: copies.append(a) or real_copy(*a))
    download_glove.main(params)
    params["glove"]["dimension"] = "100d"
    download_glove.main(params)
    assert len(copies) == 1
    assert sorted(p.name for p in (tmp_path / "data/glove").iterdir()) == [
        "glove.twitter.27B.100d.txt",
        "glove.twitter.27B.25d.txt",
    ]
