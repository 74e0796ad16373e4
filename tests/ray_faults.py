"""Fault injection for the Ray tests: kill an actor once, from another actor.

A stage or extractor under test calls ``kill_me(killer)`` from inside its Ray
actor; the killer ``ray.kill``-s that actor (Ray may restart it) the first
time only, so the restarted actor runs on. ``kills(killer)`` says how many
kills happened.
"""

from __future__ import annotations

import sys
import time
from typing import Any


class _KillOnce:
    def __init__(self) -> None:
        self.count = 0

    def kill(self, actor: Any) -> bool:
        import ray

        if self.count:
            return False
        self.count += 1
        ray.kill(actor, no_restart=False)
        return True

    def kills(self) -> int:
        return self.count


def start_killer(ray: Any) -> Any:
    """A killer actor on the current Ray (no CPU reserved); this module travels by value."""
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    return ray.remote(num_cpus=0)(_KillOnce).remote()


def kill_me(killer: Any) -> None:
    """Ask ``killer`` to kill the actor this runs in; returns only if it already killed one."""
    import ray

    me = ray.get_runtime_context().current_actor
    if ray.get(killer.kill.remote(me)):
        time.sleep(30)  # killed long before this ends
        raise RuntimeError("the killer did not kill this actor")


def kills(ray: Any, killer: Any) -> int:
    """How many actors ``killer`` has killed."""
    return int(ray.get(killer.kills.remote()))
