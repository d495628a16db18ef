"""deploy/k8s, offline: Kubernetes schemas (kubernetes-validate), the Dask operator's CRD schemas
(shipped in the dask-kubernetes wheel), and agreement of images, commands and paths with the code."""
from __future__ import annotations

import importlib.resources
import re
import sys
from pathlib import Path

import pytest
import yaml

from models.launch import LAUNCHERS
from pipeline.cli import _parser
from pipeline.cluster import kube_cluster_spec
from pipeline.config import ClusterConfig, load_config

kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is not installed")
jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is not installed")
referencing = pytest.importorskip("referencing", reason="referencing is not installed")

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
K8S_VERSION = "1.33"
DEFS = "https://kubernetes.io/api/_definitions.json"


def _kustomization() -> dict:
    return yaml.safe_load((K8S / "kustomization.yaml").read_text())


def _resources() -> dict[str, dict]:
    """kind -> the one resource of that kind listed in the kustomization."""
    docs = [d for name in _kustomization()["resources"] for d in yaml.safe_load_all((K8S / name).read_text())]
    return {d["kind"]: d for d in docs}


def _k8s_schema_dir() -> Path:
    root = importlib.resources.files("kubernetes_validate") / "kubernetes-json-schema"
    versions = sorted((p.name for p in root.iterdir() if p.name.endswith("-local-strict")),
                      key=lambda n: tuple(int(x) for x in n[1:].split("-")[0].split(".")))
    return Path(str(root / versions[-1]))


def _validator(schema: dict):
    """A draft 2020-12 validator that resolves the Kubernetes definitions (strict: no unknown keys)."""
    import json
    defs = json.loads((_k8s_schema_dir() / "_definitions.json").read_text())
    registry = referencing.Registry().with_resource(DEFS, referencing.Resource.from_contents(defs))
    return jsonschema.Draft202012Validator(schema, registry=registry)


def _core_type(name: str) -> dict:
    import json
    return json.loads((_k8s_schema_dir() / f"{name}-v1.json").read_text())


def _crd_schema(kind: str) -> dict:
    """The operator CRD's openAPIV3Schema with its python:// references made resolvable."""
    pytest.importorskip("dask_kubernetes.operator", reason="dask-kubernetes (its CRDs) is not installed")
    folder = Path(str(importlib.resources.files("dask_kubernetes.operator") / "customresources"))
    crd = yaml.safe_load((folder / f"{kind.lower()}.yaml").read_text())
    templates = yaml.safe_load((folder / "templates.yaml").read_text())["definitions"]

    def resolve(node):
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("python://dask_kubernetes/"):
                return resolve(templates[ref.rsplit("/", 1)[1]])
            if ref.startswith("python://k8s_crd_resolver/"):
                return {"$ref": f"{DEFS}#/$defs/{ref.rsplit('/', 1)[1]}"}
            return {k: resolve(v) for k, v in node.items() if k != "nullable"}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node
    schema = resolve(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    assert crd["spec"]["group"] + "/" + crd["spec"]["versions"][0]["name"] == "kubernetes.dask.org/v1"
    return schema


def _containers(resource: dict) -> list[dict]:
    found = []

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("containers", "initContainers"):
                    found.extend(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
    walk(resource)
    return found


def test_kustomization_lists_every_manifest_and_generates_the_config():
    listed = set(_kustomization()["resources"]) | {g["files"][0] for g in _kustomization()["configMapGenerator"]}
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(_resources()) == {"PersistentVolumeClaim", "DaskCluster", "MPIJob"}


def test_core_resources_validate_against_the_kubernetes_schema():
    pvc = _resources()["PersistentVolumeClaim"]
    assert kubernetes_validate.validate(pvc, K8S_VERSION, strict=True)
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]   # Dask workers and ranks on many nodes


def test_a_broken_manifest_is_rejected_by_the_same_validation():
    pvc = _resources()["PersistentVolumeClaim"]
    broken = {**pvc, "spec": {**pvc["spec"], "accesModes": ["ReadWriteMany"]}}   # misspelt key
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)
    template = _resources()["MPIJob"]["spec"]["mpiReplicaSpecs"]["Worker"]["template"]
    container = {**template["spec"]["containers"][0], "comand": ["sshd"]}                 # misspelt key
    with pytest.raises(jsonschema.ValidationError, match="'comand' was unexpected"):
        _validator(_core_type("podtemplatespec")).validate({"spec": {**template["spec"], "containers": [container]}})
    cluster = _resources()["DaskCluster"]
    with pytest.raises(jsonschema.ValidationError, match="'scheduler' is a required property"):
        _validator(_crd_schema("DaskCluster")).validate({**cluster, "spec": {"worker": cluster["spec"]["worker"]}})


def test_daskcluster_validates_against_the_operator_crd():
    cluster = _resources()["DaskCluster"]
    assert cluster["apiVersion"] == "kubernetes.dask.org/v1"
    _validator(_crd_schema("DaskCluster")).validate(cluster)


def test_mpijob_pod_templates_validate_as_core_pod_template_specs():
    job = _resources()["MPIJob"]
    assert job["apiVersion"] == "kubeflow.org/v2beta1"
    specs = job["spec"]["mpiReplicaSpecs"]
    assert set(specs) == {"Launcher", "Worker"} and specs["Launcher"]["replicas"] == 1
    assert set(job["spec"]) <= {"slotsPerWorker", "runPolicy", "mpiReplicaSpecs", "sshAuthMountPath",
                                "launcherCreationPolicy", "mpiImplementation"}
    assert job["spec"]["mpiImplementation"] in ("OpenMPI", "Intel", "MPICH")
    for _role, spec in specs.items():
        _validator(_core_type("podtemplatespec")).validate(spec["template"])


