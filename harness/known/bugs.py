"""The known framework behaviour itself (bugs and refusals), each with the condition under which it holds: data.

A fact about a framework is a fact about a version on a kernel path on a CPU. Each entry states that condition
in the condition language (harness/known/conditions.py) and the configurations it touches; cases, the fuzzer, the
diagnosis and the README refer to entries by id instead of repeating them. Conditions name the versions where
the behaviour was observed: widen them when it is seen elsewhere.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ..layers.families import FAMILIES
from ..layers.geometry import ConfigProblem, Geometry, output_shape
from . import bugs_converters
from .bugs_converters import TRANSPOSED, transposed


class Case(Protocol):
    """What the registry reads of a case (harness.cases.schema.Case has it): the known bugs sit below the schema,
    which parses a case's xfail and rejected_by into this module's Expectations."""
    layer: str
    dtype: str
    @property
    def geometry(self) -> Geometry: ...   # read-only: the schema's Case derives it
    input_shape: tuple[int, ...]
    impossible: str
    check: tuple[str, ...]


# What a bug may move, as messages name it: the forward output, one gradient (dx, each kernel's, dbias), or every
# gradient. A case's xfail explains a failure only where the failing tensor is among these (Known.moves).
OUTPUT, GRADIENTS = "output", "gradients"
TENSORS: tuple[str, ...] = (OUTPUT, GRADIENTS, "dx", *sorted({f"d{n}" for f in FAMILIES.values()
                                                             for n in f.kernel_names}), "dbias")


@dataclass(frozen=True)
class Known:
    """One known behaviour of one engine."""

    id: str                                   # what cases write: xfail: {keras: ID}
    engine: str                               # the engine that shows it
    kind: str                                 # "bug" (wrong values: xfail) | "refusal" (rejected_by)
    summary: str                              # one line
    repro: str                                # minimal, upstream-ready, without the harness
    touches: str                              # the layers and arguments it concerns, in words
    when: Mapping[str, Any]                   # where it holds (versions, detected facts)
    applies: Callable[[Case], bool]           # whether a configuration triggers it (given `when`)
    mutant: str | None = None                 # the mutant that reproduces its output, for diagnosis
    seen: str = ""                            # where it was observed
    tensors: tuple[str, ...] = ()             # a bug: what it moves (TENSORS); any other failure is not it
    # A bug of the pre-activation (the convolution or its bias): through a non-linear activation the derivative is
    # taken at the wrong point, so every gradient moves too.
    pre_activation: bool = False

    def __post_init__(self) -> None:
        # A configuration the families cannot size (a pinned refusal: groups 0) has no output for a bug to touch;
        # a registry predicate that asks for its shape answers False instead of raising.
        predicate = self.applies

        def applies(case: Case) -> bool:
            try:
                return predicate(case)
            except ConfigProblem:
                return False

        object.__setattr__(self, "applies", applies)

    def moves(self, case: Case, tensor: str) -> bool:
        """Whether this bug moves ``tensor`` ("output", "dx", "dkernel", "dbias", ...) of ``case``."""
        if tensor in self.tensors:
            return True
        if tensor == OUTPUT:
            return False
        return GRADIENTS in self.tensors or (self.pre_activation and case.geometry.activation != "linear")

    def tensors_text(self) -> str:
        """What it moves, in words (the README and the message of a failure it does not explain)."""
        moved = ", ".join("every gradient" if t == GRADIENTS else t for t in self.tensors) or "nothing"
        return moved + ("; through a non-linear activation, every gradient" if self.pre_activation else "")


def _unequal_strides(case: Case) -> bool:
    return case.layer in ("DepthwiseConv2D", "SeparableConv2D") and len(set(case.geometry.strides)) > 1


def _bias_on_last_axis(case: Case) -> bool:
    g = case.geometry
    return g.channels_first and g.use_bias and output_shape(g, case.input_shape)[-1] == g.out_channels


def _spatial_width(case: Case) -> int:
    shape = output_shape(case.geometry, case.input_shape)
    return shape[-2] if not case.geometry.channels_first else shape[-1]


def _spatial_height(case: Case) -> int:
    """The output's first spatial length (rows of a 2-D output)."""
    shape = output_shape(case.geometry, case.input_shape)
    return shape[2] if case.geometry.channels_first else shape[1]


