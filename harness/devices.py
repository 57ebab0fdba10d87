"""Devices per runtime: is there a GPU, wait for it, CPU threads, and what the machine is.

A runtime is the framework that executes a backend's model (torch, tensorflow, jax, onnxruntime);
Keras 3 runs on one of the first three. Keying these probes by runtime, not by backend, means a new
backend on a known runtime gets its GPU probe, device synchronization and thread control for free.

Only "cpu" and "cuda" are device names here (the harness's --device values).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from typing import Any, Callable

DEVICES = ("cpu", "cuda")


def check_device(device: str) -> str:
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    return device


# Is a CUDA device usable from this runtime? ----------------------------------------------------
def _torch_cuda() -> str | None:
    import torch

    if torch.cuda.is_available():
        return None
    build = torch.version.cuda or "none (a CPU-only build)"
    return f"no CUDA device visible to torch {torch.__version__} (its CUDA: {build})"


def _tf_cuda() -> str | None:
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return None
    return (f"no GPU visible to TensorFlow {tf.__version__} (built with CUDA: {tf.test.is_built_with_cuda()}; "
            "tensorflow-cpu never has one)")


def _jax_cuda() -> str | None:
    import jax

    try:
        if jax.devices("gpu"):
            return None
    except RuntimeError:
        pass
    return f"no GPU visible to jax {jax.__version__} (default backend: {jax.default_backend()})"


def _ort_cuda() -> str | None:
    import onnxruntime as ort

    providers = ort.get_available_providers()
    if "CUDAExecutionProvider" in providers:
        return None
    return f"onnxruntime {ort.__version__} has no CUDAExecutionProvider (providers: {', '.join(providers)})"


_CUDA_PROBES: dict[str, Callable[[], str | None]] = {
    "torch": _torch_cuda, "tensorflow": _tf_cuda, "jax": _jax_cuda, "onnxruntime": _ort_cuda,
}


def missing(runtime: str, device: str) -> str | None:
    """None if `device` is usable from `runtime`, else why not (the reason of a 'skipped')."""
    if check_device(device) == "cpu":
        return None
    probe = _CUDA_PROBES.get(runtime)
    if probe is None:
        return f"{runtime} has no {device} path"
    return probe()


# Wait for the device: a host timer around a call measures the work only if the call waits. -------
def synchronize(runtime: str, device: str, outputs: Any = None) -> None:
    """Return only when the work that produced `outputs` on `device` has finished."""
    if runtime == "jax":
        import jax

        jax.block_until_ready(outputs)  # jax is asynchronous on every device, CPU included
    elif device == "cpu":
        return  # torch and TensorFlow run CPU ops synchronously; ONNX Runtime's run() always waits
    elif runtime == "torch":
        import torch

        torch.cuda.synchronize()
    elif runtime == "tensorflow":
        import tensorflow as tf

        tf.test.experimental.sync_devices()


# CPU threads: set once per process, recorded with every benchmark. -----------------------------
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")


def process_env(threads: int) -> dict[str, str]:
    """Environment for a fresh benchmark process: every runtime's CPU pools start with `threads`
    threads, and no runtime takes the whole GPU at start-up (TensorFlow and jax do by default), so
    torch, which measures the GEMM peak and the CUDA events, can still allocate beside them."""
    env = {name: str(threads) for name in THREAD_ENV}
    env["TF_NUM_INTEROP_THREADS"] = "1"
    env["TF_FORCE_GPU_ALLOW_GROWTH"] = "true"
    env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    # jax: not set. XLA's CPU backend sizes its pool from the cores and has no documented flag for
    # it; its setting is recorded as not controlled (set_threads below).
    return env


def set_threads(runtime: str, threads: int) -> dict[str, str]:
    """Set `runtime`'s CPU thread pools to `threads` where it still can; return what is in force."""
    if runtime == "torch":
        import torch

        torch.set_num_threads(threads)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:
            pass  # fixed once parallel work has started; recorded below as it is
        return {"torch.num_threads": str(torch.get_num_threads()),
                "torch.num_interop_threads": str(torch.get_num_interop_threads())}
    if runtime == "tensorflow":
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:
            pass  # TensorFlow's context is initialized: only the environment could set it
        intra = tf.config.threading.get_intra_op_parallelism_threads()
        return {"tf.intra_op_threads": str(intra or os.environ.get("TF_NUM_INTRAOP_THREADS", "0 (all cores)")),
                "tf.inter_op_threads": str(tf.config.threading.get_inter_op_parallelism_threads())}
    if runtime == "jax":
        return {"jax.threads": f"not controlled (XLA uses every core: {os.cpu_count()})"}
    # numpy-based runtimes (the oracle, onnx.reference): their BLAS pool follows the environment.
    return {"threads": "not set in-process; BLAS follows " + ", ".join(
        f"{name}={os.environ.get(name, '(unset)')}" for name in THREAD_ENV[:3])}


# What the machine is (for the benchmark JSON). -----------------------------------------------
def nvidia_smi() -> dict[str, str]:
    """Driver version and GPU as nvidia-smi reports them ({} where there is no nvidia-smi)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return {}
    fields = "name,driver_version,memory.total,clocks.max.sm,power.limit"
    try:
        out = subprocess.run([exe, f"--query-gpu={fields}", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20, check=True).stdout.strip().splitlines()
    except (OSError, subprocess.SubprocessError) as exc:
        return {"nvidia-smi": f"failed: {exc}"}
    return {f"gpu{i}": line for i, line in enumerate(out)} | {"nvidia-smi fields": fields}


def cuda_info() -> dict[str, str]:
    """GPU, compute capability, CUDA and cuDNN versions as torch sees them, plus the driver."""
    info: dict[str, str] = {}
    if "torch" in sys.modules or _importable("torch"):
        import torch

        info["torch.version.cuda"] = str(torch.version.cuda)
        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            info["gpu"] = props.name
            info["compute_capability"] = f"{props.major}.{props.minor}"
            info["gpu_memory_gib"] = f"{props.total_memory / 2**30:.1f}"
            info["cudnn"] = str(torch.backends.cudnn.version())
    return info | nvidia_smi()


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


# An independent clock for GPU timings. -----------------------------------------------------
def cuda_event_seconds(call: Callable[[], Any], rounds: int) -> list[float]:
    """Seconds per call() measured with CUDA events on torch's current stream.

    For torch the events bracket the kernels on the stream they run on: an independent measurement
    of the device time. For another runtime (its own streams) they bracket a call that itself waits
    for the device, so they time the same interval on the GPU's clock, not the kernels alone.
    """
    import torch

    times = []
    for _ in range(rounds):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        call()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return times


def host_seconds(call: Callable[[], Any], rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return times
