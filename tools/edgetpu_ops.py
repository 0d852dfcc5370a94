"""What edgetpu_compiler 16 maps to the Edge TPU: op types and the op versions it accepts.

Sources, per entry (``SOURCE_*`` below):
- Op types: Coral's "Supported operations" table (coral.ai/docs/edgetpu/models-intro,
  section "Supported operations"); the same table is published for the Edge TPU in
  Axis ARTPEC-7 (developer.axis.com, ".../artpec-7/supported-ops"). HARD_SWISH and
  LEAKY_RELU are not in it (google-coral/edgetpu#272, still open, asks for both): they
  run on the CPU, so a model using them splits there.
- Accepted versions, "coral-model": the version is inside a model Coral itself compiled
  (``../shared/models/coral``: MoveNet ``_ptq.tflite`` ops that ended up inside the
  ``edgetpu-custom-op`` of its ``_edgetpu.tflite``, and the PoseNet MobileNet v1 backbones).
- "readme": ../shared/README.md / issue 4: TRANSPOSE_CONV v4 (TF >= 2.x emits it for
  Conv2DTranspose+BN+ReLU) is rejected, so v1..v3 is the accepted range.
- "int8-version": not seen in a Coral model; the highest version is the one TFLite's
  ``op_version.cc`` assigns to the int8/uint8 kernel of that op (what a full-int8 model of
  the compiler's era, TF 2.5, carries). Newer versions mean new features the compiler
  predates. These are the least certain numbers; a real compile settles them.
"""

from __future__ import annotations

SOURCE_CORAL_MODEL = "coral-model"
SOURCE_README = "readme"
SOURCE_INT8_VERSION = "int8-version"

# op name -> (highest accepted version, source of that number)
EDGETPU_MAX_VERSION: dict[str, tuple[int, str]] = {
    "ADD": (2, SOURCE_CORAL_MODEL),
    "AVERAGE_POOL_2D": (2, SOURCE_INT8_VERSION),
    "CONCATENATION": (2, SOURCE_INT8_VERSION),  # v1 in the PoseNet backbones
    "CONV_2D": (3, SOURCE_CORAL_MODEL),  # v3 MoveNet, v1 PoseNet
    "DEPTHWISE_CONV_2D": (3, SOURCE_CORAL_MODEL),  # v3 MoveNet, v1 PoseNet
    "EXPAND_DIMS": (1, SOURCE_INT8_VERSION),
    "FULLY_CONNECTED": (4, SOURCE_INT8_VERSION),
    "L2_NORMALIZATION": (2, SOURCE_INT8_VERSION),
    "LOGISTIC": (2, SOURCE_CORAL_MODEL),
    "LSTM": (3, SOURCE_INT8_VERSION),
    "MAXIMUM": (2, SOURCE_INT8_VERSION),
    "MAX_POOL_2D": (2, SOURCE_INT8_VERSION),
    "MEAN": (2, SOURCE_INT8_VERSION),
    "MINIMUM": (2, SOURCE_INT8_VERSION),
    "MUL": (2, SOURCE_CORAL_MODEL),
    "PACK": (2, SOURCE_INT8_VERSION),
    "PAD": (2, SOURCE_INT8_VERSION),
    "PRELU": (1, SOURCE_INT8_VERSION),
    "QUANTIZE": (1, SOURCE_CORAL_MODEL),  # int8 -> int8 requantize, MoveNet
    "REDUCE_MAX": (2, SOURCE_INT8_VERSION),
    "REDUCE_MIN": (2, SOURCE_INT8_VERSION),
    "RELU": (2, SOURCE_INT8_VERSION),
    "RELU6": (2, SOURCE_INT8_VERSION),
    "RELU_N1_TO_1": (1, SOURCE_INT8_VERSION),
    "RESHAPE": (1, SOURCE_CORAL_MODEL),
    "RESIZE_BILINEAR": (3, SOURCE_CORAL_MODEL),
    "RESIZE_NEAREST_NEIGHBOR": (3, SOURCE_INT8_VERSION),
    "RSQRT": (2, SOURCE_INT8_VERSION),
    "SLICE": (2, SOURCE_INT8_VERSION),
    "SOFTMAX": (2, SOURCE_INT8_VERSION),
    "SPACE_TO_DEPTH": (2, SOURCE_INT8_VERSION),
    "SPLIT": (2, SOURCE_INT8_VERSION),
    "SQUARED_DIFFERENCE": (1, SOURCE_INT8_VERSION),
    "SQUEEZE": (1, SOURCE_INT8_VERSION),
    "STRIDED_SLICE": (2, SOURCE_INT8_VERSION),
    "SUB": (2, SOURCE_CORAL_MODEL),
    "SUM": (1, SOURCE_INT8_VERSION),
    "TANH": (2, SOURCE_INT8_VERSION),
    "TRANSPOSE": (2, SOURCE_INT8_VERSION),
    "TRANSPOSE_CONV": (3, SOURCE_README),  # v4 rejected by compiler 16
}

