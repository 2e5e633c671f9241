"""The fake's Cloud Run functions enforce what the cloud enforces: a redeploy takes its
repository's key and the current primary, and nothing runs or redeploys under a
disabled version (R42).

Backends: fake.
"""

from __future__ import annotations

import pytest
from service_fakes import (
    NEW_REPOSITORY,
    assert_rule,
    disable,
    enable,
    rotate,
)
from worlds import APP_2026_KEY as NEW_KEY
from worlds import (
    APP_KEY,
    FUNCTION,
    REPOSITORY,
    v,
)

from rotator import apierrors as api
from rotator.backends.fake import FakeBackend

# -- R42: functions -------------------------------------------------------------------------


def test_r42_redeploy_under_a_key_whose_repository_is_under_another_key_fails(b: FakeBackend) -> None:
    with pytest.raises(api.FailedPrecondition) as err:
        b.functions.redeploy_function(FUNCTION, kms_key=NEW_KEY)
    assert err.value.rule == "R42"
    assert REPOSITORY in err.value.message
    fn = b.functions.get_function(FUNCTION)
    assert (fn.kms_key, fn.kms_key_version, fn.docker_repository) == (APP_KEY, v(APP_KEY, 2), REPOSITORY)


def test_r42_a_key_version_instead_of_a_key_is_invalid(b: FakeBackend) -> None:
    with pytest.raises(api.InvalidArgument) as err:
        b.functions.redeploy_function(FUNCTION, kms_key=v(APP_KEY, 3))
    assert_rule(err, "R42")


def test_r42_a_repository_under_the_new_key_then_redeploy_uses_its_primary(b: FakeBackend) -> None:
    b.functions.create_repository(NEW_REPOSITORY, kms_key=NEW_KEY)
    assert b.functions.get_repository_key(NEW_REPOSITORY) == NEW_KEY
    fn = b.functions.redeploy_function(FUNCTION, kms_key=NEW_KEY, docker_repository=NEW_REPOSITORY)
    assert (fn.kms_key, fn.kms_key_version, fn.docker_repository) == (NEW_KEY, v(NEW_KEY, 1), NEW_REPOSITORY)
    b.functions.invoke(FUNCTION)
    with pytest.raises(api.AlreadyExists):
        b.functions.create_repository(NEW_REPOSITORY, kms_key=NEW_KEY)


def test_r42_a_redeploy_after_a_rotation_takes_the_new_primary(b: FakeBackend) -> None:
    rotate(b)
    fn = b.functions.redeploy_function(FUNCTION)
    assert fn.kms_key_version == v(APP_KEY, 4)


def test_r42_invoke_fails_while_the_function_version_is_disabled(b: FakeBackend) -> None:
    b.functions.invoke(FUNCTION)
    disable(b, v(APP_KEY, 2))
    with pytest.raises(api.FailedPrecondition) as err:
        b.functions.invoke(FUNCTION)
    assert err.value.rule in ("R41", "R42")
    enable(b, v(APP_KEY, 2))
    b.functions.invoke(FUNCTION)


def test_r42_no_redeploy_under_a_disabled_primary(b: FakeBackend) -> None:
    disable(b, v(APP_KEY, 3))
    with pytest.raises(api.FailedPrecondition):
        b.functions.redeploy_function(FUNCTION)
    assert b.functions.get_function(FUNCTION).kms_key_version == v(APP_KEY, 2)
