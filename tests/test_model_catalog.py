"""hermes-agent's config.yaml read for GET /api/models (api.model_catalog.hermes_config_models),
in-process: any YAML a user may write gives a clean list or nothing, never an exception."""
from __future__ import annotations

import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from api.model_catalog import hermes_config_models

scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 300_000), st.floats(allow_nan=False),
                    st.text(max_size=20))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(st.text(max_size=12), inner, max_size=4)),
                      max_leaves=20)
model_meta = st.fixed_dictionaries({}, optional={"context_length": values, "supports_vision": values, "id": values,
                                                 "name": values})
provider = st.fixed_dictionaries({}, optional={
    "name": values, "api": values, "base_url": values, "default_model": values, "model": values,
    "context_length": values,
    "models": st.one_of(values, st.dictionaries(st.text(max_size=20), model_meta, max_size=4),
                        st.lists(st.one_of(st.text(max_size=20), model_meta), max_size=4))})
documents = st.one_of(values, st.fixed_dictionaries({}, optional={
    "model": st.one_of(values, st.fixed_dictionaries({}, optional={"default": values, "model": values,
                                                                  "provider": values, "context_length": values,
                                                                  "supports_vision": values})),
    "providers": st.one_of(values, st.dictionaries(st.text(max_size=12), provider, max_size=4)),
    "custom_providers": st.one_of(values, st.lists(provider, max_size=4)),
}))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=documents)
def test_any_config_gives_well_formed_unique_entries(tmp_path, doc):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    found = hermes_config_models(tmp_path)
    ids = [m["id"] for m in found]
    assert len(ids) == len(set(ids))
    for m in found:
        assert isinstance(m["id"], str) and m["id"] == m["id"].strip() and m["id"]
        assert m["backend"] == "hermes" and isinstance(m["vision"], bool) and isinstance(m["label"], str)
        assert "context_length" not in m or (type(m["context_length"]) is int and m["context_length"] > 0)
        assert "provider" not in m or isinstance(m["provider"], str)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=200))
def test_bytes_that_are_not_a_config_list_nothing(tmp_path, raw):
    (tmp_path / "config.yaml").write_bytes(raw)
    assert isinstance(hermes_config_models(tmp_path), list)


def test_no_config_file_lists_nothing(tmp_path):
    assert hermes_config_models(tmp_path) == []


def test_a_deeply_nested_or_huge_config_lists_nothing(tmp_path):
    (tmp_path / "config.yaml").write_text("model: " + "[" * 5000 + "]" * 5000)
    assert hermes_config_models(tmp_path) == []
    (tmp_path / "config.yaml").write_text("model: big\n# " + "x" * (1024 * 1024) + "\n")
    assert hermes_config_models(tmp_path) == []
