"""Per-phase timing of one pipeline call: text encoding, each denoising step, VAE decode.

Hooks are installed once per loaded pipeline and reset before every call, so
figures never carry over between calls. Step times come from the step-end
callback; denoiser calls are counted separately because a scheduler may run the
denoiser more often than it has steps (PNDM with N steps runs the UNet N+1 times).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class CallTimings:
    started: float = 0.0
    text_encoding_s: float = 0.0
    vae_decode_s: float = 0.0
    first_denoise: float | None = None
    step_ends: list[float] = field(default_factory=list)
    denoiser_calls: int = 0
    denoiser_s: float = 0.0

    def summary(self, wall_s: float) -> dict[str, Any]:
        steps: list[float] = []
        previous = self.first_denoise
        for end in self.step_ends:
            steps.append(end - previous if previous is not None else 0.0)
            previous = end
        has_steps = bool(self.step_ends) and self.first_denoise is not None
        denoise_s = self.step_ends[-1] - self.first_denoise if has_steps else 0.0
        accounted = self.text_encoding_s + denoise_s + self.vae_decode_s
        return {
            "wall_s": wall_s,
            "text_encoding_s": self.text_encoding_s,
            "denoise_s": denoise_s,
            "vae_decode_s": self.vae_decode_s,
            "other_s": max(wall_s - accounted, 0.0),
            "step_s": steps,
            "denoiser_calls": self.denoiser_calls,
            "denoiser_s": self.denoiser_s,
        }


class PhaseRecorder:
    """Installs timing hooks on a diffusers pipeline; `instrumented` lists what could be hooked."""

    def __init__(self, pipe: Any, on_step: Callable[[int, int | None, float], None] | None = None) -> None:
        self.pipe = pipe
        self.timings = CallTimings()
        self.instrumented: list[str] = []
        self._on_step = on_step
        self._denoiser_started = 0.0
        self._install()

    def reset(self) -> None:
        self.timings = CallTimings(started=time.perf_counter())

    def _wrap_timed(self, owner: Any, attribute: str, phase: str) -> None:
        original = getattr(owner, attribute)

        @functools.wraps(original)
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                setattr(self.timings, phase, getattr(self.timings, phase) + elapsed)

        setattr(owner, attribute, timed)
        self.instrumented.append(phase)

    def _install(self) -> None:
        pipe = self.pipe
        if hasattr(pipe, "encode_prompt"):
            self._wrap_timed(pipe, "encode_prompt", "text_encoding_s")
        vae = getattr(pipe, "vae", None)
        if vae is not None and hasattr(vae, "decode"):
            self._wrap_timed(vae, "decode", "vae_decode_s")
        # Not `a or b`: a torch.compile'd module refuses the truth test (it has no len()).
        denoiser = getattr(pipe, "unet", None)
        if denoiser is None:
            denoiser = getattr(pipe, "transformer", None)
        if denoiser is not None and hasattr(denoiser, "register_forward_pre_hook"):
            denoiser.register_forward_pre_hook(self._before_denoiser)
            denoiser.register_forward_hook(self._after_denoiser)
            self.instrumented.append("denoiser_calls")

    def _before_denoiser(self, module, args):
        now = time.perf_counter()
        self._denoiser_started = now
        if self.timings.first_denoise is None:
            self.timings.first_denoise = now

    def _after_denoiser(self, module, args, output):
        self.timings.denoiser_calls += 1
        self.timings.denoiser_s += time.perf_counter() - self._denoiser_started

    def step_callback(self, pipe, step: int, timestep, callback_kwargs: dict) -> dict:
        """`callback_on_step_end` for diffusers pipelines: marks where each step ends."""
        now = time.perf_counter()
        previous = self.timings.step_ends[-1] if self.timings.step_ends else self.timings.first_denoise
        self.timings.step_ends.append(now)
        if self._on_step is not None:
            # Steps that really run: PNDM runs one more than it was asked for.
            total = getattr(pipe, "num_timesteps", None)
            self._on_step(step + 1, total, now - previous if previous is not None else 0.0)
        return {}
