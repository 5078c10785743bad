"""Renderers of the utility commands (version, doctor, validate, convert-records, demo, run, publish-hf-artifact,
pull)."""

from __future__ import annotations

import typer

from interp_lab.cli import render
from interp_lab.cli.generate import print_json, renders, shows
from interp_lab.report._format import printable


@renders("version")
def version(res, options, json_out: bool) -> None:
    if json_out:
        print_json(res)
        return
    libs = ", ".join(f"{k} {v}" for k, v in res.libraries.items() if v)
    typer.echo(f"interp-lab {res.interp_lab} (Python {res.python}; {libs})")


shows("run", table=render.run_summary)
shows("doctor", table=render.doctor)
shows("providers", table=render.providers)
shows("demo", table=render.demo)


@renders("validate")
def validate(res, options, json_out: bool) -> None:
    typer.echo(f"{res.path}: ok ({', '.join(f'{k} {v}' for k, v in res.summary.items())})")


@renders("convert-records")
def convert_records(res, options, json_out: bool) -> None:
    typer.echo(f"wrote {res.paths['parquet']} ({res.rows} rows, {res.features} features, "
               f"{res.nonzero} non-zero activations)")


@renders("publish-hf-artifact")
def publish_hf_artifact(res, options, json_out: bool) -> None:
    if json_out:
        print_json(res)
        return
    size = sum(f.bytes for f in res.files)
    where = f"{res.repo_type} {res.repo_id}" + (f" (branch {res.revision})" if res.revision else "")
    if not res.dry_run:
        typer.echo(f"published {res.kind} {res.path} to {where}: {len(res.files)} files, {size:,} bytes, "
                   f"commit {res.commit}\n{res.url}")
        return
    typer.echo(f"dry run: {res.kind} {res.path} as {where}; nothing uploaded")
    width = max(len(f.path) for f in res.files)
    typer.echo(f"{'file':<{width}}  {'bytes':>12}  sha256")
    for f in res.files:
        typer.echo(f"{f.path:<{width}}  {f.bytes:>12,}  {f.sha256}" + ("  (generated)" if f.generated else ""))
    typer.echo(f"{len(res.files)} files, {size:,} bytes")
    if res.skipped:
        typer.echo(f"left out ({len(res.skipped)} hidden): {', '.join(res.skipped[:10])}"
                   + (" ..." if len(res.skipped) > 10 else ""))
    typer.echo("--- README.md ---")
    typer.echo(printable(res.card), nl=False)


@renders("pull")
def pull(res, options, json_out: bool) -> None:
    if json_out:
        print_json(res)
        return
    what = res.kind + (f" of {res.model}" + (f" at revision {res.revision}" if res.revision else "") if res.model else "")
    typer.echo(f"{res.repo_type} {res.repo_id} at commit {res.commit}: {what}")
    for rel, kind in res.parts:
        typer.echo(f"  {rel}: {kind}")
    typer.echo(f"{res.files} files; {res.checked} match the sha256 their manifest and SHA256SUMS record"
               + (" (already in the cache)" if res.cached else ""))
    typer.echo(str(res.path))
