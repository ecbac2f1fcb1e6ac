"""What a browser makes of the files the encoders write: Chromium (Discord's and Slack's desktop apps are Chromium)
decodes each GIF and APNG frame by frame, through WebCodecs' `ImageDecoder` on a page served from loopback (a
secure context), into the same pixels and delays as Pillow reads."""

import base64
import http.server
import io
import threading

import numpy as np
import pytest
from chromium import launch, needs_chromium, sync_api
from PIL import Image, ImageSequence

from memestar.media.writers import encode_apng, encode_gif

pytestmark = needs_chromium
DECODE = """async ([b64, type]) => {
  const data = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
  const decoder = new ImageDecoder({data, type});
  await decoder.tracks.ready;
  const frames = [];
  for (let i = 0; i < decoder.tracks.selectedTrack.frameCount; i++) {
    const {image} = await decoder.decode({frameIndex: i});
    const canvas = new OffscreenCanvas(image.displayWidth, image.displayHeight);
    const context = canvas.getContext('2d');
    context.drawImage(image, 0, 0);
    frames.push({rgba: Array.from(context.getImageData(0, 0, canvas.width, canvas.height).data),
                 ms: image.duration / 1000});
    image.close();
  }
  return frames;
}"""


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """A Chromium page on a blank document served from 127.0.0.1."""
    root = tmp_path_factory.mktemp("blank")
    (root / "index.html").write_text("<html></html>")
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(root))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with sync_api.sync_playwright() as p:
            browser = launch(p)
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{server.server_address[1]}/index.html")
            yield page
            browser.close()
    finally:
        server.shutdown()
        server.server_close()


def pillow_frames(data: bytes) -> tuple[np.ndarray, list[int]]:
    with Image.open(io.BytesIO(data)) as image:
        frames = [(np.asarray(f.convert("RGBA")), f.info["duration"]) for f in ImageSequence.Iterator(image)]
    return np.stack([f for f, _ in frames]), [int(ms) for _, ms in frames]


@pytest.mark.parametrize(
    "fmt, channels, colors",
    [("apng", 4, None), ("apng", 3, None), ("apng", 4, 16), ("apng", 3, 64), ("gif", 3, 256), ("gif", 4, 32)],
)
def test_chromium_decodes_each_frame_as_pillow_does(page, fmt, channels, colors):
    """Random frames, one repeated and one changed in a box: the frames Chromium draws and their delays are
    Pillow's, exactly, wherever a pixel is opaque, and the alpha everywhere; a lossless APNG's are the frames."""
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 256, (4, 24, 32, 4), dtype=np.uint8)[..., :channels].copy()
    frames[2] = frames[1]
    frames[3] = frames[2]
    frames[3, 5:9, 7:20] = 9
    if channels == 4:
        frames[..., 3] = np.where(frames[..., 3] < 100, 0, 255)  # a sticker's alpha: in or out
    encode, mime = {"apng": (encode_apng, "image/png"), "gif": (encode_gif, "image/gif")}[fmt]
    data = encode(frames, 10.0, colors=colors)
    decoded = page.evaluate(DECODE, [base64.b64encode(data).decode(), mime])
    expected, delays = pillow_frames(data)
    drawn = np.array([f["rgba"] for f in decoded], np.uint8).reshape(expected.shape)
    opaque = expected[..., 3] == 255  # a canvas keeps colour premultiplied: a clear pixel's colour is gone
    assert [round(f["ms"]) for f in decoded] == delays == [100, 200, 100]
    assert np.array_equal(drawn[..., 3], expected[..., 3])
    assert np.array_equal(drawn[..., :3][opaque], expected[..., :3][opaque])
    if colors is None:  # lossless: the frames themselves, the repeat stored once
        stored = frames[[0, 1, 3]]
        assert np.array_equal(drawn[..., :3][opaque], stored[..., :3][opaque])
        assert channels == 3 or np.array_equal(drawn[..., 3], stored[..., 3])
