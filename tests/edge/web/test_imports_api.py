"""The REST upload, export and templates: admin only, audited, hostile input refused with a
clear 4xx (not a spreadsheet, a 50 MB file -> 413), formulas neutralised on export, and
progress of a running import under GET /import/jobs/{id}."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator

from tests.edge.web.conftest import Api
from tests.sheets import RESIDENTS, STAFF, csv_file, read_xlsx, resident, xlsx

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def b1(n: int, **cells: object) -> dict[str, object]:
    return resident(n, Building="Building 1", **cells)


async def test_upload_applies_a_good_file_and_audits_it(api: Api) -> None:
    h = {**api.token("admin"), "Content-Type": XLSX}
    body = xlsx(RESIDENTS, [b1(n) for n in range(5)])
    resp = await api.client.post("/api/v1/import/residents?dry_run=true", data=body, headers=h)
    assert resp.status == 200
    dry = await resp.json()
    assert dry["dry_run"] is True and dry["people_added"] == 5 and dry["version"] is None
    version = api.site.snapshot.version
    resp = await api.client.post("/api/v1/import/residents", data=body, headers=h)
    assert resp.status == 200
    done = await resp.json()
    assert done["version"] == version + 1 and done["people_added"] == 5
    rows, _ = await api.site.audit_log(limit=50)
    assert [(r["actor"], r["action"]) for r in rows if r["action"] == "import.residents"] == [
        ("token:t-admin", "import.residents")
    ]


async def test_a_bad_file_answers_422_with_every_row_and_column(api: Api) -> None:
    rows = [b1(0), b1(1, PIN="9"), b1(2, Apt="#7"), b1(3, **{"Access Group ID": "g-x"})]
    resp = await api.client.post(
        "/api/v1/import/residents", data=csv_file(RESIDENTS, rows), headers=api.token("admin")
    )
    assert resp.status == 422
    error = (await resp.json())["error"]
    assert error["code"] == "policy_invalid"
    assert [(i["entity"], i["field"]) for i in error["issues"]] == [
        ("row 3", "PIN"),
        ("row 4", "Apt"),
        ("row 5", "Access Group ID"),
    ]
    assert api.site.snapshot.version == 1


async def test_hostile_uploads_get_a_clear_4xx(api: Api) -> None:
    h = api.token("admin")
    cases = [
        (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, 422, "not an xlsx workbook nor UTF-8"),
        (b"PK\x03\x04garbage", 422, "not an xlsx workbook"),
        (b"", 400, "send the .xlsx or .csv file"),
        (b"<html><body>hi</body></html>", 422, "header row is not the residents template"),
    ]
    for data, status, words in cases:
        resp = await api.client.post("/api/v1/import/residents", data=data, headers=h)
        assert resp.status == status, data[:10]
        assert words in (await resp.json())["error"]["message"]
    resp = await api.client.post("/api/v1/import/people", data=b"x", headers=h)
    assert resp.status == 404
    form = {"file": io.BytesIO(csv_file(STAFF, []))}
    resp = await api.client.post("/api/v1/import/staff", data=form, headers=h)
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "bad_content_type"


async def test_a_50_mb_upload_is_refused_with_413(api: Api) -> None:
    chunk = b"x,1,\r\n" * (1024 * 1024 // 6)

    async def fifty_mb() -> AsyncIterator[bytes]:  # streamed, so no callback copies 50 MB
        yield b"Staff Name,RF Card,Access Group ID\r\n"
        for _ in range(50):
            yield chunk

    h = api.token("admin")
    length = {"Content-Length": str(50 * len(chunk) + 35)}
    for data, headers in ((fifty_mb(), {**h, **length}), (fifty_mb(), h)):  # announced, chunked
        resp = await api.client.post("/api/v1/import/staff", data=data, headers=headers)
        assert resp.status == 413
        error = (await resp.json())["error"]
        assert error["code"] == "payload_too_large" and "at most 20 MB" in error["message"]
    assert api.site.snapshot.version == 1


async def test_export_neutralises_formulas_and_masks_credentials(api: Api) -> None:
    h = api.token("admin")
    edit = [{"UID": "p-judy", "Remark": '=HYPERLINK("http://evil.example","x")'}]
    staff = [{"Staff Name": "@SUM(A1)", "RF Card": "1234"}, {"Staff Name": "+1 desk"}]
    for kind, columns, rows in (("residents", RESIDENTS, edit), ("staff", STAFF, staff)):
        resp = await api.client.post(
            f"/api/v1/import/{kind}", data=csv_file(columns, rows), headers=h
        )
        assert resp.status == 200, await resp.text()
    resp = await api.client.get("/api/v1/export/residents?format=csv", headers=h)
    assert resp.status == 200 and resp.content_type == "text/csv"
    assert "attachment" in resp.headers["Content-Disposition"]
    table = list(csv.reader(io.StringIO((await resp.read()).decode("utf-8-sig"))))
    judy = dict(zip(table[0], table[1], strict=True))
    assert judy["Remark"] == '\'=HYPERLINK("http://evil.example","x")'
    assert judy["PIN"] == "****" and "4711" not in str(table)
    resp = await api.client.get("/api/v1/export/staff?format=xlsx", headers=h)
    assert resp.content_type == XLSX
    names = [r[0] for r in read_xlsx(await resp.read())[1:]]
    assert sorted(names) == ["'+1 desk", "'@SUM(A1)", "Cathy"]
    rows, _ = await api.site.audit_log(limit=50)
    assert ("token:t-admin", "export.residents") in [(r["actor"], r["action"]) for r in rows]


async def test_templates_are_the_reference_headers(api: Api) -> None:
    resp = await api.client.get("/api/v1/templates/staff?format=csv", headers=api.token("viewer"))
    assert (await resp.read()).decode("utf-8-sig").strip() == "Staff Name,RF Card,Access Group ID"
    resp = await api.client.get("/api/v1/templates/residents", headers=api.token("viewer"))
    assert read_xlsx(await resp.read()) == [list(RESIDENTS)]
    resp = await api.client.get("/api/v1/templates/apartments", headers=api.token("viewer"))
    assert resp.status == 404
    resp = await api.client.get("/api/v1/export/residents", headers=api.token("installer"))
    assert resp.status == 403


async def test_a_running_import_reports_its_progress(api: Api) -> None:
    h = api.token("admin")
    body = await asyncio.to_thread(xlsx, RESIDENTS, [b1(n) for n in range(3000)])
    upload = asyncio.create_task(
        api.client.post("/api/v1/import/residents?job=job-12345678", data=body, headers=h)
    )
    stages = []
    while not upload.done():
        resp = await api.client.get("/api/v1/import/jobs/job-12345678", headers=h)
        if resp.status == 200:
            job = await resp.json()
            stages.append((job["stage"], job["done"], job["total"]))
        await asyncio.sleep(0.02)
    assert (await upload.result().json())["people_added"] == 3000
    job = await (await api.client.get("/api/v1/import/jobs/job-12345678", headers=h)).json()
    assert job["state"] == "done" and job["result"]["people_added"] == 3000
    assert any(stage == "checking" and 0 < done < total for stage, done, total in stages), stages
    resp = await api.client.get("/api/v1/import/jobs/nope-nope-nope", headers=h)
    assert resp.status == 404
