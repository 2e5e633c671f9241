"""The IAM permission each API call needs, so a 403 says what to grant (both backends:
the gcp backend when Google answers 403, the fake when it injects one)."""

from __future__ import annotations

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
    "list_buckets": "storage.buckets.list",
    "get_bucket": "storage.buckets.get",
    "patch_bucket": "storage.buckets.update",
    "list_objects": "storage.objects.list",
    "get_object": "storage.objects.get",
    "rewrite_object": "storage.objects.create, storage.objects.delete and storage.objects.get",
    "list_databases": "datastore.databases.list",
    "get_database": "datastore.databases.getMetadata",
    "list_backups": "datastore.backups.list",
    "restore_database": "datastore.backups.restoreDatabase and datastore.databases.create",
    "list_jobs": "dataflow.jobs.list",
    "get_job": "dataflow.jobs.get",
    "snapshot_job": "dataflow.snapshots.create",
    "list_snapshots": "dataflow.snapshots.list",
    "list_services": "run.services.list",
    "get_service": "run.services.get",
    "update_service": "run.services.update",
    "list_revisions": "run.revisions.list",
    "list_functions": "cloudfunctions.functions.list",
    "get_function": "cloudfunctions.functions.get",
    "update_function": "cloudfunctions.functions.update",
    "get_repository": "artifactregistry.repositories.get",
    "list_repositories": "artifactregistry.repositories.list",
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

# The fake's names for the same calls.
PERMISSIONS.update(
    {
        "patch_bucket_default_kms_key": PERMISSIONS["patch_bucket"],
        "redeploy_function": PERMISSIONS["update_function"],
        "get_repository_key": "artifactregistry.repositories.get",
        "create_repository": "artifactregistry.repositories.create",
        "repository_image_versions": "artifactregistry.repositories.get",
        "key_failures": PERMISSIONS["list_log_entries"],
    }
)


def permission_for(method: str) -> str:
    return PERMISSIONS.get(method, f"the permission {method} needs")
