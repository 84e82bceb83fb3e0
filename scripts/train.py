"""Fine-tune a QA model on SQuAD 2.0 (or the embedded synthetic set) and evaluate it.

    python scripts/train.py                                  # embedded default, AdamW
    python scripts/train.py experiment=demo/table1_adamw            # the `make demo` run
    python scripts/train.py experiment=paper/table1_adamw    # albert-base-v2 on squad_v2
    python scripts/train.py experiment=demo/table1_adamw resume=true  # continue a killed run
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from secondorder.hub import HubUnavailableError
from secondorder.runs import RefusedRun, RunError
from secondorder.train import run
from secondorder.train.checks import check_experiment_args
from secondorder.train.trainer import (
    PREEMPTED_EXIT_CODE,
    NonFiniteLossError,
    Preempted,
    StopRequested,
)

log = logging.getLogger("secondorder")


def summary(result: dict, run_dir: str) -> str:
    lines = [f"run directory: {run_dir}"]
    if not result:
        return lines[0]
    lines.append(f"EM {result['exact']:.2f}  F1 {result['f1']:.2f}  ({result['total']} questions)")
    for part in ("HasAns", "NoAns"):
        if f"{part}_total" in result:
            lines.append(f"  {part:6s} EM {result[f'{part}_exact']:.2f}  F1 {result[f'{part}_f1']:.2f}"
                         f"  ({result[f'{part}_total']} questions)")
    no_answer_baseline = 100.0 * result.get("NoAns_total", 0) / result["total"]
    lines.append(f"all-no-answer baseline: EM = F1 = {no_answer_baseline:.2f}")
    lines.append(f"training time {result['train_time_s']:.0f} s")
    return "\n".join(lines)


def discard_command_folder() -> None:
    """A refused command leaves nothing in the run it refused to touch: Hydra made this
    command's folder (<run_dir>/hydra/<time>/) before the refusal, so it goes again."""
    from hydra.core.hydra_config import HydraConfig

    folder = Path(HydraConfig.get().runtime.output_dir)
    logging.shutdown()  # the folder's train.log is closed first
    shutil.rmtree(folder, ignore_errors=True)
    with contextlib.suppress(OSError):
        folder.parent.rmdir()  # hydra/, if this command's folder was its only entry


@hydra.main(config_path="../configs", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        result = run(cfg)
    except StopRequested as stop:
        log.warning("%s", stop)
        return
    except Preempted as stop:  # slurm/train.sbatch requeues the job on this exit code
        log.warning("%s", stop)
        sys.exit(PREEMPTED_EXIT_CODE)
    except (HubUnavailableError, NonFiniteLossError, RunError, FileNotFoundError,
            ValueError) as err:
        log.error("%s", err)
        if isinstance(err, RefusedRun):
            discard_command_folder()
        sys.exit(2)
    print(summary(result, cfg.run_dir))


if __name__ == "__main__":
    check_experiment_args(sys.argv[1:])  # a misspelt experiment must not train the default
    main()
