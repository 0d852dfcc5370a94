"""One line saying when a better registered model exists for the one being run (a
pipeline whose parts come from official downloads too, more precise at a higher cost)."""

from __future__ import annotations

from edgepose.core.errors import EdgePoseError

# model run -> (the better one, why; figures from benchmarks/bench_accuracy.py, README "Models")
BETTER = {
    "movenet-multipose-fast": ("movenet-multipose",
                               "MoveNet Thunder poses each person: limbs12_dev AP 0.53 vs 0.38 measured "
                               "with an int8 stand-in, 13.8 vs 7.1 ms per person on the Edge TPU"),
}


def better_model_note(model: str) -> str | None:
    """The note for ``model`` (a registry name), or None when there is nothing better
    registered. Reads manifests and looks for files only; never downloads."""
    if model not in BETTER:
        return None
    from edgepose.models.registry import find_model_file, get_manifest, get_pipeline

    name, why = BETTER[model]
    try:
        pipe = get_pipeline(name)
        if pipe is None:
            return None
        missing = [p for p in (pipe.proposer, pipe.landmark) if find_model_file(get_manifest(p)) is None]
    except EdgePoseError:  # a damaged copy or a broken manifest is reported where it is used
        return None
    step = (f"`edgepose models fetch {name}` (official downloads), then " if missing else "")
    return f"a more precise model is available: {step}--model {name} ({why})"
