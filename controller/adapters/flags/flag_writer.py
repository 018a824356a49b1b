"""Write a release flag's ramp weight where the lane keeps its flag definitions.

Targets (``ChangeLane.spec.strategy.flagRamp``):

* ``configMap``: flagd definitions (JSON, or YAML when the data key ends in .yaml/.yml)
  in one data key of a ConfigMap, e.g. the one flagd or the FILE provider mounts;
* ``featureFlag``: an OpenFeature Operator ``FeatureFlag``
  (``core.openfeature.dev/v1beta1``), whose ``spec.flagSpec`` is the definitions.

Every write is a read-modify-replace carrying the ``resourceVersion`` that was read, so a
concurrent writer makes the API answer 409 and we read again instead of clobbering it.
Each write records the flag's fingerprint in the object's
``changelane.dev/flag-fingerprints`` annotation; when the flag no longer matches it, a
human edited it mid-ramp, and the writer reports that instead of overwriting their edit.
The one exception is :meth:`FlagWriter.disable` (rollback: everyone back to the off
variant), which is always the safe direction and so is applied, with the edit reported.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import structlog
import yaml
from kubernetes.client import (
    ApiException,
    CoreV1Api,
    CustomObjectsApi,
    V1ConfigMap,
    V1ObjectMeta,
)
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_random_exponential

from controller.core.flags import (
    FINGERPRINT_ANNOTATION,
    FlagDefinitionError,
    detect_foreign_edit,
    flag_fingerprint,
    parse_fingerprints,
    ramp_flag,
    ramp_weight,
    render_fingerprints,
)
from controller.core.models.lane import FlagRamp
from controller.core.models.release import ReleaseFlag
from controller.core.release_machine import FlagObservation

FEATURE_FLAG_GROUP = "core.openfeature.dev"
FEATURE_FLAG_VERSION = "v1beta1"
FEATURE_FLAG_PLURAL = "featureflags"

log = structlog.get_logger(__name__)

WriteStatus = Literal["applied", "unchanged", "editedBySomeoneElse", "invalid"]


@dataclass(frozen=True)
class FlagWrite:
    flag: str
    weight: int
    status: WriteStatus
    reason: str = ""
    resource_version: str | None = None

    @property
    def ok(self) -> bool:
        return self.status in ("applied", "unchanged")


@dataclass
class _Stored:
    """One read of the target: its definitions, our fingerprints, and how to write back."""

    definitions: dict[str, Any]
    fingerprints: dict[str, str] | None
    resource_version: str | None
    save: Callable[[dict[str, Any], dict[str, str]], str | None]


class _Target(Protocol):
    description: str

    def read(self) -> _Stored: ...


def _is_conflict(err: BaseException) -> bool:
    return isinstance(err, ApiException) and err.status == 409


class FlagWriter:
    def __init__(
        self,
        ramp: FlagRamp,
        namespace: str,
        *,
        core: CoreV1Api | None = None,
        custom: CustomObjectsApi | None = None,
    ) -> None:
        target_namespace = ramp.namespace or namespace
        self._target: _Target
        if ramp.target == "configMap":
            self._target = _ConfigMapTarget(core or CoreV1Api(), target_namespace, ramp)
        else:
            self._target = _FeatureFlagTarget(custom or CustomObjectsApi(), target_namespace, ramp)

    @property
    def target(self) -> str:
        return self._target.description

    def current_weight(self, flag: ReleaseFlag) -> int | None:
        """The on-weight the flag is ramped to now; None when it is not our ramp shape.
        Raises :class:`FlagDefinitionError` when the target cannot be read."""
        return ramp_weight(self._target.read().definitions, flag.key, flag.on_variant)

    def observe(self, flag: ReleaseFlag) -> FlagObservation:
        """The on-weight in force and anything that stops the controller from ramping the
        flag: the target cannot be read, the flag cannot be ramped as asked, or someone
        else edited it since the controller last wrote it. Never raises."""
        try:
            stored = self._target.read()
        except FlagDefinitionError as err:
            return FlagObservation(None, str(err))
        except ApiException as err:
            return FlagObservation(None, f"{self.target}: API error {err.status} {err.reason}")
        weight = ramp_weight(stored.definitions, flag.key, flag.on_variant)
        edit = self._edit_reason(stored, flag)
        if edit:
            return FlagObservation(weight, edit)
        try:  # can the flag be ramped at all (variants present, targeting ours)?
            ramp_flag(
                stored.definitions,
                flag.key,
                on_variant=flag.on_variant,
                off_variant=flag.off_variant,
                weight=0,
            )
        except FlagDefinitionError as err:
            return FlagObservation(weight, f"{self.target}: {err}")
        return FlagObservation(weight)

    def _edit_reason(self, stored: _Stored, flag: ReleaseFlag) -> str:
        where = self._target.description
        if stored.fingerprints is None:
            return (
                f"{where}: annotation {FINGERPRINT_ANNOTATION} is not the JSON map the "
                "controller writes; someone else changed it"
            )
        check = detect_foreign_edit(stored.definitions, flag.key, stored.fingerprints.get(flag.key))
        return f"{where}: {check.reason}" if check.edited else ""

    def set_weight(self, flag: ReleaseFlag, weight: int) -> FlagWrite:
        return self._write(flag, weight, override_edits=False)

    def disable(self, flag: ReleaseFlag) -> FlagWrite:
        """Weight 0 for everyone: the first, fastest step of a rollback."""
        return self._write(flag, 0, override_edits=True)

    @retry(
        retry=retry_if_exception(_is_conflict),
        stop=stop_after_attempt(5),
        wait=wait_random_exponential(multiplier=0.05, max=1),
        reraise=True,
    )
    def _write(self, flag: ReleaseFlag, weight: int, *, override_edits: bool) -> FlagWrite:
        where = self._target.description
        try:
            stored = self._target.read()
        except FlagDefinitionError as err:
            return FlagWrite(flag.key, weight, "invalid", str(err))

        def result(status: WriteStatus, reason: str = "", rv: str | None = None) -> FlagWrite:
            return FlagWrite(flag.key, weight, status, reason, rv or stored.resource_version)

        edit_reason = self._edit_reason(stored, flag)
        if edit_reason and not override_edits:
            log.warning(
                "flag_edited_by_someone_else", flag=flag.key, target=where, reason=edit_reason
            )
            return result("editedBySomeoneElse", edit_reason)
        try:
            new = ramp_flag(
                stored.definitions,
                flag.key,
                on_variant=flag.on_variant,
                off_variant=flag.off_variant,
                weight=weight,
            )
        except FlagDefinitionError as err:
            return result("invalid", f"{where}: {err}")
        fingerprint = flag_fingerprint(new, flag.key)
        assert fingerprint is not None  # ramp_flag only succeeds on a present flag
        fingerprints = dict(stored.fingerprints or {})
        if new == stored.definitions and fingerprints.get(flag.key) == fingerprint:
            return result("unchanged", f"{flag.key} already at {weight}%")
        fingerprints[flag.key] = fingerprint
        rv = stored.save(new, fingerprints)
        log.info("flag_weight_written", flag=flag.key, weight=weight, target=where)
        reason = f"overrode an edit by someone else to switch the flag off ({edit_reason})"
        return result("applied", reason if edit_reason else "", rv)


class _ConfigMapTarget:
    def __init__(self, api: CoreV1Api, namespace: str, ramp: FlagRamp) -> None:
        self._api = api
        self._namespace = namespace
        self._name = ramp.name
        self._key = ramp.key
        self.description = f"ConfigMap {namespace}/{ramp.name} key {ramp.key}"
        self._yaml = ramp.key.endswith((".yaml", ".yml"))

    def read(self) -> _Stored:
        try:
            cm: V1ConfigMap = self._api.read_namespaced_config_map(self._name, self._namespace)
        except ApiException as err:
            if err.status == 404:
                raise FlagDefinitionError(f"{self.description}: not found") from None
            raise
        text = (cm.data or {}).get(self._key)
        if text is None:
            raise FlagDefinitionError(f"{self.description}: the key is missing")
        try:
            definitions = yaml.safe_load(text) if self._yaml else json.loads(text)
        except (ValueError, yaml.YAMLError) as err:
            raise FlagDefinitionError(
                f"{self.description}: does not parse as {'YAML' if self._yaml else 'JSON'} "
                f"flagd definitions ({str(err).splitlines()[0]})"
            ) from None
        if not isinstance(definitions, dict):
            raise FlagDefinitionError(f"{self.description}: expected a flagd definitions object")
        annotations = dict(cm.metadata.annotations or {}) if cm.metadata else {}

        def save(new: dict[str, Any], fingerprints: dict[str, str]) -> str | None:
            text = (
                yaml.safe_dump(new, sort_keys=False)
                if self._yaml
                else json.dumps(new, indent=2) + "\n"
            )
            cm.data = {**(cm.data or {}), self._key: text}
            if cm.metadata is None:
                cm.metadata = V1ObjectMeta(name=self._name, namespace=self._namespace)
            cm.metadata.annotations = {
                **annotations,
                FINGERPRINT_ANNOTATION: render_fingerprints(fingerprints),
            }
            # cm.metadata.resource_version is the version read: a stale one gets a 409.
            written: V1ConfigMap = self._api.replace_namespaced_config_map(
                self._name, self._namespace, cm
            )
            return written.metadata.resource_version if written.metadata else None

        return _Stored(
            definitions,
            parse_fingerprints(annotations.get(FINGERPRINT_ANNOTATION)),
            cm.metadata.resource_version if cm.metadata else None,
            save,
        )


class _FeatureFlagTarget:
    def __init__(self, api: CustomObjectsApi, namespace: str, ramp: FlagRamp) -> None:
        self._api = api
        self._namespace = namespace
        self._name = ramp.name
        self.description = f"FeatureFlag {namespace}/{ramp.name}"

    def read(self) -> _Stored:
        try:
            raw: object = self._api.get_namespaced_custom_object(
                FEATURE_FLAG_GROUP,
                FEATURE_FLAG_VERSION,
                self._namespace,
                FEATURE_FLAG_PLURAL,
                self._name,
            )
        except ApiException as err:
            if err.status == 404:
                raise FlagDefinitionError(f"{self.description}: not found") from None
            raise
        if not isinstance(raw, dict):
            raise FlagDefinitionError(f"{self.description}: the API returned no object")
        obj: dict[str, Any] = raw
        spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
        flag_spec = spec.get("flagSpec") if isinstance(spec, dict) else None
        if not isinstance(flag_spec, dict):
            raise FlagDefinitionError(f"{self.description}: has no spec.flagSpec object")
        metadata = obj.setdefault("metadata", {})
        annotations = dict(metadata.get("annotations") or {})

        def save(new: dict[str, Any], fingerprints: dict[str, str]) -> str | None:
            obj["spec"]["flagSpec"] = new
            metadata["annotations"] = {
                **annotations,
                FINGERPRINT_ANNOTATION: render_fingerprints(fingerprints),
            }
            written: object = self._api.replace_namespaced_custom_object(
                FEATURE_FLAG_GROUP,
                FEATURE_FLAG_VERSION,
                self._namespace,
                FEATURE_FLAG_PLURAL,
                self._name,
                obj,
            )
            meta = written.get("metadata") if isinstance(written, dict) else None
            rv = meta.get("resourceVersion") if isinstance(meta, dict) else None
            return rv if isinstance(rv, str) else None

        return _Stored(
            flag_spec,
            parse_fingerprints(annotations.get(FINGERPRINT_ANNOTATION)),
            metadata.get("resourceVersion"),
            save,
        )
