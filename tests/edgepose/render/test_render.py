"""Renderer tests: the pygame view under SDL's dummy driver, annotate() and SDL driver
selection (recordings and snapshots are outputs: tests/edgepose/outputs). Poses come
from Coral's reference MoveNet output for coral_squat.bmp and, where the engine is
available, from our own MoveNet run."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np
import pytest

from edgepose.core.errors import ConfigError, RenderError
from edgepose.core.pose import Poses
from edgepose.core.schemas import CENTER, COCO17, LEFT, RIGHT
from edgepose.render import Renderer, annotate, choose_driver, make_renderer
from tests.conftest import load_rgb, shared_path

cv2 = pytest.importorskip("cv2")
pytest.importorskip("pygame")

SKELETON = np.array([LEFT, RIGHT, CENTER], np.int32)
THRESHOLD = 0.3
HAS_DRM = bool(list(Path("/dev/dri").glob("card*"))) if Path("/dev/dri").is_dir() else False


def is_skeleton(px: np.ndarray, tol: int = 0) -> np.ndarray:
    """Mask of pixels (..., 3) within ``tol`` of one of the schema's colours."""
    d = np.abs(px[..., None, :].astype(np.int32) - SKELETON).max(axis=-1)
    return (d <= tol).any(axis=-1)


def reference_poses(image: np.ndarray) -> Poses:
    """Coral's MoveNet output for coral_squat.bmp: x, y normalised to the (stretched) input."""
    path = shared_path("models", "coral", "movenet_single_pose_lightning_ptq_reference.csv")
    with open(path, newline="") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: int(r["keypoint_id"]))
    h, w = image.shape[:2]
    xy = [[float(r["keypoint_x"]) * w, float(r["keypoint_y"]) * h] for r in rows]
    scores = [float(r["keypoint_score"]) for r in rows]
    return Poses(xy=[xy], scores=[scores], pose_scores=[float(rows[0]["pose_score"])])


def engine_poses(image: np.ndarray) -> Poses:
    from edgepose.inference.engine import open_engine

    with open_engine("movenet-lightning", device="cpu") as engine:
        return engine.infer(image)


@pytest.fixture
def squat() -> np.ndarray:
    return load_rgb(shared_path("images", "coral_squat.bmp"))


def expected_fit(screen: tuple[int, int], image: np.ndarray) -> tuple[float, int, int, int, int]:
    """Aspect-preserving fit of the image into the screen: scale, x0, y0, x1, y1."""
    sw, sh = screen
    h, w = image.shape[:2]
    s = min(sw / w, sh / h)
    x0, y0 = (sw - w * s) / 2, (sh - h * s) / 2
    return s, round(x0), round(y0), round(x0 + w * s), round(y0 + h * s)


@pytest.mark.parametrize("source", ["reference", "engine"])
def test_tv_render_draws_skeleton_at_decoded_keypoints(
    squat: np.ndarray, tmp_path: Path, source: str
) -> None:
    poses = reference_poses(squat) if source == "reference" else engine_poses(squat)
    with make_renderer("tv", keypoint_threshold=THRESHOLD) as r:
        assert r.draw(squat, poses, {"FPS": "30.0"})
        screen = r.last_screen()
        mapped = r.to_screen(poses.xy[0])
        scale, _ = r.mapping
    cv2.imwrite(str(tmp_path / "tv.png"), cv2.cvtColor(screen, cv2.COLOR_RGB2BGR))
    assert screen.shape == (768, 1024, 3)  # the dummy driver's full-screen size
    s, x0, y0, x1, y1 = expected_fit((1024, 768), squat)
    assert scale == pytest.approx(s, rel=0.01)
    visible = poses.scores[0] >= THRESHOLD
    assert visible.sum() >= 10
    for (x, y), ok in zip(mapped, visible):
        assert x0 <= x < x1 and y0 <= y < y1
        if ok:
            assert is_skeleton(screen[round(y), round(x)]), (x, y)
    # Far from the skeleton: the image's corners, inside the picture area.
    for x, y in [(x0 + 5, y0 + 5), (x1 - 6, y0 + 5), (x0 + 5, y1 - 6), (x1 - 6, y1 - 6)]:
        assert not is_skeleton(screen[y - 3:y + 4, x - 3:x + 4], tol=10).any(), (x, y)


def test_tv_letterboxes_a_portrait_frame(squat: np.ndarray) -> None:
    with make_renderer("tv") as r:
        r.draw(squat, Poses.empty())
        screen = r.last_screen()
    s, x0, y0, x1, y1 = expected_fit((1024, 768), squat)
    assert (y0, y1) == (0, 768) and x0 > 100
    assert screen[:, : x0 - 1].max() == 0 and screen[:, x1 + 1:].max() == 0  # black bars
    assert screen[:, x0 + 2: x1 - 2].mean() > 20  # the picture fills the middle
    assert not is_skeleton(screen).any()  # nothing drawn without poses


def test_window_uses_requested_size_and_keys(squat: np.ndarray) -> None:
    import pygame

    wide = np.ascontiguousarray(np.concatenate([squat, squat, squat], axis=1))  # 1500 x 610
    with make_renderer("window", size=(640, 360)) as r:
        assert r.draw(wide, Poses.empty())
        screen = r.last_screen()
        assert screen.shape == (360, 640, 3)
        s, x0, y0, x1, y1 = expected_fit((640, 360), wide)
        assert x0 == 0 and y0 >= 40 and screen[: y0 - 1].max() == 0  # bars top and bottom
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_f))
        assert r.draw(wide, Poses.empty())
        assert r.fullscreen and r.last_screen().shape == (768, 1024, 3)
        for event in (pygame.event.Event(pygame.KEYDOWN, key=pygame.K_q),
                      pygame.event.Event(pygame.KEYDOWN, key=pygame.K_ESCAPE),
                      pygame.event.Event(pygame.QUIT)):
            pygame.event.post(event)
            assert r.draw(wide, Poses.empty()) is False


