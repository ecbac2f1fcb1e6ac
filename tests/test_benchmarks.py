import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import gen_latency  # noqa: E402


def test_gen_latency_runs_both_ways_and_writes_results(tmp_path):
    report = gen_latency.main(["--base", "random-tiny", "--frames", "4", "--size", "32", "--steps", "2",
                               "--repeat", "1", "--results", str(tmp_path)])
    files = sorted(p.suffix for p in tmp_path.iterdir())
    assert files == [".json", ".md"]
    saved = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert saved["speedup"] == report["speedup"] > 0
    for side in ("ours", "baseline"):
        assert set(saved[side]) == set(gen_latency.STAGES)
        assert saved[side]["total"] >= saved[side]["denoise"] > 0
    assert "CPU" in saved["device"]
