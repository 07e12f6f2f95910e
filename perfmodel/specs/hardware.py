"""GPU catalog: datasheet peak rates plus the few efficiency and overhead constants the analytical
latency model needs.

Key assumption: one number per GPU for dense fp16/bf16 tensor throughput (no sparsity) and one for
HBM bandwidth; the efficiency factors below scale those to what real decode kernels achieve.
"""
from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from enum import Enum

from specperf.perfmodel.specs.models import SpecError

TB = 1e12
GB = 1e9
GiB = 2**30


class Arch(str, Enum):
    """GPU architecture (vendor datasheets): what decides whether kernels, launch costs and compiled
    glue measured on one GPU carry to another (perfmodel.latency.chain's cross-GPU rescaling)."""
    AMPERE = "ampere"  # NVIDIA GA100 / GA102
    ADA = "ada"  # NVIDIA AD102
    HOPPER = "hopper"  # NVIDIA GH100 (H100, H200)
    BLACKWELL = "blackwell"  # NVIDIA GB100
    CDNA3 = "cdna3"  # AMD MI300
    UNKNOWN = "unknown"

    @property
    def vendor(self) -> str:
        return {"cdna3": "amd", "unknown": "unknown"}.get(self.value, "nvidia")

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class HardwareProfile:
    name: str
    peak_flops_per_s: float  # dense fp16/bf16 tensor-core rate, no sparsity
    hbm_bytes_per_s: float
    memory_bytes: float
    interconnect_bytes_per_s: float  # per-GPU, one direction, GPU-to-GPU fabric (NVLink / IF / PCIe)
    sources: dict = field(default_factory=dict, compare=False, hash=False)
    # --- efficiencies and overheads (defaults: see _DEFAULTS below for their provenance) ---------
    matmul_efficiency: float = 0.70
    bandwidth_efficiency: float = 0.80
    kernel_floor_eager_s: float = 6.0e-6
    kernel_floor_graph_s: float = 2.5e-6
    allreduce_latency_s: float = 8.0e-6
    overhead_eager_s: float = 120e-6
    overhead_graph_s: float = 60e-6
    # compiled mode (torch.compile + CUDA graphs): only ever fitted to measured compiled rows
    # (perfmodel.latency.fit); None = not measured, and compiled predictions fall back to graph mode
    kernel_floor_compiled_s: float | None = None
    compiled_small_kernels: float | None = None  # fused small kernels per layer (family count unfused)
    arch: Arch = Arch.UNKNOWN

    @property
    def vendor(self) -> str:
        """'nvidia', 'amd' or 'unknown', from the architecture (never from the name)."""
        return Arch(self.arch).vendor

    def replace(self, **changes) -> "HardwareProfile":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# Efficiency/overhead defaults, used until a measured profile refits them (perfmodel.latency.fit):
# - matmul_efficiency 0.70: large bf16 GEMMs reach ~70 % of dense peak on H100/A100 in cuBLAS
#   (NVIDIA "Matrix Multiplication Background" user guide reports 60-75 % for large shapes).
# - bandwidth_efficiency 0.80: streaming copies reach ~80-90 % of HBM datasheet bandwidth
#   (NVIDIA CUDA samples bandwidthTest; the H100 MLPerf-era reports ~2.9 of 3.35 TB/s).
# - kernel floors: a CUDA kernel launch costs ~5-7 µs of host time from PyTorch eager and
#   ~2-3 µs per node when replayed from a CUDA graph (NVIDIA blog "Getting Started with CUDA
#   Graphs", 2019; PyTorch blog "Accelerating PyTorch with CUDA Graphs", 2021).
# - allreduce_latency_s 8 µs: NCCL small-message all-reduce latency on NVLink (nccl-tests).
# - overhead_*_s: sampling + accept/reject + one host sync per iteration, order of 100 µs in
#   eager PyTorch loops (gpt-fast-style decoders); refit from profiles' `overhead` rows.

