"""Faults a new user meets (docs/reliability.md, "Stopping, resuming, disks and messages"):
Ctrl-C / SIGTERM, --resume of a finished run, a full disk under a checkpoint, images of any mode,
one `error:` line per user error, flags after the overrides, the quiet console, `compare` stopped
or asked for a report it cannot make."""
import errno
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(ROOT, "configs", "Demo", "rganet_demo.yml")
TRAIN_NET = os.path.join(ROOT, "projects", "RGANet", "train_net.py")
# 8 identities x 4 images, batch 16: 2 iterations per epoch
SMALL = ["DATASETS.SYNTHETIC.NUM_TRAIN_IDS", "8", "DATASETS.SYNTHETIC.NUM_TEST_IDS", "4",
         "DATASETS.SYNTHETIC.IMAGES_PER_ID", "4", "DATALOADER.NUM_WORKERS", "0",
         "SOLVER.IMS_PER_BATCH", "16", "SOLVER.STEPS", "[]", "SOLVER.WARMUP_ITERS", "0",
         "INPUT.SIZE_TRAIN", "[128, 64]", "INPUT.SIZE_TEST", "[128, 64]"]


def opts_for(tmp_path, *extra):
    return ["DATASETS.ROOT", str(tmp_path / "data"), "OUTPUT_DIR", str(tmp_path / "out"),
            *SMALL, *extra]


