"""Host detection against fake /proc and /sys trees built per test."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sdperf.host.cpu import CpuInfo, read_cpu
from sdperf.host.detection import PROFILES, detect_host
from sdperf.host.devices import NVIDIA_SMI_QUERY, GpuInfo, find_library, read_gpus, read_memory_mb
from sdperf.host.pi import THROTTLED_SYSFS, PiInfo, ThrottleState, parse_throttled, read_pi, read_throttle
from sdperf.host.sensors import ThermalState, cpu_drop, read_thermal

# ------------------------------------------------------------------ builders


def write(root: Path, rel: str, text: str | bytes) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)


def device_tree(root: Path, compatible: Sequence[str], model: str | None = None) -> None:
    write(root, "proc/device-tree/compatible", b"".join(s.encode() + b"\0" for s in compatible))
    if model is not None:
        write(root, "proc/device-tree/model", model.encode() + b"\0")


def arm_cpuinfo(
    root: Path, cores: int = 4, part: str = "0xd0b", revision: str | None = None,
    model: str | None = None,
) -> None:
    blocks = [
        f"processor\t: {n}\nBogoMIPS\t: 108.00\n"
        "Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp\n"
        f"CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x4\n"
        f"CPU part\t: {part}\nCPU revision\t: 1\n"
        for n in range(cores)
    ]
    tail = "Hardware\t: BCM2835\n"
    if revision is not None:
        tail += f"Revision\t: {revision}\nSerial\t\t: 00000000deadbeef\n"
    if model is not None:
        tail += f"Model\t\t: {model}\n"
    write(root, "proc/cpuinfo", "\n".join(blocks) + "\n" + tail)


def intel_cpuinfo(
    root: Path, model: int, flags: Sequence[str], sockets: int = 1, cores: int = 4,
    threads: int = 2, name: str = "Intel(R) Xeon(R)",
) -> None:
    blocks, n = [], 0
    for socket in range(sockets):
        for thread in range(threads):
            for core in range(cores):
                blocks.append(
                    f"processor\t: {n}\nvendor_id\t: GenuineIntel\ncpu family\t: 6\n"
                    f"model\t\t: {model}\nmodel name\t: {name}\nstepping\t: 8\n"
                    f"physical id\t: {socket}\nsiblings\t: {cores * threads}\n"
                    f"core id\t\t: {core}\ncpu cores\t: {cores}\n"
                    f"flags\t\t: fpu sse sse2 avx2 avx512f {' '.join(flags)}\n"
                )
                n += 1
    write(root, "proc/cpuinfo", "\n".join(blocks))


def meminfo(root: Path, kb: int) -> None:
    write(root, "proc/meminfo", f"MemTotal:       {kb} kB\nMemFree:        1024 kB\n")


def cpufreq(
    root: Path, cur: Sequence[int], top: int = 2400000, governor: str = "ondemand"
) -> None:
    for n, khz in enumerate(cur):
        base = f"sys/devices/system/cpu/cpu{n}/cpufreq"
        write(root, f"{base}/scaling_cur_freq", f"{khz}\n")
        write(root, f"{base}/cpuinfo_max_freq", f"{top}\n")
        write(root, f"{base}/scaling_governor", f"{governor}\n")


def fake_run(
    outputs: Mapping[str, str | BaseException | int], calls: list[list[str]] | None = None
) -> Callable[..., subprocess.CompletedProcess]:
    """A subprocess.run stand-in keyed by program name: stdout, an exception, or an exit code."""

    def run(cmd: Sequence[str], **kwargs: object) -> subprocess.CompletedProcess:
        if calls is not None:
            calls.append(list(cmd))
        result = outputs.get(cmd[0], FileNotFoundError(cmd[0]))
        if isinstance(result, BaseException):
            raise result
        if isinstance(result, int):
            return subprocess.CompletedProcess(cmd, result, "", "failed")
        return subprocess.CompletedProcess(cmd, 0, result, "")

    return run


NO_TOOLS = fake_run({})
SMI_H100 = "NVIDIA H100 80GB HBM3, 81559, 550.54.15\n"
SMI_6GB = "NVIDIA GeForce RTX 2060, 6144, 535.183.01\n"


def pi5_tree(root: Path) -> None:
    device_tree(root, ["raspberrypi,5-model-b", "brcm,bcm2712"], "Raspberry Pi 5 Model B Rev 1.0")
    arm_cpuinfo(root, revision="d04170", model="Raspberry Pi 5 Model B Rev 1.0")
    meminfo(root, 8_245_632)


# ----------------------------------------------------------------------- Pi


def test_pi4_from_compatible_and_revision(tmp_path: Path) -> None:
    device_tree(
        tmp_path, ["raspberrypi,4-model-b", "brcm,bcm2711"], "Raspberry Pi 4 Model B Rev 1.4"
    )
    arm_cpuinfo(tmp_path, part="0xd08", revision="c03114")
    meminfo(tmp_path, 3_884_376)

    pi = read_pi(tmp_path)
    assert pi == PiInfo(
        board="pi4",
        model_string="Raspberry Pi 4 Model B Rev 1.4",
        compatible=("raspberrypi,4-model-b", "brcm,bcm2711"),
        revision=0xC03114,
        board_type=0x11,
        ram_mb=4096,
    )
    host = detect_host(tmp_path, NO_TOOLS, architecture="aarch64")
    assert host.matches == ("pi4", "cpu")
    assert host.primary == "pi4"
    assert host.cpu.model_name == "Cortex-A72"
    assert host.cpu.vendor == "ARM"
    assert host.memory_total_mb == 3793
    assert "Raspberry Pi 4 Model B Rev 1.4" in host.reasons["pi4"]
    assert "not a Pi 5" in host.reasons["pi5"]


def test_pi5(tmp_path: Path) -> None:
    pi5_tree(tmp_path)
    host = detect_host(tmp_path, NO_TOOLS, architecture="aarch64")

    assert host.pi is not None
    assert (host.pi.board, host.pi.board_type, host.pi.ram_mb) == ("pi5", 0x17, 8192)
    assert host.pi.model_string == "Raspberry Pi 5 Model B Rev 1.0"
    assert host.matches == ("pi5", "cpu")
    assert host.primary == "pi5"
    assert host.cpu.architecture == "aarch64"
    assert host.cpu.model_name == "Cortex-A76"
    assert (host.cpu.family, host.cpu.model) == (None, None)
    assert host.cpu.logical_cores == 4
    assert "asimd" in host.cpu.flags
    assert host.reasons["pi5"].startswith("host is a Raspberry Pi 5 Model B Rev 1.0")
    assert "not a Pi 4" in host.reasons["pi4"]
    assert "not an Intel CPU" in host.reasons["sapphire_rapids"]


def test_pi_from_revision_code_only(tmp_path: Path) -> None:
    # e04171: new-style, 16 GB, BCM2712, type 0x17 (Pi 5), no device tree mounted.
    arm_cpuinfo(tmp_path, revision="e04171", model="Raspberry Pi 5 Model B Rev 1.1")
    pi = read_pi(tmp_path)
    assert pi is not None
    assert (pi.board, pi.board_type, pi.ram_mb, pi.compatible) == ("pi5", 0x17, 16384, ())
    assert pi.model_string == "Raspberry Pi 5 Model B Rev 1.1"
    host = detect_host(tmp_path, NO_TOOLS, architecture="aarch64")
    assert host.primary == "pi5"
    assert "revision code 0xe04171" in host.reasons["pi5"]


@pytest.mark.parametrize(
    ("revision", "board", "ram_mb"),
    [
        ("c03114", "pi4", 4096),   # 4B
        ("c03130", "pi4", 4096),   # Pi 400
        ("d04190", "pi5", 8192),   # Pi 500
        ("b04180", "pi5", 2048),   # CM5
        ("a02082", None, 1024),    # 3B: a Pi, but neither profile
    ],
)
def test_revision_decoding(tmp_path: Path, revision: str, board: str | None, ram_mb: int) -> None:
    arm_cpuinfo(tmp_path, revision=revision)
    pi = read_pi(tmp_path)
    assert pi is not None and (pi.board, pi.ram_mb) == (board, ram_mb)


def test_old_style_or_missing_revision_is_not_a_pi(tmp_path: Path) -> None:
    arm_cpuinfo(tmp_path, revision="0000")
    assert read_pi(tmp_path) is None
    arm_cpuinfo(tmp_path)
    assert read_pi(tmp_path) is None


def test_pi3_is_a_pi_but_not_a_profile(tmp_path: Path) -> None:
    device_tree(
        tmp_path, ["raspberrypi,3-model-b", "brcm,bcm2837"], "Raspberry Pi 3 Model B Rev 1.2"
    )
    arm_cpuinfo(tmp_path, part="0xd03", revision="a02082")
    host = detect_host(tmp_path, NO_TOOLS, architecture="aarch64")
    assert host.pi is not None and host.pi.board is None
    assert host.matches == ("cpu",)
    assert "Raspberry Pi 3 Model B Rev 1.2" in host.reasons["pi5"]


def test_arm_board_that_is_not_a_pi(tmp_path: Path) -> None:
    device_tree(tmp_path, ["radxa,rock-5b", "rockchip,rk3588"], "Radxa ROCK 5B")
    # A stray new-style-looking Revision line must not make it a Pi.
    arm_cpuinfo(tmp_path, revision="c04170")
    host = detect_host(tmp_path, NO_TOOLS, architecture="aarch64")
    assert host.pi is None
    assert host.matches == ("cpu",)
    assert "no Raspberry Pi" in host.reasons["pi5"]
    assert "no Raspberry Pi" in host.reasons["pi4"]
    assert read_throttle(tmp_path, NO_TOOLS) is None


# ---------------------------------------------------------------- throttling


def test_pi5_throttled_and_under_voltage_from_sysfs(tmp_path: Path) -> None:
    pi5_tree(tmp_path)
    write(tmp_path, THROTTLED_SYSFS, "50005\n")  # hex without 0x
    calls: list[list[str]] = []
    state = read_throttle(tmp_path, fake_run({"vcgencmd": "throttled=0x0\n"}, calls))

    assert state == ThrottleState(0x50005, "/" + THROTTLED_SYSFS)
    assert calls == []  # sysfs wins; vcgencmd is not run
    assert state.under_voltage_now and state.throttled_now
    assert not state.freq_capped_now and not state.soft_temp_limit_now
    assert state.under_voltage_since_boot and state.throttled_since_boot
    assert not state.freq_capped_since_boot and not state.soft_temp_limit_since_boot
    assert len(state.problems()) == 4
    assert "under-voltage now" in state.problems()[0]


def test_throttle_falls_back_to_vcgencmd(tmp_path: Path) -> None:
    pi5_tree(tmp_path)
    calls: list[list[str]] = []
    state = read_throttle(tmp_path, fake_run({"vcgencmd": "throttled=0x50005\n"}, calls))
    assert calls == [["vcgencmd", "get_throttled"]]
    assert state == ThrottleState(0x50005, "vcgencmd get_throttled")
    assert state.under_voltage_now and state.throttled_now


def test_throttle_hwmon_rpi_volt_alarm(tmp_path: Path) -> None:
    pi5_tree(tmp_path)
    write(tmp_path, "sys/class/hwmon/hwmon0/name", "cpu_thermal\n")
    write(tmp_path, "sys/class/hwmon/hwmon1/name", "rpi_volt\n")
    write(tmp_path, "sys/class/hwmon/hwmon1/in0_lcrit_alarm", "1\n")
    state = read_throttle(tmp_path, NO_TOOLS)
    assert state is not None
    assert state.source == "/sys/class/hwmon/hwmon1/in0_lcrit_alarm"
    assert state.under_voltage_now
    assert not state.throttled_now and not state.under_voltage_since_boot

    write(tmp_path, "sys/class/hwmon/hwmon1/in0_lcrit_alarm", "0\n")
    calm = read_throttle(tmp_path, NO_TOOLS)
    assert calm is not None and calm.raw == 0 and calm.problems() == []


def test_throttle_healthy_pi(tmp_path: Path) -> None:
    pi5_tree(tmp_path)
    write(tmp_path, THROTTLED_SYSFS, "0x0\n")
    state = read_throttle(tmp_path, NO_TOOLS)
    assert state is not None and state.raw == 0 and state.problems() == []


def test_throttle_not_a_pi(tmp_path: Path) -> None:
    assert read_throttle(tmp_path, NO_TOOLS) is None  # vcgencmd missing: FileNotFoundError
    assert read_throttle(tmp_path, fake_run({"vcgencmd": 255})) is None
    hung = fake_run({"vcgencmd": subprocess.TimeoutExpired("vcgencmd", 10)})
    assert read_throttle(tmp_path, hung) is None


def test_throttle_unreadable_source_is_reported(tmp_path: Path) -> None:
    state = read_throttle(tmp_path, fake_run({"vcgencmd": "VCHI initialization failed\n"}))
    assert state is not None and state.raw is None
    assert "VCHI initialization failed" in state.source
    assert state.problems() == [] and not state.under_voltage_now


@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_throttle_bits_decode_consistently(raw: int) -> None:
    state = ThrottleState(raw, "test")
    names = ("under_voltage", "freq_capped", "throttled", "soft_temp_limit")
    for bit, name in enumerate(names):
        assert getattr(state, f"{name}_now") == bool(raw & (1 << bit))
        assert getattr(state, f"{name}_since_boot") == bool(raw & (1 << (bit + 16)))
    expected = bin(raw & 0xF).count("1") + bin(raw & 0xF0000).count("1")
    assert len(state.problems()) == expected
    for text in (f"throttled={raw:#x}", f"{raw:#x}", f"{raw:x}\n", f"{raw:X}"):
        assert parse_throttled(text) == raw


# ----------------------------------------------------------------------- x86


SPR_FLAGS = ("amx_tile", "amx_bf16", "amx_int8", "avx512_bf16", "avx512_vnni")


def test_sapphire_rapids(tmp_path: Path) -> None:
    intel_cpuinfo(tmp_path, 143, SPR_FLAGS, sockets=2, cores=4, threads=2,
                  name="Intel(R) Xeon(R) Platinum 8480+")
    meminfo(tmp_path, 263_842_304)
    host = detect_host(tmp_path, NO_TOOLS, architecture="x86_64")

    assert host.cpu.vendor == "GenuineIntel"
    assert (host.cpu.family, host.cpu.model) == (6, 143)
    assert host.cpu.model_name == "Intel(R) Xeon(R) Platinum 8480+"
    assert (host.cpu.logical_cores, host.cpu.physical_cores) == (16, 8)
    assert {"amx_tile", "amx_bf16", "amx_int8"} <= host.cpu.flags
    assert host.matches == ("sapphire_rapids", "cpu")
    assert host.primary == "sapphire_rapids"
    reason = host.reasons["sapphire_rapids"]
    assert reason.startswith("host is an x86_64 Intel family 6 model 143 (Sapphire Rapids)")
    assert "amx_bf16" in reason and "amx_tile" in reason
    assert host.pi is None and host.gpus == ()


@pytest.mark.parametrize(("model", "codename"), [(207, "Emerald Rapids"), (173, "Granite Rapids")])
def test_newer_amx_xeons_match(tmp_path: Path, model: int, codename: str) -> None:
    intel_cpuinfo(tmp_path, model, SPR_FLAGS)
    host = detect_host(tmp_path, NO_TOOLS, architecture="x86_64")
    assert host.matches == ("sapphire_rapids", "cpu")
    assert codename in host.reasons["sapphire_rapids"]


def test_listed_model_with_hidden_amx_still_matches(tmp_path: Path) -> None:
    intel_cpuinfo(tmp_path, 143, ("avx512_bf16",))
    host = detect_host(tmp_path, NO_TOOLS, architecture="x86_64")
    assert "sapphire_rapids" in host.matches
    assert "AMX flags are missing" in host.reasons["sapphire_rapids"]


def test_unlisted_intel_with_amx_flags_matches(tmp_path: Path) -> None:
    intel_cpuinfo(tmp_path, 250, SPR_FLAGS)
    host = detect_host(tmp_path, NO_TOOLS, architecture="x86_64")
    assert host.matches == ("sapphire_rapids", "cpu")
    assert "not a listed model but it has AMX flags" in host.reasons["sapphire_rapids"]


def test_ice_lake_xeon_is_not_sapphire_rapids(tmp_path: Path) -> None:
    intel_cpuinfo(tmp_path, 106, ("avx512_vnni", "avx512_vbmi2"),
                  name="Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz")
    host = detect_host(tmp_path, NO_TOOLS, architecture="x86_64")
    assert host.matches == ("cpu",)
    assert host.primary == "cpu"
    assert host.reasons["sapphire_rapids"] == (
        "host is an x86_64 Intel family 6 model 106 (Ice Lake server), no AMX"
    )


def test_amd_is_not_sapphire_rapids(tmp_path: Path) -> None:
    write(tmp_path, "proc/cpuinfo",
          "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\n"
          "model name\t: AMD EPYC 9654\nflags\t\t: avx512f avx512_bf16\n")
    host = detect_host(tmp_path, NO_TOOLS, architecture="x86_64")
    assert host.matches == ("cpu",)
    assert host.reasons["sapphire_rapids"] == (
        "host is an x86_64 AMD EPYC 9654, not an Intel CPU with AMX"
    )


# ---------------------------------------------------------------------- CUDA


def test_cuda_host_with_80gb_card_is_told_how_to_cap_it(tmp_path: Path) -> None:
    intel_cpuinfo(tmp_path, 143, SPR_FLAGS)
    calls: list[list[str]] = []
    host = detect_host(tmp_path, fake_run({"nvidia-smi": SMI_H100}, calls), architecture="x86_64")
    assert calls == [list(NVIDIA_SMI_QUERY)]
    assert host.gpus == (GpuInfo("NVIDIA H100 80GB HBM3", 81559, "550.54.15"),)
    assert host.matches == ("cuda_lowvram", "sapphire_rapids", "cpu")
    assert host.primary == "cuda_lowvram"
    assert host.reasons["cuda_lowvram"] == (
        "NVIDIA H100 80GB HBM3 has 81559 MiB VRAM, "
        "more than a 6 GB card: --sdperf-vram-cap 6144 emulates one"
    )


def test_cuda_host_with_6gb_card_is_not_capped(tmp_path: Path) -> None:
    run = fake_run({"nvidia-smi": SMI_6GB + SMI_H100})
    host = detect_host(tmp_path, run, architecture="x86_64")
    assert [g.total_mib for g in host.gpus] == [6144, 81559]
    assert host.matches == ("cuda_lowvram", "cpu")
    assert host.reasons["cuda_lowvram"] == (
        "NVIDIA GeForce RTX 2060 (GPU 0 of 2) has 6144 MiB VRAM, no cap needed (<= 6144 MiB)"
    )


@pytest.mark.parametrize(
    "outcome", [FileNotFoundError("nvidia-smi"), 9, "", "garbage line\n", PermissionError("x")]
)
def test_no_usable_gpu(outcome: object) -> None:
    assert read_gpus(fake_run({"nvidia-smi": outcome})) == ()  # type: ignore[dict-item]


def test_gpu_rows_with_unknown_memory_are_skipped() -> None:
    out = "Weird GPU, [N/A], 1.0\n" + SMI_6GB
    assert read_gpus(fake_run({"nvidia-smi": out})) == (
        GpuInfo("NVIDIA GeForce RTX 2060", 6144, "535.183.01"),
    )


# ---------------------------------------------------------- plain and empty


def test_plain_host_only_cpu(tmp_path: Path) -> None:
    intel_cpuinfo(tmp_path, 85, ("avx512f",), cores=2, threads=1)
    meminfo(tmp_path, 16_384_000)
    host = detect_host(tmp_path, NO_TOOLS, architecture="x86_64")
    assert host.matches == ("cpu",)
    assert host.primary == "cpu"
    assert set(host.reasons) == set(PROFILES)
    assert host.reasons["cuda_lowvram"] == "no NVIDIA GPU found by nvidia-smi"
    assert "2 logical cores, 2 physical, 16000 MB RAM" in host.reasons["cpu"]
    assert "no AMX" in host.reasons["sapphire_rapids"]


def test_missing_files_everywhere(tmp_path: Path) -> None:
    host = detect_host(tmp_path, NO_TOOLS, architecture="riscv64")
    assert host.cpu == CpuInfo("riscv64", "", "", None, None, frozenset(), 0, None)
    assert host.pi is None and host.gpus == () and host.memory_total_mb is None
    assert host.matches == ("cpu",)
    assert set(host.reasons) == set(PROFILES)
    assert "CPU vendor unknown" in host.reasons["sapphire_rapids"]
    assert read_thermal(tmp_path) == ThermalState(None, (), (), ())
    assert read_throttle(tmp_path, NO_TOOLS) is None
    assert read_memory_mb(tmp_path) is None
    assert find_library("libjemalloc.so.2", tmp_path, "x86_64") is None
    json.dumps(host.to_json())


def test_logical_cores_from_sysfs_when_cpuinfo_lacks_processor_lines(tmp_path: Path) -> None:
    write(tmp_path, "sys/devices/system/cpu/online", "0-3,6-7\n")
    assert read_cpu(tmp_path, "aarch64").logical_cores == 6


def test_arm_physical_cores_from_topology(tmp_path: Path) -> None:
    arm_cpuinfo(tmp_path, cores=4)
    for n in range(4):
        write(tmp_path, f"sys/devices/system/cpu/cpu{n}/topology/physical_package_id", "0\n")
        write(tmp_path, f"sys/devices/system/cpu/cpu{n}/topology/core_id", f"{n}\n")
    assert read_cpu(tmp_path, "aarch64").physical_cores == 4


def test_read_cpu_uses_uname_when_architecture_not_given(tmp_path: Path) -> None:
    import os

    assert read_cpu(tmp_path).architecture == os.uname().machine


def test_to_json_roundtrips(tmp_path: Path) -> None:
    pi5_tree(tmp_path)
    host = detect_host(tmp_path, fake_run({"nvidia-smi": SMI_6GB}), "aarch64")
    data = json.loads(json.dumps(host.to_json()))
    assert data["primary"] == "pi5"
    assert data["matches"] == ["pi5", "cuda_lowvram", "cpu"]
    assert data["pi"]["board"] == "pi5" and data["pi"]["revision"] == "d04170"
    assert data["gpus"] == [
        {"name": "NVIDIA GeForce RTX 2060", "total_mib": 6144, "driver": "535.183.01"}
    ]
    assert data["cpu"]["flags"] == sorted(data["cpu"]["flags"])


def test_find_library(tmp_path: Path) -> None:
    write(tmp_path, "usr/lib/x86_64-linux-gnu/libjemalloc.so.2", "")
    assert find_library("libjemalloc.so.2", tmp_path, "x86_64") == (
        "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
    )
    assert find_library("libjemalloc.so.2", tmp_path, "aarch64") is None


# ------------------------------------------------------------------- thermal


def test_read_thermal(tmp_path: Path) -> None:
    write(tmp_path, "sys/class/thermal/thermal_zone0/temp", "81250\n")
    cpufreq(tmp_path, [2400000, 1500000, 2400000, 1500000], governor="ondemand")
    for n in (11, 10):  # sorted numerically, after cpu3 (not lexically between cpu1 and cpu2)
        write(tmp_path, f"sys/devices/system/cpu/cpu{n}/cpufreq/scaling_cur_freq", f"{n}\n")
    write(tmp_path, "sys/devices/system/cpu/cpufreq/policy0/scaling_cur_freq", "1\n")  # ignored
    state = read_thermal(tmp_path)
    assert state.temperature_c == pytest.approx(81.25)
    assert state.cpu_freq_khz == (2400000, 1500000, 2400000, 1500000, 10, 11)
    assert state.max_freq_khz == (2400000,) * 4
    assert state.governors == ("ondemand",) * 4


def test_cpu_drop() -> None:
    before = ThermalState(50.0, (2400000, 2400000), (2400000, 2400000), ("performance",) * 2)
    after = ThermalState(82.0, (1800000, 1800000), (2400000, 2400000), ("performance",) * 2)
    assert cpu_drop(before, after) == pytest.approx(0.25)
    assert cpu_drop(after, before) == pytest.approx(-1 / 3)
    assert cpu_drop(before, before) == 0.0
    empty = ThermalState(None, (), (), ())
    assert cpu_drop(empty, after) is None
    assert cpu_drop(before, empty) is None
    assert cpu_drop(ThermalState(None, (0,), (), ()), after) is None
