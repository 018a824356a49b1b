"""The chart's RBAC is what the controller and the on-call commands really do.

The real controller (two instances, leader election on a Lease in the release namespace)
runs a whole life against the simulated cluster: adoption, a promoted and a rolled-back
release, a Gateway API lane, flag ramps in a ConfigMap and a FeatureFlag, a lane that
suspends itself, a lease handover, Events. Then the on-call commands run as a viewer and as
an operator. Each identity has its own token, every request the cluster served is recorded
with its RBAC attributes, and the cluster ENFORCES the chart's rendered roles while this
runs (a denied request is a 403, as on a real cluster). Then:

(a) every request each identity sent is allowed by the role the chart gives it, and
(b) every verb the chart grants was used, except the few listed in ``NOT_EXERCISED`` with
    the reason they must exist anyway (and those are checked to be really unexercised,
    so the list cannot go stale).
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python
import pytest
from click.testing import CliRunner, Result

from controller.adapters.audit.anchor import DEFAULT_NAME as ANCHOR_NAME
from controller.adapters.audit.anchor import AuditAnchor
from controller.adapters.audit.log import FsyncPolicy
from controller.adapters.audit.sink import FanOutAuditSink
from controller.cli.main import cli
from controller.core.canary import template_hash
from controller.core.retention import RetentionPolicy
from controller.dashboard.app import controller_dashboard
from controller.runtime.audit_chain import AnchoredAuditLog
from controller.runtime.retention import ReleaseRetention
from controller.runtime.shard_audit import ShardedAuditLog, shard_anchor_name
from controller.runtime.shard_wiring import lane_batch
from controller.sim.request_audit import ApiRequest, RequestLog
from tests.runtime.harness import (
    NS,
    Env,
    deployment_doc,
    lane_doc,
    new_controller,
    provenance,
    running,
    wait,
)
from tests.runtime.test_flag_ramp import FLAG, STEPS, definitions
from tests.runtime.test_gateway_api import ROUTE
from tests.shipping.chartlib import NAMESPACE, Rendered, only, render
from tests.shipping.rbaclib import Access, Grant, Policy, authorize, unused

pytestmark = pytest.mark.slow

FAST = [{"weight": 50, "minDuration": "0s"}, {"weight": 100, "minDuration": "0s"}]
# A first step long enough that the operator acts while the canary is at it.
SLOW = [{"weight": 50, "minDuration": "60s"}, {"weight": 100, "minDuration": "0s"}]

#: Granted, not exercised here, and why the grant must exist anyway. Keys are
#: (identity, verb, group, resource).
NOT_EXERCISED: dict[tuple[str, str, str, str], str] = {
    ("viewer", "get", "changelane.dev", "changelanes"): (
        "no viewer command reads one lane by name (status LANE lists them), but `list` "
        "already discloses every lane: `get` adds nothing and makes "
        "`kubectl get changelane NAME` work for the people this role is for"
    ),
}


@dataclass
class Identities:
    controller: str
    viewer: str
    operator: str


@dataclass
class Observed:
    policy: Policy
    grants: dict[str, list[Grant]]  # identity -> its grants
    requests: dict[str, list[ApiRequest]]  # identity -> what it sent
    refused: list[ApiRequest]  # what the test made a human try that the role forbids
    results: dict[str, Result]  # CLI runs by label


def _user_of_service_account(objs: list[Rendered]) -> tuple[str, str]:
    account = only(objs, "ServiceAccount")["metadata"]
    return account["namespace"], account["name"]


def _arg(objs: list[Rendered], flag: str) -> str:
    args = only(objs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    [arg] = [a for a in args if a.startswith(f"{flag}=")]
    return str(arg.split("=", 1)[1])


@dataclass
class Election:
    """How the chart's pods elect: the leader Lease, or (the default) shard Leases."""

    lease_name: str
    shards: int
    prefix: str

    @classmethod
    def of(cls, objs: list[Rendered]) -> Election:
        shards = int(_arg(objs, "--shards"))
        return cls(_arg(objs, "--lease-name"), shards, _arg(objs, "--shard-lease-prefix"))

    @property
    def leases(self) -> list[str]:
        if self.shards == 1:
            return [self.lease_name]
        return [f"{self.prefix}-shard-{i}" for i in range(self.shards)]


