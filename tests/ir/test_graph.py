"""The mutation API: uses, journal, erase safety, ordering, names, subgraph scopes."""

import numpy as np
import pytest

from graphopt.ir import DType, Graph, IRError, Provenance, TensorData, TensorType, topological_order
from graphopt.ir.nx import to_networkx

F = lambda *s: TensorType(DType.FLOAT32, s)  # noqa: E731


def chain():
    g = Graph("g", {"": 21})
    x = g.add_input("x", F(2, 3))
    a = g.add_node("Relu", [x], [F(2, 3)], name="a")
    b = g.add_node("Neg", [a.output], [F(2, 3)], name="b")
    c = g.add_node("Add", [a.output, b.output], [F(2, 3)], name="c")
    g.outputs = [c.output]
    return g, x, a, b, c


def test_uses_are_recorded_and_snapshots():
    g, x, a, b, c = chain()
    assert [u.node for u in a.output.uses()] == [b, c]
    uses = a.output.uses()
    for u in uses:  # rewriting while iterating the snapshot is safe
        g.set_input(u.node, u.index, x)
    assert a.output.uses() == ()
    assert b.inputs[0] is x and c.inputs[0] is x
    assert len(x.uses()) == 3


def test_journal_records_every_mutation():
    g, x, a, b, c = chain()
    g._journal.clear()
    n0 = g.journal_size
    g.replace_all_uses(b.output, a.output)
    g.erase_node(b)
    kinds = [ch.kind for ch in g.journal[n0:]]
    assert kinds == ["replace_uses", "erase_node"]
    assert "b" in str(g.journal[-1])


def test_erase_refuses_nodes_still_used():
    g, x, a, b, c = chain()
    with pytest.raises(IRError, match="still used by Add 'c'"):
        g.erase_node(b)
    with pytest.raises(IRError, match="a graph output"):
        g.erase_node(c)
    g.erase_node(c, unsafe=True)
    assert c.graph is None and g.lookup("c") is None
    assert c not in [u.node for u in a.output.uses()]


def test_replace_all_uses_moves_graph_outputs():
    g, x, a, b, c = chain()
    d = g.add_node("Relu", [c.output], [F(2, 3)], name="d")
    assert g.replace_all_uses(c.output, d.output, exclude=[d]) == 1  # the graph output; d still reads c
    assert g.outputs[0] is d.output and d.inputs[0] is c.output


def test_insert_before_after_and_sort():
    g, x, a, b, c = chain()
    e = g.add_node("Relu", [x], [F(2, 3)], name="e", before=a)
    assert g.nodes[0] is e
    f = g.add_node("Relu", [x], [F(2, 3)], name="f", after=a)
    assert g.nodes.index(f) == g.nodes.index(a) + 1
    assert g.sort() is False  # already topological
    # Put c first by hand: sort must restore a valid order and say it changed something.
    g.move_before(c, e)
    assert g.nodes[0] is c
    assert g.sort() is True
    order = g.nodes
    assert order.index(c) > order.index(a) and order.index(c) > order.index(b)


def test_cycle_is_reported():
    g, x, a, b, c = chain()
    g.set_input(a, 0, c.output)
    with pytest.raises(IRError, match="cycle"):
        topological_order(g)


def test_names_are_unique_and_fresh():
    g, x, a, b, c = chain()
    with pytest.raises(IRError, match="already defined"):
        g.add_input("a", F(1))
    n = g.add_node("Relu", [x], [F(2, 3)], name="a")
    assert n.name != "a" and n.output.name != "a"
    assert g.fresh_name("x") != "x"
    g.rename_value(c.output, "result")
    assert g.lookup("result") is c.output and g.lookup("c") is None


def test_constants_and_removal():
    g = Graph("g")
    w = g.add_constant("w", TensorData.from_numpy(np.ones((2, 2), np.float32)))
    x = g.add_input("x", F(2, 2))
    n = g.add_node("MatMul", [x, w], [F(2, 2)], name="mm")
    g.outputs = [n.output]
    with pytest.raises(IRError, match="still has uses"):
        g.remove_constant(w)
    g.set_input(n, 1, x)
    g.remove_constant(w)
    assert g.constants == () and g.lookup("w") is None


def test_subgraph_reads_outer_values_and_erase_drops_inner_uses():
    g = Graph("g")
    x = g.add_input("x", F(2))
    cond = g.add_input("cond", TensorType(DType.BOOL, ()))
    then = Graph("then", scope=g)
    t = then.add_node("Relu", [x], [F(2)], name="t")
    then.outputs = [t.output]
    els = Graph("else", scope=g)
    e = els.add_node("Neg", [x], [F(2)], name="e")
    els.outputs = [e.output]
    n = g.add_node("If", [cond], [F(2)], {"then_branch": then, "else_branch": els}, name="if")
    g.outputs = [n.output]
    assert then.parent is n and then.root is g
    assert {u.node.name for u in x.uses()} == {"t", "e"}
    assert [m.name for m in g.walk()] == ["if", "t", "e"]
    # Names of subgraph nodes are reserved in the whole tree.
    assert g.add_node("Relu", [x], [F(2)], name="t").name != "t"
    g.outputs = [x]
    g.erase_node(n)
    assert x.uses() == tuple(u for u in x.uses() if u.node.name not in ("t", "e"))
    assert all(u.node.name not in ("t", "e") for u in x.uses())


def test_subgraph_cannot_see_undeclared_values():
    g = Graph("g")
    other = Graph("other")
    y = other.add_input("y", F(2))
    with pytest.raises(IRError, match="not visible"):
        g.add_node("Relu", [y], [F(2)])


def test_provenance_is_kept():
    g, x, a, b, c = chain()
    n = g.add_node("Relu", [x], [F(2, 3)], provenance=Provenance("my-rule", ("a", "b")))
    assert n.provenance.rule == "my-rule" and n.provenance.sources == ("a", "b")


def test_networkx_view():
    g, x, a, b, c = chain()
    nxg = to_networkx(g)
    assert set(nxg.nodes) == {a, b, c}
    assert nxg.number_of_edges() == 3  # a->b, a->c, b->c
    import networkx as nx

    assert list(nx.topological_sort(nxg))[0] is a


def test_clone_is_independent_and_prints_identically():
    from graphopt.ir.clone import clone_graph
    from graphopt.ir.printer import print_ir

    g = Graph("g", {"": 21})
    x = g.add_input("x", F(2))
    w = g.add_constant("w", TensorData.from_numpy(np.ones(2, np.float32)), provenance=Provenance("fold", ("n",)))
    cond = g.add_input("cond", TensorType(DType.BOOL, ()))
    then = Graph("then", scope=g)
    t = then.add_node("Add", [x, w], [F(2)], name="t")
    then.outputs = [t.output]
    els = Graph("else", scope=g)
    e = els.add_node("Neg", [x], [F(2)], name="e")
    els.outputs = [e.output]
    n = g.add_node("If", [cond], [F(2)], {"then_branch": then, "else_branch": els}, name="if")
    g.outputs = [n.output]
    c = clone_graph(g)
    assert print_ir(c, full_constants=True) == print_ir(g, full_constants=True)
    assert c.lookup("w").const is w.const  # payloads are shared, not copied
    c.erase_node(c.nodes[0], unsafe=True)
    assert len(g.nodes) == 1 and len(x.uses()) == 2  # the original is untouched
