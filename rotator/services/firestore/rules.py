"""The rules of Firestore (R20-R24), in the project's words: the service's part of
`rotator rules` (the catalogue gathers each service's from its package)."""

from __future__ import annotations

from rotator.rules.model import Rule, Source

FS = "Firestore"

# The page these rules were taken from, in the language it was read in.
SOURCE = Source(
    "Firestore",
    "Customer-managed encryption keys (CMEK)",
    "https://cloud.google.com/firestore/docs/cmek",
    "Traditional Chinese",
)

RULES: tuple[Rule, ...] = (
    Rule(
        "R20",
        FS,
        "A database's key is set when it is created and never changes; CMEK cannot be added "
        "to an existing database.",
        "Another key means exporting and importing into a new database, or restoring a "
        "backup into a new database under the new key.",
        "replace-key leaves databases on the old key and reports them, with the migration "
        "path; --set firestore=restore restores the newest backup under the new key.",
        ("firestore",),
        (
            "rotator.services.firestore.fake",
            "rotator.services.firestore.steps",
            "rotator.services.firestore.uses",
        ),
    ),
    Rule(
        "R21",
        FS,
        "After a rotation Firestore re-encrypts the database under the new primary; both "
        "versions must stay enabled until it has finished.",
        "The database's cmek_config.active_key_version lists the versions it still uses; "
        "once re-encryption is done, the old version may go.",
        "rotate-key waits for it (exit 75, or --wait); an active version pins its version "
        "against disable and destroy.",
        ("firestore",),
        (
            "rotator.services.firestore.steps",
            "rotator.services.firestore.spec",
            "rotator.services.firestore.fake",
        ),
    ),
    Rule(
        "R22",
        FS,
        "Firestore checks the key every 5 minutes; within 10 minutes of losing it every call "
        "fails with FAILED_PRECONDITION.",
        "Imports and exports in progress fail for good, index builds pause. Re-enabling the "
        "version, restoring a destroy-scheduled one or granting the agent again brings the "
        "database back, usually within minutes, sometimes hours.",
        "disable-key says which databases stop; the safe playbooks never disable a version "
        "a database still uses.",
        ("firestore",),
        (
            "rotator.services.firestore.fake",
            "rotator.services.firestore.spec",
            "rotator.services.firestore.steps",
        ),
    ),
    Rule(
        "R23",
        FS,
        "With an external (Cloud EKM) key, Firestore keeps a database serving for up to an "
        "hour while it cannot reach the key, then takes it offline.",
        "Calls then fail with FAILED_PRECONDITION, as under R22.",
        "disable-key on an EXTERNAL key says so for each database it stops: a revocation made "
        "only at the external key manager is not felt for up to an hour.",
        ("firestore",),
        ("rotator.steps.kms",),
    ),
    Rule(
        "R24",
        FS,
        "A backup is encrypted under the primary version of the moment it was taken, so every "
        "unexpired backup needs that version.",
        "A restore goes into a new database, under a new CMEK key, Google default encryption, "
        "or the backup's own encryption.",
        "An unexpired backup pins its version against destroy (not disable) until its expire time.",
        ("firestore",),
        (
            "rotator.services.firestore.uses",
            "rotator.services.firestore.fake",
            "rotator.services.firestore.steps",
        ),
    ),
)
