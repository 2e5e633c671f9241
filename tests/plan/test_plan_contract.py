"""A plan is a contract (issue 13): tamper-evident, single-use, honest about what it
did. Every test here runs on the fake backend and again through the gcp backend over
the wire (tests/wire/test_suites_over_the_wire.py lists this file).

Backends: fake; gcp over the wire (tests/wire/test_suites_over_the_wire.py runs this file again)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from helpers import WorldCli, assert_failed
from worlds import APP_KEY, BUCKET, ENCRYPTER_DECRYPTER, FIRESTORE_AGENT, OBJECT, database, make_world, v

from rotator.journal import journal_path, read_events


@pytest.fixture
def w(tmp_path: Path) -> WorldCli:
    return WorldCli(tmp_path, make_world())


def versions_of(w: WorldCli, key: str = APP_KEY) -> dict[int, str]:
    return {int(n): s for n, s in w.key_of(key)["versions"].items()}


def edit_plan(w: WorldCli, name: str, edit: Any) -> None:
    path = w.dir / name
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc, indent=2))


# -- 1. tamper-evident plans ----------------------------------------------------------------


def drop_rewrite(doc: dict[str, Any]) -> None:
    doc["steps"] = [s for s in doc["steps"] if s["kind"] != "storage.rewrite_objects"]


def disable_in_emergency(doc: dict[str, Any]) -> None:
    next(s for s in doc["steps"] if s["kind"] == "kms.disable_versions")["data"]["mode"] = "emergency"


@pytest.mark.parametrize("edit", [drop_rewrite, disable_in_emergency], ids=["rewrite-deleted", "mode-edited"])
def test_an_edited_plan_changes_nothing(w: WorldCli, edit: Any) -> None:
    assert w.plan("rotate-key", APP_KEY).code == 0
    edit_plan(w, "plan.json", edit)
    before = w.dump()
    r = w.apply()
    assert_failed(r, 2, "error", "plan.json", "edited", "digest")
    assert w.dump() == before  # no new primary, nothing disabled
    assert not (w.dir / "plan.json.journal").exists()  # not even a journal was begun
    assert_failed(w("status", "plan.json"), 2, "error", "plan.json", "edited")
    r = w("plan", "rollback", "--set", "plan=plan.json")
    assert_failed(r, 2, "error", "plan.json", "edited")
    assert_failed(w("show", "plan.json"), 2, "error", "plan.json", "edited")


def test_a_plan_without_its_digest_is_refused(w: WorldCli) -> None:
    assert w.plan("rotate-key", APP_KEY).code == 0
    edit_plan(w, "plan.json", lambda d: d.pop("digest"))
    assert_failed(w.apply(), 2, "error", "plan.json", "no digest")
    assert w.key_of(APP_KEY)["primary"] == 2


def test_a_reformatted_plan_keeps_its_digest(w: WorldCli) -> None:
    """The digest covers the canonical body: indentation and key order do not matter."""
    assert w.plan("rotate-key", APP_KEY).code == 0
    doc = json.loads((w.dir / "plan.json").read_text())
    (w.dir / "plan.json").write_text(json.dumps(dict(reversed(list(doc.items())))))
    assert w.apply().code == 0
    assert w.key_of(APP_KEY)["primary"] == 3


# -- 2. honest re-apply ---------------------------------------------------------------------


def test_disable_key_rollback_then_reapply_never_exits_0_with_versions_enabled(w: WorldCli) -> None:
    assert w.plan("disable-key", APP_KEY, out="dk.json").code == 0
    assert w.apply("dk.json").code == 0
    assert versions_of(w) == {1: "DISABLED", 2: "DISABLED"}
    r = w("plan", "rollback", "--set", "plan=dk.json", "--out", "rb.json")
    assert r.code == 0, r
    assert w.apply("rb.json").code == 0
    assert versions_of(w) == {1: "ENABLED", 2: "ENABLED"}
    assert w.status("dk.json")["state"] == "rolled back"

    r = w.apply("dk.json")
    line = assert_failed(r, 4, "stale", "dk.json", "rolled back", "plan again")
    assert "cryptoKeyVersions/1" in line
    assert "complete" not in r.stdout
    assert versions_of(w) == {1: "ENABLED", 2: "ENABLED"}  # and it did not disable them again


def test_a_partly_applied_plan_rolled_back_is_never_already_applied(tmp_path: Path) -> None:
    """rotate-key stopped waiting on Firestore (its disable never ran), then rolled back:
    applying it again must not say "already applied" with v1 still ENABLED, nor resume
    silently; it is stale, naming the step that never ran. status never says None or ?."""
    w = waiting_world(tmp_path)
    assert w.plan("rotate-key", APP_KEY, out="rk.json").code == 0
    assert w.apply("rk.json").code == 75
    assert w("plan", "rollback", "--set", "plan=rk.json", "--out", "rb.json").code == 0
    assert w.apply("rb.json").code == 0
    st = w.status("rk.json")
    assert st["state"] == "rolled back"
    assert st["life"]["completed"] is False and "applied" not in st["life"]
    text = w("status", "rk.json").stdout
    assert "never completed" in text and "None" not in text and "?" not in text
    assert w("world", "advance", "7h").code == 0
    before = w.dump()

    r = w.apply("rk.json")
    line = assert_failed(r, 4, "stale", "rk.json", "rolled back", "never completed", "plan again")
    assert "disable-old-versions" in line and "already applied" not in r.stdout + r.stderr
    assert "complete" not in r.stdout
    assert w.dump() == before  # nothing resumed: v1 still ENABLED, no disable ran
    assert versions_of(w)[1] == "ENABLED"
    text = w("status", "rk.json").stdout
    assert "None" not in text and "?" not in text


def test_a_done_plan_applied_again_is_verified_and_does_nothing(w: WorldCli) -> None:
    assert w.plan("rotate-key", APP_KEY).code == 0
    assert w.apply().code == 0
    applied_at = w.status()["life"]["applied"]
    after = w.dump()
    r = w.apply()
    assert r.code == 0, r
    assert f"already applied at {applied_at}" in r.stdout
    assert "new-primary-version" in r.stdout and "disable-old-versions" in r.stdout
    assert w.dump() == after


def test_a_done_plan_whose_world_drifted_is_stale(w: WorldCli) -> None:
    assert w.plan("rotate-key", APP_KEY).code == 0
    assert w.apply().code == 0
    w.change(lambda b: b.kms.update_crypto_key_version(v(APP_KEY, 1), "ENABLED"))
    r = w.apply()
    assert_failed(r, 4, "stale", "plan.json", "drifted", "cryptoKeyVersions/1", "plan again")
    assert versions_of(w)[1] == "ENABLED"  # reported, not silently disabled again
    assert w.status()["state"] == "done"


def test_a_new_primary_after_disable_key_is_drift(w: WorldCli) -> None:
    assert w.plan("disable-key", APP_KEY, out="dk.json").code == 0
    assert w.apply("dk.json").code == 0
    w.change(lambda b: b.kms.create_crypto_key_version(APP_KEY))
    assert_failed(w.apply("dk.json"), 4, "stale", "dk.json", "cryptoKeyVersions/3")


# -- 3. no silent overwrite, unfinished plans, age ----------------------------------------------


def waiting_world(tmp_path: Path) -> WorldCli:
    """rotate-key waits on Firestore's re-encryption (R21): apply exits 75. The
    Firestore agent holds the key, as the plan's preflight requires (R5)."""
    doc = make_world(firestore=[database(active=[v(APP_KEY, 2)])])
    doc["kms"][0]["iam"][ENCRYPTER_DECRYPTER].append(FIRESTORE_AGENT)
    return WorldCli(tmp_path, doc)


