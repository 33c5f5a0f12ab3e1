"""benchmarks/fig3.py without training: the planned points, the scaled schedule, resume from the
cached results, and a diverged run recorded as such (never a NaN in a mean)."""
import json
import os
import sys
from types import SimpleNamespace

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import fig3  # noqa: E402

# fast-reid's own message, as its trainer raises it (checked against the real trainer below)
NAN_LOG = ("[11/25 06:00:00 fastreid.engine.train_loop]: Exception during training:\n"
           "Traceback (most recent call last):\n"
           "FloatingPointError: Loss became infinite or NaN at iteration={}!\n"
           "loss_dict = {{'loss_cls': nan}}\n")


def _value(opts, key):
    return opts[opts.index(key) + 1]


def test_plan_covers_the_paper_grids_with_rgm_only_except_m_u():
    runs = fig3.plan(list(fig3.SWEEPS), [0, 1], "/o", ["SOLVER.MAX_EPOCH", "3"],
                     bags_percent=40, mu_opts=["MODEL.X", "1"])
    assert len(runs) == (4 + 6 + 4 + 5) * 2
    by = {(r["sweep"], r["value"], r["seed"]): r for r in runs}
    n2 = by[("N", 2, 0)]["opts"]
    assert eval(_value(n2, "MODEL.RGANET.CLASS_NAMES")) == ["upper body", "lower body"]
    assert _value(n2, "DATASETS.SYNTHETIC.BAGS_PERCENT") == "40"
    assert eval(_value(by[("N", 5, 1)]["opts"], "MODEL.RGANET.CLASS_NAMES"))[-1] == "bags"
    for key in (("gamma", 100, 0), ("K", 16, 1), ("N", 3, 0)):
        opts = by[key]["opts"]
        assert _value(opts, "MODEL.RGANET.RAM.DAI") == "False"
        assert _value(opts, "MODEL.RGANET.RAM.IAI") == "False"
        assert "MODEL.X" not in opts and _value(opts, "SOLVER.MAX_EPOCH") == "3"
    assert _value(by[("gamma", 100, 0)]["opts"], "MODEL.RGANET.GAMMA") == "100.0"
    assert _value(by[("K", 16, 1)]["opts"], "MODEL.RGANET.PROMPT.N_CTX") == "16"
    mu = by[("m_u", 0.7, 1)]
    assert "MODEL.RGANET.RAM.DAI" not in mu["opts"]  # RGM + RAM
    assert _value(mu["opts"], "MODEL.RGANET.MEMORY.MOMENTUM") == "0.7"
    assert _value(mu["opts"], "MODEL.X") == "1"
    assert mu["dir"] == os.path.join("/o", "m_u_0.7", "seed1")


def test_schedule_scales_with_the_epochs():
    base = SimpleNamespace(SOLVER=SimpleNamespace(MAX_EPOCH=60, STEPS=[40, 52], WARMUP_ITERS=30),
                           PROMPT_STAGE=SimpleNamespace(MAX_EPOCH=20))
    o = fig3.schedule_overrides(12, base)
    assert _value(o, "SOLVER.MAX_EPOCH") == "12"
    assert eval(_value(o, "SOLVER.STEPS")) == [8, 10]  # 40/5, 52/5 = 10.4
    assert _value(o, "SOLVER.WARMUP_ITERS") == "6"
    assert _value(o, "PROMPT_STAGE.MAX_EPOCH") == "4"
    assert fig3.schedule_overrides(None, base) == []


def test_the_real_trainer_message_is_recognised(tmp_path):
    """fast-reid's SimpleTrainer on a loss that is NaN: its error is what divergence() parses."""
    from fastreid.engine.train_loop import SimpleTrainer

    class NaNLoss(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(1))

        def forward(self, batch):
            return {"loss_cls": self.w * float("nan")}

    model = NaNLoss()
    trainer = SimpleTrainer(model, [{}] * 4, torch.optim.SGD(model.parameters(), lr=0.1), None)
    with pytest.raises(FloatingPointError) as e:
        trainer.train(0, 1, 4)
    (tmp_path / "prompt_stage").mkdir()
    (tmp_path / "prompt_stage" / "log.txt").write_text(f"FloatingPointError: {e.value}\n")
    assert fig3.divergence(str(tmp_path)) == {"iter": 0, "stage": "stage 1"}


class FakeTrainer:
    """Stands in for train_config: R1 / mAP from gamma; gamma 100 diverges at iteration 37
    with fast-reid's message in its log, as a real run does."""

    def __init__(self):
        self.calls = []

    def __call__(self, cfg_file, name, seed, out, opts):
        self.calls.append((name, seed))
        g = float(_value(opts, "MODEL.RGANET.GAMMA")) if "MODEL.RGANET.GAMMA" in opts else 20.0
        if g == 100.0:
            with open(os.path.join(out, "log.txt"), "w") as f:
                f.write(NAN_LOG.format(37))
            raise SystemExit(f"{name} seed {seed} failed (exit 1)")
        return {"Rank-1": 50.0 + g / 10 + 10 * seed, "mAP": 40.0 + seed, "Rank-5": 0.0}


