"""What the app knows about SageMaker instance types: family, local NVMe storage, vCPU and GPU counts.

The one place for instance facts. Settings use them to refuse a KMS key or volume size SageMaker would
reject, alarms and the dashboard to turn metrics summed over devices into percent of the instance, and
scaling to refuse a GPU metric on an instance without one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

INSTANCE_TYPE_PATTERN: Final = re.compile(
    r"^ml\.(?P<family>[a-z]+[0-9]+[a-z0-9]*(-[a-z0-9]+)?)\.(?P<size>[0-9]*x?large|medium)$"
)

# Families whose instances carry local NVMe storage: SageMaker encrypts it in hardware and refuses
# an endpoint-config KmsKeyId or VolumeSizeInGB for them. "d" families (m5d, c6id, g4dn, p4de) plus
# the accelerated families that come with instance store although their names have no "d".
_NVME_FAMILIES: Final = frozenset(
    {"g5", "g6", "g6e", "g7e", "p5", "p5e", "p5en", "p6-b200", "p6e-gb200", "trn1", "trn1n", "trn2", "trn2n"}
)
_D_FAMILY: Final = re.compile(r"^[a-z]+[0-9]+[a-z]*d[a-z]*$")


class AcceleratorKind(StrEnum):
    """Which device metrics an instance type publishes."""

    NONE = "none"
    NVIDIA_GPU = "nvidia-gpu"
    # Inferentia/Trainium devices: SageMaker documents GPUUtilization/GPUMemoryUtilization for GPU
    # instances only, so no GPU alarm is created for these.
    NEURON = "neuron"


@dataclass(frozen=True)
class InstanceSpec:
    """The device counts that scale SageMaker's summed utilization metrics."""

    vcpus: int
    accelerators: int
    accelerator_kind: AcceleratorKind

    @property
    def gpus(self) -> int:
        """NVIDIA GPUs, the devices GPUUtilization and GPUMemoryUtilization are summed over."""
        return self.accelerators if self.accelerator_kind is AcceleratorKind.NVIDIA_GPU else 0


def _family(family: str, kind: AcceleratorKind, sizes: dict[str, tuple[int, int]]) -> dict[str, InstanceSpec]:
    return {
        f"ml.{family}.{size}": InstanceSpec(vcpus=vcpus, accelerators=devices, accelerator_kind=kind)
        for size, (vcpus, devices) in sizes.items()
    }


def _cpu_family(family: str, vcpus_by_size: dict[str, int]) -> dict[str, InstanceSpec]:
    return _family(family, AcceleratorKind.NONE, {size: (vcpus, 0) for size, vcpus in vcpus_by_size.items()})


# (vCPUs, accelerators) per size, from the public instance specifications on
# https://aws.amazon.com/ec2/instance-types/{g4,g5,g6,g6e,p3,p4,p5,inf2,c5,c6i,c7i,m5}/ and
# https://aws.amazon.com/sagemaker/pricing/ (the ml.* type has the same hardware as its EC2 twin).
_G5_CLASS_SIZES: Final = {
    "xlarge": (4, 1),
    "2xlarge": (8, 1),
    "4xlarge": (16, 1),
    "8xlarge": (32, 1),
    "12xlarge": (48, 4),
    "16xlarge": (64, 1),
    "24xlarge": (96, 4),
    "48xlarge": (192, 8),
}
_COMPUTE_SIZES: Final = {"large": 2, "xlarge": 4, "2xlarge": 8, "4xlarge": 16, "8xlarge": 32}
_M5_SIZES: Final = {"large": 2, "xlarge": 4, "2xlarge": 8, "4xlarge": 16, "12xlarge": 48, "24xlarge": 96}
INSTANCE_SPECS: Final[dict[str, InstanceSpec]] = {
    # NVIDIA T4; the same vCPU/GPU counts as g5 for the sizes it comes in.
    **_family(
        "g4dn",
        AcceleratorKind.NVIDIA_GPU,
        {
            size: _G5_CLASS_SIZES[size]
            for size in ("xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge")
        },
    ),
    **_family("g5", AcceleratorKind.NVIDIA_GPU, _G5_CLASS_SIZES),  # NVIDIA A10G
    **_family("g6", AcceleratorKind.NVIDIA_GPU, _G5_CLASS_SIZES),  # NVIDIA L4
    **_family("g6e", AcceleratorKind.NVIDIA_GPU, _G5_CLASS_SIZES),  # NVIDIA L40S
    **_family(  # NVIDIA V100
        "p3", AcceleratorKind.NVIDIA_GPU, {"2xlarge": (8, 1), "8xlarge": (32, 4), "16xlarge": (64, 8)}
    ),
    **_family("p4d", AcceleratorKind.NVIDIA_GPU, {"24xlarge": (96, 8)}),  # NVIDIA A100 40 GB
    **_family("p4de", AcceleratorKind.NVIDIA_GPU, {"24xlarge": (96, 8)}),  # NVIDIA A100 80 GB
    **_family("p5", AcceleratorKind.NVIDIA_GPU, {"48xlarge": (192, 8)}),  # NVIDIA H100
    **_family("p5e", AcceleratorKind.NVIDIA_GPU, {"48xlarge": (192, 8)}),  # NVIDIA H200
    **_family("p5en", AcceleratorKind.NVIDIA_GPU, {"48xlarge": (192, 8)}),  # NVIDIA H200
    **_family(
        "inf2",
        AcceleratorKind.NEURON,
        {"xlarge": (4, 1), "8xlarge": (32, 1), "24xlarge": (96, 6), "48xlarge": (192, 12)},
    ),
    **_cpu_family("c5", {"large": 2, "xlarge": 4, "2xlarge": 8, "4xlarge": 16, "9xlarge": 36}),
    **_cpu_family("c6i", _COMPUTE_SIZES),
    **_cpu_family("c7i", _COMPUTE_SIZES),
    **_cpu_family("m5", _M5_SIZES),
    **_cpu_family("m5d", _M5_SIZES),
}