def test_out_over_a_waiting_apply_is_refused_and_no_second_version_appears(tmp_path: Path) -> None:
    w = waiting_world(tmp_path)
    assert w.plan("rotate-key", APP_KEY).code == 0
    assert w.apply().code == 75
    journal = (w.dir / "plan.json.journal").read_bytes()
    plan = (w.dir / "plan.json").read_bytes()

    r = w.plan("rotate-key", APP_KEY)
    assert_failed(r, 2, "error", "plan.json", "unfinished", "--force")
    assert (w.dir / "plan.json").read_bytes() == plan
    assert (w.dir / "plan.json.journal").read_bytes() == journal
    assert w.status()["state"] == "waiting"

    r = w.plan("rotate-key", APP_KEY, out="other.json")
    assert r.code == 0, r
    assert "plan.json" in r.stderr and "unfinished" in r.stderr  # the warning

    assert w("world", "advance", "7h").code == 0
    assert w.apply().code == 0
    assert sorted(versions_of(w)) == [1, 2, 3]  # one new version, not two
    assert w.object_of(BUCKET, OBJECT)["generation"] == 2  # rewritten once


def test_out_with_force_keeps_the_old_journal_and_says_where(tmp_path: Path) -> None:
    w = waiting_world(tmp_path)
    assert w.plan("rotate-key", APP_KEY).code == 0
    assert w.apply().code == 75
    old = (w.dir / "plan.json.journal").read_bytes()
    r = w.plan("rotate-key", APP_KEY, "--force")
    assert r.code == 0, r
    kept = [p for p in w.dir.iterdir() if p.name.startswith("plan.json.journal.") and p.name.endswith(".old")]
    assert len(kept) == 1 and kept[0].read_bytes() == old
    assert kept[0].name in r.stderr
    assert not (w.dir / "plan.json.journal").exists()


