"""genarch's OpenAI-compatible server as a Ray Serve deployment (``pip install "genarch[ray]"``).

:func:`ray_serve_app` turns an artefact (a :class:`~genarch.deploy.LocalDeployer`
directory, or ``name@alias`` of a :class:`~genarch.deploy.ModelRegistry`)
into a Ray Serve application. Each replica verifies and loads the artefact
itself and serves the same app as ``genarch serve``
(:func:`~genarch.deploy.create_app` over a
:class:`~genarch.deploy.GenerationService`): the same routes
(``/v1/completions``, ``/v1/chat/completions`` with streaming,
``/v1/models``, ``/healthz``, ``/readyz``, ``/metrics``), the same batching,
caps, keys and errors. Ray Serve adds what one process cannot: replicas
across a cluster behind its HTTP proxy, and autoscaling on ongoing requests.

Run it on the Ray you started (``ray.init()``, or ``ray.init(address=...)``
for a cluster)::

    from ray import serve
    serve.start(http_options={"host": "127.0.0.1", "port": 8000})
    serve.run(ray_serve_app("artifacts/tiny", num_replicas=2), route_prefix="/")

Paths (the artefact, the registry root, the API-key file) are opened *on
the replicas*: on a cluster, put them on storage every node sees. What this
deployment does not serve (yet): ``/v1/embeddings`` and ``/v1/feedback``;
use ``genarch serve`` for those. Metrics are per replica.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import Field, model_validator

from genarch.deploy import ApiKeyStore, GenerationService, GenerationServiceConfig, create_app
from genarch.deploy.model_registry import load_verified
from genarch.distributed._ray import import_ray
from genarch.errors import ConfigError
from genarch.models import TextGenerator
from genarch.orchestration.chat_template import ChatTemplate
from genarch.registry import builtin_registry
from genarch.schemas import Config

__all__ = ["AutoscalingSettings", "RayServeConfig", "ray_serve_app"]


class AutoscalingSettings(Config):
    """Ray Serve's autoscaling of the replicas on ongoing requests.

    Attributes:
        min_replicas: the fewest replicas (0 scales to zero when idle).
        max_replicas: the most replicas.
        target_ongoing_requests: the requests per replica Ray Serve aims for.
    """

    min_replicas: Annotated[int, Field(ge=0)] = 1
    max_replicas: Annotated[int, Field(ge=1)] = 2
    target_ongoing_requests: Annotated[float, Field(gt=0)] = 8.0

    @model_validator(mode="after")
    def _ordered(self) -> AutoscalingSettings:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"min_replicas ({self.min_replicas}) exceeds max_replicas ({self.max_replicas})"
            )
        return self


class RayServeConfig(Config):
    """Settings of :func:`ray_serve_app`.

    Attributes:
        name: the deployment's name in Ray Serve.
        num_replicas: a fixed number of replicas (ignored with ``autoscaling``).
        autoscaling: scale the replicas on load instead.
        num_cpus: CPUs Ray reserves for each replica.
        max_ongoing_requests: requests one replica takes at once; more wait
            in Ray Serve's queue (they are batched inside the replica).
        model_name: the model id in ``/v1/models`` and responses (default:
            the artefact's name).
        service: the :class:`~genarch.deploy.GenerationServiceConfig` of every
            replica (batching, caps, caching, redaction).
        api_keys: an :class:`~genarch.deploy.ApiKeyStore` file every replica
            reads (``None``: no keys; keep the proxy on loopback then).
        registry_root: the model registry, for a ``name@alias`` reference.
    """

    name: Annotated[str, Field(min_length=1)] = "genarch"
    num_replicas: Annotated[int, Field(ge=1)] = 1
    autoscaling: AutoscalingSettings | None = None
    num_cpus: Annotated[float, Field(gt=0)] = 1.0
    max_ongoing_requests: Annotated[int, Field(ge=1)] = 64
    model_name: str | None = None
    service: GenerationServiceConfig = GenerationServiceConfig()
    api_keys: str | None = None
    registry_root: str | None = None


def ray_serve_app(
    reference: str, config: RayServeConfig | Mapping[str, Any] | None = None, **fields: Any
) -> Any:
    """A Ray Serve application serving ``reference`` with genarch's OpenAI-compatible routes.

    Args:
        reference: an artefact directory, or ``"name@alias"`` with ``registry_root``.
        config: see :class:`RayServeConfig`; keyword fields are shorthand.

    Returns:
        The bound application, for ``serve.run(app, route_prefix=...)``.

    Raises:
        MissingDependencyError: Ray (with Serve) is not installed.
        ConfigError: bad settings, or a reference that is not a string.
    """
    if not isinstance(reference, str) or not reference:
        raise ConfigError(f"ray_serve_app: reference must be a non-empty str, got {reference!r}")
    settings = RayServeConfig.resolve(config, fields)
    import_ray("ray_serve_app")
    try:
        from ray import serve
    except ImportError:  # ray without its serve extra
        from genarch.errors import missing_dependency

        raise missing_dependency("ray.serve", "ray", "ray_serve_app") from None

    def build_app() -> Any:  # runs on every replica when it starts
        return _replica_app(reference, settings)

    options: dict[str, Any] = {
        "name": settings.name,
        "ray_actor_options": {"num_cpus": settings.num_cpus},
        "max_ongoing_requests": settings.max_ongoing_requests,
    }
    if settings.autoscaling is not None:
        options["autoscaling_config"] = settings.autoscaling.model_dump()
    else:
        options["num_replicas"] = settings.num_replicas
    deployment: Any = serve.deployment(serve.ingress(build_app)(), **options)
    return deployment.bind()


def _replica_app(reference: str, settings: RayServeConfig) -> Any:
    """The app one replica serves: the artefact verified and loaded here, as genarch serve does."""
    components = builtin_registry().register("genarch.TextGenerator", TextGenerator)
    loaded = load_verified(reference, components, registry_root=settings.registry_root)
    keys = ApiKeyStore(settings.api_keys) if settings.api_keys else None
    service = GenerationService(
        loaded.component, settings.service, keys=keys, model_version=loaded.version
    )
    return create_app(
        service,
        model_name=settings.model_name or loaded.name,
        keys=keys,
        chat_template=ChatTemplate(),
        tokenizer=getattr(loaded.component, "tokenizer", None),
    )
