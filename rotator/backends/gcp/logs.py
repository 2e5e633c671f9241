"""Cloud Logging (google-cloud-logging): the services' own log lines about failures
caused by their key, which `apply --watch` looks for after a disable (R13.4). The
documented messages: Firestore's "customer-managed encryption key required by the
requested resource is not accessible" (R22) and Cloud Run's no decrypter permission,
KMS quota exceeded, key disabled, destroyed or scheduled for deletion (R41)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rotator.backends.gcp.errors import translated
from rotator.backends.gcp.retry import RetryPolicy
from rotator.model import LogEntry
from rotator.timeutil import format_time

PHRASES = (
    "customer-managed encryption key",
    "CMEK",
    "cloudkms.cryptoKeyVersions.useToDecrypt",
    "cloudkms.cryptoKeyVersions.useToEncrypt",
    "key version is disabled",
    "key is disabled",
    "key is destroyed",
    "scheduled for deletion",
    "KMS quota",
)


def log_filter(since: datetime) -> str:
    words = " OR ".join(f'"{p}"' for p in PHRASES)
    return f'timestamp>="{format_time(since)}" AND severity>=WARNING AND ({words})'


class GcpLogs:
    def __init__(self, client: Any, project: str, retry: RetryPolicy):
        self.client, self.project = client, project
        self.retry = retry.for_calls_of("logs")  # retries as each call's declaration says

    def key_failures(self, since: datetime) -> list[LogEntry]:
        with translated("list_log_entries", f"projects/{self.project}"):
            entries = self.retry.request(
                "key_failures",
                lambda: list(
                    self.client.list_entries(
                        resource_names=[f"projects/{self.project}"],
                        filter_=log_filter(since),
                        page_size=50,
                        max_results=50,
                    )
                ),
            )
        out = []
        for e in entries:
            payload = e.payload
            message = (
                payload
                if isinstance(payload, str)
                else str(
                    (payload or {}).get("status", {}).get("message")
                    or (payload or {}).get("message")
                    or payload
                )
            )
            resource = e.resource.labels if e.resource else {}
            where = "/".join(str(v) for v in resource.values()) if resource else (e.log_name or "")
            out.append(LogEntry(e.timestamp or since, e.resource.type if e.resource else "", where, message))
        return out
