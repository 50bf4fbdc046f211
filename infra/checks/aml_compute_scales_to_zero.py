"""Every Azure ML cluster scales down to zero nodes, so an idle deployment costs nothing for GPUs."""

from bicep_body import lookup
from checkov.bicep.checks.resource.base_resource_check import BaseResourceCheck
from checkov.common.models.enums import CheckCategories, CheckResult


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
        return CheckResult.PASSED if type(minimum) is int and minimum == 0 else CheckResult.FAILED


check = AmlComputeScalesToZero()
