"""The converter engines' known behaviour (bugs and refusals of tf2onnx, onnx2torch, OpenVINO, nobuco, onnx2tf), each
with the condition under which it holds: data, as harness/known/bugs.py, which holds the one REGISTRY and builds these
entries into it (``entries(Known)``: this module cannot import bugs.py, which imports it).

Conditions name the versions the converters' venvs share with the harness (engines/*.txt pin the same keras,
tensorflow and torch); the converters' own versions are not facts a condition can ask for, so each entry's `seen`
names them.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from ..layers.geometry import Geometry

TRANSPOSED = ("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose")
OUTPUT = "output"   # bugs.OUTPUT: what a bug moves, as messages name it
# The versions engines/onnx.txt pins next to tf2onnx 1.17.0, onnxruntime 1.32.0, onnx2torch 1.5.15, OpenVINO
# 2026.4.1 and ai-edge-litert 2.3.0 (the converters of the Keras graph).
KERAS_GRAPH = {"keras": "==3.15.1", "tensorflow": "==2.21.0"}


class Case(Protocol):
    """What these predicates read of a case (bugs.Case has it)."""
    layer: str
    dtype: str
    input_shape: tuple[int, ...]
    @property
    def geometry(self) -> Geometry: ...


K = TypeVar("K")


def transposed(case: Case) -> bool:
    return case.layer in TRANSPOSED


def _crops(case: Case) -> list[tuple[int, int]]:
    """(before, after) Keras crops off each end of a transposed conv's full scatter (negative after: positions
    appended past it); the family's pad_widths, which for a transposed conv depend on no input length."""
    return case.geometry.pad_widths(())


def _ends_past_scatter(case: Case) -> bool:
    """A transposed conv whose output ends past the full scatter on some axis (a kernel reaching short of the stride,
    or output_padding): tf2onnx writes the crop's negative total as negative pads."""
    return transposed(case) and any(after < 0 for _, after in _crops(case))


def _odd_crop_total(case: Case) -> bool:
    """Some axis whose crop total (before + after) is odd: tf2onnx splits a total into pads (trunc(t/2), the rest),
    unequal at the two ends of that axis."""
    return transposed(case) and any((before + after) % 2 for before, after in _crops(case))


def _even_negative_crop_total(case: Case) -> bool:
    """Every crop total even (tf2onnx's pads symmetric) and some negative (the output ends 2 or more past)."""
    totals = [before + after for before, after in _crops(case)] if transposed(case) else []
    return bool(totals) and not any(t % 2 for t in totals) and min(totals) < 0


def _port_crops_by_hand(case: Case) -> bool:
    """The torch port's transposed conv crops with F.pad (harness/layers/families/transpose.py, torch_mixin) where
    torch's padding/output_padding cannot say Keras's crop: padding = before, output_padding = before - after in
    [0, max(stride, dilation)) on every axis, else by hand."""
    g = case.geometry
    return transposed(case) and not all(0 <= b - a < max(s, d)
                                        for (b, a), s, d in zip(_crops(case), g.strides, g.dilation))


def _port_plain_short_kernel(case: Case) -> bool:
    """The torch port is nn.ConvTransposeNd with output_padding 0 (its native path, nothing appended) and a dilated
    kernel shorter than the stride on some axis."""
    g = case.geometry
    return (transposed(case) and not _port_crops_by_hand(case) and all(b == a for b, a in _crops(case))
            and any((k - 1) * d + 1 < s for k, s, d in zip(g.kernel_size, g.strides, g.dilation)))


def _port_output_padding(case: Case) -> bool:
    """The torch port's nn.ConvTransposeNd takes an output_padding > 0 on some axis (its native path)."""
    return transposed(case) and not _port_crops_by_hand(case) and any(b - a > 0 for b, a in _crops(case))


def _port_option(case: Case, engine: str, option: str, default: str) -> str:
    """A torch-port option (harness.engines.port_variants) the case gives ``engine``, else its default."""
    return str(getattr(case, "engine_options", {}).get(engine, {}).get(option, default))