@pytest.mark.parametrize("fmt", ["json", "markdown", "text"])
def test_out_given_a_format_name_points_at_output(w: WorldCli, fmt: str) -> None:
    r = w("plan", "rotate-key", "--key", APP_KEY, "--out", fmt)
    assert_failed(r, 2, "error", f"--out {fmt}", f"--output {fmt}")
    assert not (w.dir / fmt).exists()


def test_an_old_plan_is_flagged_and_a_very_old_one_refused(w: WorldCli) -> None:
    assert w.plan("rotate-key", APP_KEY).code == 0
    assert w("world", "advance", "31d").code == 0
    r = w.apply()
    assert_failed(r, 4, "stale", "31 days old", "30-day", "--force")
    assert w.key_of(APP_KEY)["primary"] == 2
    r = w.apply("plan.json", "--force")
    assert r.code == 0, r
    assert "warning: the plan is 31 days old" in r.stderr

    assert w.plan("rotate-key", APP_KEY, out="p2.json").code == 0
    assert w("world", "advance", "8d").code == 0
    r = w.apply("p2.json")
    assert r.code == 0, r
    assert "warning: the plan is 8 days old" in r.stderr


def test_status_without_a_plan_lists_the_unfinished_applies(tmp_path: Path) -> None:
    w = waiting_world(tmp_path)
    assert w.plan("rotate-key", APP_KEY).code == 0
    assert w.plan("disable-key", APP_KEY, out="never-applied.json").code == 0
    assert w.apply().code == 75
    r = w.json("status")
    assert r.code == 0, r
    assert r.json()["kind"] == "rotator.applies"
    found = r.json()["unfinished"]
    assert [(a["plan"], a["life"]["state"], a["key"]) for a in found] == [("plan.json", "waiting", APP_KEY)]
    text = w("status")
    assert "plan.json" in text.stdout and "waiting" in text.stdout and "never-applied" not in text.stdout


# -- 6. CLI habits ----------------------------------------------------------------------------


def test_global_options_after_the_subcommand(w: WorldCli) -> None:
    r = w("plan", "rotate-key", "--key", APP_KEY, "--output", "json")
    assert r.code == 0, r
    assert r.json()["kind"] == "rotator.plan"
    r = w("inventory", APP_KEY, "-o", "json", "-q")
    assert r.code == 0 and r.json()["key"] == APP_KEY and r.stderr == ""
    r = w("playbooks", "-o", "json")
    assert r.code == 0 and r.json()["playbooks"]
    r = w("inventory", APP_KEY, "--project", "demo", "-v", "--output", "json")
    assert r.code == 0 and r.json()["key"] == APP_KEY
    r = w("status", "plan.json", "--output=json")  # no plan there: the error is a JSON document too
    assert r.code == 2 and r.json()["error"]["resource"] == "plan.json"


@pytest.mark.parametrize("where", ["before", "after"])
def test_csv_is_for_report_only(w: WorldCli, where: str) -> None:
    """`-o csv` on a command without csv is bad input (exit 2), refused before the command
    does anything: apply changes nothing, plan writes nothing."""
    assert w.plan("rotate-key", APP_KEY).code == 0
    before = w.dump()

    def run(*args: str) -> Any:
        return w("-o", "csv", *args) if where == "before" else w(*args, "-o", "csv")

    for args in (
        ("plan", "rotate-key", "--key", APP_KEY, "--out", "other.json"),
        ("show", "plan.json"),
        ("inventory", APP_KEY),
        ("apply", "plan.json", "--yes"),
        ("status", "plan.json"),
        ("status",),
    ):
        assert_failed(run(*args), 2, "error", "csv is for report", args[0])
    assert w.dump() == before
    assert not (w.dir / "plan.json.journal").exists() and not (w.dir / "other.json").exists()
    r = run("report")
    assert r.code == 0 and r.stdout.count(",") > 3, r


def test_world_after_the_subcommand(tmp_path: Path) -> None:
    from helpers import run_cli
    from worlds import write_world

    write_world(tmp_path / "world.yaml", make_world())
    r = run_cli(["inventory", APP_KEY, "--world", "world.yaml", "--output", "json"], cwd=tmp_path)
    assert r.code == 0, r
    assert r.json()["key"] == APP_KEY


@pytest.mark.parametrize("fmt", ["text", "json", "markdown"])
def test_show_renders_a_saved_plan_offline(w: WorldCli, fmt: str) -> None:
    assert w.plan("rotate-key", APP_KEY).code == 0
    r = w("show", "plan.json", "--output", fmt)
    assert r.code == 0, r
    if fmt == "json":
        assert r.json() == json.loads((w.dir / "plan.json").read_text())
    elif fmt == "markdown":
        assert r.stdout.startswith("# Change: `rotate-key`")
    else:
        assert "new-primary-version" in r.stdout and "{" not in r.stdout


