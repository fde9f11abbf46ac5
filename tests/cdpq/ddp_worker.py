"""Run by torchrun in test_ddp.py: a toy CDPQ search on every rank; each rank writes what it ended with."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sam2_quant_plugin.cdpq import ddp
from sam2_quant_plugin.cdpq.run import run_cdpq
from tests.cdpq.toy import toy_config, toy_session_kw


def main(out: str) -> None:
    torch.set_num_threads(1)
    assert ddp.init_from_env("gloo")
    kw = toy_session_kw()
    kw["batches"] = (kw["batches"][0] * 2, kw["batches"][1])  # 4 training batches, 2 per rank
    cfg = toy_config(ladder=(8, 6, 4, 2), impact_threshold=0.05, rounds=2)
    summary = run_cdpq(cfg, out, progress=False, **kw)
    record = {k: summary[k] for k in ("run_dir", "bits", "weight_checksum")}
    record["world"] = ddp.world_size()
    (Path(out) / f"rank{ddp.rank()}.json").write_text(json.dumps(record))
    ddp.barrier()
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
