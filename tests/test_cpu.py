"""The one /proc/cpuinfo reader: fields, labels of old reports, and agreement of every report with it."""

from __future__ import annotations

from pathlib import Path

import pytest

from sam2_quant_plugin.cpu import CpuInfo, label_from, parse_cpuinfo, this_cpu

ZEN1 = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 23
model\t\t: 1
model name\t: AMD EPYC
flags\t\t: fpu sse2 avx avx2 fma

processor\t: 1
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
model name\t: another CPU must not leak into the first block
flags\t\t: avx2 avx512f avx512bw avx512_vnni
"""


def test_parse_reads_the_first_processor_block_only() -> None:
    cpu = parse_cpuinfo(ZEN1)
    assert (cpu.name, cpu.family, cpu.model) == ("AMD EPYC", "23", "1")
    assert cpu.isa == "avx2"
    assert cpu.int8_flags == "avx2"
    assert cpu.label == "AMD EPYC (family 23 model 1) [avx2]"


def test_vnni_flags_are_listed_in_a_fixed_order() -> None:
    cpu = CpuInfo("X", "25", "17", frozenset({"avx2", "avx512bw", "avx512f", "avx512_vnni", "sse2"}))
    assert cpu.isa == "avx512_vnni,avx512f,avx2"
    assert cpu.int8_flags == "avx512_vnni,avx512bw,avx2"


@pytest.mark.parametrize(
    ("text", "fallback", "name"),
    [("", "x86_64", "x86_64"), ("", "", "unknown CPU"), ("\n\nmodel name : Y\n", "", "Y")],
)
def test_missing_fields_read_as_unknown(text: str, fallback: str, name: str) -> None:
    cpu = parse_cpuinfo(text, fallback)
    assert cpu.name == name
    assert cpu.label == f"{name} (family ? model ?) [no AVX2]"


def test_labels_of_older_reports_without_generation_fields() -> None:
    assert label_from("X", "", "") == "X (family ? model ?) [no AVX2]"
    assert label_from("X", "6/", "avx2") == "X (family 6 model ?) [avx2]"


def test_this_host_agrees_with_proc_cpuinfo_and_every_report() -> None:
    from sam2_quant_plugin.int8.host import host_int8_path
    from sam2_quant_plugin.onnx.timing import cpu_label, environment

    proc = Path("/proc/cpuinfo")
    if not proc.exists():
        pytest.skip("no /proc/cpuinfo on this OS")
    text = proc.read_text()
    family = next((ln.split(":")[1].strip() for ln in text.splitlines() if ln.startswith("cpu family")), "?")
    cpu = this_cpu()
    assert cpu.family == family
    assert ("avx2" in cpu.isa.split(",")) == (" avx2" in text)
    assert cpu_label() == cpu.label == cpu_label(environment())
    described = host_int8_path().describe()
    assert described.count(cpu.label) == 1  # named once, with its generation
