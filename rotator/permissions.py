"""The IAM permission each API call needs, so a 403 says what to grant (both backends:
the gcp backend when Google answers 403, the fake when it injects one). Each service's
calls are in its spec (rotator/services/<name>/spec.py); here, the calls of no service:
Cloud KMS, Cloud KMS Inventory, Logging, Storage batch operations and the project."""

from __future__ import annotations

from rotator.services import REGISTRY

PERMISSIONS = {
    "get_crypto_key": "cloudkms.cryptoKeys.get",
    "list_crypto_key_versions": "cloudkms.cryptoKeyVersions.list",
    "create_crypto_key_version": "cloudkms.cryptoKeyVersions.create",
    "update_crypto_key_primary_version": "cloudkms.cryptoKeys.update",
    "update_crypto_key_version": "cloudkms.cryptoKeyVersions.update",
    "destroy_crypto_key_version": "cloudkms.cryptoKeyVersions.destroy",
    "restore_crypto_key_version": "cloudkms.cryptoKeyVersions.restore",
    "get_iam_policy": "cloudkms.cryptoKeys.getIamPolicy",
    "set_iam_policy": "cloudkms.cryptoKeys.setIamPolicy",
    "search_protected_resources": "cloudkms.protectedResources.search",
    "get_protected_resources_summary": "cloudkms.cryptoKeys.get",
    "list_crypto_keys": "cloudkms.cryptoKeys.list",
    "list_key_rings": "cloudkms.keyRings.list",
    "list_locations": "cloudkms.locations.list",
    "test_iam_permissions": "(none: any caller may ask what it holds)",
    "write_manifest": "storage.objects.create",
    "list_log_entries": "logging.logEntries.list",
    "create_batch_job": "storagebatchoperations.jobs.create",
    "get_batch_job": "storagebatchoperations.jobs.get",
    "get_service_account": "resourcemanager.projects.get",
}
# The fake's name for the same call.
PERMISSIONS["key_failures"] = PERMISSIONS["list_log_entries"]
for _service in REGISTRY:
    PERMISSIONS.update(_service.permissions)


def permission_for(method: str) -> str:
    return PERMISSIONS.get(method, f"the permission {method} needs")
