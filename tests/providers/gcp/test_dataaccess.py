"""Detection of disabled or unverifiable IAP Data Access audit logging (pure decisions)."""

from __future__ import annotations

from typing import Any

from providers.gcp.dataaccess import DataAccessState, Finding, assess, iap_data_access_state

ON_ALL = {
    "auditConfigs": [{"service": "allServices", "auditLogConfigs": [{"logType": "DATA_READ"}]}]
}
ON_IAP = {
    "auditConfigs": [
        {
            "service": "iap.googleapis.com",
            "auditLogConfigs": [
                {"logType": "DATA_READ", "exemptedMembers": ["user:robot@example.com"]}
            ],
        }
    ]
}
ADMIN_READ_ONLY = {
    "auditConfigs": [{"service": "allServices", "auditLogConfigs": [{"logType": "ADMIN_READ"}]}]
}
OTHER_SERVICE = {
    "auditConfigs": [
        {"service": "storage.googleapis.com", "auditLogConfigs": [{"logType": "DATA_READ"}]}
    ]
}


def _state(*levels: tuple[str, dict[str, Any] | None]) -> DataAccessState:
    return iap_data_access_state(list(levels))[0]


def test_data_read_for_all_services_or_iap_at_any_level_enables_it() -> None:
    assert _state(("projects/p", {}), ("organizations/1", ON_ALL)) is DataAccessState.ENABLED
    state, reason = iap_data_access_state([("folders/2", ON_IAP)])
    assert state is DataAccessState.ENABLED and "robot@example.com" in reason


def test_no_data_read_config_on_any_readable_level_means_disabled() -> None:
    assert (
        _state(
            ("projects/p", {}), ("folders/2", ADMIN_READ_ONLY), ("organizations/1", OTHER_SERVICE)
        )
        is DataAccessState.DISABLED
    )


def test_an_unreadable_level_makes_the_state_unknown_unless_another_level_enables_it() -> None:
    assert _state(("projects/p", {}), ("organizations/1", None)) is DataAccessState.UNKNOWN
    assert _state(("projects/p", None), ("organizations/1", ON_ALL)) is DataAccessState.ENABLED
    assert _state() is DataAccessState.UNKNOWN


def _assess(
    state: DataAccessState,
    *,
    entries: int = 0,
    flows: int = 0,
    gpu_vms: int = 1,
    running: tuple[str, ...] = (),
) -> Finding | None:
    return assess(
        project="p",
        state=state,
        reason="r",
        iap_entries=entries,
        iap_flows=flows,
        gpu_vms=gpu_vms,
        running_gpu_vms=list(running),
    )


def test_disabled_config_is_reported_with_the_iap_remediation() -> None:
    finding = _assess(DataAccessState.DISABLED)
    assert finding is not None and finding.code == "data_access_logs_disabled"
    assert "enable Data Access audit logs for IAP" in finding.remediation


def test_iap_range_flows_without_iap_entries_are_reported_even_if_config_says_on() -> None:
    finding = _assess(DataAccessState.ENABLED, flows=3, running=("vm",))
    assert finding is not None and finding.code == "iap_audit_entries_missing"
    assert "3 flow(s)" in finding.message


def test_unknown_config_with_running_gpu_vms_and_no_entries_is_unverified() -> None:
    finding = _assess(DataAccessState.UNKNOWN, running=("trainer-a3",))
    assert finding is not None and finding.code == "data_access_logs_unverified"
    assert finding.permission == "resourcemanager.projects.getIamPolicy"
    assert "trainer-a3" in finding.message


def test_quiet_projects_with_logging_on_or_only_stopped_gpu_vms_are_fine() -> None:
    assert _assess(DataAccessState.ENABLED, running=("vm",)) is None
    assert _assess(DataAccessState.UNKNOWN) is None  # GPU VMs exist but none is running
    assert _assess(DataAccessState.UNKNOWN, entries=2, running=("vm",)) is None


def test_projects_without_gpu_vms_are_out_of_scope_for_the_config_checks() -> None:
    assert _assess(DataAccessState.DISABLED, gpu_vms=0) is None
    assert _assess(DataAccessState.UNKNOWN, gpu_vms=0) is None
