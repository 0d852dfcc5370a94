"""The ``edgepose-run`` application: its settings (``config``), the pipeline loop,
pose filters and systemd notification."""