def _human_roles(objs: list[Rendered]) -> tuple[str, str]:
    names = [r.name for r in objs if r.kind == "ClusterRole"]
    [viewer] = [n for n in names if n.endswith("-viewer")]
    [operator] = [n for n in names if n.endswith("-operator")]
    return viewer, operator


# --------------------------------------------------------------------------- the world


def _lane(name: str, steps: list[dict[str, Any]], **strategy: Any) -> dict[str, Any]:
    return lane_doc(name, steps=steps, **strategy)


def _flag_store(kind: str, name: str) -> dict[str, Any]:
    if kind == "configmaps":
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": NS},
            "data": {"flags.flagd.json": json.dumps(definitions())},
        }
    return {
        "apiVersion": "core.openfeature.dev/v1beta1",
        "kind": "FeatureFlag",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"flagSpec": definitions()},
    }


def _route(workload: str) -> dict[str, Any]:
    route = copy.deepcopy(ROUTE)
    route["metadata"]["name"] = f"{workload}-route"
    route["spec"]["rules"][0]["backendRefs"][0]["name"] = workload
    return route


def _release_name(env: Env, workload: str) -> str:
    return f"{workload}-{template_hash(env.deployment(workload)['spec']['template'])}"


def _ship(env: Env, workload: str, image: str, flag: bool = False) -> str:
    annotations = provenance(image=image)
    if flag:
        annotations["changelane.dev/flag"] = FLAG
    env.set_image(image, name=workload, annotations=annotations)
    return _release_name(env, workload)


def _lane_status(env: Env, lane: str) -> dict[str, Any]:
    status: dict[str, Any] = env.sim.store.get_obj("changelanes", None, lane).get("status") or {}
    return status


def _events(env: Env) -> list[dict[str, Any]]:
    store = env.sim.store
    rtype = store.rtype("events")
    return [store.to_obj(rtype, s) for s in store.list("events", None).items]


# --------------------------------------------------------------------------- the run


@pytest.fixture(scope="module")
def observed(chart: helm_python.Chart, tmp_path_factory: pytest.TempPathFactory) -> Observed:
    objs = render(chart)
    policy = Policy([r.obj for r in objs])
    sa_namespace, sa_name = _user_of_service_account(objs)
    viewer_role, operator_role = _human_roles(objs)
    who = Identities(
        controller=f"system:serviceaccount:{sa_namespace}:{sa_name}",
        viewer="vera@example.com",
        operator="oscar@example.com",
    )
    grants = {
        "controller": policy.grants_of_service_account(sa_namespace, sa_name),
        "viewer": policy.grants_of_cluster_role(viewer_role),
        "operator": policy.grants_of_cluster_role(operator_role),
    }
    by_user = {
        who.controller: grants["controller"],
        who.viewer: grants["viewer"],
        who.operator: grants["operator"],
    }
    names = {who.controller: "controller", who.viewer: "viewer", who.operator: "operator"}
    denied: list[ApiRequest] = []

    def enforce(request: ApiRequest) -> bool:
        rules = by_user.get(request.user)
        if rules is None:
            return True  # the test's own admin access
        ok = authorize(rules, request)
        if not ok:
            denied.append(request)
        return ok

    tmp = tmp_path_factory.mktemp("rbac")
    results: dict[str, Result] = {}
    refused: list[ApiRequest] = []
    with running(tmp, lane=_lane("web-lane", FAST), start=False) as env:
        sim = env.sim
        for user in names:
            sim.add_user(user)
        sim.set_authorizer(enforce)
        config = {
            user: sim.write_kubeconfig(tmp / f"{names[user]}.kubeconfig", user=user)
            for user in names
        }
        with sim.record_requests() as log:
            try:
                _life(env, Election.of(objs), results, refused, config, who)
            except BaseException as exc:
                if denied:
                    raise AssertionError(
                        "the run failed and the cluster denied: "
                        + "; ".join(f"{names[r.user]}: {Access.of(r)}" for r in denied[:20])
                    ) from exc
                raise
    return Observed(
        policy,
        grants,
        {name: _by(log, user, refused) for user, name in names.items()},
        refused,
        results,
    )


