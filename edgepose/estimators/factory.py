"""``open_estimator``: the estimator for a model name or file, chosen by its manifest (a
pipeline kind from ``PIPELINE_KINDS``, e.g. ``kind = "topdown"``; else one model: a
multi-pose model on the whole frame, or a single-pose model on a crop around the person).

A new kind of pipeline is a manifest kind plus an entry here (``register_pipeline_kind``):
a class whose ``open(manifest, device, opener, **options)`` builds the estimator."""

from __future__ import annotations

from typing import Any, Protocol

from edgepose.core.errors import ConfigError
from edgepose.core.plugins import load_reference
from edgepose.estimators.base import EngineOpener, Estimator, SingleModelEstimator
from edgepose.models.builtin import DEFAULT_MODEL

# open_engine options that describe one .tflite file; a pipeline's parts have manifests.
_FILE_OPTIONS = ("decoder", "schema", "decoder_params", "resize", "interpolation")


class PipelineOpener(Protocol):
    def open(self, manifest: Any, device: str, opener: EngineOpener, **options: Any) -> Estimator: ...


# manifest kind -> "module:Class" (imported at first use) or the class itself
PIPELINE_KINDS: dict[str, str | PipelineOpener] = {
    "topdown": "edgepose.estimators.topdown:TopDownEstimator",
}


def register_pipeline_kind(kind: str, cls: PipelineOpener) -> None:
    """The estimator class for manifests of ``kind`` (its ``open`` builds one)."""
    PIPELINE_KINDS[kind] = cls


def _pipeline_class(kind: str) -> PipelineOpener:
    entry = PIPELINE_KINDS.get(kind)
    if entry is None:
        raise ConfigError(f"no estimator for pipeline kind {kind!r}; known kinds: {', '.join(PIPELINE_KINDS)}")
    if isinstance(entry, str):
        entry = PIPELINE_KINDS[kind] = load_reference(entry)
    return entry


def open_estimator(model: str = DEFAULT_MODEL, device: str = "auto", *,
                   opener: EngineOpener | None = None, crops: bool = True,
                   **options: Any) -> Estimator:
    """The estimator for ``model`` on ``device``: a pipeline of models when its manifest
    is ``kind = "topdown"``, else one model: multi-pose models run on the whole frame,
    single-pose models on a crop around the person unless ``crops`` is False.

    ``opener`` opens each model (default: in this process with
    ``edgepose.inference.engine.open_engine``); every engine comes through it, with ``options``
    (its keyword arguments; the ones describing a single file are refused for a pipeline).
    """
    from edgepose.models.registry import get_pipeline, is_model_path

    if opener is None:
        from edgepose.inference.engine import open_engine

        opener = open_engine
    pipeline = None if is_model_path(model) else get_pipeline(str(model))
    if pipeline is not None:
        given = [k for k in _FILE_OPTIONS if options.get(k) is not None]
        if given:
            flag = "--" + given[0].replace("_", "-")
            raise ConfigError(f"{flag} describes one model file; {model} is a pipeline of "
                              f"{pipeline.proposer} and {pipeline.landmark} with their own manifests")
        rest = {k: v for k, v in options.items() if k not in _FILE_OPTIONS}
        return _pipeline_class(pipeline.kind).open(pipeline, device, opener, **rest)
    engine = opener(model, device, **options)
    if engine.multi_pose or not crops:
        return SingleModelEstimator(engine)
    from edgepose.estimators.single import SinglePersonEstimator

    return SinglePersonEstimator(engine)
