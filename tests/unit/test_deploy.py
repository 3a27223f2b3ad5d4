"""The Docker and Kubernetes files, checked as far as this machine can (no Docker engine, no
Kubernetes): the compose file against the Compose Specification's JSON schema, the
FlinkDeployment against the Flink Kubernetes Operator's CRD schema (both vendored under
tests/deploy_schemas/, sources below), and both against what the local cluster tests run."""

from __future__ import annotations

import json
import re

import jsonschema
import yaml

from tallyflow.ops import cluster
from tallyflow.settings import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"
SCHEMAS = REPO_ROOT / "tests" / "deploy_schemas"
# compose-spec/compose-spec@170098ba07d9f53c383a41bfd4c5166b0a4529a6: schema/compose-spec.json
COMPOSE_SCHEMA = SCHEMAS / "compose-spec.json"
# apache/flink-kubernetes-operator release-1.14.0 (e50a770379829e76e56dc1eb51e774de2c4117e7):
# helm/flink-kubernetes-operator/crds/flinkdeployments.flink.apache.org-v1.yml
CRD = SCHEMAS / "flinkdeployments.flink.apache.org-v1.yml"


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "docker" / "docker-compose.yml").read_text())


def test_the_compose_file_is_valid_compose():
    jsonschema.Draft7Validator(json.loads(COMPOSE_SCHEMA.read_text())).validate(compose())


def test_compose_binds_loopback_keeps_named_volumes_and_mounts_the_catalog():
    doc = compose()
    services = doc["services"]
    for name, service in services.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)
    assert {"kafka-data", "clickhouse-data", "checkpoints"} <= set(doc["volumes"])
    assert "kafka-data:/var/lib/kafka/data" in services["kafka"]["volumes"]
    assert "clickhouse-data:/var/lib/clickhouse" in services["clickhouse"]["volumes"]
    kafka = services["kafka"]["environment"]
    assert kafka["KAFKA_LOG_RETENTION_HOURS"] == -1 and kafka["KAFKA_LOG_RETENTION_BYTES"] == -1
    for name in ("submit", "loader"):
        mounts = [v for v in services[name]["volumes"] if isinstance(v, dict)]
        assert mounts and mounts[0]["target"] == "/etc/tallyflow/catalog.yaml" and mounts[0]["type"] == "bind"
        assert "/etc/tallyflow/catalog.yaml" in services[name]["command"]


def test_compose_submits_after_a_healthy_jobmanager_with_the_command_the_cluster_test_runs():
    services = compose()["services"]
    assert services["jobmanager"]["healthcheck"]["test"]
    assert services["submit"]["depends_on"]["jobmanager"]["condition"] == "service_healthy"
    command = services["submit"]["command"]
    assert command[:5] == ["tallyflow", "run", "--cluster", "http://jobmanager:8081", "--detach"]
    # tests/integration/test_cluster.py runs `run --detach` twice (idempotent) and `load`, the
    # loader service's command, against `tallyflow cluster up`.
    cluster_test = (REPO_ROOT / "tests" / "integration" / "test_cluster.py").read_text()
    assert '"run", "--catalog", str(path), "--detach"' in cluster_test and 'command="load"' in cluster_test
    assert services["loader"]["command"][:2] == ["tallyflow", "load"]
    assert services["jobmanager"]["command"] == "jobmanager" and services["taskmanager"]["command"] == "taskmanager"


def test_the_image_runs_the_scripts_cluster_up_runs():
    # flink-docker's entrypoint (apache/flink-docker@983be34, 2.2/scala_2.12-java17-ubuntu) runs
    # `$FLINK_HOME/bin/jobmanager.sh start-foreground` for `jobmanager` and taskmanager.sh for
    # `taskmanager`: the same scripts, in the same mode, that `tallyflow cluster up` starts.
    assert cluster.command("jobmanager")[1:3] == [
        str(cluster.distribution() / "bin" / "jobmanager.sh"),
        "start-foreground",
    ]
    assert cluster.command("taskmanager-1")[1:3] == [
        str(cluster.distribution() / "bin" / "taskmanager.sh"),
        "start-foreground",
    ]


def test_the_dockerfile_installs_a_shared_python_and_a_writable_checkpoint_directory():
    text = (DEPLOY / "docker" / "Dockerfile").read_text()
    assert "FROM flink:2.2.1-java17" in text
    assert "ppa:deadsnakes/ppa" in text and "libpython3.11" in text  # Ubuntu 24.04 has no python3.11
    assert "LDLIBRARY" in text  # the build fails unless libpython is a shared library
    assert re.search(r"mkdir -p /opt/tallyflow/data/checkpoints.*\n.*chown -R flink:flink /opt/tallyflow", text)
    assert "deploy/demo" not in text  # the catalog is mounted, not baked in
    assert "flink-python-" in text and "/opt/flink/lib/" in text


def crd_schema() -> dict:
    crd = yaml.safe_load(CRD.read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1beta1"]
    return version["schema"]["openAPIV3Schema"]


def flinkdeployment() -> dict:
    return yaml.safe_load((DEPLOY / "k8s" / "flinkdeployment.yaml").read_text())


def test_the_flinkdeployment_is_valid_against_the_operator_crd():
    jsonschema.validate(flinkdeployment(), crd_schema())
    enum = crd_schema()["properties"]["spec"]["properties"]["flinkVersion"]["enum"]
    assert "v2_2" in enum and flinkdeployment()["spec"]["flinkVersion"] == "v2_2"


def test_the_flinkdeployment_runs_the_entry_point_with_s3_and_the_catalog_configmap():
    spec = flinkdeployment()["spec"]
    job = spec["job"]
    assert job["args"][:2] == ["-py", "/opt/tallyflow/jobs/metering_job.py"]
    assert (REPO_ROOT / "jobs" / "metering_job.py").is_file()
    assert job["jarURI"] == "local:///opt/flink/lib/flink-python-2.2.1.jar" and job["upgradeMode"] == "last-state"
    conf = spec["flinkConfiguration"]
    for key in ("execution.checkpointing.dir", "execution.checkpointing.savepoint-dir", "high-availability.storageDir"):
        assert conf[key].startswith("s3://"), key
    (container,) = spec["podTemplate"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["ENABLE_BUILT_IN_PLUGINS"]["value"].startswith("flink-s3-fs-presto")
    volumes = {v["name"]: v for v in spec["podTemplate"]["spec"]["volumes"]}
    assert volumes["catalog"]["configMap"]["name"] == "tallyflow-catalog"


def test_the_loader_has_probes_the_api_answers():
    doc = yaml.safe_load((DEPLOY / "k8s" / "loader.yaml").read_text())
    (container,) = doc["spec"]["template"]["spec"]["containers"]
    assert container["command"][:2] == ["tallyflow", "load"] and "--serve" in container["command"]
    from tallyflow.serve.api import service

    routes = {route.path for route in service.router.routes}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz" and "/healthz" in routes
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz" and "/readyz" in routes
