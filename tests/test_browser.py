"""serve_ome.py in a real browser: headless Chromium (SwiftShader WebGL) runs the
Neuroglancer client of the ``neuroglancer`` package, driven by selenium, reading stores
made by scroll_to_ome.py through our server or our authenticating proxy.

The volume is made of blocks of distinct constant values, so a screenshot pixel at a
block's centre has a known gray level once the contrast window is known. In CI (CI set)
a missing Chromium fails these tests; elsewhere they are skipped with the reason.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import imagecodecs
import numpy as np
import pytest

from conftest import ROOT, run_script, write_stack
from scrollzarr import serve
from scrollzarr.serve import viewer as ng
from test_serve import PASSWORD, SECRETS, TOKEN, USER, Upstream, get

SHAPE = (64, 256, 256)  # (z, y, x)
BLOCK = (32, 64, 64)  # constant blocks: 2 x 4 x 4 of them
SIZE = 256  # screenshot edge, pixels
TOLERANCE = 2  # gray levels
CHROME_FLAGS = [
    "--enable-unsafe-swiftshader", "--use-angle=swiftshader",
    # no network beyond localhost: nothing may try to reach the internet
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-quic", "--no-first-run",
]
SOURCE_ERRORS_JS = """
const out = [];
for (const managed of window.viewer.layerManager.managedLayers) {
  if (!managed.layer) continue;
  for (const source of managed.layer.dataSources) {
    const state = source.loadState;
    if (state && state.error) out.push(managed.name + ": " + state.error.message);
  }
}
return out;
"""

pytestmark = pytest.mark.timeout(120)


def block_value(z: int, y: int, x: int) -> int:
    """The data value of voxel (z, y, x); block (0, 0, 0) is 0 (absent chunks)."""
    iz, iy, ix = z // BLOCK[0], y // BLOCK[1], x // BLOCK[2]
    n = ix + 4 * iy + 16 * iz
    return 0 if n == 0 else 1000 * (1 + n)


def gray(value: float, window: tuple[float, float]) -> float:
    """Screen gray level (0..255) of ``value`` under the contrast window."""
    low, high = window
    return float(np.clip((value - low) / (high - low), 0.0, 1.0) * 255.0)


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """The block volume as slice TIFFs, converted by scroll_to_ome.py to a zarr v2 store
    and to a sharded zarr v3 store (32^3 chunks, 3 levels)."""
    base = tmp_path_factory.mktemp("browser")
    z, y, x = np.indices(SHAPE, sparse=True)
    n = x // BLOCK[2] + 4 * (y // BLOCK[1]) + 16 * (z // BLOCK[0])
    volume = np.where(n == 0, 0, 1000 * (1 + n)).astype(np.uint16)  # = block_value
    write_stack(base / "tiffs", volume)
    common = ["--chunk_size", 32, "--nlevels", 3, "--quiet"]
    (base / "v2").mkdir()
    (base / "v3").mkdir()
    run_script("scroll_to_ome.py", base / "tiffs", base / "v2" / "scroll.zarr", *common,
               check=True)
    run_script("scroll_to_ome.py", base / "tiffs", base / "v3" / "scroll.zarr", *common,
               "--zarr_format", 3, "--shard_size", 64, check=True)
    return {"v2": base / "v2" / "scroll.zarr", "v3": base / "v3" / "scroll.zarr"}


class Browser:
    """Chromium showing a Neuroglancer viewer of this process."""

    def __init__(self):
        import neuroglancer.webdriver

        self.viewer = ng.start_viewer()
        self.console: list[str] = []
        self.webdriver = neuroglancer.webdriver.Webdriver(
            self.viewer, headless=True, docker=True, print_logs=False,
            browser_binary_path=shutil.which("chromium"),
            extra_command_line_args=CHROME_FLAGS)
        self.webdriver.add_log_listener(
            lambda log: self.console.append(f"{log.level}: {log.text}"))

    @property
    def driver(self):
        return self.webdriver.driver

    def show(self, layers, position, scale: float) -> None:
        """Show ``layers`` the way serve_ome.py does, then an xy view at ``position``
        (x, y, z voxels) and ``scale`` voxels per pixel, with nothing drawn over the
        data."""
        ng.show_layers(self.viewer, layers)
        with self.viewer.txn() as s:
            s.layout = "xy"
            s.position = list(position)
            s.cross_section_scale = scale
            s.show_axis_lines = False
            s.show_scale_bar = False
            s.show_default_annotations = False  # bounding boxes

    def source_errors(self) -> list[str]:
        return self.driver.execute_script(SOURCE_ERRORS_JS)

    def screenshot(self, timeout: float = 45.0) -> np.ndarray:
        """A (SIZE, SIZE) gray image once every visible chunk is drawn.

        ``viewer.screenshot`` waits for all chunks and never returns on a broken
        source: it runs in a thread while the data sources are checked for errors.
        """
        result = []
        thread = threading.Thread(
            target=lambda: result.append(self.viewer.screenshot(size=[SIZE, SIZE])),
            daemon=True)
        thread.start()
        deadline = time.monotonic() + timeout
        while thread.is_alive() and time.monotonic() < deadline:
            errors = self.source_errors()
            if errors:
                pytest.fail(f"data source errors: {errors}")
            thread.join(0.25)
        if not result:
            pytest.fail(f"no screenshot within {timeout} s; source errors "
                        f"{self.source_errors()}; console {self.console[-10:]}")
        pixels = result[0].screenshot.image_pixels
        assert pixels.shape[:2] == (SIZE, SIZE)
        return pixels[:, :, 0].astype(np.float64)

    def close(self) -> None:
        self.webdriver.__exit__(None, None, None)


@pytest.fixture(scope="module")
def browser():
    missing = [name for name in ("chromium", "chromedriver") if not shutil.which(name)]
    if missing:
        reason = (f"{', '.join(missing)} not installed (apt-get install chromium "
                  "chromium-driver)")
        if os.environ.get("CI"):
            pytest.fail(reason + ": the browser tests must run in CI")
        pytest.skip(reason)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SE_OFFLINE", "true")  # selenium must not look for drivers online
        b = Browser()
        try:
            yield b
        finally:
            b.close()


# --------------------------------------------------------------------------- checks

def assert_blocks_rendered(image: np.ndarray, position, scale: float,
                           window: tuple[float, float]) -> None:
    """Every block centre visible in ``image`` shows its block's gray level."""
    px, py, pz = position
    z = int(pz)
    checked = 0
    for y in range(BLOCK[1] // 2, SHAPE[1], BLOCK[1]):
        for x in range(BLOCK[2] // 2, SHAPE[2], BLOCK[2]):
            # screen pixel whose centre falls on voxel (x, y): pixel centres are at
            # position + (index + 0.5 - SIZE / 2) * scale
            col = int(np.floor((x + 0.5 - px) / scale + SIZE / 2))
            row = int(np.floor((y + 0.5 - py) / scale + SIZE / 2))
            if not (1 <= row < SIZE - 1 and 1 <= col < SIZE - 1):
                continue
            seen = float(np.median(image[row - 1:row + 2, col - 1:col + 2]))
            want = gray(block_value(z, y, x), window)
            assert abs(seen - want) <= TOLERANCE, (
                f"voxel (x={x}, y={y}, z={z}) at pixel ({row}, {col}): gray {seen}, "
                f"expected {want:.1f}")
            checked += 1
    assert checked >= 4


def chunk_levels(server, store: str = "scroll.zarr") -> set[str]:
    """The resolution levels whose chunk files (not metadata) the server was asked for."""
    levels = set()
    prefix = "/" + re.escape(store) if store else ""
    for _, path, _ in server.requests_seen:
        m = re.match(rf"{prefix}/(\d+)/(c/)?\d+/\d+/\d+$", path)
        if m:
            levels.add(m.group(1))
    return levels


def layer_for(server, store_dir: Path, scheme: str) -> ng.LayerInfo:
    url = serve.source_url(scheme, server.base_url)
    return ng.describe_store(str(store_dir), url, name="scroll")


# --------------------------------------------------------------------------- tests

def test_v2_store_renders_the_data_values(stores, browser, running):
    server = running(serve.StoreServer(stores["v2"], mount="scroll.zarr"))
    layer = layer_for(server, stores["v2"], "zarr2")
    assert layer.contrast == (2000.0, 32000.0)  # 1st/99th percentile of the non-zero data
    assert layer.center_xyz == (128.0, 128.0, 32.0)
    for z in (48.5, 16.5):  # the upper blocks, then the lower ones with an absent block
        position = (128.0, 128.0, z)
        browser.show([layer], position, scale=1.0)
        assert_blocks_rendered(browser.screenshot(), position, 1.0, layer.contrast)
    assert "0" in chunk_levels(server)
    assert ("GET", "/scroll.zarr/0/0/0/0", 404) in server.requests_seen  # absent = 0


def test_zoomed_out_view_reads_the_coarse_level_only(stores, browser, running):
    server = running(serve.StoreServer(stores["v2"], mount="scroll.zarr"))
    layer = layer_for(server, stores["v2"], "zarr2")
    position = (128.0, 128.0, 48.5)
    browser.show([layer], position, scale=4.0)  # 4 voxels per pixel = level 2's voxels
    assert_blocks_rendered(browser.screenshot(), position, 4.0, layer.contrast)
    assert chunk_levels(server) == {"2"}, server.requests_seen


def test_sharded_v3_store_renders_through_byte_ranges(stores, browser, running):
    server = running(serve.StoreServer(stores["v3"], mount="scroll.zarr"))
    layer = layer_for(server, stores["v3"], "zarr3")
    position = (100.0, 150.0, 40.5)
    browser.show([layer], position, scale=1.0)
    assert_blocks_rendered(browser.screenshot(), position, 1.0, layer.contrast)
    assert any(status == 206 for _, _, status in server.requests_seen)


class _TeeHandler(serve.ProxyHandler):
    """The proxy's handler, keeping a copy of every byte it sends to the browser: the
    status line and headers as tornado hands them to the connection, then the body."""

    def prepare(self):
        super().prepare()
        conn, sent = self.request.connection, self.server.sent
        write_headers, write = conn.write_headers, conn.write

        def tee_headers(start_line, headers, chunk=None):
            lines = [f"HTTP/1.1 {start_line.code} {start_line.reason}"]
            lines += [f"{k}: {v}" for k, v in headers.get_all()]
            sent.append(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            sent.append(bytes(chunk or b""))
            return write_headers(start_line, headers, chunk)

        def tee(chunk):
            sent.append(bytes(chunk))
            return write(chunk)
        conn.write_headers, conn.write = tee_headers, tee


class RecordingProxy(serve.ProxyServer):
    handler_class = _TeeHandler

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.sent: list[bytes] = []


def test_password_protected_volume_renders_through_the_proxy(stores, browser, running,
                                                             tmp_path):
    upstream = running(Upstream(stores["v2"].parent))
    status, _, _ = get(upstream.url + "scroll.zarr/.zattrs")
    assert status == 401  # the upstream refuses without credentials
    auth = serve.credentials(upstream.url, USER, {serve.PASSWORD_ENV: PASSWORD})
    cache = serve.DiskCache(tmp_path / "cache", 50_000_000)
    proxy = running(RecordingProxy(upstream.url + "scroll.zarr/", auth, cache=cache))
    layer = ng.describe_store(proxy.base_url, serve.source_url("zarr2", proxy.base_url),
                              name="scroll")
    assert layer.contrast == (2000.0, 32000.0)
    position = (128.0, 128.0, 48.5)
    browser.show([layer], position, scale=1.0)
    assert_blocks_rendered(browser.screenshot(), position, 1.0, layer.contrast)
    assert "0" in chunk_levels(proxy, store="")  # the proxy serves the store at its root
    sent = b"".join(proxy.sent)
    assert b"HTTP/1.1 200" in sent and b"Access-Control-Allow-Origin: *" in sent
    for secret in SECRETS + (USER,):
        assert secret.encode() not in sent
    assert b"WWW-Authenticate" not in sent and b"Set-Cookie" not in sent
    assert "Basic " + TOKEN in upstream.authorizations  # credentials went upstream only
    state = str(browser.viewer.state.to_json())
    assert PASSWORD not in state and TOKEN not in state


def test_serve_ome_neuroglancer_opens_a_viewer_with_the_store(stores, browser):
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "serve_ome.py"), str(stores["v2"]), "--port", "0",
         "--neuroglancer", "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        source = proc.stdout.readline().strip()
        viewer_line = proc.stdout.readline().strip()
        assert source.startswith("zarr2://http://127.0.0.1:"), proc.stderr.read()
        assert source.endswith("/scroll.zarr/")
        assert viewer_line.startswith("viewer URL: http://127.0.0.1:")
        browser.driver.get(viewer_line.removeprefix("viewer URL: "))
        # Expected gray levels in the xy panel: slice z = 32 (the centre), upper blocks.
        window = (2000.0, 32000.0)
        wanted = {round(gray(block_value(32, y, x), window))
                  for y in range(32, 256, 64) for x in range(32, 256, 64)}
        deadline = time.monotonic() + 45
        found: set = set()
        state: dict = {}
        while time.monotonic() < deadline:
            state = browser.driver.execute_script(
                "return window.viewer ? window.viewer.state.toJSON() : null") or {}
            if state.get("layers"):
                assert not browser.source_errors()
                png = imagecodecs.png_decode(browser.driver.get_screenshot_as_png())
                levels = set(np.unique(png[..., 0]))
                found = {w for w in wanted
                         if any(abs(int(v) - w) <= TOLERANCE for v in levels)}
                if found == wanted:
                    break
            time.sleep(0.5)
        assert found == wanted, f"gray levels missing: {sorted(wanted - found)}"
        assert state["dimensions"] == {"x": [1, ""], "y": [1, ""], "z": [1, ""]}
        (layer,) = state["layers"]
        assert layer["source"] == source and layer["type"] == "image"
        assert layer["shaderControls"]["normalized"]["range"] == list(window)
        assert state["position"] == [128, 128, 32]
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
        browser.driver.get(browser.viewer.get_viewer_url())  # back to this test's viewer
