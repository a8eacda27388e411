"""What the optional installs provide, and the error that names the one to install.

The core install analyzes video with the LiteRT copies shipped in the package.
TensorFlow and Keras (training, the Keras runtimes, converting a model of one's
own) come with ``[train]``; the RetinaFace detector with ``[retinaface]``; the
Ray engine with ``[ray]``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

DISTRIBUTION = "emotion-analytics"


class MissingExtra(ImportError):
    """An optional dependency is not installed; the message says which extra has it."""


def install_hint(extra: str) -> str:
    return (
        f"pip install '{DISTRIBUTION}[{extra}]' "
        f'(from a checkout: pip install -e ".[{extra}]")'
    )


def require(
    module: str, extra: str, purpose: str, *, package: str | None = None
) -> ModuleType:
    """Import ``module``, or raise :class:`MissingExtra` naming ``extra``.

    Args:
        purpose: what needs it, as the start of a sentence ("training").
        package: the distribution that provides it, when not named ``module``.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        name = package or module.split(".")[0]
        raise MissingExtra(
            f"{purpose} needs {name}, which the core install leaves out: "
            f"{install_hint(extra)}"
        ) from exc
