"""Compile every configuration of the given Triton op modules for sm_90 and print one JSON report per line.

Run by tests/kernels/test_compile.py in a fresh process with TRITON_INTERPRET=0:
    python -m tests.kernels.aot_report linear_attention window_attention
"""

import dataclasses
import importlib
import json
import sys

from kernels._aot import compile_for_hopper


def main(modules: list[str]) -> None:
    for module in modules:
        for config in importlib.import_module(f"kernels.{module}").aot_configs():
            report = compile_for_hopper(config)
            print(json.dumps({"module": module, "tensor_cores": config.tensor_cores, "num_warps": config.num_warps,
                              "ctas_per_sm": config.ctas_per_sm, **dataclasses.asdict(report)}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
