"""The app's shape without infrastructure: its OpenAPI document lists the API."""

from __future__ import annotations

from wastetrail_collection.app import create_app
from wastetrail_collection.settings import CollectionSettings


def test_openapi_documents_the_collection_api() -> None:
    app = create_app(CollectionSettings(jwt_secret="x" * 32))
    doc = app.openapi()
    paths = doc["paths"]
    for path, method in [("/v1/generators", "post"), ("/v1/generators/import", "post"),
                         ("/v1/trips", "post"), ("/v1/trips/{trip_id}/close", "post"),
                         ("/v1/loads", "post"), ("/v1/loads/batch", "post"),
                         ("/v1/refusals", "post"), ("/v1/trips/{trip_id}", "get"),
                         ("/v1/generators/{generator_id}/loads", "get"),
                         ("/v1/communes/{commune}/daily-totals", "get"),
                         ("/v1/communes/{commune}/compliance", "get")]:
        assert method in paths[path], path
    batch = doc["components"]["schemas"]["ScanBatchIn"]["properties"]["scans"]
    assert batch["items"] == {"$ref": "#/components/schemas/ScanIn"}
    assert "ScanIn" in doc["components"]["schemas"]
    csv = paths["/v1/generators/import"]["post"]["requestBody"]["content"]
    assert "text/csv" in csv
