"""Measured cost of a network on the machine at hand: latency, and energy where readable.

ECC (Yang et al., CVPR 2019) treats the platform as a black box: it only needs to run a
network and read its cost. Latency is timed with ``torch.utils.benchmark`` (warm-up, a
fixed thread count, CUDA synchronisation on GPUs); each measurement is a block of
``number`` forward passes, repeated, and summarised by the median and the interquartile
range over blocks, which a busy machine's outliers do not move much.

``clock="cpu"`` times the calling thread's CPU time (``time.thread_time``) instead of the
wall clock: on a machine shared with other processes, wall time includes their time
slices, the CPU time of a single-threaded forward pass does not (on a quiet machine the two
agree). It needs a CPU input and ``threads=1``, where every op runs on the calling thread.

``measure_interleaved`` times several networks in rounds (every network once per round, in
a fresh seeded order), so that a burst of load from other processes hits all of them alike:
comparing methods on a shared machine needs that.

Energy comes from counters, never from a model:

* CPU: Intel RAPL through the powercap sysfs (``/sys/class/powercap/intel-rapl:*/energy_uj``,
  microjoules, wrapping at ``max_energy_range_uj``). Many kernels make it root-only
  (CVE-2020-8694) and containers often hide it: ``rapl_status`` says which.
* NVIDIA GPU: NVML's total-energy counter (millijoules, Volta and later) through ``pynvml``
  (the ``nvidia-ml-py`` package), where installed.

Where no counter is readable, ``EnergyUnavailable`` says what was looked for and why it
failed, and the chapter falls back to latency as the platform's cost.
"""

from __future__ import annotations

import logging
import random
import statistics
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

POWERCAP = Path("/sys/class/powercap")


class EnergyUnavailable(RuntimeError):
    """No energy counter can be read here; the message says what was tried."""


@dataclass(frozen=True)
class LatencyStats:
    """Seconds per forward pass: median and spread over blocks of ``number`` passes."""

    median_s: float
    iqr_s: float
    mean_s: float
    blocks: tuple[float, ...]
    number: int
    batch_size: int
    threads: int
    device: str
    clock: str = "wall"

    @property
    def relative_spread(self) -> float:
        """IQR / median: the measurement's relative noise."""
        return self.iqr_s / self.median_s if self.median_s > 0 else float("nan")

    def as_dict(self) -> dict:
        return {**asdict(self), "blocks": list(self.blocks),
                "relative_spread": self.relative_spread}


CLOCKS = ("wall", "cpu")


def _summary(blocks: list[float], number: int, batch: int, threads: int, device: str,
             clock: str = "wall") -> LatencyStats:
    q = statistics.quantiles(blocks, n=4, method="inclusive") if len(blocks) > 1 else [
        blocks[0]] * 3
    return LatencyStats(median_s=float(statistics.median(blocks)), iqr_s=float(q[2] - q[0]),
                        mean_s=float(statistics.fmean(blocks)), blocks=tuple(blocks),
                        number=number, batch_size=batch, threads=threads, device=device,
                        clock=clock)


