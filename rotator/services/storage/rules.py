"""The rules of Cloud Storage (R10-R19), in the project's words: the service's part of
`rotator rules` (the catalogue gathers each service's from its package)."""

from __future__ import annotations

from rotator.rules.model import Rule, Source

GCS = "Cloud Storage"

# The page these rules were taken from, in the language it was read in.
SOURCE = Source(
    "Cloud Storage",
    "Customer-managed encryption keys",
    "https://cloud.google.com/storage/docs/encryption/customer-managed-keys",
    "Simplified Chinese",
)

RULES: tuple[Rule, ...] = (
    Rule(
        "R10",
        GCS,
        "An object gets its key when it is uploaded, copied or rewritten; a bucket may have a "
        "default key for new objects, and a key named in the request wins over it.",
        "The key covers the object's data, CRC32C and MD5 only. Its name and most metadata "
        "are not under the key: they stay listable, and the object deletable, without it.",
        "replace-key switches bucket defaults (R13.1) and names the destination key in every "
        "rewrite, so neither depends on the other.",
        ("storage",),
        ("rotator.services.storage.fake",),
    ),
    Rule(
        "R11",
        GCS,
        "An object changes key only by being rewritten; a metadata update cannot do it.",
        "Some tools that look like an update (gcloud storage objects update) rewrite the object underneath.",
        "Objects are moved with Rewrite Object, one per object, carrying the generation as a "
        "precondition so that a concurrent write is never overwritten.",
        ("storage",),
        ("rotator.services.storage.steps",),
    ),
    Rule(
        "R12",
        GCS,
        "After a rotation Cloud Storage encrypts new writes under the new primary and leaves "
        "the old versions enabled, so older objects stay readable.",
        "This holds for uploads into a bucket whose default is the key and for uploads, "
        "copies and rewrites that name it.",
        "rotate-key rewrites the objects still under old versions itself; nothing else moves them.",
        ("storage",),
        ("rotator.steps.kms",),
    ),
    Rule(
        "R13",
        GCS,
        "Replacing a key runs in four steps: bucket defaults, then the requests that name "
        "the old key, then every object, then disabling the old key and watching the logs.",
        "The order keeps new data from landing under the old key while the old data moves.",
        "replace-key follows the runbook: step 2 is a manual check shown in the plan and "
        "recorded by apply; apply --watch does the watching of step 4.",
        ("storage",),
        ("rotator.services.storage.steps", "rotator.steps.manual", "rotator.steps.kms"),
        parts=(
            "point every bucket whose default key is the old key at the new key",
            "find the code and requests that name the old key and change them (by hand)",
            "rewrite every object under the old key, in every bucket, to the new key",
            "disable every version of the old key, then watch client and service logs for failures",
        ),
    ),
    Rule(
        "R14",
        GCS,
        "An object under a disabled or destroyed version cannot be downloaded, copied or "
        "rewritten; re-enabling the version brings it back, destroying loses it.",
        "So every object under a version has to be found, in every bucket, and rewritten to "
        "a new version, a new key or Google default encryption before the version goes.",
        "A live object under a version pins it against disable and destroy until it is "
        "rewritten; disable-key lists the objects it makes unreadable.",
        ("storage",),
        ("rotator.services.storage.uses", "rotator.steps.kms", "rotator.services.storage.fake"),
    ),
    Rule(
        "R15",
        GCS,
        "While the primary is disabled or destroyed, uploads, copies and rewrites that name "
        "the key, or land in a bucket that defaults to it, fail.",
        "Removing the bucket's default key, or naming another valid key in the request, "
        "lets writes succeed again (R3).",
        "A bucket default on the key pins its primary; replace-key moves the default first.",
        ("storage",),
        ("rotator.guards", "rotator.backends.fake.kms", "rotator.steps.preflight"),
    ),
    Rule(
        "R16",
        GCS,
        "A version under an object kept by a locked retention (the bucket's policy or the "
        "object's own) or by a hold may be destroyed only once every such retention has "
        "expired and no hold is left; otherwise the data is lost for good.",
        "Holds are temporary or event-based. Once every retention has passed and every hold "
        "is gone, the version may be destroyed even if the objects stay.",
        "Such objects pin their version against disable and destroy, with the date they free "
        "up where there is one; they are never rewritten before that.",
        ("storage",),
        ("rotator.storage_rules", "rotator.services.storage.spec", "rotator.services.storage.fake"),
        inference="that such objects cannot be rewritten before then either, which follows from what "
        "retention and holds mean",
    ),
    Rule(
        "R17",
        GCS,
        "Listing CMEK objects through the JSON API returns no CRC32C or MD5; getting them "
        "costs one extra GET per object and makes listing much slower.",
        "Tools that need the checksums (gcloud storage) pay that GET for every object.",
        "rotator never needs the checksums: it lists once, without a GET per object.",
        ("storage",),
        ("rotator.services.storage.gcp",),
    ),
    Rule(
        "R18",
        GCS,
        "Noncurrent and soft-deleted generations keep the version they were written under; "
        "a rewrite moves only the live generation.",
        "Rewriting in place leaves the previous generation behind under the old version: "
        "noncurrent in a versioned bucket, soft-deleted (7 days by default on new buckets) "
        "until its hard-delete time otherwise.",
        "A noncurrent generation pins its version against disable and destroy; a "
        "soft-deleted one against destroy, until its hard-delete time.",
        ("storage",),
        ("rotator.services.storage.spec", "rotator.services.storage.steps", "rotator.services.storage.fake"),
        inferred=True,
        inference="the source does not speak of noncurrent or soft-deleted generations; rotator "
        "assumes they keep the version they were written under, the safe side",
    ),
    Rule(
        "R19",
        GCS,
        "An object encrypted with a customer-supplied key (CSEK) has no CMEK: one object "
        "takes one method at a time.",
        "A CSEK named in a request wins over the bucket's default CMEK key.",
        "Such an object is under no key version: it neither pins a version nor is rewritten.",
        ("storage",),
        ("rotator.services.storage.fake", "rotator.services.storage.world"),
    ),
)
