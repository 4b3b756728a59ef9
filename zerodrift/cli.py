"""Command line: parsing, output streams and exit codes only.

Exit codes (DESIGN.md, "CLI conventions"): 0 all gates pass; 1 a gate failed;
2 usage or config error; 3 environment error. Machine output goes to stdout,
progress and the summary to stderr; rich styling only on a terminal, and
``NO_COLOR`` is honoured.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from zerodrift import __version__
from zerodrift.errors import EXIT_USAGE, ZerodriftError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Zero-drift release gates for Alembic + PostgreSQL backends, with a proof pack.")
err = Console(stderr=True, no_color=bool(os.environ.get("NO_COLOR")), highlight=False)

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
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Proof pack folder (default: proofs/<short sha> under the config root)."),
    python: Optional[str] = typer.Option(None, "--python", help="Target interpreter (env ZERODRIFT_PYTHON)."),
    gate: list[str] = typer.Option([], "--gate", "-g", help="Run only this gate (repeatable); its dependencies are added."),
    keep: bool = typer.Option(False, "--keep", help="Keep the throwaway databases (they are listed in the ledger)."),
    output_format: OutputFormat = typer.Option(OutputFormat.none, "--format", "-f", help="Also print the ledger to stdout as json, junit or markdown."),
) -> None:
    """Run the gates against TARGET and write the proof pack."""
    from zerodrift.ledger.model import ledger_data
    from zerodrift.ledger.render import render_json, render_junit, render_markdown, write_proof_pack
    from zerodrift.runner import RunOptions
    from zerodrift.runner import run as run_gates

    signal.signal(signal.SIGTERM, _on_sigterm)
    options = RunOptions(target=target, config_file=config, admin_url=admin_url, output=out, python=python,
                         gates=list(gate), keep=keep)

    def progress(message: str, result) -> None:
        if result is None:
            err.print(f"[dim]… {message}[/dim]")
        else:
            style = _STATUS_STYLE.get(result.status.value, "")
            err.print(f"[{style}]{result.status.value:7}[/{style}] {result.gate_id} {result.title} "
                      f"[dim]({result.duration_s:.1f} s)[/dim]")

    try:
        report = run_gates(options, progress=progress)
    except ZerodriftError as exc:
        err.print(f"[bold red]error:[/bold red] {exc}")
        raise typer.Exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("[bold red]interrupted[/bold red]: throwaway databases dropped, embedded server stopped")
        raise typer.Exit(130)
    written = write_proof_pack(report)
    data = ledger_data(report)
    _summary(report)
    err.print(f"proof pack: {report.output_dir}  (ledger: {written['markdown']})")
    if output_format is OutputFormat.json:
        sys.stdout.buffer.write(render_json(data))
    elif output_format is OutputFormat.junit:
        sys.stdout.buffer.write(render_junit(data))
    elif output_format is OutputFormat.markdown:
        sys.stdout.buffer.write(render_markdown(data))
    sys.stdout.flush()
    raise typer.Exit(report.exit_code)


def _summary(report) -> None:
    table = Table(title=f"zerodrift {report.provenance.short_sha} — {report.duration_s:.1f} s", title_justify="left")
    table.add_column("Gate")
    table.add_column("Status")
    table.add_column("Evidence", overflow="fold")
    for r in report.results:
        style = _STATUS_STYLE.get(r.status.value, "")
        table.add_row(f"{r.gate_id} {r.title}", f"[{style}]{r.status.value}[/{style}]", r.summary)
    err.print(table)


@app.command()
def gates() -> None:
    """List the installed gates (built-in and plugins)."""
    from zerodrift.plugins import installed_gates, plugin_name

    table = Table(show_header=True, header_style="bold")
    for col in ("Gate", "Title", "Needs", "Provides", "From"):
        table.add_column(col)
    for gid, gate in installed_gates().items():
        table.add_row(gid, gate.title, ", ".join(gate.needs) or "-", ", ".join(gate.provides) or "-", plugin_name(gate))
    Console(no_color=bool(os.environ.get("NO_COLOR")), highlight=False).print(table)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except ZerodriftError as exc:  # pragma: no cover - commands handle their own
        err.print(f"error: {exc}")
        sys.exit(exc.exit_code if exc.exit_code else EXIT_USAGE)


if __name__ == "__main__":
    main()
