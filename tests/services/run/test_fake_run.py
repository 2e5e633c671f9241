"""The fake's Cloud Run enforces what the cloud enforces: a new revision takes the
current primary and the latest traffic (R40), no new revision or instance under a
disabled key (R41), traffic pinned to older revisions stays there (R43).

Backends: fake.
"""

from __future__ import annotations

import pytest
from service_fakes import (
    disable,
    enable,
    make,
    rotate,
)
from worlds import APP_2026_KEY as NEW_KEY
from worlds import (
    APP_KEY,
    SERVICE,
    revision,
    service,
    v,
)

from rotator import apierrors as api
from rotator.backends.fake import FakeBackend

# -- R40 / R41 / R43: Cloud Run -------------------------------------------------------------


def traffic(backend: FakeBackend) -> dict[str, tuple[str | None, int]]:
    return {
        r.name: (r.kms_key_version, r.traffic_percent) for r in backend.run.get_service(SERVICE).revisions
    }


def test_r40_update_creates_a_revision_under_the_current_primary_with_the_latest_traffic(
    b: FakeBackend,
) -> None:
    svc = b.run.update_service(SERVICE)
    assert svc.latest is not None and svc.latest.name == "api-00003"
    assert traffic(b) == {
        "api-00001": (v(APP_KEY, 1), 0),
        "api-00002": (v(APP_KEY, 2), 0),
        "api-00003": (v(APP_KEY, 3), 100),
    }
    assert svc.latest.kms_key == APP_KEY


def test_r43_after_a_rotation_a_new_revision_takes_the_new_primary(b: FakeBackend) -> None:
    rotate(b)
    assert b.run.get_service(SERVICE).latest.kms_key_version == v(APP_KEY, 2)  # type: ignore[union-attr]
    b.run.update_service(SERVICE)
    assert traffic(b)["api-00003"] == (v(APP_KEY, 4), 100)


def test_r40_update_under_a_new_key_moves_only_the_latest_revision(b: FakeBackend) -> None:
    svc = b.run.update_service(SERVICE, kms_key=NEW_KEY)
    assert svc.latest is not None
    assert (svc.latest.kms_key, svc.latest.kms_key_version) == (NEW_KEY, v(NEW_KEY, 1))


def test_r43_traffic_pinned_to_an_older_revision_stays_there() -> None:
    b = make(
        run=[
            service(
                revisions=[
                    revision("api-00001", v(APP_KEY, 1), 30),
                    revision("api-00002", v(APP_KEY, 2), 70),
                ]
            )
        ]
    )
    b.run.update_service(SERVICE)
    assert traffic(b) == {
        "api-00001": (v(APP_KEY, 1), 30),
        "api-00002": (v(APP_KEY, 2), 0),
        "api-00003": (v(APP_KEY, 3), 70),
    }


def test_r43_a_revision_with_traffic_cannot_be_deleted_an_idle_one_can(b: FakeBackend) -> None:
    with pytest.raises(api.FailedPrecondition):
        b.run.delete_revision(SERVICE, "api-00002")
    b.run.delete_revision(SERVICE, "api-00001")
    assert list(traffic(b)) == ["api-00002"]


def disable_key(backend: FakeBackend, key: str = APP_KEY) -> list[str]:
    names = [x.name for x in backend.kms.list_crypto_key_versions(key) if x.state == "ENABLED"]
    for name in names:
        disable(backend, name)
    return names


def test_r41_no_new_revision_under_a_disabled_key(b: FakeBackend) -> None:
    disable_key(b)
    with pytest.raises(api.FailedPrecondition) as err:
        b.run.update_service(SERVICE)
    assert "R41" in err.value.message
    assert len(traffic(b)) == 2


def test_r41_a_new_revision_under_a_new_valid_key_deploys_although_the_old_is_disabled(
    b: FakeBackend,
) -> None:
    disable_key(b)
    svc = b.run.update_service(SERVICE, kms_key=NEW_KEY)
    assert svc.latest is not None and svc.latest.kms_key_version == v(NEW_KEY, 1)
    b.run.start_instance(SERVICE)


def test_r41_no_new_instance_under_a_disabled_serving_version_until_re_enabled(b: FakeBackend) -> None:
    b.run.start_instance(SERVICE)
    disable(b, v(APP_KEY, 2))
    with pytest.raises(api.FailedPrecondition) as err:
        b.run.start_instance(SERVICE)
    assert err.value.rule == "R41" and "R41" in err.value.message
    assert "api-00002" in err.value.message
    enable(b, v(APP_KEY, 2))
    b.run.start_instance(SERVICE)


def test_r41_a_disabled_idle_revision_does_not_stop_new_instances(b: FakeBackend) -> None:
    disable(b, v(APP_KEY, 1))  # api-00001 serves no traffic
    b.run.start_instance(SERVICE)


def test_r41_a_whole_disabled_key_stops_new_instances(b: FakeBackend) -> None:
    names = disable_key(b)
    with pytest.raises(api.FailedPrecondition, match="R41"):
        b.run.start_instance(SERVICE)
    for name in names:
        enable(b, name)
    b.run.start_instance(SERVICE)
