"""Entry script of the export command: ``python export/export_sam2.py --out DIR [--profile cpu_w8a8] ...``.

Same as ``sam2-quant export``; the logic lives in ``sam2_quant_plugin.cli.export_cmd``. Profiles are the
YAML files in ``export/profiles`` (``--profile cpu_w8a8``); flags given on the command line win.
"""

from __future__ import annotations

import sys

from sam2_quant_plugin.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["export", *sys.argv[1:]]))
