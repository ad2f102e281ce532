"""The roofline: FLOPs of one denoiser call against an independent count, every timed case's
rate against the host's GEMM peak, and how the results say it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import SuiteRun, builtin_model_path
from sdperf.reporting.table import roofline_line
from sdperf.storage.results import CaseResult

# Counts the tiny UNet's work by hooks on its layers, on real tensors: every convolution,
# linear layer and attention product, at the shapes the pipeline gives it (classifier-free
# guidance: a batch of 2). Prints that count and the roofline's own (FlopCounterMode, meta device).
INDEPENDENT_COUNT = r"""
import json, sys
from pathlib import Path

import torch
from diffusers import UNet2DConditionModel
from diffusers.models.attention_processor import Attention

from sdperf.worker.roofline import cached_denoiser_flops, denoiser_flops

path, workload = Path(sys.argv[1]), json.loads(sys.argv[2])
unet = UNet2DConditionModel.from_pretrained(path / "unet").eval()
total = [0]

def conv(module, inputs, output):
    kernel = module.kernel_size[0] * module.kernel_size[1]
    total[0] += 2 * output.numel() * (module.in_channels // module.groups) * kernel

def linear(module, inputs, output):
    total[0] += 2 * inputs[0].numel() * module.out_features

def attention(module, args, kwargs, output):
    queries = args[0] if args else kwargs["hidden_states"]
    keys = kwargs.get("encoder_hidden_states")
    keys = queries if keys is None else keys
    batch, query_length, _ = queries.shape
    # Q K^T and (softmax) V: two products of batch x q x k x inner each.
    total[0] += 4 * batch * query_length * keys.shape[1] * module.to_q.out_features

for module in unet.modules():
    if isinstance(module, torch.nn.Conv2d):
        module.register_forward_hook(conv)
    elif isinstance(module, torch.nn.Linear):
        module.register_forward_hook(linear)
    elif isinstance(module, Attention):
        module.register_forward_hook(attention, with_kwargs=True)

config = unet.config
latent = torch.zeros(2, config.in_channels, workload["height"] // 8, workload["width"] // 8)
text = torch.zeros(2, 77, config.cross_attention_dim)
with torch.no_grad():
    unet(latent, torch.tensor(999), encoder_hidden_states=text)
counted = denoiser_flops(path, "StableDiffusionPipeline", workload, guidance=7.5, with_t5=True)
# The cached count: counted once, then read back; another image size is another count.
cache = Path(sys.argv[3])
cached = [cached_denoiser_flops(path, "StableDiffusionPipeline", size, 7.5, True, cache)
          for size in (workload, workload, {"height": 64, "width": 64})]
print(json.dumps({"hooks": total[0], "roofline": counted, "cached": cached}))
"""


def test_flops_per_denoiser_call_equal_an_independent_count_of_the_tiny_unet(tmp_path: Path) -> None:
    workload = {"height": 128, "width": 128}  # the cpu profile's built-in workload
    done = subprocess.run(
        [sys.executable, "-c", INDEPENDENT_COUNT, str(builtin_model_path("tiny-sd15")), json.dumps(workload),
         str(tmp_path)],
        check=True, capture_output=True, text=True, timeout=300,
    )
    counts = json.loads(done.stdout.splitlines()[-1])
    assert counts["hooks"] > 10**8
    assert counts["roofline"] == counts["hooks"], counts
    (first, first_cached), (again, again_cached), (smaller, smaller_cached) = counts["cached"]
    assert (first, first_cached) == (counts["roofline"], False) and (again, again_cached) == (first, True)
    assert not smaller_cached and smaller < first
    assert len(list((tmp_path / "denoiser-flops").glob("*.json"))) == 2


def test_every_timed_case_has_its_rate_against_the_peak(cpu_run: SuiteRun) -> None:
    saved = cpu_run.saved()
    flops = set()
    for benchmark in saved["benchmarks"]:
        roof = benchmark["extra_info"]["roofline"]
        flops.add(roof["flops_per_denoiser_call"])
        assert roof["peak_dtype"] in ("float32", "bfloat16") and roof["peak_device"] == "cpu", roof
        assert roof["peak_flops"] > 0 and roof["achieved_flops"] > 0, roof
        assert 0 < roof["fraction_of_peak"] <= 1.5, (benchmark["name"], roof)
        assert roof["fraction_of_peak"] == roof["achieved_flops"] / roof["peak_flops"]
    # One UNet, one workload: every recipe (OpenVINO's too) does the same work per call, counted once.
    assert len(flops) == 1, flops
    timed = [case for case in saved["sdperf"]["cases"] if case["kind"] == "latency" and case["status"] == "passed"]
    assert all(case["load"]["roofline"]["flops_cached"] for case in timed[1:]), [c["case_id"] for c in timed]
    cpu_run.lines().fnmatch_lines([
        "cpu-fp32: roofline: * a denoiser call, * achieved, *% of the float32 GEMM peak here * (* threads)",
        "cpu-openvino: roofline: * a denoiser call, * achieved, *% of the float32 GEMM peak here *",
    ])


def _result(**load) -> CaseResult:
    result = CaseResult(case_id="cpu-fp32", test="t", profile="cpu", recipe="fp32", model="tiny-sd15")
    result.load = load
    return result


def test_the_roofline_line_rates_only_steps_whose_start_was_seen() -> None:
    roofline = {"flops_per_denoiser_call": 4e9, "peak_flops": 1e11, "dtype": "float32", "device": "cpu", "threads": 2}
    result = _result(roofline=roofline)
    # A denoiser without hooks (OpenVINO): the first step's start is unseen and recorded as 0 s.
    result.rounds = [{"step_s": [0.0, 0.2, 0.2]}, {"step_s": [0.0, 0.2, 0.2]}]
    roof = result.roofline()
    assert roof["steps_timed"] == 4 and roof["achieved_flops"] == 4e9 * 4 / 0.8
    assert roof["fraction_of_peak"] == 0.2
    assert roofline_line(result) == (
        "cpu-fp32: roofline: 4 GFLOP a denoiser call, 20 GFLOP/s achieved, 20% of the float32 GEMM peak here "
        "100 GFLOP/s (2 threads)"
    )


def test_a_roofline_that_could_not_be_counted_says_why() -> None:
    result = _result(roofline={"error": "OSError: no unet/config.json"})
    assert roofline_line(result) == "cpu-fp32: roofline not computed: OSError: no unet/config.json"
    assert roofline_line(_result()) is None  # never loaded
