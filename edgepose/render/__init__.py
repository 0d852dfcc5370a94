"""Drawing poses: the live pygame view (TV, window or headless) and ``annotate()`` for
images, recordings and snapshots. pygame and OpenCV are imported only when used."""

from __future__ import annotations

from edgepose.render.base import Renderer
from edgepose.render.draw import annotate
from edgepose.render.driver import DISPLAYS, DriverPlan, choose_driver
from edgepose.render.factory import make_renderer

__all__ = ["DISPLAYS", "DriverPlan", "Renderer", "annotate", "choose_driver", "make_renderer"]
