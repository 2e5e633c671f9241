"""Every call rotator makes is declared once (rotator.services.calls, each service's
spec): its permission and whether a blind repeat is safe (issue 15, items 3 and 4).
These lint tests keep the declarations complete and the gcp adapters on them.

Backends: none (the declarations, the Backend and service API protocols and the adapters' source)."""

from __future__ import annotations

import ast
import typing
from pathlib import Path

from rotator.backends import base
from rotator.backends.fake import faults
from rotator.services import SERVICES, protocols, spec
from rotator.services.calls import CALLS
from rotator.services.spec import Repeat

ROOT = Path(__file__).resolve().parents[2] / "rotator"
# The gcp backend's modules but its retry policy (the one place that picks call or once).
# retry.py is the policy; lean_http.py the HTTP transport under a client (its
# `.request` is an HTTP request, retried by the adapter that made the client call).
NOT_ADAPTERS = ("retry.py", "lean_http.py")
ADAPTERS = [p for p in sorted((ROOT / "backends" / "gcp").glob("*.py")) if p.name not in NOT_ADAPTERS] + [
    ROOT / "services" / s / "gcp.py" for s in SERVICES
]


def _protocol_methods(protocol: type) -> set[str]:
    # rotator's own protocols (backends/base.py, each service's api.py), not typing's.
    own = [k for k in protocol.__mro__ if k.__module__.startswith("rotator.") and k is not typing.Protocol]
    return {n for k in own for n, v in vars(k).items() if callable(v) and not n.startswith("_")}


def _apis() -> dict[str, type]:
    hints = typing.get_type_hints(base.Backend)
    # The clock is read locally (no API call).
    apis = {
        name: hint
        for name, hint in hints.items()
        if isinstance(hint, type) and _protocol_methods(hint) and hint is not base.Clock
    }
    # Each service's: the API its spec is typed with (ServiceSpec[RunApi, RunReads]).
    for name in SERVICES:
        apis[name] = protocols(spec(name))[0]
    return apis


def _calls_in(path: Path, attrs: tuple[str, ...]) -> list[ast.Call]:
    return [
        node
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call)
        and (getattr(node.func, "attr", None) in attrs or getattr(node.func, "id", None) in attrs)
    ]


def _api_of(path: Path) -> str | None:
    """The API a gcp adapter module serves: the one it asks `retry.for_calls_of` for."""
    apis = {_literal(node.args[0]) for node in _calls_in(path, ("for_calls_of",))}
    assert len(apis) <= 1, path
    return next(iter(apis), None)


def _requests() -> list[tuple[Path, int, str | None, ast.Call]]:
    """Every `X.request(...)`, `X.call(...)` and `X.once(...)` in the gcp adapters, with
    the API of the adapter making it."""
    return [
        (path, node.lineno, _api_of(path), node)
        for path in ADAPTERS
        for node in _calls_in(path, ("request", "call", "once"))
        if node.args
    ]


def _literal(node: ast.expr) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def test_every_api_of_the_backend_is_declared_and_every_method_of_it_has_a_declaration() -> None:
    apis = _apis()
    assert set(apis) == set(CALLS) == set(faults.APIS)
    for name, protocol in apis.items():
        missing = _protocol_methods(protocol) - set(CALLS[name])
        assert not missing, f"{name}: {sorted(missing)} declare no permission and no Repeat"


def test_every_declaration_names_a_method_of_its_api_or_a_request_its_gcp_adapter_makes() -> None:
    requested = {
        (api, _literal(node.args[0])) for _, _, api, node in _requests() if node.func.attr == "request"
    }
    apis = _apis()
    for name, calls in CALLS.items():
        for method in calls:
            real = method in _protocol_methods(apis[name]) or (name, method) in requested
            assert real, f"{name}.{method} is declared but neither a method of its API nor a request"


def test_the_gcp_adapters_retry_only_through_the_declarations() -> None:
    """No adapter picks retry.call or retry.once by hand: ApiRetry.request looks the
    call up, so a gcp method cannot disagree with the fake about repeating it."""
    serving = {path: _api_of(path) for path in ADAPTERS}
    for path, line, api, node in _requests():
        where = f"{path.relative_to(ROOT.parent)}:{line}"
        assert node.func.attr == "request", f"{where}: .{node.func.attr}() chooses by hand; use .request()"
        method = _literal(node.args[0])
        assert method is not None, f"{where}: the call's method must be written out"
        if api is None:  # errors.tested_permissions: for the API of whichever adapter asks
            assert path.name == "errors.py" and method == "test_iam_permissions", where
            continue
        assert method in CALLS.get(api, {}), f"{where}: {api}.{method} is not declared"
    for path in ADAPTERS:  # the shared TestIamPermissions call, as each API declares it
        if _calls_in(path, ("tested_permissions",)) and path.name != "errors.py":
            assert "test_iam_permissions" in CALLS[str(serving[path])], path
    # Every adapter module but the shared helpers serves one declared API.
    assert {a for a in serving.values() if a} == set(CALLS)


def test_the_names_the_gcp_messages_give_calls_each_need_one_permission() -> None:
    named: dict[str, set[str]] = {}
    for calls in CALLS.values():
        for method, call in calls.items():
            named.setdefault(call.named or method, set()).add(call.permission)
    assert {n: p for n, p in named.items() if len(p) > 1} == {}


def test_a_backend_differs_from_the_declaration_only_where_it_says_so() -> None:
    differing = {
        (api, method): (call.repeat, call.gcp_repeat)
        for api, calls in CALLS.items()
        for method, call in calls.items()
        if call.gcp_repeat is not None
    }
    assert all(repeat is not gcp for repeat, gcp in differing.values())
    # Both are explained where they are declared; a new one needs a reason there too.
    assert differing == {
        ("storage", "delete_object"): (Repeat.SAFE, Repeat.ONCE),
        ("batch", "write_manifest"): (Repeat.ONCE, Repeat.SAFE),
    }


def test_a_gcp_call_is_named_in_its_errors_as_its_declaration_names_it() -> None:
    """`with translated(NAME, ...)` around a request: NAME is the call's declared name
    (Call.named, else the method), so a 403 names the permission the declaration gives."""
    checked = 0
    for path in ADAPTERS:
        api = _api_of(path)
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.With):
                continue
            names = [
                _literal(item.context_expr.args[0])
                for item in node.items
                if isinstance(item.context_expr, ast.Call)
                and getattr(item.context_expr.func, "id", None) == "translated"
                and item.context_expr.args
            ]
            if not names or api is None:
                continue
            for inner in (n for stmt in node.body for n in ast.walk(stmt)):
                if isinstance(inner, ast.Call) and getattr(inner.func, "attr", None) == "request":
                    call = CALLS[api][str(_literal(inner.args[0]))]
                    named = call.named or _literal(inner.args[0])
                    assert names == [named], (
                        f"{path.relative_to(ROOT.parent)}:{inner.lineno}: {names} != {named}"
                    )
                    checked += 1
    assert checked > 40