class _NoCudaRuntimeNote(logging.Filter):
    """Drops ``torch.utils.cpp_extension``'s import-time "No CUDA runtime is found" warning."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("No CUDA runtime is found")


def _benchmark_module():
    """``torch.utils.benchmark``, imported without one misleading warning: it imports
    ``torch.utils.cpp_extension`` (for C++ timers this module never uses), whose import
    looks for a CUDA toolkit and, on a CPU-only torch that finds one (``nvcc`` on the
    PATH), logs "No CUDA runtime is found" to stderr. Nothing here compiles an extension,
    so only that record of that logger is dropped, and only during the import."""
    logger = logging.getLogger("torch.utils.cpp_extension")
    note = _NoCudaRuntimeNote()
    logger.addFilter(note)
    try:
        from torch.utils import benchmark
    finally:
        logger.removeFilter(note)
    return benchmark


def _timer(model: nn.Module, x: torch.Tensor, threads: int, clock: str = "wall"):
    import time

    benchmark = _benchmark_module()

    def forward() -> None:
        with torch.inference_mode():
            model(x)

    # benchmark.Timer synchronises CUDA around each block and fixes the thread count
    extra = {"timer": time.thread_time} if clock == "cpu" else {}
    return benchmark.Timer("forward()", globals={"forward": forward}, num_threads=threads,
                           **extra)


def _check(model: nn.Module, example_input: torch.Tensor, repeats: int, number: int,
           warmup: int, threads: int, clock: str = "wall") -> None:
    if clock not in CLOCKS:
        raise ValueError(f"clock must be one of {CLOCKS}, got {clock!r}")
    if clock == "cpu" and (example_input.device.type != "cpu" or threads != 1):
        raise ValueError("clock='cpu' times the calling thread: it needs a CPU input and "
                         f"threads=1 (got {example_input.device}, threads={threads})")
    if repeats < 1 or number < 1 or warmup < 0 or threads < 1:
        raise ValueError(f"need repeats >= 1, number >= 1, warmup >= 0, threads >= 1; got "
                         f"{repeats}, {number}, {warmup}, {threads}")
    if example_input.dim() < 1 or len(example_input) < 1:
        raise ValueError("example_input must be a batch with at least one example")
    dev = next(iter(model.parameters()), example_input).device
    if dev != example_input.device:
        raise ValueError(f"model on {dev} but input on {example_input.device}")


def measure_latency(model: nn.Module, example_input: torch.Tensor, *, repeats: int = 7,
                    number: int = 5, warmup: int = 3, threads: int = 1,
                    clock: str = "wall") -> LatencyStats:
    """Latency of ``model(example_input)`` in eval mode on the input's device.

    ``warmup`` passes first (allocator, oneDNN/cuDNN kernel choice), then ``repeats`` blocks
    of ``number`` passes each; ``threads`` intra-op threads (fixed: latency depends on it);
    ``clock`` ``"wall"`` or ``"cpu"`` (see the module docstring).
    """
    _check(model, example_input, repeats, number, warmup, threads, clock)
    was_training = model.training
    model.eval()
    try:
        timer = _timer(model, example_input, threads, clock)
        if warmup:
            timer.timeit(warmup)
        blocks = [timer.timeit(number).mean for _ in range(repeats)]
    finally:
        model.train(was_training)
    return _summary(blocks, number, len(example_input), threads, str(example_input.device),
                    clock)


def measure_interleaved(models: Mapping[str, nn.Module], example_input: torch.Tensor, *,
                        rounds: int = 7, number: int = 5, warmup: int = 3, threads: int = 1,
                        seed: int = 0, inputs: Mapping[str, torch.Tensor] | None = None,
                        clock: str = "wall") -> dict[str, LatencyStats]:
    """Latency of several networks measured in ``rounds`` interleaved rounds.

    Each round times one block of ``number`` passes of every network, in an order shuffled
    by ``seed`` and the round, so slow phases of a shared machine spread over all of them.
    ``inputs`` gives a network its own input (default: ``example_input`` for all).
    """
    if not models:
        raise ValueError("measure_interleaved needs at least one model")
    inputs = dict(inputs or {})
    timers, states = {}, {}
    for name, model in models.items():
        x = inputs.get(name, example_input)
        _check(model, x, rounds, number, warmup, threads, clock)
        states[name] = model.training
        model.eval()
        timers[name] = _timer(model, x, threads, clock)
    blocks: dict[str, list[float]] = {name: [] for name in models}
    rng = random.Random(seed)
    try:
        for name in models:
            if warmup:
                timers[name].timeit(warmup)
        for _ in range(rounds):
            order = list(models)
            rng.shuffle(order)
            for name in order:
                blocks[name].append(timers[name].timeit(number).mean)
    finally:
        for name, model in models.items():
            model.train(states[name])
    return {name: _summary(blocks[name], number,
                           len(inputs.get(name, example_input)), threads,
                           str(inputs.get(name, example_input).device), clock)
            for name in models}


# --------------------------------------------------------------------------- energy
@dataclass
class RaplDomain:
    """One RAPL zone of the powercap sysfs (``package-0``, ``core``, ``dram``, ...)."""

    name: str
    energy_file: Path
    max_range_uj: int

    def read_uj(self) -> int:
        return int(self.energy_file.read_text().strip())


@dataclass
class EnergyStatus:
    """Whether an energy counter is readable here, and what was found."""

    available: bool
    source: str
    message: str
    domains: list[str] = field(default_factory=list)


def rapl_domains(root: str | Path = POWERCAP) -> list[RaplDomain]:
    """The top-level RAPL zones under ``root`` (``intel-rapl:N``, not their subzones)
    whose counter can be read; raises ``EnergyUnavailable`` saying why when none can."""
    root = Path(root)
    if not root.is_dir():
        raise EnergyUnavailable(f"no powercap sysfs at {root}: this kernel or container "
                                "exposes no RAPL energy counters")
    zones = sorted(p for p in root.glob("intel-rapl:*") if p.name.count(":") == 1)
    if not zones:
        raise EnergyUnavailable(f"{root} has no intel-rapl:N zone (no Intel RAPL here)")
    found, errors = [], []
    for zone in zones:
        energy = zone / "energy_uj"
        try:
            name = (zone / "name").read_text().strip() if (zone / "name").exists() else zone.name
            max_range = int((zone / "max_energy_range_uj").read_text().strip())
            int(energy.read_text().strip())
        except PermissionError:
            errors.append(f"{energy}: permission denied (root-only since CVE-2020-8694; "
                          "`sudo chmod a+r` it to measure as a user)")
            continue
        except (OSError, ValueError) as err:
            errors.append(f"{energy}: {err}")
            continue
        found.append(RaplDomain(name, energy, max_range))
    if not found:
        raise EnergyUnavailable("no readable RAPL counter: " + "; ".join(errors))
    return found


def rapl_status(root: str | Path = POWERCAP) -> EnergyStatus:
    """``EnergyStatus`` of the CPU's RAPL counters (never raises)."""
    try:
        domains = rapl_domains(root)
    except EnergyUnavailable as err:
        return EnergyStatus(False, "rapl", str(err))
    return EnergyStatus(True, "rapl", f"RAPL readable: {', '.join(d.name for d in domains)}",
                        [d.name for d in domains])