# Datasheet numbers re-checked for specperf issue 2 (no value needed correcting): dense = half the
# "with sparsity" tensor figure. Cross-checks: H100/H200/A100 per NVIDIA datasheets as cited;
# L40S datasheet "362.05 | 733" BF16; A10G vs A10 from Baseten, "NVIDIA A10 vs A10G for ML model
# inference" (same 24 GB / 600 GB/s; A10G ~70 TFLOPS fp16 tensor vs A10 125); B200 per-GPU HGX
# figures (BF16 2.25 PF dense / 4.5 sparse, 8 TB/s, NVLink 5 1.8 TB/s bidirectional) from
# glennklockwood.com/garden/processors/B200 (quoting NVIDIA's Blackwell datasheet) and Vultr's
# HGX B200 overview (179 GiB usable, 8.0 TB/s); MI300X per AMD's datasheet (7 IF links x 128 GB/s
# bidirectional = 448 GB/s per direction).
GPUS: dict[str, HardwareProfile] = {
    "h100-sxm": HardwareProfile(
        name="h100-sxm", arch=Arch.HOPPER, peak_flops_per_s=989.4 * TB, hbm_bytes_per_s=3.35 * TB,
        memory_bytes=80 * GB, interconnect_bytes_per_s=450 * GB,
        sources={"datasheet": "NVIDIA H100 Tensor Core GPU datasheet (SXM): BF16 1,979 TFLOPS with "
                 "sparsity = 989.4 dense; 3.35 TB/s HBM3; 80 GB; NVLink 900 GB/s bidirectional"}),
    "h100-pcie": HardwareProfile(
        name="h100-pcie", arch=Arch.HOPPER, peak_flops_per_s=756.5 * TB, hbm_bytes_per_s=2.0 * TB,
        memory_bytes=80 * GB, interconnect_bytes_per_s=300 * GB,
        sources={"datasheet": "NVIDIA H100 datasheet (PCIe): BF16 1,513 TFLOPS sparse = 756.5 dense; "
                 "2 TB/s HBM2e; 80 GB; NVLink bridge 600 GB/s bidirectional"}),
    "h200": HardwareProfile(
        name="h200", arch=Arch.HOPPER, peak_flops_per_s=989.4 * TB, hbm_bytes_per_s=4.8 * TB,
        memory_bytes=141 * GB, interconnect_bytes_per_s=450 * GB,
        sources={"datasheet": "NVIDIA H200 Tensor Core GPU datasheet (SXM): BF16 1,979 TFLOPS sparse "
                 "= 989.4 dense; 4.8 TB/s HBM3e; 141 GB; NVLink 900 GB/s bidirectional"}),
    "a100-sxm-80gb": HardwareProfile(
        name="a100-sxm-80gb", arch=Arch.AMPERE, peak_flops_per_s=312 * TB, hbm_bytes_per_s=2.039 * TB,
        memory_bytes=80 * GB, interconnect_bytes_per_s=300 * GB,
        sources={"datasheet": "NVIDIA A100 datasheet: BF16 312 TFLOPS dense; 80GB SXM 2,039 GB/s "
                 "HBM2e; NVLink 600 GB/s bidirectional"}),
    "a100-sxm-40gb": HardwareProfile(
        name="a100-sxm-40gb", arch=Arch.AMPERE, peak_flops_per_s=312 * TB, hbm_bytes_per_s=1.555 * TB,
        memory_bytes=40 * GB, interconnect_bytes_per_s=300 * GB,
        sources={"datasheet": "NVIDIA A100 datasheet: BF16 312 TFLOPS dense; 40GB SXM 1,555 GB/s "
                 "HBM2; NVLink 600 GB/s bidirectional"}),
    "l40s": HardwareProfile(
        name="l40s", arch=Arch.ADA, peak_flops_per_s=362.05 * TB, hbm_bytes_per_s=864 * GB,
        memory_bytes=48 * GB, interconnect_bytes_per_s=32 * GB,
        sources={"datasheet": "NVIDIA L40S datasheet: BF16 733 TFLOPS sparse = 362.05 dense; 864 GB/s "
                 "GDDR6; 48 GB; PCIe Gen4 x16 64 GB/s bidirectional"}),
    "a10g": HardwareProfile(
        name="a10g", arch=Arch.AMPERE, peak_flops_per_s=70 * TB, hbm_bytes_per_s=600 * GB,
        memory_bytes=24 * GB, interconnect_bytes_per_s=32 * GB,
        sources={"datasheet": "AWS EC2 G5 instance page (A10G: 24 GB, 600 GB/s GDDR6); NVIDIA does "
                 "not publish A10G tensor rates — ~70 TFLOPS fp16 dense as reported for g5; PCIe Gen4"}),
    "rtx-4090": HardwareProfile(
        name="rtx-4090", arch=Arch.ADA, peak_flops_per_s=165.2 * TB, hbm_bytes_per_s=1008 * GB,
        memory_bytes=24 * GB, interconnect_bytes_per_s=32 * GB,
        sources={"datasheet": "NVIDIA Ada Lovelace architecture whitepaper: RTX 4090 FP16 tensor "
                 "165.2 TFLOPS dense with FP32 accumulate; 1,008 GB/s GDDR6X; 24 GB; PCIe Gen4, no NVLink"}),
    "mi300x": HardwareProfile(
        name="mi300x", arch=Arch.CDNA3, peak_flops_per_s=1307.4 * TB, hbm_bytes_per_s=5.3 * TB,
        memory_bytes=192 * GB, interconnect_bytes_per_s=448 * GB,
        sources={"datasheet": "AMD Instinct MI300X datasheet: FP16/BF16 1,307.4 TFLOPS dense; 5.3 TB/s "
                 "HBM3; 192 GB; Infinity Fabric 7 links x 64 GB/s per direction"}),
    "b200": HardwareProfile(
        name="b200", arch=Arch.BLACKWELL, peak_flops_per_s=2250 * TB, hbm_bytes_per_s=8.0 * TB,
        memory_bytes=180 * GB, interconnect_bytes_per_s=900 * GB,
        sources={"datasheet": "NVIDIA HGX B200 datasheet: FP16/BF16 4.5 PFLOPS sparse = 2.25 dense per "
                 "GPU; 8 TB/s HBM3e; 180 GB; NVLink 5 1.8 TB/s bidirectional"}),
}

ALIASES = {"h100": "h100-sxm", "a100": "a100-sxm-80gb", "a100-80gb": "a100-sxm-80gb",
           "a100-40gb": "a100-sxm-40gb", "4090": "rtx-4090", "h200-sxm": "h200"}


def resolve_gpu(name: str) -> HardwareProfile:
    if not isinstance(name, str) or not name.strip():
        raise SpecError(f"gpu={name!r} is not allowed; give a GPU from `specperf gpus`", value=name,
                        allowed="a GPU from `specperf gpus`")
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key in GPUS:
        return GPUS[key]
    near = difflib.get_close_matches(key, list(GPUS), n=3, cutoff=0.3)
    hint = f"; nearest: {', '.join(near)}" if near else ""
    raise SpecError(f"unknown GPU {name!r}{hint} (known: {', '.join(GPUS)})")
