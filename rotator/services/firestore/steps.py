"""Firestore steps: wait for re-encryption after a rotation (R21); report that a
database cannot leave its key (R20); opt-in restore of the newest backup into a new
database under the new key (R20, R24)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from rotator import apierrors as api
from rotator.changes import Change
from rotator.errors import Refused, Stale, Waiting
from rotator.names import key_id, version_name
from rotator.services.firestore.spec import FIRESTORE_ACTIVE
from rotator.services.firestore.spec import SPEC as FIRESTORE
from rotator.steps.base import PARAM_REF, PlannedStep, ReportStep, StepKind, register, strict
from rotator.timeutil import format_time

if TYPE_CHECKING:
    from rotator.steps.base import ApplyContext, PlanContext


@register
class WaitReencryption(StepKind):
    name = "firestore.wait_reencryption"
    summary = (
        "Wait until every Firestore database on the key is re-encrypted with the new "
        "primary; until then the old versions stay enabled (exit 75 or --wait)"
    )
    rules = ["R21", "R22"]
    with_schema = strict({"key": PARAM_REF}, ["key"])
    param_fields = ("key",)

    def plan(self, ctx: PlanContext, step_id: str, params: dict[str, Any]) -> PlannedStep:
        key = ctx.key(params["key"])
        inv = ctx.inventory(key)
        dbs = (
            []
            if "firestore" in inv.uninspected
            else [d.name for d in FIRESTORE.reads(ctx.backend).list_databases() if d.kms_key == key]
        )
        for db in dbs:
            ctx.resolved_uses.add((FIRESTORE_ACTIVE, db))
        return PlannedStep(
            id=step_id,
            kind=self.name,
            title=f"wait for re-encryption of {len(dbs)} Firestore database(s) with the new primary",
            rules=self.rules,
            targets=dbs,
            changes=[{"action": Change.WAIT_REENCRYPTION, "database": d} for d in dbs],
            notes=[
                "Firestore re-encrypts with the new primary on its own; both versions must stay "
                "enabled until it finishes (R21), or every call fails (R22)"
            ]
            if dbs
            else [],
            data={"key": key, "retiring": sorted(inv.versions), "databases": dbs},
        )

    def apply(self, ctx: ApplyContext, step: PlannedStep) -> dict[str, Any]:
        retiring = {version_name(step.data["key"], n) for n in step.data["retiring"]}

        def pending() -> list[tuple[str, str]]:
            out = []
            for name in step.data["databases"]:
                db = FIRESTORE.api(ctx.backend).get_database(name)
                if retiring & set(db.active_key_versions):
                    due = format_time(db.reencryption_due) if db.reencryption_due else "an unknown time"
                    out.append((name, due))
            return out

        primary = ctx.backend.kms.get_crypto_key(step.data["key"]).primary
        if primary is not None and primary in step.data["retiring"]:
            raise Stale(
                f"{version_name(step.data['key'], primary)}, which this plan retires, is primary again; "
                "re-encryption will never leave it; plan again",
                resource=step.data["key"],
                rule="R21",
            )
        waiting = ctx.wait_until(lambda: not pending())
        if waiting:
            name, due = pending()[0]
            raise Waiting(
                f"{name}: re-encryption with the new primary is not complete (expected by {due}); "
                "the old versions stay enabled (R21); run apply again later, or pass --wait",
                resource=name,
                rule="R21",
            )
        return {"databases_reencrypted": len(step.data["databases"])}


@register
class ReportFixedKey(ReportStep):
    name = "firestore.report_fixed_key"
    summary = (
        "Report every Firestore database on the old key: its key cannot change, so it "
        "keeps the old key (and its versions enabled) until migrated"
    )
    rules = ["R20", "R24"]
    with_schema = strict({"key": PARAM_REF, "new_key": PARAM_REF}, ["key", "new_key"])
    param_fields = ("key", "new_key")

    def plan(self, ctx: PlanContext, step_id: str, params: dict[str, Any]) -> PlannedStep:
        key, new_key = ctx.key(params["key"]), ctx.key(params["new_key"])
        inv = ctx.inventory(key)
        dbs = (
            []
            if "firestore" in inv.uninspected
            else [d for d in FIRESTORE.reads(ctx.backend).list_databases() if d.kms_key == key]
        )
        notes = [
            f"{d.name} stays on {key}: a database's key is fixed at creation (R20); to move it, "
            f"restore its newest backup into a new database under {new_key} (`--set firestore=restore`) "
            "or export and import, then cut clients over by hand"
            for d in dbs
        ]
        return PlannedStep(
            id=step_id,
            kind=self.name,
            title=f"{len(dbs)} Firestore database(s) keep {key} (R20)",
            rules=self.rules,
            targets=[d.name for d in dbs],
            notes=notes,
            data={"databases": [d.name for d in dbs]},
        )


def restored_id(database: str, new_key: str) -> str:
    short = database.rsplit("/", 1)[1].strip("()")
    return re.sub(r"[^a-z0-9-]", "-", f"{short}-{key_id(new_key).lower()}")[:63].strip("-")


@register
class RestoreNewestBackup(StepKind):
    name = "firestore.restore_newest_backup"
    summary = (
        "Opt-in migration: restore each database's newest backup into a new database under "
        "the new key; the cut-over stays manual"
    )
    rules = ["R20", "R24", "R7"]
    with_schema = strict({"key": PARAM_REF, "new_key": PARAM_REF}, ["key", "new_key"])
    param_fields = ("key", "new_key")

    def plan(self, ctx: PlanContext, step_id: str, params: dict[str, Any]) -> PlannedStep:
        key, new_key = ctx.key(params["key"]), ctx.key(params["new_key"])
        backups = FIRESTORE.reads(ctx.backend).list_backups()
        changes, notes = [], []
        for db in FIRESTORE.reads(ctx.backend).list_databases():
            if db.kms_key != key:
                continue
            mine = sorted((b for b in backups if b.database == db.name), key=lambda b: b.snapshot_time)
            if not mine:
                notes.append(f"{db.name} has no backup to restore; create one first, or export/import (R20)")
                continue
            newest = mine[-1]
            if newest.kms_key_version:
                state = ctx.backend.kms.get_crypto_key_version(newest.kms_key_version).state
                if state != "ENABLED":
                    raise Refused(
                        f"{newest.name} is under {newest.kms_key_version}, which is {state}: it "
                        "cannot be restored (R22, R24); enable the version or pick another backup",
                        resource=newest.name,
                        rule="R24",
                    )
            target = f"projects/{ctx.backend.project}/databases/{restored_id(db.name, new_key)}"
            changes.append(
                {
                    "action": Change.RESTORE_DATABASE,
                    "database": db.name,
                    "backup": newest.name,
                    "snapshot_time": format_time(newest.snapshot_time),
                    "new_database": target,
                    "kms_key": new_key,
                }
            )
            notes.append(
                f"cut-over (manual): {target} holds {db.name} as of {format_time(newest.snapshot_time)}; "
                "writes after that are not in it. Stop writers, restore or replay the gap, point clients "
                f"at {target}, then delete {db.name}; only then can {key}'s versions be disabled, and "
                "its backups pin them until they expire (R20, R24)"
            )
        return PlannedStep(
            id=step_id,
            kind=self.name,
            title=f"restore {len(changes)} database(s) under {new_key}",
            rules=self.rules,
            targets=[c["database"] for c in changes],
            changes=changes,
            notes=notes,
            data={"restores": changes},
        )

    def apply(self, ctx: ApplyContext, step: PlannedStep) -> dict[str, Any]:
        done = 0
        for r in step.data["restores"]:
            try:
                existing = FIRESTORE.api(ctx.backend).get_database(r["new_database"])
            except api.NotFound:
                existing = None
            if existing is not None:
                if existing.kms_key != r["kms_key"]:
                    raise api.AlreadyExists(
                        f"{r['new_database']} exists under another key", resource=r["new_database"]
                    )
                continue
            FIRESTORE.api(ctx.backend).restore_database(
                r["new_database"].rsplit("/", 1)[1], r["backup"], kms_key=r["kms_key"]
            )
            done += 1
            ctx.emit(f"{r['new_database']}: restored from {r['backup']} under {r['kms_key']}")
        return {"databases_restored": done}
