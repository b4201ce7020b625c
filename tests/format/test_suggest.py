"""The one "did you mean" helper and the Python twin of the front-end's gene search ranking."""

from __future__ import annotations

from cellucid_nb.format.suggest import closest, did_you_mean, search_names

GENES = ["CD33", "CD3E", "cd3", "CD3", "XCD3", "LYZ"]
#: js/tests/common_gene_search.test.js's own list and expectations
JS_GENES = ["CD33", "CD3E", "CD3D", "MS4A1", "ACD3X", "cd3", "LYZ", "HLA-A/B"]


def test_ranking_is_exact_then_prefix_then_substring_as_in_js():
    # the same expectations as js/tests/common_gene_search.test.js: exact (case-sensitive one first),
    # then prefixes, then substrings, each group in list order
    assert search_names("CD3", JS_GENES) == ["cd3", "CD33", "CD3E", "CD3D", "ACD3X"]
    assert search_names("cd3e", JS_GENES) == ["CD3E"]
    assert search_names("CD3", ["CD3E", "CD33", "CD3D"], limit=1) == ["CD3E"]
    assert search_names("CD3", GENES) == ["CD3", "cd3", "CD33", "CD3E", "XCD3"]
    assert search_names("cd3", GENES, limit=2) == ["cd3", "CD3"]
    assert search_names("  ", GENES) == []
    assert search_names("zz", GENES) == []


def test_closest_prefers_case_then_prefix_then_spelling():
    assert closest("lyz", GENES) == "LYZ"
    assert closest("CD3", ["CD33", "CD3E"]) == "CD33"
    assert closest("louvian", ["louvain", "bulk_labels"]) == "louvain"
    assert closest("qqqq", ["louvain"]) is None
    assert closest("x", []) is None
    assert did_you_mean("louvian", ["louvain"], prefix="obs:") == "; did you mean 'obs:louvain'?"
    assert did_you_mean("qqqq", ["louvain"]) == ""