def _by(log: RequestLog, user: str, excluded: list[ApiRequest]) -> list[ApiRequest]:
    """What ``user`` sent, less the requests the test expected to be refused."""
    skip = {id(r) for r in excluded}
    return [r for r in log.by(user) if id(r) not in skip]


def _life(
    env: Env,
    election: Election,
    results: dict[str, Result],
    refused: list[ApiRequest],
    config: dict[str, Path],
    who: Identities,
) -> None:
    sim, store = env.sim, env.sim.store
    store.create(
        "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    )
    # web-lane: replica canary with an autonomy budget of no failure at all.
    lane = store.get_obj("changelanes", None, "web-lane")
    lane["spec"]["gates"] = {"autonomyBudget": {"maxChangeFailureRate": 0.0, "window": 1}}
    store.update("changelanes", lane, name="web-lane")
    store.create("changelanes", _lane("route-lane", FAST, traffic=_traffic("api")))
    store.create("changelanes", _lane("cm-lane", STEPS, flagRamp=_ramp("configMap", "search")))
    store.create("changelanes", _lane("ff-lane", STEPS, flagRamp=_ramp("featureFlag", "feed")))
    store.create("changelanes", _lane("slow-lane", SLOW))
    # flag-only: the workload rolls out natively, the previous template is its ReplicaSet's.
    native = _lane("native-lane", STEPS, flagRamp=_ramp("configMap", "native"), flagOnly=True)
    store.create("changelanes", native)
    store.create("httproutes", _route("api"))
    store.create("configmaps", _flag_store("configmaps", "search-flags"))
    store.create("featureflags", _flag_store("featureflags", "feed-flags"))
    store.create("configmaps", _flag_store("configmaps", "native-flags"))

    def controller(instance: str) -> Any:
        # As the chart runs it: with the durable audit log, anchored in the cluster.
        fanout = FanOutAuditSink([env.sink])
        c = new_controller(
            config[who.controller],
            sim,
            fanout,
            instance=instance,
            flags=True,
            lease_namespace=NAMESPACE,
            lease_name=election.lease_name,
            shards=election.shards,
            shard_prefix=election.prefix,
        )
        log = env.kubeconfig.parent / f"audit-{instance}.jsonl"
        durable: Any
        if c.sharded is not None:  # one chain per shard, each anchored on its own
            durable = ShardedAuditLog(
                log,
                FsyncPolicy.NEVER,
                lambda i: AuditAnchor(c.api, NAMESPACE, shard_anchor_name(ANCHOR_NAME, i)),
                instance,
                c.sharded.shards,
            )
        else:
            durable = AnchoredAuditLog(
                log, FsyncPolicy.NEVER, AuditAnchor(c.api, NAMESPACE), instance
            )
        fanout.add(durable, required=True)
        env.controllers.append(c)
        c.start()
        return c

    first, second = controller("c-0"), controller("c-1")
    wait(lambda: first.is_leader() or second.is_leader(), timeout=15)
    leader, standby = (first, second) if first.is_leader() else (second, first)

    def leads_alone(c: Any) -> bool:  # holds the Lease, or with shards every shard Lease
        holders = {
            (store.get_obj("leases", NAMESPACE, name).get("spec") or {}).get("holderIdentity")
            for name in election.leases
        }
        return holders == {c.settings.instance} and c.is_leader()

    workloads = {"web": "web-lane", "api": "route-lane", "search": "cm-lane"}
    workloads |= {"feed": "ff-lane", "docs": "slow-lane"}
    for workload, lane_name in workloads.items():
        store.create("deployments", deployment_doc(workload, lane_name, f"{workload}:1"))
    store.create("deployments", deployment_doc("native", "native-lane", "native:1"))
    for workload in workloads:  # adoption: the stable copy exists and is ready
        _wait(lambda w=workload: sim.deployment_ready(NS, f"{w}-primary"), f"{workload} adopted")
    _wait(lambda: sim.deployment_ready(NS, "native"), "native rolled out")

    # One good release per fast lane, in parallel: canary, route weights, flag ramps.
    good = {
        w: _ship(env, w, f"{w}:2", flag=w in {"search", "feed", "native"})
        for w in ("web", "api", "search", "feed", "native")
    }
    for name in good.values():
        rel = env.wait_phase(["Promoted", "RolledBack", "Rejected", "Paused"], name=name)
        assert rel["status"]["phase"] == "Promoted", rel["status"]

    # Graceful stop of the leader: it hands the Lease (its shards) over; the other carries on.
    leader.stop()
    _wait(lambda: leads_alone(standby), "the standby took the lease over", timeout=15)

    # Bad releases: a rollback that spends web-lane's budget, a flag switched off.
    bad = {w: _ship(env, w, f"{w}:3-bad", flag=w == "search") for w in ("web", "search")}
    for name in bad.values():
        assert env.wait_phase(["RolledBack", "Promoted"], name=name)["status"]["phase"] == (
            "RolledBack"
        )
    _wait(lambda: _lane_status(env, "web-lane").get("suspended") is True, "web-lane suspended")
    _wait(
        lambda: "LaneSuspended" in [e.get("reason") for e in _events(env)],
        "the LaneSuspended Event",
    )
    held = _ship(env, "web", "web:4")
    env.wait_phase(["Gated"], name=held)

    def run(label: str, user: str, *args: str) -> Result:
        result = CliRunner().invoke(cli, [*args, "--kubeconfig", str(config[user])])
        results[label] = result
        return result

    # The viewer looks: overview, one lane, one release (by namespace and searched), audit.
    rolled = bad["web"]
    for label, args in {
        "status": ("status",),
        "status-lane": ("status", "web-lane", "--json"),
        "status-release": ("status", rolled, "--json"),
        "status-release-ns": ("status", rolled, "-n", NS),
        "audit-cluster": ("audit", "--cluster", "--since", "1h", "--json"),
        "audit-ns": ("audit", "--cluster", "--namespace", NS),
        "audit-show": ("audit", "show", rolled),
    }.items():
        result = run(f"viewer {label}", who.viewer, *args)
        assert result.exit_code == 0, (label, result.output)
    # ... and cannot act: the API says 403 and the CLI says why.
    with sim.record_requests() as attempt:
        denied = run("viewer abort", who.viewer, "abort", held, "-n", NS)
    assert denied.exit_code == 2 and "403" in denied.output, denied.output
    assert "RBAC" in denied.output
    # Only the viewer's own requests: the controllers keep renewing their Lease meanwhile,
    # and a renewal that falls inside this window is not something the viewer tried.
    refused.extend(attempt.by(who.viewer))

    # The operator acts: lifts the suspension, then pause/resume/promote/abort a release.
    resumed = run("operator lanes resume", who.operator, "lanes", "resume", "web-lane")
    assert resumed.exit_code == 0, resumed.output
    env.wait_phase(["Promoted"], name=held)
    slow = _ship(env, "docs", "docs:2")
    env.wait_phase(["Progressing"], name=slow)
    for verb in ("pause", "resume"):
        result = run(f"operator {verb}", who.operator, verb, slow, "--wait", "20")
        assert result.exit_code == 0, result.output
    promoted = run("operator promote", who.operator, "promote", slow, "-n", NS, "--wait", "20")
    assert promoted.exit_code == 0, promoted.output
    env.wait_phase(["Promoted"], name=slow)
    aborted_name = _ship(env, "docs", "docs:3")
    env.wait_phase(["Progressing"], name=aborted_name)
    aborted = run("operator abort", who.operator, "abort", aborted_name, "--wait", "20")
    assert aborted.exit_code == 0, aborted.output
    rolled_back = env.wait_phase(["RolledBack"], name=aborted_name)
    assert rolled_back["status"]["rollbackReason"] == f"aborted by {who.operator}"
    for label, args in {
        "status": ("status", aborted_name),
        "audit": ("audit", "--cluster", "--lane", "slow-lane"),
    }.items():
        result = run(f"operator {label}", who.operator, *args)
        assert result.exit_code == 0, (label, result.output)

    # The dashboard the controller serves on its metrics port reads a release's timeline.
    page: dict[str, str] = {}
    body = controller_dashboard(standby)(
        {"REQUEST_METHOD": "GET", "PATH_INFO": f"/releases/{NS}/{rolled}", "QUERY_STRING": ""},
        lambda status, headers: page.update(status=status),
    )
    assert page["status"] == "200 OK" and b"rolling_back" in b"".join(body)

    # Retention: the leader deletes finished releases beyond the newest of each workload.
    retention = ReleaseRetention(
        standby.api,
        env.releases,
        RetentionPolicy(keep_last=1),
        lane_batch=lambda lane: lane_batch(standby, lane),
    )
    wait(lambda: not any((r.get("status") or {}).get("outbox") for r in env.releases()))
    swept = retention.sweep()
    assert f"{NS}/{aborted_name}" not in swept and f"{NS}/{slow}" in swept, swept

    # Shut down: the last leader hands the Lease (every shard Lease) back.
    standby.stop()
    for name in election.leases:
        lease = store.get_obj("leases", NAMESPACE, name)
        assert not lease["spec"].get("holderIdentity"), lease["spec"]


def _traffic(workload: str) -> dict[str, str]:
    return {"mode": "gatewayAPI", "httpRoute": f"{workload}-route"}


def _ramp(target: str, workload: str) -> dict[str, str]:
    return {"target": target, "name": f"{workload}-flags"}


def _wait(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception:  # not there yet
            pass
        time.sleep(0.05)
    raise AssertionError(f"not reached in {timeout}s: {what}")


# --------------------------------------------------------------------------- the proof


def _accesses(requests: list[ApiRequest]) -> set[Access]:
    return {Access.of(r) for r in requests if r.resource_request}


IDENTITIES = ("controller", "viewer", "operator")


@pytest.mark.parametrize("identity", IDENTITIES)
def test_every_request_is_allowed_by_the_chart(observed: Observed, identity: str) -> None:
    requests = observed.requests[identity]
    assert requests, f"{identity} sent nothing: the run did not exercise it"
    refused = sorted(
        {str(Access.of(r)) for r in requests if not authorize(observed.grants[identity], r)}
    )
    assert not refused, f"{identity} needed what the chart does not grant: {refused}"


@pytest.mark.parametrize("identity", IDENTITIES)
def test_every_grant_is_used(observed: Observed, identity: str) -> None:
    grants = observed.grants[identity]
    used = _accesses(observed.requests[identity])
    idle = {
        (verb, group, resource)
        for verb, group, resource in unused(grants, used)
        if (identity, verb, group, resource) not in NOT_EXERCISED
    }
    assert not idle, f"the chart grants {identity} what it never used: {sorted(idle)}"
    # The documented exceptions are really unexercised: the list cannot go stale.
    for key in NOT_EXERCISED:
        if key[0] == identity:
            _, verb, group, resource = key
            assert not any((a.verb, a.group, a.resource) == (verb, group, resource) for a in used)


def test_the_controller_touches_leases_only_at_home_and_by_name(observed: Observed) -> None:
    """The chart's default shards the lanes: its shard Leases by name, the replicas' own
    member Leases, and the list of them; nothing else, nowhere else."""
    leases = [
        r for r in observed.requests["controller"] if r.resource_request and r.resource == "leases"
    ]
    assert {r.verb for r in leases} == {"create", "get", "update", "list", "delete"}
    assert {r.namespace for r in leases} == {NAMESPACE}
    named = {r.name for r in leases if r.verb not in ("create", "list")}
    members = {"changelane-member-c-0", "changelane-member-c-1"}
    assert named == {"changelane-shard-0", "changelane-shard-1"} | members
    assert {r.name for r in leases if r.verb == "delete"} == members  # each its own, stopping


def test_the_humans_never_write_status_or_workloads(observed: Observed) -> None:
    writes = {"create", "update", "patch", "delete", "deletecollection"}
    viewer = _accesses(observed.requests["viewer"])
    operator = _accesses(observed.requests["operator"])
    assert not {a.verb for a in viewer} & writes
    assert {(a.verb, a.resource) for a in operator if a.verb in writes} == {
        ("patch", "lanereleases"),
        ("patch", "changelanes/status"),
    }


def test_a_viewer_asking_to_abort_is_refused_by_rbac(observed: Observed) -> None:
    grants = observed.grants["viewer"]
    refused = [r for r in observed.refused if not authorize(grants, r)]
    assert [str(Access.of(r)) for r in refused] == [
        f"patch changelane.dev/lanereleases {Access.of(refused[0]).name} in {NS}"
    ]
