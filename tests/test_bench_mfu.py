"""bench/mfu.py: the verdict line of the MFU bars, the interference measure and the shape ceiling."""
from __future__ import annotations

import torch

from bench.mfu import (OtherLoad, PeakSamples, by_machine, by_machine_lines, ceiling_entry, machine, machine_label,
                       mfu_entry, mfu_line, percent, shape_ceiling, streamed_ceiling, train_flops)


def test_the_verdict_says_when_other_work_spoils_it():
    entry = mfu_entry(flops=60e9, seconds=1.0, peak=100e9, bar=0.65)
    assert entry["mfu"] == 0.6 and not entry["meets_bar"]
    quiet = mfu_line("eval", entry, others=0.02)
    assert "**60% MFU** (BELOW the 65% bar)" in quiet and "Other processes used 0.02 cores" in quiet
    assert "Not a verdict" in mfu_line("eval", entry, others=0.8)
    shaped = mfu_line("eval", dict(entry, ceiling_tokens=256, ceiling_fraction_of_peak=0.8))
    assert "run at 80% of the peak: ours reaches 75% of what its shapes allow" in shaped
    streamed = mfu_line("eval", dict(entry, streamed_fraction_of_peak=0.75))
    assert "each read once, as a forward reads them), run at 75% of the peak: ours reaches 80% of that" in streamed


def test_training_flops_count_the_trained_weights_three_times_more():
    assert train_flops(100, 0, 10) == 4 * 100 * 10
    assert train_flops(100, 5, 10) == (4 * 100 + 6 * 5) * 10


def test_shape_ceiling_and_peak_samples_are_measured_here():
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 64))
    assert shape_ceiling(model, tokens=32, repeats=2) > 0
    entry = ceiling_entry(model, 32)
    assert entry["ceiling_tokens"] == 32 and entry["ceiling_fraction_of_peak"] > 0
    assert streamed_ceiling(model, tokens=32, repeats=2) > 0 and entry["streamed_fraction_of_peak"] > 0
    assert streamed_ceiling(torch.nn.ReLU(), tokens=32) == 0.0              # nothing to multiply
    peaks = PeakSamples()
    peaks.sample()
    peaks.sample()
    assert len(peaks.values) == 2 and min(peaks.values) <= peaks.median <= max(peaks.values)


def test_other_load_counts_cores_never_below_zero():
    load = OtherLoad()
    sum(i * i for i in range(200_000))    # our own work is not counted as others'
    assert load.stop() >= 0 and load.cores is not None


def test_a_figure_just_under_the_bar_never_reads_as_the_bar():
    assert percent(0.549, 0.55) == "54.9%" and percent(0.64, 0.65) == "64%" and percent(0.551, 0.55) == "55.1%"
    assert percent(0.6496, 0.65) == "64.96%" and percent(0.65, 0.65) == "65%"
    assert "**54.9% MFU** (BELOW the 55% bar)" in mfu_line("lora", mfu_entry(54.9e9, 1.0, 100e9, 0.55))


def test_figures_are_kept_per_machine_and_a_rerun_elsewhere_keeps_the_first_machines():
    here = machine()
    assert here["cores"] and here["simd"] in ("AMX", "AVX-512", "AVX2", "no AVX2", "unknown")
    assert isinstance(here["bf16_units"], bool) and machine_label(here).endswith(f"{here['cores']} cores")
    other = {"mfu_by_machine": {"Intel, AMX, bf16 units, 2 cores": {
        "date": "2026-12-01", "commit": "abc1234", "machine": {},
        "figures": {"zero-shot eval": {"mfu": 0.64, "peak_gflops": 253.0, "bar": 0.65, "meets_bar": False}}}}}
    table = by_machine(other, {"zero-shot eval": mfu_entry(73e9, 1.0, 100e9, 0.65)})
    assert set(table) == {"Intel, AMX, bf16 units, 2 cores", machine_label(here)}
    mine = table[machine_label(here)]
    assert mine["figures"]["zero-shot eval"]["mfu"] == 0.73 and mine["figures"]["zero-shot eval"]["meets_bar"]
    lines = by_machine_lines(table)
    assert any("| 64% | 253 | BELOW 65% |" in line for line in lines)
    assert any(line.startswith(f"| {machine_label(here)} |") and "| 73% | 100 | meets 65% |" in line for line in lines)
    again = by_machine({"mfu_by_machine": table}, {"zero-shot eval": mfu_entry(70e9, 1.0, 100e9, 0.65)})
    assert len(again) == 2 and again[machine_label(here)]["figures"]["zero-shot eval"]["mfu"] == 0.7
