"""Where the LAMMPS input templates of ``mlff md`` and ``mlff learn`` are.

A source checkout (and an editable install) has them in ``deploy/<kind>/``; a wheel
carries copies in ``mlff/templates/<kind>/`` (installed by CMake, see ``CMakeLists.txt``).
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def template_dir(kind: str) -> Path:
    """Folder of the templates of ``kind`` (``"protocols"``, ``"learn"``)."""
    installed = PACKAGE / "templates" / kind
    return installed if installed.is_dir() else PACKAGE.parents[1] / "deploy" / kind
