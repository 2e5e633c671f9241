"""Cloud KMS through google-cloud-kms: the verbs of the Backend protocol."""

from __future__ import annotations

from datetime import timedelta

from google.cloud import kms_v1
from google.iam.v1 import policy_pb2

from rotator.backends.gcp.errors import tested_permissions, translated
from rotator.backends.gcp.retry import RetryPolicy
from rotator.model import CryptoKey, CryptoKeyVersion, IamPolicy
from rotator.names import version_id


def _version(v: kms_v1.CryptoKeyVersion) -> CryptoKeyVersion:
    destroy = v.destroy_time if v.destroy_time and v.destroy_time.timestamp() > 0 else None
    created = v.create_time if v.create_time and v.create_time.timestamp() > 0 else None
    return CryptoKeyVersion(
        name=v.name,
        state=kms_v1.CryptoKeyVersion.CryptoKeyVersionState(v.state).name,
        destroy_time=destroy,
        create_time=created,
    )


def crypto_key(ck: kms_v1.CryptoKey) -> CryptoKey:
    """A Cloud KMS CryptoKey message (KMS or KMS Inventory's key list) -> CryptoKey."""
    primary = version_id(ck.primary.name) if ck.primary and ck.primary.name else None
    duration = ck.destroy_scheduled_duration
    period = ck.rotation_period
    next_time = ck.next_rotation_time
    return CryptoKey(
        name=ck.name,
        protection_level=kms_v1.ProtectionLevel(ck.version_template.protection_level).name
        if ck.version_template.protection_level
        else "SOFTWARE",
        primary=primary,
        destroy_scheduled_duration=duration
        if isinstance(duration, timedelta) and duration
        else timedelta(days=30),
        rotation_period=period if isinstance(period, timedelta) and period else None,
        next_rotation_time=next_time if next_time and next_time.timestamp() > 0 else None,
    )


class GcpKms:
    def __init__(self, client: kms_v1.KeyManagementServiceClient, retry: RetryPolicy):
        self.client = client
        self.retry = retry.for_calls_of("kms")  # retries as each call's declaration says

    def get_crypto_key(self, name: str) -> CryptoKey:
        with translated("get_crypto_key", name):
            ck = self.retry.request("get_crypto_key", self.client.get_crypto_key, name=name, retry=None)
        return crypto_key(ck)

    def list_locations(self, name: str) -> list[str]:
        out: list[str] = []
        token = ""
        with translated("list_locations", name):
            while True:
                page = self.retry.request(
                    "list_locations",
                    self.client.list_locations,
                    request={"name": name, "page_token": token},
                    retry=None,
                )
                out += [loc.location_id for loc in page.locations]
                token = page.next_page_token
                if not token:
                    return out

    def list_key_rings(self, parent: str) -> list[str]:
        with translated("list_key_rings", parent):
            return [
                r.name
                for r in self.retry.request(
                    "list_key_rings", self.client.list_key_rings, parent=parent, retry=None
                )
            ]

    def list_crypto_keys(self, parent: str) -> list[CryptoKey]:
        with translated("list_crypto_keys", parent):
            return [
                crypto_key(k)
                for k in self.retry.request(
                    "list_crypto_keys", self.client.list_crypto_keys, parent=parent, retry=None
                )
            ]

    def list_crypto_key_versions(self, key: str) -> list[CryptoKeyVersion]:
        with translated("list_crypto_key_versions", key):
            pager = self.retry.request(
                "list_crypto_key_versions",
                self.client.list_crypto_key_versions,
                parent=key,
                retry=None,
            )
            versions = [_version(v) for v in pager]
        return sorted(versions, key=lambda v: v.number)

    def get_crypto_key_version(self, name: str) -> CryptoKeyVersion:
        with translated("get_crypto_key_version", name):
            return _version(
                self.retry.request(
                    "get_crypto_key_version", self.client.get_crypto_key_version, name=name, retry=None
                )
            )

    def create_crypto_key_version(self, key: str) -> CryptoKeyVersion:
        # Not retried: a blind retry could make two versions. The engine's journal and
        # its re-check on resume adopt a version a lost response created.
        with translated("create_crypto_key_version", key):
            v = self.retry.request(
                "create_crypto_key_version",
                self.client.create_crypto_key_version,
                parent=key,
                crypto_key_version={},
                retry=None,
            )
        return _version(v)

    def update_crypto_key_primary_version(self, key: str, version: str) -> CryptoKey:
        with translated("update_crypto_key_primary_version", key):
            self.retry.request(
                "update_crypto_key_primary_version",
                self.client.update_crypto_key_primary_version,
                name=key,
                crypto_key_version_id=str(version_id(version)),
                retry=None,
            )
        return self.get_crypto_key(key)

    def update_crypto_key_version(self, version: str, state: str) -> CryptoKeyVersion:
        with translated("update_crypto_key_version", version):
            v = self.retry.request(
                "update_crypto_key_version",
                self.client.update_crypto_key_version,
                crypto_key_version=kms_v1.CryptoKeyVersion(
                    name=version, state=kms_v1.CryptoKeyVersion.CryptoKeyVersionState[state]
                ),
                update_mask={"paths": ["state"]},
                retry=None,
            )
        return _version(v)

    def destroy_crypto_key_version(self, version: str) -> CryptoKeyVersion:
        with translated("destroy_crypto_key_version", version):
            v = self.retry.request(
                "destroy_crypto_key_version", self.client.destroy_crypto_key_version, name=version, retry=None
            )
        return _version(v)

    def restore_crypto_key_version(self, version: str) -> CryptoKeyVersion:
        with translated("restore_crypto_key_version", version):
            v = self.retry.request(
                "restore_crypto_key_version", self.client.restore_crypto_key_version, name=version, retry=None
            )
        return _version(v)

    def get_iam_policy(self, key: str) -> IamPolicy:
        with translated("get_iam_policy", key):
            policy = self.retry.request(
                "get_iam_policy", self.client.get_iam_policy, request={"resource": key}, retry=None
            )
        bindings: dict[str, list[str]] = {}
        for b in policy.bindings:
            bindings.setdefault(b.role, []).extend(b.members)
        return IamPolicy(bindings=bindings, etag=policy.etag.hex())

    def test_iam_permissions(self, resource: str, permissions: list[str]) -> list[str]:
        return tested_permissions(self.retry, self.client, resource, permissions)

    def set_iam_policy(self, key: str, policy: IamPolicy) -> IamPolicy:
        body = policy_pb2.Policy(
            bindings=[
                policy_pb2.Binding(role=r, members=sorted(set(m))) for r, m in policy.bindings.items() if m
            ],
            etag=bytes.fromhex(policy.etag) if policy.etag else b"",
            version=1,
        )
        with translated("set_iam_policy", key):
            self.retry.request(
                "set_iam_policy",
                self.client.set_iam_policy,
                request={"resource": key, "policy": body},
                retry=None,
            )
        return self.get_iam_policy(key)
