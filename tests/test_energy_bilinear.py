"""Cost models fitted on widths (planted coefficients, MAC closed forms) and measurement
(latency statistics, interleaving, RAPL counters on a fake sysfs)."""

import numpy as np
import pytest
import torch
from torch import nn

from lib.energy import (
    EnergyUnavailable,
    bilinear_features,
    compare_cost_models,
    fit_cost_model,
    layer_costs,
    measure_interleaved,
    measure_latency,
    random_widths,
    relative_errors,
    total_macs,
)
from lib.energy.measure import energy_status, measure_energy, rapl_delta_uj, rapl_status
from lib.vision.models import lenet5_like

UPPER = (1, 16, 48, 128, 96, 10)


def _planted(n=200, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    widths = random_widths(UPPER, n, rng)
    a0, a = 0.7, np.array([0.3, 2.0, 0.9, 0.2, 0.05])
    cost = a0 + bilinear_features(widths, UPPER) @ a
    cost = cost * (1 + noise * rng.standard_normal(n))
    return widths, cost, a0, a


def test_random_widths_stay_in_bounds_with_fixed_ends():
    w = random_widths(UPPER, 500, np.random.default_rng(1))
    assert w.shape == (500, 6)
    assert (w[:, 0] == 1).all() and (w[:, -1] == 10).all()
    assert (w[:, 1:-1] >= 1).all() and (w[:, 1:-1] <= np.array(UPPER[1:-1])).all()
    assert w[:, 1].min() == 1 and w[:, 1].max() == 16  # the whole range is drawn


def test_bilinear_fit_recovers_planted_coefficients():
    widths, cost, a0, a = _planted()
    fit = fit_cost_model("bilinear", widths, cost, UPPER)
    np.testing.assert_allclose(fit.intercept, a0, atol=1e-9)
    np.testing.assert_allclose(fit.coef, a, atol=1e-9)
    widths, cost, a0, a = _planted(noise=0.02, seed=3)
    fit = fit_cost_model("bilinear", widths, cost, UPPER)
    np.testing.assert_allclose(fit.coef, a, atol=0.08)
    assert abs(fit.intercept - a0) < 0.03


def test_bilinear_beats_linear_and_mac_models_on_bilinear_data():
    widths, cost, _, _ = _planted(n=300, noise=0.01)
    macs = [float(c.macs) for c in layer_costs(lenet5_like(), torch.zeros(1, 1, 28, 28))]
    out = compare_cost_models(widths, cost, UPPER, layer_macs=macs, seed=0)
    err = {k: float(v.mean()) for k, v in out["errors"].items()}
    assert err["bilinear"] < 0.015 < err["linear"] and err["bilinear"] < err["macs"]
    assert len(out["test"]) == 60 and not set(out["train"]) & set(out["test"])


def test_mac_feature_is_the_mac_count_of_the_network_at_those_widths():
    x1 = torch.zeros(1, 1, 28, 28)
    macs = [float(c.macs) for c in layer_costs(lenet5_like(), x1)]
    widths = random_widths(UPPER, 5, np.random.default_rng(2))
    feat = bilinear_features(widths, UPPER) @ np.array(macs)
    for w, f in zip(widths, feat, strict=True):
        net = lenet5_like(widths=(int(w[1]), int(w[2])), hidden=(int(w[3]), int(w[4])))
        assert total_macs(layer_costs(net, x1)) == pytest.approx(f, rel=1e-12)
    cost = 0.2 + 3e-7 * feat
    fit = fit_cost_model("macs", widths, cost, UPPER, layer_macs=macs)
    assert fit.coef[0] == pytest.approx(3e-7, rel=1e-6) and fit.intercept == pytest.approx(0.2)


def test_torch_prediction_matches_numpy_and_its_gradient_the_closed_form():
    widths, cost, _, a = _planted()
    fit = fit_cost_model("bilinear", widths, cost, UPPER)
    s = torch.tensor([1.0, 10.0, 30.0, 64.0, 50.0, 10.0], dtype=torch.float64,
                     requires_grad=True)
    e = fit.predict_torch(s)
    assert float(e.detach()) == pytest.approx(float(fit.predict(s.detach().numpy())[0]))
    e.backward()
    u = np.array(UPPER, dtype=float)
    x = s.detach().numpy() / u
    # dE/ds_j = (a_j x_{j-1} + a_{j+1} x_{j+1}) / u_j for a hidden width j
    for j in range(1, 5):
        expect = (fit.coef[j - 1] * x[j - 1] + fit.coef[j] * x[j + 1]) / u[j]
        assert float(s.grad[j]) == pytest.approx(expect, rel=1e-9)
    lin = fit_cost_model("linear", widths, cost, UPPER)
    assert float(lin.predict_torch(s.detach())) == pytest.approx(
        float(lin.predict(s.detach().numpy())[0]))


def test_fit_rejects_bad_input():
    widths, cost, _, _ = _planted(n=20)
    with pytest.raises(ValueError, match="shape"):
        fit_cost_model("bilinear", widths[:, 1:], cost, UPPER)
    with pytest.raises(ValueError, match="cannot fit"):
        fit_cost_model("bilinear", widths[:3], cost[:3], UPPER)
    with pytest.raises(ValueError, match="unknown cost model"):
        fit_cost_model("cubic", widths, cost, UPPER)
    with pytest.raises(ValueError, match="layer_macs"):
        fit_cost_model("macs", widths, cost, UPPER)
    assert relative_errors(fit_cost_model("bilinear", widths, cost, UPPER), widths,
                           cost).max() < 1e-9


class Counting(nn.Module):
    def __init__(self, log, name):
        super().__init__()
        self.log, self.name = log, name
        self.lin = nn.Linear(4, 4)

    def forward(self, x):
        self.log.append(self.name)
        return self.lin(x)


def test_interleaved_measurement_times_every_model_every_round_in_shuffled_orders():
    log = []
    models = {n: Counting(log, n) for n in "abc"}
    stats = measure_interleaved(models, torch.zeros(2, 4), rounds=6, number=2, warmup=1, seed=3)
    assert set(stats) == set("abc")
    assert all(len(s.blocks) == 6 and s.number == 2 and s.median_s > 0 for s in stats.values())
    counts = {log.count(n) for n in "abc"}
    assert len(counts) == 1 and counts.pop() >= 1 + 6 * 2  # (Timer adds its own warm-up)
    per_block = (len(log) // 3 - 1) // 6
    timed = log[3:]  # after the warm-ups: one block per model per round
    orders = {"".join(timed[i:i + 3 * per_block:per_block])
              for i in range(0, len(timed), 3 * per_block)}
    assert len(orders) > 1, "the order of the models must change between rounds"


def test_latency_grows_with_width_and_reports_its_spread():
    x = torch.randn(256, 512)
    small = nn.Sequential(nn.Linear(512, 8), nn.ReLU(), nn.Linear(8, 8))
    big = nn.Sequential(nn.Linear(512, 2048), nn.ReLU(), nn.Linear(2048, 2048))
    stats = measure_interleaved({"small": small, "big": big}, x, rounds=5, number=3)
    assert stats["big"].median_s > 5 * stats["small"].median_s  # 600x the MACs
    small.train()
    one = measure_latency(small, x, repeats=4, number=2, warmup=1)
    assert one.iqr_s >= 0 and len(one.blocks) == 4 and one.threads == 1
    assert small.training, "the model's mode is restored after timing"
    with pytest.raises(ValueError, match="repeats"):
        measure_latency(small, x, repeats=0)


def _fake_rapl(root, value=1000, max_range=10_000):
    zone = root / "intel-rapl:0"
    zone.mkdir(parents=True)
    (zone / "name").write_text("package-0\n")
    (zone / "energy_uj").write_text(f"{value}\n")
    (zone / "max_energy_range_uj").write_text(f"{max_range}\n")
    sub = root / "intel-rapl:0:0"  # a subzone is not counted twice
    sub.mkdir()
    (sub / "energy_uj").write_text("5\n")
    return zone


def test_rapl_counters_are_read_with_wraparound(tmp_path):
    zone = _fake_rapl(tmp_path, value=9_000)
    assert rapl_delta_uj(9_000, 500, 10_000) == 1_500
    calls = []

    def work():  # each call "uses" 400 uJ; the counter wraps at 10 000
        calls.append(1)
        v = int((zone / "energy_uj").read_text())
        (zone / "energy_uj").write_text(str((v + 400) % 10_000))

    joules = measure_energy(work, number=5, root=tmp_path)
    assert joules == pytest.approx(400e-6) and len(calls) == 5
    assert rapl_status(tmp_path).available and rapl_status(tmp_path).domains == ["package-0"]


def test_missing_or_unreadable_energy_counters_say_why(tmp_path):
    with pytest.raises(EnergyUnavailable, match="no powercap sysfs"):
        measure_energy(lambda: None, root=tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EnergyUnavailable, match="no intel-rapl"):
        measure_energy(lambda: None, root=tmp_path / "empty")
    zone = _fake_rapl(tmp_path / "bad")
    (zone / "energy_uj").write_text("not a number")
    status = rapl_status(tmp_path / "bad")
    assert not status.available and "energy_uj" in status.message
    here = energy_status("cpu")
    assert isinstance(here.available, bool) and here.message


def test_timing_imports_torch_benchmark_without_the_no_cuda_runtime_warning():
    # torch.utils.benchmark imports cpp_extension, which warns on stderr when a CPU-only
    # torch finds nvcc; measure.py drops that one record (a fresh process: imports once)
    import subprocess
    import sys

    code = ("import torch; from lib.energy.measure import measure_latency; "
            "measure_latency(torch.nn.Linear(2, 2), torch.randn(1, 2), repeats=1, number=1)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert "No CUDA runtime" not in run.stderr, run.stderr
