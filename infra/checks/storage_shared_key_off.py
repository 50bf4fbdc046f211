"""Every storage account turns shared-key (account key and SAS) access off: identity only."""

from bicep_body import lookup
from checkov.bicep.checks.resource.base_resource_check import BaseResourceCheck
from checkov.common.models.enums import CheckCategories, CheckResult


class StorageSharedKeyOff(BaseResourceCheck):
    def __init__(self) -> None:
        super().__init__(
            name="Storage account has allowSharedKeyAccess set to literal false",
            id="CKV_RESTYLE_1",
            categories=(CheckCategories.IAM,),
            supported_resources=("Microsoft.Storage/storageAccounts",),
        )

    def scan_resource_conf(self, conf):
        self.evaluated_keys = ["properties/allowSharedKeyAccess"]
        # A parameter or expression could turn keys back on at deploy time: only the literal passes.
        allowed = lookup(conf, "properties", "allowSharedKeyAccess")
        return CheckResult.PASSED if allowed is False else CheckResult.FAILED


check = StorageSharedKeyOff()
