"""The one table ``make bench`` prints, its header (date, machine, versions), and the JSON."""

from __future__ import annotations

import json
import os
import platform
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.figures import Figure, Section
from bench.targets import target_for

PACKAGES = ("dagster", "redis", "hiredis", "pandas", "numpy", "rq", "requests")


def machine() -> dict[str, Any]:
    import psutil

    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "cpu": model or platform.processor() or platform.machine(),
        "os": platform.platform(),
        "python": platform.python_version(),
    }


def versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "absent"
    return found


def header(meta: dict[str, Any]) -> list[str]:
    m, v, server = meta["machine"], meta["versions"], meta["redis_server"]
    name = server.get("server", "redis")
    server_text = (
        f"{name} {server['valkey_version']} (redis_version {server['redis_version']})"
        if "valkey_version" in server
        else f"{name} {server['redis_version']}"
    )
    return [
        f"gh_assets bench - {meta['date']} - size {meta['size']}, {meta['runs']} run(s): "
        f"median, min-max of runs",
        f"machine: {m['cores']} cores, {m['ram_gib']} GiB RAM, {m['cpu']}; {m['os']}",
        f"Python {m['python']}; Redis server {server_text}; dagster {v['dagster']}; "
        f"redis-py {v['redis']} (hiredis {v['hiredis']}); pandas {v['pandas']}; "
        f"numpy {v['numpy']}; rq {v['rq']}",
        f"load average (1/5/15 min) before the bench {_loads(meta.get('load_average_at_start'))}"
        f" (other work sharing the {m['cores']} cores), at its end "
        f"{_loads(meta.get('load_average_at_end'))}",
    ]


def _loads(values: list[float] | None) -> str:
    return "/".join(f"{v:.1f}" for v in values) if values else "?"


def _number(value: float, digits: int) -> str:
    if abs(value) >= 1e5 and digits <= 1:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def _row(section: Section, figure: Figure, targets: dict[tuple[str, str], dict]) -> list[str]:
    spread = (
        ""
        if len(figure.values) == 1
        else f"{_number(figure.low, figure.digits)}-{_number(figure.high, figure.digits)}"
    )
    target = target_for(section.name, figure.key)
    verdict = targets.get((section.name, figure.key), {})
    status = verdict.get("status", "")
    if status == "MISS":
        status = f"MISS ({verdict['by']})"
    elif status == "n/a":
        status = f"n/a ({verdict.get('why', '')})"
    return [
        section.name,
        figure.label,
        _number(figure.median, figure.digits),
        spread,
        figure.unit,
        str(len(figure.values)),
        target.describe() if target else "",
        status,
    ]


def table(meta: dict[str, Any], sections: list[Section], verdicts: list[dict]) -> str:
    by_figure = {(v["section"], v["figure"]): v for v in verdicts}
    head = ["benchmark", "figure", "median", "min-max", "unit", "n", "target", "status"]
    rows: list[list[str]] = []
    for section in sections:
        if section.error and not section.figures:
            rows.append([section.name, f"ERROR: {section.error}"[:160], "", "", "", "", "", ""])
            continue
        if section.skipped:
            rows.append([section.name, f"skipped: {section.skipped}", "", "", "", "", "", ""])
            continue
        rows += [_row(section, figure, by_figure) for figure in section.figures]
        if section.error:
            rows.append([section.name, f"ERROR: {section.error}"[:160], "", "", "", "", "", ""])
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    right = {2, 3, 5}

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    out = [*header(meta), "", line(head), line(["-" * w for w in widths])]
    previous = None
    for row in rows:
        if previous is not None and row[0] != previous:
            out.append("")
        out.append(line(row))
        previous = row[0]
    notes = [f"- [{s.name}] {note}" for s in sections for note in s.notes]
    shown = {(s.name, f.key) for s in sections for f in s.figures}
    extra = [
        f"- target '{v['target']}': n/a ({v.get('why', '')})"
        for v in verdicts
        if (v["section"], v["figure"]) not in shown
    ]
    if notes or extra:
        out += ["", "notes:", *notes, *extra]
    return "\n".join(out)


def to_json(
    meta: dict[str, Any], sections: list[Section], verdicts: list[dict], wall: float
) -> dict[str, Any]:
    return {
        "meta": meta,
        "wall_seconds": round(wall, 1),
        "benchmarks": {s.name: s.to_json() for s in sections},
        "targets": verdicts,
    }


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=1, default=str) + "\n")
    os.replace(tmp, path)


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
