"""The settings of one report (``report.build.render_report``): which results, and where it goes."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from toolkit.settings import Settings, SettingsError

__all__ = ["ReportSettings", "DEFAULT_OUT"]

DEFAULT_OUT = Path("runs/report")


@dataclass(frozen=True)
class ReportSettings(Settings):
    """``results``: results files and folders (searched recursively for ``results.json``); ``out``: the
    report folder (created if needed)."""
    results: tuple = ("runs",)
    out: object = DEFAULT_OUT

    def validate(self) -> None:
        results = self.results
        results = (results,) if isinstance(results, (str, Path)) else tuple(results)
        if not results:
            raise SettingsError("results", "(none)", "at least one results file or folder")
        self._set("results", tuple(str(r) for r in results))

    @classmethod
    def add_arguments(cls, p) -> None:
        p.add_argument("results", nargs="*", default=["runs"],
                       help="results.json files and folders searched recursively for them")
        p.add_argument("--out", default=str(DEFAULT_OUT), help="report folder to write")
