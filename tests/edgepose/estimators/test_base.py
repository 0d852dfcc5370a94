"""``open_estimator``: which estimator a model gets, and the decoder registry it reads."""

from __future__ import annotations

from typing import Any

import pytest

from edgepose.core.errors import ConfigError, ModelError
from edgepose.core.preprocess import Transform
from edgepose.decoders import DECODER_KINDS, DECODERS, decoder_info
from edgepose.estimators.base import Estimator, SingleModelEstimator
from edgepose.estimators.factory import open_estimator
from edgepose.estimators.single import SinglePersonEstimator
from edgepose.estimators.topdown import TopDownEstimator
from edgepose.inference.engine import open_engine
from edgepose.models.builtin import DEFAULT_MODEL
from edgepose.models.manifest import manifest_from_dict
from edgepose.models.registry import get_manifest


@pytest.mark.parametrize("model, options, kind", [
    ("movenet-multipose-fast", {}, TopDownEstimator),
    ("posenet-mobilenet-v1-075-481x641", {}, SingleModelEstimator),  # finds everyone itself
    ("movenet-lightning", {}, SinglePersonEstimator),
    ("movenet-lightning", {"crops": False}, SingleModelEstimator),
])
def test_each_model_gets_its_estimator(model: str, options: dict[str, Any], kind: type) -> None:
    est = open_estimator(model, "cpu", **options)
    try:
        assert type(est) is kind and isinstance(est, Estimator) and est.name == model
    finally:
        est.close()


def test_a_pipeline_kind_is_opened_by_its_registered_class(monkeypatch: pytest.MonkeyPatch) -> None:
    """``PIPELINE_KINDS`` picks the class by the manifest's kind (no if-chain): a class
    registered for ``topdown`` opens every top-down manifest, with the opener and options."""
    from edgepose.estimators import factory

    seen: list[tuple[str, str, dict[str, Any]]] = []

    class Counting(TopDownEstimator):
        @classmethod
        def open(cls, manifest: Any, device: str, opener: Any, **options: Any) -> TopDownEstimator:
            seen.append((manifest.name, device, options))
            return super().open(manifest, device, opener, **options)

    monkeypatch.setitem(factory.PIPELINE_KINDS, "topdown", "edgepose.estimators.topdown:TopDownEstimator")
    factory.register_pipeline_kind("topdown", Counting)
    est = open_estimator("movenet-multipose-fast", "cpu", num_threads=1)
    est.close()
    assert type(est) is Counting and seen == [("movenet-multipose-fast", "cpu", {"num_threads": 1})]
    monkeypatch.delitem(factory.PIPELINE_KINDS, "topdown")
    with pytest.raises(ConfigError, match="no estimator for pipeline kind 'topdown'; known kinds: "):
        open_estimator("movenet-multipose-fast", "cpu")


def test_the_default_is_the_multi_person_pipeline() -> None:
    assert DEFAULT_MODEL == "movenet-multipose"
    import inspect

    assert inspect.signature(open_estimator).parameters["model"].default == DEFAULT_MODEL


def test_the_engine_knows_its_input_size_for_crops() -> None:
    engine = open_engine("movenet-lightning", "cpu")
    assert engine.input_size == (192, 192)


def test_one_registry_of_decoder_kinds() -> None:
    assert DECODER_KINDS == tuple(DECODERS)
    assert [k for k in DECODER_KINDS if decoder_info(k).multi_pose] == ["posenet_multi", "multipose"]
    assert decoder_info("heatmap").schemas == ("coco17", "mpii16")
    assert get_manifest("posenet-mobilenet-v1-075-481x641").multi_pose
    assert not get_manifest("movenet-lightning").multi_pose
    with pytest.raises(ConfigError, match="unknown decoder 'openpose'; expected one of movenet"):
        decoder_info("openpose")


@pytest.mark.parametrize("kind", DECODER_KINDS)
def test_the_registry_lists_the_parameters_each_decoder_takes(kind: str) -> None:
    """Every listed parameter gets past the decoder's own parameter check (it may then
    fail on the value or on the empty outputs), and an unlisted one is refused by name."""
    info = decoder_info(kind)
    for name in info.params:
        with pytest.raises((ConfigError, ModelError)) as err:
            info.function([], Transform.identity(8, 8), **{name: "?"})
        assert "has no parameter" not in str(err.value)
    with pytest.raises(ConfigError, match=f"decoder '{kind}' has no parameter 'nope'"):
        info.function([], Transform.identity(8, 8), nope=1)


@pytest.mark.parametrize("changes, match", [
    ({"decoder": "openpose"}, "decoder = 'openpose'; expected one of movenet, posenet_single"),
    ({"schema": "mpii16"}, "decoder 'movenet' produces coco17 keypoints, not schema 'mpii16'"),
])
def test_manifests_are_checked_against_the_registry(changes: dict[str, str], match: str) -> None:
    base = {"name": "m", "file": "m.tflite", "input_size": [192, 192], "decoder": "movenet",
            "schema": "coco17"}
    with pytest.raises(ModelError, match=match):
        manifest_from_dict({**base, **changes}, "m.toml")
