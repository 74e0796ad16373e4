"""`package` killed with SIGKILL at random moments leaves the old artefact or the new one.

The pattern of tests/test_crash_safety.py: a forked child packages into the
same directory in a loop and the parent kills it after a random delay spread
over the length of one package, so kills land in the component's own save,
the card, the manifests, the fsyncs and between the two renames. After every
kill the directory must verify and load as *one* of the two artefacts, whole:
its manifest's version and its weights agree.
"""

from __future__ import annotations

import os
import random
import select
import signal
import time
from pathlib import Path

import pytest

from deploy.components import vae
from genarch.deploy import LocalDeployer
from genarch.schemas import ImageRequest
from genarch.testing import assert_same

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork"),
    pytest.mark.usefixtures("one_thread"),
]

KILLS = 24
REQUEST = ImageRequest(num_samples=1, seed=0)


@pytest.mark.slow
def test_package_killed_at_any_moment_leaves_the_old_or_the_new_artefact(
    tmp_path: Path,
) -> None:
    deployer = LocalDeployer()
    models = {"1": vae(seed=1), "2": vae(seed=2)}
    outputs = {version: model.generate(REQUEST) for version, model in models.items()}
    target = tmp_path / "artefact"
    start = time.perf_counter()
    deployer.package(models["1"], target, name="m", version="1")
    seconds = max(time.perf_counter() - start, 1e-3)
    rng = random.Random("package-kills")
    seen = set()
    for kill in range(KILLS):
        version = str(kill % 2 + 1)  # alternate, so every kill replaces one artefact by another
        finished_reader, finished_writer = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child is killed
            try:
                while True:
                    deployer.package(models[version], target, name="m", version=version)
                    os.write(finished_writer, b".")  # one complete package
            finally:
                os._exit(0)
        os.close(finished_writer)
        # Half the kills wait for one complete package first, so both outcomes occur
        # however slow the machine is; then the kill lands at a random moment.
        if rng.random() < 0.5:
            ready, _, _ = select.select([finished_reader], [], [], 120)
            if not ready:  # never hang the suite on a stuck child
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                pytest.fail("the packaging child finished no package in 120 s")
            os.read(finished_reader, 1)
        time.sleep(rng.uniform(0, 2 * seconds))
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        os.close(finished_reader)
        assert os.WIFSIGNALED(status), "the child died before it was killed"
        manifest = deployer.verify(target)  # never IntegrityError, never NotFoundError
        loaded = deployer.load(target)
        assert manifest.version in models
        assert_same(loaded.generate(REQUEST), outputs[manifest.version], path=f"kill {kill}")
        seen.add(manifest.version)
    assert seen == {"1", "2"}, "the kills never let a package finish, or always did"
    deployer.package(models["1"], target, name="m", version="1")
    assert sorted(os.listdir(tmp_path)) == ["artefact"], "a complete package leaves no debris"