def test_status_renders_readable_lines(w: WorldCli) -> None:
    assert w.plan("disable-key", APP_KEY, out="dk.json").code == 0
    assert w.apply("dk.json").code == 0
    r = w("status", "dk.json")
    assert r.code == 0, r
    assert "disabled 1, 2" in r.stdout
    for repr_mark in ("[", "{", "'"):
        assert repr_mark not in r.stdout, r.stdout


def test_disable_key_asks_for_the_key_id_on_a_terminal(w: WorldCli) -> None:
    from helpers import run_cli

    assert w.plan("disable-key", APP_KEY, out="dk.json").code == 0
    base = ["--world", w.path.name, "apply", "dk.json"]
    r = run_cli(base, cwd=w.dir, stdin="y\n", tty=True)
    # (a terminal would echo the operator's newline; here the error follows the prompt)
    assert r.code == 2 and "error: typed 'y', not the key's id app; nothing was changed" in r.stderr, r
    assert "Type the key's id (app)" in r.stderr
    assert versions_of(w) == {1: "ENABLED", 2: "ENABLED"}
    r = run_cli(base, cwd=w.dir, stdin="app\n", tty=True)
    assert r.code == 0, r
    assert versions_of(w) == {1: "DISABLED", 2: "DISABLED"}


def test_destroy_versions_asks_for_the_key_id_and_yes_skips_it(tmp_path: Path) -> None:
    from helpers import run_cli
    from worlds import key

    w = WorldCli(
        tmp_path, make_world(kms=[key(APP_KEY, {1: "DISABLED", 2: "ENABLED"}, primary=2)], storage=[])
    )
    assert w.plan("destroy-versions", APP_KEY, "--set", "versions=1", out="d.json").code == 0
    r = run_cli(["--world", w.path.name, "apply", "d.json"], cwd=w.dir, stdin="ring\n", tty=True)
    assert r.code == 2 and "error: typed 'ring', not the key's id app" in r.stderr, r
    assert versions_of(w)[1] == "DISABLED"
    assert w.apply("d.json").code == 0  # --yes: scripts keep working
    assert versions_of(w)[1] == "DESTROY_SCHEDULED"


def test_rotate_key_on_a_terminal_asks_a_plain_yes(w: WorldCli) -> None:
    from helpers import run_cli

    assert w.plan("rotate-key", APP_KEY).code == 0
    r = run_cli(["--world", w.path.name, "apply", "plan.json"], cwd=w.dir, stdin="y\n", tty=True)
    assert r.code == 0, r
    assert "Type the key's id" not in r.stderr


def test_journal_names_the_host_of_every_run(w: WorldCli) -> None:
    import socket

    assert w.plan("rotate-key", APP_KEY).code == 0
    assert w.apply().code == 0
    runs = [e for e in read_events(journal_path(str(w.dir / "plan.json"))) if e["event"] == "run"]
    assert runs and all(e["host"] == socket.gethostname() and e["pid"] for e in runs)


def test_progress_in_a_log_uses_one_line_format(tmp_path: Path) -> None:
    """stderr is not a terminal here (a log): while a bucket is rewritten its progress is
    one kind of line, and its outcome one line at the end."""
    import re

    from worlds import bucket, key

    w = WorldCli(
        tmp_path,
        make_world(
            kms=[key(APP_KEY, {1: "ENABLED", 2: "ENABLED"}, primary=2)],
            storage=[
                bucket("bulk", generate=[{"prefix": "o/", "count": 2500, "kms_key_version": v(APP_KEY, 1)}])
            ],
        ),
    )
    assert w.plan("rotate-key", APP_KEY).code == 0
    r = w.apply()
    assert r.code == 0, r
    about = [line for line in r.stderr.splitlines() if line.startswith("gs://bulk")]
    progress = [line for line in about if re.fullmatch(r"gs://bulk: [\d,]+/[\d,]+ objects .*", line)]
    outcome = [line for line in about if line.startswith("gs://bulk done: 2500 rewritten")]
    assert progress and len(outcome) == 1, about
    assert sorted(progress + outcome) == sorted(about), about


def test_show_needs_no_backend(w: WorldCli, monkeypatch: Any) -> None:
    """Offline: no --world, no credentials, no endpoints; only the file is read."""
    from helpers import run_cli

    assert w.plan("rotate-key", APP_KEY).code == 0
    for name in list(os.environ):
        if name.startswith(("ROTATOR_ENDPOINT", "STORAGE_EMULATOR", "GOOGLE_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(w.dir / "no-such-credentials.json"))
    r = run_cli(["show", "plan.json", "-o", "markdown"], cwd=w.dir)
    assert r.code == 0, r
    assert r.stdout.startswith("# Change: `rotate-key`")
