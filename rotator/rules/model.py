"""What a rule is (its texts, its sources, where it is enforced) and what a source is:
the Google Cloud page a service's rules were taken from (each in the service's
rotator/services/<name>/rules.py)."""

from __future__ import annotations

from collections.abc import Mapping
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

    def to_json(self, sources: Mapping[str, Source]) -> dict[str, Any]:
        """The rule as `rotator rules --output json` prints it, its sources spelt out."""
        return {
            "id": self.id,
            "topic": self.topic,
            "summary": self.summary,
            "detail": self.detail,
            "honoured": self.honoured,
            "inferred": self.inferred,
            "inference": self.inference or None,
            "parts": {f"{self.id}.{i}": p for i, p in enumerate(self.parts, 1)},
            "sources": [sources[s].to_json() for s in self.sources],
            "enforced_in": list(self.enforced_in),
        }
