"""Offline geolocation (handbook activity-feed.md §3.11): no per-address web look-ups, addresses are personal data.

By default the country comes from `iptocc`, whose wheel carries the five Regional Internet Registries' delegation
data (the registry-assigned country, not where a block is used; no coordinates). `WATCH_GEOIP_DB` may point to a
MaxMind-format `.mmdb` instead (GeoLite2 City, DB-IP City Lite: read with `maxminddb`), which also gives
coordinates, so `impossible-travel` can measure distances. Either way the data's date is exposed (`data_date`) so
every alert can name it. Private, loopback, link-local, reserved and Microsoft service addresses are never
locations.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

from shared.activity.records import IPAddress

EARTH_RADIUS_KM = 6371.0088

# Microsoft 365's published service ranges that show up as ClientIP of service-side actions: Exchange Online (IDs 1,
# 2), Exchange Online Protection (ID 9) and Microsoft 365 Common / Entra ID sign-in (ID 56) of the "Microsoft 365 URLs
# and IP address ranges" list, worldwide instance. A static copy: it changes rarely, and a miss only means a Microsoft
# address is located like any other (in the United States or Ireland, mostly).
MICROSOFT_SERVICE_RANGES: tuple[str, ...] = (
    "13.107.6.152/31",
    "13.107.18.10/31",
    "13.107.128.0/22",
    "23.103.160.0/20",
    "40.92.0.0/15",
    "40.96.0.0/13",
    "40.104.0.0/15",
    "40.107.0.0/16",
    "52.96.0.0/14",
    "52.100.0.0/15",
    "52.102.0.0/16",
    "52.103.0.0/17",
    "104.47.0.0/17",
    "131.253.33.215/32",
    "132.245.0.0/16",
    "150.171.32.0/22",
    "204.79.197.215/32",
    "20.20.32.0/19",
    "20.190.128.0/18",
    "20.231.128.0/19",
    "40.126.0.0/18",
    "2603:1006::/40",
    "2603:1007:200::/48",
    "2603:1016::/36",
    "2603:1017::/48",
    "2603:1026::/36",
    "2603:1027:1::/48",
    "2603:1036::/36",
    "2603:1037:1::/48",
    "2603:1046::/36",
    "2603:1047:1::/48",
    "2603:1056::/36",
    "2603:1057:2::/48",
    "2620:1ec:4::152/127",
    "2620:1ec:4::10/127",
    "2620:1ec:c::10/127",
    "2620:1ec:d::10/127",
    "2a01:111:f400::/48",
    "2a01:111:f403::/48",
)
_MICROSOFT = tuple(ipaddress.ip_network(network) for network in MICROSOFT_SERVICE_RANGES)


@dataclass(frozen=True)
class Location:
    """Where an address is registered or used: an ISO 3166-1 alpha-2 country, and coordinates when the data has them."""

    country: str
    latitude: float | None = None
    longitude: float | None = None

    @property
    def has_coordinates(self) -> bool:
        return self.latitude is not None and self.longitude is not None


class Geolocator(Protocol):
    """What the detections need: a location per address, and the data's name and date for the alert."""

    @property
    def source(self) -> str: ...

    @property
    def data_date(self) -> str: ...

    def locate(self, ip: IPAddress | None) -> Location | None: ...


