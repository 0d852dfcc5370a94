"""``osc://HOST:PORT[/PREFIX]`` output: poses as Open Sound Control messages over UDP,
for TouchDesigner, Max/MSP, Pure Data, Processing, VCV Rack and other creative tools.

Each processed frame is one OSC bundle (so a receiver never mixes two frames) holding,
with ``PREFIX`` ``/edgepose`` unless given (see docs/streaming.md):

- ``PREFIX/frame``  ``i`` frame index, ``f`` timestamp (s), ``i`` number of poses,
  ``i`` width, ``i`` height (source pixels), ``f`` latency (ms)
- ``PREFIX/pose/N``  ``f`` pose score, ``i`` track id (-1 without ``--track``), for
  N = 0 .. poses-1 in the order of the JSON record
- ``PREFIX/pose/N/KEYPOINT``  ``f`` x, ``f`` y (0..1 of the frame's width and height,
  origin top left), ``f`` score; KEYPOINT is the schema's name (``left_wrist``)

python-osc (imported only here, extra ``net``) builds the packets.
"""

from __future__ import annotations

from typing import Any

from edgepose.core.errors import ConfigError
from edgepose.outputs.background import BackgroundOutput, import_net, parse_url
from edgepose.outputs.base import FrameResult

FORM = "osc://HOST:PORT[/PREFIX]"
DEFAULT_PREFIX = "/edgepose"


def import_pythonosc() -> tuple[Any, Any, Any]:
    return tuple(import_net(f"pythonosc.{m}", "python-osc", "osc:// outputs")
                 for m in ("osc_bundle_builder", "osc_message_builder", "udp_client"))


def parse_osc(spec: str) -> tuple[str, int, str]:
    """(host, port, address prefix) of an ``osc://`` spec, or ``ConfigError``."""
    url = parse_url(spec, ("osc",), FORM)
    prefix = "/" + url.path.strip("/") if url.path.strip("/") else DEFAULT_PREFIX
    if any(c in prefix for c in " #*,?[]{}"):
        raise ConfigError(f"output {spec}: prefix {prefix!r} has characters OSC addresses "
                          "cannot hold (space # * , ? [ ] { }); use letters, digits, / _ -")
    assert url.hostname is not None and url.port is not None
    return url.hostname, url.port, prefix


def osc_messages(record: dict[str, Any], prefix: str = DEFAULT_PREFIX) -> list[tuple[str, list[Any]]]:
    """The (address, arguments) of one frame's messages, in bundle order (module docstring)."""
    width, height = max(int(record["width"]), 1), max(int(record["height"]), 1)
    poses = record["poses"]
    out: list[tuple[str, list[Any]]] = [
        (f"{prefix}/frame", [int(record["frame"]), float(record["timestamp"]), len(poses),
                             int(record["width"]), int(record["height"]),
                             float(record["latency_ms"])])]
    for n, pose in enumerate(poses):
        out.append((f"{prefix}/pose/{n}", [float(pose["score"]), int(pose.get("track_id", -1))]))
        for kp in pose["keypoints"]:
            out.append((f"{prefix}/pose/{n}/{kp['name']}",
                        [kp["x"] / width, kp["y"] / height, float(kp["score"])]))
    return out


class OscOutput(BackgroundOutput):
    """Sends each frame as one OSC bundle over UDP (address scheme: module docstring)."""

    kind = "osc"

    def __init__(self, spec: str, **_: Any) -> None:
        super().__init__(spec)
        self.host, self.port, self.prefix = parse_osc(spec)
        self._client: Any = None

    def check(self) -> None:
        import_pythonosc()

    def _connect(self) -> None:
        _, _, udp_client = import_pythonosc()
        self._client = udp_client.UDPClient(self.host, self.port)  # resolves the host

    def _send(self, result: FrameResult) -> None:
        bundle_builder, message_builder, _ = import_pythonosc()
        bundle = bundle_builder.OscBundleBuilder(bundle_builder.IMMEDIATELY)
        for address, args in osc_messages(result.record, self.prefix):
            msg = message_builder.OscMessageBuilder(address=address)
            for arg in args:
                msg.add_arg(arg, "f" if isinstance(arg, float) else None)
            bundle.add_content(msg.build())
        self._client.send(bundle.build())

    def _abort(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()
