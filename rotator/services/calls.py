"""Every API call rotator makes, declared once: the IAM permission it needs (so a 403
says what to grant) and whether a blind repeat is safe (issue 15, items 3 and 4). Each
service declares its own API's calls in its spec (rotator/services/<name>/spec.py);
here, the APIs no service owns: Cloud KMS, Cloud Storage batch operations, Logging and
Cloud KMS Inventory.

Both backends read the declarations, so they cannot disagree by accident: the fake's
faults (rotator.backends.fake.faults) and the gcp adapters' one retry entry point
(ApiRetry.request in rotator.backends.gcp.retry). tests/core/test_calls_declared.py
checks that every method of every Backend API is declared, that every declaration names
a real call, and that the gcp adapters retry only through their declarations.
"""

from __future__ import annotations

from collections.abc import Mapping

from rotator.services import REGISTRY
from rotator.services.spec import ANYONE, NO_REQUEST, Call, Repeat

KMS: Mapping[str, Call] = {
    "get_crypto_key": Call("cloudkms.cryptoKeys.get"),
    "list_locations": Call("cloudkms.locations.list"),
    "list_key_rings": Call("cloudkms.keyRings.list"),
    "list_crypto_keys": Call("cloudkms.cryptoKeys.list"),
    "list_crypto_key_versions": Call("cloudkms.cryptoKeyVersions.list"),
    "get_crypto_key_version": Call("cloudkms.cryptoKeyVersions.get"),
    "get_iam_policy": Call("cloudkms.cryptoKeys.getIamPolicy"),
    "test_iam_permissions": Call(ANYONE),
    # A second attempt would make a second version.
    "create_crypto_key_version": Call("cloudkms.cryptoKeyVersions.create", Repeat.ONCE),
    "update_crypto_key_primary_version": Call("cloudkms.cryptoKeys.update"),
    "update_crypto_key_version": Call("cloudkms.cryptoKeyVersions.update"),
    "destroy_crypto_key_version": Call("cloudkms.cryptoKeyVersions.destroy"),
    "restore_crypto_key_version": Call("cloudkms.cryptoKeyVersions.restore"),
    "set_iam_policy": Call("cloudkms.cryptoKeys.setIamPolicy"),
}

BATCH: Mapping[str, Call] = {
    # Its rows are a one-pass stream (a million of them never sit in memory): a second
    # attempt would write an empty manifest, so the fake sends it once and the step's
    # re-run streams them again. The gcp adapter spools the rows to a file first and
    # repeats only that file's upload, which is harmless.
    "write_manifest": Call("storage.objects.create", Repeat.ONCE, gcp_repeat=Repeat.SAFE),
    "job_name": Call(NO_REQUEST),
    # The engine records the job id and resumes that job instead.
    "create_job": Call("storagebatchoperations.jobs.create", Repeat.ONCE, named="create_batch_job"),
    "get_job": Call("storagebatchoperations.jobs.get", named="get_batch_job"),
}

LOGS: Mapping[str, Call] = {
    "key_failures": Call("logging.logEntries.list", named="list_log_entries"),
}

INVENTORY: Mapping[str, Call] = {
    "get_protected_resources_summary": Call("cloudkms.cryptoKeys.get"),
    "search_protected_resources": Call("cloudkms.protectedResources.search"),
    "list_crypto_keys": Call("cloudkms.cryptoKeys.list"),
}

# Each API by the Backend attribute that serves it (rotator.backends.base.Backend).
CALLS: Mapping[str, Mapping[str, Call]] = {
    "kms": KMS,
    **{s.name: s.calls for s in REGISTRY},
    "batch": BATCH,
    "logs": LOGS,
    "inventory": INVENTORY,
}

# What the gcp backend's messages name each call (Call.named, else the method), and the
# permission it needs: rotator.backends.gcp.errors says it when Google answers 403.
PERMISSIONS: Mapping[str, str] = {
    call.named or method: call.permission for api in CALLS.values() for method, call in api.items()
}


def declared(api: str, method: str) -> Call:
    """The declaration of one call (KeyError: an undeclared call, which the lint test
    tests/core/test_calls_declared.py keeps from happening)."""
    return CALLS[api][method]


def repeatable(api: str, method: str, *, gcp: bool, preconditioned: bool = False) -> bool:
    """May the call be sent again after a transient error, on this backend?"""
    return declared(api, method).repeatable(gcp=gcp, preconditioned=preconditioned)
