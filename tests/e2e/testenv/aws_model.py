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

Configuration is JSON: {"clientToken": bool, "listingLagMs": int, "purgeAfterMs": int | null} or a
profile name ("off", "realistic"), from MOLECULE_AWS_MODEL at start and from
GET/POST /__aws_model at run time (a POST merges; {"profile": "..."} resets to a profile first).
"""

import hashlib
import json
import threading
import time

from moto.core.responses import ActionResult
from moto.ec2.exceptions import EC2ClientError
from moto.ec2.models.elastic_block_store import EBSBackend
from moto.ec2.models.instances import Instance, InstanceBackend
from moto.ec2.models.security_groups import SecurityGroupBackend
from moto.ec2.responses.elastic_block_store import ElasticBlockStore
from moto.ec2.responses.instances import InstanceResponse

PROFILES = {
    "off": {"clientToken": False, "listingLagMs": 0, "purgeAfterMs": None},
    "realistic": {"clientToken": True, "listingLagMs": 2000, "purgeAfterMs": 60000},
}

_lock = threading.RLock()
_config = dict(PROFILES["off"])
_created = {}  # resource id -> monotonic time it was created (while the model was loaded)
_terminated = {}  # instance id -> monotonic time it was terminated
_view = threading.local()  # .lagging: this thread answers a call that sees the listing lag
_tokens = {}  # (kind, account, region, token) -> {"fingerprint", "created": reservation or volume}


class ModelError(ValueError):
    """A configuration the model cannot take."""


def config():
    with _lock:
        return dict(_config)


def configure(update):
    """Merges a JSON object (or a profile name) into the configuration; returns the result."""
    if isinstance(update, str):
        update = {"profile": update}
    if not isinstance(update, dict):
        raise ModelError("expected a JSON object or a profile name")
    unknown = set(update) - {"profile", *PROFILES["off"]}
    if unknown:
        raise ModelError(f"unknown keys: {sorted(unknown)}")
    with _lock:
        new = dict(_config)
        if "profile" in update:
            if update["profile"] not in PROFILES:
                raise ModelError(f"unknown profile {update['profile']!r}: one of {sorted(PROFILES)}")
            new = dict(PROFILES[update["profile"]])
        for key in ("listingLagMs", "purgeAfterMs"):
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
        _config.clear()
        _config.update(new)
        return dict(_config)


def reset():
    """Forgets every resource and token (moto's own reset drops the resources themselves)."""
    with _lock:
        _created.clear()
        _terminated.clear()
        _tokens.clear()


def set_lagging_view(lagging):
    """Whether the call this thread answers sees the listing lag (set per request)."""
    _view.lagging = lagging


def _lagging(resource_id):
    if not getattr(_view, "lagging", False):
        return False
    lag = _config["listingLagMs"]
    born = _created.get(resource_id)
    return bool(lag) and born is not None and (time.monotonic() - born) * 1000 < lag


def _created_now(resource_id):
    with _lock:
        _created[resource_id] = time.monotonic()


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
    Instance.terminate = _terminate
    InstanceBackend.all_reservations = _all_reservations
    InstanceBackend.run_instances = _run_instances
    InstanceBackend.describe_instances = _describe_instances
    EBSBackend.create_volume = _create_volume
    EBSBackend.describe_volumes = _describe_volumes
    SecurityGroupBackend.create_security_group = _create_security_group
    SecurityGroupBackend.describe_security_groups = _describe_security_groups
    InstanceResponse.run_instances = _idempotent("instance", InstanceResponse.run_instances, _replay_reservation)
    ElasticBlockStore.create_volume = _idempotent("volume", ElasticBlockStore.create_volume, _replay_volume)
