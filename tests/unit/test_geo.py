"""Offline geolocation: the built-in registry countries, a MaxMind-format city database (WATCH_GEOIP_DB), what is never
a location, and distances."""

from __future__ import annotations

import ipaddress
import json
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path

import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from shared.activity.baseline import Baseline
from shared.activity.detections.base import Context
from shared.activity.detections.evaluate import evaluate_batch
from shared.activity.geo import (
    MaxMindDatabase,
    RegistryCountries,
    haversine_km,
    never_a_location,
    open_geolocator,
)
from shared.activity.records import AuditRecord, parse_record
from shared.config.loader import load
from shared.config.settings import ConfigError
from tests.support.audit_records import NOW, TENANT, sign_in


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


@pytest.mark.parametrize(
    "text",
    [
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "127.0.0.1",
        "::1",
        "169.254.1.1",
        "fe80::1",
        "100.64.0.1",
        "203.0.113.7",
        "224.0.0.1",
        "0.0.0.0",
        "fc00::1",
        "52.97.1.1",
        "40.99.0.1",
        "20.190.130.1",
        "2603:1026::1",
        "40.107.1.1",  # Microsoft's service ranges
    ],
)
def test_never_a_location(text):
    assert never_a_location(ip(text))
    assert RegistryCountries().locate(ip(text)) is None


def test_registry_countries_and_their_date():
    geo = RegistryCountries()
    assert geo.locate(ip("81.2.69.142")).country == "GB"  # type: ignore[union-attr]
    assert geo.locate(ip("79.159.11.115")).country == "ES"  # type: ignore[union-attr]
    assert geo.locate(ip("81.2.69.142")).has_coordinates is False  # type: ignore[union-attr]
    assert geo.locate(None) is None
    # The data's date is the wheel's build date (its nightly RIR data), named with the pinned version.
    assert datetime.fromisoformat(geo.data_date).date() <= datetime.now(UTC).date()
    assert metadata.version("iptocc") in geo.source


def test_haversine():
    assert haversine_km(51.5074, -0.1278, 40.7128, -74.0060) == pytest.approx(5570, rel=0.01)  # London - New York
    assert haversine_km(10, 10, 10, 10) == 0


def city_database(path: Path) -> Path:
    writer = MMDBWriter(ip_version=6, database_type="GeoLite2-City", languages=["en"], ipv4_compatible=True)
    writer.insert_network(
        IPSet(["81.2.69.0/24"]),
        {"country": {"iso_code": "GB"}, "location": {"latitude": 51.5142, "longitude": -0.0931}},
    )
    writer.insert_network(
        IPSet(["89.160.20.0/24"]),
        {"country": {"iso_code": "SE"}, "location": {"latitude": 58.4167, "longitude": 15.6167}},
    )
    writer.insert_network(IPSet(["2.125.160.0/24"]), {"registered_country": {"iso_code": "gb"}})
    database = path / "city.mmdb"
    writer.to_db_file(str(database))
    return database


def test_a_maxmind_city_database_gives_coordinates_and_its_build_date(tmp_path):
    geo = MaxMindDatabase(city_database(tmp_path))
    london = geo.locate(ip("81.2.69.142"))
    assert london is not None and london.country == "GB" and london.has_coordinates
    assert geo.locate(ip("2.125.160.216")).country == "GB"  # type: ignore[union-attr]
    assert geo.locate(ip("8.8.8.8")) is None  # not in the file
    assert geo.locate(ip("10.0.0.1")) is None
    assert geo.data_date == datetime.now(UTC).date().isoformat()
    assert "GeoLite2-City" in geo.source
    geo.close()


def test_watch_geoip_db_is_read_by_the_loader_and_opens_the_database(tmp_path):
    database = city_database(tmp_path)
    watch = load({"EXO_TENANT_ID": TENANT, "WATCH_GEOIP_DB": str(database)}).watch
    assert watch.geoip_db == database
    assert isinstance(open_geolocator(watch.geoip_db), MaxMindDatabase)
    assert isinstance(open_geolocator(None), RegistryCountries)
    for bad in (str(tmp_path / "missing.mmdb"), str(tmp_path), __file__):
        with pytest.raises(ConfigError) as raised:
            load({"EXO_TENANT_ID": TENANT, "WATCH_GEOIP_DB": bad})
        assert set(raised.value.problems) == {"WATCH_GEOIP_DB"}


def test_watch_defaults():
    watch = load({"EXO_TENANT_ID": TENANT}).watch
    assert (watch.learning_days, watch.baseline_days, watch.mass_delete_per_hour, watch.travel_kmh) == (7, 14, 100, 900)
    assert watch.geoip_db is None
    with pytest.raises(ConfigError) as raised:
        load({"EXO_TENANT_ID": TENANT, "WATCH_MASS_DELETE_PER_HOUR": "10.5"})
    assert set(raised.value.problems) == {"WATCH_MASS_DELETE_PER_HOUR"}


def test_impossible_travel_measured_with_a_city_database(tmp_path):
    geo = MaxMindDatabase(city_database(tmp_path))
    raws = [
        sign_in("ann@contoso.com", NOW, "81.2.69.142"),
        sign_in("ann@contoso.com", NOW + timedelta(minutes=30), "89.160.20.112"),  # London → Linköping: ~1,400 km
    ]
    records = [parse_record(raw) for raw in raws]
    assert all(isinstance(record, AuditRecord) for record in records)
    learned = Baseline(history_start=NOW - timedelta(days=30))
    evaluation = evaluate_batch(records, learned, Context(geo=geo))  # type: ignore[arg-type]
    [alert] = [alert for alert in evaluation.alerts if alert.detection == "impossible-travel"]
    assert alert.severity == "high" and "km/h" in alert.message and alert.geo_data_date == geo.data_date
    json.dumps(alert.as_json())
