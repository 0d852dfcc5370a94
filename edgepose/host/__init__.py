"""Checks of the host (``edgepose doctor``), the Pi's power and the Edge TPU runtime pairs."""
