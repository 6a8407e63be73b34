"""Hostile input for ``tfao serve``: every answer is a 4xx (or a success), never a 5xx, and the node
keeps serving. Bodies of ``POST /`` are random bytes and mutated signed items; the other handlers get
random query strings and random JSON bodies."""

from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from test_server import message_item, served  # noqa: F401  (served is a fixture)

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
PARAM_NAMES = ["process-id", "from", "to", "sort", "limit", "from-nonce", "to-nonce", "assign", "base-layer",
               "exclude", "no-busy"]
text = st.text(max_size=60)
ids = st.one_of(st.from_regex(r"\A[A-Za-z0-9_-]{43}\Z"), text)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
    max_leaves=20,
)
tags = st.lists(st.fixed_dictionaries({"name": text, "value": text}) | json_values, max_size=4)
dryrun_bodies = st.one_of(
    json_values,
    st.fixed_dictionaries({}, optional={
        "Id": json_values | text, "Owner": json_values | text, "Target": json_values | text,
        "Data": json_values | text, "Anchor": json_values | text, "Tags": tags,
        "Timestamp": json_values, "Block-Height": json_values, "From": json_values | text,
    }),
)


@pytest.fixture(scope="module")
def fuzz_pid(served):  # noqa: F811
    return served.spawn(name="fuzz")


def still_serving(served):  # noqa: F811
    assert served.http.get("/").status_code == 200


def refused_or_accepted(response: httpx.Response):
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.json()["error"]
        assert "Traceback" not in response.text


@FUZZ
@given(body=st.binary(max_size=2048))
def test_random_item_bodies(served, body):  # noqa: F811
    response = served.http.post("/", content=body)
    assert 400 <= response.status_code < 500 and response.json()["error"]
    still_serving(served)


@FUZZ
@given(data=st.data())
def test_mutated_signed_items(served, fuzz_pid, data):  # noqa: F811
    raw = bytearray(message_item(fuzz_pid, "return 1", action="Eval").to_bytes())
    mutation = data.draw(st.sampled_from(["flip", "truncate", "splice"]))
    position = data.draw(st.integers(0, len(raw) - 1))
    if mutation == "flip":
        raw[position] ^= data.draw(st.integers(1, 255))
    elif mutation == "truncate":
        del raw[position:]
    else:
        raw[position:position] = data.draw(st.binary(min_size=1, max_size=64))
    response = served.http.post("/", content=bytes(raw))
    assert 400 <= response.status_code < 500 and response.json()["error"], response.text
    still_serving(served)


@FUZZ
@given(route=st.sampled_from(["/results/{pid}", "/result/{id}", "/{pid}", "/{id}", "/raw/{id}", "/tx/{id}",
                              "/processes/{pid}", "/{pid}/latest", "/timestamp", "/",
                              "/block/height/{id}"]),
       params=st.dictionaries(st.sampled_from(PARAM_NAMES) | text, text | ids, max_size=5),
       some_id=ids, range_header=st.none() | text)
def test_query_strings(served, fuzz_pid, route, params, some_id, range_header):  # noqa: F811
    path = route.replace("{pid}", fuzz_pid).replace("{id}", quote(some_id, safe=""))
    # a header value with control characters never leaves the client (httpx refuses it), so none is sent
    sendable = range_header and range_header.isascii() and range_header.isprintable()
    headers = {"Range": range_header.strip()} if sendable and range_header.strip() else {}
    refused_or_accepted(served.http.get(path, params=params, headers=headers))
    still_serving(served)


@FUZZ
@given(body=dryrun_bodies, params=st.dictionaries(st.sampled_from(["to", "process-id"]), ids, max_size=1))
def test_dry_run_bodies(served, fuzz_pid, body, params):  # noqa: F811
    response = served.http.post("/dry-run", params={"process-id": fuzz_pid, **params}, json=body)
    refused_or_accepted(response)
    still_serving(served)


@FUZZ
@given(body=json_values | st.fixed_dictionaries({"query": text | json_values},
                                                optional={"variables": json_values, "operationName": json_values}))
def test_graphql_bodies(served, body):  # noqa: F811
    refused_or_accepted(served.http.post("/graphql", json=body))
    still_serving(served)


@FUZZ
@given(variables=st.dictionaries(st.sampled_from(["ids", "owners", "tags", "first", "after", "max"]), json_values))
def test_graphql_variables(served, variables):  # noqa: F811
    query = """query ($ids: [ID!], $owners: [String!], $tags: [TagFilter!], $first: Int, $after: String,
      $max: Int) { transactions(ids: $ids, owners: $owners, tags: $tags, first: $first, after: $after,
      block: {max: $max}) { pageInfo { hasNextPage } edges { cursor node { id block { height } } } } }"""
    refused_or_accepted(served.http.post("/graphql", json={"query": query, "variables": variables}))
    still_serving(served)