def test_images_are_the_one_the_docker_docs_build_and_the_kubernetes_kind_uses():
    images = {c["image"] for kind, res in _resources().items() for c in _containers(res)}
    assert images == {ClusterConfig().kubernetes.image} == {"dcpipe:cpu"}
    assert "-t dcpipe:cpu" in (REPO / "deploy" / "docker" / "cpu.Dockerfile").read_text()


def test_launcher_runs_dcpipe_with_the_mounted_config_and_the_shared_workdir():
    res = _resources()
    launcher = res["MPIJob"]["spec"]["mpiReplicaSpecs"]["Launcher"]["template"]["spec"]
    container = launcher["containers"][0]
    args = _parser().parse_args(container["command"][1:])           # the real CLI accepts it
    assert container["command"][0] == "dcpipe" and args.command == "run"
    assert args.launcher in LAUNCHERS and args.launcher == "mpirun"
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in launcher["volumes"]}
    # --config is the generated ConfigMap's file, and it is a valid dcpipe config for the address kind
    generated = _kustomization()["configMapGenerator"][0]
    assert volumes["config"]["configMap"]["name"] == generated["name"]
    assert args.config == f"{mounts['config']}/{generated['files'][0]}"
    cfg = load_config(K8S / generated["files"][0])
    assert cfg.cluster.kind == "address" and cfg.cluster.workers == res["DaskCluster"]["spec"]["worker"]["replicas"]
    # ranks: one per worker slot
    worker = res["MPIJob"]["spec"]["mpiReplicaSpecs"]["Worker"]
    assert args.np == worker["replicas"] * res["MPIJob"]["spec"]["slotsPerWorker"]
    # the scheduler address names the operator's service <cluster>-scheduler and its comm port
    env = {e["name"]: e.get("value") for e in container["env"]}
    service = res["DaskCluster"]["spec"]["scheduler"]["service"]
    comm = next(p["port"] for p in service["ports"] if p["name"] == "tcp-comm")
    assert env["DASK_SCHEDULER_ADDRESS"] == f"tcp://{res['DaskCluster']['metadata']['name']}-scheduler:{comm}"
    assert service["selector"]["dask.org/cluster-name"] == res["DaskCluster"]["metadata"]["name"]


def test_every_pod_that_touches_the_dataset_mounts_the_claim_under_the_workdir():
    res = _resources()
    claim = res["PersistentVolumeClaim"]["metadata"]["name"]
    launcher = res["MPIJob"]["spec"]["mpiReplicaSpecs"]["Launcher"]["template"]["spec"]
    workdir = _parser().parse_args(launcher["containers"][0]["command"][1:]).workdir
    pods = [res["DaskCluster"]["spec"]["worker"]["spec"], launcher,
            res["MPIJob"]["spec"]["mpiReplicaSpecs"]["Worker"]["template"]["spec"]]
    for pod in pods:
        data = [v["name"] for v in pod["volumes"] if v.get("persistentVolumeClaim", {}).get("claimName") == claim]
        assert len(data) == 1, pod
        mount = next(m["mountPath"] for c in pod["containers"] for m in c["volumeMounts"] if m["name"] == data[0])
        assert Path(workdir).is_relative_to(mount), (workdir, mount)


def test_dask_pods_run_the_dask_cli_and_mpi_workers_run_sshd():
    res = _resources()
    spec = res["DaskCluster"]["spec"]
    assert spec["scheduler"]["spec"]["containers"][0]["args"][:2] == ["dask", "scheduler"]
    assert spec["worker"]["spec"]["containers"][0]["args"][:2] == ["dask", "worker"]
    worker = res["MPIJob"]["spec"]["mpiReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]
    assert worker["command"][0] == "/usr/sbin/sshd"
    # the image installs what these commands need
    dockerfile = (REPO / "deploy" / "docker" / "cpu.Dockerfile").read_text()
    for package in ("openssh-server", "openmpi-bin", "libopenmpi-dev"):
        assert re.search(rf"\b{package}\b", dockerfile), package
    # `dask scheduler` / `dask worker`: the console script that the pinned dask installs
    assert Path(sys.executable).with_name("dask").exists()


def test_kubernetes_kind_creates_a_valid_daskcluster_that_mounts_the_dataset_claim():
    cfg = ClusterConfig.model_validate({"kind": "kubernetes", "kubernetes": {"name": "prep", "n_workers": 3}})
    spec = kube_cluster_spec(cfg)
    _validator(_crd_schema("DaskCluster")).validate(spec)
    manifests = _resources()
    worker = spec["spec"]["worker"]["spec"]
    assert spec["spec"]["worker"]["replicas"] == 3 and spec["metadata"]["name"] == "prep"
    assert {c["image"] for c in _containers(spec)} == {c["image"] for c in _containers(manifests["DaskCluster"])}
    assert worker["volumes"][0]["persistentVolumeClaim"]["claimName"] == manifests["PersistentVolumeClaim"]["metadata"]["name"]
    manifest_mount = manifests["DaskCluster"]["spec"]["worker"]["spec"]["containers"][0]["volumeMounts"][0]
    assert worker["containers"][0]["volumeMounts"] == [{"name": "data", "mountPath": manifest_mount["mountPath"]}]
    no_claim = ClusterConfig.model_validate({"kind": "kubernetes", "kubernetes": {"claim": None}})
    assert "volumes" not in kube_cluster_spec(no_claim)["spec"]["worker"]["spec"]
