"""Shared results writer for the benchmark suites: JSON + Markdown, stamped with where they came from.

Every suite (``zoo``, ``paper``, ``speed``) writes ``benchmarks/results/<name>.json`` and ``<name>.md``
through :func:`write_results`, so each table says which command, commit, library versions, thread count
and CPU produced it.

Example:
    >>> from benchmarks._common import write_results
    >>> write_results("demo", [{"model": "resnet10t", "ok": True}], title="Demo", out_dir=tmp)  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from robust_prune.atomic import write_json, write_text

__all__ = [
    "RESULTS_DIR",
    "add_threads_argument",
    "comma_list",
    "environment",
    "markdown_table",
    "set_threads",
    "write_results",
]

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=Path(__file__).resolve().parent, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def comma_list(text: str) -> tuple[str, ...]:
    """A command-line list such as ``"f1, f3"``: its items, stripped, empty ones dropped."""
    return tuple(item.strip() for item in text.split(",") if item.strip())


def add_threads_argument(parser: Any) -> None:
    """The ``--threads`` option the training suites share."""
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads for torch (default: $OMP_NUM_THREADS, else 1; the stamp records it)",
    )


def set_threads(threads: int | None) -> int:
    """Set torch's thread count: ``threads``, else ``$OMP_NUM_THREADS``, else 1 (results do not follow the cores)."""
    import torch

    count = threads if threads is not None else int(os.environ.get("OMP_NUM_THREADS", "1") or 1)
    if count < 1:
        raise ValueError(f"threads must be at least 1, got {count}")
    torch.set_num_threads(count)
    return count


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict[str, Any]:
    """Command, commit, versions, threads and CPU: the stamp every results file carries."""
    import timm
    import torch

    try:
        import torch_pruning

        tp_version = getattr(torch_pruning, "__version__", "unknown")
    except ImportError:  # pragma: no cover
        tp_version = None
    import robust_prune

    commit = _git("rev-parse", "HEAD")
    # the results a run rewrites are not the code that made them: they do not make the tree dirty
    dirty = _git("status", "--porcelain", "--", "..", ":(exclude)results")
    return {
        "command": "python -m benchmarks " + " ".join(sys.argv[1:]) if sys.argv else "",
        "git_commit": commit or "none (no commit yet)",
        "git_dirty": bool(dirty) if dirty is not None else None,
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "python": platform.python_version(),
        "robust_prune": robust_prune.__version__,
        "torch": torch.__version__,
        "timm": timm.__version__,
        "torch_pruning": tp_version,
        "threads": torch.get_num_threads(),
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
    }


def interleaved_medians(runners: dict[str, Callable[[], Any]], repeats: int, *, warmup: int = 1) -> dict[str, float]:
    """Median ms of each runner over ``repeats`` rounds; each round runs all of them in a rotating order, so load
    changes on a shared machine hit every runner alike. ``warmup`` untimed calls of each first.

    Example:
        >>> sorted(interleaved_medians({"a": lambda: None, "b": lambda: None}, 3))
        ['a', 'b']
    """
    times: dict[str, list[float]] = {k: [] for k in runners}
    keys = list(runners)
    for _ in range(warmup):
        for k in keys:
            runners[k]()
    for r in range(repeats):
        for k in keys[r % len(keys) :] + keys[: r % len(keys)]:
            start = time.perf_counter()
            runners[k]()
            times[k].append((time.perf_counter() - start) * 1000)
    return {k: statistics.median(v) for k, v in times.items()}


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return f"{value:.3f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str], headers: Sequence[str] | None = None) -> str:
    """A GitHub Markdown table of ``rows`` restricted to ``columns``."""
    headers = list(headers or columns)
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(c)) for c in columns) + " |")
    return "\n".join(lines)


def write_results(
    name: str,
    rows: Sequence[dict[str, Any]],
    *,
    title: str,
    columns: Sequence[str] | None = None,
    headers: Sequence[str] | None = None,
    settings: dict[str, Any] | None = None,
    summary: dict[str, Any] | None = None,
    sections: Sequence[tuple[str, str]] = (),
    out_dir: str | os.PathLike[str] | None = None,
    extra: dict[str, Any] | None = None,
) -> tuple[Path, Path]:
    """Write ``<out_dir>/<name>.json`` and ``<name>.md`` atomically; return both paths.

    Args:
        name: file stem (the suite's name).
        rows: one dict per result row.
        title: the Markdown heading.
        columns, headers: which row keys make the Markdown table, and their headings.
        settings: the suite's own settings (sparsity, input sizes, repeats), shown above the table.
        summary: headline numbers (e.g. coverage), shown first.
        sections: extra ``(heading, markdown)`` blocks appended after the table.
        out_dir: defaults to ``benchmarks/results``.
        extra: further top-level JSON keys (e.g. the ``paper`` suite's raw per-seed ``cells``).
    """
    out = Path(out_dir) if out_dir is not None else RESULTS_DIR
    env = environment()
    payload = {
        "suite": name,
        "environment": env,
        "settings": settings or {},
        "summary": summary or {},
        "rows": list(rows),
    }
    payload.update(extra or {})
    json_path = write_json(out / f"{name}.json", payload)

    cols = list(columns or (list(rows[0]) if rows else []))
    md = [f"# {title}", ""]
    if summary:
        md += [f"- **{k}**: {_fmt(v)}" for k, v in summary.items()] + [""]
    md += [markdown_table(rows, cols, headers), ""]
    for heading, body in sections:
        md += [f"## {heading}", "", body.rstrip(), ""]
    if settings:
        md += ["## Settings", ""] + [f"- {k}: {_fmt(v)}" for k, v in settings.items()] + [""]
    md += ["## Environment", ""] + [f"- {k}: {_fmt(v)}" for k, v in env.items()] + [""]
    md += [f"Raw data: [{json_path.name}]({json_path.name})", ""]
    md_path = write_text(out / f"{name}.md", "\n".join(md))
    for path in (json_path, md_path):  # the atomic writer's temp files are private; results are for everyone
        os.chmod(path, 0o644)
    return json_path, md_path
