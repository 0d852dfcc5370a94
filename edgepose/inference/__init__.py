"""Running a model: device planning and the engine (in-process), the Edge TPU probe,
and the supervised worker process (``worker/``)."""
