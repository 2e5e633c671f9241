"""Which backend a run talks to, and which projects it may look into: the fake one when a
world file is named, Google Cloud otherwise."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from rotator import apierrors as api
from rotator.backends.base import Backend
from rotator.errors import BadInput

OnRetry = Callable[[BaseException, int], None]


def open_backend(world: str | None, project: str | None, on_retry: OnRetry) -> Backend:
    """The fake backend of `world` (whose project `project`, when given, must be), or the
    real one for `project` (None: from the Application Default Credentials)."""
    if world:
        # Imported here: a run picks one backend and does not pay to import the other.
        from rotator.backends.fake import open_world

        # Typed Any: the concrete backends meet the Backend protocol structurally, not
        # to the letter mypy asks of settable attributes (as everywhere they are opened).
        fake: Any = open_world(world, on_retry=on_retry)
        if project and project != fake.project:
            raise BadInput(
                f"--project {project} does not match the world's project {fake.project}",
                resource=world,
            )
        return fake
    from rotator.backends.gcp import GcpBackend
    from rotator.backends.gcp.retry import RetryPolicy

    real: Any = GcpBackend(project, retry=RetryPolicy(on_retry=on_retry))
    return real


def projects_to_inspect(backend: Backend, more: Iterable[str]) -> tuple[str, ...]:
    """Every project to inspect, the backend's first, each once; an unknown one is bad
    input (check_project)."""
    return checked_projects(backend, (backend.project, *more))


def checked_projects(backend: Backend, projects: Iterable[str]) -> tuple[str, ...]:
    """`projects`, each once, after checking each exists (check_project)."""
    chosen = tuple(dict.fromkeys(projects))
    for project in chosen:
        check_project(backend, project)
    return chosen


def check_project(backend: Backend, project: str) -> None:
    """A project rotator is asked to look into must exist, or it would be reported as one
    with nothing in it: bad input naming it. The fake knows the projects its world names;
    Google answers the project's Cloud Storage service agent only for a project the caller
    can see (404 or 403 otherwise, which are the same to a caller)."""
    if project in (backend.project, backend.project_number):
        return
    world_projects = getattr(backend, "projects", None)  # the fake: those its world names
    if world_projects is not None:
        known: set[str] = world_projects()
        if project not in known:
            raise BadInput(
                f"--project {project}: project {project} not found (the world names "
                f"{', '.join(sorted(known))})",
                resource=f"projects/{project}",
            )
        return
    try:
        backend.for_project(project)
    except (api.NotFound, api.PermissionDenied) as e:
        raise BadInput(
            f"--project {project}: project {project} not found or not visible to the caller ({e})",
            resource=f"projects/{project}",
        ) from None
