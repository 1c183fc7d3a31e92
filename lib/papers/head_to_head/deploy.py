"""Deployable forms of a compressed network: what a CPU actually runs.

A mask or a fake quantizer changes the numbers in a weight tensor, not the work a CPU does.
Each compressed model is turned into the forms that could make it faster:

* **dense**: the baked ``nn.Sequential`` (zeros multiplied like any weight);
* **extracted**: channel-pruned layers physically removed (``lib.sparse.extract``);
* **csr**: every conv and linear layer through ``torch.sparse`` CSR kernels (a conv as
  im2col, ``torch.nn.functional.unfold``, times the CSR weight matrix);
* **onnx**: the float32 network in ONNX Runtime (the same runtime as int8, so the two
  compare kernels, not frameworks);
* **int8**: ONNX Runtime's statically quantized operators (QDQ, per-channel weights,
  activations calibrated on training images), exported with ``torch.onnx.export``.

``latencies`` times them all in one interleaved run (``lib.energy.measure_interleaved``,
``torch.utils.benchmark`` with a fixed thread count).
"""

from __future__ import annotations

import copy
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import parametrize

from lib.energy.measure import measure_interleaved
from lib.sparse.extract import extract_channel_pruned


def _csr(matrix: torch.Tensor) -> torch.Tensor:
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter("ignore", UserWarning)
        return matrix.to_sparse_csr()


class CSRLinear(nn.Module):
    """``y = x W^T + b`` with ``W`` stored as a CSR tensor."""

    def __init__(self, layer: nn.Linear):
        super().__init__()
        self.register_buffer("weight_csr", _csr(layer.weight.detach()))
        self.register_buffer("bias", None if layer.bias is None else layer.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = (self.weight_csr @ x.T).T  # (out, in) CSR x (in, batch)
        return y if self.bias is None else y + self.bias


class CSRConv2d(nn.Module):
    """A convolution (groups 1) as ``unfold`` (im2col) times the CSR weight matrix."""

    def __init__(self, layer: nn.Conv2d):
        super().__init__()
        if layer.groups != 1 or layer.padding_mode != "zeros":
            raise ValueError(f"CSRConv2d supports groups=1 and zero padding, got {layer}")
        w = layer.weight.detach()
        self.out_channels, self.kernel_size = w.shape[0], layer.kernel_size
        self.stride, self.padding, self.dilation = layer.stride, layer.padding, layer.dilation
        self.register_buffer("weight_csr", _csr(w.reshape(w.shape[0], -1)))
        self.register_buffer("bias", None if layer.bias is None else layer.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        cols = F.unfold(x, self.kernel_size, self.dilation, self.padding, self.stride)
        kh, kw = self.kernel_size
        out_h = (h + 2 * self.padding[0] - self.dilation[0] * (kh - 1) - 1) // self.stride[0] + 1
        out_w = (w + 2 * self.padding[1] - self.dilation[1] * (kw - 1) - 1) // self.stride[1] + 1
        # (out, K) CSR x (K, n L): one sparse product for the whole batch
        flat = cols.transpose(0, 1).reshape(cols.shape[1], -1)
        y = (self.weight_csr @ flat).reshape(self.out_channels, n, out_h * out_w)
        y = y.transpose(0, 1).reshape(n, self.out_channels, out_h, out_w)
        return y if self.bias is None else y + self.bias.view(1, -1, 1, 1)


def dense_form(model: nn.Module) -> nn.Module:
    """An eval-mode deep copy of a baked model (plain float32 weights). A parametrized
    model must be baked first (``lib.sparse.bake``): deep copies of parametrized modules
    lose their weights."""
    if any(parametrize.is_parametrized(m) for m in model.modules()):
        raise ValueError("bake the model first (lib.sparse.bake): it carries parametrizations")
    return copy.deepcopy(model).eval()


def csr_form(model: nn.Module) -> nn.Module:
    """``model`` (baked) with every conv/linear layer replaced by its CSR counterpart."""
    out = dense_form(model)
    for parent in list(out.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Linear):
                setattr(parent, name, CSRLinear(child))
            elif isinstance(child, nn.Conv2d):
                setattr(parent, name, CSRConv2d(child))
    return out.eval()


def extracted_form(model: nn.Module, example_input: torch.Tensor) -> nn.Sequential:
    """The physically smaller dense network without the all-zero channels."""
    return extract_channel_pruned(dense_form(model), example_input).eval()


class OrtModule(nn.Module):
    """An ONNX Runtime session behind an ``nn.Module`` call (for the shared timer).

    One intra-op thread and sequential execution: the session runs on the calling thread,
    so the CPU-time clock of ``measure_interleaved`` sees its work."""

    def __init__(self, onnx_bytes: bytes, threads: int = 1):
        super().__init__()
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.session = ort.InferenceSession(onnx_bytes, opts, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.onnx_bytes = len(onnx_bytes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {self.input_name: x.detach().cpu().numpy()})[0]
        return torch.from_numpy(out)


def export_onnx(model: nn.Module, example_input: torch.Tensor) -> bytes:
    """``torch.onnx.export`` of the baked model (the TorchScript exporter: the default
    ``dynamo=True`` one needs onnxscript, which this book does not install), batch dynamic."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(dense_form(model), (example_input,), str(path), dynamo=False,
                              input_names=["x"], output_names=["logits"], opset_version=17,
                              dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}})
        return path.read_bytes()


def onnx_form(model: nn.Module, example_input: torch.Tensor, threads: int = 1) -> OrtModule:
    """The float32 ONNX Runtime session of ``model``: int8's reference in the same runtime."""
    return OrtModule(export_onnx(model, example_input[:1]), threads)


def int8_form(model: nn.Module, calibration: torch.Tensor, threads: int = 1) -> OrtModule:
    """ONNX Runtime static int8 quantization (QDQ, per-channel int8 weights, uint8
    activations calibrated by min-max on ``calibration``) of ``model``'s baked form."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter([{"x": calibration[i:i + 32].numpy()}
                               for i in range(0, len(calibration), 32)])

        def get_next(self):
            return next(self.items, None)

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(export_onnx(model, calibration[:1]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ,
                            per_channel=True, weight_type=QuantType.QInt8,
                            activation_type=QuantType.QUInt8)
        return OrtModule(dst.read_bytes(), threads)


@torch.no_grad()
def max_abs_difference(a: nn.Module, b: nn.Module, x: torch.Tensor) -> float:
    """Largest absolute output difference of two forms on ``x``."""
    return float((a(x) - b(x)).abs().max())


def latencies(forms: dict[str, nn.Module], x: torch.Tensor, *, rounds: int = 7,
              number: int = 20, warmup: int = 5, seed: int = 0) -> dict[str, dict]:
    """Median and IQR (seconds per call on the batch ``x``) of every form, all interleaved
    in one run, one thread, CPU-time clock (the time this process's thread spent, so that
    other jobs on a shared machine do not inflate it)."""
    stats = measure_interleaved(forms, x, rounds=rounds, number=number, warmup=warmup,
                                threads=1, seed=seed, clock="cpu")
    return {name: {"median_ms": 1e3 * s.median_s, "iqr_ms": 1e3 * s.iqr_s,
                   "blocks_ms": [1e3 * b for b in s.blocks]} for name, s in stats.items()}

