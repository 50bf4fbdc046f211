"""Precision on CPU: fp32 unchanged, the opt-in fast mode's quality, and who may choose it."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from activities.media.scoring_io import scoring_summary
from scoring_job import precision_choice
from scoring_job.engine import Stylizer, choose_device
from scoring_job.heap import keep_freed_memory
from scoring_job.machine import cpu_model, machine_key
from scoring_job.manifest import Manifest, ManifestError
from scoring_job.models import int8 as int8_module
from scoring_job.models.int8 import INT7_MAX, int8_products_exact, int8_supported, weight_levels
from scoring_job.models.multistyle import MultiStyleNet
from scoring_job.precision_choice import gate, stylizer_for
from scoring_job.quality import psnr
from scoring_job.score import Rank
from scoring_job.score import run as score_run
from scoring_job.style_spec import ImageStyle, parse_style
from scoring_job.stylize import main as stylize_main

STYLE = "3:0.5,12:0.5"


def reference_forward(net: MultiStyleNet, image: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """The network written plainly: var_mean instance norm, NCHW, no channels-last, no batch-norm kernel."""

    def block(module, x):
        x = F.conv2d(F.pad(x, (module.pad,) * 4, mode="reflect"), module.conv.weight, stride=module.conv.stride)
        var, mean = torch.var_mean(x, dim=(2, 3), keepdim=True, unbiased=False)
        scale, shift = (weights @ module.gamma).view(1, -1, 1, 1), (weights @ module.beta).view(1, -1, 1, 1)
        return (x - mean) / torch.sqrt(var + 1e-5) * scale + shift

    x = image
    for module in net.contract:
        x = F.relu(block(module, x))
    for first, second in net.res:
        x = x + block(second, F.relu(block(first, x)))
    for module in net.expand[:2]:
        x = F.relu(block(module, F.interpolate(x, scale_factor=2.0, mode="nearest")))
    return torch.sigmoid(block(net.expand[2], x))


def test_fp32_output_is_the_reference_network(real_frame):
    """The CPU default (fp32, heap tuning on) computes the same numbers as the plain formulation."""
    frames = np.stack([real_frame(n, (160, 96)) for n in (20, 100)])
    stylizer = Stylizer(parse_style(STYLE), choose_device("cpu"))
    assert stylizer.device_name == "cpu:fp32"
    assert keep_freed_memory()  # glibc on Linux: applied (once per process)
    ours = stylizer.styled(frames)
    with torch.inference_mode():
        image = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255
        weights = torch.tensor(parse_style(STYLE).weights, dtype=torch.float32)
        net = MultiStyleNet.pretrained()
        reference = torch.cat([reference_forward(net, image[i : i + 1], weights) for i in range(len(frames))])
    assert float((ours - reference).abs().max()) < 1e-4


def _forced_timings(cache: Path, seconds: dict[str, float]) -> Path:
    """A precision timing cache holding `seconds` for this machine (precisions left out: slower than
    fp32): the gate reads it instead of timing."""
    slower = dict.fromkeys(precision_choice.REDUCED_CPU_PRECISIONS, 2.0)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({machine_key(): {"seconds_per_frame": {**slower, **seconds}}}))
    return cache


ALL_FASTER = {"fp32": 1.0, "int8": 0.5, "bf16": 0.6, "fp16": 0.7}


def _sample(real_frame, size=(320, 180)):
    return lambda: np.stack([real_frame(n, size) for n in (10, 60)])


def test_int8_where_the_gate_accepts_it_keeps_35_db_on_real_frames(real_frame, tmp_path):
    """Measured at 320x180: 50-51 dB on AVX-512 VNNI (Zen 4), 48.6-49.7 dB with oneDNN held to AVX2."""
    frames = np.stack([real_frame(n, (320, 180)) for n in (10, 60, 120)])
    Image.fromarray(real_frame(50, (300, 200), "bikes.mp4")).save(tmp_path / "painting.jpg")
    for style, root in ((parse_style("19"), None), (ImageStyle("painting.jpg"), tmp_path)):
        cache = _forced_timings(tmp_path / f"{style}.json", {"fp32": 1.0, "int8": 0.5})
        stylizer, choice = stylizer_for(style, "cpu", precision="fast", style_root=root, cache_file=cache,
                                        sample=lambda: frames[:2])
        if choice.precision != "int8":
            pytest.skip(f"the gate refuses int8 on {cpu_model()}: {choice.summary()}")
        assert stylizer.device_name == "cpu:int8"
        reference = Stylizer(style, choose_device("cpu", precision="fp32"), style_root=root)
        scores = [psnr(stylizer(frame[None]), reference(frame[None]), 255) for frame in frames]
        assert min(scores) >= 35, scores
        assert max(scores) < 100  # it really ran in int8


AVX2_CHECK = r"""
import json, sys
import numpy as np
sys.path[:0] = sys.argv[1:3]
import torch
from scoring_job.engine import Stylizer, choose_device
from scoring_job.models import int8
from scoring_job.quality import psnr
from scoring_job.style_spec import parse_style
frames = np.load(sys.argv[3])
reference = Stylizer(parse_style("19"), choose_device("cpu", precision="fp32"))
def worst():
    model = Stylizer(parse_style("19"), choose_device("cpu", precision="int8"))
    return min(psnr(model(f[None]), reference(f[None]), 255) for f in frames)
