"""The propagation window of a new primary (R43 with R2): a deploy recorded under a
version, made while that version's promotion still propagated, may be under the
version that was primary before, so it pins that one too (PROPAGATION).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from rotator.model import ENABLED, CryptoKey, CryptoKeyVersion
from rotator.pins import PROPAGATION, PROPAGATION_TEXT, PinGroup, VersionUse
from rotator.services import PIN_KINDS, WINDOW_OF


@dataclass(frozen=True)
class PrimaryWindow:
    """The propagation window of one version (PROPAGATION from when it became primary).
    A revision (serving or idle) or a function that KMS's word puts under `primary`
    (rotator recorded the primary of its deploy) but that was deployed before `ends` may
    be under one of `previous` instead, so it pins them too: until it is redeployed after
    `ends` (serving, a function), or deleted (idle)."""

    primary: str  # the version's name
    number: int
    ends: datetime | None  # None: the version's create time is unknown (the safe side: open)
    previous: tuple[int, ...]
    starts: datetime | None = None  # its create time (None: unknown)

    def holds(self, version: str | None, deployed: datetime | None) -> bool:
        """Deployed under the primary by KMS's word, while the change still propagated.
        No deploy time: a world file's own resource, deployed before its clock started;
        deployed before the version existed: not in its window (a deploy that did not
        change the version, e.g. a function update that did not rebuild)."""
        return (
            version == self.primary
            and deployed is not None
            and (self.starts is None or deployed >= self.starts)
            and (self.ends is None or deployed < self.ends)
        )

    def pin(self, uses: dict[int, VersionUse], kind: str, resource: str, what: str) -> None:
        for n in self.previous:
            group = uses[n].group(kind, resource)
            group.add(what)
            # Several windows may pin the same group: it frees after the last one.
            if group.after is None or (self.ends is not None and self.ends > group.after):
                group.after = self.ends
            group.detail = (
                PIN_KINDS[kind].window_note
                + f"was deployed within {PROPAGATION_TEXT} of version {self.number} becoming primary, "
                "so it may be under this version (Cloud KMS propagation)"
            )


# The windows of a key's versions, by version name (a resource's recorded version).
Windows = dict[str, PrimaryWindow]


def pin_window(
    windows: Windows | None,
    uses: dict[int, VersionUse],
    direct: str,
    version: str | None,
    deployed: datetime | None,
    resource: str,
    what: str,
) -> None:
    """A use recorded under a version and deployed in that version's window also pins
    the versions that may have been primary before it, as the window kind of `direct`."""
    window = (windows or {}).get(version or "")
    if window is not None and window.holds(version, deployed):
        window.pin(uses, WINDOW_OF[direct], resource, what)


def redeploy_window_pin(kind: str, resource: str, what: str) -> PinGroup:
    """What a redeploy right after a plan's own rotation will pin: the primary it
    replaces, until a redeploy after the new primary's window (whose end is known only
    once the apply made it; PinGroup.frees_when)."""
    group = PinGroup(kind, resource)
    group.add(what)
    group.detail = (
        "will be deployed right after this plan makes a new primary, so it may be under this "
        f"version (Cloud KMS propagation, up to {PROPAGATION_TEXT})"
    )
    return group


def primary_windows(
    crypto_key: CryptoKey, versions: list[CryptoKeyVersion], replaced: tuple[int, int] | None = None
) -> Windows:
    """The window of every version that had one (some version may have been primary
    before it), whatever its state now and whether it is still primary: a deploy in a
    version's window pins what may have been primary before, after the primary moved on.
    The versions that may have been primary meanwhile: the one it replaced when rotator's
    own apply made it primary (`replaced` = (made, replaced)); otherwise every ENABLED
    version created before it (numbers follow creation), the safe side. When a version
    became primary is read as its create time: a lower bound, right for rotator's
    rotations (created and made primary at once); a version made primary by hand long
    after its creation opens a later window that rotator does not see (README, "real
    Google Cloud backend")."""
    made, before = replaced or (None, None)
    candidates = [v.number for v in versions if v.state == ENABLED]
    out: Windows = {}
    for current in versions:
        previous: tuple[int, ...]
        if (
            made == current.number
            and before is not None
            and before != made
            and any(v.number == before for v in versions)
        ):
            previous = (before,)
        else:
            previous = tuple(n for n in candidates if n < current.number)
        if previous:
            ends = current.create_time + PROPAGATION if current.create_time else None
            out[current.name] = PrimaryWindow(
                current.name, current.number, ends, previous, current.create_time
            )
    return out
