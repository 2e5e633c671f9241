"""The service registry (issue 15, item 1): one spec a service, each pin kind defined
once, and a registry that loads no fake, adapter or client library.

Backends: none (reads the specs and their API protocols only)."""

from __future__ import annotations

import subprocess
import sys

from rotator.services import (
    COVERED_PRODUCTS,
    PIN_KINDS,
    REGISTRY,
    SERVICES,
    WINDOW_OF,
    core,
    part,
    protocols,
    spec,
)


def test_importing_the_registry_loads_no_fake_adapter_or_client_library() -> None:
    code = (
        "import sys, rotator.services\n"
        "print(sorted(m for m in sys.modules if m.startswith(('google', 'grpc', 'rotator.backends'))"
        " or m.endswith(('.fake', '.gcp', '.steps', '.world', '.uses'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_each_service_is_one_package_whose_spec_the_registry_lists() -> None:
    assert SERVICES == tuple(s.name for s in REGISTRY) and len(set(SERVICES)) == len(SERVICES)
    for s in REGISTRY:
        assert spec(s.name) is s
        assert part(s.name, "spec").SPEC is s
        assert part(s.name, "uses").scan  # its scanner (rotator.inventory runs it)


def test_each_service_is_a_backend_api_and_its_once_calls_are_calls_of_that_api() -> None:
    for s in REGISTRY:
        # The API its spec is typed with (ServiceSpec[RunApi, RunReads]: rotator/services/<name>/api.py).
        api, reads = protocols(s)
        assert api.__module__ == reads.__module__ == f"rotator.services.{s.name}.api"
        assert reads in api.__mro__  # the full API is its reads and more
        once = [
            m
            for m, c in s.calls.items()
            if not (
                c.repeatable(gcp=False, preconditioned=False) and c.repeatable(gcp=True, preconditioned=False)
            )
        ]
        assert once, s.name
        for method in once:
            assert callable(getattr(api, method, None)), (s.name, method)


def test_every_pin_kind_is_defined_once_and_names_its_service() -> None:
    defined = [k.kind for k in (*core.FIRST, *core.LAST)] + [k.kind for s in REGISTRY for k in s.pin_kinds]
    assert sorted(defined) == sorted(PIN_KINDS) and len(defined) == len(PIN_KINDS)
    for s in REGISTRY:
        assert all(k.service == s.name for k in s.pin_kinds)
    assert all(k.service is None for k in (*core.FIRST, *core.LAST))
    # the order a version's pins are listed in: the primary, each service's, then the rest
    assert list(PIN_KINDS)[0] == core.PRIMARY
    assert list(PIN_KINDS)[-len(core.LAST) :] == [k.kind for k in core.LAST]


def test_a_window_kind_is_a_kind_of_the_same_service() -> None:
    for direct, window in WINDOW_OF.items():
        assert PIN_KINDS[window].service == PIN_KINDS[direct].service is not None


def test_every_agent_is_a_template_of_the_project_number_and_every_product_has_one_service() -> None:
    for s in REGISTRY:
        assert s.agents and all("{n}" in a for a in s.agents)
        assert all(COVERED_PRODUCTS[p] == s.name for p in s.products)


def test_each_service_ships_its_rules_and_their_source_in_its_package() -> None:
    from rotator.rules import RULES, SOURCES

    for s in REGISTRY:
        shipped = part(s.name, "rules")
        assert SOURCES[s.name] is shipped.SOURCE and shipped.SOURCE.service
        assert shipped.RULES and all(r in RULES for r in shipped.RULES)
        assert all(s.name in r.sources for r in shipped.RULES), s.name  # its own page says so
    # Every rule once, in number order, whoever ships it.
    assert [r.number for r in RULES] == sorted({r.number for r in RULES})