fixed = worst()
levels = int8.weight_levels()
int8.weight_levels = lambda: int8.INT8_MAX  # what the layer did before it probed the kernel
print(json.dumps({"exact": int8.int8_products_exact(), "levels": levels, "psnr": fixed, "full_range_psnr": worst()}))
"""


@pytest.mark.skipif(not int8_supported(), reason="this torch has no oneDNN int8 convolution")
def test_int8_holds_35_db_where_the_kernel_saturates(real_frame, tmp_path):
    """oneDNN held to AVX2 (ONEDNN_MAX_CPU_ISA; on an AVX2-only CPU it is that already) multiplies u8 x s8
    with VPMADDUBSW, which saturates full-range weights: 21-22 dB. The probe sees it; 7-bit weights hold."""
    frames = tmp_path / "frames.npy"
    np.save(frames, np.stack([real_frame(n, (320, 180)) for n in (10, 60, 120)]))
    tests, root = Path(__file__).parent, Path(__file__).parents[1]
    done = subprocess.run([sys.executable, "-c", AVX2_CHECK, str(root), str(tests), str(frames)], check=True,
                          capture_output=True, text=True, env={**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"})
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["exact"] is False and result["levels"] == INT7_MAX
    assert result["psnr"] >= 35, result
    assert result["full_range_psnr"] < 30, result  # the probe is what keeps the picture


def test_the_probe_finds_exact_products_where_vnni_runs():
    flags = set()
    with contextlib.suppress(OSError):
        flags = set(next(line for line in Path("/proc/cpuinfo").read_text().splitlines()
                         if line.startswith("flags")).split(":", 1)[1].split())
    if not int8_supported() or not flags & {"avx512_vnni", "avx_vnni", "amx_int8"}:
        pytest.skip(f"no VNNI on {cpu_model()}: its kernel saturates and 7-bit weights are used")
    if os.environ.get("ONEDNN_MAX_CPU_ISA"):
        pytest.skip("oneDNN is held to an ISA below the CPU's")
    assert int8_products_exact() and weight_levels() == 127


def _timer(seconds: dict[str, float], calls: list[str]):
    def timer(precision: str) -> float:
        calls.append(precision)
        return seconds[precision]

    return timer


def _quality(scores: dict[str, float], asked: list[str]):
    def quality(precision: str) -> float:
        asked.append(precision)
        if isinstance(scores[precision], Exception):
            raise scores[precision]
        return scores[precision]

    return quality


def test_gate_takes_the_fastest_candidate_that_passes_speed_and_quality():
    asked: list[str] = []
    seconds = {"fp32": 1.0, "int8": 0.5, "bf16": 0.7, "fp16": 0.97}
    choice, verdicts = gate(seconds, _quality({"int8": 21.4, "bf16": 41.0, "fp16": 51.0}, asked), ["amx"])
    assert choice == "bf16" and asked == ["int8", "bf16"]  # fastest first; fp16 never run
    by_name = {verdict.precision: verdict for verdict in verdicts}
    assert not by_name["int8"].accepted and by_name["int8"].psnr_db == 21.4
    assert "21.4 dB against fp32" in by_name["int8"].reason and "needs >= 35 dB" in by_name["int8"].reason
    assert by_name["bf16"].accepted and by_name["bf16"].speedup == pytest.approx(1 / 0.7)
    assert by_name["fp16"].reason == "not needed: bf16 is faster and passed" and by_name["fp16"].psnr_db is None
    assert not by_name["amx"].accepted and "cannot run" in by_name["amx"].reason


def test_gate_keeps_fp32_when_no_candidate_passes_and_says_why():
    asked: list[str] = []
    seconds = {"fp32": 1.0, "int8": 0.6, "bf16": 1.4, "fp16": 0.97, "int4": 0.2}
    scores = {"int8": 34.99, "int4": RuntimeError("no kernel"), "bf16": 99.0, "fp16": 99.0}
    choice, verdicts = gate(seconds, _quality(scores, asked))
    assert choice == "fp32" and asked == ["int4", "int8"]  # too slow ones are never run for quality
    reasons = {verdict.precision: verdict.reason for verdict in verdicts}
    assert reasons["int4"] == "failed on the job's frames: no kernel"
    assert reasons["int8"].startswith("35.0 dB") or reasons["int8"].startswith("34.99")
    assert reasons["fp16"] == "1.03x fp32's speed here, needs more than 1.05x"
    assert reasons["bf16"] == "0.71x fp32's speed here, needs more than 1.05x"
    assert not any(verdict.accepted for verdict in verdicts)
    # nothing to compare (a video whose frames could not be read): refused, not accepted
    assert gate({"fp32": 1.0, "int8": 0.5}, _quality({"int8": float("nan")}, []))[0] == "fp32"


def test_fast_never_returns_output_under_35_db(real_frame, tmp_path):
    """Every candidate forced fast: whatever the gate takes keeps >= 35 dB on the job's frames."""
    sample = _sample(real_frame)
    stylizer, choice = stylizer_for(parse_style("19"), "cpu", precision="fast", sample=sample,
                                    cache_file=_forced_timings(tmp_path / "t.json", ALL_FASTER))
    reference = Stylizer(parse_style("19"), choose_device("cpu", precision="fp32"))
    assert stylizer.device_name == f"cpu:{choice.precision}"
    assert min(psnr(stylizer(f[None]), reference(f[None]), 255) for f in sample()) >= 35
    assert choice.frames_checked == 2 and choice.machine == machine_key()


