"""What a rule is (its texts, its sources, where it is enforced) and the Google Cloud
pages the rules were taken from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Source:
    """A Google Cloud page the rules were taken from, in the language it was read in."""

    service: str
    page: str
    url: str
    language: str

    def to_json(self) -> dict[str, str]:
        return {"service": self.service, "page": self.page, "url": self.url, "language": self.language}


SOURCES: dict[str, Source] = {
    "storage": Source(
        "Cloud Storage",
        "Customer-managed encryption keys",
        "https://cloud.google.com/storage/docs/encryption/customer-managed-keys",
        "Simplified Chinese",
    ),
    "firestore": Source(
        "Firestore",
        "Customer-managed encryption keys (CMEK)",
        "https://cloud.google.com/firestore/docs/cmek",
        "Traditional Chinese",
    ),
    "dataflow": Source(
        "Dataflow",
        "Use customer-managed encryption keys",
        "https://cloud.google.com/dataflow/docs/guides/customer-managed-encryption-keys",
        "English",
    ),
    "run": Source(
        "Cloud Run",
        "Customer-managed encryption keys (CMEK) for Cloud Run",
        "https://cloud.google.com/run/docs/securing/using-cmek",
        "Japanese",
    ),
    "functions": Source(
        "Cloud Run functions",
        "Protect your data with CMEK",
        "https://cloud.google.com/functions/docs/securing/cmek",
        "English",
    ),
}


@dataclass(frozen=True)
class Rule:
    id: str  # "R16"
    topic: str  # the service it is about
    summary: str  # one line, what the cloud does
    detail: str  # the rest of the facts
    honoured: str  # what rotator does about it
    sources: tuple[str, ...]  # keys of SOURCES
    enforced_in: tuple[str, ...]  # modules that enforce or model it; each cites the rule
    inference: str = ""  # what is rotator's inference, not its source's statement
    inferred: bool = False  # the whole rule is (then `inference` says from what)
    parts: tuple[str, ...] = field(default=())  # numbered steps, cited as R13.1, R13.2 ...

    @property
    def number(self) -> int:
        return int(self.id[1:])

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "topic": self.topic,
            "summary": self.summary,
            "detail": self.detail,
            "honoured": self.honoured,
            "inferred": self.inferred,
            "inference": self.inference or None,
            "parts": {f"{self.id}.{i}": p for i, p in enumerate(self.parts, 1)},
            "sources": [SOURCES[s].to_json() for s in self.sources],
            "enforced_in": list(self.enforced_in),
        }
