"""Speed of the speech stack on this machine: real-time factor of each decoder, training
step time, and the algorithmic latency of the streaming Emformer.

    python benchmarks/asr_streaming.py --scale tutorial --utterances 50

Uses the shared dense model (``lib.asr.dense_asr``; trained and cached on first use).
Times are wall-clock on whatever else the machine is running: upper bounds on a shared CPU.
"""

from __future__ import annotations

import argparse
import time

import torch

from lib.asr import (
    DENSE_RECIPES,
    BucketBatches,
    dense_asr,
    load_data,
    make_specaugment,
    real_time_factor,
    transcribe,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", default="tutorial", choices=["smoke", "tutorial"])
    parser.add_argument("--utterances", type=int, default=50)
    parser.add_argument("--train-steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model, tok, artifact = dense_asr(args.scale)
    sets, _ = load_data(DENSE_RECIPES[args.scale], tokenizer=tok)
    probe = sets["test"].subset(range(min(args.utterances, len(sets["test"]))))
    audio_s = sum(probe.lengths()) / 100
    print(f"scale {args.scale}: {len(probe)} test utterances, {audio_s:.1f} s of audio, "
          f"{torch.get_num_threads()} torch threads")
    print(f"algorithmic latency (segment + right context): "
          f"{model.config.algorithmic_latency_ms():.0f} ms")
    for method in ("stream_greedy", "greedy"):
        rtf = real_time_factor(model, probe.batches(16), method=method)
        print(f"RTF {method:>14} (one utterance at a time): {rtf['rtf']:.4f}")
    for method, batch_size in (("greedy", 64), ("beam", 1), ("stream_beam", 1)):
        t0 = time.perf_counter()
        transcribe(model, probe, tok, method=method, batch_size=batch_size, beam_width=4)
        seconds = time.perf_counter() - t0
        print(f"RTF {method:>14} (batch {batch_size:>2}, beam 4): {seconds / audio_s:.4f}")
    model.train()
    model.specaugment = make_specaugment(DENSE_RECIPES[args.scale].train)
    batches = BucketBatches(sets["train"].lengths(), 16, seed=0)
    times = []
    for step in range(args.train_steps):
        batch = sets["train"].batch(batches.indices(step))
        t0 = time.perf_counter()
        model(batch).backward()
        times.append(time.perf_counter() - t0)
    times.sort()
    print(f"training step (batch 16, forward + backward): median {times[len(times) // 2]:.3f} s, "
          f"min {times[0]:.3f} s over {len(times)} steps")


if __name__ == "__main__":
    main()
