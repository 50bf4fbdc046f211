"""Every Azure ML cluster closes its SSH port to the internet and refuses local (key) auth."""

from bicep_body import lookup
from checkov.bicep.checks.resource.base_resource_check import BaseResourceCheck
from checkov.common.models.enums import CheckCategories, CheckResult


class AmlComputeNoPublicSsh(BaseResourceCheck):
    def __init__(self) -> None:
        super().__init__(
            name="AmlCompute cluster has remoteLoginPortPublicAccess Disabled and disableLocalAuth true",
            id="CKV_RESTYLE_3",
            categories=(CheckCategories.NETWORKING,),
            supported_resources=("Microsoft.MachineLearningServices/workspaces/computes",),
        )

    def scan_resource_conf(self, conf):
        if lookup(conf, "properties", "computeType") != "AmlCompute":
            return CheckResult.UNKNOWN
        self.evaluated_keys = ["properties/properties/remoteLoginPortPublicAccess", "properties/disableLocalAuth"]
        ssh = lookup(conf, "properties", "properties", "remoteLoginPortPublicAccess")
        local_auth_off = lookup(conf, "properties", "disableLocalAuth")
        return CheckResult.PASSED if ssh == "Disabled" and local_auth_off is True else CheckResult.FAILED


check = AmlComputeNoPublicSsh()
