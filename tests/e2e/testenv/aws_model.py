"""Makes moto's EC2 behave like AWS where moto is kinder (see docs/testing.md, "AWS behaviours the
test world models"). Imported by moto_launcher.py before moto's server starts; every behaviour is
off until configured, so an unconfigured world is plain moto.

- clientToken: RunInstances and CreateVolume are idempotent per ClientToken (per account and
  region): the same token returns the same reservation or volume; the same token with other
  parameters fails with IdempotentParameterMismatch; a token whose instances were all purged fails
  with IdempotentInstanceTerminated.
- listingLagMs: an instance, volume or security group is missing from listings (Describe* without
  IDs or names) for this long after its creation; describe-by-ID sees it at once. Only answers to
  calls through the fault proxy lag (it marks them with the header X-Molecule-Via-Proxy): calls
  straight to moto (seeding, bootsim, a test's inspection) see the ground truth.
- purgeAfterMs: a terminated instance is gone this long after its termination: from listings, from
  describe-by-ID (InvalidInstanceID.NotFound) and from every other call that names it.
- eventsQueueUrl: EventBridge's EC2 notifications, which moto never emits: every instance state
  change (run: pending then running; stop, start, terminate; by any caller) and every tag change of
  an instance (CreateTags, DeleteTags) puts the event EventBridge would write ("EC2 Instance
  State-change Notification", "Tag Change on Resource") on this SQS queue of moto, in the account
  and region of the instance. Not part of a profile: a profile change keeps it; null stops it.

Always on, whatever the configuration (test-world plumbing, not behaviours of AWS):
- a journal of launched instances (`launched`), which the bootstrap simulator reads instead of
  listing the whole fleet every second (GET /__aws_model/launched?after=N);
- an indexed tag lookup: moto finds a resource's tags by scanning every tag of the region with a
  regular expression, once per resource rendered and per tag filter evaluated, so a listing of
  N instances costs O(N x all tags); `_get_tags` reads the resource's own entry (same answer).

Configuration is JSON: {"clientToken": bool, "listingLagMs": int, "instanceListingLagMs": int | null,
"purgeAfterMs": int | null, "eventsQueueUrl": str | null} or a
profile name ("off", "realistic"), from MOLECULE_AWS_MODEL at start and from
GET/POST /__aws_model at run time (a POST merges; {"profile": "..."} resets to a profile first).
"""

import datetime
import hashlib
import json
import threading
import time
import uuid

from moto.core.responses import ActionResult
from moto.ec2.exceptions import EC2ClientError
from moto.ec2.models.core import TaggedEC2Resource
from moto.ec2.models.elastic_block_store import EBSBackend
from moto.ec2.models.instances import Instance, InstanceBackend
from moto.ec2.models.security_groups import SecurityGroupBackend
from moto.ec2.models.tags import TagBackend
from moto.ec2.responses.elastic_block_store import ElasticBlockStore
from moto.ec2.responses.instances import InstanceResponse
from moto.ec2.utils import EC2_PREFIX_TO_RESOURCE, get_prefix

PROFILES = {
    "off": {"clientToken": False, "listingLagMs": 0, "instanceListingLagMs": None, "purgeAfterMs": None},
    "realistic": {"clientToken": True, "listingLagMs": 2000, "instanceListingLagMs": None, "purgeAfterMs": 60000},
}

_lock = threading.RLock()
_config = dict(PROFILES["off"])
_created = {}  # resource id -> monotonic time it was created (while the model was loaded)
_terminated = {}  # instance id -> monotonic time it was terminated
_view = threading.local()  # .lagging: this thread answers a call that sees the listing lag
_tokens = {}  # (kind, account, region, token) -> {"fingerprint", "created": reservation or volume}
_events = {"eventsQueueUrl": None}  # kept apart from the profiles: a profile change keeps it
_launched = []  # (seq, account, region, instance id) in launch order; seq is never reused
_next_seq = [1]


class ModelError(ValueError):
    """A configuration the model cannot take."""


def config():
    with _lock:
        return {**_config, **_events}


def configure(update):
    """Merges a JSON object (or a profile name) into the configuration; returns the result."""
    if isinstance(update, str):
        update = {"profile": update}
    if not isinstance(update, dict):
        raise ModelError("expected a JSON object or a profile name")
    unknown = set(update) - {"profile", "eventsQueueUrl", *PROFILES["off"]}
    if unknown:
        raise ModelError(f"unknown keys: {sorted(unknown)}")
    with _lock:
        new = dict(_config)
        if "profile" in update:
            if update["profile"] not in PROFILES:
                raise ModelError(f"unknown profile {update['profile']!r}: one of {sorted(PROFILES)}")
            new = dict(PROFILES[update["profile"]])
        for key in ("listingLagMs", "instanceListingLagMs", "purgeAfterMs"):
            if key in update:
                value = update[key]
                if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                    raise ModelError(f"{key} must be a non-negative integer or null")
                new[key] = value
        if "clientToken" in update:
            if not isinstance(update["clientToken"], bool):
                raise ModelError("clientToken must be true or false")
            new["clientToken"] = update["clientToken"]
        new["listingLagMs"] = new["listingLagMs"] or 0
        if "eventsQueueUrl" in update:
            url = update["eventsQueueUrl"]
            if url is not None and (not isinstance(url, str) or url.rstrip("/").count("/") < 4):
                raise ModelError("eventsQueueUrl must be a queue URL (http://host/account/name) or null")
            _events["eventsQueueUrl"] = url
        _config.clear()
        _config.update(new)
        return config()


