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


# Why TFLite gives an op a version edgetpu_compiler 16 rejects (tensorflow/lite/tools/versioning/
# op_version.cc), and the conversion that avoids it. Keys: (op, version).
VERSION_FIXES: dict[tuple[str, int], str] = {
    ("CONV_2D", 4): "int16 activations (16x8 quantization); quantize activations to int8 "
                    "(TFLITE_BUILTINS_INT8, as `edgepose-tools quantize` does)",
    ("CONV_2D", 5): "float activations with int8 weights (dynamic-range quantization); quantize with a "
                    "representative set to full int8 (`edgepose-tools quantize`)",
    ("CONV_2D", 6): "a grouped convolution (fewer filter input channels than input channels); split it into "
                    "one CONV_2D per group + CONCATENATION (the ONNX and float-TFLite importers do), and quantize "
                    "a float .tflite with `edgepose-tools quantize` (TF's converter: v3), not ai-edge-quantizer",
    ("CONV_2D", 7): "int4 weights; quantize weights to int8",
    ("CONV_2D", 8): "int16 activations with a quantized bias type; quantize activations to int8",
    ("TRANSPOSE_CONV", 4): "a bias with a fused activation (TF 2.21 fuses Conv2DTranspose + BatchNorm + ReLU); "
                           "don't fuse: keep the bias out of the op, relu(y + b) == max(y, -b) + b (the ONNX "
                           "importer does), or use UpSampling2D + Conv2D",
    ("TRANSPOSE_CONV", 5): "int16 activations; quantize activations to int8",
}


def version_fix(op: str, version: int) -> str:
    """What produced ``op`` at ``version`` and how to convert so that the compiler accepts it."""
    return VERSION_FIXES.get((op, version), "a newer TFLite feature than the compiler's TF 2.5 era; quantize "
                                            "with `edgepose-tools quantize` (TF's full-int8 converter)")


def accepted_version(op: str) -> int | None:
    """Highest version of ``op`` edgetpu_compiler 16 maps, or None for an unsupported op."""
    entry = EDGETPU_MAX_VERSION.get(op)
    return entry[0] if entry else None