def _port_pads_in_graph(case: Case, engine: str) -> bool:
    """The torch port that ``engine`` exports pads with F.pad (or a variant's nn.ZeroPadNd) somewhere: a conv whose
    'same' or 'causal' padding adds zeros on some axis (unless the case gives the engine port_padding 'same', which
    torch takes at stride 1 in the conv itself), or a transposed conv that crops by hand."""
    if transposed(case):
        return _port_crops_by_hand(case)
    g = case.geometry
    spatial = tuple(case.input_shape[2:] if g.channels_first else case.input_shape[1:-1])
    if not any(before or after for before, after in g.pad_widths(spatial)):
        return False
    return not (_port_option(case, engine, "port_padding", "pad") == "same" and g.padding == "same"
                and all(s == 1 for s in g.strides))


def entries(known: Callable[..., K]) -> tuple[K, ...]:
    """The converter entries, each built by ``known`` (bugs.Known)."""
    return (
        known(
            id="tf2onnx-conv-transpose-negative-pads-refused", engine="keras-onnx", kind="refusal",
            summary="tf2onnx writes a transposed conv whose output ends past the full scatter as an ONNX ConvTranspose "
                    "with negative pads (ONNX allows none; output_padding or output_shape would say it), and "
                    "onnxruntime refuses the graph at load (\"[ShapeInferenceError] Attribute pads must not contain "
                    "negative values\"); a runtime that took them would append the extra positions at the wrong end",
            repro="import keras, onnxruntime; x = keras.Input(batch_shape=(1, 3, 1)); keras.Model(x, "
                  "keras.layers.Conv1DTranspose(1, 1, strides=2)(x)).export('m.onnx', format='onnx', "
                  "input_signature=[keras.InputSpec(shape=(1, 3, 1), dtype='float32')]); "
                  "onnxruntime.InferenceSession('m.onnx')   # Fail: Attribute pads must not contain negative values "
                  "(tf2onnx wrote pads [0, 0, 0, -1]; should be 0 with output_padding 1)",
            touches="Conv1DTranspose, Conv2DTranspose and Conv3DTranspose with an axis where Keras's output ends past "
                    "the full scatter ((n - 1) s + (k - 1) d + 1): 'valid' with a kernel reaching short of the stride, "
                    "an output_padding that appends positions, a 'same' output longer than the scatter",
            when=KERAS_GRAPH, applies=_ends_past_scatter,
            seen="tf2onnx 1.17.0 (Keras 3.15.1's model.export), onnxruntime 1.32.0; onnx2torch reads the same graph "
                 "(onnx2torch-conv-transpose-asymmetric-pads-refused, "
                 "onnx2torch-conv-transpose-negative-pads-refused); issue 20"),
        known(
            id="onnx2torch-conv-transpose-asymmetric-pads-refused", engine="onnx2torch", kind="refusal",
            summary="onnx2torch refuses an ONNX ConvTranspose whose pads differ at the two ends of an axis "
                    "(NotImplementedError: \"ConvTranspose with non symmetrical padding is not implemented\"); tf2onnx "
                    "writes Keras's crop that way wherever its total is odd ('same' with an odd total, TensorFlow's "
                    "extra position cropped at the end; an output one position past the scatter, pads (0, -1))",
            repro="import numpy as np, onnx, onnx2torch; h = onnx.helper; onnx2torch.convert(h.make_model(h.make_graph("
                  "[h.make_node('ConvTranspose', ['x', 'w'], ['y'], strides=[2], pads=[0, 1])], 'g', "
                  "[h.make_tensor_value_info('x', 1, [1, 1, 3])], [h.make_tensor_value_info('y', 1, [1, 1, 6])], "
                  "[onnx.numpy_helper.from_array(np.ones((1, 1, 3), np.float32), 'w')]), "
                  "opset_imports=[h.make_opsetid('', 17)]))   # NotImplementedError",
            touches="Conv1DTranspose, Conv2DTranspose and Conv3DTranspose with an axis whose crop total (full scatter "
                    "minus output length) is odd: 'same' with the dilated kernel longer than the stride by an odd "
                    "amount, or an output one position past the scatter",
            when=KERAS_GRAPH, applies=_odd_crop_total,
            seen="onnx2torch 1.5.15 on tf2onnx 1.17.0's graph (engines/onnx.txt); issue 20"),
        known(
            id="onnx2torch-conv-transpose-negative-pads-refused", engine="onnx2torch", kind="refusal",
            summary="onnx2torch converts an ONNX ConvTranspose with equal negative pads (tf2onnx's, where the output "
                    "ends 2 or more positions past the scatter: tf2onnx-conv-transpose-negative-pads-refused) into "
                    "nn.ConvTransposeNd(padding=-p), which torch refuses at call (\"negative padding is not "
                    "supported\")",
            repro="import numpy as np, onnx, onnx2torch, torch; h = onnx.helper; onnx2torch.convert(h.make_model("
                  "h.make_graph([h.make_node('ConvTranspose', ['x', 'w'], ['y'], strides=[3], pads=[-1, -1])], 'g', "
                  "[h.make_tensor_value_info('x', 1, [1, 1, 3])], [h.make_tensor_value_info('y', 1, [1, 1, 11])], "
                  "[onnx.numpy_helper.from_array(np.ones((1, 1, 3), np.float32), 'w')]), "
                  "opset_imports=[h.make_opsetid('', 17)]))(torch.ones(1, 1, 3))   "
                  "# RuntimeError: negative padding is not supported",
            touches="Conv1DTranspose, Conv2DTranspose and Conv3DTranspose whose crop totals are all even and some "
                    "negative: an output_padding (or a kernel short of the stride) leaving the output 2 or more "
                    "positions past the scatter",
            when=KERAS_GRAPH, applies=_even_negative_crop_total,
            seen="onnx2torch 1.5.15 on tf2onnx 1.17.0's graph, torch 2.13.0 (engines/onnx.txt); issue 20"),
        known(
            id="openvino-float64-computed-in-float32", engine="openvino", kind="bug",
            summary="OpenVINO's CPU plugin computes a float64 model in float32 (inputs, weights and sums rounded to "
                    "float32) and returns float64: errors of float32's size, 1e7 to 1e8 times float64's bound; "
                    "openvino-f32 alike, and openvino's default where it infers in f32 (where its default is bfloat16, "
                    "in bfloat16)",
            repro="import numpy as np, keras, openvino as ov; keras.config.set_dtype_policy('float64'); x = "
                  "keras.Input(batch_shape=(1, 1, 1), dtype='float64'); keras.Model(x, keras.layers.Conv1DTranspose("
                  "1, 1, use_bias=False, kernel_initializer='ones')(x)).export('m.xml', format='openvino', "
                  "input_signature=[keras.InputSpec(shape=(1, 1, 1), dtype='float64')]); c = ov.Core().compile_model("
                  "'m.xml', 'CPU', {'INFERENCE_PRECISION_HINT': 'f32'}); print(c([np.full((1, 1, 1), 1 + 2.**-30)])"
                  "[c.outputs[0]])   # [[[1.]]], should be 1.0000000009313226",
            touches="every layer in float64 (Conv1D ... Conv3DTranspose; the float64 cases of every family show it)",
            when={"dtype": "float64", **KERAS_GRAPH}, applies=lambda case: True, mutant="float32_internal",
            seen="OpenVINO 2026.4.1 (Keras 3.15.1's model.export), AMD EPYC with AVX512_BF16, where openvino and "
                 "openvino-f32 both infer in f32; issue 20",
            tensors=(OUTPUT,)),
        known(
            id="openvino-bfloat16-const-refused", engine="openvino", kind="refusal",
            summary="OpenVINO's TensorFlow frontend cannot convert a bfloat16 Keras model: its bfloat16 weights have "
                    "no conversion rule (OpConversionFailure: \"No conversion rule found for operations: Const of "
                    "unknown type\"); openvino-f32 alike",
            repro="import keras; keras.config.set_dtype_policy('bfloat16'); x = keras.Input(batch_shape=(1, 2, 2, "
                  "1), dtype='bfloat16'); keras.Model(x, keras.layers.Conv2DTranspose(1, 1)(x)).export('m.xml', "
                  "format='openvino', input_signature=[keras.InputSpec(shape=(1, 2, 2, 1), dtype='bfloat16')])   "
                  "# OpConversionFailure: Const of unknown type",
            touches="every layer in bfloat16 (the bfloat16 cases of every family show it)",
            when={"dtype": "bfloat16", **KERAS_GRAPH}, applies=lambda case: True,
            seen="OpenVINO 2026.4.1 (Keras 3.15.1's model.export); issue 20"),
        known(
            id="nobuco-conv-transpose3d-refused", engine="nobuco", kind="refusal",
            summary="nobuco has no converter for torch's conv_transpose3d (nn.ConvTranspose3d, "
                    "F.conv_transpose3d): \"Unimplemented nodes\"",
            repro="import torch, nobuco; nobuco.pytorch_to_keras(torch.nn.ConvTranspose3d(1, 1, 2).eval(), "
                  "args=[torch.ones(1, 1, 2, 2, 2)])   # Exception: Unimplemented nodes (conv_transpose3d)",
            touches="Conv3DTranspose (the torch port's nn.ConvTranspose3d or F.conv_transpose3d), every configuration",
            when={"torch": "==2.13.0"}, applies=lambda case: case.layer == "Conv3DTranspose",
            seen="nobuco 0.17.0, torch 2.13.0, TensorFlow 2.15.1 (engines/nobuco.txt); issue 20"),
        known(
            id="nobuco-conv-transpose-output-padding-refused", engine="nobuco", kind="refusal",
            summary="nobuco's ConvTranspose1d/2d converters assert output_padding == (0,) * rank (\"Output padding is "
                    "not supported yet\"): it refuses nn.ConvTransposeNd with an output_padding, and "
                    "F.conv_transpose1d given torch's own default, the integer 0",
            repro="import torch, nobuco; nobuco.pytorch_to_keras(torch.nn.ConvTranspose1d(1, 1, 3, stride=2, "
                  "output_padding=1).eval(), args=[torch.ones(1, 1, 3)])   # Failed conversion: Output padding is not "
                  "supported yet",
            touches="Conv1DTranspose and Conv2DTranspose whose torch port takes an output_padding > 0 (before - after "
                    "of Keras's crop: an output_padding with padding 'valid'), and Conv1DTranspose whose port crops by "
                    "hand (F.conv_transpose1d with output_padding 0)",
            when={"torch": "==2.13.0"},
            applies=lambda case: case.layer in ("Conv1DTranspose", "Conv2DTranspose") and (
                _port_output_padding(case) or (case.layer == "Conv1DTranspose" and _port_crops_by_hand(case))),
            seen="nobuco 0.17.0, torch 2.13.0 (engines/nobuco.txt); issue 20"),
        known(
            id="nobuco-negative-pad-refused", engine="nobuco", kind="refusal",
            summary="nobuco converts F.pad with negative amounts (a crop) into tf.pad, which refuses them (\"Paddings "
                    "must be non-negative\"): the torch port's crop of a transposed conv where torch's "
                    "padding/output_padding cannot say Keras's",
            repro="import torch, torch.nn.functional as F, nobuco; nobuco.pytorch_to_keras(type('Crop', "
                  "(torch.nn.Module,), {'forward': lambda self, x: F.pad(x, [0, -1, 0, -1])})(), "
                  "args=[torch.ones(1, 1, 4, 4)])   # ValueError: Paddings must be non-negative",
            touches="Conv2DTranspose whose torch port crops by hand (an output ending past the scatter, a 'same' crop "
                    "of an even kernel, a crop wider than torch's output_padding can undo)",
            when={"torch": "==2.13.0"},
            applies=lambda case: case.layer == "Conv2DTranspose" and _port_crops_by_hand(case),
            seen="nobuco 0.17.0, TensorFlow 2.15.1 (engines/nobuco.txt); issue 20"),
        known(
            id="nobuco-conv-transpose-short-kernel-output-too-long", engine="nobuco", kind="bug",
            summary="nobuco converts nn.ConvTranspose1d/2d into Keras 2's Conv1DTranspose/Conv2DTranspose with padding "
                    "'valid', whose output is n * s long where the dilated kernel is shorter than the stride: longer "
                    "than torch's (n - 1) s + ek (s - ek positions at the end of a 1-D output)",
            repro="import numpy as np, torch, nobuco; print(nobuco.pytorch_to_keras(torch.nn.ConvTranspose1d(1, 1, 1, "
                  "stride=2).eval(), args=[torch.ones(1, 1, 3)], inputs_channel_order=nobuco.ChannelOrder.PYTORCH, "
                  "outputs_channel_order=nobuco.ChannelOrder.PYTORCH)(np.ones((1, 1, 3), np.float32)).shape)   "
                  "# (1, 1, 6), should be (1, 1, 5) as torch's",
            touches="Conv1DTranspose and Conv2DTranspose whose torch port is nn.ConvTransposeNd with output_padding 0 "
                    "and an axis where the dilated kernel is shorter than the stride (Keras's output_padding=0 with "
                    "'valid', or a 'same' output_padding that leaves nothing to crop)",
            when={"torch": "==2.13.0"},
            applies=lambda case: case.layer in ("Conv1DTranspose", "Conv2DTranspose")
            and _port_plain_short_kernel(case),
            seen="nobuco 0.17.0, Keras 2.15.0 (engines/nobuco.txt); issue 20",
            tensors=(OUTPUT,)),
        known(
            id="onnx2tf-conv-transpose-dilation-float64-refused", engine="onnx2tf", kind="refusal",
            summary="The TensorFlow graph onnx2tf builds for a dilated transposed conv in float64 is refused at call: "
                    "TensorFlow 2.19's CPU kernel without oneDNN (which has no float64 one) refuses dilation > 1 "
                    "(\"Current CPU implementations do not yet support dilation rates larger than 1\"), as TensorFlow "
                    "2.21 does under Keras (tf-conv-transpose-dilation-refused-without-onednn)",
            repro="python -c \"import numpy as np, tensorflow as tf; tf.nn.conv1d_transpose(np.ones((1, 4, 1)), "
                  "np.ones((3, 1, 1)), [1, 8, 1], 1, 'VALID', dilations=2)\"   # InvalidArgumentError in TensorFlow "
                  "2.19 (and 2.15); float32 runs with oneDNN on",
            touches="Conv1DTranspose, Conv2DTranspose and Conv3DTranspose in float64 with any dilation > 1",
            when={"torch": "==2.13.0", "dtype": "float64"},
            applies=lambda case: transposed(case) and max(case.geometry.dilation) > 1,
            seen="onnx2tf 1.29.24, TensorFlow 2.19.0 (engines/onnx2tf.txt); in float32 too where "
                 "TF_ENABLE_ONEDNN_OPTS=0 reaches its worker (--tf-onednn off), and so for nobuco (TensorFlow 2.15, "
                 "which builds float64 layers in float32: nobuco-float64-built-as-float32); issue 20"),
        known(
            id="nobuco-float64-built-as-float32", engine="nobuco", kind="bug",
            summary="nobuco builds the Keras 2 layers of a float64 (or float16) module in float32, whatever the "
                    "module's dtype: the converted model takes and returns float32 (its values right to float32's "
                    "precision)",
            repro="import numpy as np, torch, nobuco; print(nobuco.pytorch_to_keras(torch.nn.ConvTranspose1d(1, 1, "
                  "1).double().eval(), args=[torch.ones(1, 1, 2, dtype=torch.float64)])(np.ones((1, 2, 1))).dtype)   "
                  "# float32, should be float64",
            touches="every layer in float64 or float16 that nobuco converts (the float64 and float16 cases of every "
                    "family show it)",
            when={"torch": "==2.13.0", "dtype": ["float64", "float16"]}, applies=lambda case: True,
            seen="nobuco 0.17.0, TensorFlow 2.15.1, Keras 2.15.0 (engines/nobuco.txt); issue 20",
            tensors=(OUTPUT,)),
        known(
            id="onnx2tf-bias-add-after-pad-left-channels-first", engine="onnx2tf", kind="bug",
            summary="onnx2tf converts a ConvTranspose, then a Pad (a crop), then a bias added as an (F, 1, ...) "
                    "tensor into a TensorFlow graph whose output stays channels-first where its layout conversion "
                    "makes every output channels-last: the output comes back with its axes permuted (where the shapes "
                    "disagree, its Add fails instead); the same graph without the Add is right",
            repro="import numpy as np, torch, torch.nn.functional as F, onnx2tf\n"
                  "class M(torch.nn.Module):\n"
                  "    def forward(self, x): return F.pad(F.conv_transpose1d(x, torch.ones(2, 3, 3), None, 2), "
                  "[0, -1]) + torch.ones(3, 1)\n"
                  "torch.onnx.export(M(), (torch.ones(1, 2, 5),), 'm.onnx')\n"
                  "print(onnx2tf.convert('m.onnx', disable_model_save=True, non_verbose=True)(np.ones((1, 5, 2), "
                  "np.float32)).shape)   # (1, 3, 10), should be (1, 10, 3)",
            touches="Conv1DTranspose, Conv2DTranspose and Conv3DTranspose with a bias whose torch port crops by hand "
                    "(conv_transpose, F.pad, then the bias: an output ending past the scatter, a 'same' crop torch's "
                    "output_padding cannot undo)",
            when={"torch": "==2.13.0"},
            applies=lambda case: case.geometry.use_bias and _port_crops_by_hand(case),
            seen="onnx2tf 1.29.24, torch.onnx 2.13.0, TensorFlow 2.19.0 (engines/onnx2tf.txt); issue 20",
            tensors=(OUTPUT,)),
        known(
            id="onnx2tf-float16-returned-as-float32", engine="onnx2tf", kind="bug",
            summary="onnx2tf builds the TensorFlow graph of a float16 ONNX model in float32: the converted model takes "
                    "and returns float32 (its values right to float16's precision)",
            repro="import numpy as np, torch, onnx2tf; torch.onnx.export(torch.nn.ConvTranspose1d(1, 1, 1).half()"
                  ".eval(), (torch.ones(1, 1, 2, dtype=torch.float16),), 'm.onnx'); print(onnx2tf.convert('m.onnx', "
                  "disable_model_save=True, non_verbose=True)(np.ones((1, 2, 1), np.float16)).dtype)   # float32, "
                  "should be float16",
            touches="every layer in float16 that onnx2tf converts (the float16 cases of every family show it)",
            when={"torch": "==2.13.0", "dtype": "float16"}, applies=lambda case: True,
            seen="onnx2tf 1.29.24, TensorFlow 2.19.0 (engines/onnx2tf.txt); issue 20",
            tensors=(OUTPUT,)),
        known(
            id="onnx2tf-conv-transpose3d-bias-dropped", engine="onnx2tf", kind="bug",
            summary="onnx2tf drops the bias of a 3-D ONNX ConvTranspose: the converted model computes the scatter "
                    "alone (the kernel is right)",
            repro="import numpy as np, torch, onnx2tf; m = torch.nn.ConvTranspose3d(1, 1, 1).eval(); "
                  "torch.onnx.export(m, (torch.ones(1, 1, 1, 1, 1),), 'm.onnx'); print(onnx2tf.convert('m.onnx', "
                  "disable_model_save=True, non_verbose=True)(np.ones((1, 1, 1, 1, 1), np.float32)).numpy().ravel(), "
                  "m.weight.item(), (m.weight + m.bias).item())   # w, w, w + b: the bias dropped",
            touches="Conv3DTranspose with a bias whose torch port is nn.ConvTranspose3d itself (its bias in the "
                    "ConvTranspose node; a port that crops by hand adds the bias apart: "
                    "onnx2tf-bias-add-after-pad-left-channels-first)",
            when={"torch": "==2.13.0"},
            applies=lambda case: case.layer == "Conv3DTranspose" and case.geometry.use_bias
            and not _port_crops_by_hand(case),
            seen="onnx2tf 1.29.24, torch.onnx 2.13.0, TensorFlow 2.19.0 (engines/onnx2tf.txt); issue 20",
            tensors=(OUTPUT,)),
        known(
            id="onnx2tf-legacy-pad-on-batch-axis", engine="onnx2tf-legacy", kind="bug",
            summary="onnx2tf misreads the Pad that torch.onnx's legacy exporter (dynamo=False) writes for F.pad or "
                    "nn.ZeroPadNd (its pads computed in the graph: ConstantOfShape, Concat, Reshape, Slice, "
                    "Transpose, Cast): the zeros of the last spatial axis land on the batch axis, so the output has "
                    "a longer batch and that axis unpadded; the dynamo exporter's graph (the pad folded into the "
                    "Conv's pads) converts right",
            repro="import numpy as np, torch, torch.nn.functional as F, onnx2tf\n"
                  "class M(torch.nn.Module):\n"
                  "    def forward(self, x): return F.pad(x, [1, 1])\n"
                  "torch.onnx.export(M(), (torch.ones(2, 3, 5),), 'm.onnx', dynamo=False)\n"
                  "print(onnx2tf.convert('m.onnx', disable_model_save=True, non_verbose=True)(np.ones((2, 5, 3), "
                  "np.float32)).shape)   # (4, 5, 3), should be (2, 7, 3)",
            touches="Conv1D, Conv2D, DepthwiseConv1D/2D, SeparableConv1D/2D (and Conv3D) with 'same' or 'causal' "
                    "padding that adds zeros on some axis, unless the port pads in the conv (port_padding 'same' at "
                    "stride 1); transposed convs whose port crops by hand (with a bias, onnx2tf then fails converting "
                    "the bias Add after the crop: rejected, naming the op and the shapes)",
            when={"torch": "==2.13.0"}, applies=lambda case: _port_pads_in_graph(case, "onnx2tf-legacy"),
            seen="onnx2tf 1.29.24, torch.onnx 2.13.0's TorchScript exporter (opset 20), TensorFlow 2.19.0 "
                 "(engines/onnx2tf.txt); issue 21",
            tensors=(OUTPUT,)),
        known(
            id="onnx2tf-strides-with-dilation-refused", engine="onnx2tf", kind="refusal",
            summary="onnx2tf converts an ONNX Conv with a stride > 1 and a dilation > 1 into tf.nn.convolution, which "
                    "refuses them together (\"`strides > 1` not supported in conjunction with `dilation_rate > 1`\") "
                    "while onnx2tf runs its check inference: the conversion fails at that Conv (Keras refuses the "
                    "layer alike; the torch port, which torch computes, is what onnx2tf converts); onnx2tf-legacy "
                    "alike",
            repro="import torch, onnx2tf; torch.onnx.export(torch.nn.Conv1d(1, 1, 2, stride=2, dilation=2).eval(), "
                  "(torch.ones(1, 1, 9),), 'm.onnx'); onnx2tf.convert('m.onnx', disable_model_save=True, "
                  "non_verbose=True)   # ValueError: `strides > 1` not supported in conjunction with "
                  "`dilation_rate > 1`",
            touches="Conv1D/2D/3D, DepthwiseConv1D/2D and SeparableConv1D/2D with some stride > 1 and some "
                    "dilation > 1 (the torch port computes them; Keras refuses them)",
            when={"torch": "==2.13.0"},
            applies=lambda case: not transposed(case) and max(case.geometry.strides) > 1
            and max(case.geometry.dilation) > 1,
            seen="onnx2tf 1.29.24, TensorFlow 2.19.0 (engines/onnx2tf.txt), both torch.onnx exporters; an error of "
                 "the converter until issue 21 read onnx2tf's report of the op it failed on"),
        known(
            id="nobuco-strides-with-dilation-refused", engine="nobuco", kind="refusal",
            summary="nobuco converts a torch conv with a stride > 1 and a dilation > 1 into a Keras 2 conv layer, "
                    "which refuses them together (\"`strides > 1` not supported in conjunction with "
                    "`dilation_rate > 1`\"): the conversion fails at that node (Keras 3 refuses the layer alike)",
            repro="import torch, nobuco; nobuco.pytorch_to_keras(torch.nn.Conv1d(1, 1, 2, stride=2, dilation=2)"
                  ".eval(), args=[torch.ones(1, 1, 9)])   # Failed conversion: `strides > 1` not supported in "
                  "conjunction with `dilation_rate > 1`",
            touches="Conv1D/2D/3D, DepthwiseConv1D/2D and SeparableConv1D/2D with some stride > 1 and some "
                    "dilation > 1 (the torch port computes them)",
            when={"torch": "==2.13.0"},
            applies=lambda case: not transposed(case) and max(case.geometry.strides) > 1
            and max(case.geometry.dilation) > 1,
            seen="nobuco 0.17.0, Keras 2.15.0 (engines/nobuco.txt); issue 21"),
        known(
            id="onnx2tf-legacy-softsign-add-refused", engine="onnx2tf-legacy", kind="refusal",
            summary="onnx2tf fails converting the legacy exporter's softsign after a Conv (Abs, then an Add of the "
                    "constant 1, then Div): its Add becomes the Python constant 1.0, which tf_keras refuses as a model "
                    "output (\"Output tensors of a Functional model must be the output of a TensorFlow `Layer` ... "
                    "Found: 1.0\"); softsign alone, and the dynamo exporter's graph, convert",
            repro="import torch, onnx2tf; torch.onnx.export(torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3), "
                  "torch.nn.Softsign()).eval(), (torch.ones(2, 2, 6, 6),), 'm.onnx', dynamo=False); "
                  "onnx2tf.convert('m.onnx', disable_model_save=True, non_verbose=True)   # ValueError: Output "
                  "tensors of a Functional model must be the output of a TensorFlow `Layer` ... Found: 1.0",
            touches="every layer with activation softsign (F.softsign or nn.Softsign: the same graph)",
            when={"torch": "==2.13.0"}, applies=lambda case: case.geometry.activation == "softsign",
            seen="onnx2tf 1.29.24, torch.onnx 2.13.0's TorchScript exporter, TensorFlow 2.19.0; issue 21"),
        known(
            id="nobuco-functional-relu6-refused", engine="nobuco", kind="refusal",
            summary="nobuco has no converter for F.relu6 (\"Unimplemented nodes\": relu6[torch.nn.functional]), "
                    "which the harness's torch port calls; nn.ReLU6 (F.hardtanh inside) converts, and is what the "
                    "nobuco engine's port uses unless a case gives it port_activation 'function'",
            repro="import torch, torch.nn.functional as F, nobuco; nobuco.pytorch_to_keras(type('M', "
                  "(torch.nn.Module,), {'forward': lambda self, x: F.relu6(x)})(), args=[torch.ones(1, 1, 2)])   "
                  "# Exception: Unimplemented nodes (relu6[torch.nn.functional])",
            touches="every layer with activation relu6 whose port applies F.relu6 (port_activation: function)",
            when={"torch": "==2.13.0"},
            applies=lambda case: case.geometry.activation == "relu6"
            and _port_option(case, "nobuco", "port_activation", "module") == "function",
            seen="nobuco 0.17.0, torch 2.13.0 (engines/nobuco.txt); issue 21"),
    )


__all__ = ["KERAS_GRAPH", "TRANSPOSED", "entries", "transposed"]