def test_sweep_resumes_and_records_divergence(tmp_path, monkeypatch):
    fake = FakeTrainer()
    monkeypatch.setattr(fig3, "train_config", fake)
    out, doc, png = tmp_path / "out", tmp_path / "fig3.md", tmp_path / "img" / "fig3.png"
    doc.write_text("# Fig. 3\n\nhand-written intro\n\n<!-- fig3:begin -->\nold\n<!-- fig3:end -->\n"
                   "\nhand-written discussion\n")
    argv = ["--sweeps", "gamma", "--seeds", "0", "1", "--epochs", "6", "--out", str(out),
            "--doc", str(doc), "--plot", str(png)]
    assert fig3.main(argv) == 0
    assert len(fake.calls) == 12  # 6 gammas x 2 seeds
    div = json.loads((out / "gamma_100" / "seed1" / "result.json").read_text())
    assert div["status"] == "diverged" and div["iter"] == 37 and div["stage"] == "stage 2"
    text = doc.read_text()
    assert "hand-written intro" in text and "hand-written discussion" in text and "old" not in text
    # gamma 20: R1 (52, 62) -> 57.0 ± 7.1; mAP (40, 41) -> 40.5 ± 0.7
    assert "| 20 | 57.0 ± 7.1 | 40.5 ± 0.7 | 2/2 |" in text
    assert "seed 0 diverged (loss NaN at iter 37, stage 2)" in text
    assert "nan" not in text.lower().replace("loss nan", "")
    assert png.stat().st_size > 5000 and (out / "fig3.png").is_file()
    # resume: nothing trains again; a changed override retrains only what it changes
    assert fig3.main(argv) == 0
    assert len(fake.calls) == 12
    assert fig3.main(argv + ["MODEL.RGANET.MEMORY.ALPHA_THRESH", "0.8"]) == 0
    assert len(fake.calls) == 24
    # --report-only trains nothing and names the runs it lacks
    assert fig3.main(argv + ["--seeds", "0", "1", "2", "--report-only",
                             "MODEL.RGANET.MEMORY.ALPHA_THRESH", "0.8"]) == 0
    assert len(fake.calls) == 24
    assert "| 20 | 57.0 ± 7.1 | 40.5 ± 0.7 | 2/3 | seed 2 not run |" in doc.read_text()


def test_failed_runs_are_reported_and_retried(tmp_path, monkeypatch):
    def broken(cfg_file, name, seed, out, opts):
        with open(os.path.join(out, "log.txt"), "w") as f:
            f.write("Traceback\nRuntimeError: out of memory\n")
        raise SystemExit("failed (exit 1)")

    run = fig3.plan(["K"], [0], str(tmp_path), [])[0]
    res = fig3.execute(run, trainer=broken)
    assert res["status"] == "failed" and res["error"] == "RuntimeError: out of memory"
    assert not os.path.exists(os.path.join(run["dir"], "result.json"))  # retried next time
    assert "seed 0 failed: RuntimeError: out of memory" in fig3.describe([res])["notes"]


def test_n5_without_bags_says_so(tmp_path, monkeypatch):
    fake = FakeTrainer()
    monkeypatch.setattr(fig3, "train_config", fake)
    monkeypatch.setattr(fig3, "bags_available", lambda: "the generator draws no bags yet")
    assert fig3.main(["--sweeps", "N", "--quick", "--out", str(tmp_path)]) == 0
    assert len(fake.calls) == 3  # N = 2, 3, 4
    text = (tmp_path / "fig3.md").read_text()
    assert "| 5 | the generator draws no bags yet | — | 0/1 |" in text
    assert "| 2 | 52.0 | 40.0 | 1/1 |" in text  # one seed: no ± 0.0


def test_unknown_override_fails_before_training(tmp_path, monkeypatch):
    from rganet_plugin.config.setup import ConfigError

    fake = FakeTrainer()
    monkeypatch.setattr(fig3, "train_config", fake)
    with pytest.raises(ConfigError, match="MODEL.RGANET.GAMA"):
        fig3.main(["--sweeps", "K", "--out", str(tmp_path), "MODEL.RGANET.GAMA", "3"])
    assert fake.calls == []


def test_m_u_points_say_when_the_bank_never_moved(tmp_path, monkeypatch):
    """m_u acts only through memory-bank updates; a run whose alpha filter never fired gets a
    note instead of a flat curve that looks like a finding."""
    def trainer(cfg_file, name, seed, out, opts):
        m = float(_value(opts, "MODEL.RGANET.MEMORY.MOMENTUM"))
        with open(os.path.join(out, "memory_bank.jsonl"), "w") as f:
            for epoch in range(2):  # m_u 0.9 runs select 3 + 5 regions, the others none
                sel = [0, 3, 0, 0] if epoch == 0 else [1, 0, 4, 0]
                f.write(json.dumps({"epoch": epoch, "selected": sel if m == 0.9 else [0] * 4}) + "\n")
        return {"Rank-1": 60.0, "mAP": 50.0}

    monkeypatch.setattr(fig3, "train_config", trainer)
    assert fig3.main(["--sweeps", "m_u", "--seeds", "0", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "fig3.md").read_text()
    assert "| 0.1 | 60.0 | 50.0 | 1/1 | memory bank never updated" in text
    assert "| 0.9 | 60.0 | 50.0 | 1/1 | bank updates per run: 8 |" in text