def test_fast_refuses_a_candidate_that_damages_the_picture(real_frame, tmp_path, monkeypatch):
    """int8 forced fastest and forced bad (one weight level): refused with its PSNR; the next is taken."""
    monkeypatch.setattr(int8_module, "weight_levels", lambda: 1)
    cache = _forced_timings(tmp_path / "t.json", {"fp32": 1.0, "int8": 0.5})
    stylizer, choice = stylizer_for(parse_style("19"), "cpu", precision="fast", sample=_sample(real_frame),
                                    cache_file=cache)
    assert choice.precision == "fp32" and stylizer.device_name == "cpu:fp32"
    (refused,) = [verdict for verdict in choice.verdicts if verdict.precision == "int8"]
    assert not refused.accepted and refused.psnr_db < 35 and "needs >= 35 dB" in refused.reason
    record = choice.as_dict()
    assert record["precision"] == "fp32" and record["candidates"][0]["precision"] == "int8"
    assert "int8 refused" in choice.summary()


def test_fast_times_each_machine_once_and_reads_old_caches(tmp_path, monkeypatch):
    cache = tmp_path / "timings.json"
    monkeypatch.setattr(precision_choice, "cpu_support", lambda: {"int8": True, "bf16": True, "fp16": False})
    calls: list[str] = []
    seconds = precision_choice.machine_seconds(["int8", "bf16"], _timer({"fp32": 1.0, "int8": 0.6, "bf16": 0.8},
                                                                         calls), cache)
    assert seconds == {"fp32": 1.0, "int8": 0.6, "bf16": 0.8}
    assert calls == ["fp32", "int8", "bf16"] * precision_choice.ROUNDS
    assert precision_choice.machine_seconds(["int8", "bf16"], _timer({}, calls), cache) == seconds
    assert len(calls) == 3 * precision_choice.ROUNDS  # stored per machine key: not timed again
    # a cache from before a candidate existed (the old format kept a "choice"): timed again, not misread
    cache.write_text(json.dumps({machine_key(): {"choice": "int8", "seconds_per_frame": {"fp32": 1.0, "int8": 0.6}}}))
    precision_choice.machine_seconds(["int8", "bf16"], _timer({"fp32": 1.0, "int8": 0.6, "bf16": 0.8}, calls), cache)
    assert len(calls) == 6 * precision_choice.ROUNDS