@functools.lru_cache(maxsize=65_536)  # called for every located record; a tenant repeats a few thousand addresses
def never_a_location(ip: IPAddress) -> bool:
    """Private, loopback (`::1` is common in system records), link-local, reserved, multicast, documentation and
    shared ranges, and Microsoft's own service addresses."""
    if not ip.is_global or ip.is_multicast:
        return True
    return any(ip.version == network.version and ip in network for network in _MICROSOFT)


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    d_phi, d_lambda = phi2 - phi1, math.radians(lon2 - lon1)
    a = math.sin(d_phi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(d_lambda / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


class RegistryCountries:
    """Countries from the `iptocc` wheel (RIR delegation data, refreshed nightly upstream; pinned in requirements)."""

    def __init__(self) -> None:
        import iptocc

        self._lookup = iptocc.country_code
        self._version = _installed_version("iptocc")
        self._date = _wheel_build_date("iptocc")
        self._cache: dict[IPAddress, Location | None] = {}

    @property
    def source(self) -> str:
        return f"iptocc {self._version} (Regional Internet Registry delegations)"

    @property
    def data_date(self) -> str:
        return self._date or f"iptocc {self._version}"

    def locate(self, ip: IPAddress | None) -> Location | None:
        if ip is None or never_a_location(ip):
            return None
        if ip not in self._cache:
            if len(self._cache) > 100_000:
                self._cache.clear()  # bounded: memory stays flat in the number of records
            code = self._lookup(str(ip))
            self._cache[ip] = Location(code.upper()) if isinstance(code, str) and len(code) == 2 else None
        return self._cache[ip]


class MaxMindDatabase:
    """A customer-supplied MaxMind-format database (`WATCH_GEOIP_DB`), read with `maxminddb` (memory-mapped)."""

    def __init__(self, path: Path) -> None:
        import maxminddb

        self._reader = maxminddb.open_database(str(path))
        meta = self._reader.metadata()
        self._type = str(meta.database_type)
        self._date = datetime.fromtimestamp(int(meta.build_epoch), UTC).date().isoformat()

    @property
    def source(self) -> str:
        return f"{self._type} (WATCH_GEOIP_DB)"

    @property
    def data_date(self) -> str:
        return self._date

    def locate(self, ip: IPAddress | None) -> Location | None:
        if ip is None or never_a_location(ip):
            return None
        found = self._reader.get(str(ip))
        if not isinstance(found, dict):
            return None
        country = _dig(found, "country", "iso_code") or _dig(found, "registered_country", "iso_code")
        if not isinstance(country, str) or len(country) != 2:
            return None
        latitude, longitude = _dig(found, "location", "latitude"), _dig(found, "location", "longitude")
        if isinstance(latitude, int | float) and isinstance(longitude, int | float):
            return Location(country.upper(), float(latitude), float(longitude))
        return Location(country.upper())

    def close(self) -> None:
        self._reader.close()


class StaticLocations:
    """Fixed answers (tests, and callers that already know): address text → Location."""

    def __init__(self, locations: dict[str, Location], *, data_date: str = "static", source: str = "static") -> None:
        self._locations = {ipaddress.ip_address(key): value for key, value in locations.items()}
        self._date, self._source = data_date, source

    @property
    def source(self) -> str:
        return self._source

    @property
    def data_date(self) -> str:
        return self._date

    def locate(self, ip: IPAddress | None) -> Location | None:
        if ip is None or never_a_location(ip):
            return None
        return self._locations.get(ip)


def open_geolocator(geoip_db: Path | None) -> Geolocator:
    """The configured geolocation: the `.mmdb` when WATCH_GEOIP_DB is set, else the built-in registry countries."""
    return MaxMindDatabase(geoip_db) if geoip_db is not None else RegistryCountries()


def _dig(found: dict[str, Any], *keys: str) -> Any:
    value: Any = found
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _installed_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "unknown"


def _wheel_build_date(name: str) -> str | None:
    """The date the wheel (and so its nightly data) was built, from the CycloneDX SBOM it ships; None without one."""
    try:
        files: Iterable[Any] = metadata.distribution(name).files or ()
        for file in files:
            if str(file).endswith(".cyclonedx.json"):
                stamp = json.loads(file.read_text(encoding="utf-8")).get("metadata", {}).get("timestamp", "")
                if isinstance(stamp, str) and len(stamp) >= 10:
                    return datetime.fromisoformat(stamp[:10]).date().isoformat()
    except (OSError, ValueError, metadata.PackageNotFoundError):
        return None
    return None
