from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

WORKER = Path(__file__).with_name("ddp_worker.py")


def test_torchrun_two_cpu_processes_agree(tmp_path: Path) -> None:
    """torchrun, gloo, 2 ranks: one run folder, identical bits and weights on both ranks (DDP synced)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--standalone",
        str(WORKER),
        str(tmp_path),
    ]
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        _, err = proc.communicate(timeout=170)
    finally:
        if proc.poll() is None:  # never leave workers behind: end the whole session we started
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, err[-3000:]
    r0 = json.loads((tmp_path / "rank0.json").read_text())
    r1 = json.loads((tmp_path / "rank1.json").read_text())
    assert r0["world"] == r1["world"] == 2
    assert r0["run_dir"] == r1["run_dir"]
    assert r0["bits"] == r1["bits"]
    assert abs(r0["weight_checksum"] - r1["weight_checksum"]) < 1e-9 * max(1.0, abs(r0["weight_checksum"]))
    run_dirs = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert len(run_dirs) == 1
    assert (run_dirs[0] / "summary.json").is_file()
