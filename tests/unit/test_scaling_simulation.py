"""The workers' autoscaling (airflow_stack.ops.scaler) driven through a simulated ECS service and
Celery queue: Fargate tasks that take 1-3 minutes to start, the monitor's 30 s samples, workers
that hold scale-in protection while they have a task (checked every 5 s) and finish their
tasks within the 120 s stop timeout when ECS stops them. A burst of 500 tasks, then idle.

The scaler is the real one; only ECS, Fargate and the workers are simulated."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from airflow_stack.ops.scaler import Pool, Scaler

STEP = 5.0  # seconds of simulated time per tick
SAMPLE = 30.0  # the monitor's interval
CONCURRENCY = 16
PROTECTION_CHECK = 5.0  # AIRFLOW_STACK_SCALE_IN_PROTECTION_CHECK
STOP_TIMEOUT = 120.0


@dataclass
class Worker:
    ready_at: float  # Fargate start done
    tasks: list[float] = field(default_factory=list)  # end times of its running tasks
    protected: bool = False
    checked_at: float = 0.0
    stopping_at: float | None = None


@dataclass
class Simulation:
    minimum: int = 0
    maximum: int = 64
    scale_in_after: float = 600.0
    seed: int = 1
    now: float = 0.0
    desired: int = 0
    queue: list[float] = field(default_factory=list)  # durations of queued tasks
    workers: list[Worker] = field(default_factory=list)
    done: int = 0
    lost: int = 0  # tasks cut off by a stop timeout
    stopped_busy: int = 0  # workers ECS stopped while they held a task
    history: list[tuple[float, int, int]] = field(default_factory=list)  # (time, desired, workers)
    needs: list[tuple[float, int]] = field(default_factory=list)  # (time, need) of each sample

    def __post_init__(self):
        self.rng = random.Random(self.seed)
        self.scaler = Scaler(self, clock=lambda: self.now)

    # -- the ECS cluster as the scaler sees it ----------------------------------------------
    def pools(self) -> list[Pool]:
        return [
            Pool(
                "arn:worker",
                "worker",
                "default",
                self.minimum,
                self.maximum,
                CONCURRENCY,
                self.scale_in_after,
                self.desired,
            )
        ]

    def set_desired(self, service: str, count: int) -> None:
        self.desired = count

    # -- the world ---------------------------------------------------------------------------
    def live(self) -> list[Worker]:
        return [w for w in self.workers if w.stopping_at is None]

    def ecs(self) -> None:
        """ECS: start tasks up to the desired count; stop unprotected ones above it."""
        live = self.live()
        for _ in range(self.desired - len(live)):
            self.workers.append(Worker(ready_at=self.now + self.rng.uniform(60, 180)))
        surplus = len(live) - self.desired
        for worker in sorted(live, key=lambda w: (w.protected, -w.ready_at)):
            if surplus <= 0 or worker.protected:
                break
            worker.stopping_at = self.now
            self.stopped_busy += bool(worker.tasks)
            surplus -= 1

    def workers_tick(self) -> None:
        for worker in list(self.workers):
            self.done += sum(end <= self.now for end in worker.tasks)
            worker.tasks = [end for end in worker.tasks if end > self.now]
            if worker.stopping_at is not None:
                if not worker.tasks or self.now - worker.stopping_at >= STOP_TIMEOUT:
                    self.lost += len(worker.tasks)
                    self.queue += [60.0] * len(worker.tasks)  # retried
                    self.workers.remove(worker)
                continue
            if worker.ready_at > self.now:
                continue
            while self.queue and len(worker.tasks) < CONCURRENCY:
                worker.tasks.append(self.now + self.queue.pop(0))
            if self.now - worker.checked_at >= PROTECTION_CHECK:
                worker.protected = bool(worker.tasks)
                worker.checked_at = self.now

    def sample(self) -> None:
        running = sum(len(w.tasks) for w in self.workers)
        self.needs.append((self.now, math.ceil((len(self.queue) + running) / CONCURRENCY)))
        self.scaler.step({"default": len(self.queue)}, {"default": running})

    def run(self, until: float, monitor_alive=lambda t: True) -> None:
        next_sample = 0.0
        while self.now < until:
            if self.now >= next_sample:
                if monitor_alive(self.now):
                    self.sample()
                next_sample += SAMPLE
            self.ecs()
            self.workers_tick()
            self.history.append((self.now, self.desired, len(self.workers)))
            self.now += STEP


def burst(simulation: Simulation, tasks: int = 500) -> None:
    simulation.queue = [simulation.rng.uniform(60, 300) for _ in range(tasks)]


def test_a_burst_is_served_without_overshoot_and_only_idle_workers_are_removed():
    simulation = Simulation()
    burst(simulation)
    simulation.run(until=3 * 3600)
    assert simulation.done == 500 and not simulation.queue
    peak = max(desired for _, desired, _ in simulation.history)
    assert peak <= math.ceil(500 / CONCURRENCY), peak  # never more than the queue needs
    assert max(count for _, _, count in simulation.history) <= peak
    assert simulation.stopped_busy == 0 and simulation.lost == 0
    assert simulation.desired == 0 and not simulation.workers  # idle again: back to MinWorkers


def test_the_count_drops_only_after_scale_in_after_seconds_of_lower_need():
    simulation = Simulation(scale_in_after=600)
    burst(simulation, 64)
    simulation.run(until=2 * 3600)
    pairs = zip(simulation.history, simulation.history[1:], strict=False)
    drops = [(t, after) for (_, before, _), (t, after, _) in pairs if after < before]
    assert drops and simulation.desired == 0
    for t, after in drops:
        window = [need for at, need in simulation.needs if t - 600 <= at <= t]
        assert max(window) <= after, (t, after, window)  # no sample of the last 600 s needed more


def test_a_dead_monitor_leaves_the_count_where_it_was():
    simulation = Simulation()
    burst(simulation)
    simulation.run(until=2 * 3600, monitor_alive=lambda t: t < 300)
    at_death = next(d for t, d, _ in reversed(simulation.history) if t < 300)
    assert at_death > 0
    assert all(d == at_death for t, d, _ in simulation.history if t >= 300)  # never read as "no work"
    assert simulation.done == 500 and simulation.lost == 0