def test_overlay_text_is_drawn_top_left() -> None:
    black = np.zeros((480, 640, 3), np.uint8)
    with make_renderer("tv") as r:
        r.draw(black, Poses.empty(), {})
        plain = r.last_screen()
        r.draw(black, Poses.empty(), {"FPS": "29.9", "infer": "12.1 ms", "poses": "1"})
        text = r.last_screen()
    white = (text.min(axis=-1) > 200)
    assert plain.max() == 0
    assert white[:120, :300].sum() > 200 and white[200:].sum() == 0


def pose_at(points: dict[int, tuple[float, float, float]]) -> Poses:
    xy = np.zeros((1, 17, 2), np.float32)
    scores = np.zeros((1, 17), np.float32)
    for k, (x, y, s) in points.items():
        xy[0, k], scores[0, k] = (x, y), s
    return Poses(xy=xy, scores=scores, pose_scores=[1.0])


def test_annotate_draws_only_keypoints_above_threshold() -> None:
    image = np.zeros((200, 300, 3), np.uint8)
    # left shoulder + left elbow visible (edge 5-7), right shoulder below the threshold.
    poses = pose_at({5: (50, 50, 0.9), 7: (50, 150, 0.8), 6: (250, 50, 0.1), 8: (250, 150, 0.9)})
    out = annotate(image, poses, keypoint_threshold=0.3)
    assert out is not image and image.max() == 0
    assert tuple(out[50, 50]) == COCO17.keypoint_colors[5]
    assert tuple(out[150, 50]) == COCO17.keypoint_colors[7]
    assert tuple(out[100, 50]) == COCO17.edge_colors[COCO17.edges.index((5, 7))]
    assert tuple(out[150, 250]) == COCO17.keypoint_colors[8]
    assert out[40:61, 240:261].max() == 0  # right shoulder (0.1) not drawn
    assert out[90:111, 240:261].max() == 0  # nor its edge to the right elbow
    assert out[:, 100:200].max() == 0  # nor the shoulder line
    thin = annotate(image, poses, keypoint_threshold=0.85)
    assert tuple(thin[50, 50]) == COCO17.keypoint_colors[5] and thin[150, 50].max() == 0


@pytest.mark.parametrize("image", [
    np.zeros((10, 10), np.uint8),
    np.zeros((10, 10, 4), np.uint8),
    np.zeros((10, 10, 3), np.float32),
], ids=["gray", "rgba", "float"])
def test_annotate_rejects_non_rgb(image: np.ndarray) -> None:
    with pytest.raises(RenderError, match="RGB uint8"):
        annotate(image, Poses.empty())


def test_headless_renderer_shows_nothing_and_writes_nothing(squat: np.ndarray, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with make_renderer("none") as r:
        assert type(r) is Renderer
        assert r.draw(squat, reference_poses(squat)) is True
    assert r.frames == 1 and r.closed and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kwargs, error, match", [
    ({"display": "hdmi"}, ConfigError, "display 'hdmi'"),
    ({"keypoint_threshold": -0.1}, ConfigError, "keypoint_threshold"),
    ({"size": (0, 480)}, ConfigError, "window size"),
])
def test_make_renderer_bad_input(kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        make_renderer(**{"display": "none", **kwargs})


@pytest.mark.parametrize("display, env, driver, fullscreen", [
    ("auto", {"DISPLAY": ":0"}, "x11", False),
    ("auto", {"WAYLAND_DISPLAY": "wayland-0"}, "wayland", False),
    ("auto", {}, "kmsdrm", True),
    ("tv", {"DISPLAY": ":0"}, "kmsdrm", True),
    ("window", {}, "x11", False),
    ("window", {"WAYLAND_DISPLAY": "wayland-0"}, "wayland", False),
    ("none", {"DISPLAY": ":0"}, None, False),
    ("auto", {"SDL_VIDEODRIVER": "dummy", "DISPLAY": ":0"}, "dummy", True),
    ("window", {"SDL_VIDEODRIVER": "dummy"}, "dummy", False),
    ("auto", {"SDL_VIDEODRIVER": "x11"}, "x11", False),
])
def test_choose_driver(display: str, env: dict, driver: str | None, fullscreen: bool) -> None:
    plan = choose_driver(display, env)
    assert (plan.driver, plan.fullscreen) == (driver, fullscreen)


@pytest.mark.skipif(HAS_DRM, reason="this machine has /dev/dri: kmsdrm might really open a screen")
def test_auto_without_desktop_falls_back_to_headless_with_one_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import os

    monkeypatch.delenv("SDL_VIDEODRIVER")
    with caplog.at_level(logging.WARNING, logger="edgepose.render"):
        r = make_renderer("auto")
    assert type(r) is Renderer
    warnings = [rec for rec in caplog.records if rec.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "headless" in warnings[0].getMessage()
    assert "SDL_VIDEODRIVER" not in os.environ  # the probe leaves the environment alone
    r.close()


@pytest.mark.skipif(HAS_DRM, reason="this machine has /dev/dri: kmsdrm might really open a screen")
def test_tv_without_drm_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SDL_VIDEODRIVER")
    with pytest.raises(RenderError) as err:
        make_renderer("tv")
    msg = str(err.value)
    assert "\n" not in msg and "kmsdrm" in msg and "video,render" in msg and "/dev/dri/card*" in msg
