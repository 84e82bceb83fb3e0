"""The Hydra submitit launcher: configs for SLURM compose, and a two-job multirun runs through
submitit's local executor (one process per job, as on a cluster) into the usual run folders."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from secondorder.runs import experiment_runs, is_complete
from tiny import TINY

pytestmark = pytest.mark.slow  # submitit jobs in subprocesses

pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("launcher", ["slurm_a100", "slurm_v100", "local"])
def test_launcher_configs_compose(launcher, monkeypatch):
    monkeypatch.setenv("SECONDORDER_SLURM_PARTITION", "gpu")
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose("train", overrides=[f"hydra/launcher={launcher}",
                                          "experiment=paper/table1_adamw"], return_hydra_config=True)
    launcher_cfg = cfg.hydra.launcher
    assert "submitit" in launcher_cfg._target_
    if launcher != "local":
        assert launcher_cfg.partition == "gpu" and launcher_cfg.account is None
        assert launcher_cfg.gpus_per_node == 1 and launcher_cfg.signal_delay_s == 300
        assert launcher_cfg.constraint == launcher.split("_")[1]
        # slurm_v100 is slurm_a100 with its own GPU and time limit, everything else inherited
        assert launcher_cfg.timeout_min == {"slurm_a100": 720, "slurm_v100": 1440}[launcher]
        assert launcher_cfg.mem_gb == 48 and launcher_cfg.max_num_timeout == 20
        assert launcher_cfg.setup[0] == "source .venv/bin/activate"


def test_two_job_multirun_through_submitit_local(tmp_path):
    cmd = [sys.executable, str(ROOT / "scripts" / "train.py"), "-m", "hydra/launcher=local",
           "experiment=demo/table1_adamw", *TINY, "trainer.epochs=1", "seed=1,2", "resume=true",
           f"results_root={tmp_path}", f"cache_dir={tmp_path / 'cache'}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    runs = experiment_runs(tmp_path, "demo/table1_adamw")
    assert [r.name for r in runs] == ["adamw-seed1", "adamw-seed2"]
    assert all(is_complete(r) for r in runs)
    assert any((tmp_path / "demo" / "table1_adamw" / ".submitit").iterdir())


def test_reproduce_through_the_launcher_in_two_waves(tmp_path):
    """make reproduce LAUNCHER=local: Table III's runs as submitit jobs, the AdamW run first,
    then its four hand-offs at once; then the table, as without a launcher."""
    cmd = [sys.executable, str(ROOT / "scripts" / "reproduce.py"), "--parts", "table3",
           "--seeds", "1", "--launcher", "local", "--", *TINY, "trainer.epochs=3",
           f"results_root={tmp_path}", f"cache_dir={tmp_path / 'cache'}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    submitted = [line for line in out.stdout.splitlines() if line.startswith("reproduce: submit")]
    assert submitted[0] == "reproduce: submitting demo/table1_adamw seeds [1] (local)"
    assert len(submitted) == 5 and all("table3_handoff" in s for s in submitted[1:])
    for experiment in ("table1_adamw", "table3_handoff_lr3e-3", "table3_handoff_lr3e-4",
                       "table3_handoff_lr3e-5", "table3_handoff_lr3e-4_no_clip"):
        (run,) = experiment_runs(tmp_path, f"demo/{experiment}")
        assert is_complete(run)
    assert (tmp_path / "demo" / "table3.md").exists()


def test_reproduce_names_an_unknown_launcher():
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "reproduce.py"), "--launcher",
                          "slurm"], capture_output=True, text=True, check=False, cwd=ROOT)
    assert out.returncode != 0
    assert out.stderr.strip().splitlines()[-1].startswith(
        "reproduce: --launcher slurm: no configs/hydra/launcher/slurm.yaml; known: ['local', ")
