"""The rules of Cloud Run functions (R42), in the project's words: the service's part of
`rotator rules` (the catalogue gathers each service's from its package)."""

from __future__ import annotations

from rotator.rules.model import Rule, Source

# The page these rules were taken from, in the language it was read in.
SOURCE = Source(
    "Cloud Run functions",
    "Protect your data with CMEK",
    "https://cloud.google.com/functions/docs/securing/cmek",
    "English",
)

RULES: tuple[Rule, ...] = (
    Rule(
        "R42",
        "Cloud Run functions",
        "A function always uses its key's primary version and cannot choose one; with CMEK it "
        "also needs an Artifact Registry repository under the same key.",
        "Turning CMEK on for an existing function means deploying its source again.",
        "Functions are redeployed after a rotation; a move to a new key first gets a "
        "repository under that key.",
        ("functions",),
        (
            "rotator.services.functions.steps",
            "rotator.services.functions.fake",
            "rotator.services.functions.spec",
        ),
    ),
)
