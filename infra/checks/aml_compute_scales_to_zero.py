"""Every Azure ML cluster scales down to zero nodes, so an idle deployment costs nothing for GPUs.

One opt-in is allowed: the GPU cluster's `gpuMinNodes` parameter (warm nodes for short jobs, at
their hourly price). Its default must stay 0; tests/test_infra.py checks that default, which
checkov, seeing only the parameter's name here, cannot.
"""

from bicep_body import lookup
from checkov.bicep.checks.resource.base_resource_check import BaseResourceCheck
from checkov.common.models.enums import CheckCategories, CheckResult

OPT_IN_PARAMETER = "gpuMinNodes"


class AmlComputeScalesToZero(BaseResourceCheck):
    def __init__(self) -> None:
        super().__init__(
            name="AmlCompute cluster has minNodeCount 0",
            id="CKV_RESTYLE_2",
            categories=(CheckCategories.GENERAL_SECURITY,),
            supported_resources=("Microsoft.MachineLearningServices/workspaces/computes",),
        )

    def scan_resource_conf(self, conf):
        if lookup(conf, "properties", "computeType") != "AmlCompute":
            return CheckResult.UNKNOWN
        self.evaluated_keys = ["properties/properties/scaleSettings/minNodeCount"]
        minimum = lookup(conf, "properties", "properties", "scaleSettings", "minNodeCount")
        if minimum == OPT_IN_PARAMETER or (type(minimum) is int and minimum == 0):
            return CheckResult.PASSED
        return CheckResult.FAILED


check = AmlComputeScalesToZero()
