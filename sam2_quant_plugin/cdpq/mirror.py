"""Float mirror of the student used to score bit-drop attempts at float speed."""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch

from ..gptq import gptq_layer
from .session import Session
from .student import set_layer_bits, weight_quantizers
from .train import evaluate


class EvalMirror:
    """A float copy of the student whose weights are the student's fake-quantized weights.

    Weight-only quantization makes it exact, and it runs at float speed: an attempt re-quantizes one
    layer instead of every layer on every forward.
    """

    def __init__(self, s: Session) -> None:
        self.s = s
        self.model = copy.deepcopy(s.teacher)
        self.sync(s.candidates)

    @torch.no_grad()
    def sync(self, layers: list[str]) -> None:
        fqs = weight_quantizers(self.s.student)
        for name in layers:
            w = self.s.student.get_submodule(name).weight
            self.model.get_submodule(name).weight.copy_(fqs[name](w))
        for name, p in self.s.student.named_parameters():
            if "fake_quant" not in name and name.removesuffix(".weight") not in fqs:
                self.model.get_parameter(name).copy_(p)

    @torch.no_grad()
    def sync_layer(self, name: str) -> None:
        fq = weight_quantizers(self.s.student)[name]
        self.model.get_submodule(name).weight.copy_(fq(self.s.student.get_submodule(name).weight))

    def loss(self) -> float:
        s = self.s
        return evaluate(self.model, s.cache, s.task, s.val, s.cfg.weights)[0]

    def trial(self, name: str, bits: int) -> tuple[float, Callable[[], None]]:
        """Lower layer ``name`` of the student to ``bits`` (refit as configured) and score it here.

        Returns the validation loss and an ``undo`` that restores the layer's quantizer (and this mirror).
        """
        fq = weight_quantizers(self.s.student)[name]
        layer = self.s.student.get_submodule(name)
        snapshot = {k: v.clone() for k, v in fq.state_dict().items()}
        hessians = self.s.hessians
        gptq = hessians is not None and name in hessians.sums  # GPTQ sets its own scale: no MSE refit first
        set_layer_bits(self.s.student, name, bits, refit=self.s.cfg.refit_scale and not gptq)
        weight = None  # GPTQ rewrites the weight too; round-to-nearest only the quantizer
        if gptq:
            weight = layer.weight.detach().clone()
            with torch.no_grad():
                gptq_layer(layer, hessians.hessian(name), name)
        self.sync_layer(name)

        def undo() -> None:
            fq.load_state_dict(snapshot)
            if weight is not None:
                with torch.no_grad():
                    layer.weight.copy_(weight)
            self.sync_layer(name)

        return self.loss(), undo
