"""The training loop: phases of (optimizer, epochs), evaluation, checkpoints and logs.

A run is a list of phases. A single-optimizer run is one phase; the report's hand-off is
AdamW for two epochs, then AdaHessian for one. The loop has no optimizer-specific branches:
it asks the optimizer whether the coming step needs curvature (`needs_curvature()`), builds
the double-backward graph only then, and follows the protocol documented in
`secondorder.optim` (including the Hessian-on-a-slice arrangement). Under a multi-process
launcher it is data parallel (`secondorder.train.distributed`): the same loop on every rank,
each forwarding its shard of the global batch, with rank 0 alone writing the run's files.
"""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from secondorder.curvature.blocks import role_blocks
from secondorder.data.squad import epoch_order, iterate_batches
from secondorder.environment import device_name, environment
from secondorder.optim import CurvatureHooks, CurvatureOptimizer, build_optimizer
from secondorder.optim.protocol import backward_for_step, batch_loss
from secondorder.optim.scaling import LossScaler
from secondorder.optim.telemetry import curvature_telemetry, has_telemetry
from secondorder.qa.metric import squad_v2_scores
from secondorder.qa.postprocess import postprocess_predictions
from secondorder.runs import (
    CHECKPOINTS,
    COMPLETE,
    EVAL,
    NA_PROBS,
    PREDICTIONS,
    load_checkpoint,
    read_json,
    rng_state,
    save_checkpoint,
    set_rng_state,
    write_json,
)
from secondorder.train.distributed import World
from secondorder.train.loggers import NullLogger, RunLogger
from secondorder.train.meters import Throughput, memory_stats, reset_peak_memory
from secondorder.train.schedules import build_scheduler

log = logging.getLogger(__name__)

# backward(create_graph=True) links each parameter to a gradient that holds a graph; torch warns
# of the reference cycle. The curvature optimizers detach p.grad in step() and the loop sets
# grads to None after every step, which breaks it (tested in tests/optim).
warnings.filterwarnings(
    "ignore", message=r"Using backward\(\) with create_graph=True", category=UserWarning
)


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


class StopRequested(Exception):
    """`trainer.stop_after_steps` was reached: the run stops as if killed (no checkpoint)."""


HESSIAN_ORDER_SEED = 104_729  # offset of the seed of the independent Hessian batches' order
PREEMPTION_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)  # SLURM's preemption / time-limit warning
PREEMPTED_EXIT_CODE = 75  # EX_TEMPFAIL: slurm/train.sbatch requeues the job on this code


class Preempted(Exception):
    """A preemption signal arrived: the step in flight was finished and checkpointed."""


@dataclass(frozen=True)
class Phase:
    index: int
    optimizer: Mapping  # the `optimizer` config node of this phase
    epochs: int  # epochs trained in this phase
    schedule_epochs: int  # epochs the learning-rate schedule spans (>= epochs)

    @property
    def name(self) -> str:
        return str(self.optimizer["name"])


def plan_phases(cfg: Mapping) -> list[Phase]:
    """The phases of a run from the `strategy` config group."""
    strategy, total = cfg["strategy"], int(cfg["trainer"]["epochs"])
    if total < 1:
        raise ValueError(f"trainer.epochs must be >= 1; got {total}")
    if strategy["name"] == "single":
        return [Phase(0, cfg["optimizer"], total, total)]
    if strategy["name"] == "handoff":
        first = int(strategy["first_epochs"])
        if not 0 < first < total:
            raise ValueError(
                f"strategy.first_epochs={first} must be between 1 and trainer.epochs-1={total - 1}"
            )
        first_schedule = int(strategy.get("first_schedule_epochs") or first)
        if first_schedule < first:
            raise ValueError("strategy.first_schedule_epochs must be >= strategy.first_epochs")
        second = Phase(1, cfg["optimizer"], total - first, total - first)
        if strategy.get("init_from"):
            return [second]  # the first phase was trained by another run
        return [Phase(0, strategy["first_optimizer"], first, first_schedule), second]
    raise ValueError(f"strategy.name must be 'single' or 'handoff'; got {strategy['name']!r}")


