"""`meme export`'s options, declared once (`options.py`): light, so that the CLI reads them without torch."""

from dataclasses import dataclass
from pathlib import Path

from ..checks import check_choice, check_device
from ..device import EXPORT_PRECISIONS
from ..errors import MemeError
from ..models.base_source import BaseSource
from ..options import option

MIN_OPSET = 18  # the dynamo exporter writes opset 18 and up


DEFAULT_OPSET = 18


@dataclass
class ExportOptions(BaseSource):
    meme: Path = option(help="Meme folder made by `meme train`.", argument=True)
    trt: bool = option(False, "Also FP16 TensorRT engines (trt extra, NVIDIA GPU).", flags=("--trt",))
    precision: str = option(
        "auto",
        "fp32, fp16, or auto (fp16 on a GPU, fp32 on a CPU).",
        choices=("auto", *EXPORT_PRECISIONS),
        kw_only=True,
    )
    opset: int = option(
        DEFAULT_OPSET, f"ONNX opset, {MIN_OPSET} or higher ({DEFAULT_OPSET} runs in ORT and TensorRT).", low=MIN_OPSET
    )
    force: bool = option(False, "Export again even when an export of the same inputs exists.")
    quiet: bool = option(False, "No progress bar or notes.", flags=("--quiet", "-q"))

    def check(self) -> None:
        check_opset(self.opset)
        check_choice("--precision", self.precision, ("auto", *EXPORT_PRECISIONS))
        check_device(self.device)


def max_opset() -> int:
    """The highest opset this torch's exporter writes (torch is imported here, not with the options)."""
    from torch.onnx._constants import ONNX_MAX_OPSET

    return ONNX_MAX_OPSET


def check_opset(opset: int) -> None:
    if not MIN_OPSET <= opset <= max_opset():
        raise MemeError(
            f"--opset {opset} cannot be written by this torch's ONNX exporter: use {MIN_OPSET} to "
            f"{max_opset()} (18, the default, runs everywhere: ONNX Runtime and TensorRT)"
        )