def instance_family(instance_type: str) -> str:
    """``ml.g6.2xlarge`` -> ``g6``; a ValueError for text that is not an ML instance type."""
    match = INSTANCE_TYPE_PATTERN.match(instance_type)
    if match is None:
        raise ValueError(f"instance_type={instance_type!r}: not an ML instance type such as ml.g6.2xlarge")
    return match.group("family")


def has_local_nvme(instance_type: str) -> bool:
    """Whether the instance type's family has local NVMe storage (no KmsKeyId, no VolumeSizeInGB)."""
    family = instance_family(instance_type)
    return family in _NVME_FAMILIES or _D_FAMILY.match(family) is not None


def known_instance_types() -> str:
    """The known families, for error messages."""
    families = sorted({name.split(".")[1] for name in INSTANCE_SPECS})
    return ", ".join(f"ml.{family}" for family in families)


def instance_spec(instance_type: str) -> InstanceSpec:
    """The device counts of `instance_type`, or a ValueError naming the known families."""
    try:
        return INSTANCE_SPECS[instance_type]
    except KeyError:
        raise ValueError(
            f"instance_type={instance_type!r}: no device counts known for it, so utilization thresholds "
            f"cannot be normalised; known families: {known_instance_types()} "
            "(add the type to INSTANCE_SPECS in stacks/instance_types.py from its public spec)"
        ) from None


# Every InferenceAmiVersion CloudFormation accepts (the AWS::SageMaker::EndpointConfig schema's enum, as
# shipped in cfn-lint's schemas) and the accelerator its drivers are for: GPU AMIs carry the NVIDIA driver
# and CUDA, the neuron AMI the AWS Neuron driver; none is for CPU instances.
INFERENCE_AMI_ACCELERATORS: Final[dict[str, AcceleratorKind]] = {
    "al2-ami-sagemaker-inference-gpu-2": AcceleratorKind.NVIDIA_GPU,
    "al2-ami-sagemaker-inference-gpu-2-1": AcceleratorKind.NVIDIA_GPU,
    "al2-ami-sagemaker-inference-gpu-3-1": AcceleratorKind.NVIDIA_GPU,
    "al2-ami-sagemaker-inference-neuron-2": AcceleratorKind.NEURON,
    "al2023-ami-sagemaker-inference-gpu-4-1": AcceleratorKind.NVIDIA_GPU,
}


def inference_amis_for(instance_type: str) -> tuple[str, ...]:
    """The inference AMI versions whose drivers fit the instance type's accelerator (none for CPU types)."""
    kind = instance_spec(instance_type).accelerator_kind
    return tuple(ami for ami, ami_kind in INFERENCE_AMI_ACCELERATORS.items() if ami_kind is kind)


def has_gpu(instance_type: str) -> bool:
    """Whether the instance type has NVIDIA GPUs, so GPU metrics (and GPU alarms) exist for it."""
    return instance_spec(instance_type).gpus > 0
