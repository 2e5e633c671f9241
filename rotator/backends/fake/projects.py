"""Other projects in the fake world. The world file is one project's (`project:`), but a
key can protect resources of other projects: Firestore databases, Cloud Run services and
functions named `projects/OTHER/...` belong to OTHER, as do `other_resources` named so.
`FakeBackend.for_project(OTHER)` is that project as rotator sees it: its lists keep only
what is named under it; Cloud Storage and Dataflow, whose resources the fake keeps in the
world's own project, list nothing there."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from rotator.model import Listing, unreachable_of


def named_under(name: str, project: str, number: str = "") -> bool:
    """Is `projects/P/...` (or `//SERVICE/projects/P/...`) in `project`?"""
    parts = name.lstrip("/").split("/")
    at = parts.index("projects") if "projects" in parts else -1
    return at >= 0 and len(parts) > at + 1 and parts[at + 1] in (project, number)


class OnlyProject:
    """A service of the fake seen from one project: each list keeps its own resources."""

    def __init__(self, inner: Any, project: str):
        self._inner, self._project = inner, project

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if not (callable(value) and (name.startswith("list_") or name == "all_services")):
            return value

        def listed(*args: Any, **kwargs: Any) -> Any:
            found = value(*args, **kwargs)
            kept = [x for x in found if named_under(getattr(x, "name", ""), self._project)]
            return Listing(kept, unreachable=unreachable_of(found))

        return listed


class NoBuckets:
    def list_buckets(self) -> Iterator[Any]:
        return iter([])


class NoJobs:
    def list_jobs(self) -> list[Any]:
        return []


class OtherProject:
    """Another project of the fake world (see the module docstring)."""

    def __init__(self, home: Any, project: str):
        self.home = home
        self.project = project
        self.project_number = home.project_number
        self.kind = home.kind
        self.clock, self.kms, self.inventory, self.organization = (
            home.clock,
            home.kms,
            home.inventory,
            home.organization,
        )
        self.storage: Any = NoBuckets()
        self.dataflow: Any = NoJobs()
        self.firestore = OnlyProject(home.firestore, project)
        self.run = OnlyProject(home.run, project)
        self.functions = OnlyProject(home.functions, project)

    def for_project(self, project: str) -> Any:
        return self.home.for_project(project)

    def describe(self) -> dict[str, str]:
        return {**self.home.describe(), "project": self.project}
