"""Command line: parsing, output streams and exit codes only.

Exit codes (docs/architecture.md, "Errors and exit codes"; :mod:`zerodrift.errors`; the verdict rules are in
:mod:`zerodrift.verdict`): 0 PASS, or INCOMPLETE with no required gate missing;
1 FAIL, or INCOMPLETE with a required gate skipped or not run; 2 usage or config
error; 3 environment error. Machine output goes to stdout,
progress and the summary to stderr; rich styling only on a terminal, and
``NO_COLOR`` is honoured.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import typing
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from typer.core import TyperCommand, TyperGroup, TyperOption

from zerodrift import __version__
from zerodrift.errors import EXIT_USAGE, RunInterrupted, UsageError, ZerodriftError

if TYPE_CHECKING:
    from zerodrift.config import LoadedConfig


class _HelpOption(TyperOption):
    """An option as ``--help`` shows it: a flag shows no value type (not ``<bool>``), and a
    repeatable option shows its element type and says so (``<str> (repeatable)``, not
    ``<list[str]>``)."""

    def display_type_rich(self, ctx):  # noqa: D401 - typer's hook
        if self.is_flag or self.count:
            return None
        if self.multiple:
            element = typing.get_args(self.type_descriptor.annotation)
            return f"<{self._bare_type(element[0]) if element else 'str'}> (repeatable)"
        return super().display_type_rich(ctx)


def _help_params(params: list) -> list:
    for param in params:
        if isinstance(param, TyperOption) and not isinstance(param, _HelpOption):
            param.__class__ = _HelpOption
    return params


class _Command(TyperCommand):
    """A command whose ``--help`` shows options as :class:`_HelpOption` does."""

    def get_params(self, ctx):
        return _help_params(super().get_params(ctx))


class _Group(TyperGroup):
    """The command group, with ``--help`` shown as :class:`_HelpOption` does."""

    def get_params(self, ctx):
        return _help_params(super().get_params(ctx))


class _App(typer.Typer):
    """``typer.Typer`` whose commands show their options as :class:`_HelpOption` does."""

    def command(self, *args, **kwargs):
        kwargs.setdefault("cls", _Command)
        return super().command(*args, **kwargs)


app = _App(add_completion=False, no_args_is_help=True, cls=_Group,
           help="Zero-drift release gates for Alembic + PostgreSQL backends, with a proof pack.")
err = Console(stderr=True, no_color=bool(os.environ.get("NO_COLOR")), highlight=False, soft_wrap=True)

_STATUS_STYLE = {"PASS": "bold green", "FAIL": "bold red", "ERROR": "bold magenta", "SKIPPED": "yellow"}


class OutputFormat(str, Enum):
    none = "none"
    json = "json"
    junit = "junit"
    markdown = "markdown"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"zerodrift {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log details to stderr."),
) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)


def _on_sigterm(signum, frame):  # turn SIGTERM into an exception so cleanup runs
    raise KeyboardInterrupt(f"signal {signum}")


@app.command()
def run(
    target: Path = typer.Argument(Path("."), help="The backend's folder (holds alembic.ini or zerodrift.toml)."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Config file (default: zerodrift.toml or pyproject.toml found from TARGET upward)."),
    admin_url: Optional[str] = typer.Option(None, "--admin-url", help="Admin URL of an external PostgreSQL (env ZERODRIFT_ADMIN_URL); default: an embedded server."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder of the commit's proof packs; this run's pack goes into a new <run id> folder below it (default: output.dir, proofs/{short_sha} under the config root)."),
    python: Optional[str] = typer.Option(None, "--python", help="Target interpreter (env ZERODRIFT_PYTHON)."),
    gate: list[str] = typer.Option([], "--gate", "-g", help="Run only this gate; its dependencies are added."),
    keep: bool = typer.Option(False, "--keep", help="Keep the throwaway databases (listed in the ledger; `zerodrift gc --kept` drops them)."),
    from_ref: list[str] = typer.Option([], "--from-ref", help="Add an existing-database upgrade path (ZG-2) built with this git ref's own migrations."),
    output_format: OutputFormat = typer.Option(OutputFormat.none, "--format", "-f", help="Also print the ledger to stdout as json, junit or markdown."),
    sign_key: Optional[str] = typer.Option(None, "--sign-key", help="Ed25519 private key (OpenSSH) that signs the ledger (env ZERODRIFT_SIGNING_KEY: a path or the key itself; config signing.key)."),
    require: list[str] = typer.Option([], "--require", help="This gate must PASS for exit 0 (`all`: every installed gate); added to the config's required_gates."),
    pg_version: Optional[int] = typer.Option(None, "--pg-version", min=9, help="PostgreSQL major version of production, e.g. 16 (config server.version): the embedded server runs it; an external server of another major is an error."),
) -> None:
    """Run the gates against TARGET and write the proof pack.

    The verdict is PASS (exit 0), INCOMPLETE (some gate SKIPPED: exit 0, or 1 when a
    required gate was skipped or not run) or FAIL (exit 1; 3 for an environment error).
    """
    from zerodrift.ledger.model import ledger_data
    from zerodrift.ledger.render import write_proof_pack
    from zerodrift.runner import RunOptions, load_run_config
    from zerodrift.runner import run as run_gates

    signal.signal(signal.SIGTERM, _on_sigterm)
    options = RunOptions(target=target, config_file=config, admin_url=admin_url, output=out, python=python,
                         gates=list(gate), keep=keep, from_refs=list(from_ref), require=list(require),
                         pg_version=pg_version)
    try:
        loaded = load_run_config(options)  # once: the run gets this same configuration
        # only checked now (exists, is an Ed25519 key, has its passphrase); loaded once every
        # process running the target's code has ended
        key_source = _signing_key_source(loaded, sign_key)
    except ZerodriftError as exc:
        err.print(f"[bold red]error:[/bold red] {escape(str(exc))}")
        raise typer.Exit(exc.exit_code)

    stopping = threading.Event()  # set once interrupted: nothing is printed after the final line

    def progress(message: str, result) -> None:
        if stopping.is_set():
            return
        if result is None:
            err.print(f"[dim]… {escape(message)}[/dim]")
        else:
            style = _STATUS_STYLE.get(result.status.value, "")
            err.print(f"[{style}]{result.status.value:7}[/{style}] {escape(result.gate_id)} {escape(result.title)} "
                      f"[dim]({result.duration_s:.1f} s)[/dim]")

    try:
        report = run_gates(options, progress=progress, loaded=loaded)
    except ZerodriftError as exc:
        err.print(f"[bold red]error:[/bold red] {escape(str(exc))}")
        raise typer.Exit(exc.exit_code)
    except KeyboardInterrupt as exc:
        stopping.set()
        logging.disable(logging.CRITICAL)  # gate threads still winding down must not print after the final line
        err.print(f"[bold red]interrupted[/bold red]: {escape(_interrupted_text(exc))}; no proof pack was written; "
                  "this run's throwaway databases were dropped and its embedded server, if any, stopped")
        raise typer.Exit(_interrupted_exit_code(exc))
    # the gates are done and cleaned up: no process of the target's is left, the key may load
    key, key_error = None, None
    if key_source is not None:
        from zerodrift.ledger.sign import load_signing_key

        try:
            key = load_signing_key(*key_source)
        except ZerodriftError as exc:
            key_error = exc
    data = ledger_data(report)  # built once: the pack's files and the CI summary render from it
    written = write_proof_pack(report, signing_key=key, data=data)
    from zerodrift.ledger import github

    github.emit(data, str(written["markdown"]), sys.stderr)
    _summary(report)
    err.print(escape(f"proof pack: {report.output_dir}  (ledger: {written['markdown']})"))
    if key_source is None:  # said once a pack exists, not ahead of a usage error
        err.print("[yellow]note:[/yellow] no signing key (--sign-key, ZERODRIFT_SIGNING_KEY or signing.key): "
                  f"the ledger is UNSIGNED (`zerodrift sign {escape(str(report.output_dir))}` signs it unchanged)")
    printed = {OutputFormat.json: "json", OutputFormat.junit: "junit", OutputFormat.markdown: "markdown"}
    if output_format in printed:  # exactly the file written (the ledger with its signature)
        sys.stdout.buffer.write(written[printed[output_format]].read_bytes())
    sys.stdout.flush()
    if key_error is not None:
        err.print(f"[bold red]error:[/bold red] {escape(str(key_error))}; the pack was written UNSIGNED "
                  f"(sign it with `zerodrift sign {escape(str(report.output_dir))}` once the key loads)")
        raise typer.Exit(key_error.exit_code)
    raise typer.Exit(report.exit_code)


def _interrupted_exit_code(exc: BaseException) -> int:
    """128 + the signal's number, as shells report a process ended by a signal: 130 for
    Ctrl-C (SIGINT), 143 for SIGTERM."""
    if exc.args and str(exc.args[0]).startswith("signal "):
        try:
            return 128 + int(str(exc.args[0]).split()[1])
        except (ValueError, IndexError):
            pass
    return 128 + signal.SIGINT


def _interrupted_text(exc: BaseException) -> str:
    """What an interruption stopped, from the runner's RunInterrupted (gates interrupted,
    finished, not started); gates interrupted are named as such, never as FAIL or ERROR."""
    cause = "Ctrl-C (SIGINT)"
    if exc.args and str(exc.args[0]).startswith("signal "):
        try:
            cause = signal.Signals(int(str(exc.args[0]).split()[1])).name
        except (ValueError, IndexError):
            cause = str(exc.args[0])
    if not isinstance(exc, RunInterrupted):
        return f"by {cause} before any gate ran"
    parts = [f"by {cause}"]
    if exc.interrupted:
        parts.append(f"gates interrupted: {', '.join(exc.interrupted)}")
    if exc.finished:
        parts.append("finished before: " + ", ".join(f"{gid} {status}" for gid, status in exc.finished.items()))
    if exc.not_started:
        parts.append(f"not started: {', '.join(exc.not_started)}")
    return "; ".join(parts)


def _signing_key_source(loaded: Optional[LoadedConfig], flag: Optional[str]):
    """(key path or text, passphrase) from the flag, ZERODRIFT_SIGNING_KEY or the config's
    signing.key (of ``loaded``, the run's configuration; None: no config to read),
    checked without decrypting (:func:`zerodrift.ledger.sign.inspect_signing_key`);
    None when no key is given. Raises UsageError (one line) for a key that cannot work."""
    from zerodrift.childenv import secret
    from zerodrift.ledger.sign import inspect_signing_key

    passphrase = secret("ZERODRIFT_SIGNING_KEY_PASSPHRASE")
    source = flag or secret("ZERODRIFT_SIGNING_KEY")
    if not source and loaded is not None and loaded.config.signing.key:
        source = str(loaded.path(loaded.config.signing.key))
    if not source:
        return None
    inspect_signing_key(source, passphrase)
    return source, passphrase


@app.command()
def sign(
    pack: Path = typer.Argument(..., help="An UNSIGNED proof pack written by `zerodrift run`: its folder, or the commit folder whose LATEST-FULL (else LATEST) pointer names it."),
    sign_key: Optional[str] = typer.Option(None, "--sign-key", help="Ed25519 private key (OpenSSH) (env ZERODRIFT_SIGNING_KEY: a path or the key itself; passphrase in ZERODRIFT_SIGNING_KEY_PASSPHRASE)."),
) -> None:
    """Sign an existing UNSIGNED proof pack and write its attestation, after checking every digest it records.

    Exit 0 signed; 1 refused (a file changed, missing or added after the run, or already
    signed; the message names the file); 2 no key, or the key cannot be loaded.
    """
    from zerodrift.ledger.sign import load_signing_key, sign_pack

    try:
        source = _signing_key_source(None, sign_key)
        if source is None:
            raise UsageError("no signing key: give --sign-key PATH or set ZERODRIFT_SIGNING_KEY (a path or the key text)")
        key = load_signing_key(*source)
        from zerodrift.ledger.layout import resolve_ledger

        written = sign_pack(resolve_ledger(pack).parent if pack.is_dir() else pack, key)
    except ZerodriftError as exc:
        err.print(f"[bold red]error:[/bold red] {escape(str(exc))}")
        raise typer.Exit(exc.exit_code)
    err.print(escape(f"signed: {written['markdown']} and {written['attestation']}"))


def _summary(report) -> None:
    table = Table(title=f"zerodrift {report.provenance.short_sha} — {report.duration_s:.1f} s", title_justify="left")
    table.add_column("Gate")
    table.add_column("Status")
    table.add_column("Evidence", overflow="fold")
    for r in report.results:
        style = _STATUS_STYLE.get(r.status.value, "")
        table.add_row(escape(f"{r.gate_id} {r.title}"), f"[{style}]{r.status.value}[/{style}]", escape(r.summary))
    err.print(table)
    verdict = report.verdict
    style = {"PASS": "bold green", "INCOMPLETE": "bold yellow"}.get(verdict.overall, "bold red")
    err.print(f"[{style}]{verdict.overall}[/{style}] (exit {verdict.exit_code}): {escape(verdict.reason)}")


@app.command()
def gates() -> None:
    """List the installed gates (built-in and plugins)."""
    from zerodrift.plugins import installed_gates, plugin_name

    rows = [(gid, gate.title, ", ".join(gate.needs) or "-", ", ".join(gate.provides) or "-", plugin_name(gate))
            for gid, gate in installed_gates().items()]
    if not sys.stdout.isatty():  # machine output: one tab-separated line per gate
        for row in rows:
            typer.echo("\t".join(row))
        return
    table = Table(show_header=True, header_style="bold")
    for col in ("Gate", "Title", "Needs", "Provides", "From"):
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*row)
    Console(no_color=bool(os.environ.get("NO_COLOR")), highlight=False).print(table)


@app.command("config-reference")
def config_reference(
    name: Optional[str] = typer.Argument(None, help="A config section (target, server, roles, output, signing) or a gate id such as ZG-7; nothing: the whole reference."),
) -> None:
    """Print the configuration reference: every key with its type, default and meaning (Markdown).

    Generated from the config models of this installation, plugins' gates included, so it
    matches the version that reads the file. Exit 2 for a name that is neither a section nor
    an installed gate.
    """
    from zerodrift.config_reference import render, render_section

    try:
        text = render(plugins=True) if name is None else render_section(name)
    except ZerodriftError as exc:
        err.print(f"[bold red]error:[/bold red] {escape(str(exc))}")
        raise typer.Exit(exc.exit_code)
    if sys.stdout.isatty():
        from rich.markdown import Markdown

        Console(no_color=bool(os.environ.get("NO_COLOR")), highlight=False).print(Markdown(text))
        return
    sys.stdout.write(text)
    sys.stdout.flush()


@app.command()
def verify(
    ledger: Path = typer.Argument(..., help="The signed ledger.md, its pack folder, or a commit folder (its LATEST-FULL pack, else LATEST)."),
    allowed_signers: Optional[Path] = typer.Option(None, "--allowed-signers", help="OpenSSH allowed_signers file (env ZERODRIFT_ALLOWED_SIGNERS)."),
    principal: Optional[str] = typer.Option(None, "--principal", "-I", help="Principal the key must be allowed for."),
    commit: Optional[str] = typer.Option(None, "--commit", help="The commit the ledger must be for."),
    head: bool = typer.Option(False, "--head", help="The ledger must be for the current HEAD of the repository here."),
    require_pass: bool = typer.Option(False, "--require-pass", help="Also fail unless ledger.json records the verdict PASS of a full run (every installed gate); INCOMPLETE and FAIL fail."),
) -> None:
    """Verify a signed ledger offline: signature, allowed key, namespace, commit, every file it names, attestation.

    Exit 0 when valid, 1 when not (a missing named file, a changed file, a bad
    signature, or with --require-pass a verdict other than PASS), 2 for usage errors.
    """
    from zerodrift.ledger.layout import resolve_ledger
    from zerodrift.ledger.sign import git_head, verify_ledger

    signers = allowed_signers or (Path(os.environ["ZERODRIFT_ALLOWED_SIGNERS"]) if os.environ.get("ZERODRIFT_ALLOWED_SIGNERS") else None)
    if signers is None or not signers.is_file():
        err.print("[bold red]error:[/bold red] give --allowed-signers FILE (lines like "
                  "'release@example.com namespaces=\"zerodrift-ledger\" ssh-ed25519 AAAA…'; `zerodrift keygen` prints one)")
        raise typer.Exit(EXIT_USAGE)
    ledger = resolve_ledger(ledger)
    if not ledger.is_file():
        err.print(f"[bold red]error:[/bold red] {escape(str(ledger))} does not exist")
        raise typer.Exit(EXIT_USAGE)
    try:
        wanted = git_head(Path.cwd()) if head else commit
        if wanted and not all(c in "0123456789abcdefABCDEF" for c in wanted):
            wanted = git_head(Path.cwd(), wanted)  # a ref such as HEAD~1 or v1.4.0
    except ZerodriftError as exc:
        err.print(f"[bold red]error:[/bold red] {escape(str(exc))}")
        raise typer.Exit(exc.exit_code)
    result = verify_ledger(ledger, allowed_signers=signers, principal=principal, commit=wanted)
    attestation = ledger.with_name("attestation.dsse.json")
    if result.ok and attestation.is_file():
        _verify_attestation(ledger, attestation, result)
    if result.ok and require_pass and (result.overall != "PASS" or result.partial):
        result.ok = False
        result.problems.append(f"ledger.json records the verdict {result.overall or 'unknown'}"
                               + (" of a partial run (some gates not run)" if result.partial else "")
                               + (f" ({result.headline})" if result.headline else "")
                               + " and --require-pass accepts only PASS of a full run")
    if result.ok:
        scope = " — a PARTIAL run (some gates not run)" if result.partial else ""
        typer.echo(f"OK: signature valid: {ledger} signed by {result.signer} ({result.fingerprint}), "
                   f"commit {result.commit}; verdict {result.overall or 'unknown'}{scope}")
        if result.headline:
            typer.echo(f"  {result.headline}")
        if not wanted:
            typer.echo("  note: the commit was not checked (give --commit SHA or --head)")
        for note in result.notes:
            typer.echo(f"  {note}")
        raise typer.Exit(0)
    for problem in result.problems:
        typer.echo(f"INVALID: {problem}")
    for note in result.notes:
        if note.startswith("WARNING"):
            typer.echo(f"  {note}")
    raise typer.Exit(1)


def _verify_attestation(ledger: Path, attestation: Path, result) -> None:
    import hashlib
    import json as _json

    from zerodrift.ledger import attest, sshsig
    from zerodrift.ledger.sign import split_signed
    from zerodrift.verdict import ATTESTATION_RESULT

    try:
        parsed = sshsig.parse(split_signed(ledger.read_bytes())[1])
        stmt = attest.verify_envelope(_json.loads(attestation.read_bytes()), parsed.public_key)
    except (sshsig.SignatureError, ValueError, KeyError) as exc:
        result.ok = False
        result.problems.append(str(exc) if str(exc).startswith("attestation") else f"attestation: {exc}")
        return
    digests = {s["name"]: s["digest"] for s in stmt["subject"]}
    if digests.get("ledger.md", {}).get("sha256") != hashlib.sha256(ledger.read_bytes()).hexdigest():
        result.ok = False
        result.problems.append("attestation: its ledger.md digest does not match this ledger")
    elif digests.get("commit", {}).get("gitCommit") != result.commit:
        result.ok = False
        result.problems.append("attestation: its commit does not match the ledger's")
    elif result.overall and stmt["predicate"].get("result") != ATTESTATION_RESULT.get(result.overall):
        result.ok = False
        result.problems.append(f"attestation: its test result {stmt['predicate'].get('result')} disagrees with the "
                               f"verdict {result.overall} in ledger.json")
    else:
        result.notes.append(f"attestation.dsse.json verified (test result {stmt['predicate']['result']})")


@app.command()
def gc(
    admin_url: Optional[str] = typer.Option(None, "--admin-url", help="External server to sweep (env ZERODRIFT_ADMIN_URL); without it only embedded leftovers are swept."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would be dropped, drop nothing."),
    older_than: float = typer.Option(24.0, "--older-than", help="Hours after which another host's run counts as abandoned."),
    kept: bool = typer.Option(False, "--kept", help="Also drop databases kept with `run --keep`."),
    packs: Optional[Path] = typer.Option(None, "--packs", help="Also prune old proof packs below this folder (a commit folder such as proofs/<short sha>, or proofs/)."),
    keep_last: int = typer.Option(5, "--keep-last", min=0, help="With --packs: packs kept per commit folder, newest first; the packs LATEST and LATEST-FULL name are always kept."),
) -> None:
    """Find and drop what killed runs left behind (marked throwaway databases, embedded server folders), prune the embedded server's initdb templates to the most recently used ones; with --packs, prune old proof packs."""
    from zerodrift.server.embedded import TEMPLATE_KEEP, prune_templates, sweep_stale, template_caches
    from zerodrift.server.provision import drop_leftovers, find_leftovers
    from zerodrift.urls import check_url, mask

    if packs is not None:
        from zerodrift.ledger.layout import prune_packs

        if not packs.is_dir():
            err.print(f"[bold red]error:[/bold red] --packs {escape(str(packs))} is not a folder")
            raise typer.Exit(EXIT_USAGE)
        removed = prune_packs(packs, keep_last, dry_run=dry_run)
        for path in removed:
            typer.echo(f"{path}\t{'would remove' if dry_run else 'removed'}")
        err.print(f"{'would remove' if dry_run else 'removed'} {len(removed)} proof pack(s) below {escape(str(packs))} "
                  f"(kept the newest {keep_last} per commit and the LATEST/LATEST-FULL packs)")
    from zerodrift.childenv import secret

    url = admin_url or secret("ZERODRIFT_ADMIN_URL")
    if url:
        try:
            check_url(url, "admin URL")
            leftovers = find_leftovers(url, older_than_s=older_than * 3600, kept=kept)
        except ZerodriftError as exc:
            err.print(f"[bold red]error:[/bold red] {escape(str(exc))}")
            raise typer.Exit(exc.exit_code)
        except Exception as exc:  # psycopg errors: unreachable server, bad password
            err.print(f"[bold red]error:[/bold red] cannot sweep {mask(url)}: {escape(str(exc))}")
            raise typer.Exit(3)
        for lo in leftovers:
            verdict = (f"drop ({lo.reason})" if lo.reason else "keep (its run may still be alive)")
            typer.echo(f"{lo.name}\trun {lo.run_id}\thost {lo.host}\tpid {lo.pid}\t{lo.created.isoformat()}\t{verdict}")
        if not dry_run:
            dropped = drop_leftovers(url, leftovers)
            err.print(f"dropped {len(dropped)} database(s) on {mask(url)}")
        else:
            err.print(f"dry run: {sum(1 for lo in leftovers if lo.reason)} database(s) would be dropped")
    from zerodrift import tempfiles

    stale_dirs = sweep_stale(dry_run=dry_run)
    gate_dirs = tempfiles.stale_gate_folders()
    templates = [path for cache in template_caches() for path in prune_templates(cache, dry_run=dry_run)]
    for path in [*stale_dirs, *gate_dirs, *templates]:
        typer.echo(f"{path}\t{'would remove' if dry_run else 'removed'}")
    if not dry_run:
        tempfiles.remove(gate_dirs)
    err.print(f"{'would remove' if dry_run else 'removed'} {len(stale_dirs)} stale embedded server folder(s), "
              f"{len(gate_dirs)} gate temporary folder(s) and {len(templates)} initdb template(s) beyond the "
              f"{TEMPLATE_KEEP} most recently used")


@app.command()
def keygen(
    path: Path = typer.Argument(..., help="Where to write the private key; the public key goes to PATH.pub."),
    principal: str = typer.Option("release@zerodrift", "--principal", "-I", help="Principal for the allowed_signers line."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing key."),
) -> None:
    """Write an Ed25519 key pair (OpenSSH format) and print its allowed_signers line."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from zerodrift.ledger import sshsig
    from zerodrift.ledger.sign import NAMESPACE

    pub_path = path.with_name(path.name + ".pub")
    if (path.exists() or pub_path.exists()) and not force:
        err.print(f"[bold red]error:[/bold red] {path} or {pub_path} exists; use --force to overwrite")
        raise typer.Exit(EXIT_USAGE)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    line = sshsig.public_key_line(key.public_key())
    pub_path.write_text(f"{line} {principal}\n")
    err.print(f"wrote {path} (private, mode 0600) and {pub_path}")
    err.print("allowed_signers line (give it to reviewers):")
    typer.echo(f'{principal} namespaces="{NAMESPACE}" {line}')


@app.command()
def init(
    target: Path = typer.Argument(Path("."), help="The repository or backend folder to inspect (alembic.ini is searched below it)."),
    stdout: bool = typer.Option(False, "--stdout", help="Print the config instead of writing zerodrift.toml."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing zerodrift.toml."),
) -> None:
    """Inspect a backend and write a commented zerodrift.toml next to its alembic.ini (TODOs mark what to decide)."""
    from rich.markup import escape

    from zerodrift.onboard.init import init_config

    try:
        result = init_config(target, write=not stdout, force=force)
    except ZerodriftError as exc:
        err.print(f"[bold red]error:[/bold red] {escape(str(exc))}")
        raise typer.Exit(exc.exit_code)
    if stdout:
        sys.stdout.write(result.text)
        sys.stdout.flush()
        return
    err.print(escape(f"wrote {result.path} ({len(result.todos)} TODOs)"))
    for todo in result.todos:
        err.print(f"  [yellow]TODO[/yellow] {escape(todo)}")
    folder = os.path.relpath(result.path.parent)
    err.print(escape(f"next: fill the TODOs, then `zerodrift doctor {folder}` and `zerodrift run {folder}`"))


@app.command()
def doctor(
    target: Path = typer.Argument(Path("."), help="The backend's folder (holds alembic.ini or zerodrift.toml)."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Config file (default: found from TARGET upward)."),
    admin_url: Optional[str] = typer.Option(None, "--admin-url", help="Admin URL of an external PostgreSQL (env ZERODRIFT_ADMIN_URL); default: an embedded server."),
    python: Optional[str] = typer.Option(None, "--python", help="Target interpreter (env ZERODRIFT_PYTHON)."),
    sign_key: Optional[str] = typer.Option(None, "--sign-key", help="Signing key to check (env ZERODRIFT_SIGNING_KEY; config signing.key)."),
    pg_version: Optional[int] = typer.Option(None, "--pg-version", min=9, help="PostgreSQL major version of production, e.g. 16 (config server.version): the embedded server runs it; an external server of another major is an error."),
) -> None:
    """Check the setup before a run: config, interpreter, server, roles, imports, signing key, git. Creates nothing."""
    from zerodrift.onboard.doctor import run_doctor

    report = run_doctor(target, config_file=config, admin_url=admin_url, python=python, sign_key=sign_key,
                        pg_version=pg_version, emit=lambda finding: typer.echo(finding.line()))
    raise typer.Exit(report.exit_code)


def main() -> None:
    """Console-script entry point. Takes zerodrift's secrets out of the environment first
    and makes this process non-dumpable, so the target's processes cannot read them from
    ``/proc/<zerodrift's pid>/environ`` or its memory (see :mod:`zerodrift.childenv`)."""
    from zerodrift.childenv import forbid_core_dumps_and_tracing, take_secrets

    # the signing key, its passphrase and the admin URL move into memory now: nothing this
    # process starts later (the target's code above all) inherits them. (In-process callers
    # of ``app``, e.g. tests, keep them in os.environ; target processes never get them
    # either way: their environment is an allowlist without these names.)
    take_secrets()
    forbid_core_dumps_and_tracing()
    try:
        app()
    except ZerodriftError as exc:  # pragma: no cover - commands handle their own
        err.print(f"error: {exc}")
        sys.exit(exc.exit_code if exc.exit_code else EXIT_USAGE)


if __name__ == "__main__":
    main()
