"""The signing key, its passphrase and the admin password never reach the target's code.

One full run of a recording variant of the example (its revision file, env.py, Celery app
and refresh path each write down every environment variable they can see, and their parent's
environment) with the secrets in zerodrift's environment; then cheap checks of
`zerodrift sign` on an unsigned pack and of every key-loading failure.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import psycopg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from psycopg import sql
from typer.testing import CliRunner

from tests.backends import add_revision, commit_all, edit, make_backend
from zerodrift.childenv import base_environment
from zerodrift.cli import app
from zerodrift.ledger import sshsig
from zerodrift.ledger.layout import resolve_ledger
from zerodrift.urls import password_of, user_of, with_parts

runner = CliRunner()
ZERODRIFT = str(Path(sys.executable).with_name("zerodrift"))

RECORDER = '''\
"""Test helper: writes down every environment variable this process can see."""
import json, os, uuid

OUT = {out!r}


def _read(path):
    try:
        with open(path, "rb") as fh:
            return fh.read().decode("utf-8", "replace")
    except OSError as exc:
        return "unreadable: " + str(exc)


def record(where):
    ppid = os.getppid()
    data = {{"where": where, "pid": os.getpid(), "environ": dict(os.environ),
             "parent_environ": _read(f"/proc/{{ppid}}/environ"), "parent_cmdline": _read(f"/proc/{{ppid}}/cmdline"),
             "own_environ": _read("/proc/self/environ")}}
    with open(os.path.join(OUT, f"{{where}}-{{os.getpid()}}-{{uuid.uuid4().hex[:6]}}.json"), "w") as fh:
        json.dump(data, fh)
'''


def _encrypted_key(path: Path, passphrase: str) -> str:
    """An Ed25519 key as `ssh-keygen -t ed25519 -N PASSPHRASE` writes it; returns the allowed_signers line."""
    if shutil.which("ssh-keygen"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-C", "", "-f", str(path)], check=True)
        public = path.with_name(path.name + ".pub").read_text().split()[:2]
    else:  # the same OpenSSH format (aes256-ctr, bcrypt KDF), written by cryptography
        key = Ed25519PrivateKey.generate()
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                           serialization.BestAvailableEncryption(passphrase.encode())))
        public = sshsig.public_key_line(key.public_key()).split()
    return f'release@example.com namespaces="zerodrift-ledger" {" ".join(public)}'


@pytest.fixture
def leak_run(tmp_path_factory, admin_url):
    """One signed run of the recording variant, as a separate `zerodrift` process whose
    environment holds the key text, its passphrase, an admin URL with a distinctive password
    and CI tokens."""
    root = tmp_path_factory.mktemp("leak")
    records = root / "records"
    records.mkdir()
    backend = make_backend(root / "repo", commit=False)
    (backend / "app" / "leakrec.py").write_text(RECORDER.format(out=str(records)))
    add_revision(backend, "0013_record_env", "0012_comments", "from app import leakrec\nleakrec.record('revision')")
    edit(backend / "migrations" / "env.py", "config = context.config\n",
         "from app import leakrec\nleakrec.record('env.py')\nconfig = context.config\n")
    edit(backend / "app" / "celery_app.py", "from celery import Celery\n",
         "from celery import Celery\nfrom app import leakrec\nleakrec.record('celery_app')\n")
    edit(backend / "app" / "refresh.py", "    if name not in MATERIALIZED_VIEWS:\n",
         "    from app import leakrec\n    leakrec.record('refresh')\n    if name not in MATERIALIZED_VIEWS:\n")
    edit(backend / "zerodrift.toml", 'url_scheme = "postgresql"\n',
         'url_scheme = "postgresql"\npass_env = ["ZD_LEAKTEST_PASSED_*"]\n')
    commit_all(root / "repo", "recording variant")

    tag = uuid.uuid4().hex[:10]
    passphrase = f"passphrase-{tag}-Xq"
    admin_password = f"AdminPw-{tag}-Zk"
    admin_role = f"zdleak_admin_{tag}"
    allowed = _encrypted_key(root / "key", passphrase)
    (root / "allowed_signers").write_text(allowed + "\n")
    key_text = (root / "key").read_text()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}").format(sql.Identifier(admin_role),
                                                                                 sql.Literal(admin_password)))
    secret_admin_url = with_parts(admin_url, user=admin_role, password=admin_password)
    env = {**base_environment(), "ZERODRIFT_SIGNING_KEY": key_text, "ZERODRIFT_SIGNING_KEY_PASSPHRASE": passphrase,
           "ZERODRIFT_ADMIN_URL": secret_admin_url, "GITHUB_TOKEN": f"ghs_token{tag}",
           "ACTIONS_RUNTIME_TOKEN": f"actions{tag}", "ZERODRIFT_OTHER": f"other{tag}",
           "ZD_LEAKTEST_PASSED_VAR": f"passed{tag}"}
    try:
        proc = subprocess.run([ZERODRIFT, "run", str(backend), "--out", str(root / "pack")], env=env,
                              capture_output=True, text=True, timeout=600)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(admin_role)))
    seen = [json.loads(p.read_text()) for p in sorted(records.glob("*.json"))]
    return {"proc": proc, "seen": seen, "root": root, "tag": tag, "admin_role": admin_role,
            "secrets": {"ZERODRIFT_SIGNING_KEY": key_text, "ZERODRIFT_SIGNING_KEY_PASSPHRASE": passphrase,
                        "ZERODRIFT_ADMIN_URL": secret_admin_url, "GITHUB_TOKEN": env["GITHUB_TOKEN"],
                        "ACTIONS_RUNTIME_TOKEN": env["ACTIONS_RUNTIME_TOKEN"], "ZERODRIFT_OTHER": env["ZERODRIFT_OTHER"]},
            "admin_password": admin_password, "passed": env["ZD_LEAKTEST_PASSED_VAR"]}


def test_no_secret_reaches_the_targets_code_and_the_run_still_signs(leak_run):
    proc, seen = leak_run["proc"], leak_run["seen"]
    assert proc.returncode == 0, proc.stderr[-3000:]
    # every place of the target's code recorded, in every kind of process (alembic job, probes, beat)
    assert {s["where"] for s in seen} == {"revision", "env.py", "celery_app", "refresh"}, [s["where"] for s in seen]
    assert len({s["pid"] for s in seen if s["where"] == "celery_app"}) >= 2  # the probe and celery beat
    key_lines = [line for line in leak_run["secrets"]["ZERODRIFT_SIGNING_KEY"].splitlines() if len(line) > 20]
    zerodrifts_own = ("ZERODRIFT_SIGNING_KEY", "ZERODRIFT_SIGNING_KEY_PASSPHRASE", "ZERODRIFT_ADMIN_URL")
    for s in seen:
        own = json.dumps([s["environ"], s["own_environ"]])
        everything = json.dumps(s)  # with zerodrift's own /proc/<pid>/environ and command line
        for name, value in leak_run["secrets"].items():
            assert name not in own, f"{s['where']} was given {name}"
            assert value not in own, f"{s['where']} was given the value of {name}"
            if name in zerodrifts_own:  # taken out of zerodrift's initial environment block too
                assert name not in everything and value not in everything, f"{s['where']} read {name} in its parent"
        assert leak_run["admin_password"] not in everything and leak_run["admin_role"] not in everything, s["where"]
        assert not any(line in everything for line in key_lines), f"{s['where']} saw part of the key"
        # positive controls: the recorder sees the environment it was given, and its parent's
        assert s["environ"]["ZD_LEAKTEST_PASSED_VAR"] == leak_run["passed"]
        assert "PATH" in s["environ"] and f"ZD_LEAKTEST_PASSED_VAR={leak_run['passed']}" in s["parent_environ"]
    # no target process wrote bytecode into the checkout under test (a second run's ZG-0 would call it dirty)
    assert not list((leak_run["root"] / "repo").rglob("__pycache__")), "a run left __pycache__ in the checkout"
    # every URL the target got names a role: the run's own migration role with the password generated
    # for it, or the runtime role (with a generated password when this run created it; an existing
    # role is never altered, so its URL carries none)

    urls = {v for s in seen for k, v in s["environ"].items() if k in ("MIGRATION_DATABASE_URL", "DATABASE_URL")}
    assert all(user_of(u) for u in urls), urls
    migrator = [u for u in urls if user_of(u).endswith("_migrator")]
    assert migrator and all(len(password_of(u)) >= 32 for u in migrator), migrator
    assert {user_of(u) for u in urls} - {user_of(migrator[0])} == {"app_user"}, urls

    # the same run (one run: the test stays cheap) still signs, verifies and tells who migrated
    root = leak_run["root"]
    pack = resolve_ledger(root / "pack").parent
    result = runner.invoke(app, ["verify", str(pack / "ledger.md"), "--allowed-signers",
                                 str(root / "allowed_signers"), "--require-pass"])
    assert result.exit_code == 0, result.output
    assert "attestation.dsse.json verified" in result.output
    ledger = (pack / "ledger.md").read_text()
    assert "- Migrations ran as: `zd_" in ledger and "_migrator` (a login role created for this run" in ledger
    assert "a **superuser**" in ledger
    # nothing secret in the pack either, and the run's migration role is gone again
    pack_text = "".join(p.read_text(errors="replace") for p in pack.rglob("*") if p.is_file())
    for value in leak_run["secrets"].values():
        assert value not in pack_text
    assert leak_run["admin_password"] not in pack_text
    generated = {password_of(v) for s in leak_run["seen"] for k, v in s["environ"].items() if k.endswith("DATABASE_URL")}
    assert generated - {""} and not any(p in pack_text for p in generated - {""}), "a generated password is in the pack"
    assert "dropped again: " in ledger and "_migrator" in ledger.split("dropped again: ")[1].splitlines()[0]


# -- zerodrift sign ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def unsigned_pack(tmp_path_factory):
    root = tmp_path_factory.mktemp("unsigned")
    backend = make_backend(root / "repo")
    result = runner.invoke(app, ["run", str(backend), "--out", str(root / "pack"), "-g", "ZG-0"])
    assert result.exit_code == 0, result.output
    key = Ed25519PrivateKey.generate()
    (root / "key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                                 serialization.NoEncryption()))
    (root / "allowed").write_text(f'r@example.com namespaces="zerodrift-ledger" {sshsig.public_key_line(key.public_key())}\n')
    return root


def _sign_copy(unsigned_pack, tmp_path, change=None):
    pack = tmp_path / "pack"
    shutil.copytree(resolve_ledger(unsigned_pack / "pack").parent, pack)
    if change:
        change(pack)
    return pack, runner.invoke(app, ["sign", str(pack), "--sign-key", str(unsigned_pack / "key")])


def test_sign_signs_an_unchanged_unsigned_pack(unsigned_pack, tmp_path):
    pack, result = _sign_copy(unsigned_pack, tmp_path)
    assert result.exit_code == 0, result.output
    verified = runner.invoke(app, ["verify", str(pack / "ledger.md"), "--allowed-signers", str(unsigned_pack / "allowed")])
    assert verified.exit_code == 0, verified.output
    assert "attestation.dsse.json verified" in verified.output and "evidence files match" in verified.output
    again = runner.invoke(app, ["sign", str(pack), "--sign-key", str(unsigned_pack / "key")])
    assert again.exit_code == 1 and "already signed" in again.output


def _append(name: str, text: str = "x\n"):
    def change(pack: Path) -> None:
        with open(pack / name, "a") as fh:
            fh.write(text)
    return change


CHANGES = {
    "evidence file": (_append("ZG-0/evidence.log"), "ZG-0/evidence.log was changed after the run"),
    "junit.xml": (_append("junit.xml", "<!-- -->\n"), "junit.xml was changed after the run"),
    "ledger.json": (_append("ledger.json", " "), "ledger.json was changed after the run"),
    "ledger.md body": (lambda p: (p / "ledger.md").write_text((p / "ledger.md").read_text().replace(
        "- Verdict: **", "- Verdict (reviewed): **")), "ledger.md was changed after the run"),
    "evidence file removed": (lambda p: (p / "ZG-0" / "evidence.log").unlink(), "ZG-0/evidence.log is missing"),
    "file added": (lambda p: (p / "ZG-0" / "extra.txt").write_text("x"), "ZG-0/extra.txt is not listed"),
}


@pytest.mark.parametrize("case", sorted(CHANGES))
def test_sign_refuses_a_changed_pack_naming_the_file(unsigned_pack, tmp_path, case):
    change, expected = CHANGES[case]
    pack, result = _sign_copy(unsigned_pack, tmp_path, change)
    assert result.exit_code == 1, result.output
    assert expected in " ".join(result.output.split()), result.output
    assert not (pack / "attestation.dsse.json").exists() and "zerodrift-signature" not in (pack / "ledger.md").read_text()


# -- key loading ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    root = tmp_path_factory.mktemp("keys")
    _encrypted_key(root / "enc", "right-passphrase")
    from cryptography.hazmat.primitives.asymmetric import rsa

    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (root / "rsa").write_bytes(rsa_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                                     serialization.NoEncryption()))
    (root / "notakey").write_text("hello\n")
    return root


KEY_FAILURES = {
    "wrong passphrase": ("enc", "wrong", "wrong passphrase"),
    "missing passphrase": ("enc", None, "no passphrase was given"),
    "not a key": ("notakey", None, "is not a private key"),
    "RSA key": ("rsa", None, "ssh-rsa key; zerodrift signs with Ed25519"),
    "missing file": ("absent", None, "does not exist"),
}


@pytest.mark.parametrize("case", sorted(KEY_FAILURES))
def test_every_key_loading_failure_is_one_line_exit_2(keys, unsigned_pack, tmp_path, monkeypatch, case):
    name, passphrase, expected = KEY_FAILURES[case]
    if passphrase:
        monkeypatch.setenv("ZERODRIFT_SIGNING_KEY_PASSPHRASE", passphrase)
    else:
        monkeypatch.delenv("ZERODRIFT_SIGNING_KEY_PASSPHRASE", raising=False)
    pack = tmp_path / "pack"
    shutil.copytree(resolve_ledger(unsigned_pack / "pack").parent, pack)
    result = runner.invoke(app, ["sign", str(pack), "--sign-key", str(keys / name)])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and "Traceback" not in result.output, result.output
    # `run` checks what it can before any gate runs: the same one line, exit 2
    if case != "wrong passphrase":  # a wrong passphrase shows only when the key is decrypted, after the run
        result = runner.invoke(app, ["run", str(unsigned_pack / "repo" / "backend"), "--out", str(tmp_path / "p2"),
                                     "-g", "ZG-0", "--sign-key", str(keys / name)])
        assert result.exit_code == 2 and expected in result.output and not (tmp_path / "p2").exists(), result.output


def test_encrypted_key_with_its_passphrase_signs(keys, unsigned_pack, tmp_path, monkeypatch):
    monkeypatch.setenv("ZERODRIFT_SIGNING_KEY_PASSPHRASE", "right-passphrase")
    monkeypatch.setenv("ZERODRIFT_SIGNING_KEY", (keys / "enc").read_text())  # the key text, as a CI secret holds it
    commit_folder = tmp_path / "commit"  # the folder `run --out` named: sign follows its LATEST pointer
    shutil.copytree(unsigned_pack / "pack", commit_folder)
    result = runner.invoke(app, ["sign", str(commit_folder)])
    assert result.exit_code == 0, result.output
    assert "zerodrift-signature" in resolve_ledger(commit_folder).read_text()


def test_wrong_passphrase_after_a_run_leaves_the_pack_unsigned_and_exits_2(keys, unsigned_pack, tmp_path, monkeypatch):
    monkeypatch.setenv("ZERODRIFT_SIGNING_KEY_PASSPHRASE", "wrong")
    result = runner.invoke(app, ["run", str(unsigned_pack / "repo" / "backend"), "--out", str(tmp_path / "p"),
                                 "-g", "ZG-0", "--sign-key", str(keys / "enc")])
    assert result.exit_code == 2, result.output
    assert "wrong passphrase" in result.output and "zerodrift sign" in result.output
    assert "UNSIGNED" in resolve_ledger(tmp_path / "p").read_text()


# -- the allowlist ----------------------------------------------------------------------------
def test_allowlist_keeps_what_the_interpreter_needs_and_nothing_else():
    env = {"PATH": "/bin", "HOME": "/h", "LANG": "C.UTF-8", "LC_ALL": "C", "TMPDIR": "/t", "VIRTUAL_ENV": "/v",
           "GITHUB_TOKEN": "g", "ACTIONS_RUNTIME_TOKEN": "a", "ZERODRIFT_SIGNING_KEY": "k", "ZERODRIFT_ADMIN_URL": "u",
           "ZERODRIFT_PYTHON": "p", "AWS_SECRET_ACCESS_KEY": "s", "AWS_REGION": "r", "PGPASSWORD": "pw"}
    # inherited: the allowlist; set by zerodrift itself: no bytecode written into the checkout
    assert set(base_environment([], env)) == {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV",
                                              "PYTHONDONTWRITEBYTECODE"}
    # listed names and patterns pass; the three secrets never do, even through a pattern
    passed = base_environment(["AWS_REGION", "GITHUB_TOKEN", "ZERODRIFT_*"], env)
    assert {"AWS_REGION", "GITHUB_TOKEN", "ZERODRIFT_PYTHON"} <= set(passed)
    assert not {"ZERODRIFT_SIGNING_KEY", "ZERODRIFT_ADMIN_URL", "AWS_SECRET_ACCESS_KEY", "PGPASSWORD"} & set(passed)


def test_pass_env_naming_a_secret_is_a_config_error(tmp_path):
    backend = make_backend(tmp_path / "repo", commit=False)
    edit(backend / "zerodrift.toml", 'url_scheme = "postgresql"\n',
         'url_scheme = "postgresql"\npass_env = ["ZERODRIFT_SIGNING_KEY"]\n')
    result = runner.invoke(app, ["run", str(backend), "-g", "ZG-0"])
    assert result.exit_code == 2 and "target.pass_env" in result.output and "never passed" in result.output, result.output


def test_documented_workflow_signs_in_a_job_that_does_not_run_the_branch():
    doc = (Path(__file__).resolve().parent.parent / "docs" / "github-actions.md").read_text()
    workflow = doc.split("```yaml\n", 1)[1].split("```", 1)[0]
    run_job, sign_job = workflow.split("\n  sign:", 1)
    assert "zerodrift run" in run_job and "secrets." not in run_job and "--sign-key" not in run_job
    assert "zerodrift sign" in sign_job and "secrets.ZERODRIFT_SIGNING_KEY" in sign_job
    # the signing job never checks out or runs the branch's code, and runs for trusted events only
    assert "actions/checkout" not in sign_job and "zerodrift run" not in sign_job and "pip install -r" not in sign_job
    assert "needs: proof-pack" in sign_job and "github.event_name == 'push'" in sign_job
    assert "environment: ledger-signing" in sign_job
