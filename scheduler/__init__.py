"""The scheduler process: queues, dynamic batching, priorities, queue policies.

- ``core.SchedulerCore``: the pure core (``set_models``, ``add``, ``cancel``,
  ``release``, ``executed``, ``step``, ``next_deadline_ns``, ``stats_json``);
  outputs are ``core.Dispatch`` / ``core.Reply``.
- ``proc.main(boot)``: the process shell (spawn target).
- ``policy``: what each model version dispatches (default, dynamic batcher);
  ``router``: which instance gets it (choice, pipelining, sticky pins);
  ``wire``: the scheduler's view of Request (unread fields stay undecoded);
- ``config``, ``queue``, ``batcher``, ``stats``, ``model``: policy pieces;
  ``alarm``: the shell's precise wake-up; ``bench``: the core micro-benchmark.
"""
