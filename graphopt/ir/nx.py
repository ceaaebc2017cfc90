"""A networkx view of a graph, for analyses (dominators, paths, components).

Nodes of the DiGraph are graphopt Nodes; an edge p -> n carries ``value`` (the Value p
produces and n reads) and ``index`` (n's input slot). Graph inputs and constants are not
nodes of the view. networkx is imported lazily so the IR itself stays light.
"""

from __future__ import annotations

from .graph import Graph


def to_networkx(graph: Graph):
    import networkx as nx

    g = nx.MultiDiGraph(name=graph.name)
    for n in graph.nodes:
        g.add_node(n, op=n.qualified_op, name=n.name)
    for n in graph.nodes:
        for i, v in enumerate(n.inputs):
            if v is not None and v.producer is not None and v.producer.graph is graph:
                g.add_edge(v.producer, n, value=v, index=i)
    return g
