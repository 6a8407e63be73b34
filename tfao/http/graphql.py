"""The gateway's GraphQL: Arweave's ``transactions`` query answered from the local weave.

The schema is the subset of the Arweave gateway schema that aoconnect, the aos CLI, the CU and
WeaveDrive's gateway client ask for: ``transactions(ids, owners, recipients, tags, block, first,
after, sort)`` and ``transaction(id)``. Every item of the local weave is an ANS-104 data item in its
own local block; ``bundledIn`` names that block so clients know the item is a data item.
"""

from __future__ import annotations

from graphql import GraphQLError, GraphQLSchema, build_schema, execute, parse, validate
from graphql.error import GraphQLSyntaxError

from weavedrive.ans104 import b64url_encode
from weavedrive.store import StoredItem, WeaveStore

MAX_PAGE = 100  # what Arweave gateways allow per page
MAX_TOKENS = 5000  # far above any client's query; bounds parsing work on hostile input

SCHEMA_SDL = """
type Query {
  transaction(id: ID!): Transaction
  transactions(
    ids: [ID!]
    owners: [String!]
    recipients: [String!]
    tags: [TagFilter!]
    block: BlockFilter
    first: Int = 10
    after: String
    sort: SortOrder = HEIGHT_DESC
  ): TransactionConnection!
}

input TagFilter {
  name: String!
  values: [String!]!
  op: TagOperator = EQ
}

enum TagOperator { EQ NEQ }

input BlockFilter {
  min: Int
  max: Int
}

enum SortOrder { HEIGHT_ASC HEIGHT_DESC }

type TransactionConnection {
  pageInfo: PageInfo!
  edges: [TransactionEdge!]!
}

type PageInfo { hasNextPage: Boolean! }

type TransactionEdge {
  cursor: String!
  node: Transaction!
}

type Transaction {
  id: ID!
  anchor: String!
  signature: String!
  recipient: String!
  owner: Owner!
  fee: Amount!
  quantity: Amount!
  data: MetaData!
  tags: [Tag!]!
  block: Block
  bundledIn: Bundle
}

type Owner {
  address: String!
  key: String!
}

type Amount {
  winston: String!
  ar: String!
}

type MetaData {
  size: String!
  type: String
}

type Tag {
  name: String!
  value: String!
}

type Block {
  id: ID!
  timestamp: Int!
  height: Int!
  previous: ID!
}

type Bundle { id: ID! }
"""

SCHEMA: GraphQLSchema = build_schema(SCHEMA_SDL)
ZERO_AMOUNT = {"winston": "0", "ar": "0.000000000000"}


class QueryError(ValueError):
    """The request is not a GraphQL query this gateway can run (syntax, validation, shape)."""


class WeaveQueries:
    """Root resolvers over a weave store (graphql-core's default resolver calls these methods)."""

    def __init__(self, weave: WeaveStore):
        self.weave = weave

    def transaction(self, info, id: str) -> dict | None:
        found = self.weave.query(ids=[id], first=1)
        return self._node(found[0]) if found else None

    def transactions(self, info, ids=None, owners=None, recipients=None, tags=None, block=None, first=10,
                     after=None, sort="HEIGHT_DESC") -> dict:
        if first < 0:
            raise GraphQLError(f"first must be at least 0, got {first}")
        first = min(first, MAX_PAGE)
        tag_filters = []
        for tag in tags or ():
            if tag.get("op", "EQ") != "EQ":
                raise GraphQLError("only the EQ tag operator is supported")
            tag_filters.append((tag["name"], tag["values"]))
        block = block or {}
        try:
            items = self.weave.query(
                ids=ids, owners=owners, recipients=recipients, tags=tag_filters, min_block=block.get("min"),
                max_block=block.get("max"), first=first + 1, after=after, sort=sort,
            )
        except ValueError as exc:  # a cursor that is not one of ours
            raise GraphQLError(str(exc)) from None
        return {
            "pageInfo": {"hasNextPage": len(items) > first},
            "edges": [{"cursor": item.cursor, "node": self._node(item)} for item in items[:first]],
        }

    def _node(self, item: StoredItem) -> dict:
        return {
            "id": item.id,
            "anchor": b64url_encode(item.anchor),
            "signature": b64url_encode(item.signature),
            "recipient": item.target or "",
            "owner": {"address": item.owner_address, "key": b64url_encode(item.owner)},
            "fee": ZERO_AMOUNT,
            "quantity": ZERO_AMOUNT,
            "data": {"size": str(item.size), "type": item.tag("Content-Type")},
            "tags": [{"name": name, "value": value} for name, value in item.tags],
            # resolved only when asked for: one block lookup per item
            "block": lambda info: self._block(item.block),
            "bundledIn": lambda info: {"id": self._block(item.block)["id"]},
        }

    def _block(self, height: int) -> dict:
        block = self.weave.block(height)
        return {"id": block["indep_hash"], "timestamp": block["timestamp"], "height": block["height"],
                "previous": block["previous_block"]}


def run_query(weave: WeaveStore, body) -> dict:
    """Run a GraphQL request body ``{query, variables?, operationName?}``; QueryError if it cannot run.

    Errors met while executing a valid query come back in the result's ``errors``, as GraphQL says.
    """
    if not isinstance(body, dict) or not isinstance(body.get("query"), str):
        raise QueryError('the body must be a JSON object with a "query" string')
    variables = body.get("variables")
    operation = body.get("operationName")
    if variables is not None and not isinstance(variables, dict):
        raise QueryError('"variables" must be a JSON object')
    if operation is not None and not isinstance(operation, str):
        raise QueryError('"operationName" must be a string')
    try:
        document = parse(body["query"], max_tokens=MAX_TOKENS)
    except GraphQLSyntaxError as exc:
        raise QueryError(f"GraphQL syntax error: {exc.message} at {_location(exc)}") from None
    try:
        return _execute(weave, document, variables, operation)
    except RecursionError:
        raise QueryError("GraphQL query nested too deeply") from None


def _execute(weave: WeaveStore, document, variables: dict | None, operation: str | None) -> dict:
    problems = validate(SCHEMA, document)
    if problems:
        raise QueryError("invalid GraphQL query: " + "; ".join(p.message for p in problems))
    result = execute(SCHEMA, document, root_value=WeaveQueries(weave), variable_values=variables,
                     operation_name=operation)
    if result.data is None and result.errors:
        # bad variables or operation name: nothing ran
        raise QueryError("; ".join(error.message for error in result.errors))
    return result.formatted


def _location(error: GraphQLSyntaxError) -> str:
    if not error.locations:
        return "the start"
    location = error.locations[0]
    return f"line {location.line}, column {location.column}"
