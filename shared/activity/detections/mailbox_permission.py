"""`mailbox-permission`: someone was given another mailbox (FullAccess, SendAs, send on behalf, folder rights on
Inbox, Calendar or the top of the store), or an admin role (handbook §3.2). High when the actor made no grant in the
baseline window before; Microsoft's service accounts (e.g. the DiscoverySearchMailbox grants) are not judged."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from shared.activity.baseline import Baseline
from shared.activity.detections.base import Context, Detection, Outcome, Severity, admin_records, mailbox_of, make_alert
from shared.activity.records import AuditRecord

ID = "mailbox-permission"
_WATCHED_FOLDERS = frozenset({"inbox", "calendar", ""})  # "" : the top of the store
_NO_RIGHTS = frozenset({"", "none", "availabilityonly", "limiteddetails", "freebusytimeonly"})
_FOLDER_CMDLETS = ("Add-MailboxFolderPermission", "Set-MailboxFolderPermission")
_MAILBOX_SIDE = ("AddFolderPermissions", "ModifyFolderPermissions")


def _folder_name(path: str) -> str:
    """`ann@contoso.com:\\Inbox` or `\\Inbox` → `inbox`; `ann:\\` or `\\` → `` (the top of the store)."""
    folder = path.rsplit(":", 1)[-1] if ":\\" in path or ":/" in path else path
    return folder.strip().strip("\\/").lower()


def _grant(record: AuditRecord) -> tuple[str, str, str] | None:
    """(what was granted, mailbox, trustee) when the record grants something this detection watches."""
    operation = record.operation.lower()
    rights = (record.parameter("AccessRights") or "").lower()
    if operation == "add-mailboxpermission" and "fullaccess" in rights:
        return ("FullAccess", mailbox_of(record), record.parameter("User") or "")
    if operation == "add-recipientpermission" and "sendas" in rights:
        return ("SendAs", mailbox_of(record), record.parameter("Trustee") or "")
    if operation == "add-adpermission" and "send-as" in (record.parameter("ExtendedRights") or "").lower():
        return ("Send-As (AD)", mailbox_of(record), record.parameter("User") or "")
    if operation in ("set-mailbox", "set-remotemailbox"):
        delegates = (record.parameter("GrantSendOnBehalfTo") or "").strip()
        if delegates and delegates.lower() not in ("$null", "null"):
            return ("send on behalf", mailbox_of(record), delegates)
    if operation in {name.lower() for name in _FOLDER_CMDLETS}:
        identity = record.parameter("Identity") or ""
        folder = _folder_name(identity)
        if folder in _WATCHED_FOLDERS and rights.replace(" ", "") not in _NO_RIGHTS:
            mailbox = identity.split(":", 1)[0]
            return (
                f"folder rights {record.parameter('AccessRights')} on {folder or 'the top of the store'}",
                mailbox,
                record.parameter("User") or "",
            )
    if operation == "new-managementroleassignment":
        return (
            f"role {record.parameter('Role') or '?'}",
            "",
            record.parameter("User") or record.parameter("SecurityGroup") or "",
        )
    if operation in {name.lower() for name in _MAILBOX_SIDE}:
        folder = _folder_name(record.parent_folder)
        if folder in _WATCHED_FOLDERS and record.member_rights.replace(" ", "").lower() not in _NO_RIGHTS:
            where = folder or "the top of the store"
            return (f"folder rights {record.member_rights} on {where}", record.mailbox_owner_upn, record.member_upn)
    return None


def evaluate(records: Sequence[AuditRecord], baseline: Baseline, context: Context) -> Outcome:
    window = timedelta(days=context.policy.baseline_days)
    grants: dict[str, datetime] = {}
    alerts = []
    operations = (
        "Add-MailboxPermission",
        "Add-RecipientPermission",
        "Add-ADPermission",
        "Set-Mailbox",
        "Set-RemoteMailbox",
        *_FOLDER_CMDLETS,
        "New-ManagementRoleAssignment",
        *_MAILBOX_SIDE,
    )
    for record in admin_records(records, *operations):
        if record.is_service_actor:
            continue
        grant = _grant(record)
        if grant is None:
            continue
        what, mailbox, trustee = grant
        actor = record.actor
        last = grants.get(actor) or baseline.grants.get(actor)
        learned = baseline.learned(record.creation_time, context.policy.learning_days)
        first_time = learned and (last is None or record.creation_time - last > window)
        severity: Severity = "high" if first_time else "medium"
        why = (
            f" High: {record.user_id} made no other grant in the last {context.policy.baseline_days:g} days."
            if first_time
            else ""
        )
        alerts.append(
            make_alert(
                ID,
                severity,
                [record],
                context,
                f"{record.user_id} granted {what} on {mailbox or 'the organisation'} to {trustee or '?'} "
                f"({record.operation}).{why}",
                mailbox=mailbox,
                target=trustee.lower(),
            )
        )
        if last is None or record.creation_time > last:
            grants[actor] = record.creation_time
    updates = {"grants": {**baseline.grants, **grants}} if grants else {}
    return Outcome(tuple(alerts), updates)


DETECTION = Detection(ID, "Mailbox permission or delegation granted", "medium", ("grants",), evaluate)
