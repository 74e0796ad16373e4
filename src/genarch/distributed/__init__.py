"""genarch components on a Ray cluster (``pip install "genarch[ray]"``).

Nothing here starts a scheduler of genarch's own: each function takes the Ray
that the caller started (``ray.init()`` locally, or ``ray.init(address=...)``
against an existing cluster) and runs genarch's components on it.
"""

from genarch.distributed.dedup import (
    DistributedDedupStats,
    DistributedDuplicates,
    distributed_near_dedup,
)
from genarch.distributed.embedding import (
    IndexBuild,
    RayIndexBuilder,
    RayIndexBuilderConfig,
    Rebuild,
)
from genarch.distributed.placement import (
    PER_ITEM_STAGES,
    Placement,
    PlacementSetting,
    RayPlan,
    StagePlan,
    plan_pipeline,
)
from genarch.distributed.runner import RayPipelineRun, RayRunner, RayRunnerConfig
from genarch.distributed.serving import AutoscalingSettings, RayServeConfig, ray_serve_app

__all__ = [
    "PER_ITEM_STAGES",
    "AutoscalingSettings",
    "DistributedDedupStats",
    "DistributedDuplicates",
    "IndexBuild",
    "Placement",
    "PlacementSetting",
    "RayIndexBuilder",
    "RayIndexBuilderConfig",
    "RayPipelineRun",
    "RayPlan",
    "RayRunner",
    "RayRunnerConfig",
    "RayServeConfig",
    "Rebuild",
    "StagePlan",
    "distributed_near_dedup",
    "plan_pipeline",
    "ray_serve_app",
]
