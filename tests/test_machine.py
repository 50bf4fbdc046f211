"""The machine key: what a stored timing or precision choice is valid for must tell CPUs apart that a
cloud VM names alike ("AMD EPYC" for Zen 3, 4 and 5), or a choice measured on one is reused on another."""

from __future__ import annotations

from scoring_job import machine

ZEN3 = "processor\t: 0\ncpu family\t: 25\nmodel\t\t: 1\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2 fma f16c\n"
ZEN4 = ("processor\t: 0\ncpu family\t: 25\nmodel\t\t: 17\nmodel name\t: AMD EPYC\n"
        "flags\t\t: fpu avx2 fma f16c avx512f avx512bw avx512vl avx512_vnni avx512_bf16\n")


def test_two_cpus_of_one_model_name_get_different_keys(monkeypatch):
    kinds = []
    for text in (ZEN3, ZEN4):
        monkeypatch.setattr(machine, "_cpuinfo", lambda text=text: machine.parse_cpuinfo(text))
        kinds.append(machine.cpu_kind())
    assert kinds[0] != kinds[1]
    assert kinds[0].startswith("AMD EPYC (family 25, model 1) |") and kinds[0].endswith("| avx2 fma f16c")
    assert "avx512_vnni avx512_bf16" in kinds[1]


def test_the_first_processor_is_read_and_a_missing_family_is_left_out():
    model, flags = machine.parse_cpuinfo(ZEN4 + "\nprocessor\t: 1\nmodel name\t: other\nflags\t\t: sse\n")
    assert model == "AMD EPYC (family 25, model 17)" and "avx512_vnni" in flags and "sse" not in flags
    assert machine.parse_cpuinfo("model name\t: Some CPU\n") == ("Some CPU", frozenset())


def test_an_isa_cap_is_part_of_the_key(monkeypatch):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert machine.cpu_kind().endswith("| oneDNN AVX2")
