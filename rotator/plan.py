"""`rotator plan`: walk a playbook's steps over the inspected world, read-only, and
produce the plan document (`--out PLAN.json`). Its file format (schema, digest, reading
and writing) is rotator.plandoc.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rotator import __version__, guards
from rotator import apierrors as api
from rotator.access import check_access
from rotator.backends.base import ReadOnlyBackend
from rotator.changes import SUMMARY_FIELDS, change_of
from rotator.errors import BadInput
from rotator.inventory import KeyInventory, scan_key
from rotator.names import parse_key
from rotator.pins import PinGroup
from rotator.plandoc import PLAN_SCHEMA_VERSION, seal
from rotator.playbooks import Playbook
from rotator.services import SERVICES
from rotator.steps import REGISTRY, PlannedStep
from rotator.steps.kms import parse_versions
from rotator.steps.rollback import changed_by
from rotator.timeutil import format_time


@dataclass
class PlanSession:
    """The plan builder's side of rotator.steps.base.PlanContext (one per plan)."""

    # Read-only: planning changes nothing, and a mutating call does not type-check.
    backend: ReadOnlyBackend
    params: dict[str, Any]
    emit: Callable[[str], None] = lambda _msg: None
    services: tuple[str, ...] = SERVICES
    # The operator accepted an unreadable Cloud KMS Inventory (README "Cloud KMS Inventory").
    acknowledged: bool = False
    # Projects whose resources rotator inspects (the first is the backend's).
    projects: tuple[str, ...] = ()
    # Pin kinds that earlier steps of this plan will remove (e.g. a rewrite removes
    # live-object pins), so later steps can reason about the world after them.
    resolved: set[str] = field(default_factory=set)
    # The same, for single uses: (pin kind, resource), e.g. one Cloud Run service.
    resolved_uses: set[tuple[str, str]] = field(default_factory=set)
    # key -> the primary an earlier step of this plan replaces (a rotation, R2).
    replaced_primary: dict[str, int] = field(default_factory=dict)
    # Pins that earlier steps of this plan will add: (key, version) -> groups. A revision
    # deployed right after the plan's own rotation pins the replaced primary (PROPAGATION).
    added_pins: dict[tuple[str, int], list[PinGroup]] = field(default_factory=dict)
    _inventories: dict[str, KeyInventory] = field(default_factory=dict)

    def param(self, name: str) -> Any:
        return self.params.get(name)

    def key(self, name: str) -> str:
        value = self.params.get(name)
        if not value:
            raise BadInput(f"parameter {name} is required (--{name.replace('_', '-')})")
        return str(value)

    def inventory(self, key: str) -> KeyInventory:
        if key not in self._inventories:
            self.emit(f"inventory of {key} ...")
            self._inventories[key] = scan_key(
                self.backend,
                key,
                services=self.services,
                progress=lambda b, n: self.emit(f"  gs://{b}: {n} generations listed"),
                projects=self.projects or (self.backend.project,),
                acknowledged=self.acknowledged,
            )
        return self._inventories[key]


def resolve_params(
    playbook: Playbook, key: str | None, new_key: str | None, sets: dict[str, str]
) -> dict[str, Any]:
    """Command-line values -> typed parameters, or BadInput naming the bad one."""
    for flag in ("key", "new_key"):
        if flag in sets:
            raise BadInput(f"--set {flag}=...: give the key with --{flag.replace('_', '-')}, not --set")
    if key is None and sets.get("plan") and "plan" in playbook.parameters:
        key = changed_by(sets["plan"])[0]  # rollback: the key the applied plan acted on
    given: dict[str, Any] = {**sets}
    if key is not None:
        given["key"] = key
    if new_key is not None:
        given["new_key"] = new_key
    out: dict[str, Any] = {}
    for name in given:
        if name not in playbook.parameters:
            flag = f"--{name.replace('_', '-')}" if name in ("key", "new_key") else f"--set {name}=..."
            known = ", ".join(sorted(playbook.parameters))
            raise BadInput(f"playbook {playbook.name} takes no {flag} (parameters: {known})")
    for name, p in playbook.parameters.items():
        value = given.get(name, p.default)
        if value is None:
            if p.required:
                flag = f"--{name.replace('_', '-')}" if name in ("key", "new_key") else f"--set {name}=..."
                raise BadInput(f"playbook {playbook.name} needs {flag}: {p.help}")
            continue
        if p.type == "key":
            out[name] = str(parse_key(str(value), field=f"--{name.replace('_', '-')}"))
        elif p.type == "versions":
            out[name] = parse_versions(value)
        elif p.type == "choice":
            if value not in p.choices:
                raise BadInput(f"--set {name}: {value!r} is not one of {', '.join(p.choices)}")
            out[name] = value
        else:
            out[name] = str(value)
    if "key" not in out:
        raise BadInput(f"playbook {playbook.name} needs --key KEY")
    if out.get("new_key") and out["new_key"] == out["key"]:
        raise BadInput("--new-key is the same key as --key; to rotate a key use rotate-key")
    return out


