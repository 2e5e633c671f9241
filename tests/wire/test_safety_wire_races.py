"""Races over the wire (issue 6.3, the gcp backend through the official clients):

* an application writes an object between rotator's listing and its rewrite: the
  rewrite's ifGenerationMatch fails (412), rotator reads the object again, finds the new
  generation under the bucket default's new primary, and leaves it;
* two applies on one key at once: the second refuses (exit 3's Refused), the first
  finishes.

Backends: gcp over the wire.
"""

from __future__ import annotations

import threading
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from safety_support import live_objects, violations
from storage_http import Fault
from test_safety_faults import Wire
from worlds import APP_KEY as APP
from worlds import demo_world, v

from rotator.errors import Refused

BUCKET = "demo-logs"


@pytest.fixture
def wire(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    with ExitStack() as stack:
        yield Wire(tmp_path / "w", demo_world(), stack, monkeypatch)


def test_an_application_write_between_listing_and_rewrite_survives_over_the_wire(wire: Wire) -> None:
    served = wire.storage.backend.storage  # the fake behind the JSON API
    real = served.rewrite_object
    names = sorted(
        n for (b, n), o in live_objects(wire.dump()).items() if b == BUCKET and o["kms_key_version"]
    )
    victims = {names[7], names[100], names[-3]}
    written: dict[str, Any] = {}

    def racing(bucket: str, name: str, **kw: Any) -> Any:
        if bucket == BUCKET and name in victims and name not in written:
            written[name] = served.upload(bucket, name, 777)  # the application, first
        return real(bucket, name, **kw)

    served.rewrite_object = racing
    plan = wire.plan("rotate-key", None, {})
    assert wire.apply(plan)["complete"]
    assert set(written) == victims
    rewrites = [r for r in wire.storage.requests if r.op == "objects.rewrite"]
    assert all("ifGenerationMatch" in r.query for r in rewrites), "a rewrite without its precondition"
    statuses = dict(zip(map(id, wire.storage.requests), wire.storage.statuses, strict=True))
    assert sum(1 for r in rewrites if statuses[id(r)] == 412) == len(victims)
    doc = wire.dump()
    after = live_objects(doc)
    primary = next(k["primary"] for k in doc["kms"] if k["key"] == APP)
    for name, app in written.items():
        o = after[(BUCKET, name)]
        assert (o["generation"], o["size"], o["kms_key_version"]) == (app.generation, 777, v(APP, primary))
    assert violations(doc) == []


def test_two_applies_on_one_key_over_the_wire_the_second_refuses(wire: Wire) -> None:
    plan = wire.plan("rotate-key", None, {})
    other = wire.plan("disable-key", None, {})
    wire.storage.faults.append(Fault(op="objects.rewrite", status=None, delay=0.005))  # slow, no error
    first: dict[str, Any] = {}

    def run() -> None:
        try:
            first["result"] = wire.apply(plan)
        except BaseException as e:  # reported below
            first["error"] = e

    t = threading.Thread(target=run)
    t.start()
    try:
        started = threading.Event()
        for _ in range(2000):
            if wire.storage.count(op="objects.rewrite") > 0:
                started.set()
                break
            t.join(timeout=0.005)
        assert started.is_set() and t.is_alive(), "the first apply did not get to its rewrites"
        from rotator.engine import apply_plan

        for p, name in ((plan, "plan.json"), (other, "other.json")):
            with pytest.raises(Refused, match="another rotator apply is running"):
                apply_plan(wire.gcp, p, "sha-2", str(wire.folder / name))
        assert t.is_alive(), "the first apply ended before the second could race it"
    finally:
        t.join(timeout=120)
    assert "error" not in first, first
    assert first["result"]["complete"]
    assert not (wire.folder / "other.json.journal").exists()
    assert violations(wire.dump()) == []
