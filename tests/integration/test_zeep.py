"""A generated client: python3-zeep built from the WSDL apubid serves.

The WSDL (GET /apubi?wsdl) must carry the address it was reached at and a
schema import that resolves to a document the server also serves, so a
client generated from it works with no overrides.
"""
import os
import time
import urllib.parse
import xml.etree.ElementTree as ET

import pytest
import zeep
import zeep.exceptions
from zeep.transports import Transport

from conftest import NS, TASKID_RE, post, read_tree, write_tree

WSDL = "http://schemas.xmlsoap.org/wsdl/"
WSDL_SOAP = "http://schemas.xmlsoap.org/wsdl/soap/"
XSD = "http://www.w3.org/2001/XMLSchema"


def client_for(d):
    return zeep.Client(f"{d.url}?wsdl", transport=Transport(timeout=10, operation_timeout=15))


def task_id(result):
    return getattr(result, "TaskId", result)


def wait(client, tid, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        r = client.service.GetTaskStatus(TaskId=tid)
        if r.Status != "IN_PROGRESS":
            return r.Status, r.DestinationAsset
        assert time.monotonic() < deadline, f"{tid} still IN_PROGRESS after {timeout}s"
        time.sleep(0.05)


def test_wsdl_is_served_with_the_address_it_was_reached_at(daemon):
    status, headers, body = post(daemon.port, None, path="/apubi?wsdl", method="GET")
    assert status == 200, body[:300]
    assert "xml" in headers.get("Content-Type", "")
    root = ET.fromstring(body)
    assert root.tag == f"{{{WSDL}}}definitions"
    addresses = [a.get("location") for a in root.iter(f"{{{WSDL_SOAP}}}address")]
    assert addresses == [daemon.url]


def test_public_endpoint_is_what_the_wsdl_advertises_behind_a_proxy(make_daemon):
    public = "https://publish.example.com/cdn/apubi"
    d = make_daemon(server={"public_endpoint": public})
    # The Host a proxy forwards is not what outside clients reach.
    status, _, body = post(d.port, None, path="/apubi?wsdl", method="GET")
    assert status == 200, body[:300]
    root = ET.fromstring(body)
    addresses = [a.get("location") for a in root.iter(f"{{{WSDL_SOAP}}}address")]
    assert addresses == [public]
    imports = [i.get("schemaLocation") for i in root.iter(f"{{{XSD}}}import")]
    assert imports == [public + "?xsd"]
    # The daemon still serves its own path; only the advertised address changed.
    status, _, xsd = post(d.port, None, path="/apubi?xsd", method="GET")
    assert status == 200 and ET.fromstring(xsd).tag == f"{{{XSD}}}schema"


def test_wsdl_schema_import_is_served(daemon):
    wsdl_url = f"{daemon.url}?wsdl"
    _, _, body = post(daemon.port, None, path="/apubi?wsdl", method="GET")
    imports = [i.get("schemaLocation") for i in ET.fromstring(body).iter(f"{{{XSD}}}import")]
    assert imports and all(imports), f"no schemaLocation in {imports}"
    for loc in imports:
        url = urllib.parse.urljoin(wsdl_url, loc)
        parts = urllib.parse.urlsplit(url)
        assert (parts.hostname, parts.port) == ("127.0.0.1", daemon.port), url
        path = parts.path + ("?" + parts.query if parts.query else "")
        status, _, xsd = post(daemon.port, None, path=path, method="GET")
        assert status == 200, f"GET {url}: HTTP {status}"
        schema = ET.fromstring(xsd)
        assert schema.tag == f"{{{XSD}}}schema"
        assert schema.get("targetNamespace") == NS


def test_zeep_client_from_the_served_wsdl_targets_the_daemon(daemon):
    client = client_for(daemon)
    assert client.service._binding_options["address"] == daemon.url
    ops = set(client.service._operations)
    assert {"LoadAsset", "PurgeAsset", "GetTaskStatus"} <= ops


def test_zeep_publishes_polls_and_purges_a_file(daemon):
    data = os.urandom(50_000)
    (daemon.ingest / "z.ts").write_bytes(data)
    client = client_for(daemon)
    tid = task_id(client.service.LoadAsset(SourceAssetUrl=f"file://{daemon.ingest}/z.ts",
                                           DestinationAsset="zeep/z.ts"))
    assert TASKID_RE.match(tid)
    st, dest = wait(client, tid)
    assert (st, dest) == ("SUCCESS", f"file://{daemon.cdn}/zeep/z.ts")
    assert (daemon.cdn / "zeep" / "z.ts").read_bytes() == data
    ptid = task_id(client.service.PurgeAsset(DestinationAsset=dest))
    assert TASKID_RE.match(ptid) and ptid != tid
    assert wait(client, ptid) == ("SUCCESS", None)
    assert not (daemon.cdn / "zeep" / "z.ts").exists()


def test_zeep_publishes_and_purges_a_nested_directory(daemon):
    tree = {"index.mpd": b"<MPD/>", "v/1.m4s": os.urandom(9000), "v/a/café-日本.m4s": b"\0\1"}
    write_tree(daemon.ingest / "dash", tree)
    client = client_for(daemon)
    tid = task_id(client.service.LoadAsset(SourceAssetUrl=f"file://{daemon.ingest}/dash/",
                                           DestinationAsset="zeep/dash/", MetaData=None))
    st, dest = wait(client, tid)
    assert st == "SUCCESS"
    assert dest == f"file://{daemon.cdn}/zeep/dash/"
    assert read_tree(daemon.cdn / "zeep" / "dash") == tree
    assert wait(client, task_id(client.service.PurgeAsset(DestinationAsset=dest)))[0] == "SUCCESS"
    assert not (daemon.cdn / "zeep" / "dash").exists()


def _exception_message(detail):
    assert detail is not None, "fault without detail"
    node = detail.find(f"{{{NS}}}ExceptionWS/message")
    assert node is not None, "detail has no ExceptionWS/message"
    return node.text


def test_zeep_sees_an_unknown_task_as_a_fault_with_its_message(daemon):
    client = client_for(daemon)
    with pytest.raises(zeep.exceptions.Fault) as e:
        client.service.GetTaskStatus(TaskId="TestAssetA")
    assert e.value.message == "Task Id does not exist"
    assert e.value.code.endswith("Server")
    assert _exception_message(e.value.detail) == "Task Id does not exist"


def test_zeep_sees_a_validation_error_as_a_client_fault(daemon):
    client = client_for(daemon)
    with pytest.raises(zeep.exceptions.Fault) as e:
        client.service.LoadAsset(SourceAssetUrl=f"file://{daemon.ingest}/missing.ts",
                                 DestinationAsset="x.ts")
    assert "source asset does not exist" in e.value.message
    assert e.value.code.endswith("Client")
    assert _exception_message(e.value.detail) == e.value.message
