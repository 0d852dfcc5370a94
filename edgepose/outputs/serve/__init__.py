"""``--serve [HOST:]PORT``: a live view in the browser and pose streams over HTTP.

``ServeOutput`` (``output.py``) is fed by the pipeline like any non-blocking output;
``server.py`` is the aiohttp application it runs on its own thread; ``static/`` holds
the page. aiohttp is imported only when a server starts (extra ``net``).
"""

from __future__ import annotations

from edgepose.outputs.serve.output import ServeOutput, check_bind, is_loopback, parse_bind

__all__ = ["ServeOutput", "check_bind", "is_loopback", "parse_bind"]
