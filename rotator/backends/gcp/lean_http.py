"""The HTTP transport object rewrites go out on: google-auth's urllib3 transport
(google.auth.transport.urllib3.AuthorizedHttp, the same credentials and token refresh)
under the google-cloud-storage client, instead of the requests session the client
makes by default.

Why: an object rewrite is one small JSON request, and its CPU in the client was about
two thirds the HTTP stack's. requests adds a session layer per request (merging
environment settings and cookies, runtime protocol checks that Python 3.11 makes
slow); without it a rewrite costs about a third less CPU (measured over the wire:
1.25 -> 0.82 ms one after another), which is what bounds a bucket's rewrite rate on a
small machine. Listing, uploads and downloads keep the default session.

Used only where it behaves as the default would: no proxy configured (requests reads
HTTP(S)_PROXY; this transport would not) and no client certificate (mutual TLS: asked
for with GOOGLE_API_USE_CLIENT_CERTIFICATE, or turned on by google-auth from gcloud's
certificate configuration, which the default session then reports as is_mtls). The CA
bundle is requests': REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE (a file or a directory), else
certifi's. Failures are raised as the requests exceptions the default transport
raises (a certificate problem as SSLError, never retried; a dropped connection as
ConnectionError, retried), so the retry policy (backends/gcp/retry.py) and the error
translation read them the same.
"""

from __future__ import annotations

import json
import os
import urllib.request
from typing import Any

import requests.exceptions as rexc
import urllib3
from urllib3 import exceptions as uexc

REFRESH_TIMEOUT = 120.0


def usable(default: Any) -> bool:
    """Whether this transport behaves here as `default` (the client's own session)
    would: no proxy, and no client certificate (mutual TLS, which google-auth also turns
    on by itself from gcloud's certificate configuration: the session says is_mtls)."""
    certificate = os.environ.get("GOOGLE_API_USE_CLIENT_CERTIFICATE", "").lower() == "true"
    return not urllib.request.getproxies() and not certificate and not getattr(default, "is_mtls", False)


class _Sent:
    def __init__(self, method: str, url: str):
        self.method, self.url = method, url


class Response:
    """What google-cloud-core and google-api-core read of a requests.Response."""

    def __init__(self, answer: urllib3.BaseHTTPResponse, method: str, url: str):
        self.status_code = answer.status
        self.reason = answer.reason
        self.headers = answer.headers
        self.content: bytes = answer.data
        self.request = _Sent(method, url)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)


class LeanHttp:
    """The `_http` a google.cloud.storage.Client sends its requests through."""

    # Read by google-cloud-core to pick the endpoint (the mTLS one for a client
    # certificate): never one here, see usable().
    is_mtls = False

    def __init__(self, credentials: Any, connections: int):
        import certifi
        from google.auth.transport.urllib3 import AuthorizedHttp

        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or certifi.where()
        # A file or a directory, as requests reads it.
        where: dict[str, Any] = {"ca_cert_dir": bundle} if os.path.isdir(bundle) else {"ca_certs": bundle}
        self._pool = urllib3.PoolManager(
            maxsize=connections,
            retries=False,  # rotator's RetryPolicy decides what is sent again, never urllib3
            # A request names its own timeout; this one bounds what does not (a token
            # refresh, which AuthorizedSession bounds with the request's timeout).
            timeout=urllib3.Timeout(connect=REFRESH_TIMEOUT, read=REFRESH_TIMEOUT),
            **where,
        )
        self._http = AuthorizedHttp(credentials, http=self._pool)

    def close(self) -> None:
        """The client's close(): drop the pooled connections."""
        self._pool.clear()

    def request(
        self,
        method: str,
        url: str,
        data: Any = None,
        headers: dict[str, str] | None = None,
        timeout: Any = None,
        **_ignored: Any,
    ) -> Response:
        if isinstance(timeout, tuple):  # the client's (connect, read)
            timeout = urllib3.Timeout(connect=timeout[0], read=timeout[1])
        try:
            answer = self._http.request(method, url, body=data, headers=headers, timeout=timeout)
        except uexc.NewConnectionError as e:  # before its base class, ConnectTimeoutError
            raise rexc.ConnectionError(e) from e
        except uexc.SSLError as e:  # a certificate problem: not sent again (retry.py)
            raise rexc.SSLError(e) from e
        except uexc.ConnectTimeoutError as e:
            raise rexc.ConnectTimeout(e) from e
        except uexc.ReadTimeoutError as e:
            raise rexc.ReadTimeout(e) from e
        except (uexc.ProtocolError, uexc.MaxRetryError, OSError) as e:
            raise rexc.ConnectionError(e) from e
        return Response(answer, method, url)
