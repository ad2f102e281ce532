"""The recipe registry, what each recipe needs, the process settings it becomes, and the
checks that fail a case whose recipe did not take effect (no worker: plain data)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from sdperf.config.profiles import ProfileError, load_profiles
from sdperf.config.recipes import REGISTRY, Recipe
from sdperf.execution.cases import make_case, pinning_command
from sdperf.host.capabilities import HostFacts, unmet
from sdperf.judging.proof import problems
from sdperf.models.store import ModelSpec

PROFILES = load_profiles()
TINY = ModelSpec("tiny-sd15")


def facts(**changes) -> HostFacts:
    everything = HostFacts(
        cpu_flags=frozenset({"avx2", "avx512f"}),
        gpus=(),
        cpus=4,
        library=lambda soname: f"/usr/lib/x86_64-linux-gnu/{soname}",
        command=lambda name: f"/usr/bin/{name}",
        package=lambda name: {"torch": "2.13.0+cpu"}.get(name, "1.0"),
        python_env=lambda name: None,
    )
    return dataclasses.replace(everything, **changes)


def case_of(recipe: str, profile: str = "cpu", cores: int = 2):
    return make_case(PROFILES[profile], REGISTRY[recipe], TINY, {}, cores=cores)


# ------------------------------------------------------------------ registry


def test_every_profile_lists_only_recipes_made_for_it_and_testonly_is_never_a_default() -> None:
    for name, profile in PROFILES.items():
        assert profile.recipes, name
        for recipe in (*profile.recipes, profile.control):
            assert name in REGISTRY[recipe].profiles
        assert "testonly_slowdown" not in profile.recipes


def test_every_transform_named_by_a_recipe_exists_in_the_worker() -> None:
    from sdperf.worker.transforms import TRANSFORMS  # light: each transform imports its own heavy modules

    for recipe in REGISTRY.values():
        assert set(recipe.transforms) <= set(TRANSFORMS), recipe.name


def test_a_profile_naming_an_unknown_or_foreign_recipe_is_refused(tmp_path: Path) -> None:
    text = (Path(__file__).parents[1] / "sdperf" / "config" / "profiles.toml").read_text()
    (tmp_path / "unknown.toml").write_text(text.replace('"omp4_openblas1"]', '"omp8_openblas1"]', 1))
    with pytest.raises(ProfileError, match="recipe 'omp8_openblas1' is unknown"):
        load_profiles(tmp_path / "unknown.toml")
    (tmp_path / "foreign.toml").write_text(text.replace('"omp4_openblas1"]', '"cuda_fp16"]', 1))
    with pytest.raises(ProfileError, match="recipe 'cuda_fp16' is not made for profile pi5"):
        load_profiles(tmp_path / "foreign.toml")


def test_a_recipe_with_an_unknown_allocator_or_a_gpu_device_without_cuda_is_refused() -> None:
    with pytest.raises(ValueError, match="preload"):
        Recipe(name="x", summary="", profiles=("cpu",), preload=("libmimalloc.so.2",))
    with pytest.raises(ValueError, match="needs Needs\\(cuda=True\\)"):
        Recipe(name="x", summary="", profiles=("cpu",), device="cuda")


# ------------------------------------------------------------------ process settings


def test_thread_recipes_set_exactly_their_variables_and_clear_the_others() -> None:
    case = case_of("omp1")
    assert case.env["OMP_NUM_THREADS"] == "1"
    assert case.env["OPENBLAS_NUM_THREADS"] is None and case.env["MKL_NUM_THREADS"] is None
    assert case.expect["threads"] == {"OMP_NUM_THREADS": 1}
    assert case.expect["unset"] == ["MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"]
    environment = case.worker_environment({"OPENBLAS_NUM_THREADS": "8", "PATH": "/bin"})
    assert "OPENBLAS_NUM_THREADS" not in environment and environment["OMP_NUM_THREADS"] == "1"


def test_cores_placeholder_becomes_this_machines_physical_cores() -> None:
    assert case_of("omp_cores_openblas1", cores=6).env["OMP_NUM_THREADS"] == "6"
    assert case_of("omp_cores_openblas1", cores=6).expect["threads"] == {"OMP_NUM_THREADS": 6, "OPENBLAS_NUM_THREADS": 1}


def test_the_pi_profile_keeps_its_board_settings_under_fp32_and_the_recipe_overrides_them() -> None:
    assert case_of("fp32", "pi5").env["OMP_NUM_THREADS"] == "4"
    assert case_of("omp1", "pi5").env["OMP_NUM_THREADS"] == "1"


def test_the_profiles_own_settings_are_proven_and_capped_counts_said() -> None:
    # Before, a profile's settings were never checked: pi5-fp32 quietly ran 2 threads on 2 CPUs.
    on_four = make_case(PROFILES["pi5"], REGISTRY["fp32"], TINY, {}, cores=4, cpus=4)
    assert on_four.expect["threads"] == {"OMP_NUM_THREADS": 4, "OPENBLAS_NUM_THREADS": 1} and not on_four.notes
    on_two = make_case(PROFILES["pi5"], REGISTRY["fp32"], TINY, {}, cores=2, cpus=2)
    assert on_two.expect["capped"] == {"OMP_NUM_THREADS": 2}
    assert on_two.notes == ("OMP_NUM_THREADS=4 (profile setting) on 2 CPUs: x86 torch runs 2 threads, aarch64 torch 4",)
    good = {"torch_threads": 2, "environment": {"OMP_NUM_THREADS": "4", "OPENBLAS_NUM_THREADS": "1"},
            "threadpools": [{"internal_api": "openmp", "num_threads": 2, "filepath": "libgomp"},
                            {"internal_api": "openblas", "num_threads": 1, "filepath": "libopenblas"}]}
    assert problems(on_two.expect, {"audit": good}) == []
    # torch's aarch64 OpenMP runs the count asked even above the CPUs (seen under qemu): in force too.
    assert problems(on_two.expect, {"audit": {**good, "torch_threads": 4}}) == []
    assert problems(on_two.expect, {"audit": {**good, "torch_threads": 3}}) == [
        "OMP_NUM_THREADS=4 (capped to 2 CPUs) but torch runs 3 intra-op threads"
    ]
    ignored = {**good, "threadpools": [{"internal_api": "openblas", "num_threads": 2, "filepath": "libopenblas"}]}
    assert problems(on_two.expect, {"audit": ignored}) == [
        "OPENBLAS_NUM_THREADS=1 but the openblas pool of libopenblas runs 2 threads"
    ]
    # A recipe's own count is what it measures: not capped, so it cannot run on 2 CPUs.
    recipe_set = make_case(PROFILES["pi5"], REGISTRY["omp4_openblas1"], TINY, {}, cores=2, cpus=2)
    assert "capped" not in recipe_set.expect
    assert "may use only 2 CPUs" in unmet(REGISTRY["omp4_openblas1"], recipe_set.expect["threads"], facts(cpus=2))


def test_allocator_recipes_preload_the_library_and_expect_it_mapped() -> None:
    case = case_of("jemalloc")
    assert case.env["LD_PRELOAD"].endswith("libjemalloc.so.2")
    assert case.env["MALLOC_CONF"].startswith("oversize_threshold:1,background_thread:true")
    assert case.expect["allocators"] == ["jemalloc"] and case.expect["malloc_conf"] == case.env["MALLOC_CONF"]
    assert case_of("tcmalloc").expect["allocators"] == ["tcmalloc"]


def test_pinning_uses_numactl_else_taskset_and_records_which() -> None:
    assert pinning_command(4, which=lambda name: "/usr/bin/numactl") == ("numactl", "-C", "0-3")
    assert pinning_command(4, which=lambda name: "/usr/bin/taskset" if name == "taskset" else None) == (
        "taskset", "-c", "0-3",
    )
    assert pinning_command(4, which=lambda name: None) == ()
    case = case_of("pin_cores", cores=2)
    assert case.expect["cpus"] == [0, 1] and case.expect["pinned_by"] == case.command_prefix[0]


def test_stack_recipe_combines_system_settings_and_transforms_in_order() -> None:
    case = case_of("xeon_stack", cores=2)
    assert case.transforms == ("bf16_autocast", "dpm_solver")
    assert set(case.expect) >= {"threads", "allocators", "malloc_conf", "cpus"}


def test_openvino_recipes_expect_fp32_precision_and_the_static_one_a_static_shape() -> None:
    assert case_of("openvino").expect == {"openvino_precision": "f32"}
    assert case_of("openvino_static").expect == {"openvino_precision": "f32", "static_shape": True}


# ------------------------------------------------------------------ requirements


@pytest.mark.parametrize(
    ("recipe", "changes", "reason"),
    [
        ("openvino", {"package": lambda name: None}, "needs the Python package openvino, which is not installed; install it: pip install"),
        ("jemalloc", {"library": lambda soname: None}, "needs libjemalloc.so.2, which is not in the system library folders; install it: sudo apt-get install libjemalloc2"),
        ("tcmalloc", {"library": lambda soname: None}, "sudo apt-get install libtcmalloc-minimal4"),
        ("pin_cores", {"command": lambda name: None}, "needs one of the commands numactl, taskset on PATH"),
        ("ipex_bf16", {}, "create it once with: sdperf env create ipex"),
        ("ipex_bf16", {"python_env": lambda name: Path("/env/bin/python"), "cpu_flags": frozenset()}, "needs a CPU with avx2"),
        ("cuda_fp16", {}, "needs an NVIDIA GPU with CUDA; nvidia-smi finds none"),
        ("cuda_fp16", {"gpus": ("NVIDIA H100",)}, "needs a CUDA build of torch; this one is 2.13.0+cpu"),
        ("omp1_openblas4", {"cpus": 2}, "sets OPENBLAS_NUM_THREADS=4, but this process may use only 2 CPUs"),
    ],
)
def test_an_unmet_need_names_what_is_missing_and_how_to_get_it(recipe: str, changes: dict, reason: str) -> None:
    profile = REGISTRY[recipe].profiles[0]
    case = case_of(recipe, profile)
    found = unmet(REGISTRY[recipe], case.expect.get("threads", {}), facts(**changes))
    assert found is not None and reason in found


@pytest.mark.parametrize("recipe", ["fp32", "omp1", "omp1_openblas4", "jemalloc", "pin_cores", "openvino", "bf16"])
def test_recipes_whose_needs_hold_are_not_skipped(recipe: str) -> None:
    assert unmet(REGISTRY[recipe], case_of(recipe).expect.get("threads", {}), facts()) is None


def test_cuda_recipes_run_where_a_gpu_and_a_cuda_torch_are_found() -> None:
    gpu = facts(gpus=("NVIDIA GeForce RTX 2060",), package=lambda name: "2.11.0")
    assert unmet(REGISTRY["model_cpu_offload"], {}, gpu) is None


# ------------------------------------------------------------------ in force or not


def audit(**changes) -> dict:
    good = {
        "torch_threads": 1,
        "environment": {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": None, "MKL_NUM_THREADS": None,
                        "LD_PRELOAD": None, "MALLOC_CONF": None},
        "threadpools": [
            {"internal_api": "openmp", "num_threads": 1, "filepath": "/torch/lib/libgomp.so.1"},
            {"internal_api": "openblas", "num_threads": 2, "filepath": "/numpy.libs/libscipy_openblas64_.so"},
        ],
        "allocators": [],
        "cpus": [0, 1],
    }
    good.update(changes)
    return {"audit": good, "transform_proof": {}}


def test_a_recipe_fully_in_force_has_no_problems() -> None:
    assert problems(case_of("omp1").expect, audit()) == []


def test_a_thread_variable_overridden_in_the_worker_is_a_problem() -> None:
    overridden = audit(torch_threads=2, environment={"OMP_NUM_THREADS": "2"})
    found = problems(case_of("omp1").expect, overridden)
    assert "OMP_NUM_THREADS=1 was set, but the worker's environment has OMP_NUM_THREADS=2" in found


def test_a_pool_that_ignores_the_variable_is_a_problem() -> None:
    pools = [{"internal_api": "openmp", "num_threads": 2, "filepath": "/other/libgomp.so.1"}]
    found = problems(case_of("omp1").expect, audit(threadpools=pools))
    assert found == ["OMP_NUM_THREADS=1 but the openmp pool of /other/libgomp.so.1 runs 2 threads"]
    assert problems(case_of("omp1").expect, audit(torch_threads=2)) == [
        "OMP_NUM_THREADS=1 but torch runs 2 intra-op threads"
    ]


def test_a_thread_variable_that_should_be_unset_is_a_problem() -> None:
    found = problems(case_of("threads_unset").expect, audit(environment={"OMP_NUM_THREADS": "1"}))
    assert found == ["OMP_NUM_THREADS must be unset, but the worker has OMP_NUM_THREADS=1"]


def test_an_allocator_not_mapped_is_a_problem() -> None:
    case = case_of("jemalloc")
    environment = {"LD_PRELOAD": case.env["LD_PRELOAD"], "MALLOC_CONF": case.env["MALLOC_CONF"]}
    [found] = problems(case.expect, audit(environment=environment))
    assert found.startswith("jemalloc is not mapped into the worker (LD_PRELOAD=")
    assert "none, glibc malloc): the dynamic linker ignored the preload" in found
    assert problems(case.expect, audit(environment=environment, allocators=["jemalloc"])) == []


def test_cores_not_pinned_is_a_problem() -> None:
    case = case_of("pin_cores", cores=1)
    environment = {"OMP_NUM_THREADS": "1"}
    [found] = problems(case.expect, audit(environment=environment, cpus=[0, 1]))
    assert found.startswith("the worker should run on CPUs [0] (") and found.endswith("but may run on [0, 1]")


def test_openvino_with_a_reduced_precision_or_a_dynamic_shape_is_a_problem() -> None:
    def loaded(hint: str, shapes: dict) -> dict:
        reply = audit()
        reply["transform_proof"] = {"load": {"openvino": {"INFERENCE_PRECISION_HINT": hint}, "unet_input_shapes": shapes}}
        return reply

    static = case_of("openvino_static").expect
    assert problems(static, loaded("f32", {"sample": "[2,4,16,16]"})) == []
    assert problems(static, loaded("bf16", {"sample": "[2,4,16,16]"})) == [
        "OpenVINO was asked for INFERENCE_PRECISION_HINT=f32 but the compiled UNet runs bf16"
    ]
    assert problems(static, loaded("f32", {"sample": "[?,4,?,?]"})) == [
        "the OpenVINO UNet should be compiled for a static shape, but its inputs are sample [?,4,?,?]"
    ]
    assert problems(case_of("openvino").expect, loaded("f32", {"sample": "[?,4,?,?]"})) == []


def test_the_vram_cap_reaches_cuda_workers_only() -> None:
    from sdperf.pytest_plugin.options import Settings

    settings = Settings(profiles=PROFILES, model=None, emulate=None, recipes=None, run_override={},
                        progress_every_s=5.0, vram_cap_mib=6144)
    assert settings.worker_env("cuda") == {"SDPERF_VRAM_CAP_MIB": "6144"} and settings.worker_env("cpu") == {}
    case = make_case(PROFILES["cuda_lowvram"], REGISTRY["cuda_fp16"], ModelSpec("tiny-sd3"), {},
                     extra_env=settings.worker_env("cuda"))
    assert case.worker_environment({})["SDPERF_VRAM_CAP_MIB"] == "6144"


def test_first_call_cost_is_called_compilation_only_where_the_recipe_compiles() -> None:
    from sdperf.config.recipes import REGISTRY

    compiling = {name for name, recipe in REGISTRY.items() if recipe.compiles}
    assert {"torch_compile", "openvino", "openvino_static"} <= compiling
    assert not compiling & {"fp32", "bf16", "omp1", "jemalloc", "threads_unset"}


# threadpoolctl as the aarch64 torch wheel reports it (seen on a Pi): torch's own pthreads OpenBLAS
# in torch.libs/, its OpenMP runtime, and numpy's bundled OpenBLAS beside them.
AARCH64_POOLS = [
    {"internal_api": "openmp", "num_threads": 2, "filepath": "/venv/torch.libs/libgomp-947d5fa1.so.1.0.0"},
    {"internal_api": "openblas", "num_threads": 1, "threading_layer": "pthreads", "architecture": "neoversen1",
     "filepath": "/venv/torch.libs/libopenblasp-r0-2eadb500.3.29.so"},
    {"internal_api": "openblas", "num_threads": 1, "threading_layer": "pthreads", "architecture": "neoversen1",
     "filepath": "/venv/numpy.libs/libscipy_openblas64_-6bb31eeb.so"},
]


def test_thread_recipe_proof_checks_torchs_own_openblas_on_aarch64() -> None:
    case = case_of("omp4_openblas1", profile="pi5", cores=4)
    environment = {"OMP_NUM_THREADS": "4", "OPENBLAS_NUM_THREADS": "1"}
    pools = [{**AARCH64_POOLS[0], "num_threads": 4}, *AARCH64_POOLS[1:]]
    assert problems(case.expect, audit(threadpools=pools, environment=environment, torch_threads=4)) == []
    pools[1] = {**pools[1], "num_threads": 4}  # torch's own OpenBLAS ignoring OPENBLAS_NUM_THREADS
    found = problems(case.expect, audit(threadpools=pools, environment=environment, torch_threads=4))
    assert found == ["OPENBLAS_NUM_THREADS=1 but the openblas pool of "
                     "/venv/torch.libs/libopenblasp-r0-2eadb500.3.29.so runs 4 threads"]


# threadpoolctl inside the worker of torch 2.10.0's aarch64 wheel (PyPI's newest CPU build), as
# tools/emulated_pi5.sh showed it for the pi5 fp32 recipe (OMP_NUM_THREADS=4, OPENBLAS_NUM_THREADS=1):
# torch's own OpenBLAS is the OpenMP build and follows OMP_NUM_THREADS; numpy's and scipy's are pthreads.
TORCH_210_AARCH64_POOLS = [
    {"internal_api": "openmp", "num_threads": 4, "filepath": "/venv/sklearn.libs/libgomp-a49a47f9.so.1.0.0"},
    {"internal_api": "openblas", "num_threads": 1, "threading_layer": "pthreads",
     "filepath": "/venv/scipy.libs/libscipy_openblas-c5a9b014.so"},
    {"internal_api": "openblas", "num_threads": 4, "threading_layer": "openmp",
     "filepath": "/venv/torch/lib/libopenblas-24fd393f.so.0"},
    {"internal_api": "openmp", "num_threads": 4, "filepath": "/venv/torch/lib/libgomp.so.1"},
    {"internal_api": "openblas", "num_threads": 1, "threading_layer": "pthreads",
     "filepath": "/venv/numpy.libs/libscipy_openblas64_-7220728c.so"},
]


def test_an_openblas_built_with_openmp_is_held_to_omp_num_threads() -> None:
    case = case_of("fp32", profile="pi5", cores=4)
    environment = {"OMP_NUM_THREADS": "4", "OPENBLAS_NUM_THREADS": "1"}
    pools = [dict(pool) for pool in TORCH_210_AARCH64_POOLS]
    # Before: "OPENBLAS_NUM_THREADS=1 but the openblas pool of .../libopenblas-24fd393f.so.0 runs 4 threads".
    assert problems(case.expect, audit(threadpools=pools, environment=environment, torch_threads=4)) == []
    pools[2]["num_threads"] = 1
    (found,) = problems(case.expect, audit(threadpools=pools, environment=environment, torch_threads=4))
    assert found.startswith("OMP_NUM_THREADS=4")  # "(capped to N CPUs)" on a host with fewer than 4
    assert found.endswith(
        "but the openblas (OpenMP build) pool of /venv/torch/lib/libopenblas-24fd393f.so.0 runs 1 threads")
