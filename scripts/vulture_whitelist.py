"""Names vulture (scripts/test.sh: ``vulture edgepose scripts/vulture_whitelist.py``) would
call unused in edgepose/, and why they are not dead. A new dead name fails the check:
remove it, or add it here with its reason."""
# ruff: noqa
# mypy: ignore-errors
from __future__ import annotations

_ = object()

# Output plug-ins are found by make_output (by kind, or a spec's scheme or suffix), never
# named; edgepose-run's output flags read their settings by name (cli.run.OUTPUT_FLAGS).
JsonLinesOutput, MqttOutput, OscOutput, RecordingOutput, SnapshotOutput, WebSocketOutput
_.snapshot_every
# Attributes third-party objects read: paho-mqtt's client, PyAV's stream/codec context,
# argparse's subparsers, PyAV's file-object protocol.
_.connect_timeout, _.on_connect_fail, _.on_disconnect
_.gop_size, _.max_b_frames, _.pix_fmt, _.qscale, _.thread_count
_.required
_.tell
# Callback signatures fixed by the caller (paho-mqtt, python-osc, context managers).
props, u, userdata, exc_type, tb
# Dataclass fields and state kept for the record or read by tests and benchmarks:
# a manifest's license, an Edge TPU executable's parameter size, a stats counter, the
# sdnotify messages sent, live clients of --serve, reconnect counts, connection times.
license, parameter_bytes, captured, _.sent, _.clients, _.reconnects, _.connected_at
# Public API the tests and benchmarks use: Transform.identity, Engine.infer (one frame
# in, poses out), SupervisedEngine.pids, the renderer's mapping and last screen.
_.identity, _.infer, _.pids, _.mapping, _.last_screen
# Called by Python itself: a module's lazy attributes (PEP 562); by aiohttp: the request
# handler's logger.exception; by paho-mqtt: its client's suppress_exceptions switch.
__getattr__, _.exception, _.suppress_exceptions
# Plug-in API for third-party code (like register_output): a new pipeline kind's estimator.
register_pipeline_kind
# Used by the dev-PC tools (tools/quantize.py), which vulture does not scan: the check
# that a stop signal swallowed by native code is raised again before files are written.
check_stop
