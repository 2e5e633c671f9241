"""The pin kinds no service owns: the key's own (its primary), and what Cloud KMS
Inventory or a list that came back partial says. Every inventory has them, whatever
services it inspects (rotator.services.PIN_KINDS puts PRIMARY first, the rest last)."""

from __future__ import annotations

from rotator.services.spec import PinKind

PRIMARY = "primary"
UNCOVERED = "uncovered_resource"
OTHER_PROJECT = "other_project_resource"
INVENTORY_UNREADABLE = "inventory_unreadable"
UNLISTED = "unlisted_location"

FIRST = (
    PinKind(
        PRIMARY,
        "R3",
        True,
        True,
        "another version is primary",
        # Not in disable-key's report: a key's primary is never disabled while in use.
        "",
        "{resource} is the key's primary version",
    ),
)

LAST = (
    PinKind(
        UNCOVERED,
        "R13",
        True,
        True,
        "it is moved off the key by hand (rotator does not cover its product)",
        "its data becomes unreadable (a product rotator does not cover)",
    ),
    PinKind(
        OTHER_PROJECT,
        "R13",
        True,
        True,
        "its project is inspected too (--project) and rotator lists it there, or an organization "
        "(ROTATOR_ORGANIZATION) lets the search name its project, or it is moved off the key by hand",
        "its data becomes unreadable (a project rotator did not inspect)",
    ),
    PinKind(
        INVENTORY_UNREADABLE,
        "R14",
        True,
        True,
        "Cloud KMS Inventory can be read, or the operator acknowledges "
        "(plan --acknowledge-unreadable-inventory)",
        "whatever else uses the key stops working (Cloud KMS Inventory could not say)",
    ),
    # A list that came back partial (`unreachable`): what it left out was not inspected,
    # so it may use any version (when unsure, assume in use: the safe side; R13 finds every use).
    PinKind(
        UNLISTED,
        "R13",
        True,
        True,
        "the location answers and a new plan lists it in full",
        "not inspected: whatever there uses the key stops working (assumed in use)",
        "{resource} could not be listed (unreachable): assumed in use",
    ),
)
