"""Optional link to the EPR deposit-refund scheme (``wastetrail_billing.epr``).

EPR is built in this same service by another team member; billing must work before it
exists. Only a missing ``wastetrail_billing.epr`` package is tolerated: an import error
raised from inside EPR code is a bug and propagates.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from wastetrail_runtime.logging import get_logger

EPR_PACKAGE = "wastetrail_billing.epr"
log = get_logger(__name__)


def epr_module(submodule: str = "") -> ModuleType | None:
    """``wastetrail_billing.epr[.submodule]`` if it exists, else None."""
    name = f"{EPR_PACKAGE}.{submodule}" if submodule else EPR_PACKAGE
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (exc.name == name or name.startswith(exc.name + ".")):
            return None
        raise


def epr_attr(name: str, submodule: str = "") -> object | None:
    """An attribute of the EPR package (e.g. ``make_epr_router``), or None when absent."""
    module = epr_module(submodule)
    return None if module is None else getattr(module, name, None)
