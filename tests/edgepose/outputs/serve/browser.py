"""Headless Chromium (Debian's ``chromium``) driven over the DevTools protocol, for the
tests that look at the live page as a person would."""

from __future__ import annotations

import base64
import io
import itertools
import json
import shutil
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.edgepose.outputs.helpers import wait_for


def chromium_path() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("chromium is not installed (apt install chromium; scripts/setup.sh does it as root)")


class Browser:
    """One headless Chromium with one page open at ``url``; ``evaluate`` and ``screenshot``."""

    def __init__(self, url: str, profile: Path, size: tuple[int, int] = (1280, 800)) -> None:
        self.profile = profile
        self.proc = subprocess.Popen(
            [chromium_path(), "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--no-first-run", "--disable-dev-shm-usage", "--hide-scrollbars",
             "--force-device-scale-factor=1", f"--window-size={size[0]},{size[1]}",
             f"--user-data-dir={profile}", "--remote-debugging-port=0", url],
            stdout=subprocess.DEVNULL, stderr=open(profile.parent / "chromium.log", "wb"))
        port_file = profile / "DevToolsActivePort"
        wait_for(lambda: port_file.exists() and port_file.read_text().strip(), 30, "Chromium to start")
        port = int(port_file.read_text().split()[0])

        def page() -> Any:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2) as r:
                pages = [t for t in json.load(r) if t["type"] == "page"]
            return pages[0] if pages else None

        target = wait_for(page, 20, "the page target")
        from websockets.sync.client import connect

        self.ws = connect(target["webSocketDebuggerUrl"], max_size=64 * 2**20, proxy=None).__enter__()
        self._ids = itertools.count(1)

    def call(self, method: str, **params: Any) -> Any:
        mid = next(self._ids)
        self.ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=30))
            if msg.get("id") == mid:
                if "error" in msg:
                    raise AssertionError(f"{method}: {msg['error']}")
                return msg["result"]

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: Path) -> np.ndarray:
        from PIL import Image

        data = base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])
        path.write_bytes(data)
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def keypoints_on_screen(record: dict[str, Any], view: dict[str, float], threshold: float,
                        schema_colors: list[list[int]]) -> list[tuple[int, int, tuple[int, ...], bool]]:
    """(x, y) in screenshot pixels of each keypoint scoring at least ``threshold``, its
    colour, and whether it is isolated (no other drawn keypoint within 7 px, so its dot
    is on top)."""
    points = []
    for pose in record["poses"]:
        for i, kp in enumerate(pose["keypoints"]):
            if kp["score"] >= threshold:
                points.append((view["x"] + kp["x"] * view["scale"], view["y"] + kp["y"] * view["scale"],
                               tuple(schema_colors[i])))
    out = []
    for j, (x, y, color) in enumerate(points):
        alone = all(np.hypot(x - x2, y - y2) > 7 for k, (x2, y2, _) in enumerate(points) if k != j)
        out.append((int(round(x)), int(round(y)), color, alone))
    return out


def color_near(shot: np.ndarray, x: int, y: int, color: tuple[int, ...], tol: int = 12) -> bool:
    """Whether the pixel at (x, y) (or one next to it) is ``color`` within ``tol``."""
    patch = shot[max(y - 1, 0):y + 2, max(x - 1, 0):x + 2].astype(int)
    return bool((np.abs(patch - np.array(color)).max(axis=-1) <= tol).any())
