"""EmulatedError: a cmdlet failure as Exchange reports it, plus constructors for the ones we emulate."""

from __future__ import annotations

import zlib

# Where the emulated "mailbox server" lives; real messages name one, clients must not depend on it.
SERVER_FQDN = "AM0PR01MB1234.eurprd01.prod.exchangelabs.com"

NOT_FOUND = "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException"
AMBIGUOUS = "Microsoft.Exchange.Configuration.Tasks.ManagementObjectAmbiguousException"
PARAMETER_BINDING = "System.Management.Automation.ParameterBindingException"
DEHYDRATED = "Microsoft.Exchange.Management.Tasks.InvalidOperationInDehydratedContextException"  # the kinder shape
REAL_DEHYDRATED = "Microsoft.Exchange.Configuration.Tasks.InvalidOperationInDehydratedContextException"  # §10.4
TRANSFORMATION = "Microsoft.Exchange.AdminApi.CommandInvocation.ParameterTransformationException"
AMBIGUOUS_PARAMETER_SET = "Microsoft.Exchange.AdminApi.CommandInvocation.AmbiguousParameterSetException"
INVALID_OPERATION = "System.InvalidOperationException"
PROXY = "Microsoft.Exchange.Configuration.Tasks.CmdletProxyNotAvailableException"
PAGINATION = "Microsoft.Exchange.Admin.OData.Core.InvalidPaginationRequestException"
ODATA = "Microsoft.Exchange.Admin.OData.Core.ODataServiceException"
VALIDATION = "Microsoft.Exchange.Data.DataValidationException"

CODES: dict[int, str] = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    408: "RequestTimeout",
    409: "Conflict",
    429: "TooManyRequests",
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}

PAGINATION_TEXT = "Expired or Invalid pagination request. Default Expiry time is 00:30:00"
DEHYDRATED_TEXT = (
    "The operation on this object isn't currently allowed in your organization. To proceed with this operation, "
    "first run Enable-OrganizationCustomization."
)


def error_id(exception_type: str) -> str:
    """A stable, realistic-looking ErrorId ("Ex6F9304") derived from the exception type."""
    return f"Ex{zlib.crc32(exception_type.encode()) & 0xFFFFFF:06X}"


class EmulatedError(Exception):
    """A failed cmdlet: HTTP status, OData error code, ErrorId, full .NET exception type and message text.

    `real_type`/`real_text`: what the real service says instead, where the emulator's older (kinder) shape
    differs; used when the scenario quirk `real_error_bodies` is on (exchange-admin-api.md §10.9).
    """

    def __init__(
        self,
        status: int,
        code: str,
        error_id: str,
        exception_type: str,
        text: str,
        *,
        real_type: str | None = None,
        real_text: str | None = None,
    ) -> None:
        super().__init__(text)
        self.status = status
        self.code = code
        self.error_id = error_id
        self.exception_type = exception_type
        self.text = text
        self.real_type = real_type or exception_type
        self.real_text = real_text or text

    def type_for(self, real: bool) -> str:
        return self.real_type if real else self.exception_type

    def text_for(self, real: bool) -> str:
        return self.real_text if real else self.text

    def short_type_for(self, real: bool) -> str:
        """The class name without namespace, as the X-ExceptionType header carries it."""
        return self.type_for(real).rsplit(".", 1)[-1]

    @property
    def short_type(self) -> str:
        return self.short_type_for(False)


def make(
    status: int, exception_type: str, text: str, *, real_type: str | None = None, real_text: str | None = None
) -> EmulatedError:
    return EmulatedError(
        status,
        CODES.get(status, "BadRequest"),
        error_id(exception_type),
        exception_type,
        text,
        real_type=real_type,
        real_text=real_text,
    )


def not_found(identity: str) -> EmulatedError:
    return make(
        404,
        NOT_FOUND,
        f"The operation couldn't be performed because object '{identity}' couldn't be found on '{SERVER_FQDN}'.",
    )


def ambiguous(identity: str) -> EmulatedError:
    return make(400, AMBIGUOUS, f"The operation couldn't be performed because '{identity}' matches multiple entries.")


def binding(text: str) -> EmulatedError:
    return make(400, PARAMETER_BINDING, text)