def _check_keys_exist(backend: ReadOnlyBackend, playbook: Playbook, params: dict[str, Any]) -> None:
    for name, p in playbook.parameters.items():
        if p.type == "key" and params.get(name):
            try:
                backend.kms.get_crypto_key(params[name])
            except api.NotFound:
                raise BadInput(
                    f"--{name.replace('_', '-')}: key {params[name]} not found",
                    resource=params[name],
                    rule="R1",
                ) from None


def _step_applies(when: str | None, params: dict[str, Any]) -> bool:
    if when is None:
        return True
    name, _, value = when.partition("=")
    return str(params.get(name)) == value


def build_plan(
    backend: ReadOnlyBackend,
    playbook: Playbook,
    params: dict[str, Any],
    emit: Callable[[str], None] = lambda _m: None,
    services: tuple[str, ...] = SERVICES,
    *,
    acknowledged: bool = False,
    projects: tuple[str, ...] = (),
) -> dict[str, Any]:
    _check_keys_exist(backend, playbook, params)
    projects = projects or (backend.project,)
    ctx = PlanSession(backend, params, emit, services, acknowledged, projects)
    key = params["key"]
    inv = ctx.inventory(key)
    steps: list[PlannedStep] = []
    for spec in playbook.steps:
        if not _step_applies(spec.when, params):
            continue
        planned = REGISTRY[spec.kind].plan(ctx, spec.id, spec.params)
        if planned is not None:
            steps.append(planned)
    checked = check_access(ctx, steps)  # refuses (exit 3) before anything is written
    doc: dict[str, Any] = {
        "kind": "rotator.plan",
        "schema_version": PLAN_SCHEMA_VERSION,
        "rotator_version": __version__,
        "created": format_time(inv.now),
        "playbook": {"name": playbook.name, "sha256": playbook.sha256},
        "params": params,
        "target": backend.describe(),
        "services": list(services),
        "expect": {
            "key": key,
            "primary": inv.key.primary,
            "versions": {str(n): u.version.state for n, u in sorted(inv.versions.items())},
        },
        "steps": [s.to_json() for s in steps],
        "inventory": inventory_json(inv),
        "projects": list(projects),
        "acknowledgements": acknowledgements(ctx),
        "preflight": checked,
    }
    doc["summary"] = summarize(doc)
    return seal(doc)


def acknowledgements(ctx: PlanSession) -> list[dict[str, Any]]:
    """What the operator accepted on the record (shown in the plan, the ticket and the
    audit record): an unreadable Cloud KMS Inventory, key by key."""
    if not ctx.acknowledged:
        return []
    out = []
    for key, inv in sorted(ctx._inventories.items()):
        view = inv.kms_inventory
        if view is not None and not view.readable:
            out.append(
                {
                    "what": "unreadable_kms_inventory",
                    "key": key,
                    "text": "the operator acknowledged that Cloud KMS Inventory could not be read "
                    f"for {key} ({'; '.join(view.errors)}) and vouches that no product rotator does "
                    "not manage, and no other project, uses it: its versions may be disabled and "
                    "destroyed (plan --acknowledge-unreadable-inventory)",
                }
            )
    return out


def inventory_json(inv: KeyInventory) -> dict[str, Any]:
    versions = []
    for n, use in sorted(inv.versions.items()):
        pins = use.pins()
        disable = guards.disable_blockers(use)
        destroy = guards.destroy_blockers(use)
        frees = guards.frees_up(destroy)
        versions.append(
            {
                "version": use.version.name,
                "number": n,
                "state": use.version.state,
                "primary": use.is_primary,
                "destroy_time": format_time(use.version.destroy_time) if use.version.destroy_time else None,
                "blocks_disable": bool(disable),
                "blocks_destroy": bool(destroy),
                "frees_up": format_time(frees) if frees and destroy else None,
                "uses": [p.to_json() for p in pins],
            }
        )
    return {
        "key": inv.key.name,
        "protection_level": inv.key.protection_level,
        "primary": inv.key.primary,
        "now": format_time(inv.now),
        "bucket_defaults": [f"gs://{b}" for b in inv.default_for],
        "uninspected_services": inv.uninspected,
        "kms_inventory_cross_check": inv.cross_check,
        "kms_inventory": inv.kms_inventory.to_json() if inv.kms_inventory else None,
        "versions": versions,
    }


def summarize(doc: dict[str, Any]) -> dict[str, int]:
    """The plan's counters: each change adds its own (rotator.changes); a step's kept
    versions (data.keep: pinned, so left enabled) are counted as pinned."""
    s = {"steps": len(doc["steps"]), **dict.fromkeys(SUMMARY_FIELDS, 0)}
    for step in doc["steps"]:
        for c in step["changes"]:
            kind = change_of(c)
            for counter, n in (kind.tally(c) if kind is not None else {}).items():
                s[counter] += n
        s["versions_pinned"] += len(step["data"].get("keep", {}))
    return s
