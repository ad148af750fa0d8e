"""Reports over stored runs: one versioned, typed report (report.schema), rendered as HTML, Markdown, JSON or terminal tables.

Public entry points (what the CLI and notebooks call):

* `build_report(store, run_id=None)` -> `Report` (report.schema; docs/report-schema.md)
* `load_run(store, run_id=None)` -> `RunData`; `build_report_from_data(data)` -> `Report`
* `render_html(report, data)` / `write_html(report, data, path)`
* `render_markdown(report, model_index=False, model_name=None)`, `model_index_yaml(report)`
* `render_json(report)`, `to_jsonable(obj)`
* `build_comparison(data_a, data_b)` -> run-vs-run `Comparison`
* `export_rows(store, run_id=None)`, `write_jsonl(rows, fh)`, `write_csv(rows, fh)`
* `import_legacy(store, paths, ...)` -> `ImportResult`

Submodules are imported on first use so `brie-bench --help` stays fast.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "build_report": "model", "build_report_from_data": "model", "SCHEMA_VERSION": "model",
    "load_run": "rows", "RunData": "rows",
    "render_html": "html", "write_html": "html",
    "render_markdown": "markdown", "model_index": "markdown", "model_index_yaml": "markdown",
    "render_json": "jsonout", "to_jsonable": "jsonout",
    "build_comparison": "compare",
    "export_rows": "export", "write_jsonl": "export", "write_csv": "export",
    "import_legacy": "legacy", "ImportResult": "legacy",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'brie_bench.report' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"brie_bench.report.{module}"), name)
