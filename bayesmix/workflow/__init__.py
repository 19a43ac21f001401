"""The analysis as an application: built-in and simulated data, CSV reading, TOML
experiment specs and their checks, the pipeline as named stages, the report (one
function per section), plots, saving and loading fits, and the command line.

May import: every stage (``bayesmix.core`` ... ``bayesmix.posterior``).
"""

from __future__ import annotations

from bayesmix.core._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "load_old_faithful": "._datasets",
        "simulate": "._datasets",
        "save_fit": "._io",
        "load_fit": "._io",
        "run_experiment": "._pipeline",
        "write_report": "._report",
        "load_spec": "._spec",
        "main": "._cli",
    },
)
