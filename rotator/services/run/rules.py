"""The rules of Cloud Run (R40, R41, R43), in the project's words: the service's part of
`rotator rules` (the catalogue gathers each service's from its package)."""

from __future__ import annotations

from rotator.rules.model import Rule, Source

RUN = "Cloud Run"

# The page these rules were taken from, in the language it was read in.
SOURCE = Source(
    "Cloud Run",
    "Customer-managed encryption keys (CMEK) for Cloud Run",
    "https://cloud.google.com/run/docs/securing/using-cmek",
    "Japanese",
)

RULES: tuple[Rule, ...] = (
    Rule(
        "R40",
        RUN,
        "A Cloud Run service's key belongs to each revision, and every configuration change "
        "creates a new revision.",
        "The key is run.googleapis.com/encryption-key (template.encryption_key in the v2 "
        "API). After a revocation a service either starts no new instance (prevent-new) or "
        "shuts down after encryption-key-shutdown-hours (shut-down).",
        "A service moves to another key or version by a new revision, never by editing one.",
        ("run",),
        ("rotator.services.run.fake", "rotator.services.run.steps"),
    ),
    Rule(
        "R41",
        RUN,
        "With its key disabled, destroyed or revoked, a service keeps its running instances "
        "(or shuts them down, R40) but starts no new one, and deploys only under another "
        "valid key.",
        "The service log names the cause: no decrypter permission, KMS quota exceeded, key "
        "disabled, key destroyed, key scheduled for deletion. Functions behave the same: "
        "executions in progress finish, new ones fail.",
        "Revisions and functions are redeployed off a version before it is disabled; "
        "disable-key lists the services that stop scaling.",
        ("run", "functions"),
        ("rotator.services.run.fake", "rotator.services.functions.fake", "rotator.services.run.steps"),
    ),
    Rule(
        "R43",
        RUN,
        "A revision's image is wrapped under the primary version of the moment it was "
        "deployed, and new instances of it need that version.",
        "So a revision that serves traffic pins that version until a new revision replaces "
        "it; one without traffic pins it only against destroy, until it is deleted.",
        "rotate-key and replace-key deploy a new revision of every service that serves from "
        "a retiring version.",
        ("run",),
        ("rotator.services.run.steps", "rotator.services.run.fake", "rotator.windows"),
        inferred=True,
        inference="the source says no new instance starts without the key, not which version it "
        "needs; rotator assumes the one that was primary at deploy time, the safe side",
    ),
)
