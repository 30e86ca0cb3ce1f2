"""The readable provenance report: the manifest as sections of facts and tables, in Markdown and in HTML.

The HTML page is what `snakemake --report` shows under "Provenance"; the Markdown file reads well in a terminal
or a code review. Both are rendered from one list of sections, so they never disagree.
"""

from __future__ import annotations

import html
from typing import Any

Section = tuple[str, list[str], list[str], list[list[str]]]  # title, facts, table header, table rows

SHORT = 16


def _short(digest: str | None, n: int = SHORT) -> str:
    if not digest:
        return "-"
    return digest.removeprefix("code-sha256:")[:n]


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def sections(manifest: dict[str, Any]) -> list[Section]:
    """The report's sections, in order: the run, its rules, its outputs, stale outputs, packages, the audit."""
    return [
        _run_section(manifest),
        _rules_section(manifest),
        _outputs_section(manifest),
        *_stale_section(manifest),
        _packages_section(manifest["environment"]),
        AUDIT_SECTION,
    ]


def _run_section(manifest: dict[str, Any]) -> Section:
    code = manifest["code"]
    env = manifest["environment"]
    run = manifest.get("run", {})
    dirty = code.get("dirty")
    if code.get("git_commit") is None:
        version = "not a git checkout (see each rule's code fingerprint)"
    else:
        version = f"git {code['git_commit']} ({'uncommitted changes' if dirty else 'clean tree'})"
    facts = [
        f"created: {manifest['created']}",
        f"run directory: {manifest.get('run_directory')}",
        f"run: {run.get('start')} to {run.get('end')}",
        f"code: {version}",
        f"host: {env['host']} ({env.get('cpu_count')} CPUs); Python {env['python']}; {env['platform']}",
        (
            f"Snakemake {manifest.get('workflow', {}).get('snakemake')}; "
            f"requirements.lock sha256 {_short(env.get('requirements_lock_sha256'))}"
        ),
        f"seeds: {', '.join(f'{k}={v}' for k, v in manifest['seeds'].get('all', {}).items()) or manifest['seeds']}",
        f"config sha256: {_short(manifest.get('config_sha256'))}",
    ]
    if code.get("dirty_files"):
        facts.append(
            "uncommitted: "
            + ", ".join(code["dirty_files"][:20])
            + (f" and {len(code['dirty_files']) - 20} more" if len(code["dirty_files"]) > 20 else "")
        )
    return ("Provenance", facts, [], [])


def _rules_section(manifest: dict[str, Any]) -> Section:
    rules = manifest.get("rules", {})
    counts = manifest.get("outputs_by_rule", {})
    rows = []
    for name, info in rules.items():
        nondet = info.get("nondeterministic_outputs") or {}
        rows.append(
            [
                name,
                info.get("stage", "-"),
                "no: " + "; ".join(nondet.values()) if nondet else "yes",
                info.get("script") or "-",
                _short((info.get("code") or {}).get("digest")),
                str(len((info.get("code") or {}).get("files", {}))),
                str(counts.get(name, 0)),
                str(info.get("seed")) if info.get("seed") is not None else "-",
            ]
        )
    return (
        "Rules",
        ["code fingerprint: sha256 over the rule's script and every package module it imports"],
        ["rule", "stage", "byte-reproducible", "script", "code fingerprint", "code files", "outputs", "seed"],
        rows,
    )


def _outputs_section(manifest: dict[str, Any]) -> Section:
    rows = []
    for o in manifest["outputs"]:
        rows.append(
            [
                o["path"] + ("" if o.get("declared", True) else " (work file)"),
                o.get("rule") or "-",
                _short(o.get("sha256")),
                _size(o.get("size")),
                str(len(o.get("inputs", {}))),
                str(o.get("start") or "-"),
                str(o.get("end") or "-"),
                str(o.get("host") or "-"),
                "yes" if o.get("deterministic", True) else "no",
            ]
        )
    return (
        "Outputs",
        [(f"{len(manifest['outputs'])} outputs; sha256 shown to {SHORT} hex digits, full values in manifest.json")],
        ["output", "rule", "sha256", "size", "inputs", "start", "end", "host", "reproducible"],
        rows,
    )


def _stale_section(manifest: dict[str, Any]) -> list[Section]:
    stale = [
        (o["path"], o["inputs_changed_since_run"]) for o in manifest["outputs"] if o.get("inputs_changed_since_run")
    ]
    if not stale:
        return []
    return [
        (
            "Stale outputs",
            ["inputs changed after these outputs were made"],
            ["output", "inputs"],
            [[p, ", ".join(i)] for p, i in stale],
        )
    ]


def _packages_section(env: dict[str, Any]) -> Section:
    packages = env.get("packages", {})
    return (
        "Packages",
        [f"{len(env.get('all_packages', {}))} distributions installed (all in manifest.json)"],
        ["package", "version"],
        [[k, str(v)] for k, v in packages.items()],
    )


AUDIT_SECTION: Section = (
    "Audit",
    [
        (
            "`abacus-repro audit` checks every output against this manifest and names what drifted and why; "
            "`abacus-repro audit --rerun` re-executes the deterministic data rules in a scratch directory and "
            "compares bytes."
        )
    ],
    [],
    [],
)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(manifest: dict[str, Any]) -> str:
    lines: list[str] = []
    for i, (title, facts, header, rows) in enumerate(sections(manifest)):
        lines += [f"{'#' if i == 0 else '##'} {title}", ""]
        lines += [f"- {fact}" for fact in facts]
        if header:
            lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
        lines.append("")
    return "\n".join(lines)


STYLE = (
    "body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;font-size:90%}"
    "td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}th{background:#eee}"
    "td:nth-child(3){font-family:monospace}"
)


def render_html(manifest: dict[str, Any]) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8"><title>Provenance</title>',
        f"<style>{STYLE}</style></head><body>",
    ]
    for i, (title, facts, header, rows) in enumerate(sections(manifest)):
        tag = "h1" if i == 0 else "h2"
        parts.append(f"<{tag}>{html.escape(title)}</{tag}>")
        if facts:
            parts.append("<ul>" + "".join(f"<li>{html.escape(f)}</li>" for f in facts) + "</ul>")
        if header:
            parts.append("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>")
            parts += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows]
            parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
