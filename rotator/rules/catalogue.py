"""The rules R1..R43, one entry each (see rotator/rules/__init__.py for how they are
numbered and cited)."""

from __future__ import annotations

from rotator.rules.model import Rule, Source
from rotator.services import REGISTRY, part

KMS = "Cloud KMS"
# Cloud KMS's own rules (R1-R7); each service's (R10 and up) live in its package,
# rotator/services/<name>/rules.py, and join them here in number order.
_KMS_RULES: tuple[Rule, ...] = (
    Rule(
        "R1",
        KMS,
        "A version is ENABLED, DISABLED, DESTROY_SCHEDULED or DESTROYED; a destroy is only "
        "scheduled at first, can be undone until then, and is final after.",
        "Names: a key is projects/P/locations/L/keyRings/R/cryptoKeys/K, one of its versions "
        "adds /cryptoKeyVersions/N. A version may also be PENDING_GENERATION or failed. A "
        "destroy waits out the key's destroy_scheduled_duration (30 days unless set "
        "otherwise); until that time a restore returns the version as DISABLED. After it, "
        "the key material is gone and so is everything only it can decrypt.",
        "Names of any other shape are bad input (exit 2). destroy-versions shows the date a "
        "version becomes DESTROYED; rollback restores what a plan scheduled for destruction "
        "while the window is open, and is refused once a version is DESTROYED.",
        ("run", "firestore", "functions"),
        ("rotator.names", "rotator.backends.fake.kms", "rotator.steps.kms", "rotator.steps.rollback"),
    ),
    Rule(
        "R2",
        KMS,
        "A rotation adds a version and makes it the primary: new data is encrypted under the "
        "primary, older versions keep decrypting until they are disabled.",
        "Keys and key rings are never deleted; only the material of their versions can be "
        "destroyed. A request names a key, not a version: the service picks the primary.",
        "rotate-key creates the version and makes it primary in two calls, and adopts a "
        "version that a lost answer already created instead of making a second one.",
        ("storage", "firestore", "functions"),
        ("rotator.steps.kms", "rotator.backends.fake.kms"),
    ),
    Rule(
        "R3",
        KMS,
        "Without a usable primary version nothing can be encrypted under the key, so a new "
        "primary comes first, then the old one may be disabled or destroyed.",
        "Disabling or destroying the primary stops every write that needs the key until "
        "another version is made primary (what that breaks in Cloud Storage: R15).",
        "Being the primary pins a version: it is never disabled while the key stays in use, "
        "and never destroyed, even when disabled.",
        ("storage",),
        ("rotator.guards", "rotator.services.core", "rotator.backends.fake.kms", "rotator.steps.preflight"),
    ),
    Rule(
        "R4",
        KMS,
        "Disabling or destroying a version can take up to 3 hours to take effect everywhere.",
        "A service may keep working for that long after the change, and fail only later.",
        "A disable that broke nothing in its first minutes proves little: apply --watch keeps "
        "watching the logs, and destroy-versions accepts only versions already DISABLED.",
        ("firestore",),
        ("rotator.guards", "rotator.steps.kms"),
    ),
    Rule(
        "R5",
        KMS,
        "Each service uses the key through its service agents, which need "
        "roles/cloudkms.cryptoKeyEncrypterDecrypter on the key; only roles/owner or "
        "roles/cloudkms.admin may grant it.",
        "The agents (N: the number of the project that runs the service): Cloud Storage "
        "service-N@gs-project-accounts, Cloud Run service-N@serverless-robot-prod, Cloud Run "
        "functions service-N@gcf-admin-robot, Artifact Registry "
        "service-N@gcp-sa-artifactregistry, Eventarc service-N@gcp-sa-eventarc, Firestore "
        "service-N@gcp-sa-firestore, Dataflow service-N@dataflow-service-producer-prod and "
        "the Compute Engine default account N-compute@developer (all .iam.gserviceaccount.com "
        "but the last, which is @developer.gserviceaccount.com).",
        "replace-key grants every agent that a moving resource needs on the new key before "
        "anything moves; a missing grant is a permission error that names the agent.",
        ("functions", "run", "dataflow", "firestore", "storage"),
        ("rotator.agents", "rotator.steps.iam", "rotator.backends.fake.kms"),
    ),
    Rule(
        "R6",
        KMS,
        "Software keys spend no KMS quota; HSM and external (EKM) keys spend the key "
        "project's Cloud HSM or Cloud EKM quota, and over it the answer is RESOURCE_EXHAUSTED.",
        "Every encryption and decryption under such a key counts: object rewrites, new Cloud "
        "Run instances, repository uploads and downloads.",
        "Rewrites under HSM and EXTERNAL keys start at a tenth of the usual rate, and "
        "RESOURCE_EXHAUSTED is retried with exponential backoff, never treated as final.",
        ("dataflow", "run", "storage"),
        ("rotator.ratelimit", "rotator.services.storage.steps", "rotator.backends.gcp.retry"),
    ),
    Rule(
        "R7",
        KMS,
        "The key must be where the resource is: in its region for Dataflow, Cloud Run, "
        "functions and Artifact Registry; for a bucket, in the bucket's location.",
        "Buckets in most dual-regions take a key in the matching multi-region (US-EAST1 with "
        "US-WEST1: US); the predefined dual-regions ASIA1, EUR4 and NAM4 take a key in that "
        "same dual-region. Global and multi-region keys never serve Dataflow (R30).",
        "replace-key refuses, before any change, a new key in the wrong place for anything "
        "that would move to it (exit 3).",
        ("storage", "dataflow", "run", "functions"),
        ("rotator.locations", "rotator.steps.preflight", "rotator.guards", "rotator.services.storage.fake"),
    ),
)

RULES: tuple[Rule, ...] = tuple(
    sorted(
        (*_KMS_RULES, *(r for s in REGISTRY for r in part(s.name, "rules").RULES)),
        key=lambda r: r.number,
    )
)

# The Google Cloud page each service's rules were taken from, by service name.
SOURCES: dict[str, Source] = {s.name: part(s.name, "rules").SOURCE for s in REGISTRY}
