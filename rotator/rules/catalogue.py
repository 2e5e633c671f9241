"""The rules R1..R43, one entry each (see rotator/rules/__init__.py for how they are
numbered and cited)."""

from __future__ import annotations

from rotator.rules.model import Rule

KMS, GCS, FS, DF, RUN = "Cloud KMS", "Cloud Storage", "Firestore", "Dataflow", "Cloud Run"

RULES: tuple[Rule, ...] = (
    # -- Cloud KMS: the key itself -------------------------------------------------------
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
    # -- Cloud Storage -------------------------------------------------------------------
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
    # -- Firestore -----------------------------------------------------------------------
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
    # -- Dataflow ------------------------------------------------------------------------
    Rule(
        "R30",
        DF,
        "A job's key (serviceKmsKeyName) protects its pipeline state: persistent disks, "
        "shuffle and streaming state; it must be a regional key in the job's region.",
        "Job metadata (names, parameters, the pipeline graph, job ids) is not under the key.",
        "A job under a global or multi-region key, or a key in another region, is refused.",
        ("dataflow",),
        ("rotator.services.dataflow.fake", "rotator.locations", "rotator.services.dataflow.world"),
    ),
    Rule(
        "R31",
        DF,
        "Disabling or destroying a running job's key cancels the job, for good; snapshot "
        "Streaming Engine jobs before.",
        "A cancelled job does not come back when the key does.",
        "A running job pins its version; disable-key snapshots every running Streaming Engine "
        "job on the key before it disables anything.",
        ("dataflow",),
        (
            "rotator.services.dataflow.steps",
            "rotator.services.dataflow.spec",
            "rotator.services.dataflow.fake",
        ),
    ),
    Rule(
        "R32",
        DF,
        "Streaming jobs created before 2024-03-07 keep the data keys of key-based transforms outside CMEK.",
        "Draining or cancelling the job and starting it again puts that data under CMEK.",
        "Such jobs are flagged in every plan that reports Dataflow jobs.",
        ("dataflow",),
        ("rotator.services.dataflow.steps",),
    ),
    Rule(
        "R33",
        DF,
        "Taking the Encrypter/Decrypter role away from the Dataflow service agent or the "
        "Compute Engine default account cuts Dataflow off the key: its jobs halt at the next "
        "check.",
        "Either account is enough to stop the jobs on that key.",
        "rotator grants roles and never revokes them; replace-key leaves the old key's grants "
        "in place for the jobs that still run under it.",
        ("dataflow",),
        ("rotator.services.dataflow.fake",),
    ),
    Rule(
        "R34",
        DF,
        "A running job's key cannot be changed: moving it means a snapshot or drain, then a "
        "relaunch under the new key.",
        "The key is given when the job is launched.",
        "Running jobs are reported and keep their key and version; rotator never stops them.",
        ("dataflow",),
        (
            "rotator.services.dataflow.steps",
            "rotator.services.dataflow.fake",
            "rotator.services.dataflow.spec",
        ),
        inferred=True,
        inference="read from the API, where the key is a launch parameter of the job",
    ),
    # -- Cloud Run and Cloud Run functions -----------------------------------------------
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
