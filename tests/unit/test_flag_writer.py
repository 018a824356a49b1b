"""FlagWriter against in-memory fakes of CoreV1Api / CustomObjectsApi that keep the one
API behaviour the writer depends on: resourceVersion bumps on write, 409 when stale.
(The simulated cluster is not on main yet; these fakes stand in for it.)"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from kubernetes.client import ApiException, V1ConfigMap, V1ObjectMeta
from openfeature.contrib.tools.flagd.core import FlagdCore
from openfeature.evaluation_context import EvaluationContext

from controller.adapters.flags.flag_writer import FlagWriter
from controller.core.flags import FINGERPRINT_ANNOTATION
from controller.core.models.lane import FlagRamp
from controller.core.models.release import ReleaseFlag

FLAG = ReleaseFlag(key="new-search", on_variant="on", off_variant="off")


def flagd_definitions() -> dict[str, Any]:
    return {
        "flags": {
            "new-search": {
                "state": "ENABLED",
                "variants": {"on": True, "off": False},
                "defaultVariant": "off",
            }
        }
    }


class FakeCoreV1Api:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], V1ConfigMap] = {}
        self.version = 100
        self.before_replace: Callable[[], None] | None = None
        self.replaces = 0

    def put(self, namespace: str, name: str, data: dict[str, str]) -> None:
        self.version += 1
        meta = V1ObjectMeta(name=name, namespace=namespace, resource_version=str(self.version))
        self.objects[(namespace, name)] = V1ConfigMap(metadata=meta, data=data)

    def human_edit(self, namespace: str, name: str, edit: Callable[[V1ConfigMap], None]) -> None:
        cm = self.objects[(namespace, name)]
        edit(cm)
        self.version += 1
        assert cm.metadata is not None
        cm.metadata.resource_version = str(self.version)

    def read_namespaced_config_map(self, name: str, namespace: str) -> V1ConfigMap:
        if (namespace, name) not in self.objects:
            raise ApiException(status=404, reason="Not Found")
        return copy.deepcopy(self.objects[(namespace, name)])

    def replace_namespaced_config_map(
        self, name: str, namespace: str, body: V1ConfigMap
    ) -> V1ConfigMap:
        if self.before_replace is not None:
            hook, self.before_replace = self.before_replace, None
            hook()
        current = self.objects[(namespace, name)]
        assert body.metadata is not None and current.metadata is not None
        if body.metadata.resource_version != current.metadata.resource_version:
            raise ApiException(status=409, reason="Conflict")
        self.replaces += 1
        self.version += 1
        stored = copy.deepcopy(body)
        assert stored.metadata is not None
        stored.metadata.resource_version = str(self.version)
        self.objects[(namespace, name)] = stored
        return copy.deepcopy(stored)


class FakeCustomObjectsApi:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str, str, str], dict[str, Any]] = {}
        self.version = 500

    def put(self, namespace: str, name: str, flag_spec: dict[str, Any]) -> None:
        self.version += 1
        self.objects[("core.openfeature.dev", "v1beta1", namespace, "featureflags", name)] = {
            "apiVersion": "core.openfeature.dev/v1beta1",
            "kind": "FeatureFlag",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "resourceVersion": str(self.version),
            },
            "spec": {"flagSpec": flag_spec},
        }

    def get_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, name: str
    ) -> dict[str, Any]:
        key = (group, version, namespace, plural, name)
        if key not in self.objects:
            raise ApiException(status=404, reason="Not Found")
        return copy.deepcopy(self.objects[key])

    def replace_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, name: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        key = (group, version, namespace, plural, name)
        if (
            body["metadata"].get("resourceVersion")
            != self.objects[key]["metadata"]["resourceVersion"]
        ):
            raise ApiException(status=409, reason="Conflict")
        self.version += 1
        stored = copy.deepcopy(body)
        stored["metadata"]["resourceVersion"] = str(self.version)
        self.objects[key] = stored
        return copy.deepcopy(stored)


def on_share(definitions: dict[str, Any]) -> float:
    core = FlagdCore()
    core.set_flags(definitions)
    users = [f"u{i}" for i in range(500)]
    hits = sum(
        core.resolve_boolean_value("new-search", False, EvaluationContext(targeting_key=u)).value
        for u in users
    )
    return hits / len(users)


@pytest.fixture
def core() -> FakeCoreV1Api:
    api = FakeCoreV1Api()
    api.put("docs", "flags", {"flags.flagd.json": json.dumps(flagd_definitions())})
    return api


def writer_for(core: FakeCoreV1Api, key: str = "flags.flagd.json") -> FlagWriter:
    return FlagWriter(FlagRamp(target="configMap", name="flags", key=key), "docs", core=core)


def stored_definitions(core: FakeCoreV1Api, key: str = "flags.flagd.json") -> dict[str, Any]:
    data = core.objects[("docs", "flags")].data
    assert data is not None
    loaded: dict[str, Any] = yaml.safe_load(data[key])
    return loaded


def test_ramp_through_a_configmap(core: FakeCoreV1Api) -> None:
    writer = writer_for(core)
    for weight in (10, 50, 100):
        outcome = writer.set_weight(FLAG, weight)
        assert outcome.status == "applied", outcome
        assert writer.current_weight(FLAG) == weight
    assert on_share(stored_definitions(core)) == 1.0
    cm = core.objects[("docs", "flags")]
    assert cm.metadata is not None and cm.metadata.annotations is not None
    assert json.loads(cm.metadata.annotations[FINGERPRINT_ANNOTATION])["new-search"].startswith(
        "sha256:"
    )
    # Writing the same weight again is a no-op, not a write.
    replaces = core.replaces
    assert writer.set_weight(FLAG, 100).status == "unchanged"
    assert core.replaces == replaces
    off = writer.disable(FLAG)
    assert off.ok and writer.current_weight(FLAG) == 0
    assert on_share(stored_definitions(core)) == 0.0


def test_yaml_data_key(core: FakeCoreV1Api) -> None:
    core.put("docs", "flags", {"flags.yaml": yaml.safe_dump(flagd_definitions())})
    writer = writer_for(core, "flags.yaml")
    assert writer.set_weight(FLAG, 20).status == "applied"
    assert stored_definitions(core, "flags.yaml")["flags"]["new-search"]["targeting"] == {
        "fractional": [["on", 20], ["off", 80]]
    }


def test_human_edit_mid_ramp_is_detected_and_not_overwritten(core: FakeCoreV1Api) -> None:
    writer = writer_for(core)
    assert writer.set_weight(FLAG, 10).status == "applied"

    def pull_back(cm: V1ConfigMap) -> None:
        defs = json.loads((cm.data or {})["flags.flagd.json"])
        defs["flags"]["new-search"]["targeting"]["fractional"] = [["on", 1], ["off", 99]]
        cm.data = {"flags.flagd.json": json.dumps(defs)}

    core.human_edit("docs", "flags", pull_back)
    outcome = writer.set_weight(FLAG, 50)
    assert outcome.status == "editedBySomeoneElse" and not outcome.ok
    assert outcome.reason.startswith(
        "ConfigMap docs/flags key flags.flagd.json: "
        "flag 'new-search' was edited by someone else mid-ramp"
    )
    assert writer.current_weight(FLAG) == 1  # the human's value stands
    # Rollback still switches the flag off (the safe direction) and says it overrode.
    off = writer.disable(FLAG)
    assert off.status == "applied" and "overrode an edit by someone else" in off.reason
    assert writer.current_weight(FLAG) == 0


def test_a_concurrent_write_gets_409_then_the_edit_is_seen(core: FakeCoreV1Api) -> None:
    writer = writer_for(core)
    assert writer.set_weight(FLAG, 10).status == "applied"

    def race() -> None:
        core.human_edit(
            "docs",
            "flags",
            lambda cm: setattr(cm, "data", {"flags.flagd.json": json.dumps(flagd_definitions())}),
        )

    core.before_replace = race
    outcome = writer.set_weight(FLAG, 50)
    assert outcome.status == "editedBySomeoneElse"
    assert writer.current_weight(FLAG) is None  # the human removed the ramp entirely


def test_unrelated_concurrent_change_is_retried_and_applied(core: FakeCoreV1Api) -> None:
    writer = writer_for(core)
    assert writer.set_weight(FLAG, 10).status == "applied"

    def label_it() -> None:
        core.human_edit(
            "docs", "flags", lambda cm: setattr(cm.metadata, "labels", {"team": "docs"})
        )

    core.before_replace = label_it
    outcome = writer.set_weight(FLAG, 50)
    assert outcome.status == "applied"
    assert writer.current_weight(FLAG) == 50
    meta = core.objects[("docs", "flags")].metadata
    assert meta is not None and meta.labels == {"team": "docs"}


def test_bad_targets_are_reported_not_raised(core: FakeCoreV1Api) -> None:
    core.put("docs", "flags", {"flags.flagd.json": '{"flags": {'})
    outcome = writer_for(core).set_weight(FLAG, 10)
    assert outcome.status == "invalid"
    assert outcome.reason.startswith(
        "ConfigMap docs/flags key flags.flagd.json: does not parse as JSON"
    )
    missing = FlagWriter(FlagRamp(name="nope"), "docs", core=core).set_weight(FLAG, 10)
    assert (missing.status, missing.reason) == (
        "invalid",
        "ConfigMap docs/nope key flags.flagd.json: not found",
    )
    core.put("docs", "flags", {"flags.flagd.json": json.dumps({"flags": {}})})
    assert "flag 'new-search': not found" in writer_for(core).set_weight(FLAG, 10).reason


def test_garbled_fingerprint_annotation_counts_as_an_edit(core: FakeCoreV1Api) -> None:
    writer = writer_for(core)
    assert writer.set_weight(FLAG, 10).status == "applied"
    core.human_edit(
        "docs",
        "flags",
        lambda cm: setattr(cm.metadata, "annotations", {FINGERPRINT_ANNOTATION: "oops"}),
    )
    outcome = writer.set_weight(FLAG, 50)
    assert outcome.status == "editedBySomeoneElse" and "not the JSON map" in outcome.reason


def test_feature_flag_target() -> None:
    custom = FakeCustomObjectsApi()
    custom.put("docs", "search", flagd_definitions())
    writer = FlagWriter(FlagRamp(target="featureFlag", name="search"), "docs", custom=custom)
    assert writer.target == "FeatureFlag docs/search"
    assert writer.set_weight(FLAG, 25).status == "applied"
    obj = custom.objects[("core.openfeature.dev", "v1beta1", "docs", "featureflags", "search")]
    assert obj["spec"]["flagSpec"]["flags"]["new-search"]["targeting"] == {
        "fractional": [["on", 25], ["off", 75]]
    }
    assert FINGERPRINT_ANNOTATION in obj["metadata"]["annotations"]
    # Someone edits the FeatureFlag (e.g. kubectl edit) mid-ramp.
    obj["spec"]["flagSpec"]["flags"]["new-search"]["defaultVariant"] = "on"
    outcome = writer.set_weight(FLAG, 50)
    assert outcome.status == "editedBySomeoneElse"
    assert outcome.reason.startswith(
        "FeatureFlag docs/search: flag 'new-search' was edited by someone else"
    )
