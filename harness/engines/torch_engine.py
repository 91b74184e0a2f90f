"""PyTorch: the public torch port (real nn.Conv modules) built from the Keras weights and called."""
from __future__ import annotations

import sys
from typing import Any, ClassVar

import numpy as np

from ..errors import EngineSkip
from ..known import facts as env
from ..layers.geometry import refuse_impossible
from ..tensors.values import generate, numpy_dtype
from .base import Engine, EngineOption, EngineOutput, Request, SequenceOutput, SequenceRequest
from .stopwatch import third_party


class TorchThreads:
    """The thread traits of an engine that runs torch in this process (the torch engine, Keras on torch)."""

    @classmethod
    def thread_count(cls) -> Any:
        return torch_thread_count()

    @classmethod
    def set_threads(cls, count: Any) -> None:
        set_torch_threads(count)


class TorchEngine(TorchThreads, Engine):
    name = "torch"
    weight_layout = "torch"   # its weight_shapes are the port's state dict: (out, in/groups, *kernel)
    framework = "torch"
    computes_gradients = True
    computes_sequences = True   # one nn.Sequential of the port's modules, forward hooks catching every output
    options: ClassVar[dict[str, EngineOption]] = {
        # The hand-written block with a bias on both convs: a random depthwise bias and the pointwise bias that
        # makes the block equal to Keras (what folding undoes).
        "depthwise_bias": EngineOption(bool, "a bias on the depthwise conv too, compensated in the pointwise bias",
                                       port_variant="depthwise_bias"),
    }

    def __init__(self) -> None:
        import torch

        from .. import torch_port  # at call time: it imports torch (frameworks load lazily)

        self.torch, self.port = torch, torch_port

    def run(self, request: Request) -> EngineOutput:
        torch = self.torch
        layer, config, g, inputs, options = request.layer, request.config, request.geometry, request.inputs, \
            request.options
        dtype_name = request.dtype
        tdtype = getattr(torch, dtype_name)
        refuse_impossible("torch port", layer, g, inputs.x.shape)
        depthwise_bias = None
        gauge_extra = None
        problems = self.option_problems(options, g.kind)   # the schema checks this; direct callers may not
        if problems:
            raise ValueError(f"torch engine options {sorted(options)} do not apply to {layer}: "
                             + "; ".join(f"{o}: {m}" for o, m in problems))
        if options.get("depthwise_bias"):
            depthwise_bias = generate("normal", (g.in_channels * g.depth_multiplier,), 0, "depthwise_bias").astype(
                inputs.x.dtype)
        # In the case dtype, loaded as they are; with a depthwise bias in float64, so that the compensating
        # pointwise bias (b - W_p^T b_d) is computed in float64 and rounded once.
        weights = inputs.weights if depthwise_bias is None else \
            {k: v.astype(np.float64) for k, v in inputs.weights.items()}
        module = self.port.from_keras(layer, config, weights, in_channels=g.in_channels,
                                      depthwise_bias=depthwise_bias, dtype=tdtype)
        x = inputs.x.astype(np.float32) if dtype_name == "bfloat16" else inputs.x
        x_leaf = torch.from_numpy(np.ascontiguousarray(x)).to(tdtype)
        backward = request.grad_output is not None
        if backward:
            x_leaf.requires_grad_(True)
        xt = x_leaf if g.channels_first else x_leaf.movedim(-1, 1)   # torch modules are channels-first
        stages: dict[str, Any] = {}
        for stage in g.kind.family.stages:
            # A stage's output (the depthwise conv of a separable block: the port's submodule of that name), kept
            # so that a failing layer can say which stage went wrong.
            getattr(module, stage).register_forward_hook(lambda _m, _i, out, s=stage: stages.__setitem__(s, out))
        try:
            with torch.set_grad_enabled(backward), third_party():
                yt = module(xt)
                gradients = self._gradients(module, x_leaf, yt, request) if backward else None
        except RuntimeError as exc:
            if "not implemented" in str(exc):
                raise EngineSkip(f"PyTorch CPU has no kernel for this: {str(exc).splitlines()[0]}") from exc
            raise
        yt = yt.detach()
        if not g.channels_first:
            yt = yt.movedim(1, -1)
        y = yt.float().numpy().astype(numpy_dtype(dtype_name)) if dtype_name == "bfloat16" else yt.numpy()
        intermediate: dict[str, np.ndarray] = {}
        for stage, zt in stages.items():
            zt = zt if g.channels_first else zt.movedim(1, -1)
            zt = zt.detach()
            intermediate[stage] = np.ascontiguousarray(
                zt.float().numpy().astype(numpy_dtype(dtype_name)) if dtype_name == "bfloat16" else zt.numpy())
        if depthwise_bias is not None:   # this block's depthwise conv adds its own bias
            intermediate["depthwise_bias"] = depthwise_bias.astype(np.float64)
        state = module.state_dict()
        if depthwise_bias is not None:
            # |W_p| |b_d| + |b_p'| enter the block's sums; Keras weights alone do not show them.
            wp = np.abs(state["pointwise.weight"].double().numpy().reshape(g.filters, -1))
            extra = np.abs(depthwise_bias.astype(np.float64)) @ wp.T + np.abs(state["pointwise.bias"].double().numpy())
            gauge_extra = extra.reshape((1, -1) + (1,) * g.kind.rank) if g.channels_first else extra
        return EngineOutput(
            y=np.ascontiguousarray(y),
            params=int(sum(p.numel() for p in module.parameters())),
            weight_shapes={k: tuple(v.shape) for k, v in state.items()},
            gauge_extra=gauge_extra,
            # Its depthwise sums add b_d: one more rounding on that path than Keras's block.
            extra_roundings=1 if depthwise_bias is not None else 0,
            intermediate=intermediate,
            gradients=gradients,
            # What decides the kernel oneDNN runs (harness.known.conditions: torch_threads)
            facts={"torch_threads": str(torch.get_num_threads())},
        )

    def run_sequence(self, request: SequenceRequest) -> SequenceOutput:
        """One nn.Sequential of the torch port's modules (channels first inside), each in the sequence's dtype on
        the previous module's output; forward hooks catch every layer's output."""
        torch = self.torch
        tdtype = getattr(torch, request.dtype)
        model = torch.nn.Sequential(*[
            self.port.from_keras(step.layer, step.config, step.weights, in_channels=step.geometry.in_channels,
                                 dtype=tdtype)
            for step in request.steps])
        outs: list[Any] = []
        for module in model:
            module.register_forward_hook(lambda _m, _i, out: outs.append(out))
        x = request.x.astype(np.float32) if request.dtype == "bfloat16" else request.x
        xt = torch.from_numpy(np.ascontiguousarray(x)).to(tdtype).movedim(-1, 1)
        try:
            with torch.no_grad(), third_party():
                model(xt)
        except RuntimeError as exc:
            if "not implemented" in str(exc):
                raise EngineSkip(f"PyTorch CPU has no kernel for this: {str(exc).splitlines()[0]}") from exc
            raise
        return SequenceOutput(ys=[to_numpy(t.movedim(1, -1), request.dtype) for t in outs],
                              params=int(sum(p.numel() for p in model.parameters())))

    def _gradients(self, module: Any, x_leaf: Any, yt: Any, request: Request) -> dict[str, np.ndarray]:
        """Autograd's vector-Jacobian product with grad_output: dL/dx, and the port's parameter gradients
        converted back to Keras names and layouts with the family's torch_to_keras (the forward pass's converter:
        a converter bug shows here too). Only layouts are converted: a torch separable block's depthwise bias
        is not folded into the Keras bias (folding is exact for values, not for gradients: dL/db_p is Keras's
        dL/db, and dL/db_d = W_p dL/db is judged as a tensor of its own, "depthwise_bias")."""
        torch, g = self.torch, request.geometry
        dtype_name = request.dtype
        dy = request.grad_output
        assert dy is not None   # run() asks for gradients only where the request carries grad_output
        dy = dy.astype(np.float32) if dtype_name == "bfloat16" else dy
        dyt = torch.from_numpy(np.ascontiguousarray(dy)).to(yt.dtype)
        if not g.channels_first:
            dyt = dyt.movedim(-1, 1)
        params = dict(module.named_parameters())
        grads = torch.autograd.grad(yt, [x_leaf, *params.values()], grad_outputs=dyt)

        def numpy(t: Any) -> np.ndarray:
            t = t.detach()
            return np.ascontiguousarray(t.float().numpy().astype(numpy_dtype(dtype_name))
                                        if dtype_name == "bfloat16" else t.numpy())

        state = {name: numpy(t) for name, t in zip(params, grads[1:])}
        extra = {}
        if "depthwise.bias" in state:
            extra["depthwise_bias"] = state.pop("depthwise.bias")
        out = g.kind.family.torch_to_keras(g.kind, state, "torch gradients", in_channels=g.in_channels,
                                           depth_multiplier=g.depth_multiplier)
        return {"x": numpy(grads[0]), **out, **extra}

    @classmethod
    def environment(cls) -> dict[str, dict[str, Any]]:
        """Version from metadata; runtime state (threads, CPU capability, TF32 switches) where torch is loaded."""
        info: dict[str, Any] = {"version": env.version("torch"), "loaded": False}
        torch = sys.modules.get("torch")
        if torch is None or not hasattr(torch, "get_num_threads"):
            return {"torch": info}
        attempt = env.attempt
        info.update(loaded=True, version=torch.__version__, threads=attempt(torch.get_num_threads),
                    interop_threads=attempt(torch.get_num_interop_threads),
                    cpu_capability=attempt(torch.backends.cpu.get_cpu_capability),
                    mkldnn_available=attempt(torch.backends.mkldnn.is_available),
                    cuda_available=attempt(torch.cuda.is_available))
        if info["cuda_available"]:
            info["gpus"] = attempt(lambda: [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())])
        info.update(matmul_allow_tf32=attempt(lambda: bool(torch.backends.cuda.matmul.allow_tf32)),
                    cudnn_allow_tf32=attempt(lambda: bool(torch.backends.cudnn.allow_tf32)),
                    float32_matmul_precision=attempt(torch.get_float32_matmul_precision))
        return {"torch": info}


def to_numpy(t: Any, dtype: str) -> np.ndarray:
    """A torch tensor as a contiguous NumPy array of ``dtype`` (bfloat16 through float32: exact)."""
    t = t.detach()
    return np.ascontiguousarray(t.float().numpy().astype(numpy_dtype(dtype)) if dtype == "bfloat16" else t.numpy())


def torch_thread_count() -> int | None:
    """torch's intra-op threads in this process, or None where torch is not loaded (for every torch-run engine)."""
    torch = sys.modules.get("torch")
    return torch.get_num_threads() if torch is not None and hasattr(torch, "get_num_threads") else None


def set_torch_threads(count: Any) -> None:
    """Set torch's intra-op threads (0 or None: torch's default)."""
    if count:
        import torch

        torch.set_num_threads(int(count))
