"""The rules of Dataflow (R30-R34), in the project's words: the service's part of
`rotator rules` (the catalogue gathers each service's from its package)."""

from __future__ import annotations

from rotator.rules.model import Rule, Source

DF = "Dataflow"

# The page these rules were taken from, in the language it was read in.
SOURCE = Source(
    "Dataflow",
    "Use customer-managed encryption keys",
    "https://cloud.google.com/dataflow/docs/guides/customer-managed-encryption-keys",
    "English",
)

RULES: tuple[Rule, ...] = (
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
)