# Dtype conversions that may run on the CPU at the very edges of the graph (Coral's
# MoveNet build keeps CAST + QUANTIZE of the input on the CPU) without splitting it.
EDGE_CONVERSION_OPS = frozenset({"CAST", "QUANTIZE", "DEQUANTIZE"})

# Ops that carry the network's compute; a CPU "post-processing tail" contains none.
HEAVY_OPS = frozenset({
    "CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "FULLY_CONNECTED", "CONV_3D",
    "CONV_3D_TRANSPOSE", "LSTM", "UNIDIRECTIONAL_SEQUENCE_LSTM", "BATCH_MATMUL",
})

# The custom op name of a model that is already compiled for the Edge TPU.
EDGETPU_CUSTOM_OP = "edgetpu-custom-op"

# Data types the Edge TPU computes in (non-constant tensors of mapped ops).
TPU_DTYPES = frozenset({"INT8", "UINT8"})

# Approximate on-chip parameter cache (Coral: "roughly 8 MB of SRAM").
ON_CHIP_CACHE_BYTES = 8 * 1024 * 1024


def accepted_version(op: str) -> int | None:
    """Highest version of ``op`` edgetpu_compiler 16 maps, or None for an unsupported op."""
    entry = EDGETPU_MAX_VERSION.get(op)
    return entry[0] if entry else None


# Why TFLite gives an op a version newer than edgetpu_compiler 16 accepts, and the fix.
# Facts from TensorFlow Lite's tools/versioning/op_version.cc (GetBuiltinOperatorVersion).
_VERSION_CAUSES: dict[tuple[str, int], str] = {
    ("CONV_2D", 5): "hybrid per-channel quantization (float activations, int8 weights)",
    ("CONV_2D", 6): "a grouped convolution (input channels != filter channels, e.g. PyTorch Conv2d(groups>1)): "
                    "split it into one CONV_2D per group + CONCATENATION (in Keras one Conv2D per group + Concatenate; "
                    "the ONNX and float-TFLite importers do this), "
                    "or use DepthwiseConv2D when groups == channels; quantize a float .tflite with "
                    "`edgepose-tools quantize` (TF's converter), not ai-edge-quantizer",
    ("TRANSPOSE_CONV", 4): "a bias with an activation fused into it (TF 2.21 fuses Conv2DTranspose + BatchNorm + "
                           "ReLU): keep the bias out of the op, relu(y + b) == max(y, -b) + b (the ONNX importer "
                           "does), or use UpSampling2D + Conv2D, or a separate activation layer",
    ("FULLY_CONNECTED", 5): "keep_num_dims (a Dense layer on a 3-D or 4-D input): reshape to 2-D before the Dense",
    ("FULLY_CONNECTED", 6): "no bias: give the Dense layer a bias (use_bias=True)",
    ("FULLY_CONNECTED", 8): "sparse weights: export dense weights",
    ("MUL", 3): "int8 scales with input1_scale * input2_scale / output_scale >= 1 (a multiplication that enlarges "
                "values): fold the factor into the neighbouring convolution",
    ("RESIZE_BILINEAR", 3): "half_pixel_centers: resize with half_pixel_centers=False (align_corners or neither)",
    ("STRIDED_SLICE", 4): "more than 4 dimensions: slice a 4-D tensor",
    ("STRIDED_SLICE", 6): "an ellipsis or new-axis mask: slice with explicit begin/end per axis",
    ("TRANSPOSE", 4): "more than 4 dimensions: transpose a 4-D tensor",
    ("SUB", 3): "broadcasting over more than 4 dimensions: keep tensors 4-D",
    ("MAXIMUM", 3): "broadcasting over more than 4 dimensions: keep tensors 4-D",
    ("MINIMUM", 3): "broadcasting over more than 4 dimensions: keep tensors 4-D",
}
_INT8_ONLY = ("int16 activations (16x8 quantization): quantize with int8 activations (converter "
              "target_spec.supported_ops = [TFLITE_BUILTINS_INT8], not "
              "EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8)")
_HYBRID = ("dynamic-range (hybrid) quantization, float activations with int8 weights: quantize fully with a "
           "representative dataset (`edgepose-tools build`, or converter representative_dataset + "
           "supported_ops = [TFLITE_BUILTINS_INT8])")
_INT4 = "int4 weights: quantize the weights to int8"


def version_fix(op: str, version: int, dtypes_in: tuple[str, ...], dtypes_out: tuple[str, ...]) -> str:
    """What makes TFLite give ``op`` this version and how to avoid it (a converter setting or
    the layer to change), from the op's tensor types and TFLite's op versioning rules."""
    data_in = dtypes_in[:1]
    if "INT16" in data_in + dtypes_out:
        return _INT8_ONLY
    if "INT4" in dtypes_in:
        return _INT4
    if data_in == ("FLOAT32",) and "INT8" in dtypes_in[1:] and op in HEAVY_OPS:
        return _HYBRID
    cause = _VERSION_CAUSES.get((op, version))
    if cause:
        return cause
    return (f"a newer feature of {op} (see TensorFlow Lite's op_version.cc for what v{version} adds): convert "
            "with full-int8 settings (`edgepose-tools build`) or replace that layer with a plainer one")
