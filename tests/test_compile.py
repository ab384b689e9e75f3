"""The committed pipeline spec is exactly what the code compiles to, and safe to publish."""

import re

import yaml

from mlops import config as images
from pipelines.compile import COMPILED_DIR, compile_all


def test_committed_specs_match_a_fresh_compile(tmp_path):
    for fresh in compile_all(tmp_path):
        committed = COMPILED_DIR / fresh.name
        assert committed.exists(), f"{committed} is missing: run `make compile` and commit it"
        assert committed.read_text() == fresh.read_text(), f"{committed.name} is stale: run `make compile`"


def test_spec_uses_our_images_and_installs_nothing_at_run_time():
    text = (COMPILED_DIR / "training_pipeline.yaml").read_text()
    used = set(re.findall(r"image: (\S+)", text))
    assert used == {images.BASE_IMAGE, images.TFDV_IMAGE}
    assert "pip install" not in text


def test_spec_holds_no_credentials_only_references():
    text = (COMPILED_DIR / "training_pipeline.yaml").read_text()
    documents = list(yaml.safe_load_all(text))
    for executor in documents[0]["deploymentSpec"]["executors"].values():
        inline = {entry["name"] for entry in executor["container"].get("env", [])}
        assert not {name for name in inline if re.search("KEY|SECRET|PASSWORD|TOKEN", name)}
    for well_known_default in ("minioadmin", "minio123"):
        assert well_known_default not in text
    platform = documents[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for executor in platform.values():
        assert executor["secretAsEnv"][0]["secretName"] in ("mlops-role-pipeline", "mlops-role-registry")
        assert executor["securityContext"]["runAsNonRoot"] is True


def test_every_executor_has_resource_limits():
    spec = next(yaml.safe_load_all((COMPILED_DIR / "training_pipeline.yaml").read_text()))
    for name, executor in spec["deploymentSpec"]["executors"].items():
        resources = executor["container"]["resources"]
        assert {"resourceCpuLimit", "resourceMemoryLimit"} <= set(resources), name
