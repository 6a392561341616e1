"""Downloads speak RFC 9110 to real clients: curl (the binary, /usr/bin/curl) and httpx drive a
real ``backplane serve`` through whole, single, open, suffix, multiple and unsatisfiable
ranges, ``If-Range`` with a fresh and a stale validator, conditional requests and ``HEAD``,
on the authenticated route and on a signed URL."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.files_helpers import LiveFiles, live_files

pytestmark = pytest.mark.slow

CURL = "/usr/bin/curl"
SIZE = 100_003


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


Fetch = Callable[[str, str, dict[str, str]], Answer]


def httpx_fetch(method: str, url: str, headers: dict[str, str]) -> Answer:
    response = httpx.request(method, url, headers=headers, timeout=30)
    return Answer(
        response.status_code, {k.lower(): v for k, v in response.headers.items()}, response.content
    )


def curl_fetch(method: str, url: str, headers: dict[str, str]) -> Answer:
    """``curl`` as a person would run it: headers with ``-H``, ``-I`` for HEAD; the status
    line, headers and body read back from what curl wrote."""
    args = [CURL, "--silent", "--show-error", "--output", "-"]
    # --head prints the headers as its output; otherwise they are dumped before the body
    args += ["--head"] if method == "HEAD" else ["--dump-header", "-"]
    for name, value in headers.items():
        args += ["--header", f"{name}: {value}"]
    done = subprocess.run([*args, url], capture_output=True, check=True, timeout=30)
    head, _, body = done.stdout.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    parsed = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        parsed[name.strip().lower()] = value.strip()
    return Answer(status, parsed, body)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveFiles]:
    with live_files(tmp_path_factory.mktemp("files-ranges")) as served:
        yield served


@pytest.fixture(scope="module")
def data() -> bytes:
    return os.urandom(SIZE)


@pytest.fixture(scope="module")
def stored(live: LiveFiles, data: bytes) -> dict:
    return live.upload(data, "random.bin")


@pytest.fixture(params=["curl", "httpx"])
def fetch(request: pytest.FixtureRequest) -> Fetch:
    if request.param == "curl" and not Path(CURL).exists():
        pytest.fail(f"{CURL} is not installed (the acceptance test drives the route with it)")
    return curl_fetch if request.param == "curl" else httpx_fetch


@pytest.fixture(params=["authenticated", "signed"])
def get(request: pytest.FixtureRequest, live: LiveFiles, stored: dict, fetch: Fetch) -> Callable:
    """``get(headers, method="GET")`` of the file, through its route or a signed URL."""
    if request.param == "signed":
        url, auth = live.signed_url(stored["id"]), {}
    else:
        url, auth = f"{live.server.base}/api/files/{stored['id']}/content", live.a.headers

    def call(headers: dict[str, str] | None = None, method: str = "GET") -> Answer:
        return fetch(method, url, {**auth, **(headers or {})})

    return call


def test_a_whole_download_carries_the_validators(get: Callable, data: bytes, stored: dict) -> None:
    answer = get()
    assert answer.status == 200
    assert answer.body == data
    assert answer.headers["accept-ranges"] == "bytes"
    assert answer.headers["etag"] == f'"{stored["sha256"]}"'
    assert answer.headers["last-modified"].endswith(" GMT")
    assert answer.headers["content-length"] == str(SIZE)


def test_a_single_range(get: Callable, data: bytes) -> None:
    answer = get({"Range": "bytes=100-199"})
    assert answer.status == 206
    assert answer.headers["content-range"] == f"bytes 100-199/{SIZE}"
    assert answer.headers["content-length"] == "100"
    assert answer.body == data[100:200]


def test_an_open_range_and_a_range_past_the_end_are_cut_at_the_end(
    get: Callable, data: bytes
) -> None:
    answer = get({"Range": f"bytes={SIZE - 10}-"})
    assert (answer.status, answer.body) == (206, data[-10:])
    answer = get({"Range": f"bytes={SIZE - 3}-{SIZE + 500}"})
    assert answer.headers["content-range"] == f"bytes {SIZE - 3}-{SIZE - 1}/{SIZE}"
    assert answer.body == data[-3:]


def test_a_suffix_range(get: Callable, data: bytes) -> None:
    answer = get({"Range": "bytes=-500"})
    assert answer.status == 206
    assert answer.headers["content-range"] == f"bytes {SIZE - 500}-{SIZE - 1}/{SIZE}"
    assert answer.body == data[-500:]


def test_multiple_ranges_answer_multipart_byteranges(get: Callable, data: bytes) -> None:
    answer = get({"Range": "bytes=0-9, 5000-5099, -7"})
    assert answer.status == 206
    kind, _, boundary = answer.headers["content-type"].partition("; boundary=")
    assert kind == "multipart/byteranges"
    assert int(answer.headers["content-length"]) == len(answer.body)
    parts = answer.body.split(f"--{boundary}".encode())
    assert parts[0] == b""
    assert parts[-1] == b"--\r\n"
    found = []
    for part in parts[1:-1]:
        head, _, payload = part.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        fields = dict(line.split(": ", 1) for line in head.decode().split("\r\n"))
        assert fields["Content-Type"] == "application/octet-stream"
        found.append((fields["Content-Range"], payload.removesuffix(b"\r\n")))
    assert found == [
        (f"bytes 0-9/{SIZE}", data[:10]),
        (f"bytes 5000-5099/{SIZE}", data[5000:5100]),
        (f"bytes {SIZE - 7}-{SIZE - 1}/{SIZE}", data[-7:]),
    ]


def test_an_unsatisfiable_range_answers_416_with_the_size(get: Callable) -> None:
    answer = get({"Range": f"bytes={SIZE}-{SIZE + 10}"})
    assert answer.status == 416
    assert answer.headers["content-range"] == f"bytes */{SIZE}"
    assert str(SIZE) in answer.body.decode()


def test_unsatisfiable_ranges_among_satisfiable_ones_are_dropped(
    get: Callable, data: bytes
) -> None:
    answer = get({"Range": f"bytes=0-4,{SIZE + 1}-"})
    assert (answer.status, answer.body) == (206, data[:5])


def test_if_range_with_the_current_etag_honours_the_range(
    get: Callable, data: bytes, stored: dict
) -> None:
    answer = get({"Range": "bytes=10-19", "If-Range": f'"{stored["sha256"]}"'})
    assert (answer.status, answer.body) == (206, data[10:20])


def test_if_range_with_a_stale_etag_sends_the_whole_file(get: Callable, data: bytes) -> None:
    answer = get({"Range": "bytes=10-19", "If-Range": '"' + "0" * 64 + '"'})
    assert (answer.status, answer.body) == (200, data)
    weak = get({"Range": "bytes=10-19", "If-Range": f'W/"{"0" * 64}"'})
    assert weak.status == 200


def test_if_range_with_the_last_modified_date(get: Callable, data: bytes) -> None:
    modified = get(method="HEAD").headers["last-modified"]
    fresh = get({"Range": "bytes=0-0", "If-Range": modified})
    assert (fresh.status, fresh.body) == (206, data[:1])
    stale = get({"Range": "bytes=0-0", "If-Range": "Sat, 01 Jan 2000 00:00:00 GMT"})
    assert stale.status == 200
    # only an exact match is fresh (RFC 9110 13.1.5): a later date is not
    later = get({"Range": "bytes=0-0", "If-Range": "Fri, 01 Jan 2100 00:00:00 GMT"})
    assert later.status == 200
    garbage = get({"Range": "bytes=0-0", "If-Range": "yesterday"})
    assert garbage.status == 200


def test_head_answers_the_headers_of_get_without_a_body(get: Callable, stored: dict) -> None:
    whole = get(method="HEAD")
    assert whole.status == 200
    assert whole.body == b""
    assert whole.headers["content-length"] == str(SIZE)
    assert whole.headers["etag"] == f'"{stored["sha256"]}"'
    assert whole.headers["accept-ranges"] == "bytes"
    part = get({"Range": "bytes=0-99"}, method="HEAD")
    assert part.status == 206
    assert part.headers["content-range"] == f"bytes 0-99/{SIZE}"
    assert part.body == b""


def test_conditional_requests_answer_304(get: Callable, stored: dict) -> None:
    etag = f'"{stored["sha256"]}"'
    assert get({"If-None-Match": etag}).status == 304
    assert get({"If-None-Match": f'"other", W/{etag}'}).status == 304
    modified = get(method="HEAD").headers["last-modified"]
    not_modified = get({"If-Modified-Since": modified})
    assert (not_modified.status, not_modified.body) == (304, b"")
    assert not_modified.headers["etag"] == etag
    # If-None-Match wins over If-Modified-Since (RFC 9110 13.1.3)
    assert get({"If-None-Match": '"other"', "If-Modified-Since": modified}).status == 200
    assert get({"If-Modified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"}).status == 200


@pytest.mark.parametrize(
    "header",
    [
        "bytes=abc",
        "bytes=5-1",
        "items=0-1",
        "bytes=",
        # more than files.max_ranges (16)
        "bytes=" + ",".join(f"{i * 10}-{i * 10 + 1}" for i in range(17)),
        # overlapping or out of order: werkzeug refuses them, RFC 9110 14.2 lets us ignore them
        "bytes=0-99,50-60",
        "bytes=500-600,0-1",
    ],
)
def test_a_bad_or_greedy_range_header_is_ignored(get: Callable, data: bytes, header: str) -> None:
    answer = get({"Range": header})
    assert (answer.status, answer.body) == (200, data)


def test_the_declared_type_is_the_detected_one_and_text_is_an_attachment(live: LiveFiles) -> None:
    stored = live.upload(b"<html><script>alert(1)</script></html>", "cat.png")
    answer = httpx_fetch(
        "GET", f"{live.server.base}/api/files/{stored['id']}/content", live.a.headers
    )
    assert answer.headers["content-type"].startswith("text/html")
    assert re.match(r'attachment; filename="cat.png"', answer.headers["content-disposition"])
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["content-security-policy"] == "sandbox"


def test_an_upload_cut_off_midway_leaves_nothing_behind(live: LiveFiles) -> None:
    """The client promises a megabyte, sends a tenth and hangs up: no object, no temporary
    file, no row."""
    import socket
    import time
    from urllib.parse import urlsplit

    from tests.files_helpers import stored_objects

    before = stored_objects(live.data_dir)
    listed = httpx.get(f"{live.server.base}/api/files", headers=live.a.headers).json()
    address = urlsplit(live.server.base)
    with socket.create_connection((address.hostname, address.port)) as sock:
        head = (
            "POST /api/files?name=cut.bin HTTP/1.1\r\n"
            f"Host: {address.netloc}\r\n"
            f"Authorization: {live.a.headers['Authorization']}\r\n"
            "Content-Length: 1048576\r\n\r\n"
        )
        sock.sendall(head.encode() + os.urandom(100_000))
        time.sleep(0.5)  # the server is streaming it to storage now
    deadline = time.monotonic() + 10
    while stored_objects(live.data_dir) != before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert stored_objects(live.data_dir) == before
    assert httpx.get(f"{live.server.base}/api/files", headers=live.a.headers).json() == listed
