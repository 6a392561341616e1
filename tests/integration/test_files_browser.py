"""A real browser plays and seeks a video through a signed URL: headless Chromium from Debian's
packages (/usr/bin/chromium, never a downloaded browser), driven by Playwright, against a
real ``backplane serve``; the WebM (VP8) is made here with PyAV."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.files_helpers import LiveFiles, live_files

pytestmark = [pytest.mark.slow, pytest.mark.chromium]

SECONDS, FPS = 20, 15
SEEK_TO = 18.5


def webm_video(seconds: int = SECONDS, fps: int = FPS) -> bytes:
    """A VP8 WebM of moving noise: large enough (about 5 MB) that a browser preloading only
    metadata fetches it in ranges (the cues at the end, then where a seek lands) rather than in
    one read, every frame different so seeking lands somewhere real."""
    import av
    import numpy as np

    rng = np.random.default_rng(7)
    out = io.BytesIO()
    with av.open(out, mode="w", format="webm") as container:
        stream = container.add_stream("libvpx", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.bit_rate = 2_000_000
        for index in range(seconds * fps):
            pixels = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
            pixels[:, : (index * 2) % 320] = 255  # a bar that grows: frames differ visibly
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveFiles]:
    with live_files(tmp_path_factory.mktemp("files-browser")) as served:
        yield served


def test_chromium_plays_and_seeks_a_video_through_a_signed_url(
    live: LiveFiles, chromium_executable: Path
) -> None:
    from playwright.sync_api import sync_playwright

    video = webm_video()
    stored = live.upload(video, "clip.webm")
    assert stored["content_type"] == "video/webm"
    url = live.signed_url(stored["id"])
    served: list[tuple[str | None, int, str | None]] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(chromium_executable),
            args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"],
        )
        try:
            page = browser.new_page()
            page.on(
                "response",
                lambda r: (
                    served.append(
                        (r.request.headers.get("range"), r.status, r.headers.get("content-range"))
                    )
                    if "/signed" in r.url
                    else None
                ),
            )
            page.set_content(f'<video id="v" src="{url}" muted preload="metadata"></video>')
            duration = page.evaluate(
                """() => new Promise((resolve, reject) => {
                    const v = document.getElementById('v');
                    v.onerror = () => reject(new Error('media error ' + (v.error && v.error.code)));
                    if (v.readyState >= 1) resolve(v.duration);
                    v.onloadedmetadata = () => resolve(v.duration);
                })"""
            )
            assert abs(duration - SECONDS) < 0.5
            played = page.evaluate(
                """() => new Promise((resolve, reject) => {
                    const v = document.getElementById('v');
                    v.ontimeupdate = () => {
                        if (v.currentTime > 0.3) { v.pause(); resolve(v.currentTime); }
                    };
                    v.play().catch(reject);
                })"""
            )
            assert played > 0.3
            seeked = page.evaluate(
                """(to) => new Promise((resolve) => {
                    const v = document.getElementById('v');
                    v.onseeked = () => resolve([v.currentTime, v.error ? v.error.code : 0]);
                    v.currentTime = to;
                })""",
                SEEK_TO,
            )
        finally:
            browser.close()
    position, error = seeked
    assert error == 0
    assert abs(position - SEEK_TO) < 0.2
    ranged = [s for s in served if s[0] is not None]
    assert ranged, f"Chromium sent no Range request: {served}"
    assert all(status == 206 for _, status, _ in ranged), served
    assert all(
        content_range and content_range.endswith(f"/{len(video)}") for _, _, content_range in ranged
    ), served
    # past the start: the seek (or the cues at the end) was fetched as a range of its own
    assert any(not header.startswith("bytes=0-") for header, _, _ in ranged), served
