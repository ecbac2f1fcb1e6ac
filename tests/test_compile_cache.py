"""The compiled UNet's kernels are kept on disk: a second process finds them instead of compiling again."""

import json
import os
import subprocess
import sys

COMPILE_TWICE = """
import json, torch
from torch._dynamo.utils import counters
from memestar.runtime.backends.compile_cache import compile_unet

class Net(torch.nn.Module):  # defined here: dynamo does not compile frames of torch's own modules
    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Conv2d(4, 8, 3, padding=1), torch.nn.Conv2d(8, 4, 1)

    def forward(self, x):
        return self.b(torch.nn.functional.silu(self.a(x)))

net = Net()
folder = compile_unet(net)
with torch.inference_mode():
    net(torch.randn(2, 4, 8, 8))
print(json.dumps({"folder": str(folder), **counters["inductor"]}))
"""


def test_a_second_process_reuses_the_compiled_kernels(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR")}
    env["MEMESTAR_CACHE"] = str(tmp_path)

    def run() -> dict:
        r = subprocess.run([sys.executable, "-c", COMPILE_TWICE], env=env, capture_output=True, text=True, check=True)
        return json.loads(r.stdout.strip().splitlines()[-1])

    first, second = run(), run()
    assert first["folder"].startswith(str(tmp_path / "compile" / "torch-"))  # not the temporary folder
    assert first.get("fxgraph_cache_miss", 0) >= 1 and first.get("fxgraph_cache_hit", 0) == 0
    assert second.get("fxgraph_cache_hit", 0) == first["fxgraph_cache_miss"]
    assert second.get("fxgraph_cache_miss", 0) == 0