def reset():
    """Forgets every resource and token (moto's own reset drops the resources themselves). The
    journal's sequence numbers go on, so a reader's cursor stays valid."""
    with _lock:
        _created.clear()
        _terminated.clear()
        _tokens.clear()
        _launched.clear()


def launched(after, limit=1000):
    """Instances launched after sequence number `after`, at most `limit`, oldest first:
    {"next": the cursor for the next call, "instances": [{"id", "account", "region"}]}."""
    with _lock:
        first = _launched[0][0] if _launched else _next_seq[0]
        start = max(0, after + 1 - first)
        entries = _launched[start : start + limit]
        cursor = entries[-1][0] if entries else max(after, first - 1)
        return {
            "next": cursor,
            "instances": [{"id": i, "account": a, "region": r} for (_, a, r, i) in entries],
        }


def _journal(backend, reservation):
    with _lock:
        for inst in reservation.instances:
            _launched.append((_next_seq[0], backend.account_id, backend.region_name, inst.id))
            _next_seq[0] += 1


def set_lagging_view(lagging):
    """Whether the call this thread answers sees the listing lag (set per request)."""
    _view.lagging = lagging


def _lagging(resource_id):
    if not getattr(_view, "lagging", False):
        return False
    lag = _config["listingLagMs"]
    if resource_id.startswith("i-") and _config["instanceListingLagMs"] is not None:
        lag = _config["instanceListingLagMs"]
    born = _created.get(resource_id)
    return bool(lag) and born is not None and (time.monotonic() - born) * 1000 < lag


def _created_now(resource_id):
    with _lock:
        _created[resource_id] = time.monotonic()


# --- indexed tags: what describe_tags(filters={"resource-id": [id]}) answers, without the scan.


def _get_tags(self):
    rid = getattr(self, "id", None)
    tags = self.ec2_backend.tags.get(rid) if rid else None  # .get: no entry made in the defaultdict
    if not tags:
        return []
    kind = EC2_PREFIX_TO_RESOURCE.get(get_prefix(rid), "")
    return [{"resource_id": rid, "key": k, "value": v, "resource_type": kind} for k, v in tags.items()]


# --- purge: terminated instances leave the backend for good.


def _purge(backend):
    after = _config["purgeAfterMs"]
    if after is None:
        return
    now = time.monotonic()
    with _lock:
        for rid, reservation in list(backend.reservations.items()):
            keep = []
            for inst in reservation.instances:
                at = _terminated.get(inst.id)
                if inst.state == "terminated" and at is not None and (now - at) * 1000 >= after:
                    _terminated.pop(inst.id, None)
                else:
                    keep.append(inst)
            if len(keep) != len(reservation.instances):
                reservation.instances = keep
                if not keep:
                    del backend.reservations[rid]


_orig_terminate = Instance.terminate


def _terminate(self):
    previous = _orig_terminate(self)
    if self.state == "terminated":
        with _lock:
            _terminated.setdefault(self.id, time.monotonic())
    return previous


_orig_all_reservations = InstanceBackend.all_reservations


def _all_reservations(self, filters=None):
    _purge(self)
    return _orig_all_reservations(self, filters)


# --- listing lag: describe without IDs leaves out what is too young.

_orig_run_instances = InstanceBackend.run_instances


def _run_instances(self, *args, **kwargs):
    reservation = _orig_run_instances(self, *args, **kwargs)
    for inst in reservation.instances:
        _created_now(inst.id)
    _journal(self, reservation)
    _run_events(reservation)
    return reservation


_orig_describe_instances = InstanceBackend.describe_instances


def _describe_instances(self, filters=None):
    listed = []
    for reservation in _orig_describe_instances(self, filters):
        instances = [i for i in reservation.instances if not _lagging(i.id)]
        if instances:
            reservation.instances = instances  # a copy: all_reservations copies each reservation
            listed.append(reservation)
    return listed


_orig_create_volume = EBSBackend.create_volume


def _create_volume(self, *args, **kwargs):
    volume = _orig_create_volume(self, *args, **kwargs)
    _created_now(volume.id)
    return volume


_orig_describe_volumes = EBSBackend.describe_volumes


def _describe_volumes(self, volume_ids=None, filters=None):
    volumes = _orig_describe_volumes(self, volume_ids, filters)
    return volumes if volume_ids else [v for v in volumes if not _lagging(v.id)]


_orig_create_security_group = SecurityGroupBackend.create_security_group


def _create_security_group(self, *args, **kwargs):
    group = _orig_create_security_group(self, *args, **kwargs)
    _created_now(group.id)
    return group


_orig_describe_security_groups = SecurityGroupBackend.describe_security_groups


