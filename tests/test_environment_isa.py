"""The report's environment records the CPU instruction sets that decide which int8 kernels run."""

from __future__ import annotations

from edgecv.environment import cpu_isa_flags, describe_environment, parse_cpuinfo_flags, parse_sysctl_flags
from edgecv.report.identity import isa_line

# An AVX-512 Xeon without VNNI (Skylake-SP): onnxruntime's u8s8 int8 kernels can saturate here
X86_NO_VNNI = """processor	: 0
vendor_id	: GenuineIntel
model name	: Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz
flags		: fpu vme de pse tsc msr pae mce cx8 apic sse sse2 ssse3 fma cx16 sse4_1 sse4_2 avx f16c avx2 avx512f avx512dq avx512cd avx512bw avx512vl xsaveopt
bugs		: spectre_v1

processor	: 1
flags		: fpu sse2 avx512_vnni
"""

X86_SAPPHIRE_RAPIDS = ("flags : sse4_2 avx avx2 fma avx512f avx512bw avx512vl avx512_vnni avx_vnni avx512_bf16 "
                       "amx_bf16 amx_tile amx_int8\n")

JETSON_ORIN = """processor	: 0
BogoMIPS	: 62.50
Features	: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp uscat ilrcpc flagm paca pacg
CPU implementer	: 0x41
CPU part	: 0xd42
"""

RASPBERRY_PI_4 = "processor : 0\nFeatures : fp asimd evtstrm crc32 cpuid\nCPU part : 0xd08\nModel : Raspberry Pi 4 Model B Rev 1.4\n"

GRAVITON3 = "Features : fp asimd asimddp sve asimdfhm svei8mm svebf16 i8mm bf16 sve2\n"

MAC_M2 = """hw.optional.arm.FEAT_DotProd: 1
hw.optional.arm.FEAT_I8MM: 0
hw.optional.arm.FEAT_FP16: 1
hw.optional.AdvSIMD: 1
hw.optional.avx2_0: 0
"""


def test_x86_flags_first_cpu_only():
    flags = parse_cpuinfo_flags(X86_NO_VNNI)
    assert flags == ["avx2", "avx512bw", "avx512f", "avx512vl", "f16c", "fma"]
    assert "avx512_vnni" not in flags  # the second CPU's line is not read


def test_x86_vnni_and_amx():
    flags = parse_cpuinfo_flags(X86_SAPPHIRE_RAPIDS)
    assert {"avx512_vnni", "avx_vnni", "amx_int8", "amx_tile", "amx_bf16", "avx512_bf16"} <= set(flags)


def test_aarch64_names_neon_dotprod_i8mm_sve():
    assert parse_cpuinfo_flags(JETSON_ORIN) == ["dotprod", "fp16", "neon"]
    assert parse_cpuinfo_flags(RASPBERRY_PI_4) == ["neon"]
    # svei8mm is not i8mm; i8mm is
    assert parse_cpuinfo_flags(GRAVITON3) == ["bf16", "dotprod", "i8mm", "neon", "sve", "sve2"]


def test_macos_sysctl():
    assert parse_sysctl_flags(MAC_M2) == ["dotprod", "fp16", "neon"]


def test_environment_records_isa_and_the_report_line_says_it():
    isa = describe_environment()["cpu_isa"]
    assert set(isa) == {"flags", "source", "int8_dot_product"}
    assert isa == cpu_isa_flags()
    line = isa_line({"cpu_isa": {"flags": parse_cpuinfo_flags(X86_NO_VNNI), "source": "/proc/cpuinfo",
                                 "int8_dot_product": False}})
    assert "avx512vl" in line and "int8 dot product: no, so onnxruntime's default u8s8" in line
    pi4 = isa_line({"machine": "aarch64", "cpu_isa": {"flags": ["neon"], "source": "/proc/cpuinfo",
                                                      "int8_dot_product": False}})
    assert "int8 dot product: no;" in pi4
    assert isa_line({}) == "CPU instruction sets: not recorded"
