"""Puts the repository root on sys.path so the smoke tests import the ``bench`` package
(it is not an installed workspace member; ``make bench`` runs it from the root)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[2])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
