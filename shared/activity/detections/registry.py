"""Every detection, in one place and in report order (like shared/controls/registry.py for the controls)."""

from __future__ import annotations

from shared.activity.detections import (
    audit_tampering,
    impossible_travel,
    inbox_rule_evasion,
    mail_forwarding,
    mailbox_export,
    mailbox_permission,
    mass_delete,
    non_owner_access,
    send_as,
    unusual_location,
)
from shared.activity.detections.base import Detection

DETECTIONS: tuple[Detection, ...] = (
    audit_tampering.DETECTION,
    mailbox_permission.DETECTION,
    mail_forwarding.DETECTION,
    inbox_rule_evasion.DETECTION,
    send_as.DETECTION,
    non_owner_access.DETECTION,
    mass_delete.DETECTION,
    mailbox_export.DETECTION,
    unusual_location.DETECTION,
    impossible_travel.DETECTION,
)

BY_ID: dict[str, Detection] = {detection.id: detection for detection in DETECTIONS}
DETECTION_IDS: tuple[str, ...] = tuple(BY_ID)
assert len(BY_ID) == len(DETECTIONS), "a detection id is used twice"
