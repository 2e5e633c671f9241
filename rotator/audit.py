"""The audit record of every apply: JSON lines beside the journal (PLAN.json.audit.jsonl),
appended, never rewritten: who ran it, when, which plan, and every step's changes with
their result. The journal is for resuming; this is for proving what happened."""

from __future__ import annotations

import getpass
import os
import socket
from datetime import datetime, timezone
from typing import Any

from rotator.places import Place, is_gcs


def audit_path(plan_path: str) -> str:
    return f"{plan_path}.audit.jsonl"


class Audit:
    def __init__(self, place: Place, plan: dict[str, Any], plan_sha256: str, who: str):
        self.place = place
        self.base = {
            "plan": place.name if is_gcs(place.name) else os.path.abspath(place.name),
            "plan_sha256": plan_sha256,
            "key": plan["params"]["key"],
            "playbook": plan["playbook"]["name"],
        }
        self.write(
            "apply.started",
            who=who,
            user=_local_user(),
            host=socket.gethostname(),
            target=plan["target"],
            # What the operator accepted when planning (e.g. an unreadable Cloud KMS Inventory).
            acknowledgements=plan.get("acknowledgements", []),
        )

    def write(self, event: str, **fields: Any) -> None:
        record = {
            "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "event": event,
            **self.base,
            **fields,
        }
        self.place.append_audit(record)

    def step(self, step: dict[str, Any], outcome: str, result: Any) -> None:
        self.write(
            "step." + outcome, step=step["id"], kind=step["kind"], changes=step["changes"], result=result
        )


def _local_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return str(os.getuid())