def test_auto_and_named_precisions_are_not_gated(real_frame, tmp_path):
    cache = _forced_timings(tmp_path / "t.json", ALL_FASTER)
    never = lambda: pytest.fail("auto and named precisions read no frames")  # noqa: E731
    for precision, name in (("auto", "cpu:fp32"), ("fp32", "cpu:fp32"), ("int8", "cpu:int8")):
        stylizer, choice = stylizer_for(parse_style("19"), "cpu", precision=precision, sample=never, cache_file=cache)
        assert stylizer.device_name == name and choice is None
    with pytest.raises(ValueError, match="chosen on the job's own frames"):
        choose_device("cpu", precision="fast")


def test_the_job_result_records_the_fast_choice(make_clip, tmp_path, monkeypatch):
    """A scoring job under `fast`: every segment's result carries the choice with its measurements."""
    monkeypatch.setattr(int8_module, "weight_levels", lambda: 1)  # int8 forced bad: the record says why
    input_dir, output_dir, cache = tmp_path / "in", tmp_path / "out", tmp_path / "cache"
    (input_dir / "segments").mkdir(parents=True)
    shutil.copy(make_clip(frames=12, size="96x64", audio=False), input_dir / "segments/000.mp4")
    Manifest(job_id="t", fps="24/1", style="19", options={"compile": False, "precision": "fast", "stability": 0},
             segments=[{"index": 0, "path": "segments/000.mp4", "frames": 12}]).save(input_dir)
    _forced_timings(cache / precision_choice.CACHE_NAME, {"fp32": 1.0, "int8": 0.5})
    assert score_run(input_dir, output_dir, Rank(0, 1, 0), compile_cache=cache) == []
    record = json.loads((output_dir / "segment_00000.json").read_text())
    assert record["device"] == "cpu:fp32"
    choice = record["precision_choice"]
    assert choice["precision"] == "fp32" and choice["frames_checked"] == 2 and choice["min_psnr_db"] == 35
    (int8_verdict,) = [c for c in choice["candidates"] if c["precision"] == "int8"]
    assert int8_verdict["accepted"] is False and int8_verdict["psnr_db"] < 35 and int8_verdict["speedup"] == 2.0
    assert scoring_summary([record, record]) == {"devices": ["cpu:fp32"], "precision_choice": [choice],
                                                 "quality_choice": [record["quality_choice"]]}


def test_bad_precision_names_the_field(capsys):
    with pytest.raises(ValueError, match="precision must be one of auto, fast, fp32, bf16, fp16, int8"):
        choose_device("cpu", precision="int4")
    manifest = {"schema_version": 1, "job_id": "j", "fps": "25/1", "style": "19",
                "options": {"precision": "int4"}, "segments": [{"index": 0, "path": "s.mp4", "frames": 1}]}
    with pytest.raises(ManifestError, match=r"options\.precision"):
        Manifest.from_json(json.dumps(manifest))
    with pytest.raises(SystemExit) as exit_info:
        stylize_main(["in.mp4", "--precision", "int4"])
    assert exit_info.value.code == 2 and "--precision" in capsys.readouterr().err
