"""Notebook 06's question: does a generation in this process take as long as the same one through the
local endpoint? Side by side in one run, on the offline model, with the product's own paths.

- in-process: `generate_here` on a generator loaded here (what notebook 06 runs: the
  generation runs on a worker thread, as in the endpoint);
- main thread: `generator.generate` called on this process's main thread (what 06 did before);
- endpoint: `AudioClient.generate` against a server started by `LocalDeployment.serve` (what
  notebooks 02-05 use), reporting its wall time and the server's own generation seconds;
- both at once: the in-process run while the endpoint is busy with the same request, as when a
  learner runs 06 while another kernel (a sweep in 05, say) is generating.

Rounds alternate which side goes first, after one untimed warm-up each. Both sides use PyTorch's
default thread count (one per core). Run: python bench/inprocess_vs_endpoint.py [--rounds 3] [--steps 200]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=200)
    arguments = parser.parse_args()
    os.environ["FLEXAUDIO_STATE_DIR"] = tempfile.mkdtemp(prefix="flexaudio-bench-")
    os.environ.pop("INFERENCE_URL", None)

    from flexaudio_helpers import generate_here, tour
    from flexaudio_helpers.deploy import LocalDeployment
    from flexaudio_helpers.serving.pipeline import load_generator

    request = tour.SEED_EXAMPLES[0].request.with_parameters(num_inference_steps=arguments.steps)
    deployment = LocalDeployment(model="offline", echo=False)
    deployment.serve("bench")
    client = deployment.wait_until_ready("bench").client()
    generator = load_generator("offline", device="cpu")
    print(f"{os.cpu_count()} cores; torch uses {torch.get_num_threads()} threads here (the server: the same)")

    def here() -> float:
        return generate_here(generator, request).timings["request"]

    def main_thread() -> float:
        started = time.perf_counter()
        generator.generate(request)
        return time.perf_counter() - started

    def there() -> tuple[float, float]:
        clip = client.generate(request)
        return clip.timings["request"], clip.timings.get("generation", float("nan"))

    try:
        here(), there()  # warm-up: first-call allocations on both sides
        in_process, on_main, endpoint_wall, endpoint_generation, contended = [], [], [], [], []
        for round_number in range(arguments.rounds):
            order = (False, True) if round_number % 2 == 0 else (True, False)
            for endpoint_first in order:
                if endpoint_first:
                    wall, generation = there()
                    endpoint_wall.append(wall)
                    endpoint_generation.append(generation)
                else:
                    in_process.append(here())
                    on_main.append(main_thread())
            busy = threading.Thread(target=there)
            busy.start()
            time.sleep(0.5)  # the endpoint is generating now
            contended.append(here())
            busy.join()
    finally:
        deployment.stop("bench")

    def median(values: list[float]) -> float:
        return statistics.median(values)

    print(
        f"{arguments.steps} steps, {request.parameters.audio_end_in_s:g} s clip, "
        f"{arguments.rounds} rounds (median seconds)"
    )
    print(f"  in-process (notebook 06)       {median(in_process):7.2f}")
    print(f"  in-process on the main thread  {median(on_main):7.2f}")
    print(
        f"  endpoint wall (notebook 04)    {median(endpoint_wall):7.2f}   "
        f"(server's own generation {median(endpoint_generation):.2f})"
    )
    print(f"  in-process, endpoint busy      {median(contended):7.2f}")
    print(f"  ratio endpoint / in-process    {median(endpoint_wall) / median(in_process):7.2f}")
    print(f"  ratio busy / alone             {median(contended) / median(in_process):7.2f}")
    print(f"  ratio main thread / worker     {median(on_main) / median(in_process):7.2f}")


if __name__ == "__main__":
    main()
