"""Every endpoint of ``mmfuse serve`` and every refusal (size, type, path, key), through the
ASGI application (FastAPI's TestClient): results agree with the Python API, bad requests get
a 4xx with a reason, and the server keeps serving."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import httpx
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from mmfuse.estimators.io import load
from mmfuse.serve.app import ServeOptions, create_app
from mmfuse.serve.catalogue import load_catalogue

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def catalogue(served):
    return load_catalogue([str(served.classifier), str(served.regressor)], [str(served.index)], num_threads=1)


@pytest.fixture(scope="module")
def client(catalogue):
    with TestClient(create_app(catalogue)) as c:
        yield c


def image_bytes(served, row: int = 0) -> bytes:
    df = pd.read_csv(served.data / "data.csv")
    path = df["image"].dropna().iloc[row]
    return (served.data / path).read_bytes()


def predict_form(client, served, **fields):
    files = {"image": ("x.png", image_bytes(served), "image/png")}
    data = {"model": "classifier", "review": "a great and lovely thing", "income": "1.5", **fields}
    return client.post("/v1/predict", data=data, files=files)


# ------------------------------------------------------------------ reading
def test_health_and_models_describe_what_is_served(client) -> None:
    health = client.get("/health").json()
    assert health["status"] == "ok"
    assert health["models"] == ["classifier", "regressor", "retrieval"]
    assert health["indexes"] == ["image_index"]
    listing = client.get("/v1/models").json()
    by_name = {m["name"]: m for m in listing["models"]}
    clf = by_name["classifier"]
    assert clf["task"] == "classification" and clf["classes"] == ["negative", "positive"]
    inputs = {f["name"]: f for f in clf["inputs"]}
    assert {n: f["accepts"] for n, f in inputs.items()} == {
        "image": "file", "review": "text", "audio": "file", "video": "file", "income": "number",
        "region": "choice"}
    assert sorted(inputs["region"]["choices"]) == ["east", "north", "south", "west"]
    assert by_name["regressor"]["classes"] is None
    assert by_name["retrieval"]["indexes"] == ["image_index"]
    assert {f["name"] for f in by_name["retrieval"]["inputs"]} == {"image", "caption"}
    (index,) = listing["indexes"]
    assert index == {"name": "image_index", "model": "retrieval", "column": "image", "kind": "image",
                     "size": 24, "query_kinds": ["image", "text"]}


def test_the_page_and_the_openapi_schema_are_served(client) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/health", "/v1/models", "/v1/predict", "/v1/explain", "/v1/search", "/metrics"} <= set(paths)


# ---------------------------------------------------------------- predicting
def test_predict_agrees_with_the_python_api_and_contributions_add_up(client, served) -> None:
    result = predict_form(client, served).json()
    assert result["model"] == "classifier" and result["task"] == "classification"
    proba = result["probabilities"]
    assert sum(proba.values()) == pytest.approx(1.0, abs=1e-6)
    assert result["prediction"] == max(proba, key=proba.get)
    assert sorted(result["missing"]) == ["audio", "video"]
    assert result["distrusted"] == []  # an ordinary record: nothing set aside
    assert result["contributions"]["audio"] == 0.0 and result["contributions"]["video"] == 0.0
    # Shapley efficiency: the values sum to P(predicted class) minus its value with no modality
    total = sum(result["contributions"].values())
    assert total == pytest.approx(proba[result["prediction"]] - result["base"], abs=1e-5)
    est = load(served.classifier)
    record = pd.DataFrame({"image": [image_bytes(served)], "review": ["a great and lovely thing"],
                           "audio": [None], "video": [None], "income": [1.5], "region": [None]})
    expected = est.predict_proba(record)[0]
    assert [proba[c] for c in est.classes_] == pytest.approx(list(expected), abs=1e-6)


def test_json_with_base64_or_a_data_url_gives_the_multipart_result(client, served) -> None:
    form = predict_form(client, served).json()
    encoded = base64.b64encode(image_bytes(served)).decode()
    for image in ({"base64": encoded, "filename": "x.png"}, f"data:image/png;base64,{encoded}"):
        body = {"model": "classifier",
                "record": {"image": image, "review": "a great and lovely thing", "income": 1.5}}
        got = client.post("/v1/predict", json=body).json()
        assert got["probabilities"] == pytest.approx(form["probabilities"], abs=1e-6)
        assert got["contributions"] == pytest.approx(form["contributions"], abs=1e-6)


def test_regression_predicts_in_the_target_units(client, served) -> None:
    body = {"model": "regressor", "record": {"review": "awful", "income": -0.5, "region": "north"}}
    got = client.post("/v1/predict", json=body).json()
    assert got["probabilities"] is None and got["task"] == "regression"
    record = pd.DataFrame({"image": [None], "review": ["awful"], "audio": [None], "video": [None],
                           "income": [-0.5], "region": ["north"]})
    assert got["prediction"] == pytest.approx(float(load(served.regressor).predict(record)[0]), abs=1e-5)
    assert sorted(got["missing"]) == ["audio", "image", "video"]


def test_explain_returns_values_that_add_up_and_the_fusion_weights(client, served) -> None:
    files = {"image": ("x.png", image_bytes(served), "image/png")}
    got = client.post("/v1/explain", data={"model": "classifier", "review": "bad"}, files=files).json()
    assert set(got["values"]) == {"audio", "image", "review", "tabular", "video"}
    assert sum(got["values"].values()) == pytest.approx(got["full"] - got["base"], abs=1e-5)
    assert got["units"] == "contribution to P(predicted class)"
    assert "fusion_weights" in got and "contributions" not in got


def test_a_record_with_no_input_at_all_is_predicted_from_nothing(client) -> None:
    got = client.post("/v1/predict", json={"model": "classifier", "record": {}}).json()
    assert sorted(got["missing"]) == ["audio", "image", "review", "tabular", "video"]
    assert all(v == 0.0 for v in got["contributions"].values())


# ------------------------------------------------------------------ refusals
@pytest.mark.parametrize(("fields", "files", "status", "words"), [
    ({"colour": "red"}, None, 422, "unknown field(s) 'colour'; this model's inputs are: image, review"),
    ({"image": "/etc/passwd"}, None, 422, "never reads a path or URL named in a request"),
    ({"image": "images/0000.png"}, None, 422, "never reads a path"),
    ({}, {"image": ("x.png", b"just some text", "image/png")}, 422,
     "('x.png') is not a valid image file: its content is not a format mmfuse reads"),
    ({}, {"image": ("x.png", PNG + b"garbage", "image/png")}, 422, "field 'image': cannot decode image"),
    ({}, {"image": ("x.wav", b"RIFF\x00\x00\x00\x00WAVEfmt ", "audio/wav")}, 415,
     "declared as audio/wav, but this field takes image"),
    ({}, {"audio": ("x.wav", PNG + b"\x00" * 40, "application/octet-stream")}, 422,
     "its content looks like image"),
    ({}, {"image": ("x.png", b"", "image/png")}, 422, "the file is empty"),
    ({}, {"review": ("notes.txt", b"hello", "text/plain")}, 422, "field 'review' takes text, not a file"),
    ({"income": "lots"}, None, 422, "field 'income' takes a number, got 'lots'"),
    ({"income": "nan"}, None, 422, "takes a finite number"),
    ({"model": "nope"}, None, 404, "no model called 'nope'; served: classifier, regressor, retrieval"),
    ({"model": "retrieval"}, None, 422, "is a retrieval model: search its index"),
])
def test_bad_predict_requests_are_refused_with_the_reason(client, fields, files, status, words) -> None:
    data = {"model": "classifier", **fields}
    response = client.post("/v1/predict", data=data, files=files)
    assert response.status_code == status, response.text
    assert words in response.json()["detail"]
    assert client.get("/health").status_code == 200


@pytest.mark.parametrize(("content", "kind", "status", "words"), [
    (b"{not json", "application/json", 400, "the body is not valid JSON"),
    (b"[1, 2]", "application/json", 400, "the JSON body must be an object"),
    (b"hello", "text/plain", 415, "send multipart/form-data or application/json, not text/plain"),
    (json.dumps({"model": "classifier", "record": {"image": {"base64": "%%%"}}}).encode(),
     "application/json", 422, "not valid base64"),
    (json.dumps({"model": "classifier", "image": "x"}).encode(), "application/json", 422,
     "a JSON request is {\"model\": NAME, \"record\""),
])
def test_malformed_bodies_are_refused(client, content, kind, status, words) -> None:
    response = client.post("/v1/predict", content=content, headers={"content-type": kind})
    assert response.status_code == status
    assert words in response.json()["detail"]


def test_a_model_must_be_named_when_several_predict(client) -> None:
    response = client.post("/v1/predict", json={"record": {}})
    assert response.status_code == 422
    assert "name the model" in response.json()["detail"] and "classifier, regressor" in response.json()["detail"]


def test_a_body_over_the_limit_is_refused_declared_or_streamed(catalogue, served) -> None:
    app = create_app(catalogue, ServeOptions(max_request_mb=0.001))
    big = PNG + bytes(4096)
    with TestClient(app) as c:
        declared = c.post("/v1/predict", data={"model": "classifier"}, files={"image": ("x.png", big, "image/png")})
        assert declared.status_code == 413
        assert "larger than the server's limit of 0.001 MB" in declared.json()["detail"]

        def chunks():
            for _ in range(8):
                yield b"x" * 512

        streamed = c.post("/v1/predict", content=chunks(), headers={"content-type": "application/json"})
        assert streamed.status_code == 413
        assert c.post("/v1/predict", json={"model": "classifier", "record": {}}).status_code == 200


def test_an_api_key_guards_the_api_but_not_the_page(catalogue) -> None:
    with TestClient(create_app(catalogue, ServeOptions(api_key="s3cret"))) as c:
        refused = c.get("/v1/models")
        assert refused.status_code == 401 and "needs an API key" in refused.json()["detail"]
        assert c.get("/metrics").status_code == 401
        assert c.get("/v1/models", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.get("/v1/models", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert c.get("/v1/models", headers={"X-API-Key": "s3cret"}).status_code == 200
        assert c.get("/health").status_code == 200 and c.get("/").status_code == 200


def test_a_request_past_the_timeout_gets_504_and_the_server_goes_on(catalogue) -> None:
    with TestClient(create_app(catalogue, ServeOptions(timeout_s=1e-6))) as c:
        response = c.post("/v1/predict", json={"model": "classifier", "record": {"review": "ok"}})
        assert response.status_code == 504 and "timeout of 1e-06 s" in response.json()["detail"]
    with TestClient(create_app(catalogue)) as c:
        assert c.post("/v1/predict", json={"model": "classifier", "record": {"review": "ok"}}).status_code == 200


def test_an_unexpected_failure_is_a_500_and_not_the_end_of_the_server(catalogue, monkeypatch) -> None:
    import mmfuse.serve.runner as runner

    app = create_app(catalogue)
    with TestClient(app, raise_server_exceptions=False) as c:
        def broken(*args, **kwargs):
            raise RuntimeError("boom")

        monkeypatch.setattr(runner.pd, "DataFrame", broken)
        failed = c.post("/v1/predict", json={"model": "classifier", "record": {"review": "ok"}})
        assert failed.status_code == 500 and "RuntimeError" in failed.json()["detail"]
        monkeypatch.undo()
        assert c.post("/v1/predict", json={"model": "classifier", "record": {"review": "ok"}}).status_code == 200


# ------------------------------------------------------------------ batching
def test_concurrent_requests_are_batched_and_a_bad_one_spoils_nothing(catalogue, served) -> None:
    app = create_app(catalogue, ServeOptions(max_batch=16, batch_wait_ms=200))
    reviews = ["great", "awful", "fine and lovely", "terrible", "ok", "superb", "bad"]

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            good = [c.post("/v1/predict", json={"model": "classifier", "record": {"review": r, "income": i}})
                    for i, r in enumerate(reviews)]
            bad = c.post("/v1/predict", data={"model": "classifier"},
                         files={"image": ("x.png", PNG + b"garbage", "image/png")})
            responses = await asyncio.gather(*good, bad)
            responses.append(await c.get("/metrics"))
            return responses

    *answers, bad, metrics = asyncio.run(run())
    assert [a.status_code for a in answers] == [200] * len(reviews)
    assert bad.status_code == 422 and "cannot decode image" in bad.json()["detail"]
    text = metrics.text
    assert 'mmfuse_batch_size_count{target="classifier"} 1.0' in text
    assert 'mmfuse_batch_size_sum{target="classifier"} 8.0' in text
    with TestClient(create_app(catalogue)) as c:  # one at a time: the same answers
        for r, (i, review) in zip(answers, enumerate(reviews)):
            alone = c.post("/v1/predict", json={"model": "classifier", "record": {"review": review, "income": i}})
            assert alone.json()["probabilities"] == pytest.approx(r.json()["probabilities"], abs=1e-5)


# ------------------------------------------------------------------ searching
def test_search_by_text_and_by_file_and_the_hits_media(client, served) -> None:
    got = client.post("/v1/search", data={"query": "a big red circle on a dark background", "k": "3"}).json()
    assert got["index"] == "image_index" and got["query_kind"] == "text"
    assert [h["rank"] for h in got["results"]] == [1, 2, 3]
    scores = [h["score"] for h in got["results"]]
    assert scores == sorted(scores, reverse=True)
    hit = got["results"][0]
    assert hit["kind"] == "image" and hit["media_url"] == f"/v1/media/image_index/{hit['row_id']}"
    thumb = client.get(hit["media_url"], params={"size": 32})
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/png"
    from PIL import Image
    import io

    assert max(Image.open(io.BytesIO(thumb.content)).size) <= 32
    image = (served.pairs.parent / hit["value"]).read_bytes()
    by_file = client.post("/v1/search", data={"k": "1"}, files={"file": ("q.png", image, "image/png")}).json()
    assert by_file["query_kind"] == "image" and by_file["results"][0]["row_id"] == hit["row_id"]
    as_json = client.post("/v1/search", json={"index": "image_index", "k": 1,
                                              "query": {"base64": base64.b64encode(image).decode()}}).json()
    assert as_json["results"][0]["row_id"] == hit["row_id"]


@pytest.mark.parametrize(("request_kwargs", "status", "words"), [
    ({"data": {"query": "   "}}, 422, "the query is empty"),
    ({"data": {"query": "red", "k": "0"}}, 422, "k must be between 1 and 1000, got 0"),
    ({"data": {"query": "red", "k": "ten"}}, 422, "k must be a whole number"),
    ({"data": {"query": "red", "index": "other"}}, 404, "no index called 'other'; served: image_index"),
    ({"data": {"query": "red", "page": "2"}}, 422, "unknown field(s) ['page']"),
    ({"data": {"query": "red"}, "files": {"file": ("q.png", PNG + bytes(40), "image/png")}}, 422,
     "either a text query or a file, not both"),
    ({"files": {"file": ("q.bin", b"\x00" * 64, "application/octet-stream")}}, 422,
     "is not an image, audio or video file"),
])
def test_bad_searches_are_refused(client, request_kwargs, status, words) -> None:
    response = client.post("/v1/search", **request_kwargs)
    assert response.status_code == status
    assert words in response.json()["detail"]


def test_media_of_unknown_rows_and_bad_sizes_are_refused(client) -> None:
    assert client.get("/v1/media/image_index/999").status_code == 404
    assert "has no row_id 999" in client.get("/v1/media/image_index/999").json()["detail"]
    assert client.get("/v1/media/image_index/0", params={"size": 5000}).status_code == 422
    assert client.get("/v1/media/nope/0").status_code == 404


def test_metrics_count_requests_by_endpoint_and_status(client) -> None:
    client.get("/v1/models")
    client.post("/v1/predict", json={"model": "nope", "record": {}})
    text = client.get("/metrics").text
    assert 'mmfuse_requests_total{endpoint="/v1/models",status="200"}' in text
    assert 'mmfuse_requests_total{endpoint="/v1/predict",status="404"}' in text
    assert "mmfuse_request_seconds_bucket" in text


# ----------------------------------------------------------- loading errors
def test_directories_in_the_wrong_place_are_named(served) -> None:
    from mmfuse.errors import MmfuseError

    with pytest.raises(MmfuseError, match="is an index directory: pass it with --index"):
        load_catalogue([str(served.index)], [])
    with pytest.raises(MmfuseError, match="is a model directory, not an index"):
        load_catalogue([], [str(served.classifier)])


def test_an_index_brings_its_model_and_names_stay_unique(served) -> None:
    cat = load_catalogue([str(served.classifier), str(served.classifier)], [str(served.index)])
    assert list(cat.models) == ["classifier", "classifier-2", "retrieval"]
    assert cat.indexes["image_index"].model.name == "retrieval"


def test_every_media_kind_can_be_uploaded(client, served) -> None:
    df = pd.read_csv(served.data / "data.csv")
    row = df.dropna(subset=["image", "audio", "video"]).iloc[0]
    files = {c: (Path(row[c]).name, (served.data / row[c]).read_bytes(), "application/octet-stream")
             for c in ("image", "audio", "video")}
    got = client.post("/v1/predict", data={"model": "classifier", "review": str(row["review"])}, files=files)
    assert got.status_code == 200, got.text
    assert got.json()["missing"] == ["tabular"]
    record = pd.DataFrame({c: [files[c][1]] for c in ("image", "audio", "video")}).assign(
        review=[str(row["review"])], income=[None], region=[None])
    expected = load(served.classifier).predict_proba(record)[0]
    assert list(got.json()["probabilities"].values()) == pytest.approx(list(expected), abs=1e-6)
    broken = client.post("/v1/predict", data={"model": "classifier"},
                         files={"video": ("clip.mp4", files["video"][1][:200], "video/mp4")})
    assert broken.status_code == 422 and "field 'video'" in broken.json()["detail"]


# ---------------------------------------------------------------- recommending
def test_recommend_lists_items_with_their_fields_and_media(recommender) -> None:
    with TestClient(create_app(load_catalogue([str(recommender)], []))) as c:
        (described,) = c.get("/v1/models").json()["models"]
        assert described["task"] == "recommendation" and described["inputs"] == []
        assert described["users"] > 0 and described["items"] == 40
        user = described["example_users"][0]
        got = c.post("/v1/recommend", json={"user": user, "k": 3}).json()
        assert got["known"] is True and [h["rank"] for h in got["results"]] == [1, 2, 3]
        expected = load(recommender).recommend([user], 3)
        assert [h["item"] for h in got["results"]] == expected["item"].tolist()
        first = got["results"][0]
        assert set(first["fields"]) == {"title", "price", "genre"}
        image = c.get(first["media"]["image"]["url"])
        assert image.status_code == 200 and image.headers["content-type"] == "image/png"
        stranger = c.post("/v1/recommend", data={"user": "nobody", "k": "2"}).json()
        assert stranger["known"] is False and len(stranger["results"]) == 2
        assert c.post("/v1/recommend", json={"k": 2}).status_code == 422
        assert c.post("/v1/recommend", json={"user": user, "k": 0}).status_code == 422
        assert "ask it with /v1/recommend" in c.post("/v1/predict", json={"record": {}, "model": "rec"}).json()["detail"]
        assert c.get("/v1/items/rec/nope/image").status_code == 404


def test_a_modality_the_guard_sets_aside_is_named_and_predicted_without(served) -> None:
    from mmfuse.serve.runner import _contributions

    est = load(served.classifier)
    guard = est.model_.guard
    assert guard is not None  # trained with modality dropout
    guard.threshold_tabular.fill_(1e-12)  # every tabular embedding now counts as far out
    head = pd.read_csv(served.data / "data.csv").head(8)
    for column in ("image", "audio", "video"):
        head[column] = [None if pd.isna(p) else str(served.data / p) for p in head[column]]
    enc = est.prepare(head, with_target=False)
    outputs, _, _, _, distrusted = _contributions(est.fitted_model, enc)
    present = enc.mask["tabular"]
    assert present.any() and distrusted["tabular"].tolist() == present.tolist()
    assert not any(v.any() for m, v in distrusted.items() if m != "tabular")
    hidden = est.prepare(head.assign(income=None, region=None), with_target=False)
    assert outputs == pytest.approx(est.fitted_model.outputs(hidden), abs=1e-6)
