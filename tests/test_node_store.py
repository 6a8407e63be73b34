"""The node's log answers lookups from its indexes, so their cost does not grow with a process's log."""

from __future__ import annotations

from tfao.node.store import NodeStore


def plans_of(store: NodeStore, call) -> list[str]:
    """SQLite's query plan of every statement ``call`` runs."""
    statements: list[str] = []
    conn = store._conn()
    conn.set_trace_callback(statements.append)
    try:
        call()
    finally:
        conn.set_trace_callback(None)
    return [" ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}")) for sql in statements]


def test_finding_a_message_by_id_reads_the_id_index(tmp_path):
    store = NodeStore(tmp_path / "node.sqlite")
    for pid in ("p", None):
        plans = plans_of(store, lambda: store.find_message("m", pid))
        assert plans and all("messages_by_id" in plan for plan in plans), plans
    store.close()


def test_counting_and_paging_a_log_read_its_key(tmp_path):
    store = NodeStore(tmp_path / "node.sqlite")
    for call in (lambda: store.message_count("p"), lambda: store.evaluated_upto("p"),
                 lambda: store.message("p", 5), lambda: store.successful_messages("p", after=10, limit=5)):
        plans = plans_of(store, call)
        assert plans and all("SCAN" not in plan.split(" USING")[0] or "COVERING" in plan for plan in plans), plans
    store.close()
