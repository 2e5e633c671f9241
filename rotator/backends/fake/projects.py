"""Other projects in the fake world. The world file is one project's (`project:`), but a
key can protect resources of other projects: Firestore databases, Cloud Run services and
functions named `projects/OTHER/...` belong to OTHER, as do `other_resources` named so.
`FakeBackend.for_project(OTHER)` is that project as rotator sees it: its lists keep only
what is named under it; Cloud Storage and Dataflow, whose resources the fake keeps in the
world's own project, list nothing there."""

from __future__ import annotations

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


class NothingHere:
    """A service whose resources the fake keeps in the world's own project (they are not
    named under one), seen from another: every list is empty."""

    def __getattr__(self, name: str) -> Any:
        if not name.startswith("list_"):
            raise AttributeError(name)
        return lambda *args, **kwargs: iter([]) if name == "list_buckets" else []


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
        # Each service: its lists keep what is named under this project, for a fake
        # whose resources say their project (resource_names); nothing, for the others.
        for name, fake in home.fakes().items():
            setattr(
                self, name, OnlyProject(fake, project) if hasattr(fake, "resource_names") else NothingHere()
            )

    def for_project(self, project: str) -> Any:
        return self.home.for_project(project)

    def describe(self) -> dict[str, str]:
        return {**self.home.describe(), "project": self.project}