def env(**kw):
    e = dict(os.environ, CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1",
             PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    e.pop("RGANET_VERBOSE", None)
    e.pop("RGANET_TRACEBACK", None)
    e.update(kw)
    return e


def start(tmp_path, args, log):
    return subprocess.Popen([sys.executable, TRAIN_NET, "--config-file", DEMO, *args], cwd=ROOT,
                            stdout=log, stderr=subprocess.STDOUT, env=env(),
                            start_new_session=True)  # a process group, as in a terminal


def wait_for(path, text, proc, timeout=300):
    for _ in range(int(timeout * 10)):
        if text in path.read_text():
            return
        assert proc.poll() is None, path.read_text()[-3000:]
        time.sleep(0.1)
    proc.kill()
    pytest.fail(f"never saw {text!r}")


def interrupted(tmp_path, args, wait_text, sig, code):
    """Start train_net with ``args``, send ``sig`` to its process group (data-loader workers
    included, as a terminal's Ctrl-C does) once ``wait_text`` is printed; its output."""
    log = tmp_path / f"{signal.Signals(sig).name}.txt"
    with open(log, "w") as f:
        proc = start(tmp_path, args, f)
        wait_for(log, wait_text, proc)
        os.killpg(proc.pid, sig)
        assert proc.wait(timeout=120) == code
    return log.read_text()


def warning_lines(text):
    return [line for line in text.splitlines() if "warn" in line.lower()]


# ---------------------------------------------------------------------------- Ctrl-C and --resume
def results_line(text):
    return [line for line in text.splitlines() if line.startswith("| SyntheticOccludedDuke")]


def test_ctrl_c_writes_a_checkpoint_resume_goes_on_and_a_finished_run_evaluates(tmp_path):
    """SIGINT in stage 2: the iteration finishes, model_interrupted.pth is written, one line
    names the --resume command, exit 130. The same command with --resume (here written after
    the overrides) finishes with the very weights and metrics of an uninterrupted run; --resume
    once more evaluates the finished run and exits 0 (fast-reid's EvalHook failed with `no
    attribute 'epoch'`). The console stays quiet throughout."""
    # 8 identities x 4 images, batch 8: 4 iterations per epoch; a data-loader worker
    common = ["DATASETS.ROOT", str(tmp_path / "data"), *SMALL, "SOLVER.IMS_PER_BATCH", "8",
              "DATALOADER.NUM_WORKERS", "1",
              "PROMPT_STAGE.MAX_EPOCH", "1", "SOLVER.MAX_EPOCH", "12", "TEST.EVAL_PERIOD", "12",
              "SOLVER.CHECKPOINT_PERIOD", "12"]
    whole = subprocess.run([sys.executable, TRAIN_NET, "--config-file", DEMO, *common,
                            "OUTPUT_DIR", str(tmp_path / "whole")], cwd=ROOT, capture_output=True,
                           text=True, env=env(), timeout=600)
    assert whole.returncode == 0, whole.stderr[-3000:]

    args = [*common, "OUTPUT_DIR", str(tmp_path / "out")]
    first = interrupted(tmp_path, args, "]: epoch 2/12", signal.SIGINT, 130)
    assert "Traceback" not in first and "KeyboardInterrupt" not in first
    stop = [line for line in first.splitlines() if line.startswith("stopped (SIGINT)")]
    assert len(stop) == 1 and stop[0].endswith("--resume"), first[-2000:]
    out = tmp_path / "out"
    assert f"checkpoint written to {out / 'model_interrupted.pth'}" in stop[0]
    assert (out / "last_checkpoint").read_text() == "model_interrupted.pth"
    ckpt = torch.load(out / "model_interrupted.pth", weights_only=False)
    assert 8 <= ckpt["iteration"] < 48 and "optimizer" in ckpt and "rng" in ckpt
    # quiet: the pointer to the log, one line per epoch, no warning, no environment dump/model
    assert f"details in {out / 'log.txt'}" in first
    assert "]: stage 1 epoch 1/1  loss" in first and "]: epoch 1/12  loss" in first
    assert not warning_lines(first), warning_lines(first)
    assert "Environment info" not in first and "RGANet(" not in first
    assert "Environment info" in (out / "log.txt").read_text()

    r = subprocess.run([sys.executable, TRAIN_NET, "--config-file", DEMO, *args, "--resume"],
                       cwd=ROOT, capture_output=True, text=True, env=env(), timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    text = r.stdout + r.stderr
    assert "Stage 1 (prompt learning) already done" in text and "]: epoch 12/12" in text
    assert f"Resuming after iteration {ckpt['iteration']}" in text
    assert not warning_lines(text), text[-3000:]
    # the same run as the uninterrupted one: same weights, same metrics
    a = torch.load(tmp_path / "whole" / "model_final.pth", weights_only=False)["model"]
    b = torch.load(out / "model_final.pth", weights_only=False)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert results_line(text) == results_line(whole.stdout) != []

    r = subprocess.run([sys.executable, TRAIN_NET, "--config-file", DEMO, *args, "--resume"],
                       cwd=ROOT, capture_output=True, text=True, env=env(), timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "This run already finished (12 of 12 epochs" in r.stdout
    assert results_line(r.stdout) == results_line(whole.stdout)
    assert "Traceback" not in r.stderr


def test_sigterm_in_stage_1_stops_with_a_checkpoint(tmp_path):
    args = opts_for(tmp_path, "PROMPT_STAGE.MAX_EPOCH", "40", "SOLVER.MAX_EPOCH", "1")
    text = interrupted(tmp_path, args, "]: stage 1 epoch 1/40", signal.SIGTERM, 143)
    assert "stopped (SIGTERM)" in text and "Traceback" not in text
    stage1 = tmp_path / "out" / "prompt_stage"
    assert (stage1 / "last_checkpoint").read_text() == "model_interrupted.pth"
    assert torch.load(stage1 / "model_interrupted.pth", weights_only=False)["epoch"] >= 0


# ---------------------------------------------------------------------------- checkpoints
def tiny_checkpointer(tmp_path, n=256):
    from rganet_plugin.engine.checkpoint import ModelCheckpointer

    model = torch.nn.Linear(n, n)
    return model, ModelCheckpointer(model, str(tmp_path), strict=True)


def test_a_full_disk_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    """The write fails with ENOSPC (a fake writer): the error names the file and the cause; the
    previous model_final.pth and last_checkpoint are untouched, no temporary file is left."""
    from rganet_plugin.engine import checkpoint as ck

    model, saver = tiny_checkpointer(tmp_path)
    saver.save("model_final", epoch=0)
    before = (tmp_path / "model_final.pth").read_bytes()
    with torch.no_grad():
        model.weight.add_(1.0)

    class Full:
        def __init__(self, path, mode):
            self.f = open(path, mode)

        def write(self, data):
            self.f.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    monkeypatch.setattr(ck, "open", Full, raising=False)
    with pytest.raises(ck.CheckpointWriteError) as err:
        saver.save("model_final", epoch=1)
    msg = str(err.value)
    assert str(tmp_path / "model_final.pth") in msg and "the disk is full" in msg
    assert "the previous file is unchanged" in msg
    assert (tmp_path / "model_final.pth").read_bytes() == before
    assert (tmp_path / "last_checkpoint").read_text() == "model_final.pth"
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_final.pth"]


FSIZE = """
import resource, signal, sys, torch
sys.path.insert(0, {root!r})
import rganet_plugin
from rganet_plugin.engine.checkpoint import ModelCheckpointer, CheckpointWriteError
saver = ModelCheckpointer(torch.nn.Linear(256, 256), ".", strict=True)
saver.save("model_best", epoch=0)            # 257 KiB, under no limit
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write over the limit fails instead of killing
resource.setrlimit(resource.RLIMIT_FSIZE, (100 * 1024, 100 * 1024))
saver.model = torch.nn.Linear(512, 512)       # 1 MiB: over the limit
try:
    saver.save("model_best", epoch=1)
except CheckpointWriteError as e:
    print("ERROR", e)
"""


def test_a_file_size_limit_is_named_and_the_old_checkpoint_loads(tmp_path):
    script = tmp_path / "fsize.py"
    script.write_text(FSIZE.format(root=ROOT))
    r = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                       text=True, env=env(), timeout=300)
    assert "ERROR cannot write ./model_best.pth: the file is larger than the file-size limit" \
        in r.stdout, r.stderr[-2000:]
    state = torch.load(tmp_path / "model_best.pth", weights_only=False)
    assert state["epoch"] == 0 and state["model"]["weight"].shape == (256, 256)
    assert not [p for p in os.listdir(tmp_path) if ".tmp-" in p]


def test_a_checkpoint_write_that_fails_in_training_is_one_error_line(tmp_path, monkeypatch, capsys):
    from rganet_plugin.engine import checkpoint as ck
    from rganet_plugin.tools.train import main

    def full(path, data):
        raise ck.CheckpointWriteError(f"cannot write {path}: the disk is full")

    monkeypatch.setattr(ck, "write_atomically", full)
    code = main(["--config-file", DEMO, *opts_for(tmp_path, "PROMPT_STAGE.MAX_EPOCH", "1",
                                                  "SOLVER.MAX_EPOCH", "1")])
    err = capsys.readouterr().err
    assert code == 1
    assert "error: cannot write " in err and "prompt_stage/model_final.pth: the disk is full" in err


# ---------------------------------------------------------------------------- images
def test_images_of_any_mode_are_read_as_rgb(tmp_path):
    """RGBA / palette PNGs, grayscale / CMYK JPEGs in a test set: one batch of RGB tensors."""
    from fastreid.data.build import fast_batch_collator
    from fastreid.data.common import CommDataset
    from fastreid.data.transforms import build_transforms
    from PIL import Image

    from rganet_plugin.config import load_config

    items = []
    for i, (mode, ext) in enumerate([("RGB", "jpg"), ("RGBA", "png"), ("P", "png"),
                                     ("L", "jpg"), ("CMYK", "jpg"), ("LA", "png")]):
        path = str(tmp_path / f"{i}.{ext}")
        Image.new(mode, (64, 128)).save(path)
        items.append((path, i, 0))
    cfg = load_config(DEMO, ["INPUT.SIZE_TEST", "[128, 64]"])
    data = CommDataset(items, build_transforms(cfg, is_train=False), relabel=False)
    batch = fast_batch_collator([data[i] for i in range(len(items))])
    assert tuple(batch["images"].shape) == (6, 3, 128, 64)


# ---------------------------------------------------------------------------- error lines
def run_cli(args, **kw):
    r = subprocess.run([sys.executable, TRAIN_NET, *args], cwd=ROOT, capture_output=True,
                       text=True, env=env(**kw), timeout=600)
    return r.returncode, r.stdout + r.stderr


def test_config_file_errors_are_one_line(tmp_path):
    """A YAML syntax error and a missing _BASE_ (raw yaml / FileNotFoundError tracebacks before);
    RGANET_TRACEBACK=1 shows the traceback as well."""
    bad = tmp_path / "bad.yml"
    bad.write_text("_BASE_: " + DEMO + "\nSOLVER:\n  BASE_LR: [0.1\n")
    code, text = run_cli(["--config-file", str(bad)])
    assert code == 2 and "Traceback" not in text
    assert text.strip().splitlines()[-1].startswith(f"error: cannot read {bad}: YAML syntax error")
    orphan = tmp_path / "orphan.yml"
    orphan.write_text("_BASE_: nowhere.yml\n")
    code, text = run_cli(["--config-file", str(orphan)])
    assert code == 2 and "Traceback" not in text
    assert f"its _BASE_ {tmp_path / 'nowhere.yml'} does not exist" in text
    code, text = run_cli(["--config-file", str(orphan)], RGANET_TRACEBACK="1")
    assert code == 2 and "Traceback" in text and "error: cannot read" in text


def test_missing_dataset_folder_is_one_line(tmp_path):
    code, text = run_cli(["--config-file", DEMO, *opts_for(tmp_path),
                          "DATASETS.NAMES", "('OccludedDuke',)"])
    assert code == 2 and "Traceback" not in text, text[-3000:]
    assert [line for line in text.splitlines() if line.startswith("error: ")] != []
    assert str(tmp_path / "data") in text


@pytest.mark.parametrize("case", ["missing", "truncated", "foreign", "clip", "empty", "nan"])
def test_user_errors_exit_2_with_one_error_line(tmp_path, capsys, case):
    from rganet_plugin.tools.train import main

    args = ["--config-file", DEMO, *opts_for(tmp_path, "PROMPT_STAGE.MAX_EPOCH", "1",
                                             "SOLVER.MAX_EPOCH", "1")]
    if case in ("missing", "truncated", "foreign"):
        ckpt = tmp_path / "model.pth"
        if case == "truncated":
            torch.save({"model": torch.nn.Linear(64, 64).state_dict()}, ckpt)
            ckpt.write_bytes(ckpt.read_bytes()[:1000])
        elif case == "foreign":
            torch.save({"model": torch.nn.Linear(4, 4).state_dict()}, ckpt)
        args += ["--eval-only", "MODEL.WEIGHTS", str(ckpt)]
        expect = {"missing": "checkpoint not found", "truncated": "cannot read checkpoint",
                  "foreign": "does not belong to this model"}[case]
    elif case == "clip":
        args += ["MODEL.BACKBONE.PRETRAIN_PATH", str(tmp_path / "nope.safetensors")]
        expect = "CLIP checkpoint not found"
    elif case == "empty":
        root = tmp_path / "data" / "Occluded_Duke"
        for split in ("bounding_box_train", "query", "bounding_box_test"):
            (root / split).mkdir(parents=True)
        args += ["DATASETS.NAMES", "('OccludedDuke',)", "DATASETS.TESTS", "('OccludedDuke',)"]
        expect = "bounding_box_train"
    else:  # a loss scaled by NaN: fast-reid's anomaly check stops at the first step
        cfg = tmp_path / "nan.yml"
        cfg.write_text(f"_BASE_: {DEMO}\nMODEL:\n  LOSSES:\n    CE:\n      SCALE: .nan\n")
        args[1] = str(cfg)
        expect = "Loss became infinite or NaN at iteration=0! The training diverged"
    assert main(args) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and expect in lines[0] + err, err[-3000:]
    # (no traceback: checked in the subprocess tests; in this process fast-reid's console handlers
    # of earlier tests write to closed capture streams, which logging reports with a traceback)


# ---------------------------------------------------------------------------- flags anywhere
def test_flags_after_the_overrides_are_flags():
    from rganet_plugin.tools.argv import hoist_flags
    from rganet_plugin.tools.train import parse_args

    a = parse_args(["--config-file", DEMO, "SOLVER.MAX_EPOCH", "4", "--resume",
                    "--num-gpus", "2", "OUTPUT_DIR", "x", "--eval-only"])
    assert a.resume and a.eval_only and a.num_gpus == 2
    assert a.opts == ["SOLVER.MAX_EPOCH", "4", "OUTPUT_DIR", "x"]
    # a value is never taken for a flag; an odd override is still refused by the config loader
    assert hoist_flags(["OUTPUT_DIR", "--resume"], {"--resume": 0}) == \
        ([], ["OUTPUT_DIR", "--resume"])
    assert hoist_flags(["A.B", "1", "--seeds", "0", "1", "C.D", "2"], {"--seeds": -1}) == \
        (["--seeds", "0", "1"], ["A.B", "1", "C.D", "2"])


# ---------------------------------------------------------------------------- compare
def test_compare_report_only_after_the_overrides_and_with_other_overrides(tmp_path, monkeypatch,
                                                                           capsys):
    """--report-only written last is the flag; with other overrides than the runs had it writes
    nothing (it used to replace the table with an all-n/a one) and names both."""
    from rganet_analysis import compare

    def fake_train(cfg_file, name, seed, out, opts, resume=False, cwd=None, train_net=None):
        return {"Rank-1": 50.0, "mAP": 40.0, "mINP": 20.0, "minutes": 1.0}

    monkeypatch.setattr(compare, "train_config", fake_train)
    cfg = os.path.join(ROOT, "configs", "Demo", "bagtricks_R50_demo.yml")
    out = tmp_path / "sweep"
    base = ["--configs", cfg, "--out", str(out), "--no-plot", "SOLVER.MAX_EPOCH", "2"]
    assert compare.main(base) == 0
    table = (out / "comparison.md").read_text()
    monkeypatch.setattr(compare, "train_config", None)  # nothing may train from here on
    assert compare.main([*base, "--report-only"]) == 0
    assert "| bagtricks_R50_demo | from scratch | 50.0 |" in (out / "comparison.md").read_text()
    capsys.readouterr()
    assert compare.main(["--configs", cfg, "--out", str(out), "--no-plot", "SOLVER.MAX_EPOCH",
                         "3", "--report-only"]) == 2
    err = capsys.readouterr().err
    assert "no finished run" in err and "['SOLVER.MAX_EPOCH', '2']" in err
    assert (out / "comparison.md").read_text().splitlines()[:3] == table.splitlines()[:3]


def test_compare_training_time_sums_the_processes_of_a_run(tmp_path, monkeypatch):
    from rganet_analysis import compare

    calls = []

    def flaky(cfg_file, name, seed, out, opts, resume=False, cwd=None, train_net=None):
        calls.append(resume)
        time.sleep(0.3)
        if len(calls) == 1:
            open(os.path.join(out, "last_checkpoint"), "w").write("model_interrupted.pth")
            raise compare.RunFailed("stopped")
        return {"Rank-1": 50.0, "mAP": 40.0, "mINP": 20.0}

    monkeypatch.setattr(compare, "train_config", flaky)
    cfg = os.path.join(ROOT, "configs", "Demo", "bagtricks_R50_demo.yml")
    out = str(tmp_path / "sweep")
    res = compare.sweep([cfg], [0], out, keep_going=True)
    assert res["bagtricks_R50_demo"]["failed"]
    res = compare.sweep([cfg], [0], out)
    assert calls == [False, True]
    attempts = json.load(open(os.path.join(out, "bagtricks_R50_demo", "seed0", "attempts.json")))
    assert len(attempts) == 2
    assert res["bagtricks_R50_demo"]["runs"][0]["minutes"] == pytest.approx(sum(attempts))
    assert sum(attempts) >= 0.6 / 60


FAKE_ENTRY = """
import os, signal, subprocess, sys, time
from rganet_plugin.config import load_config  # noqa: F401  (compare reads it)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    out = argv[argv.index("OUTPUT_DIR") + 1]
    child = subprocess.Popen(["sleep", "300"])  # a data-loader worker, say
    def stop(signum, frame):
        open(os.path.join(out, "stopped_by"), "w").write(signal.Signals(signum).name)
        sys.exit(130)
    signal.signal(signal.SIGINT, stop)
    open(os.path.join(out, "pids"), "w").write(f"{os.getpid()} {child.pid}")
    time.sleep(300)


if __name__ == "__main__":
    main()
"""


def test_stopping_compare_stops_its_runs_with_sigint(tmp_path):
    """SIGTERM to compare: the run (its own process group) gets SIGINT, so a real train_net
    writes its interrupt checkpoint; its children go too; compare exits 130 (killing compare
    used to leave its train_net.py training, orphaned)."""
    pkg = tmp_path / "fakeproject"  # a sibling project's entry point: a module, run with -m
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "entry.py").write_text(FAKE_ENTRY)
    cfg = os.path.join(ROOT, "configs", "Demo", "bagtricks_R50_demo.yml")
    out = tmp_path / "sweep"
    run_env = env()
    run_env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), ROOT, run_env.get("PYTHONPATH", "")])
    proc = subprocess.Popen([sys.executable, "-m", "rganet_analysis.compare", "--configs",
                             cfg, "--out", str(out), "--no-plot", "--entry", "fakeproject.entry"],
                            cwd=ROOT, env=run_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    pids = out / "bagtricks_R50_demo" / "seed0" / "pids"
    for _ in range(3000):
        if pids.is_file() and pids.read_text():
            break
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    run_pid, worker_pid = map(int, pids.read_text().split())
    assert os.getpgid(run_pid) == run_pid != os.getpgid(proc.pid)  # its own group
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-2000:]
    assert "compare stopped" in stderr and "Traceback" not in stderr
    assert (pids.parent / "stopped_by").read_text() == "SIGINT"
    for _ in range(100):  # the worker got the group's SIGINT too
        try:
            os.kill(worker_pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(worker_pid, signal.SIGKILL)
        pytest.fail("the run's child outlived compare")
    assert json.load(open(pids.parent / "attempts.json"))  # the stopped process counted


# ---------------------------------------------------------------------------- small ones
def test_demo_device_is_automatic():
    from rganet_plugin.config import load_config

    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert load_config(DEMO).MODEL.DEVICE == expected
    assert load_config(DEMO, ["MODEL.DEVICE", "cuda"]).MODEL.DEVICE == "cuda"  # as asked


def test_pretrained_clip_weights_are_readable_like_other_files(tmp_path):
    from rganet_plugin.synthetic.clip_pretrain import PretrainSettings, write_weights

    umask = os.umask(0o022)
    try:
        path = str(tmp_path / "w.safetensors")
        write_weights(torch.nn.Linear(2, 2), path, PretrainSettings())
    finally:
        os.umask(umask)
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o644)
