"""Frame -> poses: the estimator contract (``base``), single-person and top-down
estimators, crops and pose NMS. Built on ``inference`` and ``decoders``."""