@dataclass
class Progress:
    phase: int = 0  # index into the plan
    epoch: int = 0  # epochs completed in this phase
    batch: int = 0  # batches completed in this epoch
    step: int = 0  # optimizer steps completed in the run
    train_time_s: float = 0.0  # training time of the run so far (evaluation excluded)
    epoch_time_s: float = 0.0  # training time of the current epoch so far
    epoch_loss_sum: float = 0.0  # sum of the current epoch's batch losses so far
    finished: bool = False  # trainer.max_steps reached: the run is complete


class Trainer:
    def __init__(self, cfg: Mapping, model, tokenizer, train_features, eval_records, eval_features,
                 run_dir: Path, config_dict: Mapping):
        from accelerate import Accelerator

        self.cfg, self.tcfg = cfg, cfg["trainer"]
        precision = self.tcfg["mixed_precision"]
        if precision not in ("no", "bf16", "fp16"):
            raise ValueError(
                f"trainer.mixed_precision must be 'no', 'bf16' or 'fp16'; got {precision!r}")
        # fp16: our autocast and loss scaler (secondorder.optim.scaling), which also unscale the
        # Hessian-vector products; accelerate's scaler does not know about them
        self.accelerator = Accelerator(
            cpu=bool(self.tcfg["cpu"]), mixed_precision="no" if precision == "fp16" else precision
        )
        self.device = self.accelerator.device
        # data parallel over the processes of torchrun / accelerate launch / srun (else 1)
        self.world = World.current()
        self.scaler = LossScaler(**self.tcfg["loss_scale"]) if precision == "fp16" else None
        if precision == "fp16":
            def autocast():
                return torch.autocast(self.device.type, dtype=torch.float16)
            self.autocast = autocast
        else:
            self.autocast = self.accelerator.autocast
        dtype = {"float32": torch.float32, "float64": torch.float64}[
            self.tcfg.get("param_dtype") or "float32"]
        self.model = model.to(self.device, dtype=dtype)
        self.pad_id = tokenizer.pad_token_id
        self.train_features = train_features
        self.eval_records = eval_records
        self.eval_features = eval_features
        self.run_dir = run_dir
        self.ckpt_dir = run_dir / CHECKPOINTS
        self.config_dict = config_dict
        self.phases = plan_phases(cfg)
        self.batch_size = int(self.tcfg["batch_size"])  # the global batch, split across ranks
        if self.batch_size % self.world.size:
            raise ValueError(
                f"trainer.batch_size={self.batch_size} is the global batch and must be divisible "
                f"by the number of processes ({self.world.size}); change one of them")
        if self.world.distributed:
            from accelerate.utils import set_seed

            self.world.broadcast_parameters(self.model)
            set_seed(int(cfg["seed"]), device_specific=True)  # each rank its own dropout masks
        self.steps_per_epoch = math.ceil(len(train_features) / self.batch_size)
        self.last_good: tuple[Path, int] | None = None  # last checkpoint written, and its step
        self.signal_received: int | None = None  # a preemption signal (_catching_preemption)

    # ----------------------------------------------------------------------------- loop
    @contextlib.contextmanager
    def _catching_preemption(self):
        """SIGTERM / SIGUSR1 set a flag; the loop checkpoints after the step in flight."""
        self.signal_received: int | None = None

        def note(signum, frame):
            self.signal_received = signum

        try:
            self._previous_handlers = {s: signal.signal(s, note) for s in PREEMPTION_SIGNALS}
        except ValueError:  # not the main thread (e.g. a notebook's worker): no handlers
            yield
            return
        restore = True
        try:
            yield
        except Preempted:
            # The process is about to exit with PREEMPTED_EXIT_CODE: keep only noting further
            # signals (torchrun sends SIGTERM to every rank as soon as the first one exits).
            restore = False
            raise
        finally:
            if restore:
                for s, handler in self._previous_handlers.items():
                    signal.signal(s, handler)

    def _hand_on_signal(self) -> None:
        """After the checkpoint: a handler that was there before ours (submitit's, under the
        Hydra submitit launcher) now gets the signal, and requeues the job as it would have."""
        previous = self._previous_handlers.get(self.signal_received)
        if callable(previous):
            previous(self.signal_received, None)

    def fit(self) -> dict[str, Any]:
        with self._catching_preemption():
            return self._fit()

    def _fit(self) -> dict[str, Any]:
        progress, resume_ckpt = self._start()
        self.logger = RunLogger(
            self.run_dir, self.cfg["logger"], self.config_dict,
            resume_step=progress.step if resume_ckpt is not None else None,
        ) if self.world.main else NullLogger()
        last_eval = None
        try:
            for i, phase in enumerate(self.phases):
                if i < progress.phase or progress.finished:
                    continue
                if progress.epoch < phase.epochs:  # a resumed run can stop at a phase's end
                    last_eval = self._run_phase(phase, progress, resume_ckpt) or last_eval
                resume_ckpt = None  # optimizer state belongs to the phase it was saved in
                progress.phase, progress.epoch, progress.batch = i + 1, 0, 0
        finally:
            self.logger.finish()
        if self.world.main:
            write_json(self.run_dir / COMPLETE, {
                "step": progress.step, "train_time_s": progress.train_time_s,
                # of the process that finished the run (a resumed run may have started elsewhere)
                "device": device_name(self.device.type),
                "environment": environment(self.device.type)})
        if last_eval is None and (self.run_dir / EVAL).exists():
            last_eval = read_json(self.run_dir / EVAL)
        return last_eval or {}

    def _start(self) -> tuple[Progress, dict | None]:
        last = self.ckpt_dir / "last.pt"
        if self.cfg["resume"] and last.exists():
            ckpt = load_checkpoint(last)
            self.model.load_state_dict(ckpt["model"])
            progress = Progress(**ckpt["progress"])
            self._restore_rng(ckpt, progress.step)
            self.last_good = (last, progress.step)
            log.info("resuming from %s at step %d", last, progress.step)
            return progress, ckpt
        if self.cfg["resume"]:
            log.info("resume=true but no checkpoint in %s: starting a new run", self.ckpt_dir)
        elif last.exists():  # overwrite=true (secondorder.runs.check_fresh_start)
            log.warning("overwrite=true: deleting the earlier run in %s", self.run_dir)
        init_from = self.cfg["strategy"].get("init_from")
        if init_from:
            self.model.load_state_dict(load_checkpoint(init_from)["model"])
            log.info("hand-off: model weights from %s", init_from)
        # A fresh run removes the old run's results and checkpoints, so that a later
        # resume=true can never continue the old run.
        if self.world.main:
            for name in (EVAL, PREDICTIONS, NA_PROBS, COMPLETE):
                (self.run_dir / name).unlink(missing_ok=True)
            for old in self.ckpt_dir.glob("*.pt"):
                old.unlink()
        self.world.barrier()
        return Progress(), None

    def _restore_rng(self, ckpt: dict, step: int) -> None:
        """Every rank's RNG streams as saved; with another number of processes than saved, rank
        0's state and fresh per-rank dropout streams (the run is then not bit-exact)."""
        saved = ckpt.get("rng_ranks") or [ckpt["rng"]]
        if len(saved) == self.world.size:
            set_rng_state(saved[self.world.rank])
            return
        from accelerate.utils import set_seed

        set_rng_state(ckpt["rng"])
        if self.world.distributed:
            set_seed(int(self.cfg["seed"]) + step, device_specific=True)
        log.warning("the checkpoint was written by %d process(es), this run has %d: dropout "
                    "streams restart (the weights, optimizer state and data order continue "
                    "exactly)", len(saved), self.world.size)

    def _run_phase(self, phase: Phase, progress: Progress, resume_ckpt: dict | None):
        schedule_steps = phase.schedule_epochs * self.steps_per_epoch
        hooks = CurvatureHooks(
            reduce_products=self.world.sum_ if self.world.distributed else None,  # global H z
            skip_nonfinite=self.scaler is not None,  # fp16: an overflow skips (optim/scaling.py)
            track_negatives=bool(self.tcfg.get("curvature_telemetry")))
        optimizer = build_optimizer(phase.optimizer, self.model, num_training_steps=schedule_steps,
                                    hooks=hooks)
        scheduler = build_scheduler(self.cfg["schedule"], optimizer, schedule_steps)
        if resume_ckpt is not None:
            optimizer.load_state_dict(resume_ckpt["optimizer"])
            scheduler.load_state_dict(resume_ckpt["scheduler"])
            if self.scaler is not None and "scaler" in resume_ckpt:  # else: a fresh scale
                self.scaler.load_state_dict(resume_ckpt["scaler"])
        log.info("phase %d: %s for %d epoch(s), %d steps per epoch", phase.index, phase.name,
                 phase.epochs, self.steps_per_epoch)
        last_eval = None
        while progress.epoch < phase.epochs:
            outcome = self._train_epoch(phase, progress, optimizer, scheduler)
            if outcome == "preempted":
                self._hand_on_signal()
                raise Preempted(
                    f"{signal.Signals(self.signal_received).name} received: checkpoint "
                    f"{self.ckpt_dir / 'last.pt'} at step {progress.step}; continue with "
                    f"resume=true (exit code {PREEMPTED_EXIT_CODE})")
            if outcome == "stopped":
                raise StopRequested(
                    f"stopped after step {progress.step} (trainer.stop_after_steps); continue "
                    "with resume=true"
                )
            if outcome == "max_steps":  # the run ends here, mid-epoch: evaluated and saved
                progress.finished = True
                last_eval = self.evaluate(progress, phase)
                self._checkpoint(progress, optimizer, scheduler, epoch_end=False, phase=phase)
                return last_eval
            progress.epoch += 1
            progress.batch = 0
            last_eval = self.evaluate(progress, phase)
            self._checkpoint(progress, optimizer, scheduler, epoch_end=True, phase=phase)
        return last_eval

    def _train_epoch(self, phase: Phase, progress: Progress, optimizer, scheduler) -> str | None:
        """Train from progress.batch to the end of the epoch; "stopped" (trainer.stop_after_steps,
        as if killed), "preempted" (a signal: checkpointed at this step) or "max_steps"
        (trainer.max_steps, the run's end) if it ends earlier."""
        self.model.train()
        seed = int(self.cfg["seed"])
        epoch_global = self._global_epoch(phase, progress.epoch)
        order = epoch_order(len(self.train_features), seed + 7919 * phase.index, progress.epoch)
        batches = iterate_batches(self.train_features, order, self.batch_size, self.pad_id,
                                  start=progress.batch)
        reset_peak_memory(self.device)
        meter, losses = Throughput(self.device), []
        self._grad_norms: list[float] = []
        log_every = int(self.tcfg["log_every_steps"])
        eval_every = int(self.tcfg.get("eval_every_steps") or 0)
        ckpt_every = int(self.tcfg.get("checkpoint_every_steps") or 0)
        stop_after = int(self.tcfg.get("stop_after_steps") or 0)
        max_steps = int(self.tcfg.get("max_steps") or 0)
        named = dict(self.model.named_parameters())
        telemetry = (role_blocks(n for n, p in named.items() if p.requires_grad)
                     if self.tcfg.get("curvature_telemetry") and has_telemetry(optimizer) else None)
        mark = time.perf_counter()
        curvature = optimizer if isinstance(optimizer, CurvatureOptimizer) else None

        def tick():  # book training time up to now; evaluation time is not training time
            nonlocal mark
            now = time.perf_counter()
            progress.train_time_s += now - mark
            progress.epoch_time_s += now - mark
            mark = now

        def flush():  # one metrics record for the steps since the last one
            record = {
                "step": progress.step, "phase": phase.index, "optimizer": phase.name,
                "epoch": epoch_global - 1 + progress.batch / self.steps_per_epoch,
                "loss": float(np.mean(losses)), "lr": optimizer.param_groups[0]["lr"],
                # the global gradient norm before clipping (mean over the steps of the record)
                "grad_norm": float(np.mean(self._grad_norms)) if self._grad_norms else None,
                "train_time_s": progress.train_time_s + time.perf_counter() - mark,
                **meter.read(), **memory_stats(self.device),
                **(curvature.metrics() if curvature else {}),  # e.g. AdaSub's fallbacks
                **({"loss_scale": self.scaler.scale, "overflow_skips": self.scaler.skipped}
                   if self.scaler is not None else {}),
            }
            self.logger.log("metrics", record)
            if telemetry:
                stats = curvature_telemetry(optimizer, named, telemetry)
                self.logger.log("curvature", {"step": progress.step, "phase": phase.index,
                                              "optimizer": phase.name, **stats})
            bar.set_postfix(loss=f"{record['loss']:.3f}", ex_s=f"{record['examples_per_s']:.0f}")
            losses.clear()
            self._grad_norms.clear()

        bar = tqdm(batches, total=self.steps_per_epoch, initial=progress.batch,
                   desc=f"{phase.name} epoch {epoch_global}",
                   disable=not (self.tcfg["progress"] and self.world.main),
                   dynamic_ncols=True)
        for batch in bar:
            loss = self._train_step(batch, optimizer, scheduler, progress)
            progress.step += 1
            progress.batch += 1
            progress.epoch_loss_sum += loss
            losses.append(loss)
            meter.update(len(batch["input_ids"]))
            at_max = bool(max_steps) and progress.step >= max_steps
            mid_epoch = progress.batch < self.steps_per_epoch and not at_max
            preempted = self._signalled() and mid_epoch
            checkpoint = (ckpt_every and progress.step % ckpt_every == 0 or preempted) and mid_epoch
            # Records end at checkpoints too, so a resumed run logs exactly what an
            # uninterrupted one does.
            if progress.step % log_every == 0 or not mid_epoch or checkpoint:
                flush()
            if eval_every and progress.step % eval_every == 0 and mid_epoch:
                tick()
                self.evaluate(progress, phase)
                mark = time.perf_counter()
            if checkpoint:
                tick()
                self._checkpoint(progress, optimizer, scheduler, epoch_end=False, phase=phase)
            if preempted:
                bar.close()
                return "preempted"
            if stop_after and progress.step >= stop_after:
                bar.close()
                return "stopped"
            if at_max:
                break
        bar.close()
        tick()
        self.logger.log("epochs", {
            "step": progress.step, "epoch": epoch_global, "phase": phase.index,
            "optimizer": phase.name, "steps": progress.batch,
            "mean_loss": progress.epoch_loss_sum / max(progress.batch, 1),
            "time_s": progress.epoch_time_s, **memory_stats(self.device),
        })
        progress.epoch_time_s = progress.epoch_loss_sum = 0.0
        return "max_steps" if max_steps and progress.step >= max_steps else None

    def _signalled(self) -> bool:
        """A preemption signal arrived (on any rank: all ranks then checkpoint the same step)."""
        received = self.signal_received
        if not self.world.distributed:
            return received is not None
        agreed = int(self.world.maximum(float(received or 0), self.device))
        if agreed:
            self.signal_received = received or agreed
        return bool(agreed)

    def _global_epoch(self, phase: Phase, epoch_in_phase: int) -> int:
        """1-based epoch number counted over the whole run (hand-off epochs continue counting)."""
        before = sum(p.epochs for p in self._all_phases() if p.index < phase.index)
        return before + epoch_in_phase + 1

    def _all_phases(self) -> list[Phase]:
        if self.cfg["strategy"]["name"] == "handoff" and self.cfg["strategy"].get("init_from"):
            first = int(self.cfg["strategy"]["first_epochs"])
            return [Phase(0, self.cfg["strategy"]["first_optimizer"], first, first), *self.phases]
        return self.phases

    # ----------------------------------------------------------------------------- step
    def _loss(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return batch_loss(self.model, batch, self.device, self.autocast)

    def _hessian_batch(self, optimizer, progress: Progress):
        """For an optimizer whose Hessian products come from a batch of their own
        (``hessian_batch="independent"``), on its curvature steps: batch number (step mod steps
        per epoch) of a shuffled order with a seed of its own, a pure function of the step (so
        a resumed run draws the same batches)."""
        if not isinstance(optimizer, CurvatureOptimizer) or \
                optimizer.hessian_batch != "independent" or not optimizer.needs_curvature():
            return None
        epoch, index = divmod(progress.step, self.steps_per_epoch)
        order = epoch_order(len(self.train_features), int(self.cfg["seed"]) + HESSIAN_ORDER_SEED,
                            epoch)
        return next(iterate_batches(self.train_features, order, self.batch_size, self.pad_id,
                                    start=index))

    def _train_step(self, batch, optimizer, scheduler, progress: Progress) -> float:
        scale = self.scaler.scale if self.scaler is not None else 1.0
        loss, step_kwargs = backward_for_step(
            self._loss, batch, optimizer, loss_scale=scale, rank=self.world.rank,
            world_size=self.world.size, hessian_batch=self._hessian_batch(optimizer, progress),
            always_create_graph=bool(self.tcfg.get("create_graph_every_step")))
        if self.world.distributed:  # the global batch's gradient and loss on every rank
            self.world.sum_gradients(list(self.model.parameters()))
            loss = self.world.sum_value(loss, self.device)
        value = float(loss)
        if not math.isfinite(value):
            raise NonFiniteLossError(
                f"training loss is {value} at step {progress.step + 1} (phase {progress.phase}, "
                f"epoch {progress.epoch + 1}, batch {progress.batch + 1}); {self._last_good()}. "
                "Lower the learning rate (or, for AdaHessian, the Hessian power) and start again."
            )
        if self.scaler is not None and not self.scaler.unscale_(self.model.parameters()):
            # fp16 gradient overflow: no step, no schedule step, a smaller scale next time
            optimizer.zero_grad(set_to_none=True)
            self.scaler.update(overflow=True)
            return value
        clip = self.tcfg.get("grad_clip_norm")
        if clip:
            norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), float(clip))
        else:  # the norm only: the gradients are left exactly as they are
            with torch.no_grad():
                norm = torch.nn.utils.get_total_norm(
                    [p.grad for p in self.model.parameters() if p.grad is not None])
        self._grad_norms.append(float(norm))
        optimizer.step(lambda: loss, **step_kwargs)
        skipped = isinstance(optimizer, CurvatureOptimizer) and optimizer.step_skipped  # overflow
        if self.scaler is not None:
            self.scaler.update(overflow=skipped)
        if not skipped:
            scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        return value

    # ----------------------------------------------------------------------------- eval
    @torch.no_grad()
    def predict(self) -> tuple[np.ndarray, np.ndarray]:
        """Start and end logits of every evaluation feature, padded to one width."""
        self.model.eval()
        starts, ends = [], []
        n, size = len(self.eval_features), int(self.cfg["eval"]["batch_size"])
        first, stop = self.world.split(-(-n // size))  # this rank's evaluation batches
        order = range(first * size, min(stop * size, n))
        for batch in iterate_batches(self.eval_features, order, size, self.pad_id):
            inputs = {k: v.to(self.device) for k, v in batch.items()}
            with self.autocast():
                out = self.model(**inputs)
            starts.append(out.start_logits.float().cpu().numpy())
            ends.append(out.end_logits.float().cpu().numpy())
        if self.world.distributed:  # every rank's batches, in order
            parts = self.world.gather((starts, ends))
            starts = [a for part, _ in parts for a in part]
            ends = [a for _, part in parts for a in part]
        width = max(s.shape[1] for s in starts)

        def stack(chunks):  # padding positions have no offsets, so they are never chosen
            return np.concatenate([np.pad(c, ((0, 0), (0, width - c.shape[1])), constant_values=-1e4)
                                   for c in chunks])

        return stack(starts), stack(ends)

    def evaluate(self, progress: Progress, phase: Phase) -> dict[str, Any]:
        """Score the model on the evaluation set (sharded across ranks; rank 0 post-processes,
        scores, logs and writes; every rank returns the record)."""
        t0 = time.perf_counter()
        start_logits, end_logits = self.predict()
        record = self._score(start_logits, end_logits, progress, phase, t0) if self.world.main \
            else None
        self.model.train()
        return self.world.broadcast(record)

    def _score(self, start_logits, end_logits, progress: Progress, phase: Phase, t0: float):
        ecfg = self.cfg["eval"]
        features = self.eval_features.select_columns(["example_id", "offset_mapping"])
        predictions, na_probs = postprocess_predictions(
            self.eval_records, features, start_logits, end_logits,
            n_best_size=int(ecfg["n_best_size"]), max_answer_length=int(ecfg["max_answer_length"]),
            null_score_diff_threshold=float(ecfg["null_score_diff_threshold"]),
        )
        scores = squad_v2_scores(self.eval_records.to_list(), predictions, na_probs)
        record = {
            **scores, "step": progress.step, "epoch": self._global_epoch(phase, progress.epoch) - 1
            + progress.batch / self.steps_per_epoch, "phase": phase.index, "optimizer": phase.name,
            "train_time_s": progress.train_time_s, "eval_time_s": time.perf_counter() - t0,
        }
        self.logger.log("evals", record)
        self.logger.summary({k: v for k, v in record.items() if isinstance(v, int | float)})
        write_json(self.run_dir / EVAL, record)
        write_json(self.run_dir / PREDICTIONS, predictions)
        write_json(self.run_dir / NA_PROBS, na_probs)
        log.info("eval at step %d: EM %.2f F1 %.2f (HasAns F1 %s, NoAns F1 %s)", progress.step,
                 scores["exact"], scores["f1"], _fmt(scores.get("HasAns_f1")),
                 _fmt(scores.get("NoAns_f1")))
        return record

    # ----------------------------------------------------------------------------- state
    def _last_good(self) -> str:
        if self.last_good is None:
            return "no checkpoint was written yet"
        path, step = self.last_good
        return f"the last finite checkpoint is {path} (step {step})"

    def _checkpoint(self, progress: Progress, optimizer, scheduler, *, epoch_end: bool, phase: Phase):
        # The weights can go bad a step before the loss does: never save non-finite state.
        tensors = [*self.model.parameters(), *(
            v for st in optimizer.state.values() for v in st.values()
            if isinstance(v, torch.Tensor) and v.is_floating_point())]
        if not all(bool(torch.isfinite(t).all()) for t in tensors):
            raise NonFiniteLossError(
                f"the weights or optimizer state are not finite after step {progress.step}; no "
                f"checkpoint written, {self._last_good()}. Lower the learning rate (or, for "
                "AdaHessian, the Hessian power) and start again.")
        state = {
            "progress": vars(progress).copy(),
            "model": self.model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "phase_optimizer": phase.name,
            **({"scaler": self.scaler.state_dict()} if self.scaler is not None else {}),
        }
        if self.world.distributed:  # each rank's dropout stream (rank 0's is also under "rng")
            state["rng_ranks"] = self.world.gather(rng_state())
        path = self.ckpt_dir / "last.pt"
        if self.world.main:
            save_checkpoint(path, state)
            if epoch_end and self.tcfg.get("keep_epoch_checkpoints"):
                epoch = self._global_epoch(phase, progress.epoch - 1)
                save_checkpoint(self.ckpt_dir / f"epoch{epoch}.pt", state)
        self.world.barrier()  # no rank goes on (or exits, when preempted) before it is on disk
        self.last_good = (path, progress.step)
        log.debug("checkpoint %s at step %d", path, progress.step)


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.2f}"

