"""EmulatedError: a cmdlet failure as Exchange reports it, plus constructors for the ones we emulate."""

from __future__ import annotations

import zlib

# Where the emulated "mailbox server" lives; real messages name one, clients must not depend on it.
SERVER_FQDN = "AM0PR01MB1234.eurprd01.prod.exchangelabs.com"

NOT_FOUND = "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException"
AMBIGUOUS = "Microsoft.Exchange.Configuration.Tasks.ManagementObjectAmbiguousException"
PARAMETER_BINDING = "System.Management.Automation.ParameterBindingException"
DEHYDRATED = "Microsoft.Exchange.Management.Tasks.InvalidOperationInDehydratedContextException"
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
    """A failed cmdlet: HTTP status, OData error code, ErrorId, full .NET exception type and message text."""

    def __init__(self, status: int, code: str, error_id: str, exception_type: str, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.code = code
        self.error_id = error_id
        self.exception_type = exception_type
        self.text = text

    @property
    def short_type(self) -> str:
        """The class name without namespace, as the X-ExceptionType header carries it."""
        return self.exception_type.rsplit(".", 1)[-1]


def make(status: int, exception_type: str, text: str) -> EmulatedError:
    return EmulatedError(status, CODES.get(status, "BadRequest"), error_id(exception_type), exception_type, text)


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
    return binding(f"A parameter cannot be found that matches parameter name '{name}'.")


def conversion(parameter: str, value: object, target: str, detail: str = "") -> EmulatedError:
    text = (
        f"Cannot process argument transformation on parameter '{parameter}'. "
        f'Cannot convert value "{value}" to type "{target}".'
    )
    return binding(text + (f' Error: "{detail}"' if detail else ""))


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
    return make(400, DEHYDRATED, DEHYDRATED_TEXT)


def pagination() -> EmulatedError:
    return make(400, PAGINATION, PAGINATION_TEXT)


def bad_request(text: str) -> EmulatedError:
    return make(400, ODATA, text)


def envelope(error: EmulatedError) -> dict[str, object]:
    """Exchange's error body (exchange-admin-api.md §3.1)."""
    return {
        "error": {
            "code": error.code,
            "message": "Error executing cmdlet",
            "details": [
                {"code": "Context", "target": "", "message": f"{error.error_id}|{error.exception_type}|{error.text}"}
            ],
            "innererror": {
                "message": "Error executing cmdlet",
                "type": ODATA,
                "internalexception": {"message": error.text, "type": error.exception_type},
            },
        },
        "@adminapi.warnings": [],
    }
