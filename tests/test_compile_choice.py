"""Compile only when it pays: the decision from measured figures, eager timing in production, and a
compile cache that a second process (another rank, another job) loads instead of compiling again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from scoring_job.compile_cache import CompileCache, CompileKey, Figures
from scoring_job.compile_choice import DEFAULT_COMPILE_S, DEFAULT_SPEEDUP, compile_key, decide, prepare_model
from scoring_job.engine import Stylizer, choose_device
from scoring_job.style_spec import parse_style

ROOT = Path(__file__).resolve().parents[1]


def test_the_decision_weighs_the_frames_left_against_compile_or_load_time():
    measured = Figures(eager_s_per_frame=0.30, speedup=1.5, compile_s=40.0, load_s=3.0)
    assert not decide(1, measured, cached=False).compile  # a 1-frame job: saves 0.1 s, would cost 40 s
    assert not decide(399, measured, cached=False).compile  # 39.9 s saved < 40 s
    assert decide(401, measured, cached=False).compile
    assert decide(31, measured, cached=True).compile  # loading cached code costs only 3 s
    assert not decide(29, measured, cached=True).compile
    unmeasured = decide(100, Figures(eager_s_per_frame=0.30), cached=False)  # defaults stand in
    assert unmeasured.cost_s == DEFAULT_COMPILE_S
    assert unmeasured.saving_s == pytest.approx(100 * 0.30 * (1 - 1 / DEFAULT_SPEEDUP))


@pytest.fixture(scope="module")
def stylizer() -> Stylizer:
    return Stylizer(parse_style("19"), choose_device("cpu"))


def test_known_figures_decide_before_the_first_frame(stylizer, tmp_path):
    cache = CompileCache(tmp_path)
    key = compile_key(stylizer, 32, 48)
    cache.record(key, eager_s_per_frame=0.01, speedup=2.0, compile_s=30.0)
    policy = prepare_model(stylizer, 32, 48, 10, "auto", cache)
    assert policy.choice is not None and not policy.choice.compile and not stylizer.compiled
    assert stylizer.after_batch is None  # nothing left to measure


def test_unknown_figures_are_measured_on_the_rank_s_own_second_batch(stylizer, tmp_path):
    cache = CompileCache(tmp_path)
    policy = prepare_model(stylizer, 32, 48, 50, "auto", cache)
    assert policy.choice is None and stylizer.after_batch is not None  # undecided, nothing run yet
    frames = np.zeros((1, 32, 48, 3), np.uint8)
    stylizer(frames)
    assert policy.choice is None  # the first batch also builds the kernels: not a fair figure
    stylizer(frames)
    assert policy.choice is not None and not policy.choice.compile  # 48 frames of a tiny image
    assert stylizer.after_batch is None
    recorded = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert recorded["key"]["shape"] == [1, 32, 48] and 0 < recorded["figures"]["eager_s_per_frame"] < 1


COMPILE_IN_A_FRESH_PROCESS = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from scoring_job.compile_cache import CompileCache
    from scoring_job.compile_choice import compile_key, prepare_model
    from scoring_job.engine import Stylizer, choose_device
    from scoring_job.style_spec import parse_style
    stylizer = Stylizer(parse_style("19"), choose_device("cpu"))
    cache = CompileCache(Path(sys.argv[1]))
    prepare_model(stylizer, 24, 24, 1, "always", cache)
    print(json.dumps({"compiled": stylizer.compiled, **vars(cache.figures(compile_key(stylizer, 24, 24)))}))
""")


def test_a_second_process_loads_the_compiled_code_instead_of_compiling_it_again(tmp_path):
    def run() -> dict:
        done = subprocess.run([sys.executable, "-c", COMPILE_IN_A_FRESH_PROCESS, str(tmp_path / "cache")], cwd=ROOT,
                              capture_output=True, text=True, timeout=600,
                              env={"PATH": "/usr/bin:/bin", "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor")})
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.splitlines()[-1])

    first = run()
    assert first["compiled"] and first["compile_s"] > 0 and first["load_s"] is None
    assert 0.2 < first["speedup"] < 10  # eager over compiled, timed in turns
    assert len(list((tmp_path / "cache").glob("*.tar"))) == 1
    # a new node: nothing in its own inductor folder, only the shared cache folder
    (tmp_path / "inductor").rename(tmp_path / "inductor-of-the-first")
    second = run()
    assert second["compiled"] and second["compile_s"] == first["compile_s"]
    assert second["load_s"] is not None and second["load_s"] < first["compile_s"] / 2


def test_unpacking_never_writes_over_a_file_another_rank_has_open(tmp_path):
    """Ranks share one Inductor folder; writing the cached kernels over the ones a running rank had
    loaded crashed it (SIGSEGV). Unpacking renames new files into place instead."""
    cache = CompileCache(tmp_path / "cache")
    key = CompileKey("MultiStyleNet", "cpu:fp32", (1, 24, 24), "test")
    first = tmp_path / "first"
    (first / "ab").mkdir(parents=True)
    (first / "ab" / "kernel.so").write_bytes(b"compiled code")
    cache.pack(key, first)
    assert (first / f"restyle-{key.digest}.unpacked").is_file()  # the compiling rank's folder is marked

    shared = tmp_path / "shared"
    (shared / "ab").mkdir(parents=True)
    (shared / "ab" / "kernel.so").write_bytes(b"compiled code")
    with (shared / "ab" / "kernel.so").open("rb") as in_use:
        assert cache.unpack(key, shared)
        assert in_use.read() == b"compiled code"  # its bytes untouched
        assert os.fstat(in_use.fileno()).st_ino != (shared / "ab" / "kernel.so").stat().st_ino
    assert not [p for p in shared.iterdir() if p.name.startswith(".restyle-unpack-")]
    assert cache.unpack(key, shared)  # marked: a later rank does not unpack again


def test_a_job_too_short_for_a_cold_compile_compiles_in_the_background_for_the_next_one(tmp_path):
    """2,000 frames saving 5 ms each: 10 s, less than a cold compile (25 s) but more than a load (3 s).
    The first job runs eagerly while a nice-19 process compiles the key into the cache; the next
    job of that kind loads it and runs compiled."""
    cache = CompileCache(tmp_path / "cache")
    first = Stylizer(parse_style("19"), choose_device("cpu"))
    key = compile_key(first, 24, 24)
    cache.record(key, eager_s_per_frame=0.01, speedup=2.0)
    model = ["--style", "19", "--device", "cpu", "--precision", "fp32"]
    policy = prepare_model(first, 24, 24, 2000, "auto", cache, model)
    assert not policy.choice.compile and not first.compiled and policy.warmer is not None
    assert policy.warmer.wait(timeout=600) == 0
    assert cache.has_artifacts(key)
    assert cache.figures(key) == Figures(eager_s_per_frame=0.01, speedup=2.0)  # no starved timings recorded

    second = Stylizer(parse_style("19"), choose_device("cpu"))
    policy = prepare_model(second, 24, 24, 2000, "auto", cache, model)
    assert policy.choice.compile and policy.choice.cached and second.compiled and policy.warmer is None
    assert cache.figures(key).load_s is not None


def test_a_job_too_short_even_to_load_starts_no_background_compile(stylizer, tmp_path):
    cache = CompileCache(tmp_path)
    cache.record(compile_key(stylizer, 24, 24), eager_s_per_frame=0.01, speedup=2.0)
    policy = prepare_model(stylizer, 24, 24, 1, "auto", cache, ["--style", "19"])
    assert not policy.choice.compile and policy.warmer is None
