"""The fake answers as Google's APIs do where rotator once misread them (issue 11): the
same findings are shown over the wire in tests/wire/test_rpc_contract.py."""

from __future__ import annotations

from typing import Any

import pytest
from services_world import APP_KEY, EU_KEY, GLOBAL_KEY, SERVICE, services_world

from rotator import apierrors as api
from rotator.backends.fake import FakeBackend
from rotator.inventory import run_services


def make(**overrides: Any) -> FakeBackend:
    return FakeBackend.from_dict(services_world(**overrides))


# -- Cloud Run lists one region at a time ------------------------------------------------------
def test_cloud_run_refuses_the_all_regions_wildcard() -> None:
    """run_v2 ListServicesRequest.parent: "Location must be a valid Google Cloud region,
    and cannot be the "-" wildcard"."""
    b = make()
    with pytest.raises(api.InvalidArgument, match='cannot be the "-" wildcard'):
        b.run.list_services("-")
    with pytest.raises(api.InvalidArgument):
        b.run.list_services("us")  # a multi-region is no Cloud Run region either
    assert [s.name for s in b.run.list_services("us-east1")] == [SERVICE]
    assert b.run.list_services("europe-west1") == []


def test_the_services_a_key_can_serve_are_those_of_its_region() -> None:
    """R7: a regional key serves its own region; a multi-region or global key none."""
    b = make()
    assert [s.name for s in run_services(b, APP_KEY)] == [SERVICE]
    assert run_services(b, EU_KEY) == []
    assert run_services(b, GLOBAL_KEY) == []
