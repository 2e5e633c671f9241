"""The audit record of every apply: JSON lines beside the journal (PLAN.json.audit.jsonl),
appended, never rewritten: who ran it, when, which plan, and every step's changes with
their result. The journal is for resuming; this is for proving what happened."""

from __future__ import annotations

import getpass
import json
import os
import socket
from datetime import datetime, timezone
from typing import Any


def audit_path(plan_path: str) -> str:
    return f"{plan_path}.audit.jsonl"


class Audit:
    def __init__(self, plan_path: str, plan: dict[str, Any], plan_sha256: str, who: str):
        self.path = audit_path(plan_path)
        self.base = {
            "plan": os.path.abspath(plan_path),
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
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, sort_keys=True, default=str) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def step(self, step: dict[str, Any], outcome: str, result: Any) -> None:
        self.write(
            "step." + outcome, step=step["id"], kind=step["kind"], changes=step["changes"], result=result
        )


def _local_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return str(os.getuid())
