"""Credentials, project and endpoints for the real backend.

Application Default Credentials, as the google-cloud libraries find them. For tests
and local sandboxes each API can be pointed at a local server instead (SPEC): the
Storage JSON API with STORAGE_EMULATOR_HOST, the gRPC APIs with ROTATOR_ENDPOINT_*
(HOST:PORT, an insecure channel, anonymous credentials).
"""

from __future__ import annotations

import os
from typing import Any

from rotator.errors import BadInput
from rotator.services import REGISTRY, spec

# The Storage JSON API's variable, as google-cloud-storage itself reads it.
STORAGE_EMULATOR = spec("storage").endpoint_env
# The gRPC APIs' variables: each service's from its spec, and those of no service.
ENDPOINT_VARS = {
    "kms": "ROTATOR_ENDPOINT_KMS",
    "inventory": "ROTATOR_ENDPOINT_KMS_INVENTORY",
    **{s.name: s.endpoint_env for s in REGISTRY if s.endpoint_env != STORAGE_EMULATOR},
    "storage_batch": "ROTATOR_ENDPOINT_STORAGE_BATCH",
}


def endpoint(api: str) -> str | None:
    return os.environ.get(ENDPOINT_VARS[api]) or None


def any_endpoint() -> bool:
    return bool(os.environ.get(STORAGE_EMULATOR)) or any(os.environ.get(v) for v in ENDPOINT_VARS.values())


class Credentials:
    """ADC, found once and only when an API without a local endpoint needs them."""

    def __init__(self, project: str | None):
        self._project = project
        self._adc: Any = None
        self._adc_project: str | None = None
        self._looked = False

    def adc(self) -> Any:
        if not self._looked:
            self._looked = True
            # Off Google Cloud the metadata-server probe is what can hang; keep it short.
            os.environ.setdefault("GCE_METADATA_TIMEOUT", "1")
            import google.auth
            from google.auth.exceptions import DefaultCredentialsError

            try:
                self._adc, self._adc_project = google.auth.default(
                    scopes=["https://www.googleapis.com/auth/cloud-platform"]
                )
            except DefaultCredentialsError:
                raise BadInput(
                    "no Google Cloud credentials: run `gcloud auth application-default login`, or "
                    "set GOOGLE_APPLICATION_CREDENTIALS, or use --world FILE for the fake backend",
                    resource="credentials",
                ) from None
        return self._adc

    def for_api(self, local: bool) -> Any:
        if local:
            from google.auth.credentials import AnonymousCredentials

            return AnonymousCredentials()
        return self.adc()

    def project(self) -> str:
        if self._project:
            return self._project
        if not any_endpoint():
            self.adc()
        if self._adc_project:
            return self._adc_project
        raise BadInput("no project: pass --project ID or set GOOGLE_CLOUD_PROJECT", resource="project")


def grpc_transport(transport_cls: Any, api: str, credentials: Credentials) -> Any:
    """A transport for a generated gRPC client: the local endpoint if one is set."""
    target = endpoint(api)
    if target:
        import grpc

        return transport_cls(channel=grpc.insecure_channel(target))
    return transport_cls(credentials=credentials.adc())