def unknown_parameter(name: str) -> EmulatedError:
    """Real: the AmbiguousParameterSetException graph2otel captured for `-BogusParameter 1`."""
    return make(
        400,
        PARAMETER_BINDING,
        f"A parameter cannot be found that matches parameter name '{name}'.",
        real_type=AMBIGUOUS_PARAMETER_SET,
        real_text="Parameter set cannot be resolved using the specified named parameters. "
        f"Invalid cmdlet parameters specified. {name}",
    )


def conversion(parameter: str, value: object, target: str, detail: str = "") -> EmulatedError:
    text = (
        f"Cannot process argument transformation on parameter '{parameter}'. "
        f'Cannot convert value "{value}" to type "{target}".'
    )
    return make(400, PARAMETER_BINDING, text + (f' Error: "{detail}"' if detail else ""), real_type=TRANSFORMATION)


def enumeration(parameter: str, value: object, target: str, names: list[str] | tuple[str, ...]) -> EmulatedError:
    """A value outside an enum; the text lists the valid names, as PowerShell does."""
    return conversion(
        parameter,
        value,
        target,
        f"Unable to match the identifier name {value} to a valid enumerator "
        f"name. Specify one of the following enumerator names and try again: {', '.join(names)}",
    )


def dehydrated() -> EmulatedError:
    return make(400, DEHYDRATED, DEHYDRATED_TEXT, real_type=REAL_DEHYDRATED)


def dollar_boolean(parameter: str, value: str) -> EmulatedError:
    """A -Filter with $true/$false (quirk `reject_dollar_booleans`): refused like any bad parameter value."""
    return conversion(
        parameter,
        value,
        "System.String",
        "The filter contains a PowerShell variable ($true/$false); quote boolean values ('True', 'False').",
    )


def pagination() -> EmulatedError:
    return make(400, PAGINATION, PAGINATION_TEXT)


def bad_request(text: str) -> EmulatedError:
    return make(400, ODATA, text)


def envelope(error: EmulatedError, real: bool = False) -> dict[str, object]:
    """Exchange's error body (exchange-admin-api.md §3.1); `real`: the shapes live captures show (§10.9).

    Real shapes, by exception type: object not found/ambiguous → "Error executing cmdlet" with details code
    "Context" and an ErrorId (S19); "Cmdlet needs proxy" → the text itself in `error.message`, details with an
    empty ErrorId; a parameter transformation → "Invalid Operation", no `details`, the text only under
    `innererror.internalexception`, the warnings inside `error`; everything else → "Invalid Operation" with
    details code "Client" and an empty ErrorId (graph2otel 2026-07-23).
    """
    if not real:
        kinder_detail = f"{error.error_id}|{error.exception_type}|{error.text}"
        return {
            "error": {
                "code": error.code,
                "message": "Error executing cmdlet",
                "details": [{"code": "Context", "target": "", "message": kinder_detail}],
                "innererror": {
                    "message": "Error executing cmdlet",
                    "type": ODATA,
                    "internalexception": {"message": error.text, "type": error.exception_type},
                },
            },
            "@adminapi.warnings": [],
        }
    exception_type, text = error.real_type, error.real_text
    if exception_type in (NOT_FOUND, AMBIGUOUS):
        message, detail_code, detail_id = "Error executing cmdlet", "Context", error.error_id
    elif exception_type == PROXY:
        message, detail_code, detail_id = text, "Client", ""
    else:
        message, detail_code, detail_id = "Invalid Operation", "Client", ""
    body: dict[str, object] = {"code": error.code, "message": message}
    if exception_type != TRANSFORMATION:
        body["details"] = [{"code": detail_code, "target": "", "message": f"{detail_id}|{exception_type}|{text}"}]
    body["innererror"] = {
        "message": message,
        "type": ODATA,
        "stacktrace": "",
        "internalexception": {"message": text, "type": exception_type, "stacktrace": ""},
    }
    if exception_type == TRANSFORMATION:
        body["adminapi.warnings@odata.type"] = "#Collection(String)"
        body["@adminapi.warnings"] = []
        return {"error": body}
    return {"error": body, "@adminapi.warnings": []}