def _describe_security_groups(self, group_ids=None, groupnames=None, filters=None):
    groups = _orig_describe_security_groups(self, group_ids, groupnames, filters)
    return groups if group_ids or groupnames else [g for g in groups if not _lagging(g.id)]


# --- EventBridge's EC2 notifications, on an SQS queue of moto.


def _publish(account, region, detail_type, source, resource, detail):
    url = _events["eventsQueueUrl"]
    if not url:
        return
    from moto.sqs.models import sqs_backends  # noqa: PLC0415 (moto's SQS loads only when used)

    queue_account, name = url.rstrip("/").split("/")[-2:]
    if queue_account != account:
        return  # the rule of another account
    event = {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": account,
        "time": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:ec2:{region}:{account}:instance/{resource}"],
        "detail": detail,
    }
    try:
        sqs_backends[account][region].send_message(name, json.dumps(event))
    except Exception as e:  # noqa: BLE001 (no queue in that region: EventBridge would drop it too)
        print(f"aws_model: event for {resource} not delivered: {e}", flush=True)


def _state_event(inst):
    backend = inst.ec2_backend
    detail = {"instance-id": inst.id, "state": inst.state}
    _publish(backend.account_id, backend.region_name, "EC2 Instance State-change Notification", "aws.ec2", inst.id, detail)


def _with_state_event(method):
    def wrapped(self, *args, **kwargs):
        before = self.state
        result = method(self, *args, **kwargs)
        if self.state != before:
            _state_event(self)
        return result

    return wrapped


def _with_tag_events(method):
    def wrapped(self, resource_ids, *args, **kwargs):
        result = method(self, resource_ids, *args, **kwargs)
        for rid in resource_ids:
            if rid.startswith("i-"):
                tags = dict(self.tags.get(rid, {}))
                detail = {"changed-tag-keys": sorted(args[0]) if args else [], "service": "ec2",
                          "resource-type": "instance", "version": int(time.time() * 1000), "tags": tags}
                _publish(self.account_id, self.region_name, "Tag Change on Resource", "aws.tag", rid, detail)
        return result

    return wrapped


def _run_events(reservation):
    for inst in reservation.instances:
        state = inst.state
        for step in ("pending", "running") if state == "running" else (state,):
            inst_state = inst._state.name
            inst._state.name = step
            _state_event(inst)
            inst._state.name = inst_state


# --- ClientToken idempotency.


def _fingerprint(response):
    params = sorted((k, v) for k, v in response.querystring.items() if k != "ClientToken")
    return hashlib.sha256(json.dumps(params, default=str).encode()).hexdigest()


def _idempotent(kind, create, replay):
    """Wraps a response method: the first call with a token creates, later ones replay."""

    def wrapped(self):
        token = self._get_param("ClientToken")
        if not (_config["clientToken"] and token):
            return create(self)
        key = (kind, self.current_account, self.region, token)
        fingerprint = _fingerprint(self)
        with _lock:  # one creation per token, even for concurrent calls
            seen = _tokens.get(key)
            if seen is None:
                result = create(self)
                _tokens[key] = {"fingerprint": fingerprint, "created": getattr(result, "result", None)}
                return result
            if seen["fingerprint"] != fingerprint:
                raise EC2ClientError(
                    "IdempotentParameterMismatch",
                    f"Client token {token} was used before with different parameters.",
                )
            return replay(self, seen["created"], token)

    return wrapped


def _replay_reservation(response, created, token):
    backend = response.ec2_backend
    _purge(backend)
    reservation = backend.reservations.get(getattr(created, "id", None))
    if reservation is None or not reservation.instances:
        raise EC2ClientError(
            "IdempotentInstanceTerminated",
            f"The client token {token} was used by a request whose instances have been terminated.",
        )
    return ActionResult(reservation)


def _replay_volume(_response, created, _token):
    # AWS answers with the volume the token created, even after that volume was deleted.
    return ActionResult(created)


_installed = False


def install():
    """Patches moto's EC2 backend and responses (idempotent)."""
    global _installed
    if _installed:
        return
    _installed = True
    TaggedEC2Resource.get_tags = _get_tags
    Instance.terminate = _with_state_event(_terminate)
    Instance.stop = _with_state_event(Instance.stop)
    Instance.start = _with_state_event(Instance.start)
    TagBackend.create_tags = _with_tag_events(TagBackend.create_tags)
    TagBackend.delete_tags = _with_tag_events(TagBackend.delete_tags)
    InstanceBackend.all_reservations = _all_reservations
    InstanceBackend.run_instances = _run_instances
    InstanceBackend.describe_instances = _describe_instances
    EBSBackend.create_volume = _create_volume
    EBSBackend.describe_volumes = _describe_volumes
    SecurityGroupBackend.create_security_group = _create_security_group
    SecurityGroupBackend.describe_security_groups = _describe_security_groups
    InstanceResponse.run_instances = _idempotent("instance", InstanceResponse.run_instances, _replay_reservation)
    ElasticBlockStore.create_volume = _idempotent("volume", ElasticBlockStore.create_volume, _replay_volume)
