"""No import cycles between the modules of collab/ and storage/ (tests/import_graph.py)."""

from __future__ import annotations

from tests.import_graph import cycles, edges, modules


def test_no_import_cycles_counting_type_only_and_in_function_imports():
    graph = edges(modules())
    assert cycles(graph) == []


def test_the_graph_sees_every_kind_of_import():
    """The checker itself: an import inside a function and a type-only one both count."""
    graph = edges(modules())
    assert "collab.errors" in graph["collab.room"]
    assert "storage" not in {m.split(".")[0] for m in graph["storage.sql"]} - {"storage"}
    assert all(
        not m.startswith("collab")
        for mod, deps in graph.items()
        if mod.startswith("storage")
        for m in deps
    )
    assert cycles({"a": {"b": True}, "b": {"a": False}}) == [["a", "b"]]
    assert cycles({"a": {"b": True}, "b": {"a": False}}, runtime_only=True) == []
