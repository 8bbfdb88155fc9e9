"""Tenant bindings of trigger URLs (``shared.ports.tenant_binding``)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from shared.ports import ScheduleSpec
from shared.ports.tenant_binding import (
    TenantBindingInvalid,
    bind_path,
    binding_for,
    verify_binding,
)


def test_a_bound_path_verifies_for_its_route_and_tenant_only() -> None:
    spec = ScheduleSpec("wf-1", "acme corp", "* * * * *")
    path = bind_path(spec.target_path, "schedule/wf-1", spec.tenant, "k")
    query = parse_qs(urlsplit(path).query)
    assert query["tenant"] == ["acme corp"]
    verify_binding("k", "schedule/wf-1", "acme corp", query["binding"][0])
    for key, route, tenant in (
        ("other", "schedule/wf-1", "acme corp"),
        ("k", "schedule/wf-2", "acme corp"),
        ("k", "pubsub", "acme corp"),
        ("k", "schedule/wf-1", "acme"),
    ):
        with pytest.raises(TenantBindingInvalid):
            verify_binding(key, route, tenant, query["binding"][0])


def test_paths_without_a_tenant_stay_as_they_are_and_a_tenant_needs_a_key() -> None:
    assert bind_path("/pubsub?topic=t", "pubsub", None, "") == "/pubsub?topic=t"
    bound = bind_path("/pubsub?topic=t", "pubsub", "beta", "k")
    assert bound == f"/pubsub?topic=t&tenant=beta&binding={binding_for('k', 'pubsub', 'beta')}"
    with pytest.raises(TenantBindingInvalid, match="WFE_TRIGGER_BINDING_KEY"):
        bind_path("/pubsub", "pubsub", "beta", "")
    for binding in (None, "", binding_for("", "pubsub", "beta")):
        with pytest.raises(TenantBindingInvalid):
            verify_binding("", "pubsub", "beta", binding)
