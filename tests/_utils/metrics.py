"""Make a parity function report a worse number, to check that a threshold is applied.

A float file matches torch to rounding, so a test cannot make it fail on its own; lowering the measured
number (not raising the threshold past its valid range) stands for a file that drifts.
"""

from __future__ import annotations

from typing import Any

import pytest


def lower_metric(monkeypatch: pytest.MonkeyPatch, module: Any, function: str, key: str, by: float) -> None:
    """Wrap ``module.function`` so that the ``key`` of the dict it returns is ``by`` lower."""
    real = getattr(module, function)

    def worse(*args: Any, **kwargs: Any) -> dict[str, Any]:
        out = dict(real(*args, **kwargs))
        out[key] -= by
        return out

    monkeypatch.setattr(module, function, worse)
