"""A small Simple-Baselines-style PyTorch network for the PyTorch importer's test (imported
only where torch is installed: the ``torch`` extra)."""

from __future__ import annotations

from typing import Any


def simple_baselines(joints: int = 17) -> Any:
    """Strided conv stem, two ConvTranspose+BN+ReLU stages, a 1x1 heatmap head at stride 4."""
    from torch import nn

    def block(cin: int, cout: int, stride: int) -> list[Any]:
        return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    def up(cin: int, cout: int) -> list[Any]:
        return [nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    return nn.Sequential(*block(3, 16, 2), *block(16, 32, 2), *block(32, 64, 2), *block(64, 64, 2),
                         *up(64, 32), *up(32, 32), nn.Conv2d(32, joints, 1))