def rapl_delta_uj(before: int, after: int, max_range_uj: int) -> int:
    """Energy between two readings of a counter that wraps at ``max_range_uj``."""
    return after - before if after >= before else after + max_range_uj - before


def _nvml_handle(device: torch.device):
    try:
        import pynvml  # the nvidia-ml-py package
    except ImportError as err:
        raise EnergyUnavailable("GPU energy needs NVML's Python bindings: pip install "
                                "nvidia-ml-py") from err
    try:
        pynvml.nvmlInit()
        index = device.index if device.index is not None else torch.cuda.current_device()
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    except pynvml.NVMLError as err:
        raise EnergyUnavailable(f"NVML total-energy counter unreadable on {device}: {err} "
                                "(needs a Volta or newer GPU)") from err
    return pynvml, handle


def energy_status(device: str | torch.device = "cpu", root: str | Path = POWERCAP
                  ) -> EnergyStatus:
    """Whether energy can be measured for work on ``device`` (RAPL on CPU, NVML on CUDA)."""
    device = torch.device(device)
    if device.type == "cuda":
        try:
            _nvml_handle(device)
        except EnergyUnavailable as err:
            return EnergyStatus(False, "nvml", str(err))
        return EnergyStatus(True, "nvml", f"NVML energy counter readable on {device}")
    return rapl_status(root)


def measure_energy(fn: Callable[[], object], *, number: int = 20,
                   device: str | torch.device = "cpu", root: str | Path = POWERCAP) -> float:
    """Joules per call of ``fn`` from the platform's counters (summed over RAPL packages on
    CPU; NVML on CUDA). Raises ``EnergyUnavailable`` with the reason where none is readable.
    The counters include idle and other processes' draw: interleave and subtract an idle
    reading when comparing networks."""
    if number < 1:
        raise ValueError(f"number must be >= 1, got {number}")
    device = torch.device(device)
    if device.type == "cuda":
        pynvml, handle = _nvml_handle(device)
        torch.cuda.synchronize(device)
        start = pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
        for _ in range(number):
            fn()
        torch.cuda.synchronize(device)
        return (pynvml.nvmlDeviceGetTotalEnergyConsumption(handle) - start) / 1e3 / number
    domains = [d for d in rapl_domains(root) if d.name.startswith("package")] or rapl_domains(
        root)
    start = [d.read_uj() for d in domains]
    for _ in range(number):
        fn()
    used = sum(rapl_delta_uj(s, d.read_uj(), d.max_range_uj) for s, d in zip(start, domains,
                                                                          strict=True))
    return used / 1e6 / number


def model_energy(model: nn.Module, example_input: torch.Tensor, *, number: int = 20,
                 root: str | Path = POWERCAP) -> float:
    """Joules per forward pass of ``model(example_input)`` (see ``measure_energy``)."""
    was_training = model.training
    model.eval()

    def forward() -> None:
        with torch.inference_mode():
            model(example_input)

    try:
        forward()
        return measure_energy(forward, number=number, device=example_input.device, root=root)
    finally:
        model.train(was_training)