def _transpose_same_size_mismatch(case: Case) -> bool:
    """A 'same' transposed conv with an output_padding that makes TensorFlow's conv of the output back to the input
    one position short on some axis: (ek % 2) + output_padding == 0, i.e. an even dilated kernel and padding 0."""
    g = case.geometry
    paddings = g.arg("output_padding")
    return (transposed(case) and g.padding == "same" and paddings is not None
            and any(((k - 1) * d + 1) % 2 + op == 0 for k, d, op in zip(g.kernel_size, g.dilation, paddings)))


def _transpose_crop_below_minus_one(case: Case) -> bool:
    """A 'same' transposed conv whose output is 2 or more positions longer than the full scatter on some axis:
    TensorFlow's gradient is then a 'same' conv with a pad total of -2 or less (tf-conv3d-same-negative-...)."""
    g = case.geometry
    return transposed(case) and g.padding == "same" and any(a <= -2 for _, a in g.pad_widths(()))


def _same_pad_below_minus_one(case: Case) -> bool:
    """Some spatial axis of a 'same' layer where TensorFlow's pad total (ceil(n/s) - 1) s + ek - n is -2 or less:
    where a negative total must be clamped at 0."""
    g = case.geometry
    if g.padding != "same":
        return False
    spatial = case.input_shape[2:] if g.channels_first else case.input_shape[1:-1]
    return any((-(-n // s) - 1) * s + (k - 1) * d + 1 - n <= -2
               for n, k, s, d in zip(spatial, g.kernel_size, g.strides, g.dilation))


REGISTRY: dict[str, Known] = {k.id: k for k in (
    Known(
        id="keras-bias-add-guessed-nhwc", engine="keras", kind="bug",
        summary="keras.ops.add on the TensorFlow backend turns a bias-shaped add into tf.nn.bias_add with a "
                "data_format guessed from the shapes (NHWC when the last axis is as long as the bias): a "
                "channels_first layer whose output's last axis is as long as its channel count gets its bias "
                "added along that axis",
        repro="import numpy as np, keras; keras.ops.add(np.zeros((1, 3, 2, 3)), "
              "np.arange(3.).reshape(1, 3, 1, 1))[0, 0]   # [[0, 1, 2], [0, 1, 2]], should be zeros",
        touches="every layer with a bias that runs channels_first: DepthwiseConv1D/2D and SeparableConv1D/2D "
                "always, Conv1D/Conv2D where TensorFlow runs them in NCHW (oneDNN on) or through XLA (groups > 1), "
                "Conv3D always (Keras runs channels_first Conv3D through XLA on both paths), Conv1D/2D/3DTranspose "
                "where TensorFlow runs them in NCHW (oneDNN on); only when the output's last axis is as long as the "
                "bias",
        when={"keras": "==3.15.1", "keras_backend": "tensorflow", "keras_layer_format": "channels_first"},
        applies=_bias_on_last_axis, mutant="bias_add_format_guessed",
        seen="Keras 3.15.1, TensorFlow 2.21.0, both CPU kernel paths; not on the jax or torch backends",
        tensors=(OUTPUT, "dbias"), pre_activation=True),
    Known(
        id="tf-eigen-nchw-conv-refused", engine="keras", kind="refusal",
        summary="TensorFlow's Eigen CPU kernels refuse NCHW convolutions (\"Conv2D only supports the NHWC tensor "
                "format on the CPU\"); the keras engine then runs the layer channels_last with transposes around "
                "it, as a user on CPU must, and says so in the result's notes",
        repro="TF_ENABLE_ONEDNN_OPTS=0 python -c \"import tensorflow as tf; tf.nn.conv2d(tf.zeros((1, 2, 5, 5)), "
              "tf.zeros((3, 3, 2, 1)), 1, 'VALID', data_format='NCHW')\"",
        touches="Conv1D/Conv2D with data_format channels_first and groups 1 (grouped convs go through XLA)",
        when={"tensorflow": "==2.21.0", "onednn": False},
        applies=lambda case: case.layer in ("Conv1D", "Conv2D") and case.geometry.channels_first
        and case.geometry.groups == 1,
        seen="TensorFlow 2.21.0 with oneDNN off; with oneDNN on TensorFlow runs NCHW natively"),
    Known(
        id="tf-eigen-depthwise-unequal-strides-refused", engine="keras", kind="refusal",
        summary="TensorFlow's Eigen depthwise kernel refuses unequal strides (\"Current implementation only "
                "supports equal length strides in the row and column dimensions\")",
        repro="TF_ENABLE_ONEDNN_OPTS=0 python -c \"import tensorflow as tf; tf.nn.depthwise_conv2d("
              "tf.zeros((1, 6, 6, 1)), tf.zeros((2, 2, 1, 1)), [1, 1, 2, 1], 'VALID')\"",
        touches="DepthwiseConv2D and SeparableConv2D with strides[0] != strides[1]",
        # oneDNN has no float64 depthwise kernel: float64 falls back to Eigen and is refused on both paths.
        when={"tensorflow": "==2.21.0", "any": [{"onednn": False}, {"dtype": "float64"}]},
        applies=_unequal_strides,
        seen="TensorFlow 2.21.0 with oneDNN off, and in float64 with it on; with oneDNN on it accepts float16, "
             "bfloat16 and float32 (see tf-onednn-depthwise-unequal-strides-wrong)"),
    Known(
        id="tf-onednn-depthwise-unequal-strides-wrong", engine="keras", kind="bug",
        summary="TensorFlow's oneDNN depthwise kernel computes wrong values, some read from uninitialised memory "
                "(they change from run to run), for one input channel, depth_multiplier >= 2, a column stride "
                "larger than the row stride and an output one column wide",
        repro="python -c \"import numpy as np, tensorflow as tf; print(tf.nn.depthwise_conv2d(np.arange(18, "
              "dtype=np.float32).reshape(1, 6, 3, 1), np.ones((2, 2, 1, 2), np.float32), [1, 1, 3, 1], "
              "'VALID')[0, :, 0, 0])\"   # 8 32 <garbage> 44 31, should be 8 20 32 44 56",
        touches="DepthwiseConv2D and SeparableConv2D: in_channels 1, depth_multiplier >= 2, strides (1, s) with "
                "s >= 2 (s > row stride), output width 1; C = 2, multiplier 1 or a wider output were right",
        when={"tensorflow": "==2.21.0", "onednn": True},
        applies=lambda case: (_unequal_strides(case) and case.geometry.in_channels == 1
                              and case.geometry.depth_multiplier >= 2
                              and case.geometry.strides[0] < case.geometry.strides[1]
                              and _spatial_width(case) == 1),
        seen="TensorFlow 2.21.0 with oneDNN on (Intel Xeon with AMX and AVX512_BF16; AMD EPYC with AVX512_BF16); "
             "found by make fuzz",
        tensors=(OUTPUT,), pre_activation=True),
    Known(
        id="tf-conv3d-same-negative-padding-not-clamped", engine="keras", kind="bug",
        summary="TensorFlow's Conv3D does not clamp a negative 'same' pad total at zero: where (ceil(n/s) - 1) s + "
                "ek - n <= -2 on an axis, the window starts late (in float64 always; in float32 with oneDNN off; "
                "float32 with oneDNN on is right, as is Conv2D)",
        repro="python -c \"import numpy as np, tensorflow as tf; print(tf.nn.conv3d(np.arange(3.).reshape(1, 3, 1, "
              "1, 1), np.ones((1, 1, 1, 1, 1)), [1, 3, 1, 1, 1], 'SAME').numpy().ravel())\"   # [1.], should be [0.]",
        touches="Conv3D with padding 'same' and an axis where the pad total is -2 or less (stride larger than the "
                "kernel's reach past the input's end)",
        when={"tensorflow": "==2.21.0", "any": [{"onednn": False}, {"dtype": "float64"}]},
        applies=lambda case: case.layer == "Conv3D" and _same_pad_below_minus_one(case),
        seen="TensorFlow 2.21.0, both kernel paths (probed in float32 and float64); issue 20's note",
        tensors=(OUTPUT,), pre_activation=True),
    Known(
        id="tf-conv3d-transpose-same-negative-padding-dx-wrong", engine="keras", kind="bug",
        summary="TensorFlow's Conv3DTranspose input gradient is a Conv3D of dy with 'SAME' padding, and inherits its "
                "unclamped negative pad (tf-conv3d-same-negative-padding-not-clamped): where the output is 2 or more "
                "positions longer than the scatter (a kernel reaching 2 or more short of the stride), dx reads dy "
                "from the wrong positions; the forward is right",
        repro="import numpy as np, tensorflow as tf; x = tf.Variable(np.ones((1, 1, 1, 1, 1)))\n"
              "with tf.GradientTape() as t: y = tf.nn.conv3d_transpose(x, np.ones((1, 1, 1, 1, 1)), [1, 3, 1, 1, 1], "
              "[1, 3, 1, 1, 1], 'SAME'); loss = tf.reduce_sum(y * np.arange(1., 4.).reshape(1, 3, 1, 1, 1))\n"
              "print(t.gradient(loss, x).numpy().ravel())   # [2.], should be [1.] (y = [1, 0, 0])",
        touches="Conv3DTranspose with padding 'same' and an axis where the output is 2 or more positions longer than "
                "the full scatter (stride at least the dilated kernel + 2, or a large output_padding)",
        when={"tensorflow": "==2.21.0", "any": [{"onednn": False}, {"dtype": "float64"}]},
        applies=lambda case: case.layer == "Conv3DTranspose" and _transpose_crop_below_minus_one(case),
        seen="TensorFlow 2.21.0, both kernel paths (float32 right with oneDNN on, as for Conv3D); issue 20",
        tensors=("dx",)),
    Known(
        id="tf-conv-transpose-dilation-refused-without-onednn", engine="keras", kind="refusal",
        summary="TensorFlow's Eigen CPU kernels refuse a transposed conv with dilation_rate > 1 (\"Current CPU "
                "implementations do not yet support dilation rates larger than 1\", at call); oneDNN's run it, right, "
                "except in float64 (which they leave to Eigen)",
        repro="TF_ENABLE_ONEDNN_OPTS=0 python -c \"import numpy as np, tensorflow as tf; tf.nn.conv2d_transpose("
              "np.ones((1, 4, 4, 1)), np.ones((3, 3, 1, 1)), [1, 4, 4, 1], 1, 'SAME', dilations=2)\"",
        touches="Conv1DTranspose, Conv2DTranspose and Conv3DTranspose with any dilation > 1 (at stride 1: Keras "
                "refuses strides > 1 with it)",
        # oneDNN has no float64 transposed conv: float64 falls back to Eigen and is refused on both paths.
        when={"tensorflow": "==2.21.0", "any": [{"onednn": False}, {"dtype": "float64"}]},
        applies=lambda case: transposed(case) and max(case.geometry.dilation) > 1,
        seen="TensorFlow 2.21.0 with oneDNN off, and in float64 with it on; issue 20"),
    Known(
        id="tf-conv-transpose-same-output-size-refused", engine="keras", kind="refusal",
        summary="Keras accepts a 'same' transposed conv whose output_padding is 0 with an even kernel, and "
                "TensorFlow refuses it at call (\"Size of out_backprop doesn't match computed\"; oneDNN: \"could not "
                "create a primitive descriptor\"): Keras's output length is one short of what TensorFlow's 'SAME' "
                "conv maps back onto the input",
        repro="python -c \"import numpy as np, keras; keras.layers.Conv2DTranspose(1, 2, strides=2, "
              "padding='same', output_padding=0)(np.ones((1, 3, 3, 1)))\"",
        touches="Conv1DTranspose, Conv2DTranspose and Conv3DTranspose with padding 'same' and an axis where the "
                "dilated kernel is even and output_padding is 0",
        when={"keras": "==3.15.1", "keras_backend": "tensorflow"},
        applies=_transpose_same_size_mismatch,
        seen="Keras 3.15.1, TensorFlow 2.21.0, both kernel paths; LiteRT 2.3.0's TRANSPOSE_CONV refuses the TFLite "
             "model the same way (\"computed_input_height != SizeOfDimension(input, 1)\", failed to prepare), "
             "inherited; issue 20"),
    Known(
        id="tf-onednn-conv2d-column-stride-past-width-wrong", engine="keras", kind="bug",
        summary="TensorFlow's oneDNN Conv2D computes wrong values (sometimes changing from run to run) for one "
                "input channel, a batch of two or more, row stride 1, a column stride one past the input's width and "
                "an output one column wide and at least two rows high",
        repro="python -c \"import numpy as np, tensorflow as tf; x = np.arange(12, dtype=np.float32).reshape(2, 3, "
              "2, 1) - 5; w = np.array([1., -2., 3., .5], np.float32).reshape(2, 2, 1, 1); print(tf.nn.conv2d(x, w, "
              "[1, 1, 3, 1], 'VALID').numpy().ravel())\"   # -7 -1 8 -7, should be -7 -2 8 13; oneDNN off is right",
        touches="Conv2D with in_channels 1, batch >= 2, strides (1, s), s >= 2, kernel width >= 2, output width 1 and "
                "height >= 2 (probed in float32: s = W + 1 was wrong for W = 2 and 3; s = W + 2, batch 1, "
                "2 input channels, kernel width 1 or output height 1 were right)",
        when={"tensorflow": "==2.21.0", "onednn": True},
        applies=lambda case: (case.layer == "Conv2D" and case.geometry.in_channels == 1 and case.input_shape[0] >= 2
                              and case.geometry.strides[0] == 1 < case.geometry.strides[1]
                              and case.geometry.kernel_size[1] >= 2
                              and _spatial_width(case) == 1 and _spatial_height(case) >= 2),
        seen="TensorFlow 2.21.0 with oneDNN on (AMD EPYC with AVX512_BF16); found by make fuzz N=20000",
        tensors=(OUTPUT,), pre_activation=True),
    Known(
        id="torch-bf16-strided-dilated-conv2d-wrong", engine="torch", kind="bug",
        summary="PyTorch's CPU bfloat16 conv2d computes wrong values, some read from uninitialised memory (they "
                "change from process to process), for a column stride > 1 with row stride 1, a dilation > 1 and an "
                "output one column wide and at least 5 rows high",
        repro="python -c \"import torch, torch.nn.functional as F; x = torch.arange(45.).reshape(1, 1, 9, 5); "
              "print(F.conv2d(x.bfloat16(), torch.ones(1, 1, 3, 3).bfloat16(), stride=(1, 2), dilation=2).flatten())"
              "\"   # 108 183 142 243 226, should be 108 153 198 243 288; float32 is right",
        touches="Conv2D in bfloat16 (the torch port: Keras itself refuses strides with dilation), groups 1, strides "
                "(1, s) with s >= 2, dilation > 1, output width 1 and height >= 5; a grouped conv, float16/float32, "
                "output width 2, height 4 or less, or strides (s, 1) were right. A Conv3D with stride 2 and output "
                "width 1 goes wrong the same way in bfloat16 (not shipped: the harness has no Conv3D)",
        # oneDNN's AMX kernel: with ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16 (or narrower) the same call is right.
        when={"torch": "==2.13.0", "dtype": "bfloat16", "cpu_has": ["amx_bf16"]},
        applies=lambda case: (case.layer == "Conv2D" and case.geometry.groups == 1
                              and case.geometry.strides[0] == 1 < case.geometry.strides[1]
                              and max(case.geometry.dilation) > 1 and _spatial_width(case) == 1
                              and _spatial_height(case) >= 5),
        seen="PyTorch 2.13.0+cpu on an Intel Xeon with AMX, 1 and 2 threads (oneDNN's AMX kernel: right with "
             "torch.backends.mkldnn disabled, or ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16, AVX512_CORE or AVX2); found "
             "by make fuzz (classified nondeterministic: the garbage differs between processes)",
        tensors=(OUTPUT,), pre_activation=True),
    Known(
        id="torch-bf16-conv3d-stride2-one-thread-wrong", engine="torch", kind="bug",
        summary="PyTorch's CPU bfloat16 conv3d (oneDNN's AMX kernel) run on ONE thread, at stride 2 with an output one "
                "column wide, returns wrong values (in fresh processes also NaN, or values that change run to run); "
                "two threads, float16/float32 or mkldnn off are right",
        repro="python -c \"import torch; torch.set_num_threads(1); x = torch.arange(48.).reshape(1, 1, 4, 6, 2); "
              "print(torch.nn.functional.conv3d(x.bfloat16(), torch.ones(1, 1, 2, 2, 2).bfloat16(), stride=2)"
              ".flatten())\"   # 60 124 70 252 316 166, should be 60 92 124 252 284 316",
        touches="Conv3D in bfloat16 through the torch port, a stride of 2 and an output width of 1, with torch on one "
                "thread (as in pytest-xdist workers and the fuzzer)",
        when={"torch": "==2.13.0", "dtype": "bfloat16", "cpu_has": ["amx_bf16"], "torch_threads": "1"},
        applies=lambda case: (case.layer == "Conv3D" and 2 in case.geometry.strides and _spatial_width(case) == 1),
        seen="PyTorch 2.13.0+cpu on an Intel Xeon with AMX (issue 8's fuzz run of Conv3D, the repro above); right on "
             "an AMD EPYC with AVX512_BF16 and no AMX, on 1 and 2 threads (issue 20)",
        tensors=(OUTPUT,), pre_activation=True),
    Known(
        id="keras-float64-leaky-relu-float32-slope", engine="keras", kind="bug",
        summary="Keras's leaky_relu multiplies by its default negative_slope 0.2 as a float32 constant "
                "(0.20000000298023224) in a float64 layer: negative outputs off by 1.5e-8 relative (1.3e8 u)",
        repro="python -c \"import numpy as np, keras; print(repr(float(keras.activations.leaky_relu("
              "np.array([-3.0]))[0])))\"   # -0.6000000089406967, should be -0.6000000000000001",
        touches="float64 layers with activation leaky_relu, where a pre-activation is negative",
        when={"keras": "==3.15.1", "dtype": "float64"},
        applies=lambda case: case.geometry.activation == "leaky_relu",
        seen="Keras 3.15.1, TensorFlow backend; found measuring the activations' ulps",
        tensors=(OUTPUT, GRADIENTS)),
    Known(
        id="keras-float64-gelu-float32-constant", engine="keras", kind="bug",
        summary="Keras's exact gelu reads 1/sqrt(2) as a float32 constant in a float64 layer: outputs and gradients "
                "off by about 4e-9 absolute",
        repro="python -c \"import math, numpy as np, keras; print(float(keras.activations.gelu(np.array([-1.0]), "
              "approximate=False)[0]) + 0.5 * (1 + math.erf(-1 / math.sqrt(2))))\"   # -4.1e-09, should be ~1e-17",
        touches="float64 layers with activation gelu",
        when={"keras": "==3.15.1", "dtype": "float64"},
        applies=lambda case: case.geometry.activation == "gelu",
        seen="Keras 3.15.1, TensorFlow backend; found measuring the activations' ulps",
        tensors=(OUTPUT, GRADIENTS)),
    Known(
        id="torch-float64-hardsigmoid-grad-float32-constant", engine="torch", kind="bug",
        summary="PyTorch's float64 hardsigmoid backward multiplies by 1/6 as a float32 constant: the gradient "
                "inside (-3, 3) is 0.16666667163372040, off by 5e-9 (its forward and hardswish's backward are right)",
        repro="python -c \"import torch; t = torch.tensor([1.0], dtype=torch.float64, requires_grad=True); "
              "torch.nn.functional.hardsigmoid(t).backward(); print(repr(t.grad.item()))\"   # 0.1666666716337204",
        touches="float64 layers with activation hard_sigmoid, backward check",
        when={"torch": "==2.13.0", "dtype": "float64"},
        applies=lambda case: case.geometry.activation == "hard_sigmoid" and "backward" in case.check,
        seen="PyTorch 2.13.0+cpu; found measuring the activations' derivatives",
        tensors=(GRADIENTS,)),
    Known(
        id="tf-selu-gradient-from-rounded-output", engine="keras", kind="bug",
        summary="TensorFlow's selu gradient for negative inputs is computed from the layer's rounded output as "
                "(y + scale*alpha) instead of scale*alpha*exp(z): the sum cancels, so in float16 the derivative "
                "at z = -7 is 0.001953 instead of 0.001603 (22% off; 1% at z = -5), and dx moves with it",
        repro="python -c \"import tensorflow as tf; x = tf.constant([-7.0], tf.float16); "
              "t = tf.GradientTape(); t.__enter__(); t.watch(x); y = tf.nn.selu(x); t.__exit__(None, None, None); "
              "print(t.gradient(y, x).numpy())\"   # [0.001953], exact 0.0016032",
        touches="layers with activation selu in float16 or bfloat16, backward check, where a pre-activation is "
                "well below 0",
        when={"tensorflow": "==2.21.0"},
        applies=lambda case: case.geometry.activation == "selu" and "backward" in case.check
        and case.dtype in ("float16", "bfloat16"),
        seen="TensorFlow 2.21.0 on both CPU kernel paths; found by make fuzz (Conv3D, float16, groups 4); the same "
             "in Conv1D and Conv2D",
        tensors=(GRADIENTS,)),
    Known(
        id="keras-conv-strides-with-dilation-refused", engine="keras", kind="refusal",
        summary="Keras refuses strides > 1 together with dilation_rate > 1 in Conv1D/2D/3D and Conv1D/2D/3DTranspose "
                "(ValueError at construction)",
        repro="python -c \"import keras; keras.layers.Conv2D(2, 3, strides=2, dilation_rate=2)\"",
        touches="the conv and transposed conv families (Conv1D ... Conv3DTranspose) with any stride > 1 and any "
                "dilation > 1",
        when={"keras": "==3.15.1"},
        applies=lambda case: case.layer in ("Conv1D", "Conv2D", "Conv3D", *TRANSPOSED)
        and max(case.geometry.strides) > 1 and max(case.geometry.dilation) > 1,
        seen="Keras 3.15.1 (the depthwise and separable layers accept it)"),
    Known(
        id="keras-argument-checks-refused", engine="keras", kind="refusal",
        summary="Keras refuses configurations that cannot run, with a ValueError naming the argument: a zero "
                "filters, depth_multiplier, kernel_size, strides or dilation_rate; filters or input channels not "
                "divisible by groups; a kernel that does not fit the input (\"Computed output size would be zero "
                "or negative\")",
        repro="python -c \"import keras; keras.layers.Conv2D(0, 3)\"   # ValueError: Invalid value for argument "
              "`filters`. Expected a strictly positive value",
        touches="every layer, with a configuration the harness itself deems impossible "
                "(harness.layers.geometry.impossible)",
        when={"keras": "==3.15.1"},
        applies=lambda case: bool(case.impossible),
        seen="Keras 3.15.1; its own tests pin the same refusals"),
    Known(
        id="keras-causal-depthwise-refused", engine="keras", kind="refusal",
        summary="Keras refuses padding 'causal' in DepthwiseConv1D and SeparableConv1D (ValueError at "
                "construction; tf.keras 2 accepted it for SeparableConv1D)",
        repro="python -c \"import keras; keras.layers.DepthwiseConv1D(3, padding='causal')\"",
        touches="DepthwiseConv1D and SeparableConv1D with padding causal",
        when={"keras": "==3.15.1"},
        applies=lambda case: case.layer in ("DepthwiseConv1D", "SeparableConv1D")
        and case.geometry.padding == "causal",
        seen="Keras 3.15.1"),
    *bugs_converters.entries(Known),   # the converter engines' (tf2onnx, onnx2torch, OpenVINO, nobuco, onnx2tf)
)}
