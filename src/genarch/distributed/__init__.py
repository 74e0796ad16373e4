"""genarch components on a Ray cluster (``pip install "genarch[ray]"``).

Nothing here starts a scheduler of genarch's own: each function takes the Ray
that the caller started (``ray.init()`` locally, or ``ray.init(address=...)``
against an existing cluster) and runs genarch's components on it.
"""

__all__: list[str] = []
