"""`rotator report`: the fleet view. Every key of one or more projects (Cloud KMS
Inventory's key list), its rotation period and next rotation, the age of its primary,
each version with its state and age, what each version protects (per service: count
and bytes; other products from Cloud KMS Inventory) and which versions nothing protects
(safe to disable, then destroy). Cloud KMS reads go through a per-project quota
(Cloud KMS allows 300 read requests per minute per project by default).

One key's inventory is the same `scan_key` plan and `inventory` use (with a ScanCache:
each bucket and service listed once per project for all its keys), so the report and
a plan never disagree on what pins a version.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from rotator import apierrors as api
from rotator import guards
from rotator.backends.base import Backend
from rotator.inventory import scan_key
from rotator.model import CryptoKey
from rotator.ratelimit import PerMinuteQuota, QuotaKms
from rotator.scan import ScanCache
from rotator.services import service_of
from rotator.services.core import INVENTORY_UNREADABLE, OTHER_PROJECT, UNCOVERED
from rotator.timeutil import format_duration, format_time
from rotator.units import human_bytes

KeyDone = Callable[[str], None]


class _QuotaBackend:
    """The backend as the report sees it: its Cloud KMS reads take a place in the quota."""

    def __init__(self, backend: Backend, quota: PerMinuteQuota):
        self._backend = backend
        self.kms = QuotaKms(backend.kms, quota)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)


def _days(delta: timedelta) -> float:
    return round(delta.total_seconds() / 86400, 1)


def key_entry(
    backend: Any,
    key: CryptoKey,
    project: str,
    now: datetime,
    max_age: timedelta | None,
    projects: tuple[str, ...] = (),
    cache: ScanCache | None = None,
) -> dict[str, Any]:
    """One key's row: its uses are looked up in every reported project (`projects`);
    `cache` keeps what was listed for the report's other keys (each bucket and service
    listed once per project, not once per key)."""
    inv = scan_key(backend, key.name, crypto_key=key, projects=projects or (backend.project,), cache=cache)
    versions = []
    primary_created: datetime | None = None
    for n, use in sorted(inv.versions.items()):
        created = use.version.create_time
        if use.is_primary:
            primary_created = created
        protects: dict[str, dict[str, int]] = {}
        other: dict[str, int] = {}
        for g in use.pins():
            service = service_of(g.kind)
            if service is not None:
                entry = protects.setdefault(service, {"count": 0, "bytes": 0})
                entry["count"] += g.count
                entry["bytes"] += g.bytes
            elif g.kind in (UNCOVERED, OTHER_PROJECT, INVENTORY_UNREADABLE):
                other[g.resource] = other.get(g.resource, 0) + g.count
        versions.append(
            {
                "number": n,
                "state": use.version.state,
                "primary": use.is_primary,
                "created": format_time(created) if created else None,
                "age_days": _days(now - created) if created else None,
                "protects": protects,
                "other_products": other,
                "safe_to_disable": use.version.state == "ENABLED" and not guards.disable_blockers(use),
                "safe_to_destroy": use.version.state == "DISABLED" and not guards.destroy_blockers(use),
            }
        )
    age = now - primary_created if primary_created else None
    return {
        "key": key.name,
        "project": project,
        "location": key.location,
        "protection_level": key.protection_level,
        "rotation_period": format_duration(key.rotation_period) if key.rotation_period else None,
        "next_rotation_time": format_time(key.next_rotation_time) if key.next_rotation_time else None,
        "primary": key.primary,
        "primary_age_days": _days(age) if age is not None else None,
        "too_old": bool(max_age is not None and age is not None and age > max_age),
        "kms_inventory": inv.cross_check,
        "versions": versions,
    }


def _keys_of(backend: Any, project: str, sources: dict[str, str]) -> list[CryptoKey]:
    """A project's keys from Cloud KMS Inventory's key list (one call, no Cloud KMS read);
    when it cannot be read, through Cloud KMS itself: locations, key rings, keys (reads
    that count against the quota)."""
    try:
        keys = backend.inventory.list_crypto_keys(project)
        sources[project] = "Cloud KMS Inventory (KeyDashboardService.ListCryptoKeys)"
        return list(keys)
    except api.ApiError as e:
        sources[project] = f"Cloud KMS (Cloud KMS Inventory could not be read: {e.code})"
    name = f"projects/{project}"
    return [
        key
        for location in backend.kms.list_locations(name)
        for ring in backend.kms.list_key_rings(f"{name}/locations/{location}")
        for key in backend.kms.list_crypto_keys(ring)
    ]


def build_report(
    backend: Backend,
    projects: list[str],
    *,
    max_age: timedelta | None = None,
    quota: PerMinuteQuota | None = None,
    on_keys: Callable[[int], None] = lambda _n: None,
    on_key: KeyDone = lambda _k: None,
) -> dict[str, Any]:
    quota = quota or PerMinuteQuota()
    reading = _QuotaBackend(backend, quota)
    now = backend.clock.now()
    sources: dict[str, str] = {}
    keys_by_project = {p: _keys_of(reading, p, sources) for p in projects}
    inspected = tuple(dict.fromkeys((backend.project, *projects)))
    on_keys(sum(len(k) for k in keys_by_project.values()))
    keys = []
    cache = ScanCache()
    for project, found in keys_by_project.items():
        for key in found:
            keys.append(key_entry(reading, key, project, now, max_age, inspected, cache))
            on_key(key.name)
    return {
        "now": format_time(now),
        "projects": projects,
        "max_age": format_duration(max_age) if max_age else None,
        "kms_reads_per_minute": quota.limit,
        "key_list_source": sources,
        "keys": keys,
        "summary": {
            "keys": len(keys),
            "too_old": sum(k["too_old"] for k in keys),
            "versions": sum(len(k["versions"]) for k in keys),
            "safe_to_disable": sum(v["safe_to_disable"] for k in keys for v in k["versions"]),
            "safe_to_destroy": sum(v["safe_to_destroy"] for k in keys for v in k["versions"]),
        },
    }


def _protects_text(v: dict[str, Any]) -> str:
    parts = [
        f"{service} {e['count']}" + (f" ({human_bytes(e['bytes'])})" if e["bytes"] else "")
        for service, e in v["protects"].items()
    ]
    parts += [f"{t}: {n}" for t, n in v["other_products"].items()]
    return "; ".join(parts) or "nothing"


def _verdict(v: dict[str, Any]) -> str:
    if v["primary"]:
        return "primary"
    if v["safe_to_disable"]:
        return "safe to disable"
    if v["safe_to_destroy"]:
        return "safe to destroy"
    return v["state"].lower() if v["state"] != "ENABLED" else "in use"


def report_text(doc: dict[str, Any]) -> str:
    s = doc["summary"]
    out = [
        f"Report of {', '.join(doc['projects'])} as of {doc['now']}: {s['keys']} key(s), {s['versions']} "
        f"version(s); {s['safe_to_disable']} safe to disable, {s['safe_to_destroy']} safe to destroy"
        + (f"; {s['too_old']} key(s) with a primary older than {doc['max_age']}" if doc["max_age"] else ""),
        "",
    ]
    for k in doc["keys"]:
        flag = "  OLDER THAN --max-age" if k["too_old"] else ""
        rotation = (
            f"every {k['rotation_period']}, next {k['next_rotation_time']}"
            if k["rotation_period"]
            else "none"
        )
        age = f"{k['primary_age_days']}d" if k["primary_age_days"] is not None else "?"
        out.append(f"{k['key']}{flag}")
        out.append(f"  rotation {rotation}; primary {k['primary']} is {age} old; {k['protection_level']}")
        out.append(f"  Cloud KMS Inventory: {k['kms_inventory']}")
        for v in k["versions"]:
            vage = f"{v['age_days']}d" if v["age_days"] is not None else "?"
            out.append(
                f"    {v['number']:>4} {v['state']:<18} {vage:>8}  {_verdict(v):<16} {_protects_text(v)}"
            )
        out.append("")
    return "\n".join(out).rstrip()


CSV_FIELDS = [
    "project",
    "key",
    "rotation_period",
    "next_rotation_time",
    "primary",
    "primary_age_days",
    "too_old",
    "version",
    "state",
    "age_days",
    "protects",
    "safe_to_disable",
    "safe_to_destroy",
]


def report_csv(doc: dict[str, Any]) -> str:
    """One row per version, for spreadsheets."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    for k in doc["keys"]:
        for v in k["versions"]:
            w.writerow(
                {
                    "project": k["project"],
                    "key": k["key"],
                    "rotation_period": k["rotation_period"] or "",
                    "next_rotation_time": k["next_rotation_time"] or "",
                    "primary": k["primary"],
                    "primary_age_days": k["primary_age_days"],
                    "too_old": k["too_old"],
                    "version": v["number"],
                    "state": v["state"],
                    "age_days": v["age_days"],
                    "protects": _protects_text(v),
                    "safe_to_disable": v["safe_to_disable"],
                    "safe_to_destroy": v["safe_to_destroy"],
                }
            )
    return buf.getvalue().rstrip("\n")
